// Fuzz target `vtpm_record`: the vTPM record of a snapshot (migrate/vtpm_record.h), as
// `vigil restore` reads it from a file anyone could have written: decode_vtpm_record on the
// payload, the TIS registers restored into a TpmTis with a fake TPM (then driven a little),
// and the swtpm blob bundle parsed (vtpm/swtpm_state.h).
//
// Invariants: every refusal names the record ("snapshot: record EXTRA_DEVICE_STATE(0) ...");
// a TIS state that restores snapshots back to the same fields; a bundle that parses formats
// back to exactly its bytes.
#include <cstdint>
#include <cstdlib>
#include <span>

#include "migrate/vtpm_record.h"
#include "vtpm/swtpm_state.h"

namespace {

class EchoTpm final : public vigil::devices::TpmBackend {
 public:
  vigil::Result<std::vector<uint8_t>> execute(std::span<const uint8_t>) override {
    return std::vector<uint8_t>{0x80, 0x01, 0, 0, 0, 10, 0, 0, 0, 0};
  }
  std::string describe() const override { return "fuzz TPM"; }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace vigil;
  migrate::Record r{.type = static_cast<uint32_t>(migrate::RecordType::kExtraDeviceState), .instance = 0, .offset = 24,
                    .payload = std::span(data, size)};
  auto v = migrate::decode_vtpm_record(r);
  if (!v) {
    if (v.error().message.rfind("snapshot: record EXTRA_DEVICE_STATE(0) at offset 24: ", 0) != 0) std::abort();
    return 0;
  }
  static auto tpm = std::make_shared<EchoTpm>();
  devices::TpmTis tis(tpm, nullptr);
  if (tis.restore(v->tis)) {
    auto again = tis.snapshot(1000);
    if (!again || again->state != v->tis.state || again->active != v->tis.active || again->offset != v->tis.offset ||
        (again->buffer != v->tis.buffer && !(v->tis.state < 2)))
      std::abort();
    // Drive it: the restored interface must behave (reads, a tpmGo, a commandReady).
    uint64_t val = 0;
    const uint64_t base = v->tis.active >= 0 ? static_cast<uint64_t>(v->tis.active) * devices::TpmTis::kLocalitySize : 0;
    for (int i = 0; i < 8; ++i) tis.read(base + devices::TpmTis::kDataFifo, 1, val);
    tis.write(base + devices::TpmTis::kSts, 1, devices::TpmTis::kStsGo);
    tis.wait_idle(1000);
    tis.write(base + devices::TpmTis::kSts, 1, devices::TpmTis::kStsCommandReady);
  }
  auto state = vtpm::parse_swtpm_state(v->backend);
  if (state) {
    const auto bytes = vtpm::format_swtpm_state(*state);
    if (bytes.size() != v->backend.size() || !std::equal(bytes.begin(), bytes.end(), v->backend.begin())) std::abort();
  }
  return 0;
}
