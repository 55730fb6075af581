// Coverage feedback for libFuzzer from a GCC build (fuzz/README.md, "Why GCC").
//
// libFuzzer wants clang's -fsanitize-coverage=inline-8bit-counters,pc-table; GCC only has
// -fsanitize-coverage=trace-pc (a call to __sanitizer_cov_trace_pc() in every basic block)
// and trace-cmp, and libFuzzer 14 refuses trace-pc ("no longer supported"). So the build
// links with -Wl,--wrap=__sanitizer_cov_trace_pc, which sends those calls here, and this
// file turns them into AFL-style edge hits (hash of previous block xor current block) in
// an array placed in the __libfuzzer_extra_counters section, which libFuzzer reads as
// extra coverage counters and clears before every run. trace-cmp needs nothing: GCC and
// libFuzzer agree on the __sanitizer_cov_trace_cmp* interface.
//
// This file itself must be compiled without -fsanitize-coverage (or it would recurse).
#include <cstddef>
#include <cstdint>

namespace {
constexpr size_t kCounters = size_t{1} << 16;
thread_local uintptr_t t_prev = 0;
}  // namespace

__attribute__((section("__libfuzzer_extra_counters"), used, aligned(64))) uint8_t vigil_fuzz_edges[kCounters];

extern "C" __attribute__((no_sanitize_address, no_sanitize_undefined, no_instrument_function)) void
__wrap___sanitizer_cov_trace_pc() {
  const auto pc = reinterpret_cast<uintptr_t>(__builtin_return_address(0));
  // Mix the return address (block addresses are close together) into a counter index.
  const uintptr_t cur = ((pc ^ (pc >> 15)) * uintptr_t{0x9E3779B97F4A7C15}) >> 48;
  ++vigil_fuzz_edges[(cur ^ t_prev) & (kCounters - 1)];
  t_prev = cur >> 1;
}

// GCC's trace-cmp also reports floating-point comparisons, which libFuzzer has no hooks
// for: accept and drop them.
extern "C" void __sanitizer_cov_trace_cmpf(float, float) {}
extern "C" void __sanitizer_cov_trace_cmpd(double, double) {}
