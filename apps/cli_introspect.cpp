#include "cli_introspect.h"

#include <charconv>
#include <cstdio>
#include <memory>

#include "toolstack/introspect_client.h"

namespace vigil::cli {

namespace {

using toolstack::AddressSpace;
using toolstack::IntrospectClient;

struct Options {
  std::string domain;
  bool json = false;
  std::string address, length = "64", satp;
  std::optional<int32_t> pid;
  bool physical = false;
};

int fail(const Error& e) {
  std::fprintf(stderr, "vigil: %s\n", e.message.c_str());
  return 1;
}

std::optional<uint64_t> parse_number(const std::string& text) {
  const bool hex = text.starts_with("0x") || text.starts_with("0X");
  const char* begin = text.data() + (hex ? 2 : 0);
  uint64_t v = 0;
  const auto [p, ec] = std::from_chars(begin, text.data() + text.size(), v, hex ? 16 : 10);
  if (ec != std::errc() || p != text.data() + text.size() || p == begin) return std::nullopt;
  return v;
}

int ps(const IntrospectClient& client, bool json) {
  auto list = client.processes();
  if (!list) return fail(list.error());
  if (json) {
    std::printf("%s\n", list->raw.dump(2).c_str());
    return 0;
  }
  std::printf("%6s %6s %4s %-18s %s\n", "PID", "PPID", "VCPU", "SATP", "COMM");
  for (const auto& p : list->processes) {
    const std::string vcpu = p.vcpu ? std::to_string(*p.vcpu) : "-";
    const std::string satp = p.error.empty() ? fmt::format("{:#018x}", p.satp) : "?";
    // Kernel threads in brackets, as ps shows them.
    const std::string comm = p.kernel_thread ? "[" + p.comm + "]" : p.comm;
    std::printf("%6d %6d %4s %-18s %s%s\n", p.pid, p.ppid, vcpu.c_str(), satp.c_str(), comm.c_str(),
                p.error.empty() ? "" : fmt::format("  ({})", p.error).c_str());
  }
  for (const auto& v : list->vcpus) {
    if (!v.online) {
      std::printf("vCPU %u: offline\n", v.vcpu);
    } else if (v.pid) {
      std::printf("vCPU %u: %s-mode, pid %d (%s), pc %s\n", v.vcpu, v.mode.c_str(), *v.pid, v.comm.c_str(),
                  v.pc.c_str());
    } else {
      std::printf("vCPU %u: %s-mode, pc %s, current task unknown: %s\n", v.vcpu, v.mode.c_str(), v.pc.c_str(),
                  v.error.c_str());
    }
  }
  return 0;
}

}  // namespace

std::function<std::optional<int>()> add_introspect_commands(CLI::App& app, const std::string& socket) {
  auto o = std::make_shared<Options>();
  auto add_space_options = [o](CLI::App* c) {
    c->add_option("--satp", o->satp, "walk these page tables (a satp value)");
    c->add_option("--pid", o->pid, "walk this process's page tables (default: the kernel's)");
  };
  CLI::App* ps_cmd =
      app.add_subcommand("ps", "List a domain's processes from outside (no agent in the guest)");
  ps_cmd->add_option("domain", o->domain, "domain name or id")->required();
  ps_cmd->add_flag("--json", o->json, "print vigild's JSON answer");
  CLI::App* translate =
      app.add_subcommand("translate", "Translate a guest-virtual address through the guest's page tables");
  translate->add_option("domain", o->domain, "domain name or id")->required();
  translate->add_option("address", o->address, "guest-virtual address (0x... or decimal)")->required();
  add_space_options(translate);
  CLI::App* dump = app.add_subcommand("dump-memory", "Hex dump of guest memory");
  dump->add_option("domain", o->domain, "domain name or id")->required();
  dump->add_option("address", o->address, "guest-virtual (or with --physical, guest-physical) address")
      ->required();
  dump->add_option("length", o->length, "bytes (default 64)");
  dump->add_flag("--physical", o->physical, "the address is guest-physical");
  add_space_options(dump);
  CLI::App* symbol = app.add_subcommand("symbol", "Kernel symbol address, or the symbol at an address");
  symbol->add_option("domain", o->domain, "domain name or id")->required();
  symbol->add_option("what", o->address, "a symbol name, or an address (0x...)")->required();
  CLI::App* modules = app.add_subcommand("modules", "List the guest kernel's loaded modules");
  modules->add_option("domain", o->domain, "domain name or id")->required();

  return [o, &socket, ps_cmd, translate, dump, symbol, modules]() -> std::optional<int> {
    const IntrospectClient client(socket, o->domain);
    AddressSpace as;
    if (!o->satp.empty()) {
      as.satp = parse_number(o->satp);
      if (!as.satp) return fail(Error{fmt::format("--satp takes a number, not '{}'", o->satp)});
    }
    as.pid = o->pid;
    if (*ps_cmd) return ps(client, o->json);
    if (*translate) {
      auto va = parse_number(o->address);
      if (!va) return fail(Error{fmt::format("'{}' is not an address", o->address)});
      auto t = client.translate(*va, as);
      if (!t) return fail(t.error());
      std::printf("va %#llx -> pa %#llx (level %u, %llu KiB page, pte %#llx, satp %#llx)\n",
                  static_cast<unsigned long long>(t->va), static_cast<unsigned long long>(t->pa), t->level,
                  static_cast<unsigned long long>(t->page_size >> 10),
                  static_cast<unsigned long long>(t->pte), static_cast<unsigned long long>(t->satp));
      return 0;
    }
    if (*dump) {
      auto addr = parse_number(o->address);
      auto len = parse_number(o->length);
      if (!addr || !len) return fail(Error{"address and length must be numbers (0x... or decimal)"});
      auto data = o->physical ? client.read_physical(*addr, *len) : client.read_virtual(*addr, *len, as);
      if (!data) return fail(data.error());
      for (size_t i = 0; i < data->size(); i += 16) {
        std::string hexpart, text;
        for (size_t j = i; j < i + 16 && j < data->size(); ++j) {
          hexpart += fmt::format("{:02x} ", (*data)[j]);
          text += ((*data)[j] >= 0x20 && (*data)[j] < 0x7f) ? static_cast<char>((*data)[j]) : '.';
        }
        std::printf("%016llx  %-48s %s\n", static_cast<unsigned long long>(*addr + i), hexpart.c_str(),
                    text.c_str());
      }
      return 0;
    }
    if (*symbol) {
      const auto addr = parse_number(o->address);
      auto s = addr && o->address.starts_with("0x") ? client.symbol_at(*addr) : client.symbol(o->address);
      if (!s) return fail(s.error());
      if (s->offset) {
        std::printf("%#llx %s+%#llx\n", static_cast<unsigned long long>(s->address + s->offset),
                    s->name.c_str(), static_cast<unsigned long long>(s->offset));
      } else {
        std::printf("%#llx %s %s\n", static_cast<unsigned long long>(s->address), s->type.c_str(),
                    s->name.c_str());
      }
      return 0;
    }
    if (*modules) {
      auto m = client.modules();
      if (!m) return fail(m.error());
      for (const auto& name : *m) std::printf("%s\n", name.c_str());
      return 0;
    }
    return std::nullopt;
  };
}

}  // namespace vigil::cli
