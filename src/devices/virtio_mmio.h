// Virtio over MMIO, modern interface only (VIRTIO 1.1/1.2, 4.2 "Virtio Over MMIO",
// Version 2 register layout, 4.2.2), and the backend interface every virtio device
// (virtio_blk, virtio_rng, virtio_console) implements. The board registers one VirtioMmio
// per slot at layout::kVirtioBase + 0x1000 * i with PLIC source layout::kVirtioIrqBase + i.
//
// Choices where the spec leaves room:
//  * Control registers (0x000-0x0ff) accept only aligned 32-bit accesses (4.2.2.2 makes
//    that a driver MUST); anything else faults. Reserved and write-only registers read
//    as 0, writes to reserved and read-only registers are ignored. Device configuration
//    (0x100 onward) takes 1/2/4/8-byte accesses at any offset inside the backend's
//    config size; past it the access faults.
//  * Offered features are the backend's plus VIRTIO_F_VERSION_1 (this is a modern-only
//    device, 6.1) and VIRTIO_RING_F_INDIRECT_DESC. FEATURES_OK sticks only if the driver
//    accepted VERSION_1, nothing that was not offered, and the backend agrees
//    (3.1.1 step 6, 2.2.2). DriverFeatures is frozen once FEATURES_OK is set.
//  * Status bits are sticky until reset (3.1: drivers never clear them); writing 0 resets
//    the device synchronously, so Status reads 0 straight away (4.2.2.1). DRIVER_OK is
//    ignored without FEATURES_OK; queues are served only while DRIVER_OK is set and
//    neither FAILED nor DEVICE_NEEDS_RESET is. Setting DRIVER_OK serves every ready queue
//    once, picking up buffers the driver queued before it.
//  * QueueReady = 1 needs FEATURES_OK and a queue layout that Virtqueue::enable accepts;
//    otherwise QueueReady keeps reading 0. QueueNum/QueueDesc/Driver/Device are ignored
//    while the queue is ready, so a running queue's layout cannot change under it.
//  * When a queue breaks (virtqueue.h) the device sets DEVICE_NEEDS_RESET, stops every
//    queue and, after DRIVER_OK, sends a configuration change notification (2.1.2).
//  * No shared memory regions: SHMLen/SHMBase read as all ones (4.2.2, "-1" means no such
//    region). VIRTIO_F_RING_RESET, EVENT_IDX and NOTIFICATION_DATA are not offered.
//
// Interrupts (4.2.3.4): InterruptStatus bit 0 after used buffers the driver did not
// suppress, bit 1 after a configuration change; InterruptACK clears bits; the IrqLine is
// high exactly while InterruptStatus is non-zero, and is driven only on changes.
//
// Thread safety and locking: each virtio device has one mutex, VirtioDevice::mutex(),
// guarding both the backend's and the transport's state. VirtioMmio takes it for every
// MMIO access and reset and calls the backend, the IrqLine and DmaMemory with it held, so
// queue work runs on the vCPU thread that wrote QueueNotify. Host-facing backend entry
// points (VirtioConsole::push_input) take the same mutex and ask the transport for queue
// work through VirtioTransport. Neither the IrqLine (the PLIC) nor DmaMemory may call back
// into the device, so this cannot deadlock.
#pragma once

#include <cstdint>
#include <atomic>
#include <mutex>
#include <span>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "devices/device.h"
#include "devices/virtqueue.h"

namespace vigil::devices {

// Feature bits shared by all device types (6 "Reserved Feature Bits").
// 6: bits 0-23 belong to the device type; 24 and up to the transport and the rings.
inline constexpr uint64_t kVirtioDeviceTypeFeatures = (1ull << 24) - 1;
inline constexpr uint64_t kVirtioFIndirectDesc = 1ull << 28;
inline constexpr uint64_t kVirtioFEventIdx = 1ull << 29;
inline constexpr uint64_t kVirtioFVersion1 = 1ull << 32;

// Device status bits (2.1 "Device Status Field").
inline constexpr uint32_t kVirtioStatusAcknowledge = 1;
inline constexpr uint32_t kVirtioStatusDriver = 2;
inline constexpr uint32_t kVirtioStatusDriverOk = 4;
inline constexpr uint32_t kVirtioStatusFeaturesOk = 8;
inline constexpr uint32_t kVirtioStatusNeedsReset = 64;
inline constexpr uint32_t kVirtioStatusFailed = 128;

// What a backend may ask of its transport. Both calls require the device mutex to be
// held by the caller (they are for backend code that already holds it).
class VirtioTransport {
 public:
  virtual ~VirtioTransport() = default;
  // Serves queue q now through VirtioDevice::process_queue, if the device is live and the
  // queue ready, then raises the interrupt it earned. Does nothing otherwise.
  virtual void kick_locked(unsigned q) = 0;
  // The device configuration changed: bumps ConfigGeneration and, once the driver is
  // running, sends a configuration change notification (4.2.3.4 / 2.5.1).
  virtual void config_changed_locked() = 0;
};

// A virtio device type, independent of the transport. All virtual calls are made by the
// transport with mutex() held; they must not block for long (they run on a vCPU thread).
class VirtioDevice {
 public:
  VirtioDevice() = default;
  VirtioDevice(const VirtioDevice&) = delete;
  VirtioDevice& operator=(const VirtioDevice&) = delete;
  virtual ~VirtioDevice() = default;

  virtual std::string_view name() const = 0;
  // 5 "Device Types": 2 block, 3 console, 4 entropy, ...
  virtual uint32_t device_id() const = 0;
  // Device-type feature bits to offer (the transport adds the reserved ones it implements).
  virtual uint64_t device_features() const = 0;
  // Called when the driver sets FEATURES_OK with `features` (a subset of what was offered,
  // VERSION_1 included). Return false to refuse the combination; true keeps it.
  virtual bool accept_features(uint64_t features) = 0;

  // Device configuration space (4.2.2: from offset 0x100): the transport only passes
  // ranges within [0, config_size()).
  virtual uint32_t config_size() const = 0;
  virtual void read_config(uint32_t offset, std::span<uint8_t> dst) const = 0;
  // Default: every field read-only, writes ignored.
  virtual void write_config(uint32_t offset, std::span<const uint8_t> src);

  virtual unsigned queue_count() const = 0;
  // QueueNumMax for queue q < queue_count(); a power of 2, at most Virtqueue::kMaxSize.
  virtual uint32_t queue_max_size(unsigned q) const = 0;
  // The driver notified queue q (or DRIVER_OK / a kick made it worth looking): pop and
  // serve what is available, push_used each popped chain before returning.
  virtual void process_queue(unsigned q, Virtqueue& vq) = 0;
  // Device reset (Status = 0 or board reset): forget negotiated features and guest state.
  virtual void reset() = 0;

  // Work budget (hostile guests): a device whose requests can cost the host real time
  // serves at most a budget of work per vCPU slice and leaves the rest in the ring. It
  // sets budget_spent() when it did; the machine then calls refill_budget() (with mutex()
  // held) at the next slice boundary of any of the domain's vCPUs and the transport serves
  // the queues again. So one guest store cannot hold a host worker for seconds, and what
  // is deferred is still served without another notify.
  bool budget_spent() const { return m_budget_spent.load(std::memory_order_relaxed); }
  virtual void refill_budget() { m_budget_spent.store(false, std::memory_order_relaxed); }

  // Snapshot support (issue 11): the backend's own state (negotiated features, buffered
  // input) as bytes only the same backend reads back. With mutex() held. By default a
  // device cannot be saved; restore_backend checks every byte it is given.
  virtual bool saveable() const { return false; }
  virtual std::vector<uint8_t> save_backend() const { return {}; }
  virtual Result<void> restore_backend(std::span<const uint8_t>) {
    return make_error("device {} cannot be restored", name());
  }

  // The device lock (see the file comment). Mutable so const host-facing queries can lock.
  std::mutex& mutex() const { return m_mutex; }
  // Called by the transport (with mutex() held) when it adopts or releases this device.
  void attach(VirtioTransport* transport) { m_transport = transport; }

 protected:
  // With mutex() held: the attached transport, or null before attach / after detach.
  VirtioTransport* transport() const { return m_transport; }
  void set_budget_spent() { m_budget_spent.store(true, std::memory_order_relaxed); }

 private:
  mutable std::mutex m_mutex;
  VirtioTransport* m_transport = nullptr;
  std::atomic<bool> m_budget_spent{false};
};

class VirtioMmio final : public MmioDevice, private VirtioTransport {
 public:
  // Bytes of MMIO space one slot decodes (layout::kVirtioSize).
  static constexpr uint64_t kMmioSize = 0x1000;
  // 4.2.2: "virt" in little-endian, and the modern (non-legacy) interface version.
  static constexpr uint32_t kMagicValue = 0x74726976;
  static constexpr uint32_t kVersion = 2;
  // VendorID: "VIGL" in little-endian; drivers do not interpret it.
  static constexpr uint32_t kVendorId = 0x4c474956;
  // Largest queue count a backend may ask for (far more than any device type needs).
  static constexpr unsigned kMaxQueues = 64;

  // device must outlive this VirtioMmio (it is attached here and detached in the
  // destructor; stop host threads that call into device first). memory is the guest's
  // RAM as DMA sees it. irq is the slot's PLIC source; may be null.
  VirtioMmio(VirtioDevice& device, DmaMemory& memory, IrqLine* irq);
  ~VirtioMmio() override;
  VirtioMmio(const VirtioMmio&) = delete;
  VirtioMmio& operator=(const VirtioMmio&) = delete;

  std::string_view name() const override { return m_device.name(); }
  bool read(uint64_t offset, unsigned size, uint64_t& value) override;
  bool write(uint64_t offset, unsigned size, uint64_t value) override;
  void reset() override;

  // Snapshot support (issue 11): transport registers, every queue and the backend's state.
  // save_state refuses a backend that cannot be saved ("device virtio-net cannot be
  // saved"); restore_state checks every value (features offered, queues inside RAM, ...)
  // and returns a sentence naming the problem.
  struct QueueState {
    Virtqueue::Layout pending;
    Virtqueue::State vq;
  };
  struct State {
    uint32_t device_id = 0;
    uint32_t status = 0, device_features_sel = 0, driver_features_sel = 0;
    uint64_t driver_features = 0;
    uint32_t queue_sel = 0, interrupt_status = 0, config_generation = 0;
    std::vector<QueueState> queues;
    std::vector<uint8_t> backend;
  };
  Result<State> save_state() const;
  Result<void> restore_state(const State& s);
  VirtioDevice& device() const { return m_device; }

  // At a vCPU slice boundary (any thread): if the device spent its work budget, refill it
  // and serve the queues again (see VirtioDevice::budget_spent). Cheap when it did not.
  // Returns true if the device still has deferred work afterwards.
  bool service_deferred();

 private:
  // Register offsets (4.2.2, table "MMIO Device Register Layout").
  static constexpr uint64_t kRegMagicValue = 0x000;
  static constexpr uint64_t kRegVersion = 0x004;
  static constexpr uint64_t kRegDeviceId = 0x008;
  static constexpr uint64_t kRegVendorId = 0x00c;
  static constexpr uint64_t kRegDeviceFeatures = 0x010;
  static constexpr uint64_t kRegDeviceFeaturesSel = 0x014;
  static constexpr uint64_t kRegDriverFeatures = 0x020;
  static constexpr uint64_t kRegDriverFeaturesSel = 0x024;
  static constexpr uint64_t kRegQueueSel = 0x030;
  static constexpr uint64_t kRegQueueNumMax = 0x034;
  static constexpr uint64_t kRegQueueNum = 0x038;
  static constexpr uint64_t kRegQueueReady = 0x044;
  static constexpr uint64_t kRegQueueNotify = 0x050;
  static constexpr uint64_t kRegInterruptStatus = 0x060;
  static constexpr uint64_t kRegInterruptAck = 0x064;
  static constexpr uint64_t kRegStatus = 0x070;
  static constexpr uint64_t kRegQueueDescLow = 0x080;
  static constexpr uint64_t kRegQueueDescHigh = 0x084;
  static constexpr uint64_t kRegQueueDriverLow = 0x090;
  static constexpr uint64_t kRegQueueDriverHigh = 0x094;
  static constexpr uint64_t kRegQueueDeviceLow = 0x0a0;
  static constexpr uint64_t kRegQueueDeviceHigh = 0x0a4;
  static constexpr uint64_t kRegShmSel = 0x0ac;
  static constexpr uint64_t kRegShmLenLow = 0x0b0;
  static constexpr uint64_t kRegShmLenHigh = 0x0b4;
  static constexpr uint64_t kRegShmBaseLow = 0x0b8;
  static constexpr uint64_t kRegShmBaseHigh = 0x0bc;
  static constexpr uint64_t kRegConfigGeneration = 0x0fc;
  static constexpr uint64_t kRegConfig = 0x100;

  // InterruptStatus bits (4.2.2).
  static constexpr uint32_t kIntUsedBuffer = 1;
  static constexpr uint32_t kIntConfigChange = 2;

  struct Queue {
    explicit Queue(DmaMemory& memory) : vq(memory) {}
    Virtqueue::Layout pending;  // as last written by the driver, used at QueueReady = 1
    Virtqueue vq;
  };

  // Caller holds the device mutex for all of these.
  uint32_t read_reg(uint64_t offset);
  void write_reg(uint64_t offset, uint32_t value);
  void write_status(uint32_t value);
  void write_queue_ready(uint32_t value);
  bool live() const;
  uint64_t offered_features() const;
  Queue* selected_queue();
  void process(unsigned q);
  void mark_broken();
  void update_irq();
  void reset_locked();

  // VirtioTransport
  void kick_locked(unsigned q) override;
  void config_changed_locked() override;

  VirtioDevice& m_device;
  IrqLine* const m_irq;
  std::vector<Queue> m_queues;

  uint32_t m_status = 0;
  uint32_t m_device_features_sel = 0;
  uint32_t m_driver_features_sel = 0;
  uint64_t m_driver_features = 0;
  uint32_t m_queue_sel = 0;
  uint32_t m_interrupt_status = 0;
  uint32_t m_config_generation = 0;
  bool m_irq_level = false;
};

}  // namespace vigil::devices
