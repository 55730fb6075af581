#include "migrate/vtpm_record.h"

namespace vigil::migrate {

Result<std::vector<uint8_t>> encode_vtpm_record(devices::TpmTis& tis, devices::TpmBackend& tpm) {
  auto regs = tis.snapshot(kVtpmIdleWaitMs);
  if (!regs) return make_error("vTPM: {}", regs.error().message);
  auto state = tpm.save_state();
  if (!state) return make_error("vTPM: {}", state.error().message);
  PayloadWriter p;
  p.u32(kVtpmRecordVersion);
  p.u8(regs->state);
  p.u8(static_cast<uint8_t>(regs->active));
  p.u8(regs->requested);
  p.u8(regs->seized);
  p.u32(regs->offset);
  p.u32(static_cast<uint32_t>(regs->buffer.size()));
  p.bytes(regs->buffer);
  p.u32(static_cast<uint32_t>(state->size()));
  p.bytes(*state);
  return std::move(p.buffer());
}

void add_vtpm(StreamWriter& w, std::span<const uint8_t> payload) {
  w.add(RecordType::kExtraDeviceState, kVtpmInstance, payload);
}

Result<VtpmRecord> decode_vtpm_record(const Record& r) {
  PayloadReader in(r);
  const auto fail = [&](std::string why) { return in.fail("vTPM: " + why); };
  VtpmRecord v;
  auto version = in.u32();
  if (!version) return std::unexpected(version.error());
  if (*version != kVtpmRecordVersion) return fail(fmt::format("version {} is not {}", *version, kVtpmRecordVersion));
  uint8_t b[4];
  for (uint8_t& x : b) {
    auto y = in.u8();
    if (!y) return std::unexpected(y.error());
    x = *y;
  }
  v.tis.state = b[0];
  if (b[1] != 0xff && b[1] >= devices::TpmTis::kLocalities) return fail(fmt::format("active locality {} is not 0..4 or none", b[1]));
  v.tis.active = b[1] == 0xff ? -1 : static_cast<int8_t>(b[1]);
  v.tis.requested = b[2];
  v.tis.seized = b[3];
  auto offset = in.u32();
  auto length = offset ? in.u32() : offset;
  if (!length) return std::unexpected(length.error());
  v.tis.offset = *offset;
  if (*length > devices::TpmTis::kBufferSize)
    return fail(fmt::format("TIS buffer of {} bytes, more than {}", *length, devices::TpmTis::kBufferSize));
  auto buffer = in.bytes(*length);
  if (!buffer) return std::unexpected(buffer.error());
  v.tis.buffer.assign(buffer->begin(), buffer->end());
  auto backend_length = in.u32();
  if (!backend_length) return std::unexpected(backend_length.error());
  auto backend = in.bytes(*backend_length);
  if (!backend) return std::unexpected(backend.error());
  v.backend = *backend;
  if (auto f = in.finish(); !f) return std::unexpected(f.error());
  return v;
}

Result<void> restore_vtpm(const Record& r, devices::TpmTis& tis, devices::TpmBackend& tpm) {
  auto v = decode_vtpm_record(r);
  if (!v) return std::unexpected(v.error());
  // The TIS fields are checked before the TPM is touched; restore() checks them again.
  devices::TpmTis probe(nullptr, nullptr);
  if (auto ok = probe.restore(v->tis); !ok) return make_error("{}: vTPM: {}", record_context(r), ok.error().message);
  if (auto ok = tpm.load_state(v->backend); !ok) return make_error("{}: vTPM: {}", record_context(r), ok.error().message);
  if (auto ok = tis.restore(v->tis); !ok) return make_error("{}: vTPM: {}", record_context(r), ok.error().message);
  return {};
}

}  // namespace vigil::migrate
