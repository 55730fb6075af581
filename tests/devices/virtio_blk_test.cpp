// virtio-blk against a temporary raw image: every request type's effect is checked in the
// image file's bytes, plus the ways a guest (or the host file) can make a request fail.
#include "devices/virtio_blk.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "virtio_test_driver.h"

namespace vigil::devices {
namespace {

using namespace virtio_test;

constexpr uint32_t kTypeIn = 0, kTypeOut = 1, kTypeFlush = 4, kTypeGetId = 8, kTypeDiscard = 11;
constexpr uint8_t kOk = 0, kIoErr = 1, kUnsupp = 2;
constexpr uint64_t kFRo = 1ull << 5, kFFlush = 1ull << 9, kFDiscard = 1ull << 13;
constexpr uint64_t kFSizeMax = 1ull << 1, kFSegMax = 1ull << 2;

// A temporary image file whose byte i is pattern(i).
class TempImage {
 public:
  explicit TempImage(uint64_t size) {
    const char* dir = std::getenv("TMPDIR");
    m_path = std::string(dir && *dir ? dir : "/tmp") + "/vigil-blk-XXXXXX";
    const int fd = ::mkstemp(m_path.data());
    EXPECT_GE(fd, 0);
    std::vector<uint8_t> data(size);
    for (uint64_t i = 0; i < size; ++i) data[i] = pattern(i);
    EXPECT_EQ(::write(fd, data.data(), size), static_cast<ssize_t>(size));
    ::close(fd);
  }
  ~TempImage() { ::unlink(m_path.c_str()); }
  static uint8_t pattern(uint64_t i) { return static_cast<uint8_t>(i * 7 + i / 512 + 1); }
  const std::string& path() const { return m_path; }
  std::vector<uint8_t> contents() const {
    std::vector<uint8_t> out;
    const int fd = ::open(m_path.c_str(), O_RDONLY);
    uint8_t buf[4096];
    for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) out.insert(out.end(), buf, buf + n);
    ::close(fd);
    return out;
  }

 private:
  std::string m_path;
};

struct Outcome {
  uint8_t status;
  uint32_t used_len;
};

class VirtioBlkTest : public ::testing::Test {
 protected:
  static constexpr uint64_t kSectors = 64;

  void open(bool read_only, uint64_t size = kSectors * 512 + 100, std::string serial = "vigil-test-disk") {
    image = std::make_unique<TempImage>(size);
    auto blk_or = VirtioBlk::open(image->path(), read_only, serial);
    ASSERT_TRUE(blk_or.has_value()) << blk_or.error().message;
    blk = std::move(*blk_or);
    mmio = std::make_unique<VirtioMmio>(*blk, mem, &irq);
    drv = std::make_unique<TestDriver>(*mmio, mem);
    drv->start(1, 64);
  }
  void TearDown() override { EXPECT_EQ(irq.redundant(), 0); }

  // One request laid out as Linux does it: header, data buffers, status byte.
  Outcome request(uint32_t type, uint64_t sector, const std::vector<Buf>& data) {
    const uint64_t hdr = drv->alloc(16), status = drv->alloc(1);
    mem.put<uint32_t>(hdr, type);
    mem.put<uint32_t>(hdr + 4, 0);
    mem.put<uint64_t>(hdr + 8, sector);
    mem.put<uint8_t>(status, 0xee);
    std::vector<Buf> chain{{hdr, 16, false}};
    chain.insert(chain.end(), data.begin(), data.end());
    chain.push_back({status, 1, true});
    const uint16_t used_before = drv->used_idx(0);
    const uint16_t head = drv->submit(0, chain);
    EXPECT_EQ(drv->used_idx(0), static_cast<uint16_t>(used_before + 1)) << "request not completed";
    EXPECT_EQ(drv->last_used(0).id, head);
    return {mem.get<uint8_t>(status), drv->last_used(0).len};
  }
  uint64_t config64(uint64_t offset) {
    uint64_t v = 0;
    EXPECT_TRUE(mmio->read(reg::kConfig + offset, 8, v));
    return v;
  }
  uint32_t config32(uint64_t offset) { return drv->rd(reg::kConfig + offset); }

  FakeDma mem;
  FakeIrqLine irq;
  std::unique_ptr<TempImage> image;
  std::unique_ptr<VirtioBlk> blk;
  std::unique_ptr<VirtioMmio> mmio;
  std::unique_ptr<TestDriver> drv;
};

TEST_F(VirtioBlkTest, OpenMissingFileNamesIt) {
  auto r = VirtioBlk::open("/nonexistent/vigil/disk.img", false);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("/nonexistent/vigil/disk.img"), std::string::npos) << r.error().message;
}

TEST_F(VirtioBlkTest, OpenDirectoryRefused) {
  auto r = VirtioBlk::open("/tmp", true);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("'/tmp'"), std::string::npos) << r.error().message;
}

TEST_F(VirtioBlkTest, SecondWriterRefusedReadersShare) {
  TempImage img(4096);
  auto a = VirtioBlk::open(img.path(), false);
  ASSERT_TRUE(a.has_value());
  auto b = VirtioBlk::open(img.path(), false);
  ASSERT_FALSE(b.has_value());
  EXPECT_NE(b.error().message.find("in use"), std::string::npos) << b.error().message;
  a.value().reset();                      // close the writer, dropping its lock
  a = VirtioBlk::open(img.path(), true);  // readers may share
  ASSERT_TRUE(a.has_value());
  EXPECT_TRUE(VirtioBlk::open(img.path(), true).has_value());
}

TEST_F(VirtioBlkTest, IdentityFeaturesAndConfig) {
  open(false);
  EXPECT_EQ(drv->rd(reg::kDeviceId), 2u);
  const uint64_t f = drv->device_features();
  EXPECT_TRUE(f & kFFlush);
  EXPECT_TRUE(f & kFDiscard);
  EXPECT_TRUE(f & kFSegMax);
  EXPECT_TRUE(f & kFSizeMax);
  EXPECT_FALSE(f & kFRo);
  EXPECT_EQ(config64(0), kSectors);  // the trailing 100 bytes are not a whole sector
  EXPECT_EQ(blk->capacity_sectors(), kSectors);
  // Two 32-bit halves, as Linux reads a 64-bit field.
  EXPECT_EQ(config32(0), kSectors);
  EXPECT_EQ(config32(4), 0u);
  EXPECT_EQ(config32(8), 256u * 1024);  // size_max
  EXPECT_EQ(config32(12), 254u);        // seg_max
  EXPECT_GT(config32(36), 0u);          // max_discard_sectors
  EXPECT_GT(config32(40), 0u);          // max_discard_seg
}

TEST_F(VirtioBlkTest, ReadReturnsImageBytes) {
  open(false);
  const uint64_t a = drv->alloc(700), b = drv->alloc(324);
  // Two sectors starting at sector 3, split unevenly over two buffers.
  const Outcome r = request(kTypeIn, 3, {{a, 700, true}, {b, 324, true}});
  EXPECT_EQ(r.status, kOk);
  EXPECT_EQ(r.used_len, 1025u);
  auto got = mem.bytes(a, 700);
  const auto tail = mem.bytes(b, 324);
  got.insert(got.end(), tail.begin(), tail.end());
  for (uint64_t i = 0; i < 1024; ++i) ASSERT_EQ(got[i], TempImage::pattern(3 * 512 + i)) << i;
  EXPECT_TRUE(irq.level());
}

TEST_F(VirtioBlkTest, HeaderAndStatusMaySplitAnywhere) {
  open(false);
  // 2.6.4: no framing assumptions. Header in 3 pieces, data and status in one buffer.
  const uint64_t h1 = drv->alloc(5), h2 = drv->alloc(7), h3 = drv->alloc(4), d = drv->alloc(513);
  uint8_t hdr[16] = {};
  hdr[0] = kTypeIn;
  hdr[8] = 10;  // sector 10
  mem.poke(h1, hdr, 5);
  mem.poke(h2, hdr + 5, 7);
  mem.poke(h3, hdr + 12, 4);
  drv->submit(0, {{h1, 5, false}, {h2, 7, false}, {h3, 4, false}, {d, 513, true}});
  EXPECT_EQ(drv->last_used(0).len, 513u);
  EXPECT_EQ(mem.get<uint8_t>(d + 512), kOk);
  EXPECT_EQ(mem.get<uint8_t>(d), TempImage::pattern(10 * 512));
  EXPECT_EQ(mem.get<uint8_t>(d + 511), TempImage::pattern(10 * 512 + 511));
}

TEST_F(VirtioBlkTest, WriteLandsInImage) {
  open(false);
  const uint64_t d = drv->alloc(1024);
  std::vector<uint8_t> data(1024);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(0xa0 ^ i);
  mem.poke(d, data.data(), data.size());
  const Outcome r = request(kTypeOut, 5, {{d, 512, false}, {d + 512, 512, false}});
  EXPECT_EQ(r.status, kOk);
  EXPECT_EQ(r.used_len, 1u);
  const auto file = image->contents();
  ASSERT_EQ(file.size(), kSectors * 512 + 100);
  for (uint64_t i = 0; i < file.size(); ++i) {
    const bool in_write = i >= 5 * 512 && i < 7 * 512;
    ASSERT_EQ(file[i], in_write ? data[i - 5 * 512] : TempImage::pattern(i)) << i;
  }
}

TEST_F(VirtioBlkTest, LargeTransfersCrossTheBounceBuffer) {
  open(false, 1 << 20);
  // 300 KiB is more than one 256 KiB host chunk; write it, read it back elsewhere.
  constexpr uint32_t kLen = 300 * 1024;
  const uint64_t src = drv->alloc(kLen);
  std::vector<uint8_t> data(kLen);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 13 + i / 4096);
  mem.poke(src, data.data(), data.size());
  EXPECT_EQ(request(kTypeOut, 100, {{src, kLen, false}}).status, kOk);
  mem.fill(src, 0, kLen);
  const Outcome r = request(kTypeIn, 100, {{src, kLen, true}});
  EXPECT_EQ(r.status, kOk);
  EXPECT_EQ(r.used_len, kLen + 1);
  EXPECT_EQ(mem.bytes(src, kLen), data);
  const auto file = image->contents();
  EXPECT_TRUE(std::equal(data.begin(), data.end(), file.begin() + 100 * 512));
}

TEST_F(VirtioBlkTest, FlushSucceeds) {
  open(false);
  const Outcome r = request(kTypeFlush, 0, {});
  EXPECT_EQ(r.status, kOk);
  EXPECT_EQ(r.used_len, 1u);
}

TEST_F(VirtioBlkTest, GetIdReturnsPaddedSerial) {
  open(false);
  const uint64_t id = drv->alloc(20);
  mem.fill(id, 0xff, 20);
  const Outcome r = request(kTypeGetId, 0, {{id, 20, true}});
  EXPECT_EQ(r.status, kOk);
  EXPECT_EQ(r.used_len, 21u);
  const auto got = mem.bytes(id, 20);
  EXPECT_EQ(std::string(got.begin(), got.begin() + 15), "vigil-test-disk");
  for (int i = 15; i < 20; ++i) EXPECT_EQ(got[i], 0) << i;
}

TEST_F(VirtioBlkTest, GetIdTruncatesLongSerialAndDefaultsToFileName) {
  open(false, 4096, "0123456789abcdefghijKLMN");
  const uint64_t id = drv->alloc(20);
  EXPECT_EQ(request(kTypeGetId, 0, {{id, 20, true}}).status, kOk);
  const auto got = mem.bytes(id, 20);
  EXPECT_EQ(std::string(got.begin(), got.end()), "0123456789abcdefghij");

  TempImage img(4096);
  auto plain = VirtioBlk::open(img.path(), true);
  ASSERT_TRUE(plain.has_value());
  FakeDma mem2;
  VirtioMmio mmio2(**plain, mem2, nullptr);
  TestDriver drv2(mmio2, mem2);
  drv2.start(1, 8);
  const uint64_t hdr = drv2.alloc(16), buf = drv2.alloc(21);
  mem2.put<uint32_t>(hdr, kTypeGetId);
  drv2.submit(0, {{hdr, 16, false}, {buf, 21, true}});
  const auto name = img.path().substr(img.path().rfind('/') + 1);  // "vigil-blk-XXXXXX"
  const auto got2 = mem2.bytes(buf, name.size());
  EXPECT_EQ(std::string(got2.begin(), got2.end()), name);
}

struct DiscardSeg {
  uint64_t sector;
  uint32_t count;
  uint32_t flags;
};

class VirtioBlkDiscardTest : public VirtioBlkTest {
 protected:
  Outcome discard(const std::vector<DiscardSeg>& segs) {
    const uint64_t d = drv->alloc(16 * segs.size());
    for (size_t i = 0; i < segs.size(); ++i) {
      mem.put<uint64_t>(d + 16 * i, segs[i].sector);
      mem.put<uint32_t>(d + 16 * i + 8, segs[i].count);
      mem.put<uint32_t>(d + 16 * i + 12, segs[i].flags);
    }
    return request(kTypeDiscard, 0, {{d, static_cast<uint32_t>(16 * segs.size()), false}});
  }
};

TEST_F(VirtioBlkDiscardTest, DiscardZeroesRangeKeepsSize) {
  open(false);
  const Outcome r = discard({{8, 8, 0}, {40, 1, 0}});
  EXPECT_EQ(r.status, kOk);
  const auto file = image->contents();
  ASSERT_EQ(file.size(), kSectors * 512 + 100);
  for (uint64_t i = 0; i < file.size(); ++i) {
    const uint64_t s = i / 512;
    const bool discarded = (s >= 8 && s < 16) || s == 40;
    ASSERT_EQ(file[i], discarded ? 0 : TempImage::pattern(i)) << i;
  }
}

TEST_F(VirtioBlkDiscardTest, BadDiscardsChangeNothing) {
  open(false);
  EXPECT_EQ(discard({{8, 8, 1}}).status, kUnsupp);             // unmap flag
  EXPECT_EQ(discard({{8, 8, 0x10}}).status, kUnsupp);          // unknown flag
  EXPECT_EQ(discard({{0, 1, 0}, {60, 8, 0}}).status, kIoErr);  // second runs past the end
  EXPECT_EQ(discard({{~0ull - 1, 4, 0}}).status, kIoErr);      // sector overflow
  std::vector<DiscardSeg> many(33, DiscardSeg{0, 1, 0});       // more than max_discard_seg
  EXPECT_EQ(discard(many).status, kIoErr);
  // 20 bytes of segment data is not a whole segment.
  const uint64_t d = drv->alloc(20);
  EXPECT_EQ(request(kTypeDiscard, 0, {{d, 20, false}}).status, kIoErr);
  const auto file = image->contents();
  for (uint64_t i = 0; i < file.size(); ++i) ASSERT_EQ(file[i], TempImage::pattern(i)) << i;
}

TEST_F(VirtioBlkTest, ReadOnlyDiskRefusesWrites) {
  open(true);
  const uint64_t f = drv->device_features();
  EXPECT_TRUE(f & kFRo);
  EXPECT_FALSE(f & kFDiscard);
  const uint64_t d = drv->alloc(512);
  mem.fill(d, 0x55, 512);
  const Outcome r = request(kTypeOut, 0, {{d, 512, false}});
  EXPECT_EQ(r.status, kIoErr);
  EXPECT_EQ(r.used_len, 1u);
  mem.put<uint64_t>(d, 0);
  mem.put<uint32_t>(d + 8, 1);
  mem.put<uint32_t>(d + 12, 0);
  EXPECT_EQ(request(kTypeDiscard, 0, {{d, 16, false}}).status, kUnsupp);
  const auto file = image->contents();
  for (uint64_t i = 0; i < file.size(); ++i) ASSERT_EQ(file[i], TempImage::pattern(i)) << i;
  // Reads still work.
  EXPECT_EQ(request(kTypeIn, 0, {{d, 512, true}}).status, kOk);
  EXPECT_EQ(mem.get<uint8_t>(d + 1), TempImage::pattern(1));
}

TEST_F(VirtioBlkTest, OutOfRangeSectorsAreIoErr) {
  open(false);
  const uint64_t d = drv->alloc(1024);
  EXPECT_EQ(request(kTypeIn, kSectors, {{d, 512, true}}).status, kIoErr);
  EXPECT_EQ(request(kTypeIn, kSectors - 1, {{d, 1024, true}}).status, kIoErr);
  EXPECT_EQ(request(kTypeIn, ~0ull, {{d, 512, true}}).status, kIoErr);
  EXPECT_EQ(request(kTypeIn, 1ull << 55, {{d, 512, true}}).status, kIoErr);  // sector * 512 overflows
  EXPECT_EQ(request(kTypeOut, kSectors, {{d, 512, false}}).status, kIoErr);
  EXPECT_EQ(request(kTypeIn, kSectors - 1, {{d, 512, true}}).status, kOk);  // the last sector is fine
  const auto file = image->contents();
  ASSERT_EQ(file.size(), kSectors * 512 + 100);  // nothing written past the end
}

TEST_F(VirtioBlkTest, PartialSectorsAreIoErr) {
  open(false);
  const uint64_t d = drv->alloc(1024);
  EXPECT_EQ(request(kTypeIn, 0, {{d, 100, true}}).status, kIoErr);
  EXPECT_EQ(request(kTypeOut, 0, {{d, 513, false}}).status, kIoErr);
  const auto file = image->contents();
  for (uint64_t i = 0; i < 1024; ++i) ASSERT_EQ(file[i], TempImage::pattern(i)) << i;
}

TEST_F(VirtioBlkTest, UnknownTypeIsUnsupp) {
  open(false);
  EXPECT_EQ(request(99, 0, {}).status, kUnsupp);
  EXPECT_EQ(request(kTypeIn + 2, 0, {}).status, kUnsupp);
}

TEST_F(VirtioBlkTest, ShortHeaderIsIoErr) {
  open(false);
  const uint64_t hdr = drv->alloc(8), status = drv->alloc(1);
  drv->submit(0, {{hdr, 8, false}, {status, 1, true}});
  EXPECT_EQ(mem.get<uint8_t>(status), kIoErr);
  EXPECT_FALSE(drv->needs_reset());
}

TEST_F(VirtioBlkTest, RequestWithoutStatusByteIsReturnedEmpty) {
  open(false);
  const uint64_t hdr = drv->alloc(16);
  mem.put<uint32_t>(hdr, kTypeFlush);
  drv->submit(0, {{hdr, 16, false}});
  EXPECT_EQ(drv->used_idx(0), 1);
  EXPECT_EQ(drv->last_used(0).len, 0u);
  EXPECT_FALSE(drv->needs_reset());
}

TEST_F(VirtioBlkTest, DataOutsideGuestRamFailsRequestOnly) {
  open(false);
  // Read into memory DmaMemory refuses: IOERR, nothing written there, device still fine.
  EXPECT_EQ(request(kTypeIn, 0, {{0x4000'0000, 512, true}}).status, kIoErr);
  EXPECT_EQ(request(kTypeOut, 0, {{FakeDma::kBase + FakeDma::kSize - 256, 512, false}}).status, kIoErr);
  EXPECT_GT(mem.refused(), 0u);
  EXPECT_FALSE(drv->needs_reset());
  const auto file = image->contents();
  for (uint64_t i = 0; i < 512; ++i) ASSERT_EQ(file[i], TempImage::pattern(i)) << i;
  const uint64_t d = drv->alloc(512);
  EXPECT_EQ(request(kTypeIn, 0, {{d, 512, true}}).status, kOk);
}

TEST_F(VirtioBlkTest, ImageTruncatedUnderneathIsIoErr) {
  open(false);
  ASSERT_EQ(::truncate(image->path().c_str(), 1024), 0);
  const uint64_t d = drv->alloc(512);
  EXPECT_EQ(request(kTypeIn, 10, {{d, 512, true}}).status, kIoErr);
  EXPECT_EQ(request(kTypeIn, 1, {{d, 512, true}}).status, kOk);
}

TEST_F(VirtioBlkTest, HostWriteErrorIsIoErr) {
  open(false);
  // RLIMIT_FSIZE makes pwrite past the limit fail with EFBIG (and SIGXFSZ, ignored here):
  // a real host I/O error without needing a failing disk.
  struct rlimit old_limit;
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  auto old_handler = ::signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = old_limit;
  small.rlim_cur = 4096;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  const uint64_t d = drv->alloc(512);
  mem.fill(d, 0x77, 512);
  const Outcome r = request(kTypeOut, 20, {{d, 512, false}});
  const Outcome below = request(kTypeOut, 2, {{d, 512, false}});
  ::setrlimit(RLIMIT_FSIZE, &old_limit);
  ::signal(SIGXFSZ, old_handler);
  EXPECT_EQ(r.status, kIoErr);
  EXPECT_EQ(below.status, kOk);
  EXPECT_FALSE(drv->needs_reset());
}

TEST_F(VirtioBlkTest, ManyRequestsInOneNotify) {
  open(false);
  // Queue 16 single-sector reads, then notify once; all complete, each with its sector.
  std::vector<uint64_t> bufs, stats;
  for (uint64_t s = 0; s < 16; ++s) {
    const uint64_t hdr = drv->alloc(16), d = drv->alloc(512), st = drv->alloc(1);
    mem.put<uint32_t>(hdr, kTypeIn);
    mem.put<uint64_t>(hdr + 8, s);
    drv->submit(0, {{hdr, 16, false}, {d, 512, true}, {st, 1, true}}, false);
    bufs.push_back(d);
    stats.push_back(st);
  }
  drv->notify(0);
  EXPECT_EQ(drv->used_idx(0), 16);
  for (uint64_t s = 0; s < 16; ++s) {
    EXPECT_EQ(mem.get<uint8_t>(stats[s]), kOk);
    EXPECT_EQ(mem.get<uint8_t>(bufs[s] + 3), TempImage::pattern(s * 512 + 3));
  }
}

}  // namespace
}  // namespace vigil::devices
