// CLINT (the SiFive core-local interruptor; ACLINT MSWI + MTIMER layout as on QEMU virt):
//   0x0000 + 4*h   msip[h]      (bit 0: machine software interrupt of hart h)
//   0x4000 + 8*h   mtimecmp[h]  (64-bit, 32-bit halves accessible)
//   0xbff8         mtime        (read-only here: the platform clock)
#pragma once

#include <cstdint>

#include "devices/device.h"

namespace vigil::devices {

// What the CLINT drives: implemented by the board, which owns the harts.
class ClintTarget {
 public:
  virtual ~ClintTarget() = default;
  virtual unsigned hart_count() const = 0;
  virtual uint64_t clint_mtime() = 0;
  virtual bool msip(unsigned hart) = 0;
  virtual void set_msip(unsigned hart, bool level) = 0;
  virtual uint64_t mtimecmp(unsigned hart) = 0;
  virtual void set_mtimecmp(unsigned hart, uint64_t value) = 0;
};

class Clint final : public MmioDevice {
 public:
  static constexpr uint64_t kSize = 0x10000;
  explicit Clint(ClintTarget& target) : m_target(target) {}
  std::string_view name() const override { return "clint"; }
  bool read(uint64_t offset, unsigned size, uint64_t& value) override;
  bool write(uint64_t offset, unsigned size, uint64_t value) override;

 private:
  ClintTarget& m_target;
};

}  // namespace vigil::devices
