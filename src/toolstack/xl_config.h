// Domain configs in Xen's xl.cfg(5) syntax: the file `vigil create` reads and `vigil save` writes.
//
// Accepted syntax (a subset of xl.cfg):
//   - One `KEY = VALUE` per line (a ';' may also end a setting). `#` starts a comment outside strings.
//   - Values: integers (decimal, or hex with 0x), "double-quoted" strings (escapes \\ \" \' \n \t \r),
//     'single-quoted' strings (no escapes), and lists `[ "a", "b" ]` of those, which may span lines,
//     hold comments and end with a trailing comma. Integer keys also take a quoted number, as Xen does.
//     A decimal with a leading zero is refused because Xen would read it as octal.
//   - Keys: name, memory, vcpus, kernel, ramdisk, extra (alias cmdline), firmware, disk, vif, rng,
//     on_poweroff, on_reboot, on_crash, cpu_weight, cap, cpus, system_map, kernel_btf, vtpm
//     (`vtpm = [ "state=DIR" ]` or `[ "" ]`: one vTPM, README "vTPM"), psr_cmt (0/1: cache
//     monitoring attached at creation), psr_cat_cbm (CAT way mask), psr_mba_thrtl (MBA
//     throttle, percent). A key may appear once.
//   - kIgnoredXlKeys (type, builder, uuid, apic, pae, hap) are accepted and ignored: they describe
//     nothing a Vigil guest can differ in. Any other key is an error, with a "did you mean" hint.
//
// Every error is one sentence naming the file, line and key: `dom.cfg:7: memory: expected ...`.
#pragma once

#include <array>
#include <string>
#include <string_view>

#include "base/error.h"
#include "hv/domain_config.h"

namespace vigil::toolstack {

// Xen keys that configs written for Xen often carry and that cannot change a Vigil guest: type and
// builder pick PV/PVH/HVM (Vigil has one kind of guest), uuid is not used by Vigil yet, and apic, pae
// and hap are x86-only.
inline constexpr std::array<std::string_view, 6> kIgnoredXlKeys = {"type", "builder", "uuid",
                                                                   "apic", "pae",     "hap"};

// Parses xl.cfg text. `origin` names the file in messages. Paths are returned as written.
Result<hv::DomainConfig> parse_xl_config(std::string_view text, const std::string& origin);

// Reads the file at `path` (errors name it) and parses it. Relative kernel, ramdisk, firmware and
// disk paths are resolved against the config file's directory, so a config can sit beside its images.
Result<hv::DomainConfig> load_xl_config(const std::string& path);

// Writes `config` as xl.cfg text that parse_xl_config turns back into an equal DomainConfig.
// `config` must be valid, i.e. something parse_xl_config could have produced.
std::string to_xl_config(const hv::DomainConfig& config);

}  // namespace vigil::toolstack
