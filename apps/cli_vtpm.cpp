#include "cli_vtpm.h"

#include <cstdio>
#include <memory>

#include "toolstack/api.h"

namespace vigil::cli {

namespace {

struct Options {
  std::string domain;
  bool json = false;
};

std::string text_or(const toolstack::Json& v, const char* none) {
  return v.is_string() ? v.get<std::string>() : std::string(none);
}

int run(const std::string& socket, const Options& o) {
  toolstack::Json req{{"op", "vtpm-list"}};
  if (!o.domain.empty()) req["domain"] = o.domain;
  auto r = toolstack::api_request(socket, req);
  if (!r) {
    std::fprintf(stderr, "vigil: %s\n", r.error().message.c_str());
    return 1;
  }
  if (o.json) {
    std::printf("%s\n", (*r)["vtpms"].dump().c_str());
    return 0;
  }
  std::printf("%-20s %4s %-8s %-6s %-24s %s\n", "Domain", "ID", "PCRbank", "PID", "Status", "State dir (host TPM)");
  for (const auto& v : (*r)["vtpms"]) {
    const std::string pid = v["pid"].is_number() ? std::to_string(v["pid"].get<long>()) : "-";
    std::printf("%-20s %4u %-8s %-6s %-24s %s (%s)\n", v["domain"].get<std::string>().c_str(), v["id"].get<unsigned>(),
                v["pcr_bank"].get<std::string>().c_str(), pid.c_str(), v["status"].get<std::string>().c_str(),
                text_or(v["state_dir"], "-").c_str(), text_or(v["host_tpm"], "no host TPM: state not encrypted").c_str());
  }
  return 0;
}

}  // namespace

std::function<std::optional<int>()> add_vtpm_commands(CLI::App& app, const std::string& socket) {
  auto o = std::make_shared<Options>();
  CLI::App* list = app.add_subcommand("vtpm-list", "List domains' vTPMs: state directory, host TPM, PCR bank, swtpm status");
  list->add_option("domain", o->domain, "only this domain (name or id)");
  list->add_flag("--json", o->json, "print vigild's answer as JSON");
  return [list, o, &socket]() -> std::optional<int> {
    if (!*list) return std::nullopt;
    return run(socket, *o);
  };
}

}  // namespace vigil::cli
