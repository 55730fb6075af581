// NS16550A UART as QEMU's virt board exposes it and Linux's 8250 driver drives it
// (compatible "ns16550a", reg-shift 0, reg-io-width 1). Register behaviour follows the
// TI/National PC16550D data sheet ("PC16550D UART with FIFOs", "Registers" chapter).
//
// Emulation choices (all invisible to a correct driver):
//  * Transmission is instantaneous: THR is empty again right after a write, so LSR.THRE
//    and LSR.TEMT always read 1 and every THR write re-raises the THRE interrupt.
//  * The receive FIFO holds kRxFifoCapacity bytes rather than 16, so host input pasted in
//    bulk is not lost while the guest is slow to drain it. The FIFO trigger level is not
//    modelled: "received data available" is reported as soon as one byte is waiting
//    (equivalent to the character-timeout interrupt firing immediately). In non-FIFO
//    (16450) mode the same buffer is used, so nothing is overrun either.
//  * Outside loopback the modem inputs read as a connected, ready peer: CTS, DSR and DCD
//    set, RI clear, never changing.
//  * MCR.OUT2 does not gate the interrupt output (as on QEMU's virt board, not as on a PC).
//
// Thread safety: every public member may be called from any thread. State is guarded by
// one mutex which is held while calling the output sink and the IrqLine, so bytes and
// level changes leave in the order the guest produced them. Neither callee may call back
// into this Uart16550 (the board's output sink only writes to the host console; the PLIC's
// IrqLine only touches PLIC state), so this cannot deadlock.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string_view>

#include "devices/device.h"
#include <vector>

#include "base/error.h"

namespace vigil::devices {

class Uart16550 final : public MmioDevice {
 public:
  // Bytes of MMIO space the device decodes (registers 0..7, one byte apart).
  static constexpr uint64_t kMmioSize = 8;
  // Receive FIFO depth; the real part has 16 (see the file comment for why it is larger).
  static constexpr size_t kRxFifoCapacity = 1024;

  using OutputSink = std::function<void(uint8_t)>;

  // output: receives every byte the guest transmits (not called in loopback mode); may be
  //         empty to discard output. irq: the UART's interrupt line; may be null.
  Uart16550(OutputSink output, IrqLine* irq);
  Uart16550(const Uart16550&) = delete;
  Uart16550& operator=(const Uart16550&) = delete;

  std::string_view name() const override { return "uart16550"; }
  bool read(uint64_t offset, unsigned size, uint64_t& value) override;
  bool write(uint64_t offset, unsigned size, uint64_t value) override;
  void reset() override;

  // Host -> guest input. Queues as many of the n bytes as fit and returns how many were
  // taken; the caller keeps the rest and retries later (poll input_space()). Accepts
  // nothing while the guest has the UART in loopback mode, because the receiver is then
  // disconnected from the serial input.
  size_t push_input(const uint8_t* data, size_t n);
  // How many bytes push_input would accept right now.
  size_t input_space() const;

  // Snapshot support (issue 11): every register and the receive FIFO's bytes, oldest first.
  struct State {
    std::vector<uint8_t> rx;
    uint8_t ier = 0, fcr = 0, lcr = 0, mcr = 0, lsr_errors = 0, msr_delta = 0, scr = 0, dll = 0, dlm = 0;
    bool thre_pending = false;
  };
  State save_state() const;
  // Refuses values no register can hold and a FIFO beyond kRxFifoCapacity; re-drives the IRQ.
  Result<void> restore_state(const State& s);

 private:
  // Register bit definitions (PC16550D "Registers" chapter).
  static constexpr uint8_t kIerRxData = 0x01;       // ERBFI
  static constexpr uint8_t kIerThrEmpty = 0x02;     // ETBEI
  static constexpr uint8_t kIerLineStatus = 0x04;   // ELSI
  static constexpr uint8_t kIerModemStatus = 0x08;  // EDSSI
  static constexpr uint8_t kIerMask = 0x0f;         // bits 7:4 are always 0

  static constexpr uint8_t kFcrEnable = 0x01;
  static constexpr uint8_t kFcrRxReset = 0x02;
  static constexpr uint8_t kFcrTxReset = 0x04;
  static constexpr uint8_t kFcrTriggerMask = 0xc0;

  static constexpr uint8_t kLcrDlab = 0x80;

  static constexpr uint8_t kMcrDtr = 0x01;
  static constexpr uint8_t kMcrRts = 0x02;
  static constexpr uint8_t kMcrOut1 = 0x04;
  static constexpr uint8_t kMcrOut2 = 0x08;
  static constexpr uint8_t kMcrLoop = 0x10;
  static constexpr uint8_t kMcrMask = 0x1f;  // bits 7:5 are always 0

  static constexpr uint8_t kLsrDataReady = 0x01;
  static constexpr uint8_t kLsrOverrun = 0x02;
  static constexpr uint8_t kLsrErrorMask = 0x1e;  // OE, PE, FE, BI: cleared by reading LSR
  static constexpr uint8_t kLsrThrEmpty = 0x20;
  static constexpr uint8_t kLsrTxEmpty = 0x40;

  static constexpr uint8_t kMsrDeltaCts = 0x01;    // DCTS
  static constexpr uint8_t kMsrDeltaDsr = 0x02;    // DDSR
  static constexpr uint8_t kMsrTrailingRi = 0x04;  // TERI
  static constexpr uint8_t kMsrDeltaDcd = 0x08;    // DDCD
  static constexpr uint8_t kMsrCts = 0x10;
  static constexpr uint8_t kMsrDsr = 0x20;
  static constexpr uint8_t kMsrRi = 0x40;
  static constexpr uint8_t kMsrDcd = 0x80;

  // Caller holds m_mutex for all of these.
  uint8_t read_reg(unsigned reg);
  void write_reg(unsigned reg, uint8_t value);
  void transmit(uint8_t byte);
  bool rx_push(uint8_t byte);
  uint8_t rx_pop();
  void rx_clear();
  // Interrupt identification code (IIR bits 3:0) of the highest-priority pending source.
  uint8_t interrupt_id() const;
  // MSR bits 7:4 as currently seen by the guest.
  uint8_t modem_inputs() const;
  void set_mcr(uint8_t value);
  void update_irq();
  void reset_locked();

  const OutputSink m_output;
  IrqLine* const m_irq;

  mutable std::mutex m_mutex;
  std::array<uint8_t, kRxFifoCapacity> m_rx{};
  size_t m_rx_head = 0;  // index of the oldest byte
  size_t m_rx_count = 0;
  uint8_t m_ier = 0;
  uint8_t m_fcr = 0;  // only kFcrEnable and kFcrTriggerMask are kept
  uint8_t m_lcr = 0;
  uint8_t m_mcr = 0;
  uint8_t m_lsr_errors = 0;  // sticky error bits of LSR (kLsrErrorMask)
  uint8_t m_msr_delta = 0;   // sticky delta bits of MSR (bits 3:0)
  uint8_t m_scr = 0;
  uint8_t m_dll = 0;
  uint8_t m_dlm = 0;
  bool m_thre_pending = false;  // THRE interrupt latched (still gated by IER.ETBEI)
  bool m_irq_level = false;     // last level driven onto m_irq
};

}  // namespace vigil::devices
