#include "machine/measured_boot.h"

#include <openssl/sha.h>

namespace vigil::machine {

namespace {
constexpr uint16_t kStSessions = 0x8002;
constexpr uint32_t kCcPcrExtend = 0x182;
constexpr uint32_t kRsPw = 0x40000009;   // TPM 2.0 Part 2, 7.4: the password authorization session
constexpr uint16_t kAlgSha256 = 0x000b;
// Event types (TCG PC Client Platform Firmware Profile, 10.4.1).
constexpr uint32_t kEvNoAction = 0x3, kEvSCrtmContents = 0x7, kEvPlatformConfigFlags = 0xa,
                   kEvTableOfDevices = 0xb, kEvCompactHash = 0xc;

void be16(std::vector<uint8_t>& v, uint16_t x) {
  v.push_back(static_cast<uint8_t>(x >> 8));
  v.push_back(static_cast<uint8_t>(x));
}
void be32(std::vector<uint8_t>& v, uint32_t x) {
  be16(v, static_cast<uint16_t>(x >> 16));
  be16(v, static_cast<uint16_t>(x));
}
}  // namespace

Measurement measure(unsigned pcr, std::string what, std::span<const uint8_t> data) {
  Measurement m{pcr, std::move(what), {}};
  SHA256(data.data(), data.size(), m.sha256.data());
  if (m.what == "kernel") {
    m.event_type = kEvCompactHash, m.event = "linux";
  } else if (m.what == "initrd") {
    m.event_type = kEvCompactHash, m.event = "initrd";
  } else if (m.what == "dtb") {
    m.event_type = kEvTableOfDevices, m.event = "dts";
  } else if (m.what == "bootargs") {
    m.event_type = kEvPlatformConfigFlags, m.event.assign(data.begin(), data.end());
  } else {
    m.event_type = kEvSCrtmContents, m.event = m.what;
  }
  return m;
}

std::vector<uint8_t> tcg2_event_log(const std::vector<Measurement>& measurements) {
  std::vector<uint8_t> log;
  auto le16 = [&](uint16_t x) {
    log.push_back(static_cast<uint8_t>(x));
    log.push_back(static_cast<uint8_t>(x >> 8));
  };
  auto le32 = [&](uint32_t x) {
    le16(static_cast<uint16_t>(x));
    le16(static_cast<uint16_t>(x >> 16));
  };
  // TCG_PCClientPCREvent carrying TCG_EfiSpecIDEventStruct.
  static constexpr char kSignature[16] = "Spec ID Event03";
  le32(0);              // pcrIndex
  le32(kEvNoAction);    // eventType
  log.insert(log.end(), 20, 0);  // SHA-1 digest: zero
  le32(16 + 4 + 4 + 4 + 4 + 1);  // eventSize
  log.insert(log.end(), kSignature, kSignature + 16);
  le32(0);              // platformClass: client
  log.push_back(0);     // specVersionMinor
  log.push_back(2);     // specVersionMajor
  log.push_back(0);     // specErrata
  log.push_back(2);     // uintnSize: UINT64
  le32(1);              // numberOfAlgorithms
  le16(kAlgSha256);
  le16(32);
  log.push_back(0);     // vendorInfoSize
  for (const Measurement& m : measurements) {
    le32(m.pcr);
    le32(m.event_type);
    le32(1);  // TPML_DIGEST_VALUES.count
    le16(kAlgSha256);
    log.insert(log.end(), m.sha256.begin(), m.sha256.end());
    le32(static_cast<uint32_t>(m.event.size()));
    log.insert(log.end(), m.event.begin(), m.event.end());
  }
  return log;
}

std::vector<uint8_t> pcr_extend_command(unsigned pcr, const std::array<uint8_t, 32>& digest) {
  std::vector<uint8_t> c;
  be16(c, kStSessions);
  be32(c, 0);  // size, patched below
  be32(c, kCcPcrExtend);
  be32(c, pcr);  // pcrHandle: PCR n is handle n
  be32(c, 9);    // authorizationSize: one TPMS_AUTH_COMMAND of the empty password
  be32(c, kRsPw);
  be16(c, 0);        // nonce
  c.push_back(0);    // sessionAttributes
  be16(c, 0);        // hmac (the empty password)
  be32(c, 1);        // TPML_DIGEST_VALUES.count
  be16(c, kAlgSha256);
  c.insert(c.end(), digest.begin(), digest.end());
  const auto size = static_cast<uint32_t>(c.size());
  c[2] = static_cast<uint8_t>(size >> 24), c[3] = static_cast<uint8_t>(size >> 16);
  c[4] = static_cast<uint8_t>(size >> 8), c[5] = static_cast<uint8_t>(size);
  return c;
}

Result<void> extend_all(devices::TpmBackend& tpm, const std::vector<Measurement>& measurements) {
  for (const Measurement& m : measurements) {
    auto r = tpm.execute(pcr_extend_command(m.pcr, m.sha256));
    if (!r) return make_error("measuring the {} into PCR {} failed: {}", m.what, m.pcr, r.error().message);
    const auto& b = *r;
    const uint32_t rc = b.size() >= 10 ? (uint32_t{b[6]} << 24) | (uint32_t{b[7]} << 16) | (uint32_t{b[8]} << 8) | b[9] : ~0u;
    if (rc != 0) return make_error("measuring the {} into PCR {} failed: {} answered TPM2_PCR_Extend with {:#x}", m.what, m.pcr, tpm.describe(), rc);
  }
  return {};
}

}  // namespace vigil::machine
