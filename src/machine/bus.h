// Physical address decoding for device space. Devices see only offsets within their own
// range; overlapping ranges are refused when added (STYLE.md 3).
#pragma once

#include <cstdint>
#include <vector>

#include "base/error.h"
#include "devices/device.h"

namespace vigil::machine {

class Bus {
 public:
  Result<void> add(uint64_t base, uint64_t size, devices::MmioDevice* device);
  // Returns the device and the offset within it for [pa, pa+size), or nullptr.
  devices::MmioDevice* find(uint64_t pa, unsigned size, uint64_t& offset) const;

 private:
  struct Range {
    uint64_t base, size;
    devices::MmioDevice* device;
  };
  std::vector<Range> m_ranges;
};

}  // namespace vigil::machine
