// The out-of-process transport over a socketpair: answers, commands, and monitors that die
// or stop answering (the guest must never wedge).
#include "monitor/remote.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <thread>

#include "../riscv/cpu_harness.h"

namespace vigil::monitor {
namespace {

using namespace riscv;
using namespace riscv::test;
using namespace riscv::test::enc;
using Clock = std::chrono::steady_clock;

// The client end: reads JSON lines, writes lines.
class Client {
 public:
  explicit Client(int fd) : m_fd(fd) {}
  ~Client() { close(); }
  void close() {
    if (m_fd >= 0) ::close(m_fd);
    m_fd = -1;
  }
  std::optional<Json> read_line() {
    char c;
    std::string line;
    while (::read(m_fd, &c, 1) == 1) {
      if (c == '\n') return Json::parse(line);
      line += c;
    }
    return std::nullopt;
  }
  void send(const Json& j) {
    const std::string s = j.dump() + "\n";
    ASSERT_EQ(::write(m_fd, s.data(), s.size()), static_cast<ssize_t>(s.size()));
  }

 private:
  int m_fd;
};

class RemoteTest : public CpuTest {
 protected:
  RemoteTest() : hub(std::make_unique<Hub>(mem, std::vector<Hart*>{hart.get()})) {
    std::signal(SIGPIPE, SIG_IGN);  // as vigild does: a vanished monitor is an error, not a signal
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    client = std::make_unique<Client>(fds[1]);
    server_fd = fds[0];
  }
  ~RemoteTest() override {
    stop = true;
    if (server.joinable()) server.join();
    session.reset();
    hub.reset();
  }
  void start(std::chrono::milliseconds timeout) {
    session = RemoteSession::start(*hub, server_fd, "remote", {.timeout = timeout});
    server = std::thread([this] { session->serve([this] { return !stop.load(); }); });
  }
  // S-mode: csrw stvec, t0 then addi a0, zero, 7.
  void run_csr_write() {
    set_priv(Priv::S);
    h().x[kT0] = 0x80002000;
    program({csrw(csr::kStvec, kT0), addi(kA0, kZero, 7)});
    h().run(2);
  }

  std::unique_ptr<Hub> hub;
  std::unique_ptr<Client> client;
  int server_fd = -1;
  std::shared_ptr<RemoteSession> session;
  std::atomic<bool> stop{false};
  std::thread server;
};

TEST_F(RemoteTest, SynchronousEventAnsweredOverTheSocket) {
  start(std::chrono::milliseconds(2000));
  session->monitor().subscribe({.type = EventType::kCsrWrite, .sync = true});
  std::thread guest([&] { run_csr_write(); });
  auto ev = client->read_line();
  ASSERT_TRUE(ev);
  EXPECT_EQ((*ev)["type"], "csr");
  EXPECT_EQ((*ev)["csr"], "stvec");
  EXPECT_EQ((*ev)["old"], kSTrap);
  EXPECT_EQ((*ev)["new"], 0x80002000u);
  EXPECT_EQ((*ev)["sync"], true);
  client->send({{"seq", (*ev)["seq"]}, {"action", "deny"}});
  guest.join();
  EXPECT_EQ(get_csr(csr::kStvec), kSTrap);
  EXPECT_EQ(h().x[kA0], 7u);
  EXPECT_FALSE(session->dead());
}

TEST_F(RemoteTest, CommandsSubscribeAndSetRights) {
  start(std::chrono::milliseconds(2000));
  client->send({{"cmd", "subscribe"}, {"subscription", {{"type", "mem"}, {"sync", true}}}});
  auto ack = client->read_line();
  ASSERT_TRUE(ack);
  EXPECT_EQ((*ack)["ok"], true);
  client->send({{"cmd", "rights"}, {"gpa", kData}, {"length", kPageSize}, {"rights", "r--"}});
  ack = client->read_line();
  EXPECT_EQ((*ack)["ok"], true);
  EXPECT_EQ(mem.rights(mem.page_index(kData)), p2m::kRead);
  client->send({{"cmd", "bogus"}});
  ack = client->read_line();
  EXPECT_EQ((*ack)["ok"], false);
  std::thread guest([&] {
    set_priv(Priv::S);
    h().x[kA1] = kData;
    h().x[kA2] = 9;
    program({sd(kA2, kA1, 0)});
    h().run(1);
  });
  auto ev = client->read_line();
  ASSERT_TRUE(ev);
  EXPECT_EQ((*ev)["type"], "mem");
  EXPECT_EQ((*ev)["access"], "w");
  EXPECT_EQ((*ev)["gpa"], kData);
  client->send({{"seq", (*ev)["seq"]}, {"action", "deny"}});
  guest.join();
  EXPECT_EQ(peek64(kData), 0u);
}

TEST_F(RemoteTest, MonitorThatStopsAnsweringIsDroppedAfterTheTimeout) {
  start(std::chrono::milliseconds(200));
  session->monitor().subscribe({.type = EventType::kCsrWrite, .sync = true});
  session->monitor().set_rights(kData, kPageSize, p2m::kRead);
  const auto t0 = Clock::now();
  run_csr_write();  // nobody answers
  const auto waited = Clock::now() - t0;
  EXPECT_GE(waited, std::chrono::milliseconds(190));
  EXPECT_LT(waited, std::chrono::milliseconds(1500));
  EXPECT_EQ(get_csr(csr::kStvec), 0x80002000u);  // continued as if answered "continue"
  EXPECT_EQ(h().x[kA0], 7u);
  EXPECT_TRUE(session->dead());
  EXPECT_NE(session->end_reason().find("no answer"), std::string::npos);
  EXPECT_EQ(hub->monitor_count(), 0u);
  EXPECT_EQ(mem.rights(mem.page_index(kData)), p2m::kAll);  // its rights were dropped
  EXPECT_EQ(h().watch.load(), 0u);
}

TEST_F(RemoteTest, MonitorKilledInTheMiddleOfAnEventReleasesTheVcpu) {
  start(std::chrono::milliseconds(5000));
  session->monitor().subscribe({.type = EventType::kCsrWrite, .sync = true});
  const auto t0 = Clock::now();
  std::thread guest([&] { run_csr_write(); });
  ASSERT_TRUE(client->read_line());
  client->close();  // dies holding the event
  guest.join();
  EXPECT_LT(Clock::now() - t0, std::chrono::milliseconds(2000));
  EXPECT_EQ(h().x[kA0], 7u);
  EXPECT_TRUE(session->dead());
  EXPECT_EQ(hub->monitor_count(), 0u);
}

TEST_F(RemoteTest, MalformedAnswerEndsTheSessionNotTheGuest) {
  start(std::chrono::milliseconds(5000));
  session->monitor().subscribe({.type = EventType::kCsrWrite, .sync = true});
  std::thread guest([&] { run_csr_write(); });
  auto ev = client->read_line();
  ASSERT_TRUE(ev);
  client->send({{"seq", (*ev)["seq"]}, {"action", "explode"}});
  guest.join();
  EXPECT_TRUE(session->dead());
  EXPECT_EQ(h().x[kA0], 7u);
}

TEST_F(RemoteTest, AsynchronousEventsNeverBlockAndLossIsCounted) {
  start(std::chrono::milliseconds(5000));
  session->monitor().subscribe({.type = EventType::kCsrWrite});
  // Nobody reads: the socket fills, events are dropped, the guest runs on.
  set_priv(Priv::S);
  h().x[kT0] = 0x80002000;
  program({csrw(csr::kStvec, kT0), jal(kZero, -4)});
  const auto t0 = Clock::now();
  h().run(200000);
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(5));
  EXPECT_GT(session->lost(), 0u);
  EXPECT_FALSE(session->dead());
}

}  // namespace
}  // namespace vigil::monitor
