/* M-mode CSRs (and CSRs that do not exist) accessed from S-mode, MRET from S-mode, writes to
 * read-only counters: each must be an illegal-instruction exception (2) delivered to S with
 * the instruction's encoding in stval. */
#include "../rt.h"

/* csrrs t0, CSR, x0 = (csr << 20) | (2 << 12) | (5 << 7) | 0x73 */
#define READ(csr)                                                                     \
  do {                                                                                \
    const u64 before = rt_traps;                                                      \
    __asm__ volatile("csrr t0, " #csr ::: "t0", "memory");                            \
    const u64 expect = ((u64)(csr) << 20) | (2u << 12) | (5u << 7) | 0x73;              \
    print("CSR read-" #csr " scause=%d stval=%x expect=%x\n",                          \
          (i64)(rt_traps != before ? rt_last_scause : NO_TRAP), rt_last_stval, expect); \
  } while (0)

/* csrrw x0, CSR, t1 = (csr << 20) | (6 << 15) | (1 << 12) | 0x73 */
#define WRITE(csr)                                                                    \
  do {                                                                                \
    const u64 before = rt_traps;                                                      \
    __asm__ volatile("li t1, -1\n csrw " #csr ", t1" ::: "t1", "memory");             \
    const u64 expect = ((u64)(csr) << 20) | (6u << 15) | (1u << 12) | 0x73;             \
    print("CSR write-" #csr " scause=%d stval=%x expect=%x\n",                         \
          (i64)(rt_traps != before ? rt_last_scause : NO_TRAP), rt_last_stval, expect); \
  } while (0)

void guest_main(void) {
  rt_quiet = 1;
  READ(0x300); /* mstatus */
  READ(0x301); /* misa */
  READ(0x304); /* mie */
  READ(0x305); /* mtvec */
  READ(0x340); /* mscratch */
  READ(0x341); /* mepc */
  READ(0x344); /* mip */
  READ(0x3a0); /* pmpcfg0 */
  READ(0x3b0); /* pmpaddr0 */
  READ(0xf14); /* mhartid */
  READ(0xb00); /* mcycle */
  READ(0x7a0); /* tselect (debug) */
  READ(0x7b0); /* dcsr (debug mode only) */
  READ(0x600); /* hstatus: no H extension */
  READ(0x1ff); /* an S-level CSR number nothing implements */
  WRITE(0x305); /* mtvec */
  WRITE(0x341); /* mepc */
  WRITE(0xc00); /* cycle: read-only */
  WRITE(0xc01); /* time: read-only */
  const u64 before = rt_traps;
  __asm__ volatile("mret" ::: "memory");
  print("INSN mret scause=%d stval=%x expect=%x\n", (i64)(rt_traps != before ? rt_last_scause : NO_TRAP), rt_last_stval,
        0x30200073ul);
}
