// virtio-blk (VIRTIO 1.1/1.2, 5.2 "Block Device") backed by a raw image file or block
// device, with one request queue served synchronously on the vCPU thread that notifies it.
//
// Requests (5.2.6): IN, OUT, FLUSH (fdatasync), GET_ID (the serial, 20 bytes NUL-padded)
// and, on writable disks, DISCARD (fallocate PUNCH_HOLE | KEEP_SIZE). Anything else gets
// VIRTIO_BLK_S_UNSUPP. A request that is malformed (no room for the header, data not a
// whole number of sectors), runs past the capacity, touches guest memory DmaMemory
// refuses, or meets a host I/O error (EIO, ENOSPC, a file truncated underneath) gets
// VIRTIO_BLK_S_IOERR; the guest sees a failed request, the host is unaffected. A request
// without even a status byte is returned with used length 0.
//
// Features offered: SIZE_MAX and SEG_MAX (chosen so no request Linux builds exceeds
// Virtqueue::kMaxChainBytes), FLUSH, RO for read-only disks, DISCARD for writable ones.
// Without FLUSH negotiated the device is write-through (5.2.5.1): every OUT is followed by
// fdatasync. Capacity is the image size in 512-byte sectors, rounded down, fixed at open.
//
// The image is locked with flock (shared for read-only, exclusive otherwise) so two
// Vigil processes cannot write one disk at once.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/error.h"
#include "devices/virtio_mmio.h"

namespace vigil::devices {

class VirtioBlk final : public VirtioDevice {
 public:
  static constexpr uint32_t kSectorSize = 512;  // 5.2.6: sectors are always 512 bytes
  static constexpr uint32_t kQueueSize = 256;
  // 5.2.6: VIRTIO_BLK_ID_BYTES.
  static constexpr uint32_t kIdBytes = 20;

  // Opens path (O_RDONLY if read_only, else O_RDWR) and locks it. serial is what GET_ID
  // returns (truncated to kIdBytes); empty means the file's base name. Fails with a
  // message naming the file if it cannot be opened, locked or sized, or is a directory.
  static Result<std::unique_ptr<VirtioBlk>> open(const std::string& path, bool read_only,
                                                 std::string serial = {});
  ~VirtioBlk() override;

  uint64_t capacity_sectors() const { return m_capacity; }
  // Live migration hands the image's lock to the destination (same file, shared storage):
  // dropped while the domain is paused for the last round, taken back if the migration fails.
  void unlock_image();
  Result<void> relock_image();
  bool read_only() const { return m_read_only; }

  // Requests served since the device was created (for metrics); any thread.
  struct Stats {
    uint64_t read_ops = 0, read_bytes = 0;
    uint64_t write_ops = 0, write_bytes = 0;
    uint64_t flush_ops = 0;
    uint64_t errors = 0;  // requests answered with an error status
  };
  Stats stats() const;

  // VirtioDevice
  std::string_view name() const override { return "virtio-blk"; }
  uint32_t device_id() const override { return 2; }
  uint64_t device_features() const override;
  bool accept_features(uint64_t features) override;
  uint32_t config_size() const override;
  void read_config(uint32_t offset, std::span<uint8_t> dst) const override;
  unsigned queue_count() const override { return 1; }
  uint32_t queue_max_size(unsigned) const override { return kQueueSize; }
  void process_queue(unsigned q, Virtqueue& vq) override;
  void refill_budget() override;
  // Bytes of requests served per vCPU slice before the rest waits for the next one (one
  // request is always served, so a legal 63.5 MiB request still goes through).
  static constexpr int64_t kSliceBudgetBytes = 8 << 20;
  void reset() override;
  // Snapshot: the negotiated features (u64). The disk itself is not saved: it is shared.
  bool saveable() const override { return true; }
  std::vector<uint8_t> save_backend() const override;
  Result<void> restore_backend(std::span<const uint8_t> state) override;

 private:
  VirtioBlk(int fd, uint64_t capacity, bool read_only, std::string serial);

  // Returns the used length (bytes written to the guest, status byte included).
  uint32_t serve(const DescriptorChain& chain);
  uint8_t do_read(const DescriptorChain& chain, uint64_t sector, uint64_t len, uint64_t& written);
  uint8_t do_write(const DescriptorChain& chain, uint64_t sector, uint64_t len);
  uint8_t do_flush();
  uint8_t do_get_id(const DescriptorChain& chain, uint64_t len, uint64_t& written);
  uint8_t do_discard(const DescriptorChain& chain, uint64_t len);
  bool sectors_in_range(uint64_t sector, uint64_t count) const;

  const int m_fd;
  const uint64_t m_capacity;  // in sectors
  const bool m_read_only;
  const std::string m_serial;
  // Written by the thread serving the queue, read by metrics: relaxed atomics suffice.
  struct AtomicStats {
    std::atomic<uint64_t> read_ops{0}, read_bytes{0}, write_ops{0}, write_bytes{0}, flush_ops{0}, errors{0};
  } m_stats;
  uint64_t m_features = 0;        // negotiated; 0 until FEATURES_OK
  int64_t m_budget;               // bytes still to serve in this vCPU slice (VirtioDevice)
  std::vector<uint8_t> m_bounce;  // host-side staging for data between file and guest
};

}  // namespace vigil::devices
