/*
 * vtest-thrash: a cache thrasher and a small-working-set loop, for the noisy-neighbour
 * tests (tests/e2e/test_psr.py).
 *
 *   vtest-thrash                      self-check: 3 passes of each mode over small buffers
 *   vtest-thrash stream MIB SECONDS   read-modify-write one word per 64-byte line over MIB MiB,
 *                                     pass after pass (every line misses a cache smaller than MIB)
 *   vtest-thrash small KIB SECONDS    the same over KIB KiB (fits in the cache: hits)
 *
 * SECONDS = 0 runs until killed. Every REPORT_NS of guest time it prints
 *   "vtest-thrash: MODE passes=N lines=L"
 * with the totals so far, so a test can read the guest's own progress rate. Ends with
 * "vtest-thrash OK MODE passes=N" (exit 0); bad arguments print a usage line and exit 2.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LINE 64
#define REPORT_NS 1000000000ull

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* One pass: every line of the buffer read and written once. Returns a checksum. */
static uint64_t pass(volatile uint64_t *buf, size_t lines, uint64_t salt) {
    uint64_t sum = 0;
    for (size_t i = 0; i < lines; i++) {
        volatile uint64_t *w = buf + i * (LINE / sizeof(uint64_t));
        uint64_t v = *w;
        sum += v;
        *w = v * 6364136223846793005ull + salt;
    }
    return sum;
}

static int run(const char *mode, size_t bytes, uint64_t seconds, int quiet) {
    size_t lines = bytes / LINE;
    uint64_t *buf = malloc(bytes);
    if (!buf || lines == 0) {
        printf("vtest-thrash: cannot allocate %zu bytes\n", bytes);
        return 1;
    }
    memset(buf, 0x5a, bytes); /* touch every page: the guest owns its memory before timing */
    uint64_t start = now_ns(), next = start + REPORT_NS, passes = 0, sum = 0;
    for (;;) {
        sum += pass(buf, lines, passes);
        passes++;
        if (quiet) {
            if (passes == 3) break;
            continue;
        }
        uint64_t t = now_ns();
        if (t >= next) {
            printf("vtest-thrash: %s passes=%" PRIu64 " lines=%" PRIu64 "\n", mode, passes,
                   passes * (uint64_t)lines);
            fflush(stdout);
            next += REPORT_NS;
            if (next <= t) next = t + REPORT_NS;
        }
        if (seconds && t - start >= seconds * 1000000000ull) break;
    }
    if (quiet) printf("vtest-thrash: %s checksum %016" PRIx64 "\n", mode, sum);
    printf("vtest-thrash OK %s passes=%" PRIu64 "\n", mode, passes);
    free(buf);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 1) {
        /* Deterministic self-check (the build's differential run compares the output). */
        int rc = run("stream", 1u << 20, 0, 1);
        return rc ? rc : run("small", 64u << 10, 0, 1);
    }
    if (argc != 4 || (strcmp(argv[1], "stream") && strcmp(argv[1], "small"))) {
        printf("usage: vtest-thrash [stream MIB SECONDS | small KIB SECONDS]\n");
        return 2;
    }
    char *end;
    unsigned long size = strtoul(argv[2], &end, 10);
    unsigned long seconds = strtoul(argv[3], &end, 10);
    int stream = strcmp(argv[1], "stream") == 0;
    if (size == 0 || size > (stream ? 4096ul : 1u << 20)) {
        printf("vtest-thrash: size %lu out of range\n", size);
        return 2;
    }
    return run(argv[1], stream ? size << 20 : size << 10, seconds, 0);
}
