// The out-of-process monitor transport (remote.h).
#include "monitor/remote.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

namespace vigil::monitor {

namespace {
using Clock = std::chrono::steady_clock;
// Lines longer than this end the session (the longest legitimate answer is a few hundred bytes).
constexpr size_t kMaxLine = 64 * 1024;
}  // namespace

std::shared_ptr<RemoteSession> RemoteSession::start(Hub& hub, int fd, std::string name, Options options) {
  auto s = std::make_shared<RemoteSession>(hub, fd, std::move(options));
  std::weak_ptr<RemoteSession> weak = s;
  s->m_monitor = hub.attach(std::move(name), [weak](const Event& ev) {
    if (auto session = weak.lock()) return session->on_event(ev);
    return Response{};
  });
  return s;
}

RemoteSession::RemoteSession(Hub& hub, int fd, Options options)
    : m_hub(hub), m_fd(fd), m_options(std::move(options)) {
  // Blocking I/O in bounded slices: waiting vCPUs sleep in read() and are woken by the
  // answer itself. Asynchronous events are sent with MSG_DONTWAIT and never block.
  const int flags = ::fcntl(m_fd, F_GETFL);
  if (flags >= 0 && (flags & O_NONBLOCK)) ::fcntl(m_fd, F_SETFL, flags & ~O_NONBLOCK);
  const timeval slice{0, std::chrono::duration_cast<std::chrono::microseconds>(kIoSlice).count()};
  ::setsockopt(m_fd, SOL_SOCKET, SO_RCVTIMEO, &slice, sizeof(slice));
  ::setsockopt(m_fd, SOL_SOCKET, SO_SNDTIMEO, &slice, sizeof(slice));
  if (m_options.shm) {
    auto channel = shm::Channel::create(hub.vcpu_count());
    if (channel)
      m_channel.emplace(std::move(*channel));
    else
      m_shm_error = channel.error().message;
  }
}

RemoteSession::~RemoteSession() {
  finish("session closed");
  ::close(m_fd);
}

std::string RemoteSession::end_reason() {
  std::lock_guard lock(m_wait_mutex);
  return m_end_reason;
}

void RemoteSession::finish(std::string reason) {
  {
    std::lock_guard lock(m_wait_mutex);
    if (m_dead.exchange(true, std::memory_order_acq_rel)) return;
    m_end_reason = std::move(reason);
  }
  m_wait_cv.notify_all();
  if (m_channel) {
    // A polling client notices at once; vCPUs asleep on their slot wake up and leave.
    m_channel->header().closed.store(1, std::memory_order_seq_cst);
    for (uint32_t i = 0; i < m_channel->slots(); ++i) shm::futex_wake(m_channel->slot(i).state);
  }
  if (m_monitor) m_monitor->detach();
}

bool RemoteSession::flush_locked(bool wait, Clock::time_point deadline) {
  size_t done = 0;
  while (done < m_out.size()) {
    const ssize_t n =
        wait ? ::write(m_fd, m_out.data() + done, m_out.size() - done)
             : ::send(m_fd, m_out.data() + done, m_out.size() - done, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      done += static_cast<size_t>(n);
      if (m_channel) m_channel->header().socket_bytes.fetch_add(static_cast<uint64_t>(n), std::memory_order_release);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (wait && Clock::now() < deadline && !dead()) continue;  // write() waited kIoSlice: again
      break;
    }
    const int e = errno;
    m_out.erase(0, done);
    finish(e == EPIPE || e == ECONNRESET
               ? std::string("the monitor closed its connection")
               : fmt::format("writing to the monitor failed: {}", std::strerror(e)));
    return false;
  }
  m_out.erase(0, done);
  m_last_flush = Clock::now();
  // A monitor that does not keep up leaves its socket full: try again only after another
  // kFlushBytes or kFlushInterval, not on every event (each try is a system call and a move
  // of what is buffered).
  m_flush_at = m_out.size() + kFlushBytes;
  return m_out.empty();
}

bool RemoteSession::read_some(bool dontwait) {
  char chunk[4096];
  const ssize_t n =
      dontwait ? ::recv(m_fd, chunk, sizeof(chunk), MSG_DONTWAIT) : ::read(m_fd, chunk, sizeof(chunk));
  if (n == 0) {
    finish("the monitor closed its connection");
    return false;
  }
  if (n < 0) {
    if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) return true;
    finish(fmt::format("reading from the monitor failed: {}", std::strerror(errno)));
    return false;
  }
  m_read_buf.append(chunk, static_cast<size_t>(n));
  size_t nl;
  while ((nl = m_read_buf.find('\n')) != std::string::npos && !dead()) {
    const std::string line = m_read_buf.substr(0, nl);
    m_read_buf.erase(0, nl + 1);
    handle_line(line);
  }
  if (m_read_buf.size() > kMaxLine) finish("the monitor sent an over-long line");
  return !dead();
}

bool RemoteSession::send(const Json& line, int pass_fd) {
  std::lock_guard lock(m_write_mutex);
  const auto deadline = Clock::now() + m_options.timeout;
  if (pass_fd >= 0) {
    // What is buffered goes first; the fd rides on the first byte of this line.
    if (!flush_locked(true, deadline)) return false;
    std::string text = line.dump() + "\n";
    iovec iov{text.data(), text.size()};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))]{};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
    ssize_t n;
    while ((n = ::sendmsg(m_fd, &msg, MSG_NOSIGNAL)) < 0 && errno == EINTR) {
    }
    if (n <= 0) {
      finish(fmt::format("writing to the monitor failed: {}", std::strerror(errno)));
      return false;
    }
    if (m_channel) m_channel->header().socket_bytes.fetch_add(static_cast<uint64_t>(n), std::memory_order_release);
    m_out.insert(0, text.substr(static_cast<size_t>(n)));
    return flush_locked(true, deadline);
  }
  m_out += line.dump() + "\n";
  return flush_locked(true, deadline);
}

Response RemoteSession::on_event(const Event& ev) {
  if (dead()) return {};
  std::string extra;
  if (m_options.annotate) m_options.annotate(ev, extra);
  // Reading the clock is a noticeable part of an asynchronous event: only synchronous ones
  // (which wait) and every 32nd asynchronous one (the flush interval) do.
  const auto deadline = ev.sync ? Clock::now() + m_options.timeout : Clock::time_point{};
  Waiter w;
  if (ev.sync) {
    std::lock_guard lock(m_wait_mutex);
    m_waiters[ev.seq] = &w;
  }
  bool sent = false;
  bool in_slot = ev.sync && m_channel && ev.vcpu < m_channel->slots();
  {
    std::lock_guard lock(m_write_mutex);
    if (!ev.sync && m_out.size() >= kMaxBuffered) {
      m_lost.fetch_add(1, std::memory_order_relaxed);
      return {};
    }
    const uint64_t lost = m_lost.load(std::memory_order_relaxed);
    if (lost != m_lost_reported) extra += fmt::format(R"(,"lost":{})", lost);
    m_lost_reported = lost;
    std::string text;
    if (!in_slot) {
      append_event_line(ev, extra, m_out);
    } else if (append_event_line(ev, extra, text); text.size() > shm::kTextCapacity) {
      in_slot = false;  // over the socket, as any other line
      m_out += text;
    }
    if (in_slot) {
      // Lines written before the event are read before it: the client drains the socket up
      // to socket_bytes before it takes a posted event.
      if (m_out.empty() || flush_locked(true, deadline)) {
        m_channel->post(ev.vcpu, ev.seq, text);
        sent = true;
        if (m_channel->header().client_sleeping.load(std::memory_order_seq_cst)) {
          m_out += "\n";  // the nudge: an empty line wakes a client sleeping in poll()
          flush_locked(false, deadline);
        }
      }
    } else {
      if (ev.sync) {
        sent = flush_locked(true, deadline);
      } else if (m_out.size() >= m_flush_at ||
                 (++m_async_since_clock % 32 == 0 && Clock::now() - m_last_flush >= kFlushInterval)) {
        flush_locked(false, deadline);
      }
    }
  }
  if (!ev.sync) return {};
  if (in_slot && sent) {
    wait_in_slot(ev, w, deadline);
  }
  // Wait for the answer: read it ourselves when no other thread is reading (the usual case:
  // one wake-up, by the answer itself), else let the reader hand it over. A monitor that
  // answers at once (one polling its socket) is caught by polling for a short while first,
  // which saves the wake-up of this thread (most of a round trip on a virtualized host).
  if (sent && !in_slot && m_options.spin.count() > 0) {
    const auto spin_until = Clock::now() + m_options.spin;
    std::unique_lock reader(m_read_mutex, std::try_to_lock);
    while (reader.owns_lock() && !w.done.load(std::memory_order_acquire) && !dead() && Clock::now() < spin_until) {
      read_some(true);
    }
  }
  while (sent && !w.done.load(std::memory_order_acquire) && !dead() && Clock::now() < deadline) {
    std::unique_lock reader(m_read_mutex, std::try_to_lock);
    if (reader.owns_lock()) {
      read_some(false);
      continue;
    }
    std::unique_lock lock(m_wait_mutex);
    m_wait_cv.wait_for(lock, std::chrono::milliseconds(1),
                       [&] { return w.done.load(std::memory_order_acquire) || dead(); });
  }
  bool answered;
  {
    std::lock_guard lock(m_wait_mutex);
    m_waiters.erase(ev.seq);
    answered = w.done.load(std::memory_order_acquire);
  }
  if (!answered) {
    finish(sent ? fmt::format("no answer to event {} within {} ms", ev.seq, m_options.timeout.count())
                : "cannot send events to the monitor");
    return {};
  }
  return w.response;
}

void RemoteSession::wait_in_slot(const Event& ev, Waiter& w, Clock::time_point deadline) {
  shm::Slot& slot = m_channel->slot(ev.vcpu);
  const auto spin_until = Clock::now() + m_options.spin;
  uint32_t state = shm::kPosted;
  // Polls the slot's state word (and, for a client that answered over the socket, the
  // waiter); after `spin`, sleeps on the word in 1 ms slices so a dead session or a
  // deadline is noticed.
  for (uint32_t i = 1;; ++i) {
    state = slot.state.load(std::memory_order_acquire);
    if (state != shm::kPosted || w.done.load(std::memory_order_acquire) || dead()) break;
    if (i % 64 != 0) {
      shm::cpu_relax();
      continue;
    }
    const auto now = Clock::now();
    if (now >= deadline) break;
    if (now < spin_until) continue;
    slot.vcpu_sleeping.store(1, std::memory_order_seq_cst);
    if (slot.state.load(std::memory_order_seq_cst) == shm::kPosted)
      shm::futex_wait(slot.state, shm::kPosted, std::chrono::milliseconds(1));
    slot.vcpu_sleeping.store(0, std::memory_order_relaxed);
  }
  if (state == shm::kPosted) return;  // the caller reports the timeout or the session's end
  if (state != shm::kAnswered)
    return finish(fmt::format("the monitor corrupted its shared memory (slot {} state {})", ev.vcpu, state));
  // The client's bytes: copied out before they are parsed, so it cannot change them midway.
  const std::string text = shm::read_text(slot);
  slot.state.store(shm::kIdle, std::memory_order_release);
  const Json j = Json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return finish("the monitor answered with something that is not a JSON object");
  auto r = response_from_json(j);
  auto seq = number_from_json(j.value("seq", Json()), "seq");
  if (!r || !seq)
    return finish(fmt::format("malformed answer: {}", !r ? r.error().message : seq.error().message));
  if (*seq != ev.seq)
    return finish(fmt::format("the monitor answered event {} in the slot of event {}", *seq, ev.seq));
  std::lock_guard lock(m_wait_mutex);
  w.response = std::move(*r);
  w.done.store(true, std::memory_order_release);
}

void RemoteSession::handle_line(const std::string& line) {
  const Json j = Json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return finish("the monitor sent a line that is not a JSON object");
  if (auto seq = j.find("seq"); seq != j.end()) {
    auto r = response_from_json(j);
    auto n = number_from_json(*seq, "seq");
    if (!r || !n)
      return finish(fmt::format("malformed answer: {}", !r ? r.error().message : n.error().message));
    {
      std::lock_guard lock(m_wait_mutex);
      auto it = m_waiters.find(*n);
      if (it == m_waiters.end()) return;  // late (the vCPU gave up) or for an asynchronous event
      it->second->response = std::move(*r);
      it->second->done.store(true, std::memory_order_release);
    }
    m_wait_cv.notify_all();
    return;
  }
  auto cmd_it = j.find("cmd");
  if (cmd_it == j.end() || !cmd_it->is_string())
    return finish("the monitor sent neither an answer nor a command");
  const std::string cmd = cmd_it->get<std::string>();
  Json ack = {{"ack", cmd}, {"ok", true}};
  auto fail = [&](const std::string& why) {
    ack["ok"] = false;
    ack["error"] = why;
  };
  auto num = [&](const char* key) -> std::optional<uint64_t> {
    auto it = j.find(key);
    if (it == j.end()) return std::nullopt;
    auto v = number_from_json(*it, key);
    return v ? std::optional<uint64_t>(*v) : std::nullopt;
  };
  Monitor& m = *m_monitor;
  if (cmd == "subscribe") {
    auto s = subscription_from_json(j.value("subscription", Json::object()));
    if (s)
      m.subscribe(*s);
    else
      fail(s.error().message);
  } else if (cmd == "unsubscribe") {
    auto t = event_type_from(j.value("type", ""));
    if (t)
      m.unsubscribe(*t);
    else
      fail("unknown event type");
  } else if (cmd == "rights") {
    auto gpa = num("gpa"), len = num("length");
    auto r = rights_from_string(j.value("rights", "rwx"));
    if (!gpa || !len || !r || !m.set_rights(*gpa, *len, *r))
      fail("rights needs gpa and length inside guest RAM and rights like \"r-x\"");
  } else if (cmd == "breakpoint") {
    auto gpa = num("gpa");
    if (!gpa)
      fail("breakpoint needs gpa");
    else if (j.value("remove", false))
      m.remove_breakpoint(*gpa);
    else if (!m.add_breakpoint(*gpa, num("gva").value_or(0)))
      fail("no guest RAM at that gpa (or it is odd)");
  } else if (cmd == "singlestep") {
    auto v = num("vcpu");
    if (!v || *v >= m_hub.vcpu_count())
      fail("singlestep needs a vcpu number");
    else
      m.set_single_step(static_cast<uint32_t>(*v), j.value("on", true));
  } else {
    fail(fmt::format("unknown command \"{}\"", cmd));
  }
  send(ack);
}

void RemoteSession::serve(const std::function<bool()>& keep_going) {
  while (!dead() && keep_going()) {
    pollfd p{m_fd, POLLIN, 0};
    const int r = ::poll(&p, 1, 10);
    if (r < 0 && errno != EINTR) break;
    {
      // Asynchronous events a quiet vCPU left in the buffer go out from here.
      std::lock_guard lock(m_write_mutex);
      if (!m_out.empty()) flush_locked(false, Clock::now());
    }
    if (r <= 0) continue;
    std::unique_lock reader(m_read_mutex, std::try_to_lock);
    if (!reader.owns_lock()) {
      // A vCPU is reading (its answer is on the way): let it.
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      continue;
    }
    if (!read_some(true)) break;
  }
  finish("the session was closed (its domain went away or vigild is stopping)");
  // A client asleep in poll() sees the end of the connection now, not when the last
  // reference to the session goes (what it has not read stays readable). Here, not in
  // finish(): vCPU threads may not shut sockets down.
  ::shutdown(m_fd, SHUT_RDWR);
}

}  // namespace vigil::monitor
