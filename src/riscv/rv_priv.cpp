// Privileged instructions (privileged spec 3.3.1-3.3.2, 4.2.1) and the environment calls.
#include "riscv/decode.h"

namespace vigil::riscv {
namespace {

void ecall(Hart& h, const DecodedInsn&) { h.do_ecall(); }
void ebreak(Hart& h, const DecodedInsn&) { h.raise_exception(Cause::kBreakpoint, h.pc); }
void mret(Hart& h, const DecodedInsn&) { h.do_mret(); }
void sret(Hart& h, const DecodedInsn&) { h.do_sret(); }
void wfi(Hart& h, const DecodedInsn& d) { h.do_wfi(d); }
void sfence_vma(Hart& h, const DecodedInsn& d) { h.do_sfence_vma(d); }

constexpr OpcodeEntry kTable[] = {
    {"ecall", 0xffffffff, 0x00000073, &ecall, Format::kNone},
    {"ebreak", 0xffffffff, 0x00100073, &ebreak, Format::kNone},
    {"sret", 0xffffffff, 0x10200073, &sret, Format::kNone},
    {"mret", 0xffffffff, 0x30200073, &mret, Format::kNone},
    {"wfi", 0xffffffff, 0x10500073, &wfi, Format::kNone},
    {"sfence.vma", 0xfe007fff, 0x12000073, &sfence_vma, Format::kR},
};
}  // namespace

std::span<const OpcodeEntry> rv_priv_table() { return kTable; }

}  // namespace vigil::riscv
