// The Vigil RISC-V virtual board: RAM, harts, CLINT, PLIC, UART, the finisher, a device
// tree and either the built-in SBI (direct kernel boot in S-mode, the PVH way) or real
// firmware in M-mode. Memory map: machine/layout.h.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "base/error.h"
#include "devices/clint.h"
#include "devices/plic.h"
#include "devices/sifive_test.h"
#include "devices/tpm_tis.h"
#include "devices/uart16550.h"
#include "devices/virtio_blk.h"
#include "devices/virtio_console.h"
#include "devices/virtio_net.h"
#include "devices/virtio_mmio.h"
#include "machine/bus.h"
#include "machine/guest_dma.h"
#include "machine/sbi.h"
#include "riscv/hart.h"

namespace vigil::machine {

struct DiskSpec {
  std::string path;  // raw image
  bool read_only = false;
};

struct NicSpec {
  std::string model = "user";  // "user" (libslirp) or "tap"
  std::string tap_name;
  std::string mac;             // "" = random locally administered
  std::vector<std::pair<uint16_t, uint16_t>> forwards;  // host TCP port -> guest port (user)
};

struct MachineConfig {
  uint64_t memory_mib = 256;
  unsigned vcpus = 1;
  std::string kernel;    // RISC-V Linux Image (required)
  std::string initrd;    // optional
  std::string append;    // kernel command line
  std::string firmware;  // optional: OpenSBI fw_dynamic.bin / fw_jump.bin, run in M-mode
  std::vector<DiskSpec> disks;  // virtio-blk, in slot order
  std::vector<NicSpec> nics;    // virtio-net, after the disks
  bool rng = false;             // virtio-rng from the host's getrandom
  bool virtio_console = false;  // virtio-console (the guest's /dev/hvc1) on the same console
  // A TPM 2.0 behind a TIS interface (issue 9); null = none. The caller starts the TPM.
  std::shared_ptr<devices::TpmBackend> tpm;
};

// Why the machine stopped.
enum class StopReason { kPoweroff, kReset, kCrash, kTimeout, kHostError };

struct Outcome {
  StopReason reason;
  std::string message;
};

class Machine final : public riscv::Platform,
                      public devices::HartIrqSink,
                      public devices::ClintTarget,
                      public SbiHost {
 public:
  using ConsoleOut = std::function<void(const uint8_t*, size_t)>;

  // Validates the configuration and the images, builds the board and loads the guest.
  static Result<std::unique_ptr<Machine>> create(const MachineConfig& config, ConsoleOut console);
  ~Machine() override;

  // Runs all harts, one host thread each, until the guest powers off or resets, a hart
  // crashes, or `timeout` passes (`vigil run`; vigild schedules vCPUs with step_vcpu instead).
  Outcome run(std::optional<std::chrono::milliseconds> timeout);
  // Stops the machine from any thread (the outcome's reason and message are kept if first).
  void stop(StopReason reason, std::string message);
  bool stopping() const { return m_stopping.load(std::memory_order_acquire); }
  std::optional<Outcome> outcome();
  // Called once, on the thread that stopped the machine, when it stops.
  std::function<void(const Outcome&)> on_stop;

  // One scheduling step of vCPU `id` (at most `budget` instructions), for a scheduler.
  enum class StepResult {
    kRan,      // did work; runnable again
    kIdle,     // waiting (WFI or not started): runnable after a wake or at `wake_mtime`
    kStopped,  // the machine has stopped
  };
  StepResult step_vcpu(unsigned id, uint64_t budget, uint64_t& wake_mtime);
  // Routes every hart's wake-ups to `hook(vcpu id)`; set before any vCPU runs.
  void set_wake_hook(std::function<void(unsigned)> hook);
  // Converts a future mtime to host time (for sleeping until a guest timer).
  std::chrono::steady_clock::time_point host_time_of(uint64_t mtime_value);

  // The guest's clock stops while it is paused (xl pause): mtime does not advance.
  void pause_clock();
  void resume_clock();
  // Host console input (from any thread): goes to the UART and the SBI console.
  void console_input(const uint8_t* data, size_t len);

  // Per-device counters for metrics, in slot order (disks, then NICs); any thread.
  std::vector<devices::VirtioBlk::Stats> disk_stats() const;
  std::vector<devices::VirtioNet::Stats> nic_stats() const;

  riscv::Hart& hart(unsigned id) override { return *m_harts.at(id); }
  unsigned hart_count() const override { return static_cast<unsigned>(m_harts.size()); }
  riscv::GuestMemory& memory() { return *m_memory; }
  const MachineConfig& config() const { return m_config; }

  // riscv::Platform
  bool mmio_read(riscv::Hart& hart, uint64_t pa, unsigned size, uint64_t& value) override;
  bool mmio_write(riscv::Hart& hart, uint64_t pa, unsigned size, uint64_t value) override;
  uint64_t mtime() override;
  bool sbi_ecall(riscv::Hart& hart) override;
  void unhandled_machine_trap(riscv::Hart& hart, uint64_t cause, uint64_t tval) override;

  // devices::HartIrqSink
  void set_hart_irq(unsigned hart, unsigned mip_bit, bool level) override;

  // devices::ClintTarget
  uint64_t clint_mtime() override { return mtime(); }
  bool msip(unsigned hart) override;
  void set_msip(unsigned hart, bool level) override;
  uint64_t mtimecmp(unsigned hart) override;
  void set_mtimecmp(unsigned hart, uint64_t value) override;

  // SbiHost
  void console_write(const uint8_t* data, size_t len) override;
  int console_getchar() override;
  void system_reset(uint32_t type, uint32_t reason) override;
  int64_t hart_start(unsigned hart, uint64_t start_addr, uint64_t opaque) override;
  int64_t hart_stop(unsigned hart) override;
  int64_t hart_status(unsigned hart) override;

  // ---- snapshots (issue 11, src/migrate): only while no vCPU runs (the domain is paused) ----
  devices::Plic& plic() { return *m_plic; }
  devices::Uart16550& uart() { return *m_uart; }
  devices::TpmTis* tpm_tis() { return m_tpm.get(); }  // null without a vTPM
  size_t virtio_count() const { return m_virtio.size(); }
  devices::VirtioMmio& virtio(size_t slot) { return *m_virtio.at(slot); }
  std::span<uint8_t> ram() { return {m_ram, m_ram_size}; }
  // SBI HSM state of a hart (SBI spec 9.1: 0 started, 1 stopped, 2 start pending, 3 stop pending).
  struct HsmSnapshot {
    int64_t state = 1;
    uint64_t start_addr = 0, opaque = 0;
  };
  HsmSnapshot hsm_state(unsigned hart) const;
  // Refuses states outside 0..3 and start addresses outside RAM.
  Result<void> set_hsm_state(unsigned hart, const HsmSnapshot& s);
  // Sets the guest clock to `mtime_value` and holds it there as if paused; resume_clock
  // then lets it run on from that value. False if the value is beyond the clock's range.
  bool set_paused_clock(uint64_t mtime_value);

 private:
  Machine(const MachineConfig& config, ConsoleOut console);
  Result<void> build();
  Result<void> load();
  void vcpu_thread(unsigned id);

  // SBI HSM states (SBI spec 9.1).
  enum class HsmState : int64_t { kStarted = 0, kStopped = 1, kStartPending = 2, kStopPending = 3 };
  struct HsmSlot {
    std::atomic<HsmState> state{HsmState::kStopped};
    uint64_t start_addr = 0, opaque = 0;
  };

  MachineConfig m_config;
  ConsoleOut m_console;
  uint8_t* m_ram = nullptr;
  uint64_t m_ram_size = 0;
  static constexpr uint64_t kRamGuard = 4096;  // PROT_NONE after guest RAM
  std::unique_ptr<riscv::GuestMemory> m_memory;
  std::vector<std::unique_ptr<riscv::Hart>> m_harts;
  std::unique_ptr<HsmSlot[]> m_hsm;
  Bus m_bus;
  std::unique_ptr<devices::Plic> m_plic;
  std::unique_ptr<devices::Uart16550> m_uart;
  std::unique_ptr<devices::Clint> m_clint;
  std::unique_ptr<devices::SifiveTest> m_test;
  std::unique_ptr<devices::TpmTis> m_tpm;
  std::unique_ptr<GuestDma> m_dma;
  std::vector<std::unique_ptr<devices::VirtioDevice>> m_virtio_backends;
  std::vector<std::unique_ptr<devices::VirtioMmio>> m_virtio;
  devices::VirtioConsole* m_virtio_console = nullptr;

  std::chrono::steady_clock::time_point m_epoch;
  std::atomic<int64_t> m_clock_offset_ns{0};   // time spent paused, subtracted from the clock
  std::atomic<int64_t> m_paused_at_ns{-1};     // clock value while paused, else -1
  std::vector<std::thread> m_threads;
  std::mutex m_stop_mutex;
  std::condition_variable m_stop_cv;
  std::atomic<bool> m_stopping{false};
  std::optional<Outcome> m_outcome;
  std::mutex m_hsm_mutex;
  std::condition_variable m_hsm_cv;

  std::mutex m_input_mutex;
  std::deque<uint8_t> m_sbi_input;  // bytes for the SBI console (hvc0)
  std::deque<uint8_t> m_uart_pending;  // bytes the UART FIFO had no room for yet
};

}  // namespace vigil::machine
