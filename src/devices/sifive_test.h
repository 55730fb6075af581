// The "sifive,test0" finisher (as on QEMU virt): a 32-bit write at offset 0 ends the machine.
// Firmware (OpenSBI) and Linux's syscon-poweroff/syscon-reboot drivers use it.
#pragma once

#include <cstdint>
#include <functional>

#include "devices/device.h"

namespace vigil::devices {

class SifiveTest final : public MmioDevice {
 public:
  static constexpr uint64_t kSize = 0x1000;
  enum class Action { kPass, kFail, kReset };
  using Callback = std::function<void(Action, uint32_t code)>;

  explicit SifiveTest(Callback cb) : m_cb(std::move(cb)) {}
  std::string_view name() const override { return "sifive-test"; }
  bool read(uint64_t offset, unsigned size, uint64_t& value) override;
  bool write(uint64_t offset, unsigned size, uint64_t value) override;

 private:
  Callback m_cb;
};

}  // namespace vigil::devices
