#include "cli_migrate.h"
#include "cli_common.h"

#include <chrono>
#include <cstdio>
#include <memory>
#include <thread>

#include "toolstack/api.h"

namespace vigil::cli {
namespace {

using toolstack::Json;

struct Options {
  std::string domain, target;
  double downtime_ms = 300, bandwidth = 0, timeout_s = 600;
  bool no_wait = false;
};

void print_status(const Json& s) {
  std::printf("phase %s, round %u, %llu bytes sent, %llu dirty pages left, %.0f MiB/s",
              s.value("phase", std::string("?")).c_str(), s.value("round", 0u),
              static_cast<unsigned long long>(s.value("bytes_sent", uint64_t{0})),
              static_cast<unsigned long long>(s.value("dirty_pages", uint64_t{0})), s.value("bandwidth_mibps", 0.0));
  if (s.contains("error")) std::printf(": %s", s["error"].get<std::string>().c_str());
  std::printf("\n");
}

}  // namespace

std::function<std::optional<int>()> add_migrate_commands(CLI::App& app, const std::string& socket) {
  auto o = std::make_shared<Options>();
  CLI::App* mig = app.add_subcommand("migrate", "Live-migrate a domain to another vigild (--migrate-listen there)");
  mig->add_option("domain", o->domain, "domain name or id")->required();
  mig->add_option("host", o->target, "destination HOST[:PORT] (IPv4; port 8002 by default)")->required();
  mig->add_option("--downtime", o->downtime_ms, "downtime budget in milliseconds")->capture_default_str();
  mig->add_option("--bandwidth", o->bandwidth, "bandwidth limit in MiB/s (0: none)")->capture_default_str();
  mig->add_option("--timeout", o->timeout_s, "give up (the domain keeps running here) after S seconds")
      ->capture_default_str();
  mig->add_flag("--no-wait", o->no_wait, "return once the migration started (see migrate-status)");
  CLI::App* cancel = app.add_subcommand("migrate-cancel", "Cancel a live migration (the domain keeps running here)");
  cancel->add_option("domain", o->domain, "domain name or id")->required();
  CLI::App* status = app.add_subcommand("migrate-status", "Show a live migration's progress");
  status->add_option("domain", o->domain, "domain name or id")->required();

  return [o, mig, cancel, status, &socket]() -> std::optional<int> {
    if (*mig) {
      std::string host = o->target;
      unsigned port = 8002;
      if (auto colon = host.rfind(':'); colon != std::string::npos) {
        try {
          port = static_cast<unsigned>(std::stoul(host.substr(colon + 1)));
        } catch (const std::exception&) {
          port = 0;
        }
        host = host.substr(0, colon);
        if (port == 0 || port > 65535) {
          std::fprintf(stderr, "vigil: '%s' is not HOST[:PORT]\n", o->target.c_str());
          return 1;
        }
      }
      auto r = call(socket, Json{{"op", "migrate"}, {"domain", o->domain}, {"host", host}, {"port", port},
                                 {"downtime_ms", o->downtime_ms}, {"bandwidth_mbps", o->bandwidth},
                                 {"timeout_s", o->timeout_s}});
      if (!r) return 1;
      const unsigned id = r->value("id", 0u);
      if (o->no_wait) {
        std::printf("migrating domain %s (id %u) to %s\n", o->domain.c_str(), id, o->target.c_str());
        return 0;
      }
      for (;;) {
        auto s = call(socket, Json{{"op", "migrate-status"}, {"domain", id}});
        if (!s) return 1;
        const std::string phase = s->value("phase", std::string());
        if (phase == "done") {
          std::printf("migrated domain %s to %s: downtime %.1f ms, %llu bytes in %u rounds, %.0f ms\n",
                      o->domain.c_str(), o->target.c_str(), s->value("downtime_ms", 0.0),
                      static_cast<unsigned long long>(s->value("bytes_sent", uint64_t{0})), s->value("round", 0u) + 1,
                      s->value("total_ms", 0.0));
          return 0;
        }
        if (phase == "failed" || phase == "cancelled" || phase == "undecided") {
          std::fprintf(stderr, "vigil: migrate %s: %s: %s\n", o->domain.c_str(), phase.c_str(),
                       s->value("error", std::string()).c_str());
          return 1;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
    if (*cancel) {
      if (!call(socket, Json{{"op", "migrate-cancel"}, {"domain", o->domain}})) return 1;
      std::printf("cancelling the migration of %s\n", o->domain.c_str());
      return 0;
    }
    if (*status) {
      Json req{{"op", "migrate-status"}, {"domain", o->domain}};
      // A migrated domain is gone by name; its id still finds the status.
      try {
        req["domain"] = std::stoul(o->domain);
      } catch (const std::exception&) {
      }
      auto s = call(socket, req);
      if (!s) return 1;
      print_status(*s);
      return 0;
    }
    return std::nullopt;
  };
}

}  // namespace vigil::cli
