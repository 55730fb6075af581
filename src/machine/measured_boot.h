// Measured direct boot (issue 9): before the guest's first instruction, what the board boots
// is extended into the vTPM's SHA-256 PCRs with TPM2_PCR_Extend, in the map U-Boot's
// bootm_measure() uses for a device-tree boot (so attestation tools already know it):
//
//   PCR 0  firmware (--firmware), when given
//   PCR 8  kernel image file, as read
//   PCR 9  initrd file, when given
//   PCR 1  the DTB as the guest receives it, then the bootargs string (no NUL)
//
// Each extend is PCR := SHA-256(PCR || SHA-256(data)); a verifier recomputes the values from
// the same files (tests/e2e/test_vtpm.py does, with hashlib), or replays the event log.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/error.h"
#include "devices/tpm_tis.h"

namespace vigil::machine {

struct Measurement {
  unsigned pcr;
  std::string what;               // "kernel", "initrd", "dtb", "bootargs", "firmware"
  std::array<uint8_t, 32> sha256;
  uint32_t event_type = 0;        // the event log entry (tcg2_event_log), as U-Boot logs it:
  std::string event;              //   see measure()
};

// kernel: EV_COMPACT_HASH "linux"; initrd: EV_COMPACT_HASH "initrd"; dtb: EV_TABLE_OF_DEVICES
// "dts"; bootargs: EV_PLATFORM_CONFIG_FLAGS with the bootargs; firmware: EV_S_CRTM_CONTENTS
// "firmware".
Measurement measure(unsigned pcr, std::string what, std::span<const uint8_t> data);

// The TCG2 crypto-agile event log (TCG PC Client Platform Firmware Profile, 10.2: an
// EV_NO_ACTION "Spec ID Event03" header in the SHA-1 format, then one TCG_PCR_EVENT2 per
// measurement with its SHA-256 digest; little-endian). Linux reads it from the TPM node's
// linux,sml-base/linux,sml-size and serves it as tpm0/binary_bios_measurements.
std::vector<uint8_t> tcg2_event_log(const std::vector<Measurement>& measurements);

// The TPM2_PCR_Extend command (TPM 2.0 Part 3, 22.2) for one SHA-256 digest, authorized by
// the empty password session (TPM_RS_PW), as platform firmware does for PCRs 0-15.
std::vector<uint8_t> pcr_extend_command(unsigned pcr, const std::array<uint8_t, 32>& digest);

// Sends every measurement; the error names the PCR, what was measured and the TPM's answer.
Result<void> extend_all(devices::TpmBackend& tpm, const std::vector<Measurement>& measurements);

}  // namespace vigil::machine
