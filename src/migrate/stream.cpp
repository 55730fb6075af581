#include "migrate/stream.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <system_error>
#include <thread>

#include <sys/mman.h>
#include <xxhash.h>
#include <zstd.h>

namespace vigil::migrate {

void store_le(uint8_t* p, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint32_t load_le32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(p[i]) << (8 * i);
  return v;
}
uint64_t load_le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}

namespace {

void put_le(std::vector<uint8_t>& out, uint64_t v, int n) {
  const size_t at = out.size();
  out.resize(at + n);
  store_le(out.data() + at, v, n);
}
void put_u32(std::vector<uint8_t>& out, uint32_t v) { put_le(out, v, 4); }
void put_u64(std::vector<uint8_t>& out, uint64_t v) { put_le(out, v, 8); }
uint32_t get_u32(const uint8_t* p) { return load_le32(p); }
uint64_t get_u64(const uint8_t* p) { return load_le64(p); }

// Checksum of a record: its three header fields, then its payload.
uint64_t record_checksum(uint32_t type, uint32_t instance, uint64_t length, std::span<const uint8_t> payload) {
  XXH3_state_t* st = XXH3_createState();
  XXH3_64bits_reset(st);
  uint8_t hdr[16];
  store_le(hdr, type, 4);
  store_le(hdr + 4, instance, 4);
  store_le(hdr + 8, length, 8);
  XXH3_64bits_update(st, hdr, sizeof hdr);
  if (!payload.empty()) XXH3_64bits_update(st, payload.data(), payload.size());
  uint64_t h = XXH3_64bits_digest(st);
  XXH3_freeState(st);
  return h;
}

bool page_is_zero(const uint8_t* p) {
  static const uint8_t kZero[kPageSize] = {};
  return std::memcmp(p, kZero, kPageSize) == 0;
}

}  // namespace

std::string record_type_name(uint32_t type) {
  switch (static_cast<RecordType>(type)) {
    case RecordType::kEnd: return "END";
    case RecordType::kConfig: return "CONFIG";
    case RecordType::kRamInfo: return "RAM_INFO";
    case RecordType::kRam: return "RAM";
    case RecordType::kHart: return "HART";
    case RecordType::kClint: return "CLINT";
    case RecordType::kPlic: return "PLIC";
    case RecordType::kUart: return "UART";
    case RecordType::kTestDevice: return "TEST_DEVICE";
    case RecordType::kVirtio: return "VIRTIO";
    case RecordType::kHsm: return "HSM";
    case RecordType::kClock: return "CLOCK";
    case RecordType::kExtraDeviceState: return "EXTRA_DEVICE_STATE";
  }
  return fmt::format("TYPE({:#x})", type);
}

bool is_known_record_type(uint32_t type) { return record_type_name(type).rfind("TYPE(", 0) != 0; }

std::string record_context(const Record& r) {
  return fmt::format("snapshot: record {}({}) at offset {}", record_type_name(r.type), r.instance, r.offset);
}

StreamWriter::StreamWriter() {
  m_out.resize(sizeof kMagic);
  std::memcpy(m_out.data(), kMagic, sizeof kMagic);
  put_u32(m_out, kVersion);
  put_u32(m_out, 0);
  put_u64(m_out, XXH3_64bits(m_out.data(), 16));
}

void StreamWriter::add(RecordType type, uint32_t instance, std::span<const uint8_t> payload) {
  add_raw(static_cast<uint32_t>(type), instance, payload);
}

void StreamWriter::add_raw(uint32_t type, uint32_t instance, std::span<const uint8_t> payload) {
  put_u32(m_out, type);
  put_u32(m_out, instance);
  put_u64(m_out, payload.size());
  put_u64(m_out, record_checksum(type, instance, payload.size(), payload));
  const size_t at = m_out.size();
  m_out.resize(at + payload.size());
  if (!payload.empty()) std::memcpy(m_out.data() + at, payload.data(), payload.size());
}

std::vector<uint8_t> StreamWriter::finish() {
  add(RecordType::kEnd, 0, {});
  std::vector<uint8_t> done = std::move(m_out);
  m_out.clear();
  return done;
}

Result<std::vector<Record>> parse_stream(std::span<const uint8_t> s) {
  if (s.size() < kHeaderSize) return make_error("snapshot: header: truncated ({} of {} bytes)", s.size(), kHeaderSize);
  if (std::memcmp(s.data(), kMagic, sizeof kMagic) != 0) return make_error("snapshot: header: not a Vigil snapshot (bad magic)");
  const uint32_t version = get_u32(s.data() + 8);
  if (XXH3_64bits(s.data(), 16) != get_u64(s.data() + 16)) return make_error("snapshot: header: checksum mismatch");
  if (version != kVersion)
    return make_error("snapshot: header: unsupported version {} (this Vigil reads version {})", version, kVersion);
  if (get_u32(s.data() + 12) != 0) return make_error("snapshot: header: reserved field is not zero");

  std::vector<Record> out;
  size_t pos = kHeaderSize;
  for (;;) {
    if (s.size() - pos < kRecordHeaderSize)
      return make_error("snapshot: at offset {}: stream ends without an END record", pos);
    Record r;
    r.offset = pos;
    r.type = get_u32(s.data() + pos);
    r.instance = get_u32(s.data() + pos + 4);
    const uint64_t length = get_u64(s.data() + pos + 8);
    const uint64_t sum = get_u64(s.data() + pos + 16);
    if (length > kMaxRecordLength)
      return make_error("{}: length {} exceeds the limit of {} bytes", record_context(r), length, kMaxRecordLength);
    if (length > s.size() - pos - kRecordHeaderSize)
      return make_error("{}: truncated ({} payload bytes announced, {} present)", record_context(r), length,
                        s.size() - pos - kRecordHeaderSize);
    r.payload = s.subspan(pos + kRecordHeaderSize, length);
    if (record_checksum(r.type, r.instance, length, r.payload) != sum)
      return make_error("{}: checksum mismatch", record_context(r));
    pos += kRecordHeaderSize + length;
    if (r.type == static_cast<uint32_t>(RecordType::kEnd)) {
      if (length != 0) return make_error("{}: END record has a payload", record_context(r));
      if (pos != s.size()) return make_error("snapshot: at offset {}: {} bytes after the END record", pos, s.size() - pos);
      return out;
    }
    if (!is_known_record_type(r.type)) {
      if ((r.type & kOptionalBit) == 0)
        return make_error("{}: unknown mandatory record type (written by a newer Vigil?)", record_context(r));
      continue;  // unknown optional record: skipped
    }
    out.push_back(r);
  }
}

void PayloadWriter::u32(uint32_t v) { put_u32(m_buf, v); }
void PayloadWriter::u64(uint64_t v) { put_u64(m_buf, v); }

std::unexpected<Error> PayloadReader::fail(std::string_view reason) const {
  return make_error("{}: {}", record_context(m_rec), reason);
}
Result<std::span<const uint8_t>> PayloadReader::bytes(uint64_t n) {
  if (n > remaining()) return fail("truncated payload");
  auto b = m_rec.payload.subspan(m_pos, n);
  m_pos += n;
  return b;
}
Result<uint8_t> PayloadReader::u8() {
  auto b = bytes(1);
  if (!b) return std::unexpected(b.error());
  return (*b)[0];
}
Result<uint32_t> PayloadReader::u32() {
  auto b = bytes(4);
  if (!b) return std::unexpected(b.error());
  return get_u32(b->data());
}
Result<uint64_t> PayloadReader::u64() {
  auto b = bytes(8);
  if (!b) return std::unexpected(b.error());
  return get_u64(b->data());
}
Result<void> PayloadReader::finish() const {
  if (remaining() != 0) return fail(fmt::format("{} unexpected trailing bytes", remaining()));
  return {};
}

void add_ram_info(StreamWriter& w, const RamInfo& info) {
  PayloadWriter p;
  p.u64(info.ram_size);
  p.u32(info.page_size);
  w.add(RecordType::kRamInfo, 0, p.data());
}

Result<void> check_ram_info(const Record& r, uint64_t expected_ram_size) {
  PayloadReader in(r);
  auto size = in.u64();
  if (!size) return std::unexpected(size.error());
  auto page = in.u32();
  if (!page) return std::unexpected(page.error());
  if (auto f = in.finish(); !f) return f;
  if (*page != kPageSize) return in.fail(fmt::format("page size {} is not {}", *page, kPageSize));
  if (*size != expected_ram_size)
    return in.fail(fmt::format("wrong RAM size: the snapshot has {} MiB, the domain {} MiB", *size >> 20,
                               expected_ram_size >> 20));
  return {};
}

void add_ram_pages(StreamWriter& w, std::span<const uint8_t> ram, uint64_t first_page, uint32_t count, int level) {
  const uint64_t pages_in_ram = ram.size() / kPageSize;
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level);
  std::vector<uint8_t> plain;
  for (uint64_t start = first_page; start < first_page + count && start < pages_in_ram;) {
    const uint32_t n = static_cast<uint32_t>(std::min<uint64_t>({uint64_t{kPagesPerBatch}, first_page + count - start,
                                                                   pages_in_ram - start}));
    PayloadWriter p;
    p.u64(start);
    p.u32(n);
    plain.clear();
    for (uint32_t i = 0; i < n; ++i) {
      const uint8_t* page = ram.data() + (start + i) * kPageSize;
      const bool zero = page_is_zero(page);
      p.u8(zero ? 0 : 1);
      if (!zero) plain.insert(plain.end(), page, page + kPageSize);
    }
    auto& buf = p.buffer();
    const size_t at = buf.size();
    buf.resize(at + ZSTD_compressBound(plain.size()));
    const size_t z = ZSTD_compress2(cctx, buf.data() + at, buf.size() - at, plain.data(), plain.size());
    // Compressing into a buffer of ZSTD_compressBound bytes cannot fail short of memory.
    buf.resize(at + (ZSTD_isError(z) ? 0 : z));
    w.add(RecordType::kRam, 0, p.data());
    start += n;
  }
  ZSTD_freeCCtx(cctx);
}

void add_all_ram(StreamWriter& w, std::span<const uint8_t> ram, int level) {
  add_ram_info(w, RamInfo{ram.size(), kPageSize});
  const uint64_t pages = ram.size() / kPageSize;
  for (uint64_t p = 0; p < pages; p += kPagesPerBatch)
    add_ram_pages(w, ram, p, static_cast<uint32_t>(std::min<uint64_t>(kPagesPerBatch, pages - p)), level);
}

Result<void> restore_ram_record(const Record& r, std::span<uint8_t> ram) {
  PayloadReader in(r);
  auto first = in.u64();
  if (!first) return std::unexpected(first.error());
  auto count = in.u32();
  if (!count) return std::unexpected(count.error());
  const uint64_t pages_in_ram = ram.size() / kPageSize;
  if (*count == 0 || *count > kPagesPerBatch)
    return in.fail(fmt::format("page count {} is not in 1..{}", *count, kPagesPerBatch));
  if (*first >= pages_in_ram || *count > pages_in_ram - *first)
    return in.fail(fmt::format("pages {}..{} lie outside the domain's {} pages", *first,
                               *first + uint64_t{*count} - 1, pages_in_ram));
  auto kinds = in.bytes(*count);
  if (!kinds) return std::unexpected(kinds.error());
  uint64_t data_pages = 0;
  for (uint8_t k : *kinds) {
    if (k > 1) return in.fail(fmt::format("page kind {} is neither 0 (zero) nor 1 (data)", k));
    data_pages += k;
  }
  auto frame = in.bytes(in.remaining());
  const uint64_t want = data_pages * kPageSize;
  // A batch of data pages only (the common case: a guest's working set is contiguous)
  // decompresses straight into guest RAM; a mixed one goes through a scratch buffer that is
  // neither zeroed nor freed between records (restore time is downtime).
  const bool direct = data_pages == *count;
  thread_local std::unique_ptr<uint8_t[]> scratch;
  thread_local uint64_t scratch_size = 0;
  if (!direct && want > scratch_size) {
    scratch.reset(new uint8_t[want]);
    scratch_size = want;
  }
  const std::span<uint8_t> plain = direct ? ram.subspan(*first * kPageSize, want) : std::span(scratch.get(), want);
  if (want == 0) {
    // An empty input compresses to a frame of content size 0; accept only that.
    if (ZSTD_getFrameContentSize(frame->data(), frame->size()) != 0) return in.fail("zero-page batch carries data");
  } else {
    const unsigned long long announced = ZSTD_getFrameContentSize(frame->data(), frame->size());
    if (announced != want)
      return in.fail(fmt::format("compressed pages do not announce {} bytes", want));
    // Fresh RAM faults in page by page as zstd writes it; one populate call per batch maps
    // the 1024 pages at once (a hint: kernels before 5.14 refuse it, and nothing changes).
    if (direct) (void)::madvise(plain.data(), plain.size(), MADV_POPULATE_WRITE);
    const size_t got = ZSTD_decompress(plain.data(), plain.size(), frame->data(), frame->size());
    if (ZSTD_isError(got)) return in.fail(fmt::format("zstd: {}", ZSTD_getErrorName(got)));
    if (got != want) return in.fail(fmt::format("decompressed to {} bytes, not {}", got, want));
  }
  if (direct) return {};
  const uint8_t* src = plain.data();
  for (uint32_t i = 0; i < *count;) {
    uint8_t* page = ram.data() + (*first + i) * kPageSize;
    if ((*kinds)[i]) {
      std::memcpy(page, src, kPageSize);
      src += kPageSize;
      ++i;
      continue;
    }
    // A run of zero pages: dropped from the (anonymous, page-aligned) RAM mapping with one
    // call, so they read as zeros and hold no memory, and untouched pages of a fresh RAM are
    // not even faulted in (reading each to compare it was a third of a restore's time). RAM
    // that is not such a mapping (tests, fuzz targets) is compared and cleared page by page.
    uint32_t n = 1;
    while (i + n < *count && (*kinds)[i + n] == 0) ++n;
    if ((reinterpret_cast<uintptr_t>(page) & (kPageSize - 1)) != 0 || ::madvise(page, n * kPageSize, MADV_DONTNEED) != 0) {
      for (uint32_t k = 0; k < n; ++k) {
        uint8_t* z = page + k * kPageSize;
        if (!page_is_zero(z)) std::memset(z, 0, kPageSize);
      }
    }
    i += n;
  }
  return {};
}

Result<void> restore_ram_records(std::span<const Record* const> records, std::span<uint8_t> ram) {
  const auto sequential = [&](size_t from, size_t to) -> Result<void> {
    for (size_t i = from; i < to; ++i) {
      if (auto ok = restore_ram_record(*records[i], ram); !ok) return ok;
    }
    return {};
  };
  if (records.size() < 2 || std::thread::hardware_concurrency() < 2) return sequential(0, records.size());
  // The page ranges, read from the payload headers (restore_ram_record checks them properly):
  // threads only ever write disjoint pages.
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  ranges.reserve(records.size());
  for (const Record* r : records) {
    if (r->payload.size() < 12) return sequential(0, records.size());
    const uint64_t first = load_le64(r->payload.data());
    const uint64_t count = load_le32(r->payload.data() + 8);
    if (first > ~0ull - count) return sequential(0, records.size());
    ranges.emplace_back(first, first + count);
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].first < ranges[i - 1].second) return sequential(0, records.size());
  }
  const size_t half = records.size() / 2;
  Result<void> second;
  std::thread helper;
  try {
    helper = std::thread([&] { second = sequential(half, records.size()); });
  } catch (const std::system_error&) {
    return sequential(0, records.size());
  }
  Result<void> first = sequential(0, half);
  helper.join();
  if (!first) return first;
  return second;
}

}  // namespace vigil::migrate
