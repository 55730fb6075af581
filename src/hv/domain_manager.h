// DomainManager: creates, lists, pauses, destroys domains and applies their lifecycle
// actions (on_poweroff / on_reboot / on_crash), the way libxl does for xl. State changes
// are safe against running vCPUs: the scheduler stops a domain's vCPUs first.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/error.h"
#include "hv/domain.h"
#include "hv/scheduler.h"

namespace vigil::hv {

struct DomainInfo {
  uint32_t id;
  std::string name;
  uint64_t memory_mib;
  unsigned vcpus;
  DomainState state;
  double cpu_seconds;
  std::string stop_reason;  // for shutdown/crashed domains
};

class DomainManager {
 public:
  static constexpr size_t kMaxDomains = 256;

  explicit DomainManager(unsigned workers = 0);
  ~DomainManager();

  // Starts the vTPM of a domain whose config has one (vigild: vtpm::Provider). Without a
  // factory such domains cannot be created. Set before the first create().
  using TpmFactory = std::function<Result<std::shared_ptr<devices::TpmBackend>>(const DomainConfig&)>;
  void set_tpm_factory(TpmFactory factory) { m_tpm_factory = std::move(factory); }

  Result<uint32_t> create(const DomainConfig& config);
  // As create, but `prepare` sets the new domain's state (a restore, src/migrate: RAM,
  // harts, devices, clock) before any vCPU runs; its error ends the creation. The domain
  // starts paused if `paused` (its clock stays where `prepare` left it), else running.
  Result<uint32_t> create_prepared(const DomainConfig& config, const std::function<Result<void>(Domain&)>& prepare,
                                   bool paused);
  Result<void> pause(uint32_t id);
  Result<void> unpause(uint32_t id);
  // Asks the domain to stop as if it powered off (its on_poweroff action applies).
  Result<void> shutdown(uint32_t id);
  // Restarts the domain from its configuration (same id and name).
  Result<void> reboot(uint32_t id);
  Result<void> destroy(uint32_t id);

  // Finds a domain by id ("3") or name.
  Result<uint32_t> lookup(const std::string& id_or_name);
  std::vector<DomainInfo> list();
  Result<DomainInfo> info(uint32_t id);
  std::shared_ptr<Domain> get(uint32_t id);

  Result<std::vector<Scheduler::VcpuInfo>> vcpu_list(uint32_t id);
  Result<void> vcpu_pin(uint32_t id, unsigned vcpu, const std::vector<unsigned>& workers);
  Result<SchedParams> sched_credit(uint32_t id);
  Result<void> set_sched_credit(uint32_t id, std::optional<unsigned> weight, std::optional<unsigned> cap);

  Scheduler& scheduler() { return m_sched; }

  // Blocks until domain `id` no longer exists or `timeout` passes; true if gone.
  bool wait_gone(uint32_t id, std::chrono::milliseconds timeout);

 private:
  Result<std::shared_ptr<Domain>> find(uint32_t id);
  void start(const std::shared_ptr<Domain>& d, bool paused = false);
  void on_guest_stop(uint32_t id, const machine::Outcome& outcome);
  void reaper_loop();
  void remove(uint32_t id);

  Scheduler m_sched;
  TpmFactory m_tpm_factory;
  std::mutex m_mutex;
  std::condition_variable m_changed;
  std::map<uint32_t, std::shared_ptr<Domain>> m_domains;
  uint32_t m_next_id = 1;

  // Lifecycle events from vCPU threads, handled on the reaper thread.
  struct StopEvent {
    uint32_t id;
    machine::Outcome outcome;
  };
  std::mutex m_events_mutex;
  std::condition_variable m_events_cv;
  std::deque<StopEvent> m_events;
  bool m_quit = false;
  std::thread m_reaper;
};

}  // namespace vigil::hv
