// The shared-memory transport of a monitor session (monitor/shm_channel.h) between a
// RemoteSession and the real client (toolstack::MonitorClient) over an abstract socket, as
// vigild and `vigil monitor` use it: round trips, ordering with socket lines, a client that
// sleeps, and clients that break the protocol or die (the guest must never wedge).
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstring>
#include <random>
#include <thread>

#include "../riscv/cpu_harness.h"
#include "fmt/format.h"
#include "monitor/remote.h"
#include "monitor/shm_channel.h"
#include "toolstack/monitor_client.h"

namespace vigil::monitor {
namespace {

using namespace riscv;
using namespace riscv::test;
using namespace riscv::test::enc;
using toolstack::MonitorClient;
using Clock = std::chrono::steady_clock;

class ShmTest : public CpuTest {
 protected:
  ShmTest() : hub(std::make_unique<Hub>(mem, std::vector<Hart*>{hart.get()})) {
    std::signal(SIGPIPE, SIG_IGN);
  }
  ~ShmTest() override {
    stop = true;
    if (server.joinable()) server.join();
    client.reset();
    session.reset();
    hub.reset();
  }

  // vigild's side of monitor-open: a session with a channel, its fd passed with "ready".
  void start(std::chrono::milliseconds timeout, bool with_shm = true) {
    std::mt19937_64 rng(std::random_device{}());
    const std::string name = fmt::format("vigil-shm-test-{}-{:x}", ::getpid(), rng());
    const int listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path + 1, name.data(), name.size());
    const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
    ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), len), 0);
    ASSERT_EQ(::listen(listener, 1), 0);
    auto c = MonitorClient::connect(name);
    ASSERT_TRUE(c) << c.error().message;
    const int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    ::close(listener);
    ASSERT_GE(fd, 0);
    session = RemoteSession::start(*hub, fd, "shm", {.timeout = timeout, .shm = with_shm});
    ASSERT_EQ(session->shm_fd() >= 0, with_shm) << session->shm_error();
    // The test's own view of the channel, to look at what went through it.
    if (with_shm) {
      auto view = shm::Channel::map(::dup(session->shm_fd()));
      ASSERT_TRUE(view) << view.error().message;
      channel.emplace(std::move(*view));
    }
    server = std::thread([this] { session->serve([this] { return !stop.load(); }); });
    client.emplace(std::move(*c));
  }
  void subscribe_then_ready(std::initializer_list<Subscription> subs) {
    for (const Subscription& s : subs) session->monitor().subscribe(s);
    ASSERT_TRUE(session->send(Json{{"ready", true}, {"transport", channel ? "shm" : "socket"}}, session->shm_fd()));
    auto r = client->await_ready();
    ASSERT_TRUE(r) << r.error().message;
  }
  // S-mode: csrw stvec, t0 then addi a0, zero, 7.
  void run_csr_write() {
    set_priv(Priv::S);
    h().x[kT0] = 0x80002000;
    program({csrw(csr::kStvec, kT0), addi(kA0, kZero, 7)});
    h().run(2);
  }
  uint32_t posted() const { return channel->header().posted.load(); }
  uint64_t socket_bytes() const { return channel->header().socket_bytes.load(); }

  std::unique_ptr<Hub> hub;
  std::shared_ptr<RemoteSession> session;
  std::optional<MonitorClient> client;
  std::optional<shm::Channel> channel;
  std::atomic<bool> stop{false};
  std::thread server;
};

const Subscription kSyncCsr{.type = EventType::kCsrWrite, .sync = true};  // stvec is among the defaults
Subscription sscratch_writes(bool sync) {
  Subscription s{.type = EventType::kCsrWrite, .sync = sync};
  s.filter.numbers = {csr::kSscratch};
  return s;
}

TEST_F(ShmTest, SynchronousEventGoesThroughTheSlotBothWays) {
  start(std::chrono::milliseconds(5000));
  subscribe_then_ready({kSyncCsr});
  EXPECT_EQ(client->transport(), "shm");
  client->set_spin(std::chrono::seconds(5));  // polls: vigild has no reason to nudge it
  const uint64_t bytes = socket_bytes();
  std::thread guest([&] { run_csr_write(); });
  auto ev = client->next();
  ASSERT_TRUE(ev) << ev.error().message;
  EXPECT_EQ((*ev)["type"], "csr");
  EXPECT_EQ((*ev)["csr"], "stvec");
  EXPECT_EQ((*ev)["new"], 0x80002000u);
  EXPECT_EQ((*ev)["sync"], true);
  ASSERT_TRUE(client->answer((*ev)["seq"].get<uint64_t>(), Action::kDeny));
  guest.join();
  EXPECT_EQ(get_csr(csr::kStvec), kSTrap);  // denied
  EXPECT_EQ(h().x[kA0], 7u);
  EXPECT_EQ(posted(), 1u);
  EXPECT_EQ(socket_bytes(), bytes);  // nothing went over the socket
  EXPECT_EQ(channel->slot(0).state.load(), shm::kIdle);
  EXPECT_FALSE(session->dead());
}

TEST_F(ShmTest, SocketLinesWrittenBeforeAnEventAreReadBeforeIt) {
  start(std::chrono::milliseconds(5000));
  // sscratch writes are reported asynchronously (socket), the store synchronously (slot).
  session->monitor().set_rights(kData, kPageSize, p2m::kRead);
  subscribe_then_ready({sscratch_writes(false), {.type = EventType::kMemAccess, .sync = true}});
  std::thread guest([&] {
    set_priv(Priv::S);
    h().x[kA1] = kData;
    h().x[kA2] = 9;
    program({csrw(csr::kSscratch, kA2), csrw(csr::kSscratch, kA1), csrw(csr::kSscratch, kZero), sd(kA2, kA1, 0)});
    h().run(4);
  });
  std::vector<Json> events;
  while (events.size() < 4) {
    auto ev = client->next();
    ASSERT_TRUE(ev) << ev.error().message << "; session: " << session->end_reason();
    events.push_back(*ev);
  }
  for (int i = 0; i < 3; ++i) EXPECT_EQ(events[i]["type"], "csr") << i;
  EXPECT_EQ(events[3]["type"], "mem");
  for (int i = 1; i < 4; ++i) EXPECT_LT(events[i - 1]["seq"].get<uint64_t>(), events[i]["seq"].get<uint64_t>());
  ASSERT_TRUE(client->answer(events[3]["seq"].get<uint64_t>(), Action::kDeny));
  guest.join();
  EXPECT_EQ(peek64(kData), 0u);
  EXPECT_EQ(posted(), 1u);
}

TEST_F(ShmTest, SleepingClientIsWokenByTheNudge) {
  start(std::chrono::milliseconds(5000));
  subscribe_then_ready({kSyncCsr});
  client->set_spin(std::chrono::microseconds(0));  // straight to poll() on the socket
  std::optional<Result<Json>> ev;
  std::thread reader([&] { ev.emplace(client->next()); });
  // Let the reader fall asleep, then raise the event.
  for (int i = 0; i < 200 && channel->header().client_sleeping.load() == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(channel->header().client_sleeping.load(), 1u);
  const uint64_t bytes = socket_bytes();
  std::thread guest([&] { run_csr_write(); });
  reader.join();
  ASSERT_TRUE(*ev) << ev->error().message;
  EXPECT_EQ((**ev)["type"], "csr");
  ASSERT_TRUE(client->answer((**ev)["seq"].get<uint64_t>(), Action::kContinue));
  guest.join();
  EXPECT_EQ(socket_bytes(), bytes + 1);  // the nudge: one empty line (counted once written)
  EXPECT_EQ(get_csr(csr::kStvec), 0x80002000u);
  EXPECT_FALSE(session->dead());
}

TEST_F(ShmTest, AnAnswerOverTheSocketIsTakenToo) {
  start(std::chrono::milliseconds(5000));
  subscribe_then_ready({kSyncCsr});
  std::thread guest([&] { run_csr_write(); });
  auto ev = client->next();
  ASSERT_TRUE(ev);
  // An answer written as a line on the socket rather than in the slot.
  Json answer = {{"seq", (*ev)["seq"].get<int64_t>()}, {"action", "deny"}};  // signed: not routed to the slot
  ASSERT_TRUE(client->send(answer));
  guest.join();
  EXPECT_EQ(get_csr(csr::kStvec), kSTrap);
  EXPECT_FALSE(session->dead());
}

// A client that breaks the protocol in the slot: the session ends with a reason naming it,
// the vCPU continues at once, and vigild reads nothing beyond the slot.
TEST_F(ShmTest, ClientThatCorruptsItsSlotEndsTheSessionNotTheGuest) {
  struct Case {
    const char* what;
    std::function<void(shm::Slot&, uint64_t seq)> corrupt;
    const char* reason;
  };
  const std::vector<Case> cases = {
      {"state", [](shm::Slot& s, uint64_t) { s.state.store(7); }, "corrupted its shared memory"},
      {"length",  // clamped to the slot: vigild reads the slot's own bytes, garbage here
       [](shm::Slot& s, uint64_t) {
         std::memset(s.text, 'x', sizeof(s.text));
         s.length.store(0xffffffffu);
         s.state.store(shm::kAnswered);
       },
       "not a JSON object"},
      {"seq",
       [](shm::Slot& s, uint64_t seq) {
         const std::string text = Json{{"seq", seq + 5}, {"action", "deny"}}.dump();
         std::memcpy(s.text, text.data(), text.size());
         s.length.store(static_cast<uint32_t>(text.size()));
         s.state.store(shm::kAnswered);
       },
       "in the slot of event"},
      {"action",
       [](shm::Slot& s, uint64_t seq) {
         const std::string text = Json{{"seq", seq}, {"action", "explode"}}.dump();
         std::memcpy(s.text, text.data(), text.size());
         s.length.store(static_cast<uint32_t>(text.size()));
         s.state.store(shm::kAnswered);
       },
       "malformed answer"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    stop = true;
    if (server.joinable()) server.join();
    stop = false;
    client.reset();
    session.reset();
    channel.reset();
    hub.reset();  // before the next one takes the hart's hooks
    hub = std::make_unique<Hub>(mem, std::vector<Hart*>{hart.get()});
    set_csr(csr::kStvec, kSTrap);
    start(std::chrono::milliseconds(5000));
    subscribe_then_ready({kSyncCsr});
    const auto t0 = Clock::now();
    std::thread guest([&] { run_csr_write(); });
    auto ev = client->next();
    ASSERT_TRUE(ev);
    c.corrupt(channel->slot(0), (*ev)["seq"].get<uint64_t>());
    shm::futex_wake(channel->slot(0).state);
    guest.join();
    EXPECT_LT(Clock::now() - t0, std::chrono::milliseconds(2000));
    EXPECT_EQ(h().x[kA0], 7u);
    EXPECT_EQ(get_csr(csr::kStvec), 0x80002000u);  // continued, as with no monitor
    EXPECT_TRUE(session->dead());
    EXPECT_NE(session->end_reason().find(c.reason), std::string::npos) << session->end_reason();
    EXPECT_EQ(hub->monitor_count(), 0u);
    EXPECT_EQ(channel->header().closed.load(), 1u);
  }
}

TEST_F(ShmTest, ClientKilledHoldingAnEventReleasesTheVcpu) {
  start(std::chrono::milliseconds(20000));
  subscribe_then_ready({kSyncCsr});
  const auto t0 = Clock::now();
  std::thread guest([&] { run_csr_write(); });
  ASSERT_TRUE(client->next());
  client.reset();  // its socket closes: vigild notices and lets the vCPU go
  guest.join();
  EXPECT_LT(Clock::now() - t0, std::chrono::milliseconds(3000));
  EXPECT_EQ(h().x[kA0], 7u);
  EXPECT_TRUE(session->dead());
  EXPECT_EQ(channel->header().closed.load(), 1u);
}

TEST_F(ShmTest, ClientThatStopsAnsweringIsDroppedAfterTheTimeout) {
  start(std::chrono::milliseconds(200));
  subscribe_then_ready({kSyncCsr});
  const auto t0 = Clock::now();
  run_csr_write();  // the client never looks
  const auto waited = Clock::now() - t0;
  EXPECT_GE(waited, std::chrono::milliseconds(190));
  EXPECT_LT(waited, std::chrono::milliseconds(1500));
  EXPECT_TRUE(session->dead());
  EXPECT_NE(session->end_reason().find("no answer"), std::string::npos);
  EXPECT_EQ(get_csr(csr::kStvec), 0x80002000u);
}

TEST_F(ShmTest, ManyRoundTripsFromAPollingClient) {
  set_priv(Priv::S);
  set_csr(csr::kSscratch, 0);  // before the subscription: this write would be an event too
  h().x[kT0] = 0;
  h().x[kA0] = 0;
  start(std::chrono::milliseconds(5000));
  subscribe_then_ready({sscratch_writes(true)});
  std::atomic<uint64_t> answered{0};
  std::thread monitor([&] {
    while (answered < 2000) {
      auto ev = client->next();
      if (!ev) return;
      // Deny every other write: the guest's sscratch shows which answer it got.
      const uint64_t seq = (*ev)["seq"].get<uint64_t>();
      if (!client->answer(seq, (*ev)["new"].get<uint64_t>() % 2 ? Action::kDeny : Action::kContinue)) return;
      ++answered;
    }
  });
  // t0 counts up to t2; each round writes it to sscratch, then adds sscratch into a0.
  h().x[kT2] = 2000;
  program({addi(kT0, kT0, 1), csrw(csr::kSscratch, kT0), csrr(kT1, csr::kSscratch), add(kA0, kA0, kT1),
           bne(kT0, kT2, -16), jal(kZero, 0)});
  h().run(5 * 2000 + 100);
  monitor.join();
  EXPECT_EQ(answered.load(), 2000u);
  // Odd values were denied: sscratch kept the previous (even) value, so a0 = 2 * (0+2+...+1998) + 2000.
  uint64_t expect = 0, kept = 0;
  for (uint64_t t = 1; t <= 2000; ++t) {
    if (t % 2 == 0) kept = t;
    expect += kept;
  }
  EXPECT_EQ(h().x[kA0], expect);
  EXPECT_EQ(posted(), 2000u);
  EXPECT_FALSE(session->dead());
}

TEST_F(ShmTest, ChannelRefusesFilesThatAreNotOne) {
  // Too small, unsealed, wrong magic: a client given the wrong fd says so.
  const int small = ::memfd_create("x", MFD_CLOEXEC);
  ASSERT_EQ(::ftruncate(small, 100), 0);
  auto a = shm::Channel::map(small);
  ASSERT_FALSE(a);
  EXPECT_NE(a.error().message.find("too small"), std::string::npos);
  const int plain = ::memfd_create("y", MFD_CLOEXEC);
  ASSERT_EQ(::ftruncate(plain, shm::kHeaderSize + shm::kSlotSize), 0);
  auto b = shm::Channel::map(plain);
  ASSERT_FALSE(b);
  EXPECT_NE(b.error().message.find("not a version-1 Vigil channel"), std::string::npos);
  EXPECT_FALSE(shm::Channel::create(0));
  EXPECT_FALSE(shm::Channel::create(shm::kMaxSlots + 1));
  // A channel cannot be shrunk by the client (vigild would take SIGBUS).
  auto c = shm::Channel::create(2);
  ASSERT_TRUE(c);
  EXPECT_NE(::ftruncate(c->fd(), 10), 0);
}

}  // namespace
}  // namespace vigil::monitor
