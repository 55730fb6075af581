// vigild: holds the domains and serves the JSON control API on a Unix socket.
#include <csignal>
#include <memory>
#include <cstdio>
#include <string_view>

#include <CLI/CLI.hpp>

#include "base/sandbox.h"
#include "riscv/jit.h"
#include "hv/domain_manager.h"
#include "toolstack/api.h"
#include "migrate/live.h"
#include "toolstack/api_migrate.h"
#include "toolstack/dashboard.h"
#include "toolstack/metrics.h"
#include "vtpm/key_helper.h"
#include "vtpm/provider.h"
#include "vtpm/sealing.h"

int main(int argc, char** argv) {
  // vigild re-executed as its own vTPM key helper (vtpm/key_helper.h), not a daemon.
  if (argc >= 2 && std::string_view(argv[1]) == vigil::vtpm::kKeyHelperFlag) {
    return vigil::vtpm::key_helper_main(argc, argv);
  }
  CLI::App app{"vigild: the Vigil hypervisor daemon"};
  std::string socket = vigil::toolstack::default_socket_path();
  unsigned workers = 0;
  app.add_option("--socket", socket, "control socket path")->capture_default_str();
  app.add_option("--workers", workers, "host worker threads for vCPUs (0 = one per host core)");
  std::string metrics;
  app.add_option("--metrics", metrics,
                 "serve Prometheus metrics over HTTP at [ADDR:]PORT/metrics (ADDR defaults to 127.0.0.1; "
                 "PORT 0 picks a free port, printed at startup)");
  std::string dashboard, dashboard_token_file;
  app.add_option("--dashboard", dashboard,
                 "serve the live dashboard page over HTTP at [ADDR:]PORT/ (ADDR defaults to 127.0.0.1; PORT 0 picks "
                 "a free port, printed at startup); a non-loopback ADDR needs --dashboard-token-file");
  app.add_option("--dashboard-token-file", dashboard_token_file,
                 "require this file's token (one line, 16+ characters, mode 0600) from dashboard clients: "
                 "Authorization: Bearer TOKEN, or open /?token=TOKEN once for a cookie");
  vigil::vtpm::Provider::Options vtpm{.root_dir = vigil::vtpm::Provider::default_root()};
  app.add_option("--vtpm-dir", vtpm.root_dir,
                 "state directory of vTPMs whose vtpm entry has no state=DIR: one subdirectory per domain name")
      ->capture_default_str();
  app.add_option("--host-tpm", vtpm.host_tcti,
                 "seal each vTPM's state key to this host TPM, a tpm2-tss TCTI such as device:/dev/tpmrm0 or "
                 "swtpm:host=127.0.0.1,port=2321 (without it, vTPM state is stored unencrypted)");
  std::string host_pcrs;
  app.add_option("--host-tpm-pcrs", host_pcrs,
                 "seal new vTPM keys with a policy on these host PCRs (SHA-256 bank, e.g. 0,2,4,7): they unseal only "
                 "while the host's PCRs keep the values they had then");
  double host_tpm_timeout_s = 30;
  app.add_option("--host-tpm-timeout", host_tpm_timeout_s,
                 "seconds the host TPM may take to seal or unseal a vTPM key before creation fails")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();
  // Live migration (migrate/live.h): off unless --migrate-listen is given.
  std::string migrate_listen, migrate_token_file;
  app.add_option("--migrate-listen", migrate_listen,
                 "accept live migrations from peers that know the token, on ADDR:PORT (IPv4; PORT 0 picks one)");
  app.add_option("--migrate-token-file", migrate_token_file,
                 "shared secret for live migration, both to send and to receive (mode 0600, at least 16 bytes)");
  bool no_sandbox = false;
  app.add_flag("--no-sandbox", no_sandbox,
               "run without the per-thread seccomp filters (for kernels without seccomp or debugging)");
  CLI11_PARSE(app, argc, argv);
  vigil::sandbox::set_enabled(!no_sandbox);
  // Executable memory for translated guest code is mapped now, before any thread is
  // sandboxed (sandboxed threads may not map executable memory).
  if (const auto& jit = vigil::riscv::JitPool::instance(); !jit.available()) {
    std::fprintf(stderr, "vigild: guests run interpreted only: %s\n", jit.error().c_str());
  }
  if (auto r = vigil::sandbox::probe(); !r) {
    std::fprintf(stderr, "vigild: cannot sandbox threads: %s; use --no-sandbox to run without\n",
                 r.error().message.c_str());
    return 1;
  }

  // Block the termination signals in every thread; the main thread waits for them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  if (!host_pcrs.empty()) {
    auto mask = vigil::vtpm::parse_pcr_list(host_pcrs);
    if (!mask) {
      std::fprintf(stderr, "vigild: --host-tpm-pcrs: %s\n", mask.error().message.c_str());
      return 1;
    }
    if (vtpm.host_tcti.empty()) {
      std::fprintf(stderr, "vigild: --host-tpm-pcrs needs --host-tpm\n");
      return 1;
    }
    vtpm.host_pcr_mask = *mask;
  }
  vtpm.key_helper = "/proc/self/exe";
  vtpm.host_tpm_timeout_ms = static_cast<unsigned>(host_tpm_timeout_s * 1000);
  // Before the manager (and its sandboxed threads): the launcher thread must be unrestricted.
  vigil::vtpm::Provider vtpms(vtpm);
  vigil::hv::DomainManager manager(workers);
  manager.set_tpm_factory([&vtpms](const vigil::hv::DomainConfig& c)
                              -> vigil::Result<std::shared_ptr<vigil::devices::TpmBackend>> {
    auto tpm = vtpms.open(c.name, c.vtpm ? c.vtpm->state_dir : "");
    if (!tpm) return std::unexpected(tpm.error());
    return std::shared_ptr<vigil::devices::TpmBackend>(std::move(*tpm));
  });
  vigil::toolstack::ApiServer server(manager, socket);
  if (auto r = server.start(); !r) {
    std::fprintf(stderr, "vigild: %s\n", r.error().message.c_str());
    return 1;
  }
  std::unique_ptr<vigil::migrate::MigrationListener> migration_listener;
  if (!migrate_token_file.empty()) {
    auto token = vigil::migrate::read_token_file(migrate_token_file);
    if (!token) {
      std::fprintf(stderr, "vigild: %s\n", token.error().message.c_str());
      return 1;
    }
    vigil::toolstack::set_migration_token(*token);
    if (!migrate_listen.empty()) {
      migration_listener = std::make_unique<vigil::migrate::MigrationListener>(manager, *token);
      if (auto r = migration_listener->start(migrate_listen); !r) {
        std::fprintf(stderr, "vigild: %s\n", r.error().message.c_str());
        return 1;
      }
      std::fprintf(stderr, "vigild: accepting migrations on port %u\n", migration_listener->port());
    }
  } else if (!migrate_listen.empty()) {
    std::fprintf(stderr, "vigild: --migrate-listen needs --migrate-token-file\n");
    return 1;
  }
  vigil::toolstack::MetricsServer metrics_server(manager);
  if (!metrics.empty()) {
    auto where = vigil::toolstack::parse_listen_address(metrics);
    if (!where) {
      std::fprintf(stderr, "vigild: %s\n", where.error().message.c_str());
      return 1;
    }
    if (auto r = metrics_server.start(*where); !r) {
      std::fprintf(stderr, "vigild: %s\n", r.error().message.c_str());
      return 1;
    }
    std::fprintf(stderr, "vigild: metrics on http://%s:%d/metrics\n", where->host.c_str(), metrics_server.port());
  }
  vigil::toolstack::DashboardServer dashboard_server(manager);
  if (!dashboard.empty()) {
    auto where = vigil::toolstack::parse_listen_address(dashboard);
    std::string token;
    if (where && !dashboard_token_file.empty()) {
      auto t = vigil::toolstack::read_token_file(dashboard_token_file);
      if (!t) {
        std::fprintf(stderr, "vigild: %s\n", t.error().message.c_str());
        return 1;
      }
      token = std::move(*t);
    }
    auto started = where ? dashboard_server.start(*where, std::move(token))
                         : vigil::Result<void>(std::unexpected(where.error()));
    if (!started) {
      std::fprintf(stderr, "vigild: --dashboard: %s\n", started.error().message.c_str());
      return 1;
    }
    const bool v6 = where->host.find(':') != std::string::npos;
    std::fprintf(stderr, "vigild: dashboard on http://%s%s%s:%d/\n", v6 ? "[" : "", where->host.c_str(), v6 ? "]" : "",
                 dashboard_server.port());
  } else if (!dashboard_token_file.empty()) {
    std::fprintf(stderr, "vigild: --dashboard-token-file needs --dashboard\n");
    return 1;
  }
  std::fprintf(stderr, "vigild: serving %s with %u worker(s)\n", socket.c_str(), manager.scheduler().workers());
  int sig = 0;
  sigwait(&set, &sig);
  std::fprintf(stderr, "vigild: signal %d, destroying domains and exiting\n", sig);
  dashboard_server.stop();
  metrics_server.stop();
  if (migration_listener) migration_listener->stop();
  server.stop();
  return 0;
}
