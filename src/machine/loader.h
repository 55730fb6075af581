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

// Checks the RISC-V Image header (magic "RSC\x05", sane offsets) of `bytes`.
Result<KernelImage> parse_kernel_image(std::vector<uint8_t> bytes, const std::string& path);

}  // namespace vigil::machine
