// RV64A atomics (unprivileged spec chapter 8) on host atomics over guest RAM.
// LR/SC: the reservation remembers the host address and the value LR saw; SC succeeds by
// compare-and-swap against that value. This admits the ABA case (as many emulators do),
// which RVWMO code built on LR/SC loops tolerates.
#include <atomic>
#include <cstdint>

#include "riscv/decode.h"

namespace vigil::riscv {
namespace {

using u64 = uint64_t;
using i64 = int64_t;

template <typename T>
u64 widen(T v) {
  // W results are sign-extended (8.4).
  return static_cast<u64>(static_cast<i64>(static_cast<std::make_signed_t<T>>(v)));
}

template <typename T>
void lr(Hart& h, const DecodedInsn& d) {
  const u64 va = h.x[d.rs1];
  uint8_t* p = h.atomic_pointer(va, sizeof(T), false);
  if (p == nullptr) return;
  const T v = std::atomic_ref<T>(*reinterpret_cast<T*>(p)).load(std::memory_order_seq_cst);
  h.reservation_addr = reinterpret_cast<uintptr_t>(p);
  h.reservation_value = v;
  h.x[d.rd] = widen(v);
  h.pc += d.len();
}

template <typename T>
void sc(Hart& h, const DecodedInsn& d) {
  const u64 va = h.x[d.rs1];
  uint8_t* p = h.atomic_pointer(va, sizeof(T), true);
  if (p == nullptr) return;
  bool ok = false;
  if (h.reservation_addr == reinterpret_cast<uintptr_t>(p)) {
    T expected = static_cast<T>(h.reservation_value);
    ok = std::atomic_ref<T>(*reinterpret_cast<T*>(p))
             .compare_exchange_strong(expected, static_cast<T>(h.x[d.rs2]), std::memory_order_seq_cst);
  }
  h.reservation_addr = ~0ull;
  h.x[d.rd] = ok ? 0 : 1;
  h.pc += d.len();
}

enum class Amo { kSwap, kAdd, kXor, kAnd, kOr, kMin, kMax, kMinu, kMaxu };

template <typename T, Amo Op>
void amo(Hart& h, const DecodedInsn& d) {
  uint8_t* p = h.atomic_pointer(h.x[d.rs1], sizeof(T), true);
  if (p == nullptr) return;
  std::atomic_ref<T> ref(*reinterpret_cast<T*>(p));
  const T src = static_cast<T>(h.x[d.rs2]);
  T old;
  using S = std::make_signed_t<T>;
  if constexpr (Op == Amo::kSwap) {
    old = ref.exchange(src);
  } else if constexpr (Op == Amo::kAdd) {
    old = ref.fetch_add(src);
  } else if constexpr (Op == Amo::kXor) {
    old = ref.fetch_xor(src);
  } else if constexpr (Op == Amo::kAnd) {
    old = ref.fetch_and(src);
  } else if constexpr (Op == Amo::kOr) {
    old = ref.fetch_or(src);
  } else {
    old = ref.load();
    for (;;) {
      T next;
      if constexpr (Op == Amo::kMin) next = static_cast<S>(old) < static_cast<S>(src) ? old : src;
      if constexpr (Op == Amo::kMax) next = static_cast<S>(old) > static_cast<S>(src) ? old : src;
      if constexpr (Op == Amo::kMinu) next = old < src ? old : src;
      if constexpr (Op == Amo::kMaxu) next = old > src ? old : src;
      if (ref.compare_exchange_weak(old, next)) break;
    }
  }
  h.x[d.rd] = widen(old);
  h.pc += d.len();
}

constexpr uint32_t kAmoMask = 0xf800707f, kLrMask = 0xf9f0707f;
constexpr uint32_t amo_match(uint32_t funct5, bool dword) { return (funct5 << 27) | ((dword ? 3u : 2u) << 12) | 0x2f; }

constexpr OpcodeEntry kTable[] = {
    {"lr.w", kLrMask, amo_match(0x02, false), &lr<uint32_t>, Format::kR},
    {"sc.w", kAmoMask, amo_match(0x03, false), &sc<uint32_t>, Format::kR},
    {"amoswap.w", kAmoMask, amo_match(0x01, false), &amo<uint32_t, Amo::kSwap>, Format::kR},
    {"amoadd.w", kAmoMask, amo_match(0x00, false), &amo<uint32_t, Amo::kAdd>, Format::kR},
    {"amoxor.w", kAmoMask, amo_match(0x04, false), &amo<uint32_t, Amo::kXor>, Format::kR},
    {"amoand.w", kAmoMask, amo_match(0x0c, false), &amo<uint32_t, Amo::kAnd>, Format::kR},
    {"amoor.w", kAmoMask, amo_match(0x08, false), &amo<uint32_t, Amo::kOr>, Format::kR},
    {"amomin.w", kAmoMask, amo_match(0x10, false), &amo<uint32_t, Amo::kMin>, Format::kR},
    {"amomax.w", kAmoMask, amo_match(0x14, false), &amo<uint32_t, Amo::kMax>, Format::kR},
    {"amominu.w", kAmoMask, amo_match(0x18, false), &amo<uint32_t, Amo::kMinu>, Format::kR},
    {"amomaxu.w", kAmoMask, amo_match(0x1c, false), &amo<uint32_t, Amo::kMaxu>, Format::kR},
    {"lr.d", kLrMask, amo_match(0x02, true), &lr<uint64_t>, Format::kR},
    {"sc.d", kAmoMask, amo_match(0x03, true), &sc<uint64_t>, Format::kR},
    {"amoswap.d", kAmoMask, amo_match(0x01, true), &amo<uint64_t, Amo::kSwap>, Format::kR},
    {"amoadd.d", kAmoMask, amo_match(0x00, true), &amo<uint64_t, Amo::kAdd>, Format::kR},
    {"amoxor.d", kAmoMask, amo_match(0x04, true), &amo<uint64_t, Amo::kXor>, Format::kR},
    {"amoand.d", kAmoMask, amo_match(0x0c, true), &amo<uint64_t, Amo::kAnd>, Format::kR},
    {"amoor.d", kAmoMask, amo_match(0x08, true), &amo<uint64_t, Amo::kOr>, Format::kR},
    {"amomin.d", kAmoMask, amo_match(0x10, true), &amo<uint64_t, Amo::kMin>, Format::kR},
    {"amomax.d", kAmoMask, amo_match(0x14, true), &amo<uint64_t, Amo::kMax>, Format::kR},
    {"amominu.d", kAmoMask, amo_match(0x18, true), &amo<uint64_t, Amo::kMinu>, Format::kR},
    {"amomaxu.d", kAmoMask, amo_match(0x1c, true), &amo<uint64_t, Amo::kMaxu>, Format::kR},
};
}  // namespace

std::span<const OpcodeEntry> rv_a_table() { return kTable; }

}  // namespace vigil::riscv
