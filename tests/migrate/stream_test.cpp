// The snapshot stream (src/migrate/stream.h): round trips, and corrupt streams refused with
// one sentence naming the record.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <xxhash.h>

#include "migrate/stream.h"

namespace vigil::migrate {
namespace {

std::vector<uint8_t> bytes_of(std::string_view s) { return {s.begin(), s.end()}; }

// A small RAM image: zero pages, pages of random data, pages of a repeated counter.
std::vector<uint8_t> make_ram(size_t pages, uint32_t seed) {
  std::vector<uint8_t> ram(pages * kPageSize, 0);
  std::mt19937 rng(seed);
  for (size_t p = 0; p < pages; ++p) {
    uint8_t* page = ram.data() + p * kPageSize;
    switch (p % 3) {
      case 0: break;  // zero
      case 1: for (size_t i = 0; i < kPageSize; ++i) page[i] = static_cast<uint8_t>(rng()); break;
      case 2: for (size_t i = 0; i < kPageSize; i += 8) std::memcpy(page + i, &p, sizeof p); break;
    }
  }
  return ram;
}

// A stream like a save writes: config, RAM, a few hart-like records.
std::vector<uint8_t> make_stream(const std::vector<uint8_t>& ram) {
  StreamWriter w;
  w.add(RecordType::kConfig, 0, bytes_of("name = \"d1\"\nmemory = 1\n"));
  add_all_ram(w, ram);
  for (uint32_t h = 0; h < 3; ++h) {
    PayloadWriter p;
    for (int i = 0; i < 32; ++i) p.u64(h * 100 + i);
    w.add(RecordType::kHart, h, p.data());
  }
  w.add(RecordType::kExtraDeviceState, 0, bytes_of("vtpm state later"));
  return w.finish();
}

Result<std::vector<uint8_t>> restore(std::span<const uint8_t> stream, size_t ram_size) {
  auto recs = parse_stream(stream);
  if (!recs) return std::unexpected(recs.error());
  std::vector<uint8_t> ram(ram_size, 0xaa);
  bool info = false;
  for (const Record& r : *recs) {
    if (r.type == static_cast<uint32_t>(RecordType::kRamInfo)) {
      if (auto ok = check_ram_info(r, ram_size); !ok) return std::unexpected(ok.error());
      info = true;
    } else if (r.type == static_cast<uint32_t>(RecordType::kRam)) {
      if (!info) return make_error("{}: RAM before RAM_INFO", record_context(r));
      if (auto ok = restore_ram_record(r, ram); !ok) return std::unexpected(ok.error());
    }
  }
  return ram;
}

TEST(SnapshotStream, RoundTripRecordsAndRam) {
  const auto ram = make_ram(2500, 1);  // three batches, the last one short
  const auto stream = make_stream(ram);
  auto recs = parse_stream(stream);
  ASSERT_TRUE(recs) << recs.error().message;
  int harts = 0;
  for (const Record& r : *recs) {
    if (r.type == static_cast<uint32_t>(RecordType::kHart)) {
      PayloadReader in(r);
      for (int i = 0; i < 32; ++i) EXPECT_EQ(*in.u64(), r.instance * 100 + i);
      EXPECT_TRUE(in.finish());
      ++harts;
    }
  }
  EXPECT_EQ(harts, 3);
  auto back = restore(stream, ram.size());
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_TRUE(*back == ram);
}

TEST(SnapshotStream, ZeroPagesAreElidedAndRamCompresses) {
  std::vector<uint8_t> ram(4096 * kPageSize, 0);
  ram[5 * kPageSize + 7] = 1;
  StreamWriter w;
  add_all_ram(w, ram);
  auto stream = w.finish();
  EXPECT_LT(stream.size(), 32u * 1024) << "16 MiB of almost only zero pages";
  auto back = restore(stream, ram.size());
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_TRUE(*back == ram);
}

TEST(SnapshotStream, EveryBitFlipIsRefused) {
  const auto ram = make_ram(40, 2);
  const auto good = make_stream(ram);
  ASSERT_TRUE(restore(good, ram.size()));
  // Every bit of the headers and a sample of payload bits: too slow to flip all of them.
  for (size_t byte = 0; byte < good.size(); byte += (byte < 4096 ? 1 : 97)) {
    for (int bit = 0; bit < 8; ++bit) {
      auto bad = good;
      bad[byte] ^= static_cast<uint8_t>(1u << bit);
      auto r = restore(bad, ram.size());
      ASSERT_FALSE(r) << "flip at byte " << byte << " bit " << bit << " accepted";
      EXPECT_EQ(r.error().message.rfind("snapshot: ", 0), 0u) << r.error().message;
    }
  }
}

TEST(SnapshotStream, ChecksumErrorNamesRecordAndOffset) {
  StreamWriter w;
  PayloadWriter p;
  p.u64(42);
  w.add(RecordType::kHart, 2, p.data());
  auto s = w.finish();
  s[kHeaderSize + kRecordHeaderSize] ^= 1;
  auto r = parse_stream(s);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "snapshot: record HART(2) at offset 24: checksum mismatch");
}

TEST(SnapshotStream, TruncationAtEveryRecordBoundaryAndInsideIsRefused) {
  const auto ram = make_ram(10, 3);
  const auto good = make_stream(ram);
  auto recs = parse_stream(good);
  ASSERT_TRUE(recs);
  std::vector<size_t> cuts = {0, 1, kHeaderSize - 1, kHeaderSize};
  for (const Record& r : *recs) {
    cuts.push_back(r.offset);
    cuts.push_back(r.offset + kRecordHeaderSize / 2);
    cuts.push_back(r.offset + kRecordHeaderSize + r.payload.size() / 2);
  }
  cuts.push_back(good.size() - kRecordHeaderSize);  // END missing
  cuts.push_back(good.size() - 1);
  for (size_t cut : cuts) {
    auto r = parse_stream(std::span(good).first(cut));
    ASSERT_FALSE(r) << "cut at " << cut << " accepted";
    EXPECT_EQ(r.error().message.rfind("snapshot: ", 0), 0u);
  }
  auto longer = good;
  longer.push_back(0);
  auto r = parse_stream(longer);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("after the END record"), std::string::npos) << r.error().message;
}

TEST(SnapshotStream, WrongMagicAndVersionAreRefused) {
  auto s = StreamWriter().finish();
  auto bad = s;
  bad[0] = 'X';
  EXPECT_EQ(parse_stream(bad).error().message, "snapshot: header: not a Vigil snapshot (bad magic)");
  // A version-2 header with a valid checksum: refused for the version, not the checksum.
  std::vector<uint8_t> v2(s.begin(), s.end());
  v2[8] = 2;
  // Recompute the header checksum the way a newer writer would.
  const uint64_t sum = XXH3_64bits(v2.data(), 16);
  for (int i = 0; i < 8; ++i) v2[16 + i] = static_cast<uint8_t>(sum >> (8 * i));
  auto r = parse_stream(v2);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "snapshot: header: unsupported version 2 (this Vigil reads version 1)");
}

TEST(SnapshotStream, WrongRamSizeIsRefused) {
  const auto ram = make_ram(16, 4);
  const auto s = make_stream(ram);
  auto r = restore(s, ram.size() * 2);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("RAM_INFO(0)"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("wrong RAM size"), std::string::npos) << r.error().message;
}

TEST(SnapshotStream, UnknownMandatoryRefusedUnknownOptionalSkipped) {
  {
    StreamWriter w;
    w.add_raw(0x7777, 0, bytes_of("x"));
    auto r = parse_stream(w.finish());
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("TYPE(0x7777)(0)"), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("unknown mandatory"), std::string::npos);
  }
  {
    StreamWriter w;
    w.add_raw(kOptionalBit | 0x7777, 0, bytes_of("x"));
    w.add(RecordType::kClock, 0, bytes_of("12345678"));
    auto r = parse_stream(w.finish());
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_EQ(r->size(), 1u);
    EXPECT_EQ((*r)[0].type, static_cast<uint32_t>(RecordType::kClock));
  }
}

TEST(SnapshotStream, HostileRamRecordsAreRefused) {
  std::vector<uint8_t> ram(8 * kPageSize, 0);
  auto ram_record = [&](uint64_t first, uint32_t count, std::vector<uint8_t> tail) {
    PayloadWriter p;
    p.u64(first);
    p.u32(count);
    p.bytes(tail);
    StreamWriter w;
    w.add(RecordType::kRam, 0, p.data());
    return w.finish();
  };
  auto try_restore = [&](const std::vector<uint8_t>& s) -> std::string {
    auto recs = parse_stream(s);
    if (!recs) return recs.error().message;
    auto r = restore_ram_record(recs->at(0), ram);
    return r ? "" : r.error().message;
  };
  EXPECT_NE(try_restore(ram_record(7, 2, {1, 1})).find("outside"), std::string::npos);
  EXPECT_NE(try_restore(ram_record(~0ull, 1, {1})).find("outside"), std::string::npos);
  EXPECT_NE(try_restore(ram_record(0, 0, {})).find("page count"), std::string::npos);
  EXPECT_NE(try_restore(ram_record(0, 3, {1})).find("truncated"), std::string::npos);
  EXPECT_NE(try_restore(ram_record(0, 1, {2})).find("page kind"), std::string::npos);
  EXPECT_NE(try_restore(ram_record(0, 1, {1, 0x28, 0xb5, 0x2f, 0xfd})).find("RAM(0)"), std::string::npos);
  // A length field larger than the limit is refused before anything is allocated.
  StreamWriter w;
  auto s = w.finish();
  std::vector<uint8_t> big(s.begin(), s.begin() + kHeaderSize);
  for (int i = 0; i < 24; ++i) big.push_back(i >= 8 && i < 16 ? 0xff : 0);
  auto r = parse_stream(big);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("exceeds the limit"), std::string::npos) << r.error().message;
}

}  // namespace
}  // namespace vigil::migrate
