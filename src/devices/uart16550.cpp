#include "devices/uart16550.h"

#include <algorithm>
#include <utility>

namespace vigil::devices {

namespace {

// Register indices (PC16550D data sheet, "Register Addresses" table); which register an
// index names also depends on LCR.DLAB and on the access direction.
constexpr unsigned kRegData = 0;    // RBR (read) / THR (write) / DLL (DLAB=1)
constexpr unsigned kRegIer = 1;     // IER / DLM (DLAB=1)
constexpr unsigned kRegIirFcr = 2;  // IIR (read) / FCR (write)
constexpr unsigned kRegLcr = 3;
constexpr unsigned kRegMcr = 4;
constexpr unsigned kRegLsr = 5;
constexpr unsigned kRegMsr = 6;
constexpr unsigned kRegScr = 7;

// IIR bits 3:0 (PC16550D, "Interrupt Control Functions" table), listed from
// the highest priority down. bit 0 set means "no interrupt pending".
constexpr uint8_t kIirNone = 0x01;
constexpr uint8_t kIirLineStatus = 0x06;
constexpr uint8_t kIirRxData = 0x04;
constexpr uint8_t kIirThrEmpty = 0x02;
constexpr uint8_t kIirModemStatus = 0x00;
// IIR bits 7:6 read 11 while FCR0 (FIFO enable) is set.
constexpr uint8_t kIirFifoEnabled = 0xc0;

// The bus promises 1, 2, 4 or 8 but the value comes from a guest instruction; check anyway.
bool valid_size(unsigned size) {
  return size == 1 || size == 2 || size == 4 || size == 8;
}

}  // namespace

Uart16550::Uart16550(OutputSink output, IrqLine* irq) : m_output(std::move(output)), m_irq(irq) {}

bool Uart16550::read(uint64_t offset, unsigned size, uint64_t& value) {
  // Only 0..7 decode. Wider accesses are served as a byte access at the same offset
  // (reg-io-width is 1), zero-extended, rather than faulting a sloppy driver.
  if (!valid_size(size) || offset >= kMmioSize) return false;
  std::lock_guard lock(m_mutex);
  value = read_reg(static_cast<unsigned>(offset));
  update_irq();
  return true;
}

bool Uart16550::write(uint64_t offset, unsigned size, uint64_t value) {
  if (!valid_size(size) || offset >= kMmioSize) return false;
  std::lock_guard lock(m_mutex);
  write_reg(static_cast<unsigned>(offset), static_cast<uint8_t>(value & 0xff));
  update_irq();
  return true;
}

void Uart16550::reset() {
  std::lock_guard lock(m_mutex);
  reset_locked();
}

size_t Uart16550::push_input(const uint8_t* data, size_t n) {
  if (data == nullptr || n == 0) return 0;
  std::lock_guard lock(m_mutex);
  // In loopback the receiver hears only the transmitter (PC16550D, MCR bit 4 "Loop").
  if (m_mcr & kMcrLoop) return 0;
  const size_t accepted = std::min(n, kRxFifoCapacity - m_rx_count);
  for (size_t i = 0; i < accepted; ++i) rx_push(data[i]);
  update_irq();
  return accepted;
}

size_t Uart16550::input_space() const {
  std::lock_guard lock(m_mutex);
  if (m_mcr & kMcrLoop) return 0;
  return kRxFifoCapacity - m_rx_count;
}

uint8_t Uart16550::read_reg(unsigned reg) {
  const bool dlab = (m_lcr & kLcrDlab) != 0;
  switch (reg) {
    case kRegData:
      return dlab ? m_dll : rx_pop();
    case kRegIer:
      return dlab ? m_dlm : m_ier;
    case kRegIirFcr: {
      const uint8_t id = interrupt_id();
      // Reading IIR acknowledges a THRE interrupt, but only when IIR is reporting it (the
      // PC16550D interrupt table's reset condition for THRE). A pending higher-priority
      // source hides it, and then it survives the read.
      if (id == kIirThrEmpty) m_thre_pending = false;
      return id | ((m_fcr & kFcrEnable) ? kIirFifoEnabled : 0);
    }
    case kRegLcr:
      return m_lcr;
    case kRegMcr:
      return m_mcr;
    case kRegLsr: {
      // THRE and TEMT are permanently set: transmission completes within the THR write.
      uint8_t lsr = kLsrThrEmpty | kLsrTxEmpty | m_lsr_errors;
      if (m_rx_count > 0) lsr |= kLsrDataReady;
      m_lsr_errors = 0;  // error bits clear on read (PC16550D, LSR), dropping the RLS interrupt
      return lsr;
    }
    case kRegMsr: {
      const uint8_t msr = modem_inputs() | m_msr_delta;
      m_msr_delta = 0;  // delta bits clear on read (PC16550D, MSR)
      return msr;
    }
    case kRegScr:
      return m_scr;
    default:
      return 0;  // unreachable: callers pass 0..7
  }
}

void Uart16550::write_reg(unsigned reg, uint8_t value) {
  const bool dlab = (m_lcr & kLcrDlab) != 0;
  switch (reg) {
    case kRegData:
      if (dlab) {
        m_dll = value;
      } else {
        transmit(value);
        // Writing THR clears the THRE interrupt; the byte leaves at once, THR is empty
        // again and the interrupt re-arms, exactly as after a real transmission.
        m_thre_pending = true;
      }
      break;
    case kRegIer:
      if (dlab) {
        m_dlm = value;
      } else {
        const uint8_t old = m_ier;
        m_ier = value & kIerMask;
        // Enabling ETBEI while THR is empty raises THRE again. Linux's 8250 start-up test
        // (UART_BUG_THRE) and its start_tx path both rely on this re-assertion.
        if (!(old & kIerThrEmpty) && (m_ier & kIerThrEmpty)) m_thre_pending = true;
      }
      break;
    case kRegIirFcr: {
      // FCR (PC16550D, FIFO Control Register): other bits are only programmed while bit 0
      // is written as 1, and flipping bit 0 clears the FIFOs. The transmitter never holds
      // anything, so only the receive side has state to clear.
      const bool enable = (value & kFcrEnable) != 0;
      if (enable != ((m_fcr & kFcrEnable) != 0)) rx_clear();
      if (enable) {
        if (value & kFcrRxReset) rx_clear();
        // kFcrTxReset: the transmit FIFO is always empty, nothing to discard.
        m_fcr = value & (kFcrEnable | kFcrTriggerMask);
      } else {
        m_fcr = 0;
      }
      break;
    }
    case kRegLcr:
      m_lcr = value;
      break;
    case kRegMcr:
      set_mcr(value);
      break;
    case kRegScr:
      m_scr = value;
      break;
    default:
      // LSR and MSR writes are factory-test features on the real part; ignore them.
      break;
  }
}

void Uart16550::transmit(uint8_t byte) {
  if (m_mcr & kMcrLoop) {
    // Loopback (PC16550D, MCR bit 4): the serial output feeds the receiver directly. A
    // full FIFO overruns like the real receiver would.
    if (!rx_push(byte)) m_lsr_errors |= kLsrOverrun;
    return;
  }
  if (m_output) m_output(byte);
}

bool Uart16550::rx_push(uint8_t byte) {
  if (m_rx_count == kRxFifoCapacity) return false;
  m_rx[(m_rx_head + m_rx_count) % kRxFifoCapacity] = byte;
  ++m_rx_count;
  return true;
}

uint8_t Uart16550::rx_pop() {
  if (m_rx_count == 0) return 0;
  const uint8_t byte = m_rx[m_rx_head];
  m_rx_head = (m_rx_head + 1) % kRxFifoCapacity;
  --m_rx_count;
  return byte;
}

void Uart16550::rx_clear() {
  m_rx_head = 0;
  m_rx_count = 0;
}

uint8_t Uart16550::interrupt_id() const {
  // Priority order of the PC16550D interrupt table: line status, received data, THR
  // empty, modem status.
  if ((m_ier & kIerLineStatus) && m_lsr_errors != 0) return kIirLineStatus;
  if ((m_ier & kIerRxData) && m_rx_count > 0) return kIirRxData;
  if ((m_ier & kIerThrEmpty) && m_thre_pending) return kIirThrEmpty;
  if ((m_ier & kIerModemStatus) && m_msr_delta != 0) return kIirModemStatus;
  return kIirNone;
}

uint8_t Uart16550::modem_inputs() const {
  if (!(m_mcr & kMcrLoop)) return kMsrCts | kMsrDsr | kMsrDcd;
  // Loopback wiring (PC16550D, MCR bit 4): RTS->CTS, DTR->DSR, OUT1->RI, OUT2->DCD. Linux's
  // autoconfig checks this with MCR = LOOP|OUT2|RTS expecting MSR 7:4 = DCD|CTS.
  uint8_t in = 0;
  if (m_mcr & kMcrRts) in |= kMsrCts;
  if (m_mcr & kMcrDtr) in |= kMsrDsr;
  if (m_mcr & kMcrOut1) in |= kMsrRi;
  if (m_mcr & kMcrOut2) in |= kMsrDcd;
  return in;
}

void Uart16550::set_mcr(uint8_t value) {
  const uint8_t before = modem_inputs();
  m_mcr = value & kMcrMask;
  const uint8_t after = modem_inputs();
  const uint8_t changed = before ^ after;
  // MSR delta bits (PC16550D, MSR bits 3:0): DCTS, DDSR and DDCD on any change; TERI
  // only when RI goes from on to off (trailing edge).
  if (changed & kMsrCts) m_msr_delta |= kMsrDeltaCts;
  if (changed & kMsrDsr) m_msr_delta |= kMsrDeltaDsr;
  if ((before & kMsrRi) && !(after & kMsrRi)) m_msr_delta |= kMsrTrailingRi;
  if (changed & kMsrDcd) m_msr_delta |= kMsrDeltaDcd;
}

Uart16550::State Uart16550::save_state() const {
  std::lock_guard lock(m_mutex);
  State s;
  for (size_t i = 0; i < m_rx_count; ++i) s.rx.push_back(m_rx[(m_rx_head + i) % kRxFifoCapacity]);
  s.ier = m_ier;
  s.fcr = m_fcr;
  s.lcr = m_lcr;
  s.mcr = m_mcr;
  s.lsr_errors = m_lsr_errors;
  s.msr_delta = m_msr_delta;
  s.scr = m_scr;
  s.dll = m_dll;
  s.dlm = m_dlm;
  s.thre_pending = m_thre_pending;
  return s;
}

Result<void> Uart16550::restore_state(const State& s) {
  if (s.rx.size() > kRxFifoCapacity)
    return make_error("receive FIFO holds {} bytes, more than its {}", s.rx.size(), kRxFifoCapacity);
  if ((s.ier & ~kIerMask) != 0) return make_error("IER {:#x} has reserved bits set", s.ier);
  if ((s.fcr & ~(kFcrEnable | kFcrTriggerMask)) != 0) return make_error("FCR {:#x} has bits that are not kept", s.fcr);
  if ((s.mcr & ~kMcrMask) != 0) return make_error("MCR {:#x} has reserved bits set", s.mcr);
  if ((s.lsr_errors & ~kLsrErrorMask) != 0) return make_error("LSR error bits {:#x} are not error bits", s.lsr_errors);
  if ((s.msr_delta & ~0x0f) != 0) return make_error("MSR delta bits {:#x} are not delta bits", s.msr_delta);
  std::lock_guard lock(m_mutex);
  rx_clear();
  for (uint8_t b : s.rx) rx_push(b);
  m_ier = s.ier;
  m_fcr = s.fcr;
  m_lcr = s.lcr;
  m_mcr = s.mcr;
  m_lsr_errors = s.lsr_errors;
  m_msr_delta = s.msr_delta;
  m_scr = s.scr;
  m_dll = s.dll;
  m_dlm = s.dlm;
  m_thre_pending = s.thre_pending;
  m_irq_level = !(interrupt_id() != kIirNone);  // force the line to be driven once
  update_irq();
  return {};
}

void Uart16550::update_irq() {
  const bool level = interrupt_id() != kIirNone;
  if (level == m_irq_level) return;
  m_irq_level = level;
  if (m_irq != nullptr) m_irq->set_level(level);
}

void Uart16550::reset_locked() {
  // Master reset values (PC16550D table "UART Reset Configuration"); the divisor and
  // scratch registers are cleared too so a reset machine matches a freshly built one.
  rx_clear();
  m_ier = 0;
  m_fcr = 0;
  m_lcr = 0;
  m_mcr = 0;
  m_lsr_errors = 0;
  m_msr_delta = 0;
  m_scr = 0;
  m_dll = 0;
  m_dlm = 0;
  m_thre_pending = false;
  update_irq();
}

}  // namespace vigil::devices
