// Fuzz target `migrate_wire`: the destination side of a live migration (src/migrate/live.h,
// receive_migration) fed by a peer that knows the token but is hostile: the 16-byte message
// headers (kind, reserved word, length), the order of messages (CONFIG, PAGES, SYNC, FINAL,
// COMMIT) and their payloads, as vigild --migrate-listen reads them from TCP.
//
// Input: u8 mode, then
//   mode even: the raw bytes the source sends after the handshake;
//   mode odd:  messages without headers, each u8 kind | u32 length | payload, which the target
//              frames with a well-formed header (reserved word zero, the true length), so that
//              mutations reach the message state machine and the payload readers.
// The harness does the source's half of the handshake itself (auth_source), then writes the
// bytes through a socketpair while it drains the replies, and closes its end: the receiver
// sees the end of the input as a cut link.
//
// Invariants: a refusal is a non-empty sentence; a domain is left only when the whole
// protocol ran to COMMIT (then it runs, and the target destroys it); nothing leaks or is
// touched outside its buffers (ASan).
//
// VIGIL_FUZZ_TRACE=1 prints each input's outcome (the seeds say "migrated").
//
// Seeds: VIGIL_MIGRATE_WIRE_SEED_OUT=DIR fuzz_migrate_wire writes a whole migration of a fresh
// 16 MiB domain in both modes to DIR/raw and DIR/messages and exits.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "fuzz_domain.h"
#include "fuzz_input.h"
#include "hv/domain.h"
#include "hv/domain_manager.h"
#include "migrate/live.h"
#include "migrate/snapshot.h"
#include "migrate/stream.h"

namespace {

using namespace vigil::migrate;

constexpr const char* kToken = "fuzz-token-0123456789";
constexpr uint32_t kConfig = 1, kPages = 3, kFinal = 4, kCommit = 6, kSync = 9;

vigil::hv::DomainConfig config() { return vigil::fuzz::small_domain_config("migrate", 1); }

vigil::hv::DomainManager& manager() {
  static auto* m = new vigil::hv::DomainManager(1);
  return *m;
}

void header(std::vector<uint8_t>& out, uint32_t kind, uint64_t length) {
  uint8_t h[16];
  store_le(h, kind, 4);
  store_le(h + 4, 0, 4);
  store_le(h + 8, length, 8);
  out.insert(out.end(), h, h + sizeof h);
}

// The source side: handshake, then `bytes`, reading replies all along; closes its end.
void play_source(int fd, std::span<const uint8_t> bytes) {
  if (!auth_source(fd, kToken, nullptr)) {
    ::close(fd);
    return;
  }
  size_t sent = 0;
  bool write_open = true;
  uint8_t sink[4096];
  for (;;) {
    if (write_open && sent == bytes.size()) {
      ::shutdown(fd, SHUT_WR);
      write_open = false;
    }
    pollfd p{fd, static_cast<short>(POLLIN | (write_open ? POLLOUT : 0)), 0};
    if (::poll(&p, 1, 10'000) <= 0) break;
    if (p.revents & POLLIN) {
      const ssize_t n = ::recv(fd, sink, sizeof sink, MSG_DONTWAIT);
      if (n == 0) break;  // the receiver is done
      if (n < 0 && errno != EAGAIN && errno != EINTR) break;
    }
    if (write_open && (p.revents & POLLOUT)) {
      const ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0 && errno != EAGAIN && errno != EINTR) write_open = false;
      if (n > 0) sent += static_cast<size_t>(n);
    }
    if (p.revents & (POLLERR | POLLHUP)) break;
  }
  ::close(fd);
}

void write_seeds(const std::string& dir) {
  auto d = vigil::hv::Domain::create(1, config());
  if (!d) std::abort();
  auto s = snapshot_domain(**d);
  if (!s) std::abort();
  auto recs = parse_stream(*s);
  if (!recs) std::abort();
  StreamWriter cfg, pages, fin;
  for (const Record& r : *recs) {
    const auto t = static_cast<RecordType>(r.type);
    if (t == RecordType::kEnd) continue;
    if (t == RecordType::kConfig || t == RecordType::kRamInfo) {
      cfg.add_raw(r.type, r.instance, r.payload);
    } else {
      if (t == RecordType::kRam) pages.add_raw(r.type, r.instance, r.payload);
      fin.add_raw(r.type, r.instance, r.payload);
    }
  }
  const std::vector<std::pair<uint32_t, std::vector<uint8_t>>> msgs = {
      {kConfig, cfg.finish()}, {kPages, pages.finish()}, {kSync, {}}, {kFinal, fin.finish()}, {kCommit, {}}};
  std::vector<uint8_t> raw{0}, framed{1};
  for (const auto& [kind, payload] : msgs) {
    header(raw, kind, payload.size());
    raw.insert(raw.end(), payload.begin(), payload.end());
    framed.push_back(static_cast<uint8_t>(kind));
    uint8_t len[4];
    store_le(len, payload.size(), 4);
    framed.insert(framed.end(), len, len + 4);
    framed.insert(framed.end(), payload.begin(), payload.end());
  }
  for (auto [name, bytes] : {std::pair{"/raw", &raw}, {"/messages", &framed}}) {
    std::ofstream(dir + name, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes->data()), static_cast<std::streamsize>(bytes->size()));
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* out = std::getenv("VIGIL_MIGRATE_WIRE_SEED_OUT")) {
    write_seeds(out);
    std::exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vigil::fuzz::Input in(data, size);
  const bool framed = (in.u8() & 1) != 0;
  std::vector<uint8_t> built;
  std::span<const uint8_t> bytes = in.rest();
  if (framed) {
    vigil::fuzz::Input m(bytes.data(), bytes.size());
    while (!m.empty()) {
      const uint32_t kind = m.u8();
      const uint32_t length = m.u32();
      auto payload = m.bytes(length);
      header(built, kind, payload.size());
      built.insert(built.end(), payload.begin(), payload.end());
    }
    bytes = built;
  }
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) std::abort();
  std::thread source([&] { play_source(sv[0], bytes); });
  auto id = receive_migration(manager(), sv[1], kToken);
  ::close(sv[1]);
  source.join();
  auto& m = manager();
  if (std::getenv("VIGIL_FUZZ_TRACE")) std::fprintf(stderr, "migrate_wire: %s\n", id ? "migrated" : id.error().message.c_str());
  if (id) {
    FUZZ_CHECK(m.get(*id) != nullptr);
    FUZZ_CHECK(m.destroy(*id).has_value());
  } else {
    FUZZ_CHECK(!id.error().message.empty());
    FUZZ_CHECK(!m.lookup("fuzz").has_value());  // a refused migration leaves nothing behind
  }
  return 0;
}
