// vigild's introspection verbs (src/introspect behind the JSON API). Requests name a domain;
// the domain is paused while it is read and resumed afterwards if it was running. The Linux
// profile comes from the domain config's system_map / kernel_btf (default: System.map and
// vmlinux.btf next to its kernel), or from "system_map" / "kernel_btf" in the request.
//   {"op": "ps", "domain": D}        processes (pid, ppid, comm, satp, vcpu) and each vCPU's current task
//   {"op": "modules", "domain": D}   loaded kernel modules
//   {"op": "kernel-info", "domain": D}   banner, KASLR offset, the kernel's satp, profile files
//   {"op": "translate", "domain": D, "va": A, "satp": S? | "pid": P?}   (default: the kernel's tables)
//   {"op": "read-memory", "domain": D, "address": A, "length": N, "physical": bool?, "satp"? | "pid"?}
//        -> {"data": "<hex>"}; at most kMaxIntrospectBytes
//   {"op": "write-memory", "domain": D, "address": A, "data": "<hex>", "physical"?, "satp"? | "pid"?}
//   {"op": "symbol", "domain": D, "name": S} -> address  |  {"op": "symbol", "domain": D, "address": A} ->
//   name+offset
// Addresses are JSON numbers or strings ("0xffffffff80000000" or decimal).
#pragma once

#include <optional>
#include <string>

#include "hv/domain_manager.h"
#include "toolstack/api.h"

namespace vigil::toolstack {

inline constexpr size_t kMaxIntrospectBytes = 1 << 20;

// The answer if `op` is an introspection verb, nullopt otherwise.
std::optional<Json> handle_introspect_request(hv::DomainManager& manager, const std::string& op,
                                              const Json& req);

}  // namespace vigil::toolstack
