// Sealing vTPM state keys to a host TPM (vtpm/sealing.h): the blob format against hostile
// bytes, and seal/unseal against real swtpm processes standing in for host TPMs.
#include "vtpm/sealing.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace vigil::vtpm {
namespace {

namespace fs = std::filesystem;

std::vector<uint8_t> file_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A swtpm on 127.0.0.1:port (data) and port+1 (control), state in its own directory.
class HostTpm {
 public:
  explicit HostTpm(const fs::path& dir) {
    fs::create_directories(dir);
    port = free_port_pair();
    m_pid = ::fork();
    if (m_pid == 0) {
      const std::string state = "dir=" + dir.string();
      const std::string server = "type=tcp,bindaddr=127.0.0.1,port=" + std::to_string(port);
      const std::string ctrl = "type=tcp,bindaddr=127.0.0.1,port=" + std::to_string(port + 1);
      ::execlp("swtpm", "swtpm", "socket", "--tpm2", "--tpmstate", state.c_str(), "--server", server.c_str(), "--ctrl",
               ctrl.c_str(), "--flags", "not-need-init,startup-clear", static_cast<char*>(nullptr));
      ::_exit(127);
    }
    // Ready when the data port accepts.
    for (int i = 0; i < 200 && !accepts(port); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ~HostTpm() {
    if (m_pid > 0) {
      ::kill(m_pid, SIGTERM);
      ::waitpid(m_pid, nullptr, 0);
    }
  }
  std::string tcti() const { return "swtpm:host=127.0.0.1,port=" + std::to_string(port); }
  int port = 0;

  static bool accepts(int p) {
    const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(p));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const bool ok = ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
    ::close(s);
    return ok;
  }
  static int free_port_pair() {
    for (int p = 20000 + (::getpid() % 20000) * 2 % 20000;; p += 2) {
      if (!accepts(p) && !accepts(p + 1)) return p;
    }
  }

 private:
  pid_t m_pid = -1;
};

class SealingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::system("command -v swtpm > /dev/null") != 0) GTEST_SKIP() << "swtpm is not installed";
    m_dir = fs::temp_directory_path() / ("vigil-sealing-" + std::to_string(::getpid()));
    fs::remove_all(m_dir);
  }
  void TearDown() override { fs::remove_all(m_dir); }
  fs::path m_dir;
};

TEST_F(SealingTest, SealsOnFirstUseAndUnsealsTheSameKeyLater) {
  HostTpm host(m_dir / "host");
  const fs::path state = m_dir / "vtpm";
  auto key = state_key(host.tcti(), state.string());
  ASSERT_TRUE(key) << key.error().message;
  EXPECT_EQ(key->size(), kStateKeyBytes);
  const fs::path blob = state / kSealedKeyFile;
  ASSERT_TRUE(fs::exists(blob));
  struct stat st{};
  ASSERT_EQ(::stat(blob.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const auto bytes = file_bytes(blob);
  EXPECT_EQ(std::search(bytes.begin(), bytes.end(), key->begin(), key->end()), bytes.end()) << "the key in the clear";
  auto again = state_key(host.tcti(), state.string());
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(*again, *key);
  EXPECT_EQ(file_bytes(blob), bytes) << "unsealing leaves the blob alone";
  // A second vTPM gets a key of its own.
  auto other = state_key(host.tcti(), (m_dir / "vtpm2").string());
  ASSERT_TRUE(other);
  EXPECT_NE(*other, *key);
}

TEST_F(SealingTest, AnotherHostTpmCannotUnsealAndNothingIsRecreated) {
  const fs::path state = m_dir / "vtpm";
  std::vector<uint8_t> blob_before;
  {
    HostTpm host(m_dir / "host");
    ASSERT_TRUE(state_key(host.tcti(), state.string()));
    blob_before = file_bytes(state / kSealedKeyFile);
  }
  HostTpm stranger(m_dir / "stranger");
  auto key = state_key(stranger.tcti(), state.string());
  ASSERT_FALSE(key);
  EXPECT_NE(key.error().message.find("host TPM '" + stranger.tcti() + "': cannot load the sealed vTPM state key"),
            std::string::npos)
      << key.error().message;
  EXPECT_EQ(key.error().message.find('\n'), std::string::npos);
  EXPECT_EQ(file_bytes(state / kSealedKeyFile), blob_before);
}

TEST_F(SealingTest, UnreachableHostTpmIsOneSentenceNamingTheTcti) {
  const std::string tcti = "swtpm:host=127.0.0.1,port=" + std::to_string(HostTpm::free_port_pair());
  auto key = state_key(tcti, (m_dir / "vtpm").string());
  ASSERT_FALSE(key);
  EXPECT_EQ(key.error().message.rfind("host TPM '" + tcti + "': ", 0), 0u) << key.error().message;
  EXPECT_FALSE(fs::exists(m_dir / "vtpm" / kSealedKeyFile));
  auto bad = state_key("nosuchtcti:x", (m_dir / "vtpm").string());
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message.rfind("host TPM 'nosuchtcti:x': cannot open the TCTI", 0), 0u) << bad.error().message;
}

TEST_F(SealingTest, StateWithoutItsBlobIsRefused) {
  const fs::path state = m_dir / "vtpm";
  fs::create_directories(state);
  std::ofstream(state / "tpm2-00.permall") << "state";
  auto key = state_key("swtpm:host=127.0.0.1,port=1", state.string());
  ASSERT_FALSE(key);
  EXPECT_NE(key.error().message.find("has no sealed key"), std::string::npos) << key.error().message;
  EXPECT_FALSE(fs::exists(state / kSealedKeyFile));
}

TEST(SealedBlob, PcrLists) {
  EXPECT_EQ(parse_pcr_list("0,7,16").value(), 0x10081u);
  EXPECT_EQ(format_pcr_list(0x10081), "0,7,16");
  for (const char* bad : {"", "24", "1,", "a", "-1", "7 ", "0x1"}) {
    auto r = parse_pcr_list(bad);
    EXPECT_FALSE(r) << bad;
    if (!r) {
      EXPECT_NE(r.error().message.find("is not a PCR number 0-23"), std::string::npos);
    }
  }
}

TEST_F(SealingTest, PcrPolicyUnsealsOnlyWhileTheHostPcrsHold) {
  HostTpm host(m_dir / "host");
  const fs::path state = m_dir / "vtpm";
  auto key = state_key(host.tcti(), state.string(), 1u << 16);
  ASSERT_TRUE(key) << key.error().message;
  auto blob = parse_sealed_blob(file_bytes(state / kSealedKeyFile));
  ASSERT_TRUE(blob);
  EXPECT_EQ(blob->pcr_mask, 1u << 16);
  auto again = state_key(host.tcti(), state.string());  // the blob's policy, whatever is asked now
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(*again, *key);
  const std::string extend = "tpm2_pcrextend -T '" + host.tcti() + "' 16:sha256=" + std::string(64, '1') + " 2>/dev/null";
  ASSERT_EQ(::system(extend.c_str()), 0);
  auto after = state_key(host.tcti(), state.string());
  ASSERT_FALSE(after);
  EXPECT_EQ(after.error().message, "host TPM '" + host.tcti() +
                                       "': cannot unseal the vTPM state key: host PCRs 16 differ from when it was sealed");
}

TEST(SealedBlob, RoundTripsAndRefusesHostileBytes) {
  // A well-formed blob needs real marshaled parts: build them by hand (TPM2B_PUBLIC of a
  // KEYEDHASH object, TPM2B_PRIVATE of 4 opaque bytes).
  const std::vector<uint8_t> pub = {0x00, 0x0e, 0x00, 0x08, 0x00, 0x0b, 0x00, 0x00, 0x04, 0x52,
                                    0x00, 0x00, 0x00, 0x10, 0x00, 0x00};
  const std::vector<uint8_t> priv = {0x00, 0x04, 1, 2, 3, 4};
  const auto bytes = format_sealed_blob({pub, priv, 0x010080});
  auto parsed = parse_sealed_blob(bytes);
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->pub, pub);
  EXPECT_EQ(parsed->priv, priv);
  EXPECT_EQ(parsed->pcr_mask, 0x010080u);

  auto fails = [](std::vector<uint8_t> b, const std::string& what) {
    auto r = parse_sealed_blob(b);
    ASSERT_FALSE(r) << what;
    EXPECT_NE(r.error().message.find(what), std::string::npos) << r.error().message;
  };
  fails({}, "magic");
  auto wrong_magic = bytes;
  wrong_magic[0] ^= 1;
  fails(wrong_magic, "magic");
  auto wide_mask = bytes;
  wide_mask[8] = 1;  // PCR 24 and up do not exist
  fails(wide_mask, "beyond 23");
  for (size_t n = 8; n < bytes.size(); ++n) {
    auto cut = std::vector<uint8_t>(bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(n));
    EXPECT_FALSE(parse_sealed_blob(cut)) << "cut at " << n;
  }
  auto trailing = bytes;
  trailing.push_back(0);
  fails(trailing, "1 bytes after the private part");
  auto huge = bytes;
  huge[12] = 0xff;  // public part length 0xff0e
  fails(huge, "public part declares");
  auto rsa = pub;
  rsa[3] = 0x01;  // TPM_ALG_RSA: not a sealed data object
  fails(format_sealed_blob({rsa, priv}), "not a");
  auto short_priv = priv;
  short_priv[1] = 9;  // TPM2B size beyond its part
  fails(format_sealed_blob({pub, short_priv}), "private part is not a TPM2B_PRIVATE");
}

}  // namespace
}  // namespace vigil::vtpm
