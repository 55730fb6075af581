/*
 * vtest-monitor: guest side of the vm_event end-to-end tests (tests/e2e/test_monitor.py).
 *
 *   vtest-monitor                  self-check only: prints "vtest-monitor OK"
 *   vtest-monitor syscalls N       N times write(777, 0x5157, 4242) (fails with EBADF) and
 *                                  getppid(); prints its pid first and the last return value
 *   vtest-monitor open N           N times open("/proc/version") and close
 *   vtest-monitor protect SECONDS  a page holding 0x11111111, its physical address from
 *                                  /proc/self/pagemap, then after SECONDS a store of 0x22222222
 *                                  to it and what the page holds afterwards
 *   vtest-monitor bench N          CPU work with a getppid() every 1000 rounds of it, N rounds;
 *                                  prints the time taken
 * Every line it prints for the host starts with "VTEST-MON ".
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int syscalls(long n) {
  printf("VTEST-MON pid=%d\n", getpid());
  fflush(stdout);
  long ret = 0;
  for (long i = 0; i < n; ++i) {
    ret = syscall(SYS_write, 777, (void*)0x5157, 4242);
    syscall(SYS_getppid);
  }
  printf("VTEST-MON syscalls=%ld ret=%ld\n", n, ret);
  return 0;
}

static int opens(long n) {
  for (long i = 0; i < n; ++i) {
    int fd = open("/proc/version", O_RDONLY);
    if (fd < 0) return 1;
    close(fd);
  }
  printf("VTEST-MON opens=%ld\n", n);
  return 0;
}

static int protect(long seconds) {
  volatile uint32_t* page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_LOCKED, -1, 0);
  if (page == MAP_FAILED) return 1;
  page[0] = 0x11111111;
  int fd = open("/proc/self/pagemap", O_RDONLY);
  uint64_t entry = 0;
  if (fd < 0 || pread(fd, &entry, 8, (off_t)((uintptr_t)page / 4096) * 8) != 8) return 1;
  close(fd);
  if (!(entry >> 63)) return 1;  /* not present */
  const uint64_t pa = (entry & ((1ull << 55) - 1)) * 4096;
  printf("VTEST-MON pa=0x%" PRIx64 "\n", pa);
  fflush(stdout);
  sleep((unsigned)seconds);
  page[0] = 0x22222222;
  printf("VTEST-MON after=0x%08" PRIx32 "\n", page[0]);
  printf("VTEST-MON alive\n");
  return 0;
}

static int bench(long n) {
  const double t0 = now();
  uint64_t x = 88172645463325252ull;
  for (long i = 0; i < n; ++i) {
    for (int k = 0; k < 1000; ++k) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
    }
    syscall(SYS_getppid);
  }
  printf("VTEST-MON bench rounds=%ld seconds=%.3f x=%" PRIx64 "\n", n, now() - t0, x);
  return 0;
}

int main(int argc, char** argv) {
  if (argc < 3) {
    printf("vtest-monitor OK\n");
    return 0;
  }
  const long n = strtol(argv[2], NULL, 0);
  if (!strcmp(argv[1], "syscalls")) return syscalls(n);
  if (!strcmp(argv[1], "open")) return opens(n);
  if (!strcmp(argv[1], "protect")) return protect(n);
  if (!strcmp(argv[1], "bench")) return bench(n);
  fprintf(stderr, "vtest-monitor: unknown mode %s\n", argv[1]);
  return 2;
}
