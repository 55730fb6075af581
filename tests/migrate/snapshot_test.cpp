// Whole-domain snapshots (src/migrate/snapshot.h): a domain built from a config and never
// run goes through snapshot_domain and load_domain_state into a second domain of the same
// config, and streams that do not fit (missing records, wrong order, hostile HSM and CLOCK
// payloads, another hart count) are refused with a sentence naming the record.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "hv/domain.h"
#include "migrate/objects.h"
#include "migrate/snapshot.h"

namespace vigil::migrate {
namespace {

// A RISC-V Linux Image header and nothing else: enough for the loader; never run here.
std::string fake_kernel() {
  static const std::string path = [] {
    std::string p = (std::filesystem::temp_directory_path() / fmt::format("vigil-fake-image-{}", ::getpid())).string();
    std::vector<uint8_t> img(4096);
    const uint32_t magic2 = 0x05435352;  // "RSC\x05"
    std::memcpy(img.data() + 56, &magic2, 4);
    std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(img.data()), img.size());
    return p;
  }();
  return path;
}

hv::DomainConfig small_config(unsigned vcpus = 2) {
  hv::DomainConfig c;
  c.name = "snap";
  c.memory_mib = 16;
  c.vcpus = vcpus;
  c.kernel = fake_kernel();
  c.rng = true;
  return c;
}

std::unique_ptr<hv::Domain> make_domain(const hv::DomainConfig& c) {
  auto d = hv::Domain::create(1, c);
  EXPECT_TRUE(d.has_value()) << d.error().message;
  return d ? std::move(*d) : nullptr;
}

// Rebuilds a stream from parsed records, dropping or replacing some.
std::vector<uint8_t> rebuild(const std::vector<Record>& recs, const std::function<bool(const Record&, StreamWriter&)>& edit) {
  StreamWriter w;
  for (const Record& r : recs) {
    if (r.type == static_cast<uint32_t>(RecordType::kEnd)) continue;
    if (!edit(r, w)) w.add_raw(r.type, r.instance, r.payload);
  }
  return w.finish();
}

Result<void> load(hv::Domain& d, const std::vector<uint8_t>& stream) {
  auto recs = parse_stream(stream);
  if (!recs) return std::unexpected(recs.error());
  return load_domain_state(d, *recs);
}

TEST(DomainSnapshot, RoundTripIntoAFreshDomain) {
  auto a = make_domain(small_config());
  ASSERT_TRUE(a);
  machine::Machine& ma = a->machine();
  // Distinctive state in RAM, harts, CLINT and the clock.
  ma.ram()[12345] = 0xab;
  ma.ram()[ma.ram().size() - 1] = 0xcd;
  ma.hart(1).x[5] = 0x5555;
  ma.hart(1).pc = 0x80001000;
  ma.set_mtimecmp(0, 4242);
  ASSERT_TRUE(ma.set_paused_clock(1'000'000));
  auto stream = snapshot_domain(*a);
  ASSERT_TRUE(stream) << stream.error().message;

  auto b = make_domain(small_config());
  ASSERT_TRUE(b);
  auto r = load(*b, *stream);
  ASSERT_TRUE(r) << r.error().message;
  machine::Machine& mb = b->machine();
  EXPECT_EQ(mb.ram()[12345], 0xab);
  EXPECT_EQ(mb.ram()[mb.ram().size() - 1], 0xcd);
  EXPECT_EQ(mb.hart(1).x[5], 0x5555u);
  EXPECT_EQ(mb.hart(1).pc, 0x80001000u);
  EXPECT_EQ(mb.mtimecmp(0), 4242u);
  EXPECT_EQ(mb.mtime(), 1'000'000u);
  EXPECT_EQ(mb.hsm_state(1).state, ma.hsm_state(1).state);
}

TEST(DomainSnapshot, StreamsThatDoNotFitAreRefused) {
  auto a = make_domain(small_config());
  ASSERT_TRUE(a);
  auto stream = snapshot_domain(*a);
  ASSERT_TRUE(stream);
  auto parsed = parse_stream(*stream);
  ASSERT_TRUE(parsed);
  const auto expect_refused = [&](const std::vector<uint8_t>& s, const std::string& words) {
    auto d = make_domain(small_config());
    ASSERT_TRUE(d);
    auto r = load(*d, s);
    ASSERT_FALSE(r) << "accepted a stream that should fail with: " << words;
    EXPECT_NE(r.error().message.find(words), std::string::npos) << r.error().message;
  };
  const auto is = [](const Record& r, RecordType t) { return r.type == static_cast<uint32_t>(t); };

  // A stream without its CLOCK record.
  expect_refused(rebuild(*parsed, [&](const Record& r, StreamWriter&) { return is(r, RecordType::kClock); }),
                 "no CLOCK record");
  // An HSM state that SBI does not define.
  expect_refused(rebuild(*parsed,
                         [&](const Record& r, StreamWriter& w) {
                           if (!is(r, RecordType::kHsm)) return false;
                           std::vector<uint8_t> p(r.payload.begin(), r.payload.end());
                           p[4] = 9;  // hart 0's state
                           w.add_raw(r.type, r.instance, p);
                           return true;
                         }),
                 "HSM(0)");
  // A clock beyond what the guest clock can hold.
  expect_refused(rebuild(*parsed,
                         [&](const Record& r, StreamWriter& w) {
                           if (!is(r, RecordType::kClock)) return false;
                           PayloadWriter p;
                           p.u64(~0ull);
                           w.add_raw(r.type, r.instance, p.data());
                           return true;
                         }),
                 "beyond the clock's range");
  // A RAM record after device state.
  expect_refused(rebuild(*parsed,
                         [&](const Record& r, StreamWriter& w) {
                           if (!is(r, RecordType::kClock)) return false;
                           w.add_raw(r.type, r.instance, r.payload);
                           std::vector<uint8_t> page(kPageSize, 1);
                           add_ram_pages(w, page, 0, 1);
                           return true;
                         }),
                 "RAM after device state");
  // A record twice.
  expect_refused(rebuild(*parsed,
                         [&](const Record& r, StreamWriter& w) {
                           if (!is(r, RecordType::kPlic)) return false;
                           w.add_raw(r.type, r.instance, r.payload);
                           w.add_raw(r.type, r.instance, r.payload);
                           return true;
                         }),
                 "appears twice");

  // The same stream into a domain with another hart count or RAM size.
  auto four = make_domain(small_config(4));
  ASSERT_TRUE(four);
  auto r = load(*four, *stream);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("harts"), std::string::npos) << r.error().message;
  auto bigger_config = small_config();
  bigger_config.memory_mib = 32;
  auto bigger = make_domain(bigger_config);
  ASSERT_TRUE(bigger);
  r = load(*bigger, *stream);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("RAM_INFO"), std::string::npos) << r.error().message;
}

}  // namespace
}  // namespace vigil::migrate
