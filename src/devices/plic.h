// RISC-V Platform-Level Interrupt Controller (riscv-plic-spec v1.0.0) laid out as on
// QEMU's virt board: two contexts per hart, context 2*h is hart h's M-mode context
// (drives mip.MEIP, bit 11) and context 2*h+1 its S-mode context (mip.SEIP, bit 9). The
// board's device tree must list them in that order:
//   interrupts-extended = <&cpu0_intc 11>, <&cpu0_intc 9>, <&cpu1_intc 11>, ...
// and riscv,ndev = num_sources() - 1.
//
// Sources are level-triggered. Each has an IrqLine owned by the PLIC (line()). A source
// is pending while its line is high and it is not claimed; claiming closes its gateway
// until the matching completion, after which a still-high line is pending again ("Interrupt
// Gateways"). Deliberate choices where the spec leaves room or QEMU differs from its text:
//  * A pending request is withdrawn when its line drops before being claimed (the spec's
//    gateway cannot retract a request). Software cannot rely on either behaviour, and
//    withdrawing spares the guest claims for interrupts its device no longer asserts.
//  * Claim only returns sources whose priority exceeds the context's threshold, matching
//    the notification rule and QEMU, although "Interrupt Claim Process" says the threshold
//    does not affect claims. Linux never claims with a raised threshold, so this is only
//    visible to polling software; change best_source() if an oracle disagrees.
//
// Thread safety: every public member, and every IrqLine returned by line(), may be called
// from any thread. State is guarded by one mutex, held while calling the HartIrqSink so
// that level changes reach the hart in order. The sink only updates a hart's mip and
// never calls back into the PLIC, so this cannot deadlock. A device that drives a line
// while holding its own lock (the UART does) therefore nests device lock -> PLIC lock ->
// hart sink, and the PLIC never takes a device lock.
#pragma once

#include <cstdint>
#include <mutex>
#include <string_view>
#include <vector>

#include "devices/device.h"
#include "base/error.h"

namespace vigil::devices {

class Plic final : public MmioDevice {
 public:
  // Whole PLIC register space ("Memory Map": contexts up to 15871 end at 0x3fffffc).
  static constexpr uint64_t kMmioSize = 0x4000000;
  // Source ids are 0..1023 with 0 meaning "no interrupt"; 15872 contexts at most.
  static constexpr unsigned kMaxSources = 1024;
  static constexpr unsigned kMaxContexts = 15872;
  static constexpr unsigned kMaxHarts = kMaxContexts / 2;
  // Priorities and thresholds implement 3 bits (WARL; QEMU virt also has 7 levels).
  static constexpr uint32_t kPriorityMask = 7;
  static constexpr unsigned kMeipBit = 11;
  static constexpr unsigned kSeipBit = 9;

  // num_sources counts source 0, so valid ids are 1..num_sources-1 (QEMU virt: 96 ->
  // riscv,ndev = 95); clamped to [1, kMaxSources]. num_harts is clamped to kMaxHarts.
  // sink may be null (outputs are then only tracked internally).
  Plic(unsigned num_sources, unsigned num_harts, HartIrqSink* sink);
  Plic(const Plic&) = delete;
  Plic& operator=(const Plic&) = delete;

  std::string_view name() const override { return "plic"; }
  // Only aligned 32-bit accesses are accepted ("Memory Map": registers are 32 bits wide,
  // accessed with LW/SW); anything else, or an offset >= kMmioSize, faults.
  bool read(uint64_t offset, unsigned size, uint64_t& value) override;
  bool write(uint64_t offset, unsigned size, uint64_t value) override;
  // Clears priorities, enables, thresholds and claims. Line levels are wires driven by the
  // devices and survive; the outputs are re-evaluated.
  void reset() override;

  // Snapshot support (issue 11). Sizes follow num_sources()/num_contexts(); restore_state
  // refuses other sizes and out-of-range values with a sentence, then re-drives the outputs.
  struct State {
    std::vector<uint32_t> priority;    // per source
    std::vector<uint32_t> level;       // per 32-source word: line high
    std::vector<uint32_t> in_service;  // per word: claimed, not yet completed
    std::vector<uint32_t> enable;      // num_contexts() * words
    std::vector<uint32_t> threshold;   // per context
  };
  State save_state() const;
  Result<void> restore_state(const State& s);

  // The interrupt line of `source`, owned by the PLIC and valid for its lifetime; null
  // for source 0 or source >= num_sources() (a board wiring bug, not a guest action).
  IrqLine* line(unsigned source);

  unsigned num_sources() const { return m_num_sources; }
  unsigned num_harts() const { return m_num_harts; }
  unsigned num_contexts() const { return m_num_contexts; }
  static constexpr unsigned machine_context(unsigned hart) { return 2 * hart; }
  static constexpr unsigned supervisor_context(unsigned hart) { return 2 * hart + 1; }

 private:
  class SourceLine final : public IrqLine {
   public:
    SourceLine(Plic* plic, unsigned source) : m_plic(plic), m_source(source) {}
    void set_level(bool high) override { m_plic->set_source_level(m_source, high); }

   private:
    Plic* m_plic;
    unsigned m_source;
  };

  void set_source_level(unsigned source, bool high);

  // Caller holds m_mutex for all of these.
  uint32_t read_reg(uint64_t offset);
  void write_reg(uint64_t offset, uint32_t value);
  uint32_t pending_word(unsigned word) const { return m_level[word] & ~m_in_service[word]; }
  uint32_t& enable_word(unsigned context, unsigned word) { return m_enable[context * m_words + word]; }
  // Highest-priority pending source enabled for `context` with priority above its
  // threshold, lowest id on ties; 0 if none.
  unsigned best_source(unsigned context) const;
  uint32_t claim(unsigned context);
  void complete(unsigned context, uint32_t source);
  // Recomputes every context's EIP and tells the sink about the ones that changed.
  void update_outputs();

  const unsigned m_num_sources;
  const unsigned m_num_harts;
  const unsigned m_num_contexts;
  const unsigned m_words;  // 32-bit words of per-source bits
  HartIrqSink* const m_sink;
  std::vector<SourceLine> m_lines;  // index = source id; never resized after construction

  mutable std::mutex m_mutex;
  std::vector<uint32_t> m_valid;       // per word: bits of ids 1..num_sources-1
  std::vector<uint32_t> m_priority;    // per source; [0] stays 0
  std::vector<uint32_t> m_level;       // per word: line is high
  std::vector<uint32_t> m_in_service;  // per word: claimed, completion not yet seen
  std::vector<uint32_t> m_enable;      // m_num_contexts * m_words
  std::vector<uint32_t> m_threshold;   // per context
  std::vector<uint8_t> m_eip;          // per context: level last sent to the sink
};

}  // namespace vigil::devices
