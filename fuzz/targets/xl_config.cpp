// Fuzz target `xl_config`: parse_xl_config on arbitrary text.
//
// Invariants: errors are one non-empty line naming the origin; whatever parses survives
// the round trip to_xl_config -> parse_xl_config -> to_xl_config unchanged (xl_config.h:
// "Writes config as xl.cfg text that parse_xl_config turns back into an equal
// DomainConfig"), and the re-parse succeeds.
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "fuzz_input.h"
#include "toolstack/xl_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto c = vigil::toolstack::parse_xl_config(text, "fuzz.cfg");
  if (!c) {
    const std::string& m = c.error().message;
    FUZZ_CHECK(!m.empty());
    FUZZ_CHECK(m.rfind("fuzz.cfg", 0) == 0);
    return 0;
  }
  const std::string once = vigil::toolstack::to_xl_config(*c);
  auto again = vigil::toolstack::parse_xl_config(once, "roundtrip.cfg");
  if (!again) std::fprintf(stderr, "re-parse failed: %s\n--- written:\n%s\n", again.error().message.c_str(), once.c_str());
  FUZZ_CHECK(again.has_value());
  const std::string twice = vigil::toolstack::to_xl_config(*again);
  if (once != twice) std::fprintf(stderr, "--- first:\n%s\n--- second:\n%s\n", once.c_str(), twice.c_str());
  FUZZ_CHECK(once == twice);
  return 0;
}
