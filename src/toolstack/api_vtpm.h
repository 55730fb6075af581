// vigild's vTPM verb (issue 9, README "vTPM"), like xl's vtpm-list:
//   {"op": "vtpm-list", "domain"?: D}
//     -> {"ok": true, "vtpms": [{"id", "domain", "state_dir", "host_tpm", "encrypted",
//                                "pcr_bank", "pid", "status"}]}
// One entry per domain with a vTPM (only D's with "domain"). host_tpm is the TCTI of the host
// TPM that sealed the state key (null: state not encrypted); pcr_bank is the bank measured
// boot extends; status is "running", "running (busy)", "stopped" or how the swtpm ended.
#pragma once

#include <optional>
#include <string>

#include "hv/domain_manager.h"
#include "toolstack/api.h"

namespace vigil::toolstack {

std::optional<Json> handle_vtpm_request(hv::DomainManager& manager, const std::string& op, const Json& req);

// For vigild's metrics (toolstack/metrics.h): a domain's vTPM, or none without one.
struct VtpmMetrics {
  bool up = false;          // its swtpm runs and its last exchange worked
  uint64_t commands = 0;    // guest commands the TIS sent to it
  uint64_t failures = 0;    // guest commands answered TPM_RC_FAILURE because it failed
};
std::optional<VtpmMetrics> vtpm_metrics(hv::Domain& domain);

}  // namespace vigil::toolstack
