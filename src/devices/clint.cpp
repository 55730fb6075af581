#include "devices/clint.h"

namespace vigil::devices {

namespace {
constexpr uint64_t kMsipBase = 0x0000, kMtimecmpBase = 0x4000, kMtime = 0xbff8;

// Reads `size` bytes at byte `shift` of a 64-bit register.
uint64_t extract(uint64_t reg, unsigned shift, unsigned size) {
  return size == 8 ? reg : (reg >> (8 * shift)) & ((1ull << (8 * size)) - 1);
}
uint64_t insert(uint64_t reg, unsigned shift, unsigned size, uint64_t value) {
  if (size == 8) return value;
  const uint64_t mask = ((1ull << (8 * size)) - 1) << (8 * shift);
  return (reg & ~mask) | ((value << (8 * shift)) & mask);
}
}  // namespace

bool Clint::read(uint64_t offset, unsigned size, uint64_t& value) {
  if ((size != 4 && size != 8) || (offset & (size - 1))) return false;
  const unsigned harts = m_target.hart_count();
  if (offset < kMsipBase + 4ull * harts) {
    if (size != 4) return false;
    value = m_target.msip(static_cast<unsigned>(offset / 4)) ? 1 : 0;
  } else if (offset >= kMtimecmpBase && offset < kMtimecmpBase + 8ull * harts) {
    const uint64_t rel = offset - kMtimecmpBase;
    value = extract(m_target.mtimecmp(static_cast<unsigned>(rel / 8)), rel & 7, size);
  } else if (offset >= kMtime && offset < kMtime + 8) {
    value = extract(m_target.clint_mtime(), static_cast<unsigned>(offset - kMtime), size);
  } else {
    value = 0;
  }
  return true;
}

bool Clint::write(uint64_t offset, unsigned size, uint64_t value) {
  if ((size != 4 && size != 8) || (offset & (size - 1))) return false;
  const unsigned harts = m_target.hart_count();
  if (offset < kMsipBase + 4ull * harts) {
    if (size != 4) return false;
    m_target.set_msip(static_cast<unsigned>(offset / 4), value & 1);
  } else if (offset >= kMtimecmpBase && offset < kMtimecmpBase + 8ull * harts) {
    const uint64_t rel = offset - kMtimecmpBase;
    const auto hart = static_cast<unsigned>(rel / 8);
    m_target.set_mtimecmp(hart, insert(m_target.mtimecmp(hart), rel & 7, size, value));
  }
  // mtime is not writable on this board; other offsets are reserved and ignore writes.
  return true;
}

}  // namespace vigil::devices
