#include "toolstack/api_snapshot.h"

#include <chrono>
#include <filesystem>

#include "migrate/snapshot.h"
#include "toolstack/api_monitor.h"
#include "toolstack/xl_config.h"

namespace vigil::toolstack {
namespace {


Result<std::string> absolute_path(const Json& req, const char* key, const char* verb) {
  auto it = req.find(key);
  if (it == req.end() || !it->is_string() || it->get<std::string>().empty())
    return make_error("{} needs \"{}\": an absolute path", verb, key);
  std::string path = it->get<std::string>();
  // vigild's working directory is not the client's: the CLI sends absolute paths.
  if (path.front() != '/') return make_error("{}: \"{}\" must be an absolute path, not '{}'", verb, key, path);
  return path;
}

Json save(hv::DomainManager& m, const Json& req) {
  auto id = request_domain(m, req);
  if (!id) return error_json(id.error().message);
  auto path = absolute_path(req, "file", "save");
  if (!path) return error_json(path.error().message);
  migrate::AfterSave after = migrate::AfterSave::kDestroy;
  if (auto a = req.find("after"); a != req.end()) {
    const std::string v = a->is_string() ? a->get<std::string>() : "";
    if (v == "destroy") after = migrate::AfterSave::kDestroy;
    else if (v == "keep") after = migrate::AfterSave::kKeep;
    else if (v == "pause") after = migrate::AfterSave::kPause;
    else return error_json("save: \"after\" must be \"destroy\", \"keep\" or \"pause\"");
  }
  // A refusal that needs no pause comes before the monitors are told anything.
  std::error_code ec;
  if (std::filesystem::exists(*path, ec)) return error_json(fmt::format("save: {}: File exists", *path));
  detach_monitors(m, *id, "the domain is being saved");
  auto report = migrate::save_domain(m, *id, *path, after);
  if (!report) return error_json(report.error().message);
  return Json{{"ok", true},
              {"bytes", report->bytes},
              {"pause_ms", report->pause_ms},
              {"snapshot_ms", report->snapshot_ms},
              {"write_ms", report->write_ms}};
}

Json restore(hv::DomainManager& m, const Json& req) {
  auto path = absolute_path(req, "file", "restore");
  if (!path) return error_json(path.error().message);
  std::optional<hv::DomainConfig> override;
  if (req.contains("config")) {
    auto cfg = absolute_path(req, "config", "restore");
    if (!cfg) return error_json(cfg.error().message);
    auto c = load_xl_config(*cfg);
    if (!c) return error_json(c.error().message);
    override = std::move(*c);
  }
  bool paused = false;
  if (auto p = req.find("paused"); p != req.end()) {
    if (!p->is_boolean()) return error_json("restore: \"paused\" must be true or false");
    paused = p->get<bool>();
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto bytes = migrate::read_snapshot_file(*path);
  if (!bytes) return error_json(bytes.error().message);
  const double read_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  auto report = migrate::restore_domain(m, *bytes, override, paused);
  if (!report) return error_json(fmt::format("restore: {}: {}", *path, report.error().message));
  return Json{{"ok", true},
              {"id", report->id},
              {"read_ms", read_ms},
              {"parse_ms", report->parse_ms},
              {"restore_ms", report->restore_ms}};
}

}  // namespace

std::optional<Json> handle_snapshot_request(hv::DomainManager& manager, const std::string& op, const Json& req) {
  if (op == "save") return save(manager, req);
  if (op == "restore") return restore(manager, req);
  return std::nullopt;
}

}  // namespace vigil::toolstack
