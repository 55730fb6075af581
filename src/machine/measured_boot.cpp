#include "machine/measured_boot.h"

#include <openssl/sha.h>

namespace vigil::machine {

namespace {
constexpr uint16_t kStSessions = 0x8002;
constexpr uint32_t kCcPcrExtend = 0x182;
constexpr uint32_t kRsPw = 0x40000009;   // TPM 2.0 Part 2, 7.4: the password authorization session
constexpr uint16_t kAlgSha256 = 0x000b;

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
  return m;
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
