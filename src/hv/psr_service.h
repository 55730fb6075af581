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
// sampling makes modeled accesses rare (1 page in R = 128 by default), so a single short
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
};

struct PsrDomainStatus {
  uint32_t rmid = 0;  // 0: monitoring not attached
  uint64_t cbm = 0;
  unsigned thrtl = 0;
  psr::RmidCounters counters;
};

class PsrService {
 public:
  static constexpr uint32_t kDefaultSampling = 128;
  static Result<std::unique_ptr<PsrService>> create(const psr::Geometry& g, uint32_t sampling = kDefaultSampling);
  ~PsrService();

  PsrHwInfo hwinfo() const;
  psr::CacheModel& model() { return *m_model; }

  // CMT: an RMID for the domain and its sampled pages marked. `mem` must outlive the domain's
  // entry here (forget() before the memory goes).
  Result<void> attach(uint32_t domid, riscv::GuestMemory& mem);
  Result<void> detach(uint32_t domid);
  bool attached(uint32_t domid);
  // CAT: the domain's mask (validated, COS shared between equal masks).
  Result<void> set_cbm(uint32_t domid, uint64_t cbm);
  // MBA: throttle in percent, 0..90; rounded down to a 10% step (Intel linear mode).
  Result<unsigned> set_thrtl(uint32_t domid, unsigned thrtl);
  Result<PsrDomainStatus> status(uint32_t domid);
  // The domain is going away (destroyed or rebuilt): drops its RMID, COS and feed.
  void forget(uint32_t domid);

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
  };
  explicit PsrService(std::unique_ptr<psr::CacheModel> m) : m_model(std::move(m)) {}
  Entry& entry(uint32_t domid);
  void mark_pages(Entry& e, bool on);

  std::unique_ptr<psr::CacheModel> m_model;
  std::mutex m_mutex;
  std::map<uint32_t, Entry> m_domains;
};

}  // namespace vigil::hv
