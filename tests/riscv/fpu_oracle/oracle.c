// Differential oracle for tests/riscv/fpu_test.cpp: runs on a real RISC-V implementation (in practice
// qemu-riscv64-static) and executes raw OP-FP / FMA encodings chosen by the test.
//
// stdin:  a sequence of struct In records; stdout: one struct Out record per input.
// Every instruction uses the fixed registers rd = 10 (f10 or a0), rs1 = 11 (f11 or a1), rs2 = f12,
// rs3 = f13. Each distinct encoding is placed once in an executable buffer as "insn; ret" and
// called with the registers and fcsr loaded from the record. An illegal encoding raises SIGILL,
// which is reported as status 1.
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

struct In {
  uint32_t insn;
  uint32_t fcsr;
  uint64_t f11, f12, f13, f10, x11, x10;
};
struct Out {
  uint64_t f10, x10;
  uint32_t fcsr;
  uint32_t status;
};

static sigjmp_buf g_jump;
static void on_sigill(int sig) {
  (void)sig;
  siglongjmp(g_jump, 1);
}

// Open-addressing map from encoding to stub slot.
#define MAP_SIZE 65536u
static uint32_t g_keys[MAP_SIZE];
static uint32_t g_vals[MAP_SIZE];
static uint8_t g_used[MAP_SIZE];

static void run_one(const struct In* r, struct Out* o, void* fn) {
  if (sigsetjmp(g_jump, 1)) {
    o->status = 1;
    return;
  }
  uint64_t fcsr_out;
  __asm__ volatile(
      "fld f11, 8(%[in])\n\t"
      "fld f12, 16(%[in])\n\t"
      "fld f13, 24(%[in])\n\t"
      "fld f10, 32(%[in])\n\t"
      "ld a1, 40(%[in])\n\t"
      "ld a0, 48(%[in])\n\t"
      "fscsr %[fi]\n\t"
      "jalr ra, 0(%[fn])\n\t"
      "frcsr %[fo]\n\t"
      "fsd f10, 0(%[out])\n\t"
      "sd a0, 8(%[out])\n\t"
      : [fo] "=&r"(fcsr_out)
      : [in] "r"(r), [out] "r"(o), [fn] "r"(fn), [fi] "r"((uint64_t)r->fcsr)
      : "ra", "a0", "a1", "f10", "f11", "f12", "f13", "memory");
  o->fcsr = (uint32_t)fcsr_out;
  o->status = 0;
}

int main(void) {
  size_t cap = 1u << 20, len = 0;
  unsigned char* buf = malloc(cap);
  for (;;) {
    if (len == cap) buf = realloc(buf, cap *= 2);
    size_t n = fread(buf + len, 1, cap - len, stdin);
    if (n == 0) break;
    len += n;
  }
  size_t count = len / sizeof(struct In);
  struct In* in = (struct In*)buf;

  size_t max_stubs = MAP_SIZE / 2;
  uint32_t* code =
      mmap(NULL, max_stubs * 8, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (code == MAP_FAILED) {
    perror("mmap");
    return 2;
  }
  uint32_t* slot = malloc(count * sizeof(uint32_t));
  uint32_t nstubs = 0;
  for (size_t i = 0; i < count; ++i) {
    uint32_t k = in[i].insn, h = (k * 2654435761u) >> 16;
    while (g_used[h] && g_keys[h] != k) h = (h + 1) & (MAP_SIZE - 1);
    if (!g_used[h]) {
      if (nstubs == max_stubs) {
        fprintf(stderr, "too many distinct encodings\n");
        return 2;
      }
      g_used[h] = 1;
      g_keys[h] = k;
      g_vals[h] = nstubs;
      code[2 * nstubs] = k;
      code[2 * nstubs + 1] = 0x00008067;  // ret
      ++nstubs;
    }
    slot[i] = g_vals[h];
  }
  __asm__ volatile("fence.i" ::: "memory");

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigill;
  sa.sa_flags = SA_NODEFER;
  sigaction(SIGILL, &sa, NULL);

  struct Out* out = calloc(count ? count : 1, sizeof(struct Out));
  for (size_t i = 0; i < count; ++i) run_one(&in[i], &out[i], &code[2 * slot[i]]);
  fwrite(out, sizeof(struct Out), count, stdout);
  return fflush(stdout) == 0 ? 0 : 2;
}
