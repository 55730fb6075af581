// vigil: the command-line front end. `vigil run` boots one guest in the foreground with
// its console on stdin/stdout and exits with the guest's power-off.
#include <poll.h>
#include <termios.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdio>
#include <optional>
#include <thread>

#include "machine/machine.h"

namespace {

using vigil::machine::StopReason;

// Exit statuses of `vigil run`.
constexpr int kExitPoweroff = 0, kExitHostError = 1, kExitReset = 2, kExitCrash = 3, kExitTimeout = 4;
constexpr unsigned char kCtrlA = 0x01;

// Puts a terminal on stdin into raw mode for the guest's console and restores it on exit.
class RawTerminal {
 public:
  RawTerminal() {
    if (!::isatty(STDIN_FILENO) || ::tcgetattr(STDIN_FILENO, &m_saved) != 0) return;
    termios raw = m_saved;
    cfmakeraw(&raw);
    raw.c_oflag |= OPOST | ONLCR;  // keep "\n" -> "\r\n" for output the host prints
    if (::tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0) m_active = true;
  }
  ~RawTerminal() {
    if (m_active) ::tcsetattr(STDIN_FILENO, TCSANOW, &m_saved);
  }
  bool active() const { return m_active; }

 private:
  termios m_saved{};
  bool m_active = false;
};

void write_all(int fd, const uint8_t* data, size_t len) {
  while (len > 0) {
    const ssize_t n = ::write(fd, data, len);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      return;
    }
    data += n;
    len -= static_cast<size_t>(n);
  }
}

int run_command(const vigil::machine::MachineConfig& config, double timeout_s) {
  auto machine = vigil::machine::Machine::create(config, [](const uint8_t* d, size_t n) { write_all(STDOUT_FILENO, d, n); });
  if (!machine) {
    std::fprintf(stderr, "vigil: %s\n", machine.error().message.c_str());
    return kExitHostError;
  }
  RawTerminal term;
  std::atomic<bool> done{false};
  // Console input: stdin to the guest; on a terminal, Ctrl-A x quits (as in QEMU).
  std::thread input([&] {
    bool escape = false;
    while (!done) {
      pollfd pfd{STDIN_FILENO, POLLIN, 0};
      if (::poll(&pfd, 1, 100) <= 0) continue;
      uint8_t buf[256];
      const ssize_t n = ::read(STDIN_FILENO, buf, sizeof(buf));
      if (n <= 0) return;  // EOF: the guest just gets no more input
      for (ssize_t i = 0; i < n; ++i) {
        if (term.active() && escape && buf[i] == 'x') {
          (*machine)->stop(StopReason::kPoweroff, "console user quit with Ctrl-A x");
          return;
        }
        escape = term.active() && buf[i] == kCtrlA && !escape;
        if (!escape) (*machine)->console_input(&buf[i], 1);
      }
    }
  });
  std::optional<std::chrono::milliseconds> timeout;
  if (timeout_s > 0) timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  const auto outcome = (*machine)->run(timeout);
  done = true;
  input.join();
  switch (outcome.reason) {
    case StopReason::kPoweroff:
      return kExitPoweroff;
    case StopReason::kReset:
      std::fprintf(stderr, "\nvigil: %s (unexpected reset)\n", outcome.message.c_str());
      return kExitReset;
    case StopReason::kCrash:
      std::fprintf(stderr, "\nvigil: guest crashed: %s\n", outcome.message.c_str());
      return kExitCrash;
    case StopReason::kTimeout:
      std::fprintf(stderr, "\nvigil: %s\n", outcome.message.c_str());
      return kExitTimeout;
    case StopReason::kHostError:
      std::fprintf(stderr, "\nvigil: %s\n", outcome.message.c_str());
      return kExitHostError;
  }
  return kExitHostError;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Vigil: a RISC-V hypervisor"};
  app.require_subcommand(1);

  vigil::machine::MachineConfig config;
  double timeout_s = 0;
  CLI::App* run = app.add_subcommand("run", "Boot one guest in the foreground (console on stdin/stdout)");
  run->add_option("--kernel", config.kernel, "RISC-V Linux kernel Image")->required();
  run->add_option("--initrd", config.initrd, "initial ramdisk");
  run->add_option("--append", config.append, "kernel command line");
  run->add_option("--memory", config.memory_mib, "guest memory in MiB")->capture_default_str();
  run->add_option("--vcpus", config.vcpus, "number of virtual CPUs (1-8)")->capture_default_str();
  run->add_option("--firmware", config.firmware, "run this M-mode firmware (OpenSBI fw_dynamic.bin/fw_jump.bin) first");
  run->add_option("--timeout", timeout_s, "stop with an error if the guest runs longer than this many seconds");
  CLI11_PARSE(app, argc, argv);

  if (*run) return run_command(config, timeout_s);
  return kExitHostError;
}
