// Weighted max-min fair shares of a pool of workers among vCPUs with hard affinity: what the
// credit scheduler pays each active vCPU per accounting period (issue 15).
//
// Why not "the pool divided by weight" (Xen's credit1, and this scheduler before): a vCPU
// pinned to worker 0 can never use worker 1, so credit handed out for worker 1's time to
// domains that cannot run there is credit nobody can spend, and the shares on worker 0 then
// depend on what runs elsewhere. Credit2 and Linux's CFS avoid that by accounting per run
// queue; here the global "run the vCPU with most credit" pick stays, and only the income
// changes: each vCPU earns the share it would get from a weighted max-min fair allocation
// (progressive filling, Bertsekas & Gallager, "Data Networks" 6.5.2) under three kinds of
// constraint:
//   - a vCPU uses at most one worker, and at most its measured demand (a vCPU that slept
//     part of the last period is not owed time it would not use);
//   - a domain's vCPUs together use at most its cap;
//   - for every set S of workers, the vCPUs whose affinity lies inside S use at most |S|
//     workers (Hall's condition: with it, the shares can be scheduled; without, not).
// All vCPUs' shares rise in proportion to their weights until a constraint binds; the vCPUs
// it binds keep their share and the rest go on rising. So weights hold among the vCPUs that
// compete for the same workers, whatever runs on the others, and capacity a vCPU cannot use
// goes to those that can.
#pragma once

#include <cstdint>
#include <vector>

namespace vigil::hv {

struct ShareDemand {
  double weight = 1;      // > 0
  uint64_t affinity = 0;  // workers it may use (bit w = worker w); 0 = any
  double max = 1;         // at most this many workers (<= 1: one vCPU is one thread)
  int group = -1;         // the domain, for the cap; -1 = none
};

// group_caps[g]: the most group g may use in workers (e.g. 0.25 for cap = 25); a missing or
// non-positive entry means no cap. Returns each demand's share in workers (0..max).
std::vector<double> fair_shares(const std::vector<ShareDemand>& demands, unsigned workers,
                                const std::vector<double>& group_caps = {});

}  // namespace vigil::hv
