// virtio-console (VIRTIO 1.1/1.2, 5.3 "Console Device") with a single port: queue 0 is
// port 0's receiveq (host -> guest), queue 1 its transmitq (guest -> host). MULTIPORT and
// EMERG_WRITE are not offered, so there are no control queues. VIRTIO_CONSOLE_F_SIZE is
// offered: set_size() updates cols/rows and sends a configuration change notification,
// which Linux turns into a terminal resize of the hvc console. Linux names it /dev/hvcN.
//
// Output (transmitq) is handed to the sink on the vCPU thread that notified the queue,
// with the device mutex held, so bytes leave in the order the guest queued them; the sink
// must not call back into this device. Input arrives from any host thread through
// push_input(): bytes go straight into receive buffers the guest has posted, and what does
// not fit waits in a bounded buffer (kInputCapacity) until the guest posts more. That
// buffer survives device resets, so keystrokes typed while the driver (re)initializes the
// device are delivered once it is running.
//
// Thread safety: every public member may be called from any thread (the device mutex,
// VirtioDevice::mutex(), guards all state).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>

#include "devices/virtio_mmio.h"

namespace vigil::devices {

class VirtioConsole final : public VirtioDevice {
 public:
  static constexpr uint32_t kQueueSize = 64;
  static constexpr unsigned kReceiveq = 0;   // port 0 receiveq (5.3.2)
  static constexpr unsigned kTransmitq = 1;  // port 0 transmitq
  // Host input held while the guest has no receive buffers posted.
  static constexpr size_t kInputCapacity = 64 * 1024;

  using OutputSink = std::function<void(const uint8_t*, size_t)>;

  // output receives every byte the guest transmits; may be empty to discard output.
  explicit VirtioConsole(OutputSink output);

  // Host -> guest input. Takes as many of the n bytes as fit (in guest buffers plus the
  // input buffer) and returns how many; the caller keeps the rest and retries later.
  size_t push_input(const uint8_t* data, size_t n);
  // How many bytes push_input would accept right now (at least).
  size_t input_space() const;
  // The host terminal size (VIRTIO_CONSOLE_F_SIZE); a change notifies the guest.
  void set_size(uint16_t cols, uint16_t rows);

  // VirtioDevice
  std::string_view name() const override { return "virtio-console"; }
  uint32_t device_id() const override { return 3; }
  uint64_t device_features() const override;
  bool accept_features(uint64_t) override { return true; }
  uint32_t config_size() const override;
  void read_config(uint32_t offset, std::span<uint8_t> dst) const override;
  unsigned queue_count() const override { return 2; }
  uint32_t queue_max_size(unsigned) const override { return kQueueSize; }
  void process_queue(unsigned q, Virtqueue& vq) override;
  void reset() override {}
  // Snapshot: u16 cols | u16 rows | u32 count | count bytes of pending host input.
  bool saveable() const override { return true; }
  std::vector<uint8_t> save_backend() const override;
  Result<void> restore_backend(std::span<const uint8_t> state) override;

 private:
  // Caller holds mutex().
  void receive(Virtqueue& vq);
  void transmit(Virtqueue& vq);

  const OutputSink m_output;
  std::deque<uint8_t> m_input;
  uint16_t m_cols = 0;
  uint16_t m_rows = 0;
};

}  // namespace vigil::devices
