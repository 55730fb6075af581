// F and D: loads/stores here (they are memory instructions); arithmetic in fpu.cpp.
#include <cstdint>

#include "riscv/decode.h"

namespace vigil::riscv {
namespace {

constexpr uint64_t kBoxUpper = 0xffffffff00000000ull;  // NaN-boxing of a single (11.2)

template <typename T>
void fp_load(Hart& h, const DecodedInsn& d) {
  if (!h.fs_enabled()) return h.raise_illegal(h.insn_bits_at_pc());
  T v;
  if (!h.load<T>(h.x[d.rs1] + static_cast<uint64_t>(static_cast<int64_t>(d.imm)), v)) return;
  h.fp.f[d.rd] = sizeof(T) == 4 ? (kBoxUpper | v) : v;
  h.mark_fs_dirty();
  h.pc += d.len();
}

template <typename T>
void fp_store(Hart& h, const DecodedInsn& d) {
  if (!h.fs_enabled()) return h.raise_illegal(h.insn_bits_at_pc());
  if (!h.store<T>(h.x[d.rs1] + static_cast<uint64_t>(static_cast<int64_t>(d.imm)), static_cast<T>(h.fp.f[d.rs2]))) {
    return;
  }
  h.pc += d.len();
}

void fp_arith(Hart& h, const DecodedInsn& d) {
  const uint32_t raw = static_cast<uint32_t>(d.imm);
  if (!h.fs_enabled() || !execute_fp(raw, h.x, h.fp)) return h.raise_illegal(raw);
  h.mark_fs_dirty();
  h.pc += d.len();
}

constexpr OpcodeEntry kTable[] = {
    {"flw", 0x707f, 0x2007, &fp_load<uint32_t>, Format::kFpLoad},
    {"fld", 0x707f, 0x3007, &fp_load<uint64_t>, Format::kFpLoad},
    {"fsw", 0x707f, 0x2027, &fp_store<uint32_t>, Format::kFpStore},
    {"fsd", 0x707f, 0x3027, &fp_store<uint64_t>, Format::kFpStore},
    {"op-fp", 0x7f, 0x53, &fp_arith, Format::kFpRaw},
    {"fmadd", 0x7f, 0x43, &fp_arith, Format::kFpRaw},
    {"fmsub", 0x7f, 0x47, &fp_arith, Format::kFpRaw},
    {"fnmsub", 0x7f, 0x4b, &fp_arith, Format::kFpRaw},
    {"fnmadd", 0x7f, 0x4f, &fp_arith, Format::kFpRaw},
};
}  // namespace

std::span<const OpcodeEntry> rv_f_table() { return kTable; }

}  // namespace vigil::riscv
