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
// With a PCR mask (vigild --host-tpm-pcrs), the sealed object has no user auth, only a
// PolicyPCR policy on those host PCRs (SHA-256 bank) as they were when it was sealed: after
// the host boots something else, the key no longer unseals.
//
// Blob file layout: "VIGILSK2", u32 big-endian host PCR mask (bits 0-23), then u16 big-endian
// length + marshaled TPM2B_PUBLIC, then u16 length + marshaled TPM2B_PRIVATE, nothing after.
// parse_sealed_blob() checks all of it.
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
  uint32_t pcr_mask = 0;      // host PCRs the unseal policy checks (bit n: PCR n); 0 = none
};

inline constexpr uint32_t kHostPcrMask = 0xff'ffff;  // PCRs 0-23
// "0,7,16" -> mask; the error names the bad entry.
Result<uint32_t> parse_pcr_list(const std::string& text);
std::string format_pcr_list(uint32_t mask);

std::vector<uint8_t> format_sealed_blob(const SealedBlob& blob);
// Checks the framing and that both parts unmarshal exactly; errors say what is wrong.
Result<SealedBlob> parse_sealed_blob(std::span<const uint8_t> bytes);

// The state key of the vTPM whose state lives in `state_dir`: unsealed from its blob, or, for
// a vTPM without state yet, made, sealed and written. Refuses (never recreates) state that has
// no blob. Errors are one sentence naming the TCTI and the reason.
// A new key is sealed with a policy on the host PCRs in `pcr_mask` (0: none); an existing
// blob is unsealed under the policy it was sealed with.
Result<std::vector<uint8_t>> state_key(const std::string& tcti, const std::string& state_dir, uint32_t pcr_mask = 0);

}  // namespace vigil::vtpm
