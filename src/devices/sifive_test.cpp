#include "devices/sifive_test.h"

namespace vigil::devices {

namespace {
constexpr uint32_t kFail = 0x3333, kPass = 0x5555, kReset = 0x7777;
}

bool SifiveTest::read(uint64_t offset, unsigned size, uint64_t& value) {
  if (offset >= kSize || size > 8) return false;
  value = 0;
  return true;
}

bool SifiveTest::write(uint64_t offset, unsigned size, uint64_t value) {
  if (offset >= kSize || size > 8) return false;
  // OpenSBI writes the command with a 16-bit store; the fail code sits in the upper half.
  if (offset != 0 || size < 2) return true;
  const auto v = static_cast<uint32_t>(value);
  switch (v & 0xffff) {
    case kPass: m_cb(Action::kPass, 0); break;
    case kFail: m_cb(Action::kFail, v >> 16); break;
    case kReset: m_cb(Action::kReset, 0); break;
    default: break;
  }
  return true;
}

}  // namespace vigil::devices
