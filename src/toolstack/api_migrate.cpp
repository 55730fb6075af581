#include "toolstack/api_migrate.h"

#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include <spdlog/spdlog.h>

#include "migrate/live.h"
#include "toolstack/api_monitor.h"

namespace vigil::toolstack {
namespace {

struct Job {
  migrate::MigrateProgress progress;
  std::thread thread;
};

// Jobs by domain id; a finished job stays for migrate-status until the next migration.
struct Registry {
  std::mutex mutex;
  std::string token;
  std::map<uint32_t, std::shared_ptr<Job>> jobs;
};
Registry& registry() {
  static Registry* r = new Registry;  // never destroyed: detached threads may outlive main's statics
  return *r;
}

bool running(const Job& j) {
  const auto p = j.progress.phase.load();
  return p == migrate::MigratePhase::kConnecting || p == migrate::MigratePhase::kPrecopy ||
         p == migrate::MigratePhase::kStopCopy || p == migrate::MigratePhase::kCommitting;
}

Json status_json(Job& j) {
  Json out{{"phase", migrate::to_string(j.progress.phase.load())},
           {"round", j.progress.round.load()},
           {"bytes_sent", j.progress.bytes_sent.load()},
           {"dirty_pages", j.progress.dirty_pages.load()},
           {"bandwidth_mibps", j.progress.bandwidth_mibps.load()},
           {"downtime_ms", j.progress.downtime_ms.load()},
           {"total_ms", j.progress.total_ms.load()}};
  if (auto e = j.progress.get_error(); !e.empty()) out["error"] = e;
  return out;
}

Result<double> number(const Json& req, const char* key, double def, double lo, double hi) {
  auto it = req.find(key);
  if (it == req.end()) return def;
  if (!it->is_number() || it->get<double>() < lo || it->get<double>() > hi)
    return make_error("\"{}\" must be a number from {} to {}", key, lo, hi);
  return it->get<double>();
}

Json start(hv::DomainManager& m, const Json& req) {
  auto id = request_domain(m, req);
  if (!id) return error_json("migrate: " + id.error().message);
  migrate::MigrateOptions opt;
  auto host = req.find("host");
  if (host == req.end() || !host->is_string() || host->get<std::string>().empty())
    return error_json("migrate needs \"host\": the destination's IPv4 address");
  opt.host = host->get<std::string>();
  auto port = number(req, "port", migrate::kDefaultMigratePort, 1, 65535);
  auto downtime = number(req, "downtime_ms", opt.downtime_ms, 1, 600'000);
  auto bandwidth = number(req, "bandwidth_mbps", 0, 0, 1e6);
  auto timeout = number(req, "timeout_s", opt.timeout_s, 1, 86'400);
  for (const auto* r : {&port, &downtime, &bandwidth, &timeout}) {
    if (!*r) return error_json("migrate: " + r->error().message);
  }
  opt.port = static_cast<uint16_t>(*port);
  opt.downtime_ms = *downtime;
  opt.bandwidth_mbps = *bandwidth;
  opt.timeout_s = *timeout;
  Registry& reg = registry();
  std::lock_guard lock(reg.mutex);
  if (reg.token.empty()) return error_json("migrate: this vigild has no --migrate-token-file");
  opt.token = reg.token;
  if (auto it = reg.jobs.find(*id); it != reg.jobs.end() && running(*it->second))
    return error_json(fmt::format("migrate: domain {} is already being migrated", *id));
  auto job = std::make_shared<Job>();
  reg.jobs[*id] = job;
  detach_monitors(m, *id, "the domain is being migrated");
  const uint32_t dom = *id;
  job->thread = std::thread([&m, job, dom, opt] {
    auto r = migrate::migrate_domain(m, dom, opt, job->progress);
    if (r) {
      job->progress.phase.store(migrate::MigratePhase::kDone);
      spdlog::info("migrate: domain {} moved to {}:{} (downtime {:.1f} ms, {} bytes, {:.0f} ms)", dom, opt.host,
                   opt.port, job->progress.downtime_ms.load(), job->progress.bytes_sent.load(),
                   job->progress.total_ms.load());
      return;
    }
    const auto phase = job->progress.phase.load() == migrate::MigratePhase::kCommitting ? migrate::MigratePhase::kUndecided
                       : job->progress.cancel.load() || job->progress.gave_up.load()    ? migrate::MigratePhase::kCancelled
                                                                                        : migrate::MigratePhase::kFailed;
    job->progress.set_error(phase, r.error().message);
    spdlog::warn("migrate: domain {}: {}", dom, r.error().message);
  });
  job->thread.detach();
  return Json{{"ok", true}, {"id", dom}};
}

Json cancel(hv::DomainManager& m, const Json& req) {
  auto id = request_domain(m, req);
  if (!id) return error_json("migrate-cancel: " + id.error().message);
  Registry& reg = registry();
  std::lock_guard lock(reg.mutex);
  auto it = reg.jobs.find(*id);
  if (it == reg.jobs.end() || !running(*it->second))
    return error_json(fmt::format("migrate-cancel: domain {} is not being migrated", *id));
  if (it->second->progress.phase.load() == migrate::MigratePhase::kCommitting)
    return error_json("migrate-cancel: too late, the migration is committing");
  it->second->progress.cancel.store(true);
  return Json{{"ok", true}};
}

}  // namespace

void set_migration_token(std::string token) {
  std::lock_guard lock(registry().mutex);
  registry().token = std::move(token);
}

std::optional<Json> migration_json(uint32_t id) {
  Registry& reg = registry();
  std::lock_guard lock(reg.mutex);
  auto it = reg.jobs.find(id);
  if (it == reg.jobs.end()) return std::nullopt;
  return status_json(*it->second);
}

std::optional<Json> handle_migrate_request(hv::DomainManager& m, const std::string& op, const Json& req) {
  if (op == "migrate") return start(m, req);
  if (op == "migrate-cancel") return cancel(m, req);
  if (op == "migrate-status") {
    auto id = request_domain(m, req);
    std::optional<Json> s;
    if (id) s = migration_json(*id);
    else if (auto it = req.find("domain"); it != req.end() && it->is_number_unsigned())
      s = migration_json(static_cast<uint32_t>(it->get<uint64_t>()));  // the domain left with the migration
    if (!s) return error_json(id ? fmt::format("migrate-status: domain {} was never migrated", *id)
                                 : "migrate-status: " + id.error().message);
    (*s)["ok"] = true;
    return *s;
  }
  return std::nullopt;
}

}  // namespace vigil::toolstack
