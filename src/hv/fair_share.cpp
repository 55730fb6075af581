#include "hv/fair_share.h"

#include <algorithm>
#include <bit>
#include <limits>
#include <set>

namespace vigil::hv {

namespace {

// Hall's condition need only be checked on unions of affinity masks (a set that is not such a
// union holds no more vCPUs than the union of the masks inside it, and has more workers).
// The closure is small for real pin layouts (a few distinct masks); a pathological layout with
// very many distinct masks is cut off, and the whole pool is always kept, so the shares stay
// schedulable on the pool as a whole and are only less exact within it.
constexpr size_t kMaxWorkerSets = 256;

std::vector<uint64_t> worker_sets(const std::vector<uint64_t>& masks, uint64_t all) {
  std::set<uint64_t> sets;
  for (uint64_t m : masks) {
    if (sets.size() >= kMaxWorkerSets) break;
    std::vector<uint64_t> grown{m};
    for (uint64_t s : sets) grown.push_back(s | m);
    for (uint64_t g : grown) {
      if (sets.size() >= kMaxWorkerSets) break;
      sets.insert(g);
    }
  }
  sets.insert(all);
  return {sets.begin(), sets.end()};
}

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kEps = 1e-12;

}  // namespace

std::vector<double> fair_shares(const std::vector<ShareDemand>& demands, unsigned workers,
                                const std::vector<double>& group_caps) {
  const size_t n = demands.size();
  std::vector<double> share(n, 0.0);
  if (n == 0 || workers == 0) return share;
  const uint64_t all = workers >= 64 ? ~0ull : (1ull << workers) - 1;

  // One constraint: the demands it holds use at most `room` workers together. Every demand
  // is in the constraint of its own cap (max), of its group (if capped) and of every worker
  // set that contains its whole affinity.
  struct Limit {
    double room;
    std::vector<size_t> members;
  };
  std::vector<Limit> limits;
  std::vector<uint64_t> mask(n);
  std::vector<bool> frozen(n, false);
  std::vector<uint64_t> distinct;
  for (size_t i = 0; i < n; ++i) {
    const ShareDemand& d = demands[i];
    mask[i] = (d.affinity == 0 ? all : d.affinity) & all;
    // Nowhere to run, no weight or no demand: no share.
    if (mask[i] == 0 || !(d.weight > 0) || !(d.max > 0)) {
      frozen[i] = true;
      continue;
    }
    limits.push_back({std::min(d.max, 1.0), {i}});
    if (std::find(distinct.begin(), distinct.end(), mask[i]) == distinct.end()) distinct.push_back(mask[i]);
  }
  for (size_t g = 0; g < group_caps.size(); ++g) {
    if (!(group_caps[g] > 0)) continue;
    Limit l{group_caps[g], {}};
    for (size_t i = 0; i < n; ++i) {
      if (!frozen[i] && demands[i].group == static_cast<int>(g)) l.members.push_back(i);
    }
    if (!l.members.empty()) limits.push_back(std::move(l));
  }
  for (uint64_t s : worker_sets(distinct, all)) {
    Limit l{static_cast<double>(std::popcount(s)), {}};
    for (size_t i = 0; i < n; ++i) {
      if (!frozen[i] && (mask[i] & ~s) == 0) l.members.push_back(i);
    }
    if (!l.members.empty()) limits.push_back(std::move(l));
  }

  // Progressive filling: every unfrozen demand's share is weight * level. Each round raises
  // the level to the next constraint that binds and freezes the demands it holds, so there
  // are at most n rounds.
  double level = 0;
  for (size_t round = 0; round < n; ++round) {
    double next = kInf;
    for (const Limit& l : limits) {
      double fixed = 0, rising = 0;
      for (size_t i : l.members) {
        if (frozen[i]) fixed += share[i];
        else rising += demands[i].weight;
      }
      if (rising > 0) next = std::min(next, std::max(level, (l.room - fixed) / rising));
    }
    if (next == kInf) break;  // nothing left rising
    level = next;
    for (size_t i = 0; i < n; ++i) {
      if (!frozen[i]) share[i] = demands[i].weight * level;
    }
    std::vector<bool> freeze = frozen;
    for (const Limit& l : limits) {
      double used = 0;
      for (size_t i : l.members) used += share[i];
      if (used < l.room - kEps * std::max(1.0, l.room)) continue;
      for (size_t i : l.members) freeze[i] = true;
    }
    frozen = std::move(freeze);
  }
  return share;
}

}  // namespace vigil::hv
