// The shared-memory fast path of an out-of-process monitor session (remote.h): one page-sized
// slot per vCPU in a sealed memfd that vigild creates and passes to the client over the
// session socket (SCM_RIGHTS, with the {"ready": true} line).
//
// Why: a synchronous event over the socket costs a system call and, for a sleeping reader, a
// wake-up each way; on a virtualized 2-core host that is 11-25 us per round trip, above the
// 10 us target. Through shared memory a vCPU posts the event's JSON text into its slot and
// both sides poll a cache line: no system call while the client is polling.
//
// Protocol (memory_order_seq_cst on the flags, so that "set my flag, then read yours" works
// both ways, as in Dekker's algorithm):
//   vCPU:   writes seq, length and text, then state = kPosted, then ++posted; if the client
//           says it sleeps (client_sleeping), it nudges it with an empty line on the socket.
//           Waits for state == kAnswered: polls for a while, then sets vcpu_sleeping and
//           sleeps on the state word (futex), in slices so it notices a dead session.
//   client: polls `posted` and `socket_bytes`; before it sleeps in poll() on the socket it
//           sets client_sleeping and looks once more. It answers by writing the answer's
//           JSON text and length, then state = kAnswered, and wakes the vCPU if it sleeps.
//   Lines on the socket (asynchronous events, acknowledgements) stay in order with posted
//   events: a vCPU writes what it has buffered before it posts, and `socket_bytes` tells
//   the client how much to read from the socket before it takes a posted event.
//
// The client is not trusted with vigild's memory: the memfd is sealed against shrinking (no
// SIGBUS for vigild), lengths it writes are clamped, an answer is copied out of the slot
// before it is parsed, and a state word it corrupts ends the session.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/error.h"

namespace vigil::monitor::shm {

inline constexpr uint32_t kMagic = 0x4d534756;  // "VGSM"
inline constexpr uint32_t kVersion = 1;
inline constexpr uint32_t kSlotSize = 4096;
inline constexpr uint32_t kMaxSlots = 1024;

enum SlotState : uint32_t { kIdle = 0, kPosted = 1, kAnswered = 2 };

struct alignas(64) Header {
  uint32_t magic;
  uint32_t version;
  uint32_t slots;      // one per vCPU
  uint32_t slot_size;  // kSlotSize
  alignas(64) std::atomic<uint32_t> posted;           // +1 per posted event
  std::atomic<uint32_t> client_sleeping;              // the client waits in poll(): nudge it
  std::atomic<uint32_t> closed;                       // the session ended
  std::atomic<uint64_t> socket_bytes;                 // bytes vigild wrote to the socket so far
};

struct alignas(64) Slot {
  std::atomic<uint32_t> state;           // SlotState; the futex word a vCPU sleeps on
  std::atomic<uint32_t> vcpu_sleeping;   // the vCPU sleeps on `state`: wake it
  std::atomic<uint32_t> length;          // bytes of text: the event's, then the answer's
  uint32_t reserved;
  std::atomic<uint64_t> seq;             // the event's seq
  char text[kSlotSize - 24];
};
static_assert(sizeof(Slot) == kSlotSize);
static_assert(std::atomic<uint64_t>::is_always_lock_free && std::atomic<uint32_t>::is_always_lock_free);

inline constexpr size_t kHeaderSize = 4096;  // the slots start on the second page
inline constexpr size_t kTextCapacity = sizeof(Slot::text);

// A mapped channel (either side). Move-only; unmaps and closes on destruction.
class Channel {
 public:
  // vigild: a new sealed memfd with `slots` slots, mapped.
  static Result<Channel> create(uint32_t slots);
  // The client: maps the memfd it was given (takes ownership of `fd`), after checking its
  // size and header.
  static Result<Channel> map(int fd);
  Channel(Channel&& o) noexcept;
  Channel& operator=(Channel&& o) noexcept;
  Channel(const Channel&) = delete;
  ~Channel();

  int fd() const { return m_fd; }
  Header& header() const { return *reinterpret_cast<Header*>(m_base); }
  uint32_t slots() const { return m_slots; }
  Slot& slot(uint32_t i) const { return reinterpret_cast<Slot*>(m_base + kHeaderSize)[i]; }

  // vCPU side: posts an event (text must fit kTextCapacity).
  void post(uint32_t i, uint64_t seq, std::string_view text) const;
  // Client side: writes an answer into slot `i` and wakes its vCPU if it sleeps. False if
  // the text does not fit (the caller sends it over the socket instead).
  bool answer(uint32_t i, std::string_view text) const;

 private:
  Channel(int fd, char* base, size_t size, uint32_t slots) : m_fd(fd), m_base(base), m_size(size), m_slots(slots) {}
  void release();
  int m_fd = -1;
  char* m_base = nullptr;
  size_t m_size = 0;
  uint32_t m_slots = 0;
};

// Copies `length` (clamped to the slot) bytes of the slot's text: the reader's own copy,
// which the other side can no longer change under it.
std::string read_text(const Slot& s);

// Futex on a word shared between processes (not FUTEX_PRIVATE).
void futex_wait(std::atomic<uint32_t>& word, uint32_t expected, std::chrono::microseconds timeout);
void futex_wake(std::atomic<uint32_t>& word);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

}  // namespace vigil::monitor::shm
