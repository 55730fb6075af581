/* The hostile guests' tiny runtime: SBI calls, console output, trap handling.
 *
 * A case defines `void guest_main(void)` (hart 0) and, if it starts other harts,
 * `void guest_secondary(unsigned long hartid)`. Output goes through the legacy SBI
 * putchar (EID 1). Lines the Python runner checks are of the form "KEY value ...".
 *
 * Exceptions are taken by rt_handle_trap: it records scause/stval, prints
 * "TRAP scause=0x.. stval=0x.. sepc=0x.." (unless rt_quiet), and resumes:
 *   - at rt_resume_pc if a case set it (cleared on use), else
 *   - for instruction fetch faults (scause 1, 12): at the saved ra, so calling a function
 *     pointer into a bad address "returns" to the caller, else
 *   - after the faulting instruction (its length read from sepc).
 * More than rt_max_traps exceptions end the guest with "TRAP-LIMIT" and an SRST
 * system-failure shutdown (vigil exit 3). Interrupts go to rt_irq_hook if set; otherwise
 * the interrupt is masked in sie and reported as "IRQ cause=..". */
#pragma once

typedef unsigned long u64;
typedef long i64;
typedef unsigned int u32;
typedef unsigned short u16;
typedef unsigned char u8;

struct frame {
  u64 x[32];
  u64 sepc, scause, stval, pad;
};

struct sbiret {
  i64 error;
  i64 value;
};

#define RAM_BASE 0x80000000ul
#define UART_BASE 0x10000000ul
#define PLIC_BASE 0x0c000000ul
#define CLINT_BASE 0x02000000ul
#define VIRTIO_BASE 0x10001000ul
#define TEST_BASE 0x00100000ul

#define EID_BASE 0x10
#define EID_TIME 0x54494D45
#define EID_IPI 0x735049
#define EID_RFENCE 0x52464E43
#define EID_HSM 0x48534D
#define EID_SRST 0x53525354
#define EID_DBCN 0x4442434E

#define SIE_SSIE (1ul << 1)
#define SIE_STIE (1ul << 5)
#define SIE_SEIE (1ul << 9)
#define SSTATUS_SIE (1ul << 1)
#define SSTATUS_SUM (1ul << 18)
#define SSTATUS_MXR (1ul << 19)
#define SCAUSE_IRQ (1ul << 63)

#define csr_read(name) ({ u64 __v; __asm__ volatile("csrr %0, " #name : "=r"(__v)::"memory"); __v; })
#define csr_write(name, v) __asm__ volatile("csrw " #name ", %0" ::"r"((u64)(v)) : "memory")
#define csr_set(name, v) __asm__ volatile("csrs " #name ", %0" ::"r"((u64)(v)) : "memory")
#define csr_clear(name, v) __asm__ volatile("csrc " #name ", %0" ::"r"((u64)(v)) : "memory")
#define barrier() __asm__ volatile("fence rw, rw" ::: "memory")

static inline void mmio_w32(u64 a, u32 v) { *(volatile u32*)a = v; }
static inline u32 mmio_r32(u64 a) { return *(volatile u32*)a; }
static inline void mmio_w8(u64 a, u8 v) { *(volatile u8*)a = v; }
static inline u8 mmio_r8(u64 a) { return *(volatile u8*)a; }

/* Trap state (see the file comment). */
extern volatile u64 rt_traps, rt_irqs, rt_last_scause, rt_last_stval, rt_resume_pc;
extern volatile int rt_quiet;
extern volatile u64 rt_max_traps;
extern void (*volatile rt_irq_hook)(struct frame* f);

struct sbiret sbi_call(u64 eid, u64 fid, u64 a0, u64 a1, u64 a2, u64 a3, u64 a4, u64 a5);
long sbi_legacy(u64 eid, u64 a0);
void putc_(char c);
void puts_(const char* s);
void put_hex(u64 v);
void put_dec(i64 v);
/* printf-lite: %s %x (hex with 0x) %d (signed decimal) %u %c */
void print(const char* fmt, ...);
void shutdown(void) __attribute__((noreturn));
void shutdown_failure(void) __attribute__((noreturn));
void fail(const char* why) __attribute__((noreturn));
u64 rdtime(void);
void* memset(void* d, int c, unsigned long n);
void* memcpy(void* d, const void* s, unsigned long n);
int memcmp(const void* a, const void* b, unsigned long n);

/* Runs a one-instruction access that is expected to trap; returns the scause it took, or
 * ~0 if it did not trap. */
u64 expect_trap_load64(u64 addr);
u64 expect_trap_load32(u64 addr);
u64 expect_trap_load16(u64 addr);
u64 expect_trap_load8(u64 addr);
u64 expect_trap_store64(u64 addr, u64 v);
u64 expect_trap_store32(u64 addr, u32 v);
u64 expect_trap_store16(u64 addr, u16 v);
u64 expect_trap_store8(u64 addr, u8 v);
u64 expect_trap_call(u64 addr);
#define NO_TRAP (~0ul)

void guest_main(void);
void guest_secondary(unsigned long hartid) __attribute__((weak));
extern char rt_secondary[];

/* A minimal virtio-mmio driver for the virtio cases (split rings, one queue). */
struct virtq_desc {
  u64 addr;
  u32 len;
  u16 flags;
  u16 next;
};
#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTQ_DESC_F_INDIRECT 4

struct vq {
  u64 base;  /* virtio-mmio slot */
  u32 size;
  struct virtq_desc* desc;
  volatile u16* avail;  /* flags, idx, ring[size] */
  volatile u16* used;   /* flags, idx, then {u32 id, u32 len}[size] */
  u16 avail_idx;
};
/* Resets the device, negotiates VERSION_1 (+ the device feature bits in `feat_lo`), sets up
 * queue 0 with `size` entries in the given page-aligned memory (3 pages) and sets
 * DRIVER_OK. Returns the Status register, or prints and returns 0 if QueueReady stayed 0. */
u32 vq_setup(struct vq* q, u64 base, u32 size, void* mem);
/* Driver feature bits 0-31 vq_setup accepts besides VERSION_1 (e.g. 1 << 28, INDIRECT_DESC). */
extern u32 vq_driver_features_lo;
/* Publishes head `head` with avail idx advanced by one and notifies queue 0. */
void vq_kick(struct vq* q, u16 head);
u16 vq_used_idx(struct vq* q);
u32 vq_used_len(struct vq* q, u16 slot);
u32 virtio_status(u64 base);
