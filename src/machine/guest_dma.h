// Device DMA into guest RAM, checked against the P2m: a range that is not entirely guest
// RAM with the needed rights is refused, so a device can never be steered by a guest into
// host memory or around a monitor's write protection. Writes drop decoded code they cover.
#pragma once

#include <cstring>

#include "devices/device.h"
#include "riscv/hart.h"

namespace vigil::machine {

class GuestDma final : public devices::DmaMemory {
 public:
  explicit GuestDma(riscv::GuestMemory& mem) : m_mem(mem) {}
  bool read(uint64_t gpa, void* dst, uint64_t len) override {
    if (!m_mem.allows(gpa, len, riscv::p2m::kRead)) return false;
    if (len) std::memcpy(dst, m_mem.ptr(gpa), len);
    if (len && m_mem.any_marks()) [[unlikely]] m_mem.note_marked_access(gpa, len, riscv::AccessType::kRead);
    return true;
  }
  bool write(uint64_t gpa, const void* src, uint64_t len) override {
    if (!m_mem.allows(gpa, len, riscv::p2m::kWrite)) return false;
    if (len) {
      std::memcpy(m_mem.ptr(gpa), src, len);
      m_mem.note_write(gpa, len);
      if (m_mem.any_marks()) [[unlikely]] m_mem.note_marked_access(gpa, len, riscv::AccessType::kWrite);
    }
    return true;
  }

 private:
  riscv::GuestMemory& m_mem;
};

}  // namespace vigil::machine
