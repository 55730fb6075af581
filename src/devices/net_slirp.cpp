#include "devices/net_slirp.h"

#include "base/sandbox.h"

#include <arpa/inet.h>
#include <libslirp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <chrono>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

namespace vigil::devices {

namespace {

// Longest the I/O thread sleeps when neither slirp nor a timer asks for less; only bounds
// how late a missed wakeup could be noticed (there should be none).
constexpr uint32_t kMaxSleepMs = 1000;
// Timer callbacks run per loop iteration at most; a callback re-arming itself for "now"
// cannot keep the thread from polling.
constexpr int kMaxTimerRuns = 16;

in_addr ipv4(uint32_t host_order) {
  in_addr a{};
  a.s_addr = htonl(host_order);
  return a;
}

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int64_t now_ms() {
  return now_ns() / 1'000'000;
}

}  // namespace

struct SlirpBackend::State {
  // A libslirp timer: slirp arms it with an absolute deadline in milliseconds of
  // clock_get_ns's clock; the I/O thread fires it once when due.
  struct Timer {
    SlirpTimerCb cb;
    void* cb_opaque;
    int64_t expire_ms = -1;  // -1: not armed
  };

  ~State() {
    if (slirp) slirp_cleanup(slirp);
    if (wake_fd >= 0) ::close(wake_fd);
  }

  void wake() const {
    const uint64_t one = 1;
    // EAGAIN means the counter is already non-zero: the thread is woken either way.
    [[maybe_unused]] const ssize_t n = ::write(wake_fd, &one, sizeof one);
  }

  void run();
  uint32_t clamp_to_timers(uint32_t timeout_ms) const;
  void run_timers();

  // slirp callbacks (SlirpCb); opaque is the State.
  static const SlirpCb kCallbacks;
  static ssize_t on_send_packet(const void* buf, size_t len, void* opaque);
  static void on_guest_error(const char*, void*) {}
  static int64_t on_clock_get_ns(void*) { return now_ns(); }
  static void* on_timer_new(SlirpTimerCb cb, void* cb_opaque, void* opaque);
  static void on_timer_free(void* timer, void* opaque);
  static void on_timer_mod(void* timer, int64_t expire_ms, void* opaque);
  static void on_register_poll_fd(int, void*) {}
  static void on_unregister_poll_fd(int, void*) {}
  static void on_notify(void* opaque) { static_cast<State*>(opaque)->wake(); }
  // slirp_pollfds_fill / slirp_pollfds_poll callbacks; opaque is the State.
  static int on_add_poll(int fd, int events, void* opaque);
  static int on_get_revents(int idx, void* opaque);

  Slirp* slirp = nullptr;
  int wake_fd = -1;

  std::mutex lifecycle_mutex;  // start() / stop()
  std::thread thread;
  std::atomic<bool> stopping{false};
  // Set by start() before the thread exists, cleared by stop() after it is joined: slirp
  // callbacks outside the thread (slirp_cleanup) then find no receiver to call.
  Receiver receiver;

  std::mutex tx_mutex;
  std::deque<std::vector<uint8_t>> tx_queue;  // guarded by tx_mutex
  size_t tx_queue_bytes = 0;                  // guarded by tx_mutex

  // Touched only by the I/O thread (and by create() / ~State(), when it does not run).
  std::vector<std::unique_ptr<Timer>> timers;
  std::vector<pollfd> pollfds;

  std::atomic<uint64_t> tx_frames{0}, tx_dropped{0}, rx_frames{0};
};

// libslirp keeps the pointer for the stack's lifetime.
const SlirpCb SlirpBackend::State::kCallbacks = {
    .send_packet = on_send_packet,
    .guest_error = on_guest_error,
    .clock_get_ns = on_clock_get_ns,
    .timer_new = on_timer_new,
    .timer_free = on_timer_free,
    .timer_mod = on_timer_mod,
    .register_poll_fd = on_register_poll_fd,
    .unregister_poll_fd = on_unregister_poll_fd,
    .notify = on_notify,
    .init_completed = nullptr,
    .timer_new_opaque = nullptr,  // slirp then uses timer_new
};

ssize_t SlirpBackend::State::on_send_packet(const void* buf, size_t len, void* opaque) {
  auto* s = static_cast<State*>(opaque);
  // libslirp allows dropping frames the guest cannot take; TCP retransmits.
  if (len >= kMinFrame && len <= kMaxFrame && s->receiver) {
    s->rx_frames.fetch_add(1, std::memory_order_relaxed);
    s->receiver(std::span(static_cast<const uint8_t*>(buf), len));
  }
  return static_cast<ssize_t>(len);
}

void* SlirpBackend::State::on_timer_new(SlirpTimerCb cb, void* cb_opaque, void* opaque) {
  auto* s = static_cast<State*>(opaque);
  s->timers.push_back(std::make_unique<Timer>(Timer{cb, cb_opaque}));
  return s->timers.back().get();
}

void SlirpBackend::State::on_timer_free(void* timer, void* opaque) {
  auto& timers = static_cast<State*>(opaque)->timers;
  std::erase_if(timers, [timer](const std::unique_ptr<Timer>& t) { return t.get() == timer; });
}

void SlirpBackend::State::on_timer_mod(void* timer, int64_t expire_ms, void*) {
  static_cast<Timer*>(timer)->expire_ms = expire_ms < 0 ? 0 : expire_ms;
}

int SlirpBackend::State::on_add_poll(int fd, int events, void* opaque) {
  auto* s = static_cast<State*>(opaque);
  short poll_events = 0;
  if (events & SLIRP_POLL_IN) poll_events |= POLLIN;
  if (events & SLIRP_POLL_OUT) poll_events |= POLLOUT;
  if (events & SLIRP_POLL_PRI) poll_events |= POLLPRI;
  if (events & SLIRP_POLL_ERR) poll_events |= POLLERR;
  if (events & SLIRP_POLL_HUP) poll_events |= POLLHUP;
  s->pollfds.push_back({fd, poll_events, 0});
  return static_cast<int>(s->pollfds.size() - 1);
}

int SlirpBackend::State::on_get_revents(int idx, void* opaque) {
  auto* s = static_cast<State*>(opaque);
  if (idx < 0 || static_cast<size_t>(idx) >= s->pollfds.size()) return 0;
  const short revents = s->pollfds[static_cast<size_t>(idx)].revents;
  int events = 0;
  if (revents & POLLIN) events |= SLIRP_POLL_IN;
  if (revents & POLLOUT) events |= SLIRP_POLL_OUT;
  if (revents & POLLPRI) events |= SLIRP_POLL_PRI;
  if (revents & POLLERR) events |= SLIRP_POLL_ERR;
  if (revents & POLLHUP) events |= SLIRP_POLL_HUP;
  return events;
}

uint32_t SlirpBackend::State::clamp_to_timers(uint32_t timeout_ms) const {
  const int64_t now = now_ms();
  for (const auto& t : timers) {
    if (t->expire_ms < 0) continue;
    const int64_t left = t->expire_ms - now;
    if (left <= 0) return 0;
    if (left < timeout_ms) timeout_ms = static_cast<uint32_t>(left);
  }
  return timeout_ms;
}

void SlirpBackend::State::run_timers() {
  for (int i = 0; i < kMaxTimerRuns; ++i) {
    const int64_t now = now_ms();
    Timer* due = nullptr;
    for (const auto& t : timers) {
      if (t->expire_ms >= 0 && t->expire_ms <= now) {
        due = t.get();
        break;
      }
    }
    if (due == nullptr) return;
    due->expire_ms = -1;
    // May free or re-arm any timer, this one included: nothing is held across the call.
    due->cb(due->cb_opaque);
  }
}

void SlirpBackend::State::run() {
  // slirp writes to host sockets with plain send(): a peer that has gone raises SIGPIPE on
  // the writing thread. Blocked here, it stays pending (and is drained below) and send()
  // returns EPIPE, which slirp handles by closing the connection.
  sigset_t sigpipe;
  sigemptyset(&sigpipe);
  sigaddset(&sigpipe, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &sigpipe, nullptr);
  const timespec no_wait{};
  if (auto r = sandbox::restrict_thread(sandbox::ThreadClass::kDeviceIo); !r) {
    // Never run a guest's network stack unfiltered: this NIC stays silent instead.
    std::fprintf(stderr, "vigil: net: %s; this NIC passes no traffic\n", r.error().message.c_str());
    return;
  }

  std::deque<std::vector<uint8_t>> batch;
  while (!stopping.load(std::memory_order_acquire)) {
    pollfds.clear();
    pollfds.push_back({wake_fd, POLLIN, 0});
    uint32_t timeout_ms = clamp_to_timers(kMaxSleepMs);
    slirp_pollfds_fill(slirp, &timeout_ms, on_add_poll, this);
    const int ready =
        ::poll(pollfds.data(), pollfds.size(), static_cast<int>(std::min(timeout_ms, kMaxSleepMs)));
    slirp_pollfds_poll(slirp, ready < 0 ? 1 : 0, on_get_revents, this);
    while (sigtimedwait(&sigpipe, nullptr, &no_wait) == SIGPIPE) {
    }

    if (ready > 0 && (pollfds[0].revents & POLLIN)) {
      uint64_t count;
      [[maybe_unused]] const ssize_t n = ::read(wake_fd, &count, sizeof count);
    }
    {
      std::lock_guard lock(tx_mutex);
      batch.swap(tx_queue);
      tx_queue_bytes = 0;
    }
    for (const auto& frame : batch) {
      tx_frames.fetch_add(1, std::memory_order_relaxed);  // before slirp answers it
      slirp_input(slirp, frame.data(), static_cast<int>(frame.size()));
    }
    batch.clear();
    run_timers();
  }
}

Result<std::unique_ptr<SlirpBackend>> SlirpBackend::create(const Options& options) {
  auto state = std::make_unique<State>();
  state->wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (state->wake_fd < 0)
    return make_error("user networking: cannot create an eventfd: {}", std::strerror(errno));

  SlirpConfig cfg{};
  cfg.version = 4;  // the fields up to disable_dhcp (libslirp 4.5+)
  cfg.restricted = options.restricted ? 1 : 0;
  cfg.in_enabled = true;
  cfg.vnetwork = ipv4(kNetwork);
  cfg.vnetmask = ipv4(kNetmask);
  cfg.vhost = ipv4(kHostAddr);
  cfg.in6_enabled = false;
  cfg.vdhcp_start = ipv4(kGuestAddr);
  cfg.vnameserver = ipv4(kDnsAddr);
  cfg.disable_host_loopback = false;  // 10.0.2.2 reaches the host's 127.0.0.1
  cfg.enable_emu = false;             // libslirp: "not safe"
  state->slirp = slirp_new(&cfg, &State::kCallbacks, state.get());
  if (state->slirp == nullptr)
    return make_error("user networking: libslirp could not set up the network stack");

  for (const auto& [host_port, guest_port] : options.forwards) {
    if (host_port == 0 || guest_port == 0) {
      return make_error(
          "user networking: cannot forward host port {} to guest port {}: ports must be 1-65535", host_port,
          guest_port);
    }
    errno = 0;
    if (slirp_add_hostfwd(state->slirp, 0, ipv4(INADDR_LOOPBACK), host_port, ipv4(kGuestAddr), guest_port) <
        0) {
      const int err = errno;
      return make_error("user networking: cannot listen on 127.0.0.1:{} to forward it to guest port {}: {}",
                        host_port, guest_port, err ? std::strerror(err) : "refused by libslirp");
    }
  }
  return std::unique_ptr<SlirpBackend>(new SlirpBackend(std::move(state)));
}

SlirpBackend::SlirpBackend(std::unique_ptr<State> state) : m_state(std::move(state)) {}

SlirpBackend::~SlirpBackend() {
  stop();
}

void SlirpBackend::start(Receiver receiver) {
  State& s = *m_state;
  std::lock_guard lock(s.lifecycle_mutex);
  if (s.thread.joinable()) return;
  s.receiver = std::move(receiver);
  s.stopping.store(false, std::memory_order_release);
  s.thread = std::thread([&s] { s.run(); });
}

void SlirpBackend::stop() {
  State& s = *m_state;
  std::lock_guard lock(s.lifecycle_mutex);
  if (s.thread.joinable()) {
    s.stopping.store(true, std::memory_order_release);
    s.wake();
    s.thread.join();
  }
  s.receiver = nullptr;
}

void SlirpBackend::send(std::span<const uint8_t> frame) {
  State& s = *m_state;
  if (frame.size() < kMinFrame || frame.size() > kMaxFrame) {
    s.tx_dropped.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  {
    std::lock_guard lock(s.tx_mutex);
    if (s.tx_queue.size() >= kTxQueueFrames || frame.size() > kTxQueueBytes - s.tx_queue_bytes) {
      s.tx_dropped.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    s.tx_queue.emplace_back(frame.begin(), frame.end());
    s.tx_queue_bytes += frame.size();
  }
  s.wake();
}

NetBackendStats SlirpBackend::stats() const {
  const State& s = *m_state;
  return {.tx_frames = s.tx_frames.load(std::memory_order_relaxed),
          .tx_dropped = s.tx_dropped.load(std::memory_order_relaxed),
          .rx_frames = s.rx_frames.load(std::memory_order_relaxed)};
}

}  // namespace vigil::devices
