// Boot payloads that are not a Linux Image (issue 14): a raw binary for the firmware's next
// stage, or an ELF64 RISC-V executable (U-Boot's uboot.elf), validated before loading.
#include <gtest/gtest.h>

#include <cstring>

#include "machine/loader.h"

namespace vigil::machine {
namespace {

constexpr uint64_t kLo = 0x80200000, kHi = 0x80200000 + (64u << 20);

template <typename T>
void put(std::vector<uint8_t>& b, size_t off, T v) {
  if (b.size() < off + sizeof(T)) b.resize(off + sizeof(T));
  std::memcpy(b.data() + off, &v, sizeof(T));
}

struct Seg {
  uint64_t addr, filesz, memsz;
  uint32_t type = 1;
};

// An ELF64 RISC-V executable: header, program headers, then each segment's bytes (0x5a..).
std::vector<uint8_t> elf(uint64_t entry, const std::vector<Seg>& segs, uint16_t machine = 243) {
  std::vector<uint8_t> b(64, 0);
  std::memcpy(b.data(), "\x7f" "ELF", 4);
  b[4] = 2;  // ELFCLASS64
  b[5] = 1;  // little-endian
  b[6] = 1;
  put<uint16_t>(b, 16, 2);  // ET_EXEC
  put<uint16_t>(b, 18, machine);
  put<uint64_t>(b, 24, entry);
  put<uint64_t>(b, 32, 64);  // phoff
  put<uint16_t>(b, 54, 56);
  put<uint16_t>(b, 56, static_cast<uint16_t>(segs.size()));
  uint64_t off = 64 + 56 * segs.size();
  for (size_t i = 0; i < segs.size(); ++i) {
    const size_t h = 64 + 56 * i;
    put<uint32_t>(b, h, segs[i].type);
    put<uint64_t>(b, h + 8, off);
    put<uint64_t>(b, h + 16, segs[i].addr);
    put<uint64_t>(b, h + 24, segs[i].addr);
    put<uint64_t>(b, h + 32, segs[i].filesz);
    put<uint64_t>(b, h + 40, segs[i].memsz);
    off += segs[i].filesz;
  }
  b.resize(off, 0x5a);
  return b;
}

TEST(Payload, RawBinaryLoadsAtTheKernelAddress) {
  const std::vector<uint8_t> raw(1000, 0x13);
  auto p = parse_payload(raw, "u-boot.bin", kLo, kLo, kHi);
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_FALSE(p->elf);
  EXPECT_EQ(p->entry, kLo);
  ASSERT_EQ(p->segments.size(), 1u);
  EXPECT_EQ(p->segments[0].addr, kLo);
  EXPECT_EQ(p->segments[0].file_size, 1000u);
  EXPECT_FALSE(is_linux_image(raw));
}

TEST(Payload, ElfSegmentsGoToTheirAddressesWithBssZeroed) {
  auto p = parse_payload(elf(kLo + 0x10, {{kLo, 0x100, 0x2000}, {kLo + 0x100000, 16, 16}, {0, 8, 8, 4}}),
                         "uboot.elf", kLo, kLo, kHi);
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_TRUE(p->elf);
  EXPECT_EQ(p->entry, kLo + 0x10);
  ASSERT_EQ(p->segments.size(), 2u) << "only PT_LOAD segments are loaded";
  EXPECT_EQ(p->segments[0].mem_size, 0x2000u);
  EXPECT_EQ(p->segments[0].file_offset, 64u + 3 * 56);
  EXPECT_EQ(p->segments[1].addr, kLo + 0x100000);
}

TEST(Payload, HostileElfFilesAreRefusedByName) {
  auto refused = [](const std::vector<uint8_t>& b, const char* what) {
    auto p = parse_payload(b, "evil.elf", kLo, kLo, kHi);
    EXPECT_FALSE(p) << what;
    if (!p) {
      EXPECT_EQ(p.error().message.rfind("payload 'evil.elf'", 0), 0u) << p.error().message;
      EXPECT_NE(p.error().message.find(what), std::string::npos) << p.error().message;
    }
  };
  refused(elf(kLo, {{kLo - 0x1000, 16, 16}}), "outside the guest memory");   // below the window (firmware)
  refused(elf(kLo, {{kHi - 8, 16, 16}}), "outside the guest memory");        // runs past the top
  refused(elf(kLo, {{~0ull - 4, 16, 16}}), "outside the guest memory");      // wraps around
  refused(elf(kLo, {{kLo, 32, 16}}), "more file bytes than memory");
  refused(elf(kLo, {{kLo, 64, 64}, {kLo + 32, 64, 64}}), "overlaps");
  refused(elf(kHi + 0x1000, {{kLo, 16, 16}}), "entry point");
  refused(elf(kLo, {{kLo, 16, 16, 4}}), "no loadable segment");
  refused(elf(kLo, {{kLo, 16, 16}}, 62), "another machine");
  auto b = elf(kLo, {{kLo, 16, 16}});
  put<uint64_t>(b, 64 + 8, 1u << 30);  // segment data far past the end of the file
  refused(b, "outside the file");
  b = elf(kLo, {{kLo, 16, 16}});
  put<uint16_t>(b, 56, 5000);
  refused(b, "program headers");
  b = elf(kLo, {{kLo, 16, 16}});
  put<uint64_t>(b, 32, ~0ull - 10);
  refused(b, "outside the file");
  b.resize(40);
  refused(b, "too short");
  refused({}, "empty");
  EXPECT_FALSE(parse_payload(std::vector<uint8_t>(kHi - kLo + 1, 1), "big.bin", kLo, kLo, kHi));
}

}  // namespace
}  // namespace vigil::machine
