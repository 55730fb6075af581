#include "devices/virtio_rng.h"

#include <sys/random.h>

#include <algorithm>
#include <array>
#include <cerrno>

namespace vigil::devices {

void VirtioRng::process_queue(unsigned, Virtqueue& vq) {
  while (auto chain = vq.pop()) vq.push_used(*chain, fill(*chain));
}

uint32_t VirtioRng::fill(const DescriptorChain& chain) {
  const uint64_t want = std::min<uint64_t>(chain.writable_len(), kMaxBytesPerRequest);
  std::array<uint8_t, 256> buf;  // getrandom returns up to 256 bytes without blocking or EINTR
  uint64_t done = 0;
  while (done < want) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(want - done, buf.size()));
    const ssize_t got = ::getrandom(buf.data(), n, 0);
    if (got < 0 && errno == EINTR) continue;
    // No entropy source at all: report what was delivered so far (possibly nothing).
    if (got <= 0) break;
    if (!chain.write(done, buf.data(), static_cast<size_t>(got))) break;
    done += static_cast<uint64_t>(got);
  }
  return static_cast<uint32_t>(done);
}

}  // namespace vigil::devices
