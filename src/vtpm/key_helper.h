// state_key() (vtpm/sealing.h) in a process of its own: `EXE --vtpm-key-helper TCTI DIR MASK`,
// where EXE is vigild itself. tpm2-tss can block without a deadline (tcti-swtpm's
// initialization reads its control channel with no timeout), so a host TPM that accepts a
// connection and never answers would otherwise wedge vigild's vTPM launcher, and every
// domain creation behind it; the helper is killed at the deadline instead. It also keeps
// ESAPI's parsing of the host TPM's answers out of vigild's address space.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/error.h"

namespace vigil::vtpm {

inline constexpr const char* kKeyHelperFlag = "--vtpm-key-helper";

// Runs `exe kKeyHelperFlag tcti state_dir pcr_mask` and returns the key it reports, or its error, or
// "no answer within N s" when it outlives `timeout_ms` (then it is killed).
Result<std::vector<uint8_t>> state_key_via_helper(const std::string& exe, const std::string& tcti,
                                                  const std::string& state_dir, uint32_t pcr_mask,
                                                  unsigned timeout_ms);

// The helper's side (call from main when argv[1] is kKeyHelperFlag): writes 'K' and the key,
// or 'E' and the error sentence, to stdout; returns the exit status.
int key_helper_main(int argc, char** argv);

}  // namespace vigil::vtpm
