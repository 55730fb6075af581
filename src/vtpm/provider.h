// vigild's vTPMs (issue 9, README "vTPM"): where each domain's TPM state lives, the host TPM
// that seals its state key (step 4), and the thread that starts the swtpm processes.
//
// vigild's API and reaper threads are sandboxed and may not create processes
// (base/sandbox.h), so each swtpm is started by the launcher thread, which vigild's main
// thread creates before any filter is installed: open() queues the start there and returns a
// pending Swtpm (its first command waits for the start). The launcher runs only this code, with the state directory and key as its inputs, and
// none of what a guest sends. Once started, a swtpm is used, stopped and reaped from any
// thread (through its pidfd, see swtpm.h).
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "base/error.h"
#include "vtpm/swtpm.h"

namespace vigil::vtpm {

class Provider {
 public:
  struct Options {
    std::string root_dir;      // a domain without its own state=DIR keeps its state in root_dir/<name>
    // tpm2-tss TCTI of the host TPM sealing the state keys (vtpm/sealing.h); "" = none: the
    // state is not encrypted, and a state sealed earlier is refused.
    std::string host_tcti;
    std::string swtpm = "swtpm";
    // Seal and unseal in this helper process (vtpm/key_helper.h; vigild: itself), killed after
    // host_tpm_timeout_ms; "" = in the launcher thread, without a deadline.
    std::string key_helper;
    unsigned host_tpm_timeout_ms = 30'000;
    uint32_t host_pcr_mask = 0;  // new keys unseal only while these host PCRs keep their values
  };
  // /var/lib/vigil/vtpm for root, else /tmp/vigil-UID/vtpm (beside the default socket).
  static std::string default_root();

  // Starts the launcher thread: construct it on a thread without a seccomp filter.
  explicit Provider(Options options);
  ~Provider();
  Provider(const Provider&) = delete;
  Provider& operator=(const Provider&) = delete;

  // The state directory of `domain`: `configured` if given, else root_dir/domain.
  std::string state_dir_for(const std::string& domain, const std::string& configured) const;
  // Starts the domain's swtpm (unsealing, or on first use creating and sealing, its state key
  // when a host TPM is configured) on the launcher thread and returns at once: the Swtpm is
  // pending until then (its commands wait; wait_ready() says how the start went, in one
  // sentence naming the domain), so the caller builds the board meanwhile.
  Result<std::shared_ptr<Swtpm>> open(const std::string& domain, const std::string& configured_state_dir);

  const Options& options() const { return m_options; }

 private:
  Result<void> start(const std::string& domain, const std::string& state_dir, Swtpm& tpm);
  void launcher_loop();

  Options m_options;
  // Launcher thread only: which domain's swtpm holds each (canonical) state directory, so a
  // second domain naming the same directory is refused in a sentence rather than by swtpm's lock.
  struct InUse {
    std::weak_ptr<Swtpm> tpm;
    std::string domain;
  };
  std::map<std::string, InUse> m_in_use;
  std::mutex m_mutex;
  std::condition_variable m_cv;
  std::deque<std::function<void()>> m_jobs;
  bool m_quit = false;
  std::thread m_launcher;
};

}  // namespace vigil::vtpm
