// Fuzz target `kernel_image`: parse_kernel_image on arbitrary bytes.
//
// Invariants: on success the magic is there, text_offset is page-aligned and at most
// 1 GiB, image_size covers the file and is at most 4 GiB, and the bytes are unchanged.
#include <cstdint>
#include <cstring>
#include <vector>

#include "fuzz_input.h"
#include "machine/loader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> bytes(data, data + size);
  auto k = vigil::machine::parse_kernel_image(bytes, "fuzz.Image");
  if (k) {
    FUZZ_CHECK(size >= 64 && std::memcmp(data + 56, "RSC\x05", 4) == 0);
    FUZZ_CHECK(k->text_offset % 0x1000 == 0 && k->text_offset <= (1ull << 30));
    FUZZ_CHECK(k->image_size >= size && k->image_size <= (1ull << 32));
    FUZZ_CHECK(k->bytes == bytes);
  } else {
    FUZZ_CHECK(!k.error().message.empty());
  }
  return 0;
}
