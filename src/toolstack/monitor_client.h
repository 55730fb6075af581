// The client side of an out-of-process monitor session (toolstack/api_monitor.h): opens a
// session through vigild's control API, connects to its socket, reads events and answers
// them. Used by `vigil monitor|trace|protect`, the benchmarks and the Python module
// (python/vigil_introspect.cpp), which compiles this file alone: open() is inline so that
// only its users link api_call() (vigild's side of the control API).
//
// Transport: open() asks for the shared-memory channel (monitor/shm_channel.h) unless the
// request names "transport": synchronous events then arrive in a slot per vCPU and answers
// go back there, while acknowledgements and asynchronous events stay on the socket. next()
// and wait() poll both for `spin` after the last thing they saw before they sleep in poll()
// on the socket (vigild nudges a sleeping client with an empty line). One thread may call
// next()/wait() while another calls answer()/send().
#pragma once

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "monitor/json.h"
#include "monitor/shm_channel.h"
#include "toolstack/api.h"

namespace vigil::toolstack {

class MonitorClient {
 public:
  // Sends `request` (op monitor-open, filled in by the caller) and connects to the session.
  static constexpr auto kDefaultSpin = std::chrono::microseconds(200);

  static Result<MonitorClient> open(const std::string& api_socket, Json request) {
    request["op"] = "monitor-open";
    if (!request.contains("transport")) request["transport"] = "shm";
    auto answer = api_call(api_socket, request);
    if (!answer) return std::unexpected(answer.error());
    return attach(std::move(*answer));
  }
  // Connects to the session vigild's answer to monitor-open names (an {"ok": false} answer
  // is its error) and waits until vigild says the session is set up.
  static Result<MonitorClient> attach(Json opened);
  // Connects to a session socket by its abstract name (tests, benchmarks); then
  // await_ready() reads up to vigild's "ready" line and maps the channel it passes.
  static Result<MonitorClient> connect(const std::string& abstract_name);
  Result<void> await_ready();
  MonitorClient(MonitorClient&& other) noexcept;
  MonitorClient& operator=(MonitorClient&&) = delete;
  MonitorClient(const MonitorClient&) = delete;
  ~MonitorClient();

  // vigild's answer to monitor-open (session id, protected ranges, breakpoints).
  const Json& opened() const { return m_opened; }
  // The next event or command acknowledgement; an error when the session ended.
  Result<Json> next();
  // Whether next() can answer without waiting (a whole line or event is buffered).
  bool has_line() const { return !m_queue.empty() || m_buf.find('\n') != std::string::npos; }
  // Whether next() has something to read within `timeout_ms` (-1: waits as long as it takes).
  bool wait(int timeout_ms);
  // "shm" or "socket": how synchronous events arrive.
  std::string transport() const { return m_channel ? "shm" : "socket"; }
  // How long next() and wait() poll before they sleep (shared-memory transport only).
  void set_spin(std::chrono::microseconds spin) { m_spin = spin; }
  // Answers the synchronous event `seq`.
  Result<void> answer(uint64_t seq, monitor::Action action, const Json& extra = Json::object());
  Result<void> send(const Json& line);

 private:
  explicit MonitorClient(int fd) : m_fd(fd), m_answer_mutex(std::make_unique<std::mutex>()) {}
  // One recvmsg (flags: 0 or MSG_DONTWAIT) into m_buf; keeps an fd passed with it.
  ssize_t receive(int flags);
  // The next whole line of m_buf, parsed (discarded if it is not a JSON object); empty
  // lines, vigild's nudges, are skipped.
  std::optional<Json> take_line();
  // A queued event or else a whole line, if there is one.
  std::optional<Result<Json>> pop();
  // poll() for input on the socket, retried on EINTR.
  int poll_socket(int timeout_ms) const;
  // Queues events newly posted in the shared slots, after the socket lines written before
  // them. False if there were none.
  bool take_posted();
  // Something new in shared memory or on the socket since this client last looked.
  bool shm_activity() const;
  // Polls shared memory for m_spin, then sleeps in poll() on the socket up to `timeout_ms`.
  // True if there may be something to read.
  bool shm_wait(int timeout_ms);

  int m_fd = -1;
  std::string m_buf;
  uint64_t m_received = 0;  // bytes read from the socket
  int m_passed_fd = -1;     // the last fd vigild passed (the channel's memfd)
  bool m_eof = false;
  std::deque<Json> m_queue;  // parsed, in order, before m_buf
  Json m_opened;
  std::optional<monitor::shm::Channel> m_channel;
  std::chrono::microseconds m_spin = kDefaultSpin;
  uint32_t m_posted_seen = 0;
  std::vector<uint64_t> m_slot_taken;              // per slot: 1 + seq of the event last queued
  std::unique_ptr<std::mutex> m_answer_mutex;      // m_pending: next() adds, answer() removes
  std::map<uint64_t, uint32_t> m_pending;          // seq -> slot of events to answer in place
};

}  // namespace vigil::toolstack
