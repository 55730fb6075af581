#include "riscv/decode.h"

#include <array>
#include <cstdint>
#include <unordered_map>
#include <vector>

namespace vigil::riscv {

std::span<const OpcodeEntry> all_opcodes() {
  static const std::vector<OpcodeEntry> table = [] {
    std::vector<OpcodeEntry> t;
    for (auto part : {rv_i_table(), rv_m_table(), rv_a_table(), rv_f_table(), rv_zicsr_table(), rv_priv_table()}) {
      t.insert(t.end(), part.begin(), part.end());
    }
    return t;
  }();
  return table;
}

namespace {

struct HandlerRegistry {
  std::vector<Handler> by_index;
  std::unordered_map<uintptr_t, uint16_t> index_of;
  HandlerRegistry() {
    add(&op_illegal);
    for (const OpcodeEntry& e : all_opcodes()) add(e.fn);
  }
  void add(Handler fn) {
    if (index_of.emplace(reinterpret_cast<uintptr_t>(fn), static_cast<uint16_t>(by_index.size())).second) {
      by_index.push_back(fn);
    }
  }
};
const HandlerRegistry& registry() {
  static const HandlerRegistry r;
  return r;
}

uint8_t int_rd(unsigned rd) { return static_cast<uint8_t>(rd == 0 ? 32 : rd); }
}  // namespace

void op_illegal(Hart& h, const DecodedInsn& d) {
  h.raise_exception(Cause::kIllegalInsn, static_cast<uint32_t>(d.imm));
}

uint16_t handler_index(Handler fn) {
  const auto& r = registry();
  const auto it = r.index_of.find(reinterpret_cast<uintptr_t>(fn));
  return it != r.index_of.end() ? it->second : kNoHandlerIndex;
}

Handler handler_at(uint16_t index) { return registry().by_index[index]; }

const OpcodeEntry* find_opcode(uint32_t raw) {
  for (const OpcodeEntry& e : all_opcodes()) {
    if ((raw & e.mask) == e.match) return &e;
  }
  return nullptr;
}

void decode(uint32_t raw, bool compressed, DecodedInsn& out) {
  const uint8_t len_flag = compressed ? 0x80 : 0;
  const uint32_t full = compressed ? expand_compressed(static_cast<uint16_t>(raw)) : raw;
  const OpcodeEntry* e = full != 0 ? find_opcode(full) : nullptr;
  if (e == nullptr) {
    out = DecodedInsn{&op_illegal, static_cast<int32_t>(raw), 0, 0, 0, len_flag};
    return;
  }
  const Insn in{full};
  out = DecodedInsn{e->fn, 0, 0, static_cast<uint8_t>(in.rs1()), static_cast<uint8_t>(in.rs2()),
                    static_cast<uint8_t>(len_flag | in.rs3())};
  switch (e->format) {
    case Format::kR: out.rd = int_rd(in.rd()); break;
    case Format::kI: out.rd = int_rd(in.rd()); out.imm = in.imm_i(); break;
    case Format::kS: out.imm = in.imm_s(); break;
    case Format::kB: out.imm = in.imm_b(); break;
    case Format::kU: out.rd = int_rd(in.rd()); out.imm = in.imm_u(); break;
    case Format::kJ: out.rd = int_rd(in.rd()); out.imm = in.imm_j(); break;
    case Format::kShift: out.rd = int_rd(in.rd()); out.imm = static_cast<int32_t>(in.shamt()); break;
    case Format::kCsr: out.rd = int_rd(in.rd()); out.imm = static_cast<int32_t>(in.csr()); break;
    case Format::kFpLoad: out.rd = static_cast<uint8_t>(in.rd()); out.imm = in.imm_i(); break;
    case Format::kFpStore: out.imm = in.imm_s(); break;
    case Format::kFpRaw: out.rd = static_cast<uint8_t>(in.rd()); out.imm = static_cast<int32_t>(full); break;
    case Format::kNone: out.imm = static_cast<int32_t>(raw); break;
  }
}

}  // namespace vigil::riscv
