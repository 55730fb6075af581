// A domain: one isolated guest (its own RAM, vCPUs, devices and board) with a Xen-style
// lifecycle. The DomainManager owns domains; the Scheduler runs their vCPUs.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "base/error.h"
#include "hv/domain_config.h"
#include "hv/scheduler.h"
#include "machine/machine.h"

namespace vigil::hv {

enum class DomainState { kRunning, kPaused, kShutdown, kCrashed, kDying };
const char* to_string(DomainState s);

class Domain final : public SchedTarget {
 public:
  using ConsoleListener = std::function<void(const uint8_t*, size_t)>;
  static constexpr size_t kConsoleHistory = 64 * 1024;

  // Builds the board and loads the guest; the domain does not run until scheduled.
  // `tpm`: the domain's vTPM when config.vtpm is set (started by the DomainManager's factory).
  static Result<std::unique_ptr<Domain>> create(uint32_t id, const DomainConfig& config,
                                                std::shared_ptr<devices::TpmBackend> tpm = nullptr);
  ~Domain() override = default;

  uint32_t id() const { return m_id; }
  const std::string& name() const { return m_config.name; }
  const DomainConfig& config() const { return m_config; }
  machine::Machine& machine() { return *m_machine; }
  const std::shared_ptr<devices::TpmBackend>& tpm() const { return m_tpm; }
  DomainState state() const { return m_state.load(); }
  void set_state(DomainState s) { m_state.store(s); }
  // Why the guest stopped, once it has.
  std::optional<machine::Outcome> outcome() { return m_machine->outcome(); }

  // SchedTarget
  machine::Machine::StepResult sched_step(unsigned vcpu, uint64_t budget, uint64_t& wake_mtime) override {
    return m_machine->step_vcpu(vcpu, budget, wake_mtime);
  }
  std::chrono::steady_clock::time_point sched_host_time(uint64_t mtime) override {
    return m_machine->host_time_of(mtime);
  }

  // Console: output is kept (the last kConsoleHistory bytes) and streamed to listeners.
  std::string console_history();
  // The last `max_bytes` of it (the dashboard's tail), without copying the rest.
  std::string console_tail(size_t max_bytes);
  uint64_t add_console_listener(ConsoleListener l);
  void remove_console_listener(uint64_t token);
  void console_input(const uint8_t* data, size_t len) { m_machine->console_input(data, len); }

 private:
  Domain(uint32_t id, const DomainConfig& config) : m_id(id), m_config(config) {}
  void console_output(const uint8_t* data, size_t len);

  uint32_t m_id;
  DomainConfig m_config;
  std::atomic<DomainState> m_state{DomainState::kRunning};
  std::shared_ptr<devices::TpmBackend> m_tpm;  // before m_machine: the board's TIS uses it
  std::unique_ptr<machine::Machine> m_machine;

  std::mutex m_console_mutex;
  std::deque<uint8_t> m_history;
  std::map<uint64_t, ConsoleListener> m_listeners;
  uint64_t m_next_listener = 1;
};

// Turns a DomainConfig into the board's own configuration (validating what the board checks).
machine::MachineConfig machine_config_for(const DomainConfig& config);

}  // namespace vigil::hv
