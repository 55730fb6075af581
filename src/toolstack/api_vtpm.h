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

}  // namespace vigil::toolstack
