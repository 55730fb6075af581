// vigild's GDB stub: one TCP listener per domain, serving one gdb at a time (gdb_stub.h) on the
// domain's vCPUs, through an in-process monitor on the domain's Hub (monitor/monitor.h).
//
//   {"op": "gdbserver", "domain": D, "address"?: "127.0.0.1", "port"?: N (0 = any free)}
//     -> {"ok": true, "address": "127.0.0.1", "port": N}
//   {"op": "gdbserver-stop", "domain": D} -> {"ok": true}
//   {"op": "gdbserver-list"} -> {"servers": [{"domain", "id", "address", "port", "client"}]}
//
// All-stop: when gdb connects every vCPU stops; a breakpoint or a finished step on one vCPU
// stops them all (the hitting vCPU at once, the others at their next slice boundary), and
// `continue` lets them all go. Breakpoints are hypervisor breakpoints on the guest-physical
// page (the guest's memory is never patched, so the guest cannot see or remove them); their
// virtual address is translated through the page tables of the vCPU gdb has selected, and a
// breakpoint fires in every address space that maps the same physical page. Memory reads and
// writes go through the selected vCPU's page tables (satp; physical in M-mode). gdb's protocol
// has no authentication: the listener is on loopback unless told otherwise, and it is the
// operator who decides to open it. When gdb detaches (or disconnects) the breakpoints go and
// the domain runs again if it was running when gdb came.
#pragma once

#include <optional>
#include <string>

#include "hv/domain_manager.h"
#include "toolstack/api.h"

namespace vigil::toolstack {

std::optional<Json> handle_gdb_request(hv::DomainManager& manager, const std::string& op, const Json& req);

}  // namespace vigil::toolstack
