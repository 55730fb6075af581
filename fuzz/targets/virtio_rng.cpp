// Fuzz target `virtio_rng`: VirtioRng behind VirtioMmio with arbitrary descriptor chains
// in fake guest memory (virtio_harness.h describes the input and the invariants).
#include "devices/virtio_rng.h"
#include "virtio_harness.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vigil::fuzz::Input in(data, size);
  const uint8_t flags = in.u8();
  vigil::devices::VirtioRng rng;
  vigil::fuzz::run_virtio(rng, 4, flags, in);
  return 0;
}
