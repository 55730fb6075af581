/*
 * vtest-thrash: a cache thrasher and a small-working-set loop, for the noisy-neighbour
 * tests (tests/e2e/test_psr.py).
 *
 *   vtest-thrash                      self-check: 3 passes of each mode over small buffers
 *   vtest-thrash stream MIB SECONDS   read-modify-write one word per 64-byte line over MIB MiB,
 *                                     pass after pass (every line misses a cache smaller than MIB)
 *   vtest-thrash small KIB SECONDS    the same over KIB KiB (fits in the cache: hits)
 *   vtest-thrash chase MIB SECONDS    a pointer chase over MIB MiB: one random cycle through
 *                                     all its 64-byte lines (Sattolo's shuffle), each load's
 *                                     address the value of the one before (no prefetcher helps)
 *
 * SECONDS = 0 runs until killed. Once its buffer is ready it prints
 *   "vtest-thrash: MODE start"
 * (the moment the thrash begins, for detection-latency tests), then every REPORT_NS of guest
 * time
 *   "vtest-thrash: MODE passes=N lines=L ms=T"
 * with the totals so far and the guest milliseconds since the start line, so a test can take
 * the guest's own progress rate between two lines (throughput). A pass is one read-modify-write
 * of every line (stream, small) or one step along the cycle per line (chase). Ends with
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
#define CHASE_CHUNK 65536
#define PAGE 4096

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

/* The chase's cycle: word 0 of line i holds the index of the line after i. The pages come in a
 * random order and each page's lines in a random order of their own, so every load's address
 * is the value of the one before and no line prefetcher helps, while a page stays in the TLB for
 * its 64 loads (a cycle of random lines over 64 MiB ran 30x slower in the emulator, from host
 * TLB misses, and then hardly disturbed any neighbour). xorshift64 is enough here. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void) {
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return rng_state;
}

static int make_cycle(uint64_t *buf, size_t lines) {
    const size_t stride = LINE / sizeof(uint64_t), per = PAGE / LINE, pages = lines / per;
    if (pages == 0 || lines % per) return -1;
    uint32_t *order = malloc(pages * sizeof *order);
    if (!order) return -1;
    for (size_t i = 0; i < pages; i++) order[i] = (uint32_t)i;
    for (size_t i = pages - 1; i > 0; i--) {
        size_t j = (size_t)(rng() % (i + 1));
        uint32_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    uint8_t perm[PAGE / LINE];
    size_t first = 0, prev = 0;
    for (size_t i = 0; i < pages; i++) {
        for (size_t k = 0; k < per; k++) perm[k] = (uint8_t)k;
        for (size_t k = per - 1; k > 0; k--) {
            size_t j = (size_t)(rng() % (k + 1));
            uint8_t t = perm[k];
            perm[k] = perm[j];
            perm[j] = t;
        }
        size_t base = (size_t)order[i] * per;
        if (i == 0) first = base + perm[0];
        else buf[prev * stride] = base + perm[0];
        for (size_t k = 0; k + 1 < per; k++) buf[(base + perm[k]) * stride] = base + perm[k + 1];
        prev = base + perm[per - 1];
    }
    buf[prev * stride] = first;
    free(order);
    return 0;
}

/* `steps` dependent loads along the cycle from line *at. Returns the sum of indices. */
static uint64_t chase(volatile uint64_t *buf, size_t steps, uint64_t *at) {
    const size_t stride = LINE / sizeof(uint64_t);
    uint64_t p = *at, sum = 0;
    for (size_t i = 0; i < steps; i++) {
        p = buf[p * stride];
        sum += p;
    }
    *at = p;
    return sum;
}

static int run(const char *mode, size_t bytes, uint64_t seconds, int quiet) {
    size_t lines = bytes / LINE;
    uint64_t *buf = malloc(bytes);
    if (!buf || lines == 0) {
        printf("vtest-thrash: cannot allocate %zu bytes\n", bytes);
        return 1;
    }
    int is_chase = strcmp(mode, "chase") == 0;
    memset(buf, 0x5a, bytes); /* touch every page: the guest owns its memory before timing */
    uint64_t at = 0;
    if (is_chase && make_cycle(buf, lines) != 0) {
        printf("vtest-thrash: the chase needs whole pages of %d-byte lines\n", LINE);
        return 1;
    }
    if (!quiet) printf("vtest-thrash: %s start\n", mode);
    /* The chase goes in chunks of CHASE_CHUNK steps so that a pass over a large buffer (seconds
     * in an emulator) still reports every second; `passes` counts whole cycles then. */
    uint64_t start = now_ns(), next = start + REPORT_NS, passes = 0, sum = 0, steps = 0;
    const size_t chunk = lines < CHASE_CHUNK ? lines : CHASE_CHUNK;
    for (;;) {
        if (is_chase) {
            sum += chase(buf, chunk, &at);
            steps += chunk;
            if (steps >= lines) steps -= lines, passes++;
        } else {
            sum += pass(buf, lines, passes);
            passes++;
        }
        if (quiet) {
            if (passes == 3) break;
            continue;
        }
        uint64_t t = now_ns();
        if (t >= next) {
            printf("vtest-thrash: %s passes=%" PRIu64 " lines=%" PRIu64 " ms=%" PRIu64 "\n", mode,
                   passes, passes * (uint64_t)lines + steps, (uint64_t)((t - start) / 1000000ull));
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
        if (rc == 0) rc = run("small", 64u << 10, 0, 1);
        return rc ? rc : run("chase", 1u << 20, 0, 1);
    }
    if (argc != 4 || (strcmp(argv[1], "stream") && strcmp(argv[1], "small") && strcmp(argv[1], "chase"))) {
        printf("usage: vtest-thrash [stream|chase MIB SECONDS | small KIB SECONDS]\n");
        return 2;
    }
    char *end;
    unsigned long size = strtoul(argv[2], &end, 10);
    unsigned long seconds = strtoul(argv[3], &end, 10);
    int stream = strcmp(argv[1], "small") != 0; /* sizes in MiB */
    if (size == 0 || size > (stream ? 4096ul : 1u << 20)) {
        printf("vtest-thrash: size %lu out of range\n", size);
        return 2;
    }
    return run(argv[1], stream ? size << 20 : size << 10, seconds, 0);
}
