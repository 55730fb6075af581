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

bool is_linux_image(const std::vector<uint8_t>& bytes) {
  if (bytes.size() < kHeaderSize) return false;
  uint32_t magic2;
  std::memcpy(&magic2, bytes.data() + kOffMagic2, 4);
  return magic2 == kMagic2;
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

namespace vigil::machine {

namespace {
template <typename T>
T rd(const std::vector<uint8_t>& b, uint64_t off) {
  T v;
  std::memcpy(&v, b.data() + off, sizeof(T));
  return v;
}
// Checked a + b <= limit without overflow.
bool fits(uint64_t a, uint64_t b, uint64_t limit) { return a <= limit && b <= limit - a; }
}  // namespace

Result<Payload> parse_payload(const std::vector<uint8_t>& bytes, const std::string& path, uint64_t load_addr,
                              uint64_t lo, uint64_t hi) {
  Payload p;
  if (bytes.empty()) return make_error("payload '{}' is empty", path);
  if (bytes.size() < 4 || std::memcmp(bytes.data(), "\x7f" "ELF", 4) != 0) {
    // A raw binary: its first byte is its entry, as fw_jump expects at the kernel address.
    if (load_addr < lo || !fits(load_addr, bytes.size(), hi)) {
      return make_error("payload '{}' ({} bytes) does not fit in guest memory at {:#x}", path, bytes.size(), load_addr);
    }
    p.entry = load_addr;
    p.segments.push_back({load_addr, 0, bytes.size(), bytes.size()});
    return p;
  }
  // ELF64 little-endian RISC-V executable (System V gABI, "ELF header" and "Program header").
  constexpr uint64_t kEhdrSize = 64, kPhdrSize = 56;
  constexpr uint16_t kEtExec = 2, kEmRiscv = 243;
  constexpr uint32_t kPtLoad = 1;
  constexpr size_t kMaxSegments = 64;
  if (bytes.size() < kEhdrSize) return make_error("payload '{}' is an ELF file too short for its header", path);
  if (bytes[4] != 2 || bytes[5] != 1) return make_error("payload '{}' is not a 64-bit little-endian ELF file", path);
  if (rd<uint16_t>(bytes, 16) != kEtExec) return make_error("payload '{}' is an ELF file but not an executable", path);
  if (rd<uint16_t>(bytes, 18) != kEmRiscv) return make_error("payload '{}' is an ELF file for another machine than RISC-V", path);
  p.elf = true;
  p.entry = rd<uint64_t>(bytes, 24);
  const uint64_t phoff = rd<uint64_t>(bytes, 32);
  const uint16_t phentsize = rd<uint16_t>(bytes, 54), phnum = rd<uint16_t>(bytes, 56);
  if (phentsize != kPhdrSize) return make_error("payload '{}': ELF program header size {} is not {}", path, phentsize, kPhdrSize);
  if (phnum == 0 || phnum > kMaxSegments) return make_error("payload '{}': ELF has {} program headers (1..{} allowed)", path, phnum, kMaxSegments);
  if (!fits(phoff, uint64_t{phnum} * kPhdrSize, bytes.size())) {
    return make_error("payload '{}': ELF program headers lie outside the file", path);
  }
  bool entry_loaded = false;
  for (unsigned i = 0; i < phnum; ++i) {
    const uint64_t h = phoff + uint64_t{i} * kPhdrSize;
    if (rd<uint32_t>(bytes, h) != kPtLoad) continue;
    PayloadSegment s{rd<uint64_t>(bytes, h + 24), rd<uint64_t>(bytes, h + 8), rd<uint64_t>(bytes, h + 32),
                     rd<uint64_t>(bytes, h + 40)};
    if (s.mem_size == 0) continue;
    if (s.file_size > s.mem_size) return make_error("payload '{}': ELF segment {} has more file bytes than memory", path, i);
    if (!fits(s.file_offset, s.file_size, bytes.size())) {
      return make_error("payload '{}': ELF segment {} lies outside the file", path, i);
    }
    if (s.addr < lo || !fits(s.addr, s.mem_size, hi)) {
      return make_error("payload '{}': ELF segment {} at {:#x} ({} bytes) is outside the guest memory it may use ({:#x}..{:#x})",
                        path, i, s.addr, s.mem_size, lo, hi);
    }
    for (const PayloadSegment& o : p.segments) {
      if (s.addr < o.addr + o.mem_size && o.addr < s.addr + s.mem_size) {
        return make_error("payload '{}': ELF segment {} overlaps another", path, i);
      }
    }
    entry_loaded |= p.entry >= s.addr && p.entry - s.addr < s.mem_size;
    p.segments.push_back(s);
  }
  if (p.segments.empty()) return make_error("payload '{}': ELF file has no loadable segment", path);
  if (!entry_loaded) return make_error("payload '{}': ELF entry point {:#x} is not in a loaded segment", path, p.entry);
  return p;
}

}  // namespace vigil::machine
