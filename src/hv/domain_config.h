// Everything needed to build a domain, validated up front (DESIGN.md "How a guest runs").
// The toolstack fills it from an xl.cfg file or from `vigil run` flags.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace vigil::hv {

// What to do when the guest powers off, reboots or crashes (xl.cfg on_poweroff/on_reboot/on_crash).
enum class LifecycleAction { kDestroy, kRestart, kPreserve };

struct DiskConfig {
  std::string path;      // raw image file
  bool read_only = false;
  std::string vdev;      // e.g. "xvda" (informational)
};

struct NetConfig {
  std::string model = "user";  // "user" (libslirp) or "tap"
  std::string tap_name;        // for model tap
  std::string mac;             // "" = generated
  // host->guest TCP port forwards for user networking: host port -> guest port
  std::vector<std::pair<uint16_t, uint16_t>> forwards;
};

// A vTPM 2.0 (issue 9; xl.cfg `vtpm = [ "state=DIR" ]`, README "vTPM"): vigild starts one
// swtpm process for it. An empty state_dir means vigild's default, <--vtpm-dir>/<name>.
struct VtpmConfig {
  std::string state_dir;
};

struct DomainConfig {
  std::string name;
  uint64_t memory_mib = 256;
  unsigned vcpus = 1;
  std::string kernel;
  std::string ramdisk;
  std::string extra;     // kernel command line
  std::string firmware;  // optional M-mode firmware
  // Introspection (src/introspect): the kernel's System.map and BTF; empty = System.map and
  // vmlinux.btf next to the kernel Image.
  std::string system_map;
  std::string kernel_btf;
  std::vector<DiskConfig> disks;
  std::vector<NetConfig> nics;
  bool rng = true;       // virtio-rng
  LifecycleAction on_poweroff = LifecycleAction::kDestroy;
  LifecycleAction on_reboot = LifecycleAction::kRestart;
  LifecycleAction on_crash = LifecycleAction::kDestroy;
  unsigned cpu_weight = 256;  // credit scheduler weight, 1..65535
  unsigned cap = 0;           // percent of one CPU, 0 = no cap
  std::vector<std::vector<unsigned>> cpu_pins;  // per vCPU: allowed worker ids (empty = any)
  std::optional<VtpmConfig> vtpm;  // none = no TPM
  // Noisy-neighbour monitor (hv/psr_service.h; xl.cfg psr_cmt, psr_cat_cbm, psr_mba_thrtl).
  bool psr_cmt = false;             // monitoring attached at creation
  uint64_t psr_cat_cbm = 0;         // CAT way mask, 0 = the default (all ways)
  unsigned psr_mba_thrtl = 0;       // MBA throttle in percent (0..90, 10% steps)
};

}  // namespace vigil::hv
