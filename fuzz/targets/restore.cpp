// Fuzz target `restore`: a whole-domain restore (src/migrate/snapshot.h, load_domain_state)
// on arbitrary bytes, as `vigil restore` reads a file anyone could have written.
//
// Input: u8 mode, then
//   mode even: a snapshot stream, as a file holds it (parse_stream must accept it first);
//   mode odd:  records without framing or checksums, each u32 type | u32 instance | u32 length
//              | payload, which the target frames and checksums into a stream itself, so that
//              mutations reach the object readers instead of dying at the checksum check.
// Each input is loaded into a fresh small domain (16 MiB, two harts, virtio-rng; the kernel is
// a bare Linux Image header that never runs), built from the same config every time.
//
// Invariants: every refusal is one sentence starting "snapshot: "; a stream that loads leaves
// a domain whose state can be saved again; nothing is read or written outside the domain's
// RAM or the stream (ASan checks that).
//
// Seeds: VIGIL_RESTORE_SEED_OUT=DIR fuzz_restore writes the snapshot of the fresh domain in
// both modes to DIR/stream and DIR/records and exits (fuzz/corpus/restore/ was made so).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "fuzz_domain.h"
#include "fuzz_input.h"
#include "hv/domain.h"
#include "migrate/snapshot.h"

namespace {

vigil::hv::DomainConfig config() { return vigil::fuzz::small_domain_config("restore", 2); }

std::unique_ptr<vigil::hv::Domain> fresh() {
  auto d = vigil::hv::Domain::create(1, config());
  if (!d) {
    std::fprintf(stderr, "fuzz_restore: cannot build the domain: %s\n", d.error().message.c_str());
    std::abort();
  }
  return std::move(*d);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  using namespace vigil::migrate;
  if (const char* out = std::getenv("VIGIL_RESTORE_SEED_OUT")) {
    auto d = fresh();
    auto s = snapshot_domain(*d);
    if (!s) std::abort();
    std::vector<uint8_t> stream{0}, records{1};
    stream.insert(stream.end(), s->begin(), s->end());
    auto recs = parse_stream(*s);
    if (!recs) std::abort();
    for (const Record& r : *recs) {
      if (r.type == static_cast<uint32_t>(RecordType::kEnd)) continue;
      PayloadWriter w;
      w.u32(r.type);
      w.u32(r.instance);
      w.u32(static_cast<uint32_t>(r.payload.size()));
      w.bytes(r.payload);
      records.insert(records.end(), w.data().begin(), w.data().end());
    }
    for (auto [name, bytes] : {std::pair{"/stream", &stream}, {"/records", &records}}) {
      std::ofstream(std::string(out) + name, std::ios::binary)
          .write(reinterpret_cast<const char*>(bytes->data()), static_cast<std::streamsize>(bytes->size()));
    }
    std::exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace vigil::migrate;
  vigil::fuzz::Input in(data, size);
  const bool framed = (in.u8() & 1) != 0;
  std::vector<uint8_t> built;
  std::span<const uint8_t> stream = in.rest();
  if (framed) {
    StreamWriter w;
    while (!stream.empty()) {
      vigil::fuzz::Input rec(stream.data(), stream.size());
      const uint32_t type = rec.u32(), instance = rec.u32(), length = rec.u32();
      auto payload = rec.bytes(length);
      if (type != static_cast<uint32_t>(RecordType::kEnd)) w.add_raw(type, instance, payload);
      stream = stream.subspan(std::min(stream.size(), size_t{12} + payload.size()));
    }
    built = w.finish();
    stream = built;
  }
  auto recs = parse_stream(stream);
  if (!recs) {
    FUZZ_CHECK(recs.error().message.rfind("snapshot: ", 0) == 0);
    return 0;
  }
  auto d = fresh();
  auto ok = load_domain_state(*d, *recs);
  if (!ok) {
    FUZZ_CHECK(ok.error().message.rfind("snapshot: ", 0) == 0);
    return 0;
  }
  // What was accepted is a state this domain can hold: it saves again.
  FUZZ_CHECK(snapshot_domain(*d).has_value());
  return 0;
}
