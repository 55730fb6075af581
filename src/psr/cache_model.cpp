#include "psr/cache_model.h"

#include <sys/mman.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <new>
#include <optional>
#include <type_traits>

namespace vigil::psr {

namespace {

constexpr uint8_t kValid = 1, kDirty = 2;

// One modeled line: 16 bytes, so a 16-way set is four host cache lines.
struct Line {
  uint64_t tag;    // line address (byte address / line bytes)
  uint32_t stamp;  // last use, for LRU
  uint8_t owner;   // RMID that filled it
  uint8_t flags;   // kValid | kDirty
  uint8_t pad[2];
};
static_assert(sizeof(Line) == 16 && std::is_trivially_copyable_v<Line>);

// One ghost entry: a line that another domain evicted (CacheModel "who evicted whom").
struct Ghost {
  uint64_t tag_plus_one;  // 0: empty
  uint8_t evictor;
  uint8_t owner;
  uint8_t pad[6];
};
static_assert(sizeof(Ghost) == 16 && std::is_trivially_copyable_v<Ghost>);

// Reads one unsigned number from a sysfs file, accepting a K/M suffix ("8192K").
std::optional<uint64_t> read_sysfs_number(const std::string& path) {
  std::ifstream in(path);
  std::string s;
  if (!(in >> s) || s.empty()) return std::nullopt;
  uint64_t mult = 1;
  if (s.back() == 'K') mult = 1024, s.pop_back();
  else if (s.back() == 'M') mult = 1024 * 1024, s.pop_back();
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9' || v > (UINT64_MAX - 9) / 10) return std::nullopt;
    v = v * 10 + uint64_t(c - '0');
  }
  return v * mult;
}

}  // namespace

// Everything shared lives here: fixed layout, no pointers (the lines are at `lines_offset`
// from the start of the region), plain integers guarded by `lock`.
struct CacheModel::Region {
  std::atomic<uint32_t> lock;
  uint32_t sampling;
  Geometry geometry;
  uint64_t modeled_sets;
  uint64_t lines_offset;
  uint64_t ghosts_offset;
  uint32_t clock;  // LRU stamps
  uint8_t rmid_used[kMaxRmids];
  uint64_t cos_mask[kMaxCos];
  uint32_t cos_refs[kMaxCos];
  // Unscaled counts of modeled lines; multiplied by `sampling` when read.
  uint64_t lines_owned[kMaxRmids];
  uint64_t accesses[kMaxRmids];
  uint64_t misses[kMaxRmids];
  uint64_t writebacks[kMaxRmids];
  uint64_t evictions[kMaxRmids][kMaxRmids];
  uint64_t inflicted[kMaxRmids][kMaxRmids];

  Ghost* ghosts() { return reinterpret_cast<Ghost*>(reinterpret_cast<std::byte*>(this) + ghosts_offset); }
  Line* lines() { return reinterpret_cast<Line*>(reinterpret_cast<std::byte*>(this) + lines_offset); }
  const Line* lines() const {
    return reinterpret_cast<const Line*>(reinterpret_cast<const std::byte*>(this) + lines_offset);
  }
};
static_assert(std::atomic<uint32_t>::is_always_lock_free, "the lock must work across processes");

namespace {

// Test-and-test-and-set: critical sections are a few dozen instructions.
class RegionLock {
 public:
  explicit RegionLock(std::atomic<uint32_t>& l) : m_lock(l) {
    while (m_lock.exchange(1, std::memory_order_acquire) != 0)
      while (m_lock.load(std::memory_order_relaxed) != 0) __builtin_ia32_pause();
  }
  ~RegionLock() { m_lock.store(0, std::memory_order_release); }

 private:
  std::atomic<uint32_t>& m_lock;
};

}  // namespace

Result<void> Geometry::validate() const {
  if (line_bytes < 8 || !std::has_single_bit(line_bytes))
    return make_error("The cache line size {} is not a power of two of at least 8 bytes.", line_bytes);
  if (ways < 1 || ways > 32) return make_error("The cache has {} ways; the model supports 1 to 32.", ways);
  if (sets() < 1 || size_bytes % (uint64_t{ways} * line_bytes) != 0)
    return make_error("A {}-byte cache is not a whole number of {}-way sets of {}-byte lines.", size_bytes,
                      ways, line_bytes);
  if (size_bytes > (1ull << 36)) return make_error("A {}-byte cache is larger than the model supports.", size_bytes);
  return {};
}

Geometry host_l3_geometry(const std::string& dir) {
  Geometry g;  // the documented default
  auto size = read_sysfs_number(dir + "/size");
  auto ways = read_sysfs_number(dir + "/ways_of_associativity");
  auto line = read_sysfs_number(dir + "/coherency_line_size");
  if (!size || !ways || !line || *ways > 32 || *line > 4096) return g;
  Geometry host{*size, uint32_t(*ways), uint32_t(*line)};
  return host.validate() ? host : g;
}

Result<void> validate_cbm(uint64_t cbm, uint32_t cbm_len) {
  if (cbm == 0) return make_error("The capacity bitmask is empty; it needs at least one way.");
  if (cbm_len < 64 && (cbm >> cbm_len) != 0)
    return make_error("The capacity bitmask {:#x} has bits beyond the {}-bit CBM length.", cbm, cbm_len);
  uint64_t shifted = cbm >> std::countr_zero(cbm);
  if ((shifted & (shifted + 1)) != 0)
    return make_error("The capacity bitmask {:#x} is not contiguous; CAT needs one run of set bits.", cbm);
  return {};
}

RmidRates rates(const Snapshot& a, const Snapshot& b, uint32_t rmid) {
  RmidRates r;
  if (rmid >= kMaxRmids || b.time_ns <= a.time_ns) return r;
  const double secs = double(b.time_ns - a.time_ns) / 1e9;
  const auto& x = a.rmid[rmid];
  const auto& y = b.rmid[rmid];
  // Monotonic counters; a smaller later value means the RMID was freed and reused: no rate.
  if (y.mbm_total_bytes < x.mbm_total_bytes || y.accesses < x.accesses || y.misses < x.misses) return r;
  r.mbm_bytes_per_s = double(y.mbm_total_bytes - x.mbm_total_bytes) / secs;
  r.misses_per_s = double(y.misses - x.misses) / secs;
  r.accesses_per_s = double(y.accesses - x.accesses) / secs;
  r.miss_rate = y.accesses > x.accesses ? double(y.misses - x.misses) / double(y.accesses - x.accesses) : 0;
  return r;
}

Result<std::unique_ptr<CacheModel>> CacheModel::create(const Geometry& g, uint32_t sampling) {
  if (auto ok = g.validate(); !ok) return std::unexpected(ok.error());
  if (sampling < 1 || !std::has_single_bit(sampling) || sampling > 4096)
    return make_error("The sampling ratio {} is not a power of two between 1 and 4096.", sampling);
  const uint64_t sets = std::max<uint64_t>(1, g.sets() / sampling);
  const uint64_t header = (sizeof(Region) + 63) & ~uint64_t{63};
  const size_t bytes = header + sets * g.ways * (sizeof(Line) + sizeof(Ghost));
  // MAP_SHARED: the same pages could be handed to another process (memfd) unchanged.
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return make_error("Cannot map {} bytes for the cache model: {}.", bytes, strerror(errno));
  auto* r = new (p) Region{};  // zero-initialised: all lines invalid, owned by RMID 0
  r->sampling = sampling;
  r->geometry = g;
  r->modeled_sets = sets;
  r->lines_offset = header;
  r->ghosts_offset = header + sets * g.ways * sizeof(Line);
  r->cos_mask[0] = g.ways == 64 ? ~0ull : (1ull << g.ways) - 1;
  r->rmid_used[0] = 1;
  return std::unique_ptr<CacheModel>(new CacheModel(r, bytes));
}

CacheModel::CacheModel(Region* r, size_t bytes)
    : m_region(r), m_region_bytes(bytes), m_sampling_mask(r->sampling - 1) {}

CacheModel::~CacheModel() { munmap(m_region, m_region_bytes); }

const Geometry& CacheModel::geometry() const { return m_region->geometry; }
uint32_t CacheModel::sampling() const { return m_region->sampling; }
uint64_t CacheModel::modeled_sets() const { return m_region->modeled_sets; }

uint64_t CacheModel::access(uint32_t rmid, uint32_t cos, uint64_t addr, uint32_t bytes, bool write) {
  if (bytes == 0) return 0;
  if (rmid >= kMaxRmids) rmid = 0;
  Region& r = *m_region;
  const uint32_t shift = std::countr_zero(r.geometry.line_bytes);
  const uint64_t first = addr >> shift, last = (addr + bytes - 1) >> shift;
  const uint32_t lines_per_page_shift = shift < 12 ? 12 - shift : 0;
  uint64_t misses = 0;
  RegionLock lock(r.lock);
  const uint64_t mask = r.cos_mask[cos < kMaxCos ? cos : 0];
  for (uint64_t line = first; line <= last; ++line) {
    if (!sampled_page_number(line >> lines_per_page_shift, m_sampling_mask)) continue;
    access_line(rmid, mask, line, write, misses);
  }
  return misses * r.sampling;
}

void CacheModel::access_line(uint32_t rmid, uint64_t mask, uint64_t line, bool write, uint64_t& misses) {
  Region& r = *m_region;
  const uint32_t ways = r.geometry.ways;
  Line* set = r.lines() + (mix(line) % r.modeled_sets) * ways;
  const uint32_t now = ++r.clock;
  ++r.accesses[rmid];
  for (uint32_t w = 0; w < ways; ++w) {
    if ((set[w].flags & kValid) && set[w].tag == line) {
      set[w].stamp = now;
      if (write) set[w].flags |= kDirty;
      return;
    }
  }
  ++misses;
  ++r.misses[rmid];
  const uint64_t n_ghosts = r.modeled_sets * ways;
  Ghost& seen = r.ghosts()[mix(line ^ 0x5bd1e995ull) % n_ghosts];
  if (seen.tag_plus_one == line + 1) {
    if (seen.owner == rmid && seen.evictor != rmid) ++r.inflicted[seen.evictor][rmid];
    seen.tag_plus_one = 0;
  }
  // Victim: an invalid way of the mask, else the least recently used way of the mask.
  uint32_t victim = ways;
  uint32_t oldest_age = 0;
  for (uint32_t w = 0; w < ways; ++w) {
    if (!((mask >> w) & 1)) continue;
    if (!(set[w].flags & kValid)) {
      victim = w;
      break;
    }
    const uint32_t age = now - set[w].stamp;  // wrap-safe
    if (victim == ways || age > oldest_age) victim = w, oldest_age = age;
  }
  if (victim == ways) return;  // an empty mask cannot happen (validated); be safe anyway
  Line& v = set[victim];
  if (v.flags & kValid) {
    --r.lines_owned[v.owner];
    ++r.evictions[rmid][v.owner];
    if (v.flags & kDirty) ++r.writebacks[v.owner];
    if (v.owner != rmid) r.ghosts()[mix(v.tag ^ 0x5bd1e995ull) % n_ghosts] = Ghost{v.tag + 1, uint8_t(rmid), v.owner, {}};
  }
  v.tag = line;
  v.stamp = now;
  v.owner = uint8_t(rmid);
  v.flags = kValid | (write ? kDirty : 0);
  ++r.lines_owned[rmid];
}

Result<uint32_t> CacheModel::alloc_rmid() {
  Region& r = *m_region;
  RegionLock lock(r.lock);
  for (uint32_t i = 1; i < kMaxRmids; ++i) {
    if (r.rmid_used[i]) continue;
    r.rmid_used[i] = 1;
    r.accesses[i] = r.misses[i] = r.writebacks[i] = 0;
    for (uint32_t j = 0; j < kMaxRmids; ++j) {
      r.evictions[i][j] = r.evictions[j][i] = 0;
      r.inflicted[i][j] = r.inflicted[j][i] = 0;
    }
    return i;
  }
  return make_error("All {} monitoring IDs are in use; detach monitoring from another domain first.",
                    kMaxRmids - 1);
}

void CacheModel::free_rmid(uint32_t rmid) {
  if (rmid == 0 || rmid >= kMaxRmids) return;
  Region& r = *m_region;
  RegionLock lock(r.lock);
  if (!r.rmid_used[rmid]) return;
  r.rmid_used[rmid] = 0;
  Line* lines = r.lines();
  const uint64_t n = r.modeled_sets * r.geometry.ways;
  for (uint64_t i = 0; i < n; ++i)
    if ((lines[i].flags & kValid) && lines[i].owner == rmid) lines[i].owner = 0;
  r.lines_owned[0] += r.lines_owned[rmid];
  r.lines_owned[rmid] = 0;
  Ghost* ghosts = r.ghosts();  // a reallocated RMID must not inherit these
  for (uint64_t i = 0; i < n; ++i)
    if (ghosts[i].owner == rmid || ghosts[i].evictor == rmid) ghosts[i].tag_plus_one = 0;
}

Result<uint32_t> CacheModel::acquire_cos(uint64_t cbm) {
  Region& r = *m_region;
  if (auto ok = validate_cbm(cbm, r.geometry.ways); !ok) return std::unexpected(ok.error());
  RegionLock lock(r.lock);
  if (cbm == r.cos_mask[0]) return 0;
  uint32_t free_cos = 0;
  for (uint32_t c = 1; c < kMaxCos; ++c) {
    if (r.cos_refs[c] && r.cos_mask[c] == cbm) {
      ++r.cos_refs[c];
      return c;
    }
    if (!r.cos_refs[c] && !free_cos) free_cos = c;
  }
  if (!free_cos)
    return make_error("All {} classes of service hold other masks; reuse one of their masks or free one.",
                      kMaxCos);
  r.cos_refs[free_cos] = 1;
  r.cos_mask[free_cos] = cbm;
  return free_cos;
}

void CacheModel::release_cos(uint32_t cos) {
  if (cos == 0 || cos >= kMaxCos) return;
  Region& r = *m_region;
  RegionLock lock(r.lock);
  if (r.cos_refs[cos] && --r.cos_refs[cos] == 0) r.cos_mask[cos] = 0;
}

uint64_t CacheModel::drop_outside(uint32_t rmid, uint64_t cbm) {
  if (rmid == 0 || rmid >= kMaxRmids) return 0;
  Region& r = *m_region;
  RegionLock lock(r.lock);
  const uint32_t ways = r.geometry.ways;
  Line* lines = r.lines();
  uint64_t dropped = 0;
  for (uint64_t s = 0; s < r.modeled_sets; ++s) {
    for (uint32_t w = 0; w < ways; ++w) {
      Line& l = lines[s * ways + w];
      if (!(l.flags & kValid) || l.owner != rmid || ((cbm >> w) & 1)) continue;
      if (l.flags & kDirty) ++r.writebacks[rmid];
      l.flags = 0;
      --r.lines_owned[rmid];
      ++dropped;
    }
  }
  return dropped;
}

uint64_t CacheModel::cos_mask(uint32_t cos) const {
  if (cos >= kMaxCos) return 0;
  RegionLock lock(m_region->lock);
  return m_region->cos_mask[cos];
}

uint32_t CacheModel::cos_in_use() const {
  RegionLock lock(m_region->lock);
  uint32_t n = 1;
  for (uint32_t c = 1; c < kMaxCos; ++c) n += m_region->cos_refs[c] != 0;
  return n;
}

RmidCounters CacheModel::counters(uint32_t rmid) const {
  RmidCounters c;
  if (rmid >= kMaxRmids) return c;
  const Region& r = *m_region;
  RegionLock lock(m_region->lock);
  const uint64_t s = r.sampling, lb = r.geometry.line_bytes;
  c.occupancy_bytes = r.lines_owned[rmid] * lb * s;
  c.accesses = r.accesses[rmid] * s;
  c.misses = r.misses[rmid] * s;
  c.writebacks = r.writebacks[rmid] * s;
  c.mbm_total_bytes = (r.misses[rmid] + r.writebacks[rmid]) * lb * s;
  return c;
}

Snapshot CacheModel::snapshot(uint64_t time_ns) const {
  Snapshot snap;
  snap.time_ns = time_ns;
  for (uint32_t i = 0; i < kMaxRmids; ++i) snap.rmid[i] = counters(i);
  const Region& r = *m_region;
  RegionLock lock(m_region->lock);
  for (uint32_t a = 0; a < kMaxRmids; ++a) {
    for (uint32_t b = 0; b < kMaxRmids; ++b) {
      snap.evictions[a][b] = r.evictions[a][b] * r.sampling;
      snap.inflicted[a][b] = r.inflicted[a][b] * r.sampling;
    }
  }
  return snap;
}

}  // namespace vigil::psr
