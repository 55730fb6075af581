// vigild's snapshot verbs (issue 11; src/migrate/snapshot.h behind the JSON API), as xl save
// and xl restore:
//   {"op": "save", "domain": D, "file": "/abs/path", "after": "destroy" | "keep" | "pause"}
//     -> {"ok": true, "bytes": N, "pause_ms": T, "snapshot_ms": T, "write_ms": T}
//   {"op": "restore", "file": "/abs/path", "config"?: "/abs/path/dom.cfg", "paused"?: bool}
//     -> {"ok": true, "id": N, "read_ms": T, "parse_ms": T, "restore_ms": T}
// "after" defaults to "destroy" (xl save's default). The file is created new (an existing
// one is never replaced) and appears only when complete. Monitors attached to the domain
// are detached first, each told why by a {"event": "detached", "reason": ...} line.
// "config" replaces the snapshot's own config (e.g. other disk paths); it must describe
// the same machine (RAM size, vCPUs, devices) or the restore is refused by the record that
// does not fit.
#pragma once

#include <optional>
#include <string>

#include "hv/domain_manager.h"
#include "toolstack/api.h"

namespace vigil::toolstack {

// The answer if `op` is a snapshot verb, nullopt otherwise.
std::optional<Json> handle_snapshot_request(hv::DomainManager& manager, const std::string& op, const Json& req);

}  // namespace vigil::toolstack
