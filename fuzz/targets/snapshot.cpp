// Fuzz target `snapshot`: the snapshot stream reader (src/migrate/stream.h) on arbitrary
// bytes, as a restore reads a file or a migration reads a peer.
//
// Input: the stream itself. Every record parse_stream accepts is handed to the readers that
// restore would use (RAM_INFO against a 64-page domain, RAM into that domain's memory).
//
// Invariants: a refusal is one sentence starting "snapshot: "; an accepted record lies inside
// the input; the reader writes only inside the 64-page RAM (ASan checks that).
#include <cstdint>
#include <span>
#include <vector>

#include "fuzz_input.h"
#include "migrate/stream.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace vigil::migrate;
  std::span<const uint8_t> in(data, size);
  auto recs = parse_stream(in);
  if (!recs) {
    FUZZ_CHECK(recs.error().message.rfind("snapshot: ", 0) == 0);
    return 0;
  }
  std::vector<uint8_t> ram(64 * kPageSize);
  for (const Record& r : *recs) {
    FUZZ_CHECK(r.payload.data() >= data && r.payload.data() + r.payload.size() <= data + size);
    vigil::Result<void> ok;
    if (r.type == static_cast<uint32_t>(RecordType::kRamInfo)) ok = check_ram_info(r, ram.size());
    else if (r.type == static_cast<uint32_t>(RecordType::kRam)) ok = restore_ram_record(r, ram);
    if (!ok) FUZZ_CHECK(ok.error().message.rfind("snapshot: record ", 0) == 0);
  }
  return 0;
}
