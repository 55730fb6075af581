// Names of events, actions, CSRs and registers, as the JSON transport and the CLI spell them.
#include "monitor/event.h"

#include <charconv>

namespace vigil::monitor {

namespace {
constexpr std::array<std::string_view, kEventTypeCount> kTypeNames = {
    "mem", "csr", "breakpoint", "singlestep", "syscall", "sysret", "request", "trap"};

struct CsrName {
  std::string_view name;
  unsigned number;
};
constexpr CsrName kCsrNames[] = {
    {"satp", riscv::csr::kSatp},     {"stvec", riscv::csr::kStvec},       {"sstatus", riscv::csr::kSstatus},
    {"sie", riscv::csr::kSie},       {"sscratch", riscv::csr::kSscratch}, {"sepc", riscv::csr::kSepc},
    {"scause", riscv::csr::kScause}, {"stval", riscv::csr::kStval},       {"mstatus", riscv::csr::kMstatus},
    {"mtvec", riscv::csr::kMtvec},   {"medeleg", riscv::csr::kMedeleg},   {"mideleg", riscv::csr::kMideleg},
    {"mie", riscv::csr::kMie},       {"mepc", riscv::csr::kMepc},         {"mcause", riscv::csr::kMcause},
    {"mtval", riscv::csr::kMtval},   {"mscratch", riscv::csr::kMscratch},
};

// ABI names in register order (unprivileged spec chapter 25, table 25.1).
constexpr std::array<std::string_view, 32> kRegNames = {
    "zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1", "a0",  "a1",  "a2", "a3", "a4", "a5",
    "a6",   "a7", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "t3", "t4", "t5", "t6"};
}  // namespace

std::string_view to_string(EventType type) {
  return kTypeNames[static_cast<unsigned>(type)];
}

std::optional<EventType> event_type_from(std::string_view name) {
  for (unsigned i = 0; i < kEventTypeCount; ++i) {
    if (kTypeNames[i] == name) return static_cast<EventType>(i);
  }
  return std::nullopt;
}

std::string_view to_string(Action action) {
  switch (action) {
    case Action::kContinue:
      return "continue";
    case Action::kDeny:
      return "deny";
    case Action::kEmulate:
      return "emulate";
  }
  return "continue";
}

std::optional<Action> action_from(std::string_view name) {
  for (Action a : {Action::kContinue, Action::kDeny, Action::kEmulate}) {
    if (to_string(a) == name) return a;
  }
  return std::nullopt;
}

std::optional<unsigned> csr_from_name(std::string_view name) {
  for (const CsrName& c : kCsrNames) {
    if (c.name == name) return c.number;
  }
  return std::nullopt;
}

std::string_view csr_name(unsigned csr) {
  for (const CsrName& c : kCsrNames) {
    if (c.number == csr) return c.name;
  }
  return "";
}

std::optional<unsigned> reg_from_name(std::string_view name) {
  for (unsigned i = 0; i < kRegNames.size(); ++i) {
    if (kRegNames[i] == name) return i;
  }
  if (name == "fp") return 8;
  if (name.size() >= 2 && name[0] == 'x') {
    unsigned n = 0;
    const auto [p, ec] = std::from_chars(name.data() + 1, name.data() + name.size(), n);
    if (ec == std::errc() && p == name.data() + name.size() && n < 32) return n;
  }
  return std::nullopt;
}

}  // namespace vigil::monitor
