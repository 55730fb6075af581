#include "machine/loader.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sys/stat.h>

namespace vigil::machine {

namespace {
constexpr size_t kHeaderSize = 64;
constexpr size_t kOffTextOffset = 8, kOffImageSize = 16, kOffMagic2 = 56;
constexpr uint32_t kMagic2 = 0x05435352;  // "RSC\x05"

uint64_t le64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
}  // namespace

Result<std::vector<uint8_t>> read_image_file(const std::string& path, const char* what, uint64_t max_size) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return make_error("cannot read {} '{}': {}", what, path, std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return make_error("{} '{}' is not a regular file", what, path);
  if (st.st_size == 0) return make_error("{} '{}' is empty", what, path);
  if (static_cast<uint64_t>(st.st_size) > max_size) {
    return make_error("{} '{}' is {} bytes, more than the {} bytes of guest memory available for it", what, path,
                      st.st_size, max_size);
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error("cannot open {} '{}': {}", what, path, std::strerror(errno));
  std::vector<uint8_t> data(static_cast<size_t>(st.st_size));
  if (!in.read(reinterpret_cast<char*>(data.data()), static_cast<std::streamsize>(data.size()))) {
    return make_error("reading {} '{}' failed", what, path);
  }
  return data;
}

Result<KernelImage> parse_kernel_image(std::vector<uint8_t> bytes, const std::string& path) {
  if (bytes.size() < kHeaderSize) return make_error("kernel '{}' is too small to be a RISC-V Linux Image", path);
  uint32_t magic2;
  std::memcpy(&magic2, bytes.data() + kOffMagic2, 4);
  if (magic2 != kMagic2) {
    if (bytes.size() >= 4 && std::memcmp(bytes.data(), "\x7f" "ELF", 4) == 0) {
      return make_error("kernel '{}' is an ELF file (vmlinux); pass the flat Image (arch/riscv/boot/Image)", path);
    }
    return make_error("kernel '{}' is not a RISC-V Linux Image (no \"RSC\\x05\" magic in its header)", path);
  }
  KernelImage k;
  k.text_offset = le64(bytes.data() + kOffTextOffset);
  k.image_size = le64(bytes.data() + kOffImageSize);
  if (k.text_offset % 0x1000 != 0 || k.text_offset > (1ull << 30)) {
    return make_error("kernel '{}' has an invalid text_offset {:#x}", path, k.text_offset);
  }
  if (k.image_size < bytes.size()) k.image_size = bytes.size();
  if (k.image_size > (1ull << 32)) return make_error("kernel '{}' claims an absurd image_size {:#x}", path, k.image_size);
  k.bytes = std::move(bytes);
  return k;
}

}  // namespace vigil::machine
