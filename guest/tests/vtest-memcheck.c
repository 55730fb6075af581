/*
 * vtest-memcheck: a memory-consistency checker for save/restore and migration tests
 * (issue 11). Each pass writes a counter into every page of a large buffer and first checks
 * that the previous pass's value is still there, so a page lost, stale or mixed up across a
 * snapshot shows as a mismatch.
 *
 *   vtest-memcheck                     4 MiB, 3 passes, deterministic output (the qemu oracle)
 *   vtest-memcheck MIB PASSES [MS]     MIB of buffer, PASSES passes (0: until killed),
 *                                      MS milliseconds of sleep between passes (default 200);
 *                                      each line also carries CLOCK_MONOTONIC ("t=") and
 *                                      CLOCK_REALTIME ("wall=") seconds
 *
 * Per page i in pass p, word 0 holds (p << 32 | i) and the last word its complement.
 * Prints "memcheck: pass P ok" per pass, "memcheck: MISMATCH pass P page I word W expected
 * X got Y" (and exits 1) at the first wrong value, "memcheck: done" after the last pass.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

enum { kPage = 4096, kWords = kPage / 8 };

static double seconds(clockid_t c) {
  struct timespec ts;
  clock_gettime(c, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char** argv) {
  const int oracle = argc < 3;
  const uint64_t mib = oracle ? 4 : strtoull(argv[1], NULL, 10);
  const uint64_t passes = oracle ? 3 : strtoull(argv[2], NULL, 10);
  const long sleep_ms = argc > 3 ? strtol(argv[3], NULL, 10) : (oracle ? 0 : 200);
  const uint64_t pages = mib * 1024 * 1024 / kPage;
  if (pages == 0) {
    fprintf(stderr, "vtest-memcheck: MIB must be at least 1\n");
    return 2;
  }
  uint64_t* buf = mmap(NULL, pages * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (buf == MAP_FAILED) {
    perror("vtest-memcheck: mmap");
    return 2;
  }
  printf("memcheck: %" PRIu64 " pages\n", pages);
  fflush(stdout);
  for (uint64_t p = 1; passes == 0 || p <= passes; ++p) {
    for (uint64_t i = 0; i < pages; ++i) {
      uint64_t* page = buf + i * kWords;
      const uint64_t want = p == 1 ? 0 : ((p - 1) << 32 | i);
      const uint64_t want_last = p == 1 ? 0 : ~want;
      if (page[0] != want || page[kWords - 1] != want_last) {
        const int w = page[0] != want ? 0 : kWords - 1;
        printf("memcheck: MISMATCH pass %" PRIu64 " page %" PRIu64 " word %d expected %#" PRIx64 " got %#" PRIx64 "\n",
               p, i, w, w ? want_last : want, page[w]);
        fflush(stdout);
        return 1;
      }
      page[0] = p << 32 | i;
      page[kWords - 1] = ~(p << 32 | i);
    }
    if (oracle)
      printf("memcheck: pass %" PRIu64 " ok\n", p);
    else
      printf("memcheck: pass %" PRIu64 " ok t=%.3f wall=%.3f\n", p, seconds(CLOCK_MONOTONIC), seconds(CLOCK_REALTIME));
    fflush(stdout);
    if (sleep_ms > 0) usleep((useconds_t)sleep_ms * 1000);
  }
  printf("memcheck: done\n");
  return 0;
}
