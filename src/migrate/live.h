// Live migration between two vigild processes over TCP (issue 11, part 3).
//
// Transport: one TCP connection. Before anything else both sides prove they hold the same
// shared token (vigild --migrate-token-file) by a challenge-response, and the token itself
// never crosses the wire:
//   source -> dest   "VIGILMIG" | u32 version | 32-byte nonce Ns
//   dest   -> source 32-byte nonce Nd | HMAC-SHA256(token, "dest" | Ns | Nd)
//   source -> dest   HMAC-SHA256(token, "source" | Nd | Ns)
//   dest   -> source "OK"
// A peer that fails (or is slower than kAuthTimeout) is dropped with a log line; nothing it
// sent reaches the stream parser. The connection is not encrypted (see the README).
//
// After that, messages: u32 kind | u32 zero | u64 length | payload (length <= kMaxMessage).
// Payloads of CONFIG, PAGES and FINAL are complete snapshot streams (stream.h), checked by
// the same hostile reader as a file:
//   source -> dest  CONFIG  (CONFIG, RAM_INFO, END)       dest answers ACCEPT or ERROR
//   source -> dest  PAGES*  (RAM records, END)            pre-copy rounds, no answer
//   source -> dest  SYNC                                  end of a round: dest answers SYNCED
//                                                        once it applied everything before it
//   source -> dest  FINAL   (RAM, every device, END)      dest builds the domain paused,
//                                                        answers READY or ERROR
//   source -> dest  COMMIT                                dest unpauses, answers STARTED
// Any failure before COMMIT: the destination discards everything (the domain it built is
// destroyed), the source stops dirty logging and resumes its domain. If the link breaks
// after COMMIT is sent and before STARTED arrives, the source cannot know whether the
// destination runs the guest: it leaves its copy paused (never two running copies) and says
// so; `vigil list` on both hosts tells which one runs.
//
// Pre-copy policy: round 0 sends all RAM with dirty logging on; each later round sends the
// pages dirtied during the previous one, until what is left would take no longer than the
// downtime budget at the bandwidth measured so far. Then the domain is paused, the last
// dirty pages and all device state go in FINAL. When the guest dirties memory faster than
// the link carries it, the migration is cancelled (source keeps running) after
// kRoundsWithoutProgress rounds in a row that did not shrink the dirty set, or after
// kMaxRounds rounds, or at the timeout.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "base/error.h"
#include "hv/domain_manager.h"

namespace vigil::migrate {

inline constexpr unsigned kRoundsWithoutProgress = 5;
inline constexpr unsigned kMaxRounds = 30;
inline constexpr uint64_t kMaxMessage = 80ull << 20;
inline constexpr uint16_t kDefaultMigratePort = 8002;

// Reads a token file: its content with trailing newlines dropped; refused when empty, shorter
// than 16 bytes, or readable by group or others.
Result<std::string> read_token_file(const std::string& path);

struct MigrateOptions {
  std::string host = "127.0.0.1";
  uint16_t port = kDefaultMigratePort;
  double downtime_ms = 300;  // QEMU's default downtime-limit
  double bandwidth_mbps = 0;  // MiB/s; 0: unlimited
  double timeout_s = 600;
  std::string token;
};

enum class MigratePhase { kConnecting, kPrecopy, kStopCopy, kCommitting, kDone, kFailed, kCancelled, kUndecided };
const char* to_string(MigratePhase p);

// What `migrate-status` and `vigil list -l` show; updated by the migration thread.
struct MigrateProgress {
  std::atomic<MigratePhase> phase{MigratePhase::kConnecting};
  std::atomic<unsigned> round{0};
  std::atomic<uint64_t> bytes_sent{0};
  std::atomic<uint64_t> dirty_pages{0};  // left after the last round
  std::atomic<double> bandwidth_mibps{0};
  std::atomic<double> downtime_ms{0};  // pause to STARTED (the destination running)
  std::atomic<double> total_ms{0};
  std::atomic<bool> cancel{false};
  std::atomic<bool> gave_up{false};  // cancelled by the policy (no convergence)
  std::atomic<int> fd{-1};  // the socket, so a cancel can shut it down

  std::mutex mutex;
  std::string error;  // when phase is kFailed / kCancelled / kUndecided
  void set_error(MigratePhase p, std::string message) {
    std::lock_guard lock(mutex);
    error = std::move(message);
    phase.store(p);
  }
  std::string get_error() {
    std::lock_guard lock(mutex);
    return error;
  }
};

// Migrates domain `id` to the destination in `opt` (blocking: run it on its own thread).
// On success the local domain is destroyed; on any failure before the commit it runs again.
Result<void> migrate_domain(hv::DomainManager& manager, uint32_t id, const MigrateOptions& opt, MigrateProgress& progress);

// vigild --migrate-listen: accepts authenticated migrations into `manager`, one at a time,
// on its own thread.
class MigrationListener {
 public:
  MigrationListener(hv::DomainManager& manager, std::string token) : m_manager(manager), m_token(std::move(token)) {}
  ~MigrationListener();
  // "ADDR:PORT" (IPv4 literal or "localhost"); the socket is bound before it returns.
  Result<void> start(const std::string& addr_port);
  uint16_t port() const { return m_port; }
  void stop();

 private:
  void run();
  hv::DomainManager& m_manager;
  std::string m_token;
  int m_listen_fd = -1;
  std::atomic<int> m_conn_fd{-1};  // the migration being received, shut down by stop()
  int m_wake[2] = {-1, -1};
  uint16_t m_port = 0;
  std::thread m_thread;
};

// The source's half of the handshake above (exposed for the fuzz target, which plays an
// authenticated but hostile source).
Result<void> auth_source(int fd, const std::string& token, const std::atomic<bool>* cancel);

// One incoming connection, already accepted (exposed for tests): authenticates, receives,
// builds the domain. Returns the new domain's id once it runs.
Result<uint32_t> receive_migration(hv::DomainManager& manager, int fd, const std::string& token);

}  // namespace vigil::migrate
