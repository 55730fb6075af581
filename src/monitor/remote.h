// The out-of-process transport: one monitor session on one connected stream socket,
// JSON lines both ways (json.h). vigild opens a dedicated Unix socket per session
// (toolstack/api_monitor.h); tests and benchmarks use a socketpair.
//
// Why this shape:
//  - A socket of its own per session, not the control connection: the control API stays
//    one request / one answer per line, and each monitor gets its own flow control, so a slow
//    monitor backs up only its own events.
//  - No thread hand-off on the way out or back: the vCPU thread writes its event straight to
//    the socket and reads the answer from it itself (a blocking read, bounded by
//    SO_RCVTIMEO), so a round trip costs what a ping-pong between two processes costs, one
//    wake-up each way. The serving thread reads only while no vCPU does (commands, answers
//    for vCPUs that wait behind the one reading, the end of the connection).
//  - JSON lines: self-describing, easy from any language (the e2e tests speak it from
//    Python), and at a few hundred bytes per event the encoding costs well under a
//    microsecond, small beside the two context switches a round trip takes anyway.
//  - Asynchronous events are batched: a vCPU appends them to an output buffer that goes out
//    (without blocking) once it holds kFlushBytes or is kFlushInterval old (looked at every
//    32nd event), or with the next synchronous event, or from the serving thread's 10 ms
//    timer; a system call traced at entry and return then costs two appends, not two system
//    calls. A full socket is retried only after another kFlushBytes or kFlushInterval.
//  - Synchronous events through shared memory (Options::shm, shm_channel.h): the session
//    also owns a memfd with a slot per vCPU, passed to the client with the "ready" line; a
//    vCPU posts its synchronous event there and polls for the answer, so a polling client
//    answers without a system call on either side. Everything else stays on the socket,
//    which also wakes a client that sleeps. Clients that did not ask for it (JSON over the
//    socket only) never see the memfd.
//  - Never wedging the guest: asynchronous events are never waited for; when the buffer is
//    full (the monitor does not keep up) they are dropped, counted and reported as "lost" in
//    the next event; a synchronous event waits at most `timeout` for its answer. A timeout, a closed socket
//    or a malformed answer ends the session: the monitor is detached (its rights, breakpoints and
//    subscriptions dropped) and every vCPU waiting on it continues.
//
// Besides answers (lines with "seq"), the client may send commands, each acknowledged with
// {"ack": CMD, "ok": bool, "error"?}:
//   {"cmd": "subscribe", "subscription": {...}}     {"cmd": "unsubscribe", "type": T}
//   {"cmd": "rights", "gpa": A, "length": L, "rights": "r-x"}
//   {"cmd": "breakpoint", "gpa": A, "gva"?: V, "remove"?: bool}
//   {"cmd": "singlestep", "vcpu": N, "on": bool}
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "monitor/json.h"
#include "monitor/monitor.h"
#include "monitor/shm_channel.h"

namespace vigil::monitor {

class RemoteSession : public std::enable_shared_from_this<RemoteSession> {
 public:
  static constexpr auto kDefaultTimeout = std::chrono::milliseconds(1500);
  // Longest single blocking read or write on the socket (SO_RCVTIMEO/SO_SNDTIMEO): the
  // granularity at which a waiting vCPU notices its deadline or the session's end.
  static constexpr auto kIoSlice = std::chrono::milliseconds(20);
  static constexpr size_t kFlushBytes = 16 * 1024;
  static constexpr size_t kMaxBuffered = 1024 * 1024;  // beyond this, asynchronous events are lost
  static constexpr auto kFlushInterval = std::chrono::milliseconds(1);
  static constexpr auto kDefaultSpin = std::chrono::microseconds(50);

  struct Options {
    std::chrono::milliseconds timeout = kDefaultTimeout;
    // How long a vCPU polls the socket for an answer before it sleeps in read().
    std::chrono::microseconds spin = kDefaultSpin;
    // Adds fields to an event before it is sent (vigild: the pid and comm of `task`), as
    // `,"key":value` JSON text appended to its second argument; runs on the vCPU thread and
    // must not block.
    std::function<void(const Event&, std::string&)> annotate;
    // Post synchronous events through a shared-memory channel (shm_channel.h) as well.
    bool shm = false;
  };

  // Attaches a monitor named `name` to `hub`; owns `fd` (a connected stream socket) from now
  // on. The monitor's callback holds the session weakly: whoever drops the last reference
  // (the serving thread, or a vCPU finishing an event) closes the socket.
  static std::shared_ptr<RemoteSession> start(Hub& hub, int fd, std::string name, Options options);
  RemoteSession(Hub& hub, int fd, Options options);
  ~RemoteSession();
  RemoteSession(const RemoteSession&) = delete;
  RemoteSession& operator=(const RemoteSession&) = delete;

  Monitor& monitor() { return *m_monitor; }
  // Serves the socket until the client goes away, `keep_going` (asked every 100 ms) says
  // no, or the session dies (timeout, malformed answer); then detaches the monitor and
  // releases waiting vCPUs.
  void serve(const std::function<bool()>& keep_going);
  bool dead() const { return m_dead.load(std::memory_order_acquire); }
  // Sends a line of the session's own (vigild's {"ready": true} once it is set up), with
  // `pass_fd` attached (SCM_RIGHTS) when it is not -1.
  bool send(const Json& line, int pass_fd = -1);
  // The shared-memory channel's fd to hand to the client (-1: none), and why it is missing
  // when Options::shm asked for one.
  int shm_fd() const { return m_channel ? m_channel->fd() : -1; }
  const std::string& shm_error() const { return m_shm_error; }
  // Why the session ended ("" while it runs).
  std::string end_reason();
  uint64_t lost() const { return m_lost.load(std::memory_order_relaxed); }

 private:
  struct Waiter {
    std::atomic<bool> done{false};
    Response response;
  };

  Response on_event(const Event& ev);  // vCPU threads
  // With the event posted in slot `ev.vcpu`: waits for its answer there (or over the socket).
  void wait_in_slot(const Event& ev, Waiter& w, std::chrono::steady_clock::time_point deadline);
  // With m_write_mutex held: sends what m_out holds, waiting for room until `deadline` when
  // `wait` is set (else only what fits now). False if something is left.
  bool flush_locked(bool wait, std::chrono::steady_clock::time_point deadline);
  // With m_read_mutex held: one read (blocking up to kIoSlice unless `dontwait`), then every
  // complete line handled. False at the end of the connection.
  bool read_some(bool dontwait);
  void handle_line(const std::string& line);
  void finish(std::string reason);

  Hub& m_hub;
  int m_fd;
  Options m_options;
  std::shared_ptr<Monitor> m_monitor;
  std::atomic<bool> m_dead{false};
  std::atomic<uint64_t> m_lost{0};
  uint64_t m_lost_reported = 0;                          // guarded by m_write_mutex
  std::string m_out;                                     // guarded by m_write_mutex: whole lines not sent yet
  std::chrono::steady_clock::time_point m_last_flush{};  // guarded by m_write_mutex
  size_t m_flush_at = kFlushBytes;                       // guarded by m_write_mutex: m_out size that triggers a flush
  uint32_t m_async_since_clock = 0;                      // guarded by m_write_mutex
  std::mutex m_write_mutex;                              // one line at a time from several vCPUs
  std::mutex m_read_mutex;  // one reader at a time: a waiting vCPU or the serving thread
  std::string m_read_buf;   // guarded by m_read_mutex
  std::mutex m_wait_mutex;
  std::condition_variable m_wait_cv;
  std::map<uint64_t, Waiter*> m_waiters;  // seq -> the vCPU waiting for it
  std::string m_end_reason;
  std::optional<shm::Channel> m_channel;
  std::string m_shm_error;
};

}  // namespace vigil::monitor
