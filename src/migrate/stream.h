// The snapshot stream (issue 11): the byte format that save, restore and live migration
// share. Record-based and versioned, in the spirit of Xen's migration v2
// (docs/specs/libxc-migration-stream.pandoc in Xen; read for the ideas, not copied):
//
//   header   magic "VIGILSNP" (8 bytes) | u32 version | u32 reserved (0) | u64 xxh3(header)
//   record   u32 type | u32 instance | u64 length | u64 xxh3(type, instance, length, payload)
//            | payload (length bytes)
//   ...      the last record is END (length 0); nothing may follow it.
//
// All integers are little-endian. Bit 31 of a record type (kOptionalBit) says the record is
// optional: a reader that does not know an optional type skips it, one that does not know a
// mandatory type refuses the whole stream. The checksum is XXH3-64 (libxxhash, Debian's
// libxxhash-dev) over the record header fields and the payload, so a flipped bit anywhere in
// a record, including its type and length, is caught.
//
// The reader treats the stream as hostile (a file anyone could have written, or a network
// peer): every length, count, index and address is checked before use, and every refusal is
// one sentence naming the record and its offset, e.g.
//   "snapshot: record HART(2) at offset 123: checksum mismatch".
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace vigil::migrate {

inline constexpr char kMagic[8] = {'V', 'I', 'G', 'I', 'L', 'S', 'N', 'P'};
inline constexpr uint32_t kVersion = 1;
inline constexpr size_t kHeaderSize = 24;
inline constexpr size_t kRecordHeaderSize = 24;
inline constexpr uint32_t kOptionalBit = 1u << 31;
// No single record may claim more than this; RAM comes in batches well below it. Bounds what
// a hostile length can make the reader allocate or wait for.
inline constexpr uint64_t kMaxRecordLength = 64ull << 20;

enum class RecordType : uint32_t {
  kEnd = 0,
  kConfig = 1,    // the domain's xl.cfg text
  kRamInfo = 2,   // u64 RAM size, u32 page size: checked before any RAM record
  kRam = 3,       // one batch of guest pages (encode_ram_batch)
  kHart = 4,      // instance = hart index
  kClint = 5,
  kPlic = 6,
  kUart = 7,
  kTestDevice = 8,
  kVirtio = 9,    // instance = virtio-mmio slot
  kHsm = 10,
  kClock = 11,    // the guest's mtime at save
  // Hook for state a later device adds (e.g. the vTPM's swtpm state, issue 9): optional, so
  // a Vigil without that device still restores the rest; instance numbers the device.
  kExtraDeviceState = kOptionalBit | 0x100,
};

// Little-endian fields, as the stream and the migration protocol (live.h) lay them out.
void store_le(uint8_t* p, uint64_t v, int n);
uint32_t load_le32(const uint8_t* p);
uint64_t load_le64(const uint8_t* p);

// "HART", "RAM", ... or "TYPE(0x...)" for one this reader does not know.
std::string record_type_name(uint32_t type);
bool is_known_record_type(uint32_t type);

struct Record {
  uint32_t type = 0;
  uint32_t instance = 0;
  uint64_t offset = 0;  // of the record header in the stream, for error messages
  std::span<const uint8_t> payload;
};

// Builds a stream in memory.
class StreamWriter {
 public:
  StreamWriter();
  void add(RecordType type, uint32_t instance, std::span<const uint8_t> payload);
  void add_raw(uint32_t type, uint32_t instance, std::span<const uint8_t> payload);
  // Appends END and returns the finished stream; the writer is empty afterwards.
  std::vector<uint8_t> finish();
  size_t size() const { return m_out.size(); }

 private:
  std::vector<uint8_t> m_out;
};

// Parses and verifies the whole stream: header, every record's bounds and checksum, END last
// and nothing after it, no unknown mandatory record. Unknown optional records are dropped
// from the result. The records' payloads point into `stream`.
Result<std::vector<Record>> parse_stream(std::span<const uint8_t> stream);

// "snapshot: record HART(2) at offset 123: <reason>"
std::string record_context(const Record& r);

// Little-endian payload building and checked reading for the save/restore methods of each
// object. Reader errors name the record: a short payload is "truncated payload".
class PayloadWriter {
 public:
  void u8(uint8_t v) { m_buf.push_back(v); }
  void u32(uint32_t v);
  void u64(uint64_t v);
  void bytes(std::span<const uint8_t> b) { m_buf.insert(m_buf.end(), b.begin(), b.end()); }
  std::span<const uint8_t> data() const { return m_buf; }
  std::vector<uint8_t>& buffer() { return m_buf; }

 private:
  std::vector<uint8_t> m_buf;
};

class PayloadReader {
 public:
  explicit PayloadReader(const Record& r) : m_rec(r) {}
  Result<uint8_t> u8();
  Result<uint32_t> u32();
  Result<uint64_t> u64();
  Result<std::span<const uint8_t>> bytes(uint64_t n);
  size_t remaining() const { return m_rec.payload.size() - m_pos; }
  // Refuses trailing bytes: a payload longer than its object's state is malformed.
  Result<void> finish() const;
  std::unexpected<Error> fail(std::string_view reason) const;

 private:
  const Record& m_rec;
  size_t m_pos = 0;
};

// ---- RAM ----
inline constexpr uint32_t kPageSize = 4096;
// Pages per RAM record: 1024 pages = 4 MiB before compression, one zstd frame per batch.
inline constexpr uint32_t kPagesPerBatch = 1024;

struct RamInfo {
  uint64_t ram_size = 0;
  uint32_t page_size = kPageSize;
};
void add_ram_info(StreamWriter& w, const RamInfo& info);
// Checks the stream's RAM_INFO against the domain being restored ("wrong RAM size").
Result<void> check_ram_info(const Record& r, uint64_t expected_ram_size);

// Payload: u64 first page number | u32 page count | count bytes of kind (0 zero page, elided;
// 1 page data follows) | zstd frame holding the non-zero pages in order.
// `pages` lists the page numbers to send (all pages for save, dirty pages for a pre-copy
// round); consecutive runs of up to kPagesPerBatch pages make one record each.
void add_ram_pages(StreamWriter& w, std::span<const uint8_t> ram, uint64_t first_page, uint32_t count,
                   int zstd_level = 1);
void add_all_ram(StreamWriter& w, std::span<const uint8_t> ram, int zstd_level = 1);
// Writes one RAM record's pages into `ram` (zero pages are cleared), after checking the page
// range lies inside `ram` and the frame decompresses to exactly the announced pages.
Result<void> restore_ram_record(const Record& r, std::span<uint8_t> ram);
// The same for several RAM records, on two threads when they cover disjoint pages (restore
// time is downtime: decompression is most of it). The error is the first failing record's
// in stream order; records that overlap are applied one after another, later ones winning.
Result<void> restore_ram_records(std::span<const Record* const> records, std::span<uint8_t> ram);

}  // namespace vigil::migrate
