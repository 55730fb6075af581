#include "devices/virtio_blk.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <utility>

namespace vigil::devices {

namespace {

// Feature bits (5.2.3).
constexpr uint64_t kFSizeMax = 1ull << 1;
constexpr uint64_t kFSegMax = 1ull << 2;
constexpr uint64_t kFRo = 1ull << 5;
constexpr uint64_t kFFlush = 1ull << 9;
constexpr uint64_t kFDiscard = 1ull << 13;

// Request types and status values (5.2.6).
constexpr uint32_t kTypeIn = 0;
constexpr uint32_t kTypeOut = 1;
constexpr uint32_t kTypeFlush = 4;
constexpr uint32_t kTypeGetId = 8;
constexpr uint32_t kTypeDiscard = 11;
constexpr uint8_t kStatusOk = 0;
constexpr uint8_t kStatusIoErr = 1;
constexpr uint8_t kStatusUnsupp = 2;

// struct virtio_blk_req header: le32 type, le32 reserved, le64 sector.
constexpr uint64_t kHeaderSize = 16;
// struct virtio_blk_discard_write_zeroes: le64 sector, le32 num_sectors, le32 flags.
constexpr uint64_t kDiscardSegSize = 16;
constexpr uint32_t kDiscardFlagUnmap = 1;

// Request limits advertised in the configuration space. Linux builds requests of at most
// seg_max segments of at most size_max bytes each, so every request it sends (plus header
// and status) stays within what Virtqueue accepts in one chain.
constexpr uint32_t kSizeMax = 256 * 1024;
constexpr uint32_t kSegMax = VirtioBlk::kQueueSize - 2;  // the header and status take two
static_assert(uint64_t{kSizeMax} * kSegMax + kHeaderSize + 1 <= Virtqueue::kMaxChainBytes);
constexpr uint32_t kMaxDiscardSectors = 1u << 22;  // 2 GiB per segment
constexpr uint32_t kMaxDiscardSeg = 32;
constexpr uint32_t kDiscardSectorAlignment = 8;  // 4 KiB: the host file system's block

// Offsets in struct virtio_blk_config (5.2.4).
constexpr uint32_t kCfgCapacity = 0;
constexpr uint32_t kCfgSizeMax = 8;
constexpr uint32_t kCfgSegMax = 12;
constexpr uint32_t kCfgMaxDiscardSectors = 36;
constexpr uint32_t kCfgMaxDiscardSeg = 40;
constexpr uint32_t kCfgDiscardSectorAlignment = 44;
// Through write_zeroes_may_unmap and its padding, the last field of the 1.1 layout.
constexpr uint32_t kConfigSize = 60;

// Bytes moved per pread/pwrite; bounds the host memory one request needs.
constexpr size_t kBounceSize = 256 * 1024;

uint32_t load_le32(const uint8_t* p) {
  return p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<uint32_t>(p[3]) << 24);
}
uint64_t load_le64(const uint8_t* p) {
  return load_le32(p) | (static_cast<uint64_t>(load_le32(p + 4)) << 32);
}
void store_le(uint8_t* p, uint64_t v, unsigned bytes) {
  for (unsigned i = 0; i < bytes; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

// Full-length pread/pwrite: retry on EINTR and short transfers. False on an error or on
// end of file (the image shrank underneath us), either of which fails the request.
bool pread_all(int fd, uint8_t* buf, size_t len, uint64_t offset) {
  while (len > 0) {
    const ssize_t n = ::pread(fd, buf, len, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    buf += n;
    len -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return true;
}

bool pwrite_all(int fd, const uint8_t* buf, size_t len, uint64_t offset) {
  while (len > 0) {
    const ssize_t n = ::pwrite(fd, buf, len, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    buf += n;
    len -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return true;
}

std::string base_name(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

Result<std::unique_ptr<VirtioBlk>> VirtioBlk::open(const std::string& path, bool read_only,
                                                   std::string serial) {
  const int fd = ::open(path.c_str(), (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  if (fd < 0) return make_error("cannot open disk image '{}': {}", path, std::strerror(errno));
  // From here on every early return must close fd.
  auto fail = [fd](auto error) {
    ::close(fd);
    return error;
  };
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    return fail(make_error("cannot stat disk image '{}': {}", path, std::strerror(errno)));
  }
  if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
    return fail(make_error("disk image '{}' is not a regular file or block device", path));
  }
  if (::flock(fd, (read_only ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return fail(make_error("disk image '{}' is in use by another process", path));
    }
    return fail(make_error("cannot lock disk image '{}': {}", path, std::strerror(errno)));
  }
  // lseek rather than st_size: it also sizes block devices.
  const off_t size = ::lseek(fd, 0, SEEK_END);
  if (size < 0) return fail(make_error("cannot size disk image '{}': {}", path, std::strerror(errno)));
  if (serial.empty()) serial = base_name(path);
  const uint64_t capacity = static_cast<uint64_t>(size) / kSectorSize;
  return std::unique_ptr<VirtioBlk>(new VirtioBlk(fd, capacity, read_only, std::move(serial)));
}

VirtioBlk::VirtioBlk(int fd, uint64_t capacity, bool read_only, std::string serial)
    : m_fd(fd),
      m_capacity(capacity),
      m_read_only(read_only),
      m_serial(std::move(serial)),
      m_budget(kSliceBudgetBytes),
      m_bounce(kBounceSize) {}

void VirtioBlk::unlock_image() {
  ::fdatasync(m_fd);
  ::flock(m_fd, LOCK_UN);
}

Result<void> VirtioBlk::relock_image() {
  if (::flock(m_fd, (m_read_only ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0)
    return make_error("cannot take back the lock of disk image '{}': {}", m_serial, std::strerror(errno));
  return {};
}

VirtioBlk::~VirtioBlk() {
  ::close(m_fd);
}  // also drops the flock

uint64_t VirtioBlk::device_features() const {
  uint64_t features = kFSizeMax | kFSegMax | kFFlush;
  features |= m_read_only ? kFRo : kFDiscard;
  return features;
}

bool VirtioBlk::accept_features(uint64_t features) {
  m_features = features;
  return true;
}

uint32_t VirtioBlk::config_size() const {
  return kConfigSize;
}

void VirtioBlk::read_config(uint32_t offset, std::span<uint8_t> dst) const {
  std::array<uint8_t, kConfigSize> cfg{};
  store_le(&cfg[kCfgCapacity], m_capacity, 8);
  store_le(&cfg[kCfgSizeMax], kSizeMax, 4);
  store_le(&cfg[kCfgSegMax], kSegMax, 4);
  if (!m_read_only) {
    store_le(&cfg[kCfgMaxDiscardSectors], kMaxDiscardSectors, 4);
    store_le(&cfg[kCfgMaxDiscardSeg], kMaxDiscardSeg, 4);
    store_le(&cfg[kCfgDiscardSectorAlignment], kDiscardSectorAlignment, 4);
  }
  // The transport keeps offset + size within config_size().
  std::copy_n(cfg.begin() + offset, dst.size(), dst.begin());
}

std::vector<uint8_t> VirtioBlk::save_backend() const {
  std::vector<uint8_t> out(8);
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(m_features >> (8 * i));
  return out;
}

Result<void> VirtioBlk::restore_backend(std::span<const uint8_t> state) {
  if (state.size() != 8) return make_error("virtio-blk state is {} bytes, not 8", state.size());
  uint64_t features = 0;
  for (int i = 0; i < 8; ++i) features |= static_cast<uint64_t>(state[i]) << (8 * i);
  // The transport adds its own bits (VERSION_1, INDIRECT_DESC) to what the device offers.
  if ((features & kVirtioDeviceTypeFeatures & ~device_features()) != 0)
    return make_error("virtio-blk features {:#x} were not offered ({:#x})", features, device_features());
  m_features = features;
  return {};
}

void VirtioBlk::reset() {
  m_features = 0;
}

void VirtioBlk::process_queue(unsigned, Virtqueue& vq) {
  while (m_budget > 0) {
    auto chain = vq.pop();
    if (!chain) return;
    m_budget -= static_cast<int64_t>(chain->readable_len() + chain->writable_len());
    vq.push_used(*chain, serve(*chain));
  }
  set_budget_spent();  // anything still in the ring waits for refill_budget()
}

VirtioBlk::Stats VirtioBlk::stats() const {
  constexpr auto relaxed = std::memory_order_relaxed;
  return Stats{m_stats.read_ops.load(relaxed),  m_stats.read_bytes.load(relaxed), m_stats.write_ops.load(relaxed),
               m_stats.write_bytes.load(relaxed), m_stats.flush_ops.load(relaxed), m_stats.errors.load(relaxed)};
}

void VirtioBlk::refill_budget() {
  m_budget = kSliceBudgetBytes;
  VirtioDevice::refill_budget();
}

uint32_t VirtioBlk::serve(const DescriptorChain& chain) {
  // 5.2.6: the status byte is the last device-writable byte; without one nothing can be
  // reported, so the request is handed back untouched.
  if (chain.writable_len() == 0) return 0;
  const uint64_t in_len = chain.writable_len() - 1;  // device-writable bytes before status
  uint64_t written = 0;
  uint8_t status = kStatusIoErr;
  std::array<uint8_t, kHeaderSize> header;
  if (chain.read(0, header.data(), header.size())) {
    const uint32_t type = load_le32(&header[0]);
    const uint64_t sector = load_le64(&header[8]);
    const uint64_t out_len = chain.readable_len() - kHeaderSize;  // readable bytes after header
    constexpr auto relaxed = std::memory_order_relaxed;
    switch (type) {
      case kTypeIn:
        status = do_read(chain, sector, in_len, written);
        m_stats.read_ops.fetch_add(1, relaxed);
        if (status == kStatusOk) m_stats.read_bytes.fetch_add(written, relaxed);
        break;
      case kTypeOut:
        status = do_write(chain, sector, out_len);
        m_stats.write_ops.fetch_add(1, relaxed);
        if (status == kStatusOk) m_stats.write_bytes.fetch_add(out_len, relaxed);
        break;
      case kTypeFlush:
        status = do_flush();
        m_stats.flush_ops.fetch_add(1, relaxed);
        break;
      case kTypeGetId:
        status = do_get_id(chain, in_len, written);
        break;
      case kTypeDiscard:
        status = do_discard(chain, out_len);
        break;
      default:
        status = kStatusUnsupp;
        break;
    }
  }
  if (status != kStatusOk) m_stats.errors.fetch_add(1, std::memory_order_relaxed);
  if (!chain.write(in_len, &status, 1)) return static_cast<uint32_t>(written);
  return static_cast<uint32_t>(written + 1);
}

bool VirtioBlk::sectors_in_range(uint64_t sector, uint64_t count) const {
  return sector <= m_capacity && count <= m_capacity - sector;
}

uint8_t VirtioBlk::do_read(const DescriptorChain& chain, uint64_t sector, uint64_t len, uint64_t& written) {
  // 5.2.6.1: data is a whole number of sectors, and (5.2.6) within the capacity.
  if (len % kSectorSize != 0 || !sectors_in_range(sector, len / kSectorSize)) return kStatusIoErr;
  const uint64_t base = sector * kSectorSize;
  for (uint64_t done = 0; done < len;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(len - done, m_bounce.size()));
    if (!pread_all(m_fd, m_bounce.data(), n, base + done)) return kStatusIoErr;
    if (!chain.write(done, m_bounce.data(), n)) return kStatusIoErr;
    done += n;
    written = done;
  }
  return kStatusOk;
}

uint8_t VirtioBlk::do_write(const DescriptorChain& chain, uint64_t sector, uint64_t len) {
  // 5.2.6.2: a device offering VIRTIO_BLK_F_RO fails writes with IOERR, writing nothing.
  if (m_read_only) return kStatusIoErr;
  if (len % kSectorSize != 0 || !sectors_in_range(sector, len / kSectorSize)) return kStatusIoErr;
  const uint64_t base = sector * kSectorSize;
  for (uint64_t done = 0; done < len;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(len - done, m_bounce.size()));
    if (!chain.read(kHeaderSize + done, m_bounce.data(), n)) return kStatusIoErr;
    if (!pwrite_all(m_fd, m_bounce.data(), n, base + done)) return kStatusIoErr;
    done += n;
  }
  // 5.2.5.1: without VIRTIO_BLK_F_FLUSH negotiated the cache is write-through.
  if (!(m_features & kFFlush) && ::fdatasync(m_fd) != 0) return kStatusIoErr;
  return kStatusOk;
}

uint8_t VirtioBlk::do_flush() {
  return ::fdatasync(m_fd) == 0 ? kStatusOk : kStatusIoErr;
}

uint8_t VirtioBlk::do_get_id(const DescriptorChain& chain, uint64_t len, uint64_t& written) {
  // 5.2.6: the ID is NUL-padded to VIRTIO_BLK_ID_BYTES (unterminated if it fills them).
  std::array<uint8_t, kIdBytes> id{};
  std::copy_n(m_serial.begin(), std::min<size_t>(m_serial.size(), kIdBytes), id.begin());
  const uint64_t n = std::min<uint64_t>(len, kIdBytes);
  if (!chain.write(0, id.data(), n)) return kStatusIoErr;
  written = n;
  return kStatusOk;
}

uint8_t VirtioBlk::do_discard(const DescriptorChain& chain, uint64_t len) {
  if (!(m_features & kFDiscard) || m_read_only) return kStatusUnsupp;
  if (len == 0 || len % kDiscardSegSize != 0 || len / kDiscardSegSize > kMaxDiscardSeg) return kStatusIoErr;
  struct Segment {
    uint64_t sector;
    uint32_t count;
  };
  std::array<Segment, kMaxDiscardSeg> segs;
  const size_t nsegs = static_cast<size_t>(len / kDiscardSegSize);
  // Check every segment before acting on any, so a bad request discards nothing.
  for (size_t i = 0; i < nsegs; ++i) {
    std::array<uint8_t, kDiscardSegSize> raw;
    if (!chain.read(kHeaderSize + i * kDiscardSegSize, raw.data(), raw.size())) return kStatusIoErr;
    const uint32_t flags = load_le32(&raw[12]);
    // 5.2.6.2: unknown flags are UNSUPP, and so is unmap, which only write-zeroes takes.
    if ((flags & ~kDiscardFlagUnmap) != 0 || (flags & kDiscardFlagUnmap) != 0) return kStatusUnsupp;
    segs[i] = Segment{load_le64(&raw[0]), load_le32(&raw[8])};
    if (segs[i].count > kMaxDiscardSectors || !sectors_in_range(segs[i].sector, segs[i].count)) {
      return kStatusIoErr;
    }
  }
  for (size_t i = 0; i < nsegs; ++i) {
    if (segs[i].count == 0) continue;
    const int rc = ::fallocate(m_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                               static_cast<off_t>(segs[i].sector * kSectorSize),
                               static_cast<off_t>(uint64_t{segs[i].count} * kSectorSize));
    // 5.2.6.2: the device MAY deallocate, so a host without hole punching still succeeds.
    if (rc != 0 && errno != EOPNOTSUPP && errno != ENOSYS) return kStatusIoErr;
  }
  return kStatusOk;
}

}  // namespace vigil::devices
