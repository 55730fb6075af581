#include "toolstack/dashboard.h"

#include <fmt/format.h>
#include <httplib.h>
#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include "base/sandbox.h"
#include "dashboard_assets.h"  // generated from src/toolstack/dashboard/ (src/CMakeLists.txt)
#include "toolstack/api_monitor.h"

namespace vigil::toolstack {

namespace {

constexpr char kEsc = 0x1b;

// The page allows nothing from elsewhere: scripts, styles and fetches from vigild only.
constexpr const char* kCsp =
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

void security_headers(httplib::Response& res) {
  res.set_header("Content-Security-Policy", kCsp);
  res.set_header("X-Content-Type-Options", "nosniff");
  res.set_header("X-Frame-Options", "DENY");
  res.set_header("Referrer-Policy", "no-referrer");
  res.set_header("Cache-Control", "no-store");
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The value of cookie `name` in a Cookie header ("a=1; b=2"), empty if absent.
std::string cookie_value(std::string_view header, std::string_view name) {
  while (!header.empty()) {
    const size_t semi = header.find(';');
    std::string_view part = trim(header.substr(0, semi));
    header = semi == std::string_view::npos ? std::string_view{} : header.substr(semi + 1);
    const size_t eq = part.find('=');
    if (eq != std::string_view::npos && part.substr(0, eq) == name) return std::string(part.substr(eq + 1));
  }
  return {};
}

// The host part of a Host header: "[::1]:80" -> "::1", "localhost:80" -> "localhost".
std::string_view host_of(std::string_view h) {
  if (!h.empty() && h.front() == '[') {
    const size_t close = h.find(']');
    return close == std::string_view::npos ? std::string_view{} : h.substr(1, close - 1);
  }
  const size_t colon = h.rfind(':');
  return colon == std::string_view::npos ? h : h.substr(0, colon);
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct Asset {
  const unsigned char* data;
  size_t size;
  const char* type;
};

void serve_asset(httplib::Response& res, const Asset& a) {
  security_headers(res);
  res.set_content(reinterpret_cast<const char*>(a.data), a.size, a.type);
}

}  // namespace

std::string printable_console(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    const auto c = static_cast<unsigned char>(in[i]);
    if (c == kEsc) {
      // ECMA-48: ESC [ parameters... final byte 0x40..0x7e (CSI), or ESC and one more byte.
      if (i + 1 < in.size() && in[i + 1] == '[') {
        i += 2;
        while (i < in.size() && !(in[i] >= 0x40 && in[i] <= 0x7e)) ++i;
      } else {
        ++i;
      }
      continue;
    }
    if (c == '\n' || c == '\t' || (c >= 0x20 && c != 0x7f)) out += static_cast<char>(c);
  }
  return out;
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  // Every byte of the longer string is visited whatever the contents; the length difference
  // itself is folded in, so a prefix of the token does not match.
  const size_t n = std::max(a.size(), b.size());
  unsigned diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned>(x ^ y);
  }
  return diff == 0;
}

bool is_loopback_host(std::string_view host) {
  if (host == "localhost" || host == "::1") return true;
  // 127.0.0.0/8 in dotted-quad form.
  if (host.substr(0, 4) != "127.") return false;
  int dots = 0;
  for (char c : host) {
    if (c == '.') ++dots;
    else if (c < '0' || c > '9') return false;
  }
  return dots == 3;
}

Result<std::string> read_token_file(const std::string& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) return make_error("cannot read the dashboard token file '{}': {}", path, std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return make_error("the dashboard token file '{}' is not a regular file", path);
  if (st.st_mode & 077) {
    return make_error("the dashboard token file '{}' is readable by others (mode {:o}); chmod 600 it", path,
                      st.st_mode & 0777);
  }
  if (st.st_size > 4096) return make_error("the dashboard token file '{}' is longer than 4096 bytes", path);
  std::ifstream f(path, std::ios::binary);
  if (!f) return make_error("cannot read the dashboard token file '{}'", path);
  std::stringstream ss;
  ss << f.rdbuf();
  std::string token = ss.str();
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r')) token.pop_back();
  if (token.size() < 16 || token.size() > 256) {
    return make_error("the dashboard token in '{}' must be 16 to 256 characters long, not {}", path, token.size());
  }
  for (char c : token) {
    if (c <= 0x20 || c >= 0x7f || c == ';' || c == ',') {
      return make_error("the dashboard token in '{}' must be one line of printable ASCII without spaces, ';' or ','",
                        path);
    }
  }
  return token;
}

DashboardAccess dashboard_access(const httplib::Request& req, const std::string& token) {
  if (token.empty()) {
    return is_loopback_host(host_of(req.get_header_value("Host"))) ? DashboardAccess::kAllowed
                                                                   : DashboardAccess::kForbiddenHost;
  }
  const std::string auth = req.get_header_value("Authorization");
  constexpr std::string_view kBearer = "Bearer ";
  if (auth.size() > kBearer.size() && auth.compare(0, kBearer.size(), kBearer) == 0 &&
      constant_time_equal(std::string_view(auth).substr(kBearer.size()), token)) {
    return DashboardAccess::kAllowed;
  }
  const std::string cookie = cookie_value(req.get_header_value("Cookie"), kDashboardCookie);
  if (!cookie.empty() && constant_time_equal(cookie, token)) return DashboardAccess::kAllowed;
  // The ?token= link only on the page itself, which trades it for the cookie at once.
  if ((req.path == "/" || req.path == "/dashboard") && req.has_param("token") &&
      constant_time_equal(req.get_param_value("token"), token)) {
    return DashboardAccess::kAllowed;
  }
  return DashboardAccess::kUnauthorized;
}

Json dashboard_json(hv::DomainManager& m) {
  std::map<uint32_t, MonitorTotals> monitors;
  for (const MonitorTotals& t : monitor_totals(m)) monitors[t.domain] = t;
  hv::PsrService* psr = m.psr();
  Json doms = Json::array();
  for (const hv::DomainInfo& d : m.list()) {
    Json j{{"id", d.id},
           {"name", d.name},
           {"state", hv::to_string(d.state)},
           {"vcpus", d.vcpus},
           {"memory_mib", d.memory_mib},
           {"cpu_seconds", d.cpu_seconds},
           {"stop_reason", d.stop_reason}};
    Json vcpus = Json::array();
    if (auto vl = m.vcpu_list(d.id)) {
      for (const auto& v : *vl) vcpus.push_back(v.state);
    }
    j["vcpu_states"] = std::move(vcpus);
    const MonitorTotals mt = monitors.count(d.id) ? monitors[d.id] : MonitorTotals{};
    j["vm_events"] = mt.events;
    j["vm_events_lost"] = mt.lost;
    j["psr"] = nullptr;
    if (psr) {
      if (auto ps = psr->status(d.id); ps && ps->rmid != 0) {
        j["psr"] = Json{{"occupancy_bytes", ps->counters.occupancy_bytes},
                        {"mbm_total_bytes", ps->counters.mbm_total_bytes}};
      }
    }
    std::string tail;
    if (auto dom = m.get(d.id)) {
      tail = dom->console_tail(kDashboardConsoleTail);
      // A full tail was cut mid-line: start at the next whole line.
      if (tail.size() == kDashboardConsoleTail) {
        if (const size_t nl = tail.find('\n'); nl != std::string::npos) tail.erase(0, nl + 1);
      }
    }
    j["console_tail"] = printable_console(tail);
    doms.push_back(std::move(j));
  }
  return Json{{"ok", true},
              {"time_s", now_seconds()},
              {"workers", m.scheduler().workers()},
              {"psr", psr != nullptr},
              {"domains", std::move(doms)}};
}

DashboardServer::DashboardServer(hv::DomainManager& manager) : m_manager(manager) {}

DashboardServer::~DashboardServer() { stop(); }

Result<void> DashboardServer::start(const ListenAddress& where, std::string token) {
  if (token.empty() && !is_loopback_host(where.host)) {
    return make_error("the dashboard on non-loopback address {} needs a token (--dashboard-token-file)", where.host);
  }
  m_token = std::move(token);
  m_server = make_http_server();
  m_server->set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    switch (dashboard_access(req, m_token)) {
      case DashboardAccess::kAllowed:
        return httplib::Server::HandlerResponse::Unhandled;
      case DashboardAccess::kUnauthorized:
        res.status = 401;
        res.set_header("WWW-Authenticate", "Bearer realm=\"vigild dashboard\"");
        res.set_content("vigild dashboard: a valid token is needed (Authorization: Bearer, or open /?token=...)\n",
                        "text/plain");
        break;
      case DashboardAccess::kForbiddenHost:
        res.status = 403;
        res.set_content("vigild dashboard: only loopback Host names are served without a token\n", "text/plain");
        break;
    }
    security_headers(res);
    return httplib::Server::HandlerResponse::Handled;
  });
  const Asset page{dashboard_assets::kIndexHtml, sizeof(dashboard_assets::kIndexHtml), "text/html; charset=utf-8"};
  const Asset js{dashboard_assets::kDashboardJs, sizeof(dashboard_assets::kDashboardJs),
                 "text/javascript; charset=utf-8"};
  const Asset css{dashboard_assets::kDashboardCss, sizeof(dashboard_assets::kDashboardCss), "text/css; charset=utf-8"};
  auto index = [this, page](const httplib::Request& req, httplib::Response& res) {
    if (req.has_param("token") && !m_token.empty()) {
      // Trade the link's token for a cookie and drop it from the address bar (and history).
      res.set_header("Set-Cookie", fmt::format("{}={}; Path=/; HttpOnly; SameSite=Strict", kDashboardCookie, m_token));
      res.set_redirect("/", 303);
      security_headers(res);
      return;
    }
    serve_asset(res, page);
  };
  m_server->Get("/", index);
  m_server->Get("/dashboard", index);
  m_server->Get("/dashboard.js", [js](const httplib::Request&, httplib::Response& res) { serve_asset(res, js); });
  m_server->Get("/dashboard.css", [css](const httplib::Request&, httplib::Response& res) { serve_asset(res, css); });
  m_server->Get("/api/dashboard", [this](const httplib::Request&, httplib::Response& res) {
    security_headers(res);
    // Names and console bytes come from configs and guests: invalid UTF-8 becomes U+FFFD.
    res.set_content(dashboard_json(m_manager).dump(-1, ' ', false, Json::error_handler_t::replace),
                    "application/json");
  });
  auto port = serve_http(*m_server, where, "the dashboard", m_thread, m_listener_done);
  if (!port) {
    m_server.reset();
    return std::unexpected(port.error());
  }
  m_port = *port;
  return {};
}

void DashboardServer::stop() { stop_http(m_server, m_thread); }

}  // namespace vigil::toolstack
