// vigild's live dashboard (issue 13): one static page (src/toolstack/dashboard/, embedded in
// the binary at build time, no external resources) that polls GET /api/dashboard every second
// and draws every domain's state, vCPUs, CPU %, memory, console tail and live plots (CPU per
// domain, modeled cache occupancy and memory bandwidth, vm_event rates) on canvases.
//
// The JSON carries raw counters and vigild's clock (time_s); the page turns two samples into
// rates, so the server keeps no per-client state.
//
// Access: on a loopback address anyone local may read it, but only with a loopback Host header
// (a web page elsewhere cannot reach it by DNS rebinding). On any other address a token is
// required (--dashboard-token-file): `Authorization: Bearer TOKEN`, or the cookie that
// GET /?token=TOKEN sets before redirecting to /. Others get 401. Tokens compare in constant time.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "base/error.h"
#include "hv/domain_manager.h"
#include "toolstack/api.h"
#include "toolstack/metrics.h"

namespace httplib {
class Server;
struct Request;
}  // namespace httplib

namespace vigil::toolstack {

// Console bytes per domain in /api/dashboard.
inline constexpr size_t kDashboardConsoleTail = 2048;
inline constexpr const char* kDashboardCookie = "vigil_dashboard";

// The JSON document /api/dashboard serves, for everything `manager` holds now.
Json dashboard_json(hv::DomainManager& manager);

// Guest console bytes made safe to show as text: the last line-aligned part, \r and other
// control characters (escape sequences included) dropped, \n and \t kept. UTF-8 validity is
// left to the JSON encoder (invalid bytes become U+FFFD).
std::string printable_console(std::string_view bytes);

// Equal strings, in time that depends on their lengths only.
bool constant_time_equal(std::string_view a, std::string_view b);
// 127.0.0.0/8, ::1 or localhost.
bool is_loopback_host(std::string_view host);
// The token in `path`: one line of 16..256 printable non-space ASCII characters; the file must
// not be readable by group or others.
Result<std::string> read_token_file(const std::string& path);

enum class DashboardAccess { kAllowed, kUnauthorized, kForbiddenHost };
// The decision for one request: `token` empty means loopback-only mode (Host header checked).
DashboardAccess dashboard_access(const httplib::Request& req, const std::string& token);

class DashboardServer {
 public:
  explicit DashboardServer(hv::DomainManager& manager);
  ~DashboardServer();
  DashboardServer(const DashboardServer&) = delete;
  DashboardServer& operator=(const DashboardServer&) = delete;

  // Binds now (a taken port, or a non-loopback address without a token, is an error at
  // startup), then serves on a thread of its own, sandboxed as an API thread.
  Result<void> start(const ListenAddress& where, std::string token);
  void stop();
  int port() const { return m_port; }

 private:
  hv::DomainManager& m_manager;
  std::string m_token;
  std::unique_ptr<httplib::Server> m_server;
  std::thread m_thread;
  std::atomic<bool> m_listener_done{false};
  int m_port = 0;
};

}  // namespace vigil::toolstack
