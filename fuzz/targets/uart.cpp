// Fuzz target `uart`: random MMIO reads and writes on a Uart16550, interleaved with host
// input, resets and FIFO floods.
//
// Invariants: a successful read yields one byte (zero-extended), and push_input takes
// exactly min(n, input_space()) bytes.
//
// Input: a sequence of operations until the input ends, each starting with u8 op:
//   op & 3 == 0  read:  offset, size = kSizes[(op >> 2) & 7]
//   op & 3 == 1  write: offset, size, then u8 value (u64 if op & 0x80)
//   op & 3 == 2  push_input of (u8 & 63) following bytes
//   op & 3 == 3  (op >> 2) & 3: 0 reset, 1 flood the receive FIFO, 2 input_space, 3 push 0 bytes
// offset: u8; values 0xf0..0xff mean "a raw u64 follows".
#include <algorithm>
#include <cstdint>
#include <vector>

#include "devices/uart16550.h"
#include "fuzz_input.h"

namespace {

using namespace vigil::devices;
using vigil::fuzz::Input;

constexpr unsigned kSizes[8] = {1, 2, 4, 8, 1, 1, 0, 3};

class Irq final : public IrqLine {
 public:
  void set_level(bool high) override { level = high; }
  bool level = false;
};

uint64_t offset(Input& in) {
  const uint8_t o = in.u8();
  return o >= 0xf0 ? in.u64() : o & 0x0f;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Input in(data, size);
  Irq irq;
  uint64_t out_bytes = 0;
  Uart16550 uart([&](uint8_t) { ++out_bytes; }, (size & 1) ? &irq : nullptr);
  while (!in.empty()) {
    const uint8_t op = in.u8();
    const unsigned sz = kSizes[(op >> 2) & 7];
    switch (op & 3) {
      case 0: {
        const uint64_t off = offset(in);
        uint64_t v = 0;
        if (uart.read(off, sz, v)) FUZZ_CHECK(v <= 0xff);
        break;
      }
      case 1: {
        const uint64_t off = offset(in);
        const uint64_t v = (op & 0x80) ? in.u64() : in.u8();
        uart.write(off, sz, v);
        break;
      }
      case 2: {
        const auto bytes = in.bytes(in.u8() & 63);
        const size_t space = uart.input_space();
        const size_t got = uart.push_input(bytes.data(), bytes.size());
        FUZZ_CHECK(got == std::min(space, bytes.size()));
        break;
      }
      default:
        switch ((op >> 2) & 3) {
          case 0: uart.reset(); break;
          case 1: {
            const std::vector<uint8_t> flood(Uart16550::kRxFifoCapacity + 7, 'x');
            const size_t space = uart.input_space();
            FUZZ_CHECK(uart.push_input(flood.data(), flood.size()) == space);
            FUZZ_CHECK(uart.input_space() == 0);
            break;
          }
          case 2: FUZZ_CHECK(uart.input_space() <= Uart16550::kRxFifoCapacity); break;
          default: FUZZ_CHECK(uart.push_input(nullptr, 0) == 0); break;
        }
        break;
    }
  }
  return 0;
}
