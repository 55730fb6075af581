// vigild's vm_event verbs: out-of-process monitors (src/monitor behind the JSON API).
//
//   {"op": "monitor-open", "domain": D,
//    "events": [<subscription>, ...],        monitor/json.h, e.g. {"type": "syscall", "numbers": [64]}
//    "pid"?: N,                              adds "this process's satp" to every subscription's filter
//    "breakpoints"?: [{"symbol": S} | {"va": A} | {"gpa": A}, ...],   symbols from System.map
//    "protect"?: [{"symbol": S, "length": L} | {"from": S, "to": S} | {"va"|"gpa": A, "length": L}, ...],
//    "rights"?: "r-x",                       what protected ranges keep (default: all but write)
//    "kernel_text"?: bool,                   protect _stext.._etext and sys_call_table
//    "singlestep"?: [vCPU, ...], "timeout_ms"?: T (default 1500), "name"?: S,
//    "transport"?: "socket" (default) | "shm"}
//     -> {"ok": true, "session": N, "socket": NAME, "protected": [...], "breakpoints": [...]}
//   {"op": "monitor-list", "domain": D}
//     -> {"sessions": [{session, name, state, transport, events, lost, end_reason}]}
//
// NAME is a Unix socket in the abstract namespace (connect to "\0" + NAME), made for this
// session alone and checked like the control socket (peer uid must be vigild's or root).
// Connect within kAcceptTimeout; the first line is {"ready": true, "session": N,
// "transport": T} once everything is in place (events raised before it may come first),
// then the socket carries events and answers as JSON lines (monitor/remote.h). With
// "transport": "shm" the ready line carries the shared-memory channel's memfd
// (SCM_RIGHTS) and synchronous events go through it (monitor/shm_channel.h); if the
// channel cannot be made, T is "socket" and "shm_error" says why. Everything the session set up (subscriptions, rights,
// breakpoints) goes when the connection does, when it stops answering for `timeout_ms`,
// or when its domain goes away. Guest virtual addresses are translated through the
// kernel's page tables (found as `vigil ps` finds them).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "hv/domain_manager.h"
#include "monitor/monitor.h"
#include "toolstack/api.h"

namespace vigil::toolstack {

inline constexpr auto kAcceptTimeout = std::chrono::seconds(10);

// The answer if `op` is a monitor verb, nullopt otherwise.
std::optional<Json> handle_monitor_request(hv::DomainManager& manager, const std::string& op,
                                           const Json& req);

// vm_event counts of one domain over all its monitor sessions, live and closed (metrics).
struct MonitorTotals {
  uint32_t domain = 0;
  uint64_t events = 0;        // events delivered to monitors
  uint64_t lost = 0;          // asynchronous events dropped because a monitor did not keep up
  unsigned connected = 0;     // sessions with a client now
};
std::vector<MonitorTotals> monitor_totals(hv::DomainManager& manager);

// The monitor Hub of domain `id` (made on first use, with the domain paused for a moment), for
// in-process monitors such as the GDB stub. The pointer keeps the hub (and the domain's RAM)
// alive.
Result<std::shared_ptr<monitor::Hub>> domain_hub(hv::DomainManager& manager, uint32_t id);
// Ends every monitor session of domain `id` (a save, issue 11): each client first gets a
// {"event": "detached", "reason": reason} line; returns once they have ended (at most ~2 s).
void detach_monitors(hv::DomainManager& manager, uint32_t id, const std::string& reason);

}  // namespace vigil::toolstack
