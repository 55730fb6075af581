// User-mode networking (NetConfig model "user") with libslirp: a TCP/IP stack in the host
// process that terminates the guest's connections and opens ordinary host sockets in their
// place, so it needs no privileges. The guest network looks like QEMU's default one:
//
//   10.0.2.0/24   guest network
//   10.0.2.2      gateway and "the host": connections to it reach the host's loopback
//   10.0.2.3      DNS, forwarded to the host's resolvers
//   10.0.2.15     the address DHCP hands the guest (the first lease)
//
// IPv6 is off. Host -> guest TCP forwards listen on 127.0.0.1:host_port and connect to
// 10.0.2.15:guest_port; they are set up by create(), which fails if a port is taken.
//
// Threads: libslirp is not thread-safe, so exactly one thread touches it after create():
// the backend's I/O thread, started by start(). It polls slirp's sockets, an eventfd and
// slirp's timers, feeds slirp the frames send() queued (send() itself only appends to a
// bounded queue under a small lock and wakes the thread) and calls the receiver for every
// frame slirp emits towards the guest. SIGPIPE is blocked on that thread, so a host peer
// closing a connection while slirp writes to it yields EPIPE, never a dead process.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "base/error.h"
#include "devices/net_backend.h"

namespace vigil::devices {

class SlirpBackend final : public NetBackend {
 public:
  // IPv4 addresses in host byte order.
  static constexpr uint32_t kNetwork = 0x0a000200;    // 10.0.2.0
  static constexpr uint32_t kNetmask = 0xffffff00;    // /24
  static constexpr uint32_t kHostAddr = 0x0a000202;   // 10.0.2.2
  static constexpr uint32_t kDnsAddr = 0x0a000203;    // 10.0.2.3
  static constexpr uint32_t kGuestAddr = 0x0a00020f;  // 10.0.2.15
  // Guest frames waiting for the I/O thread; more are dropped.
  static constexpr size_t kTxQueueFrames = 256;
  static constexpr size_t kTxQueueBytes = 4u << 20;

  struct Options {
    // host port (on 127.0.0.1) -> guest port (on 10.0.2.15), TCP; as NetConfig::forwards.
    std::vector<std::pair<uint16_t, uint16_t>> forwards;
    // libslirp's "restrict": the guest reaches only the virtual hosts and forwards.
    bool restricted = false;
  };

  // Builds the slirp stack and its forwards; the I/O thread starts with start(). Fails with
  // one sentence naming the port if a forward cannot listen (port 0, or already in use).
  static Result<std::unique_ptr<SlirpBackend>> create(const Options& options);
  ~SlirpBackend() override;

  std::string_view name() const override { return "user"; }
  void start(Receiver receiver) override;
  void stop() override;
  void send(std::span<const uint8_t> frame) override;
  NetBackendStats stats() const override;

 private:
  struct State;  // libslirp types stay out of this header
  explicit SlirpBackend(std::unique_ptr<State> state);

  std::unique_ptr<State> m_state;
};

}  // namespace vigil::devices
