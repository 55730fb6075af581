#include "devices/virtio_console.h"

#include <algorithm>
#include <array>
#include <mutex>
#include <utility>
#include <vector>

namespace vigil::devices {

namespace {

constexpr uint64_t kFSize = 1ull << 0;  // VIRTIO_CONSOLE_F_SIZE (5.3.3)

// struct virtio_console_config (5.3.4): le16 cols, le16 rows, le32 max_nr_ports,
// le32 emerg_wr. The last two only mean something with MULTIPORT / EMERG_WRITE.
constexpr uint32_t kCfgCols = 0;
constexpr uint32_t kCfgRows = 2;
constexpr uint32_t kConfigSize = 12;

// Bytes copied per DmaMemory access when moving data through the host.
constexpr size_t kChunk = 4096;

}  // namespace

VirtioConsole::VirtioConsole(OutputSink output) : m_output(std::move(output)) {}

size_t VirtioConsole::push_input(const uint8_t* data, size_t n) {
  if (data == nullptr || n == 0) return 0;
  std::lock_guard lock(mutex());
  const size_t accepted = std::min(n, kInputCapacity - m_input.size());
  m_input.insert(m_input.end(), data, data + accepted);
  // Deliver now if the driver is running with receive buffers posted (this also raises
  // the used-buffer interrupt); otherwise the bytes wait for the next receiveq notify.
  if (transport()) transport()->kick_locked(kReceiveq);
  return accepted;
}

size_t VirtioConsole::input_space() const {
  std::lock_guard lock(mutex());
  return kInputCapacity - m_input.size();
}

void VirtioConsole::set_size(uint16_t cols, uint16_t rows) {
  std::lock_guard lock(mutex());
  if (cols == m_cols && rows == m_rows) return;
  m_cols = cols;
  m_rows = rows;
  if (transport()) transport()->config_changed_locked();
}

uint64_t VirtioConsole::device_features() const {
  return kFSize;
}

uint32_t VirtioConsole::config_size() const {
  return kConfigSize;
}

void VirtioConsole::read_config(uint32_t offset, std::span<uint8_t> dst) const {
  std::array<uint8_t, kConfigSize> cfg{};
  cfg[kCfgCols] = static_cast<uint8_t>(m_cols);
  cfg[kCfgCols + 1] = static_cast<uint8_t>(m_cols >> 8);
  cfg[kCfgRows] = static_cast<uint8_t>(m_rows);
  cfg[kCfgRows + 1] = static_cast<uint8_t>(m_rows >> 8);
  std::copy_n(cfg.begin() + offset, dst.size(), dst.begin());
}

void VirtioConsole::process_queue(unsigned q, Virtqueue& vq) {
  if (q == kReceiveq) receive(vq);
  if (q == kTransmitq) transmit(vq);
}

void VirtioConsole::receive(Virtqueue& vq) {
  // Pop a buffer only with data to put in it: a popped chain cannot be handed back unused.
  std::array<uint8_t, kChunk> buf;
  while (!m_input.empty()) {
    auto chain = vq.pop();
    if (!chain) return;
    const uint64_t room = chain->writable_len();
    uint64_t done = 0;
    while (done < room && done < m_input.size()) {
      const size_t n =
          static_cast<size_t>(std::min<uint64_t>({room - done, m_input.size() - done, buf.size()}));
      std::copy_n(m_input.begin() + static_cast<std::ptrdiff_t>(done), n, buf.begin());
      // A buffer the guest cannot have written into: stop here, the bytes stay queued.
      if (!chain->write(done, buf.data(), n)) break;
      done += n;
    }
    m_input.erase(m_input.begin(), m_input.begin() + static_cast<std::ptrdiff_t>(done));
    vq.push_used(*chain, static_cast<uint32_t>(done));
  }
}

void VirtioConsole::transmit(Virtqueue& vq) {
  std::array<uint8_t, kChunk> buf;
  while (auto chain = vq.pop()) {
    // 5.3.6.1: transmit buffers are device-readable; a buffer that cannot be read ends
    // this one's output.
    for (uint64_t done = 0; done < chain->readable_len();) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(chain->readable_len() - done, buf.size()));
      if (!chain->read(done, buf.data(), n)) break;
      if (m_output) m_output(buf.data(), n);
      done += n;
    }
    vq.push_used(*chain, 0);
  }
}

std::vector<uint8_t> VirtioConsole::save_backend() const {
  std::vector<uint8_t> out;
  const auto put = [&](uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
  };
  put(m_cols, 2);
  put(m_rows, 2);
  put(m_input.size(), 4);
  out.insert(out.end(), m_input.begin(), m_input.end());
  return out;
}

Result<void> VirtioConsole::restore_backend(std::span<const uint8_t> state) {
  if (state.size() < 8) return make_error("virtio-console state is {} bytes, less than 8", state.size());
  const auto get = [&](size_t at, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= static_cast<uint64_t>(state[at + i]) << (8 * i);
    return v;
  };
  const uint64_t count = get(4, 4);
  if (count > kInputCapacity) return make_error("virtio-console holds {} input bytes, more than {}", count, kInputCapacity);
  if (state.size() != 8 + count)
    return make_error("virtio-console state is {} bytes, not the 8 + {} it announces", state.size(), count);
  m_cols = static_cast<uint16_t>(get(0, 2));
  m_rows = static_cast<uint16_t>(get(2, 2));
  m_input.assign(state.begin() + 8, state.end());
  return {};
}

}  // namespace vigil::devices
