/*
 * vtest-fp: RV64FD floating-point edge cases for the Vigil test guest.
 *
 *   vtest-fp [-s] [section...]
 *
 * Without arguments every section is run and one line is printed per
 * executed instruction:
 *
 *   <section> <insn> <rm> <operand bits...> -> <result bits> fl=<fflags>(<names>)
 *
 * Operands and results are raw IEEE bit patterns in hex.  FP results are
 * always read back with fmv.x.d, so single-precision results show their
 * NaN-boxing (upper 32 bits must be all ones).  fflags is cleared before and
 * read right after each instruction, inside the same asm statement.
 * "-s" prints only a checksum per section.  Section names: arith minmax cmp
 * sgnj round sqrt fma f2i i2f f2f class box csr cenv.
 *
 * Every instruction under test runs inside inline asm (nothing can be
 * constant-folded); static rounding modes use the instruction's rm field
 * (rne rtz rdn rup rmm), "dyn" uses frm, which the "round" section sets to
 * each of the five modes in turn.  The "cenv" section uses plain C arithmetic
 * with fesetround()/fetestexcept().  Output is deterministic; exit status 0.
 */
#include <fenv.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef uint64_t u64;
typedef u64 (*fop)(u64 a, u64 b, u64 c, unsigned *fl);

/* ------------------------------------------------------------------------ */
/* Instruction wrappers.  All share the fop signature.                       */

/* two FP sources, FP result */
#define GEN_FF_F(NAME, MV, INSN, RM)                                              \
    static u64 NAME(u64 a, u64 b, u64 c, unsigned *fl)                            \
    {                                                                             \
        u64 r;                                                                    \
        unsigned long f;                                                          \
        (void)c;                                                                  \
        __asm__ volatile(MV " ft0, %2\n\t" MV " ft1, %3\n\t"                      \
                         "csrw fflags, zero\n\t" INSN " ft2, ft0, ft1" RM "\n\t"  \
                         "frflags %1\n\tfmv.x.d %0, ft2"                          \
                         : "=r"(r), "=r"(f) : "r"(a), "r"(b) : "ft0", "ft1", "ft2"); \
        *fl = (unsigned)f;                                                        \
        return r;                                                                 \
    }
/* two FP sources, integer result (compares) */
#define GEN_FF_I(NAME, MV, INSN, RM)                                              \
    static u64 NAME(u64 a, u64 b, u64 c, unsigned *fl)                            \
    {                                                                             \
        u64 r;                                                                    \
        unsigned long f;                                                          \
        (void)c;                                                                  \
        __asm__ volatile(MV " ft0, %2\n\t" MV " ft1, %3\n\t"                      \
                         "csrw fflags, zero\n\t" INSN " %0, ft0, ft1" RM "\n\t"   \
                         "frflags %1"                                             \
                         : "=r"(r), "=r"(f) : "r"(a), "r"(b) : "ft0", "ft1");     \
        *fl = (unsigned)f;                                                        \
        return r;                                                                 \
    }
/* one FP source, FP result (sqrt, fp<->fp conversion) */
#define GEN_F_F(NAME, MV, INSN, RM)                                               \
    static u64 NAME(u64 a, u64 b, u64 c, unsigned *fl)                            \
    {                                                                             \
        u64 r;                                                                    \
        unsigned long f;                                                          \
        (void)b;                                                                  \
        (void)c;                                                                  \
        __asm__ volatile(MV " ft0, %2\n\t"                                        \
                         "csrw fflags, zero\n\t" INSN " ft2, ft0" RM "\n\t"       \
                         "frflags %1\n\tfmv.x.d %0, ft2"                          \
                         : "=r"(r), "=r"(f) : "r"(a) : "ft0", "ft2");             \
        *fl = (unsigned)f;                                                        \
        return r;                                                                 \
    }
/* one FP source, integer result (fp->int conversion, fclass) */
#define GEN_F_I(NAME, MV, INSN, RM)                                               \
    static u64 NAME(u64 a, u64 b, u64 c, unsigned *fl)                            \
    {                                                                             \
        u64 r;                                                                    \
        unsigned long f;                                                          \
        (void)b;                                                                  \
        (void)c;                                                                  \
        __asm__ volatile(MV " ft0, %2\n\t"                                        \
                         "csrw fflags, zero\n\t" INSN " %0, ft0" RM "\n\t"        \
                         "frflags %1"                                             \
                         : "=r"(r), "=r"(f) : "r"(a) : "ft0");                    \
        *fl = (unsigned)f;                                                        \
        return r;                                                                 \
    }
/* integer source, FP result (int->fp conversion); MV unused */
#define GEN_I_F(NAME, MV, INSN, RM)                                               \
    static u64 NAME(u64 a, u64 b, u64 c, unsigned *fl)                            \
    {                                                                             \
        u64 r;                                                                    \
        unsigned long f;                                                          \
        (void)b;                                                                  \
        (void)c;                                                                  \
        __asm__ volatile("csrw fflags, zero\n\t" INSN " ft2, %2" RM "\n\t"        \
                         "frflags %1\n\tfmv.x.d %0, ft2"                          \
                         : "=r"(r), "=r"(f) : "r"(a) : "ft2");                    \
        *fl = (unsigned)f;                                                        \
        return r;                                                                 \
    }
/* three FP sources, FP result (fused multiply-add) */
#define GEN_FFF_F(NAME, MV, INSN, RM)                                             \
    static u64 NAME(u64 a, u64 b, u64 c, unsigned *fl)                            \
    {                                                                             \
        u64 r;                                                                    \
        unsigned long f;                                                          \
        __asm__ volatile(MV " ft0, %2\n\t" MV " ft1, %3\n\t" MV " ft3, %4\n\t"    \
                         "csrw fflags, zero\n\t" INSN " ft2, ft0, ft1, ft3" RM "\n\t" \
                         "frflags %1\n\tfmv.x.d %0, ft2"                          \
                         : "=r"(r), "=r"(f) : "r"(a), "r"(b), "r"(c)              \
                         : "ft0", "ft1", "ft2", "ft3");                           \
        *fl = (unsigned)f;                                                        \
        return r;                                                                 \
    }

#define RM6(GEN, NAME, MV, INSN)                                                  \
    GEN(NAME##_rne, MV, INSN, ", rne")                                            \
    GEN(NAME##_rtz, MV, INSN, ", rtz")                                            \
    GEN(NAME##_rdn, MV, INSN, ", rdn")                                            \
    GEN(NAME##_rup, MV, INSN, ", rup")                                            \
    GEN(NAME##_rmm, MV, INSN, ", rmm")                                            \
    GEN(NAME##_dyn, MV, INSN, ", dyn")
#define RMTAB(NAME) { NAME##_rne, NAME##_rtz, NAME##_rdn, NAME##_rup, NAME##_rmm, NAME##_dyn }

#define MVS "fmv.w.x"
#define MVD "fmv.d.x"

RM6(GEN_FF_F, fadd_s, MVS, "fadd.s")
RM6(GEN_FF_F, fsub_s, MVS, "fsub.s")
RM6(GEN_FF_F, fmul_s, MVS, "fmul.s")
RM6(GEN_FF_F, fdiv_s, MVS, "fdiv.s")
RM6(GEN_FF_F, fadd_d, MVD, "fadd.d")
RM6(GEN_FF_F, fsub_d, MVD, "fsub.d")
RM6(GEN_FF_F, fmul_d, MVD, "fmul.d")
RM6(GEN_FF_F, fdiv_d, MVD, "fdiv.d")
RM6(GEN_F_F, fsqrt_s, MVS, "fsqrt.s")
RM6(GEN_F_F, fsqrt_d, MVD, "fsqrt.d")
RM6(GEN_FFF_F, fmadd_s, MVS, "fmadd.s")
RM6(GEN_FFF_F, fmsub_s, MVS, "fmsub.s")
RM6(GEN_FFF_F, fnmadd_s, MVS, "fnmadd.s")
RM6(GEN_FFF_F, fnmsub_s, MVS, "fnmsub.s")
RM6(GEN_FFF_F, fmadd_d, MVD, "fmadd.d")
RM6(GEN_FFF_F, fmsub_d, MVD, "fmsub.d")
RM6(GEN_FFF_F, fnmadd_d, MVD, "fnmadd.d")
RM6(GEN_FFF_F, fnmsub_d, MVD, "fnmsub.d")
RM6(GEN_F_I, fcvt_w_s, MVS, "fcvt.w.s")
RM6(GEN_F_I, fcvt_wu_s, MVS, "fcvt.wu.s")
RM6(GEN_F_I, fcvt_l_s, MVS, "fcvt.l.s")
RM6(GEN_F_I, fcvt_lu_s, MVS, "fcvt.lu.s")
RM6(GEN_F_I, fcvt_w_d, MVD, "fcvt.w.d")
RM6(GEN_F_I, fcvt_wu_d, MVD, "fcvt.wu.d")
RM6(GEN_F_I, fcvt_l_d, MVD, "fcvt.l.d")
RM6(GEN_F_I, fcvt_lu_d, MVD, "fcvt.lu.d")
RM6(GEN_I_F, fcvt_s_w, -, "fcvt.s.w")
RM6(GEN_I_F, fcvt_s_wu, -, "fcvt.s.wu")
RM6(GEN_I_F, fcvt_s_l, -, "fcvt.s.l")
RM6(GEN_I_F, fcvt_s_lu, -, "fcvt.s.lu")
RM6(GEN_I_F, fcvt_d_l, -, "fcvt.d.l")
RM6(GEN_I_F, fcvt_d_lu, -, "fcvt.d.lu")
RM6(GEN_F_F, fcvt_s_d, MVD, "fcvt.s.d")
/* exact conversions: no rm field */
GEN_I_F(fcvt_d_w, -, "fcvt.d.w", "")
GEN_I_F(fcvt_d_wu, -, "fcvt.d.wu", "")
GEN_F_F(fcvt_d_s, MVS, "fcvt.d.s", "")
/* no rounding */
GEN_FF_F(fmin_s, MVS, "fmin.s", "")
GEN_FF_F(fmax_s, MVS, "fmax.s", "")
GEN_FF_F(fmin_d, MVD, "fmin.d", "")
GEN_FF_F(fmax_d, MVD, "fmax.d", "")
GEN_FF_F(fsgnj_s, MVS, "fsgnj.s", "")
GEN_FF_F(fsgnjn_s, MVS, "fsgnjn.s", "")
GEN_FF_F(fsgnjx_s, MVS, "fsgnjx.s", "")
GEN_FF_F(fsgnj_d, MVD, "fsgnj.d", "")
GEN_FF_F(fsgnjn_d, MVD, "fsgnjn.d", "")
GEN_FF_F(fsgnjx_d, MVD, "fsgnjx.d", "")
GEN_FF_I(feq_s, MVS, "feq.s", "")
GEN_FF_I(flt_s, MVS, "flt.s", "")
GEN_FF_I(fle_s, MVS, "fle.s", "")
GEN_FF_I(feq_d, MVD, "feq.d", "")
GEN_FF_I(flt_d, MVD, "flt.d", "")
GEN_FF_I(fle_d, MVD, "fle.d", "")
GEN_F_I(fclass_s, MVS, "fclass.s", "")
GEN_F_I(fclass_d, MVD, "fclass.d", "")

static const char *const rmname[6] = {"rne", "rtz", "rdn", "rup", "rmm", "dyn"};

/* ------------------------------------------------------------------------ */
/* Output helpers                                                            */

static int summary;
static const char *cur_section;
static u64 sum_state;
static int nsel;
static char **sel;

static void fnv_bytes(const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        sum_state ^= s[i];
        sum_state *= 0x100000001b3ull;
    }
}

static int section(const char *name)
{
    if (nsel) {
        int found = 0;
        for (int i = 0; i < nsel; i++)
            found |= strcmp(sel[i], name) == 0;
        if (!found)
            return 0;
    }
    cur_section = name;
    sum_state = 0xcbf29ce484222325ull;
    return 1;
}

static void end_section(void)
{
    if (summary)
        printf("%-7s sum %016" PRIx64 "\n", cur_section, sum_state);
}

static const char *flagnames(unsigned f)
{
    static char buf[32];
    static const char *const n[5] = {"NX", "UF", "OF", "DZ", "NV"};
    buf[0] = 0;
    for (int i = 4; i >= 0; i--)
        if (f & (1u << i)) {
            if (buf[0])
                strcat(buf, "|");
            strcat(buf, n[i]);
        }
    if (!buf[0])
        strcpy(buf, "-");
    return buf;
}

/* Print one result line (and feed the checksum). nops = 1..3 operands. */
static void emit(const char *insn, const char *rm, int nops, const u64 *ops, u64 r, unsigned fl)
{
    char line[256];
    int n = snprintf(line, sizeof line, "%s %s %s", cur_section, insn, rm);
    for (int i = 0; i < nops; i++)
        n += snprintf(line + n, sizeof line - n, " %016" PRIx64, ops[i]);
    snprintf(line + n, sizeof line - n, " -> %016" PRIx64 " fl=%02x(%s)", r, fl, flagnames(fl));
    fnv_bytes(line, strlen(line));
    if (!summary)
        puts(line);
}

static void run(const char *insn, const char *rm, fop fn, int nops, u64 a, u64 b, u64 c)
{
    unsigned fl;
    u64 ops[3] = {a, b, c};
    u64 r = fn(a, b, c, &fl);
    emit(insn, rm, nops, ops, r, fl);
}

static inline void set_frm(unsigned long rm) { __asm__ volatile("fsrm %0" : : "r"(rm)); }
static inline void set_fcsr(unsigned long v) { __asm__ volatile("fscsr %0" : : "r"(v)); }

static u64 dbits(double x)
{
    u64 b;
    memcpy(&b, &x, 8);
    return b;
}
static u64 sbits(float x)
{
    uint32_t b;
    memcpy(&b, &x, 4);
    return b;
}

/* ------------------------------------------------------------------------ */
/* Operand sets                                                              */

/* Special values, single (raw 32-bit patterns). */
static const u64 sv[] = {
    0x00000000, 0x80000000, 0x3f800000, 0xbfc00000, 0x40400000, 0x3dcccccd,
    0x00000001, 0x007fffff, 0x00800000, 0x7f7fffff, 0x7f800000, 0xff800000,
    0x7fc00000, 0xffc00123, 0x7f800001, 0xff812345,
};
/* Same classes, double. */
static const u64 dv[] = {
    0x0000000000000000ull, 0x8000000000000000ull, 0x3ff0000000000000ull,
    0xbff8000000000000ull, 0x4008000000000000ull, 0x3fb999999999999aull,
    0x0000000000000001ull, 0x000fffffffffffffull, 0x0010000000000000ull,
    0x7fefffffffffffffull, 0x7ff0000000000000ull, 0xfff0000000000000ull,
    0x7ff8000000000000ull, 0xfff8000000000123ull, 0x7ff0000000000001ull,
    0xfff0000000012345ull,
};
#define NSV (sizeof(sv) / sizeof(sv[0]))
#define NDV (sizeof(dv) / sizeof(dv[0]))

struct binop {
    const char *name;
    fop s, d;
};

static void matrix(const struct binop *ops, size_t nops)
{
    for (size_t o = 0; o < nops; o++) {
        char nm[32];
        snprintf(nm, sizeof nm, "%s.s", ops[o].name);
        for (size_t i = 0; i < NSV; i++)
            for (size_t j = 0; j < NSV; j++)
                run(nm, "-", ops[o].s, 2, sv[i], sv[j], 0);
        snprintf(nm, sizeof nm, "%s.d", ops[o].name);
        for (size_t i = 0; i < NDV; i++)
            for (size_t j = 0; j < NDV; j++)
                run(nm, "-", ops[o].d, 2, dv[i], dv[j], 0);
    }
}

/* Run fn (6 rm variants) over all static modes, then dyn with frm=0..4. */
static void all_rm(const char *insn, const fop fn[6], int nops, u64 a, u64 b, u64 c)
{
    for (int rm = 0; rm < 5; rm++)
        run(insn, rmname[rm], fn[rm], nops, a, b, c);
    for (int rm = 0; rm < 5; rm++) {
        char nm[16];
        snprintf(nm, sizeof nm, "dyn=%s", rmname[rm]);
        set_frm((unsigned long)rm);
        run(insn, nm, fn[5], nops, a, b, c);
    }
    set_frm(0);
}

static void sec_arith(void)
{
    static const struct binop ops[] = {
        {"fadd", fadd_s_rne, fadd_d_rne},
        {"fsub", fsub_s_rne, fsub_d_rne},
        {"fmul", fmul_s_rne, fmul_d_rne},
        {"fdiv", fdiv_s_rne, fdiv_d_rne},
    };
    matrix(ops, sizeof ops / sizeof ops[0]);
}

static void sec_minmax(void)
{
    static const struct binop ops[] = {{"fmin", fmin_s, fmin_d}, {"fmax", fmax_s, fmax_d}};
    matrix(ops, 2);
}

static void sec_cmp(void)
{
    static const struct binop ops[] = {
        {"feq", feq_s, feq_d}, {"flt", flt_s, flt_d}, {"fle", fle_s, fle_d}};
    matrix(ops, 3);
}

static void sec_sgnj(void)
{
    static const struct binop ops[] = {
        {"fsgnj", fsgnj_s, fsgnj_d}, {"fsgnjn", fsgnjn_s, fsgnjn_d}, {"fsgnjx", fsgnjx_s, fsgnjx_d}};
    matrix(ops, 3);
}

static void sec_round(void)
{
    static const fop add_s[6] = RMTAB(fadd_s), sub_s[6] = RMTAB(fsub_s), mul_s[6] = RMTAB(fmul_s),
                     div_s[6] = RMTAB(fdiv_s), add_d[6] = RMTAB(fadd_d), sub_d[6] = RMTAB(fsub_d),
                     mul_d[6] = RMTAB(fmul_d), div_d[6] = RMTAB(fdiv_d);
    const u64 dp[][2] = {
        {dbits(1.0), dbits(3.0)},
        {dbits(-1.0), dbits(3.0)},
        {dbits(2.0), dbits(3.0)},
        {dbits(1.0), dbits(0x1p-53)},            /* tie to even: stays 1.0 */
        {dbits(-1.0), dbits(-0x1p-53)},
        {dbits(1.0 + 0x1p-52), dbits(0x1p-53)},  /* tie, even is up */
        {dbits(1.0), dbits(0x1.8p-53)},          /* above half */
        {0x7fefffffffffffffull, 0x7fefffffffffffffull}, /* overflow */
        {0xffefffffffffffffull, 0xffefffffffffffffull},
        {0x0010000000000000ull, dbits(0.5)},     /* exact subnormal */
        {0x0000000000000001ull, dbits(0.5)},     /* tiny tie */
        {0x0000000000000003ull, dbits(0.5)},
        {dbits(0.1), dbits(0.2)},
        {dbits(1e308), dbits(10.0)},
        {dbits(1.0), dbits(0.0)},
        {dbits(0.0), dbits(0.0)},
        {dbits(1.0), dbits(-1.0)},               /* exact zero: sign depends on rm */
    };
    const u64 sp[][2] = {
        {sbits(1.0f), sbits(3.0f)},
        {sbits(-1.0f), sbits(3.0f)},
        {sbits(2.0f), sbits(3.0f)},
        {sbits(1.0f), sbits(0x1p-24f)},
        {sbits(-1.0f), sbits(-0x1p-24f)},
        {sbits(1.0f + 0x1p-23f), sbits(0x1p-24f)},
        {sbits(1.0f), sbits(0x1.8p-24f)},
        {0x7f7fffff, 0x7f7fffff},
        {0xff7fffff, 0xff7fffff},
        {0x00800000, sbits(0.5f)},
        {0x00000001, sbits(0.5f)},
        {0x00000003, sbits(0.5f)},
        {sbits(0.1f), sbits(0.2f)},
        {sbits(1e38f), sbits(10.0f)},
        {sbits(1.0f), sbits(0.0f)},
        {sbits(0.0f), sbits(0.0f)},
        {sbits(1.0f), sbits(-1.0f)},
    };
    for (size_t i = 0; i < sizeof sp / sizeof sp[0]; i++) {
        all_rm("fadd.s", add_s, 2, sp[i][0], sp[i][1], 0);
        all_rm("fsub.s", sub_s, 2, sp[i][0], sp[i][1], 0);
        all_rm("fmul.s", mul_s, 2, sp[i][0], sp[i][1], 0);
        all_rm("fdiv.s", div_s, 2, sp[i][0], sp[i][1], 0);
    }
    for (size_t i = 0; i < sizeof dp / sizeof dp[0]; i++) {
        all_rm("fadd.d", add_d, 2, dp[i][0], dp[i][1], 0);
        all_rm("fsub.d", sub_d, 2, dp[i][0], dp[i][1], 0);
        all_rm("fmul.d", mul_d, 2, dp[i][0], dp[i][1], 0);
        all_rm("fdiv.d", div_d, 2, dp[i][0], dp[i][1], 0);
    }
}

static void sec_sqrt(void)
{
    static const fop sq_s[6] = RMTAB(fsqrt_s), sq_d[6] = RMTAB(fsqrt_d);
    for (size_t i = 0; i < NSV; i++)
        all_rm("fsqrt.s", sq_s, 1, sv[i], 0, 0);
    all_rm("fsqrt.s", sq_s, 1, sbits(2.0f), 0, 0);
    all_rm("fsqrt.s", sq_s, 1, sbits(-1.0f), 0, 0);
    all_rm("fsqrt.s", sq_s, 1, sbits(4.0f), 0, 0);
    for (size_t i = 0; i < NDV; i++)
        all_rm("fsqrt.d", sq_d, 1, dv[i], 0, 0);
    all_rm("fsqrt.d", sq_d, 1, dbits(2.0), 0, 0);
    all_rm("fsqrt.d", sq_d, 1, dbits(-1.0), 0, 0);
    all_rm("fsqrt.d", sq_d, 1, dbits(4.0), 0, 0);
}

static void sec_fma(void)
{
    static const fop ma_s[6] = RMTAB(fmadd_s), ms_s[6] = RMTAB(fmsub_s),
                     nma_s[6] = RMTAB(fnmadd_s), nms_s[6] = RMTAB(fnmsub_s),
                     ma_d[6] = RMTAB(fmadd_d), ms_d[6] = RMTAB(fmsub_d),
                     nma_d[6] = RMTAB(fnmadd_d), nms_d[6] = RMTAB(fnmsub_d);
    const u64 dt[][3] = {
        {dbits(1.0), dbits(1.0), dbits(-1.0)},   /* exact zero, sign by rm */
        {dbits(2.0), dbits(3.0), dbits(4.0)},
        {dbits(1.0 + 0x1p-52), dbits(1.0 - 0x1p-53), dbits(-1.0)},
        {dbits(0.1), dbits(10.0), dbits(-1.0)},  /* single rounding residual */
        {0x7ff0000000000000ull, 0, dbits(1.0)},  /* inf*0: NV */
        {0x7ff0000000000000ull, 0, 0x7ff8000000000000ull}, /* inf*0+qNaN: NV too */
        {0x7ff8000000000000ull, dbits(1.0), dbits(1.0)},
        {0x7ff0000000000001ull, dbits(1.0), dbits(1.0)},
        {dbits(1.0), dbits(1.0), 0x7ff0000000000001ull},
        {0x7fefffffffffffffull, dbits(2.0), 0xffefffffffffffffull}, /* no overflow */
        {0x0000000000000001ull, dbits(0.5), 0},
        {0x7ff0000000000000ull, dbits(1.0), 0xfff0000000000000ull}, /* inf-inf */
        {0, dbits(-1.0), 0},
        {0x8000000000000000ull, dbits(1.0), 0x8000000000000000ull},
    };
    const u64 st[][3] = {
        {sbits(1.0f), sbits(1.0f), sbits(-1.0f)},
        {sbits(2.0f), sbits(3.0f), sbits(4.0f)},
        {sbits(1.0f + 0x1p-23f), sbits(1.0f - 0x1p-24f), sbits(-1.0f)},
        {sbits(0.1f), sbits(10.0f), sbits(-1.0f)},
        {0x7f800000, 0, sbits(1.0f)},
        {0x7f800000, 0, 0x7fc00000},
        {0x7fc00000, sbits(1.0f), sbits(1.0f)},
        {0x7f800001, sbits(1.0f), sbits(1.0f)},
        {sbits(1.0f), sbits(1.0f), 0x7f800001},
        {0x7f7fffff, sbits(2.0f), 0xff7fffff},
        {0x00000001, sbits(0.5f), 0},
        {0x7f800000, sbits(1.0f), 0xff800000},
        {0, sbits(-1.0f), 0},
        {0x80000000, sbits(1.0f), 0x80000000},
    };
    for (size_t i = 0; i < sizeof st / sizeof st[0]; i++) {
        all_rm("fmadd.s", ma_s, 3, st[i][0], st[i][1], st[i][2]);
        all_rm("fmsub.s", ms_s, 3, st[i][0], st[i][1], st[i][2]);
        all_rm("fnmadd.s", nma_s, 3, st[i][0], st[i][1], st[i][2]);
        all_rm("fnmsub.s", nms_s, 3, st[i][0], st[i][1], st[i][2]);
    }
    for (size_t i = 0; i < sizeof dt / sizeof dt[0]; i++) {
        all_rm("fmadd.d", ma_d, 3, dt[i][0], dt[i][1], dt[i][2]);
        all_rm("fmsub.d", ms_d, 3, dt[i][0], dt[i][1], dt[i][2]);
        all_rm("fnmadd.d", nma_d, 3, dt[i][0], dt[i][1], dt[i][2]);
        all_rm("fnmsub.d", nms_d, 3, dt[i][0], dt[i][1], dt[i][2]);
    }
}

static void sec_f2i(void)
{
    static const fop w_s[6] = RMTAB(fcvt_w_s), wu_s[6] = RMTAB(fcvt_wu_s),
                     l_s[6] = RMTAB(fcvt_l_s), lu_s[6] = RMTAB(fcvt_lu_s),
                     w_d[6] = RMTAB(fcvt_w_d), wu_d[6] = RMTAB(fcvt_wu_d),
                     l_d[6] = RMTAB(fcvt_l_d), lu_d[6] = RMTAB(fcvt_lu_d);
    const double dvals[] = {
        1e20, -1e20, 2147483648.0, -2147483648.0, -2147483649.0, 2147483647.5,
        -2147483648.5, 4294967295.5, 4294967296.0, -0.5, -1.0, 0.5, 1.5, 2.5, -2.5,
        -0.0, 0x1p63, -0x1p63, 0x1p64, 0x1.fffffffffffffp62, 0x1p-1074, 0.9999999999999999,
    };
    u64 d[sizeof dvals / sizeof dvals[0] + 5];
    u64 s[sizeof dvals / sizeof dvals[0] + 5];
    size_t n = 0;
    for (size_t i = 0; i < sizeof dvals / sizeof dvals[0]; i++, n++) {
        d[n] = dbits(dvals[i]);
        s[n] = sbits((float)dvals[i]); /* rne conversion of the operand itself */
    }
    d[n] = 0x7ff8000000000000ull; s[n++] = 0x7fc00000;
    d[n] = 0xfff8000000000123ull; s[n++] = 0xffc00123; /* negative NaN */
    d[n] = 0x7ff0000000000001ull; s[n++] = 0x7f800001;
    d[n] = 0x7ff0000000000000ull; s[n++] = 0x7f800000;
    d[n] = 0xfff0000000000000ull; s[n++] = 0xff800000;
    for (size_t i = 0; i < n; i++) {
        all_rm("fcvt.w.s", w_s, 1, s[i], 0, 0);
        all_rm("fcvt.wu.s", wu_s, 1, s[i], 0, 0);
        all_rm("fcvt.l.s", l_s, 1, s[i], 0, 0);
        all_rm("fcvt.lu.s", lu_s, 1, s[i], 0, 0);
    }
    for (size_t i = 0; i < n; i++) {
        all_rm("fcvt.w.d", w_d, 1, d[i], 0, 0);
        all_rm("fcvt.wu.d", wu_d, 1, d[i], 0, 0);
        all_rm("fcvt.l.d", l_d, 1, d[i], 0, 0);
        all_rm("fcvt.lu.d", lu_d, 1, d[i], 0, 0);
    }
}

static void sec_i2f(void)
{
    static const fop s_w[6] = RMTAB(fcvt_s_w), s_wu[6] = RMTAB(fcvt_s_wu),
                     s_l[6] = RMTAB(fcvt_s_l), s_lu[6] = RMTAB(fcvt_s_lu),
                     d_l[6] = RMTAB(fcvt_d_l), d_lu[6] = RMTAB(fcvt_d_lu);
    static const u64 iv[] = {
        0, 1, 0xffffffffffffffffull, 0x7fffffff, 0xffffffff80000000ull, 0xffffffffull,
        0x1000001, 0x1000003, 0xfffffffffefffffful, 0x7fffffffffffffffull,
        0x8000000000000000ull, 0x20000000000001ull, 0x20000000000003ull,
        0x123456789abcdef0ull, 0x00000000fffffff0ull,
    };
    for (size_t i = 0; i < sizeof iv / sizeof iv[0]; i++) {
        all_rm("fcvt.s.w", s_w, 1, iv[i], 0, 0);
        all_rm("fcvt.s.wu", s_wu, 1, iv[i], 0, 0);
        all_rm("fcvt.s.l", s_l, 1, iv[i], 0, 0);
        all_rm("fcvt.s.lu", s_lu, 1, iv[i], 0, 0);
        all_rm("fcvt.d.l", d_l, 1, iv[i], 0, 0);
        all_rm("fcvt.d.lu", d_lu, 1, iv[i], 0, 0);
        run("fcvt.d.w", "-", fcvt_d_w, 1, iv[i], 0, 0);
        run("fcvt.d.wu", "-", fcvt_d_wu, 1, iv[i], 0, 0);
    }
}

static void sec_f2f(void)
{
    static const fop s_d[6] = RMTAB(fcvt_s_d);
    const u64 d[] = {
        dbits(1.0 + 0x1p-24),            /* tie */
        dbits(1.0 + 0x1p-24 + 0x1p-52),  /* just above tie */
        dbits(1.0 + 0x1p-23 + 0x1p-24),  /* tie, even is up */
        dbits(0.1), dbits(-0.1),
        0x7fefffffffffffffull, 0xffefffffffffffffull,
        dbits(3.4028235677973366e38),    /* just above FLT_MAX */
        dbits(1e-40), dbits(1e-50), dbits(0x1p-149), dbits(0x1.8p-150), dbits(0x1p-150),
        0x0000000000000001ull, 0x8000000000000000ull,
        0x7ff0000000000000ull, 0xfff0000000000000ull,
        0x7ff8000000000000ull, 0xfff8000000000123ull, 0x7ff0000000000001ull,
        0x7ff4000000000000ull,
    };
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++)
        all_rm("fcvt.s.d", s_d, 1, d[i], 0, 0);
    for (size_t i = 0; i < NSV; i++)
        run("fcvt.d.s", "-", fcvt_d_s, 1, sv[i], 0, 0);
}

static void sec_class(void)
{
    static const u64 extra_s[] = {0x807fffff, 0x80000001, 0xbf800000, 0x7fffffff};
    static const u64 extra_d[] = {0x800fffffffffffffull, 0x8000000000000001ull,
                                  0xbff0000000000000ull, 0x7fffffffffffffffull};
    for (size_t i = 0; i < NSV; i++)
        run("fclass.s", "-", fclass_s, 1, sv[i], 0, 0);
    for (size_t i = 0; i < 4; i++)
        run("fclass.s", "-", fclass_s, 1, extra_s[i], 0, 0);
    for (size_t i = 0; i < NDV; i++)
        run("fclass.d", "-", fclass_d, 1, dv[i], 0, 0);
    for (size_t i = 0; i < 4; i++)
        run("fclass.d", "-", fclass_d, 1, extra_d[i], 0, 0);
}

/* NaN boxing of single-precision values in 64-bit f registers. */
static void sec_box(void)
{
    u64 r;
    unsigned long f;
    volatile uint32_t mem32 = 0x3f800000;
    volatile uint32_t out32 = 0;
    u64 v;

#define BOX_LINE(desc, val, flv)                                                 \
    do {                                                                         \
        u64 o_[1] = {0};                                                         \
        emit(desc, "-", 0, o_, (val), (unsigned)(flv));                          \
    } while (0)

    __asm__ volatile("fmv.w.x ft0, %1\n\tfmv.x.d %0, ft0" : "=r"(r) : "r"(0x3f800000ul) : "ft0");
    BOX_LINE("fmv.w.x(3f800000);fmv.x.d", r, 0);

    __asm__ volatile("flw ft0, 0(%1)\n\tfmv.x.d %0, ft0" : "=r"(r) : "r"(&mem32) : "ft0", "memory");
    BOX_LINE("flw(3f800000);fmv.x.d", r, 0);

    v = 0x000000003f800000ull; /* not boxed: reads as canonical NaN */
    __asm__ volatile("fmv.d.x ft0, %2\n\tcsrw fflags, zero\n\tfadd.s ft1, ft0, ft0\n\t"
                     "frflags %1\n\tfmv.x.d %0, ft1"
                     : "=r"(r), "=r"(f) : "r"(v) : "ft0", "ft1");
    BOX_LINE("unboxed(000000003f800000);fadd.s", r, f);

    v = 0xffffffff7f800001ull; /* properly boxed sNaN */
    __asm__ volatile("fmv.d.x ft0, %2\n\tcsrw fflags, zero\n\tfadd.s ft1, ft0, ft0\n\t"
                     "frflags %1\n\tfmv.x.d %0, ft1"
                     : "=r"(r), "=r"(f) : "r"(v) : "ft0", "ft1");
    BOX_LINE("boxed-sNaN(ffffffff7f800001);fadd.s", r, f);

    v = 0x123456783f800000ull;
    __asm__ volatile("fmv.d.x ft0, %1\n\tfmv.x.w %0, ft0" : "=r"(r) : "r"(v) : "ft0");
    BOX_LINE("fmv.d.x(123456783f800000);fmv.x.w", r, 0);

    v = 0x12345678bf800000ull;
    __asm__ volatile("fmv.d.x ft0, %1\n\tfmv.x.w %0, ft0" : "=r"(r) : "r"(v) : "ft0");
    BOX_LINE("fmv.d.x(12345678bf800000);fmv.x.w", r, 0);

    v = 0x12345678bf800000ull;
    __asm__ volatile("fmv.d.x ft0, %1\n\tfsw ft0, 0(%0)" : : "r"(&out32), "r"(v) : "ft0", "memory");
    BOX_LINE("fmv.d.x(12345678bf800000);fsw", out32, 0);

    v = 0x000000003f800000ull;
    __asm__ volatile("fmv.d.x ft0, %2\n\tfmv.w.x ft1, %3\n\tcsrw fflags, zero\n\t"
                     "fsgnj.s ft2, ft0, ft1\n\tfrflags %1\n\tfmv.x.d %0, ft2"
                     : "=r"(r), "=r"(f) : "r"(v), "r"(0xbf800000ul) : "ft0", "ft1", "ft2");
    BOX_LINE("unboxed;fsgnj.s(x,-1.0)", r, f);

    __asm__ volatile("fmv.d.x ft0, %2\n\tcsrw fflags, zero\n\t"
                     "fcvt.d.s ft2, ft0\n\tfrflags %1\n\tfmv.x.d %0, ft2"
                     : "=r"(r), "=r"(f) : "r"(v) : "ft0", "ft2");
    BOX_LINE("unboxed;fcvt.d.s", r, f);

    __asm__ volatile("fmv.d.x ft0, %2\n\tcsrw fflags, zero\n\t"
                     "feq.s %0, ft0, ft0\n\tfrflags %1"
                     : "=r"(r), "=r"(f) : "r"(v) : "ft0");
    BOX_LINE("unboxed;feq.s", r, f);

    __asm__ volatile("fmv.d.x ft0, %2\n\tcsrw fflags, zero\n\t"
                     "fclass.s %0, ft0\n\tfrflags %1"
                     : "=r"(r), "=r"(f) : "r"(v) : "ft0");
    BOX_LINE("unboxed;fclass.s", r, f);

    v = 0x7ff0000000000001ull; /* sNaN moved/negated without signalling */
    __asm__ volatile("fmv.d.x ft0, %2\n\tcsrw fflags, zero\n\tfsgnjn.d ft1, ft0, ft0\n\t"
                     "frflags %1\n\tfmv.x.d %0, ft1"
                     : "=r"(r), "=r"(f) : "r"(v) : "ft0", "ft1");
    BOX_LINE("fneg.d(sNaN)", r, f);

    volatile u64 mem64 = 0xfedcba9876543210ull, out64 = 0;
    __asm__ volatile("fld ft0, 0(%1)\n\tfsd ft0, 0(%2)\n\tfmv.x.d %0, ft0"
                     : "=r"(r) : "r"(&mem64), "r"(&out64) : "ft0", "memory");
    BOX_LINE("fld;fsd;fmv.x.d(fedcba9876543210)", r, 0);
    BOX_LINE("fld;fsd;mem", out64, 0);

    __asm__ volatile("fmv.d.x ft0, %1\n\tfcvt.s.d ft1, ft0\n\tfmv.x.d %0, ft1"
                     : "=r"(r) : "r"(dbits(1.5)) : "ft0", "ft1");
    BOX_LINE("fcvt.s.d(1.5);fmv.x.d", r, 0);

    __asm__ volatile("fcvt.s.w ft1, %1\n\tfmv.x.d %0, ft1" : "=r"(r) : "r"(-3L) : "ft1");
    BOX_LINE("fcvt.s.w(-3);fmv.x.d", r, 0);
#undef BOX_LINE
}

static void sec_csr(void)
{
    unsigned long a, b, c, d;
    u64 o[1] = {0};
    set_fcsr(0);
    __asm__ volatile("li t0, -1\n\tcsrw fcsr, t0\n\tcsrr %0, fcsr\n\tcsrr %1, frm\n\tcsrr %2, fflags"
                     : "=r"(a), "=r"(b), "=r"(c) : : "t0");
    __asm__ volatile("csrw fcsr, zero");
    emit("csrw(fcsr,-1):fcsr", "-", 0, o, a, 0);
    emit("csrw(fcsr,-1):frm", "-", 0, o, b, 0);
    emit("csrw(fcsr,-1):fflags", "-", 0, o, c, 0);

    __asm__ volatile("csrwi frm, 3\n\tcsrrwi %0, frm, 1\n\tcsrr %1, frm\n\tcsrr %2, fcsr"
                     : "=r"(a), "=r"(b), "=r"(c));
    emit("csrrwi(frm,1):old", "-", 0, o, a, 0);
    emit("csrrwi(frm,1):frm", "-", 0, o, b, 0);
    emit("csrrwi(frm,1):fcsr", "-", 0, o, c, 0);

    __asm__ volatile("csrw fcsr, zero\n\tcsrsi fflags, 0x15\n\tcsrrci %0, fflags, 0x4\n\t"
                     "csrr %1, fflags\n\tcsrr %2, fcsr\n\tcsrrs %3, fflags, zero"
                     : "=r"(a), "=r"(b), "=r"(c), "=r"(d));
    emit("csrsi/csrrci(fflags):old", "-", 0, o, a, 0);
    emit("csrsi/csrrci(fflags):fflags", "-", 0, o, b, 0);
    emit("csrsi/csrrci(fflags):fcsr", "-", 0, o, c, 0);
    emit("csrrs(fflags,zero)", "-", 0, o, d, 0);

    /* Flags accumulate across instructions until cleared. */
    __asm__ volatile("csrw fcsr, zero\n\t"
                     "fmv.d.x ft0, %1\n\tfmv.d.x ft1, %2\n\t"
                     "fdiv.d ft2, ft0, ft1\n\t"  /* 1/3: NX */
                     "fsub.d ft2, ft1, ft1\n\t"  /* exact */
                     "fdiv.d ft2, ft0, ft2\n\t"  /* 1/0: DZ */
                     "csrr %0, fflags"
                     : "=r"(a) : "r"(dbits(1.0)), "r"(dbits(3.0)) : "ft0", "ft1", "ft2");
    emit("accrued(NX,DZ)", "-", 0, o, a, 0);

    /* fscsr / fsrm / fsflags return the previous value. */
    __asm__ volatile("li t0, 0x81\n\tfscsr %0, t0\n\tfsrm %1, zero\n\tfsflags %2, zero\n\tfrcsr %3"
                     : "=r"(a), "=r"(b), "=r"(c), "=r"(d) : : "t0");
    emit("fscsr(0x81):old", "-", 0, o, a, 0);
    emit("fsrm(0):old", "-", 0, o, b, 0);
    emit("fsflags(0):old", "-", 0, o, c, 0);
    emit("final fcsr", "-", 0, o, d, 0);
    set_fcsr(0);
}

/* Plain C arithmetic under fesetround(), flags via fetestexcept(). */
static void sec_cenv(void)
{
    static const int modes[4] = {FE_TONEAREST, FE_TOWARDZERO, FE_DOWNWARD, FE_UPWARD};
    static const char *const mname[4] = {"FE_TONEAREST", "FE_TOWARDZERO", "FE_DOWNWARD",
                                         "FE_UPWARD"};
    volatile double one = 1.0, three = 3.0, big = 0x1.fffffffffffffp1023, tiny = 0x1p-1074,
                    zero = 0.0, half = 0.5, eps = 0x1p-53;
    volatile float fone = 1.0f, fthree = 3.0f, fbig = 0x1.fffffep127f;
    for (int m = 0; m < 4; m++) {
        if (fesetround(modes[m]) != 0)
            printf("cenv fesetround(%s) failed\n", mname[m]);
        u64 o[1] = {0};
        char nm[64];
        unsigned long frm;
        __asm__ volatile("frrm %0" : "=r"(frm));
        snprintf(nm, sizeof nm, "%s:fegetround=%d,frm", mname[m], fegetround());
        emit(nm, "-", 0, o, frm, 0);
#define CEXPR(desc, expr, bitsfn)                                                \
    do {                                                                         \
        feclearexcept(FE_ALL_EXCEPT);                                            \
        volatile u64 r_ = bitsfn(expr);                                          \
        int e_ = fetestexcept(FE_ALL_EXCEPT);                                    \
        unsigned fl_ = ((e_ & FE_INVALID) ? 16u : 0) | ((e_ & FE_DIVBYZERO) ? 8u : 0) | \
                       ((e_ & FE_OVERFLOW) ? 4u : 0) | ((e_ & FE_UNDERFLOW) ? 2u : 0) | \
                       ((e_ & FE_INEXACT) ? 1u : 0);                                   \
        snprintf(nm, sizeof nm, "%s:%s", mname[m], desc);                        \
        emit(nm, "-", 0, o, r_, fl_);                                            \
    } while (0)
        CEXPR("1/3", one / three, dbits);
        CEXPR("-1/3", -one / three, dbits);
        CEXPR("1+2^-53", one + eps, dbits);
        CEXPR("-1-2^-53", -one - eps, dbits);
        CEXPR("max*2", big * 2.0, dbits);
        CEXPR("-max*2", -big * 2.0, dbits);
        CEXPR("tiny*0.5", tiny * half, dbits);
        CEXPR("1/0", one / zero, dbits);
        CEXPR("0/0", zero / zero, dbits);
        CEXPR("1-1", one - one, dbits);
        CEXPR("(float)1/3", fone / fthree, sbits);
        CEXPR("(float)max*2", fbig * 2.0f, sbits);
        CEXPR("(float)(1/3.0)", (float)(one / three), sbits);
        CEXPR("(long)2.5", (u64)(long)(three - half), (u64));
        CEXPR("(long)-2.5", (u64)(long)(half - three), (u64));
        CEXPR("(int)1e20", (u64)(long)(int)(big / 1e288), (u64));
#undef CEXPR
    }
    fesetround(FE_TONEAREST);
    feclearexcept(FE_ALL_EXCEPT);
}

int main(int argc, char **argv)
{
    int i = 1;
    if (i < argc && strcmp(argv[i], "-s") == 0) {
        summary = 1;
        i++;
    }
    nsel = argc - i;
    sel = argv + i;
    set_fcsr(0);

    static const struct {
        const char *name;
        void (*fn)(void);
    } secs[] = {
        {"arith", sec_arith}, {"minmax", sec_minmax}, {"cmp", sec_cmp},   {"sgnj", sec_sgnj},
        {"round", sec_round}, {"sqrt", sec_sqrt},     {"fma", sec_fma},   {"f2i", sec_f2i},
        {"i2f", sec_i2f},     {"f2f", sec_f2f},       {"class", sec_class}, {"box", sec_box},
        {"csr", sec_csr},     {"cenv", sec_cenv},
    };
    for (size_t s = 0; s < sizeof secs / sizeof secs[0]; s++) {
        if (!section(secs[s].name))
            continue;
        secs[s].fn();
        end_section();
    }
    printf("vtest-fp done\n");
    return 0;
}
