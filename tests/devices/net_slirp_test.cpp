// SlirpBackend against the real libslirp, with the test playing the guest: it writes raw
// Ethernet frames (ARP, DHCP, TCP with correct checksums) into the backend and checks the
// frames slirp answers with. Only the loopback interface is used: the host side of every
// connection is a socket on 127.0.0.1 owned by the test. Every wait is bounded.
#include "devices/net_slirp.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace vigil::devices {
namespace {

using Bytes = std::vector<uint8_t>;
using Mac = std::array<uint8_t, 6>;
using namespace std::chrono_literals;

constexpr Mac kGuestMac = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
constexpr Mac kBroadcast = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
constexpr uint32_t kGuest = SlirpBackend::kGuestAddr;
constexpr uint32_t kHost = SlirpBackend::kHostAddr;
constexpr uint16_t kEthIp = 0x0800, kEthArp = 0x0806;
constexpr uint8_t kProtoTcp = 6, kProtoUdp = 17;
constexpr uint8_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kPsh = 0x08, kAck = 0x10;

// ---- packet building and parsing (network byte order) ----

void put16(Bytes& b, size_t at, uint16_t v) {
  b[at] = static_cast<uint8_t>(v >> 8);
  b[at + 1] = static_cast<uint8_t>(v);
}
void put32(Bytes& b, size_t at, uint32_t v) {
  put16(b, at, static_cast<uint16_t>(v >> 16));
  put16(b, at + 2, static_cast<uint16_t>(v));
}
uint16_t get16(const Bytes& b, size_t at) {
  return static_cast<uint16_t>(b[at] << 8 | b[at + 1]);
}
uint32_t get32(const Bytes& b, size_t at) {
  return static_cast<uint32_t>(get16(b, at)) << 16 | get16(b, at + 2);
}

// RFC 1071 one's-complement sum, folded; `sum` carries a pseudo-header.
uint16_t checksum(const uint8_t* p, size_t n, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
  if (n & 1) sum += static_cast<uint32_t>(p[n - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}
uint32_t pseudo_header_sum(uint32_t src, uint32_t dst, uint8_t proto, size_t len) {
  return (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + proto + static_cast<uint32_t>(len);
}

Bytes ethernet(const Mac& dst, const Mac& src, uint16_t type, const Bytes& payload) {
  Bytes f(14);
  std::copy(dst.begin(), dst.end(), f.begin());
  std::copy(src.begin(), src.end(), f.begin() + 6);
  put16(f, 12, type);
  f.insert(f.end(), payload.begin(), payload.end());
  return f;
}

Bytes ipv4(uint32_t src, uint32_t dst, uint8_t proto, const Bytes& payload) {
  Bytes p(20);
  p[0] = 0x45;  // version 4, 5 words of header
  put16(p, 2, static_cast<uint16_t>(20 + payload.size()));
  put16(p, 4, 0x1234);  // identification
  p[8] = 64;            // TTL
  p[9] = proto;
  put32(p, 12, src);
  put32(p, 16, dst);
  put16(p, 10, checksum(p.data(), 20));
  p.insert(p.end(), payload.begin(), payload.end());
  return p;
}

Bytes arp(uint16_t op, const Mac& sha, uint32_t spa, const Mac& tha, uint32_t tpa) {
  Bytes a(28);
  put16(a, 0, 1);       // Ethernet
  put16(a, 2, kEthIp);  // IPv4
  a[4] = 6, a[5] = 4;
  put16(a, 6, op);
  std::copy(sha.begin(), sha.end(), a.begin() + 8);
  put32(a, 14, spa);
  std::copy(tha.begin(), tha.end(), a.begin() + 18);
  put32(a, 24, tpa);
  return a;
}

Bytes arp_request_for(uint32_t target) {
  return ethernet(kBroadcast, kGuestMac, kEthArp, arp(1, kGuestMac, kGuest, Mac{}, target));
}

struct Tcp {
  uint32_t src, dst;
  uint16_t sport, dport;
  uint32_t seq, ack;
  uint8_t flags;
  Bytes payload;
};

Bytes tcp_frame(const Mac& dst_mac, const Tcp& t) {
  Bytes s(20);
  put16(s, 0, t.sport);
  put16(s, 2, t.dport);
  put32(s, 4, t.seq);
  put32(s, 8, t.ack);
  s[12] = 5 << 4;  // data offset: no options
  s[13] = t.flags;
  put16(s, 14, 65535);  // window
  s.insert(s.end(), t.payload.begin(), t.payload.end());
  put16(s, 16, checksum(s.data(), s.size(), pseudo_header_sum(t.src, t.dst, kProtoTcp, s.size())));
  return ethernet(dst_mac, kGuestMac, kEthIp, ipv4(t.src, t.dst, kProtoTcp, s));
}

// The IPv4 packet in an Ethernet frame, if it is one with a valid header checksum and
// length; returns the header length.
std::optional<size_t> parse_ipv4(const Bytes& f, uint8_t proto) {
  if (f.size() < 14 + 20 || get16(f, 12) != kEthIp || (f[14] >> 4) != 4 || f[14 + 9] != proto)
    return std::nullopt;
  const size_t ihl = (f[14] & 0xf) * 4u;
  if (ihl < 20 || f.size() < 14 + ihl || f.size() < 14u + get16(f, 14 + 2)) return std::nullopt;
  if (checksum(&f[14], ihl) != 0) return std::nullopt;
  return ihl;
}

// A TCP segment with valid IP and TCP checksums, or nothing.
std::optional<Tcp> parse_tcp(const Bytes& f) {
  const auto ihl = parse_ipv4(f, kProtoTcp);
  if (!ihl) return std::nullopt;
  const size_t ip_len = get16(f, 14 + 2), tcp_at = 14 + *ihl, tcp_len = ip_len - *ihl;
  if (tcp_len < 20) return std::nullopt;
  const uint32_t src = get32(f, 14 + 12), dst = get32(f, 14 + 16);
  if (checksum(&f[tcp_at], tcp_len, pseudo_header_sum(src, dst, kProtoTcp, tcp_len)) != 0)
    return std::nullopt;
  const size_t data_off = (f[tcp_at + 12] >> 4) * 4u;
  if (data_off < 20 || data_off > tcp_len) return std::nullopt;
  return Tcp{src,
             dst,
             get16(f, tcp_at),
             get16(f, tcp_at + 2),
             get32(f, tcp_at + 4),
             get32(f, tcp_at + 8),
             f[tcp_at + 13],
             Bytes(f.begin() + static_cast<ptrdiff_t>(tcp_at + data_off),
                   f.begin() + static_cast<ptrdiff_t>(14 + ip_len))};
}

Bytes text(std::string_view s) {
  return Bytes(s.begin(), s.end());
}

// ---- host-side sockets ----

struct Fd {
  int fd = -1;
  explicit Fd(int f = -1) : fd(f) {}
  Fd(Fd&& o) noexcept : fd(std::exchange(o.fd, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    std::swap(fd, o.fd);
    return *this;
  }
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

uint16_t local_port(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  return ntohs(a.sin_port);
}

sockaddr_in loopback(uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

Fd listen_on_loopback() {
  Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const sockaddr_in a = loopback(0);
  EXPECT_EQ(::bind(s.fd, reinterpret_cast<const sockaddr*>(&a), sizeof a), 0);
  EXPECT_EQ(::listen(s.fd, 4), 0);
  return s;
}

// A port nobody listens on right now (bound, read and released).
uint16_t free_port() {
  Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const sockaddr_in a = loopback(0);
  EXPECT_EQ(::bind(s.fd, reinterpret_cast<const sockaddr*>(&a), sizeof a), 0);
  return local_port(s.fd);
}

bool wait_readable(int fd, std::chrono::milliseconds timeout) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, static_cast<int>(timeout.count())) == 1;
}

std::string read_some(int fd, std::chrono::milliseconds timeout) {
  if (!wait_readable(fd, timeout)) return "<timeout>";
  char buf[256];
  const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "<closed>";
}

// ---- the fixture: the backend plus frames it sent towards the guest ----

class SlirpTest : public ::testing::Test {
 protected:
  ~SlirpTest() override { backend.reset(); }  // its thread calls into the members below

  Result<void> create_backend(const SlirpBackend::Options& options = {}) {
    auto b = SlirpBackend::create(options);
    if (!b) return std::unexpected(b.error());
    backend = std::move(*b);
    return {};
  }
  void start() {
    backend->start([this](std::span<const uint8_t> f) {
      std::lock_guard lock(m_mutex);
      m_frames.emplace_back(f.begin(), f.end());
      m_receiver_threads.push_back(std::this_thread::get_id());
      m_cv.notify_all();
    });
  }
  void start_backend(const SlirpBackend::Options& options = {}) {
    auto r = create_backend(options);
    ASSERT_TRUE(r) << r.error().message;
    start();
  }

  // The next frame for the guest that pred accepts, within timeout; frames it rejects are
  // discarded, except ARP requests for the guest, which the guest answers as Linux would.
  std::optional<Bytes> wait_frame(const std::function<bool(const Bytes&)>& pred,
                                  std::chrono::milliseconds timeout = 1000ms) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::unique_lock lock(m_mutex);
    while (true) {
      while (!m_frames.empty()) {
        Bytes f = std::move(m_frames.front());
        m_frames.pop_front();
        if (pred(f)) return f;
        if (f.size() >= 42 && get16(f, 12) == kEthArp && get16(f, 20) == 1 && get32(f, 38) == kGuest) {
          Mac sender;
          std::copy(f.begin() + 22, f.begin() + 28, sender.begin());
          lock.unlock();
          backend->send(
              ethernet(sender, kGuestMac, kEthArp, arp(2, kGuestMac, kGuest, sender, get32(f, 28))));
          lock.lock();
        }
      }
      if (m_cv.wait_until(lock, deadline) == std::cv_status::timeout && m_frames.empty()) return std::nullopt;
    }
  }

  std::optional<Tcp> wait_tcp(const std::function<bool(const Tcp&)>& pred,
                              std::chrono::milliseconds timeout = 2000ms) {
    auto f = wait_frame(
        [&](const Bytes& frame) {
          auto t = parse_tcp(frame);
          return t && std::equal(frame.begin(), frame.begin() + 6, kGuestMac.begin()) && pred(*t);
        },
        timeout);
    if (!f) return std::nullopt;
    return parse_tcp(*f);
  }

  // The gateway's MAC, learnt the way the guest learns it (and teaching slirp ours).
  Mac resolve_gateway() {
    backend->send(arp_request_for(kHost));
    auto reply = wait_frame([](const Bytes& f) { return get16(f, 12) == kEthArp && get16(f, 20) == 2; });
    EXPECT_TRUE(reply) << "no ARP reply from 10.0.2.2";
    Mac mac{};
    if (reply) std::copy(reply->begin() + 22, reply->begin() + 28, mac.begin());
    return mac;
  }

  std::vector<std::thread::id> receiver_threads() {
    std::lock_guard lock(m_mutex);
    return m_receiver_threads;
  }
  size_t frames_seen() {
    std::lock_guard lock(m_mutex);
    return m_receiver_threads.size();
  }

  std::unique_ptr<SlirpBackend> backend;

 private:
  std::mutex m_mutex;
  std::condition_variable m_cv;
  std::deque<Bytes> m_frames;
  std::vector<std::thread::id> m_receiver_threads;
};

TEST_F(SlirpTest, AnswersArpForGatewayAndDns) {
  start_backend();
  for (const uint32_t target : {kHost, SlirpBackend::kDnsAddr}) {
    backend->send(arp_request_for(target));
    auto reply = wait_frame([](const Bytes& f) { return get16(f, 12) == kEthArp; }, 1000ms);
    ASSERT_TRUE(reply) << "no ARP reply within a second for " << std::hex << target;
    const Bytes& r = *reply;
    ASSERT_GE(r.size(), 42u);
    EXPECT_TRUE(std::equal(kGuestMac.begin(), kGuestMac.end(), r.begin()));       // to us
    EXPECT_EQ(get16(r, 14 + 6), 2);                                               // ARP reply
    EXPECT_TRUE(std::equal(r.begin() + 6, r.begin() + 12, r.begin() + 22));       // sha = frame source
    EXPECT_EQ(get32(r, 14 + 14), target);                                         // spa
    EXPECT_TRUE(std::equal(kGuestMac.begin(), kGuestMac.end(), r.begin() + 32));  // tha
    EXPECT_EQ(get32(r, 14 + 24), kGuest);                                         // tpa
  }
  // The receiver runs on the backend's own thread, never inside send().
  for (const auto& id : receiver_threads()) EXPECT_NE(id, std::this_thread::get_id());
  EXPECT_EQ(backend->stats().tx_frames, 2u);
  EXPECT_GE(backend->stats().rx_frames, 2u);
}

TEST_F(SlirpTest, DhcpDiscoverGetsOfferFor10_0_2_15) {
  start_backend();
  Bytes bootp(548, 0);  // BOOTP/DHCP (RFC 2131): fixed part, cookie, options, padding
  bootp[0] = 1;         // BOOTREQUEST
  bootp[1] = 1, bootp[2] = 6;
  put32(bootp, 4, 0xdeadbeef);  // xid
  put16(bootp, 10, 0x8000);     // broadcast flag
  std::copy(kGuestMac.begin(), kGuestMac.end(), bootp.begin() + 28);
  put32(bootp, 236, 0x63825363);              // magic cookie
  const uint8_t options[] = {53, 1, 1, 255};  // DHCPDISCOVER, end
  std::copy(std::begin(options), std::end(options), bootp.begin() + 240);
  Bytes udp(8);
  put16(udp, 0, 68);
  put16(udp, 2, 67);
  put16(udp, 4, static_cast<uint16_t>(8 + bootp.size()));  // checksum 0: none (IPv4)
  udp.insert(udp.end(), bootp.begin(), bootp.end());
  backend->send(ethernet(kBroadcast, kGuestMac, kEthIp, ipv4(0, 0xffffffff, kProtoUdp, udp)));

  auto reply = wait_frame([](const Bytes& f) {
    const auto ihl = parse_ipv4(f, kProtoUdp);
    return ihl && get16(f, 14 + *ihl + 2) == 68;
  });
  ASSERT_TRUE(reply) << "no DHCP reply within a second";
  const Bytes& r = *reply;
  const size_t at = 14 + *parse_ipv4(r, kProtoUdp) + 8;
  ASSERT_GE(r.size(), at + 244);
  EXPECT_EQ(get16(r, at - 8), 67);  // from the server port
  EXPECT_EQ(r[at], 2);              // BOOTREPLY
  EXPECT_EQ(get32(r, at + 4), 0xdeadbeefu);
  EXPECT_EQ(get32(r, at + 16), kGuest);  // yiaddr 10.0.2.15
  EXPECT_EQ(get32(r, at + 236), 0x63825363u);
  std::optional<uint8_t> type;
  std::optional<uint32_t> router, dns, mask;
  for (size_t o = at + 240; o + 1 < r.size() && r[o] != 255;) {
    if (r[o] == 0) {
      ++o;
      continue;
    }
    const uint8_t code = r[o], len = r[o + 1];
    ASSERT_LE(o + 2 + len, r.size());
    if (code == 53 && len == 1) type = r[o + 2];
    if (code == 3 && len >= 4) router = get32(r, o + 2);
    if (code == 6 && len >= 4) dns = get32(r, o + 2);
    if (code == 1 && len == 4) mask = get32(r, o + 2);
    o += 2 + len;
  }
  EXPECT_EQ(type, 2);  // DHCPOFFER
  EXPECT_EQ(router, kHost);
  EXPECT_EQ(dns, SlirpBackend::kDnsAddr);
  EXPECT_EQ(mask, SlirpBackend::kNetmask);
}

// Guest -> 10.0.2.2:port reaches a server on the host's 127.0.0.1:port, both ways. Then the
// server goes away while the guest keeps writing: slirp meets EPIPE (SIGPIPE must not kill
// the process) and closes the guest's connection.
TEST_F(SlirpTest, GuestTcpToHostLoopback) {
  start_backend();
  const Mac gw = resolve_gateway();
  Fd server = listen_on_loopback();
  const uint16_t port = local_port(server.fd);

  Tcp syn{kGuest, kHost, 40000, port, 1000, 0, kSyn, {}};
  backend->send(tcp_frame(gw, syn));
  ASSERT_TRUE(wait_readable(server.fd, 2000ms)) << "slirp never connected to 127.0.0.1:" << port;
  Fd conn(::accept4(server.fd, nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_GE(conn.fd, 0);

  auto synack =
      wait_tcp([&](const Tcp& t) { return t.sport == port && t.dport == 40000 && (t.flags & kSyn); });
  ASSERT_TRUE(synack) << "no SYN-ACK towards the guest";
  EXPECT_EQ(synack->flags & (kSyn | kAck), kSyn | kAck);
  EXPECT_EQ(synack->src, kHost);
  EXPECT_EQ(synack->dst, kGuest);
  EXPECT_EQ(synack->ack, 1001u);
  uint32_t their = synack->seq + 1, ours = 1001;

  backend->send(tcp_frame(gw, {kGuest, kHost, 40000, port, ours, their, kAck | kPsh, text("hello")}));
  ours += 5;
  EXPECT_EQ(read_some(conn.fd, 2000ms), "hello");

  ASSERT_EQ(::send(conn.fd, "world", 5, MSG_NOSIGNAL), 5);
  auto data = wait_tcp([&](const Tcp& t) { return t.sport == port && !t.payload.empty(); });
  ASSERT_TRUE(data) << "host data never reached the guest";
  EXPECT_EQ(data->seq, their);
  EXPECT_EQ(std::string(data->payload.begin(), data->payload.end()), "world");
  their += 5;

  conn = Fd();  // the host side closes; unread data will make its kernel answer with RST
  auto fin = wait_tcp([&](const Tcp& t) { return t.sport == port && (t.flags & (kFin | kRst)); });
  ASSERT_TRUE(fin) << "the close never reached the guest";
  if (fin->flags & kFin) their += 1;
  // The guest keeps writing into the half-closed connection: slirp's send() on the dead
  // socket fails with ECONNRESET / EPIPE (raising SIGPIPE on its thread).
  bool reset_seen = false;
  for (int i = 0; i < 10 && !reset_seen; ++i) {
    backend->send(tcp_frame(gw, {kGuest, kHost, 40000, port, ours, their, kAck | kPsh, text("more")}));
    ours += 4;
    reset_seen =
        wait_tcp([&](const Tcp& t) { return t.sport == port && (t.flags & kRst); }, 100ms).has_value();
  }
  EXPECT_TRUE(reset_seen) << "slirp never dropped the dead connection";
  // Still alive, still serving.
  backend->send(arp_request_for(kHost));
  EXPECT_TRUE(wait_frame([](const Bytes& f) { return get16(f, 12) == kEthArp; }));
}

// A host -> guest forward: the host connects to 127.0.0.1:P, slirp opens a connection to
// 10.0.2.15:2222 with a SYN on the guest network, and data flows both ways once the guest
// completes the handshake.
TEST_F(SlirpTest, HostForwardReachesGuest) {
  uint16_t port = 0;
  Result<void> created = std::unexpected(Error{"not tried"});
  for (int attempt = 0; attempt < 5 && !created; ++attempt) {  // free_port() can race
    port = free_port();
    created = create_backend({.forwards = {{port, 2222}}});
  }
  ASSERT_TRUE(created) << created.error().message;
  start();
  const Mac gw = resolve_gateway();

  Fd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const sockaddr_in a = loopback(port);
  ASSERT_EQ(::connect(client.fd, reinterpret_cast<const sockaddr*>(&a), sizeof a), 0) << std::strerror(errno);

  auto syn = wait_tcp([](const Tcp& t) { return t.dport == 2222 && (t.flags & kSyn); });
  ASSERT_TRUE(syn) << "no SYN towards 10.0.2.15:2222";
  EXPECT_EQ(syn->flags & (kSyn | kAck), kSyn);
  EXPECT_EQ(syn->dst, kGuest);
  const uint32_t host_ip = syn->src;
  const uint16_t host_port = syn->sport;
  uint32_t their = syn->seq + 1, ours = 5000;

  backend->send(tcp_frame(gw, {kGuest, host_ip, 2222, host_port, ours, their, kSyn | kAck, {}}));
  ours += 1;
  ASSERT_EQ(::send(client.fd, "ping", 4, MSG_NOSIGNAL), 4);
  auto data = wait_tcp([&](const Tcp& t) { return t.dport == 2222 && !t.payload.empty(); });
  ASSERT_TRUE(data) << "host data never reached the guest";
  EXPECT_EQ(std::string(data->payload.begin(), data->payload.end()), "ping");
  EXPECT_EQ(data->seq, their);
  their += 4;

  backend->send(tcp_frame(gw, {kGuest, host_ip, 2222, host_port, ours, their, kAck | kPsh, text("pong")}));
  EXPECT_EQ(read_some(client.fd, 2000ms), "pong");
}

TEST(SlirpBackendCreate, ForwardErrorsNameThePort) {
  auto zero = SlirpBackend::create({.forwards = {{0, 22}}});
  ASSERT_FALSE(zero);
  EXPECT_NE(zero.error().message.find("port"), std::string::npos);

  Fd taken = listen_on_loopback();
  const uint16_t port = local_port(taken.fd);
  auto busy = SlirpBackend::create({.forwards = {{port, 22}}});
  ASSERT_FALSE(busy) << "forwarding a port in use must fail";
  EXPECT_NE(busy.error().message.find("127.0.0.1:" + std::to_string(port)), std::string::npos)
      << busy.error().message;
}

TEST_F(SlirpTest, TransmitQueueIsBoundedAndDrainedOnStart) {
  ASSERT_TRUE(create_backend());
  // No I/O thread yet: frames wait in the queue, up to its bound.
  constexpr size_t kExtra = 44;
  for (size_t i = 0; i < SlirpBackend::kTxQueueFrames + kExtra; ++i) backend->send(arp_request_for(kHost));
  backend->send(Bytes(13, 0));                         // not a frame
  backend->send(Bytes(NetBackend::kMaxFrame + 1, 0));  // too big
  EXPECT_EQ(backend->stats().tx_dropped, kExtra + 2);
  EXPECT_EQ(backend->stats().tx_frames, 0u);
  start();
  // Each queued ARP request gets its reply once the thread runs.
  const auto deadline = std::chrono::steady_clock::now() + 2s;
  while (frames_seen() < SlirpBackend::kTxQueueFrames && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_EQ(frames_seen(), SlirpBackend::kTxQueueFrames);
  EXPECT_EQ(backend->stats().tx_frames, SlirpBackend::kTxQueueFrames);
}

TEST_F(SlirpTest, StopIsPromptIdempotentAndEndsDelivery) {
  start_backend();
  backend->send(arp_request_for(kHost));
  ASSERT_TRUE(wait_frame([](const Bytes&) { return true; }));
  const auto t0 = std::chrono::steady_clock::now();
  backend->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 500ms);  // woken, not waiting out a poll
  backend->stop();
  const size_t seen = frames_seen();
  backend->send(arp_request_for(kHost));
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(frames_seen(), seen);
}

}  // namespace
}  // namespace vigil::devices
