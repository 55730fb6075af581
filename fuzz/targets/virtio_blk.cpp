// Fuzz target `virtio_blk`: VirtioBlk behind VirtioMmio with arbitrary descriptor chains
// in fake guest memory (virtio_harness.h describes the input and the invariants). The
// disk is a 16-sector image in /dev/shm (or $TMPDIR), rewritten before every input so
// runs are reproducible; flags bit 4 opens it read-only.
//
// Extra invariant: the image never changes size (requests past the capacity fail).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "devices/virtio_blk.h"
#include "virtio_harness.h"

namespace {

constexpr size_t kImageBytes = 16 * 512;
std::string g_path;
std::vector<uint8_t> g_pattern;

void cleanup() {
  if (!g_path.empty()) ::unlink(g_path.c_str());
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* tmp = std::getenv("TMPDIR");
  std::string dir = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : (tmp && *tmp ? tmp : "/tmp");
  g_path = vigil::fuzz::make_temp(dir, "vigil-fuzz-blk", false);
  std::atexit(cleanup);
  g_pattern.resize(kImageBytes);
  for (size_t i = 0; i < kImageBytes; ++i) g_pattern[i] = static_cast<uint8_t>(i * 7 + i / 512 + 1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  {
    const int fd = ::open(g_path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
    FUZZ_CHECK(fd >= 0);
    FUZZ_CHECK(::write(fd, g_pattern.data(), kImageBytes) == static_cast<ssize_t>(kImageBytes));
    ::close(fd);
  }
  vigil::fuzz::Input in(data, size);
  const uint8_t flags = in.u8();
  {
    auto blk = vigil::devices::VirtioBlk::open(g_path, (flags & 16) != 0, (flags & 32) ? "fuzz-serial-0123456789abcdef" : "");
    FUZZ_CHECK(blk.has_value());
    FUZZ_CHECK((*blk)->capacity_sectors() == kImageBytes / 512);
    vigil::fuzz::run_virtio(**blk, 2, flags, in);
  }
  struct stat st {};
  FUZZ_CHECK(::stat(g_path.c_str(), &st) == 0 && st.st_size == static_cast<off_t>(kImageBytes));
  return 0;
}
