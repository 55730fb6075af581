// virtio-net (VIRTIO 1.1/1.2, 5.1 "Network Device"), one queue pair and no control queue:
// queue 0 is receiveq1 (host -> guest), queue 1 transmitq1 (guest -> host). Frames go to
// and come from a NetBackend (net_backend.h): libslirp user networking or a host TAP.
//
// Features offered: VIRTIO_NET_F_MAC (the configured address) and VIRTIO_NET_F_STATUS
// (link up unless set_link_up(false)); no checksum or segmentation offloads, no
// MRG_RXBUF, no MQ. Every buffer therefore starts with the 12-byte struct virtio_net_hdr
// (5.1.6: VERSION_1 makes num_buffers part of it), and a received frame fills exactly one
// descriptor chain. Linux 6.1 then posts "small" receive buffers of 12 + 1518 bytes.
//
// The guest is untrusted:
//  * transmit chains (5.1.6.2) must hold at least a header and an Ethernet header and at
//    most kMaxPacket bytes, and ask for no offload (gso_type NONE, no NEEDS_CSUM, both
//    only allowed once negotiated); anything else is returned used with nothing sent;
//  * receive chains too small for the header and the frame, or in memory DmaMemory
//    refuses, are returned used with length 0 and the frame is dropped (shorter than any
//    header: Linux counts an rx length error and reposts the buffer);
//  * frames for the guest wait in a bounded queue (kRxQueueFrames / kRxQueueBytes) while
//    the guest posts no receive buffers, and are dropped beyond it. Before the driver has
//    negotiated features, or while the link is down, frames are dropped at once. The
//    queue is emptied on device reset: its frames were meant for the previous driver.
// Drops are counted in stats().
//
// Threads: transmit runs on the vCPU thread that notifies the queue (device mutex held) and
// hands frames to NetBackend::send, which never blocks. Received frames arrive on the
// backend's I/O thread through receive_frame(), which takes the device mutex and serves the
// receive queue through VirtioTransport::kick_locked (as VirtioConsole::push_input does).
// The destructor stops the backend's thread before anything else goes away, so the device
// may be destroyed while the backend is busy. As for every virtio device, the VirtioMmio
// using it must be destroyed first (or at least not be used any more).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "devices/net_backend.h"
#include "devices/virtio_mmio.h"

namespace vigil::devices {

using MacAddress = std::array<uint8_t, 6>;

// "52:54:00:12:34:56" (hex digits in either case). Refuses anything else, multicast
// addresses (bit 0 of the first octet) and the all-zero address.
Result<MacAddress> parse_mac(std::string_view text);
// A random unicast, locally administered address (02:xx:xx:xx:xx:xx family, IEEE 802 bit 1
// of the first octet set), as NetConfig's "" asks for.
MacAddress random_mac();
// Lower-case, colon-separated.
std::string format_mac(const MacAddress& mac);

class VirtioNet final : public VirtioDevice {
 public:
  static constexpr uint32_t kQueueSize = 256;
  static constexpr unsigned kReceiveq = 0;   // receiveq1 (5.1.2)
  static constexpr unsigned kTransmitq = 1;  // transmitq1
  // 5.1.6: struct virtio_net_hdr, num_buffers included.
  static constexpr uint32_t kHdrSize = 12;
  // Largest transmit chain / received packet, header included: 65550 bytes.
  static constexpr uint64_t kMaxPacket = kHdrSize + NetBackend::kMaxFrame;
  // Frames for the guest held while it has no receive buffers posted.
  static constexpr size_t kRxQueueFrames = 256;
  static constexpr size_t kRxQueueBytes = 4u << 20;

  // 5.1.3 feature bits.
  static constexpr uint64_t kFMac = 1ull << 5;
  static constexpr uint64_t kFStatus = 1ull << 16;

  struct Stats {
    uint64_t tx_frames = 0;  // handed to the backend
    uint64_t tx_bytes = 0;
    uint64_t tx_dropped = 0;  // malformed or unreadable transmit chains, or link down
    uint64_t rx_frames = 0;   // written into guest receive buffers
    uint64_t rx_bytes = 0;
    uint64_t rx_dropped = 0;  // no driver, link down, queue full, buffer too small/unwritable
  };

  // mac as NetConfig::mac: "" picks random_mac(). Fails with one sentence on a malformed
  // MAC or a null backend. Starts the backend.
  static Result<std::unique_ptr<VirtioNet>> create(std::unique_ptr<NetBackend> backend, std::string_view mac);
  // backend must not be null; it is started here.
  VirtioNet(std::unique_ptr<NetBackend> backend, const MacAddress& mac);
  ~VirtioNet() override;

  // A frame for the guest (no virtio header). Any thread except one holding mutex().
  void receive_frame(std::span<const uint8_t> frame);
  // The STATUS link bit; a change sends a configuration change notification.
  void set_link_up(bool up);
  const MacAddress& mac() const { return m_mac; }
  Stats stats() const;
  NetBackend& backend() const { return *m_backend; }

  // VirtioDevice
  std::string_view name() const override { return "virtio-net"; }
  uint32_t device_id() const override { return 1; }
  uint64_t device_features() const override { return kFMac | kFStatus; }
  bool accept_features(uint64_t features) override;
  uint32_t config_size() const override;
  void read_config(uint32_t offset, std::span<uint8_t> dst) const override;
  unsigned queue_count() const override { return 2; }
  uint32_t queue_max_size(unsigned) const override { return kQueueSize; }
  void process_queue(unsigned q, Virtqueue& vq) override;
  void reset() override;

 private:
  // Caller holds mutex().
  void receive(Virtqueue& vq);
  void transmit(Virtqueue& vq);
  bool transmit_one(const DescriptorChain& chain);
  void drop_pending_rx();

  const MacAddress m_mac;
  const std::unique_ptr<NetBackend> m_backend;
  bool m_driver_ready = false;  // FEATURES_OK accepted since the last reset
  bool m_link_up = true;
  std::deque<std::vector<uint8_t>> m_rx_pending;
  size_t m_rx_pending_bytes = 0;
  std::vector<uint8_t> m_tx_buf;  // staging for one transmitted frame
  Stats m_stats;
};

}  // namespace vigil::devices
