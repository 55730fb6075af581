#include "vtpm/swtpm.h"
#include "vtpm/sealing.h"
#include "vtpm/swtpm_state.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
extern "C" {  // glibc 2.36's <sys/pidfd.h> lacks the C++ guards
#include <sys/pidfd.h>
}
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>

namespace vigil::vtpm {

namespace {

constexpr int kChildCtrl = 4;  // the fd swtpm finds its control channel on
constexpr int kChildKey = 5;   // the fd swtpm reads its state key from
constexpr int kHighFd = 64;    // where the child parks fds before placing them
constexpr uint32_t kCmdSetDatafd = 0x10;  // hands swtpm its data channel (SCM_RIGHTS), as QEMU does
constexpr size_t kMaxResponse = 4096;
constexpr unsigned kStartTimeoutMs = 5000;
// Run as root, vigild gives each vTPM's swtpm a uid (and gid) of its own from this range,
// owning only its state directory (0700): the process cannot read or write another
// domain's state or anything else not world-accessible. The uid is the state directory's
// owner once assigned, so it is stable across restarts.
constexpr uid_t kUidBase = 0x5654'0000, kUidCount = 0x1'0000;

Result<uid_t> state_owner(const std::string& dir) {
  struct stat st{};
  if (::stat(dir.c_str(), &st) != 0) return make_error("cannot stat vTPM state directory '{}': {}", dir, std::strerror(errno));
  if (st.st_uid >= kUidBase && st.st_uid < kUidBase + kUidCount) return st.st_uid;
  uint16_t r = 0;
  if (::getentropy(&r, sizeof(r)) != 0) return make_error("getentropy failed: {}", std::strerror(errno));
  const uid_t uid = kUidBase + r;
  // Existing state files (created by an earlier unprivileged run) change owner with the directory.
  std::error_code ec;
  // The sealed state key stays root's (vtpm/sealing.h): swtpm gets the key, not the blob.
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    if (e.path().filename() != kSealedKeyFile) ::chown(e.path().c_str(), uid, uid);
  }
  if (::chown(dir.c_str(), uid, uid) != 0) {
    return make_error("cannot give vTPM state directory '{}' to uid {}: {}", dir, uid, std::strerror(errno));
  }
  return uid;
}

std::string find_program(const std::string& name) {
  if (name.find('/') != std::string::npos) return ::access(name.c_str(), X_OK) == 0 ? name : "";
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    const size_t end = std::min(dirs.find(':', start), dirs.size());
    std::string candidate = dirs.substr(start, end - start) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return "";
}

void put_be32(std::vector<uint8_t>& v, uint32_t x) {
  for (int s = 24; s >= 0; s -= 8) v.push_back(static_cast<uint8_t>(x >> s));
}

uint32_t get_be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

}  // namespace

Result<std::shared_ptr<Swtpm>> Swtpm::start(const Options& options) {
  std::shared_ptr<Swtpm> s(new Swtpm(options));
  std::lock_guard lock(s->m_mutex);
  if (auto r = s->launch_locked(options); !r) return std::unexpected(r.error());
  return s;
}

std::shared_ptr<Swtpm> Swtpm::pending(const Options& options) {
  Options o = options;
  o.state_key.clear();  // launch() brings it
  std::shared_ptr<Swtpm> s(new Swtpm(std::move(o)));
  s->m_started = false;
  return s;
}

Result<void> Swtpm::launch(std::vector<uint8_t> state_key) {
  std::unique_lock lock(m_mutex);
  Options o = m_options;
  o.state_key = std::move(state_key);
  auto r = launch_locked(o);
  if (!o.state_key.empty()) explicit_bzero(o.state_key.data(), o.state_key.size());
  m_options.state_key.clear();
  if (!r) m_start_error = r.error();
  m_started = true;
  lock.unlock();
  m_started_cv.notify_all();
  return r;
}

void Swtpm::fail(Error why) {
  {
    std::lock_guard lock(m_mutex);
    m_start_error = std::move(why);
    m_started = true;
  }
  m_started_cv.notify_all();
}

void Swtpm::wait_started(std::unique_lock<std::mutex>& lock) {
  m_started_cv.wait(lock, [&] { return m_started; });
}

Result<void> Swtpm::wait_ready() {
  std::unique_lock lock(m_mutex);
  wait_started(lock);
  if (m_start_error) return std::unexpected(*m_start_error);
  return {};
}

Result<void> Swtpm::launch_locked(const Options& options) {
  if (options.state_dir.empty()) return make_error("a vTPM needs a state directory");
  std::error_code ec;
  std::filesystem::create_directories(options.state_dir, ec);
  if (ec) return make_error("cannot create vTPM state directory '{}': {}", options.state_dir, ec.message());
  ::chmod(options.state_dir.c_str(), 0700);
  uid_t uid = 0;
  if (::geteuid() == 0) {
    auto owner = state_owner(options.state_dir);
    if (!owner) return std::unexpected(owner.error());
    uid = *owner;
  }
  const std::string program = find_program(options.program);
  if (program.empty()) return make_error("cannot find '{}' for the vTPM (install Debian's swtpm package)", options.program);

  int data[2], ctrl[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, data) != 0) {
    return make_error("cannot create the vTPM data socket: {}", std::strerror(errno));
  }
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ctrl) != 0) {
    ::close(data[0]), ::close(data[1]);
    return make_error("cannot create the vTPM control socket: {}", std::strerror(errno));
  }
  std::vector<std::string> args = {program, "socket", "--tpm2",
                                   // Relative: the child enters the directory before it drops root, so the
                                   // swtpm uid needs no search permission on the directories above it.
                                   "--tpmstate", std::string("dir=") + (uid != 0 ? "." : options.state_dir) + ",mode=0600",
                                   "--ctrl", fmt::format("type=unixio,clientfd={}", kChildCtrl),
                                   "--flags", "not-need-init,startup-clear",
                                   "--seccomp", "action=kill"};
  int key_pipe[2] = {-1, -1};
  if (!options.state_key.empty()) {
    // The key travels through a pipe (the child's fd kChildKey); the pipe buffer holds it whole.
    if (::pipe2(key_pipe, O_CLOEXEC) != 0) {
      for (int fd : {data[0], data[1], ctrl[0], ctrl[1]}) ::close(fd);
      return make_error("cannot create the vTPM key pipe: {}", std::strerror(errno));
    }
    const ssize_t n = ::write(key_pipe[1], options.state_key.data(), options.state_key.size());
    ::close(key_pipe[1]);
    if (n != static_cast<ssize_t>(options.state_key.size())) {
      for (int fd : {data[0], data[1], ctrl[0], ctrl[1], key_pipe[0]}) ::close(fd);
      return make_error("cannot pass the vTPM state key to swtpm: {}", std::strerror(errno));
    }
    args.push_back("--key");
    args.push_back(fmt::format("fd={},mode=aes-256-cbc,format=binary", kChildKey));
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    for (int fd : {data[0], data[1], ctrl[0], ctrl[1]}) ::close(fd);
    return make_error("cannot start swtpm for vTPM '{}': fork failed: {}", options.label, std::strerror(errno));
  }
  if (pid == 0) {
    // Child: only async-signal-safe calls until exec.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    // Park both fds above the targets first, so placing one cannot overwrite the other.
    const int c = ::fcntl(ctrl[1], F_DUPFD, kHighFd);
    const int k = key_pipe[0] >= 0 ? ::fcntl(key_pipe[0], F_DUPFD, kHighFd) : -1;
    if (c < 0 || (key_pipe[0] >= 0 && k < 0)) ::_exit(127);
    if (::dup2(c, kChildCtrl) < 0) ::_exit(127);
    if (k >= 0 && ::dup2(k, kChildKey) < 0) ::_exit(127);
    ::close_range(k >= 0 ? kChildKey + 1 : kChildCtrl + 1, ~0u, 0);
    ::close_range(0, 0, 0);  // stdin: swtpm reads nothing from the terminal
    if (uid != 0 && (::chdir(options.state_dir.c_str()) != 0 || ::setgroups(0, nullptr) != 0 || ::setresgid(uid, uid, uid) != 0 || ::setresuid(uid, uid, uid) != 0)) {
      ::_exit(126);
    }
    // A credential change clears the parent-death signal (prctl(2)): set it again, and make
    // sure vigild did not die in between.
    if (uid != 0 && (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != parent)) ::_exit(127);
    ::execv(program.c_str(), argv.data());
    ::_exit(127);
  }
  ::close(ctrl[1]);
  if (key_pipe[0] >= 0) ::close(key_pipe[0]);
  // swtpm holds the key now; vigild keeps no copy.
  if (!this->m_options.state_key.empty()) explicit_bzero(this->m_options.state_key.data(), this->m_options.state_key.size());
  this->m_options.state_key.clear();
  this->m_pidfd = ::pidfd_open(pid, 0);  // the child cannot be reaped before this: nobody waits for it yet
  if (this->m_pidfd < 0) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    for (int fd : {data[0], data[1], ctrl[0]}) ::close(fd);
    return make_error("cannot watch swtpm for vTPM '{}': pidfd_open failed: {}", options.label, std::strerror(errno));
  }
  this->m_encrypted = !options.state_key.empty();
  this->m_pid = pid;
  this->m_data = data[0];
  this->m_ctrl = ctrl[0];
  // CMD_SET_DATAFD: the data channel's far end travels to swtpm over the control channel.
  {
    uint8_t code[4] = {0, 0, 0, static_cast<uint8_t>(kCmdSetDatafd)};
    iovec iov{code, sizeof(code)};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &data[1], sizeof(int));
    const ssize_t n = ::sendmsg(this->m_ctrl, &msg, MSG_NOSIGNAL);
    ::close(data[1]);
    if (n != static_cast<ssize_t>(sizeof(code))) {
      return make_error("swtpm for vTPM '{}' did not start: {}", options.label, this->exit_reason());
    }
    std::vector<uint8_t> reply;
    this->m_options.timeout_ms = kStartTimeoutMs;
    auto r = this->transfer(this->m_ctrl, {}, reply, 4);
    this->m_options.timeout_ms = options.timeout_ms;
    if (!r) return make_error("swtpm for vTPM '{}' did not take its data channel: {}", options.label, r.error().message);
    if (get_be32(reply.data()) != 0) {
      return make_error("swtpm for vTPM '{}' refused its data channel (result {:#x})", options.label, get_be32(reply.data()));
    }
  }
  return {};
}

Swtpm::~Swtpm() {
  std::lock_guard lock(m_mutex);
  stop_locked();  // a pending start holds a reference: it has ended by now
}

void Swtpm::shutdown() {
  std::unique_lock lock(m_mutex);
  wait_started(lock);
  stop_locked();
}

void Swtpm::stop_locked() {
  m_stopped = true;
  if (m_ctrl >= 0) ::close(m_ctrl);  // swtpm exits when its control client goes away
  if (m_data >= 0) ::close(m_data);
  m_ctrl = m_data = -1;
  if (m_pid > 0 && !m_reaped) {
    for (int i = 0; i < 100; ++i) {
        if (reap(false)) return;
      if (i == 20) ::pidfd_send_signal(m_pidfd, SIGTERM, nullptr, 0);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ::pidfd_send_signal(m_pidfd, SIGKILL, nullptr, 0);
    reap(true);
  }
}

std::string Swtpm::status() {
  std::unique_lock lock(m_mutex, std::try_to_lock);
  if (!lock) return "running (busy)";  // a command is executing: never wait for it here
  if (!m_started) return "starting";
  if (m_start_error) return "failed to start";
  if (m_stopped) return "stopped";
  if (!reap(false)) return m_broken ? "not answering" : "running";
  if (WIFSIGNALED(m_status)) return fmt::format("killed by signal {}", WTERMSIG(m_status));
  return fmt::format("exited with status {}", WEXITSTATUS(m_status));
}

// Through the pidfd only (waitid P_PIDFD): vigild's sandboxed threads may reap and signal
// their own swtpm processes and nothing else (base/sandbox.cpp, the API class).
bool Swtpm::reap(bool block) {
  if (m_reaped) return true;
  if (m_pidfd < 0) return false;
  siginfo_t info{};
  for (;;) {
    const int rc = ::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(m_pidfd), &info, WEXITED | (block ? 0 : WNOHANG));
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0 || info.si_pid == 0) return false;
    break;
  }
  m_reaped = true;
  // As a wait(2) status, so WIFSIGNALED() and friends read it.
  m_status = info.si_code == CLD_EXITED ? (info.si_status & 0xff) << 8 : info.si_status & 0x7f;
  ::close(m_pidfd);
  m_pidfd = -1;
  return true;
}

bool Swtpm::alive() {
  return !reap(false);
}

std::string Swtpm::exit_reason() {
  for (int i = 0; i < 20 && alive(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  if (!m_reaped) return "it stopped answering";
  if (WIFSIGNALED(m_status)) return fmt::format("it was killed by signal {}", WTERMSIG(m_status));
  return fmt::format("it exited with status {}", WEXITSTATUS(m_status));
}

std::string Swtpm::describe() const { return fmt::format("swtpm (pid {}) of vTPM '{}'", m_pid, m_options.label); }

Result<void> Swtpm::transfer(int fd, std::span<const uint8_t> out, std::vector<uint8_t>& in, size_t fixed_reply) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(m_options.timeout_ms);
  auto wait = [&](short events) -> Result<void> {
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return make_error("no answer within {} ms", m_options.timeout_ms);
      pollfd p{fd, events, 0};
      const int n = ::poll(&p, 1, static_cast<int>(left.count()));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return make_error("poll failed: {}", std::strerror(errno));
      if (n > 0) return {};
    }
  };
  size_t done = 0;
  while (done < out.size()) {
    if (auto r = wait(POLLOUT); !r) return r;
    const ssize_t n = ::send(fd, out.data() + done, out.size() - done, MSG_NOSIGNAL);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) return make_error("{}", exit_reason());
    done += static_cast<size_t>(n);
  }
  in.clear();
  size_t want = fixed_reply ? fixed_reply : 6;
  while (in.size() < want) {
    if (auto r = wait(POLLIN); !r) return r;
    uint8_t buf[kMaxResponse];
    const ssize_t n = ::recv(fd, buf, std::min(sizeof(buf), want - in.size()), 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) return make_error("{}", exit_reason());
    in.insert(in.end(), buf, buf + n);
    if (!fixed_reply && want == 6 && in.size() >= 6) {
      want = get_be32(in.data() + 2);
      if (want < 10 || want > kMaxResponse) return make_error("it sent a response declaring {} bytes", want);
    }
  }
  return {};
}

Result<std::vector<uint8_t>> Swtpm::execute(std::span<const uint8_t> command) {
  std::unique_lock lock(m_mutex);
  wait_started(lock);
  if (m_start_error) return std::unexpected(*m_start_error);
  if (m_stopped) return make_error("{} was stopped with its domain", describe());
  if (m_broken) return make_error("{} failed earlier and no longer serves commands ({})", describe(), exit_reason());
  std::vector<uint8_t> response;
  if (auto r = transfer(m_data, command, response, 0); !r) {
    m_broken = true;
    return make_error("{}: {}", describe(), r.error().message);
  }
  return response;
}

Result<void> Swtpm::platform_reset() {
  if (auto r = init(); !r) return r;
  // TPM2_Startup(TPM_SU_CLEAR): what firmware sends after a reset, before it measures.
  static constexpr uint8_t kStartup[] = {0x80, 0x01, 0, 0, 0, 0x0c, 0, 0, 0x01, 0x44, 0, 0};
  auto r = execute(kStartup);
  if (!r) return make_error("{} failed TPM2_Startup after a reset: {}", describe(), r.error().message);
  const uint32_t rc = get_be32(r->data() + 6);
  if (rc != 0 && rc != 0x100) return make_error("{} refused TPM2_Startup after a reset (TPM result {:#x})", describe(), rc);
  return {};
}

Result<void> Swtpm::init() {
  std::unique_lock lock(m_mutex);
  wait_started(lock);
  if (m_start_error) return std::unexpected(*m_start_error);
  if (m_stopped || m_broken) return make_error("{} no longer runs", describe());
  std::vector<uint8_t> req, reply;
  put_be32(req, kCmdInit);
  put_be32(req, 0);  // init flags: keep the volatile state file out of it
  if (auto r = transfer(m_ctrl, req, reply, 4); !r) return make_error("{} failed CMD_INIT: {}", describe(), r.error().message);
  if (const uint32_t rc = get_be32(reply.data()); rc != 0) return make_error("{} failed CMD_INIT with TPM result {:#x}", describe(), rc);
  return {};
}

Result<uint32_t> Swtpm::control_locked(uint32_t code, std::span<const uint8_t> body, const char* what) {
  std::vector<uint8_t> req, reply;
  put_be32(req, code);
  req.insert(req.end(), body.begin(), body.end());
  if (auto r = transfer(m_ctrl, req, reply, 4); !r) {
    m_broken = true;
    return make_error("{} failed {}: {}", describe(), what, r.error().message);
  }
  return get_be32(reply.data());
}

Result<std::vector<uint8_t>> Swtpm::save_state() {
  std::unique_lock lock(m_mutex);
  wait_started(lock);
  if (m_start_error) return std::unexpected(*m_start_error);
  if (m_stopped || m_broken) return make_error("{} no longer runs", describe());
  // swtpm's TPM_RETRY: the blob's file does not exist (no savestate without TPM2_Shutdown(STATE)).
  constexpr uint32_t kTpmRetry = 0x800;
  SwtpmState state;
  for (uint32_t type : {kBlobPermanent, kBlobVolatile, kBlobSavestate}) {
    std::vector<uint8_t> req, head, body;
    put_be32(req, kCmdGetStateblob);
    put_be32(req, 0);     // state_flags: not decrypted, so encrypted with the state key if there is one
    put_be32(req, type);
    put_be32(req, 0);     // offset: the whole blob in one answer (a socket, not CUSE)
    if (auto r = transfer(m_ctrl, req, head, 16); !r) {
      m_broken = true;
      return make_error("{} failed CMD_GET_STATEBLOB ({}): {}", describe(), blob_name(type), r.error().message);
    }
    const uint32_t rc = get_be32(head.data()), flags = get_be32(head.data() + 4), length = get_be32(head.data() + 12);
    if (rc == kTpmRetry && type == kBlobSavestate && length == 0) {
      state.blobs.push_back({type, 0, {}});
      continue;
    }
    if (rc != 0) return make_error("{} refused CMD_GET_STATEBLOB ({}) with TPM result {:#x}", describe(), blob_name(type), rc);
    if (length > kMaxBlob) {
      m_broken = true;
      return make_error("{} announced a {} blob of {} bytes, more than {}", describe(), blob_name(type), length, kMaxBlob);
    }
    if (length > 0) {
      if (auto r = transfer(m_ctrl, {}, body, length); !r) {
        m_broken = true;
        return make_error("{} failed CMD_GET_STATEBLOB ({}): {}", describe(), blob_name(type), r.error().message);
      }
    }
    if (m_encrypted && length > 0 && !(flags & kBlobFlagEncrypted))
      return make_error("{} returned its {} blob unencrypted although it has a state key", describe(), blob_name(type));
    state.blobs.push_back({type, flags & kBlobFlagEncrypted, std::move(body)});
  }
  return format_swtpm_state(state);
}

Result<void> Swtpm::load_state(std::span<const uint8_t> bytes) {
  auto state = parse_swtpm_state(bytes);
  if (!state) return make_error("the vTPM state is malformed: {}", state.error().message);
  std::unique_lock lock(m_mutex);
  wait_started(lock);
  if (m_start_error) return std::unexpected(*m_start_error);
  if (m_stopped || m_broken) return make_error("{} no longer runs", describe());
  bool any_encrypted = false;
  for (const StateBlob& b : state->blobs) any_encrypted |= (b.flags & kBlobFlagEncrypted) != 0;
  if (any_encrypted && !m_encrypted) {
    return make_error("the vTPM state is encrypted with the domain's sealed state key, but this vTPM has no state key "
                      "(restore on a vigild with --host-tpm and the domain's vtpm-key.sealed in its state directory)");
  }
  auto rc = control_locked(kCmdStop, {}, "CMD_STOP");
  if (!rc) return std::unexpected(rc.error());
  if (*rc != 0) return make_error("{} refused CMD_STOP with TPM result {:#x}", describe(), *rc);
  for (const StateBlob& b : state->blobs) {
    std::vector<uint8_t> body;
    put_be32(body, b.flags);
    put_be32(body, b.type);
    put_be32(body, static_cast<uint32_t>(b.data.size()));
    body.insert(body.end(), b.data.begin(), b.data.end());
    rc = control_locked(kCmdSetStateblob, body, "CMD_SET_STATEBLOB");
    if (!rc) return std::unexpected(rc.error());
    if (*rc != 0) {
      return make_error("{} refused the {} blob with TPM result {:#x} (encrypted with another state key, or corrupt)",
                        describe(), blob_name(b.type), *rc);
    }
  }
  std::vector<uint8_t> flags;
  put_be32(flags, 0);  // keep the volatile state just set: resume, do not reset
  rc = control_locked(kCmdInit, flags, "CMD_INIT");
  if (!rc) return std::unexpected(rc.error());
  if (*rc != 0) return make_error("{} could not resume from the loaded state (CMD_INIT: TPM result {:#x})", describe(), *rc);
  return {};
}

}  // namespace vigil::vtpm
