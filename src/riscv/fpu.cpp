// RV64 F and D arithmetic (unprivileged spec chapters "F" and "D", NaN boxing in "D").
//
// Strategy
// - FADD/FSUB/FMUL/FDIV/FSQRT/FMA run on the host FPU (x86-64 SSE) with the host rounding mode
//   set to the guest's for the duration of the single operation; the host exception flags give
//   NV/DZ/OF/UF/NX. x86 SSE, like RISC-V, detects tininess after rounding and (with underflow
//   masked) raises underflow only for tiny *and* inexact results, so the flags map one to one.
// - RMM (round to nearest, ties to max magnitude) has no x86 equivalent. It can only differ from
//   RNE when the exact result lies exactly halfway between two neighbours, so the operation runs
//   in RNE first; only if that was inexact (and finite) is the result recomputed exactly in
//   integer arithmetic and rounded in software (round_pack below), which also yields the flags.
// - Everything else (conversions, sign injection, min/max, compares, classify, moves) is done on
//   the bit patterns in integer arithmetic: exact, host independent, and no host-FPU state.
// - Result NaNs are always the canonical NaN; single-precision operands that are not properly
//   NaN-boxed read as the canonical NaN; single-precision results are NaN-boxed.
//
// Host-FPU discipline: the host thread runs in its default FP state (RNE, exceptions masked, no
// FTZ/DAZ). Fast path: in RNE with fflags.NX already set (the steady state of most FP code), an
// operation whose result is finite and above the smallest normal cannot raise anything new, so it
// runs as plain host arithmetic without touching MXCSR. Otherwise HostRound clears the host flags,
// sets the rounding mode for that one operation, reads the flags back and restores RNE. Host
// sticky flags are left set afterwards (nothing else looks at them). The operands and result of
// every HostRound-bracketed operation pass through empty volatile asm statements, so the compiler
// can neither constant-fold it nor move it across the MXCSR accesses; the file does not depend on
// -frounding-math (which is harmless).
#include "riscv/fpu.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>

#if defined(__x86_64__) && defined(__SSE2__) && !defined(VIGIL_FPU_GENERIC_HOST)
#define VIGIL_FPU_X86 1
#else
#define VIGIL_FPU_X86 0
#include <cfenv>
#endif

namespace vigil::riscv {
namespace {

using u128 = unsigned __int128;

// fflags bits (fcsr[4:0]).
constexpr uint32_t kNX = 1, kUF = 2, kOF = 4, kDZ = 8, kNV = 16;

// Rounding modes (the rm field / frm encodings).
constexpr int kRNE = 0, kRTZ = 1, kRDN = 2, kRUP = 3, kRMM = 4;

// ---------------------------------------------------------------------------------------------
// Formats

template <class T>
struct Traits;
template <>
struct Traits<float> {
  using U = uint32_t;
  static constexpr int kBits = 32, kP = 24, kEmin = -126, kEmax = 127, kBias = 127;
};
template <>
struct Traits<double> {
  using U = uint64_t;
  static constexpr int kBits = 64, kP = 53, kEmin = -1022, kEmax = 1023, kBias = 1023;
};

template <class T>
using UT = typename Traits<T>::U;
template <class T>
constexpr UT<T> kSign = UT<T>(1) << (Traits<T>::kBits - 1);
template <class T>
constexpr UT<T> kFracMask = (UT<T>(1) << (Traits<T>::kP - 1)) - 1;
template <class T>
constexpr UT<T> kExpMask = ~kSign<T> & ~kFracMask<T>;  // also the bit pattern of +infinity
template <class T>
constexpr UT<T> kQuietBit = UT<T>(1) << (Traits<T>::kP - 2);
template <class T>
constexpr UT<T> kCanonNaN = kExpMask<T> | kQuietBit<T>;
template <class T>
constexpr UT<T> kMaxFinite = kExpMask<T> - 1;

template <class T>
constexpr bool is_nan(UT<T> b) {
  return (b & ~kSign<T>) > kExpMask<T>;
}
template <class T>
constexpr bool is_snan(UT<T> b) {
  return is_nan<T>(b) && !(b & kQuietBit<T>);
}
template <class T>
constexpr bool is_inf(UT<T> b) {
  return (b & ~kSign<T>) == kExpMask<T>;
}
template <class T>
constexpr bool is_zero(UT<T> b) {
  return (b & ~kSign<T>) == 0;
}
template <class T>
constexpr bool is_finite(UT<T> b) {
  return (b & kExpMask<T>) != kExpMask<T>;
}

// ---------------------------------------------------------------------------------------------
// Host FPU access

#if VIGIL_FPU_X86
inline void opaque(float& v) {
  asm volatile("" : "+x"(v));
}
inline void opaque(double& v) {
  asm volatile("" : "+x"(v));
}

inline uint32_t read_mxcsr() {
  uint32_t v;
  asm volatile("stmxcsr %0" : "=m"(v));
  return v;
}
inline void write_mxcsr(uint32_t v) {
  asm volatile("ldmxcsr %0" : : "m"(v));
}

// MXCSR: flags IE DE ZE OE UE PE in bits 0-5; control (DAZ, exception masks, RC, FTZ) in 6-15.
// The default (all exceptions masked, RNE, no DAZ/FTZ) is what the host thread runs with.
constexpr uint32_t kMxcsrFlags = 0x3F, kMxcsrDefault = 0x1F80;
constexpr uint32_t kMxcsrRc[4] = {0x0000, 0x6000, 0x2000, 0x4000};  // RNE RTZ RDN RUP

constexpr auto kMxcsrToFlags = [] {
  std::array<uint8_t, 64> t{};
  for (uint32_t m = 0; m < 64; ++m)
    t[m] = uint8_t(((m & 0x01) ? kNV : 0) | ((m & 0x04) ? kDZ : 0) | ((m & 0x08) ? kOF : 0) |
                   ((m & 0x10) ? kUF : 0) | ((m & 0x20) ? kNX : 0));
  return t;
}();

// Brackets one host operation: clears the host flags and sets the rounding mode `rm` (RNE..RUP);
// finish() returns the guest flags the operation raised and puts the host back into its default
// state (RNE). On x86 reading MXCSR is the expensive part (it waits for the FP pipeline), writing
// it is cheap, so the flags are cleared unconditionally rather than saved and compared.
class HostRound {
 public:
  explicit HostRound(int rm) : rm_(rm) { write_mxcsr(kMxcsrDefault | kMxcsrRc[rm]); }
  uint32_t finish() {
    const uint32_t now = read_mxcsr();
    if (rm_ != kRNE) write_mxcsr(kMxcsrDefault);
    return kMxcsrToFlags[now & kMxcsrFlags];
  }

 private:
  int rm_;
};
#else
// Portable fallback through <cfenv>. Correct on any IEEE host that, like RISC-V, detects
// tininess after rounding.
template <class T>
inline void opaque(T& v) {
  asm volatile("" : "+m"(v) : : "memory");
}
constexpr int kFeRound[4] = {FE_TONEAREST, FE_TOWARDZERO, FE_DOWNWARD, FE_UPWARD};

class HostRound {
 public:
  explicit HostRound(int rm) : rm_(kFeRound[rm]) {
    std::feclearexcept(FE_ALL_EXCEPT);
    if (rm_ != FE_TONEAREST) std::fesetround(rm_);
    asm volatile("" : : : "memory");
  }
  uint32_t finish() {
    asm volatile("" : : : "memory");
    const int ex = std::fetestexcept(FE_ALL_EXCEPT);
    if (rm_ != FE_TONEAREST) std::fesetround(FE_TONEAREST);
    return ((ex & FE_INVALID) ? kNV : 0) | ((ex & FE_DIVBYZERO) ? kDZ : 0) | ((ex & FE_OVERFLOW) ? kOF : 0) |
           ((ex & FE_UNDERFLOW) ? kUF : 0) | ((ex & FE_INEXACT) ? kNX : 0);
  }

 private:
  int rm_;
};
#endif

// ---------------------------------------------------------------------------------------------
// Exact software rounding (used for RMM and for all conversions)

inline int bit_width128(u128 m) {
  const uint64_t hi = uint64_t(m >> 64);
  return hi ? 64 + std::bit_width(hi) : std::bit_width(uint64_t(m));
}

// Returns m / 2^s rounded to an integer per rm (for a value of sign `neg`); s may be <= 0 (exact
// left shift; the caller guarantees it does not overflow).
inline u128 round_shift(u128 m, int s, bool neg, int rm, bool& inexact) {
  if (s <= 0) {
    inexact = false;
    return m << -s;
  }
  u128 q;
  bool above = false, tie = false;
  if (s > 128) {
    q = 0;
    inexact = m != 0;
  } else {
    q = s == 128 ? 0 : m >> s;
    const u128 r = s == 128 ? m : m & ((u128(1) << s) - 1);
    const u128 half = u128(1) << (s - 1);
    inexact = r != 0;
    above = r > half;
    tie = r == half;
  }
  bool up;
  switch (rm) {
    case kRNE:
      up = above || (tie && (q & 1));
      break;
    case kRMM:
      up = above || tie;
      break;
    case kRDN:
      up = neg && inexact;
      break;
    case kRUP:
      up = !neg && inexact;
      break;
    case kRTZ:
    default:
      up = false;
      break;
  }
  return q + up;
}

// Rounds the value (-1)^neg * m * 2^e to format T in mode rm, accumulating NX/UF/OF into flags.
// m may carry a "sticky" lowest bit standing for nonzero bits further right, provided it lies at
// least two bits below the rounding position.
template <class T>
UT<T> round_pack(bool neg, int e, u128 m, int rm, uint32_t& flags) {
  using Tr = Traits<T>;
  using U = UT<T>;
  const U sign = neg ? kSign<T> : 0;
  if (m == 0) return sign;
  const int top = e + bit_width128(m) - 1;  // value in [2^top, 2^(top+1))
  int lsb = std::max(top, Tr::kEmin) - (Tr::kP - 1);
  bool inexact;
  u128 sig = round_shift(m, lsb - e, neg, rm, inexact);
  if (inexact) {
    flags |= kNX;
    if (top < Tr::kEmin) {
      // Tininess after rounding: tiny unless rounding to kP bits with unbounded exponent
      // carries the value up to 2^emin.
      bool tiny = true;
      if (top == Tr::kEmin - 1) {
        bool ix;
        tiny = (round_shift(m, top - (Tr::kP - 1) - e, neg, rm, ix) >> Tr::kP) == 0;
      }
      if (tiny) flags |= kUF;
    }
  }
  if (sig >> Tr::kP) {  // rounded up to 2^kP
    sig >>= 1;
    ++lsb;
  }
  const int exp = lsb + Tr::kP - 1;
  if (exp > Tr::kEmax) {
    flags |= kOF | kNX;
    const bool to_inf = rm == kRNE || rm == kRMM || (rm == kRDN && neg) || (rm == kRUP && !neg);
    return sign | (to_inf ? kExpMask<T> : kMaxFinite<T>);
  }
  if (!(sig >> (Tr::kP - 1))) return sign | U(sig);  // subnormal (exponent field 0)
  return sign | (U(exp + Tr::kBias) << (Tr::kP - 1)) | (U(sig) & kFracMask<T>);
}

// A finite value as (-1)^neg * m * 2^e.
struct Unpacked {
  bool neg;
  int e;
  uint64_t m;
};
template <class T>
inline Unpacked unpack(UT<T> b) {
  using Tr = Traits<T>;
  const bool neg = (b & kSign<T>) != 0;
  const int ef = int((b & kExpMask<T>) >> (Tr::kP - 1));
  const uint64_t f = b & kFracMask<T>;
  if (ef == 0) return {neg, Tr::kEmin - (Tr::kP - 1), f};
  return {neg, ef - Tr::kBias - (Tr::kP - 1), f | (uint64_t(1) << (Tr::kP - 1))};
}

// Exact sum of two terms (-1)^na*ma*2^ea + (-1)^nb*mb*2^eb (each at most 106 bits), rounded.
template <class T>
UT<T> add_terms(bool na, int ea, u128 ma, bool nb, int eb, u128 mb, int rm, uint32_t& flags) {
  if (ma == 0 && mb == 0) return (na == nb ? na : rm == kRDN) ? kSign<T> : 0;
  if (ma == 0) return round_pack<T>(nb, eb, mb, rm, flags);
  if (mb == 0) return round_pack<T>(na, ea, ma, rm, flags);
  // Frame with its top at bit 125: the larger term is always exact in it; a term that has to be
  // shifted out at the bottom is at least 2^19 times smaller, so a sticky bit is enough.
  const int f = std::max(ea + bit_width128(ma), eb + bit_width128(mb)) - 125;
  auto align = [f](int e, u128 m) -> u128 {
    if (e >= f) return m << (e - f);
    const int s = f - e;
    if (s >= 128) return 1;
    return (m >> s) | ((m & ((u128(1) << s) - 1)) != 0);
  };
  const u128 a = align(ea, ma), b = align(eb, mb);
  if (na == nb) return round_pack<T>(na, f, a + b, rm, flags);
  if (a == b) return rm == kRDN ? kSign<T> : 0;
  return a > b ? round_pack<T>(na, f, a - b, rm, flags) : round_pack<T>(nb, f, b - a, rm, flags);
}

enum class Arith { kAdd, kSub, kMul, kDiv };

// Correctly rounded a op b for finite a, b (any rounding mode).
template <Arith O, class T>
UT<T> soft_arith(UT<T> ab, UT<T> bb, int rm, uint32_t& flags) {
  const Unpacked a = unpack<T>(ab), b = unpack<T>(bb);
  if constexpr (O == Arith::kAdd || O == Arith::kSub) {
    return add_terms<T>(a.neg, a.e, a.m, b.neg != (O == Arith::kSub), b.e, b.m, rm, flags);
  } else if constexpr (O == Arith::kMul) {
    return round_pack<T>(a.neg != b.neg, a.e + b.e, u128(a.m) * b.m, rm, flags);
  } else {
    const bool neg = a.neg != b.neg;
    if (a.m == 0 || b.m == 0) return neg ? kSign<T> : 0;  // not reached: exact cases
    const int sa = std::countl_zero(a.m), sb = std::countl_zero(b.m);
    const u128 num = u128(a.m << sa) << 64;
    const uint64_t den = b.m << sb;
    u128 q = num / den;
    if (num % den) q |= 1;  // sticky; q >= 2^63
    return round_pack<T>(neg, (a.e - sa) - (b.e - sb) - 64, q, rm, flags);
  }
}

// Correctly rounded a*b + c for finite a, b, c.
template <class T>
UT<T> soft_fma(UT<T> ab, UT<T> bb, UT<T> cb, int rm, uint32_t& flags) {
  const Unpacked a = unpack<T>(ab), b = unpack<T>(bb), c = unpack<T>(cb);
  return add_terms<T>(a.neg != b.neg, a.e + b.e, u128(a.m) * b.m, c.neg, c.e, c.m, rm, flags);
}

// ---------------------------------------------------------------------------------------------
// Host-FPU arithmetic

template <class T>
inline T from_bits(UT<T> b) {
  return std::bit_cast<T>(b);
}
template <class T>
inline UT<T> to_bits(T v) {
  return std::bit_cast<UT<T>>(v);
}

template <class T>
constexpr UT<T> kMinNormal = UT<T>(1) << (Traits<T>::kP - 1);

// True if r is finite with |r| > 2^emin. Such an RNE result cannot come with NV, DZ, OF or UF
// (a tiny exact value rounds to at most 2^emin), so if fflags.NX is already set the operation
// cannot change fflags at all and the host flags need not be read. That is the fast path; it
// relies on the host thread running in its default FP state (RNE, no FTZ/DAZ), which HostRound
// restores after every rounding-mode switch.
template <class T>
constexpr bool above_min_normal(UT<T> r) {
  const UT<T> mag = r & ~kSign<T>;
  return mag > kMinNormal<T> && mag < kExpMask<T>;
}
inline bool fast_path_ok(int rm, uint32_t fcsr) {
  return rm == kRNE && (fcsr & kNX);
}

template <Arith O, class T>
inline T host_arith(T a, T b) {
  if constexpr (O == Arith::kAdd) return a + b;
  if constexpr (O == Arith::kSub) return a - b;
  if constexpr (O == Arith::kMul) return a * b;
  if constexpr (O == Arith::kDiv) return a / b;
}

// For RMM the operation is run in RNE; if that is finite and inexact, the exact result may be a
// tie and is redone in software.
inline int host_rm(int rm) {
  return rm == kRMM ? kRNE : rm;
}

template <Arith O, class T>
inline UT<T> fp_arith(UT<T> ab, UT<T> bb, int rm, uint32_t fcsr, uint32_t& flags) {
  if (fast_path_ok(rm, fcsr)) [[likely]] {
    const UT<T> rb = to_bits<T>(host_arith<O, T>(from_bits<T>(ab), from_bits<T>(bb)));
    if (above_min_normal<T>(rb)) [[likely]]
      return rb;
    // Exact zeros: a sum of finite values that is zero is exact; so is 0 * finite and
    // 0 / finite nonzero.
    if ((rb & ~kSign<T>) == 0 && is_finite<T>(ab) && is_finite<T>(bb)) {
      if constexpr (O == Arith::kAdd || O == Arith::kSub) return rb;
      if constexpr (O == Arith::kMul)
        if (is_zero<T>(ab) || is_zero<T>(bb)) return rb;
      if constexpr (O == Arith::kDiv)
        if (is_zero<T>(ab) && !is_zero<T>(bb)) return rb;
    }
  }
  T a = from_bits<T>(ab), b = from_bits<T>(bb);
  HostRound host(host_rm(rm));
  opaque(a);
  opaque(b);
  T r = host_arith<O, T>(a, b);
  opaque(r);
  uint32_t f = host.finish();
  UT<T> rb = to_bits<T>(r);
  if (rm == kRMM && (f & kNX) && is_finite<T>(rb)) [[unlikely]] {
    f = 0;
    rb = soft_arith<O, T>(ab, bb, rm, f);
  }
  flags |= f;
  return is_nan<T>(rb) ? kCanonNaN<T> : rb;
}

// sqrt never produces a tie (the square of a midpoint needs more than kP bits) nor a subnormal,
// so RMM is RNE.
template <class T>
inline UT<T> fp_sqrt(UT<T> ab, int rm, uint32_t fcsr, uint32_t& flags) {
  if (fast_path_ok(rm, fcsr)) [[likely]] {
    const UT<T> rb = to_bits<T>(std::sqrt(from_bits<T>(ab)));
    if (above_min_normal<T>(rb) || is_zero<T>(ab)) [[likely]]
      return rb;
  }
  T a = from_bits<T>(ab), r;
  HostRound host(host_rm(rm));
  opaque(a);
  r = std::sqrt(a);
  opaque(r);
  flags |= host.finish();
  const UT<T> rb = to_bits<T>(r);
  return is_nan<T>(rb) ? kCanonNaN<T> : rb;
}

// (-1)^neg_prod * a * b + (-1)^neg_add * c with a single rounding.
template <class T>
inline UT<T> fp_fma(UT<T> ab, UT<T> bb, UT<T> cb, bool neg_prod, bool neg_add, int rm, uint32_t fcsr,
                    uint32_t& flags) {
  if (neg_prod) ab ^= kSign<T>;
  if (neg_add) cb ^= kSign<T>;
  if (fast_path_ok(rm, fcsr)) [[likely]] {
    const UT<T> rb = to_bits<T>(std::fma(from_bits<T>(ab), from_bits<T>(bb), from_bits<T>(cb)));
    if (above_min_normal<T>(rb)) [[likely]]
      return rb;
  }
  T a = from_bits<T>(ab), b = from_bits<T>(bb), c = from_bits<T>(cb), r;
  HostRound host(host_rm(rm));
  opaque(a);
  opaque(b);
  opaque(c);
  r = std::fma(a, b, c);
  opaque(r);
  uint32_t f = host.finish();
  UT<T> rb = to_bits<T>(r);
  if (is_nan<T>(rb)) {
    // RISC-V: inf * 0 is invalid even when the addend is a quiet NaN.
    if ((is_inf<T>(ab) && is_zero<T>(bb)) || (is_zero<T>(ab) && is_inf<T>(bb))) f |= kNV;
    rb = kCanonNaN<T>;
  } else if (rm == kRMM && (f & kNX) && is_finite<T>(rb)) [[unlikely]] {
    f = 0;
    rb = soft_fma<T>(ab, bb, cb, rm, f);
  }
  flags |= f;
  return rb;
}

// ---------------------------------------------------------------------------------------------
// Bit-level operations

// Orders non-NaN values with -0 < +0.
template <class T>
constexpr UT<T> order_key(UT<T> b) {
  return (b & kSign<T>) ? ~b : (b | kSign<T>);
}

template <class T>
inline UT<T> fp_minmax(UT<T> a, UT<T> b, bool is_max, uint32_t& flags) {
  const bool an = is_nan<T>(a), bn = is_nan<T>(b);
  if (an || bn) [[unlikely]] {
    if (is_snan<T>(a) || is_snan<T>(b)) flags |= kNV;
    if (an && bn) return kCanonNaN<T>;
    return an ? b : a;
  }
  const bool a_less = order_key<T>(a) < order_key<T>(b);
  return a_less != is_max ? a : b;
}

// funct3: 0 FLE, 1 FLT, 2 FEQ.
template <class T>
inline uint64_t fp_compare(UT<T> a, UT<T> b, unsigned funct3, uint32_t& flags) {
  if (is_nan<T>(a) || is_nan<T>(b)) [[unlikely]] {
    if (funct3 != 2 || is_snan<T>(a) || is_snan<T>(b)) flags |= kNV;
    return 0;
  }
  if (is_zero<T>(a) && is_zero<T>(b)) return funct3 != 1;
  const UT<T> ka = order_key<T>(a), kb = order_key<T>(b);
  switch (funct3) {
    case 0:
      return ka <= kb;
    case 1:
      return ka < kb;
    default:
      return ka == kb;
  }
}

template <class T>
inline uint64_t fp_class(UT<T> b) {
  const bool neg = (b & kSign<T>) != 0;
  int bit;
  if (is_inf<T>(b)) {
    bit = neg ? 0 : 7;
  } else if (is_nan<T>(b)) {
    bit = (b & kQuietBit<T>) ? 9 : 8;
  } else if (is_zero<T>(b)) {
    bit = neg ? 3 : 4;
  } else if ((b & kExpMask<T>) == 0) {
    bit = neg ? 2 : 5;
  } else {
    bit = neg ? 1 : 6;
  }
  return uint64_t(1) << bit;
}

// FCVT.{W,WU,L,LU}.fmt; kind = rs2 (0 W, 1 WU, 2 L, 3 LU). W/WU results are sign-extended.
template <class T>
inline uint64_t fp_to_int(UT<T> b, unsigned kind, int rm, uint32_t& flags) {
  static constexpr uint64_t kMaxPos[4] = {0x7fffffffu, 0xffffffffu, 0x7fffffffffffffffu, ~uint64_t(0)};
  static constexpr uint64_t kMaxNeg[4] = {0x80000000u, 0, uint64_t(1) << 63, 0};  // magnitudes
  auto finish = [kind](uint64_t v) -> uint64_t {
    return kind < 2 ? uint64_t(int64_t(int32_t(uint32_t(v)))) : v;
  };
  if (is_nan<T>(b)) [[unlikely]] {
    flags |= kNV;
    return finish(kMaxPos[kind]);
  }
  const Unpacked u = unpack<T>(b);  // infinities unpack to huge finite values and saturate
  bool inexact = false;
  u128 q;
  if (u.e >= 0) {
    q = u.e > 64 ? ~u128(0) : u128(u.m) << u.e;
  } else {
    q = round_shift(u.m, -u.e, u.neg, rm, inexact);
  }
  if (q > (u.neg ? kMaxNeg[kind] : kMaxPos[kind])) {
    flags |= kNV;
    return finish(u.neg ? uint64_t(0) - kMaxNeg[kind] : kMaxPos[kind]);
  }
  if (inexact) flags |= kNX;
  const uint64_t mag = uint64_t(q);
  return finish(u.neg ? uint64_t(0) - mag : mag);
}

// FCVT.fmt.{W,WU,L,LU}; kind = rs2.
template <class T>
inline UT<T> int_to_fp(uint64_t v, unsigned kind, int rm, uint32_t& flags) {
  bool neg = false;
  uint64_t mag;
  switch (kind) {
    case 0: {
      const int32_t s = int32_t(uint32_t(v));
      neg = s < 0;
      mag = neg ? uint64_t(0) - uint64_t(int64_t(s)) : uint64_t(s);
      break;
    }
    case 1:
      mag = uint32_t(v);
      break;
    case 2:
      neg = int64_t(v) < 0;
      mag = neg ? uint64_t(0) - v : v;
      break;
    default:
      mag = v;
      break;
  }
  return round_pack<T>(neg, 0, mag, rm, flags);
}

// FCVT.D.S (exact) and FCVT.S.D.
template <class To, class From>
inline UT<To> fp_convert(UT<From> b, int rm, uint32_t& flags) {
  if (!is_finite<From>(b)) [[unlikely]] {
    if (is_nan<From>(b)) {
      if (is_snan<From>(b)) flags |= kNV;
      return kCanonNaN<To>;
    }
    return (b & kSign<From>) ? (kSign<To> | kExpMask<To>) : kExpMask<To>;
  }
  const Unpacked u = unpack<From>(b);
  return round_pack<To>(u.neg, u.e, u.m, rm, flags);
}

// ---------------------------------------------------------------------------------------------
// Register access and decode

template <class T>
inline UT<T> read_f(const FpuState& fp, unsigned r) {
  if constexpr (sizeof(T) == 4) {
    const uint64_t v = fp.f[r];
    return (v >> 32) == 0xffffffffu ? uint32_t(v) : kCanonNaN<float>;
  } else {
    return fp.f[r];
  }
}
template <class T>
inline void write_f(FpuState& fp, unsigned r, UT<T> v) {
  if constexpr (sizeof(T) == 4) {
    fp.f[r] = 0xffffffff00000000u | v;
  } else {
    fp.f[r] = v;
  }
}

// The effective rounding mode, or -1 if reserved (rm 5/6, or rm 7 with frm 5-7).
inline int resolve_rm(unsigned rm, uint32_t fcsr) {
  if (rm == 7) rm = (fcsr >> 5) & 7;
  return rm <= 4 ? int(rm) : -1;
}

template <class T>
bool exec_fma(uint32_t insn, FpuState& fp) {
  const int rm = resolve_rm((insn >> 12) & 7, fp.fcsr);
  if (rm < 0) return false;
  const unsigned rd = (insn >> 7) & 31, rs1 = (insn >> 15) & 31, rs2 = (insn >> 20) & 31, rs3 = insn >> 27;
  // 0x43 FMADD: a*b+c; 0x47 FMSUB: a*b-c; 0x4b FNMSUB: -a*b+c; 0x4f FNMADD: -a*b-c.
  const unsigned variant = (insn >> 2) & 3;
  uint32_t flags = 0;
  const UT<T> r = fp_fma<T>(read_f<T>(fp, rs1), read_f<T>(fp, rs2), read_f<T>(fp, rs3), variant >= 2,
                            variant == 1 || variant == 3, rm, fp.fcsr, flags);
  write_f<T>(fp, rd, r);
  fp.fcsr |= flags;
  return true;
}

template <class T>
bool exec_op_fp(uint32_t insn, uint64_t* x, FpuState& fp) {
  const unsigned rd = (insn >> 7) & 31, funct3 = (insn >> 12) & 7, rs1 = (insn >> 15) & 31,
                 rs2 = (insn >> 20) & 31, funct5 = insn >> 27;
  uint64_t& xd = x[rd == 0 ? 32 : rd];
  uint32_t flags = 0;
  int rm;
  switch (funct5) {
    case 0x00:    // FADD
    case 0x01:    // FSUB
    case 0x02:    // FMUL
    case 0x03: {  // FDIV
      if ((rm = resolve_rm(funct3, fp.fcsr)) < 0) return false;
      const UT<T> a = read_f<T>(fp, rs1), b = read_f<T>(fp, rs2);
      UT<T> r;
      switch (funct5) {
        case 0x00:
          r = fp_arith<Arith::kAdd, T>(a, b, rm, fp.fcsr, flags);
          break;
        case 0x01:
          r = fp_arith<Arith::kSub, T>(a, b, rm, fp.fcsr, flags);
          break;
        case 0x02:
          r = fp_arith<Arith::kMul, T>(a, b, rm, fp.fcsr, flags);
          break;
        default:
          r = fp_arith<Arith::kDiv, T>(a, b, rm, fp.fcsr, flags);
          break;
      }
      write_f<T>(fp, rd, r);
      break;
    }
    case 0x0b:  // FSQRT
      if (rs2 != 0 || (rm = resolve_rm(funct3, fp.fcsr)) < 0) return false;
      write_f<T>(fp, rd, fp_sqrt<T>(read_f<T>(fp, rs1), rm, fp.fcsr, flags));
      break;
    case 0x04: {  // FSGNJ, FSGNJN, FSGNJX
      if (funct3 > 2) return false;
      const UT<T> a = read_f<T>(fp, rs1), b = read_f<T>(fp, rs2);
      const UT<T> s = funct3 == 0 ? b : funct3 == 1 ? ~b : (a ^ b);
      write_f<T>(fp, rd, (a & ~kSign<T>) | (s & kSign<T>));
      break;
    }
    case 0x05:  // FMIN, FMAX
      if (funct3 > 1) return false;
      write_f<T>(fp, rd, fp_minmax<T>(read_f<T>(fp, rs1), read_f<T>(fp, rs2), funct3 == 1, flags));
      break;
    case 0x08:  // FCVT.S.D (fmt S, rs2 = 1), FCVT.D.S (fmt D, rs2 = 0)
      if constexpr (sizeof(T) == 4) {
        if (rs2 != 1 || (rm = resolve_rm(funct3, fp.fcsr)) < 0) return false;
        write_f<float>(fp, rd, fp_convert<float, double>(read_f<double>(fp, rs1), rm, flags));
      } else {
        if (rs2 != 0 || (rm = resolve_rm(funct3, fp.fcsr)) < 0) return false;
        write_f<double>(fp, rd, fp_convert<double, float>(read_f<float>(fp, rs1), rm, flags));
      }
      break;
    case 0x14:  // FLE, FLT, FEQ
      if (funct3 > 2) return false;
      xd = fp_compare<T>(read_f<T>(fp, rs1), read_f<T>(fp, rs2), funct3, flags);
      break;
    case 0x18:  // FCVT.{W,WU,L,LU}.fmt
      if (rs2 > 3 || (rm = resolve_rm(funct3, fp.fcsr)) < 0) return false;
      xd = fp_to_int<T>(read_f<T>(fp, rs1), rs2, rm, flags);
      break;
    case 0x1a:  // FCVT.fmt.{W,WU,L,LU}
      if (rs2 > 3 || (rm = resolve_rm(funct3, fp.fcsr)) < 0) return false;
      write_f<T>(fp, rd, int_to_fp<T>(x[rs1], rs2, rm, flags));
      break;
    case 0x1c:  // FMV.X.W / FMV.X.D (funct3 0), FCLASS (funct3 1)
      if (rs2 != 0 || funct3 > 1) return false;
      if (funct3 == 1) {
        xd = fp_class<T>(read_f<T>(fp, rs1));
      } else if constexpr (sizeof(T) == 4) {
        xd = uint64_t(int64_t(int32_t(uint32_t(fp.f[rs1]))));  // raw bits, no NaN-box check
      } else {
        xd = fp.f[rs1];
      }
      break;
    case 0x1e:  // FMV.W.X / FMV.D.X
      if (rs2 != 0 || funct3 != 0) return false;
      write_f<T>(fp, rd, UT<T>(x[rs1]));
      break;
    default:
      return false;
  }
  fp.fcsr |= flags;
  return true;
}

}  // namespace

bool execute_fp(uint32_t insn, uint64_t* x, FpuState& fp) {
  const unsigned fmt = (insn >> 25) & 3;
  if (fmt > 1) return false;  // H (Zfh) and Q are not implemented
  switch (insn & 0x7f) {
    case 0x53:
      return fmt == 0 ? exec_op_fp<float>(insn, x, fp) : exec_op_fp<double>(insn, x, fp);
    case 0x43:
    case 0x47:
    case 0x4b:
    case 0x4f:
      return fmt == 0 ? exec_fma<float>(insn, fp) : exec_fma<double>(insn, fp);
    default:
      return false;
  }
}

}  // namespace vigil::riscv
