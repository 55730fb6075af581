#include "devices/tpm_tis.h"

#include <chrono>

namespace vigil::devices {

namespace {

// TPM 2.0 Part 2, 6.6.3 and 6.9: response codes and the no-sessions tag.
constexpr uint32_t kRcFailure = 0x101;
constexpr uint32_t kRcCommandSize = 0x142;
constexpr uint16_t kStNoSessions = 0x8001;
constexpr size_t kHeaderSize = 10;  // tag u16, size u32, code u32, all big-endian

// PTP 6.4.2 Table 17 (INTF_CAPABILITY): InterfaceVersion 011b = "TIS 1.3 for TPM 2.0" (bits
// 30:28), DataTransferSizeSupport 11b = 64 bytes (bits 10:9), dynamic burstCount (bit 8 = 0),
// and no interrupt support at all (bits 7:0 = 0): the driver polls.
constexpr uint32_t kIntfCapabilityValue = (3u << 28) | (3u << 9);
// PTP 6.4.2 Table 18 (INTERFACE_ID): InterfaceType 0 = FIFO for TPM 2.0, InterfaceVersion 0,
// CapLocality (bit 8: all 5 localities), CapFIFO (bit 13), CapDataXferSizeSupport 64 bytes
// (bits 12:11), InterfaceSelector 0 = FIFO and IntfSelLock (bit 19): the FIFO is the only one.
constexpr uint32_t kInterfaceIdValue = (1u << 8) | (3u << 11) | (1u << 13) | (1u << 19);
constexpr unsigned kHardwareLocality = 4;  // PTP 5.6: reserved for the platform, guest writes ignored

uint32_t be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

bool in_fifo(uint64_t reg, unsigned size) {
  return (reg >= TpmTis::kDataFifo && reg + size <= TpmTis::kDataFifo + 4) ||
         (reg >= TpmTis::kXDataFifo && reg + size <= TpmTis::kXDataFifoEnd);
}

}  // namespace

TpmTis::TpmTis(std::shared_ptr<TpmBackend> backend, Log log)
    : m_backend(std::move(backend)), m_log(std::move(log)), m_worker([this] { worker_loop(); }) {
  m_buffer.reserve(kBufferSize);
}

TpmTis::~TpmTis() {
  {
    std::lock_guard lock(m_mutex);
    m_quit = true;
  }
  m_cv.notify_all();
  m_worker.join();
}

bool TpmTis::read(uint64_t offset, unsigned size, uint64_t& value) {
  if ((size != 1 && size != 2 && size != 4) || offset >= kSize || offset + size > kSize) return false;
  const auto locality = static_cast<unsigned>(offset / kLocalitySize);
  const uint64_t reg = offset % kLocalitySize;
  std::lock_guard lock(m_mutex);
  if (in_fifo(reg, size)) {
    value = fifo_read(locality, size);
    return true;
  }
  if ((reg & 3) + size > 4) return false;  // a register access may not straddle two registers
  const uint32_t word = read_register(locality, reg & ~uint64_t{3});
  const uint64_t mask = size == 4 ? 0xffff'ffffull : ((1ull << (8 * size)) - 1);
  value = (word >> (8 * (reg & 3))) & mask;
  return true;
}

bool TpmTis::write(uint64_t offset, unsigned size, uint64_t value) {
  if ((size != 1 && size != 2 && size != 4) || offset >= kSize || offset + size > kSize) return false;
  const auto locality = static_cast<unsigned>(offset / kLocalitySize);
  const uint64_t reg = offset % kLocalitySize;
  if (in_fifo(reg, size)) {
    std::lock_guard lock(m_mutex);
    fifo_write(locality, value, size);
    return true;
  }
  if ((reg & 3) + size > 4) return false;
  const unsigned shift = 8 * static_cast<unsigned>(reg & 3);
  const uint32_t mask = static_cast<uint32_t>((size == 4 ? 0xffff'ffffull : ((1ull << (8 * size)) - 1)) << shift);
  const uint32_t v = static_cast<uint32_t>(value << shift) & mask;
  bool job = false;
  {
    std::lock_guard lock(m_mutex);
    switch (reg & ~uint64_t{3}) {
      case kAccess:
        if (mask & 0xff) write_access(locality, static_cast<uint8_t>(v));  // bytes 1-3 are reserved
        break;
      case kSts:
        write_sts(locality, v, mask);
        job = m_job;
        break;
      default:
        break;  // INT_ENABLE/VECTOR/STATUS (no interrupts), read-only and reserved registers
    }
  }
  if (job) m_cv.notify_all();
  return true;
}

void TpmTis::reset() {
  std::lock_guard lock(m_mutex);
  ++m_generation;
  m_state = State::kIdle;
  m_active = -1;
  m_requested = 0;
  m_seized = 0;
  m_buffer.clear();
  m_offset = 0;
  m_oversized = false;
  m_job = false;
}

uint32_t TpmTis::read_register(unsigned locality, uint64_t reg) {
  const bool active = m_active == static_cast<int>(locality);
  switch (reg) {
    case kAccess: {
      uint8_t a = kAccessValid | kAccessEstablishment;  // 1 = no dynamic launch has happened
      if (active) a |= kAccessActive;
      if (m_requested & ~(1u << locality)) a |= kAccessPending;
      if (m_requested & (1u << locality)) a |= kAccessRequestUse;
      if (m_seized & (1u << locality)) a |= kAccessBeenSeized;
      return a;
    }
    case kIntEnable:
    case kIntVector:
    case kIntStatus:
      return 0;
    case kIntfCapability:
      return kIntfCapabilityValue;
    case kSts:
      return active ? sts_value() : 0xffff'ffffu;  // PTP 6.5.2: other localities read all ones
    case kInterfaceId:
      return kInterfaceIdValue;
    case kDidVid:
      return (uint32_t{kDeviceId} << 16) | kVendorId;
    case kRid:
      return kRevisionId;
    default:
      return 0;
  }
}

void TpmTis::write_access(unsigned locality, uint8_t value) {
  if (locality == kHardwareLocality) return;
  const uint8_t bit = static_cast<uint8_t>(1u << locality);
  if (value & kAccessBeenSeized) m_seized &= static_cast<uint8_t>(~bit);  // write 1 to clear
  if (value & kAccessSeize) {
    // PTP 5.6.4: only a higher locality may seize, and only from another locality.
    if (static_cast<int>(locality) > m_active) {
      if (m_active >= 0) m_seized |= static_cast<uint8_t>(1u << m_active);
      set_active(static_cast<int>(locality));
    }
    return;
  }
  if (value & kAccessRequestUse) {
    if (m_active < 0) {
      set_active(static_cast<int>(locality));
    } else if (m_active != static_cast<int>(locality)) {
      m_requested |= bit;
    }
  }
  if (value & kAccessActive) {
    if (m_active == static_cast<int>(locality)) {
      // Relinquish: the highest waiting locality gets the TPM (PTP 5.6.3).
      set_active(-1);
      for (int l = kLocalities - 1; l >= 0; --l) {
        if (m_requested & (1u << l)) {
          set_active(l);
          break;
        }
      }
    } else {
      m_requested &= static_cast<uint8_t>(~bit);  // withdraws a pending request
    }
  }
}

void TpmTis::set_active(int locality) {
  if (locality >= 0) m_requested &= static_cast<uint8_t>(~(1u << locality));
  if (locality != m_active) abort_command();
  m_active = locality;
}

void TpmTis::abort_command() {
  ++m_generation;  // a response still on its way is discarded
  m_state = State::kIdle;
  m_buffer.clear();
  m_offset = 0;
  m_oversized = false;
  m_job = false;
}

void TpmTis::write_sts(unsigned locality, uint32_t value, uint32_t mask) {
  if (m_active != static_cast<int>(locality) || !(mask & 0xff)) return;  // cancel (bit 24) is not supported
  const uint32_t cmd = value & (kStsCommandReady | kStsGo | kStsResponseRetry);
  // Software sets one of these at a time (PTP Table 23); more than one is ignored.
  if (cmd == 0 || (cmd & (cmd - 1)) != 0) return;
  if (cmd == kStsCommandReady) {
    if (m_state != State::kReady) {
      abort_command();
      m_state = State::kReady;
    }
  } else if (cmd == kStsGo) {
    if (m_state != State::kReception || expecting()) return;  // tpmGo is ignored while Expect is 1
    if (m_oversized) {
      m_buffer = error_response(kRcCommandSize);
      m_offset = 0;
      m_state = State::kCompletion;
      return;
    }
    m_state = State::kExecution;
    m_job_command.assign(m_buffer.begin(), m_buffer.begin() + static_cast<std::ptrdiff_t>(m_offset));
    m_job_generation = m_generation;
    m_job = true;
  } else if (m_state == State::kCompletion) {  // responseRetry
    m_offset = 0;
  }
}

bool TpmTis::expecting() const {
  if (m_state == State::kReady) return true;
  if (m_state != State::kReception || m_oversized) return false;
  if (m_offset < 6) return true;
  return m_offset < be32(m_buffer.data() + 2);
}

void TpmTis::fifo_write(unsigned locality, uint64_t value, unsigned size) {
  if (m_active != static_cast<int>(locality)) return;
  if (m_state == State::kReady) {
    m_state = State::kReception;
    m_buffer.assign(kBufferSize, 0);
    m_offset = 0;
    m_oversized = false;
  }
  if (m_state != State::kReception) return;  // data outside reception is dropped
  for (unsigned i = 0; i < size && expecting(); ++i) {
    m_buffer[m_offset++] = static_cast<uint8_t>(value >> (8 * i));
    if (m_offset == 6) {
      const uint32_t declared = be32(m_buffer.data() + 2);
      if (declared < kHeaderSize || declared > kBufferSize) m_oversized = true;
    }
  }
}

uint64_t TpmTis::fifo_read(unsigned locality, unsigned size) {
  uint64_t v = 0;
  for (unsigned i = 0; i < size; ++i) {
    uint8_t b = 0xff;  // nothing to read: the FIFO floats high
    if (m_active == static_cast<int>(locality) && m_state == State::kCompletion && m_offset < m_buffer.size()) {
      b = m_buffer[m_offset++];
    }
    v |= uint64_t{b} << (8 * i);
  }
  return v;
}

uint16_t TpmTis::burst_count() const {
  size_t n = 0;
  switch (m_state) {
    case State::kReady: n = kBufferSize; break;
    case State::kReception: n = expecting() ? kBufferSize - m_offset : 0; break;
    case State::kCompletion: n = m_buffer.size() - m_offset; break;
    default: break;
  }
  return static_cast<uint16_t>(std::min<size_t>(n, 0xffff));
}

uint32_t TpmTis::sts_value() const {
  uint32_t s = kStsValid | kStsFamilyTpm2 | kStsSelfTestDone | (uint32_t{burst_count()} << 8);
  switch (m_state) {
    case State::kReady: s |= kStsCommandReady; break;
    case State::kReception: if (expecting()) s |= kStsExpect; break;
    case State::kCompletion: if (m_offset < m_buffer.size()) s |= kStsDataAvail; break;
    default: break;
  }
  return s;
}

std::vector<uint8_t> TpmTis::error_response(uint32_t rc) {
  return {static_cast<uint8_t>(kStNoSessions >> 8), static_cast<uint8_t>(kStNoSessions & 0xff), 0, 0, 0,
          static_cast<uint8_t>(kHeaderSize), static_cast<uint8_t>(rc >> 24), static_cast<uint8_t>(rc >> 16),
          static_cast<uint8_t>(rc >> 8), static_cast<uint8_t>(rc)};
}

std::vector<uint8_t> TpmTis::checked_response(Result<std::vector<uint8_t>> r) {
  // Called with m_mutex held; log lines go out after it is released.
  if (r && r->size() >= kHeaderSize && r->size() <= kBufferSize && be32(r->data() + 2) == r->size()) {
    return std::move(*r);
  }
  ++m_failures;
  return error_response(kRcFailure);
}

void TpmTis::worker_loop() {
  std::unique_lock lock(m_mutex);
  for (;;) {
    m_cv.wait(lock, [&] { return m_quit || m_job; });
    if (m_quit) return;
    std::vector<uint8_t> command = std::move(m_job_command);
    const uint64_t generation = m_job_generation;
    m_job = false;
    m_running = true;
    lock.unlock();
    Result<std::vector<uint8_t>> r = m_backend ? m_backend->execute(command)
                                               : make_error("the domain has no TPM backend");
    std::string problem;
    if (!r) {
      problem = r.error().message;
    } else if (r->size() < kHeaderSize || r->size() > kBufferSize || be32(r->data() + 2) != r->size()) {
      problem = fmt::format("it returned a malformed response of {} bytes", r->size());
    }
    const std::string who = m_backend ? m_backend->describe() : std::string("vTPM");
    lock.lock();
    m_running = false;
    ++m_executed;
    std::vector<uint8_t> response = checked_response(std::move(r));
    std::string line;
    if (!problem.empty() && !m_backend_down) {
      line = fmt::format("{} failed a guest command ({}); the guest gets TPM_RC_FAILURE until it answers", who, problem);
    } else if (problem.empty() && m_backend_down) {
      line = fmt::format("{} answers guest commands again", who);
    }
    m_backend_down = !problem.empty();
    if (generation == m_generation && m_state == State::kExecution) {
      m_buffer = std::move(response);
      m_offset = 0;
      m_state = State::kCompletion;
    }
    m_cv.notify_all();
    if (!line.empty() && m_log) {
      lock.unlock();
      m_log(line);
      lock.lock();
    }
  }
}

bool TpmTis::wait_idle(unsigned ms) {
  std::unique_lock lock(m_mutex);
  return m_cv.wait_for(lock, std::chrono::milliseconds(ms), [&] { return !m_job && !m_running; });
}

Result<TpmTis::Snapshot> TpmTis::snapshot(unsigned ms) {
  std::unique_lock lock(m_mutex);
  if (!m_cv.wait_for(lock, std::chrono::milliseconds(ms), [&] { return !m_job && !m_running; }))
    return make_error("the vTPM is still executing a guest command after {} ms", ms);
  if (m_state == State::kExecution) return make_error("the vTPM interface is in the execution phase with no command");
  Snapshot s;
  s.state = static_cast<uint8_t>(m_state);
  s.active = static_cast<int8_t>(m_active);
  s.requested = m_requested;
  s.seized = m_seized;
  if (m_state == State::kReception || m_state == State::kCompletion) {
    s.offset = static_cast<uint32_t>(m_offset);
    s.buffer = m_buffer;
  }
  return s;
}

Result<void> TpmTis::restore(const Snapshot& s) {
  const auto state = static_cast<State>(s.state);
  if (state != State::kIdle && state != State::kReady && state != State::kReception && state != State::kCompletion)
    return make_error("TIS state {} is not idle, ready, reception or completion", s.state);
  if (s.active < -1 || s.active >= static_cast<int>(kLocalities))
    return make_error("TIS active locality {} is not -1..{}", s.active, kLocalities - 1);
  if (s.requested >= (1u << kLocalities) || s.seized >= (1u << kLocalities))
    return make_error("TIS locality masks {:#x}/{:#x} name localities beyond {}", s.requested, s.seized, kLocalities - 1);
  bool oversized = false;
  switch (state) {
    case State::kIdle:
    case State::kReady:
      if (!s.buffer.empty() || s.offset != 0) return make_error("TIS buffer holds {} bytes while no command is in it", s.buffer.size());
      break;
    case State::kReception:
      if (s.buffer.size() != kBufferSize || s.offset > kBufferSize)
        return make_error("TIS reception buffer of {} bytes at offset {} (must be {} bytes)", s.buffer.size(), s.offset, kBufferSize);
      if (s.offset >= 6) {
        const uint32_t declared = be32(s.buffer.data() + 2);
        oversized = declared < kHeaderSize || declared > kBufferSize;
        if (!oversized && s.offset > declared) return make_error("TIS holds {} bytes of a {}-byte command", s.offset, declared);
      }
      break;
    case State::kCompletion:
      if (s.buffer.size() < kHeaderSize || s.buffer.size() > kBufferSize || be32(s.buffer.data() + 2) != s.buffer.size() ||
          s.offset > s.buffer.size())
        return make_error("TIS response of {} bytes (offset {}) is malformed", s.buffer.size(), s.offset);
      break;
    default: break;
  }
  if (state != State::kIdle && s.active < 0) return make_error("TIS has a command phase but no active locality");
  std::lock_guard lock(m_mutex);
  if (m_job || m_running) return make_error("the vTPM is executing a command");
  ++m_generation;
  m_state = state;
  m_active = s.active;
  m_requested = s.requested;
  m_seized = s.seized;
  m_buffer = s.buffer;
  m_offset = s.offset;
  m_oversized = oversized;
  return {};
}

uint64_t TpmTis::commands_executed() const {
  std::lock_guard lock(m_mutex);
  return m_executed;
}

uint64_t TpmTis::backend_failures() const {
  std::lock_guard lock(m_mutex);
  return m_failures;
}

}  // namespace vigil::devices
