// RV64I base integer instructions (unprivileged spec chapters 2 and 5) and Zifencei.
#include <cstdint>

#include "riscv/decode.h"

namespace vigil::riscv {
namespace {

using u64 = uint64_t;
using i64 = int64_t;

inline u64 sext32(u64 v) { return static_cast<u64>(static_cast<i64>(static_cast<int32_t>(v))); }
inline void next(Hart& h, const DecodedInsn& d) { h.pc += d.len(); }

// Register-register and register-immediate ALU operations share one shape; the operation
// is the parameter (STYLE.md 12).
template <u64 (*Op)(u64, u64)>
void alu_rr(Hart& h, const DecodedInsn& d) {
  h.x[d.rd] = Op(h.x[d.rs1], h.x[d.rs2]);
  next(h, d);
}
template <u64 (*Op)(u64, u64)>
void alu_ri(Hart& h, const DecodedInsn& d) {
  h.x[d.rd] = Op(h.x[d.rs1], static_cast<u64>(static_cast<i64>(d.imm)));
  next(h, d);
}

u64 add(u64 a, u64 b) { return a + b; }
u64 sub(u64 a, u64 b) { return a - b; }
u64 sll(u64 a, u64 b) { return a << (b & 63); }
u64 slt(u64 a, u64 b) { return static_cast<i64>(a) < static_cast<i64>(b); }
u64 sltu(u64 a, u64 b) { return a < b; }
u64 xor_(u64 a, u64 b) { return a ^ b; }
u64 srl(u64 a, u64 b) { return a >> (b & 63); }
u64 sra(u64 a, u64 b) { return static_cast<u64>(static_cast<i64>(a) >> (b & 63)); }
u64 or_(u64 a, u64 b) { return a | b; }
u64 and_(u64 a, u64 b) { return a & b; }
u64 addw(u64 a, u64 b) { return sext32(a + b); }
u64 subw(u64 a, u64 b) { return sext32(a - b); }
u64 sllw(u64 a, u64 b) { return sext32(static_cast<uint32_t>(a) << (b & 31)); }
u64 srlw(u64 a, u64 b) { return sext32(static_cast<uint32_t>(a) >> (b & 31)); }
u64 sraw(u64 a, u64 b) { return sext32(static_cast<u64>(static_cast<int32_t>(a) >> (b & 31))); }

void lui(Hart& h, const DecodedInsn& d) {
  h.x[d.rd] = static_cast<u64>(static_cast<i64>(d.imm));
  next(h, d);
}
void auipc(Hart& h, const DecodedInsn& d) {
  h.x[d.rd] = h.pc + static_cast<u64>(static_cast<i64>(d.imm));
  next(h, d);
}
void jal(Hart& h, const DecodedInsn& d) {
  h.x[d.rd] = h.pc + d.len();
  h.pc += static_cast<u64>(static_cast<i64>(d.imm));
}
void jalr(Hart& h, const DecodedInsn& d) {
  const u64 target = (h.x[d.rs1] + static_cast<u64>(static_cast<i64>(d.imm))) & ~1ull;
  h.x[d.rd] = h.pc + d.len();
  h.pc = target;
}

template <bool (*Cond)(u64, u64)>
void branch(Hart& h, const DecodedInsn& d) {
  h.pc += Cond(h.x[d.rs1], h.x[d.rs2]) ? static_cast<u64>(static_cast<i64>(d.imm)) : d.len();
}
bool beq(u64 a, u64 b) { return a == b; }
bool bne(u64 a, u64 b) { return a != b; }
bool blt(u64 a, u64 b) { return static_cast<i64>(a) < static_cast<i64>(b); }
bool bge(u64 a, u64 b) { return static_cast<i64>(a) >= static_cast<i64>(b); }
bool bltu(u64 a, u64 b) { return a < b; }
bool bgeu(u64 a, u64 b) { return a >= b; }

template <typename T>
void load(Hart& h, const DecodedInsn& d) {
  T v;
  if (!h.load<T>(h.x[d.rs1] + static_cast<u64>(static_cast<i64>(d.imm)), v)) return;
  // Signed T sign-extends, unsigned T zero-extends.
  h.x[d.rd] = static_cast<u64>(static_cast<std::conditional_t<std::is_signed_v<T>, i64, u64>>(v));
  next(h, d);
}
template <typename T>
void store(Hart& h, const DecodedInsn& d) {
  if (!h.store<T>(h.x[d.rs1] + static_cast<u64>(static_cast<i64>(d.imm)), static_cast<T>(h.x[d.rs2]))) return;
  next(h, d);
}

void fence(Hart& h, const DecodedInsn& d) {
  // Guest memory is host memory: RVWMO fences map onto a host fence.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  next(h, d);
}
void fence_i(Hart& h, const DecodedInsn& d) {
  h.do_fence_i();
  next(h, d);
}

constexpr uint32_t kOp = 0xfe00707f, kOpImm = 0x707f, kShift64 = 0xfc00707f, kU = 0x7f;

constexpr OpcodeEntry kTable[] = {
    {"lui", kU, 0x37, &lui, Format::kU},
    {"auipc", kU, 0x17, &auipc, Format::kU},
    {"jal", kU, 0x6f, &jal, Format::kJ},
    {"jalr", kOpImm, 0x67, &jalr, Format::kI},
    {"beq", kOpImm, 0x63, &branch<beq>, Format::kB},
    {"bne", kOpImm, 0x1063, &branch<bne>, Format::kB},
    {"blt", kOpImm, 0x4063, &branch<blt>, Format::kB},
    {"bge", kOpImm, 0x5063, &branch<bge>, Format::kB},
    {"bltu", kOpImm, 0x6063, &branch<bltu>, Format::kB},
    {"bgeu", kOpImm, 0x7063, &branch<bgeu>, Format::kB},
    {"lb", kOpImm, 0x03, &load<int8_t>, Format::kI},
    {"lh", kOpImm, 0x1003, &load<int16_t>, Format::kI},
    {"lw", kOpImm, 0x2003, &load<int32_t>, Format::kI},
    {"ld", kOpImm, 0x3003, &load<int64_t>, Format::kI},
    {"lbu", kOpImm, 0x4003, &load<uint8_t>, Format::kI},
    {"lhu", kOpImm, 0x5003, &load<uint16_t>, Format::kI},
    {"lwu", kOpImm, 0x6003, &load<uint32_t>, Format::kI},
    {"sb", kOpImm, 0x23, &store<uint8_t>, Format::kS},
    {"sh", kOpImm, 0x1023, &store<uint16_t>, Format::kS},
    {"sw", kOpImm, 0x2023, &store<uint32_t>, Format::kS},
    {"sd", kOpImm, 0x3023, &store<uint64_t>, Format::kS},
    {"addi", kOpImm, 0x13, &alu_ri<add>, Format::kI},
    {"slti", kOpImm, 0x2013, &alu_ri<slt>, Format::kI},
    {"sltiu", kOpImm, 0x3013, &alu_ri<sltu>, Format::kI},
    {"xori", kOpImm, 0x4013, &alu_ri<xor_>, Format::kI},
    {"ori", kOpImm, 0x6013, &alu_ri<or_>, Format::kI},
    {"andi", kOpImm, 0x7013, &alu_ri<and_>, Format::kI},
    {"slli", kShift64, 0x1013, &alu_ri<sll>, Format::kShift},
    {"srli", kShift64, 0x5013, &alu_ri<srl>, Format::kShift},
    {"srai", kShift64, 0x40005013, &alu_ri<sra>, Format::kShift},
    {"add", kOp, 0x33, &alu_rr<add>, Format::kR},
    {"sub", kOp, 0x40000033, &alu_rr<sub>, Format::kR},
    {"sll", kOp, 0x1033, &alu_rr<sll>, Format::kR},
    {"slt", kOp, 0x2033, &alu_rr<slt>, Format::kR},
    {"sltu", kOp, 0x3033, &alu_rr<sltu>, Format::kR},
    {"xor", kOp, 0x4033, &alu_rr<xor_>, Format::kR},
    {"srl", kOp, 0x5033, &alu_rr<srl>, Format::kR},
    {"sra", kOp, 0x40005033, &alu_rr<sra>, Format::kR},
    {"or", kOp, 0x6033, &alu_rr<or_>, Format::kR},
    {"and", kOp, 0x7033, &alu_rr<and_>, Format::kR},
    {"addiw", kOpImm, 0x1b, &alu_ri<addw>, Format::kI},
    {"slliw", kOp, 0x101b, &alu_ri<sllw>, Format::kShift},
    {"srliw", kOp, 0x501b, &alu_ri<srlw>, Format::kShift},
    {"sraiw", kOp, 0x4000501b, &alu_ri<sraw>, Format::kShift},
    {"addw", kOp, 0x3b, &alu_rr<addw>, Format::kR},
    {"subw", kOp, 0x4000003b, &alu_rr<subw>, Format::kR},
    {"sllw", kOp, 0x103b, &alu_rr<sllw>, Format::kR},
    {"srlw", kOp, 0x503b, &alu_rr<srlw>, Format::kR},
    {"sraw", kOp, 0x4000503b, &alu_rr<sraw>, Format::kR},
    // FENCE ignores its fm/pred/succ fields and registers (all fences act as the strongest).
    {"fence", kOpImm, 0x0f, &fence, Format::kNone},
    {"fence.i", kOpImm, 0x100f, &fence_i, Format::kNone},
};
}  // namespace

std::span<const OpcodeEntry> rv_i_table() { return kTable; }

}  // namespace vigil::riscv
