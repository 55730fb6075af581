// The Vigil virtual board's physical memory map (compatible with QEMU's "virt" layout, so
// the same kernel config and firmware work on both):
//
//   0x0010_0000 +-------------------------+
//               | sifive,test0 finisher   |  4 KiB   poweroff / reset
//   0x0200_0000 +-------------------------+
//               | CLINT                   |  64 KiB  msip, mtimecmp, mtime
//   0x0c00_0000 +-------------------------+
//               | PLIC                    |  64 MiB  2 contexts per hart (M, S)
//   0x1000_0000 +-------------------------+
//               | NS16550A UART           |  256 B   PLIC source 10
//   0x1000_1000 +-------------------------+
//               | virtio-mmio slots 0..7  |  4 KiB each, PLIC sources 1..8
//   0x1010_0000 +-------------------------+
//               | TPM TIS (with a vTPM)   |  5 x 4 KiB localities, polled, no IRQ
//   0x8000_0000 +-------------------------+
//               | RAM                     |  kernel at +2 MiB, firmware at +0,
//               |                         |  initrd and DTB at the top
//               +-------------------------+
#pragma once

#include <cstdint>

namespace vigil::machine::layout {

inline constexpr uint64_t kTestBase = 0x0010'0000, kTestSize = 0x1000;
inline constexpr uint64_t kClintBase = 0x0200'0000, kClintSize = 0x1'0000;
inline constexpr uint64_t kPlicBase = 0x0c00'0000, kPlicSize = 0x400'0000;
inline constexpr uint64_t kUartBase = 0x1000'0000, kUartSize = 0x100;
inline constexpr uint64_t kVirtioBase = 0x1000'1000, kVirtioSize = 0x1000, kVirtioSlots = 8;
inline constexpr uint64_t kTpmBase = 0x1010'0000, kTpmSize = 0x5000;
inline constexpr uint64_t kRamBase = 0x8000'0000;

inline constexpr unsigned kUartIrq = 10;
inline constexpr unsigned kVirtioIrqBase = 1;
inline constexpr unsigned kPlicSources = 96;

// Kernel Image load offset (the Image header's text_offset is 2 MiB on RV64).
inline constexpr uint64_t kKernelOffset = 0x20'0000;
// The DTB (and fw_dynamic info) live in the top 2 MiB of RAM.
inline constexpr uint64_t kTopReserve = 0x20'0000;
inline constexpr uint64_t kDtbMaxSize = 0x1'0000;
// The vTPM's TCG2 event log, in the same top region: after the DTB and the fw_dynamic info.
inline constexpr uint64_t kTpmLogOffset = kDtbMaxSize + 0x1000, kTpmLogMaxSize = 0x1'0000;

// 10 MHz, as on QEMU virt: mtime ticks every 100 ns.
inline constexpr uint64_t kTimebaseHz = 10'000'000;

inline constexpr unsigned kMaxHarts = 8;

}  // namespace vigil::machine::layout
