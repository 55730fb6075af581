// virtio-rng (VIRTIO 1.1/1.2, 5.4 "Entropy Device"): one request queue whose
// device-writable buffers are filled from the host's getrandom(2). No features and no
// configuration space. Linux drives it as hw_random "virtio_rng".
//
// Each request is filled up to kMaxBytesPerRequest (5.4.6.1 lets the device use less
// than the whole buffer); device-readable buffers in a request are ignored.
#pragma once

#include <cstdint>

#include "devices/virtio_mmio.h"

namespace vigil::devices {

class VirtioRng final : public VirtioDevice {
 public:
  static constexpr uint32_t kQueueSize = 64;
  // Bounds the work one request makes a vCPU do. Linux asks for far less at a time.
  static constexpr uint32_t kMaxBytesPerRequest = 64 * 1024;

  VirtioRng() = default;

  // VirtioDevice
  std::string_view name() const override { return "virtio-rng"; }
  uint32_t device_id() const override { return 4; }
  uint64_t device_features() const override { return 0; }
  bool accept_features(uint64_t) override { return true; }
  uint32_t config_size() const override { return 0; }
  void read_config(uint32_t, std::span<uint8_t>) const override {}
  unsigned queue_count() const override { return 1; }
  uint32_t queue_max_size(unsigned) const override { return kQueueSize; }
  void process_queue(unsigned q, Virtqueue& vq) override;
  void reset() override {}
  // Snapshot: no state of its own beyond the transport's.
  bool saveable() const override { return true; }
  Result<void> restore_backend(std::span<const uint8_t> state) override {
    if (!state.empty()) return make_error("virtio-rng state is {} bytes, not 0", state.size());
    return {};
  }

 private:
  // Returns how many bytes of the chain's writable buffers were filled.
  uint32_t fill(const DescriptorChain& chain);
};

}  // namespace vigil::devices
