#include "hv/domain.h"

#include <algorithm>

namespace vigil::hv {

const char* to_string(DomainState s) {
  switch (s) {
    case DomainState::kRunning: return "running";
    case DomainState::kPaused: return "paused";
    case DomainState::kShutdown: return "shutdown";
    case DomainState::kCrashed: return "crashed";
    case DomainState::kDying: return "dying";
  }
  return "unknown";
}

machine::MachineConfig machine_config_for(const DomainConfig& c) {
  machine::MachineConfig m;
  m.memory_mib = c.memory_mib;
  m.vcpus = c.vcpus;
  m.kernel = c.kernel;
  m.initrd = c.ramdisk;
  m.append = c.extra;
  m.firmware = c.firmware;
  for (const DiskConfig& d : c.disks) m.disks.push_back({d.path, d.read_only});
  for (const NetConfig& n : c.nics) m.nics.push_back({n.model, n.tap_name, n.mac, n.forwards});
  m.rng = c.rng;
  m.virtio_console = true;  // cheap, and gives `vigil console` a second path (/dev/hvc1)
  return m;
}

Result<std::unique_ptr<Domain>> Domain::create(uint32_t id, const DomainConfig& config,
                                               std::shared_ptr<devices::TpmBackend> tpm) {
  if (config.vtpm && !tpm) return make_error("domain '{}': its vTPM was not started", config.name);
  std::unique_ptr<Domain> d(new Domain(id, config));
  d->m_tpm = std::move(tpm);
  machine::MachineConfig mc = machine_config_for(config);
  mc.tpm = d->m_tpm;
  auto m = machine::Machine::create(std::move(mc),
                                    [raw = d.get()](const uint8_t* data, size_t len) { raw->console_output(data, len); });
  if (!m) return make_error("domain '{}': {}", config.name, m.error().message);
  d->m_machine = std::move(*m);
  return d;
}

void Domain::console_output(const uint8_t* data, size_t len) {
  std::lock_guard lock(m_console_mutex);
  m_history.insert(m_history.end(), data, data + len);
  if (m_history.size() > kConsoleHistory) m_history.erase(m_history.begin(), m_history.end() - kConsoleHistory);
  for (auto& [token, l] : m_listeners) l(data, len);
}

std::string Domain::console_history() {
  std::lock_guard lock(m_console_mutex);
  return std::string(m_history.begin(), m_history.end());
}

std::string Domain::console_tail(size_t max_bytes) {
  std::lock_guard lock(m_console_mutex);
  const size_t n = std::min(max_bytes, m_history.size());
  return std::string(m_history.end() - static_cast<std::ptrdiff_t>(n), m_history.end());
}

uint64_t Domain::add_console_listener(ConsoleListener l) {
  std::lock_guard lock(m_console_mutex);
  const uint64_t token = m_next_listener++;
  m_listeners.emplace(token, std::move(l));
  return token;
}

void Domain::remove_console_listener(uint64_t token) {
  std::lock_guard lock(m_console_mutex);
  m_listeners.erase(token);
}

}  // namespace vigil::hv
