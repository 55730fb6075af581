// Fuzz target `kernel_image`: the boot image parsers on arbitrary bytes: parse_kernel_image
// (a Linux Image) and parse_payload (a firmware's next stage: raw binary or ELF).
//
// Invariants: on success the magic is there, text_offset is page-aligned and at most
// 1 GiB, image_size covers the file and is at most 4 GiB, and the bytes are unchanged.
// A payload's segments lie inside the input and inside the memory window given, do not
// overlap, and hold the entry point.
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
  constexpr uint64_t lo = 0x80200000, hi = 0x80200000 + (16u << 20);
  auto p = vigil::machine::parse_payload(bytes, "fuzz.payload", lo, lo, hi);
  if (p) {
    bool entry_in = false;
    for (size_t i = 0; i < p->segments.size(); ++i) {
      const auto& s = p->segments[i];
      FUZZ_CHECK(s.file_size <= s.mem_size && s.file_offset <= size && s.file_size <= size - s.file_offset);
      FUZZ_CHECK(s.addr >= lo && s.mem_size <= hi - s.addr);
      for (size_t j = 0; j < i; ++j) {
        const auto& o = p->segments[j];
        FUZZ_CHECK(s.addr + s.mem_size <= o.addr || o.addr + o.mem_size <= s.addr);
      }
      entry_in |= p->entry >= s.addr && p->entry - s.addr < s.mem_size;
    }
    FUZZ_CHECK(entry_in && !p->segments.empty());
  } else {
    FUZZ_CHECK(p.error().message.rfind("payload 'fuzz.payload'", 0) == 0);
  }
  return 0;
}
