#include "machine/bus.h"

namespace vigil::machine {

Result<void> Bus::add(uint64_t base, uint64_t size, devices::MmioDevice* device) {
  if (size == 0 || base + size < base) return make_error("device {} has an empty or wrapping range", device->name());
  for (const Range& r : m_ranges) {
    if (base < r.base + r.size && r.base < base + size) {
      return make_error("device {} at {:#x} overlaps {} at {:#x}", device->name(), base, r.device->name(), r.base);
    }
  }
  m_ranges.push_back({base, size, device});
  return {};
}

devices::MmioDevice* Bus::find(uint64_t pa, unsigned size, uint64_t& offset) const {
  for (const Range& r : m_ranges) {
    if (pa >= r.base && pa - r.base < r.size && size <= r.size - (pa - r.base)) {
      offset = pa - r.base;
      return r.device;
    }
  }
  return nullptr;
}

}  // namespace vigil::machine
