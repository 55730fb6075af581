// One swtpm process per vTPM (libtpms keeps one TPM per process: DESIGN.md "Processes
// outside vigild"). The process gets two connected Unix socketpairs, no socket paths: the
// data channel (raw TPM 2.0 commands and responses, `--server type=unixio,fd=3`) and the
// control channel (`--ctrl type=unixio,clientfd=4`, big-endian u32 command codes, see
// swtpm-ioctls(3)). It runs with its own state directory as its only file access (run as
// root, vigild gives it the uid owning that 0700 directory), its own seccomp profile
// (`--seccomp action=kill`), an optional state key through a pipe (`--key fd=5`), and dies
// with vigild (PR_SET_PDEATHSIG) or when the control channel closes. It is watched, signalled
// and reaped through a pidfd only, so sandboxed threads can do it (base/sandbox.cpp). A dead
// process is detected on the next command: execute() fails with one sentence naming the pid
// and how it ended.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/error.h"
#include "devices/tpm_tis.h"

namespace vigil::vtpm {

class Swtpm final : public devices::TpmBackend, public std::enable_shared_from_this<Swtpm> {
 public:
  struct Options {
    std::string state_dir;          // created (0700) if missing; holds tpm2-00.permall
    std::string label;              // for log lines, e.g. the domain's name
    std::string program = "swtpm";  // looked up on PATH
    unsigned timeout_ms = 60'000;   // per command (RSA key generation takes seconds)
    // AES-256 key for the state files (`--key fd=...,mode=aes-256-cbc`); empty = plaintext
    // state. Handed over through a pipe, never on the command line or on disk.
    std::vector<uint8_t> state_key;
    std::string host_tpm;           // informational (vtpm-list): the TCTI that sealed the key
  };
  // swtpm control channel codes (swtpm's tpm_ioctl.h).
  static constexpr uint32_t kCmdGetCapability = 1, kCmdInit = 2, kCmdShutdown = 3, kCmdGetStateblob = 0x0c,
                            kCmdSetStateblob = 0x0d, kCmdStop = 0x0e;

  static Result<std::shared_ptr<Swtpm>> start(const Options& options);
  // Asynchronous start (vtpm/provider.h): a Swtpm whose process another thread starts with
  // launch(), or fails with fail(). Until then every method waits for it, so a domain's board
  // can be built (RAM, kernel, hashing) while swtpm starts; wait_ready() gives the outcome.
  static std::shared_ptr<Swtpm> pending(const Options& options);
  Result<void> launch(std::vector<uint8_t> state_key);
  void fail(Error why);
  Result<void> wait_ready() override;
  ~Swtpm() override;
  Swtpm(const Swtpm&) = delete;
  Swtpm& operator=(const Swtpm&) = delete;

  Result<std::vector<uint8_t>> execute(std::span<const uint8_t> command) override;
  std::string describe() const override;
  // CMD_INIT then TPM2_Startup(CLEAR).
  Result<void> platform_reset() override;
  // Ends the process (its state is kept); later commands fail.
  void shutdown() override;

  // CMD_INIT: resets the TPM as a platform reset does (a guest reboot).
  Result<void> init();

  // Snapshots (vtpm/swtpm_state.h): CMD_GET_STATEBLOB of the permanent, volatile and savestate
  // blobs while the TPM runs (encrypted with the state key when there is one); the TPM keeps
  // running. The caller makes sure no command executes (the TIS is idle, the vCPUs paused).
  Result<std::vector<uint8_t>> save_state() override;
  // CMD_STOP, CMD_SET_STATEBLOB of each blob, then CMD_INIT keeping the volatile state: the
  // TPM resumes exactly where the saved one was (PCRs, NV, loaded objects), replacing whatever
  // it held. An encrypted state needs this swtpm to hold the same state key.
  Result<void> load_state(std::span<const uint8_t> bytes) override;
  pid_t pid() const { return m_pid; }
  // False once the process has exited (reaped here).
  bool alive();
  const std::string& state_dir() const { return m_options.state_dir; }
  const std::string& host_tpm() const { return m_options.host_tpm; }
  void set_host_tpm(std::string tcti) { m_options.host_tpm = std::move(tcti); }  // before launch()
  bool encrypted() const { return m_encrypted; }
  // "running", "stopped" or why the process ended ("killed by signal 9").
  std::string status();

 private:
  explicit Swtpm(Options options) : m_options(std::move(options)) {}
  Result<void> launch_locked(const Options& options);
  void wait_started(std::unique_lock<std::mutex>& lock);
  Result<void> transfer(int fd, std::span<const uint8_t> out, std::vector<uint8_t>& in, size_t fixed_reply);
  // One control command whose reply is a u32 TPM result (returned); a transport failure is an
  // error naming the command.
  Result<uint32_t> control_locked(uint32_t code, std::span<const uint8_t> body, const char* what);
  std::string exit_reason();
  void stop_locked();
  bool reap(bool block);  // true once the process has exited (and is reaped)

  Options m_options;
  pid_t m_pid = -1;
  int m_data = -1, m_ctrl = -1;
  int m_pidfd = -1;
  int m_status = 0;  // wait(2) status once reaped
  bool m_reaped = false;
  bool m_broken = false;  // a failed exchange leaves the byte stream out of step
  bool m_stopped = false;  // shutdown() ran
  bool m_encrypted = false;
  bool m_started = true;        // false while a pending start runs (launch/fail end it)
  std::optional<Error> m_start_error;
  std::condition_variable m_started_cv;
  std::mutex m_mutex;
};

}  // namespace vigil::vtpm
