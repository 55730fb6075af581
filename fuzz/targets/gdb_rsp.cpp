// Fuzz target `gdb_rsp`: the GDB stub's framing (PacketReader) and command layer (Session)
// on arbitrary bytes from whoever reached the stub's port, against a fake 2-vCPU target with
// 4 KiB of memory at 0x1000.
//
// Invariants: the reader never yields a payload over kMaxPacket; every packet gets a reply
// or resumes the target; replies re-frame and re-read to themselves; resume always names
// one flag per vCPU and a step vCPU among those that run; memory outside the fake's range
// is never touched (ASan would see it).
#include <cstdint>
#include <vector>

#include "fuzz_input.h"
#include "toolstack/gdb_rsp.h"
#include "toolstack/gdb_stub.h"

namespace {

using namespace vigil::toolstack::gdb;

class Fake final : public Target {
 public:
  unsigned vcpu_count() override { return 2; }
  std::optional<uint64_t> read_register(unsigned vcpu, unsigned reg) override {
    FUZZ_CHECK(vcpu < 2);
    if (reg > kRegPc) return std::nullopt;
    return regs[vcpu][reg];
  }
  bool write_register(unsigned vcpu, unsigned reg, uint64_t value) override {
    FUZZ_CHECK(vcpu < 2);
    if (reg > kRegPc) return false;
    regs[vcpu][reg] = value;
    return true;
  }
  vigil::Result<void> read_memory(unsigned vcpu, uint64_t va, std::span<uint8_t> out) override {
    FUZZ_CHECK(vcpu < 2);
    if (va < 0x1000 || out.size() > mem.size() || va - 0x1000 > mem.size() - out.size()) return vigil::make_error("unmapped");
    std::copy_n(mem.begin() + static_cast<long>(va - 0x1000), out.size(), out.begin());
    return {};
  }
  vigil::Result<void> write_memory(unsigned vcpu, uint64_t va, std::span<const uint8_t> data) override {
    FUZZ_CHECK(vcpu < 2);
    if (va < 0x1000 || data.size() > mem.size() || va - 0x1000 > mem.size() - data.size()) return vigil::make_error("unmapped");
    std::copy(data.begin(), data.end(), mem.begin() + static_cast<long>(va - 0x1000));
    return {};
  }
  vigil::Result<void> insert_breakpoint(unsigned vcpu, uint64_t) override {
    FUZZ_CHECK(vcpu < 2);
    return {};
  }
  vigil::Result<void> remove_breakpoint(uint64_t) override { return {}; }
  vigil::Result<void> resume(const std::vector<bool>& run, std::optional<unsigned> step) override {
    FUZZ_CHECK(run.size() == 2);
    if (step) {
      FUZZ_CHECK(*step < 2);
      FUZZ_CHECK(run[*step]);
    }
    return {};
  }
  StopReason interrupt() override { return {}; }
  int stop_fd() override { return -1; }
  std::optional<StopReason> take_stop() override { return std::nullopt; }
  std::optional<StopReason> ended() override { return std::nullopt; }
  void detach() override {}

  uint64_t regs[2][33] = {};
  std::vector<uint8_t> mem = std::vector<uint8_t>(4096);
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Fake target;
  Session session(target, -1);
  PacketReader reader;
  reader.feed({data, size});
  while (auto in = reader.next()) {
    if (in->kind != Input::Kind::kPacket) continue;
    FUZZ_CHECK(in->payload.size() <= kMaxPacket);
    auto reply = session.handle(in->payload);
    if (!reply) {
      FUZZ_CHECK(session.running() || session.finished());
      session.stopped({});
      continue;
    }
    // What the stub sends reads back as itself.
    PacketReader again;
    const std::string framed = frame(*reply);
    again.feed({reinterpret_cast<const uint8_t*>(framed.data()), framed.size()});
    auto back = again.next();
    FUZZ_CHECK(back && back->kind == Input::Kind::kPacket && back->payload == *reply);
    if (session.finished()) break;
  }
  return 0;
}
