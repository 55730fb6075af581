#include "devices/virtio_mmio.h"

#include <algorithm>
#include <array>

namespace vigil::devices {

namespace {

bool valid_size(unsigned size) {
  return size == 1 || size == 2 || size == 4 || size == 8;
}

void set_low(uint64_t& reg, uint32_t v) {
  reg = (reg & ~0xffff'ffffull) | v;
}
void set_high(uint64_t& reg, uint32_t v) {
  reg = (reg & 0xffff'ffffull) | (static_cast<uint64_t>(v) << 32);
}

}  // namespace

void VirtioDevice::write_config(uint32_t, std::span<const uint8_t>) {}

VirtioMmio::VirtioMmio(VirtioDevice& device, DmaMemory& memory, IrqLine* irq) : m_device(device), m_irq(irq) {
  std::lock_guard lock(m_device.mutex());
  // The queue count is host configuration, not guest input; clamp rather than trust it.
  const unsigned count = std::min(m_device.queue_count(), kMaxQueues);
  m_queues.reserve(count);
  for (unsigned q = 0; q < count; ++q) m_queues.emplace_back(memory);
  m_device.attach(this);
}

VirtioMmio::~VirtioMmio() {
  std::lock_guard lock(m_device.mutex());
  m_device.attach(nullptr);
}

bool VirtioMmio::read(uint64_t offset, unsigned size, uint64_t& value) {
  if (!valid_size(size) || offset >= kMmioSize) return false;
  std::lock_guard lock(m_device.mutex());
  if (offset < kRegConfig) {
    if (size != 4 || offset % 4 != 0) return false;
    value = read_reg(offset);
    return true;
  }
  const uint64_t at = offset - kRegConfig;
  if (at + size > m_device.config_size()) return false;
  std::array<uint8_t, 8> bytes{};
  m_device.read_config(static_cast<uint32_t>(at), std::span(bytes.data(), size));
  // Configuration fields are little-endian (4.2.2.2 with VIRTIO_F_VERSION_1).
  value = 0;
  for (unsigned i = size; i-- > 0;) value = (value << 8) | bytes[i];
  return true;
}

bool VirtioMmio::write(uint64_t offset, unsigned size, uint64_t value) {
  if (!valid_size(size) || offset >= kMmioSize) return false;
  std::lock_guard lock(m_device.mutex());
  if (offset < kRegConfig) {
    if (size != 4 || offset % 4 != 0) return false;
    write_reg(offset, static_cast<uint32_t>(value));
    update_irq();
    return true;
  }
  const uint64_t at = offset - kRegConfig;
  if (at + size > m_device.config_size()) return false;
  std::array<uint8_t, 8> bytes{};
  for (unsigned i = 0; i < size; ++i) bytes[i] = static_cast<uint8_t>(value >> (8 * i));
  m_device.write_config(static_cast<uint32_t>(at), std::span<const uint8_t>(bytes.data(), size));
  return true;
}

void VirtioMmio::reset() {
  std::lock_guard lock(m_device.mutex());
  reset_locked();
}

uint32_t VirtioMmio::read_reg(uint64_t offset) {
  switch (offset) {
    case kRegMagicValue:
      return kMagicValue;
    case kRegVersion:
      return kVersion;
    case kRegDeviceId:
      return m_device.device_id();
    case kRegVendorId:
      return kVendorId;
    case kRegDeviceFeatures:
      // 4.2.2: DeviceFeaturesSel picks a 32-bit word; words past bit 63 are all zero.
      if (m_device_features_sel > 1) return 0;
      return static_cast<uint32_t>(offered_features() >> (32 * m_device_features_sel));
    case kRegQueueNumMax: {
      // 4.2.2: 0 for a queue that is not available.
      const Queue* queue = selected_queue();
      return queue ? std::min(m_device.queue_max_size(m_queue_sel), Virtqueue::kMaxSize) : 0;
    }
    case kRegQueueReady: {
      const Queue* queue = selected_queue();
      return queue && queue->vq.enabled() ? 1 : 0;
    }
    case kRegInterruptStatus:
      return m_interrupt_status;
    case kRegStatus:
      return m_status;
    case kRegShmLenLow:
    case kRegShmLenHigh:
    case kRegShmBaseLow:
    case kRegShmBaseHigh:
      return 0xffff'ffff;
    case kRegConfigGeneration:
      return m_config_generation;
    default:
      return 0;  // write-only and reserved registers
  }
}

void VirtioMmio::write_reg(uint64_t offset, uint32_t value) {
  switch (offset) {
    case kRegDeviceFeaturesSel:
      m_device_features_sel = value;
      return;
    case kRegDriverFeaturesSel:
      m_driver_features_sel = value;
      return;
    case kRegDriverFeatures:
      // 3.1.1: features are settled once FEATURES_OK is set; later writes are ignored so
      // what the backend accepted stays what is in force. Words past bit 63 are ignored.
      if (m_status & kVirtioStatusFeaturesOk) return;
      if (m_driver_features_sel == 0) set_low(m_driver_features, value);
      if (m_driver_features_sel == 1) set_high(m_driver_features, value);
      return;
    case kRegQueueSel:
      m_queue_sel = value;
      return;
    case kRegQueueNotify:
      // Without VIRTIO_F_NOTIFICATION_DATA the value is just the queue index (4.2.2).
      if (value < m_queues.size()) process(value);
      return;
    case kRegInterruptAck:
      m_interrupt_status &= ~value;
      return;
    case kRegStatus:
      write_status(value);
      return;
    case kRegQueueReady:
      write_queue_ready(value);
      return;
    case kRegShmSel:
      return;  // there are no shared memory regions to select
    default:
      break;
  }
  // The queue layout registers address the selected queue and are frozen while it runs.
  Queue* queue = selected_queue();
  if (queue == nullptr || queue->vq.enabled()) return;
  Virtqueue::Layout& l = queue->pending;
  switch (offset) {
    case kRegQueueNum:
      l.size = value;
      break;
    case kRegQueueDescLow:
      set_low(l.desc, value);
      break;
    case kRegQueueDescHigh:
      set_high(l.desc, value);
      break;
    case kRegQueueDriverLow:
      set_low(l.avail, value);
      break;
    case kRegQueueDriverHigh:
      set_high(l.avail, value);
      break;
    case kRegQueueDeviceLow:
      set_low(l.used, value);
      break;
    case kRegQueueDeviceHigh:
      set_high(l.used, value);
      break;
    default:
      break;  // read-only or reserved: ignored
  }
}

void VirtioMmio::write_status(uint32_t value) {
  value &= 0xff;  // 4.2.2: Status is an 8-bit field in a 32-bit register
  if (value == 0) {
    reset_locked();
    return;
  }
  const uint32_t old = m_status;
  // DEVICE_NEEDS_RESET belongs to the device: the driver can neither set nor clear it.
  uint32_t next = old | (value & ~kVirtioStatusNeedsReset);
  if ((next & kVirtioStatusFeaturesOk) && !(old & kVirtioStatusFeaturesOk)) {
    // 3.1.1 step 6 / 2.2.2: the device leaves FEATURES_OK clear if it cannot use the
    // accepted features. A modern-only device requires VERSION_1 (6.1).
    const bool subset = (m_driver_features & ~offered_features()) == 0;
    const bool ok =
        subset && (m_driver_features & kVirtioFVersion1) && m_device.accept_features(m_driver_features);
    if (!ok) next &= ~kVirtioStatusFeaturesOk;
  }
  if (!(next & kVirtioStatusFeaturesOk)) next &= ~kVirtioStatusDriverOk;
  m_status = next;
  if ((next & kVirtioStatusDriverOk) && !(old & kVirtioStatusDriverOk)) {
    for (unsigned q = 0; q < m_queues.size(); ++q) process(q);
  }
}

void VirtioMmio::write_queue_ready(uint32_t value) {
  Queue* queue = selected_queue();
  if (queue == nullptr) return;
  if (value == 0) {
    queue->vq.disable();
    return;
  }
  if (value != 1 || queue->vq.enabled()) return;
  // 3.1.1: queues are set up after feature negotiation, which settles INDIRECT_DESC.
  if (!(m_status & kVirtioStatusFeaturesOk) || (m_status & kVirtioStatusNeedsReset)) return;
  queue->vq.enable(queue->pending, m_device.queue_max_size(m_queue_sel),
                   (m_driver_features & kVirtioFIndirectDesc) != 0);
}

bool VirtioMmio::live() const {
  return (m_status & kVirtioStatusDriverOk) && !(m_status & (kVirtioStatusNeedsReset | kVirtioStatusFailed));
}

uint64_t VirtioMmio::offered_features() const {
  // The backend may not claim ring features this transport does not implement (EVENT_IDX).
  const uint64_t device = m_device.device_features() & kVirtioDeviceTypeFeatures;
  return device | kVirtioFVersion1 | kVirtioFIndirectDesc;
}

VirtioMmio::Queue* VirtioMmio::selected_queue() {
  return m_queue_sel < m_queues.size() ? &m_queues[m_queue_sel] : nullptr;
}

void VirtioMmio::process(unsigned q) {
  if (!live() || q >= m_queues.size()) return;
  Virtqueue& vq = m_queues[q].vq;
  if (!vq.enabled() || vq.broken()) return;
  m_device.process_queue(q, vq);
  if (vq.take_notification()) m_interrupt_status |= kIntUsedBuffer;
  if (vq.broken()) mark_broken();
}

void VirtioMmio::mark_broken() {
  if (m_status & kVirtioStatusNeedsReset) return;
  m_status |= kVirtioStatusNeedsReset;
  // 2.1.2: after DRIVER_OK, setting DEVICE_NEEDS_RESET comes with a config change notice.
  if (m_status & kVirtioStatusDriverOk) config_changed_locked();
}

Result<VirtioMmio::State> VirtioMmio::save_state() const {
  std::lock_guard lock(m_device.mutex());
  if (!m_device.saveable()) return make_error("device {} cannot be saved", m_device.name());
  State s;
  s.device_id = m_device.device_id();
  s.status = m_status;
  s.device_features_sel = m_device_features_sel;
  s.driver_features_sel = m_driver_features_sel;
  s.driver_features = m_driver_features;
  s.queue_sel = m_queue_sel;
  s.interrupt_status = m_interrupt_status;
  s.config_generation = m_config_generation;
  for (const Queue& q : m_queues) s.queues.push_back(QueueState{q.pending, q.vq.save_state()});
  s.backend = m_device.save_backend();
  return s;
}

Result<void> VirtioMmio::restore_state(const State& s) {
  std::lock_guard lock(m_device.mutex());
  if (s.device_id != m_device.device_id())
    return make_error("device id {} does not match this slot's {} ({})", s.device_id, m_device.device_id(),
                      m_device.name());
  if (s.queues.size() != m_queues.size())
    return make_error("{} queues saved, {} has {}", s.queues.size(), m_device.name(), m_queues.size());
  constexpr uint32_t kKnownStatus = kVirtioStatusAcknowledge | kVirtioStatusDriver | kVirtioStatusDriverOk |
                                    kVirtioStatusFeaturesOk | kVirtioStatusNeedsReset | kVirtioStatusFailed;
  if ((s.status & ~kKnownStatus) != 0) return make_error("status {:#x} has unknown bits", s.status);
  if ((s.driver_features & ~offered_features()) != 0)
    return make_error("driver features {:#x} include some the device does not offer ({:#x})", s.driver_features,
                      offered_features());
  if ((s.status & kVirtioStatusFeaturesOk) && !(s.driver_features & kVirtioFVersion1))
    return make_error("FEATURES_OK without VIRTIO_F_VERSION_1");
  if ((s.interrupt_status & ~(kIntUsedBuffer | kIntConfigChange)) != 0)
    return make_error("interrupt status {:#x} has unknown bits", s.interrupt_status);
  if (s.device_features_sel > 1 || s.driver_features_sel > 1)
    return make_error("feature selectors {}/{} are not 0 or 1", s.device_features_sel, s.driver_features_sel);
  reset_locked();
  for (size_t q = 0; q < m_queues.size(); ++q) {
    const QueueState& qs = s.queues[q];
    if (qs.vq.enabled && !(s.status & kVirtioStatusFeaturesOk)) {
      reset_locked();
      return make_error("queue {} is ready without FEATURES_OK", q);
    }
    if (qs.vq.indirect_allowed && !(s.driver_features & kVirtioFIndirectDesc)) {
      reset_locked();
      return make_error("queue {} allows indirect descriptors that were not negotiated", q);
    }
    std::string why;
    if (!m_queues[q].vq.restore_state(qs.vq, m_device.queue_max_size(static_cast<unsigned>(q)), why)) {
      reset_locked();
      return make_error("queue {}: {}", q, why);
    }
    m_queues[q].pending = qs.pending;
  }
  if (auto r = m_device.restore_backend(s.backend); !r) {
    reset_locked();
    return r;
  }
  m_status = s.status;
  m_device_features_sel = s.device_features_sel;
  m_driver_features_sel = s.driver_features_sel;
  m_driver_features = s.driver_features;
  m_queue_sel = s.queue_sel;
  m_interrupt_status = s.interrupt_status;
  m_config_generation = s.config_generation;
  m_irq_level = !(m_interrupt_status != 0);  // drive the line once, whatever it was
  update_irq();
  return {};
}

void VirtioMmio::update_irq() {
  const bool level = m_interrupt_status != 0;
  if (level == m_irq_level) return;
  m_irq_level = level;
  if (m_irq) m_irq->set_level(level);
}

void VirtioMmio::reset_locked() {
  // 2.1.1 / 4.2.2.1: reset returns every register to its initial state and the device
  // stops touching the rings the driver is about to free.
  for (Queue& queue : m_queues) {
    queue.pending = Virtqueue::Layout{};
    queue.vq.disable();
  }
  m_status = 0;
  m_device_features_sel = 0;
  m_driver_features_sel = 0;
  m_driver_features = 0;
  m_queue_sel = 0;
  m_interrupt_status = 0;
  m_device.reset();
  update_irq();
}

bool VirtioMmio::service_deferred() {
  if (!m_device.budget_spent()) return false;
  std::lock_guard lock(m_device.mutex());
  m_device.refill_budget();
  for (unsigned q = 0; q < m_queues.size(); ++q) process(q);
  update_irq();
  return m_device.budget_spent();
}

void VirtioMmio::kick_locked(unsigned q) {
  process(q);
  update_irq();
}

void VirtioMmio::config_changed_locked() {
  ++m_config_generation;
  if (m_status & kVirtioStatusDriverOk) m_interrupt_status |= kIntConfigChange;
  update_irq();
}

}  // namespace vigil::devices
