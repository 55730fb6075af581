#include "toolstack/api.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "base/sandbox.h"
#include "toolstack/api_introspect.h"
#include "toolstack/api_gdb.h"
#include "toolstack/api_monitor.h"
#include "toolstack/api_vtpm.h"
#include "toolstack/api_snapshot.h"
#include "toolstack/api_migrate.h"
#include "toolstack/api_psr.h"
#include "toolstack/xl_config.h"

namespace vigil::toolstack {

namespace {

constexpr unsigned char kDetachKey = 0x1d;  // Ctrl-], as xl console

bool send_all(int fd, const void* data, size_t len, bool nonblocking = false) {
  auto p = static_cast<const uint8_t*>(data);
  while (len > 0) {
    const ssize_t n = ::send(fd, p, len, MSG_NOSIGNAL | (nonblocking ? MSG_DONTWAIT : 0));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

bool send_line(int fd, const Json& j) {
  // Strings may quote guest or file bytes (a config's key in an error message): bytes
  // that are not UTF-8 become U+FFFD instead of throwing out of the client thread.
  const std::string s = j.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
  return send_all(fd, s.data(), s.size());
}

Result<std::string> domain_key(const Json& req) {
  auto it = req.find("domain");
  if (it == req.end() || it->is_null()) return make_error("missing \"domain\": a name or an id");
  if (it->is_string()) return it->get<std::string>();
  if (it->is_number_unsigned()) return std::to_string(it->get<uint64_t>());
  return make_error("\"domain\" must be a name or an id");
}

Json domain_json(const hv::DomainInfo& i) {
  return Json{{"id", i.id},          {"name", i.name},
              {"memory_mib", i.memory_mib}, {"vcpus", i.vcpus},
              {"state", hv::to_string(i.state)}, {"cpu_seconds", i.cpu_seconds},
              {"stop_reason", i.stop_reason}};
}

Json domain_json_with_migration(const hv::DomainInfo& i) {
  Json j = domain_json(i);
  if (auto mj = migration_json(i.id)) j["migration"] = *mj;
  return j;
}

// Runs `fn(id)` for a request naming a domain.
template <typename Fn>
Json with_domain(hv::DomainManager& m, const Json& req, Fn fn) {
  auto id = request_domain(m, req);
  if (!id) return error_json(id.error().message);
  return fn(*id);
}

Json result_json(const Result<void>& r) { return r ? Json{{"ok", true}} : error_json(r.error().message); }

Result<std::optional<unsigned>> optional_uint(const Json& req, const char* key) {
  auto it = req.find(key);
  if (it == req.end() || it->is_null()) return std::optional<unsigned>{};
  if (!it->is_number_unsigned() || it->get<uint64_t>() > 1'000'000) return make_error("\"{}\" must be a small non-negative integer", key);
  return std::optional<unsigned>{static_cast<unsigned>(it->get<uint64_t>())};
}

}  // namespace

Json error_json(const std::string& message) { return Json{{"ok", false}, {"error", message}}; }

Result<uint32_t> request_domain(hv::DomainManager& m, const Json& req) {
  auto key = domain_key(req);
  if (!key) return std::unexpected(key.error());
  return m.lookup(*key);
}

Result<std::optional<uint32_t>> request_optional_domain(hv::DomainManager& m, const Json& req) {
  auto it = req.find("domain");
  if (it == req.end() || it->is_null()) return std::optional<uint32_t>{};
  auto id = request_domain(m, req);
  if (!id) return std::unexpected(id.error());
  return std::optional<uint32_t>{*id};
}

Json handle_request(hv::DomainManager& m, const Json& req) {
  if (!req.is_object()) return error_json("a request must be a JSON object");
  auto op_it = req.find("op");
  if (op_it == req.end() || !op_it->is_string()) return error_json("a request needs an \"op\" string");
  const std::string op = op_it->get<std::string>();

  if (op == "list") {
    Json doms = Json::array();
    for (const auto& i : m.list()) doms.push_back(domain_json_with_migration(i));
    return Json{{"ok", true}, {"domains", doms}};
  }
  if (op == "create") {
    auto it = req.find("config");
    if (it == req.end() || !it->is_string()) return error_json("create needs \"config\": the path of an xl.cfg file");
    auto config = load_xl_config(it->get<std::string>());
    if (!config) return error_json(config.error().message);
    auto id = m.create(*config);
    if (!id) return error_json(id.error().message);
    return Json{{"ok", true}, {"id", *id}, {"name", config->name}};
  }
  if (op == "pause") return with_domain(m, req, [&](uint32_t id) { return result_json(m.pause(id)); });
  if (op == "unpause") return with_domain(m, req, [&](uint32_t id) { return result_json(m.unpause(id)); });
  if (op == "shutdown") return with_domain(m, req, [&](uint32_t id) { return result_json(m.shutdown(id)); });
  if (op == "reboot") return with_domain(m, req, [&](uint32_t id) { return result_json(m.reboot(id)); });
  if (op == "destroy") return with_domain(m, req, [&](uint32_t id) { return result_json(m.destroy(id)); });
  if (op == "vcpu-list") {
    return with_domain(m, req, [&](uint32_t id) {
      auto l = m.vcpu_list(id);
      if (!l) return error_json(l.error().message);
      Json vcpus = Json::array();
      auto dom = m.get(id);
      for (const auto& v : *l) {
        Json j{{"vcpu", v.vcpu}, {"worker", v.worker}, {"state", v.state},
               {"cpu_seconds", v.cpu_seconds}, {"affinity", v.affinity},
               {"translated_blocks", v.translated_blocks}};
        // Why a vCPU sleeps: its timer compares against the guest clock, pending interrupts,
        // and when the scheduler will next look at it (null: no timer armed).
        j["wake_in_seconds"] = v.has_wake ? Json(v.wake_in_seconds) : Json(nullptr);
        if (dom && v.vcpu < dom->machine().hart_count()) {
          riscv::Hart& h = dom->machine().hart(v.vcpu);
          j["timer"] = {{"mtime", dom->machine().mtime()}, {"mtimecmp", h.mtimecmp.load()},
                        {"stimecmp", h.stimecmp.load()}, {"mip", h.mip()}};
        }
        vcpus.push_back(std::move(j));
      }
      return Json{{"ok", true}, {"id", id}, {"vcpus", vcpus}};
    });
  }
  if (op == "vcpu-pin") {
    return with_domain(m, req, [&](uint32_t id) {
      auto vcpu = req.find("vcpu");
      auto cpus = req.find("cpus");
      if (vcpu == req.end() || !vcpu->is_number_unsigned()) return error_json("vcpu-pin needs \"vcpu\"");
      if (cpus == req.end() || !cpus->is_array()) return error_json("vcpu-pin needs \"cpus\" (a list)");
      std::vector<unsigned> list;
      for (const auto& c : *cpus) {
        if (!c.is_number_unsigned() || c.get<uint64_t>() > 1024) return error_json("\"cpus\" must hold CPU numbers");
        list.push_back(c.get<unsigned>());
      }
      const uint64_t v = vcpu->get<uint64_t>();
      if (v > 1024) return error_json("no such vCPU");
      return result_json(m.vcpu_pin(id, static_cast<unsigned>(v), list));
    });
  }
  if (op == "sched-credit") {
    return with_domain(m, req, [&](uint32_t id) {
      auto weight = optional_uint(req, "weight");
      auto cap = optional_uint(req, "cap");
      if (!weight) return error_json(weight.error().message);
      if (!cap) return error_json(cap.error().message);
      if (*weight || *cap) {
        if (auto r = m.set_sched_credit(id, *weight, *cap); !r) return error_json(r.error().message);
      }
      auto p = m.sched_credit(id);
      if (!p) return error_json(p.error().message);
      return Json{{"ok", true}, {"id", id}, {"weight", p->weight}, {"cap", p->cap}};
    });
  }
  if (auto answer = handle_introspect_request(m, op, req)) return *answer;
  if (auto answer = handle_monitor_request(m, op, req)) return *answer;
  if (auto answer = handle_gdb_request(m, op, req)) return *answer;
  if (auto answer = handle_vtpm_request(m, op, req)) return *answer;
  if (auto answer = handle_snapshot_request(m, op, req)) return *answer;
  if (auto answer = handle_migrate_request(m, op, req)) return *answer;
  if (auto answer = handle_psr_request(m, op, req)) return *answer;
  return error_json(fmt::format("unknown op \"{}\"", op));
}

Json handle_request_line(hv::DomainManager& m, std::string_view line) {
  Json req = Json::parse(line, nullptr, false);
  if (req.is_discarded()) return error_json("the request is not valid JSON");
  try {
    return handle_request(m, req);
  } catch (const std::exception& e) {
    // nlohmann throws on type mismatches the checks above did not foresee.
    return error_json(fmt::format("bad request: {}", e.what()));
  }
}

// ---------------------------------------------------------------------------------------
// Server

ApiServer::ApiServer(hv::DomainManager& manager, std::string socket_path)
    : m_manager(manager), m_path(std::move(socket_path)) {}

ApiServer::~ApiServer() { stop(); }

Result<void> ApiServer::start() {
  sockaddr_un addr{};
  if (m_path.size() >= sizeof(addr.sun_path)) return make_error("socket path '{}' is too long", m_path);
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(m_path).parent_path(), ec);
  ::unlink(m_path.c_str());
  m_listen_fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (m_listen_fd < 0) return make_error("cannot create a socket: {}", std::strerror(errno));
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, m_path.c_str(), m_path.size() + 1);
  // Created with mode 0600: only the owner (and root) may connect.
  const mode_t old = ::umask(0177);
  const int rc = ::bind(m_listen_fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  ::umask(old);
  if (rc != 0) return make_error("cannot bind '{}': {}", m_path, std::strerror(errno));
  ::chmod(m_path.c_str(), 0600);
  if (::listen(m_listen_fd, 16) != 0) return make_error("cannot listen on '{}': {}", m_path, std::strerror(errno));
  m_acceptor = std::thread([this] { accept_loop(); });
  return {};
}

void ApiServer::stop() {
  if (m_stopping.exchange(true)) return;
  if (m_listen_fd >= 0) ::shutdown(m_listen_fd, SHUT_RDWR);
  {
    std::lock_guard lock(m_clients_mutex);
    for (int fd : m_client_fds) ::shutdown(fd, SHUT_RDWR);
  }
  if (m_acceptor.joinable()) m_acceptor.join();
  while (m_clients.load() != 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (m_listen_fd >= 0) ::close(m_listen_fd);
  ::unlink(m_path.c_str());
}

void ApiServer::accept_loop() {
  sandbox::restrict_thread_or_abort(sandbox::ThreadClass::kApi);
  while (!m_stopping) {
    pollfd p{m_listen_fd, POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;
    const int fd = ::accept4(m_listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    ucred cred{};
    socklen_t len = sizeof(cred);
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || (cred.uid != 0 && cred.uid != ::geteuid())) {
      send_line(fd, error_json("permission denied"));
      ::close(fd);
      continue;
    }
    if (m_clients.load() >= kMaxClients) {
      send_line(fd, error_json("too many clients"));
      ::close(fd);
      continue;
    }
    ++m_clients;
    {
      std::lock_guard lock(m_clients_mutex);
      m_client_fds.insert(fd);
    }
    std::thread([this, fd] {
      serve(fd);
      {
        std::lock_guard lock(m_clients_mutex);
        m_client_fds.erase(fd);
      }
      ::close(fd);
      --m_clients;
    }).detach();
  }
}

void ApiServer::serve(int fd) {
  std::string buf;
  char chunk[4096];
  while (!m_stopping) {
    size_t nl;
    while ((nl = buf.find('\n')) != std::string::npos) {
      const std::string line = buf.substr(0, nl);
      buf.erase(0, nl + 1);
      Json req = Json::parse(line, nullptr, false);
      const auto op = req.is_object() ? req.find("op") : req.end();
      if (op != req.end() && op->is_string() && op->get<std::string>() == "console") {
        auto key = domain_key(req);
        if (!key) {
          send_line(fd, error_json(key.error().message));
          continue;
        }
        serve_console(fd, *key);
        return;
      }
      if (!send_line(fd, handle_request_line(m_manager, line))) return;
    }
    if (buf.size() > kMaxRequestBytes) {
      send_line(fd, error_json(fmt::format("request longer than {} bytes", kMaxRequestBytes)));
      return;
    }
    const ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the client went away: nothing else is affected
    buf.append(chunk, static_cast<size_t>(n));
  }
}

void ApiServer::serve_console(int fd, const std::string& key) {
  auto id = m_manager.lookup(key);
  if (!id) {
    send_line(fd, error_json(id.error().message));
    return;
  }
  auto dom = m_manager.get(*id);
  if (!dom) {
    send_line(fd, error_json("the domain went away"));
    return;
  }
  send_line(fd, Json{{"ok", true}, {"id", *id}});
  const std::string history = dom->console_history();
  send_all(fd, history.data(), history.size());
  // Output is sent without blocking: a slow console client loses output, the guest never stalls.
  const uint64_t token = dom->add_console_listener([fd](const uint8_t* d, size_t n) { send_all(fd, d, n, true); });
  uint8_t in[256];
  while (!m_stopping && m_manager.get(*id) == dom) {
    pollfd p{fd, POLLIN, 0};
    const int r = ::poll(&p, 1, 200);
    if (r < 0 && errno != EINTR) break;
    if (r <= 0) continue;
    const ssize_t n = ::recv(fd, in, sizeof(in), 0);
    if (n <= 0) break;
    dom->console_input(in, static_cast<size_t>(n));
  }
  dom->remove_console_listener(token);
}

// ---------------------------------------------------------------------------------------
// Client

namespace {
Result<int> connect_to(const std::string& path) {
  sockaddr_un addr{};
  if (path.size() >= sizeof(addr.sun_path)) return make_error("socket path '{}' is too long", path);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return make_error("cannot create a socket: {}", std::strerror(errno));
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    const int e = errno;
    ::close(fd);
    return make_error("cannot reach vigild at '{}': {} (is vigild running?)", path, std::strerror(e));
  }
  return fd;
}

Result<Json> read_response(int fd, std::string& rest) {
  char chunk[4096];
  size_t nl;
  while ((nl = rest.find('\n')) == std::string::npos) {
    const ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return make_error("vigild closed the connection without answering");
    rest.append(chunk, static_cast<size_t>(n));
  }
  Json j = Json::parse(rest.substr(0, nl), nullptr, false);
  rest.erase(0, nl + 1);
  if (j.is_discarded() || !j.is_object()) return make_error("vigild sent a malformed answer");
  return j;
}
}  // namespace

Result<Json> api_request(const std::string& socket_path, const Json& request) {
  auto r = api_call(socket_path, request);
  if (!r) return r;
  if (!r->value("ok", false)) return make_error("{}", r->value("error", std::string("vigild refused the request")));
  return r;
}

std::string default_socket_path() {
  if (const char* env = std::getenv("VIGIL_SOCKET"); env && *env) return env;
  if (::geteuid() == 0) return "/run/vigil/vigild.sock";
  return fmt::format("/tmp/vigil-{}/vigild.sock", ::geteuid());
}

Result<Json> api_call(const std::string& path, const Json& request) {
  auto fd = connect_to(path);
  if (!fd) return std::unexpected(fd.error());
  const bool sent = send_line(*fd, request);
  std::string rest;
  auto r = sent ? read_response(*fd, rest) : make_error("cannot send to vigild");
  ::close(*fd);
  return r;
}

Result<void> api_console(const std::string& path, const std::string& domain) {
  auto fd = connect_to(path);
  if (!fd) return std::unexpected(fd.error());
  std::string rest;
  send_line(*fd, Json{{"op", "console"}, {"domain", domain}});
  auto r = read_response(*fd, rest);
  if (!r) {
    ::close(*fd);
    return std::unexpected(r.error());
  }
  if (!(*r).value("ok", false)) {
    ::close(*fd);
    return make_error("{}", (*r).value("error", "console refused"));
  }
  if (!rest.empty()) (void)!::write(STDOUT_FILENO, rest.data(), rest.size());
  termios saved{};
  const bool tty = ::isatty(STDIN_FILENO) && ::tcgetattr(STDIN_FILENO, &saved) == 0;
  if (tty) {
    termios raw = saved;
    cfmakeraw(&raw);
    ::tcsetattr(STDIN_FILENO, TCSANOW, &raw);
  }
  bool stdin_open = true;
  uint8_t buf[4096];
  while (true) {
    pollfd p[2] = {{*fd, POLLIN, 0}, {stdin_open ? STDIN_FILENO : -1, POLLIN, 0}};
    if (::poll(p, 2, -1) < 0 && errno != EINTR) break;
    if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      const ssize_t n = ::recv(*fd, buf, sizeof(buf), 0);
      if (n <= 0) break;  // domain gone or daemon stopped
      (void)!::write(STDOUT_FILENO, buf, static_cast<size_t>(n));
    }
    if (p[1].revents & (POLLIN | POLLHUP)) {
      const ssize_t n = ::read(STDIN_FILENO, buf, sizeof(buf));
      if (n <= 0) {
        stdin_open = false;
        continue;
      }
      const auto* end = static_cast<uint8_t*>(std::memchr(buf, kDetachKey, static_cast<size_t>(n)));
      const size_t len = end ? static_cast<size_t>(end - buf) : static_cast<size_t>(n);
      if (len > 0) send_all(*fd, buf, len);
      if (end) break;
    }
  }
  if (tty) ::tcsetattr(STDIN_FILENO, TCSANOW, &saved);
  ::close(*fd);
  return {};
}

}  // namespace vigil::toolstack
