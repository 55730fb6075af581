// The GDB stub's framing and command layer against a fake target (the booted-guest tests
// with a real gdb are tests/e2e/test_gdb.py).
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "toolstack/gdb_rsp.h"
#include "toolstack/gdb_stub.h"

namespace vigil::toolstack::gdb {
namespace {

std::vector<Input> read_all(std::string_view bytes) {
  PacketReader r;
  r.feed({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
  std::vector<Input> out;
  while (auto in = r.next()) out.push_back(std::move(*in));
  return out;
}

TEST(GdbRsp, FramesRoundTripWithEscapes) {
  for (std::string payload : {std::string("g"), std::string("X1000,4:$#}*"), std::string(), std::string(300, 'a')}) {
    auto in = read_all(frame(payload));
    ASSERT_EQ(in.size(), 1u) << payload;
    EXPECT_EQ(in[0].kind, Input::Kind::kPacket);
    EXPECT_EQ(in[0].payload, payload);
  }
  EXPECT_EQ(frame("OK"), "$OK#9a");
}

TEST(GdbRsp, BadChecksumsOversizeAndNoiseAreNakedNotTrusted) {
  auto in = read_all("$g#00");
  ASSERT_EQ(in.size(), 1u);
  EXPECT_EQ(in[0].kind, Input::Kind::kBadPacket);
  in = read_all("$g#zz");
  ASSERT_EQ(in.size(), 1u);
  EXPECT_EQ(in[0].kind, Input::Kind::kBadPacket);
  // Longer than kMaxPacket: refused whatever its checksum says.
  const std::string big(kMaxPacket + 1, 'm');
  in = read_all(frame(big));
  ASSERT_EQ(in.size(), 1u);
  EXPECT_EQ(in[0].kind, Input::Kind::kBadPacket);
  // Run-length encoding that would expand past the limit, and one with nothing to repeat.
  std::string rle = "$";
  for (int i = 0; i < 1000; ++i) rle += "a*~";
  in = read_all(rle + "#00");
  ASSERT_EQ(in.size(), 1u);
  EXPECT_EQ(in[0].kind, Input::Kind::kBadPacket);
  // Acks, Ctrl-C and stray bytes between packets.
  in = read_all("+x-\x03" + frame("?"));
  ASSERT_EQ(in.size(), 4u);
  EXPECT_EQ(in[0].kind, Input::Kind::kAck);
  EXPECT_EQ(in[1].kind, Input::Kind::kNak);
  EXPECT_EQ(in[2].kind, Input::Kind::kInterrupt);
  EXPECT_EQ(in[3].payload, "?");
}

TEST(GdbRsp, RunLengthDecodes) {
  // "0* " = '0' and 3 more ('*' then ' ' = 32 - 29 = 3).
  std::string body = "0* ";
  uint8_t sum = 0;
  for (char c : body) sum = static_cast<uint8_t>(sum + c);
  char tail[8];
  std::snprintf(tail, sizeof(tail), "#%02x", sum);
  auto in = read_all("$" + body + tail);
  ASSERT_EQ(in.size(), 1u);
  EXPECT_EQ(in[0].payload, "0000");
}

TEST(GdbRsp, HexHelpersRejectBadDigits) {
  EXPECT_EQ(parse_hex_u64("ffffffff80001000"), 0xffffffff80001000ull);
  EXPECT_FALSE(parse_hex_u64("1ffffffff80001000"));  // 17 digits
  EXPECT_FALSE(parse_hex_u64(""));
  EXPECT_FALSE(parse_hex_u64("12g"));
  EXPECT_EQ(parse_hex_le("0010000000000000"), 0x1000u);
  EXPECT_FALSE(from_hex("abc"));
  EXPECT_EQ(to_hex_le(0x1234, 2), "3412");
}

class FakeTarget final : public Target {
 public:
  unsigned vcpu_count() override { return 2; }
  std::optional<uint64_t> read_register(unsigned vcpu, unsigned reg) override {
    if (reg > kRegPc && reg != kRegFcsr) return std::nullopt;
    return regs[vcpu][reg];
  }
  bool write_register(unsigned vcpu, unsigned reg, uint64_t value) override {
    if (reg > kRegPc) return false;
    regs[vcpu][reg] = value;
    return true;
  }
  Result<void> read_memory(unsigned, uint64_t va, std::span<uint8_t> out) override {
    if (va < 0x1000 || va + out.size() > 0x1000 + mem.size()) return make_error("unmapped {:#x}", va);
    std::copy_n(mem.begin() + static_cast<long>(va - 0x1000), out.size(), out.begin());
    return {};
  }
  Result<void> write_memory(unsigned, uint64_t va, std::span<const uint8_t> data) override {
    if (va < 0x1000 || va + data.size() > 0x1000 + mem.size()) return make_error("unmapped {:#x}", va);
    std::copy(data.begin(), data.end(), mem.begin() + static_cast<long>(va - 0x1000));
    return {};
  }
  Result<void> insert_breakpoint(unsigned, uint64_t va) override {
    breakpoints[va]++;
    return {};
  }
  Result<void> remove_breakpoint(uint64_t va) override {
    if (!breakpoints.erase(va)) return make_error("none");
    return {};
  }
  Result<void> insert_watchpoint(unsigned, Watch type, uint64_t va, uint64_t len) override {
    if (va < 0x1000) return make_error("unmapped {:#x}", va);
    watches[va] = {type, len};
    return {};
  }
  Result<void> remove_watchpoint(Watch type, uint64_t va, uint64_t len) override {
    auto it = watches.find(va);
    if (it == watches.end() || it->second != std::pair{type, len}) return make_error("none");
    watches.erase(it);
    return {};
  }
  Result<void> resume(const std::vector<bool>& r, std::optional<unsigned> s) override {
    run = r;
    step = s;
    ++resumes;
    return {};
  }
  StopReason interrupt() override { return {StopReason::Kind::kSignal, 0, 2}; }
  int stop_fd() override { return -1; }
  std::optional<StopReason> take_stop() override { return std::nullopt; }
  std::optional<StopReason> ended() override { return std::nullopt; }
  void detach() override { detached = true; }

  std::map<unsigned, std::map<unsigned, uint64_t>> regs;
  std::vector<uint8_t> mem = std::vector<uint8_t>(64, 0xab);
  std::map<uint64_t, int> breakpoints;
  std::map<uint64_t, std::pair<Watch, uint64_t>> watches;
  std::vector<bool> run;
  std::optional<unsigned> step;
  int resumes = 0;
  bool detached = false;
};

TEST(GdbSession, RegistersMemoryAndThreads) {
  FakeTarget t;
  t.regs[1][10] = 0x1122334455667788ull;
  t.regs[1][kRegPc] = 0xffffffff80001000ull;
  Session s(t, -1, {StopReason::Kind::kSignal, 1, 5});
  EXPECT_EQ(s.handle("?"), "T05thread:2;");
  EXPECT_EQ(s.handle("qfThreadInfo"), "m1,2");
  EXPECT_EQ(s.handle("qC"), "QC2");
  EXPECT_EQ(s.handle("pa"), "8877665544332211");
  EXPECT_EQ(s.handle("p20"), "00100080ffffffff");
  EXPECT_EQ(s.handle("Hg1"), "OK");
  EXPECT_EQ(s.handle("pa"), "0000000000000000");
  EXPECT_EQ(s.handle("Hg3"), "E03");  // no such thread
  EXPECT_EQ(s.handle("T2"), "OK");
  EXPECT_EQ(s.handle("T0a"), "E03");
  EXPECT_EQ(s.handle("g").value().size(), 33u * 16);
  EXPECT_EQ(s.handle("P5=efbeadde00000000"), "OK");
  EXPECT_EQ(t.regs[0][5], 0xdeadbeefu);
  EXPECT_EQ(s.handle("P9999=00"), "E16");
  EXPECT_EQ(s.handle("m1000,4"), "abababab");
  EXPECT_EQ(s.handle("M1000,2:0102"), "OK");
  EXPECT_EQ(s.handle("m1000,3"), "0102ab");
  EXPECT_EQ(s.handle("M1000,3:0102"), "E16");  // length and data disagree
  EXPECT_EQ(s.handle("X1000,0:"), "OK");
  EXPECT_EQ(s.handle("m0,4"), "E0e");
  EXPECT_EQ(s.handle("m1000,100000"), "E16");  // more than a packet can carry
  EXPECT_EQ(s.handle("mzz,4"), "E16");
  EXPECT_EQ(s.handle("qUnknownThing"), "");
  const std::string xml = s.handle("qXfer:features:read:target.xml:0,40").value();
  EXPECT_EQ(xml[0], 'm');
  EXPECT_EQ(xml.size(), 1u + 0x40);
  EXPECT_EQ(s.handle("qXfer:features:read:target.xml:ffff,40"), "l");
  EXPECT_EQ(s.handle("qXfer:features:read:other.xml:0,40"), "E00");
}

TEST(GdbSession, BreakpointsAndVContSemantics) {
  FakeTarget t;
  Session s(t, -1);
  EXPECT_EQ(s.handle("Z0,ffffffff800abf10,2"), "OK");
  EXPECT_EQ(t.breakpoints.count(0xffffffff800abf10ull), 1u);
  EXPECT_EQ(s.handle("Z0,ffffffff800abf10,3"), "E16");  // kind is 2 or 4 on RISC-V
  EXPECT_EQ(s.handle("Z5,1000,4"), "");                 // no such type: unsupported
  EXPECT_EQ(s.handle("z0,ffffffff800abf10,2"), "OK");
  EXPECT_EQ(s.handle("z0,ffffffff800abf10,2"), "E0e");
  EXPECT_EQ(s.handle("vCont?"), "vCont;c;C;s;S");
  // Only thread 2 runs (gdb's step over a breakpoint with software single-step).
  EXPECT_EQ(s.handle("vCont;c:2"), std::nullopt);
  EXPECT_TRUE(s.running());
  EXPECT_EQ(t.run, (std::vector<bool>{false, true}));
  EXPECT_FALSE(t.step);
  s.stopped({StopReason::Kind::kSignal, 1, 5});
  // Thread 1 steps, the others continue.
  EXPECT_EQ(s.handle("vCont;s:1;c"), std::nullopt);
  EXPECT_EQ(t.run, (std::vector<bool>{true, true}));
  EXPECT_EQ(t.step, 0u);
  s.stopped({StopReason::Kind::kSignal, 0, 5});
  EXPECT_EQ(s.handle("vCont;s:p1.2"), std::nullopt);
  EXPECT_EQ(t.run, (std::vector<bool>{false, true}));
  EXPECT_EQ(t.step, 1u);
  s.stopped({StopReason::Kind::kSignal, 1, 5});
  EXPECT_EQ(s.handle("vCont;c:7"), "E03");
  EXPECT_EQ(s.handle("vCont;t"), "E16");
  EXPECT_EQ(s.handle("c"), std::nullopt);
  EXPECT_EQ(t.run, (std::vector<bool>{true, true}));
  EXPECT_EQ(t.resumes, 4);
  s.stopped({StopReason::Kind::kSignal, 0, 2});
  EXPECT_EQ(s.handle("?"), "T02thread:1;");
  EXPECT_EQ(s.handle("D"), "OK");
  EXPECT_TRUE(s.finished());
}

TEST(GdbSession, WatchpointsReachTheTargetWithTypeAndLength) {
  FakeTarget t;
  Session s(t, -1);
  EXPECT_EQ(s.handle("Z2,1008,8"), "OK");
  EXPECT_EQ(s.handle("Z3,2000,1"), "OK");
  EXPECT_EQ(s.handle("Z4,3000,4"), "OK");
  EXPECT_EQ(t.watches.at(0x1008), (std::pair{Watch::kWrite, uint64_t{8}}));
  EXPECT_EQ(t.watches.at(0x2000), (std::pair{Watch::kRead, uint64_t{1}}));
  EXPECT_EQ(t.watches.at(0x3000), (std::pair{Watch::kAccess, uint64_t{4}}));
  EXPECT_EQ(s.handle("Z2,10,4"), "E0e");     // the target refuses: an error, not a crash
  EXPECT_EQ(s.handle("Z2,1000,0"), "E16");   // empty
  EXPECT_EQ(s.handle("Z2,1000,1001"), "E16");  // longer than a page
  EXPECT_EQ(s.handle("Z2,1000"), "E16");
  EXPECT_EQ(s.handle("z3,2000,1"), "OK");
  EXPECT_EQ(s.handle("z3,2000,1"), "E0e");
  EXPECT_EQ(s.handle("z4,3000,2"), "E0e");   // length must match what was inserted
  EXPECT_EQ(t.watches.size(), 2u);
}

TEST(GdbSession, StopReplies) {
  StopReason w{StopReason::Kind::kSignal, 1, 5};
  w.watch = Watch::kWrite;
  w.watch_addr = 0xffffffff81000010ull;
  EXPECT_EQ(stop_reply(w), "T05thread:2;watch:ffffffff81000010;");
  w.watch = Watch::kRead;
  EXPECT_EQ(stop_reply(w), "T05thread:2;rwatch:ffffffff81000010;");
  w.watch = Watch::kAccess;
  EXPECT_EQ(stop_reply(w), "T05thread:2;awatch:ffffffff81000010;");
  EXPECT_EQ(stop_reply({StopReason::Kind::kExited, 0, 0, 0}), "W00");
  EXPECT_EQ(stop_reply({StopReason::Kind::kKilled, 0, 9}), "X09");
  EXPECT_EQ(stop_reply({StopReason::Kind::kSignal, 15, 5}), "T05thread:10;");
}

}  // namespace
}  // namespace vigil::toolstack::gdb
