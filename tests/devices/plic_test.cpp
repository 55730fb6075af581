#include "devices/plic.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <iterator>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <utility>
#include <vector>

namespace vigil::devices {
namespace {

constexpr uint64_t priority_reg(unsigned id) {
  return 4ull * id;
}
constexpr uint64_t pending_reg(unsigned word) {
  return 0x1000 + 4ull * word;
}
constexpr uint64_t enable_reg(unsigned ctx, unsigned word) {
  return 0x2000 + 0x80ull * ctx + 4ull * word;
}
constexpr uint64_t threshold_reg(unsigned ctx) {
  return 0x200000 + 0x1000ull * ctx;
}
constexpr uint64_t claim_reg(unsigned ctx) {
  return threshold_reg(ctx) + 4;
}

class FakeHartSink : public HartIrqSink {
 public:
  void set_hart_irq(unsigned hart, unsigned mip_bit, bool level) override {
    std::lock_guard lock(mutex);
    bool& current = levels[{hart, mip_bit}];
    if (current == level) ++redundant_calls;  // the PLIC should only report changes
    current = level;
    ++calls;
  }
  bool level(unsigned hart, unsigned bit) {
    std::lock_guard lock(mutex);
    auto it = levels.find({hart, bit});
    return it != levels.end() && it->second;
  }
  std::mutex mutex;
  std::map<std::pair<unsigned, unsigned>, bool> levels;
  int calls = 0;
  int redundant_calls = 0;
};

class PlicTest : public ::testing::Test {
 protected:
  static constexpr unsigned kSources = 96;
  static constexpr unsigned kHarts = 2;
  static constexpr unsigned kS0 = Plic::supervisor_context(0);  // hart 0 S-mode

  uint32_t rd(uint64_t offset) {
    uint64_t v = 0xdeadbeefdeadbeefull;
    EXPECT_TRUE(plic.read(offset, 4, v)) << std::hex << offset;
    EXPECT_LE(v, 0xffffffffull);
    return static_cast<uint32_t>(v);
  }
  void wr(uint64_t offset, uint32_t v) { EXPECT_TRUE(plic.write(offset, 4, v)) << std::hex << offset; }
  void enable(unsigned ctx, unsigned id) {
    wr(enable_reg(ctx, id / 32), rd(enable_reg(ctx, id / 32)) | (1u << (id % 32)));
  }
  void raise(unsigned id, bool high = true) { plic.line(id)->set_level(high); }
  void TearDown() override { EXPECT_EQ(sink.redundant_calls, 0); }

  FakeHartSink sink;
  Plic plic{kSources, kHarts, &sink};
};

TEST_F(PlicTest, ClaimCompleteFlow) {
  wr(priority_reg(10), 1);
  enable(kS0, 10);
  EXPECT_FALSE(sink.level(0, Plic::kSeipBit));
  raise(10);
  EXPECT_EQ(rd(pending_reg(0)), 1u << 10);
  EXPECT_TRUE(sink.level(0, Plic::kSeipBit));
  EXPECT_FALSE(sink.level(0, Plic::kMeipBit));
  EXPECT_EQ(rd(claim_reg(kS0)), 10u);
  EXPECT_EQ(rd(pending_reg(0)), 0u);  // claim clears pending
  EXPECT_FALSE(sink.level(0, Plic::kSeipBit));
  EXPECT_EQ(rd(claim_reg(kS0)), 0u);  // nothing else
  raise(10, false);
  wr(claim_reg(kS0), 10);
  EXPECT_EQ(rd(pending_reg(0)), 0u);  // line low at completion: nothing re-pends
  EXPECT_FALSE(sink.level(0, Plic::kSeipBit));
  raise(10);  // gateway open again: a new request
  EXPECT_TRUE(sink.level(0, Plic::kSeipBit));
  EXPECT_EQ(rd(claim_reg(kS0)), 10u);
}

TEST_F(PlicTest, PriorityZeroNeverInterrupts) {
  enable(kS0, 4);
  raise(4);
  EXPECT_EQ(rd(pending_reg(0)), 1u << 4);  // pending, but priority 0 means "never"
  EXPECT_FALSE(sink.level(0, Plic::kSeipBit));
  EXPECT_EQ(rd(claim_reg(kS0)), 0u);
  wr(priority_reg(4), 2);
  EXPECT_TRUE(sink.level(0, Plic::kSeipBit));
  wr(priority_reg(4), 0);
  EXPECT_FALSE(sink.level(0, Plic::kSeipBit));
}

TEST_F(PlicTest, ThresholdMasksPrioritiesAtOrBelowIt) {
  wr(priority_reg(3), 3);
  enable(kS0, 3);
  wr(threshold_reg(kS0), 3);
  raise(3);
  EXPECT_FALSE(sink.level(0, Plic::kSeipBit));
  EXPECT_EQ(rd(claim_reg(kS0)), 0u);
  EXPECT_EQ(rd(pending_reg(0)), 1u << 3);  // a refused claim changes nothing
  wr(threshold_reg(kS0), 2);
  EXPECT_TRUE(sink.level(0, Plic::kSeipBit));
  EXPECT_EQ(rd(claim_reg(kS0)), 3u);
}

TEST_F(PlicTest, HighestPriorityFirstTiesToLowestId) {
  for (unsigned id : {5u, 7u, 40u, 41u}) {
    wr(priority_reg(id), 2);
    enable(kS0, id);
  }
  wr(priority_reg(41), 5);
  raise(40);
  raise(7);
  raise(41);
  raise(5);
  EXPECT_EQ(rd(pending_reg(0)), (1u << 5) | (1u << 7));
  EXPECT_EQ(rd(pending_reg(1)), (1u << 8) | (1u << 9));
  EXPECT_EQ(rd(claim_reg(kS0)), 41u);
  EXPECT_EQ(rd(claim_reg(kS0)), 5u);
  EXPECT_EQ(rd(claim_reg(kS0)), 7u);
  EXPECT_TRUE(sink.level(0, Plic::kSeipBit));
  EXPECT_EQ(rd(claim_reg(kS0)), 40u);
  EXPECT_FALSE(sink.level(0, Plic::kSeipBit));
  EXPECT_EQ(rd(claim_reg(kS0)), 0u);
}

TEST_F(PlicTest, GatewayRependsOnCompleteWhileLevelHigh) {
  wr(priority_reg(9), 1);
  enable(kS0, 9);
  raise(9);
  EXPECT_EQ(rd(claim_reg(kS0)), 9u);
  // Still high while in service: gateway closed, no new request.
  raise(9, false);
  raise(9);
  EXPECT_EQ(rd(pending_reg(0)), 0u);
  EXPECT_FALSE(sink.level(0, Plic::kSeipBit));
  EXPECT_EQ(rd(claim_reg(kS0)), 0u);
  wr(claim_reg(kS0), 9);
  EXPECT_EQ(rd(pending_reg(0)), 1u << 9);
  EXPECT_TRUE(sink.level(0, Plic::kSeipBit));
  EXPECT_EQ(rd(claim_reg(kS0)), 9u);
  // A second completion of the same id after it was completed is harmless.
  wr(claim_reg(kS0), 9);
  wr(claim_reg(kS0), 9);
  EXPECT_EQ(rd(claim_reg(kS0)), 9u);
}

TEST_F(PlicTest, LineDroppedBeforeClaimWithdrawsRequest) {
  wr(priority_reg(2), 1);
  enable(kS0, 2);
  raise(2);
  EXPECT_TRUE(sink.level(0, Plic::kSeipBit));
  raise(2, false);
  EXPECT_EQ(rd(pending_reg(0)), 0u);
  EXPECT_FALSE(sink.level(0, Plic::kSeipBit));
  EXPECT_EQ(rd(claim_reg(kS0)), 0u);
}

TEST_F(PlicTest, CompletionForSourceNotEnabledIsIgnored) {
  wr(priority_reg(6), 1);
  enable(kS0, 6);
  raise(6);
  EXPECT_EQ(rd(claim_reg(kS0)), 6u);
  wr(enable_reg(kS0, 0), 0);
  wr(claim_reg(kS0), 6);                       // ignored: 6 is not enabled for this context
  wr(claim_reg(Plic::machine_context(0)), 6);  // nor for M-mode
  enable(kS0, 6);
  EXPECT_EQ(rd(pending_reg(0)), 0u);  // still in service
  wr(claim_reg(kS0), 6);
  EXPECT_EQ(rd(pending_reg(0)), 1u << 6);
}

TEST_F(PlicTest, CompletionFromAnotherEnabledContextIsAccepted) {
  const unsigned m1 = Plic::machine_context(1);
  wr(priority_reg(8), 1);
  enable(kS0, 8);
  enable(m1, 8);
  raise(8);
  EXPECT_TRUE(sink.level(0, Plic::kSeipBit));
  EXPECT_TRUE(sink.level(1, Plic::kMeipBit));  // multicast to every enabled context
  EXPECT_EQ(rd(claim_reg(m1)), 8u);
  EXPECT_FALSE(sink.level(0, Plic::kSeipBit));
  EXPECT_FALSE(sink.level(1, Plic::kMeipBit));
  EXPECT_EQ(rd(claim_reg(kS0)), 0u);  // the other context lost the race
  wr(claim_reg(kS0), 8);              // the spec does not require the claiming context
  EXPECT_TRUE(sink.level(0, Plic::kSeipBit));
}

TEST_F(PlicTest, ContextsRouteToTheRightHartAndMipBit) {
  wr(priority_reg(1), 1);
  raise(1);
  enable(Plic::machine_context(1), 1);
  EXPECT_TRUE(sink.level(1, Plic::kMeipBit));
  EXPECT_FALSE(sink.level(1, Plic::kSeipBit));
  EXPECT_FALSE(sink.level(0, Plic::kMeipBit));
  EXPECT_FALSE(sink.level(0, Plic::kSeipBit));
  enable(Plic::supervisor_context(1), 1);
  EXPECT_TRUE(sink.level(1, Plic::kSeipBit));
  enable(Plic::machine_context(0), 1);
  EXPECT_TRUE(sink.level(0, Plic::kMeipBit));
  EXPECT_FALSE(sink.level(0, Plic::kSeipBit));
  wr(threshold_reg(Plic::machine_context(1)), 7);
  EXPECT_FALSE(sink.level(1, Plic::kMeipBit));
  EXPECT_TRUE(sink.level(1, Plic::kSeipBit));
  EXPECT_EQ(sink.calls, 4);
}

TEST_F(PlicTest, SourceZeroAndOutOfRangeSourcesAreInert) {
  EXPECT_EQ(plic.line(0), nullptr);
  EXPECT_EQ(plic.line(kSources), nullptr);
  EXPECT_EQ(plic.line(~0u), nullptr);
  EXPECT_NE(plic.line(kSources - 1), nullptr);
  wr(priority_reg(0), 7);
  EXPECT_EQ(rd(priority_reg(0)), 0u);
  wr(priority_reg(kSources), 7);
  EXPECT_EQ(rd(priority_reg(kSources)), 0u);
  wr(priority_reg(1023), 7);
  EXPECT_EQ(rd(priority_reg(1023)), 0u);
  wr(enable_reg(kS0, 0), 0xffffffff);
  EXPECT_EQ(rd(enable_reg(kS0, 0)), 0xfffffffeu);  // source 0 hardwired off
  wr(enable_reg(kS0, 2), 0xffffffff);
  EXPECT_EQ(rd(enable_reg(kS0, 2)), 0xffffffffu);  // ids 64..95 exist
  wr(enable_reg(kS0, 3), 0xffffffff);
  EXPECT_EQ(rd(enable_reg(kS0, 3)), 0u);  // ids 96.. do not
  wr(enable_reg(kS0, 31), 0xffffffff);
  EXPECT_EQ(rd(enable_reg(kS0, 31)), 0u);
  // Completing nonexistent ids is ignored.
  wr(claim_reg(kS0), 0);
  wr(claim_reg(kS0), kSources);
  wr(claim_reg(kS0), 0xffffffff);
  EXPECT_EQ(rd(claim_reg(kS0)), 0u);
  // Contexts beyond the harts read 0 and ignore writes.
  const unsigned missing = 2 * kHarts;
  wr(enable_reg(missing, 0), 0xffffffff);
  EXPECT_EQ(rd(enable_reg(missing, 0)), 0u);
  wr(threshold_reg(missing), 5);
  EXPECT_EQ(rd(threshold_reg(missing)), 0u);
  EXPECT_EQ(rd(claim_reg(missing)), 0u);
  EXPECT_EQ(rd(threshold_reg(15871)), 0u);
  EXPECT_EQ(sink.calls, 0);
}

TEST_F(PlicTest, PartialWordOfSourcesIsMasked) {
  FakeHartSink other_sink;
  Plic small(40, 1, &other_sink);  // ids 1..39
  EXPECT_TRUE(small.write(enable_reg(0, 1), 4, 0xffffffff));
  uint64_t v = 0;
  EXPECT_TRUE(small.read(enable_reg(0, 1), 4, v));
  EXPECT_EQ(v, 0xffu);  // ids 32..39
  EXPECT_EQ(small.num_sources(), 40u);
  EXPECT_EQ(small.num_contexts(), 2u);
}

TEST_F(PlicTest, WarlPriorityAndThreshold) {
  wr(priority_reg(5), 0xffffffff);
  EXPECT_EQ(rd(priority_reg(5)), 7u);
  wr(priority_reg(5), 0x9);
  EXPECT_EQ(rd(priority_reg(5)), 1u);
  wr(threshold_reg(kS0), 0x1f);
  EXPECT_EQ(rd(threshold_reg(kS0)), 7u);
}

TEST_F(PlicTest, PendingIsReadOnly) {
  wr(pending_reg(0), 0xffffffff);
  EXPECT_EQ(rd(pending_reg(0)), 0u);
  raise(3);
  wr(pending_reg(0), 0);
  EXPECT_EQ(rd(pending_reg(0)), 1u << 3);
  EXPECT_EQ(rd(pending_reg(31)), 0u);
}

TEST_F(PlicTest, MisalignedAndOddSizedAccessesFault) {
  uint64_t v = 0;
  for (unsigned size : {0u, 1u, 2u, 3u, 8u, 16u}) {
    EXPECT_FALSE(plic.read(priority_reg(1), size, v)) << size;
    EXPECT_FALSE(plic.write(priority_reg(1), size, 7)) << size;
  }
  for (uint64_t off : {1ull, 2ull, 3ull, 0x200002ull, 0x200005ull}) {
    EXPECT_FALSE(plic.read(off, 4, v)) << off;
    EXPECT_FALSE(plic.write(off, 4, 7)) << off;
  }
  EXPECT_FALSE(plic.read(Plic::kMmioSize, 4, v));
  EXPECT_FALSE(plic.write(~3ull, 4, 0));
  EXPECT_TRUE(plic.read(Plic::kMmioSize - 4, 4, v));  // reserved, in range
  EXPECT_EQ(v, 0u);
  EXPECT_EQ(rd(priority_reg(1)), 0u);  // none of the refused writes landed
}

TEST_F(PlicTest, ResetClearsConfigurationAndLowersOutputs) {
  wr(priority_reg(12), 4);
  enable(kS0, 12);
  wr(threshold_reg(kS0), 1);
  raise(12);
  EXPECT_TRUE(sink.level(0, Plic::kSeipBit));
  plic.reset();
  EXPECT_FALSE(sink.level(0, Plic::kSeipBit));
  EXPECT_EQ(rd(priority_reg(12)), 0u);
  EXPECT_EQ(rd(enable_reg(kS0, 0)), 0u);
  EXPECT_EQ(rd(threshold_reg(kS0)), 0u);
  EXPECT_EQ(rd(pending_reg(0)), 1u << 12);  // the device still drives its line
}

TEST(PlicConstruction, ParametersAreClamped) {
  Plic none(0, 0, nullptr);
  EXPECT_EQ(none.num_sources(), 1u);
  EXPECT_EQ(none.line(1), nullptr);
  uint64_t v = 1;
  EXPECT_TRUE(none.read(claim_reg(0), 4, v));
  EXPECT_EQ(v, 0u);
  Plic huge(100000, 100000, nullptr);
  EXPECT_EQ(huge.num_sources(), Plic::kMaxSources);
  EXPECT_EQ(huge.num_harts(), Plic::kMaxHarts);
  EXPECT_NE(huge.line(1023), nullptr);
  EXPECT_TRUE(huge.write(threshold_reg(15871), 4, 3));
  EXPECT_TRUE(huge.read(threshold_reg(15871), 4, v));
  EXPECT_EQ(v, 3u);
}

// Random guest accesses and line changes; after every step the sink must agree with
// what the registers say, and every claim must be legitimate.
TEST(PlicFuzz, RandomAccessesKeepInvariants) {
  constexpr unsigned kSources = 70;
  constexpr unsigned kHarts = 3;
  constexpr unsigned kContexts = 2 * kHarts;
  constexpr unsigned kWords = (kSources + 31) / 32;
  FakeHartSink sink;
  Plic plic(kSources, kHarts, &sink);
  std::mt19937_64 rng(42);
  std::vector<bool> line_high(kSources, false);
  std::vector<bool> claimed(kSources, false);

  auto rd = [&](uint64_t off) {
    uint64_t v = 0;
    EXPECT_TRUE(plic.read(off, 4, v));
    return static_cast<uint32_t>(v);
  };
  auto random_offset = [&]() -> uint64_t {
    const uint64_t r = rng();
    switch (r % 8) {
      case 0:
        return rng();  // anywhere at all
      case 1:
        return rng() % Plic::kMmioSize;  // anywhere inside
      case 2:
        return priority_reg(rng() % 128);
      case 3:
        return pending_reg(rng() % 34);
      case 4:
        return enable_reg(rng() % (kContexts + 2), rng() % 33);
      case 5:
        return threshold_reg(rng() % (kContexts + 2)) + (rng() % 3) * 4;
      default:
        return claim_reg(rng() % (kContexts + 1));
    }
  };
  const unsigned sizes[] = {4, 4, 4, 4, 1, 2, 8, 3, 0};
  int successful_claims = 0;

  for (int i = 0; i < 100000; ++i) {
    const uint64_t r = rng();
    if (r % 5 == 0) {
      const unsigned id = 1 + static_cast<unsigned>(rng() % (kSources - 1));
      line_high[id] = !line_high[id];
      plic.line(id)->set_level(line_high[id]);
    } else {
      uint64_t off = random_offset();
      if (rng() % 16 == 0) off += 1 + rng() % 3;  // misalign
      const unsigned size = sizes[rng() % std::size(sizes)];
      const bool ok_shape = size == 4 && off % 4 == 0 && off < Plic::kMmioSize;
      // Completions must name an id sometimes, or they would never do anything.
      uint64_t value = rng();
      if (rng() % 2) value = rng() % (kSources + 4);
      if (rng() % 4 == 0) value %= 8;
      if (r % 5 <= 2) {
        uint64_t v = 0;
        ASSERT_EQ(plic.read(off, size, v), ok_shape) << std::hex << off << " size " << size;
        if (!ok_shape) continue;
        ASSERT_LE(v, 0xffffffffull);
        const uint64_t ctx_off = off - 0x200000;
        if (off >= 0x200000 && ctx_off % 0x1000 == 4 && v != 0) {
          const unsigned ctx = static_cast<unsigned>(ctx_off / 0x1000);
          const unsigned id = static_cast<unsigned>(v);
          ASSERT_LT(ctx, kContexts);
          ASSERT_LT(id, kSources);
          ASSERT_TRUE(rd(enable_reg(ctx, id / 32)) & (1u << (id % 32))) << "claimed a disabled source";
          ASSERT_GT(rd(priority_reg(id)), rd(threshold_reg(ctx))) << "claimed at/below threshold";
          ASSERT_TRUE(line_high[id]) << "claimed a source whose line is low";
          ASSERT_FALSE(claimed[id]) << "claimed twice without completion";
          claimed[id] = true;
          ++successful_claims;
        }
      } else {
        ASSERT_EQ(plic.write(off, size, value), ok_shape) << std::hex << off << " size " << size;
        if (!ok_shape) continue;
        const uint64_t ctx_off = off - 0x200000;
        if (off >= 0x200000 && ctx_off % 0x1000 == 4 && ctx_off / 0x1000 < kContexts) {
          const unsigned ctx = static_cast<unsigned>(ctx_off / 0x1000);
          const uint32_t id = static_cast<uint32_t>(value);
          if (id != 0 && id < kSources && (rd(enable_reg(ctx, id / 32)) & (1u << (id % 32))))
            claimed[id] = false;
        }
      }
    }
    // Invariants after every step.
    uint32_t pending[kWords];
    for (unsigned w = 0; w < kWords; ++w) {
      pending[w] = rd(pending_reg(w));
      for (unsigned b = 0; b < 32; ++b) {
        const unsigned id = w * 32 + b;
        const bool expect = id != 0 && id < kSources && line_high[id] && !claimed[id];
        ASSERT_EQ(((pending[w] >> b) & 1) != 0, expect) << "pending bit of " << id << " at step " << i;
      }
    }
    uint32_t priority[kSources];
    for (unsigned id = 0; id < kSources; ++id) {
      priority[id] = rd(priority_reg(id));
      ASSERT_LE(priority[id], Plic::kPriorityMask);
    }
    ASSERT_EQ(priority[0], 0u);
    for (unsigned ctx = 0; ctx < kContexts; ++ctx) {
      const uint32_t threshold = rd(threshold_reg(ctx));
      ASSERT_LE(threshold, Plic::kPriorityMask);
      uint32_t enabled[kWords];
      for (unsigned w = 0; w < kWords; ++w) enabled[w] = rd(enable_reg(ctx, w));
      ASSERT_EQ(enabled[0] & 1, 0u);
      bool expect = false;
      for (unsigned id = 1; id < kSources && !expect; ++id) {
        const uint32_t bit = 1u << (id % 32);
        expect = (enabled[id / 32] & bit) && (pending[id / 32] & bit) && priority[id] > threshold;
      }
      ASSERT_EQ(sink.level(ctx / 2, ctx % 2 ? Plic::kSeipBit : Plic::kMeipBit), expect)
          << "context " << ctx << " at step " << i;
    }
  }
  EXPECT_EQ(sink.redundant_calls, 0);
  EXPECT_GT(successful_claims, 100);  // the fuzz really exercised claims
}

// Hart threads claim and complete while device threads toggle lines: no deadlock, claims
// stay in range, and once everything is lowered and completed nothing remains signalled.
TEST(PlicConcurrency, ClaimsAndLineChangesFromManyThreads) {
  constexpr unsigned kSources = 33;
  constexpr unsigned kHarts = 4;
  FakeHartSink sink;
  Plic plic(kSources, kHarts, &sink);
  for (unsigned id = 1; id < kSources; ++id) EXPECT_TRUE(plic.write(priority_reg(id), 4, 1 + id % 7));
  for (unsigned h = 0; h < kHarts; ++h) {
    EXPECT_TRUE(plic.write(enable_reg(Plic::supervisor_context(h), 0), 4, 0xfffffffe));
    EXPECT_TRUE(plic.write(enable_reg(Plic::supervisor_context(h), 1), 4, 0x1));
  }
  std::atomic<bool> stop{false};
  std::atomic<int> claims{0};
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      // Toggle until the harts have claimed a fair number (or a generous bound passes): on a
      // loaded 2-core host the hart threads may not even be scheduled during a fixed count.
      std::mt19937 rng(t);
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
      for (int i = 0; i < 20000 || (claims.load() < 200 && std::chrono::steady_clock::now() < deadline); ++i) {
        plic.line(1 + rng() % (kSources - 1))->set_level(rng() % 2);
        if (i % 256 == 0) std::this_thread::yield();
      }
    });
  }
  for (unsigned h = 0; h < kHarts; ++h) {
    threads.emplace_back([&, h] {
      const unsigned ctx = Plic::supervisor_context(h);
      while (!stop.load()) {
        uint64_t id = 0;
        EXPECT_TRUE(plic.read(claim_reg(ctx), 4, id));
        if (id == 0) continue;
        EXPECT_LT(id, kSources);
        ++claims;
        EXPECT_TRUE(plic.write(claim_reg(ctx), 4, id));
      }
    });
  }
  threads[0].join();
  threads[1].join();
  stop = true;
  for (size_t i = 2; i < threads.size(); ++i) threads[i].join();
  // Lower every line and drain: afterwards nothing may be pending or signalled.
  for (unsigned id = 1; id < kSources; ++id) plic.line(id)->set_level(false);
  for (unsigned h = 0; h < kHarts; ++h) {
    uint64_t v = 1;
    EXPECT_TRUE(plic.read(claim_reg(Plic::supervisor_context(h)), 4, v));
    EXPECT_EQ(v, 0u);
    EXPECT_FALSE(sink.level(h, Plic::kSeipBit));
  }
  EXPECT_GT(claims.load(), 0);
  EXPECT_EQ(sink.redundant_calls, 0);
}

}  // namespace
}  // namespace vigil::devices
