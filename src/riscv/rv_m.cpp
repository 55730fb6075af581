// RV64M multiply and divide (unprivileged spec chapter 7). Division by zero and signed
// overflow do not trap: table 7.1 gives their results.
#include <cstdint>

#include "riscv/decode.h"

namespace vigil::riscv {
namespace {

using u64 = uint64_t;
using i64 = int64_t;
using u128 = unsigned __int128;
using i128 = __int128;

inline u64 sext32(u64 v) { return static_cast<u64>(static_cast<i64>(static_cast<int32_t>(v))); }

template <u64 (*Op)(u64, u64)>
void muldiv(Hart& h, const DecodedInsn& d) {
  h.x[d.rd] = Op(h.x[d.rs1], h.x[d.rs2]);
  h.pc += d.len();
}

u64 mul(u64 a, u64 b) { return a * b; }
u64 mulh(u64 a, u64 b) {
  return static_cast<u64>((static_cast<i128>(static_cast<i64>(a)) * static_cast<i64>(b)) >> 64);
}
u64 mulhsu(u64 a, u64 b) {
  return static_cast<u64>((static_cast<i128>(static_cast<i64>(a)) * static_cast<i128>(b)) >> 64);
}
u64 mulhu(u64 a, u64 b) { return static_cast<u64>((static_cast<u128>(a) * b) >> 64); }
u64 div(u64 a, u64 b) {
  const i64 sa = static_cast<i64>(a), sb = static_cast<i64>(b);
  if (sb == 0) return ~0ull;
  if (sa == INT64_MIN && sb == -1) return a;
  return static_cast<u64>(sa / sb);
}
u64 divu(u64 a, u64 b) { return b == 0 ? ~0ull : a / b; }
u64 rem(u64 a, u64 b) {
  const i64 sa = static_cast<i64>(a), sb = static_cast<i64>(b);
  if (sb == 0) return a;
  if (sa == INT64_MIN && sb == -1) return 0;
  return static_cast<u64>(sa % sb);
}
u64 remu(u64 a, u64 b) { return b == 0 ? a : a % b; }
u64 mulw(u64 a, u64 b) { return sext32(a * b); }
u64 divw(u64 a, u64 b) {
  const int32_t sa = static_cast<int32_t>(a), sb = static_cast<int32_t>(b);
  if (sb == 0) return ~0ull;
  if (sa == INT32_MIN && sb == -1) return sext32(static_cast<uint32_t>(sa));
  return sext32(static_cast<uint32_t>(sa / sb));
}
u64 divuw(u64 a, u64 b) {
  const uint32_t ua = static_cast<uint32_t>(a), ub = static_cast<uint32_t>(b);
  return ub == 0 ? ~0ull : sext32(ua / ub);
}
u64 remw(u64 a, u64 b) {
  const int32_t sa = static_cast<int32_t>(a), sb = static_cast<int32_t>(b);
  if (sb == 0) return sext32(static_cast<uint32_t>(sa));
  if (sa == INT32_MIN && sb == -1) return 0;
  return sext32(static_cast<uint32_t>(sa % sb));
}
u64 remuw(u64 a, u64 b) {
  const uint32_t ua = static_cast<uint32_t>(a), ub = static_cast<uint32_t>(b);
  return sext32(ub == 0 ? ua : ua % ub);
}

constexpr uint32_t kMask = 0xfe00707f;
constexpr OpcodeEntry kTable[] = {
    {"mul", kMask, 0x02000033, &muldiv<mul>, Format::kR},
    {"mulh", kMask, 0x02001033, &muldiv<mulh>, Format::kR},
    {"mulhsu", kMask, 0x02002033, &muldiv<mulhsu>, Format::kR},
    {"mulhu", kMask, 0x02003033, &muldiv<mulhu>, Format::kR},
    {"div", kMask, 0x02004033, &muldiv<div>, Format::kR},
    {"divu", kMask, 0x02005033, &muldiv<divu>, Format::kR},
    {"rem", kMask, 0x02006033, &muldiv<rem>, Format::kR},
    {"remu", kMask, 0x02007033, &muldiv<remu>, Format::kR},
    {"mulw", kMask, 0x0200003b, &muldiv<mulw>, Format::kR},
    {"divw", kMask, 0x0200403b, &muldiv<divw>, Format::kR},
    {"divuw", kMask, 0x0200503b, &muldiv<divuw>, Format::kR},
    {"remw", kMask, 0x0200603b, &muldiv<remw>, Format::kR},
    {"remuw", kMask, 0x0200703b, &muldiv<remuw>, Format::kR},
};
}  // namespace

std::span<const OpcodeEntry> rv_m_table() { return kTable; }

}  // namespace vigil::riscv
