// vm_event costs on a bare hart (Google Benchmark; bench/monitor.py runs it and the guest
// workloads). The guest is a two-instruction loop, `csrw sscratch, t0; j .-4`, with a
// monitor subscribed to sscratch writes, so every loop iteration raises one event:
//   InProcessSync    a C++ callback answers "continue" (the vCPU waits for it)
//   InProcessAsync   the callback is only told
//   RemoteSync       a monitor in another process answers over the session socket
//                    (monitor/remote.h: the transport vigild uses), JSON lines both ways
//   RemoteSyncPolling  the same with a client that polls its socket instead of sleeping
//   RemoteSyncShm    the shared-memory transport (monitor/shm_channel.h) with the client
//                    library `vigil monitor` uses (toolstack/monitor_client.h): the event
//                    and its answer go through the vCPU's slot, both sides polling
//   RemoteSyncShmSleeping  the same with a client that never polls: every event wakes it
//                    through the socket (the nudge)
//   RemoteAsync      events written to that socket, a reader process drains them
//   NoMonitor        the same loop with nothing attached (the hook costs nothing here)
// Counters: per-event latency median and p99 (the period between consecutive events, i.e. the
// whole round trip plus two instructions) and events per second.
#include <benchmark/benchmark.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstring>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <sys/un.h>

#include "monitor/remote.h"
#include "toolstack/monitor_client.h"

namespace {

using namespace vigil;
using Clock = std::chrono::steady_clock;

class NullPlatform : public riscv::Platform {
 public:
  bool mmio_read(riscv::Hart&, uint64_t, unsigned, uint64_t&) override { return false; }
  bool mmio_write(riscv::Hart&, uint64_t, unsigned, uint64_t) override { return false; }
  uint64_t mtime() override { return 0; }
  bool sbi_ecall(riscv::Hart&) override { return false; }
  void unhandled_machine_trap(riscv::Hart&, uint64_t, uint64_t) override {}
};

constexpr uint64_t kBase = 0x80000000, kSize = 1 << 20;

// A hart in S-mode looping on `csrw sscratch, t0; j .-4`.
struct Machine {
  std::vector<uint8_t> ram = std::vector<uint8_t>(kSize);
  riscv::GuestMemory mem{ram.data(), kBase, kSize};
  NullPlatform platform;
  riscv::Hart hart{0, mem, platform};
  Machine() {
    const uint32_t code[] = {0x14029073u /* csrw sscratch, t0 */, 0xffdff06fu /* j .-4 */};
    std::memcpy(ram.data(), code, sizeof(code));
    hart.reset(kBase);
    hart.csr_write(riscv::csr::kPmpaddr0, (1ull << 54) - 1);
    hart.csr_write(riscv::csr::kPmpcfg0, 0x1f);
    hart.priv = riscv::Priv::S;
    hart.invalidate_fetch();
  }
};

monitor::Subscription sscratch_writes(bool sync) {
  monitor::Subscription s{.type = monitor::EventType::kCsrWrite, .sync = sync};
  s.filter.numbers = {riscv::csr::kSscratch};
  return s;
}

// Period between consecutive events, recorded in the callback.
struct Periods {
  std::vector<int64_t> ns;
  Clock::time_point last{};
  void tick() {
    const auto now = Clock::now();
    if (last != Clock::time_point{}) ns.push_back((now - last).count());
    last = now;
  }
  void report(benchmark::State& state, uint64_t events, double seconds) {
    if (!ns.empty()) {
      std::sort(ns.begin(), ns.end());
      state.counters["median_ns"] = static_cast<double>(ns[ns.size() / 2]);
      state.counters["p99_ns"] = static_cast<double>(ns[ns.size() * 99 / 100]);
    }
    state.counters["events_per_s"] = seconds > 0 ? static_cast<double>(events) / seconds : 0;
  }
};

void run_loop(benchmark::State& state, Machine& m, uint64_t budget, uint64_t& events) {
  for (auto _ : state) {
    m.hart.run(budget);
    events += budget / 2;
  }
}

void NoMonitor(benchmark::State& state) {
  Machine m;
  uint64_t events = 0;
  const auto t0 = Clock::now();
  run_loop(state, m, 20'000, events);
  state.counters["insns_per_s"] =
      static_cast<double>(events * 2) / std::chrono::duration<double>(Clock::now() - t0).count();
}

void InProcess(benchmark::State& state, bool sync) {
  Machine m;
  monitor::Hub hub(m.mem, {&m.hart});
  Periods periods;
  periods.ns.reserve(1 << 22);
  uint64_t seen = 0;
  auto mon = hub.attach("bench", [&](const monitor::Event&) {
    if (periods.ns.size() < (1u << 22)) periods.tick();
    ++seen;
    return monitor::Response{};
  });
  mon->subscribe(sscratch_writes(sync));
  uint64_t events = 0;
  const auto t0 = Clock::now();
  run_loop(state, m, 20'000, events);
  periods.report(state, seen, std::chrono::duration<double>(Clock::now() - t0).count());
}
void InProcessSync(benchmark::State& state) {
  InProcess(state, true);
}
void InProcessAsync(benchmark::State& state) {
  InProcess(state, false);
}

// The monitor process: answers every synchronous event with "continue" (parsing each line,
// as any client would), or just drains the socket.
[[noreturn]] void client_process(int fd, bool answer, bool poll) {
  std::string buf;
  char chunk[65536];
  while (true) {
    // A polling monitor spins on its socket (a core of its own, as latency-bound
    // introspection tools run); the other sleeps in read().
    const ssize_t n = poll ? ::recv(fd, chunk, sizeof(chunk), MSG_DONTWAIT) : ::read(fd, chunk, sizeof(chunk));
    if (n < 0 && poll && (errno == EAGAIN || errno == EWOULDBLOCK)) continue;
    if (n <= 0) _exit(0);
    if (!answer) continue;
    buf.append(chunk, static_cast<size_t>(n));
    size_t nl;
    while ((nl = buf.find('\n')) != std::string::npos) {
      const auto ev = monitor::Json::parse(std::string_view(buf).substr(0, nl), nullptr, false);
      buf.erase(0, nl + 1);
      if (!ev.is_object() || !ev.value("sync", false)) continue;
      const std::string reply = monitor::Json{{"seq", ev["seq"]}, {"action", "continue"}}.dump() + "\n";
      if (::write(fd, reply.data(), reply.size()) < 0) _exit(1);
    }
  }
}

enum class Transport { kSocket, kSocketPolling, kShm, kShmSleeping };

// A session whose client is a forked process: over a socketpair (client_process), or over
// an abstract socket with the shared-memory channel and the real client library. Returns
// the session's end of the connection and the child's pid.
std::pair<int, pid_t> connect_client(Transport t, bool sync) {
  if (t == Transport::kSocket || t == Transport::kSocketPolling) {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return {-1, -1};
    const pid_t child = ::fork();
    if (child == 0) {
      ::close(fds[0]);
      client_process(fds[1], sync, t == Transport::kSocketPolling);
    }
    ::close(fds[1]);
    return {fds[0], child};
  }
  static int n = 0;
  const std::string name = fmt::format("vigil-monitor-bench-{}-{}", ::getpid(), ++n);
  const int listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path + 1, name.data(), name.size());
  const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  if (::bind(listener, reinterpret_cast<sockaddr*>(&addr), len) != 0 || ::listen(listener, 1) != 0) return {-1, -1};
  const pid_t child = ::fork();
  if (child == 0) {
    ::close(listener);
    auto c = toolstack::MonitorClient::connect(name);
    if (!c || !c->await_ready()) _exit(1);
    c->set_spin(t == Transport::kShm ? std::chrono::microseconds(1'000'000) : std::chrono::microseconds(0));
    while (true) {
      auto ev = c->next();
      if (!ev) _exit(0);
      if (ev->value("sync", false) && !c->answer((*ev)["seq"].get<uint64_t>(), monitor::Action::kContinue)) _exit(1);
    }
  }
  const int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  ::close(listener);
  return {fd, child};
}

void Remote(benchmark::State& state, bool sync, Transport transport = Transport::kSocket) {
  const auto [fd, child] = connect_client(transport, sync);
  if (fd < 0) {
    state.SkipWithError("cannot connect a client process");
    return;
  }
  const bool shm = transport == Transport::kShm || transport == Transport::kShmSleeping;
  Machine m;
  monitor::Hub hub(m.mem, {&m.hart});
  auto session = monitor::RemoteSession::start(hub, fd, "bench", {.shm = shm});
  std::atomic<bool> stop{false};
  std::thread server([&] { session->serve([&] { return !stop.load(); }); });
  if (shm) session->send(monitor::Json{{"ready", true}, {"transport", "shm"}}, session->shm_fd());
  // A second in-process observer records the periods (it costs ~20 ns, measured above).
  Periods periods;
  periods.ns.reserve(1 << 22);
  auto timer = hub.attach("timer", [&](const monitor::Event&) {
    if (periods.ns.size() < (1u << 22)) periods.tick();
    return monitor::Response{};
  });
  session->monitor().subscribe(sscratch_writes(sync));
  timer->subscribe(sscratch_writes(false));
  uint64_t events = 0;
  const auto t0 = Clock::now();
  run_loop(state, m, sync ? 2'000 : 20'000, events);
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  periods.report(state, session->monitor().delivered(), seconds);
  state.counters["lost"] = static_cast<double>(session->lost());
  if (session->dead()) state.SkipWithError(session->end_reason().c_str());
  stop = true;
  server.join();
  session.reset();
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
}
void RemoteSync(benchmark::State& state) {
  Remote(state, true);
}
void RemoteAsync(benchmark::State& state) {
  Remote(state, false);
}
void RemoteSyncPolling(benchmark::State& state) {
  Remote(state, true, Transport::kSocketPolling);
}
void RemoteSyncShm(benchmark::State& state) {
  Remote(state, true, Transport::kShm);
}
void RemoteSyncShmSleeping(benchmark::State& state) {
  Remote(state, true, Transport::kShmSleeping);
}

BENCHMARK(NoMonitor)->Unit(benchmark::kMicrosecond)->MinTime(1.0);
BENCHMARK(InProcessSync)->Unit(benchmark::kMicrosecond)->MinTime(1.0);
BENCHMARK(InProcessAsync)->Unit(benchmark::kMicrosecond)->MinTime(1.0);
BENCHMARK(RemoteSync)->Unit(benchmark::kMicrosecond)->MinTime(2.0)->UseRealTime();
BENCHMARK(RemoteSyncPolling)->Unit(benchmark::kMicrosecond)->MinTime(2.0)->UseRealTime();
BENCHMARK(RemoteSyncShm)->Unit(benchmark::kMicrosecond)->MinTime(2.0)->UseRealTime();
BENCHMARK(RemoteSyncShmSleeping)->Unit(benchmark::kMicrosecond)->MinTime(2.0)->UseRealTime();
BENCHMARK(RemoteAsync)->Unit(benchmark::kMicrosecond)->MinTime(2.0)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);  // as vigild does
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
