// Fuzz target `tpm_tis`: a sequence of MMIO reads and writes on the TPM TIS device (all five
// localities, every register, odd sizes and offsets) with a fake TPM backend that answers,
// fails, or answers with malformed framing, plus resets and waits for the worker.
//
// Invariants: accesses of a size other than 1, 2 or 4, or past the 0x5000-byte window,
// fault; reads return no bits beyond the access size; the backend never sees a command
// larger than the buffer or whose header size disagrees with its length; every response
// the guest reads starts with a TPM 2.0 tag once dataAvail is set.
//
// Input: operations until the input ends, each starting with u8 op:
//   op & 3 == 0  read:  u16 offset, size = kSizes[(op >> 2) & 7]
//   op & 3 == 1  write: u16 offset, size, u32 value
//   op & 3 == 2  write a FIFO burst: locality (op >> 2) % 5, u8 n, then n bytes
//   op & 3 == 3  (op >> 2) & 3: 0 reset, 1 wait for the worker, 2 backend mode := u8, 3 seize/request/relinquish
#include <cstdint>
#include <memory>
#include <vector>

#include "devices/tpm_tis.h"
#include "fuzz_input.h"

namespace {

using namespace vigil::devices;
using vigil::fuzz::Input;

constexpr unsigned kSizes[8] = {1, 2, 4, 8, 1, 4, 0, 3};

class FakeTpm final : public TpmBackend {
 public:
  vigil::Result<std::vector<uint8_t>> execute(std::span<const uint8_t> c) override {
    FUZZ_CHECK(c.size() >= 10 && c.size() <= TpmTis::kBufferSize);
    const uint32_t declared = (uint32_t{c[2]} << 24) | (uint32_t{c[3]} << 16) | (uint32_t{c[4]} << 8) | c[5];
    FUZZ_CHECK(declared == c.size());
    switch (mode % 4) {
      case 1: return vigil::make_error("fake TPM failure");
      case 2: return std::vector<uint8_t>(c.begin(), c.begin() + 7);  // malformed
      case 3: return std::vector<uint8_t>(5000, 0x80);                  // too large
      default: return std::vector<uint8_t>{0x80, 0x01, 0, 0, 0, 10, 0, 0, 0, 0};
    }
  }
  std::string describe() const override { return "fuzz TPM"; }
  uint8_t mode = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Input in(data, size);
  auto tpm = std::make_shared<FakeTpm>();
  TpmTis tis(tpm, [](const std::string&) {});
  unsigned ops = 0;
  while (!in.empty() && ++ops < 4096) {
    const uint8_t op = in.u8();
    const unsigned sz = kSizes[(op >> 2) & 7];
    switch (op & 3) {
      case 0: {
        const uint64_t off = in.u16();
        uint64_t v = 0;
        const bool ok = tis.read(off, sz, v);
        if (sz != 1 && sz != 2 && sz != 4) FUZZ_CHECK(!ok);
        if (off + sz > TpmTis::kSize) FUZZ_CHECK(!ok);
        if (ok && sz < 8) FUZZ_CHECK((v >> (8 * sz)) == 0);
        break;
      }
      case 1: {
        const uint64_t off = in.u16();
        const bool ok = tis.write(off, sz, in.u32());
        if (sz != 1 && sz != 2 && sz != 4) FUZZ_CHECK(!ok);
        break;
      }
      case 2: {
        const uint64_t base = ((op >> 2) % TpmTis::kLocalities) * TpmTis::kLocalitySize;
        for (uint8_t b : in.bytes(in.u8())) tis.write(base + TpmTis::kDataFifo, 1, b);
        break;
      }
      default:
        switch ((op >> 2) & 3) {
          case 0: tis.reset(); break;
          case 1: {
            FUZZ_CHECK(tis.wait_idle(2000));
            // With the worker idle, a response the active locality can read is TPM 2.0 framed.
            for (unsigned l = 0; l < TpmTis::kLocalities; ++l) {
              uint64_t sts = 0, access = 0;
              tis.read(l * TpmTis::kLocalitySize + TpmTis::kAccess, 1, access);
              if (!(access & TpmTis::kAccessActive)) continue;
              tis.read(l * TpmTis::kLocalitySize + TpmTis::kSts, 4, sts);
              if (!(sts & TpmTis::kStsDataAvail)) continue;
              tis.write(l * TpmTis::kLocalitySize + TpmTis::kSts, 1, TpmTis::kStsResponseRetry);
              uint64_t tag = 0;
              tis.read(l * TpmTis::kLocalitySize + TpmTis::kDataFifo, 1, tag);
              FUZZ_CHECK(tag == 0x80);
              tis.write(l * TpmTis::kLocalitySize + TpmTis::kSts, 1, TpmTis::kStsResponseRetry);
            }
            break;
          }
          case 2: {
            tis.wait_idle(2000);  // the fake's mode is not synchronized with the worker
            tpm->mode = in.u8();
            break;
          }
          default: {
            const uint8_t a = in.u8();
            tis.write((a % TpmTis::kLocalities) * TpmTis::kLocalitySize, 1, a & 0xfe);
            break;
          }
        }
        break;
    }
  }
  return 0;
}
