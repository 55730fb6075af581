// The host side of a virtual NIC: where Ethernet frames from the guest go and where frames
// for the guest come from. VirtioNet (virtio_net.h) owns one; SlirpBackend (net_slirp.h,
// user-mode networking) and TapBackend (net_tap.h, a host TAP interface) implement it.
//
// Frames are plain Ethernet frames (destination MAC first, no preamble, no FCS, no virtio
// header). A backend never waits on the guest and never grows without bound: it queues a
// bounded number of frames and drops the rest, which TCP recovers from like any lossy link.
//
// Threads: each backend runs its own I/O thread. start() hands it the receiver, which that
// thread calls for every frame for the guest. The receiver takes the device's mutex, so a
// backend must never call it from inside send() (send() runs on a vCPU thread with that
// mutex held) and must hold none of its own locks that send() takes while calling it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string_view>

namespace vigil::devices {

struct NetBackendStats {
  uint64_t tx_frames = 0;   // guest -> host frames handed to the host network
  uint64_t tx_dropped = 0;  // guest -> host frames dropped (queue full, malformed, host error)
  uint64_t rx_frames = 0;   // host -> guest frames given to the receiver
};

class NetBackend {
 public:
  // Called on the backend's I/O thread with one frame for the guest; the span is only
  // valid during the call.
  using Receiver = std::function<void(std::span<const uint8_t> frame)>;

  // Largest frame a backend carries either way: a 64 KiB IP packet plus the Ethernet header
  // (matches VirtioNet's bound of 65550 bytes including its 12-byte header).
  static constexpr size_t kMaxFrame = 65538;
  // An Ethernet header; anything shorter is not a frame.
  static constexpr size_t kMinFrame = 14;

  NetBackend() = default;
  NetBackend(const NetBackend&) = delete;
  NetBackend& operator=(const NetBackend&) = delete;
  // Implementations stop their I/O thread first.
  virtual ~NetBackend() = default;

  // "user" or "tap" (the NetConfig model it implements).
  virtual std::string_view name() const = 0;
  // Starts the I/O thread, which from now on delivers frames for the guest to receiver.
  // Called once; frames arriving before it are dropped by the host side.
  virtual void start(Receiver receiver) = 0;
  // Stops and joins the I/O thread: once it returns the receiver is never called again.
  // Idempotent. Must not be called from the receiver.
  virtual void stop() = 0;
  // A frame from the guest, copied before returning. Callable from any thread; never blocks
  // on the network. Frames outside [kMinFrame, kMaxFrame] bytes, or that do not fit the
  // backend's queue, are dropped and counted.
  virtual void send(std::span<const uint8_t> frame) = 0;
  virtual NetBackendStats stats() const = 0;
};

}  // namespace vigil::devices
