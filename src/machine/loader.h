// Boot images: the Linux kernel Image (Documentation/riscv/boot-image-header.rst), the
// initrd and raw firmware binaries. Everything is validated before it touches guest RAM.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/error.h"

namespace vigil::machine {

// Reads a whole file, refusing a missing, unreadable, empty or larger-than-`max_size` one.
// `what` names the file's role in error messages ("kernel", "initrd", ...).
Result<std::vector<uint8_t>> read_image_file(const std::string& path, const char* what, uint64_t max_size);

struct KernelImage {
  std::vector<uint8_t> bytes;
  uint64_t text_offset = 0;  // load offset from the start of RAM
  uint64_t image_size = 0;   // memory the kernel occupies, bss included
};

// True if `bytes` start with a RISC-V Linux Image header (the "RSC\x05" magic).
bool is_linux_image(const std::vector<uint8_t>& bytes);

// Checks the RISC-V Image header (magic "RSC\x05", sane offsets) of `bytes`.
Result<KernelImage> parse_kernel_image(std::vector<uint8_t> bytes, const std::string& path);

}  // namespace vigil::machine

namespace vigil::machine {

// A firmware payload that is not a Linux Image (U-Boot, a bare-metal program): a raw binary
// (loaded as it is at `load_addr`) or an ELF64 RISC-V executable (its PT_LOAD segments at
// their physical addresses). Every segment must lie inside [lo, hi); the entry point must
// be inside a loaded segment. The ELF is untrusted input (fuzz/targets/payload.cpp).
struct PayloadSegment {
  uint64_t addr = 0;
  uint64_t file_offset = 0;
  uint64_t file_size = 0;
  uint64_t mem_size = 0;  // >= file_size; the rest is zeroed
};
struct Payload {
  bool elf = false;
  uint64_t entry = 0;
  std::vector<PayloadSegment> segments;
};
Result<Payload> parse_payload(const std::vector<uint8_t>& bytes, const std::string& path, uint64_t load_addr,
                              uint64_t lo, uint64_t hi);

}  // namespace vigil::machine
