#include "migrate/live.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <sys/mman.h>

#include <spdlog/spdlog.h>

#include "base/sandbox.h"
#include "devices/virtio_blk.h"
#include "migrate/objects.h"
#include "migrate/snapshot.h"
#include "migrate/stream.h"

namespace vigil::migrate {
namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

constexpr char kHello[8] = {'V', 'I', 'G', 'I', 'L', 'M', 'I', 'G'};
constexpr uint32_t kProtocolVersion = 1;
constexpr size_t kNonce = 32, kMac = 32;
constexpr int kAuthTimeoutMs = 10'000;
// The destination waits this long for the next message of a migration in progress.
constexpr int kIdleTimeoutMs = 60'000;
// Bytes of RAM records gathered before a PAGES message goes out.
constexpr size_t kMessageTarget = 8u << 20;

// kSync/kSynced end each pre-copy round: the source waits until the destination has applied
// everything sent (else its backlog, still being decompressed, would count as downtime).
enum class Kind : uint32_t { kConfig = 1, kAccept, kPages, kFinal, kReady, kCommit, kStarted, kError, kSync, kSynced };

const char* kind_name(uint32_t k) {
  switch (static_cast<Kind>(k)) {
    case Kind::kConfig: return "CONFIG";
    case Kind::kAccept: return "ACCEPT";
    case Kind::kPages: return "PAGES";
    case Kind::kFinal: return "FINAL";
    case Kind::kReady: return "READY";
    case Kind::kCommit: return "COMMIT";
    case Kind::kStarted: return "STARTED";
    case Kind::kError: return "ERROR";
    case Kind::kSync: return "SYNC";
    case Kind::kSynced: return "SYNCED";
  }
  return "unknown";
}

struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

// Waits for `events` on fd; false on timeout (errno ETIMEDOUT) or error.
bool wait_fd(int fd, short events, int timeout_ms, const std::atomic<bool>* cancel) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    if (cancel != nullptr && cancel->load()) {
      errno = ECANCELED;
      return false;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      errno = ETIMEDOUT;
      return false;
    }
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, static_cast<int>(std::min<long>(left, 200)));
    if (n < 0 && errno != EINTR) return false;
    if (n > 0) return true;
  }
}

Result<void> send_all(int fd, const void* data, size_t len, const std::atomic<bool>* cancel, int timeout_ms) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (len > 0) {
    if (!wait_fd(fd, POLLOUT, timeout_ms, cancel)) return make_error("sending: {}", std::strerror(errno));
    const ssize_t n = ::send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      return make_error("sending: {}", std::strerror(errno));
    }
    p += n;
    len -= static_cast<size_t>(n);
  }
  return {};
}

Result<void> recv_all(int fd, void* data, size_t len, const std::atomic<bool>* cancel, int timeout_ms) {
  auto* p = static_cast<uint8_t*>(data);
  while (len > 0) {
    if (!wait_fd(fd, POLLIN, timeout_ms, cancel)) return make_error("receiving: {}", std::strerror(errno));
    const ssize_t n = ::recv(fd, p, len, MSG_DONTWAIT);
    if (n == 0) return make_error("receiving: the peer closed the connection");
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      return make_error("receiving: {}", std::strerror(errno));
    }
    p += n;
    len -= static_cast<size_t>(n);
  }
  return {};
}

void put_u32(uint8_t* p, uint32_t v) { store_le(p, v, 4); }
void put_u64(uint8_t* p, uint64_t v) { store_le(p, v, 8); }
uint32_t get_u32(const uint8_t* p) { return load_le32(p); }
uint64_t get_u64(const uint8_t* p) { return load_le64(p); }

Result<void> send_msg(int fd, Kind kind, std::span<const uint8_t> payload, const std::atomic<bool>* cancel,
                      std::atomic<uint64_t>* counter = nullptr) {
  uint8_t h[16];
  put_u32(h, static_cast<uint32_t>(kind));
  put_u32(h + 4, 0);
  put_u64(h + 8, payload.size());
  if (auto r = send_all(fd, h, sizeof h, cancel, kIdleTimeoutMs); !r) return r;
  if (auto r = send_all(fd, payload.data(), payload.size(), cancel, kIdleTimeoutMs); !r) return r;
  if (counter != nullptr) counter->fetch_add(sizeof h + payload.size());
  return {};
}

Result<void> send_text(int fd, Kind kind, std::string_view text) {
  return send_msg(fd, kind, std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size()), nullptr);
}

struct Message {
  uint32_t kind = 0;
  std::vector<uint8_t> payload;
};

// The peer is hostile: the kind must be known, the reserved word zero, the length bounded.
Result<Message> recv_msg(int fd, const std::atomic<bool>* cancel, int timeout_ms) {
  uint8_t h[16];
  if (auto r = recv_all(fd, h, sizeof h, cancel, timeout_ms); !r) return std::unexpected(r.error());
  Message m;
  m.kind = get_u32(h);
  const uint64_t len = get_u64(h + 8);
  if (m.kind < static_cast<uint32_t>(Kind::kConfig) || m.kind > static_cast<uint32_t>(Kind::kSynced))
    return make_error("message of unknown kind {}", m.kind);
  if (get_u32(h + 4) != 0) return make_error("{} message: reserved field is not zero", kind_name(m.kind));
  if (len > kMaxMessage) return make_error("{} message: length {} exceeds {}", kind_name(m.kind), len, kMaxMessage);
  m.payload.resize(len);
  if (auto r = recv_all(fd, m.payload.data(), len, cancel, timeout_ms); !r) return std::unexpected(r.error());
  return m;
}

// A reply of kind `want`, or the peer's ERROR text as the error.
Result<Message> expect_msg(int fd, Kind want, const std::atomic<bool>* cancel, int timeout_ms) {
  auto m = recv_msg(fd, cancel, timeout_ms);
  if (!m) return m;
  if (m->kind == static_cast<uint32_t>(Kind::kError)) {
    std::string text(m->payload.begin(), m->payload.begin() + std::min<size_t>(m->payload.size(), 1024));
    return make_error("the destination refused: {}", text);
  }
  if (m->kind != static_cast<uint32_t>(want))
    return make_error("expected {} from the peer, got {}", kind_name(static_cast<uint32_t>(want)), kind_name(m->kind));
  return m;
}

// ---- authentication ----

using Mac = std::array<uint8_t, kMac>;

Mac hmac(const std::string& token, std::string_view label, std::span<const uint8_t> a, std::span<const uint8_t> b) {
  std::vector<uint8_t> msg(label.begin(), label.end());
  msg.insert(msg.end(), a.begin(), a.end());
  msg.insert(msg.end(), b.begin(), b.end());
  Mac out{};
  unsigned len = 0;
  HMAC(EVP_sha256(), token.data(), static_cast<int>(token.size()), msg.data(), msg.size(), out.data(), &len);
  return out;
}

Result<void> random_nonce(std::span<uint8_t> out) {
  if (RAND_bytes(out.data(), static_cast<int>(out.size())) != 1) return make_error("cannot draw a random nonce");
  return {};
}

}  // namespace

Result<void> auth_source(int fd, const std::string& token, const std::atomic<bool>* cancel) {
  uint8_t hello[8 + 4 + kNonce];
  std::memcpy(hello, kHello, 8);
  put_u32(hello + 8, kProtocolVersion);
  std::span<uint8_t> ns(hello + 12, kNonce);
  if (auto r = random_nonce(ns); !r) return r;
  if (auto r = send_all(fd, hello, sizeof hello, cancel, kAuthTimeoutMs); !r) return r;
  uint8_t reply[kNonce + kMac];
  if (auto r = recv_all(fd, reply, sizeof reply, cancel, kAuthTimeoutMs); !r)
    return make_error("authentication: {} (is the destination a vigild with --migrate-listen?)", r.error().message);
  std::span<const uint8_t> nd(reply, kNonce);
  const Mac want = hmac(token, "dest", ns, nd);
  if (CRYPTO_memcmp(want.data(), reply + kNonce, kMac) != 0)
    return make_error("authentication: the destination does not know the migration token");
  const Mac proof = hmac(token, "source", nd, ns);
  if (auto r = send_all(fd, proof.data(), proof.size(), cancel, kAuthTimeoutMs); !r) return r;
  uint8_t ok[2];
  if (auto r = recv_all(fd, ok, 2, cancel, kAuthTimeoutMs); !r || ok[0] != 'O' || ok[1] != 'K')
    return make_error("authentication: the destination refused our proof of the token");
  return {};
}

namespace {

Result<void> auth_destination(int fd, const std::string& token) {
  uint8_t hello[8 + 4 + kNonce];
  if (auto r = recv_all(fd, hello, sizeof hello, nullptr, kAuthTimeoutMs); !r) return r;
  if (std::memcmp(hello, kHello, 8) != 0) return make_error("not a Vigil migration (bad greeting)");
  if (get_u32(hello + 8) != kProtocolVersion)
    return make_error("migration protocol version {} unsupported (this vigild speaks {})", get_u32(hello + 8),
                      kProtocolVersion);
  std::span<const uint8_t> ns(hello + 12, kNonce);
  uint8_t reply[kNonce + kMac];
  std::span<uint8_t> nd(reply, kNonce);
  if (auto r = random_nonce(nd); !r) return r;
  const Mac mine = hmac(token, "dest", ns, nd);
  std::memcpy(reply + kNonce, mine.data(), kMac);
  if (auto r = send_all(fd, reply, sizeof reply, nullptr, kAuthTimeoutMs); !r) return r;
  Mac proof{};
  if (auto r = recv_all(fd, proof.data(), proof.size(), nullptr, kAuthTimeoutMs); !r) return r;
  const Mac want = hmac(token, "source", nd, ns);
  if (CRYPTO_memcmp(want.data(), proof.data(), kMac) != 0) return make_error("the peer does not know the migration token");
  return send_all(fd, "OK", 2, nullptr, kAuthTimeoutMs);
}

// ---- source ----

// Waits until every hart of the domain dropped its write-TLB entries for code_epoch `epoch`
// (GuestMemory::fetch_and_clear_dirty): a hart outside run() picks the epoch up on entry.
Result<void> wait_harts_synced(machine::Machine& m, uint64_t epoch) {
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  for (unsigned h = 0; h < m.hart_count(); ++h) {
    riscv::Hart& hart = m.hart(h);
    while (hart.in_run.load(std::memory_order_seq_cst) && hart.seen_code_epoch.load(std::memory_order_acquire) < epoch) {
      if (Clock::now() > deadline) return make_error("hart {} did not reach a slice boundary within 5 s", h);
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }
  return {};
}

// Re-arms dirty logging and returns the pages dirtied since the previous call, once every
// hart has seen the re-arm (so their contents may be read).
Result<std::vector<uint64_t>> collect_dirty(machine::Machine& m) {
  std::vector<uint64_t> words;
  m.memory().fetch_and_clear_dirty(words);
  const uint64_t epoch = m.memory().code_epoch.load(std::memory_order_seq_cst);
  if (auto r = wait_harts_synced(m, epoch); !r) return std::unexpected(r.error());
  std::vector<uint64_t> pages;
  for (uint64_t w = 0; w < words.size(); ++w) {
    for (uint64_t b = words[w]; b != 0; b &= b - 1) pages.push_back(w * 64 + static_cast<uint64_t>(__builtin_ctzll(b)));
  }
  return pages;
}

struct Sender {
  int fd;
  MigrateProgress& progress;
  const MigrateOptions& opt;
  std::span<const uint8_t> ram;
  Clock::time_point started = Clock::now();
  uint64_t throttle_bytes = 0;
  Clock::time_point throttle_t0 = Clock::now();

  Result<void> send(Kind kind, std::span<const uint8_t> bytes) {
    if (auto r = send_msg(fd, kind, bytes, &progress.cancel, &progress.bytes_sent); !r) return r;
    if (opt.bandwidth_mbps > 0) {
      // --bandwidth: sleep so the average since the round began stays under the limit.
      throttle_bytes += bytes.size();
      const double should_ms = throttle_bytes / (opt.bandwidth_mbps * 1048576.0) * 1000.0;
      const double is_ms = ms_since(throttle_t0);
      const auto until = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                            std::chrono::duration<double, std::milli>(std::max(0.0, should_ms - is_ms)));
      while (Clock::now() < until && !progress.cancel.load()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return {};
  }

  // RAM records for `pages` (sorted), in runs of consecutive pages, into `w`; PAGES messages
  // go out whenever `w` passes kMessageTarget (unless `final`, when all stay in `w`).
  Result<void> add_pages(StreamWriter& w, const std::vector<uint64_t>& pages, bool final) {
    size_t i = 0;
    while (i < pages.size()) {
      if (progress.cancel.load()) return make_error("cancelled");
      size_t j = i + 1;
      while (j < pages.size() && pages[j] == pages[j - 1] + 1 && j - i < kPagesPerBatch) ++j;
      add_ram_pages(w, ram, pages[i], static_cast<uint32_t>(j - i));
      i = j;
      if (!final && w.size() >= kMessageTarget) {
        auto bytes = w.finish();
        if (auto r = send(Kind::kPages, bytes); !r) return r;
      }
    }
    return {};
  }
};

Result<int> connect_to(const MigrateOptions& opt, const std::atomic<bool>& cancel) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(opt.port);
  // Numeric addresses only: name resolution would need files and sockets the sandbox keeps out.
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  const std::string host = opt.host == "localhost" ? "127.0.0.1" : opt.host;
  if (int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0)
    return make_error("'{}' is not an IPv4 address: {}", opt.host, ::gai_strerror(rc));
  Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (s.fd < 0) {
    ::freeaddrinfo(res);
    return make_error("socket: {}", std::strerror(errno));
  }
  const int rc = ::connect(s.fd, res->ai_addr, res->ai_addrlen);
  ::freeaddrinfo(res);
  if (rc != 0 && errno != EINPROGRESS) return make_error("connecting to {}:{}: {}", opt.host, opt.port, std::strerror(errno));
  if (!wait_fd(s.fd, POLLOUT, 10'000, &cancel)) return make_error("connecting to {}:{}: {}", opt.host, opt.port, std::strerror(errno));
  int err = 0;
  socklen_t el = sizeof err;
  ::getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &err, &el);
  if (err != 0) return make_error("connecting to {}:{}: {}", opt.host, opt.port, std::strerror(err));
  int one = 1;
  ::setsockopt(s.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  const int fd = s.fd;
  s.fd = -1;
  return fd;
}

template <typename Fn>
void for_each_disk(machine::Machine& m, Fn fn) {
  for (size_t slot = 0; slot < m.virtio_count(); ++slot) {
    if (auto* blk = dynamic_cast<devices::VirtioBlk*>(&m.virtio(slot).device())) fn(*blk);
  }
}

// Takes back the disk locks handed to a destination that then failed: it may still be
// letting go of them (destroying the domain it built), so retry for a while.
void relock_disks(machine::Machine& m) {
  for_each_disk(m, [](devices::VirtioBlk& blk) {
    Result<void> r;
    for (int i = 0; i < 100; ++i) {
      r = blk.relock_image();
      if (r) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    spdlog::warn("migrate: {}; the domain runs on without it", r.error().message);
  });
}

Result<void> check_migratable(hv::Domain& d) {
  if (d.config().vtpm) return make_error("domain '{}': device tpm-tis (a vTPM) cannot be migrated yet", d.name());
  StreamWriter probe;
  machine::Machine& m = d.machine();
  for (size_t slot = 0; slot < m.virtio_count(); ++slot) {
    if (auto r = add_virtio(probe, static_cast<uint32_t>(slot), m.virtio(slot)); !r)
      return make_error("domain '{}': {}", d.name(), r.error().message);
  }
  return {};
}

// The pre-copy rounds, stop-and-copy, READY/COMMIT. On failure before COMMIT the caller
// resumes the domain (`paused` tells whether we paused it).
Result<void> run_source(hv::DomainManager& manager, uint32_t id, hv::Domain& dom, const MigrateOptions& opt,
                        MigrateProgress& progress, int fd, bool& paused, bool& committed) {
  const auto deadline = Clock::now() + std::chrono::duration<double>(opt.timeout_s);
  const auto timed_out = [&] { return Clock::now() > deadline; };
  machine::Machine& m = dom.machine();
  if (auto r = auth_source(fd, opt.token, &progress.cancel); !r) return r;
  {
    StreamWriter w;
    const std::string config = encode_config(dom.config());
    w.add(RecordType::kConfig, 0, std::span(reinterpret_cast<const uint8_t*>(config.data()), config.size()));
    add_ram_info(w, RamInfo{m.ram().size(), kPageSize});
    auto bytes = w.finish();
    if (auto r = send_msg(fd, Kind::kConfig, bytes, &progress.cancel, &progress.bytes_sent); !r) return r;
    if (auto r = expect_msg(fd, Kind::kAccept, &progress.cancel, kIdleTimeoutMs); !r) return std::unexpected(r.error());
  }
  progress.phase.store(MigratePhase::kPrecopy);
  Sender sender{fd, progress, opt, m.ram()};
  const uint64_t total_pages = m.ram().size() / kPageSize;
  m.memory().start_dirty_log();
  if (auto r = wait_harts_synced(m, m.memory().code_epoch.load()); !r) return r;
  std::vector<uint64_t> pages(total_pages);
  for (uint64_t i = 0; i < total_pages; ++i) pages[i] = i;
  uint64_t best = UINT64_MAX;
  unsigned stalled = 0;
  double bytes_per_page = kPageSize;
  for (unsigned round = 0;; ++round) {
    progress.round.store(round);
    const auto t0 = Clock::now();
    const uint64_t sent0 = progress.bytes_sent.load();
    sender.throttle_bytes = 0;
    sender.throttle_t0 = t0;
    StreamWriter w;
    if (auto r = sender.add_pages(w, pages, false); !r) return r;
    if (w.size() > kHeaderSize) {
      auto bytes = w.finish();
      if (auto r = sender.send(Kind::kPages, bytes); !r) return r;
    }
    if (auto r = send_msg(fd, Kind::kSync, {}, &progress.cancel, &progress.bytes_sent); !r) return r;
    if (auto r = expect_msg(fd, Kind::kSynced, &progress.cancel, kIdleTimeoutMs); !r) return std::unexpected(r.error());
    const double secs = std::max(ms_since(t0), 0.1) / 1000.0;
    const uint64_t sent = progress.bytes_sent.load() - sent0;
    if (!pages.empty()) bytes_per_page = static_cast<double>(sent) / static_cast<double>(pages.size());
    const double bw = static_cast<double>(sent) / secs;  // bytes per second
    if (sent > (1u << 20)) progress.bandwidth_mibps.store(bw / 1048576.0);
    auto dirty = collect_dirty(m);
    if (!dirty) return std::unexpected(dirty.error());
    pages = std::move(*dirty);
    progress.dirty_pages.store(pages.size());
    const double rate = progress.bandwidth_mibps.load() * 1048576.0;
    const double est_ms = rate > 0 ? pages.size() * bytes_per_page / rate * 1000.0 : 0;
    spdlog::debug("migrate {}: round {} sent {} bytes in {:.1f} ms; {} pages dirty, ~{:.1f} ms to send", dom.name(),
                  round, sent, secs * 1000, pages.size(), est_ms);
    if (est_ms <= opt.downtime_ms) break;
    if (pages.size() < best) {
      best = pages.size();
      stalled = 0;
    } else if (++stalled >= kRoundsWithoutProgress) {
      progress.gave_up.store(true);
      return make_error(
          "the guest dirties memory faster than the link carries it: {} rounds without progress ({} pages dirty after "
          "a round of {:.0f} ms, ~{:.0f} ms to send them, budget {:.0f} ms); migration cancelled",
          stalled, pages.size(), secs * 1000, est_ms, opt.downtime_ms);
    }
    if (round + 1 >= kMaxRounds) {
      progress.gave_up.store(true);
      return make_error("no convergence after {} rounds; migration cancelled", kMaxRounds);
    }
    if (timed_out()) {
      progress.gave_up.store(true);
      return make_error("timeout of {} s reached before the memory converged; migration cancelled", opt.timeout_s);
    }
    if (progress.cancel.load()) return make_error("cancelled");
  }
  // Stop and copy.
  progress.phase.store(MigratePhase::kStopCopy);
  const auto pause_t0 = Clock::now();
  if (dom.state() == hv::DomainState::kRunning) {
    if (auto r = manager.pause(id); !r) return r;
    paused = true;
  }
  auto last = collect_dirty(m);
  if (!last) return std::unexpected(last.error());
  // Shared storage: written back and unlocked, so the destination can open the images.
  for_each_disk(m, [](devices::VirtioBlk& blk) { blk.unlock_image(); });
  // Pages dirtied after the previous collection plus those it found.
  std::vector<uint64_t> final_pages = pages;
  final_pages.insert(final_pages.end(), last->begin(), last->end());
  std::sort(final_pages.begin(), final_pages.end());
  final_pages.erase(std::unique(final_pages.begin(), final_pages.end()), final_pages.end());
  StreamWriter w;
  if (auto r = sender.add_pages(w, final_pages, true); !r) return r;
  for (unsigned h = 0; h < m.hart_count(); ++h) add_hart(w, m.hart(h));
  add_clint(w, m);
  add_plic(w, m.plic());
  add_uart(w, m.uart());
  add_test_device(w);
  for (size_t slot = 0; slot < m.virtio_count(); ++slot) {
    if (auto r = add_virtio(w, static_cast<uint32_t>(slot), m.virtio(slot)); !r) return r;
  }
  add_hsm(w, m);
  add_clock(w, m.mtime());
  auto bytes = w.finish();
  if (bytes.size() > kMaxMessage) return make_error("the final round ({} bytes) exceeds a message", bytes.size());
  const double build_ms = ms_since(pause_t0);
  if (auto r = send_msg(fd, Kind::kFinal, bytes, &progress.cancel, &progress.bytes_sent); !r) return r;
  const double sent_ms = ms_since(pause_t0);
  if (auto r = expect_msg(fd, Kind::kReady, &progress.cancel, kIdleTimeoutMs); !r) return std::unexpected(r.error());
  spdlog::info("migrate {}: final round {} pages, {} bytes: built at {:.1f} ms, sent at {:.1f} ms, READY at {:.1f} ms",
               dom.name(), final_pages.size(), bytes.size(), build_ms, sent_ms, ms_since(pause_t0));
  if (progress.cancel.load()) return make_error("cancelled");
  // The point of no return: from here the destination may run the guest.
  progress.phase.store(MigratePhase::kCommitting);
  committed = true;
  if (auto r = send_msg(fd, Kind::kCommit, {}, nullptr, &progress.bytes_sent); !r) return r;
  if (auto r = expect_msg(fd, Kind::kStarted, nullptr, kIdleTimeoutMs); !r) return std::unexpected(r.error());
  progress.downtime_ms.store(ms_since(pause_t0));
  return {};
}

// ---- destination ----

struct Incoming {
  std::vector<uint8_t> config_msg;  // CONFIG + RAM_INFO stream (records point into it)
  std::vector<Record> config_records;
  hv::DomainConfig config;
  uint8_t* image = nullptr;  // received RAM
  uint64_t ram_size = 0;
  ~Incoming() {
    if (image != nullptr) ::munmap(image, ram_size);
  }
};

Result<void> receive_config(hv::DomainManager& manager, Incoming& in, Message&& msg) {
  in.config_msg = std::move(msg.payload);
  auto records = parse_stream(in.config_msg);
  if (!records) return std::unexpected(records.error());
  if (records->size() != 2 || records->at(0).type != static_cast<uint32_t>(RecordType::kConfig) ||
      records->at(1).type != static_cast<uint32_t>(RecordType::kRamInfo))
    return make_error("CONFIG message: expected CONFIG and RAM_INFO records only");
  in.config_records = std::move(*records);
  const Record& cr = in.config_records[0];
  auto config = decode_config(std::string_view(reinterpret_cast<const char*>(cr.payload.data()), cr.payload.size()));
  if (!config) return make_error("{}: {}", record_context(cr), config.error().message);
  in.config = std::move(*config);
  if (auto id = manager.lookup(in.config.name); id)
    return make_error("a domain named '{}' already exists here", in.config.name);
  in.ram_size = in.config.memory_mib * 1048576ull;
  if (auto r = check_ram_info(in.config_records[1], in.ram_size); !r) return r;
  void* p = ::mmap(nullptr, in.ram_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return make_error("cannot reserve {} MiB for the incoming RAM: {}", in.config.memory_mib, std::strerror(errno));
  in.image = static_cast<uint8_t*>(p);
  return {};
}

Result<void> receive_pages(Incoming& in, std::span<const uint8_t> stream, bool ram_only) {
  auto records = parse_stream(stream);
  if (!records) return std::unexpected(records.error());
  std::vector<const Record*> ram;
  for (const Record& r : *records) {
    if (r.type == static_cast<uint32_t>(RecordType::kRam)) {
      ram.push_back(&r);
    } else if (ram_only && r.type != static_cast<uint32_t>(RecordType::kEnd)) {
      return make_error("{}: only RAM records may appear in a PAGES message", record_context(r));
    }
  }
  return restore_ram_records(ram, std::span(in.image, in.ram_size));
}

}  // namespace

const char* to_string(MigratePhase p) {
  switch (p) {
    case MigratePhase::kConnecting: return "connecting";
    case MigratePhase::kPrecopy: return "precopy";
    case MigratePhase::kStopCopy: return "stop-and-copy";
    case MigratePhase::kCommitting: return "committing";
    case MigratePhase::kDone: return "done";
    case MigratePhase::kFailed: return "failed";
    case MigratePhase::kCancelled: return "cancelled";
    case MigratePhase::kUndecided: return "undecided";
  }
  return "unknown";
}

Result<std::string> read_token_file(const std::string& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) return make_error("migration token file {}: {}", path, std::strerror(errno));
  if (st.st_mode & (S_IRWXG | S_IRWXO))
    return make_error("migration token file {} is readable by others (mode {:o}); chmod 600 it", path, st.st_mode & 0777);
  std::ifstream f(path, std::ios::binary);
  if (!f) return make_error("migration token file {}: cannot open it", path);
  std::stringstream ss;
  ss << f.rdbuf();
  std::string token = ss.str();
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r')) token.pop_back();
  if (token.size() < 16) return make_error("migration token file {}: the token must be at least 16 bytes", path);
  return token;
}

Result<void> migrate_domain(hv::DomainManager& manager, uint32_t id, const MigrateOptions& opt, MigrateProgress& progress) {
  const auto t0 = Clock::now();
  auto dom = manager.get(id);
  if (!dom) return make_error("no domain with id {}", id);
  const hv::DomainState before = dom->state();
  if (before != hv::DomainState::kRunning && before != hv::DomainState::kPaused)
    return make_error("domain {} is {}; only a running or paused domain can be migrated", id, hv::to_string(before));
  if (auto r = check_migratable(*dom); !r) return r;
  auto fd = connect_to(opt, progress.cancel);
  if (!fd) return std::unexpected(fd.error());
  Fd sock(*fd);
  progress.fd.store(*fd);
  bool paused = false, committed = false;
  auto r = run_source(manager, id, *dom, opt, progress, *fd, paused, committed);
  progress.fd.store(-1);
  dom->machine().memory().stop_dirty_log();
  progress.total_ms.store(ms_since(t0));
  if (!r) {
    if (committed) {
      // After COMMIT the destination may be running it: never risk two running copies.
      return make_error("{} after the commit: the domain is left paused here; check whether it runs on {} and "
                        "destroy or unpause this copy accordingly",
                        r.error().message, opt.host);
    }
    if (progress.phase.load() == MigratePhase::kStopCopy) relock_disks(dom->machine());
    if (paused) (void)manager.unpause(id);
    return r;
  }
  if (auto d = manager.destroy(id); !d) spdlog::warn("migrate: destroying the source copy: {}", d.error().message);
  return {};
}

Result<uint32_t> receive_migration(hv::DomainManager& manager, int fd, const std::string& token) {
  if (auto r = auth_destination(fd, token); !r) return make_error("authentication failed: {}", r.error().message);
  Incoming in;
  std::optional<uint32_t> built;
  const auto fail = [&](const Error& e) -> Result<uint32_t> {
    if (built) (void)manager.destroy(*built);
    (void)send_text(fd, Kind::kError, e.message);
    return std::unexpected(e);
  };
  auto first = recv_msg(fd, nullptr, kIdleTimeoutMs);
  if (!first) return fail(first.error());
  if (first->kind != static_cast<uint32_t>(Kind::kConfig))
    return fail(Error{fmt::format("expected CONFIG first, got {}", kind_name(first->kind))});
  if (auto r = receive_config(manager, in, std::move(*first)); !r) return fail(r.error());
  if (auto r = send_msg(fd, Kind::kAccept, {}, nullptr); !r) return fail(r.error());
  std::vector<uint8_t> final_msg;
  std::vector<Record> final_records;
  for (;;) {
    auto msg = recv_msg(fd, nullptr, kIdleTimeoutMs);
    if (!msg) return fail(msg.error());
    if (msg->kind == static_cast<uint32_t>(Kind::kPages)) {
      if (auto r = receive_pages(in, msg->payload, true); !r) return fail(r.error());
      continue;
    }
    if (msg->kind == static_cast<uint32_t>(Kind::kSync)) {
      if (!msg->payload.empty()) return fail(Error{"SYNC message: unexpected payload"});
      if (auto r = send_msg(fd, Kind::kSynced, {}, nullptr); !r) return fail(r.error());
      continue;
    }
    if (msg->kind != static_cast<uint32_t>(Kind::kFinal))
      return fail(Error{fmt::format("unexpected {} message during pre-copy", kind_name(msg->kind))});
    final_msg = std::move(msg->payload);
    auto records = parse_stream(final_msg);
    if (!records) return fail(records.error());
    final_records = std::move(*records);
    break;
  }
  // CONFIG and RAM_INFO from the first message, then the final one's RAM and devices: the
  // order load_domain_state insists on.
  std::vector<Record> all = in.config_records;
  all.insert(all.end(), final_records.begin(), final_records.end());
  const auto build_t0 = Clock::now();
  double copy_ms = 0;
  auto id = manager.create_prepared(
      in.config,
      [&](hv::Domain& d) -> Result<void> {
        auto ram = d.machine().ram();
        if (ram.size() != in.ram_size) return make_error("RAM size mismatch");
        const auto c0 = Clock::now();
        // The received pages become the domain's RAM by moving the mapping (same flags as
        // Machine's: private anonymous), not by copying: a copy faults in every page of the
        // fresh RAM, seconds on a loaded host, all of it downtime. The kernel the build just
        // loaded is dropped with the old mapping; round 0 covered every page.
        if (::mremap(in.image, in.ram_size, in.ram_size, MREMAP_MAYMOVE | MREMAP_FIXED, ram.data()) != MAP_FAILED) {
          in.image = nullptr;
        } else {
          std::memcpy(ram.data(), in.image, in.ram_size);
        }
        copy_ms = ms_since(c0);
        return load_domain_state(d, all);
      },
      true);
  if (!id) return fail(id.error());
  built = *id;
  spdlog::info("migration: domain {} built paused in {:.1f} ms (RAM copy {:.1f} ms)", *id, ms_since(build_t0), copy_ms);
  if (auto r = send_msg(fd, Kind::kReady, {}, nullptr); !r) return fail(r.error());
  auto commit = recv_msg(fd, nullptr, kIdleTimeoutMs);
  if (!commit) return fail(commit.error());
  if (commit->kind != static_cast<uint32_t>(Kind::kCommit))
    return fail(Error{fmt::format("expected COMMIT, got {}", kind_name(commit->kind))});
  if (auto r = manager.unpause(*id); !r) return fail(r.error());
  (void)send_msg(fd, Kind::kStarted, {}, nullptr);
  return *id;
}

MigrationListener::~MigrationListener() { stop(); }

Result<void> MigrationListener::start(const std::string& addr_port) {
  const auto colon = addr_port.rfind(':');
  if (colon == std::string::npos) return make_error("--migrate-listen wants ADDR:PORT, not '{}'", addr_port);
  std::string addr = addr_port.substr(0, colon);
  if (addr == "localhost") addr = "127.0.0.1";
  unsigned long port = 0;
  try {
    size_t used = 0;
    port = std::stoul(addr_port.substr(colon + 1), &used);
    if (used != addr_port.size() - colon - 1 || port > 65535) throw std::out_of_range("port");
  } catch (const std::exception&) {
    return make_error("--migrate-listen: '{}' is not a port number", addr_port.substr(colon + 1));
  }
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  if (::inet_pton(AF_INET, addr.c_str(), &sa.sin_addr) != 1)
    return make_error("--migrate-listen: '{}' is not an IPv4 address", addr);
  m_listen_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (m_listen_fd < 0) return make_error("--migrate-listen: socket: {}", std::strerror(errno));
  int one = 1;
  ::setsockopt(m_listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(m_listen_fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(m_listen_fd, 4) != 0)
    return make_error("--migrate-listen {}: {}", addr_port, std::strerror(errno));
  socklen_t len = sizeof sa;
  ::getsockname(m_listen_fd, reinterpret_cast<sockaddr*>(&sa), &len);
  m_port = ntohs(sa.sin_port);
  if (::pipe2(m_wake, O_CLOEXEC) != 0) return make_error("--migrate-listen: pipe: {}", std::strerror(errno));
  m_thread = std::thread([this] { run(); });
  return {};
}

void MigrationListener::stop() {
  if (m_thread.joinable()) {
    (void)!::write(m_wake[1], "x", 1);
    // A migration being received ends at once (and is discarded) rather than at its timeout.
    if (const int c = m_conn_fd.load(); c >= 0) ::shutdown(c, SHUT_RDWR);
    m_thread.join();
  }
  for (int* f : {&m_listen_fd, &m_wake[0], &m_wake[1]}) {
    if (*f >= 0) ::close(*f);
    *f = -1;
  }
}

void MigrationListener::run() {
  // Builds domains like an API thread (and so spawns their device I/O threads).
  sandbox::restrict_thread_or_abort(sandbox::ThreadClass::kApi);
  for (;;) {
    pollfd p[2] = {{m_listen_fd, POLLIN, 0}, {m_wake[0], POLLIN, 0}};
    if (::poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      spdlog::error("migration listener: poll: {}", std::strerror(errno));
      return;
    }
    if (p[1].revents != 0) return;
    if (!(p[0].revents & POLLIN)) continue;
    sockaddr_in peer{};
    socklen_t len = sizeof peer;
    Fd conn(::accept4(m_listen_fd, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC));
    if (conn.fd < 0) continue;
    char ip[INET_ADDRSTRLEN] = "?";
    ::inet_ntop(AF_INET, &peer.sin_addr, ip, sizeof ip);
    const auto t0 = Clock::now();
    m_conn_fd.store(conn.fd);
    auto r = receive_migration(m_manager, conn.fd, m_token);
    m_conn_fd.store(-1);
    if (r) spdlog::info("migration from {}: domain {} received and running ({:.0f} ms)", ip, *r, ms_since(t0));
    else spdlog::warn("migration from {} refused: {}", ip, r.error().message);
  }
}

}  // namespace vigil::migrate
