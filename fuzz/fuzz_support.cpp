// Shared by every fuzz target: what a violated invariant does.
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "fuzz_input.h"

namespace vigil::fuzz {

void invariant_failed(const char* file, int line, const char* what) {
  std::fprintf(stderr, "FUZZ INVARIANT FAILED: %s:%d: %s\n", file, line, what);
  std::fflush(stderr);
  std::abort();
}

bool known_bug_skipped(std::string_view id) {
  const char* env = std::getenv("VIGIL_FUZZ_SKIP");
  std::string_view list = env ? env : "";
  while (!list.empty()) {
    const size_t comma = list.find(',');
    if (list.substr(0, comma) == id) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

}  // namespace vigil::fuzz
