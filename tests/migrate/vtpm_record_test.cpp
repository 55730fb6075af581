// The vTPM record of a snapshot (migrate/vtpm_record.h): encoding from a TIS and a fake TPM,
// restoring into another, and hostile payloads refused in one sentence naming the record.
#include "migrate/vtpm_record.h"

#include <gtest/gtest.h>

namespace vigil::migrate {
namespace {

class FakeTpm final : public devices::TpmBackend {
 public:
  Result<std::vector<uint8_t>> execute(std::span<const uint8_t>) override {
    return std::vector<uint8_t>{0x80, 0x01, 0, 0, 0, 10, 0, 0, 0, 0};
  }
  std::string describe() const override { return "fake TPM"; }
  Result<std::vector<uint8_t>> save_state() override { return state; }
  Result<void> load_state(std::span<const uint8_t> b) override {
    if (refuse) return make_error("refused");
    loaded.assign(b.begin(), b.end());
    return {};
  }
  std::vector<uint8_t> state = std::vector<uint8_t>(4, 9), loaded;
  bool refuse = false;
};

Record record_of(const std::vector<uint8_t>& payload) {
  return Record{.type = static_cast<uint32_t>(RecordType::kExtraDeviceState), .instance = 0, .offset = 77,
                .payload = payload};
}

TEST(VtpmRecord, RoundTripsIntoAnotherTpmAndRefusesHostilePayloads) {
  auto tpm = std::make_shared<FakeTpm>();
  devices::TpmTis tis(tpm, nullptr);
  uint64_t v = 0;
  ASSERT_TRUE(tis.write(3 * devices::TpmTis::kLocalitySize, 1, devices::TpmTis::kAccessRequestUse));
  auto payload = encode_vtpm_record(tis, *tpm);
  ASSERT_TRUE(payload) << payload.error().message;

  auto other = std::make_shared<FakeTpm>();
  devices::TpmTis tis2(other, nullptr);
  auto ok = restore_vtpm(record_of(*payload), tis2, *other);
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(other->loaded, tpm->state);
  ASSERT_TRUE(tis2.read(3 * devices::TpmTis::kLocalitySize, 1, v));
  EXPECT_NE(v & devices::TpmTis::kAccessActive, 0u) << "locality 3 is active again";

  const auto refuse = [&](std::vector<uint8_t> p, const std::string& want) {
    other->loaded.clear();
    auto r = restore_vtpm(record_of(p), tis2, *other);
    ASSERT_FALSE(r) << want;
    EXPECT_EQ(r.error().message, "snapshot: record EXTRA_DEVICE_STATE(0) at offset 77: " + want);
    EXPECT_TRUE(other->loaded.empty()) << "the TPM is not touched by a refused record: " << want;
  };
  auto p = *payload;
  p[0] = 2;
  refuse(p, "vTPM: version 2 is not 1");
  p = *payload;
  p[5] = 7;
  refuse(p, "vTPM: active locality 7 is not 0..4 or none");
  p = *payload;
  p[4] = 3;
  refuse(p, "vTPM: TIS state 3 is not idle, ready, reception or completion");
  p = *payload;
  p[12] = 0x01, p[13] = 0x20;  // buffer length 8193
  refuse(p, "vTPM: TIS buffer of 8193 bytes, more than 4096");
  p = *payload;
  p.resize(p.size() - 1);
  refuse(p, "truncated payload");
  p = *payload;
  p.push_back(0);
  refuse(p, "1 unexpected trailing bytes");
  other->refuse = true;
  auto r = restore_vtpm(record_of(*payload), tis2, *other);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "snapshot: record EXTRA_DEVICE_STATE(0) at offset 77: vTPM: refused");
}

}  // namespace
}  // namespace vigil::migrate
