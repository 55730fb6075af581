#include "vtpm/provider.h"

#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <future>

#include "vtpm/key_helper.h"
#include "vtpm/sealing.h"

namespace vigil::vtpm {

std::string Provider::default_root() {
  if (::geteuid() == 0) return "/var/lib/vigil/vtpm";
  return fmt::format("/tmp/vigil-{}/vtpm", ::getuid());
}

namespace {

// tpm2-tss logs every failed command to stderr itself; vigild reports each failure in one
// sentence instead. Set before any thread exists (setenv is not thread-safe).
Provider::Options quiet_tss(Provider::Options o) {
  if (!o.host_tcti.empty()) ::setenv("TSS2_LOG", "all+NONE", 0);
  return o;
}

}  // namespace

Provider::Provider(Options options) : m_options(quiet_tss(std::move(options))), m_launcher([this] { launcher_loop(); }) {}

Provider::~Provider() {
  {
    std::lock_guard lock(m_mutex);
    m_quit = true;
  }
  m_cv.notify_all();
  m_launcher.join();
}

void Provider::launcher_loop() {
  std::unique_lock lock(m_mutex);
  for (;;) {
    m_cv.wait(lock, [&] { return m_quit || !m_jobs.empty(); });
    if (m_jobs.empty()) return;  // quitting, nothing left to run
    auto job = std::move(m_jobs.front());
    m_jobs.pop_front();
    lock.unlock();
    job();
    lock.lock();
  }
}

std::string Provider::state_dir_for(const std::string& domain, const std::string& configured) const {
  if (!configured.empty()) return configured;
  return m_options.root_dir + "/" + domain;
}

Result<std::shared_ptr<Swtpm>> Provider::open(const std::string& domain, const std::string& configured_state_dir) {
  const std::string dir = state_dir_for(domain, configured_state_dir);
  // Started on the launcher thread while the caller builds the domain's board; the Swtpm's
  // methods (the first measurement) and wait_ready() wait for the outcome.
  auto tpm = Swtpm::pending({.state_dir = dir, .label = domain, .program = m_options.swtpm});
  {
    std::lock_guard lock(m_mutex);
    if (m_quit) return make_error("vTPM of domain '{}': vigild is shutting down", domain);
    m_jobs.emplace_back([this, tpm, domain, dir] {
      if (auto r = start(domain, dir, *tpm); !r) tpm->fail(r.error());
    });
  }
  m_cv.notify_all();
  return tpm;
}

Result<void> Provider::start(const std::string& domain, const std::string& state_dir, Swtpm& tpm) {
  std::error_code ec;
  std::string canonical = std::filesystem::weakly_canonical(state_dir, ec).string();
  if (ec || canonical.empty()) canonical = state_dir;
  for (auto it = m_in_use.begin(); it != m_in_use.end();) {
    auto t = it->second.tpm.lock();
    const std::string status = t ? t->status() : "stopped";
    if (status.starts_with("running") || status == "not answering") {
      if (it->first == canonical) {
        return make_error("vTPM of domain '{}': state directory '{}' is in use by domain '{}'", domain, state_dir,
                          it->second.domain);
      }
      ++it;
    } else {
      it = m_in_use.erase(it);
    }
  }
  std::vector<uint8_t> key;
  const bool sealed = std::filesystem::exists(state_dir + "/" + kSealedKeyFile, ec);
  if (m_options.host_tcti.empty()) {
    if (sealed) {
      return make_error("vTPM of domain '{}': its state in '{}' is sealed to a host TPM; start vigild with --host-tpm",
                        domain, state_dir);
    }
  } else {
    auto k = m_options.key_helper.empty()
                 ? state_key(m_options.host_tcti, state_dir, m_options.host_pcr_mask)
                 : state_key_via_helper(m_options.key_helper, m_options.host_tcti, state_dir, m_options.host_pcr_mask,
                                        m_options.host_tpm_timeout_ms);
    if (!k) return make_error("vTPM of domain '{}': {}", domain, k.error().message);
    key = std::move(*k);
    tpm.set_host_tpm(m_options.host_tcti);
  }
  auto r = tpm.launch(std::move(key));
  if (!r) return make_error("vTPM of domain '{}': {}", domain, r.error().message);
  m_in_use[canonical] = {tpm.shared_from_this(), domain};
  return {};
}

}  // namespace vigil::vtpm
