/* SBI calls with garbage extension IDs, function IDs and arguments. Each must come back
 * with an SBI error code in a0 (-2 not supported, -3 invalid parameter) or a harmless
 * result, never stop the machine or touch memory it should not. */
#include "../rt.h"

static void call(const char* name, u64 eid, u64 fid, u64 a0, u64 a1, u64 a2) {
  struct sbiret r = sbi_call(eid, fid, a0, a1, a2, 0x1111, 0x2222, 0x3333);
  print("SBI %s err=%d value=%d\n", name, r.error, r.value);
}

void guest_main(void) {
  call("eid-deadbeef", 0xdeadbeef, 0, 0, 0, 0);
  call("eid-all-ones", ~0ul, ~0ul, ~0ul, ~0ul, ~0ul);
  call("eid-legacy-reserved-9", 0x09, 0, 0, 0, 0);
  call("eid-legacy-reserved-f", 0x0f, 0, 0, 0, 0);
  call("eid-pmu", 0x504D55, 0, 0, 0, 0);
  call("eid-susp", 0x53555350, 0, 0, 0, 0);
  call("eid-vendor", 0x09000000, 0, 0, 0, 0);
  call("base-fid-99", EID_BASE, 99, 0, 0, 0);
  call("base-probe-garbage", EID_BASE, 3, 0xdeadbeef, 0, 0);
  call("time-fid-1", EID_TIME, 1, 0, 0, 0);
  call("ipi-fid-7", EID_IPI, 7, 1, 0, 0);
  call("ipi-base-past-harts", EID_IPI, 0, 1, 64, 0);
  call("ipi-mask-past-harts", EID_IPI, 0, ~0ul, 0, 0);
  call("ipi-base-wraps", EID_IPI, 0, 3, ~0ul - 1, 0);
  call("rfence-fid-7", EID_RFENCE, 7, 1, 0, 0);
  call("rfence-bad-hart", EID_RFENCE, 0, 2, 0, 0);
  call("rfence-sfence-huge-range", EID_RFENCE, 1, 1, 0, ~0ul);
  call("hsm-fid-9", EID_HSM, 9, 0, 0, 0);
  call("hsm-suspend", EID_HSM, 3, 0x80000000ul, 0x80200000ul, 0);
  call("hsm-status-99", EID_HSM, 2, 99, 0, 0);
  call("srst-fid-1", EID_SRST, 1, 0, 0, 0);
  call("srst-type-5", EID_SRST, 0, 5, 0, 0);
  call("srst-reason-9", EID_SRST, 0, 0, 9, 0);
  call("dbcn-fid-9", EID_DBCN, 9, 0, 0, 0);
  /* Legacy calls take a hart mask by address: bad addresses read as an empty mask. */
  print("LEGACY send-ipi-mask-on-uart ret=%d\n", sbi_legacy(4, UART_BASE));
  print("LEGACY send-ipi-mask-beyond-ram ret=%d\n", sbi_legacy(4, 0x100000000ul));
  print("LEGACY remote-fence-i-mask-top ret=%d\n", sbi_legacy(5, ~0ul - 7));
  print("LEGACY sfence-vma-mask-zero-page ret=%d\n", sbi_legacy(6, 8));
  print("LEGACY clear-ipi ret=%d\n", sbi_legacy(3, 0));
  print("LEGACY getchar ret=%d\n", sbi_legacy(2, 0));
  struct sbiret r = sbi_call(EID_BASE, 0, 0, 0, 0, 0, 0, 0);
  print("STILL-ALIVE spec=%x\n", (u64)r.value);
}
