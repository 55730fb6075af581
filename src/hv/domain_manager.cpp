#include "hv/domain_manager.h"

#include <algorithm>
#include <charconv>
#include <cstdio>

#include "base/sandbox.h"
#include "riscv/jit.h"

namespace vigil::hv {

DomainManager::DomainManager(unsigned workers) : m_sched(workers), m_reaper([this] { reaper_loop(); }) {
  if (auto p = PsrService::create(psr::host_l3_geometry())) {
    m_psr = std::move(*p);
  } else if (auto q = PsrService::create(psr::Geometry{})) {
    m_psr = std::move(*q);  // the host's L3 has a shape the model refuses: use the reference
  }
  if (m_psr) m_sched.set_memory_meter(m_psr.get());
}

DomainManager::~DomainManager() {
  {
    std::lock_guard lock(m_events_mutex);
    m_quit = true;
  }
  m_events_cv.notify_all();
  m_reaper.join();
  std::vector<uint32_t> ids;
  {
    std::lock_guard lock(m_mutex);
    for (auto& [id, d] : m_domains) ids.push_back(id);
  }
  for (uint32_t id : ids) remove(id);
  m_sched.set_memory_meter(nullptr);  // m_psr goes before m_sched
}

void DomainManager::start(const std::shared_ptr<Domain>& d, bool paused) {
  const uint32_t id = d->id();
  d->machine().on_stop = [this, id](const machine::Outcome& o) { on_guest_stop(id, o); };
  d->machine().set_wake_hook([this, id](unsigned vcpu) { m_sched.wake(id, vcpu); });
  const DomainConfig& c = d->config();
  m_sched.add_domain(id, d.get(), c.vcpus, SchedParams{c.cpu_weight, c.cap}, c.cpu_pins, paused);
}

Result<uint32_t> DomainManager::create(const DomainConfig& config) { return create_prepared(config, nullptr, false); }

Result<uint32_t> DomainManager::create_prepared(const DomainConfig& config,
                                                const std::function<Result<void>(Domain&)>& prepare, bool paused) {
  {
    std::lock_guard lock(m_mutex);
    if (m_domains.size() >= kMaxDomains) return make_error("too many domains (the limit is {})", kMaxDomains);
    for (auto& [id, d] : m_domains) {
      if (d->name() == config.name) return make_error("a domain named '{}' already exists (id {})", config.name, id);
    }
  }
  if (config.name.empty()) return make_error("a domain needs a name");
  if (config.cpu_weight < 1 || config.cpu_weight > 65535) return make_error("cpu_weight must be 1..65535");
  if (config.cap > 100 * config.vcpus) return make_error("cap must be 0..{} for {} vCPUs", 100 * config.vcpus, config.vcpus);
  if (config.psr_cat_cbm != 0 || config.psr_cmt || config.psr_mba_thrtl != 0) {
    if (!m_psr) return make_error("the noisy-neighbour cache model is not available, so psr_* keys cannot be honoured");
    if (config.psr_cat_cbm != 0) {
      if (auto r = psr::validate_cbm(config.psr_cat_cbm, m_psr->hwinfo().cbm_len); !r) {
        return make_error("psr_cat_cbm: {}", r.error().message);
      }
    }
  }
  uint32_t id;
  {
    std::lock_guard lock(m_mutex);
    id = m_next_id++;
  }
  std::shared_ptr<devices::TpmBackend> tpm;
  if (config.vtpm) {
    if (!m_tpm_factory) return make_error("domain '{}' has a vtpm but this vigild cannot start vTPMs", config.name);
    auto t = m_tpm_factory(config);
    if (!t) return std::unexpected(t.error());
    tpm = std::move(*t);
  }
  auto d = Domain::create(id, config, tpm);
  // The vTPM starts while the board is built (vtpm/provider.h); its failure is the reason to
  // report, even when the board then failed measuring into it.
  if (tpm) {
    if (auto ready = tpm->wait_ready(); !ready) {
      tpm->shutdown();
      return std::unexpected(ready.error());
    }
  }
  if (!d) {
    if (tpm) tpm->shutdown();
    return std::unexpected(d.error());
  }
  std::shared_ptr<Domain> dom = std::move(*d);
  if (prepare) {
    if (auto r = prepare(*dom); !r) return std::unexpected(r.error());
    if (paused) {
      dom->machine().pause_clock();
      dom->set_state(DomainState::kPaused);
    } else {
      dom->machine().resume_clock();
    }
  }
  {
    std::lock_guard lock(m_mutex);
    for (auto& [other, od] : m_domains) {
      if (od->name() == config.name) {
        if (tpm) tpm->shutdown();
        return make_error("a domain named '{}' already exists (id {})", config.name, other);
      }
    }
    m_domains[id] = dom;
  }
  if (m_psr) {
    if (auto r = m_psr->apply_config(id, dom->machine().memory(), config); !r) {
      m_psr->forget(id);
      std::lock_guard lock(m_mutex);
      m_domains.erase(id);
      return std::unexpected(r.error());
    }
  }
  start(dom, paused);
  m_changed.notify_all();
  return id;
}

Result<void> DomainManager::psr_attach(uint32_t id) {
  auto d = find(id);
  if (!d) return std::unexpected(d.error());
  if (!m_psr) return make_error("the noisy-neighbour cache model is not available");
  if (auto r = m_psr->attach(id, (*d)->machine().memory()); !r) return r;
  if (get(id) != *d) {
    m_psr->forget(id);  // destroyed (or rebuilt) meanwhile: its memory is going
    return make_error("domain {} went away while monitoring was attached", id);
  }
  return {};
}

Result<std::shared_ptr<Domain>> DomainManager::find(uint32_t id) {
  std::lock_guard lock(m_mutex);
  auto it = m_domains.find(id);
  if (it == m_domains.end()) return make_error("no domain with id {}", id);
  return it->second;
}

std::shared_ptr<Domain> DomainManager::get(uint32_t id) {
  auto d = find(id);
  return d ? *d : nullptr;
}

Result<uint32_t> DomainManager::lookup(const std::string& key) {
  uint32_t id = 0;
  const auto [ptr, ec] = std::from_chars(key.data(), key.data() + key.size(), id);
  std::lock_guard lock(m_mutex);
  if (ec == std::errc() && ptr == key.data() + key.size() && m_domains.count(id)) return id;
  for (auto& [did, d] : m_domains) {
    if (d->name() == key) return did;
  }
  return make_error("no domain named or numbered '{}'", key);
}

Result<void> DomainManager::pause(uint32_t id) {
  auto d = find(id);
  if (!d) return std::unexpected(d.error());
  if ((*d)->state() != DomainState::kRunning) return make_error("domain {} is {}, not running", id, to_string((*d)->state()));
  m_sched.pause_domain(id);
  (*d)->machine().pause_clock();
  (*d)->set_state(DomainState::kPaused);
  return {};
}

Result<void> DomainManager::unpause(uint32_t id) {
  auto d = find(id);
  if (!d) return std::unexpected(d.error());
  if ((*d)->state() != DomainState::kPaused) return make_error("domain {} is {}, not paused", id, to_string((*d)->state()));
  (*d)->machine().resume_clock();
  (*d)->set_state(DomainState::kRunning);
  m_sched.unpause_domain(id);
  return {};
}

Result<void> DomainManager::shutdown(uint32_t id) {
  auto d = find(id);
  if (!d) return std::unexpected(d.error());
  (*d)->machine().stop(machine::StopReason::kPoweroff, "shut down by the toolstack");
  return {};
}

Result<void> DomainManager::reboot(uint32_t id) {
  auto d = find(id);
  if (!d) return std::unexpected(d.error());
  (*d)->machine().stop(machine::StopReason::kReset, "rebooted by the toolstack");
  return {};
}

void DomainManager::remove(uint32_t id) {
  std::shared_ptr<Domain> d;
  {
    std::lock_guard lock(m_mutex);
    auto it = m_domains.find(id);
    if (it == m_domains.end()) return;
    d = it->second;
  }
  d->set_state(DomainState::kDying);
  d->machine().stop(machine::StopReason::kHostError, "destroyed");
  m_sched.remove_domain(id);
  // The vTPM process ends with its domain (its state directory stays), not whenever the last
  // console or monitor session lets go of the Domain: a new domain may take the state at once.
  if (d->tpm()) d->tpm()->shutdown();
  if (m_psr) m_psr->forget(id);
  {
    std::lock_guard lock(m_mutex);
    m_domains.erase(id);
  }
  m_changed.notify_all();
}

Result<void> DomainManager::destroy(uint32_t id) {
  if (!find(id)) return make_error("no domain with id {}", id);
  remove(id);
  return {};
}

bool DomainManager::wait_gone(uint32_t id, std::chrono::milliseconds timeout) {
  std::unique_lock lock(m_mutex);
  return m_changed.wait_for(lock, timeout, [&] { return m_domains.count(id) == 0; });
}

void DomainManager::on_guest_stop(uint32_t id, const machine::Outcome& outcome) {
  {
    std::lock_guard lock(m_events_mutex);
    m_events.push_back({id, outcome});
  }
  m_events_cv.notify_all();
}

void DomainManager::reaper_loop() {
  sandbox::restrict_thread_or_abort(sandbox::ThreadClass::kApi);
  std::unique_lock lock(m_events_mutex);
  while (true) {
    m_events_cv.wait(lock, [&] { return m_quit || !m_events.empty(); });
    if (m_quit) return;
    StopEvent ev = std::move(m_events.front());
    m_events.pop_front();
    lock.unlock();

    auto d = get(ev.id);
    if (d && d->state() != DomainState::kDying) {
      // The guest's own stop picks the configured action (xl.cfg on_poweroff/on_reboot/on_crash).
      LifecycleAction action = LifecycleAction::kDestroy;
      DomainState preserved = DomainState::kShutdown;
      switch (ev.outcome.reason) {
        case machine::StopReason::kPoweroff: action = d->config().on_poweroff; break;
        case machine::StopReason::kReset: action = d->config().on_reboot; break;
        case machine::StopReason::kCrash:
        case machine::StopReason::kTimeout:
        case machine::StopReason::kHostError:
          action = d->config().on_crash;
          preserved = DomainState::kCrashed;
          break;
      }
      if (action == LifecycleAction::kPreserve) {
        m_sched.pause_domain(ev.id);
        d->set_state(preserved);
      } else if (action == LifecycleAction::kRestart) {
        const DomainConfig config = d->config();
        m_sched.remove_domain(ev.id);
        if (m_psr) m_psr->forget(ev.id);  // its pages go; the rebuilt domain gets its config's settings
        // The same vTPM, reset as by a platform reset, so the new boot is measured afresh.
        std::shared_ptr<devices::TpmBackend> tpm = d->tpm();
        Result<std::unique_ptr<Domain>> fresh = make_error("unused");
        if (auto reset = tpm ? tpm->platform_reset() : Result<void>{}; !reset) {
          fresh = std::unexpected(reset.error());
        } else {
          fresh = Domain::create(ev.id, config, tpm);
        }
        std::lock_guard dl(m_mutex);
        if (fresh) {
          std::shared_ptr<Domain> nd = std::move(*fresh);
          if (m_psr) (void)m_psr->apply_config(ev.id, nd->machine().memory(), config);  // held at create
          m_domains[ev.id] = nd;
          start(nd);
        } else {
          // Cannot rebuild: the images vanished or changed, or the vTPM died.
          std::fprintf(stderr, "vigild: domain '%s' cannot restart: %s\n", config.name.c_str(),
                       fresh.error().message.c_str());
          if (tpm) tpm->shutdown();
          m_domains.erase(ev.id);
        }
      } else {
        remove(ev.id);
      }
      m_changed.notify_all();
    }
    lock.lock();
  }
}

std::vector<DomainInfo> DomainManager::list() {
  std::vector<std::shared_ptr<Domain>> doms;
  {
    std::lock_guard lock(m_mutex);
    for (auto& [id, d] : m_domains) doms.push_back(d);
  }
  std::vector<DomainInfo> out;
  for (auto& d : doms) {
    auto o = d->outcome();
    out.push_back({d->id(), d->name(), d->config().memory_mib, d->config().vcpus, d->state(),
                   m_sched.cpu_seconds(d->id()), o && d->state() != DomainState::kRunning ? o->message : ""});
  }
  return out;
}

Result<DomainInfo> DomainManager::info(uint32_t id) {
  for (auto& i : list()) {
    if (i.id == id) return i;
  }
  return make_error("no domain with id {}", id);
}

Result<std::vector<Scheduler::VcpuInfo>> DomainManager::vcpu_list(uint32_t id) {
  auto d = find(id);
  if (!d) return make_error("no domain with id {}", id);
  auto info = m_sched.vcpu_info(id);
  machine::Machine& m = (*d)->machine();
  for (auto& v : info) {
    if (v.vcpu < m.hart_count()) {
      if (const riscv::Jit* jit = m.hart(v.vcpu).jit()) v.translated_blocks = jit->blocks_translated();
    }
  }
  return info;
}

Result<void> DomainManager::vcpu_pin(uint32_t id, unsigned vcpu, const std::vector<unsigned>& workers) {
  auto d = find(id);
  if (!d) return std::unexpected(d.error());
  if (vcpu >= (*d)->config().vcpus) return make_error("domain {} has no vCPU {}", id, vcpu);
  for (unsigned w : workers) {
    if (w >= m_sched.workers()) return make_error("there is no worker CPU {} (workers: 0-{})", w, m_sched.workers() - 1);
  }
  m_sched.pin(id, vcpu, workers);
  return {};
}

Result<SchedParams> DomainManager::sched_credit(uint32_t id) {
  if (!find(id)) return make_error("no domain with id {}", id);
  return m_sched.params(id);
}

Result<void> DomainManager::set_sched_credit(uint32_t id, std::optional<unsigned> weight, std::optional<unsigned> cap) {
  auto d = find(id);
  if (!d) return std::unexpected(d.error());
  SchedParams p = m_sched.params(id);
  if (weight) {
    if (*weight < 1 || *weight > 65535) return make_error("weight must be 1..65535, not {}", *weight);
    p.weight = *weight;
  }
  if (cap) {
    if (*cap > 100 * (*d)->config().vcpus) return make_error("cap must be 0..{}, not {}", 100 * (*d)->config().vcpus, *cap);
    p.cap = *cap;
  }
  m_sched.set_params(id, p);
  return {};
}

}  // namespace vigil::hv
