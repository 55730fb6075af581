#include "toolstack/api_vtpm.h"

#include "vtpm/swtpm.h"

namespace vigil::toolstack {

namespace {

Json vtpm_json(hv::Domain& d) {
  Json j{{"id", d.id()}, {"domain", d.name()}, {"pcr_bank", "sha256"}};
  auto swtpm = std::dynamic_pointer_cast<vtpm::Swtpm>(d.tpm());
  if (!swtpm) {
    j.update({{"state_dir", nullptr}, {"host_tpm", nullptr}, {"encrypted", false}, {"pid", nullptr}, {"status", "none"}});
    return j;
  }
  j["state_dir"] = swtpm->state_dir();
  j["host_tpm"] = swtpm->host_tpm().empty() ? Json(nullptr) : Json(swtpm->host_tpm());
  j["encrypted"] = swtpm->encrypted();
  j["pid"] = swtpm->pid();
  j["status"] = swtpm->status();
  return j;
}

}  // namespace

std::optional<VtpmMetrics> vtpm_metrics(hv::Domain& d) {
  if (!d.config().vtpm) return std::nullopt;
  VtpmMetrics v;
  if (auto swtpm = std::dynamic_pointer_cast<vtpm::Swtpm>(d.tpm())) v.up = swtpm->status().starts_with("running");
  if (const devices::TpmTis* tis = d.machine().tpm_tis()) {
    v.commands = tis->commands_executed();
    v.failures = tis->backend_failures();
  }
  return v;
}

std::optional<Json> handle_vtpm_request(hv::DomainManager& m, const std::string& op, const Json& req) {
  if (op != "vtpm-list") return std::nullopt;
  std::optional<uint32_t> only;
  if (auto it = req.find("domain"); it != req.end() && !it->is_null()) {
    if (!it->is_string()) return Json{{"ok", false}, {"error", "\"domain\" must be a name or id string"}};
    auto id = m.lookup(it->get<std::string>());
    if (!id) return Json{{"ok", false}, {"error", id.error().message}};
    only = *id;
  }
  Json list = Json::array();
  for (const auto& info : m.list()) {
    if (only && info.id != *only) continue;
    auto d = m.get(info.id);
    if (!d || !d->config().vtpm) continue;
    list.push_back(vtpm_json(*d));
  }
  if (only && list.empty()) return Json{{"ok", false}, {"error", fmt::format("domain {} has no vTPM", *only)}};
  return Json{{"ok", true}, {"vtpms", list}};
}

}  // namespace vigil::toolstack
