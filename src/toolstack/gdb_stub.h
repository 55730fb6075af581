// A GDB stub: the remote serial protocol's commands (gdb's "Remote Protocol" appendix) on top
// of a Target, in all-stop mode. The Target is a domain in vigild (api_gdb.h) or a fake in the
// tests; the Session does not know which.
//
//   gdb::Session s(target, fd);  // fd: a connected stream socket
//   s.run();                     // until gdb detaches or disconnects, or the target ends
//
// Registers use gdb's RISC-V numbering, announced in target.xml (qXfer:features:read):
// 0-31 x0-x31, 32 pc, 33-64 f0-f31, 66 fflags, 67 frm, 68 fcsr, 4161 priv. Threads are vCPUs,
// thread id = vCPU + 1. Memory addresses are virtual, translated by the Target.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "toolstack/gdb_rsp.h"

namespace vigil::toolstack::gdb {

inline constexpr unsigned kRegPc = 32, kRegF0 = 33, kRegFflags = 66, kRegFrm = 67, kRegFcsr = 68,
                          kRegPriv = 4161;

// What a watchpoint watches: the Z2/Z3/Z4 packet types.
enum class Watch : uint8_t { kNone = 0, kWrite = 2, kRead = 3, kAccess = 4 };

struct StopReason {
  enum class Kind : uint8_t { kSignal, kExited, kKilled };
  Kind kind = Kind::kSignal;
  unsigned vcpu = 0;
  int signal = 5;  // SIGTRAP (breakpoint, step, attach); 2 = SIGINT (Ctrl-C); kKilled: 9
  int exit_code = 0;
  Watch watch = Watch::kNone;  // a watchpoint stopped the vCPU before an access to...
  uint64_t watch_addr = 0;     // ...this (virtual) address, the first watched byte it touches
};
// The stop reply packet: "T05thread:1;", "T05thread:1;watch:ffff...;", "W00", "X09".
std::string stop_reply(const StopReason& stop);

class Target {
 public:
  virtual ~Target() = default;
  virtual unsigned vcpu_count() = 0;
  // Only while stopped. nullopt: no such register.
  virtual std::optional<uint64_t> read_register(unsigned vcpu, unsigned reg) = 0;
  virtual bool write_register(unsigned vcpu, unsigned reg, uint64_t value) = 0;
  virtual Result<void> read_memory(unsigned vcpu, uint64_t va, std::span<uint8_t> out) = 0;
  virtual Result<void> write_memory(unsigned vcpu, uint64_t va, std::span<const uint8_t> data) = 0;
  virtual Result<void> insert_breakpoint(unsigned vcpu, uint64_t va) = 0;
  virtual Result<void> remove_breakpoint(uint64_t va) = 0;
  // Watchpoints over [va, va+len) (within one guest page); a target without them refuses.
  virtual Result<void> insert_watchpoint(unsigned /*vcpu*/, Watch /*type*/, uint64_t va, uint64_t /*len*/) {
    return make_error("no watchpoint at {:#x}: this target has none", va);
  }
  virtual Result<void> remove_watchpoint(Watch /*type*/, uint64_t va, uint64_t /*len*/) {
    return make_error("no watchpoint at {:#x}", va);
  }
  // Lets the vCPUs with run[v] go (the others stay stopped), `step` single-stepping that one
  // (it is among them). Returns at once.
  virtual Result<void> resume(const std::vector<bool>& run, std::optional<unsigned> step) = 0;
  // While running: stops every vCPU now (Ctrl-C) and says where.
  virtual StopReason interrupt() = 0;
  // Readable when the guest stopped by itself while running (a breakpoint or a step).
  virtual int stop_fd() = 0;
  // After stop_fd became readable: finishes stopping every vCPU and says why; nullopt if
  // there was nothing (a wake-up that lost a race with interrupt()).
  virtual std::optional<StopReason> take_stop() = 0;
  // The guest is gone (powered off: kExited, destroyed: kKilled); nullopt while it exists.
  virtual std::optional<StopReason> ended() = 0;
  // Breakpoints and steps go; the guest runs again if it was running when gdb came.
  virtual void detach() = 0;
};

class Session {
 public:
  // `initial`: the stop gdb is told of on "?" (the target is stopped when the session starts).
  Session(Target& target, int fd, StopReason initial = {});

  // Serves the connection until gdb detaches (D, k) or closes it, the target ends, or
  // `should_quit` returns true (polled about every 200 ms). Detaches the target at the end.
  // `refuse_fd` (a listening socket, or -1): connections arriving meanwhile are closed.
  void run(const std::function<bool()>& should_quit = {}, int refuse_fd = -1);

  // One packet's payload -> the reply payload, or nullopt when the target was resumed (the
  // reply is the stop that comes later). Public for the tests and the fuzz target.
  std::optional<std::string> handle(std::string_view payload);
  bool running() const { return m_running; }
  bool finished() const { return m_finished; }
  // Bytes to send for a reply payload, with the acknowledgement state applied.
  std::string framed(std::string_view payload) const { return frame(payload); }
  // Marks the target stopped with `stop` (after a stop the session learned from outside).
  void stopped(const StopReason& stop);

 private:
  std::optional<std::string> query(std::string_view q);
  std::optional<std::string> resume_packet(std::string_view payload);
  std::string read_registers();
  std::string write_registers(std::string_view hex);
  std::string read_memory(std::string_view args);
  std::string write_memory(std::string_view args, bool binary);
  std::string breakpoint(std::string_view args, bool insert);
  std::string select_thread(std::string_view args);
  std::optional<unsigned> thread_vcpu(std::string_view tid) const;  // "1" -> 0; "0"/"-1" -> current
  bool send(std::string_view payload);

  Target& m_target;
  int m_fd;
  StopReason m_last;
  unsigned m_g_vcpu = 0;  // Hg: registers and memory
  unsigned m_c_vcpu = 0;  // Hc: the vCPU a plain "s" steps
  bool m_running = false;
  bool m_finished = false;
  bool m_no_ack = false;
  std::string m_last_sent;  // resent on NAK
};

// The target description gdb reads through qXfer:features:read:target.xml.
const std::string& target_xml();

}  // namespace vigil::toolstack::gdb
