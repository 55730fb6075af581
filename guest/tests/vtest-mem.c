/*
 * vtest-mem: memory-system edge cases for the Vigil test guest.
 *
 *   vtest-mem [big_malloc_MiB]        (default 32)
 *
 * Sections (each prints deterministic lines, never raw addresses; fault
 * addresses are printed as offsets from the start of the mapping involved):
 *   sext     lb/lbu/lh/lhu/lw/lwu/ld sign/zero extension
 *   misal    misaligned 2/4/8-byte integer and 4/8-byte FP loads and stores at
 *            every offset 0..15 of a buffer
 *   cross    misaligned accesses straddling a page boundary (two RW pages)
 *   crossflt the same with the second page PROT_NONE -> SIGSEGV
 *   segv     SIGSEGV from PROT_NONE read, write to PROT_READ, munmap'ed page,
 *            NULL, and executing a non-executable page; si_code + si_addr
 *   mprotect RW -> R -> RW transitions keep the data
 *   amo      misaligned AMO -> SIGBUS (si_addr not printed: it legitimately
 *            differs between implementations)
 *   memcpy   glibc memcpy/memmove/memset vs. byte-wise reference, all
 *            alignments and small lengths, overlapping both directions
 *   fork     fork + copy-on-write + pipe + waitpid (exit code and signal)
 *   smc      self-modifying code: patch an instruction, __builtin___clear_cache
 *            (riscv_flush_icache), call it again; repeated 64 times
 *   big      large malloc touched page by page, calloc'ed memory is zero
 * Ends with "vtest-mem OK" (exit 0) or "vtest-mem FAIL" (exit 1).
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

typedef uint64_t u64;

static int failures;
static long pagesz;

#define FAIL(...)                                                                \
    do {                                                                         \
        printf("FAIL: " __VA_ARGS__);                                            \
        printf("\n");                                                            \
        failures++;                                                              \
    } while (0)

/* ------------------------------------------------------------------------ */
/* Loads and stores through inline asm so the access width is exact.        */

#define LOADFN(name, insn)                                                      \
    static u64 name(const volatile void *p)                                     \
    {                                                                           \
        u64 r;                                                                  \
        __asm__ volatile(insn " %0, 0(%1)" : "=r"(r) : "r"(p) : "memory");      \
        return r;                                                               \
    }
LOADFN(ld_lb, "lb")
LOADFN(ld_lbu, "lbu")
LOADFN(ld_lh, "lh")
LOADFN(ld_lhu, "lhu")
LOADFN(ld_lw, "lw")
LOADFN(ld_lwu, "lwu")
LOADFN(ld_ld, "ld")

static u64 ld_flw(const volatile void *p)
{
    u64 r;
    __asm__ volatile("flw ft0, 0(%1)\n\tfmv.x.d %0, ft0" : "=r"(r) : "r"(p) : "ft0", "memory");
    return r;
}
static u64 ld_fld(const volatile void *p)
{
    u64 r;
    __asm__ volatile("fld ft0, 0(%1)\n\tfmv.x.d %0, ft0" : "=r"(r) : "r"(p) : "ft0", "memory");
    return r;
}

#define STOREFN(name, insn)                                                     \
    static void name(volatile void *p, u64 v)                                   \
    {                                                                           \
        __asm__ volatile(insn " %1, 0(%0)" : : "r"(p), "r"(v) : "memory");      \
    }
STOREFN(st_sb, "sb")
STOREFN(st_sh, "sh")
STOREFN(st_sw, "sw")
STOREFN(st_sd, "sd")

static void st_fsw(volatile void *p, u64 v)
{
    __asm__ volatile("fmv.w.x ft0, %1\n\tfsw ft0, 0(%0)" : : "r"(p), "r"(v) : "ft0", "memory");
}
static void st_fsd(volatile void *p, u64 v)
{
    __asm__ volatile("fmv.d.x ft0, %1\n\tfsd ft0, 0(%0)" : : "r"(p), "r"(v) : "ft0", "memory");
}

static const struct {
    const char *name;
    u64 (*fn)(const volatile void *);
    int size;
} loads[] = {
    {"lh", ld_lh, 2}, {"lhu", ld_lhu, 2}, {"lw", ld_lw, 4},   {"lwu", ld_lwu, 4},
    {"ld", ld_ld, 8}, {"flw", ld_flw, 4}, {"fld", ld_fld, 8},
};
static const struct {
    const char *name;
    void (*fn)(volatile void *, u64);
    int size;
} stores[] = {
    {"sh", st_sh, 2}, {"sw", st_sw, 4}, {"sd", st_sd, 8}, {"fsw", st_fsw, 4}, {"fsd", st_fsd, 8},
};

static void fill_pattern(volatile unsigned char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)(0x80 + i * 0x1d); /* mixes high-bit and low bytes */
}

static void print_bytes(const char *prefix, const volatile unsigned char *b, size_t n)
{
    printf("%s", prefix);
    for (size_t i = 0; i < n; i++)
        printf("%02x", b[i]);
    printf("\n");
}

/* ------------------------------------------------------------------------ */
/* Fault capture                                                             */

static sigjmp_buf fault_jmp;
static volatile sig_atomic_t fault_sig, fault_code;
static void *volatile fault_addr;

static void fault_handler(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    fault_sig = sig;
    fault_code = si->si_code;
    fault_addr = si->si_addr;
    siglongjmp(fault_jmp, 1);
}

static void install_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = fault_handler;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
    sigaction(SIGILL, &sa, NULL);
}

static const char *signame(int s)
{
    switch (s) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGILL: return "SIGILL";
    case 0: return "none";
    default: return "other";
    }
}

static const char *codename(int sig, int c)
{
    if (sig == SIGSEGV && c == SEGV_MAPERR)
        return "SEGV_MAPERR";
    if (sig == SIGSEGV && c == SEGV_ACCERR)
        return "SEGV_ACCERR";
    if (sig == SIGBUS && c == BUS_ADRALN)
        return "BUS_ADRALN";
    if (sig == SIGBUS && c == BUS_ADRERR)
        return "BUS_ADRERR";
    return "other";
}

/* Prints the outcome of a faulting (or not) action; base is the reference
 * address for si_addr (printed as a signed offset). */
#define TRY_FAULT(desc, base, action, print_addr)                               \
    do {                                                                        \
        fault_sig = 0;                                                          \
        if (sigsetjmp(fault_jmp, 1) == 0) {                                     \
            action;                                                             \
        }                                                                       \
        if (fault_sig == 0)                                                     \
            printf("%s: no fault\n", desc);                                     \
        else if (print_addr)                                                    \
            printf("%s: %s %s si_addr=base%+ld\n", desc, signame(fault_sig),    \
                   codename(fault_sig, fault_code),                             \
                   (long)((char *)fault_addr - (char *)(base)));                \
        else                                                                    \
            printf("%s: %s %s\n", desc, signame(fault_sig),                     \
                   codename(fault_sig, fault_code));                            \
    } while (0)

/* ------------------------------------------------------------------------ */

static void sec_sext(void)
{
    static volatile unsigned char b[16] __attribute__((aligned(16))) = {
        0x80, 0x7f, 0xff, 0x00, 0x01, 0x80, 0xfe, 0xff,
        0x00, 0x00, 0x00, 0x80, 0xff, 0xff, 0xff, 0x7f};
    for (int off = 0; off < 16; off++) {
        printf("sext lb[%d]=%016" PRIx64 " lbu[%d]=%016" PRIx64 "\n", off, ld_lb(b + off), off,
               ld_lbu(b + off));
    }
    for (int off = 0; off < 16; off += 2)
        printf("sext lh[%d]=%016" PRIx64 " lhu[%d]=%016" PRIx64 "\n", off, ld_lh(b + off), off,
               ld_lhu(b + off));
    for (int off = 0; off < 16; off += 4)
        printf("sext lw[%d]=%016" PRIx64 " lwu[%d]=%016" PRIx64 "\n", off, ld_lw(b + off), off,
               ld_lwu(b + off));
    for (int off = 0; off < 16; off += 8)
        printf("sext ld[%d]=%016" PRIx64 "\n", off, ld_ld(b + off));
    /* sb/sh/sw store only the low bits of the register */
    static volatile unsigned char w[16] __attribute__((aligned(16)));
    memset((void *)w, 0xee, sizeof w);
    st_sb(w + 0, 0xffffffffffffff81ull);
    st_sh(w + 2, 0x1234567890abcdefull);
    st_sw(w + 4, 0x8000000180000002ull);
    st_sd(w + 8, 0x0102030405060708ull);
    print_bytes("sext stores ", w, 16);
}

static void sec_misal(void)
{
    static volatile unsigned char buf[48] __attribute__((aligned(16)));
    fill_pattern(buf, sizeof buf);
    for (size_t l = 0; l < sizeof loads / sizeof loads[0]; l++)
        for (int off = 0; off < 16; off++)
            printf("misal %s @%2d = %016" PRIx64 "\n", loads[l].name, off,
                   loads[l].fn(buf + off));
    for (size_t s = 0; s < sizeof stores / sizeof stores[0]; s++)
        for (int off = 0; off < 16; off++) {
            memset((void *)buf, 0, sizeof buf);
            stores[s].fn(buf + off, 0x8877665544332211ull);
            char pfx[40];
            snprintf(pfx, sizeof pfx, "misal %s @%2d: ", stores[s].name, off);
            print_bytes(pfx, buf, 24);
            /* read back with the matching integer load */
            u64 back = stores[s].size == 2 ? ld_lhu(buf + off)
                     : stores[s].size == 4 ? ld_lwu(buf + off)
                                           : ld_ld(buf + off);
            u64 want = stores[s].size == 8 ? 0x8877665544332211ull
                     : stores[s].size == 4 ? 0x44332211ull
                                           : 0x2211ull;
            if (back != want)
                FAIL("misal %s @%d readback %016" PRIx64, stores[s].name, off, back);
        }
}

static void sec_cross(void)
{
    unsigned char *m = mmap(NULL, 2 * pagesz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                            -1, 0);
    if (m == MAP_FAILED) {
        FAIL("cross mmap");
        return;
    }
    volatile unsigned char *edge = m + pagesz;
    fill_pattern(edge - 16, 32);
    for (size_t l = 0; l < sizeof loads / sizeof loads[0]; l++)
        for (int k = 1; k < loads[l].size; k++)
            printf("cross %s @page-%d = %016" PRIx64 "\n", loads[l].name, k,
                   loads[l].fn(edge - k));
    for (size_t s = 0; s < sizeof stores / sizeof stores[0]; s++)
        for (int k = 1; k < stores[s].size; k++) {
            memset((void *)(edge - 16), 0, 32);
            stores[s].fn(edge - k, 0x8877665544332211ull);
            char pfx[48];
            snprintf(pfx, sizeof pfx, "cross %s @page-%d: ", stores[s].name, k);
            print_bytes(pfx, edge - 8, 16);
        }
    munmap(m, 2 * pagesz);
}

static void sec_crossflt(void)
{
    unsigned char *m = mmap(NULL, 2 * pagesz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                            -1, 0);
    if (m == MAP_FAILED) {
        FAIL("crossflt mmap");
        return;
    }
    unsigned char *edge = m + pagesz;
    fill_pattern(edge - 16, 32);
    mprotect(edge, pagesz, PROT_NONE);
    memset(m + pagesz - 16, 0x5a, 16);
    /* Whether si_addr is the start of the access or the page boundary is
     * implementation-defined, so only report which of the two it is. */
    static const int sizes[] = {2, 4, 8};
    for (int i = 0; i < 3; i++) {
        int sz = sizes[i];
        for (int k = 1; k < sz; k++) {
            char desc[64];
            volatile unsigned char *p = edge - k;
            snprintf(desc, sizeof desc, "crossflt load%d @page-%d", sz, k);
            fault_sig = 0;
            if (sigsetjmp(fault_jmp, 1) == 0) {
                if (sz == 2)
                    (void)ld_lhu(p);
                else if (sz == 4)
                    (void)ld_lwu(p);
                else
                    (void)ld_ld(p);
            }
            long off = (long)((char *)fault_addr - (char *)edge);
            printf("%s: %s %s si_addr=%s\n", desc, signame(fault_sig),
                   codename(fault_sig, fault_code),
                   fault_sig == 0 ? "-" : (off >= -k && off <= 0) ? "in-access" : "OUTSIDE");
            if (fault_sig != SIGSEGV)
                FAIL("%s expected SIGSEGV", desc);
        }
    }
    /* (Whether a faulting page-crossing *store* partially writes the first
     * page is implementation-defined, so stores are not tested here.) */
    int intact = 1;
    for (int i = 0; i < 16; i++)
        intact &= m[pagesz - 16 + i] == 0x5a;
    printf("crossflt first page intact after loads: %s\n", intact ? "yes" : "no");
    munmap(m, 2 * pagesz);
}

static void sec_segv(void)
{
    unsigned char *m = mmap(NULL, 4 * pagesz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                            -1, 0);
    if (m == MAP_FAILED) {
        FAIL("segv mmap");
        return;
    }
    memset(m, 0x11, 4 * pagesz);
    mprotect(m, pagesz, PROT_NONE);                   /* page 0: none */
    mprotect(m + pagesz, pagesz, PROT_READ);          /* page 1: read-only */
    munmap(m + 3 * pagesz, pagesz);                   /* page 3: unmapped */
    volatile unsigned char *vm = m;

    TRY_FAULT("segv read PROT_NONE +123", m, (void)vm[123], 1);
    TRY_FAULT("segv write PROT_NONE +8", m, vm[8] = 1, 1);
    TRY_FAULT("segv read PROT_READ", m, printf("segv read PROT_READ value %02x\n", vm[pagesz + 5]), 1);
    TRY_FAULT("segv write PROT_READ +77", m, vm[pagesz + 77] = 1, 1);
    TRY_FAULT("segv amoadd PROT_READ", m,
              __atomic_fetch_add((volatile uint32_t *)(m + pagesz + 64), 1, __ATOMIC_SEQ_CST), 1);
    TRY_FAULT("segv write RW page 2", m, vm[2 * pagesz + 1] = 0x22, 1);
    TRY_FAULT("segv read munmapped +4000", m, (void)vm[3 * pagesz + 4000], 1);
    static volatile uintptr_t low_addr = 0; /* hidden from the optimiser */
    TRY_FAULT("segv read NULL", (void *)0, (void)*(volatile int *)low_addr, 1);
    TRY_FAULT("segv write address 16", (void *)0, *(volatile int *)(low_addr + 16) = 1, 1);

    /* Execute from a RW (not X) page: instruction page fault. */
    static const uint32_t ret_insn = 0x00008067; /* jalr x0, 0(ra) */
    memcpy(m + 2 * pagesz + 256, &ret_insn, 4);
    void (*fn)(void) = (void (*)(void))(m + 2 * pagesz + 256);
    TRY_FAULT("segv exec non-X page", m, fn(), 1);
    /* Same page made executable: now it runs. */
    mprotect(m + 2 * pagesz, pagesz, PROT_READ | PROT_EXEC);
    __builtin___clear_cache((char *)m + 2 * pagesz, (char *)m + 3 * pagesz);
    TRY_FAULT("segv exec R+X page", m, fn(), 1);
    munmap(m, 3 * pagesz);
}

static void sec_mprotect(void)
{
    unsigned char *m = mmap(NULL, 2 * pagesz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                            -1, 0);
    if (m == MAP_FAILED) {
        FAIL("mprotect mmap");
        return;
    }
    volatile unsigned char *vm = m;
    for (long i = 0; i < 2 * pagesz; i++)
        vm[i] = (unsigned char)(i * 7);
    mprotect(m, 2 * pagesz, PROT_READ);
    unsigned sum = 0;
    for (long i = 0; i < 2 * pagesz; i++)
        sum = sum * 31 + vm[i];
    printf("mprotect R checksum %08x\n", sum);
    TRY_FAULT("mprotect write after R", m, vm[pagesz + 3] = 9, 1);
    mprotect(m, 2 * pagesz, PROT_READ | PROT_WRITE);
    TRY_FAULT("mprotect write after RW", m, vm[pagesz + 3] = 9, 1);
    printf("mprotect value %02x\n", vm[pagesz + 3]);
    /* Fresh anonymous memory after munmap+mmap is zero. */
    munmap(m, 2 * pagesz);
    unsigned char *f = mmap(NULL, pagesz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int zero = f != MAP_FAILED;
    for (long i = 0; zero && i < pagesz; i++)
        zero &= f[i] == 0;
    printf("mprotect fresh mmap zero: %s\n", zero ? "yes" : "no");
    if (!zero)
        FAIL("fresh mmap not zero");
    munmap(f, pagesz);
}

static void sec_amo(void)
{
    static volatile uint64_t words[4] __attribute__((aligned(16)));
    volatile char *base = (volatile char *)words;
    u64 r = 0;
    TRY_FAULT("amo amoadd.w @+2", base,
              __asm__ volatile("amoadd.w %0, %1, (%2)" : "=r"(r) : "r"(1L), "r"(base + 2) : "memory"),
              0);
    TRY_FAULT("amo amoswap.d @+4", base,
              __asm__ volatile("amoswap.d %0, %1, (%2)" : "=r"(r) : "r"(1L), "r"(base + 4) : "memory"),
              0);
    TRY_FAULT("amo lr.w @+1", base,
              __asm__ volatile("lr.w %0, (%1)" : "=r"(r) : "r"(base + 1) : "memory"), 0);
    TRY_FAULT("amo amoadd.w @+8 (aligned)", base,
              __asm__ volatile("amoadd.w %0, %1, (%2)" : "=r"(r) : "r"(5L), "r"(base + 8) : "memory"),
              0);
    printf("amo words %016" PRIx64 " %016" PRIx64 "\n", words[0], words[1]);
}

static void sec_memcpy(void)
{
    static unsigned char src[256], dst[256], ref[256], tmp[256];
    long cases = 0, bad = 0;
    u64 h = 0xcbf29ce484222325ull;
    for (int i = 0; i < 256; i++)
        src[i] = (unsigned char)(i * 37 + 11);
    /* memcpy: all src/dst alignments 0..7, lengths 0..80 */
    for (int so = 0; so < 8; so++)
        for (int d0 = 0; d0 < 8; d0++)
            for (int len = 0; len <= 80; len++) {
                memset(dst, 0xa5, sizeof dst);
                memset(ref, 0xa5, sizeof ref);
                memcpy(dst + d0, src + so, (size_t)len);
                for (int i = 0; i < len; i++)
                    ref[d0 + i] = src[so + i];
                cases++;
                if (memcmp(dst, ref, sizeof dst) != 0)
                    bad++;
            }
    printf("memcpy cases=%ld mismatches=%ld\n", cases, bad);
    if (bad)
        FAIL("memcpy");

    /* memmove within one buffer, both directions. */
    static const int lens[] = {0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100, 127};
    cases = bad = 0;
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++)
        for (int dist = -17; dist <= 17; dist++)
            for (int so = 40; so < 48; so++) {
                int len = lens[li], d0 = so + dist;
                for (int i = 0; i < 256; i++)
                    dst[i] = ref[i] = (unsigned char)(i ^ 0x5c);
                memmove(dst + d0, dst + so, (size_t)len);
                for (int i = 0; i < len; i++)
                    tmp[i] = ref[so + i];
                for (int i = 0; i < len; i++)
                    ref[d0 + i] = tmp[i];
                cases++;
                if (memcmp(dst, ref, 256) != 0)
                    bad++;
                for (int i = 0; i < 256; i++) {
                    h ^= dst[i];
                    h *= 0x100000001b3ull;
                }
            }
    printf("memmove cases=%ld mismatches=%ld hash=%016" PRIx64 "\n", cases, bad, h);
    if (bad)
        FAIL("memmove");

    /* memset / memchr / strlen at all alignments */
    cases = bad = 0;
    for (int o = 0; o < 16; o++)
        for (int len = 0; len < 70; len++) {
            memset(dst, 0, sizeof dst);
            memset(dst + o, 0x41, (size_t)len);
            cases++;
            if (strlen((char *)dst + o) != (size_t)len)
                bad++;
            for (int i = 0; i < 256; i++)
                if (dst[i] != ((i >= o && i < o + len) ? 0x41 : 0))
                    bad++;
            if (len && memchr(dst + o, 0x41, (size_t)len) != dst + o)
                bad++;
        }
    printf("memset/strlen cases=%ld mismatches=%ld\n", cases, bad);
    if (bad)
        FAIL("memset/strlen");
}

static void sec_fork(void)
{
    static volatile int shared_val = 1234;
    int pfd[2];
    if (pipe(pfd) != 0) {
        FAIL("pipe");
        return;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        FAIL("fork");
        return;
    }
    if (pid == 0) {
        shared_val = 5678; /* copy-on-write: parent must not see this */
        char msg[64];
        int n = snprintf(msg, sizeof msg, "child sees %d", shared_val);
        if (write(pfd[1], msg, (size_t)n) != n)
            _exit(3);
        _exit(42);
    }
    close(pfd[1]);
    char buf[64] = {0};
    ssize_t n = read(pfd[0], buf, sizeof buf - 1);
    close(pfd[0]);
    int st = 0;
    pid_t w = waitpid(pid, &st, 0);
    printf("fork pipe read %zd bytes: \"%s\"\n", n, buf);
    printf("fork waitpid ok=%d exited=%d status=%d parent sees %d\n", w == pid, WIFEXITED(st),
           WIFEXITED(st) ? WEXITSTATUS(st) : -1, shared_val);
    if (w != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 42 || shared_val != 1234)
        FAIL("fork/cow");

    /* A child killed by a signal. */
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        signal(SIGTERM, SIG_DFL);
        raise(SIGTERM);
        _exit(1);
    }
    w = waitpid(pid, &st, 0);
    printf("fork child signaled=%d sig=%d\n", WIFSIGNALED(st), WIFSIGNALED(st) ? WTERMSIG(st) : 0);

    /* Several children in a row, each with its own dirty pages. */
    int sum = 0;
    for (int i = 0; i < 8; i++) {
        fflush(stdout);
        pid = fork();
        if (pid == 0) {
            unsigned char *p = malloc(256 * 1024);
            for (int j = 0; j < 256 * 1024; j += 4096)
                p[j] = (unsigned char)(i + j);
            int s = 0;
            for (int j = 0; j < 256 * 1024; j += 4096)
                s += p[j];
            _exit(s & 0x7f);
        }
        waitpid(pid, &st, 0);
        sum += WEXITSTATUS(st);
    }
    printf("fork 8 children exit-sum=%d\n", sum);
}

/* Self-modifying code: "addi a0, zero, imm ; ret" patched repeatedly. */
static void sec_smc(void)
{
    uint32_t *code = mmap(NULL, pagesz, PROT_READ | PROT_WRITE | PROT_EXEC,
                          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (code == MAP_FAILED) {
        printf("smc: RWX mmap not permitted, skipped\n");
        return;
    }
    long (*fn)(void) = (long (*)(void))code;
    long results = 0, bad = 0;
    for (int i = 0; i < 64; i++) {
        long imm = (i * 37) % 2048 - 1024;
        code[0] = ((uint32_t)(imm & 0xfff) << 20) | (10u << 7) | 0x13u; /* addi a0,zero,imm */
        code[1] = 0x00008067u;                                           /* ret */
        __builtin___clear_cache((char *)code, (char *)(code + 2));
        long r = fn();
        results = results * 31 + r;
        if (r != imm)
            bad++;
    }
    printf("smc 64 patches, mismatches=%ld hash=%ld\n", bad, results);
    if (bad)
        FAIL("smc");
    munmap(code, pagesz);
}

static void sec_big(long mib)
{
    size_t sz = (size_t)mib << 20;
    unsigned char *p = malloc(sz);
    if (!p) {
        FAIL("malloc %ld MiB", mib);
        return;
    }
    for (size_t i = 0; i < sz; i += (size_t)pagesz)
        *(volatile u64 *)(p + i) = i / (size_t)pagesz * 0x9e3779b97f4a7c15ull;
    u64 h = 0;
    for (size_t i = 0; i < sz; i += (size_t)pagesz)
        h = h * 131 + *(volatile u64 *)(p + i);
    printf("big malloc %ld MiB pages=%zu hash=%016" PRIx64 "\n", mib, sz / (size_t)pagesz, h);
    free(p);
    unsigned char *c = calloc(1, sz);
    size_t nz = 0;
    for (size_t i = 0; c && i < sz; i += 64)
        nz += c[i] != 0;
    printf("big calloc %ld MiB nonzero=%zu\n", mib, nz);
    if (!c || nz)
        FAIL("calloc");
    free(c);
}

int main(int argc, char **argv)
{
    long mib = argc > 1 ? atol(argv[1]) : 32;
    setvbuf(stdout, NULL, _IOLBF, 0);
    pagesz = sysconf(_SC_PAGESIZE);
    printf("vtest-mem: page size %ld\n", pagesz);
    install_handlers();
    sec_sext();
    sec_misal();
    sec_cross();
    sec_crossflt();
    sec_segv();
    sec_mprotect();
    sec_amo();
    sec_memcpy();
    sec_fork();
    sec_smc();
    sec_big(mib);
    printf("vtest-mem %s\n", failures ? "FAIL" : "OK");
    return failures ? 1 : 0;
}
