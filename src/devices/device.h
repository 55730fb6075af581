// The one interface every MMIO device implements (STYLE.md: one device, one shape).
// Devices see only offsets within their own range; the bus does address decoding and
// refuses overlapping ranges. Values a guest controls (offset, size, value) arrive
// unchecked: each device validates them and a bad access is refused, never trusted.
#pragma once

#include <cstdint>
#include <string_view>

namespace vigil::devices {

// A level-triggered interrupt line (device -> interrupt controller).
class IrqLine {
 public:
  virtual ~IrqLine() = default;
  virtual void set_level(bool high) = 0;
};

// Interrupt controller -> hart: raises or lowers one bit of a hart's mip
// (e.g. 9 = SEIP, 11 = MEIP). Safe to call from any thread.
class HartIrqSink {
 public:
  virtual ~HartIrqSink() = default;
  virtual void set_hart_irq(unsigned hart, unsigned mip_bit, bool level) = 0;
};

class MmioDevice {
 public:
  virtual ~MmioDevice() = default;
  virtual std::string_view name() const = 0;
  // size is 1, 2, 4 or 8; offset is relative to the device's base. Return false to
  // make the access fault (the hart raises an access fault to the guest).
  virtual bool read(uint64_t offset, unsigned size, uint64_t& value) = 0;
  virtual bool write(uint64_t offset, unsigned size, uint64_t value) = 0;
  virtual void reset() {}
};

}  // namespace vigil::devices

namespace vigil::devices {

// Guest memory as a device sees it for DMA: guest-physical addresses, every access checked
// (the hypervisor's P2m implements it). A false return means the range is not guest RAM
// the device may touch; the device must then fail the request, never touch host memory.
class DmaMemory {
 public:
  virtual ~DmaMemory() = default;
  virtual bool read(uint64_t gpa, void* dst, uint64_t len) = 0;
  virtual bool write(uint64_t gpa, const void* src, uint64_t len) = 0;
};

}  // namespace vigil::devices
