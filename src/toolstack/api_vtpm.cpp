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
  auto only = request_optional_domain(m, req);
  if (!only) return error_json(only.error().message);
  Json list = Json::array();
  for (const auto& info : m.list()) {
    if (*only && info.id != **only) continue;
    auto d = m.get(info.id);
    if (!d || !d->config().vtpm) continue;
    list.push_back(vtpm_json(*d));
  }
  if (*only && list.empty()) return error_json(fmt::format("domain {} has no vTPM", **only));
  return Json{{"ok", true}, {"vtpms", list}};
}

}  // namespace vigil::toolstack
