// The vTPM's state in snapshots: the blob bundle's parser against hostile bytes, and a real
// swtpm's state (with a state key: encrypted) moved into another swtpm with the same key.
#include "vtpm/swtpm_state.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "vtpm/swtpm.h"

namespace vigil::vtpm {
namespace {

std::vector<uint8_t> bundle() {
  SwtpmState s;
  s.blobs = {{kBlobPermanent, kBlobFlagEncrypted, {1, 2, 3}}, {kBlobVolatile, kBlobFlagEncrypted, {4}}, {kBlobSavestate, 0, {}}};
  return format_swtpm_state(s);
}

TEST(SwtpmState, RoundTripsAndRefusesHostileBytes) {
  auto ok = parse_swtpm_state(bundle());
  ASSERT_TRUE(ok) << ok.error().message;
  ASSERT_EQ(ok->blobs.size(), 3u);
  EXPECT_EQ(ok->blobs[0].data, (std::vector<uint8_t>{1, 2, 3}));
  EXPECT_TRUE(ok->encrypted());
  const auto refuse = [](std::vector<uint8_t> b, const std::string& want) {
    auto r = parse_swtpm_state(b);
    ASSERT_FALSE(r) << want;
    EXPECT_EQ(r.error().message, want);
  };
  auto b = bundle();
  b[0] = 'X';
  refuse(b, "the swtpm state does not start with VTPMST01");
  b = bundle();
  refuse(std::vector<uint8_t>(b.begin(), b.begin() + 10), "the swtpm state is truncated before its blob count");
  b[8] = 4;
  refuse(b, "the swtpm state has 4 blobs, not 3");
  b = bundle();
  b[12] = 2;
  refuse(b, "blob 1 is type 2, not permanent");
  b = bundle();
  b[16] = 1;
  refuse(b, "the permanent blob has flags 0x1, not 0 or encrypted");
  b = bundle();
  b[22] = 0x20;  // length 2 MiB
  refuse(b, "the permanent blob claims 2097155 bytes, more than 1048576");
  b = bundle();
  b[20] = 0xff;
  refuse(b, "the permanent blob claims 255 bytes, 28 remain");
  b = bundle();
  b.push_back(0);
  refuse(b, "1 bytes follow the swtpm state");
  b = bundle();
  refuse(std::vector<uint8_t>(b.begin(), b.end() - 3), "the swtpm state is truncated in blob 3");
  SwtpmState empty;
  empty.blobs = {{kBlobPermanent, 0, {}}, {kBlobVolatile, 0, {}}, {kBlobSavestate, 0, {}}};
  refuse(format_swtpm_state(empty), "the permanent blob is empty");
}

class SwtpmStateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::system("command -v swtpm > /dev/null") != 0) GTEST_SKIP() << "swtpm is not installed";
    char tmpl[] = "/tmp/vigil-swtpm-state-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir = tmpl;
  }
  void TearDown() override {
    if (!dir.empty()) std::filesystem::remove_all(dir);
  }
  std::shared_ptr<Swtpm> start(const std::string& name, uint8_t key_byte) {
    Swtpm::Options o{.state_dir = dir + "/" + name, .label = name};
    if (key_byte) o.state_key.assign(32, key_byte);
    auto t = Swtpm::start(o);
    EXPECT_TRUE(t) << (t ? "" : t.error().message);
    return t ? *t : nullptr;
  }
  static std::vector<uint8_t> pcr16(Swtpm& t) {
    static const uint8_t kRead[] = {0x80, 0x01, 0, 0, 0, 20, 0, 0, 0x01, 0x7e, 0, 0, 0, 1, 0x00, 0x0b, 3, 0, 0, 1};
    auto r = t.execute(kRead);
    EXPECT_TRUE(r);
    return r && r->size() >= 62 ? std::vector<uint8_t>(r->end() - 32, r->end()) : std::vector<uint8_t>{};
  }
  static void extend16(Swtpm& t) {
    std::vector<uint8_t> c = {0x80, 0x02, 0, 0, 0, 65, 0, 0, 0x01, 0x82, 0, 0, 0, 16,
                              0, 0, 0, 9, 0x40, 0, 0, 0x09, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x00, 0x0b};
    c.insert(c.end(), 32, 0x11);
    auto r = t.execute(c);
    ASSERT_TRUE(r);
    EXPECT_EQ((*r)[9], 0) << "PCR_Extend succeeded";
  }
  std::string dir;
};

TEST_F(SwtpmStateTest, EncryptedStateMovesToASwtpmWithTheSameKeyOnly) {
  auto a = start("a", 0x5a);
  ASSERT_TRUE(a);
  extend16(*a);
  const auto extended = pcr16(*a);
  auto saved = a->save_state();
  ASSERT_TRUE(saved) << saved.error().message;
  auto parsed = parse_swtpm_state(*saved);
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_TRUE(parsed->encrypted());
  EXPECT_GT(parsed->blobs[0].data.size(), 1000u);
  EXPECT_FALSE(parsed->blobs[1].data.empty()) << "volatile state: the PCRs";
  EXPECT_EQ(pcr16(*a), extended) << "the TPM runs on after a save";

  auto b = start("b", 0x5a);
  ASSERT_TRUE(b);
  EXPECT_NE(pcr16(*b), extended);
  auto loaded = b->load_state(*saved);
  ASSERT_TRUE(loaded) << loaded.error().message;
  EXPECT_EQ(pcr16(*b), extended) << "the loaded TPM resumes with the saved PCRs";

  auto c = start("c", 0x77);
  ASSERT_TRUE(c);
  auto wrong = c->load_state(*saved);
  ASSERT_FALSE(wrong);
  EXPECT_NE(wrong.error().message.find("refused the permanent blob with TPM result"), std::string::npos) << wrong.error().message;

  auto d = start("d", 0);
  ASSERT_TRUE(d);
  auto plain = d->load_state(*saved);
  ASSERT_FALSE(plain);
  EXPECT_NE(plain.error().message.find("encrypted with the domain's sealed state key, but this vTPM has no state key"),
            std::string::npos)
      << plain.error().message;
  EXPECT_FALSE(d->load_state(std::vector<uint8_t>{1, 2, 3}));
}

}  // namespace
}  // namespace vigil::vtpm
