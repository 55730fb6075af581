#include "devices/plic.h"

#include <algorithm>
#include <bit>

namespace vigil::devices {

namespace {

// Register blocks ("Memory Map" chapter of riscv-plic-spec v1.0.0).
constexpr uint64_t kPriorityBase = 0x0;    // 4 bytes per source id
constexpr uint64_t kPendingBase = 0x1000;  // 32 words
constexpr uint64_t kPendingEnd = 0x1080;
constexpr uint64_t kEnableBase = 0x2000;  // 0x80 bytes per context
constexpr uint64_t kEnableStride = 0x80;
constexpr uint64_t kEnableEnd = 0x1f2000;    // after context 15871's enables
constexpr uint64_t kContextBase = 0x200000;  // 0x1000 bytes per context
constexpr uint64_t kContextStride = 0x1000;
constexpr uint64_t kThresholdOffset = 0x0;
constexpr uint64_t kClaimOffset = 0x4;

constexpr unsigned words_for(unsigned num_sources) {
  return (num_sources + 31) / 32;
}

}  // namespace

Plic::Plic(unsigned num_sources, unsigned num_harts, HartIrqSink* sink)
    : m_num_sources(std::clamp(num_sources, 1u, kMaxSources)),
      m_num_harts(std::min(num_harts, kMaxHarts)),
      m_num_contexts(2 * m_num_harts),
      m_words(words_for(m_num_sources)),
      m_sink(sink),
      m_valid(m_words, 0),
      m_priority(m_num_sources, 0),
      m_level(m_words, 0),
      m_in_service(m_words, 0),
      m_enable(static_cast<size_t>(m_num_contexts) * m_words, 0),
      m_threshold(m_num_contexts, 0),
      m_eip(m_num_contexts, 0) {
  // Source 0 does not exist ("Interrupt Identifiers"): its pending and enable bits are
  // hardwired to 0, as are those of ids beyond num_sources.
  for (unsigned id = 1; id < m_num_sources; ++id) m_valid[id / 32] |= 1u << (id % 32);
  m_lines.reserve(m_num_sources);
  for (unsigned id = 0; id < m_num_sources; ++id) m_lines.emplace_back(this, id);
}

IrqLine* Plic::line(unsigned source) {
  if (source == 0 || source >= m_num_sources) return nullptr;
  return &m_lines[source];
}

bool Plic::read(uint64_t offset, unsigned size, uint64_t& value) {
  if (size != 4 || (offset & 3) != 0 || offset >= kMmioSize) return false;
  std::lock_guard lock(m_mutex);
  value = read_reg(offset);
  return true;
}

bool Plic::write(uint64_t offset, unsigned size, uint64_t value) {
  if (size != 4 || (offset & 3) != 0 || offset >= kMmioSize) return false;
  std::lock_guard lock(m_mutex);
  write_reg(offset, static_cast<uint32_t>(value));
  return true;
}

void Plic::reset() {
  std::lock_guard lock(m_mutex);
  std::fill(m_priority.begin(), m_priority.end(), 0);
  std::fill(m_in_service.begin(), m_in_service.end(), 0);
  std::fill(m_enable.begin(), m_enable.end(), 0);
  std::fill(m_threshold.begin(), m_threshold.end(), 0);
  update_outputs();
}

void Plic::set_source_level(unsigned source, bool high) {
  // Lines exist only for valid ids, but keep the index checked anyway.
  if (source == 0 || source >= m_num_sources) return;
  std::lock_guard lock(m_mutex);
  uint32_t& word = m_level[source / 32];
  const uint32_t bit = 1u << (source % 32);
  const uint32_t updated = high ? (word | bit) : (word & ~bit);
  if (updated == word) return;
  word = updated;
  update_outputs();
}

uint32_t Plic::read_reg(uint64_t offset) {
  if (offset < kPendingBase) {
    // "Interrupt Priorities": one register per id; id 0 and absent ids read 0.
    const uint64_t id = (offset - kPriorityBase) / 4;
    return id < m_num_sources ? m_priority[id] : 0;
  }
  if (offset < kPendingEnd) {
    const uint64_t word = (offset - kPendingBase) / 4;
    return word < m_words ? pending_word(static_cast<unsigned>(word)) : 0;
  }
  if (offset >= kEnableBase && offset < kEnableEnd) {
    const uint64_t context = (offset - kEnableBase) / kEnableStride;
    const uint64_t word = (offset - kEnableBase) % kEnableStride / 4;
    if (context >= m_num_contexts || word >= m_words) return 0;
    return enable_word(static_cast<unsigned>(context), static_cast<unsigned>(word));
  }
  if (offset >= kContextBase) {
    const uint64_t context = (offset - kContextBase) / kContextStride;
    const uint64_t reg = (offset - kContextBase) % kContextStride;
    if (context >= m_num_contexts) return 0;
    if (reg == kThresholdOffset) return m_threshold[context];
    if (reg == kClaimOffset) return claim(static_cast<unsigned>(context));
  }
  return 0;  // reserved
}

void Plic::write_reg(uint64_t offset, uint32_t value) {
  if (offset < kPendingBase) {
    const uint64_t id = (offset - kPriorityBase) / 4;
    if (id == 0 || id >= m_num_sources) return;
    m_priority[id] = value & kPriorityMask;  // WARL: unimplemented bits read 0
    update_outputs();
    return;
  }
  if (offset < kPendingEnd) return;  // pending bits are read-only ("Interrupt Pending Bits")
  if (offset >= kEnableBase && offset < kEnableEnd) {
    const uint64_t context = (offset - kEnableBase) / kEnableStride;
    const uint64_t word = (offset - kEnableBase) % kEnableStride / 4;
    if (context >= m_num_contexts || word >= m_words) return;
    enable_word(static_cast<unsigned>(context), static_cast<unsigned>(word)) = value & m_valid[word];
    update_outputs();
    return;
  }
  if (offset >= kContextBase) {
    const uint64_t context = (offset - kContextBase) / kContextStride;
    const uint64_t reg = (offset - kContextBase) % kContextStride;
    if (context >= m_num_contexts) return;
    if (reg == kThresholdOffset) {
      m_threshold[context] = value & kPriorityMask;  // "Priority Thresholds": WARL
      update_outputs();
    } else if (reg == kClaimOffset) {
      complete(static_cast<unsigned>(context), value);
    }
  }
  // Everything else is reserved: ignored.
}

unsigned Plic::best_source(unsigned context) const {
  const uint32_t threshold = m_threshold[context];
  unsigned best = 0;
  uint32_t best_priority = threshold;  // a candidate must be strictly above the threshold
  for (unsigned w = 0; w < m_words; ++w) {
    uint32_t bits = pending_word(w) & m_enable[context * m_words + w];
    while (bits != 0) {
      const unsigned id = w * 32 + static_cast<unsigned>(std::countr_zero(bits));
      bits &= bits - 1;
      // Ids are visited in increasing order and only a strictly higher priority wins, so
      // ties go to the lowest id ("Interrupt Identifiers").
      if (m_priority[id] > best_priority) {
        best = id;
        best_priority = m_priority[id];
      }
    }
  }
  return best;
}

uint32_t Plic::claim(unsigned context) {
  // "Interrupt Claim Process": atomically pick the best source and clear its pending bit.
  // Closing the gateway (in service) is what clears it here, since pending is derived.
  const unsigned id = best_source(context);
  if (id == 0) return 0;
  m_in_service[id / 32] |= 1u << (id % 32);
  update_outputs();
  return id;
}

void Plic::complete(unsigned context, uint32_t source) {
  // "Interrupt Completion": an id not enabled for this context is silently ignored (Linux
  // briefly re-enables a masked source to complete it for exactly this reason). The
  // claiming context is not checked, as the spec says.
  if (source == 0 || source >= m_num_sources) return;
  const unsigned word = source / 32;
  const uint32_t bit = 1u << (source % 32);
  if (!(enable_word(context, word) & bit) || !(m_in_service[word] & bit)) return;
  // Reopening the gateway makes a still-high line pending again at once.
  m_in_service[word] &= ~bit;
  update_outputs();
}

Plic::State Plic::save_state() const {
  std::lock_guard lock(m_mutex);
  return State{m_priority, m_level, m_in_service, m_enable, m_threshold};
}

Result<void> Plic::restore_state(const State& s) {
  if (s.priority.size() != m_num_sources || s.level.size() != m_words || s.in_service.size() != m_words ||
      s.enable.size() != m_enable.size() || s.threshold.size() != m_num_contexts) {
    return make_error("the PLIC has {} sources and {} contexts, the snapshot's does not match", m_num_sources,
                      m_num_contexts);
  }
  for (unsigned id = 0; id < m_num_sources; ++id) {
    if (s.priority[id] > kPriorityMask || (id == 0 && s.priority[id] != 0))
      return make_error("priority {} of source {} is not valid", s.priority[id], id);
  }
  for (unsigned c = 0; c < m_num_contexts; ++c) {
    if (s.threshold[c] > kPriorityMask) return make_error("threshold {} of context {} is not valid", s.threshold[c], c);
  }
  std::lock_guard lock(m_mutex);
  m_priority = s.priority;
  for (unsigned w = 0; w < m_words; ++w) {
    // Bits of sources that do not exist stay clear whatever the snapshot says.
    m_level[w] = s.level[w] & m_valid[w];
    m_in_service[w] = s.in_service[w] & m_valid[w];
  }
  for (size_t i = 0; i < m_enable.size(); ++i) m_enable[i] = s.enable[i] & m_valid[i % m_words];
  m_threshold = s.threshold;
  // Re-send every output, whatever was sent before.
  for (auto& e : m_eip) e = 2;
  update_outputs();
  return {};
}

void Plic::update_outputs() {
  for (unsigned context = 0; context < m_num_contexts; ++context) {
    // "Interrupt Notifications": EIP is set while an enabled pending source has a
    // priority above the context's threshold, which is exactly when a claim would succeed.
    const uint8_t level = best_source(context) != 0 ? 1 : 0;
    if (level == m_eip[context]) continue;
    m_eip[context] = level;
    if (m_sink != nullptr) {
      m_sink->set_hart_irq(context / 2, (context % 2 == 0) ? kMeipBit : kSeipBit, level != 0);
    }
  }
}

}  // namespace vigil::devices
