// Platform shared resources: a model of one shared last-level cache with Intel RDT's
// monitoring (CMT occupancy, MBM bandwidth) and allocation (CAT way masks) per domain.
//
// The host has no RDT we can use (there is none inside a VM), and a software-virtualized guest's
// accesses never reach the host cache as the guest issued them anyway, so Vigil models a
// *reference* cache and reports what it sees. Ratios and rankings between domains are the
// reliable output; absolute bytes describe the reference machine, not the host.
//
// Geometry: one cache of `size` bytes, `ways`-way set associative, `line` bytes per line;
// sets = size / (ways * line). The default is the host's L3 (sysfs cpu0 cache index3), else
// 8 MiB, 16 ways, 64-byte lines. The set of a line is a hash of its address (real LLCs hash
// the physical address to slices and sets too), so strided streams do not alias pathologically.
//
// Replacement: true LRU per set, kept as a 32-bit last-use stamp per line (the stamp wraps
// after 2^32 modeled accesses; a wrap only makes one victim choice sub-optimal).
//
// Sampling (set sampling by page, after Qureshi & Patt, MICRO 2006, and zsim's hashed utility
// monitor): with a sampling ratio R, only lines in one page of every aligned group of R pages
// (a hash picks which) are modeled, in a cache of sets/R sets with the same ways. About 1/R of any footprint competes
// for 1/R of the capacity, so occupancy, misses and evictions scale by R. page_sampled() is the
// predicate the feeder uses to decide which guest pages leave the fast path. R = 1 is the full
// (unsampled) model, used by the tests as the reference.
//
// CAT (Intel SDM vol. 3B 17.19.4, and Xen's cat_check_cbm): capacity bitmasks are non-empty,
// contiguous and within the CBM length (= ways); a limited number of classes of service (COS)
// exists, COS 0 is the all-ones default, and domains with equal masks share one COS. A fill by
// a domain goes only into the ways of its COS's mask (way partitioning); hits may be in any way.
//
// CAT mask changes: hardware leaves a domain's lines outside its new mask in place until other
// fills evict them; the model drops them at once instead (dirty ones written back, counted in
// the owner's MBM), drop_outside(). Otherwise a squeezed thrasher beside small neighbours keeps
// its old occupancy for as long as nobody else needs those ways, and the mask would show in the
// occupancy only under pressure.
//
// Who evicted whom: besides the eviction matrix, the model keeps a ghost table of cross-domain
// evictions (the evicted line's tag, its owner and the evictor; one entry per modeled line,
// direct-mapped by a hash of the tag, so only recent evictions survive). A miss that finds its
// line there is an *inflicted* miss: the victim missed because that domain evicted its line.
// The detector uses it for the victim's miss-rate rise; evictions of lines never used again
// (a neighbour's stale boot data) do not count.
//
// MBM (resctrl "mbm_total_bytes"): line bytes * (misses + dirty writebacks) * R, monotonic.
//
// Layout: every piece of state is in one SharedRegion of fixed layout with no pointers inside
// (offsets only) and a spinlock word, so the region can be a shared memfd mapped by one process
// per domain (shared/DESIGN.md, "a process per domain"). CacheModel is a process-local view on it.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "base/error.h"

namespace vigil::psr {

// Resource monitoring IDs, as RMIDs: 0 is "unmonitored" (Xen reserves it the same way).
constexpr uint32_t kMaxRmids = 64;
// Classes of service for CAT; COS 0 is the all-ones default.
constexpr uint32_t kMaxCos = 16;
constexpr uint32_t kPageBytes = 4096;

struct Geometry {
  uint64_t size_bytes = 8ull << 20;
  uint32_t ways = 16;
  uint32_t line_bytes = 64;

  uint64_t sets() const { return size_bytes / (uint64_t{ways} * line_bytes); }
  // A geometry the model accepts: powers of two for the line, 1..32 ways, at least one set.
  Result<void> validate() const;
};

// The host's L3 from /sys/devices/system/cpu/cpu0/cache/index3, else the 8 MiB/16/64 default.
// `sysfs_dir` is for tests.
Geometry host_l3_geometry(const std::string& sysfs_dir = "/sys/devices/system/cpu/cpu0/cache/index3");

// CAT mask rules (Xen's cat_check_cbm): one sentence naming what is wrong.
Result<void> validate_cbm(uint64_t cbm, uint32_t cbm_len);

// Per-RMID counters, already scaled by the sampling ratio.
struct RmidCounters {
  uint64_t occupancy_bytes = 0;   // CMT: lines currently owned * line bytes
  uint64_t mbm_total_bytes = 0;   // MBM: (misses + dirty writebacks) * line bytes, monotonic
  uint64_t accesses = 0;          // modeled accesses, monotonic
  uint64_t misses = 0;            // monotonic
  uint64_t writebacks = 0;        // dirty lines of this RMID evicted, monotonic
  double miss_rate() const { return accesses ? double(misses) / double(accesses) : 0.0; }
};

// A point-in-time copy of every counter, for rates and the detector.
struct Snapshot {
  uint64_t time_ns = 0;
  std::array<RmidCounters, kMaxRmids> rmid{};
  // evictions[a][b]: lines of RMID b evicted by fills of RMID a (scaled), monotonic.
  std::array<std::array<uint64_t, kMaxRmids>, kMaxRmids> evictions{};
  // inflicted[a][b]: misses of RMID b on lines that RMID a had evicted (scaled), monotonic.
  std::array<std::array<uint64_t, kMaxRmids>, kMaxRmids> inflicted{};
};

// Rates between two snapshots of the same model (later - earlier); zero if no time passed.
struct RmidRates {
  double mbm_bytes_per_s = 0;
  double misses_per_s = 0;
  double accesses_per_s = 0;
  double miss_rate = 0;  // misses / accesses in the interval
};
RmidRates rates(const Snapshot& earlier, const Snapshot& later, uint32_t rmid);

class CacheModel {
 public:
  // Allocates the shared region (an anonymous shared mapping). `sampling` = R >= 1, a power of 2.
  static Result<std::unique_ptr<CacheModel>> create(const Geometry& g, uint32_t sampling);
  ~CacheModel();
  CacheModel(const CacheModel&) = delete;
  CacheModel& operator=(const CacheModel&) = delete;

  const Geometry& geometry() const;
  uint32_t sampling() const;
  uint64_t modeled_sets() const;
  uint32_t cbm_len() const { return geometry().ways; }

  // Whether accesses to the page holding byte address `addr` are modeled. Lock-free and pure.
  bool page_sampled(uint64_t addr) const { return sampled_page_number(addr >> 12, m_sampling_mask); }
  // Stratified: exactly one page in each aligned group of R pages, chosen by a hash of the group,
  // so a contiguous footprint of n pages has n/R sampled pages (+-1) instead of a binomial count
  // (a pure hash gave 15% miss-count errors on a 3 MiB loop at R=16).
  static bool sampled_page_number(uint64_t page_number, uint64_t sampling_mask) {
    return (page_number & sampling_mask) == (mix(page_number & ~sampling_mask) & sampling_mask);
  }

  // One access of `bytes` bytes at `addr` by `rmid` under `cos` (lines it spans are each one
  // modeled access). Accesses to pages that are not sampled are ignored, so feeding the full
  // stream and feeding only sampled pages give the same counts. Addresses must be unique per
  // domain across the model (the feeder uses host addresses of guest RAM). Returns the number of
  // modeled misses *after* scaling (0 for hits and unsampled pages).
  uint64_t access(uint32_t rmid, uint32_t cos, uint64_t addr, uint32_t bytes, bool write);

  // RMIDs: allocate a free one (1..kMaxRmids-1) or fail with a sentence when none is free; free
  // gives the RMID's lines to RMID 0 (Vigil skips resctrl's "limbo": a freed RMID starts again
  // from zero counters when reallocated).
  Result<uint32_t> alloc_rmid();
  void free_rmid(uint32_t rmid);

  // CAT: a COS for `cbm` (validated), shared with any COS holding the same mask; the caller
  // releases the COS it held before. COS 0 (all ones) is never allocated or released.
  Result<uint32_t> acquire_cos(uint64_t cbm);
  void release_cos(uint32_t cos);
  // The lines of `rmid` in ways outside `cbm` are dropped (dirty ones written back and counted
  // as the RMID's writebacks): a domain's mask was narrowed. Returns the lines dropped (unscaled).
  uint64_t drop_outside(uint32_t rmid, uint64_t cbm);
  uint64_t cos_mask(uint32_t cos) const;
  uint32_t cos_in_use() const;  // including COS 0

  Snapshot snapshot(uint64_t time_ns) const;
  RmidCounters counters(uint32_t rmid) const;
  // Modeled capacity in bytes of the reference cache (the size, regardless of sampling).
  uint64_t capacity_bytes() const { return geometry().size_bytes; }

 private:
  struct Region;
  explicit CacheModel(Region* r, size_t bytes);
  static uint64_t mix(uint64_t x) {
    // splitmix64 finalizer: cheap and well distributed, so page and set choices look random.
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
  }
  void access_line(uint32_t rmid, uint64_t mask, uint64_t line_addr, bool write, uint64_t& misses);

  Region* m_region;
  size_t m_region_bytes;
  uint64_t m_sampling_mask;  // R - 1
};

}  // namespace vigil::psr
