// Cost per modeled access of the shared-LLC model (src/psr/cache_model.h), Google Benchmark.
//   Hit        a loop over 256 KiB (fits): tag compare in one set
//   Miss       random over 256 MiB: tag compare, LRU victim choice, eviction matrix update
//   Unsampled  an access to a page the sampled model ignores (the page-hash test only; the
//              feeder never even calls the model for such pages, they stay on the fast path)
// Arg: the sampling ratio R (1 = the full model).
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "psr/cache_model.h"

namespace {

using vigil::psr::CacheModel;
using vigil::psr::Geometry;

std::vector<uint64_t> sampled_addresses(const CacheModel& m, uint64_t span, bool random, size_t n) {
  std::mt19937_64 rng(42);
  std::vector<uint64_t> out;
  for (uint64_t i = 0; out.size() < n; ++i) {
    uint64_t a = random ? (rng() % span) & ~63ull : (i * 64) % span;
    if (m.page_sampled(a)) out.push_back(a);
    if (!random && i > 64 * n) break;
  }
  return out;
}

void run(benchmark::State& state, uint64_t span, bool random) {
  auto m = std::move(*CacheModel::create(Geometry{}, uint32_t(state.range(0))));
  const uint32_t rmid = *m->alloc_rmid();
  auto addrs = sampled_addresses(*m, span, random, 1 << 16);
  size_t i = 0;
  for (auto a : addrs) m->access(rmid, 0, a, 8, false);  // warm
  for (auto _ : state) {
    benchmark::DoNotOptimize(m->access(rmid, 0, addrs[i], 8, (i & 7) == 0));
    if (++i == addrs.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_Hit(benchmark::State& s) { run(s, 256 << 10, false); }
void BM_Miss(benchmark::State& s) { run(s, 256ull << 20, true); }
void BM_Unsampled(benchmark::State& state) {
  auto m = std::move(*CacheModel::create(Geometry{}, uint32_t(state.range(0))));
  uint64_t page = 0;
  while (m->page_sampled(page * 4096)) ++page;
  for (auto _ : state) benchmark::DoNotOptimize(m->access(1, 0, page * 4096, 8, false));
}

BENCHMARK(BM_Hit)->Arg(1)->Arg(64);
BENCHMARK(BM_Miss)->Arg(1)->Arg(64);
BENCHMARK(BM_Unsampled)->Arg(64);

}  // namespace

BENCHMARK_MAIN();
