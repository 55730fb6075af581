#include "devices/tpm_tis.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

namespace vigil::devices {
namespace {

using T = TpmTis;

// A TPM that echoes: the response is a success header followed by the command's code.
class FakeTpm final : public TpmBackend {
 public:
  Result<std::vector<uint8_t>> execute(std::span<const uint8_t> command) override {
    {
      std::lock_guard lock(mutex);
      commands.emplace_back(command.begin(), command.end());
    }
    if (delay_ms) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms.load()));
    if (fail) return make_error("the TPM process is gone");
    if (malformed) return std::vector<uint8_t>{1, 2, 3};
    std::vector<uint8_t> r = {0x80, 0x01, 0, 0, 0, 14, 0, 0, 0, 0};
    r.insert(r.end(), command.begin() + 6, command.begin() + 10);
    return r;
  }
  std::string describe() const override { return "fake TPM"; }
  std::mutex mutex;
  std::vector<std::vector<uint8_t>> commands;
  std::atomic<int> delay_ms{0};
  std::atomic<bool> fail{false}, malformed{false};
};

std::vector<uint8_t> command(uint32_t code, size_t total = 10) {
  std::vector<uint8_t> c(total, 0xab);
  c[0] = 0x80, c[1] = 0x01;
  c[2] = static_cast<uint8_t>(total >> 24), c[3] = static_cast<uint8_t>(total >> 16);
  c[4] = static_cast<uint8_t>(total >> 8), c[5] = static_cast<uint8_t>(total);
  c[6] = static_cast<uint8_t>(code >> 24), c[7] = static_cast<uint8_t>(code >> 16);
  c[8] = static_cast<uint8_t>(code >> 8), c[9] = static_cast<uint8_t>(code);
  return c;
}

uint32_t rc_of(const std::vector<uint8_t>& r) {
  return r.size() < 10 ? 0xffffffff : (uint32_t{r[6]} << 24) | (uint32_t{r[7]} << 16) | (uint32_t{r[8]} << 8) | r[9];
}

class TisTest : public ::testing::Test {
 protected:
  std::shared_ptr<FakeTpm> tpm = std::make_shared<FakeTpm>();
  std::vector<std::string> log;
  std::mutex log_mutex;
  TpmTis tis{tpm, [this](const std::string& s) {
               std::lock_guard lock(log_mutex);
               log.push_back(s);
             }};

  uint64_t rd(unsigned loc, uint64_t reg, unsigned size = 4) {
    uint64_t v = 0;
    EXPECT_TRUE(tis.read(loc * T::kLocalitySize + reg, size, v));
    return v;
  }
  void wr(unsigned loc, uint64_t reg, uint64_t v, unsigned size = 1) {
    EXPECT_TRUE(tis.write(loc * T::kLocalitySize + reg, size, v));
  }
  uint8_t access(unsigned loc) { return static_cast<uint8_t>(rd(loc, T::kAccess, 1)); }
  uint32_t sts(unsigned loc) { return static_cast<uint32_t>(rd(loc, T::kSts)); }
  uint16_t burst(unsigned loc) { return static_cast<uint16_t>(sts(loc) >> 8); }
  void request(unsigned loc) { wr(loc, T::kAccess, T::kAccessRequestUse); }
  void send(unsigned loc, const std::vector<uint8_t>& cmd) {
    wr(loc, T::kSts, T::kStsCommandReady);
    for (uint8_t b : cmd) wr(loc, T::kDataFifo, b);
  }
  // Waits for dataAvail as a polling driver does; returns false after 2 s.
  bool wait_data(unsigned loc) {
    for (int i = 0; i < 2000; ++i) {
      if (sts(loc) & T::kStsDataAvail) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return false;
  }
  std::vector<uint8_t> receive(unsigned loc) {
    std::vector<uint8_t> r;
    while (sts(loc) & T::kStsDataAvail) r.push_back(static_cast<uint8_t>(rd(loc, T::kDataFifo, 1)));
    return r;
  }
  std::vector<uint8_t> transact(unsigned loc, const std::vector<uint8_t>& cmd) {
    send(loc, cmd);
    wr(loc, T::kSts, T::kStsGo);
    EXPECT_TRUE(wait_data(loc));
    return receive(loc);
  }
};

TEST_F(TisTest, IdentityRegistersDescribeAPolledTpm20Fifo) {
  EXPECT_EQ(rd(0, T::kDidVid), 0x00011014u);
  EXPECT_EQ(rd(0, T::kRid, 1), 1u);
  EXPECT_EQ(rd(0, T::kIntfCapability) & 0xff, 0u) << "no interrupt support";
  EXPECT_EQ((rd(0, T::kIntfCapability) >> 28) & 7, 3u) << "TIS 1.3 for TPM 2.0";
  EXPECT_EQ(rd(0, T::kInterfaceId) & 0xf, 0u) << "FIFO interface for TPM 2.0";
  EXPECT_NE(rd(0, T::kInterfaceId) & (1u << 13), 0u) << "CapFIFO";
  EXPECT_EQ(rd(0, T::kIntEnable), 0u);
  wr(0, T::kIntEnable, 0xffffffff, 4);
  EXPECT_EQ(rd(0, T::kIntEnable), 0u) << "interrupts cannot be enabled";
  EXPECT_EQ(access(0), T::kAccessValid | T::kAccessEstablishment);
  EXPECT_EQ(sts(0), 0xffffffffu) << "STS of an inactive locality floats";
}

TEST_F(TisTest, CommandRoundTripThroughTheFifo) {
  request(0);
  EXPECT_EQ(access(0) & (T::kAccessActive | T::kAccessValid), T::kAccessActive | T::kAccessValid);
  EXPECT_EQ(sts(0) & T::kStsCommandReady, 0u) << "idle until commandReady";
  wr(0, T::kSts, T::kStsCommandReady);
  EXPECT_NE(sts(0) & T::kStsCommandReady, 0u);
  const auto cmd = command(0x17b, 12);  // TPM2_GetRandom, 12 bytes
  for (size_t i = 0; i + 1 < cmd.size(); ++i) wr(0, T::kDataFifo, cmd[i]);
  EXPECT_NE(sts(0) & T::kStsExpect, 0u) << "one byte still missing";
  wr(0, T::kSts, T::kStsGo);
  EXPECT_TRUE(tis.wait_idle(1000));
  EXPECT_EQ(tis.commands_executed(), 0u) << "tpmGo is ignored while Expect is set";
  wr(0, T::kDataFifo, cmd.back());
  EXPECT_EQ(sts(0) & T::kStsExpect, 0u);
  wr(0, T::kSts, T::kStsGo);
  ASSERT_TRUE(wait_data(0));
  EXPECT_EQ(burst(0), 14u);
  const auto r = receive(0);
  ASSERT_EQ(r.size(), 14u);
  EXPECT_EQ(rc_of(r), 0u);
  EXPECT_EQ(r[13], 0x7b);
  ASSERT_EQ(tpm->commands.size(), 1u);
  EXPECT_EQ(tpm->commands[0], cmd);
  EXPECT_EQ(rd(0, T::kDataFifo, 1), 0xffu) << "reading past the response";
  wr(0, T::kSts, T::kStsResponseRetry);
  EXPECT_EQ(receive(0).size(), 14u) << "responseRetry rewinds";
}

TEST_F(TisTest, WideAndExtendedFifoAccesses) {
  request(2);
  wr(2, T::kSts, T::kStsCommandReady);
  const auto cmd = command(0x144, 16);
  for (size_t i = 0; i < 16; i += 4) {
    uint32_t w = cmd[i] | (cmd[i + 1] << 8) | (cmd[i + 2] << 16) | (uint32_t{cmd[i + 3]} << 24);
    wr(2, T::kXDataFifo + (i % 0x40), w, 4);
  }
  wr(2, T::kSts, T::kStsGo);
  ASSERT_TRUE(wait_data(2));
  EXPECT_EQ(rd(2, T::kDataFifo, 4), 0x00000180u);  // 80 01 00 00, little-endian in the word
  EXPECT_EQ(tpm->commands.at(0), cmd);
}

TEST_F(TisTest, OddSizesAndOffsetsAreRefusedOrHarmless) {
  uint64_t v = 0;
  EXPECT_FALSE(tis.read(T::kSts, 8, v)) << "8-byte accesses fault";
  EXPECT_FALSE(tis.read(T::kSts, 3, v));
  EXPECT_FALSE(tis.read(T::kSts + 2, 4, v)) << "straddles STS and the next register";
  EXPECT_FALSE(tis.read(T::kSize, 1, v));
  EXPECT_FALSE(tis.read(T::kSize - 2, 4, v));
  EXPECT_FALSE(tis.write(~0ull - 1, 4, 0));
  EXPECT_FALSE(tis.write(T::kDataFifo + 2, 4, 0)) << "straddles the FIFO";
  EXPECT_TRUE(tis.read(0x7f0, 4, v));
  EXPECT_EQ(v, 0u) << "reserved space reads 0";
  EXPECT_TRUE(tis.write(0x7f0, 4, ~0ull));
  request(0);
  EXPECT_EQ(rd(0, T::kSts + 1, 2), 0u) << "no burst while idle";
  wr(0, T::kSts, T::kStsCommandReady);
  EXPECT_EQ(rd(0, T::kSts + 1, 2), T::kBufferSize & 0xffff) << "burstCount through a 16-bit read at STS+1";
}

TEST_F(TisTest, CommandLongerThanTheBufferGetsASizeErrorWithoutReachingTheTpm) {
  request(0);
  auto cmd = command(0x17b, 10);
  cmd[2] = 0x00, cmd[3] = 0x10, cmd[4] = 0x00, cmd[5] = 0x00;  // declares 1 MiB
  send(0, cmd);
  EXPECT_EQ(sts(0) & T::kStsExpect, 0u);
  for (int i = 0; i < 100000; ++i) wr(0, T::kDataFifo, 0x55, 4);  // a hostile 400 KB flood
  wr(0, T::kSts, T::kStsGo);
  ASSERT_TRUE(wait_data(0));
  EXPECT_EQ(rc_of(receive(0)), 0x142u) << "TPM_RC_COMMAND_SIZE";
  EXPECT_TRUE(tpm->commands.empty());
}

TEST_F(TisTest, DeclaredSizeBelowTheHeaderIsRefused) {
  request(0);
  auto cmd = command(0x17b, 10);
  cmd[5] = 4;
  send(0, cmd);
  wr(0, T::kSts, T::kStsGo);
  ASSERT_TRUE(wait_data(0));
  EXPECT_EQ(rc_of(receive(0)), 0x142u);
  EXPECT_TRUE(tpm->commands.empty());
}

TEST_F(TisTest, FifoReadsWhileTheCommandRunsFloatAndDoNotConsumeTheResponse) {
  tpm->delay_ms = 200;
  request(0);
  send(0, command(0x17e));
  wr(0, T::kSts, T::kStsGo);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(rd(0, T::kDataFifo, 4), 0xffffffffu);
  EXPECT_EQ(sts(0) & (T::kStsDataAvail | T::kStsCommandReady | T::kStsExpect), 0u);
  for (int i = 0; i < 20; ++i) wr(0, T::kDataFifo, 0x11);  // writes mid-command are dropped
  ASSERT_TRUE(wait_data(0));
  const auto r = receive(0);
  ASSERT_EQ(r.size(), 14u);
  EXPECT_EQ(r[13], 0x7e);
  EXPECT_EQ(tpm->commands.at(0), command(0x17e));
}

TEST_F(TisTest, OtherLocalitiesCannotTouchTheActiveOnesCommand) {
  request(0);
  send(0, command(0x17b));
  for (unsigned l = 1; l < T::kLocalities; ++l) {
    wr(l, T::kSts, T::kStsGo);
    wr(l, T::kSts, T::kStsCommandReady);
    wr(l, T::kDataFifo, 0x99);
    EXPECT_EQ(rd(l, T::kDataFifo, 1), 0xffu);
  }
  EXPECT_TRUE(tis.wait_idle(500));
  EXPECT_TRUE(tpm->commands.empty());
  wr(0, T::kSts, T::kStsGo);
  ASSERT_TRUE(wait_data(0));
  EXPECT_EQ(tpm->commands.at(0), command(0x17b));
}

TEST_F(TisTest, RequestRelinquishHandsOverToTheHighestWaiter) {
  request(1);
  request(3);
  request(2);
  EXPECT_NE(access(1) & T::kAccessActive, 0);
  EXPECT_NE(access(1) & T::kAccessPending, 0) << "others are waiting";
  EXPECT_NE(access(3) & T::kAccessRequestUse, 0);
  wr(1, T::kAccess, T::kAccessActive);  // relinquish
  EXPECT_EQ(access(1) & T::kAccessActive, 0);
  EXPECT_NE(access(3) & T::kAccessActive, 0);
  wr(2, T::kAccess, T::kAccessActive);  // 2 withdraws its request
  wr(3, T::kAccess, T::kAccessActive);
  for (unsigned l = 0; l < T::kLocalities; ++l) EXPECT_EQ(access(l) & T::kAccessActive, 0) << l;
}

TEST_F(TisTest, SeizeOnlyUpwardsAbortsTheCommandAndIsReported) {
  request(1);
  send(1, command(0x17b));
  wr(0, T::kAccess, T::kAccessSeize);
  EXPECT_NE(access(1) & T::kAccessActive, 0) << "a lower locality cannot seize";
  wr(3, T::kAccess, T::kAccessSeize);
  EXPECT_NE(access(3) & T::kAccessActive, 0);
  EXPECT_NE(access(1) & T::kAccessBeenSeized, 0);
  wr(1, T::kSts, T::kStsGo);
  wr(3, T::kSts, T::kStsGo);
  EXPECT_TRUE(tis.wait_idle(500));
  EXPECT_TRUE(tpm->commands.empty()) << "the seized command was aborted";
  wr(1, T::kAccess, T::kAccessBeenSeized);
  EXPECT_EQ(access(1) & T::kAccessBeenSeized, 0);
  wr(4, T::kAccess, T::kAccessSeize);
  EXPECT_EQ(access(4) & T::kAccessActive, 0) << "locality 4 belongs to the platform";
  EXPECT_EQ(rc_of(transact(3, command(0x17b))), 0u);
}

TEST_F(TisTest, SeizeDuringExecutionDiscardsTheLateResponse) {
  tpm->delay_ms = 100;
  request(0);
  send(0, command(0x17b));
  wr(0, T::kSts, T::kStsGo);
  wr(2, T::kAccess, T::kAccessSeize);
  EXPECT_TRUE(tis.wait_idle(2000));
  EXPECT_EQ(sts(2) & T::kStsDataAvail, 0u) << "the old response must not reach the new locality";
  tpm->delay_ms = 0;
  const auto r = transact(2, command(0x17a));
  ASSERT_EQ(r.size(), 14u);
  EXPECT_EQ(r[13], 0x7a);
}

TEST_F(TisTest, LocalityHammeringFromThreadsLeavesAConsistentDevice) {
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (unsigned l = 0; l < 4; ++l) {
    threads.emplace_back([&, l] {
      uint64_t v;
      for (int i = 0; i < 20000 && !stop; ++i) {
        tis.write(l * T::kLocalitySize, 1, (i & 1) ? T::kAccessRequestUse : (i & 2) ? T::kAccessSeize : T::kAccessActive);
        tis.write(l * T::kLocalitySize + T::kSts, 1, T::kStsCommandReady);
        tis.write(l * T::kLocalitySize + T::kDataFifo, 4, 0x0a000000'01800000ull >> (8 * (i & 3)));
        tis.write(l * T::kLocalitySize + T::kSts, 1, T::kStsGo);
        tis.read(l * T::kLocalitySize + T::kDataFifo, 4, v);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_TRUE(tis.wait_idle(5000));
  tis.reset();
  request(0);
  EXPECT_EQ(rc_of(transact(0, command(0x17b))), 0u) << "the device still works";
}

TEST_F(TisTest, DeadBackendGivesTpmFailureAndOneLogLine) {
  tpm->fail = true;
  request(0);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(rc_of(transact(0, command(0x17b))), 0x101u) << "TPM_RC_FAILURE";
  {
    std::lock_guard lock(log_mutex);
    ASSERT_EQ(log.size(), 1u);
    EXPECT_NE(log[0].find("fake TPM"), std::string::npos);
    EXPECT_NE(log[0].find("the TPM process is gone"), std::string::npos);
  }
  tpm->fail = false;
  EXPECT_EQ(rc_of(transact(0, command(0x17b))), 0u);
  tpm->malformed = true;
  EXPECT_EQ(rc_of(transact(0, command(0x17b))), 0x101u) << "a malformed response is not passed on";
  EXPECT_EQ(tis.backend_failures(), 4u);
}

TEST_F(TisTest, ResetReturnsToNoActiveLocality) {
  request(0);
  send(0, command(0x17b));
  tis.reset();
  EXPECT_EQ(access(0) & T::kAccessActive, 0);
  request(0);
  EXPECT_EQ(sts(0) & (T::kStsCommandReady | T::kStsExpect | T::kStsDataAvail), 0u);
}

TEST_F(TisTest, SnapshotMidCommandRestoresIntoAFreshInterfaceThatFinishesIt) {
  request(2);
  const auto cmd = command(0x17b, 12);
  wr(2, T::kSts, T::kStsCommandReady);
  for (size_t i = 0; i < 7; ++i) wr(2, T::kDataFifo, cmd[i]);  // half a command received
  auto snap = tis.snapshot(1000);
  ASSERT_TRUE(snap) << snap.error().message;
  EXPECT_EQ(snap->state, 2u);
  EXPECT_EQ(snap->active, 2);
  EXPECT_EQ(snap->offset, 7u);
  auto other_tpm = std::make_shared<FakeTpm>();
  TpmTis other(other_tpm, nullptr);
  ASSERT_TRUE(other.restore(*snap));
  auto rd2 = [&](uint64_t reg) {
    uint64_t v = 0;
    EXPECT_TRUE(other.read(2 * T::kLocalitySize + reg, 4, v));
    return static_cast<uint32_t>(v);
  };
  EXPECT_NE(rd2(T::kAccess) & T::kAccessActive, 0u);
  EXPECT_NE(rd2(T::kSts) & T::kStsExpect, 0u);
  for (size_t i = 7; i < cmd.size(); ++i) EXPECT_TRUE(other.write(2 * T::kLocalitySize + T::kDataFifo, 1, cmd[i]));
  EXPECT_TRUE(other.write(2 * T::kLocalitySize + T::kSts, 1, T::kStsGo));
  ASSERT_TRUE(other.wait_idle(2000));
  ASSERT_EQ(other_tpm->commands.size(), 1u);
  EXPECT_EQ(other_tpm->commands[0], cmd) << "the restored interface sent the whole command";
  EXPECT_NE(rd2(T::kSts) & T::kStsDataAvail, 0u);
  // A response half read survives too: the rest comes from where the reader stopped.
  uint64_t b = 0;
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(other.read(2 * T::kLocalitySize + T::kDataFifo, 1, b));
  auto done = other.snapshot(1000);
  ASSERT_TRUE(done);
  EXPECT_EQ(done->state, 4u);
  EXPECT_EQ(done->offset, 5u);
  TpmTis third(other_tpm, nullptr);
  ASSERT_TRUE(third.restore(*done));
  std::vector<uint8_t> rest;
  for (;;) {
    uint64_t st = 0;
    ASSERT_TRUE(third.read(2 * T::kLocalitySize + T::kSts, 4, st));
    if (!(st & T::kStsDataAvail)) break;
    ASSERT_TRUE(third.read(2 * T::kLocalitySize + T::kDataFifo, 1, b));
    rest.push_back(static_cast<uint8_t>(b));
  }
  EXPECT_EQ(rest.size(), 9u);
  EXPECT_EQ(rest.back(), 0x7b);
}

TEST_F(TisTest, SnapshotWaitsForARunningCommandAndRefusesAfterTheDeadline) {
  tpm->delay_ms = 400;
  request(0);
  send(0, command(0x17b, 12));
  wr(0, T::kSts, T::kStsGo);
  auto early = tis.snapshot(50);
  ASSERT_FALSE(early);
  EXPECT_EQ(early.error().message, "the vTPM is still executing a guest command after 50 ms");
  auto later = tis.snapshot(2000);
  ASSERT_TRUE(later) << later.error().message;
  EXPECT_EQ(later->state, 4u) << "completion: the response is in the snapshot";
  EXPECT_EQ(later->buffer.size(), 14u);
}

TEST_F(TisTest, HostileSnapshotsAreRefusedInOneSentence) {
  auto ok = [](T::Snapshot s) { return s; };
  T::Snapshot base;
  EXPECT_TRUE(tis.restore(base));
  struct Case {
    T::Snapshot s;
    const char* want;
  };
  T::Snapshot exec = base;
  exec.state = 3;
  exec.active = 0;
  T::Snapshot loc = base;
  loc.active = 5;
  T::Snapshot masks = base;
  masks.requested = 0x20;
  T::Snapshot idle_buf = base;
  idle_buf.buffer = {1};
  T::Snapshot short_rx = base;
  short_rx.state = 2, short_rx.active = 0, short_rx.buffer.assign(10, 0);
  T::Snapshot past = base;
  past.state = 2, past.active = 0, past.buffer = command(0x17b, 12), past.buffer.resize(T::kBufferSize), past.offset = 20;
  T::Snapshot bad_resp = base;
  bad_resp.state = 4, bad_resp.active = 0, bad_resp.buffer = command(0x17b, 12), bad_resp.buffer[5] = 99;
  T::Snapshot read_past = base;
  read_past.state = 4, read_past.active = 0, read_past.buffer = command(0x17b, 12), read_past.offset = 13;
  T::Snapshot no_loc = base;
  no_loc.state = 1;
  for (const Case& c : {Case{exec, "TIS state 3 is not idle, ready, reception or completion"},
                        Case{loc, "TIS active locality 5 is not -1..4"},
                        Case{masks, "TIS locality masks 0x20/0x0 name localities beyond 4"},
                        Case{idle_buf, "TIS buffer holds 1 bytes while no command is in it"},
                        Case{short_rx, "TIS reception buffer of 10 bytes at offset 0 (must be 4096 bytes)"},
                        Case{past, "TIS holds 20 bytes of a 12-byte command"},
                        Case{bad_resp, "TIS response of 12 bytes (offset 0) is malformed"},
                        Case{read_past, "TIS response of 12 bytes (offset 13) is malformed"},
                        Case{no_loc, "TIS has a command phase but no active locality"}}) {
    auto r = tis.restore(ok(c.s));
    ASSERT_FALSE(r) << c.want;
    EXPECT_EQ(r.error().message, c.want);
  }
}

}  // namespace
}  // namespace vigil::devices
