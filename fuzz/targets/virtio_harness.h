// Shared by the virtio fuzz targets (virtio_blk, virtio_rng): a VirtioMmio transport over
// 64 KiB of fake guest RAM, driven by the fuzz input through its MMIO registers and its
// rings, so descriptor chains are whatever the input makes them.
//
// Ring layout for queue 0 (compact, so a short input covers it): descriptor table at RAM
// offset 0, available ring right after the 16*size bytes of descriptors, used ring after
// that (4-byte aligned). Buffers may point anywhere; with the "relocate" flag every
// descriptor address of queue 0's table is folded into RAM first, so chains are mostly
// plausible.
//
// Input layout:
//   u8 flags   bit 0 bring-up (negotiate, set up queue 0, DRIVER_OK), bit 1 refuse
//              INDIRECT_DESC, bit 2 relocate descriptor addresses, bit 3 no IrqLine,
//              bits 4-7 device-specific (virtio_blk: bit 4 read-only disk)
//   u8 size    queue size = 1 << (size % 10)
//   u16 n, n bytes of RAM from offset 0 (descriptors, rings, data)
//   then operations until the end: u8 op, op % 10:
//     0 notify queue (u8)          1 MMIO write (u16 offset, u8 size sel, u32 value)
//     2 MMIO read (u16, u8 size)   3 poke RAM (u16 offset, u8 len & 31, bytes)
//     4 publish head (u16)         5 set avail idx (u16)
//     6 ack interrupts (u8)        7 write Status (u8)
//     8 device reset()             9 bring-up again
//
// Invariants: the IrqLine is driven only on changes and is high exactly while
// InterruptStatus is non-zero (virtio_mmio.h); MagicValue, Version and DeviceID never
// change; no access reaches outside the fake RAM (FakeDma refuses, ASan checks the rest).
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "devices/virtio_mmio.h"
#include "fuzz_input.h"

namespace vigil::fuzz {

class FakeDma final : public devices::DmaMemory {
 public:
  static constexpr uint64_t kBase = 0x80000000, kSize = 64 * 1024;
  std::vector<uint8_t> ram = std::vector<uint8_t>(kSize, 0);

  static bool inside(uint64_t gpa, uint64_t len) { return gpa >= kBase && len <= kSize && gpa - kBase <= kSize - len; }
  bool read(uint64_t gpa, void* dst, uint64_t len) override {
    if (!inside(gpa, len)) return false;
    if (len) std::memcpy(dst, &ram[gpa - kBase], len);
    return true;
  }
  bool write(uint64_t gpa, const void* src, uint64_t len) override {
    if (!inside(gpa, len)) return false;
    if (len) std::memcpy(&ram[gpa - kBase], src, len);
    return true;
  }
  template <typename T>
  void put(uint64_t off, T v) {
    if (off + sizeof v <= kSize) std::memcpy(&ram[off], &v, sizeof v);
  }
  template <typename T>
  T get(uint64_t off) {
    T v{};
    if (off + sizeof v <= kSize) std::memcpy(&v, &ram[off], sizeof v);
    return v;
  }
};

class CheckedIrq final : public devices::IrqLine {
 public:
  void set_level(bool high) override {
    FUZZ_CHECK(high != level);  // driven only on changes
    level = high;
  }
  bool level = false;
};

inline void run_virtio(devices::VirtioDevice& dev, uint32_t device_id, uint8_t flags, Input& in) {
  using namespace devices;
  FakeDma mem;
  CheckedIrq irq;
  const bool with_irq = !(flags & 8);
  VirtioMmio mmio(dev, mem, with_irq ? &irq : nullptr);

  const uint32_t qsize = 1u << (in.u8() % 10);
  const uint64_t desc = 0, avail = 16ull * qsize, used = (avail + 6 + 2ull * qsize + 3) & ~3ull;
  const auto init = in.bytes(in.u16());
  std::memcpy(mem.ram.data(), init.data(), std::min<size_t>(init.size(), FakeDma::kSize));
  if (flags & 4) {
    for (uint32_t i = 0; i < qsize && desc + 16ull * i + 8 <= FakeDma::kSize; ++i) {
      mem.put<uint64_t>(desc + 16ull * i, FakeDma::kBase + mem.get<uint64_t>(desc + 16ull * i) % FakeDma::kSize);
    }
  }
  uint16_t avail_idx = mem.get<uint16_t>(avail + 2);

  auto rd = [&](uint64_t off) {
    uint64_t v = 0;
    FUZZ_CHECK(mmio.read(off, 4, v));
    FUZZ_CHECK(v <= 0xffffffffu);
    return static_cast<uint32_t>(v);
  };
  auto wr = [&](uint64_t off, uint32_t v) { FUZZ_CHECK(mmio.write(off, 4, v)); };
  auto check = [&] {
    FUZZ_CHECK(rd(0x000) == VirtioMmio::kMagicValue);
    FUZZ_CHECK(rd(0x004) == VirtioMmio::kVersion);
    FUZZ_CHECK(rd(0x008) == device_id);
    const uint32_t isr = rd(0x060);
    FUZZ_CHECK(isr <= 3);
    if (with_irq) FUZZ_CHECK(irq.level == (isr != 0));
  };
  auto bring_up = [&] {
    wr(0x070, 0);
    wr(0x070, kVirtioStatusAcknowledge);
    wr(0x070, kVirtioStatusAcknowledge | kVirtioStatusDriver);
    wr(0x014, 0);
    uint64_t f = rd(0x010);
    wr(0x014, 1);
    f |= uint64_t{rd(0x010)} << 32;
    if (flags & 2) f &= ~kVirtioFIndirectDesc;
    wr(0x024, 0);
    wr(0x020, static_cast<uint32_t>(f));
    wr(0x024, 1);
    wr(0x020, static_cast<uint32_t>(f >> 32));
    wr(0x070, kVirtioStatusAcknowledge | kVirtioStatusDriver | kVirtioStatusFeaturesOk);
    wr(0x030, 0);
    wr(0x038, qsize);
    wr(0x080, static_cast<uint32_t>(FakeDma::kBase + desc));
    wr(0x084, 0);
    wr(0x090, static_cast<uint32_t>(FakeDma::kBase + avail));
    wr(0x094, 0);
    wr(0x0a0, static_cast<uint32_t>(FakeDma::kBase + used));
    wr(0x0a4, 0);
    wr(0x044, 1);
    wr(0x070, rd(0x070) | kVirtioStatusDriverOk);
  };
  if (flags & 1) bring_up();
  check();

  static constexpr unsigned kSizes[4] = {4, 1, 2, 8};
  while (!in.empty()) {
    const uint8_t op = in.u8();
    switch (op % 10) {
      case 0: wr(0x050, in.u8() % 3); break;
      case 1: {
        const uint64_t off = in.u16() & 0x1ff;
        const unsigned sz = kSizes[in.u8() & 3];
        mmio.write(off, sz, in.u32());
        break;
      }
      case 2: {
        const uint64_t off = in.u16() & 0x1ff;
        const unsigned sz = kSizes[in.u8() & 3];
        uint64_t v = 0;
        if (mmio.read(off, sz, v) && sz < 8) FUZZ_CHECK(v < (1ull << (8 * sz)));
        break;
      }
      case 3: {
        const uint64_t off = in.u16() % FakeDma::kSize;
        const auto b = in.bytes(in.u8() & 31);
        std::memcpy(&mem.ram[off], b.data(), std::min<size_t>(b.size(), FakeDma::kSize - off));
        break;
      }
      case 4:
        mem.put<uint16_t>(avail + 4 + 2ull * (avail_idx % qsize), in.u16());
        mem.put<uint16_t>(avail + 2, ++avail_idx);
        break;
      case 5:
        avail_idx = in.u16();
        mem.put<uint16_t>(avail + 2, avail_idx);
        break;
      case 6: wr(0x064, in.u8() & 3); break;
      case 7: wr(0x070, in.u8()); break;
      case 8: mmio.reset(); break;
      default: bring_up(); break;
    }
    check();
  }
}

}  // namespace vigil::fuzz
