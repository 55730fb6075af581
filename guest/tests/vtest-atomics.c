/*
 * vtest-atomics: multi-threaded atomicity check for the Vigil test guest.
 *
 *   vtest-atomics [nthreads [iterations]]      (defaults: 4 threads, 100000)
 *
 * Every thread performs `iterations` rounds; each round
 *   - increments a 64-bit counter with __atomic_fetch_add   (amoadd.d)
 *   - increments a 32-bit counter with __atomic_fetch_add   (amoadd.w)
 *   - increments a plain counter under a pthread mutex      (futex path)
 *   - increments a 64-bit counter with a hand-written lr.d/sc.d CAS loop
 *   - increments a 32-bit counter with a hand-written lr.w/sc.w CAS loop;
 *     this one starts close to INT32_MAX so it wraps negative and checks
 *     that lr.w sign-extends and sc.w stores only 32 bits
 *   - amomax.d / amominu.d / amoor.d / amoxor.w with thread-specific values
 *     (only the final value is checked, it is order independent)
 *   - __atomic_compare_exchange_n (compiler-generated LR/SC loop)
 *
 * Output is deterministic for a given (nthreads, iterations): exact totals,
 * the expected values, then "OK" (exit 0) or "FAIL" (exit 1).
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_THREADS 256
#define W32_START 0x7ffe0000u /* lr.w/sc.w counter start: wraps past INT32_MAX */

static long iterations = 100000;
static int nthreads = 4;

static uint64_t amo64;       /* __atomic_fetch_add, 64-bit */
static uint32_t amo32;       /* __atomic_fetch_add, 32-bit */
static uint64_t mutex_cnt;   /* protected by mtx */
static uint64_t lrsc64;      /* lr.d / sc.d loop */
static int32_t lrsc32 = (int32_t)W32_START; /* lr.w / sc.w loop */
static uint64_t cas_cnt;     /* __atomic_compare_exchange_n */
static int64_t max64 = INT64_MIN;
static uint64_t minu64 = UINT64_MAX;
static uint64_t or64;
static uint32_t xor32;
static uint64_t sc_failures; /* informational only, never printed */
static pthread_mutex_t mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_barrier_t start_barrier;

/* Returns the value found in *p; stores desired iff it equalled expected. */
static inline int64_t cas_lrsc_d(int64_t *p, int64_t expected, int64_t desired, long *fails)
{
    int64_t old;
    long rc;
    __asm__ volatile(
        "1: lr.d.aqrl %0, (%2)\n"
        "   bne %0, %3, 2f\n"
        "   sc.d.rl %1, %4, (%2)\n"
        "   beqz %1, 2f\n"
        "   addi %5, %5, 1\n"
        "   j 1b\n"
        "2:\n"
        : "=&r"(old), "=&r"(rc), "+r"(p), "+r"(expected), "+r"(desired), "+r"(*fails)
        :
        : "memory");
    return old;
}

static inline int32_t cas_lrsc_w(int32_t *p, int32_t expected, int32_t desired, long *fails)
{
    long old; /* lr.w sign-extends into the full 64-bit register */
    long rc;
    long exp64 = expected; /* sign-extended, must compare equal to lr.w result */
    __asm__ volatile(
        "1: lr.w.aqrl %0, (%2)\n"
        "   bne %0, %3, 2f\n"
        "   sc.w.rl %1, %4, (%2)\n"
        "   beqz %1, 2f\n"
        "   addi %5, %5, 1\n"
        "   j 1b\n"
        "2:\n"
        : "=&r"(old), "=&r"(rc), "+r"(p), "+r"(exp64), "+r"(desired), "+r"(*fails)
        :
        : "memory");
    return (int32_t)old;
}

static void *worker(void *arg)
{
    long id = (long)arg;
    long fails = 0;
    pthread_barrier_wait(&start_barrier);
    for (long i = 0; i < iterations; i++) {
        __atomic_fetch_add(&amo64, 1, __ATOMIC_SEQ_CST);
        __atomic_fetch_add(&amo32, 1, __ATOMIC_RELAXED);

        pthread_mutex_lock(&mtx);
        mutex_cnt++;
        pthread_mutex_unlock(&mtx);

        int64_t v = __atomic_load_n((int64_t *)&lrsc64, __ATOMIC_RELAXED);
        for (;;) {
            int64_t seen = cas_lrsc_d((int64_t *)&lrsc64, v, v + 1, &fails);
            if (seen == v)
                break;
            v = seen;
        }

        int32_t w = __atomic_load_n(&lrsc32, __ATOMIC_RELAXED);
        for (;;) {
            int32_t nw = (int32_t)((uint32_t)w + 1u);
            int32_t seen = cas_lrsc_w(&lrsc32, w, nw, &fails);
            if (seen == w)
                break;
            w = seen;
        }

        uint64_t c = __atomic_load_n(&cas_cnt, __ATOMIC_RELAXED);
        while (!__atomic_compare_exchange_n(&cas_cnt, &c, c + 1, 1, __ATOMIC_ACQ_REL,
                                            __ATOMIC_RELAXED))
            ;

        int64_t mval = (int64_t)(id * 1000003 + i) - (int64_t)iterations * 4;
        __asm__ volatile("amomax.d zero, %1, (%0)" : : "r"(&max64), "r"(mval) : "memory");
        uint64_t uval = (uint64_t)(id + 1) * 0x100000000ull + (uint64_t)(iterations - i);
        __asm__ volatile("amominu.d zero, %1, (%0)" : : "r"(&minu64), "r"(uval) : "memory");
        uint64_t obit = 1ull << ((id * 13 + (i % 5)) & 63);
        __asm__ volatile("amoor.d zero, %1, (%0)" : : "r"(&or64), "r"(obit) : "memory");
        uint32_t xv = (uint32_t)(i + 1) * (2654435761u + 2u * (uint32_t)id);
        __asm__ volatile("amoxor.w zero, %1, (%0)" : : "r"(&xor32), "r"(xv) : "memory");
    }
    __atomic_fetch_add(&sc_failures, (uint64_t)fails, __ATOMIC_RELAXED);
    return NULL;
}

static int check(const char *what, uint64_t got, uint64_t want)
{
    int ok = got == want;
    printf("%-22s got=0x%016" PRIx64 " (%" PRIu64 ") want=0x%016" PRIx64 " %s\n", what, got, got,
           want, ok ? "ok" : "MISMATCH");
    return ok;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        nthreads = atoi(argv[1]);
    if (argc > 2)
        iterations = atol(argv[2]);
    if (nthreads < 1 || nthreads > MAX_THREADS || iterations < 1 || iterations > 100000000) {
        fprintf(stderr, "usage: %s [nthreads(1-%d) [iterations]]\n", argv[0], MAX_THREADS);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("vtest-atomics: threads=%d iterations=%ld\n", nthreads, iterations);

    pthread_t tids[MAX_THREADS];
    pthread_barrier_init(&start_barrier, NULL, (unsigned)nthreads);
    for (long t = 0; t < nthreads; t++) {
        if (pthread_create(&tids[t], NULL, worker, (void *)t) != 0) {
            printf("pthread_create failed\nFAIL\n");
            return 1;
        }
    }
    for (int t = 0; t < nthreads; t++)
        pthread_join(tids[t], NULL);

    /* Expected values, computed sequentially. */
    uint64_t total = (uint64_t)nthreads * (uint64_t)iterations;
    int64_t emax = INT64_MIN;
    uint64_t eminu = UINT64_MAX, eor = 0;
    uint32_t exor = 0;
    for (long id = 0; id < nthreads; id++) {
        for (long i = 0; i < iterations; i++) {
            int64_t mval = (int64_t)(id * 1000003 + i) - (int64_t)iterations * 4;
            if (mval > emax)
                emax = mval;
            uint64_t uval = (uint64_t)(id + 1) * 0x100000000ull + (uint64_t)(iterations - i);
            if (uval < eminu)
                eminu = uval;
            eor |= 1ull << ((id * 13 + (i % 5)) & 63);
            exor ^= (uint32_t)(i + 1) * (2654435761u + 2u * (uint32_t)id);
        }
    }
    uint32_t e32 = (uint32_t)(W32_START + (uint32_t)total);

    int ok = 1;
    ok &= check("amoadd.d", amo64, total);
    ok &= check("amoadd.w", amo32, (uint32_t)total);
    ok &= check("mutex", mutex_cnt, total);
    ok &= check("lr.d/sc.d", lrsc64, total);
    ok &= check("lr.w/sc.w (wrapping)", (uint64_t)(int64_t)lrsc32, (uint64_t)(int64_t)(int32_t)e32);
    ok &= check("compare_exchange", cas_cnt, total);
    ok &= check("amomax.d", (uint64_t)max64, (uint64_t)emax);
    ok &= check("amominu.d", minu64, eminu);
    ok &= check("amoor.d", or64, eor);
    ok &= check("amoxor.w", xor32, exor);
    printf("%s\n", ok ? "OK" : "FAIL");
    return ok ? 0 : 1;
}
