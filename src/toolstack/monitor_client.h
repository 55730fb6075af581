// The client side of an out-of-process monitor session (toolstack/api_monitor.h): opens a
// session through vigild's control API, connects to its socket, reads events and answers
// them. Used by `vigil monitor|trace|protect`, the benchmarks and the Python module
// (python/vigil_introspect.cpp), which compiles this file alone: open() is inline so that
// only its users link api_call() (vigild's side of the control API).
#pragma once

#include <optional>
#include <string>

#include "base/error.h"
#include "monitor/json.h"
#include "toolstack/api.h"

namespace vigil::toolstack {

class MonitorClient {
 public:
  // Sends `request` (op monitor-open, filled in by the caller) and connects to the session.
  static Result<MonitorClient> open(const std::string& api_socket, Json request) {
    request["op"] = "monitor-open";
    auto answer = api_call(api_socket, request);
    if (!answer) return std::unexpected(answer.error());
    return attach(std::move(*answer));
  }
  // Connects to the session vigild's answer to monitor-open names (an {"ok": false} answer
  // is its error) and waits until vigild says the session is set up.
  static Result<MonitorClient> attach(Json opened);
  // Connects to a session socket by its abstract name (tests, benchmarks).
  static Result<MonitorClient> connect(const std::string& abstract_name);
  MonitorClient(MonitorClient&& other) noexcept;
  MonitorClient& operator=(MonitorClient&&) = delete;
  MonitorClient(const MonitorClient&) = delete;
  ~MonitorClient();

  // vigild's answer to monitor-open (session id, protected ranges, breakpoints).
  const Json& opened() const { return m_opened; }
  // The next event or command acknowledgement; an error when the session ended.
  Result<Json> next();
  // Whether next() can answer without waiting (a whole line is buffered).
  bool has_line() const { return m_buf.find('\n') != std::string::npos; }
  // Whether next() has something to read within `timeout_ms` (-1: waits as long as it takes).
  bool wait(int timeout_ms) const;
  // Answers the synchronous event `seq`.
  Result<void> answer(uint64_t seq, monitor::Action action, const Json& extra = Json::object());
  Result<void> send(const Json& line);

 private:
  explicit MonitorClient(int fd) : m_fd(fd) {}
  int m_fd = -1;
  std::string m_buf;
  Json m_opened;
};

}  // namespace vigil::toolstack
