// Fuzz target `sealed_blob`: the sealed vTPM state key file (vtpm/sealing.h), which vigild
// reads from a state directory that the domain's swtpm uid can write to.
//
// Invariant: whatever parses formats back to exactly the input bytes.
#include <cstdint>
#include <cstdlib>
#include <span>

#include "vtpm/sealing.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto blob = vigil::vtpm::parse_sealed_blob(std::span(data, size));
  if (blob) {
    const auto again = vigil::vtpm::format_sealed_blob(*blob);
    if (again.size() != size || !std::equal(again.begin(), again.end(), data)) std::abort();
  }
  return 0;
}
