#include "devices/virtio_net.h"

#include <fmt/format.h>

#include <algorithm>
#include <mutex>
#include <random>
#include <utility>

namespace vigil::devices {

namespace {

// struct virtio_net_config (5.1.4): u8 mac[6], le16 status, le16 max_virtqueue_pairs,
// le16 mtu. Only mac and status belong to offered features; the other two are filled with
// what they would say (one queue pair, a 1500-byte MTU) so a driver that reads them anyway
// gets sense rather than an access fault.
constexpr uint32_t kCfgMac = 0;
constexpr uint32_t kCfgStatus = 6;
constexpr uint32_t kCfgMaxQueuePairs = 8;
constexpr uint32_t kCfgMtu = 10;
constexpr uint32_t kConfigSize = 12;
constexpr uint16_t kStatusLinkUp = 1;  // VIRTIO_NET_S_LINK_UP
constexpr uint16_t kDefaultMtu = 1500;

// struct virtio_net_hdr (5.1.6): u8 flags, u8 gso_type, le16 hdr_len, le16 gso_size,
// le16 csum_start, le16 csum_offset, le16 num_buffers.
constexpr size_t kHdrFlags = 0;
constexpr size_t kHdrGsoType = 1;
constexpr size_t kHdrNumBuffers = 10;
constexpr uint8_t kHdrFNeedsCsum = 1;  // VIRTIO_NET_HDR_F_NEEDS_CSUM
constexpr uint8_t kGsoNone = 0;        // VIRTIO_NET_HDR_GSO_NONE

void put_le16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

Result<MacAddress> parse_mac(std::string_view text) {
  MacAddress mac{};
  bool well_formed = text.size() == 17;
  for (size_t i = 0; well_formed && i < mac.size(); ++i) {
    const int hi = hex_value(text[3 * i]), lo = hex_value(text[3 * i + 1]);
    well_formed = hi >= 0 && lo >= 0 && (i == 5 || text[3 * i + 2] == ':');
    mac[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
  if (!well_formed) return make_error("MAC address '{}' is not of the form 52:54:00:12:34:56", text);
  if (mac[0] & 1) return make_error("MAC address {} is a multicast address; a NIC needs a unicast one", text);
  if (mac == MacAddress{}) return make_error("MAC address {} is all zeros", text);
  return mac;
}

MacAddress random_mac() {
  std::random_device rd;
  MacAddress mac;
  for (uint8_t& b : mac) b = static_cast<uint8_t>(rd());
  mac[0] = static_cast<uint8_t>((mac[0] & ~1u) | 2u);  // unicast, locally administered
  return mac;
}

std::string format_mac(const MacAddress& mac) {
  return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", mac[0], mac[1], mac[2], mac[3], mac[4],
                     mac[5]);
}

Result<std::unique_ptr<VirtioNet>> VirtioNet::create(std::unique_ptr<NetBackend> backend,
                                                     std::string_view mac) {
  if (!backend) return make_error("virtio-net needs a network backend");
  MacAddress address;
  if (mac.empty()) {
    address = random_mac();
  } else {
    auto parsed = parse_mac(mac);
    if (!parsed) return std::unexpected(parsed.error());
    address = *parsed;
  }
  return std::make_unique<VirtioNet>(std::move(backend), address);
}

VirtioNet::VirtioNet(std::unique_ptr<NetBackend> backend, const MacAddress& mac)
    : m_mac(mac), m_backend(std::move(backend)) {
  // Every member is initialized, so frames may start arriving now.
  m_backend->start([this](std::span<const uint8_t> frame) { receive_frame(frame); });
}

VirtioNet::~VirtioNet() {
  // The backend's thread calls receive_frame(): it must be gone before our state is.
  m_backend->stop();
}

void VirtioNet::receive_frame(std::span<const uint8_t> frame) {
  std::lock_guard lock(mutex());
  const bool fits_queue =
      m_rx_pending.size() < kRxQueueFrames && frame.size() <= kRxQueueBytes - m_rx_pending_bytes;
  if (!m_driver_ready || !m_link_up || frame.size() < NetBackend::kMinFrame ||
      frame.size() > NetBackend::kMaxFrame || !fits_queue) {
    ++m_stats.rx_dropped;
    return;
  }
  m_rx_pending.emplace_back(frame.begin(), frame.end());
  m_rx_pending_bytes += frame.size();
  // Deliver now if the driver is running with receive buffers posted (this also raises the
  // used-buffer interrupt); otherwise the frame waits for the next receiveq notification.
  if (transport()) transport()->kick_locked(kReceiveq);
}

void VirtioNet::set_link_up(bool up) {
  std::lock_guard lock(mutex());
  if (up == m_link_up) return;
  m_link_up = up;
  if (!up) drop_pending_rx();
  if (transport()) transport()->config_changed_locked();
}

VirtioNet::Stats VirtioNet::stats() const {
  std::lock_guard lock(mutex());
  return m_stats;
}

bool VirtioNet::accept_features(uint64_t) {
  // Every subset of MAC | STATUS works: without MAC the driver picks its own address (the
  // backends do not filter on it), without STATUS it assumes the link is up.
  m_driver_ready = true;
  return true;
}

uint32_t VirtioNet::config_size() const {
  return kConfigSize;
}

void VirtioNet::read_config(uint32_t offset, std::span<uint8_t> dst) const {
  std::array<uint8_t, kConfigSize> cfg{};
  std::copy(m_mac.begin(), m_mac.end(), cfg.begin() + kCfgMac);
  put_le16(&cfg[kCfgStatus], m_link_up ? kStatusLinkUp : 0);
  put_le16(&cfg[kCfgMaxQueuePairs], 1);
  put_le16(&cfg[kCfgMtu], kDefaultMtu);
  std::copy_n(cfg.begin() + offset, dst.size(), dst.begin());
}

void VirtioNet::process_queue(unsigned q, Virtqueue& vq) {
  if (q == kReceiveq) receive(vq);
  if (q == kTransmitq) transmit(vq);
}

void VirtioNet::reset() {
  m_driver_ready = false;
  drop_pending_rx();
}

void VirtioNet::drop_pending_rx() {
  m_stats.rx_dropped += m_rx_pending.size();
  m_rx_pending.clear();
  m_rx_pending_bytes = 0;
}

void VirtioNet::receive(Virtqueue& vq) {
  // 5.1.6.3.1 / 5.1.6.4: header zeroed (no offloads: flags 0, GSO_NONE) with num_buffers 1,
  // since without MRG_RXBUF a packet never spans chains.
  std::array<uint8_t, kHdrSize> hdr{};
  put_le16(&hdr[kHdrNumBuffers], 1);
  // Pop a chain only with a frame to put in it: a popped chain cannot be handed back unused.
  while (!m_rx_pending.empty()) {
    auto chain = vq.pop();
    if (!chain) return;
    std::vector<uint8_t> frame = std::move(m_rx_pending.front());
    m_rx_pending.pop_front();
    m_rx_pending_bytes -= frame.size();
    const uint64_t len = kHdrSize + frame.size();
    if (chain->writable_len() < len || !chain->write(0, hdr.data(), hdr.size()) ||
        !chain->write(kHdrSize, frame.data(), frame.size())) {
      // The guest sees a used buffer of length 0, shorter than any header, and discards it.
      ++m_stats.rx_dropped;
      vq.push_used(*chain, 0);
      continue;
    }
    ++m_stats.rx_frames;
    m_stats.rx_bytes += frame.size();
    vq.push_used(*chain, static_cast<uint32_t>(len));
  }
}

void VirtioNet::transmit(Virtqueue& vq) {
  while (auto chain = vq.pop()) {
    if (!transmit_one(*chain)) ++m_stats.tx_dropped;
    // 5.1.6.2: the device writes nothing into transmit buffers.
    vq.push_used(*chain, 0);
  }
}

bool VirtioNet::transmit_one(const DescriptorChain& chain) {
  const uint64_t total = chain.readable_len();
  if (total < kHdrSize + NetBackend::kMinFrame || total > kMaxPacket) return false;
  std::array<uint8_t, kHdrSize> hdr;
  if (!chain.read(0, hdr.data(), hdr.size())) return false;
  // 5.1.6.2.1: without CSUM / HOST_* negotiated the driver must set neither; such a frame
  // would leave with a partial checksum or as a super-frame, so it does not leave at all.
  if ((hdr[kHdrFlags] & kHdrFNeedsCsum) || hdr[kHdrGsoType] != kGsoNone) return false;
  const size_t frame_len = static_cast<size_t>(total - kHdrSize);
  m_tx_buf.resize(frame_len);
  if (!chain.read(kHdrSize, m_tx_buf.data(), frame_len)) return false;
  if (!m_link_up) return false;
  m_backend->send(m_tx_buf);
  ++m_stats.tx_frames;
  m_stats.tx_bytes += frame_len;
  return true;
}

}  // namespace vigil::devices
