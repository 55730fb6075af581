// A vTPM's state key sealed to the host TPM (issue 9 step 4, README "vTPM"), with tpm2-tss
// ESAPI through a TCTI string (`device:/dev/tpmrm0`, `swtpm:host=127.0.0.1,port=2321`, ...).
//
// The key is 32 random bytes (AES-256 for swtpm's `--key`). It is sealed as a KEYEDHASH data
// object (fixedTPM, fixedParent) under a primary ECC P-256 storage key that the host TPM
// derives afresh from its owner seed each time (never stored), so the blob opens only on the
// TPM that made it. The key crosses to and from the TPM in a session salted with that
// primary key and with parameter encryption, never in the clear. On disk, in the state
// directory: only the sealed blob (kSealedKeyFile, 0600, root's) and swtpm's encrypted state.
//
// Blob file layout: "VIGILSK1", then u16 big-endian length + marshaled TPM2B_PUBLIC, then u16
// length + marshaled TPM2B_PRIVATE, nothing after. parse_sealed_blob() checks all of it.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/error.h"

namespace vigil::vtpm {

inline constexpr const char* kSealedKeyFile = "vtpm-key.sealed";
inline constexpr size_t kStateKeyBytes = 32;

struct SealedBlob {
  std::vector<uint8_t> pub;   // marshaled TPM2B_PUBLIC
  std::vector<uint8_t> priv;  // marshaled TPM2B_PRIVATE
};

std::vector<uint8_t> format_sealed_blob(const SealedBlob& blob);
// Checks the framing and that both parts unmarshal exactly; errors say what is wrong.
Result<SealedBlob> parse_sealed_blob(std::span<const uint8_t> bytes);

// The state key of the vTPM whose state lives in `state_dir`: unsealed from its blob, or, for
// a vTPM without state yet, made, sealed and written. Refuses (never recreates) state that has
// no blob. Errors are one sentence naming the TCTI and the reason.
Result<std::vector<uint8_t>> state_key(const std::string& tcti, const std::string& state_dir);

}  // namespace vigil::vtpm
