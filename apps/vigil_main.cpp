// vigil: the command-line front end. `vigil run` boots one guest in the foreground with
// its console on stdin/stdout and exits with the guest's power-off.
#include <poll.h>
#include "cli_common.h"
#include <termios.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <filesystem>
#include <map>
#include <cstdio>
#include <optional>
#include <thread>

#include "base/sandbox.h"
#include "riscv/jit.h"
#include "cli_introspect.h"
#include "cli_monitor.h"
#include "cli_vtpm.h"
#include "cli_snapshot.h"
#include "cli_migrate.h"
#include "cli_psr.h"
#include "machine/machine.h"
#include "toolstack/api.h"
#include "vtpm/swtpm.h"

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

using vigil::toolstack::Json;

using vigil::cli::call;

std::vector<unsigned> parse_cpu_list(const std::string& text, bool& ok) {
  // "all", "0", "0-3", "0,2-3"
  std::vector<unsigned> out;
  ok = true;
  if (text == "all") return out;
  size_t pos = 0;
  while (pos <= text.size()) {
    const size_t comma = text.find(',', pos);
    const std::string part = text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    unsigned lo = 0, hi = 0;
    char dash = 0;
    const int n = std::sscanf(part.c_str(), "%u%c%u", &lo, &dash, &hi);
    if (n == 1) {
      hi = lo;
    } else if (n != 3 || dash != '-' || hi < lo || hi - lo > 64) {
      ok = false;
      return out;
    }
    for (unsigned c = lo; c <= hi; ++c) out.push_back(c);
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return out;
}

int print_list(const Json& answer, bool with_migration = false) {
  std::printf("%-32s %5s %7s %5s %-9s %9s\n", "Name", "ID", "Mem", "VCPUs", "State", "Time(s)");
  for (const auto& d : answer["domains"]) {
    std::printf("%-32s %5u %7llu %5u %-9s %9.1f\n", d["name"].get<std::string>().c_str(), d["id"].get<unsigned>(),
                static_cast<unsigned long long>(d["memory_mib"].get<uint64_t>()), d["vcpus"].get<unsigned>(),
                d["state"].get<std::string>().c_str(), d["cpu_seconds"].get<double>());
    if (with_migration && d.contains("migration")) {
      const Json& m = d["migration"];
      std::printf("    migration: %s, round %u, %llu bytes sent, %llu dirty pages left\n",
                  m.value("phase", std::string("?")).c_str(), m.value("round", 0u),
                  static_cast<unsigned long long>(m.value("bytes_sent", uint64_t{0})),
                  static_cast<unsigned long long>(m.value("dirty_pages", uint64_t{0})));
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Vigil: a RISC-V hypervisor"};
  app.require_subcommand(1);

  vigil::machine::MachineConfig config;
  double timeout_s = 0;
  CLI::App* run = app.add_subcommand("run", "Boot one guest in the foreground (console on stdin/stdout)");
  run->add_option("--kernel", config.kernel, "RISC-V Linux kernel Image; with --firmware, any S-mode payload (raw binary or ELF, e.g. U-Boot)")->required();
  run->add_option("--initrd", config.initrd, "initial ramdisk");
  run->add_option("--append", config.append, "kernel command line");
  run->add_option("--memory", config.memory_mib, "guest memory in MiB")->capture_default_str();
  run->add_option("--vcpus", config.vcpus, "number of virtual CPUs (1-8)")->capture_default_str();
  run->add_option("--firmware", config.firmware, "run this M-mode firmware (OpenSBI fw_dynamic.bin/fw_jump.bin) first");
  run->add_option("--timeout", timeout_s, "stop with an error if the guest runs longer than this many seconds");
  std::vector<std::string> disks;
  run->add_option("--disk", disks, "virtio-blk disk: a raw image FILE, or FILE,ro for read-only (repeatable)");
  run->add_flag("--rng", config.rng, "add a virtio-rng device fed by the host's getrandom");
  std::vector<std::string> nets, hostfwds;
  run->add_option("--net", nets, "virtio-net NIC: user (libslirp: guest 10.0.2.15, host 10.0.2.2) or tap=IFNAME (repeatable)");
  run->add_option("--hostfwd", hostfwds, "forward host TCP port to the first user NIC: HOSTPORT:GUESTPORT (repeatable)");
  run->add_flag("--virtio-console", config.virtio_console, "add a virtio-console (the guest's /dev/hvc1) on the console");
  std::string vtpm_dir;
  run->add_option("--vtpm", vtpm_dir, "add a TPM 2.0 (TIS) backed by a swtpm process keeping its state in DIR");
  bool no_sandbox = false;
  run->add_flag("--no-sandbox", no_sandbox, "run the network I/O thread without its seccomp filter");

  // xl-style verbs, talking to vigild.
  std::string socket = vigil::toolstack::default_socket_path();
  app.add_option("--socket", socket, "vigild's control socket")->capture_default_str();
  std::string cfg_path, domain, cpus_text;
  unsigned vcpu_index = 0;
  std::optional<unsigned> weight, cap;
  CLI::App* create = app.add_subcommand("create", "Create a domain from an xl.cfg-style config file");
  create->add_option("config", cfg_path, "config file")->required();
  CLI::App* list = app.add_subcommand("list", "List domains");
  bool list_long = false;
  list->add_flag("-l,--long", list_long, "also show each domain's live migration, if any");
  std::map<std::string, CLI::App*> simple;
  for (const char* verb : {"pause", "unpause", "shutdown", "reboot", "destroy"}) {
    CLI::App* c = app.add_subcommand(verb, std::string(verb) + " a domain");
    c->add_option("domain", domain, "domain name or id")->required();
    simple[verb] = c;
  }
  CLI::App* console = app.add_subcommand("console", "Attach to a domain's console (detach with Ctrl-])");
  console->add_option("domain", domain, "domain name or id")->required();
  CLI::App* vcpu_list = app.add_subcommand("vcpu-list", "List a domain's vCPUs");
  vcpu_list->add_option("domain", domain, "domain name or id")->required();
  CLI::App* vcpu_pin = app.add_subcommand("vcpu-pin", "Pin a vCPU to host worker CPUs");
  vcpu_pin->add_option("domain", domain, "domain name or id")->required();
  vcpu_pin->add_option("vcpu", vcpu_index, "vCPU number")->required();
  vcpu_pin->add_option("cpus", cpus_text, "worker CPUs: all, N, N-M, or a comma list")->required();
  CLI::App* sched = app.add_subcommand("sched-credit", "Get or set a domain's credit scheduler weight and cap");
  sched->add_option("-d,--domain", domain, "domain name or id")->required();
  sched->add_option("-w,--weight", weight, "weight (1-65535, default 256)");
  sched->add_option("-c,--cap", cap, "cap in percent of one CPU (0 = none)");

  // GDB stub (toolstack/api_gdb.h).
  std::string gdb_address = "127.0.0.1";
  unsigned gdb_port = 1234;
  CLI::App* gdbserver = app.add_subcommand("gdbserver", "Let gdb debug a domain: vigild listens for gdb's remote protocol");
  gdbserver->add_option("domain", domain, "domain name or id")->required();
  gdbserver->add_option("-p,--port", gdb_port, "TCP port (0: any free one; default 1234)")->check(CLI::Range(0, 65535));
  gdbserver->add_option("-a,--address", gdb_address, "IPv4 address to listen on (default 127.0.0.1)");
  CLI::App* gdbserver_stop = app.add_subcommand("gdbserver-stop", "Close a domain's gdbserver (a debugger on it detaches)");
  gdbserver_stop->add_option("domain", domain, "domain name or id")->required();
  CLI::App* gdbserver_list = app.add_subcommand("gdbserver-list", "List the domains' gdbservers");

  const auto run_introspect = vigil::cli::add_introspect_commands(app, socket);
  const auto run_monitor = vigil::cli::add_monitor_commands(app, socket);
  const auto run_vtpm = vigil::cli::add_vtpm_commands(app, socket);
  const auto run_snapshot = vigil::cli::add_snapshot_commands(app, socket);
  const auto run_migrate = vigil::cli::add_migrate_commands(app, socket);
  const auto run_psr = vigil::cli::add_psr_commands(app, socket);

  CLI11_PARSE(app, argc, argv);
  if (auto rc = run_introspect()) return *rc;
  if (auto rc = run_monitor()) return *rc;
  if (auto rc = run_vtpm()) return *rc;
  if (auto rc = run_snapshot()) return *rc;
  if (auto rc = run_migrate()) return *rc;
  if (auto rc = run_psr()) return *rc;

  for (const std::string& d : disks) {
    const bool ro = d.size() > 3 && d.ends_with(",ro");
    config.disks.push_back({ro ? d.substr(0, d.size() - 3) : d, ro});
  }
  for (const std::string& n : nets) {
    vigil::machine::NicSpec nic;
    if (n == "user") {
      nic.model = "user";
    } else if (n.starts_with("tap=") && n.size() > 4) {
      nic.model = "tap";
      nic.tap_name = n.substr(4);
    } else {
      std::fprintf(stderr, "vigil: --net takes user or tap=IFNAME, not '%s'\n", n.c_str());
      return kExitHostError;
    }
    config.nics.push_back(nic);
  }
  for (const std::string& f : hostfwds) {
    unsigned host = 0, guest = 0;
    char colon = 0;
    if (std::sscanf(f.c_str(), "%u%c%u", &host, &colon, &guest) != 3 || colon != ':' || host == 0 || host > 65535 ||
        guest == 0 || guest > 65535) {
      std::fprintf(stderr, "vigil: --hostfwd takes HOSTPORT:GUESTPORT, not '%s'\n", f.c_str());
      return kExitHostError;
    }
    auto user = std::find_if(config.nics.begin(), config.nics.end(), [](const auto& n) { return n.model == "user"; });
    if (user == config.nics.end()) {
      std::fprintf(stderr, "vigil: --hostfwd needs a --net user NIC\n");
      return kExitHostError;
    }
    user->forwards.emplace_back(static_cast<uint16_t>(host), static_cast<uint16_t>(guest));
  }
  if (*run) {
    vigil::sandbox::set_enabled(!no_sandbox);
    vigil::riscv::JitPool::instance();  // before any thread is sandboxed (see jit.h)
    if (!vtpm_dir.empty()) {
      auto tpm = vigil::vtpm::Swtpm::start({.state_dir = vtpm_dir, .label = vtpm_dir});
      if (!tpm) {
        std::fprintf(stderr, "vigil: %s\n", tpm.error().message.c_str());
        return kExitHostError;
      }
      config.tpm = std::move(*tpm);
    }
    return run_command(config, timeout_s);
  }
  if (*create) {
    std::error_code ec;
    const auto abs = std::filesystem::absolute(cfg_path, ec);
    auto r = call(socket, Json{{"op", "create"}, {"config", ec ? cfg_path : abs.string()}});
    if (!r) return 1;
    std::printf("created domain %s (id %u)\n", (*r)["name"].get<std::string>().c_str(), (*r)["id"].get<unsigned>());
    return 0;
  }
  if (*list) {
    auto r = call(socket, Json{{"op", "list"}});
    return r ? print_list(*r, list_long) : 1;
  }
  for (auto& [verb, c] : simple) {
    if (*c) return call(socket, Json{{"op", verb}, {"domain", domain}}) ? 0 : 1;
  }
  if (*console) {
    auto r = vigil::toolstack::api_console(socket, domain);
    if (!r) {
      std::fprintf(stderr, "vigil: %s\n", r.error().message.c_str());
      return 1;
    }
    return 0;
  }
  if (*vcpu_list) {
    auto r = call(socket, Json{{"op", "vcpu-list"}, {"domain", domain}});
    if (!r) return 1;
    std::printf("%-6s %-6s %-9s %9s %10s  %s\n", "VCPU", "CPU", "State", "Time(s)", "Blocks", "Affinity");
    for (const auto& v : (*r)["vcpus"]) {
      std::string aff;
      for (const auto& a : v["affinity"]) aff += (aff.empty() ? "" : ",") + std::to_string(a.get<unsigned>());
      const int worker = v["worker"].get<int>();
      std::printf("%-6u %-6s %-9s %9.1f %10llu  %s\n", v["vcpu"].get<unsigned>(),
                  worker < 0 ? "-" : std::to_string(worker).c_str(), v["state"].get<std::string>().c_str(),
                  v["cpu_seconds"].get<double>(), static_cast<unsigned long long>(v.value("translated_blocks", uint64_t{0})),
                  aff.empty() ? "all" : aff.c_str());
    }
    return 0;
  }
  if (*vcpu_pin) {
    bool ok = false;
    const auto cpus = parse_cpu_list(cpus_text, ok);
    if (!ok) {
      std::fprintf(stderr, "vigil: cannot read CPU list '%s' (use all, N, N-M or N,M)\n", cpus_text.c_str());
      return 1;
    }
    return call(socket, Json{{"op", "vcpu-pin"}, {"domain", domain}, {"vcpu", vcpu_index}, {"cpus", cpus}}) ? 0 : 1;
  }
  if (*gdbserver) {
    auto r = call(socket, Json{{"op", "gdbserver"}, {"domain", domain}, {"address", gdb_address}, {"port", gdb_port}});
    if (!r) return 1;
    const std::string where = fmt::format("{}:{}", (*r)["address"].get<std::string>(), (*r)["port"].get<unsigned>());
    std::printf("domain %s: gdbserver on %s\n  gdb-multiarch -ex 'target remote %s' vmlinux\n", domain.c_str(),
                where.c_str(), where.c_str());
    return 0;
  }
  if (*gdbserver_stop) return call(socket, Json{{"op", "gdbserver-stop"}, {"domain", domain}}) ? 0 : 1;
  if (*gdbserver_list) {
    auto r = call(socket, Json{{"op", "gdbserver-list"}});
    if (!r) return 1;
    std::printf("%-6s %-20s %-22s %s\n", "ID", "Name", "Address", "Debugger");
    for (const auto& s : (*r)["servers"]) {
      std::printf("%-6u %-20s %-22s %s\n", s["id"].get<unsigned>(), s["domain"].get<std::string>().c_str(),
                  fmt::format("{}:{}", s["address"].get<std::string>(), s["port"].get<unsigned>()).c_str(),
                  s["client"].get<bool>() ? "attached" : "-");
    }
    return 0;
  }
  if (*sched) {
    Json req{{"op", "sched-credit"}, {"domain", domain}};
    if (weight) req["weight"] = *weight;
    if (cap) req["cap"] = *cap;
    auto r = call(socket, req);
    if (!r) return 1;
    std::printf("%-6s %-7s %-4s\n", "ID", "Weight", "Cap");
    std::printf("%-6u %-7u %-4u\n", (*r)["id"].get<unsigned>(), (*r)["weight"].get<unsigned>(), (*r)["cap"].get<unsigned>());
    return 0;
  }
  return kExitHostError;
}
