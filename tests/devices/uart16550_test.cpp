#include "devices/uart16550.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace vigil::devices {
namespace {

// Register offsets and bits as a driver sees them (PC16550D "Registers" chapter).
constexpr uint64_t kRbrThr = 0, kIer = 1, kIirFcr = 2, kLcr = 3, kMcr = 4, kLsr = 5, kMsr = 6, kScr = 7;
constexpr uint8_t kIirNone = 0x01, kIirRls = 0x06, kIirRda = 0x04, kIirThre = 0x02, kIirMsr = 0x00;

class FakeIrqLine : public IrqLine {
 public:
  void set_level(bool high) override {
    if (high == level) ++redundant_calls;  // the UART should only report changes
    level = high;
    ++calls;
  }
  bool level = false;
  int calls = 0;
  int redundant_calls = 0;
};

class UartTest : public ::testing::Test {
 protected:
  UartTest() : uart([this](uint8_t b) { output.push_back(static_cast<char>(b)); }, &irq) {}

  uint8_t rd(uint64_t offset) {
    uint64_t v = 0xdeadbeef;
    EXPECT_TRUE(uart.read(offset, 1, v));
    EXPECT_LE(v, 0xffu);
    return static_cast<uint8_t>(v);
  }
  void wr(uint64_t offset, uint8_t v) { EXPECT_TRUE(uart.write(offset, 1, v)); }
  void push(const std::string& s) {
    EXPECT_EQ(uart.push_input(reinterpret_cast<const uint8_t*>(s.data()), s.size()), s.size());
  }
  void TearDown() override { EXPECT_EQ(irq.redundant_calls, 0); }

  std::string output;
  FakeIrqLine irq;
  Uart16550 uart;
};

TEST_F(UartTest, ByteWrittenToThrReachesSink) {
  wr(kRbrThr, 'O');
  wr(kRbrThr, 'K');
  EXPECT_EQ(output, "OK");
  // Transmission is instantaneous: THRE and TEMT stay set.
  EXPECT_EQ(rd(kLsr) & 0x60, 0x60);
}

TEST_F(UartTest, DivisorLatchOverlaysThrAndIer) {
  wr(kIer, 0x05);
  wr(kLcr, 0x83);  // DLAB + 8N1
  wr(kRbrThr, 0x12);
  wr(kIer, 0x34);
  EXPECT_EQ(rd(kRbrThr), 0x12);
  EXPECT_EQ(rd(kIer), 0x34);
  EXPECT_EQ(output, "");  // DLL write is not a transmission
  wr(kLcr, 0x03);
  EXPECT_EQ(rd(kIer), 0x05);  // IER was untouched by the DLM write
  EXPECT_EQ(rd(kLcr), 0x03);
  wr(kRbrThr, 'x');
  EXPECT_EQ(output, "x");
  wr(kLcr, 0x80);
  EXPECT_EQ(rd(kRbrThr), 0x12);  // divisor kept across DLAB toggles
}

TEST_F(UartTest, PushedInputReadableViaRbrWithDataReady) {
  EXPECT_EQ(rd(kLsr) & 0x01, 0);
  push("hi");
  EXPECT_EQ(rd(kLsr) & 0x01, 0x01);
  EXPECT_EQ(rd(kRbrThr), 'h');
  EXPECT_EQ(rd(kLsr) & 0x01, 0x01);
  EXPECT_EQ(rd(kRbrThr), 'i');
  EXPECT_EQ(rd(kLsr) & 0x01, 0);
  EXPECT_EQ(rd(kRbrThr), 0);  // empty FIFO reads 0, no underflow
}

TEST_F(UartTest, ReceiveFifoIsLargeAndBackPressuresHost) {
  std::vector<uint8_t> big(Uart16550::kRxFifoCapacity + 100);
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<uint8_t>(i);
  EXPECT_EQ(uart.input_space(), Uart16550::kRxFifoCapacity);
  EXPECT_EQ(uart.push_input(big.data(), big.size()), Uart16550::kRxFifoCapacity);
  EXPECT_EQ(uart.input_space(), 0u);
  EXPECT_EQ(uart.push_input(big.data(), 1), 0u);
  EXPECT_EQ(rd(kLsr) & 0x02, 0);  // host back-pressure is not an overrun
  EXPECT_EQ(rd(kRbrThr), 0);
  EXPECT_EQ(uart.input_space(), 1u);
  for (size_t i = 1; i < Uart16550::kRxFifoCapacity; ++i) ASSERT_EQ(rd(kRbrThr), static_cast<uint8_t>(i));
  EXPECT_EQ(rd(kLsr) & 0x01, 0);
  EXPECT_EQ(uart.push_input(nullptr, 5), 0u);
}

TEST_F(UartTest, RxInterruptRaisedAndCleared) {
  wr(kIer, 0x01);  // ERBFI
  EXPECT_FALSE(irq.level);
  EXPECT_EQ(rd(kIirFcr), kIirNone);
  push("ab");
  EXPECT_TRUE(irq.level);
  EXPECT_EQ(rd(kIirFcr), kIirRda);
  EXPECT_TRUE(irq.level);  // reading IIR does not acknowledge received data
  rd(kRbrThr);
  EXPECT_TRUE(irq.level);
  rd(kRbrThr);
  EXPECT_FALSE(irq.level);
  EXPECT_EQ(rd(kIirFcr), kIirNone);
  // Data waiting while ERBFI is off raises as soon as it is enabled, and drops with it.
  wr(kIer, 0x00);
  push("c");
  EXPECT_FALSE(irq.level);
  wr(kIer, 0x01);
  EXPECT_TRUE(irq.level);
  wr(kIer, 0x00);
  EXPECT_FALSE(irq.level);
}

TEST_F(UartTest, ThreInterruptClearedByIirReadAndRaisedByThrWrite) {
  wr(kIer, 0x02);  // ETBEI with THR empty -> raised
  EXPECT_TRUE(irq.level);
  EXPECT_EQ(rd(kIirFcr), kIirThre);
  EXPECT_FALSE(irq.level);  // IIR read reporting THRE acknowledges it
  EXPECT_EQ(rd(kIirFcr), kIirNone);
  wr(kRbrThr, 'a');  // byte leaves at once, THR empty again
  EXPECT_TRUE(irq.level);
  EXPECT_EQ(output, "a");
  EXPECT_EQ(rd(kIirFcr), kIirThre);
  EXPECT_FALSE(irq.level);
  // Reading LSR or writing other registers does not re-raise it.
  rd(kLsr);
  wr(kScr, 1);
  EXPECT_FALSE(irq.level);
}

TEST_F(UartTest, ThreReassertedWhenEtbeiReEnabled) {
  // Linux serial8250_do_startup's UART_BUG_THRE probe: enable, read IIR, disable,
  // enable, read IIR again; the second read must still report THRE.
  wr(kIer, 0x02);
  EXPECT_EQ(rd(kIirFcr), kIirThre);
  wr(kIer, 0x00);
  EXPECT_FALSE(irq.level);
  wr(kIer, 0x02);
  EXPECT_TRUE(irq.level);
  EXPECT_EQ(rd(kIirFcr), kIirThre);
  // Rewriting IER with ETBEI already set is not a 0->1 edge: nothing new.
  wr(kIer, 0x02);
  EXPECT_FALSE(irq.level);
  EXPECT_EQ(rd(kIirFcr), kIirNone);
}

TEST_F(UartTest, IirPriorityOrder) {
  wr(kIirFcr, 0x01);  // FIFO on: IIR bits 7:6 read 11
  wr(kMcr, 0x10);     // loopback, so the guest can cause an overrun itself
  wr(kIer, 0x0f);     // every source enabled
  // Modem status delta: loopback toggles CTS via RTS.
  wr(kMcr, 0x12);
  // Fill the FIFO and one more byte: overrun (line status).
  for (size_t i = 0; i <= Uart16550::kRxFifoCapacity; ++i) wr(kRbrThr, 'z');
  EXPECT_EQ(output, "");  // loopback output never reaches the sink
  EXPECT_TRUE(irq.level);

  EXPECT_EQ(rd(kIirFcr), 0xc0 | kIirRls);
  EXPECT_EQ(rd(kLsr) & 0x03, 0x03);  // OE + DR; read clears OE
  EXPECT_EQ(rd(kLsr) & 0x02, 0);
  EXPECT_EQ(rd(kIirFcr), 0xc0 | kIirRda);
  EXPECT_EQ(rd(kIirFcr), 0xc0 | kIirRda);  // THRE hidden behind RDA survives IIR reads
  for (size_t i = 0; i < Uart16550::kRxFifoCapacity; ++i) rd(kRbrThr);
  EXPECT_EQ(rd(kIirFcr), 0xc0 | kIirThre);  // reported now, and acknowledged by this read
  EXPECT_EQ(rd(kIirFcr), 0xc0 | kIirMsr);
  EXPECT_TRUE(irq.level);
  EXPECT_EQ(rd(kMsr) & 0x01, 0x01);  // DCTS; read clears deltas
  EXPECT_EQ(rd(kIirFcr), 0xc0 | kIirNone);
  EXPECT_FALSE(irq.level);
}

TEST_F(UartTest, LoopbackModeAsLinuxAutoconfigProbesIt) {
  push("q");
  wr(kMcr, 0x1a);                    // LOOP | OUT2 | RTS
  EXPECT_EQ(rd(kMsr) & 0xf0, 0x90);  // DCD | CTS
  wr(kMcr, 0x15);                    // LOOP | OUT1 | DTR
  EXPECT_EQ(rd(kMsr) & 0xf0, 0x60);  // RI | DSR
  EXPECT_EQ(rd(kRbrThr), 'q');       // earlier input still readable
  wr(kRbrThr, 'L');
  EXPECT_EQ(output, "");
  EXPECT_EQ(rd(kLsr) & 0x01, 0x01);
  EXPECT_EQ(rd(kRbrThr), 'L');
  // The receiver is disconnected from the host while looping back.
  EXPECT_EQ(uart.input_space(), 0u);
  const uint8_t b = 'h';
  EXPECT_EQ(uart.push_input(&b, 1), 0u);
  wr(kMcr, 0x0b);
  EXPECT_EQ(rd(kMsr) & 0xf0, 0xb0);  // outside loopback: CTS, DSR, DCD
  EXPECT_EQ(rd(kMcr), 0x0b);
  EXPECT_EQ(uart.push_input(&b, 1), 1u);
  wr(kRbrThr, 'T');
  EXPECT_EQ(output, "T");
}

TEST_F(UartTest, MsrDeltaBitsInLoopback) {
  wr(kMcr, 0x10);
  rd(kMsr);               // discard the deltas of entering loopback
  wr(kMcr, 0x10 | 0x04);  // OUT1 on -> RI rises: no TERI (trailing edge only)
  EXPECT_EQ(rd(kMsr), 0x40);
  wr(kMcr, 0x10);  // RI falls -> TERI
  EXPECT_EQ(rd(kMsr), 0x04);
  wr(kMcr, 0x10 | 0x08 | 0x01);  // DCD and DSR rise
  EXPECT_EQ(rd(kMsr), 0x80 | 0x20 | 0x08 | 0x02);
  EXPECT_EQ(rd(kMsr), 0x80 | 0x20);  // deltas cleared by the read
}

TEST_F(UartTest, FifoControl) {
  EXPECT_EQ(rd(kIirFcr) & 0xc0, 0);
  wr(kIirFcr, 0x01);
  EXPECT_EQ(rd(kIirFcr) & 0xc0, 0xc0);
  push("abc");
  wr(kIirFcr, 0xc1);  // same enable, new trigger level: FIFO kept
  EXPECT_EQ(rd(kLsr) & 0x01, 0x01);
  wr(kIirFcr, 0x03);  // receive FIFO reset
  EXPECT_EQ(rd(kLsr) & 0x01, 0);
  push("d");
  wr(kIirFcr, 0x00);  // disabling the FIFOs clears them
  EXPECT_EQ(rd(kLsr) & 0x01, 0);
  EXPECT_EQ(rd(kIirFcr) & 0xc0, 0);
  push("e");
  wr(kIirFcr, 0x02);  // reset bit without enable is not programmed
  EXPECT_EQ(rd(kLsr) & 0x01, 0x01);
}

TEST_F(UartTest, RegisterMasksAndScratch) {
  wr(kIer, 0xff);
  EXPECT_EQ(rd(kIer), 0x0f);
  wr(kIer, 0);
  wr(kMcr, 0xff);
  EXPECT_EQ(rd(kMcr), 0x1f);
  wr(kMcr, 0);
  rd(kMsr);  // drop the deltas of leaving loopback
  wr(kScr, 0xa5);
  EXPECT_EQ(rd(kScr), 0xa5);
  wr(kLsr, 0x00);  // writes to LSR/MSR are ignored
  wr(kMsr, 0xff);
  EXPECT_EQ(rd(kLsr), 0x60);
  EXPECT_EQ(rd(kMsr), 0xb0);
}

TEST_F(UartTest, OddOffsetsAndSizes) {
  uint64_t v = 0;
  EXPECT_FALSE(uart.read(8, 1, v));
  EXPECT_FALSE(uart.write(8, 1, 0));
  EXPECT_FALSE(uart.read(~0ull, 1, v));
  EXPECT_FALSE(uart.write(0x100000000ull, 1, 'x'));
  EXPECT_FALSE(uart.read(0, 3, v));
  EXPECT_FALSE(uart.write(0, 0, 'x'));
  EXPECT_FALSE(uart.write(0, 16, 'x'));
  EXPECT_EQ(output, "");
  // Wider accesses at valid offsets act on the low byte.
  EXPECT_TRUE(uart.write(kRbrThr, 4, 0x12345641));
  EXPECT_EQ(output, "A");
  EXPECT_TRUE(uart.write(kScr, 8, 0xffffffffffffff5aull));
  v = ~0ull;
  EXPECT_TRUE(uart.read(kScr, 8, v));
  EXPECT_EQ(v, 0x5au);
  EXPECT_TRUE(uart.read(kLsr, 2, v));
  EXPECT_EQ(v, 0x60u);
}

TEST_F(UartTest, ResetRestoresPowerOnState) {
  wr(kIer, 0x03);
  wr(kLcr, 0x83);
  wr(kRbrThr, 0x01);
  wr(kLcr, 0x03);
  wr(kMcr, 0x0f);
  wr(kScr, 9);
  push("xyz");
  EXPECT_TRUE(irq.level);
  uart.reset();
  EXPECT_FALSE(irq.level);
  EXPECT_EQ(rd(kIer), 0);
  EXPECT_EQ(rd(kLcr), 0);
  EXPECT_EQ(rd(kMcr), 0);
  EXPECT_EQ(rd(kScr), 0);
  EXPECT_EQ(rd(kLsr), 0x60);
  EXPECT_EQ(rd(kIirFcr), kIirNone);
  EXPECT_EQ(uart.input_space(), Uart16550::kRxFifoCapacity);
}

TEST(Uart16550Standalone, NullSinkAndLineAreAllowed) {
  Uart16550 uart({}, nullptr);
  EXPECT_TRUE(uart.write(kIer, 1, 0x0f));
  EXPECT_TRUE(uart.write(kRbrThr, 1, 'x'));
  const uint8_t b = 1;
  EXPECT_EQ(uart.push_input(&b, 1), 1u);
  uint64_t v = 0;
  EXPECT_TRUE(uart.read(kIirFcr, 1, v));
  EXPECT_EQ(v, kIirRda);
}

TEST_F(UartTest, RandomAccessesKeepIrqConsistentWithIir) {
  std::mt19937_64 rng(1234);
  const unsigned sizes[] = {0, 1, 2, 3, 4, 8, 16};
  for (int i = 0; i < 100000; ++i) {
    const uint64_t r = rng();
    uint64_t offset = r % 10;  // mostly valid, sometimes just past the end
    if (r % 97 == 0) offset = rng();
    const unsigned size = sizes[(r >> 8) % 7];
    const bool valid = offset < 8 && (size == 1 || size == 2 || size == 4 || size == 8);
    switch ((r >> 16) % 4) {
      case 0: {
        uint64_t v = 0;
        // The line must match IIR as seen just before the read (the read may acknowledge THRE).
        const bool level_before = irq.level;
        ASSERT_EQ(uart.read(offset, size, v), valid);
        if (!valid) break;
        ASSERT_LE(v, 0xffu);
        // IIR sits at offset 2 whatever DLAB says.
        if (offset == kIirFcr) {
          ASSERT_EQ(level_before, (v & 1) == 0) << "access " << i;
        }
        break;
      }
      case 1:
      case 2:
        ASSERT_EQ(uart.write(offset, size, rng()), valid);
        break;
      default: {
        uint8_t buf[64];
        const size_t n = rng() % sizeof buf;
        for (size_t k = 0; k < n; ++k) buf[k] = static_cast<uint8_t>(rng());
        ASSERT_LE(uart.push_input(buf, n), n);
        break;
      }
    }
  }
  EXPECT_LE(uart.input_space(), Uart16550::kRxFifoCapacity);
}

}  // namespace
}  // namespace vigil::devices
