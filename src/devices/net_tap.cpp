#include "devices/net_tap.h"

#include "base/sandbox.h"

#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>
#include <vector>

namespace vigil::devices {

namespace {

constexpr const char* kTunPath = "/dev/net/tun";
// Frames read per wakeup before the thread looks at its wakeup fd again.
constexpr int kMaxReadsPerWakeup = 64;
// A tap with the largest MTU (65535) delivers frames of up to 65549 bytes; read them whole
// so an oversize frame is dropped rather than truncated.
constexpr size_t kReadBuffer = 65536 + 64;

}  // namespace

Result<std::unique_ptr<TapBackend>> TapBackend::open(std::string_view ifname) {
  if (ifname.size() >= IFNAMSIZ) {
    return make_error("tap interface name '{}' is too long (at most {} characters)", ifname, IFNAMSIZ - 1);
  }
  if (ifname.find_first_of(std::string_view("/: \t\n\0", 6)) != std::string_view::npos) {
    return make_error("'{}' is not a valid network interface name", ifname);
  }
  const int fd = ::open(kTunPath, O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT || err == ENODEV || err == ENXIO) {
      return make_error(
          "{} does not exist: this host has no TUN/TAP support (modprobe tun), or use model=user", kTunPath);
    }
    if (err == EACCES || err == EPERM) {
      return make_error(
          "no permission to open {}: run Vigil with access to it and CAP_NET_ADMIN, or use model=user",
          kTunPath);
    }
    return make_error("cannot open {}: {}", kTunPath, std::strerror(err));
  }

  ifreq ifr{};
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  std::memcpy(ifr.ifr_name, ifname.data(), ifname.size());
  if (::ioctl(fd, TUNSETIFF, &ifr) < 0) {
    const int err = errno;
    ::close(fd);
    const std::string shown =
        ifname.empty() ? std::string("a new tap interface") : fmt::format("tap interface {}", ifname);
    if (err == EPERM || err == EACCES) {
      return make_error(
          "no permission to use {}: create it for this user first (ip tuntap add dev NAME mode tap user "
          "$USER) or run "
          "Vigil with CAP_NET_ADMIN",
          shown);
    }
    if (err == EBUSY) return make_error("{} is already in use by another process", shown);
    if (err == EINVAL)
      return make_error("cannot attach to {}: it exists but is not a single-queue tap interface", shown);
    return make_error("cannot attach to {}: {}", shown, std::strerror(err));
  }

  const int wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd < 0) {
    const int err = errno;
    ::close(fd);
    return make_error("tap networking: cannot create an eventfd: {}", std::strerror(err));
  }
  ifr.ifr_name[IFNAMSIZ - 1] = '\0';
  return std::unique_ptr<TapBackend>(new TapBackend(fd, wake_fd, ifr.ifr_name));
}

TapBackend::TapBackend(int fd, int wake_fd, std::string ifname)
    : m_fd(fd), m_wake_fd(wake_fd), m_ifname(std::move(ifname)) {}

TapBackend::~TapBackend() {
  stop();
  ::close(m_wake_fd);
  ::close(m_fd);  // a non-persistent tap disappears with its last fd
}

void TapBackend::start(Receiver receiver) {
  std::lock_guard lock(m_lifecycle_mutex);
  if (m_thread.joinable()) return;
  m_receiver = std::move(receiver);
  m_stopping.store(false, std::memory_order_release);
  m_thread = std::thread([this] { run(); });
}

void TapBackend::stop() {
  std::lock_guard lock(m_lifecycle_mutex);
  if (m_thread.joinable()) {
    m_stopping.store(true, std::memory_order_release);
    const uint64_t one = 1;
    [[maybe_unused]] const ssize_t n = ::write(m_wake_fd, &one, sizeof one);
    m_thread.join();
  }
  m_receiver = nullptr;
}

void TapBackend::run() {
  if (auto r = sandbox::restrict_thread(sandbox::ThreadClass::kDeviceIo); !r) {
    // Never move a guest's frames from an unfiltered thread: this NIC stays silent instead.
    std::fprintf(stderr, "vigil: net: %s; this NIC passes no traffic\n", r.error().message.c_str());
    return;
  }
  std::vector<uint8_t> buf(kReadBuffer);
  pollfd fds[2] = {{m_fd, POLLIN, 0}, {m_wake_fd, POLLIN, 0}};
  bool tap_usable = true;
  while (!m_stopping.load(std::memory_order_acquire)) {
    // Once the tap fails (its interface was deleted), only wait for stop().
    fds[0].fd = tap_usable ? m_fd : -1;
    if (::poll(fds, 2, -1) < 0) continue;  // EINTR; other errors cannot happen with valid fds
    if (fds[0].revents & (POLLERR | POLLHUP | POLLNVAL)) tap_usable = false;
    if (fds[0].revents & POLLIN) {
      for (int i = 0; i < kMaxReadsPerWakeup; ++i) {
        const ssize_t n = ::read(m_fd, buf.data(), buf.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) break;  // EAGAIN: drained
        const auto len = static_cast<size_t>(n);
        if (len < kMinFrame || len > kMaxFrame) continue;
        m_rx_frames.fetch_add(1, std::memory_order_relaxed);
        if (m_receiver) m_receiver(std::span(buf.data(), len));
      }
    }
    if (fds[1].revents & POLLIN) {
      uint64_t count;
      [[maybe_unused]] const ssize_t n = ::read(m_wake_fd, &count, sizeof count);
    }
  }
}

void TapBackend::send(std::span<const uint8_t> frame) {
  if (frame.size() < kMinFrame || frame.size() > kMaxFrame) {
    m_tx_dropped.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  ssize_t n;
  do {
    n = ::write(m_fd, frame.data(), frame.size());
  } while (n < 0 && errno == EINTR);
  // EAGAIN (the kernel's queue is full), EIO (interface down) and the like drop the frame.
  if (n == static_cast<ssize_t>(frame.size())) {
    m_tx_frames.fetch_add(1, std::memory_order_relaxed);
  } else {
    m_tx_dropped.fetch_add(1, std::memory_order_relaxed);
  }
}

NetBackendStats TapBackend::stats() const {
  return {.tx_frames = m_tx_frames.load(std::memory_order_relaxed),
          .tx_dropped = m_tx_dropped.load(std::memory_order_relaxed),
          .rx_frames = m_rx_frames.load(std::memory_order_relaxed)};
}

}  // namespace vigil::devices
