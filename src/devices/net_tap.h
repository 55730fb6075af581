// A host TAP interface as the guest's network (NetConfig model "tap"): frames go to and
// come from the host kernel through /dev/net/tun (IFF_TAP | IFF_NO_PI, so each read() or
// write() is one bare Ethernet frame). The host side is configured outside Vigil (bridge,
// addresses); a persistent tap created for the user with
// `ip tuntap add dev NAME mode tap user USER` needs no privileges to attach to.
//
// Threads: send() writes the frame straight to the non-blocking tap fd on the caller's
// thread (one write per frame, never blocking; a full kernel queue drops the frame). The
// backend's I/O thread polls the fd and an eventfd (for stop()) and calls the receiver with
// each frame the host sends.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "base/error.h"
#include "devices/net_backend.h"

namespace vigil::devices {

class TapBackend final : public NetBackend {
 public:
  // Attaches to tap interface ifname, creating it (if allowed) when it does not exist; an
  // empty name lets the kernel pick one (tapN). Fails with one sentence naming the cause:
  // no /dev/net/tun, no permission, a name that is too long, an interface that is busy or
  // not a tap.
  static Result<std::unique_ptr<TapBackend>> open(std::string_view ifname);
  ~TapBackend() override;

  // The interface name as the kernel settled it.
  const std::string& ifname() const { return m_ifname; }

  std::string_view name() const override { return "tap"; }
  void start(Receiver receiver) override;
  void stop() override;
  void send(std::span<const uint8_t> frame) override;
  NetBackendStats stats() const override;

 private:
  TapBackend(int fd, int wake_fd, std::string ifname);
  void run();

  const int m_fd;
  const int m_wake_fd;
  const std::string m_ifname;
  std::mutex m_lifecycle_mutex;  // start() / stop()
  std::thread m_thread;
  std::atomic<bool> m_stopping{false};
  Receiver m_receiver;  // set before the thread starts, cleared after it is joined
  std::atomic<uint64_t> m_tx_frames{0}, m_tx_dropped{0}, m_rx_frames{0};
};

}  // namespace vigil::devices
