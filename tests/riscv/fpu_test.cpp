// Tests for execute_fp (src/riscv/fpu.cpp): RV64 F and D.
//
// Part 1: unit tests whose expected values are worked out by hand from the unprivileged spec
//         (and IEEE 754 rounding rules).
// Part 2: a differential test against a real RISC-V implementation: the test cross-compiles
//         tests/riscv/fpu_oracle/oracle.c with riscv64-linux-gnu-gcc, runs it under
//         qemu-riscv64-static on a few hundred thousand generated (encoding, operands, fcsr)
//         cases and compares every result register, fcsr and legality with execute_fp.
#include "riscv/fpu.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <bit>
#include <cfenv>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#ifndef VIGIL_SOURCE_DIR
#error "VIGIL_SOURCE_DIR (the project root) must be defined"
#endif

namespace vigil::riscv {
namespace {

// ---------------------------------------------------------------------------------------------
// Encoding helpers

constexpr uint32_t kOpFp = 0x53, kFmadd = 0x43, kFmsub = 0x47, kFnmsub = 0x4b, kFnmadd = 0x4f;
constexpr uint32_t S = 0, D = 1;  // fmt
constexpr uint32_t RNE = 0, RTZ = 1, RDN = 2, RUP = 3, RMM = 4, DYN = 7;
constexpr uint32_t NX = 1, UF = 2, OF = 4, DZ = 8, NV = 16;

// funct5 values of OP-FP.
enum Funct5 : uint32_t {
  kAdd = 0x00,
  kSub = 0x01,
  kMul = 0x02,
  kDiv = 0x03,
  kSgnj = 0x04,
  kMinMax = 0x05,
  kCvtFF = 0x08,
  kSqrt = 0x0b,
  kCmp = 0x14,
  kCvtToInt = 0x18,
  kCvtFromInt = 0x1a,
  kMvXClass = 0x1c,
  kMvFromX = 0x1e,
};

constexpr uint32_t op_fp(uint32_t funct5, uint32_t fmt, uint32_t rd, uint32_t rs1, uint32_t rs2,
                         uint32_t rm) {
  return funct5 << 27 | fmt << 25 | rs2 << 20 | rs1 << 15 | rm << 12 | rd << 7 | kOpFp;
}
constexpr uint32_t fma4(uint32_t opcode, uint32_t fmt, uint32_t rd, uint32_t rs1, uint32_t rs2, uint32_t rs3,
                        uint32_t rm) {
  return rs3 << 27 | fmt << 25 | rs2 << 20 | rs1 << 15 | rm << 12 | rd << 7 | opcode;
}

// Register values: a boxed single, a double.
uint64_t Sv(float v) {
  return 0xffffffff00000000u | std::bit_cast<uint32_t>(v);
}
uint64_t Sb(uint32_t bits) {
  return 0xffffffff00000000u | bits;
}
uint64_t Dv(double v) {
  return std::bit_cast<uint64_t>(v);
}

constexpr uint64_t kCanonS = 0xffffffff7fc00000u, kCanonD = 0x7ff8000000000000u;
constexpr uint32_t kSNaNS = 0x7f800001u, kQNaNPayloadS = 0x7fc12345u;
constexpr uint64_t kSNaND = 0x7ff0000000000001u, kQNaNPayloadD = 0x7ff8000000012345u;

bool same_state(const FpuState& a, const uint64_t* ax, const FpuState& b, const uint64_t* bx) {
  return a.fcsr == b.fcsr && std::memcmp(a.f, b.f, sizeof a.f) == 0 &&
         std::memcmp(ax, bx, 33 * sizeof *ax) == 0;
}

struct Result {
  bool ok;
  uint64_t f;      // f[rd]
  uint64_t x;      // x[rd]
  uint32_t flags;  // fflags after (started at 0)
};

// Runs one instruction with rd = 1 (f1 / x1), rs1 = 2, rs2 = 3, rs3 = 4.
struct Machine {
  FpuState fp{};
  uint64_t x[33]{};

  // Also checks that running with fflags.NX already set (the fast path) gives the same result.
  Result run(uint32_t insn) {
    Machine again = *this;
    again.fp.fcsr |= NX;
    const bool ok = execute_fp(insn, x, fp);
    const bool ok2 = execute_fp(insn, again.x, again.fp);
    EXPECT_EQ(ok, ok2);
    if (ok) {
      EXPECT_EQ(again.fp.f[1], fp.f[1]) << "with NX preset";
      EXPECT_EQ(again.x[1], x[1]) << "with NX preset";
      EXPECT_EQ(again.fp.fcsr, fp.fcsr | NX) << "with NX preset";
    }
    return {ok, fp.f[1], x[1], fp.fcsr & 31};
  }
};

Result run_op(uint32_t funct5, uint32_t fmt, uint32_t rm, uint64_t a, uint64_t b = 0, uint32_t frm = 0) {
  Machine m;
  m.fp.f[2] = a;
  m.fp.f[3] = b;
  m.fp.fcsr = frm << 5;
  return m.run(op_fp(funct5, fmt, 1, 2, funct5 == kSqrt ? 0 : 3, rm));
}
Result run_rs2(uint32_t funct5, uint32_t fmt, uint32_t rm, uint32_t rs2, uint64_t a, uint32_t frm = 0) {
  Machine m;
  m.fp.f[2] = a;
  m.x[2] = a;
  m.fp.fcsr = frm << 5;
  return m.run(op_fp(funct5, fmt, 1, 2, rs2, rm));
}
Result run_fma(uint32_t opcode, uint32_t fmt, uint32_t rm, uint64_t a, uint64_t b, uint64_t c) {
  Machine m;
  m.fp.f[2] = a;
  m.fp.f[3] = b;
  m.fp.f[4] = c;
  return m.run(fma4(opcode, fmt, 1, 2, 3, 4, rm));
}
// fcvt.{w,wu,l,lu}.fmt (kind = rs2) of a register value.
Result cvt_to_int(uint32_t fmt, uint32_t kind, uint32_t rm, uint64_t v) {
  return run_rs2(kCvtToInt, fmt, rm, kind, v);
}
Result cvt_from_int(uint32_t fmt, uint32_t kind, uint32_t rm, uint64_t v) {
  return run_rs2(kCvtFromInt, fmt, rm, kind, v);
}

#define EXPECT_RESULT_F(r, value, fl)                                   \
  do {                                                                  \
    const Result rr_ = (r);                                             \
    EXPECT_TRUE(rr_.ok);                                                \
    EXPECT_EQ(rr_.f, uint64_t(value)) << std::hex << "got 0x" << rr_.f; \
    EXPECT_EQ(rr_.flags, uint32_t(fl));                                 \
  } while (0)
#define EXPECT_RESULT_X(r, value, fl)                                   \
  do {                                                                  \
    const Result rr_ = (r);                                             \
    EXPECT_TRUE(rr_.ok);                                                \
    EXPECT_EQ(rr_.x, uint64_t(value)) << std::hex << "got 0x" << rr_.x; \
    EXPECT_EQ(rr_.flags, uint32_t(fl));                                 \
  } while (0)

// ---------------------------------------------------------------------------------------------
// Basic operations

TEST(Fpu, BasicArithmeticSingle) {
  EXPECT_RESULT_F(run_op(kAdd, S, RNE, Sv(1.5f), Sv(2.25f)), Sv(3.75f), 0);
  EXPECT_RESULT_F(run_op(kSub, S, RNE, Sv(1.5f), Sv(2.25f)), Sv(-0.75f), 0);
  EXPECT_RESULT_F(run_op(kMul, S, RNE, Sv(1.5f), Sv(-2.25f)), Sv(-3.375f), 0);
  EXPECT_RESULT_F(run_op(kDiv, S, RNE, Sv(3.375f), Sv(1.5f)), Sv(2.25f), 0);
  EXPECT_RESULT_F(run_op(kDiv, S, RNE, Sv(1.0f), Sv(3.0f)), Sb(0x3eaaaaab), NX);  // 1/3 rounds up
  EXPECT_RESULT_F(run_op(kDiv, S, RTZ, Sv(1.0f), Sv(3.0f)), Sb(0x3eaaaaaa), NX);
  EXPECT_RESULT_F(run_op(kSqrt, S, RNE, Sv(6.25f)), Sv(2.5f), 0);
  EXPECT_RESULT_F(run_op(kSqrt, S, RNE, Sv(2.0f)), Sb(0x3fb504f3), NX);
  EXPECT_RESULT_F(run_op(kSqrt, S, RUP, Sv(2.0f)), Sb(0x3fb504f4), NX);
  EXPECT_RESULT_F(run_op(kSqrt, S, RNE, Sv(-0.0f)), Sv(-0.0f), 0);
  EXPECT_RESULT_F(run_op(kSqrt, S, RNE, Sv(-1.0f)), kCanonS, NV);
}

TEST(Fpu, BasicArithmeticDouble) {
  EXPECT_RESULT_F(run_op(kAdd, D, RNE, Dv(1.5), Dv(2.25)), Dv(3.75), 0);
  EXPECT_RESULT_F(run_op(kSub, D, RNE, Dv(1.5), Dv(2.25)), Dv(-0.75), 0);
  EXPECT_RESULT_F(run_op(kMul, D, RNE, Dv(1.5), Dv(-2.25)), Dv(-3.375), 0);
  EXPECT_RESULT_F(run_op(kDiv, D, RNE, Dv(3.375), Dv(1.5)), Dv(2.25), 0);
  EXPECT_RESULT_F(run_op(kDiv, D, RNE, Dv(1.0), Dv(3.0)), 0x3fd5555555555555u, NX);  // 1/3 rounds down
  EXPECT_RESULT_F(run_op(kDiv, D, RUP, Dv(1.0), Dv(3.0)), 0x3fd5555555555556u, NX);
  EXPECT_RESULT_F(run_op(kSqrt, D, RNE, Dv(6.25)), Dv(2.5), 0);
  EXPECT_RESULT_F(run_op(kSqrt, D, RNE, Dv(2.0)), 0x3ff6a09e667f3bcdu, NX);
  EXPECT_RESULT_F(run_op(kSqrt, D, RDN, Dv(2.0)), 0x3ff6a09e667f3bccu, NX);
  EXPECT_RESULT_F(run_op(kSqrt, D, RNE, Dv(-0.0)), Dv(-0.0), 0);
  EXPECT_RESULT_F(run_op(kSqrt, D, RNE, Dv(-1.0)), kCanonD, NV);
}

TEST(Fpu, SpecialValuesAndCanonicalNaN) {
  for (uint32_t fmt : {S, D}) {
    const uint64_t canon = fmt == S ? kCanonS : kCanonD;
    auto v = [fmt](double d) { return fmt == S ? Sv(float(d)) : Dv(d); };
    const double inf = std::numeric_limits<double>::infinity();
    const uint64_t qnan = fmt == S ? Sb(kQNaNPayloadS | 0x80000000u) : (kQNaNPayloadD | (1ull << 63));
    const uint64_t snan = fmt == S ? Sb(kSNaNS) : kSNaND;
    // Quiet NaN operands: canonical result, no flags; payload and sign are not propagated.
    EXPECT_RESULT_F(run_op(kAdd, fmt, RNE, qnan, v(1)), canon, 0);
    EXPECT_RESULT_F(run_op(kMul, fmt, RNE, v(1), qnan), canon, 0);
    // Signaling NaN operands raise NV.
    EXPECT_RESULT_F(run_op(kAdd, fmt, RNE, snan, v(1)), canon, NV);
    EXPECT_RESULT_F(run_op(kDiv, fmt, RNE, v(1), snan), canon, NV);
    EXPECT_RESULT_F(run_op(kSqrt, fmt, RNE, snan), canon, NV);
    EXPECT_RESULT_F(run_op(kSqrt, fmt, RNE, qnan), canon, 0);
    // Invalid operations.
    EXPECT_RESULT_F(run_op(kSub, fmt, RNE, v(inf), v(inf)), canon, NV);
    EXPECT_RESULT_F(run_op(kAdd, fmt, RNE, v(-inf), v(inf)), canon, NV);
    EXPECT_RESULT_F(run_op(kMul, fmt, RNE, v(0), v(-inf)), canon, NV);
    EXPECT_RESULT_F(run_op(kDiv, fmt, RNE, v(0), v(-0.0)), canon, NV);
    EXPECT_RESULT_F(run_op(kDiv, fmt, RNE, v(inf), v(inf)), canon, NV);
    EXPECT_RESULT_F(run_op(kSqrt, fmt, RNE, v(-inf)), canon, NV);
    // Division by zero.
    EXPECT_RESULT_F(run_op(kDiv, fmt, RNE, v(1), v(0)), v(inf), DZ);
    EXPECT_RESULT_F(run_op(kDiv, fmt, RNE, v(-1), v(0)), v(-inf), DZ);
    EXPECT_RESULT_F(run_op(kDiv, fmt, RNE, v(1), v(-0.0)), v(-inf), DZ);
    // Exact infinities raise nothing.
    EXPECT_RESULT_F(run_op(kDiv, fmt, RNE, v(inf), v(0)), v(inf), 0);
    EXPECT_RESULT_F(run_op(kAdd, fmt, RNE, v(inf), v(1)), v(inf), 0);
    EXPECT_RESULT_F(run_op(kSqrt, fmt, RNE, v(inf)), v(inf), 0);
    // Signed zeros: x - x is +0 except in RDN.
    for (uint32_t rm : {RNE, RTZ, RUP, RMM}) EXPECT_RESULT_F(run_op(kSub, fmt, rm, v(3), v(3)), v(0), 0);
    EXPECT_RESULT_F(run_op(kSub, fmt, RDN, v(3), v(3)), v(-0.0), 0);
    EXPECT_RESULT_F(run_op(kAdd, fmt, RNE, v(-0.0), v(-0.0)), v(-0.0), 0);
    EXPECT_RESULT_F(run_op(kAdd, fmt, RNE, v(-0.0), v(0)), v(0), 0);
    EXPECT_RESULT_F(run_op(kAdd, fmt, RDN, v(-0.0), v(0)), v(-0.0), 0);
    EXPECT_RESULT_F(run_op(kMul, fmt, RNE, v(-0.0), v(5)), v(-0.0), 0);
  }
}

// ---------------------------------------------------------------------------------------------
// Rounding modes

TEST(Fpu, FcvtWRoundingModesOnTies) {
  struct Case {
    float in;
    int32_t out[5];  // RNE RTZ RDN RUP RMM
  };
  const Case cases[] = {
      {2.5f, {2, 2, 2, 3, 3}},       {-2.5f, {-2, -2, -3, -2, -3}},  {3.5f, {4, 3, 3, 4, 4}},
      {-3.5f, {-4, -3, -4, -3, -4}}, {0.5f, {0, 0, 0, 1, 1}},        {-0.5f, {0, 0, -1, 0, -1}},
      {2.25f, {2, 2, 2, 3, 2}},      {-2.75f, {-3, -2, -3, -2, -3}}, {1.0e-30f, {0, 0, 0, 1, 0}},
  };
  for (const Case& c : cases) {
    for (uint32_t rm = 0; rm < 5; ++rm) {
      SCOPED_TRACE(testing::Message() << c.in << " rm=" << rm);
      const uint64_t want = uint64_t(int64_t(c.out[rm]));
      EXPECT_RESULT_X(cvt_to_int(S, 0, rm, Sv(c.in)), want, NX);
      EXPECT_RESULT_X(cvt_to_int(D, 0, rm, Dv(c.in)), want, NX);
      EXPECT_RESULT_X(cvt_to_int(S, 2, rm, Sv(c.in)), want, NX);
      EXPECT_RESULT_X(cvt_to_int(D, 2, rm, Dv(c.in)), want, NX);
      // Dynamic rounding mode from frm.
      EXPECT_RESULT_X(run_rs2(kCvtToInt, D, DYN, 0, Dv(c.in), rm), want, NX);
    }
  }
  // Exact conversions raise nothing.
  EXPECT_RESULT_X(cvt_to_int(S, 0, RNE, Sv(-7.0f)), uint64_t(-7), 0);
  EXPECT_RESULT_X(cvt_to_int(D, 3, RNE, Dv(0x1p63)), 0x8000000000000000u, 0);
}

// x + half an ulp of x (a tie), x + (just over half an ulp), and an odd x plus half an ulp.
TEST(Fpu, AddRoundingAtLastUlpAllModes) {
  struct Case {
    double a, b;
    double out[5];  // RNE RTZ RDN RUP RMM
  };
  const double e = 0x1p-23;  // ulp(1) in single
  const Case single[] = {
      {1.0, e / 2, {1.0, 1.0, 1.0, 1 + e, 1 + e}},
      {-1.0, -e / 2, {-1.0, -1.0, -1 - e, -1.0, -1 - e}},
      {1.0, e / 2 + 0x1p-47, {1 + e, 1.0, 1.0, 1 + e, 1 + e}},
      {1.0, e / 2 - 0x1p-48, {1.0, 1.0, 1.0, 1 + e, 1.0}},
      {1 + e, e / 2, {1 + 2 * e, 1 + e, 1 + e, 1 + 2 * e, 1 + 2 * e}},
      {-(1 + e), -e / 2, {-1 - 2 * e, -1 - e, -1 - 2 * e, -1 - e, -1 - 2 * e}},
      {1.0, -e / 4, {1.0, 1 - e / 2, 1 - e / 2, 1.0, 1.0}},  // below 1 the ulp halves
  };
  for (const Case& c : single) {
    for (uint32_t rm = 0; rm < 5; ++rm) {
      SCOPED_TRACE(testing::Message() << "single " << c.a << " + " << c.b << " rm=" << rm);
      EXPECT_RESULT_F(run_op(kAdd, S, rm, Sv(float(c.a)), Sv(float(c.b))), Sv(float(c.out[rm])), NX);
      EXPECT_RESULT_F(run_op(kSub, S, rm, Sv(float(c.a)), Sv(float(-c.b))), Sv(float(c.out[rm])), NX);
      EXPECT_RESULT_F(run_op(kAdd, S, DYN, Sv(float(c.a)), Sv(float(c.b)), rm), Sv(float(c.out[rm])), NX);
    }
  }
  const double u = 0x1p-52;  // ulp(1) in double
  const Case dbl[] = {
      {1.0, u / 2, {1.0, 1.0, 1.0, 1 + u, 1 + u}},
      {-1.0, -u / 2, {-1.0, -1.0, -1 - u, -1.0, -1 - u}},
      {1 + u, u / 2, {1 + 2 * u, 1 + u, 1 + u, 1 + 2 * u, 1 + 2 * u}},
      // ulp(3 * 2^1000) = 2^949: a tie with an even significand.
      {0x1p1000 * 3,
       0x1p948,
       {0x1p1000 * 3, 0x1p1000 * 3, 0x1p1000 * 3, 0x1p1000 * 3 + 0x1p949, 0x1p1000 * 3 + 0x1p949}},
  };
  for (const Case& c : dbl) {
    for (uint32_t rm = 0; rm < 5; ++rm) {
      SCOPED_TRACE(testing::Message() << "double " << c.a << " + " << c.b << " rm=" << rm);
      EXPECT_RESULT_F(run_op(kAdd, D, rm, Dv(c.a), Dv(c.b)), Dv(c.out[rm]), NX);
      EXPECT_RESULT_F(run_op(kAdd, D, DYN, Dv(c.a), Dv(c.b), rm), Dv(c.out[rm]), NX);
    }
  }
}

TEST(Fpu, MulDivFmaTiesInRmm) {
  // (1 + 2^-12)^2 = 1 + 2^-11 + 2^-24: halfway between 1 + 2^-11 (even) and 1 + 2^-11 + 2^-23.
  const float a = 1 + 0x1p-12f;
  const float lo = 1 + 0x1p-11f, hi = 1 + 0x1p-11f + 0x1p-23f;
  const float want_s[5] = {lo, lo, lo, hi, hi}, neg_s[5] = {-lo, -lo, -hi, -lo, -hi};
  for (uint32_t rm = 0; rm < 5; ++rm) {
    EXPECT_RESULT_F(run_op(kMul, S, rm, Sv(a), Sv(a)), Sv(want_s[rm]), NX);
    EXPECT_RESULT_F(run_op(kMul, S, rm, Sv(-a), Sv(a)), Sv(neg_s[rm]), NX);
    EXPECT_RESULT_F(run_fma(kFmadd, S, rm, Sv(a), Sv(a), Sv(0.0f)), Sv(want_s[rm]), NX);
  }
  // Double: (1 + 2^-26)(1 + 2^-27) = 1 + 2^-26 + 2^-27 + 2^-53: a tie between 1 + 2^-26 + 2^-27
  // (even) and that plus 2^-52.
  const double b = 1 + 0x1p-26, b2 = 1 + 0x1p-27;
  const double dlo = 1 + 0x1p-26 + 0x1p-27, dhi = dlo + 0x1p-52;
  const double want_d[5] = {dlo, dlo, dlo, dhi, dhi};
  for (uint32_t rm = 0; rm < 5; ++rm) {
    EXPECT_RESULT_F(run_op(kMul, D, rm, Dv(b), Dv(b2)), Dv(want_d[rm]), NX);
    EXPECT_RESULT_F(run_fma(kFmadd, D, rm, Dv(b), Dv(b2), Dv(0.0)), Dv(want_d[rm]), NX);
    EXPECT_RESULT_F(run_fma(kFnmadd, D, rm, Dv(b), Dv(b2), Dv(-0.0)),
                    Dv(-want_d[rm == RDN   ? RUP
                               : rm == RUP ? RDN
                                           : rm]),
                    NX);
  }
  // Division only ties in the subnormal range: 5 * 2^-149 / 2 = 2.5 * 2^-149.
  const float min_sub = std::bit_cast<float>(1u);
  const uint32_t q[5] = {2, 2, 2, 3, 3};
  for (uint32_t rm = 0; rm < 5; ++rm) {
    EXPECT_RESULT_F(run_op(kDiv, S, rm, Sv(5 * min_sub), Sv(2.0f)), Sb(q[rm]), UF | NX);
    EXPECT_RESULT_F(run_op(kMul, S, rm, Sv(5 * min_sub), Sv(0.5f)), Sb(q[rm]), UF | NX);
    EXPECT_RESULT_F(run_op(kDiv, D, rm, 5, Dv(2.0)), q[rm], UF | NX);
  }
}

// ---------------------------------------------------------------------------------------------
// Fused multiply-add

TEST(Fpu, FmaIsFused) {
  // (1 + 2^-23)(1 - 2^-23) = 1 - 2^-46: a separate multiply rounds to 1 and 1 - 1 = 0.
  const float a = 1 + 0x1p-23f, b = 1 - 0x1p-23f;
  EXPECT_RESULT_F(run_op(kMul, S, RNE, Sv(a), Sv(b)), Sv(1.0f), NX);
  EXPECT_RESULT_F(run_fma(kFmadd, S, RNE, Sv(a), Sv(b), Sv(-1.0f)), Sv(-0x1p-46f), 0);
  EXPECT_RESULT_F(run_fma(kFmsub, S, RNE, Sv(a), Sv(b), Sv(1.0f)), Sv(-0x1p-46f), 0);
  EXPECT_RESULT_F(run_fma(kFnmsub, S, RNE, Sv(a), Sv(b), Sv(1.0f)), Sv(0x1p-46f), 0);
  EXPECT_RESULT_F(run_fma(kFnmadd, S, RNE, Sv(a), Sv(b), Sv(-1.0f)), Sv(0x1p-46f), 0);
  const double c = 1 + 0x1p-52, d = 1 - 0x1p-52;
  EXPECT_RESULT_F(run_fma(kFmadd, D, RNE, Dv(c), Dv(d), Dv(-1.0)), Dv(-0x1p-104), 0);
  EXPECT_RESULT_F(run_fma(kFnmadd, D, RNE, Dv(c), Dv(d), Dv(-1.0)), Dv(0x1p-104), 0);
  // Exact zero results: -(+0 * +0) - (+0) = -0; +0 * 1 + -0 = +0 (RNE) or -0 (RDN).
  EXPECT_RESULT_F(run_fma(kFnmadd, D, RNE, Dv(0.0), Dv(0.0), Dv(0.0)), Dv(-0.0), 0);
  EXPECT_RESULT_F(run_fma(kFmadd, S, RNE, Sv(0.0f), Sv(1.0f), Sv(-0.0f)), Sv(0.0f), 0);
  EXPECT_RESULT_F(run_fma(kFmadd, S, RDN, Sv(0.0f), Sv(1.0f), Sv(-0.0f)), Sv(-0.0f), 0);
  EXPECT_RESULT_F(run_fma(kFmsub, D, RNE, Dv(2.0), Dv(3.0), Dv(6.0)), Dv(0.0), 0);
  EXPECT_RESULT_F(run_fma(kFmsub, D, RDN, Dv(2.0), Dv(3.0), Dv(6.0)), Dv(-0.0), 0);
  // inf * 0 is invalid even when the addend is a quiet NaN.
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_RESULT_F(run_fma(kFmadd, D, RNE, Dv(inf), Dv(0.0), kCanonD), kCanonD, NV);
  EXPECT_RESULT_F(run_fma(kFmadd, S, RNE, Sv(0.0f), Sv(-INFINITY), kCanonS), kCanonS, NV);
  EXPECT_RESULT_F(run_fma(kFmadd, D, RNE, Dv(1.0), Dv(2.0), kCanonD), kCanonD, 0);
  EXPECT_RESULT_F(run_fma(kFmadd, D, RNE, Dv(inf), Dv(1.0), Dv(-inf)), kCanonD, NV);
  EXPECT_RESULT_F(run_fma(kFmadd, D, RNE, Dv(1.0), Dv(2.0), kSNaND), kCanonD, NV);
}

// ---------------------------------------------------------------------------------------------
// Sign injection, min/max, compares, classify

TEST(Fpu, SignInjection) {
  EXPECT_RESULT_F(run_op(kSgnj, S, 0, Sv(1.5f), Sv(-2.0f)), Sv(-1.5f), 0);
  EXPECT_RESULT_F(run_op(kSgnj, S, 1, Sv(1.5f), Sv(-2.0f)), Sv(1.5f), 0);
  EXPECT_RESULT_F(run_op(kSgnj, S, 2, Sv(-1.5f), Sv(-2.0f)), Sv(1.5f), 0);
  EXPECT_RESULT_F(run_op(kSgnj, D, 0, Dv(-1.5), Dv(2.0)), Dv(1.5), 0);
  EXPECT_RESULT_F(run_op(kSgnj, D, 1, Dv(-1.5), Dv(2.0)), Dv(-1.5), 0);
  EXPECT_RESULT_F(run_op(kSgnj, D, 2, Dv(-1.5), Dv(2.0)), Dv(-1.5), 0);
  // NaNs are not canonicalized by sign injection and never signal.
  EXPECT_RESULT_F(run_op(kSgnj, D, 1, kSNaND, kSNaND), kSNaND | (1ull << 63), 0);
  EXPECT_RESULT_F(run_op(kSgnj, S, 0, Sb(kQNaNPayloadS), Sv(-1.0f)), Sb(kQNaNPayloadS | 0x80000000u), 0);
}

TEST(Fpu, MinMax) {
  for (uint32_t fmt : {S, D}) {
    auto v = [fmt](double d) { return fmt == S ? Sv(float(d)) : Dv(d); };
    const uint64_t canon = fmt == S ? kCanonS : kCanonD;
    const uint64_t qnan = fmt == S ? Sb(kQNaNPayloadS) : kQNaNPayloadD;
    const uint64_t snan = fmt == S ? Sb(kSNaNS) : kSNaND;
    EXPECT_RESULT_F(run_op(kMinMax, fmt, 0, v(1), v(-2)), v(-2), 0);
    EXPECT_RESULT_F(run_op(kMinMax, fmt, 1, v(1), v(-2)), v(1), 0);
    // -0 < +0 regardless of operand order.
    EXPECT_RESULT_F(run_op(kMinMax, fmt, 0, v(0.0), v(-0.0)), v(-0.0), 0);
    EXPECT_RESULT_F(run_op(kMinMax, fmt, 0, v(-0.0), v(0.0)), v(-0.0), 0);
    EXPECT_RESULT_F(run_op(kMinMax, fmt, 1, v(0.0), v(-0.0)), v(0.0), 0);
    EXPECT_RESULT_F(run_op(kMinMax, fmt, 1, v(-0.0), v(0.0)), v(0.0), 0);
    // One NaN: the other operand; signaling NaN sets NV.
    EXPECT_RESULT_F(run_op(kMinMax, fmt, 0, qnan, v(3)), v(3), 0);
    EXPECT_RESULT_F(run_op(kMinMax, fmt, 1, v(3), qnan), v(3), 0);
    EXPECT_RESULT_F(run_op(kMinMax, fmt, 0, snan, v(3)), v(3), NV);
    EXPECT_RESULT_F(run_op(kMinMax, fmt, 1, v(-0.0), snan), v(-0.0), NV);
    // Both NaN: canonical NaN.
    EXPECT_RESULT_F(run_op(kMinMax, fmt, 0, qnan, qnan), canon, 0);
    EXPECT_RESULT_F(run_op(kMinMax, fmt, 1, snan, qnan), canon, NV);
    EXPECT_RESULT_F(run_op(kMinMax, fmt, 1, v(-INFINITY), v(-1e30)), v(-1e30), 0);
  }
}

TEST(Fpu, Compares) {
  for (uint32_t fmt : {S, D}) {
    auto v = [fmt](double d) { return fmt == S ? Sv(float(d)) : Dv(d); };
    const uint64_t qnan = fmt == S ? kCanonS : kCanonD;
    const uint64_t snan = fmt == S ? Sb(kSNaNS) : kSNaND;
    constexpr uint32_t kFle = 0, kFlt = 1, kFeq = 2;
    EXPECT_RESULT_X(run_op(kCmp, fmt, kFeq, v(1), v(1)), 1, 0);
    EXPECT_RESULT_X(run_op(kCmp, fmt, kFeq, v(1), v(2)), 0, 0);
    EXPECT_RESULT_X(run_op(kCmp, fmt, kFlt, v(1), v(2)), 1, 0);
    EXPECT_RESULT_X(run_op(kCmp, fmt, kFlt, v(2), v(2)), 0, 0);
    EXPECT_RESULT_X(run_op(kCmp, fmt, kFle, v(2), v(2)), 1, 0);
    EXPECT_RESULT_X(run_op(kCmp, fmt, kFle, v(-3), v(-4)), 0, 0);
    EXPECT_RESULT_X(run_op(kCmp, fmt, kFlt, v(-INFINITY), v(-1e30)), 1, 0);
    // Zeros compare equal.
    EXPECT_RESULT_X(run_op(kCmp, fmt, kFeq, v(-0.0), v(0.0)), 1, 0);
    EXPECT_RESULT_X(run_op(kCmp, fmt, kFlt, v(-0.0), v(0.0)), 0, 0);
    EXPECT_RESULT_X(run_op(kCmp, fmt, kFle, v(0.0), v(-0.0)), 1, 0);
    // FEQ is quiet (signals only on sNaN); FLT/FLE signal on any NaN.
    EXPECT_RESULT_X(run_op(kCmp, fmt, kFeq, qnan, v(1)), 0, 0);
    EXPECT_RESULT_X(run_op(kCmp, fmt, kFeq, qnan, qnan), 0, 0);
    EXPECT_RESULT_X(run_op(kCmp, fmt, kFeq, v(1), snan), 0, NV);
    EXPECT_RESULT_X(run_op(kCmp, fmt, kFlt, qnan, v(1)), 0, NV);
    EXPECT_RESULT_X(run_op(kCmp, fmt, kFle, v(1), qnan), 0, NV);
    EXPECT_RESULT_X(run_op(kCmp, fmt, kFle, snan, v(1)), 0, NV);
  }
}

TEST(Fpu, ClassifyAllTenClasses) {
  const uint32_t s[10] = {0xff800000, 0xbf800000, 0x807fffff, 0x80000000, 0x00000000,
                          0x00000001, 0x7f7fffff, 0x7f800000, 0x7fbfffff, 0xffc00000};
  const uint64_t d[10] = {0xfff0000000000000, 0x8010000000000000, 0x800fffffffffffff, 0x8000000000000000,
                          0x0000000000000000, 0x0000000000000001, 0x3ff0000000000000, 0x7ff0000000000000,
                          0x7ff0000000000001, 0x7ff8000000000000};
  for (uint32_t i = 0; i < 10; ++i) {
    EXPECT_RESULT_X(run_rs2(kMvXClass, S, 1, 0, Sb(s[i])), 1u << i, 0);
    EXPECT_RESULT_X(run_rs2(kMvXClass, D, 1, 0, d[i]), 1u << i, 0);
  }
}

// ---------------------------------------------------------------------------------------------
// Conversions

TEST(Fpu, FcvtToIntSaturation) {
  const double inf = std::numeric_limits<double>::infinity();
  struct Case {
    double in;
    uint64_t out[4];  // W WU L LU (W/WU sign-extended)
    uint32_t flags[4];
  };
  const uint64_t wmax = 0x7fffffff, wmin = 0xffffffff80000000u, wumax = ~0ull;
  const uint64_t lmax = 0x7fffffffffffffffu, lmin = 0x8000000000000000u, lumax = ~0ull;
  const Case cases[] = {
      {NAN, {wmax, wumax, lmax, lumax}, {NV, NV, NV, NV}},
      {inf, {wmax, wumax, lmax, lumax}, {NV, NV, NV, NV}},
      {-inf, {wmin, 0, lmin, 0}, {NV, NV, NV, NV}},
      {1e20, {wmax, wumax, lmax, lumax}, {NV, NV, NV, NV}},
      {-1e20, {wmin, 0, lmin, 0}, {NV, NV, NV, NV}},
      {-1.0, {~0ull, 0, ~0ull, 0}, {0, NV, 0, NV}},
      {-0.25, {0, 0, 0, 0}, {NX, NX, NX, NX}},  // rounds (RNE) to -0 = 0: in range, inexact
      {3e9, {wmax, 0xffffffffb2d05e00u, 3000000000u, 3000000000u}, {NV, 0, 0, 0}},
      {0x1p31, {wmax, 0xffffffff80000000u, 0x80000000u, 0x80000000u}, {NV, 0, 0, 0}},
      {-0x1p31, {wmin, 0, 0xffffffff80000000u, 0}, {0, NV, 0, NV}},
      {0x1p32, {wmax, wumax, 0x100000000u, 0x100000000u}, {NV, NV, 0, 0}},
      {0x1p63, {wmax, wumax, lmax, 0x8000000000000000u}, {NV, NV, NV, 0}},
      {0x1p64, {wmax, wumax, lmax, lumax}, {NV, NV, NV, NV}},
      {-0x1p63, {wmin, 0, lmin, 0}, {NV, NV, 0, NV}},
      {2147483647.5, {wmax, 0xffffffff80000000u, 2147483648u, 2147483648u}, {NV, NX, NX, NX}},
      {-2147483648.5, {wmin, 0, 0xffffffff80000000u, 0}, {NX, NV, NX, NV}},
      {4294967295.5, {wmax, wumax, 4294967296u, 4294967296u}, {NV, NV, NX, NX}},
  };
  for (const Case& c : cases) {
    for (uint32_t kind = 0; kind < 4; ++kind) {
      SCOPED_TRACE(testing::Message() << c.in << " kind=" << kind);
      const uint64_t in = std::isnan(c.in) ? kCanonD : Dv(c.in);
      EXPECT_RESULT_X(cvt_to_int(D, kind, RNE, in), c.out[kind], c.flags[kind]);
    }
  }
  // Single precision, including sNaN and NaN-boxing violations (read as canonical NaN).
  EXPECT_RESULT_X(cvt_to_int(S, 0, RNE, Sb(0xff800001)), 0x7fffffff, NV);
  EXPECT_RESULT_X(cvt_to_int(S, 3, RNE, 0x00000000bf800000u), ~0ull, NV);
  EXPECT_RESULT_X(cvt_to_int(S, 1, RNE, Sv(-1.0f)), 0, NV);
  EXPECT_RESULT_X(cvt_to_int(S, 1, RTZ, Sv(-0.75f)), 0, NX);  // -0.75 -> -0 is representable
  EXPECT_RESULT_X(cvt_to_int(S, 1, RDN, Sv(-0.75f)), 0, NV);  // -> -1 is not
  EXPECT_RESULT_X(cvt_to_int(S, 1, RUP, Sv(4294967040.0f)), 0xffffffffffffff00u, 0);
  EXPECT_RESULT_X(cvt_to_int(S, 2, RNE, Sv(-0x1p63f)), 0x8000000000000000u, 0);
  EXPECT_RESULT_X(cvt_to_int(S, 0, RNE, Sv(-0x1p31f)), 0xffffffff80000000u, 0);
}

TEST(Fpu, FcvtFromInt) {
  // 2^24 + 1 is a tie in single precision.
  const float lo = 16777216.0f, hi = 16777218.0f;
  const float pos[5] = {lo, lo, lo, hi, hi}, neg[5] = {-lo, -lo, -hi, -lo, -hi};
  for (uint32_t rm = 0; rm < 5; ++rm) {
    EXPECT_RESULT_F(cvt_from_int(S, 0, rm, 16777217), Sv(pos[rm]), NX);
    EXPECT_RESULT_F(cvt_from_int(S, 0, rm, uint64_t(-16777217)), Sv(neg[rm]), NX);
    EXPECT_RESULT_F(cvt_from_int(S, 2, rm, uint64_t(-16777217)), Sv(neg[rm]), NX);
    EXPECT_RESULT_F(cvt_from_int(S, 1, rm, 16777217 | 0xabcdef0000000000u), Sv(pos[rm]), NX);
    // 2^53 + 1 in double.
    const double dlo = 0x1p53, dhi = 0x1p53 + 2;
    const double dpos[5] = {dlo, dlo, dlo, dhi, dhi};
    EXPECT_RESULT_F(cvt_from_int(D, 2, rm, (1ull << 53) + 1), Dv(dpos[rm]), NX);
    EXPECT_RESULT_F(cvt_from_int(D, 3, rm, (1ull << 53) + 1), Dv(dpos[rm]), NX);
  }
  // W takes the low 32 bits as signed; WU as unsigned; results exact in double.
  EXPECT_RESULT_F(cvt_from_int(D, 0, RNE, 0x00000000ffffffffu), Dv(-1.0), 0);
  EXPECT_RESULT_F(cvt_from_int(D, 1, RNE, 0xffffffffffffffffu), Dv(4294967295.0), 0);
  EXPECT_RESULT_F(cvt_from_int(D, 2, RNE, 0x8000000000000000u), Dv(-0x1p63), 0);
  EXPECT_RESULT_F(cvt_from_int(D, 3, RNE, 0xffffffffffffffffu), Dv(0x1p64), NX);
  EXPECT_RESULT_F(cvt_from_int(D, 3, RTZ, 0xffffffffffffffffu), Dv(0x1p64 - 0x1p11), NX);
  EXPECT_RESULT_F(cvt_from_int(S, 3, RNE, 0xffffffffffffffffu), Sv(0x1p64f), NX);
  EXPECT_RESULT_F(cvt_from_int(S, 3, RTZ, 0xffffffffffffffffu), Sb(0x5f7fffff), NX);
  EXPECT_RESULT_F(cvt_from_int(S, 0, RNE, 0), Sv(0.0f), 0);
}

TEST(Fpu, FcvtBetweenFormats) {
  constexpr uint32_t kFromD = 1, kFromS = 0;
  // 1 + 2^-24 is a tie in single precision.
  const float lo = 1.0f, hi = 1 + 0x1p-23f;
  const float want[5] = {lo, lo, lo, hi, hi};
  for (uint32_t rm = 0; rm < 5; ++rm)
    EXPECT_RESULT_F(run_rs2(kCvtFF, S, rm, kFromD, Dv(1 + 0x1p-24)), Sv(want[rm]), NX);
  // Overflow and underflow.
  EXPECT_RESULT_F(run_rs2(kCvtFF, S, RNE, kFromD, Dv(1e300)), Sv(INFINITY), OF | NX);
  EXPECT_RESULT_F(run_rs2(kCvtFF, S, RTZ, kFromD, Dv(1e300)), Sb(0x7f7fffff), OF | NX);
  EXPECT_RESULT_F(run_rs2(kCvtFF, S, RUP, kFromD, Dv(-1e300)), Sb(0xff7fffff), OF | NX);
  EXPECT_RESULT_F(run_rs2(kCvtFF, S, RNE, kFromD, Dv(1e-50)), Sv(0.0f), UF | NX);
  EXPECT_RESULT_F(run_rs2(kCvtFF, S, RUP, kFromD, Dv(1e-50)), Sb(1), UF | NX);
  EXPECT_RESULT_F(run_rs2(kCvtFF, S, RNE, kFromD, Dv(0x1p-149)), Sb(1), 0);  // exact subnormal
  EXPECT_RESULT_F(run_rs2(kCvtFF, S, RNE, kFromD, kSNaND), kCanonS, NV);
  EXPECT_RESULT_F(run_rs2(kCvtFF, S, RNE, kFromD, kQNaNPayloadD), kCanonS, 0);
  EXPECT_RESULT_F(run_rs2(kCvtFF, S, RNE, kFromD, Dv(-INFINITY)), Sv(-INFINITY), 0);
  // Widening is exact; NaNs canonical.
  EXPECT_RESULT_F(run_rs2(kCvtFF, D, RNE, kFromS, Sb(1)), Dv(0x1p-149), 0);
  EXPECT_RESULT_F(run_rs2(kCvtFF, D, RNE, kFromS, Sv(-1.5f)), Dv(-1.5), 0);
  EXPECT_RESULT_F(run_rs2(kCvtFF, D, RNE, kFromS, Sb(kSNaNS)), kCanonD, NV);
  EXPECT_RESULT_F(run_rs2(kCvtFF, D, RNE, kFromS, Sb(kQNaNPayloadS)), kCanonD, 0);
  EXPECT_RESULT_F(run_rs2(kCvtFF, D, RNE, kFromS, 0x000000003f800000u), kCanonD, 0);  // not boxed
}

// ---------------------------------------------------------------------------------------------
// NaN boxing and moves

TEST(Fpu, NanBoxing) {
  const uint64_t unboxed_one = 0x000000003f800000u;  // upper bits not all ones
  EXPECT_RESULT_F(run_op(kAdd, S, RNE, unboxed_one, Sv(1.0f)), kCanonS, 0);
  EXPECT_RESULT_F(run_op(kAdd, S, RNE, 0xfffffffe3f800000u, Sv(1.0f)), kCanonS, 0);
  EXPECT_RESULT_F(run_op(kMinMax, S, 0, unboxed_one, Sv(2.0f)), Sv(2.0f), 0);  // reads as a qNaN
  EXPECT_RESULT_F(run_op(kSgnj, S, 1, unboxed_one, Sv(1.0f)), Sb(0xffc00000), 0);
  EXPECT_RESULT_F(run_op(kSgnj, S, 0, Sv(1.0f), unboxed_one), Sv(1.0f), 0);
  EXPECT_RESULT_X(run_rs2(kMvXClass, S, 1, 0, unboxed_one), 1u << 9, 0);
  EXPECT_RESULT_X(run_op(kCmp, S, 2, unboxed_one, unboxed_one), 0, 0);
  // A double's bit pattern seen as a single.
  EXPECT_RESULT_F(run_op(kMul, S, RNE, Dv(1.0), Sv(1.0f)), kCanonS, 0);
  // FMV.X.W moves the raw low 32 bits, sign-extended, without checking the box.
  EXPECT_RESULT_X(run_rs2(kMvXClass, S, 0, 0, unboxed_one), 0x3f800000u, 0);
  EXPECT_RESULT_X(run_rs2(kMvXClass, S, 0, 0, 0x12345678bf800000u), 0xffffffffbf800000u, 0);
  EXPECT_RESULT_X(run_rs2(kMvXClass, D, 0, 0, 0x12345678bf800000u), 0x12345678bf800000u, 0);
  // FMV.W.X boxes the low 32 bits; FMV.D.X moves all 64.
  EXPECT_RESULT_F(run_rs2(kMvFromX, S, 0, 0, 0x12345678bf800000u), 0xffffffffbf800000u, 0);
  EXPECT_RESULT_F(run_rs2(kMvFromX, D, 0, 0, 0x12345678bf800000u), 0x12345678bf800000u, 0);
  // Single-precision results are always boxed (also sNaN payloads moved by sign injection).
  EXPECT_RESULT_F(run_op(kSgnj, S, 0, Sb(kSNaNS), Sb(kSNaNS)), Sb(kSNaNS), 0);
}

// ---------------------------------------------------------------------------------------------
// Subnormals, underflow, overflow

TEST(Fpu, SubnormalsUnderflowAndTininessAfterRounding) {
  const float min_norm = 0x1p-126f;
  // Exact subnormal results: no flags.
  EXPECT_RESULT_F(run_op(kMul, S, RNE, Sv(min_norm), Sv(0.5f)), Sb(0x00400000), 0);
  EXPECT_RESULT_F(run_op(kSub, S, RNE, Sv(min_norm), Sb(0x00000001)), Sb(0x007fffff), 0);
  // Inexact subnormal results: UF and NX.
  EXPECT_RESULT_F(run_op(kMul, S, RNE, Sb(0x00800001), Sv(0.5f)), Sb(0x00400000), UF | NX);
  EXPECT_RESULT_F(run_op(kMul, S, RUP, Sb(0x00800001), Sv(0.5f)), Sb(0x00400001), UF | NX);
  EXPECT_RESULT_F(run_op(kDiv, D, RNE, Dv(0x1p-1074), Dv(4.0)), Dv(0.0), UF | NX);
  EXPECT_RESULT_F(run_op(kDiv, D, RUP, Dv(0x1p-1074), Dv(4.0)), Dv(0x1p-1074), UF | NX);
  EXPECT_RESULT_F(run_op(kDiv, D, RDN, Dv(-0x1p-1074), Dv(4.0)), Dv(-0x1p-1074), UF | NX);
  // Tininess is detected after rounding. 18631 * 1801 = 2^25 - 1, so
  // a * b = 2^-126 - 2^-151 exactly: rounded to 24 bits with unbounded exponent that is a tie
  // (2^-126 - 2^-151 lies halfway between 2^-126 - 2^-150 and 2^-126).
  const float a = 18631 * 0x1p-75f, b = 1801 * 0x1p-76f;
  struct Case {
    uint32_t rm;
    uint32_t result;
    uint32_t flags;
  };
  const Case cases[] = {
      {RNE, 0x00800000, NX},       // rounds to 2^-126 with unbounded exponent: not tiny
      {RMM, 0x00800000, NX},       // same
      {RUP, 0x00800000, NX},       // same
      {RTZ, 0x007fffff, UF | NX},  // 2^-126 - 2^-150: tiny
      {RDN, 0x007fffff, UF | NX},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(testing::Message() << "rm=" << c.rm);
    EXPECT_RESULT_F(run_op(kMul, S, c.rm, Sv(a), Sv(b)), Sb(c.result), c.flags);
    EXPECT_RESULT_F(run_fma(kFmadd, S, c.rm, Sv(a), Sv(b), Sv(-0.0f)), Sb(c.result), c.flags);
  }
  // 2^-126 - 2^-150 exactly (representable with unbounded exponent, so tiny) rounds to the
  // normal 2^-126 in RNE yet still signals underflow.
  EXPECT_RESULT_F(run_op(kMul, S, RNE, Sv(1 - 0x1p-24f), Sv(min_norm)), Sb(0x00800000), UF | NX);
}

TEST(Fpu, Overflow) {
  const double max = std::numeric_limits<double>::max(), inf = std::numeric_limits<double>::infinity();
  const double pos[5] = {inf, max, max, inf, inf}, neg[5] = {-inf, -max, -inf, -max, -inf};
  for (uint32_t rm = 0; rm < 5; ++rm) {
    EXPECT_RESULT_F(run_op(kMul, D, rm, Dv(max), Dv(2.0)), Dv(pos[rm]), OF | NX);
    EXPECT_RESULT_F(run_op(kMul, D, rm, Dv(max), Dv(-2.0)), Dv(neg[rm]), OF | NX);
    const uint32_t pos_s[5] = {0x7f800000, 0x7f7fffff, 0x7f7fffff, 0x7f800000, 0x7f800000};
    EXPECT_RESULT_F(run_op(kAdd, S, rm, Sb(0x7f7fffff), Sb(0x7f7fffff)), Sb(pos_s[rm]), OF | NX);
  }
  // max + half an ulp: a tie that RNE and RMM both take to infinity.
  EXPECT_RESULT_F(run_op(kAdd, D, RNE, Dv(max), Dv(0x1p970)), Dv(inf), OF | NX);
  EXPECT_RESULT_F(run_op(kAdd, D, RMM, Dv(max), Dv(0x1p970)), Dv(inf), OF | NX);
  EXPECT_RESULT_F(run_op(kAdd, D, RNE, Dv(max), Dv(0x1p969)), Dv(max), NX);
}

// ---------------------------------------------------------------------------------------------
// Decoding: illegal encodings, dynamic rounding, register conventions

TEST(Fpu, IllegalEncodingsChangeNothing) {
  std::vector<std::pair<uint32_t, uint32_t>> bad;  // (insn, fcsr)
  const uint32_t frm_ok = 0x5f;                    // frm RMM, flags set
  for (uint32_t fmt : {S, D}) {
    for (uint32_t rm : {5u, 6u}) {
      for (uint32_t f5 : {kAdd, kSub, kMul, kDiv}) bad.push_back({op_fp(f5, fmt, 1, 2, 3, rm), frm_ok});
      bad.push_back({op_fp(kSqrt, fmt, 1, 2, 0, rm), frm_ok});
      bad.push_back({op_fp(kCvtToInt, fmt, 1, 2, 0, rm), frm_ok});
      bad.push_back({op_fp(kCvtFromInt, fmt, 1, 2, 0, rm), frm_ok});
      bad.push_back({op_fp(kCvtFF, fmt, 1, 2, fmt == S ? 1 : 0, rm), frm_ok});  // even the exact widening
      bad.push_back({op_fp(kCvtFromInt, D, 1, 2, 0, rm), frm_ok});              // exact fcvt.d.w
      for (uint32_t opc : {kFmadd, kFmsub, kFnmsub, kFnmadd})
        bad.push_back({fma4(opc, fmt, 1, 2, 3, 4, rm), frm_ok});
    }
    for (uint32_t frm : {5u, 6u, 7u}) {  // dynamic rounding with a reserved frm
      const uint32_t fcsr = frm << 5 | 3;
      bad.push_back({op_fp(kAdd, fmt, 1, 2, 3, DYN), fcsr});
      bad.push_back({op_fp(kSqrt, fmt, 1, 2, 0, DYN), fcsr});
      bad.push_back({op_fp(kCvtToInt, fmt, 1, 2, 3, DYN), fcsr});
      bad.push_back({op_fp(kCvtFF, fmt, 1, 2, fmt == S ? 1 : 0, DYN), fcsr});
      bad.push_back({fma4(kFnmadd, fmt, 1, 2, 3, 4, DYN), fcsr});
    }
    bad.push_back({op_fp(kSqrt, fmt, 1, 2, 1, RNE), 0});        // rs2 must be 0
    bad.push_back({op_fp(kSgnj, fmt, 1, 2, 3, 3), 0});          // funct3 3
    bad.push_back({op_fp(kMinMax, fmt, 1, 2, 3, 2), 0});        // funct3 2
    bad.push_back({op_fp(kCmp, fmt, 1, 2, 3, 3), 0});           // funct3 3
    bad.push_back({op_fp(kCvtToInt, fmt, 1, 2, 4, RNE), 0});    // rs2 4
    bad.push_back({op_fp(kCvtFromInt, fmt, 1, 2, 5, RNE), 0});  // rs2 5
    bad.push_back({op_fp(kMvXClass, fmt, 1, 2, 1, 0), 0});      // rs2 must be 0
    bad.push_back({op_fp(kMvXClass, fmt, 1, 2, 0, 2), 0});      // funct3 2
    bad.push_back({op_fp(kMvFromX, fmt, 1, 2, 0, 1), 0});       // funct3 1
    bad.push_back({op_fp(kMvFromX, fmt, 1, 2, 1, 0), 0});       // rs2 1
    bad.push_back({op_fp(0x06, fmt, 1, 2, 3, 0), 0});           // unused funct5
    bad.push_back({op_fp(0x1f, fmt, 1, 2, 3, 0), 0});
  }
  bad.push_back({op_fp(kCvtFF, S, 1, 2, 0, RNE), 0});  // fcvt.s.s
  bad.push_back({op_fp(kCvtFF, D, 1, 2, 1, RNE), 0});  // fcvt.d.d
  bad.push_back({op_fp(kCvtFF, S, 1, 2, 2, RNE), 0});  // fcvt.s.h
  bad.push_back({op_fp(kCvtFF, S, 1, 2, 3, RNE), 0});  // fcvt.s.q
  for (uint32_t fmt : {2u, 3u}) {                      // H and Q formats
    bad.push_back({op_fp(kAdd, fmt, 1, 2, 3, RNE), 0});
    bad.push_back({op_fp(kMvFromX, fmt, 1, 2, 0, 0), 0});
    bad.push_back({fma4(kFmadd, fmt, 1, 2, 3, 4, RNE), 0});
  }
  bad.push_back({0x00012087, 0});  // FLW (not handled here)
  bad.push_back({0x00000013, 0});  // addi

  for (auto [insn, fcsr] : bad) {
    SCOPED_TRACE(testing::Message() << std::hex << "insn 0x" << insn << " fcsr 0x" << fcsr);
    Machine m;
    for (int i = 0; i < 32; ++i) m.fp.f[i] = 0x4000000000000000u + i;
    m.fp.f[2] = Sv(1.0f);
    m.fp.f[3] = Sv(1e-30f);
    for (int i = 1; i < 33; ++i) m.x[i] = 1000 + i;
    m.fp.fcsr = fcsr;
    const Machine before = m;
    EXPECT_FALSE(execute_fp(insn, m.x, m.fp));
    EXPECT_TRUE(same_state(before.fp, before.x, m.fp, m.x));
  }
}

TEST(Fpu, InstructionsWithoutRoundingModeIgnoreFrm) {
  // frm = 7 (reserved) only matters for instructions that use dynamic rounding.
  Machine m;
  m.fp.fcsr = 7u << 5;
  m.fp.f[2] = Dv(1.0);
  m.fp.f[3] = Dv(-2.0);
  EXPECT_TRUE(execute_fp(op_fp(kSgnj, D, 1, 2, 3, 0), m.x, m.fp));
  EXPECT_EQ(m.fp.f[1], Dv(-1.0));
  EXPECT_TRUE(execute_fp(op_fp(kMinMax, D, 1, 2, 3, 1), m.x, m.fp));
  EXPECT_TRUE(execute_fp(op_fp(kCmp, D, 1, 2, 3, 1), m.x, m.fp));
  EXPECT_EQ(m.x[1], 0u);
  EXPECT_TRUE(execute_fp(op_fp(kMvXClass, D, 1, 2, 0, 1), m.x, m.fp));
  EXPECT_EQ(m.x[1], 1u << 6);
  EXPECT_TRUE(execute_fp(op_fp(kMvFromX, S, 4, 1, 0, 0), m.x, m.fp));
  EXPECT_EQ(m.fp.f[4], 0xffffffff00000040u);
  // A static rounding mode also works with a reserved frm.
  EXPECT_TRUE(execute_fp(op_fp(kAdd, D, 5, 2, 3, RTZ), m.x, m.fp));
  EXPECT_EQ(m.fp.f[5], Dv(-1.0));
  EXPECT_FALSE(execute_fp(op_fp(kAdd, D, 5, 2, 3, DYN), m.x, m.fp));
}

TEST(Fpu, FlagsAccrueAndRegisterConventions) {
  Machine m;
  m.fp.fcsr = (RUP << 5) | DZ;
  m.fp.f[7] = Dv(1.0);
  m.fp.f[8] = Dv(3.0);
  // Dynamic RUP: 1/3 rounds up; NX accrues next to the existing DZ; frm is untouched.
  ASSERT_TRUE(execute_fp(op_fp(kDiv, D, 9, 7, 8, DYN), m.x, m.fp));
  EXPECT_EQ(m.fp.f[9], 0x3fd5555555555556u);
  EXPECT_EQ(m.fp.fcsr, (RUP << 5) | DZ | NX);
  // rd = x0: the write goes to the sink x[32]; x[0] stays zero.
  ASSERT_TRUE(execute_fp(op_fp(kCmp, D, 0, 7, 7, 2), m.x, m.fp));
  EXPECT_EQ(m.x[0], 0u);
  EXPECT_EQ(m.x[32], 1u);
  ASSERT_TRUE(execute_fp(op_fp(kCvtToInt, D, 0, 8, 0, RTZ), m.x, m.fp));
  EXPECT_EQ(m.x[0], 0u);
  EXPECT_EQ(m.x[32], 3u);
  // rs1 = x0 reads zero (the caller keeps x[0] == 0).
  ASSERT_TRUE(execute_fp(op_fp(kCvtFromInt, S, 31, 0, 0, RNE), m.x, m.fp));
  EXPECT_EQ(m.fp.f[31], Sv(0.0f));
  // rd may equal a source; f0 is an ordinary register.
  m.fp.f[0] = Dv(2.0);
  ASSERT_TRUE(execute_fp(fma4(kFmadd, D, 0, 0, 0, 0, RNE), m.x, m.fp));
  EXPECT_EQ(m.fp.f[0], Dv(6.0));
  // Flags already set stay set when an operation raises nothing.
  m.fp.fcsr = 0x1f;
  ASSERT_TRUE(execute_fp(op_fp(kAdd, D, 1, 0, 0, RNE), m.x, m.fp));
  EXPECT_EQ(m.fp.fcsr, 0x1fu);
}

TEST(Fpu, HostRoundingModeIsRestored) {
  Machine m;
  m.fp.f[2] = Dv(1.0);
  m.fp.f[3] = Dv(3.0);
  for (uint32_t rm : {RTZ, RDN, RUP, RMM}) ASSERT_TRUE(execute_fp(op_fp(kDiv, D, 1, 2, 3, rm), m.x, m.fp));
  volatile double one = 1.0, three = 3.0;
  EXPECT_EQ(Dv(one / three), 0x3fd5555555555555u);  // host still rounds to nearest
  EXPECT_EQ(std::fegetround(), FE_TONEAREST);
}

// ---------------------------------------------------------------------------------------------
// Differential test against qemu-riscv64

struct OracleIn {
  uint32_t insn;
  uint32_t fcsr;
  uint64_t f11, f12, f13, f10, x11, x10;
};
struct OracleOut {
  uint64_t f10, x10;
  uint32_t fcsr;
  uint32_t status;  // 0 executed, 1 illegal instruction
};
static_assert(sizeof(OracleIn) == 56 && sizeof(OracleOut) == 24);

struct FmtInfo {
  int p;      // precision
  int ebits;  // exponent field width
  uint64_t frac_mask() const { return (uint64_t(1) << (p - 1)) - 1; }
  uint64_t exp_max() const { return (uint64_t(1) << ebits) - 1; }
  int bias() const { return int(exp_max() >> 1); }
  uint64_t make(bool neg, uint64_t e, uint64_t frac) const {
    return (uint64_t(neg) << (p - 1 + ebits)) | (e << (p - 1)) | (frac & frac_mask());
  }
  uint64_t exp_of(uint64_t b) const { return (b >> (p - 1)) & exp_max(); }
};
constexpr FmtInfo kFmt[2] = {{24, 8}, {53, 11}};

class Generator {
 public:
  explicit Generator(uint64_t seed) : rng_(seed) {}

  uint64_t bits() { return rng_(); }
  uint64_t below(uint64_t n) { return rng_() % n; }
  bool chance(unsigned one_in) { return below(one_in) == 0; }

  // A random significand fraction with a random number of trailing zeros.
  uint64_t frac(int fmt) {
    const FmtInfo& F = kFmt[fmt];
    uint64_t f = bits() & F.frac_mask();
    const int tz = int(below(F.p));
    if (chance(2)) f &= ~((uint64_t(1) << tz) - 1);
    return f;
  }

  // Raw bit pattern of a value (not boxed).
  uint64_t value(int fmt) {
    const FmtInfo& F = kFmt[fmt];
    const bool neg = chance(2);
    switch (below(17)) {
      case 0:
      case 1:
        return special(fmt);
      case 2:
      case 3:
        return bits() & (fmt == 0 ? 0xffffffffu : ~0ull);
      case 4:
        return F.make(neg, below(F.exp_max()), frac(fmt));  // any finite
      case 5:
      case 6:
      case 7:
        return F.make(neg, F.bias() - 40 + below(80), frac(fmt));  // moderate magnitude
      case 8:
        return F.make(neg, below(F.p + 4), frac(fmt));  // subnormal / tiny
      case 9:
        return F.make(neg, F.exp_max() - 1 - below(F.p + 4), frac(fmt));  // huge
      case 10: {  // few significant bits (exact products, ties)
        const int keep = int(below(F.p / 2 + 3));
        const uint64_t fr = frac(fmt) & ~((uint64_t(1) << (F.p - 1 - std::min(keep, F.p - 1))) - 1);
        return F.make(neg, F.bias() - 30 + below(60), fr);
      }
      case 11: {  // small multiples of 1/4
        const double v = double(int64_t(below(257)) - 128) / 4;
        return from_double(fmt, v);
      }
      case 12: {  // around the smallest normal
        const uint64_t fr = chance(2) ? F.frac_mask() - below(8) : below(8);
        return F.make(neg, below(2), chance(2) ? fr : frac(fmt));
      }
      default:
        return F.make(neg, F.bias() - 8 + below(16), frac(fmt));
    }
  }

  static double to_double(int fmt, uint64_t raw) {
    return fmt == 0 ? double(std::bit_cast<float>(uint32_t(raw))) : std::bit_cast<double>(raw);
  }

  // b such that a * b (or a / b) lands within a few ulps of the smallest normal.
  uint64_t factor_near_min_normal(int fmt, uint64_t a, bool divide) {
    const double min_normal = fmt == 0 ? 0x1p-126 : 0x1p-1022;
    const double va = to_double(fmt, a);
    if (!std::isfinite(va) || va == 0) return value(fmt);
    const double want = divide ? va / min_normal : min_normal / va;
    if (!std::isfinite(want) || want == 0) return value(fmt);
    uint64_t b = from_double(fmt, chance(2) ? -want : want);
    if (!std::isfinite(to_double(fmt, b)) || to_double(fmt, b) == 0) return value(fmt);
    return b + below(9) - 4;
  }

  uint64_t special(int fmt) {
    const FmtInfo& F = kFmt[fmt];
    const uint64_t quiet = uint64_t(1) << (F.p - 2), E = F.exp_max();
    const bool neg = chance(2);
    switch (below(14)) {
      case 0:
        return F.make(neg, 0, 0);
      case 1:
        return F.make(neg, E, 0);
      case 2:
        return F.make(neg, E, quiet);  // canonical qNaN
      case 3:
        return F.make(neg, E, quiet | (bits() & F.frac_mask()));  // qNaN payload
      case 4:
        return F.make(neg, E, 1 + (bits() & (quiet - 2)));  // sNaN
      case 5:
        return F.make(neg, 0, 1);  // min subnormal
      case 6:
        return F.make(neg, 0, F.frac_mask());  // max subnormal
      case 7:
        return F.make(neg, 1, 0);  // min normal
      case 8:
        return F.make(neg, E - 1, F.frac_mask());  // max finite
      case 9:
        return F.make(neg, uint64_t(F.bias()), 0);  // 1
      case 10:
        return F.make(neg, uint64_t(F.bias()) - 1, 0);  // 0.5
      case 11:
        return F.make(neg, uint64_t(F.bias()), F.frac_mask());  // 2 - ulp
      case 12:
        return F.make(neg, uint64_t(F.bias()) + 1, uint64_t(1) << (F.p - 3));  // 2.5
      default:
        return F.make(neg, uint64_t(F.bias()) + 1, quiet);  // 3
    }
  }

  static uint64_t from_double(int fmt, double v) {
    return fmt == 0 ? std::bit_cast<uint32_t>(float(v)) : std::bit_cast<uint64_t>(v);
  }

  // Register image of a raw value: singles are boxed, occasionally not.
  uint64_t reg(int fmt, uint64_t raw) {
    if (fmt == 1) return raw;
    if (chance(64)) {
      uint64_t upper = bits() >> 32;
      if (upper == 0xffffffffu) upper = 0;
      return upper << 32 | uint32_t(raw);
    }
    return 0xffffffff00000000u | uint32_t(raw);
  }

  // b positioned around the rounding position of a + b (ties and near ties).
  uint64_t addend_near_ulp(int fmt, uint64_t a) {
    const FmtInfo& F = kFmt[fmt];
    const int64_t ea = int64_t(F.exp_of(a));
    if (ea == 0 || ea == int64_t(F.exp_max())) return value(fmt);
    const int64_t eb = ea - (F.p - 1) - int64_t(below(4)) + 1;
    uint64_t fr = frac(fmt);
    if (chance(2)) fr = 0;
    if (eb <= 0) return F.make(chance(2), 0, fr);
    return F.make(chance(2), uint64_t(eb), fr);
  }

  // Value near a * b (for fused cancellation) or around its rounding position.
  uint64_t addend_for_fma(int fmt, uint64_t a, uint64_t b) {
    const FmtInfo& F = kFmt[fmt];
    const bool dbl = fmt == 1;
    const double pa = dbl ? std::bit_cast<double>(a) : double(std::bit_cast<float>(uint32_t(a)));
    const double pb = dbl ? std::bit_cast<double>(b) : double(std::bit_cast<float>(uint32_t(b)));
    const double prod = pa * pb;
    if (!std::isfinite(prod) || prod == 0) return value(fmt);
    uint64_t c = from_double(fmt, -prod);
    if (!std::isfinite(dbl ? std::bit_cast<double>(c) : std::bit_cast<float>(uint32_t(c)))) return value(fmt);
    switch (below(3)) {
      case 0:
        return c + below(5) - 2;  // cancellation, a few ulps off
      case 1:
        return addend_near_ulp(fmt, c);
      default:
        return c ^ (uint64_t(1) << (F.p + F.ebits - 1));  // same sign as the product
    }
  }

  // Values near integers and near the integer formats' limits.
  uint64_t near_integer(int fmt) {
    static const double kBases[] = {0,      1,      2,      3,      100,    0x1p23, 0x1p24,
                                    0x1p31, 0x1p32, 0x1p52, 0x1p53, 0x1p63, 0x1p64};
    double base = kBases[below(std::size(kBases))];
    if (chance(4)) base = double(bits() >> below(64));
    static const double kFrac[] = {0, 0.25, 0.5, 0.75, -0.25, -0.5, -0.75, 1, -1, 1.5, -1.5};
    double v = base + kFrac[below(std::size(kFrac))];
    if (chance(2)) v = -v;
    uint64_t r = from_double(fmt, v);
    if (chance(4)) r += below(5) - 2;  // neighbours in ulps
    return r;
  }

  // Integer operands for FCVT.fmt.{W,WU,L,LU}.
  uint64_t integer() {
    switch (below(8)) {
      case 0: {
        static const uint64_t kSpecial[] = {0,
                                            1,
                                            ~0ull,
                                            0x7fffffff,
                                            0x80000000,
                                            0xffffffff,
                                            0xffffffff80000000u,
                                            0x7fffffffffffffffu,
                                            0x8000000000000000u,
                                            (1u << 24) + 1,
                                            (1ull << 53) + 1,
                                            0xfffffffffffffc00u};
        return kSpecial[below(std::size(kSpecial))];
      }
      case 1:
        return bits();
      case 2:
      case 3: {  // p + 1 significant bits ending in 1 (ties), then shifted; maybe +-1
        const int p = chance(2) ? 24 : 53;
        const int w = p + 1 + int(below(64 - p - 1));
        uint64_t m = (bits() | 1 | (uint64_t(1) << p)) & ((uint64_t(1) << (p + 1)) - 1);
        uint64_t v = m << (w - p - 1);
        if (chance(3)) v += below(3) - 1;
        if (chance(2)) v = 0 - v;
        return v;
      }
      case 4: {  // ties within the low 32 bits, random upper half
        uint64_t m = (bits() | 1 | (1u << 24)) & ((1u << 25) - 1);
        return (bits() << 32) | uint32_t(m << below(8));
      }
      default:
        return bits() >> below(64);
    }
  }

 private:
  std::mt19937_64 rng_;
};

struct OpSpec {
  const char* name;
  uint32_t opcode;  // kOpFp or one of the FMA opcodes
  uint32_t funct5;  // OP-FP only
  int rs2;          // fixed rs2 field, or -1 for the register f12
  int funct3;       // fixed funct3, or -1 if it is a rounding mode
  int fmt;          // 0 S, 1 D
  enum Kind { kBinary, kUnary, kFma, kToInt, kFromInt, kFromX, kCvtFF } kind;
  int weight;
};

std::vector<OpSpec> all_ops() {
  std::vector<OpSpec> ops;
  for (int fmt = 0; fmt < 2; ++fmt) {
    const bool s = fmt == 0;
    ops.push_back({s ? "fadd.s" : "fadd.d", kOpFp, kAdd, -1, -1, fmt, OpSpec::kBinary, 3});
    ops.push_back({s ? "fsub.s" : "fsub.d", kOpFp, kSub, -1, -1, fmt, OpSpec::kBinary, 3});
    ops.push_back({s ? "fmul.s" : "fmul.d", kOpFp, kMul, -1, -1, fmt, OpSpec::kBinary, 3});
    ops.push_back({s ? "fdiv.s" : "fdiv.d", kOpFp, kDiv, -1, -1, fmt, OpSpec::kBinary, 3});
    ops.push_back({s ? "fsqrt.s" : "fsqrt.d", kOpFp, kSqrt, 0, -1, fmt, OpSpec::kUnary, 2});
    for (int f3 = 0; f3 < 3; ++f3) ops.push_back({"fsgnj*", kOpFp, kSgnj, -1, f3, fmt, OpSpec::kBinary, 1});
    ops.push_back({"fmin", kOpFp, kMinMax, -1, 0, fmt, OpSpec::kBinary, 2});
    ops.push_back({"fmax", kOpFp, kMinMax, -1, 1, fmt, OpSpec::kBinary, 2});
    ops.push_back({"fle", kOpFp, kCmp, -1, 0, fmt, OpSpec::kBinary, 2});
    ops.push_back({"flt", kOpFp, kCmp, -1, 1, fmt, OpSpec::kBinary, 2});
    ops.push_back({"feq", kOpFp, kCmp, -1, 2, fmt, OpSpec::kBinary, 2});
    ops.push_back({"fclass", kOpFp, kMvXClass, 0, 1, fmt, OpSpec::kUnary, 2});
    ops.push_back({"fmv.x", kOpFp, kMvXClass, 0, 0, fmt, OpSpec::kUnary, 1});
    ops.push_back({"fmv.f.x", kOpFp, kMvFromX, 0, 0, fmt, OpSpec::kFromX, 1});
    for (int k = 0; k < 4; ++k)
      ops.push_back({"fcvt.int.f", kOpFp, kCvtToInt, k, -1, fmt, OpSpec::kToInt, 2});
    for (int k = 0; k < 4; ++k)
      ops.push_back({"fcvt.f.int", kOpFp, kCvtFromInt, k, -1, fmt, OpSpec::kFromInt, 2});
    ops.push_back({s ? "fcvt.s.d" : "fcvt.d.s", kOpFp, kCvtFF, s ? 1 : 0, -1, fmt, OpSpec::kCvtFF, 2});
    for (uint32_t opc : {kFmadd, kFmsub, kFnmsub, kFnmadd})
      ops.push_back({"fma", opc, 0, -1, -1, fmt, OpSpec::kFma, 3});
  }
  return ops;
}

struct Case {
  OracleIn in;
  const char* name;
  bool legality_only;  // fuzzed encodings that may read registers the oracle does not set
};

std::vector<Case> generate_cases(size_t per_weight) {
  Generator g(0x5eed'f00d'1234'5678u);
  std::vector<Case> cases;
  const auto ops = all_ops();
  for (const OpSpec& op : ops) {
    const int fmt = op.fmt;
    // Rounding settings: static rm 0-4 (any valid frm), dynamic with frm 0-4, plus reserved ones.
    struct Setting {
      uint32_t rm, frm;
    };
    std::vector<Setting> settings;
    if (op.funct3 >= 0) {
      settings.push_back({uint32_t(op.funct3), 0});
    } else {
      for (uint32_t rm = 0; rm < 5; ++rm) settings.push_back({rm, 0xff});
      for (uint32_t frm = 0; frm < 5; ++frm) settings.push_back({DYN, frm});
    }
    const size_t n = per_weight * op.weight * (op.funct3 >= 0 ? 5 : 1);
    for (const Setting& st : settings) {
      for (size_t i = 0; i < n; ++i) {
        OracleIn in{};
        const uint32_t rm = st.rm;
        const uint32_t frm = st.frm == 0xff ? uint32_t(g.below(8)) : st.frm;
        const uint32_t flags = g.chance(2) ? uint32_t(g.below(32)) : 0;
        in.fcsr = frm << 5 | flags;
        const uint32_t rs2 = op.rs2 >= 0 ? uint32_t(op.rs2) : 12;
        in.insn = op.opcode == kOpFp ? op_fp(op.funct5, fmt, 10, 11, rs2, rm)
                                     : fma4(op.opcode, fmt, 10, 11, 12, 13, rm);
        in.f10 = g.bits();
        in.x10 = g.bits();
        in.x11 = g.bits();
        uint64_t a = g.value(fmt), b = g.value(fmt), c = g.value(fmt);
        if (g.chance(8)) {  // special-value combinations (inf * 0 + NaN, ...)
          a = g.special(fmt);
          b = g.special(fmt);
          c = g.special(fmt);
        }
        switch (op.kind) {
          case OpSpec::kBinary:
            if ((op.funct5 == kMul || op.funct5 == kDiv) && g.chance(4))
              b = g.factor_near_min_normal(fmt, a, op.funct5 == kDiv);
            if (op.funct5 <= kSub && g.chance(3)) b = g.addend_near_ulp(fmt, a);
            if (op.funct5 == kSub && g.chance(8)) b = a + g.below(5) - 2;
            if (op.funct5 >= kSgnj && g.chance(6)) b = a ^ (g.chance(2) ? uint64_t(1) << (fmt ? 63 : 31) : 0);
            break;
          case OpSpec::kFma:
            if (g.chance(5)) {
              b = g.factor_near_min_normal(fmt, a, false);
              if (g.chance(2)) c = kFmt[fmt].make(g.chance(2), 0, g.below(16));
            } else if (g.chance(2)) {
              c = g.addend_for_fma(fmt, a, b);
            }
            break;
          case OpSpec::kToInt:
            if (g.chance(2)) a = g.near_integer(fmt);
            break;
          case OpSpec::kFromInt:
          case OpSpec::kFromX:
            in.x11 = g.integer();
            break;
          case OpSpec::kCvtFF:
            if (fmt == 0) {  // fcvt.s.d: a double around the single range and precision
              a = g.value(1);
              if (g.chance(2)) {
                const FmtInfo& F = kFmt[1];
                const uint64_t e = uint64_t(F.bias() - 160 + int(g.below(300)));
                uint64_t fr = g.frac(1);
                if (g.chance(2)) fr = (fr & ~((uint64_t(1) << 29) - 1)) | (uint64_t(1) << 28);  // tie
                a = F.make(g.chance(2), e, fr);
              } else if (g.chance(3)) {  // just below the single-precision smallest normal
                const FmtInfo& F = kFmt[1];
                const uint64_t fr = F.frac_mask() & ~((uint64_t(1) << (g.below(30) + 1)) - 1);
                a = F.make(g.chance(2), uint64_t(F.bias() - 127 - int(g.below(2))),
                           fr | (g.bits() & 0xfffffff) >> g.below(29));
              }
            }
            break;
          default:
            break;
        }
        const int src_fmt = op.kind == OpSpec::kCvtFF ? 1 - fmt : fmt;
        in.f11 = g.reg(src_fmt, a);
        in.f12 = g.reg(fmt, b);
        in.f13 = g.reg(fmt, c);
        cases.push_back({in, op.name, false});
      }
    }
    // Reserved rounding modes.
    if (op.funct3 < 0) {
      for (int i = 0; i < 40; ++i) {
        OracleIn in{};
        const bool dyn = g.chance(2);
        const uint32_t rm = dyn ? DYN : 5 + uint32_t(g.below(2));
        in.fcsr = (dyn ? 5 + uint32_t(g.below(3)) : uint32_t(g.below(8))) << 5 | uint32_t(g.below(32));
        const uint32_t rs2 = op.rs2 >= 0 ? uint32_t(op.rs2) : 12;
        in.insn = op.opcode == kOpFp ? op_fp(op.funct5, fmt, 10, 11, rs2, rm)
                                     : fma4(op.opcode, fmt, 10, 11, 12, 13, rm);
        in.f11 = g.reg(fmt, g.value(fmt));
        in.f12 = g.reg(fmt, g.value(fmt));
        in.f13 = g.reg(fmt, g.value(fmt));
        in.f10 = g.bits();
        in.x10 = g.bits();
        in.x11 = g.bits();
        cases.push_back({in, "reserved-rm", false});
      }
    }
  }
  // Fuzzed encodings: any funct5 / rs2 / funct3 / fmt (except H, which qemu 7.2 enables as Zfh).
  for (int i = 0; i < 30000; ++i) {
    OracleIn in{};
    const uint32_t fmt = std::array<uint32_t, 3>{0, 1, 3}[g.below(3)];
    const uint32_t funct5 = uint32_t(g.below(32)), funct3 = uint32_t(g.below(8));
    const uint32_t rs2 = g.chance(2) ? uint32_t(g.below(32)) : uint32_t(g.below(4));
    // Skip encodings that newer extensions give a meaning (qemu may enable them by default):
    // Zfh fcvt.{s,d}.h, Zfbfmin fcvt.s.bf16, and Zfa (fli, fminm/fmaxm, fround[nx], fcvtmod.w.d,
    // fmvh.x.d, fmvp.d.x, fleq/fltq).
    if (funct5 == kCvtFF && (rs2 == 2 || rs2 == 4 || rs2 == 5 || rs2 == 6)) continue;
    if (funct5 == kMvFromX && rs2 == 1 && funct3 == 0) continue;
    if (funct5 == kMinMax && (funct3 == 2 || funct3 == 3)) continue;
    if (funct5 == kCvtToInt && rs2 == 8) continue;
    if (funct5 == kMvXClass && rs2 == 1 && funct3 == 0) continue;
    if (funct5 == 0x16) continue;
    if (funct5 == kCmp && (funct3 == 4 || funct3 == 5)) continue;
    const uint32_t opcodes[] = {kOpFp, kOpFp, kOpFp, kFmadd, kFmsub, kFnmsub, kFnmadd};
    const uint32_t opc = opcodes[g.below(std::size(opcodes))];
    in.insn = opc == kOpFp ? op_fp(funct5, fmt, 10, 11, rs2, funct3) : fma4(opc, fmt, 10, 11, 12, 13, funct3);
    in.fcsr = uint32_t(g.below(256));
    in.f11 = g.reg(fmt & 1, g.value(fmt & 1));
    in.f12 = g.reg(fmt & 1, g.value(fmt & 1));
    in.f13 = g.reg(fmt & 1, g.value(fmt & 1));
    in.f10 = g.bits();
    in.x10 = g.bits();
    in.x11 = g.bits();
    // Exact comparison needs rs2 to be f12 if it is a register operand; otherwise legality only.
    cases.push_back({in, "fuzz", rs2 != 12});
  }
  return cases;
}

std::string shell_quote(const std::string& s) {
  std::string r = "'";
  for (char c : s) r += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return r + "'";
}

bool tool_exists(const char* name) {
  return std::system((std::string("command -v ") + name + " >/dev/null 2>&1").c_str()) == 0;
}

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "vigil-fpu-oracle-XXXXXX").string();
    if (mkdtemp(tmpl.data())) path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path.empty()) std::filesystem::remove_all(path, ec);
  }
};

std::string describe(const OracleIn& in) {
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "insn=%08x fcsr=%02x f11=%016" PRIx64 " f12=%016" PRIx64 " f13=%016" PRIx64
                " x11=%016" PRIx64,
                in.insn, in.fcsr, in.f11, in.f12, in.f13, in.x11);
  return buf;
}

TEST(FpuDifferential, MatchesQemuRiscv64) {
  ASSERT_TRUE(tool_exists("riscv64-linux-gnu-gcc"))
      << "riscv64-linux-gnu-gcc is required (scripts install it)";
  ASSERT_TRUE(tool_exists("qemu-riscv64-static")) << "qemu-riscv64-static is required (scripts install it)";
  TempDir dir;
  ASSERT_FALSE(dir.path.empty());
  const std::string src = std::string(VIGIL_SOURCE_DIR) + "/tests/riscv/fpu_oracle/oracle.c";
  const std::string exe = (dir.path / "oracle").string();
  const std::string in_path = (dir.path / "cases.bin").string(),
                    out_path = (dir.path / "results.bin").string();

  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<Case> cases = generate_cases(150);
  {
    std::ofstream f(in_path, std::ios::binary);
    for (const Case& c : cases) f.write(reinterpret_cast<const char*>(&c.in), sizeof c.in);
    ASSERT_TRUE(f.good());
  }
  const std::string compile =
      "riscv64-linux-gnu-gcc -O2 -static -o " + shell_quote(exe) + " " + shell_quote(src);
  ASSERT_EQ(std::system(compile.c_str()), 0) << compile;
  const auto t1 = std::chrono::steady_clock::now();
  // -cpu rv64: RV64GC (plus whatever qemu enables by default; the fuzzed encodings avoid Zfh,
  // Zfbfmin and Zfa).
  const std::string run = "qemu-riscv64-static -cpu rv64 " + shell_quote(exe) + " < " + shell_quote(in_path) +
                          " > " + shell_quote(out_path);
  ASSERT_EQ(std::system(run.c_str()), 0) << run;
  const auto t2 = std::chrono::steady_clock::now();

  std::vector<OracleOut> outs(cases.size());
  {
    std::ifstream f(out_path, std::ios::binary);
    f.read(reinterpret_cast<char*>(outs.data()), std::streamsize(outs.size() * sizeof(OracleOut)));
    ASSERT_EQ(size_t(f.gcount()), outs.size() * sizeof(OracleOut)) << "oracle output truncated";
  }

  size_t mismatches = 0, compared = 0, illegal = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const OracleIn& in = cases[i].in;
    const OracleOut& want = outs[i];
    FpuState fp{};
    uint64_t x[33] = {};
    for (int r = 0; r < 32; ++r) fp.f[r] = 0x7ff4000000000000u + uint64_t(r);  // untouched registers
    fp.f[10] = in.f10;
    fp.f[11] = in.f11;
    fp.f[12] = in.f12;
    fp.f[13] = in.f13;
    fp.fcsr = in.fcsr;
    for (int r = 1; r < 33; ++r) x[r] = 0x1000 + uint64_t(r);
    x[10] = in.x10;
    x[11] = in.x11;
    const FpuState fp0 = fp;
    uint64_t x0[33];
    std::memcpy(x0, x, sizeof x);
    // The same instruction with fflags.NX already set must give the same result (this exercises
    // the fast path, which skips reading host flags when only NX could be new).
    FpuState fp_nx = fp;
    uint64_t x_nx[33];
    std::memcpy(x_nx, x, sizeof x);
    fp_nx.fcsr |= NX;
    const bool ok_nx = execute_fp(in.insn, x_nx, fp_nx);
    const bool ok = execute_fp(in.insn, x, fp);
    ++compared;
    illegal += want.status != 0;
    std::string what;
    if (ok != (want.status == 0)) {
      what = ok ? "legal here, illegal in oracle" : "illegal here, legal in oracle";
    } else if (!ok) {
      if (!same_state(fp, x, fp0, x0)) what = "state changed on illegal";
    } else if (!cases[i].legality_only) {
      char buf[256];
      if (fp.f[10] != want.f10 || x[10] != want.x10 || fp.fcsr != want.fcsr) {
        std::snprintf(buf, sizeof buf,
                      "got f10=%016" PRIx64 " x10=%016" PRIx64 " fcsr=%02x, want f10=%016" PRIx64
                      " x10=%016" PRIx64 " fcsr=%02x",
                      fp.f[10], x[10], fp.fcsr, want.f10, want.x10, want.fcsr);
        what = buf;
      }
      if (what.empty() &&
          (!ok_nx || fp_nx.f[10] != want.f10 || x_nx[10] != want.x10 || fp_nx.fcsr != (want.fcsr | NX))) {
        std::snprintf(buf, sizeof buf,
                      "with NX preset: got f10=%016" PRIx64 " x10=%016" PRIx64
                      " fcsr=%02x, want f10=%016" PRIx64 " x10=%016" PRIx64 " fcsr=%02x",
                      fp_nx.f[10], x_nx[10], fp_nx.fcsr, want.f10, want.x10, want.fcsr | NX);
        what = buf;
      }
      fp.f[10] = fp0.f[10];
      x[10] = x0[10];
      fp.fcsr = fp0.fcsr;
      if (what.empty() && !same_state(fp, x, fp0, x0)) what = "other registers changed";
    }
    if (!what.empty() && ++mismatches <= 30)
      ADD_FAILURE() << cases[i].name << ": " << describe(in) << ": " << what;
  }
  const auto t3 = std::chrono::steady_clock::now();
  auto ms = [](auto d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); };
  std::printf(
      "[ oracle   ] %zu cases (%zu illegal), %zu mismatches; generate+compile %lld ms, qemu %lld ms, "
      "compare %lld ms\n",
      compared, illegal, mismatches, (long long)ms(t1 - t0), (long long)ms(t2 - t1), (long long)ms(t3 - t2));
  EXPECT_GE(compared, 100000u);
  EXPECT_EQ(mismatches, 0u);
}

// ---------------------------------------------------------------------------------------------
// Throughput (informational)


}  // namespace
}  // namespace vigil::riscv
