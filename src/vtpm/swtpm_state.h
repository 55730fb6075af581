// A swtpm's state as it travels in a snapshot (issue 9 with issue 11, README "vTPM"): the three
// blobs swtpm's control channel hands out with CMD_GET_STATEBLOB and takes back with
// CMD_SET_STATEBLOB (swtpm-ioctls(3)): permanent (seeds, NV, persistent objects), volatile
// (PCRs, loaded objects and sessions, taken with the TPM running) and savestate (after a
// TPM2_Shutdown(STATE); usually absent, then empty).
//
// With a state key (a sealed vTPM, vtpm/sealing.h) swtpm returns each blob encrypted and
// authenticated with that key (its own header plus TLV format, flag ENCRYPTED), so a snapshot
// holds no plaintext TPM secret and only a swtpm holding the same key, unsealed from the same
// vtpm-key.sealed by the same host TPM, can load it back.
//
// Bundle layout (little-endian): "VTPMST01", u32 blob count (3), then per blob
//   u32 type (1 permanent, 2 volatile, 3 savestate; each once, in this order) | u32 flags
//   (0 plaintext, 2 encrypted) | u32 length (<= kMaxBlob) | bytes.
// parse_swtpm_state() checks all of it; nothing may follow.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/error.h"

namespace vigil::vtpm {

inline constexpr uint32_t kBlobPermanent = 1, kBlobVolatile = 2, kBlobSavestate = 3;
inline constexpr uint32_t kBlobFlagEncrypted = 2;  // swtpm's PTM_STATE_FLAG_ENCRYPTED
inline constexpr uint32_t kMaxBlob = 1u << 20;      // a TPM 2.0 permanent state is ~ 10-100 KiB

struct StateBlob {
  uint32_t type = 0;
  uint32_t flags = 0;
  std::vector<uint8_t> data;
};

struct SwtpmState {
  std::vector<StateBlob> blobs;  // permanent, volatile, savestate
  bool encrypted() const;        // every non-empty blob carries the ENCRYPTED flag
};

std::vector<uint8_t> format_swtpm_state(const SwtpmState& state);
// Errors say what is wrong: "blob 2 is type 7, not volatile".
Result<SwtpmState> parse_swtpm_state(std::span<const uint8_t> bytes);
const char* blob_name(uint32_t type);

}  // namespace vigil::vtpm
