// vigild's live-migration verbs (issue 11; src/migrate/live.h behind the JSON API):
//   {"op": "migrate", "domain": D, "host": "ADDR", "port"?: N, "downtime_ms"?: T,
//    "bandwidth_mbps"?: B, "timeout_s"?: S}        -> {"ok": true} once the migration thread runs
//   {"op": "migrate-cancel", "domain": D}           -> {"ok": true}
//   {"op": "migrate-status", "domain": D}           -> {"ok": true, "phase": ..., "round": N,
//        "bytes_sent": N, "dirty_pages": N, "bandwidth_mibps": B, "downtime_ms": T,
//        "total_ms": T, "error"?: "..."}
// The migration runs on its own thread; vigild keeps serving everything else. The token
// comes from vigild --migrate-token-file (set_migration_token); without one, migrate is refused.
#pragma once

#include <optional>
#include <string>

#include "hv/domain_manager.h"
#include "toolstack/api.h"

namespace vigil::toolstack {

void set_migration_token(std::string token);

// The answer if `op` is a migration verb, nullopt otherwise.
std::optional<Json> handle_migrate_request(hv::DomainManager& manager, const std::string& op, const Json& req);

// The status of the last migration of domain `id` (by id), for `list`; nullopt if none.
std::optional<Json> migration_json(uint32_t id);

}  // namespace vigil::toolstack
