// PsrService: the one shared-LLC model of a vigild (src/psr/cache_model.h) and what feeds it
// (issue 10). DomainManager owns it.
//
// Feeding. A domain with monitoring attached (psr-cmt-attach) gets an RMID and its guest pages
// that the model samples are marked mark::kPsrSample in its GuestMemory, so they leave the TLB
// fast path and translated code (DESIGN.md "Hooks are part of the core"); every access to them
// (data loads, stores and atomics; one line per entry into a sampled code page; device DMA
// through GuestDma: virtio-blk, -net, ... reads and writes of guest memory) reaches the domain's
// feed, which passes it to the model with the host address of the guest byte. Unsampled pages
// are never marked: their accesses keep today's fast path. Detached domains have no marks.
//
// Threads. vCPUs of several domains feed the model from several workers at once. The model is
// one region with one spinlock (it could be a shared memfd, DESIGN.md "a process per domain");
// sampling makes modeled accesses rare (1 page in R = 16 by default), so a single short
// critical section per modeled line is both correct and cheap (the bench measures the cost
// per modeled access). The control paths (attach, detach, masks) take the service mutex; the
// feed reads its RMID and COS from atomics, so a vCPU never waits for the control path.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "hv/domain_config.h"
#include "hv/scheduler.h"
#include "psr/cache_model.h"
#include "riscv/hart.h"

namespace vigil::hv {

struct PsrHwInfo {
  psr::Geometry geometry;
  uint32_t sampling = 0;
  uint32_t total_rmid = 0;   // including RMID 0 (reserved)
  uint32_t cos_max = 0;      // highest COS number
  uint32_t cbm_len = 0;
  uint64_t default_cbm = 0;
  unsigned thrtl_max = 90;   // MBA: 10% steps, linear
  uint64_t peak_bytes_per_s = 0;  // the modeled memory system's peak (MBA's 100%)
  uint64_t miss_cost_ns = 0;      // credit a modeled miss costs (CAT's effect)
};

struct PsrDomainStatus {
  uint32_t rmid = 0;  // 0: monitoring not attached
  uint64_t cbm = 0;
  unsigned thrtl = 0;
  psr::RmidCounters counters;
};

// Effects on guests (Scheduler's MemoryMeter): see hv/scheduler.h. The modeled memory system's
// peak is kDefaultPeakBytesPerS: about what one vCPU of this emulator streaming through memory
// produces (vtest-thrash stream: 3.5 to 5 GB/s modeled on the 2-core test machine), so a 90%
// throttle holds such a guest to about a tenth of its speed while a guest that mostly hits in
// the cache never reaches its budget. A modeled miss costs kDefaultMissCostNs of credit: the
// thrasher, which misses on every line it touches (about 70 M modeled misses/s), pays more than
// double its CPU time when it competes for a worker; a guest with a miss every 100 accesses
// pays a few percent.
class PsrService final : public MemoryMeter {
 public:
  // 16: the largest ratio the sampled-vs-full unit test holds to its bounds, and one that sees
  // a 256 KiB working set (at 128 a domain with a few dozen hot pages often had none sampled
  // and was invisible to the model).
  static constexpr uint32_t kDefaultSampling = 16;
  static constexpr uint64_t kDefaultPeakBytesPerS = 4ull << 30;
  static constexpr uint64_t kDefaultMissCostNs = 20;
  static Result<std::unique_ptr<PsrService>> create(const psr::Geometry& g, uint32_t sampling = kDefaultSampling);
  ~PsrService() override;

  PsrHwInfo hwinfo() const;
  psr::CacheModel& model() { return *m_model; }

  // CMT: an RMID for the domain and its sampled pages marked. `mem` must outlive the domain's
  // entry here (forget() before the memory goes).
  Result<void> attach(uint32_t domid, riscv::GuestMemory& mem);
  Result<void> detach(uint32_t domid);
  bool attached(uint32_t domid);
  // CAT: the domain's mask (validated, COS shared between equal masks).
  Result<void> set_cbm(uint32_t domid, uint64_t cbm);
  // MBA: throttle in percent: 0 (none) to 90 in steps of 10 (Intel's linear mode, thrtl_max
  // 90); anything else is refused with a sentence (Xen rounds 12 down to 10; a silent change of
  // what the user asked for hides typos, so Vigil refuses it).
  Result<unsigned> set_thrtl(uint32_t domid, unsigned thrtl);
  Result<PsrDomainStatus> status(uint32_t domid);
  // The domain is going away (destroyed or rebuilt): drops its RMID, COS and feed.
  void forget(uint32_t domid);
  // The xl.cfg keys psr_cmt, psr_cat_cbm, psr_mba_thrtl of a new (or rebuilt) domain.
  Result<void> apply_config(uint32_t domid, riscv::GuestMemory& mem, const DomainConfig& c);
  // Domains with monitoring attached.
  std::vector<uint32_t> attached_domains();

  // MemoryMeter
  MemoryCharge take(uint32_t domid) override;
  uint64_t miss_cost_ns() const override { return m_miss_cost_ns.load(std::memory_order_relaxed); }
  uint64_t peak_bytes_per_s() const override { return m_peak.load(std::memory_order_relaxed); }
  void set_effects(uint64_t miss_cost_ns, uint64_t peak_bytes_per_s) {
    m_miss_cost_ns.store(miss_cost_ns);
    m_peak.store(peak_bytes_per_s ? peak_bytes_per_s : 1);
  }

 private:
  struct Feed final : riscv::PageObserver {
    psr::CacheModel* model = nullptr;
    uint8_t* host = nullptr;
    uint64_t base = 0;
    std::atomic<uint32_t> rmid{0};
    std::atomic<uint32_t> cos{0};
    std::atomic<uint64_t> misses{0};  // modeled misses seen by this feed (scaled)
    void on_marked_access(uint64_t pa, uint64_t len, riscv::AccessType type) override;
  };
  struct Entry {
    riscv::GuestMemory* mem = nullptr;
    std::unique_ptr<Feed> feed;
    uint64_t cbm = 0;
    uint32_t cos = 0;
    unsigned thrtl = 0;
    uint64_t taken_misses = 0;  // feed->misses at the scheduler's last take
    uint64_t taken_mbm = 0;     // the RMID's MBM bytes then
    uint64_t taken_accesses = 0;  // the RMID's modeled accesses then
  };
  explicit PsrService(std::unique_ptr<psr::CacheModel> m) : m_model(std::move(m)) {}
  Entry& entry(uint32_t domid);
  void mark_pages(Entry& e, bool on);

  std::unique_ptr<psr::CacheModel> m_model;
  std::mutex m_mutex;
  std::map<uint32_t, Entry> m_domains;
  std::atomic<uint64_t> m_miss_cost_ns{kDefaultMissCostNs};
  std::atomic<uint64_t> m_peak{kDefaultPeakBytesPerS};
};

}  // namespace vigil::hv
