#include "toolstack/introspect_client.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

namespace vigil::toolstack {

namespace {

void add_space(Json& req, const AddressSpace& as) {
  if (as.satp) req["satp"] = *as.satp;
  if (as.pid) req["pid"] = *as.pid;
}

Result<std::vector<uint8_t>> unhex(const Json& answer) {
  const std::string& s = answer.at("data").get_ref<const std::string&>();
  std::vector<uint8_t> out(s.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) {
    const auto [p, ec] = std::from_chars(s.data() + 2 * i, s.data() + 2 * i + 2, out[i], 16);
    if (ec != std::errc()) return make_error("vigild sent malformed memory data");
  }
  return out;
}

std::string hex(const std::vector<uint8_t>& data) {
  std::string s;
  for (uint8_t b : data) s += fmt::format("{:02x}", b);
  return s;
}

// Typed fields from an answer: a malformed answer is an error, not an exception.
template <typename F>
auto decode(F f) -> Result<std::remove_cvref_t<decltype(*f())>> {
  try {
    return f();
  } catch (const std::exception& e) {
    return make_error("vigild sent a malformed answer: {}", e.what());
  }
}

SymbolEntry symbol_from(const Json& j) {
  return SymbolEntry{j.at("name"), j.at("address"), j.value("offset", uint64_t{0}),
                     j.value("type", std::string())};
}

}  // namespace

IntrospectClient::~IntrospectClient() {
  if (m_fd >= 0) ::close(m_fd);
}

Result<Json> IntrospectClient::exchange(const Json& request) const {
  std::lock_guard lock(m_mutex);
  // A connection vigild closed (it restarted, or dropped us) is retried once on a new one.
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (m_fd < 0) {
      sockaddr_un addr{};
      if (m_socket.size() >= sizeof(addr.sun_path))
        return make_error("socket path '{}' is too long", m_socket);
      m_fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (m_fd < 0) return make_error("cannot create a socket: {}", std::strerror(errno));
      addr.sun_family = AF_UNIX;
      std::memcpy(addr.sun_path, m_socket.c_str(), m_socket.size() + 1);
      if (::connect(m_fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
        const int e = errno;
        ::close(m_fd);
        m_fd = -1;
        return make_error("cannot reach vigild at '{}': {} (is vigild running?)", m_socket, std::strerror(e));
      }
      m_pending.clear();
    }
    const std::string line = request.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
    bool ok = true;
    for (size_t sent = 0; ok && sent < line.size();) {
      const ssize_t n = ::send(m_fd, line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      ok = n > 0;
      if (ok) sent += static_cast<size_t>(n);
    }
    size_t nl;
    while (ok && (nl = m_pending.find('\n')) == std::string::npos) {
      char chunk[65536];
      const ssize_t n = ::recv(m_fd, chunk, sizeof(chunk), 0);
      if (n < 0 && errno == EINTR) continue;
      ok = n > 0;
      if (ok) m_pending.append(chunk, static_cast<size_t>(n));
    }
    if (!ok) {
      ::close(m_fd);
      m_fd = -1;
      continue;
    }
    Json answer = Json::parse(m_pending.substr(0, nl), nullptr, false);
    m_pending.erase(0, nl + 1);
    if (answer.is_discarded() || !answer.is_object()) return make_error("vigild sent a malformed answer");
    return answer;
  }
  return make_error("vigild closed the connection without answering");
}

Result<Json> IntrospectClient::call(Json request) const {
  request["domain"] = m_domain;
  auto r = exchange(request);
  if (!r) return r;
  if (!r->value("ok", false)) return make_error("{}", r->value("error", std::string("request failed")));
  return r;
}

Result<ProcessList> IntrospectClient::processes() const {
  auto r = call(Json{{"op", "ps"}});
  if (!r) return std::unexpected(r.error());
  try {
    ProcessList out;
    for (const Json& p : r->at("processes")) {
      ProcessEntry e;
      e.pid = p.at("pid");
      e.tid = p.at("tid");
      e.ppid = p.at("ppid");
      e.comm = p.at("comm");
      e.satp = p.at("satp");
      e.task = p.at("task");
      e.kernel_thread = p.at("kernel_thread");
      if (!p.at("vcpu").is_null()) e.vcpu = p.at("vcpu").get<unsigned>();
      e.error = p.value("error", std::string());
      out.processes.push_back(std::move(e));
    }
    for (const Json& v : r->at("vcpus")) {
      VcpuEntry e;
      e.vcpu = v.at("vcpu");
      e.online = v.at("online");
      e.mode = v.at("mode");
      e.pc = v.at("pc");
      e.satp = v.at("satp");
      if (v.contains("pid")) e.pid = v.at("pid").get<int32_t>();
      e.comm = v.value("comm", std::string());
      e.error = v.value("error", std::string());
      out.vcpus.push_back(std::move(e));
    }
    out.paused_us = r->value("paused_us", uint64_t{0});
    out.raw = std::move(*r);
    return out;
  } catch (const std::exception& e) {
    return make_error("vigild sent a malformed process list: {}", e.what());
  }
}

Result<Json> IntrospectClient::kernel_info() const {
  return call(Json{{"op", "kernel-info"}});
}

Result<std::vector<std::string>> IntrospectClient::modules() const {
  auto r = call(Json{{"op", "modules"}});
  if (!r) return std::unexpected(r.error());
  return decode([&]() -> Result<std::vector<std::string>> {
    std::vector<std::string> names;
    for (const Json& m : r->at("modules")) names.push_back(m.at("name"));
    return names;
  });
}

Result<TranslationEntry> IntrospectClient::translate(uint64_t va, const AddressSpace& as) const {
  Json req{{"op", "translate"}, {"va", va}};
  add_space(req, as);
  auto r = call(req);
  if (!r) return std::unexpected(r.error());
  return decode([&]() -> Result<TranslationEntry> {
    return TranslationEntry{r->at("va"),  r->at("pa"),   r->at("page_size"),
                            r->at("pte"), r->at("satp"), r->at("level")};
  });
}

Result<std::vector<uint8_t>> IntrospectClient::read_virtual(uint64_t va, size_t length,
                                                            const AddressSpace& as) const {
  Json req{{"op", "read-memory"}, {"address", va}, {"length", length}};
  add_space(req, as);
  auto r = call(req);
  if (!r) return std::unexpected(r.error());
  return decode([&] { return unhex(*r); });
}

Result<std::vector<uint8_t>> IntrospectClient::read_physical(uint64_t pa, size_t length) const {
  auto r = call(Json{{"op", "read-memory"}, {"address", pa}, {"length", length}, {"physical", true}});
  if (!r) return std::unexpected(r.error());
  return decode([&] { return unhex(*r); });
}

Result<void> IntrospectClient::write_virtual(uint64_t va, const std::vector<uint8_t>& data,
                                             const AddressSpace& as) const {
  Json req{{"op", "write-memory"}, {"address", va}, {"data", hex(data)}};
  add_space(req, as);
  auto r = call(req);
  if (!r) return std::unexpected(r.error());
  return {};
}

Result<void> IntrospectClient::write_physical(uint64_t pa, const std::vector<uint8_t>& data) const {
  auto r = call(Json{{"op", "write-memory"}, {"address", pa}, {"data", hex(data)}, {"physical", true}});
  if (!r) return std::unexpected(r.error());
  return {};
}

Result<SymbolEntry> IntrospectClient::symbol(const std::string& name) const {
  auto r = call(Json{{"op", "symbol"}, {"name", name}});
  if (!r) return std::unexpected(r.error());
  return decode([&]() -> Result<SymbolEntry> { return symbol_from(*r); });
}

Result<SymbolEntry> IntrospectClient::symbol_at(uint64_t address) const {
  auto r = call(Json{{"op", "symbol"}, {"address", address}});
  if (!r) return std::unexpected(r.error());
  return decode([&]() -> Result<SymbolEntry> { return symbol_from(*r); });
}

}  // namespace vigil::toolstack
