// The shared-memory channel of a monitor session (shm_channel.h).
#include "monitor/shm_channel.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>
#include <utility>

namespace vigil::monitor::shm {

namespace {
size_t channel_size(uint32_t slots) {
  return kHeaderSize + size_t{slots} * kSlotSize;
}
}  // namespace

Result<Channel> Channel::create(uint32_t slots) {
  if (slots == 0 || slots > kMaxSlots) return make_error("a monitor channel needs 1 to {} slots, not {}", kMaxSlots, slots);
  const int fd = ::memfd_create("vigil-monitor", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return make_error("cannot create the monitor's shared memory: {}", std::strerror(errno));
  const size_t size = channel_size(slots);
  // Sized by writing its last byte (vigild's API threads may not ftruncate: that could cut
  // a disk image), then sealed before the client sees it: it cannot shrink the file under
  // vigild's mapping (a SIGBUS in a vCPU thread) nor grow it.
  const char zero = 0;
  if (::pwrite(fd, &zero, 1, static_cast<off_t>(size - 1)) != 1 ||
      ::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    const int e = errno;
    ::close(fd);
    return make_error("cannot size the monitor's shared memory: {}", std::strerror(e));
  }
  void* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    const int e = errno;
    ::close(fd);
    return make_error("cannot map the monitor's shared memory: {}", std::strerror(e));
  }
  // A fresh memfd reads as zeros: every slot kIdle, every counter 0.
  auto* h = new (base) Header{};
  h->magic = kMagic;
  h->version = kVersion;
  h->slots = slots;
  h->slot_size = kSlotSize;
  return Channel(fd, static_cast<char*>(base), size, slots);
}

Result<Channel> Channel::map(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0 || st.st_size < static_cast<off_t>(kHeaderSize)) {
    ::close(fd);
    return make_error("the monitor's shared memory is missing or too small");
  }
  const int seals = ::fcntl(fd, F_GET_SEALS);
  const auto size = static_cast<size_t>(st.st_size);
  void* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    const int e = errno;
    ::close(fd);
    return make_error("cannot map the monitor's shared memory: {}", std::strerror(e));
  }
  const auto* h = static_cast<const Header*>(base);
  Channel c(fd, static_cast<char*>(base), size, 0);
  if (h->magic != kMagic || h->version != kVersion || h->slot_size != kSlotSize || h->slots == 0 ||
      h->slots > kMaxSlots || channel_size(h->slots) != size || seals < 0 || !(seals & F_SEAL_SHRINK)) {
    return make_error("the monitor's shared memory is not a version-{} Vigil channel", kVersion);
  }
  c.m_slots = h->slots;
  return c;
}

Channel::Channel(Channel&& o) noexcept
    : m_fd(std::exchange(o.m_fd, -1)),
      m_base(std::exchange(o.m_base, nullptr)),
      m_size(std::exchange(o.m_size, 0)),
      m_slots(std::exchange(o.m_slots, 0)) {}

Channel& Channel::operator=(Channel&& o) noexcept {
  if (this != &o) {
    release();
    m_fd = std::exchange(o.m_fd, -1);
    m_base = std::exchange(o.m_base, nullptr);
    m_size = std::exchange(o.m_size, 0);
    m_slots = std::exchange(o.m_slots, 0);
  }
  return *this;
}

Channel::~Channel() {
  release();
}

void Channel::release() {
  if (m_base) ::munmap(m_base, m_size);
  if (m_fd >= 0) ::close(m_fd);
  m_base = nullptr;
  m_fd = -1;
}

void Channel::post(uint32_t i, uint64_t seq, std::string_view text) const {
  Slot& s = slot(i);
  const size_t n = std::min(text.size(), kTextCapacity);
  std::memcpy(s.text, text.data(), n);
  s.length.store(static_cast<uint32_t>(n), std::memory_order_relaxed);
  s.seq.store(seq, std::memory_order_relaxed);
  s.vcpu_sleeping.store(0, std::memory_order_relaxed);
  s.state.store(kPosted, std::memory_order_seq_cst);
  header().posted.fetch_add(1, std::memory_order_seq_cst);
}

bool Channel::answer(uint32_t i, std::string_view text) const {
  if (text.size() > kTextCapacity) return false;
  Slot& s = slot(i);
  std::memcpy(s.text, text.data(), text.size());
  s.length.store(static_cast<uint32_t>(text.size()), std::memory_order_relaxed);
  s.state.store(kAnswered, std::memory_order_seq_cst);
  if (s.vcpu_sleeping.load(std::memory_order_seq_cst)) futex_wake(s.state);
  return true;
}

std::string read_text(const Slot& s) {
  const size_t n = std::min<size_t>(s.length.load(std::memory_order_relaxed), kTextCapacity);
  std::string out(n, '\0');
  std::memcpy(out.data(), s.text, n);
  return out;
}

void futex_wait(std::atomic<uint32_t>& word, uint32_t expected, std::chrono::microseconds timeout) {
  const auto us = timeout.count();
  const timespec ts{static_cast<time_t>(us / 1'000'000), static_cast<long>((us % 1'000'000) * 1000)};
  ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAIT, expected, &ts, nullptr, 0);
}

void futex_wake(std::atomic<uint32_t>& word) {
  ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAKE, INT32_MAX, nullptr, nullptr, 0);
}

}  // namespace vigil::monitor::shm
