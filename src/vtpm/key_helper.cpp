#include "vtpm/key_helper.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "vtpm/sealing.h"

namespace vigil::vtpm {

namespace {

constexpr size_t kMaxReply = 4096;

bool write_all(int fd, const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w, n -= static_cast<size_t>(w);
  }
  return true;
}

}  // namespace

Result<std::vector<uint8_t>> state_key_via_helper(const std::string& exe, const std::string& tcti,
                                                  const std::string& state_dir, uint32_t pcr_mask,
                                                  unsigned timeout_ms) {
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return make_error("cannot create the key helper's pipe: {}", std::strerror(errno));
  std::string flag = kKeyHelperFlag, t = tcti, d = state_dir, e = exe, m = std::to_string(pcr_mask);
  char* argv[] = {e.data(), flag.data(), t.data(), d.data(), m.data(), nullptr};
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(out[0]), ::close(out[1]);
    return make_error("cannot start the key helper: fork failed: {}", std::strerror(errno));
  }
  if (pid == 0) {
    // Only async-signal-safe calls until exec.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    const int null = ::open("/dev/null", O_RDWR);
    if (null < 0 || ::dup2(out[1], 1) < 0 || ::dup2(null, 0) < 0 || ::dup2(null, 2) < 0) ::_exit(127);
    ::close_range(3, ~0u, 0);
    ::execv(argv[0], argv);
    ::_exit(127);
  }
  ::close(out[1]);
  std::vector<uint8_t> reply;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  bool timed_out = false;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd p{out[0], POLLIN, 0};
    const int n = ::poll(&p, 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) continue;  // re-check the deadline
    uint8_t buf[512];
    const ssize_t r = ::read(out[0], buf, sizeof(buf));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;  // EOF: the helper is done
    reply.insert(reply.end(), buf, buf + r);
    if (reply.size() > kMaxReply) break;
  }
  ::close(out[0]);
  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) {
    if (!reply.empty()) explicit_bzero(reply.data(), reply.size());
    return make_error("host TPM '{}': no answer within {} s (the TPM or its TCTI hangs)", tcti, timeout_ms / 1000.0);
  }
  if (!reply.empty() && reply[0] == 'K' && reply.size() == 1 + kStateKeyBytes && WIFEXITED(status) &&
      WEXITSTATUS(status) == 0) {
    std::vector<uint8_t> key(reply.begin() + 1, reply.end());
    explicit_bzero(reply.data(), reply.size());
    return key;
  }
  if (!reply.empty() && reply[0] == 'E') return make_error("{}", std::string(reply.begin() + 1, reply.end()));
  if (WIFSIGNALED(status)) return make_error("host TPM '{}': the key helper was killed by signal {}", tcti, WTERMSIG(status));
  return make_error("host TPM '{}': the key helper '{}' failed (exit status {}) without saying why", tcti, exe,
                    WEXITSTATUS(status));
}

int key_helper_main(int argc, char** argv) {
  char* end = nullptr;
  const unsigned long mask = argc == 5 ? std::strtoul(argv[4], &end, 10) : 0;
  if (argc != 5 || *argv[4] == '\0' || *end != '\0' || mask > kHostPcrMask) {
    const char* msg = "Eusage: vigild --vtpm-key-helper TCTI STATE_DIR PCR_MASK";
    write_all(1, msg, std::strlen(msg));
    return 2;
  }
  ::setenv("TSS2_LOG", "all+NONE", 1);  // the parent reports the failure in one sentence
  auto key = state_key(argv[2], argv[3], static_cast<uint32_t>(mask));
  if (!key) {
    const std::string msg = "E" + key.error().message;
    write_all(1, msg.data(), msg.size());
    return 1;
  }
  std::vector<uint8_t> msg{'K'};
  msg.insert(msg.end(), key->begin(), key->end());
  const bool ok = write_all(1, msg.data(), msg.size());
  explicit_bzero(msg.data(), msg.size());
  explicit_bzero(key->data(), key->size());
  return ok ? 0 : 1;
}

}  // namespace vigil::vtpm
