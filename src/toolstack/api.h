// vigild's control API: newline-delimited JSON over a Unix socket (mode 0600, peer
// credentials checked), as xl talks to libxl. Each request is one JSON object on one line:
//   {"op": "list"}
//   {"op": "create", "config": "/abs/path/dom.cfg"}
//   {"op": "pause" | "unpause" | "shutdown" | "reboot" | "destroy", "domain": "name-or-id"}
//   {"op": "vcpu-list", "domain": D}
//   {"op": "vcpu-pin", "domain": D, "vcpu": N, "cpus": [0, 1]}     (empty list: any CPU)
//   {"op": "sched-credit", "domain": D, "weight": W?, "cap": C?}   (no weight/cap: just read)
//   {"op": "console", "domain": D}   then the connection carries raw console bytes both ways
// Each answer is one line: {"ok": true, ...} or {"ok": false, "error": "one sentence"}.
// A malformed request gets an error answer; it never affects other clients or domains.
#pragma once

#include <atomic>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "base/error.h"
#include "hv/domain_manager.h"

namespace vigil::toolstack {

using Json = nlohmann::json;

// Requests longer than this are refused (the longest legitimate one is a few hundred bytes).
inline constexpr size_t kMaxRequestBytes = 64 * 1024;

// Executes one request (everything except "console", which needs the connection).
Json handle_request(hv::DomainManager& manager, const Json& request);
// Parses and executes one request line; never throws.
Json handle_request_line(hv::DomainManager& manager, std::string_view line);

class ApiServer {
 public:
  static constexpr unsigned kMaxClients = 64;

  ApiServer(hv::DomainManager& manager, std::string socket_path);
  ~ApiServer();
  Result<void> start();
  void stop();

 private:
  void accept_loop();
  void serve(int fd);
  void serve_console(int fd, const std::string& domain);

  hv::DomainManager& m_manager;
  std::string m_path;
  int m_listen_fd = -1;
  std::atomic<bool> m_stopping{false};
  std::thread m_acceptor;
  std::mutex m_clients_mutex;
  std::set<int> m_client_fds;
  std::atomic<unsigned> m_clients{0};
};

// For the request handlers (api*.cpp): the error answer {"ok": false, "error": message}, and
// the domain a request names ("domain": a name or an id), looked up.
Json error_json(const std::string& message);
Result<uint32_t> request_domain(hv::DomainManager& m, const Json& req);
// The same where "domain" may be absent or null (meaning every domain): nullopt then.
Result<std::optional<uint32_t>> request_optional_domain(hv::DomainManager& m, const Json& req);

// Client side (the `vigil` command).
Result<Json> api_call(const std::string& socket_path, const Json& request);
// api_call, with an answer of {"ok": false} made an error carrying vigild's sentence.
Result<Json> api_request(const std::string& socket_path, const Json& request);
// Attaches the terminal to a domain's console until Ctrl-] (0x1d) or the domain stops.
Result<void> api_console(const std::string& socket_path, const std::string& domain);

// Default socket: $VIGIL_SOCKET, else /run/vigil/vigild.sock for root, else /tmp/vigil-UID/vigild.sock.
std::string default_socket_path();

}  // namespace vigil::toolstack
