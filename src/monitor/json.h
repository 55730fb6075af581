// Events, responses and subscriptions as JSON objects: the out-of-process transport's
// message format (one object per line, remote.h) and the CLI's output.
//
// Event:    {"seq": N, "type": "syscall", "sync": false, "vcpu": 0, "priv": "U", "pc": A, "satp": S,
//            ...per type: mem {gpa, gva, access "r"|"w"|"x", size}; csr {csr "satp", csr_num, old, new};
//            breakpoint {gpa, gva}; syscall/sysret {nr, args[6], sp, task, ret (sysret)};
//            request {fid, args[6]}; trap {cause, tval, interrupt, epc}}
// Response: {"seq": N, "action": "continue"|"deny"|"emulate", "value"?: V, "regs"?: {"a0": V, ...},
//            "pc"?: A, "singlestep"?: bool, "rights"?: [{"gpa": A, "length": L, "rights": "r-x"}]}
// Subscription: {"type": "syscall", "sync"?: bool, "on_change"?: bool, "numbers"?: [N | "satp", ...],
//            "lo"?: A, "hi"?: A, "satp"?: S, "vcpu"?: N}
// Numbers are JSON integers; inputs also take strings ("0xffffffff80000000" or decimal).
#pragma once

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "monitor/event.h"

namespace vigil::monitor {

using Json = nlohmann::json;

Json to_json(const Event& ev);
// The same object as one line of text, written straight into `out` without building a Json
// (the transport's hot path: a few hundred nanoseconds instead of a few microseconds).
// `extra` is inserted before the closing brace: "" or `,"key":value...`.
void append_event_line(const Event& ev, std::string_view extra, std::string& out);
// `bytes` (a guest's, say) as a quoted JSON string: printable ASCII as is, everything else
// escaped as \u00XX (each byte one code point), so any input gives valid JSON.
void append_json_string(std::string_view bytes, std::string& out);
Result<Response> response_from_json(const Json& j);
Result<Subscription> subscription_from_json(const Json& j);
// "rwx", "r-x", "" ... -> p2m bits.
Result<uint8_t> rights_from_string(std::string_view s);
// A JSON integer or a string in hex ("0x...") or decimal.
Result<uint64_t> number_from_json(const Json& j, std::string_view what);

}  // namespace vigil::monitor
