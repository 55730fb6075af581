// vigild's noisy-neighbour verbs (hv/psr_service.h behind the JSON API), after xl's psr-*
// commands. A domain is a name or an id; the answers carry raw counters and the model's clock
// (time_ns), so clients compute bandwidth from two samples as xl does.
//   {"op": "psr-hwinfo"} -> {"cmt": {...}, "cat": {...}, "mba": {...}, "model": {...}}
//   {"op": "psr-cmt-attach", "domain": D}   {"op": "psr-cmt-detach", "domain": D}
//   {"op": "psr-cmt-show", "domain": D?} -> {"total_rmid", "l3_cache_kb", "time_ns", "domains": [
//        {"id", "name", "rmid", "occupancy_bytes", "mbm_total_bytes", "mbm_local_bytes",
//         "accesses", "misses", "miss_credit_seconds", "mba_held_periods"}]}  (attached domains only)
//   {"op": "psr-cat-set", "domain": D, "cbm": N | "0x..", "level": 3?}
//   {"op": "psr-cat-show", "domain": D?} -> {"l3_cache_kb", "default_cbm", "domains": [{"id", "name", "cbm"}]}
//   {"op": "psr-mba-set", "domain": D, "thrtl": N} -> {"thrtl": applied (rounded down to 10%)}
//   {"op": "psr-mba-show", "domain": D?} -> {"thrtl_max", "domains": [{"id", "name", "thrtl"}]}
//   {"op": "psr-noisy", "window_ms": 2000?} -> the detector's verdict over that window
//        (psr/detector.h): {"domains": [...shares...], "noisy": {"id","name"} | null,
//        "victims": [{"id","name","miss_rate","rise","evicted_share"}], "migrate": {...} | null, "saturated", ...}
//        The request blocks for the window.
#pragma once

#include <optional>
#include <string>

#include "hv/domain_manager.h"
#include "toolstack/api.h"

namespace vigil::toolstack {

// The answer if `op` is a psr verb, nullopt otherwise.
std::optional<Json> handle_psr_request(hv::DomainManager& manager, const std::string& op, const Json& req);

}  // namespace vigil::toolstack
