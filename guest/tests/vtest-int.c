/*
 * vtest-int: RV64IM integer edge cases for the Vigil test guest.
 *
 *   vtest-int        one line per (instruction, operands): "op a b -> result"
 *   vtest-int -s     only one checksum line per instruction (short output)
 *
 * Every instruction is executed through inline asm with register operands so
 * the compiler cannot constant-fold it.  Covers division/remainder by zero and
 * the INT_MIN/-1 overflow for all eight M-extension divide forms, the high
 * multiplies, register shifts with amounts >= XLEN (only the low 6/5 bits
 * count), sign extension of every *W result, set-less-than, immediate forms,
 * writes to x0, and loop-based clz/ctz/popcount (no Zbb).  All output is
 * hexadecimal and fully deterministic; exit status is 0.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef uint64_t u64;

static const u64 vals[] = {
    0x0000000000000000ull, 0x0000000000000001ull, 0x0000000000000002ull,
    0x0000000000000003ull, 0x000000000000001full, 0x000000000000003full,
    0x0000000000000040ull, 0xffffffffffffffffull, 0xfffffffffffffffdull,
    0x000000007fffffffull, 0x0000000080000000ull, 0x00000000ffffffffull,
    0xffffffff80000000ull, 0x0000000100000000ull, 0x7fffffffffffffffull,
    0x8000000000000000ull, 0x123456789abcdef0ull, 0xfedcba9876543211ull,
};
#define NVALS (sizeof(vals) / sizeof(vals[0]))

#define R3(name, insn)                                                       \
    static u64 name(u64 a, u64 b)                                            \
    {                                                                        \
        u64 r;                                                               \
        __asm__ volatile(insn " %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));     \
        return r;                                                            \
    }

R3(i_add, "add") R3(i_sub, "sub") R3(i_addw, "addw") R3(i_subw, "subw")
R3(i_sll, "sll") R3(i_srl, "srl") R3(i_sra, "sra")
R3(i_sllw, "sllw") R3(i_srlw, "srlw") R3(i_sraw, "sraw")
R3(i_slt, "slt") R3(i_sltu, "sltu")
R3(i_and, "and") R3(i_or, "or") R3(i_xor, "xor")
R3(i_mul, "mul") R3(i_mulh, "mulh") R3(i_mulhsu, "mulhsu") R3(i_mulhu, "mulhu")
R3(i_mulw, "mulw")
R3(i_div, "div") R3(i_divu, "divu") R3(i_rem, "rem") R3(i_remu, "remu")
R3(i_divw, "divw") R3(i_divuw, "divuw") R3(i_remw, "remw") R3(i_remuw, "remuw")

static const struct {
    const char *name;
    u64 (*fn)(u64, u64);
} ops[] = {
    {"add", i_add},       {"sub", i_sub},       {"addw", i_addw},   {"subw", i_subw},
    {"sll", i_sll},       {"srl", i_srl},       {"sra", i_sra},     {"sllw", i_sllw},
    {"srlw", i_srlw},     {"sraw", i_sraw},     {"slt", i_slt},     {"sltu", i_sltu},
    {"and", i_and},       {"or", i_or},         {"xor", i_xor},     {"mul", i_mul},
    {"mulh", i_mulh},     {"mulhsu", i_mulhsu}, {"mulhu", i_mulhu}, {"mulw", i_mulw},
    {"div", i_div},       {"divu", i_divu},     {"rem", i_rem},     {"remu", i_remu},
    {"divw", i_divw},     {"divuw", i_divuw},   {"remw", i_remw},   {"remuw", i_remuw},
};

/* Unary forms with immediates (the immediate is part of the instruction). */
#define R2I(name, insn, imm)                                                 \
    static u64 name(u64 a)                                                   \
    {                                                                        \
        u64 r;                                                               \
        __asm__ volatile(insn " %0, %1, " #imm : "=r"(r) : "r"(a));          \
        return r;                                                            \
    }
R2I(u_addiw0, "addiw", 0)          /* sext.w */
R2I(u_addiw_m1, "addiw", -1)
R2I(u_addi_m2048, "addi", -2048)
R2I(u_addiw_2047, "addiw", 2047)
R2I(u_slli63, "slli", 63)
R2I(u_srli63, "srli", 63)
R2I(u_srai63, "srai", 63)
R2I(u_slliw31, "slliw", 31)
R2I(u_srliw31, "srliw", 31)
R2I(u_sraiw31, "sraiw", 31)
R2I(u_srliw0, "srliw", 0)
R2I(u_sltiu1, "sltiu", 1)          /* seqz */
R2I(u_sltiu_m1, "sltiu", -1)       /* imm sign-extended, then unsigned */
R2I(u_slti0, "slti", 0)
R2I(u_xori_m1, "xori", -1)         /* not */
R2I(u_andi_m2048, "andi", -2048)
R2I(u_ori_1, "ori", 1)

static const struct {
    const char *name;
    u64 (*fn)(u64);
} uops[] = {
    {"addiw,0", u_addiw0},      {"addiw,-1", u_addiw_m1},    {"addi,-2048", u_addi_m2048},
    {"addiw,2047", u_addiw_2047}, {"slli,63", u_slli63},     {"srli,63", u_srli63},
    {"srai,63", u_srai63},      {"slliw,31", u_slliw31},     {"srliw,31", u_srliw31},
    {"sraiw,31", u_sraiw31},    {"srliw,0", u_srliw0},       {"sltiu,1", u_sltiu1},
    {"sltiu,-1", u_sltiu_m1},   {"slti,0", u_slti0},         {"xori,-1", u_xori_m1},
    {"andi,-2048", u_andi_m2048}, {"ori,1", u_ori_1},
};

/* Loop-based bit counting, the way code without Zbb does it. */
static int clz64(u64 x)
{
    int n = 0;
    for (u64 m = 1ull << 63; m && !(x & m); m >>= 1)
        n++;
    return n;
}
static int ctz64(u64 x)
{
    int n = 0;
    for (u64 m = 1; m && !(x & m); m <<= 1)
        n++;
    return n;
}
static int popcount64(u64 x)
{
    int n = 0;
    while (x) {
        x &= x - 1;
        n++;
    }
    return n;
}
static int clz32(uint32_t x)
{
    int n = 0;
    while (n < 32 && !(x & 0x80000000u)) {
        x <<= 1;
        n++;
    }
    return n;
}

static int summary;
static u64 sum_state;

static void fnv(u64 v)
{
    for (int i = 0; i < 8; i++) {
        sum_state ^= (v >> (8 * i)) & 0xff;
        sum_state *= 0x100000001b3ull;
    }
}

static void begin(void) { sum_state = 0xcbf29ce484222325ull; }
static void end(const char *name)
{
    if (summary)
        printf("%-12s sum %016" PRIx64 "\n", name, sum_state);
}

int main(int argc, char **argv)
{
    summary = argc > 1 && strcmp(argv[1], "-s") == 0;

    for (size_t o = 0; o < sizeof(ops) / sizeof(ops[0]); o++) {
        begin();
        for (size_t i = 0; i < NVALS; i++)
            for (size_t j = 0; j < NVALS; j++) {
                u64 r = ops[o].fn(vals[i], vals[j]);
                fnv(r);
                if (!summary)
                    printf("%s %016" PRIx64 " %016" PRIx64 " -> %016" PRIx64 "\n", ops[o].name,
                           vals[i], vals[j], r);
            }
        end(ops[o].name);
    }

    for (size_t o = 0; o < sizeof(uops) / sizeof(uops[0]); o++) {
        begin();
        for (size_t i = 0; i < NVALS; i++) {
            u64 r = uops[o].fn(vals[i]);
            fnv(r);
            if (!summary)
                printf("%s %016" PRIx64 " -> %016" PRIx64 "\n", uops[o].name, vals[i], r);
        }
        end(uops[o].name);
    }

    /* lui / auipc-free constants and writes to x0. */
    begin();
    {
        u64 r;
        __asm__ volatile("lui %0, 0x80000" : "=r"(r)); /* sign-extends to 0xffffffff80000000 */
        fnv(r);
        if (!summary)
            printf("lui 0x80000 -> %016" PRIx64 "\n", r);
        __asm__ volatile("lui %0, 0x7ffff\n\taddiw %0, %0, 2047" : "=r"(r));
        fnv(r);
        if (!summary)
            printf("lui 0x7ffff; addiw 2047 -> %016" PRIx64 "\n", r);
        __asm__ volatile("li t0, 12345\n\tadd zero, t0, t0\n\tmv %0, zero" : "=r"(r) : : "t0");
        fnv(r);
        if (!summary)
            printf("add zero,.. ; mv r,zero -> %016" PRIx64 "\n", r);
        __asm__ volatile("li t0, -1\n\tdiv zero, t0, zero\n\tmulhu zero, t0, t0\n\tmv %0, zero"
                         : "=r"(r) : : "t0");
        fnv(r);
        if (!summary)
            printf("div/mulhu to zero -> %016" PRIx64 "\n", r);
    }
    end("misc");

    begin();
    for (size_t i = 0; i < NVALS; i++) {
        u64 v = vals[i];
        int a = clz64(v), b = ctz64(v), c = popcount64(v), d = clz32((uint32_t)v);
        fnv((u64)a << 48 | (u64)b << 32 | (u64)c << 16 | (u64)d);
        if (!summary)
            printf("bits %016" PRIx64 " clz64=%02x ctz64=%02x pop=%02x clz32=%02x\n", v, a, b, c,
                   d);
    }
    end("bitcount");

    printf("vtest-int done\n");
    return 0;
}
