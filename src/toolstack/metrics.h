// Prometheus metrics for vigild (issue 13): the text exposition format (version 0.0.4)
// served over HTTP at /metrics, for a Prometheus server to scrape.
//
// Names follow Prometheus' rules: a vigil_ prefix, the unit in the name (_seconds, _bytes),
// counters end in _total, one label set per series ({domain="web"}, {domain="web",vcpu="0"}).
// States are exported as 1-valued series with a state label (vigil_domain_state{state=...}).
// The HTTP side is cpp-httplib; it listens on loopback unless told otherwise, and answers
// only GET /metrics (and / with a pointer to it).
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "base/error.h"
#include "hv/domain_manager.h"

namespace httplib {
class Server;
}

namespace vigil::toolstack {

// The exposition text for everything `manager` holds now.
std::string render_metrics(hv::DomainManager& manager);

// "[ADDR:]PORT" (ADDR defaults to 127.0.0.1; IPv6 as [::1]:PORT); PORT 0 picks a free one.
struct ListenAddress {
  std::string host;
  int port = 0;
};
Result<ListenAddress> parse_listen_address(const std::string& text);

// The HTTP plumbing the metrics and dashboard servers share (cpp-httplib):
// a new server with short timeouts, small requests and no SO_REUSEPORT;
std::unique_ptr<httplib::Server> make_http_server();
// binds it to `where` now (a taken port is an error naming `what` and the address) and serves
// on `thread`, sandboxed as an API thread, returning the port;
Result<int> serve_http(httplib::Server& server, const ListenAddress& where, const char* what, std::thread& thread,
                       std::atomic<bool>& listener_done);
// stops and joins what serve_http started.
void stop_http(std::unique_ptr<httplib::Server>& server, std::thread& thread);

class MetricsServer {
 public:
  explicit MetricsServer(hv::DomainManager& manager);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // Binds now (so a taken port is an error at startup, naming the address), then serves on
  // a thread of its own, sandboxed as an API thread.
  Result<void> start(const ListenAddress& where);
  void stop();
  int port() const { return m_port; }

 private:
  hv::DomainManager& m_manager;
  std::unique_ptr<httplib::Server> m_server;
  std::thread m_thread;
  std::atomic<bool> m_listener_done{false};
  int m_port = 0;
};

}  // namespace vigil::toolstack
