// Client side of a monitor session (monitor_client.h).
#include "toolstack/monitor_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
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
  if (auto r = client->await_ready(); !r) return std::unexpected(r.error());
  return client;
}

Result<void> MonitorClient::await_ready() {
  // vigild says when the subscriptions, rights and breakpoints are in place; events that
  // its subscriptions raised before that come first and are kept.
  std::deque<Json> early;
  for (;;) {
    auto line = next();
    if (!line) return std::unexpected(line.error());
    if (line->value("ready", false)) {
      if (line->value("transport", "socket") == "shm") {
        if (m_passed_fd < 0) return make_error("vigild offered shared memory but passed no file");
        auto channel = monitor::shm::Channel::map(std::exchange(m_passed_fd, -1));
        if (!channel) return std::unexpected(channel.error());
        m_slot_taken.assign(channel->slots(), 0);
        m_channel.emplace(std::move(*channel));
      }
      break;
    }
    if (!line->contains("seq")) return make_error("vigild did not confirm the monitor session");
    early.push_back(std::move(*line));
  }
  early.insert(early.end(), m_queue.begin(), m_queue.end());
  m_queue = std::move(early);
  return {};
}

MonitorClient::MonitorClient(MonitorClient&& o) noexcept
    : m_fd(std::exchange(o.m_fd, -1)),
      m_buf(std::move(o.m_buf)),
      m_received(o.m_received),
      m_passed_fd(std::exchange(o.m_passed_fd, -1)),
      m_eof(o.m_eof),
      m_queue(std::move(o.m_queue)),
      m_opened(std::move(o.m_opened)),
      m_channel(std::move(o.m_channel)),
      m_spin(o.m_spin),
      m_posted_seen(o.m_posted_seen),
      m_slot_taken(std::move(o.m_slot_taken)),
      m_answer_mutex(std::move(o.m_answer_mutex)),
      m_pending(std::move(o.m_pending)) {}

MonitorClient::~MonitorClient() {
  if (m_fd >= 0) ::close(m_fd);
  if (m_passed_fd >= 0) ::close(m_passed_fd);
}

ssize_t MonitorClient::receive(int flags) {
  char chunk[8192];
  iovec iov{chunk, sizeof(chunk)};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n;
  while ((n = ::recvmsg(m_fd, &msg, flags | MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR) {
  }
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); n >= 0 && c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      if (m_passed_fd >= 0) ::close(m_passed_fd);
      m_passed_fd = fd;
    }
  }
  if (n == 0) m_eof = true;
  if (n > 0) {
    m_buf.append(chunk, static_cast<size_t>(n));
    m_received += static_cast<uint64_t>(n);
  }
  return n;
}

std::optional<Json> MonitorClient::take_line() {
  size_t nl;
  while ((nl = m_buf.find('\n')) != std::string::npos) {
    if (nl == 0) {  // a nudge
      m_buf.erase(0, 1);
      continue;
    }
    Json j = Json::parse(std::string_view(m_buf).substr(0, nl), nullptr, false);
    m_buf.erase(0, nl + 1);
    return j.is_object() ? j : Json(Json::value_t::discarded);
  }
  return std::nullopt;
}

std::optional<Result<Json>> MonitorClient::pop() {
  std::optional<Json> j;
  if (!m_queue.empty()) {
    j = std::move(m_queue.front());
    m_queue.pop_front();
  } else {
    j = take_line();
  }
  if (!j) return std::nullopt;
  if (j->is_discarded()) return make_error("vigild sent a malformed event");
  return std::move(*j);
}

bool MonitorClient::take_posted() {
  auto& h = m_channel->header();
  const uint32_t posted = h.posted.load(std::memory_order_acquire);
  if (posted == m_posted_seen) return false;
  m_posted_seen = posted;
  std::vector<std::pair<uint64_t, uint32_t>> found;  // seq, slot
  for (uint32_t i = 0; i < m_channel->slots(); ++i) {
    const auto& s = m_channel->slot(i);
    if (s.state.load(std::memory_order_acquire) != monitor::shm::kPosted) continue;
    const uint64_t seq = s.seq.load(std::memory_order_relaxed);
    if (m_slot_taken[i] == seq + 1) continue;  // queued already, not answered yet
    m_slot_taken[i] = seq + 1;
    found.emplace_back(seq, i);
  }
  if (found.empty()) return false;
  // What vigild wrote to the socket before it posted these is theirs to precede.
  const uint64_t before = h.socket_bytes.load(std::memory_order_acquire);
  while (m_received < before && receive(0) > 0) {
  }
  while (auto line = take_line()) m_queue.push_back(std::move(*line));
  std::sort(found.begin(), found.end());
  for (const auto& [seq, i] : found) {
    Json ev = Json::parse(monitor::shm::read_text(m_channel->slot(i)), nullptr, false);
    if (ev.is_object() && ev.value("seq", uint64_t{0}) != seq) ev = Json(Json::value_t::discarded);
    {
      std::lock_guard lock(*m_answer_mutex);
      m_pending[seq] = i;
    }
    m_queue.push_back(std::move(ev));
  }
  return true;
}

bool MonitorClient::shm_activity() const {
  const auto& h = m_channel->header();
  return h.posted.load(std::memory_order_seq_cst) != m_posted_seen ||
         h.socket_bytes.load(std::memory_order_seq_cst) > m_received || h.closed.load(std::memory_order_seq_cst) != 0;
}

bool MonitorClient::shm_wait(int timeout_ms) {
  using Clock = std::chrono::steady_clock;
  const auto spin_until = Clock::now() + m_spin;
  for (uint32_t i = 1;; ++i) {
    if (shm_activity()) return true;
    if (i % 64 != 0) {
      monitor::shm::cpu_relax();
      continue;
    }
    if (Clock::now() >= spin_until) break;
  }
  // Dekker with vigild's vCPU: say we sleep, then look once more; it posts, then looks.
  auto& h = m_channel->header();
  h.client_sleeping.store(1, std::memory_order_seq_cst);
  bool ready = shm_activity();
  if (!ready) {
    const int r = poll_socket(timeout_ms);
    // Whatever woke poll() (a nudge, a line, the end of the connection) is read now, so
    // an end is seen even if vigild died without marking the channel closed.
    if (r > 0 && receive(MSG_DONTWAIT) < 0 && errno != EAGAIN && errno != EWOULDBLOCK) m_eof = true;
    ready = r != 0 || shm_activity();
  }
  h.client_sleeping.store(0, std::memory_order_relaxed);
  return ready;
}

int MonitorClient::poll_socket(int timeout_ms) const {
  pollfd p{m_fd, POLLIN, 0};
  int r;
  while ((r = ::poll(&p, 1, timeout_ms)) < 0 && errno == EINTR) {
  }
  return r;
}

bool MonitorClient::wait(int timeout_ms) {
  if (has_line() || m_eof) return true;
  if (m_channel) return shm_wait(timeout_ms);
  return poll_socket(timeout_ms) != 0;  // an error or the end of the connection is for next() to report
}

Result<Json> MonitorClient::next() {
  static const std::string kEnded = "the monitor session ended (the domain went away, or vigild dropped it)";
  for (;;) {
    if (auto j = pop()) return std::move(*j);
    if (m_eof) return make_error("{}", kEnded);
    if (!m_channel) {
      if (receive(0) < 0) return make_error("{}", kEnded);
      continue;
    }
    if (take_posted()) continue;
    const auto& h = m_channel->header();
    if (h.socket_bytes.load(std::memory_order_acquire) > m_received || h.closed.load(std::memory_order_acquire)) {
      // Lines are waiting (or the session is over and the socket is about to close).
      if (receive(0) < 0) return make_error("{}", kEnded);
      continue;
    }
    shm_wait(-1);
  }
}

Result<void> MonitorClient::send(const Json& line) {
  if (m_channel) {
    // An answer to an event that came through a slot goes back through that slot.
    if (auto seq = line.find("seq"); seq != line.end() && seq->is_number_unsigned()) {
      std::optional<uint32_t> slot;
      {
        std::lock_guard lock(*m_answer_mutex);
        if (auto it = m_pending.find(seq->get<uint64_t>()); it != m_pending.end()) {
          slot = it->second;
          m_pending.erase(it);
        }
      }
      if (slot && m_channel->answer(*slot, line.dump())) return {};
    }
  }
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
