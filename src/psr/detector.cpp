#include "psr/detector.h"

#include <algorithm>

namespace vigil::psr {

namespace {
uint64_t delta(uint64_t later, uint64_t earlier) { return later >= earlier ? later - earlier : 0; }
}  // namespace

Verdict detect(const Snapshot& a, const Snapshot& b, const std::vector<uint32_t>& rmids, double peak_bytes_per_s) {
  Verdict v;
  v.peak_bytes_per_s = peak_bytes_per_s;
  v.window_s = b.time_ns > a.time_ns ? double(b.time_ns - a.time_ns) / 1e9 : 0;
  std::vector<uint32_t> ids;
  for (uint32_t r : rmids) {
    if (r != 0 && r < kMaxRmids) ids.push_back(r);
  }
  const size_t n = ids.size();
  uint64_t total_occ = 0, total_cross = 0;
  auto evicted = [&](uint32_t by, uint32_t from) { return delta(b.evictions[by][from], a.evictions[by][from]); };
  for (uint32_t r : ids) {
    DomainWindow d;
    d.rmid = r;
    d.occupancy_bytes = b.rmid[r].occupancy_bytes;
    for (uint32_t o : ids) {
      if (o != r) d.evicted_others_lines += evicted(r, o);
    }
    const RmidRates rr = rates(a, b, r);
    d.bandwidth_bytes_per_s = rr.mbm_bytes_per_s;
    d.miss_rate = rr.miss_rate;
    d.accesses = delta(b.rmid[r].accesses, a.rmid[r].accesses);
    total_occ += d.occupancy_bytes;
    total_cross += d.evicted_others_lines;
    v.total_bandwidth_bytes_per_s += d.bandwidth_bytes_per_s;
    v.domains.push_back(d);
  }
  for (DomainWindow& d : v.domains) {
    d.occupancy_share = total_occ ? double(d.occupancy_bytes) / double(total_occ) : 0;
    d.eviction_share = total_cross ? double(d.evicted_others_lines) / double(total_cross) : 0;
    d.bandwidth_share = v.total_bandwidth_bytes_per_s > 0 ? d.bandwidth_bytes_per_s / v.total_bandwidth_bytes_per_s : 0;
  }

  // The noisy domain: the strongest suspect meeting every threshold.
  const double min_occ = std::max(kMinOccupancyShare, n ? kFairShareFactor / double(n) : 1.0);
  double best = -1;
  for (const DomainWindow& s : v.domains) {
    if (n < 2 || s.occupancy_share < min_occ) continue;
    std::vector<Victim> victims;
    for (const DomainWindow& o : v.domains) {
      if (o.rmid == s.rmid || o.accesses < kMinVictimAccesses) continue;
      uint64_t lost = 0;  // the victim's lines evicted by other domains (unmonitored RMID 0 included)
      for (uint32_t x = 0; x < kMaxRmids; ++x) {
        if (x != o.rmid) lost += evicted(x, o.rmid);
      }
      const uint64_t by_s = evicted(s.rmid, o.rmid);
      const double share = lost ? double(by_s) / double(lost) : 0;
      const uint64_t misses = delta(b.rmid[o.rmid].misses, a.rmid[o.rmid].misses);
      // Misses of the victim on lines the suspect had evicted (the model's ghost table).
      const uint64_t caused = std::min(misses, delta(b.inflicted[s.rmid][o.rmid], a.inflicted[s.rmid][o.rmid]));
      const double without = double(std::max<uint64_t>(misses - caused, 1));
      const double rise = misses ? double(misses) / without : 0;
      if (share >= kMinEvictionShare && rise >= kMinMissRise) victims.push_back({o.rmid, o.miss_rate, rise, share});
    }
    if (victims.empty()) continue;
    const double score = s.occupancy_share + s.eviction_share + victims.front().evicted_share;
    if (score > best) {
      best = score;
      std::sort(victims.begin(), victims.end(), [](const Victim& x, const Victim& y) { return x.rise > y.rise; });
      v.noisy = s.rmid;
      v.victims = std::move(victims);
    }
  }

  v.saturated = peak_bytes_per_s > 0 && v.total_bandwidth_bytes_per_s >= kSaturation * peak_bytes_per_s;
  if (v.saturated) {
    const DomainWindow* top = nullptr;
    for (const DomainWindow& d : v.domains) {
      if (top == nullptr || d.bandwidth_bytes_per_s > top->bandwidth_bytes_per_s) top = &d;
    }
    if (top != nullptr) v.migrate = top->rmid;
  }
  return v;
}

}  // namespace vigil::psr
