// Save and restore of a whole domain (issue 11, as xl save / xl restore).
//
// A snapshot is one stream (stream.h) holding, in this order:
//   CONFIG (the DomainConfig as JSON) | RAM_INFO | RAM ... | HART(0..n-1) | CLINT | PLIC |
//   UART | TEST_DEVICE | VIRTIO(slot) for every slot | HSM | CLOCK | END
// The restore side insists on that order for what matters (CONFIG first, RAM_INFO before
// any RAM, all RAM before any device state) and on every object being there exactly once.
//
// Disks are not in the snapshot: they are assumed shared (the same path when restored) and
// must not change between save and restore. virtio-net cannot be saved (libslirp's NAT
// state does not survive), so a domain with a NIC refuses: "device virtio-net cannot be saved".
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/error.h"
#include "hv/domain_manager.h"
#include "migrate/stream.h"

namespace vigil::migrate {

// The CONFIG record: DomainConfig <-> JSON. Decoding checks every field's type and range.
std::string encode_config(const hv::DomainConfig& config);
Result<hv::DomainConfig> decode_config(std::string_view json);

// The whole stream of a domain whose vCPUs are stopped (paused, or never started).
Result<std::vector<uint8_t>> snapshot_domain(hv::Domain& domain);

// Writes `bytes` as a new file at `path`: into an unnamed file (O_TMPFILE) in the target
// directory, linked in under `path` only once it is complete and synced, so a full disk
// never leaves a partial file under the final name. An existing file is never replaced
// ("save: /path: File exists"). Errors name the path and the errno:
// "save: /path: No space left on device".
Result<void> write_snapshot_file(const std::string& path, std::span<const uint8_t> bytes);
Result<std::vector<uint8_t>> read_snapshot_file(const std::string& path);

// What happens to the domain after a successful save (xl save: destroyed; -c: left as it
// was, running again; -p: left paused).
enum class AfterSave { kDestroy, kKeep, kPause };

struct SaveReport {
  uint64_t bytes = 0;      // file size
  double pause_ms = 0;     // vCPUs stopped (pause to resume, or to destroy)
  double snapshot_ms = 0;  // building the stream
  double write_ms = 0;     // writing the file
};

// Pauses the domain (vCPUs stopped at a slice boundary), writes its snapshot to `path`, then
// applies `after`. On any failure the domain is left as it was (running again if it ran).
Result<SaveReport> save_domain(hv::DomainManager& manager, uint32_t id, const std::string& path, AfterSave after);

struct RestoreReport {
  uint32_t id = 0;
  double parse_ms = 0;    // checking the stream
  double restore_ms = 0;  // building the domain and loading its state
};

// Builds a new domain from a snapshot: the stream's CONFIG, or `override` (refused by the
// first record it does not fit, e.g. RAM_INFO for another RAM size), RAM before devices, every value checked. The domain
// starts paused if `paused`. Nothing of it remains on failure.
Result<RestoreReport> restore_domain(hv::DomainManager& manager, std::span<const uint8_t> stream,
                                     const std::optional<hv::DomainConfig>& override, bool paused);

// Loads the records of a parsed stream into `domain` (built from the same config, not yet
// run). Used by restore_domain and the restore fuzz target.
Result<void> load_domain_state(hv::Domain& domain, std::span<const Record> records);

}  // namespace vigil::migrate
