#include "toolstack/metrics.h"

#include <fmt/format.h>
#include <httplib.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <map>

#include "base/sandbox.h"
#include "toolstack/api_monitor.h"
#include "toolstack/api_vtpm.h"

namespace vigil::toolstack {

namespace {

// Label values escape backslash, double quote and newline (exposition format).
std::string label(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

// One metric family: HELP and TYPE once, then its samples.
class Family {
 public:
  Family(std::string name, std::string type, std::string help)
      : m_name(std::move(name)), m_type(std::move(type)), m_help(std::move(help)) {}
  // Integers print exactly (a double loses byte counters past 2^53); times as doubles.
  template <typename T>
  void add(const std::string& labels, T value) {
    if (labels.empty()) m_samples += fmt::format("{} {}\n", m_name, value);
    else m_samples += fmt::format("{}{{{}}} {}\n", m_name, labels, value);
  }
  void write(std::string& out) const {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", m_name, m_help, m_name, m_type);
    out += m_samples;
  }

 private:
  std::string m_name, m_type, m_help, m_samples;
};

}  // namespace

std::string render_metrics(hv::DomainManager& m) {
  std::map<std::string, Family> f;
  auto fam = [&](const char* name, const char* type, const char* help) -> Family& {
    return f.try_emplace(name, name, type, help).first->second;
  };
  static const char* const kDomainStates[] = {"running", "paused", "shutdown", "crashed", "dying"};
  static const char* const kVcpuStates[] = {"running", "runnable", "blocked", "paused", "stopped"};
  const auto domains = m.list();
  fam("vigil_domains", "gauge", "Domains vigild holds.").add("", domains.size());
  fam("vigil_scheduler_workers", "gauge", "Host worker threads running vCPUs.")
      .add("", m.scheduler().workers());
  std::map<uint32_t, MonitorTotals> monitors;
  for (const MonitorTotals& t : monitor_totals(m)) monitors[t.domain] = t;
  for (const hv::DomainInfo& d : domains) {
    const std::string dl = fmt::format("domain=\"{}\"", label(d.name));
    const MonitorTotals mt = monitors.count(d.id) ? monitors[d.id] : MonitorTotals{};
    fam("vigil_vm_events_total", "counter", "vm_event events delivered to the domain's monitors.")
        .add(dl, mt.events);
    fam("vigil_vm_events_lost_total", "counter",
        "Asynchronous vm_event events dropped because a monitor did not keep up.")
        .add(dl, mt.lost);
    fam("vigil_monitor_sessions", "gauge", "Monitor sessions with a connected client.").add(dl, mt.connected);
    fam("vigil_domain_info", "gauge", "Always 1; labels carry the domain's id.")
        .add(fmt::format("{},id=\"{}\"", dl, d.id), 1);
    for (const char* s : kDomainStates) {
      fam("vigil_domain_state", "gauge", "1 for the state the domain is in, 0 for the others.")
          .add(fmt::format("{},state=\"{}\"", dl, s), std::string_view(hv::to_string(d.state)) == s ? 1 : 0);
    }
    fam("vigil_domain_cpu_seconds_total", "counter", "Host time the domain's vCPUs ran on a worker.")
        .add(dl, d.cpu_seconds);
    fam("vigil_domain_memory_bytes", "gauge", "Guest memory size.").add(dl, uint64_t{d.memory_mib} << 20);
    fam("vigil_domain_vcpus", "gauge", "vCPUs of the domain.").add(dl, d.vcpus);
    if (auto p = m.sched_credit(d.id)) {
      fam("vigil_domain_sched_weight", "gauge", "Credit scheduler weight.").add(dl, p->weight);
      fam("vigil_domain_sched_cap_ratio", "gauge", "Credit scheduler cap as a fraction of one worker (0: none).")
          .add(dl, p->cap / 100.0);
    }
    if (auto vl = m.vcpu_list(d.id)) {
      for (const auto& v : *vl) {
        const std::string vlab = fmt::format("{},vcpu=\"{}\"", dl, v.vcpu);
        fam("vigil_vcpu_cpu_seconds_total", "counter", "Host time the vCPU ran on a worker.").add(vlab, v.cpu_seconds);
        fam("vigil_vcpu_credit_seconds", "gauge", "Scheduler credit the vCPU holds (negative: in debt).")
            .add(vlab, v.credit_seconds);
        for (const char* s : kVcpuStates) {
          fam("vigil_vcpu_state", "gauge", "1 for the state the vCPU is in, 0 for the others.")
              .add(fmt::format("{},state=\"{}\"", vlab, s), v.state == s ? 1 : 0);
        }
      }
    }
    auto dom = m.get(d.id);
    if (!dom) continue;
    const auto disks = dom->machine().disk_stats();
    for (size_t i = 0; i < disks.size(); ++i) {
      const std::string l = fmt::format("{},disk=\"{}\"", dl, i);
      const auto& s = disks[i];
      fam("vigil_disk_read_bytes_total", "counter", "Bytes the guest read from the disk.").add(l, s.read_bytes);
      fam("vigil_disk_written_bytes_total", "counter", "Bytes the guest wrote to the disk.").add(l, s.write_bytes);
      fam("vigil_disk_read_requests_total", "counter", "Read requests.").add(l, s.read_ops);
      fam("vigil_disk_write_requests_total", "counter", "Write requests.").add(l, s.write_ops);
      fam("vigil_disk_flush_requests_total", "counter", "Flush requests.").add(l, s.flush_ops);
      fam("vigil_disk_errors_total", "counter", "Requests answered with an error status.").add(l, s.errors);
    }
    const auto nics = dom->machine().nic_stats();
    for (size_t i = 0; i < nics.size(); ++i) {
      const std::string l = fmt::format("{},nic=\"{}\"", dl, i);
      const auto& s = nics[i];
      fam("vigil_net_received_bytes_total", "counter", "Bytes delivered to the guest.").add(l, s.rx_bytes);
      fam("vigil_net_transmitted_bytes_total", "counter", "Bytes the guest sent.").add(l, s.tx_bytes);
      fam("vigil_net_received_packets_total", "counter", "Frames delivered to the guest.").add(l, s.rx_frames);
      fam("vigil_net_transmitted_packets_total", "counter", "Frames the guest sent.").add(l, s.tx_frames);
      fam("vigil_net_receive_drops_total", "counter", "Frames for the guest that were dropped.").add(l, s.rx_dropped);
      fam("vigil_net_transmit_drops_total", "counter", "Frames from the guest that were dropped.").add(l, s.tx_dropped);
    }
    // vTPM (issue 9, README "vTPM"): only for domains with one.
    if (auto v = vtpm_metrics(*dom)) {
      fam("vigil_domain_vtpm_up", "gauge", "1 while the domain's vTPM process runs and answers, else 0.")
          .add(dl, v->up ? 1 : 0);
      fam("vigil_domain_vtpm_commands_total", "counter", "TPM commands the guest sent through the TIS interface.")
          .add(dl, v->commands);
      fam("vigil_domain_vtpm_failures_total", "counter",
          "Guest TPM commands answered with TPM_RC_FAILURE because the vTPM process failed.")
          .add(dl, v->failures);
    }
    // Noisy-neighbour monitor (hv/psr_service.h): modeled reference-L3 figures, only for
    // domains with monitoring attached (psr-cmt-attach or psr_cmt = 1).
    if (hv::PsrService* psr = m.psr()) {
      if (auto ps = psr->status(d.id); ps && ps->rmid != 0) {
        fam("vigil_domain_cache_occupancy_bytes", "gauge", "Modeled shared-L3 bytes the domain's lines occupy.")
            .add(dl, ps->counters.occupancy_bytes);
        fam("vigil_domain_memory_bandwidth_bytes_total", "counter",
            "Modeled memory traffic of the domain (L3 misses and dirty writebacks, bytes).")
            .add(dl, ps->counters.mbm_total_bytes);
      }
    }
  }
  std::string out;
  for (const auto& [name, family] : f) family.write(out);
  return out;
}

Result<ListenAddress> parse_listen_address(const std::string& text) {
  ListenAddress a{"127.0.0.1", 0};
  std::string_view port = text;
  if (!text.empty() && text[0] == '[') {
    const size_t close = text.find("]:");
    if (close == std::string::npos) return make_error("address '{}' is not [ADDR]:PORT", text);
    a.host = text.substr(1, close - 1);
    port = std::string_view(text).substr(close + 2);
  } else if (const size_t colon = text.rfind(':'); colon != std::string::npos) {
    a.host = text.substr(0, colon);
    port = std::string_view(text).substr(colon + 1);
  }
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), a.port);
  if (a.host.empty() || ec != std::errc() || end != port.data() + port.size() || a.port < 0 || a.port > 65535) {
    return make_error("address '{}' is not [ADDR:]PORT with PORT 0..65535", text);
  }
  return a;
}

MetricsServer::MetricsServer(hv::DomainManager& manager) : m_manager(manager) {}

MetricsServer::~MetricsServer() { stop(); }

std::unique_ptr<httplib::Server> make_http_server() {
  auto server = std::make_unique<httplib::Server>();
  server->set_read_timeout(5, 0);
  server->set_write_timeout(5, 0);
  server->set_payload_max_length(4096);
  // httplib's default sets SO_REUSEPORT, which lets a second vigild bind the same port and
  // steal half the requests; SO_REUSEADDR alone still allows a quick restart.
  server->set_socket_options([](int sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  return server;
}

Result<int> serve_http(httplib::Server& server, const ListenAddress& where, const char* what, std::thread& thread,
                       std::atomic<bool>& listener_done) {
  const int port = where.port == 0 ? server.bind_to_any_port(where.host)
                                   : (server.bind_to_port(where.host, where.port) ? where.port : -1);
  if (port <= 0) return make_error("cannot listen for {} on {}:{}: {}", what, where.host, where.port, std::strerror(errno));
  listener_done = false;
  thread = std::thread([&server, &listener_done] {
    sandbox::restrict_thread_or_abort(sandbox::ThreadClass::kApi);
    server.listen_after_bind();
    listener_done = true;
  });
  // httplib's stop() does nothing until the listener thread has marked itself running, so a
  // stop() right after start() would leave the thread listening forever: wait for it here.
  while (!server.is_running() && !listener_done) std::this_thread::yield();
  return port;
}

void stop_http(std::unique_ptr<httplib::Server>& server, std::thread& thread) {
  if (!server) return;
  server->stop();
  if (thread.joinable()) thread.join();
  server.reset();
}

Result<void> MetricsServer::start(const ListenAddress& where) {
  m_server = make_http_server();
  m_server->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(render_metrics(m_manager), "text/plain; version=0.0.4; charset=utf-8");
  });
  m_server->Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("vigild: metrics are at /metrics\n", "text/plain");
  });
  auto port = serve_http(*m_server, where, "metrics", m_thread, m_listener_done);
  if (!port) {
    m_server.reset();
    return std::unexpected(port.error());
  }
  m_port = *port;
  return {};
}

void MetricsServer::stop() { stop_http(m_server, m_thread); }

}  // namespace vigil::toolstack
