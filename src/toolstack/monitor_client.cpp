// Client side of a monitor session (monitor_client.h).
#include "toolstack/monitor_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

namespace vigil::toolstack {

Result<MonitorClient> MonitorClient::connect(const std::string& name) {
  sockaddr_un addr{};
  if (name.size() + 1 > sizeof(addr.sun_path))
    return make_error("monitor socket name '{}' is too long", name);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return make_error("cannot create a socket: {}", std::strerror(errno));
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path + 1, name.data(), name.size());
  const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    const int e = errno;
    ::close(fd);
    return make_error("cannot connect to the monitor session '{}': {}", name, std::strerror(e));
  }
  return MonitorClient(fd);
}

Result<MonitorClient> MonitorClient::attach(Json opened) {
  if (!opened.value("ok", false))
    return make_error("{}", opened.value("error", "vigild refused the monitor"));
  auto client = connect(opened.value("socket", ""));
  if (!client) return std::unexpected(client.error());
  client->m_opened = std::move(opened);
  // vigild says when the subscriptions, rights and breakpoints are in place.
  auto ready = client->next();
  if (!ready) return std::unexpected(ready.error());
  if (!ready->value("ready", false)) return make_error("vigild did not confirm the monitor session");
  return client;
}

MonitorClient::MonitorClient(MonitorClient&& o) noexcept
    : m_fd(std::exchange(o.m_fd, -1)), m_buf(std::move(o.m_buf)), m_opened(std::move(o.m_opened)) {}

MonitorClient::~MonitorClient() {
  if (m_fd >= 0) ::close(m_fd);
}

bool MonitorClient::wait(int timeout_ms) const {
  if (has_line()) return true;
  pollfd p{m_fd, POLLIN, 0};
  int r;
  while ((r = ::poll(&p, 1, timeout_ms)) < 0 && errno == EINTR) {
  }
  return r != 0;  // an error or the end of the connection is for next() to report
}

Result<Json> MonitorClient::next() {
  char chunk[8192];
  size_t nl;
  while ((nl = m_buf.find('\n')) == std::string::npos) {
    const ssize_t n = ::recv(m_fd, chunk, sizeof(chunk), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return make_error("the monitor session ended (the domain went away, or vigild dropped it)");
    m_buf.append(chunk, static_cast<size_t>(n));
  }
  Json j = Json::parse(std::string_view(m_buf).substr(0, nl), nullptr, false);
  m_buf.erase(0, nl + 1);
  if (j.is_discarded() || !j.is_object()) return make_error("vigild sent a malformed event");
  return j;
}

Result<void> MonitorClient::send(const Json& line) {
  const std::string s = line.dump() + "\n";
  size_t done = 0;
  while (done < s.size()) {
    const ssize_t n = ::send(m_fd, s.data() + done, s.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return make_error("cannot answer the monitor session: {}", std::strerror(errno));
    done += static_cast<size_t>(n);
  }
  return {};
}

Result<void> MonitorClient::answer(uint64_t seq, monitor::Action action, const Json& extra) {
  Json j = extra;
  j["seq"] = seq;
  j["action"] = monitor::to_string(action);
  return send(j);
}

}  // namespace vigil::toolstack
