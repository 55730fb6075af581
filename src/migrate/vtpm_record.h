// The vTPM in a snapshot (issue 9 with issue 11, README "vTPM"): one optional
// EXTRA_DEVICE_STATE record, instance kVtpmInstance, after the other device records.
//
// Payload (little-endian): u32 version (1) | TIS: u8 state | u8 active locality (0xff none) |
// u8 requested mask | u8 seized mask | u32 offset | u32 buffer length | buffer bytes |
// u32 backend length | the TPM backend's own state (for swtpm: vtpm/swtpm_state.h, its blobs
// encrypted with the domain's state key when it has one).
//
// Saving waits (bounded) for the TIS to finish a command the guest started, then takes the
// TIS registers and the TPM state with the vCPUs paused; the TPM keeps running. Restoring
// replaces what the new domain's TPM measured at build time with the saved state, then the
// TIS registers. A domain with a vTPM and a snapshot without the record (or the reverse) is
// refused; every field is checked (a file anyone could have written), and a refusal is one
// sentence naming the record: "snapshot: record EXTRA_DEVICE_STATE(0) at offset 123: vTPM: ...".
#pragma once

#include <cstdint>

#include "base/error.h"
#include "devices/tpm_tis.h"
#include "migrate/stream.h"

namespace vigil::migrate {

inline constexpr uint32_t kVtpmInstance = 0;
inline constexpr uint32_t kVtpmRecordVersion = 1;
inline constexpr unsigned kVtpmIdleWaitMs = 10'000;

// The record's payload, or why the vTPM cannot be saved now.
Result<std::vector<uint8_t>> encode_vtpm_record(devices::TpmTis& tis, devices::TpmBackend& tpm);
void add_vtpm(StreamWriter& w, std::span<const uint8_t> payload);
// Checks the payload, then loads it into the backend and the TIS.
Result<void> restore_vtpm(const Record& r, devices::TpmTis& tis, devices::TpmBackend& tpm);

// For the fuzz target: parses the payload without touching a TPM.
struct VtpmRecord {
  devices::TpmTis::Snapshot tis;
  std::span<const uint8_t> backend;
};
Result<VtpmRecord> decode_vtpm_record(const Record& r);

}  // namespace vigil::migrate
