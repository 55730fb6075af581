#include "machine/machine.h"

#include <sys/mman.h>
#include <sys/prctl.h>

#include <cstdio>
#include <cstring>

#include "machine/fdt.h"
#include "machine/layout.h"
#include "devices/net_slirp.h"
#include "devices/net_tap.h"
#include "devices/virtio_blk.h"
#include "devices/virtio_net.h"
#include "devices/virtio_rng.h"
#include "machine/loader.h"
#include "machine/measured_boot.h"

namespace vigil::machine {

namespace {
// Instructions a hart runs between checks for interrupts, timers and requests.
constexpr uint64_t kSliceInstructions = 20'000;
constexpr uint64_t kMinMemoryMib = 16, kMaxMemoryMib = 64 * 1024;
// SBI console input kept for hvc0 when nobody reads it.
constexpr size_t kSbiInputMax = 4096;

// OpenSBI's fw_dynamic handoff structure (include/sbi/fw_dynamic.h in OpenSBI, version 2).
constexpr uint64_t kFwDynamicMagic = 0x4942534f;  // "OSBI"
constexpr uint64_t kFwDynamicVersion = 2;
constexpr uint64_t kFwDynamicNextModeS = 1;

const char* cause_name(uint64_t cause) {
  if (cause & riscv::kInterruptBit) return "an interrupt";
  switch (static_cast<riscv::Cause>(cause)) {
    case riscv::Cause::kInsnMisaligned: return "an instruction-address-misaligned exception";
    case riscv::Cause::kInsnAccessFault: return "an instruction access fault";
    case riscv::Cause::kIllegalInsn: return "an illegal-instruction exception";
    case riscv::Cause::kBreakpoint: return "a breakpoint";
    case riscv::Cause::kLoadMisaligned: return "a load-address-misaligned exception";
    case riscv::Cause::kLoadAccessFault: return "a load access fault";
    case riscv::Cause::kStoreMisaligned: return "a store-address-misaligned exception";
    case riscv::Cause::kStoreAccessFault: return "a store access fault";
    case riscv::Cause::kEcallU: return "an ECALL from U-mode";
    case riscv::Cause::kEcallS: return "an ECALL from S-mode";
    case riscv::Cause::kEcallM: return "an ECALL from M-mode";
    case riscv::Cause::kInsnPageFault: return "an instruction page fault";
    case riscv::Cause::kLoadPageFault: return "a load page fault";
    case riscv::Cause::kStorePageFault: return "a store page fault";
  }
  return "an unknown exception";
}
}  // namespace

Machine::Machine(const MachineConfig& config, ConsoleOut console)
    : m_config(config), m_console(std::move(console)), m_epoch(std::chrono::steady_clock::now()) {}

Machine::~Machine() {
  stop(StopReason::kHostError, "machine destroyed");
  for (auto& t : m_threads) {
    if (t.joinable()) t.join();
  }
  if (m_ram != nullptr) ::munmap(m_ram, m_ram_size + kRamGuard);
}

Result<std::unique_ptr<Machine>> Machine::create(const MachineConfig& config, ConsoleOut console) {
  if (config.vcpus < 1 || config.vcpus > layout::kMaxHarts) {
    return make_error("--vcpus must be between 1 and {}, not {}", layout::kMaxHarts, config.vcpus);
  }
  if (config.memory_mib < kMinMemoryMib || config.memory_mib > kMaxMemoryMib) {
    return make_error("--memory must be between {} and {} MiB, not {}", kMinMemoryMib, kMaxMemoryMib,
                      config.memory_mib);
  }
  if (config.kernel.empty()) return make_error("no kernel given (--kernel IMAGE)");
  std::unique_ptr<Machine> m(new Machine(config, std::move(console)));
  if (auto r = m->build(); !r) return std::unexpected(r.error());
  if (auto r = m->load(); !r) return std::unexpected(r.error());
  return m;
}

Result<void> Machine::build() {
  m_ram_size = m_config.memory_mib << 20;
  // Guest RAM is committed lazily: untouched pages cost nothing (DESIGN.md).
  // A PROT_NONE guard page follows it: a host access running past the end of guest RAM
  // faults instead of reaching whatever is mapped next, and the RAM mapping never merges with
  // a neighbour, so /proc/PID/smaps shows each domain's guest RAM as one mapping of its own
  // (bench/memory.py tells guest RAM from vigild's own memory that way).
  void* ram = ::mmap(nullptr, m_ram_size + kRamGuard, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                     -1, 0);
  if (ram == MAP_FAILED) return make_error("cannot reserve {} MiB of guest memory: {}", m_config.memory_mib, std::strerror(errno));
  m_ram = static_cast<uint8_t*>(ram);
  if (::mprotect(m_ram + m_ram_size, kRamGuard, PROT_NONE) != 0) {
    return make_error("cannot place the guard page after guest memory: {}", std::strerror(errno));
  }
  // Where the kernel can name anonymous memory (CONFIG_ANON_VMA_NAME) smaps also says
  // [anon:vigil-guest-ram]; elsewhere this fails (EINVAL) and changes nothing.
  (void)::prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, ram, m_ram_size, "vigil-guest-ram");
  m_memory = std::make_unique<riscv::GuestMemory>(m_ram, layout::kRamBase, m_ram_size);

  m_hsm = std::make_unique<HsmSlot[]>(m_config.vcpus);
  for (unsigned i = 0; i < m_config.vcpus; ++i) m_harts.push_back(std::make_unique<riscv::Hart>(i, *m_memory, *this));

  m_plic = std::make_unique<devices::Plic>(layout::kPlicSources, m_config.vcpus, this);
  m_uart = std::make_unique<devices::Uart16550>([this](uint8_t b) { m_console(&b, 1); },
                                                m_plic->line(layout::kUartIrq));
  m_clint = std::make_unique<devices::Clint>(*this);
  m_test = std::make_unique<devices::SifiveTest>([this](devices::SifiveTest::Action a, uint32_t code) {
    switch (a) {
      case devices::SifiveTest::Action::kPass: stop(StopReason::kPoweroff, "guest powered off"); break;
      case devices::SifiveTest::Action::kReset: stop(StopReason::kReset, "guest requested a reset"); break;
      case devices::SifiveTest::Action::kFail:
        stop(StopReason::kCrash, fmt::format("guest reported failure code {} through the test device", code));
        break;
    }
  });
  for (auto r : {m_bus.add(layout::kTestBase, layout::kTestSize, m_test.get()),
                 m_bus.add(layout::kClintBase, layout::kClintSize, m_clint.get()),
                 m_bus.add(layout::kPlicBase, layout::kPlicSize, m_plic.get()),
                 m_bus.add(layout::kUartBase, layout::kUartSize, m_uart.get())}) {
    if (!r) return r;
  }
  if (m_config.tpm) {
    m_tpm = std::make_unique<devices::TpmTis>(m_config.tpm, [](const std::string& line) {
      std::fprintf(stderr, "vigil: %s\n", line.c_str());
    });
    if (auto r = m_bus.add(layout::kTpmBase, layout::kTpmSize, m_tpm.get()); !r) return r;
  }
  // virtio-mmio devices fill slots 0.. in order: disks, NICs, the entropy source, the console.
  m_dma = std::make_unique<GuestDma>(*m_memory);
  for (const DiskSpec& disk : m_config.disks) {
    auto blk = devices::VirtioBlk::open(disk.path, disk.read_only);
    if (!blk) return std::unexpected(blk.error());
    m_virtio_backends.push_back(std::move(*blk));
  }
  for (const NicSpec& nic : m_config.nics) {
    std::unique_ptr<devices::NetBackend> backend;
    if (nic.model == "user") {
      auto slirp = devices::SlirpBackend::create({.forwards = nic.forwards});
      if (!slirp) return std::unexpected(slirp.error());
      backend = std::move(*slirp);
    } else if (nic.model == "tap") {
      auto tap = devices::TapBackend::open(nic.tap_name);
      if (!tap) return std::unexpected(tap.error());
      backend = std::move(*tap);
    } else {
      return make_error("unknown network model '{}' (use user or tap)", nic.model);
    }
    auto net = devices::VirtioNet::create(std::move(backend), nic.mac);
    if (!net) return std::unexpected(net.error());
    m_virtio_backends.push_back(std::move(*net));
  }
  if (m_config.rng) m_virtio_backends.push_back(std::make_unique<devices::VirtioRng>());
  if (m_config.virtio_console) {
    auto console = std::make_unique<devices::VirtioConsole>([this](const uint8_t* d, size_t n) { m_console(d, n); });
    m_virtio_console = console.get();
    m_virtio_backends.push_back(std::move(console));
  }
  if (m_virtio_backends.size() > layout::kVirtioSlots) {
    return make_error("{} virtio devices requested; the board has {} slots", m_virtio_backends.size(),
                      layout::kVirtioSlots);
  }
  for (size_t i = 0; i < m_virtio_backends.size(); ++i) {
    m_virtio.push_back(std::make_unique<devices::VirtioMmio>(
        *m_virtio_backends[i], *m_dma, m_plic->line(layout::kVirtioIrqBase + static_cast<unsigned>(i))));
    if (auto r = m_bus.add(layout::kVirtioBase + i * layout::kVirtioSize, layout::kVirtioSize, m_virtio.back().get()); !r) {
      return r;
    }
  }
  return {};
}

Result<void> Machine::load() {
  const uint64_t ram_end = layout::kRamBase + m_ram_size;
  const uint64_t dtb_addr = ram_end - layout::kTopReserve;
  const uint64_t fw_info_addr = dtb_addr + layout::kDtbMaxSize;

  auto kernel_bytes = read_image_file(m_config.kernel, "kernel", m_ram_size);
  if (!kernel_bytes) return std::unexpected(kernel_bytes.error());
  std::vector<Measurement> measurements;  // extended into the vTPM before the first instruction
  if (m_tpm) measurements.push_back(measure(8, "kernel", *kernel_bytes));
  const uint64_t kernel_addr = layout::kRamBase + layout::kKernelOffset;
  uint64_t kernel_end = 0;
  uint64_t next_addr = kernel_addr;  // where the firmware hands over
  if (!m_config.firmware.empty() && !is_linux_image(*kernel_bytes)) {
    // With firmware, the next stage may be any S-mode payload (U-Boot, a bare-metal
    // program): a raw binary at the kernel address, or an ELF at its own addresses.
    auto payload = parse_payload(*kernel_bytes, m_config.kernel, kernel_addr, kernel_addr, dtb_addr);
    if (!payload) return std::unexpected(payload.error());
    for (const PayloadSegment& seg : payload->segments) {
      uint8_t* dst = m_memory->ptr(seg.addr);
      std::memcpy(dst, kernel_bytes->data() + seg.file_offset, seg.file_size);
      std::memset(dst + seg.file_size, 0, seg.mem_size - seg.file_size);
      kernel_end = std::max(kernel_end, seg.addr + seg.mem_size);
    }
    next_addr = payload->entry;
  } else {
    auto kernel = parse_kernel_image(std::move(*kernel_bytes), m_config.kernel);
    if (!kernel) return std::unexpected(kernel.error());
    kernel_end = kernel_addr + kernel->image_size;
    if (kernel_end > dtb_addr) {
      return make_error("kernel '{}' needs {} MiB but the guest has only {} MiB of memory", m_config.kernel,
                        (kernel->image_size + layout::kKernelOffset + layout::kTopReserve) >> 20, m_config.memory_mib);
    }
    std::memcpy(m_memory->ptr(kernel_addr), kernel->bytes.data(), kernel->bytes.size());
  }

  FdtParams fdt{.ram_base = layout::kRamBase, .ram_size = m_ram_size, .harts = m_config.vcpus,
                .bootargs = m_config.append, .virtio_slots = static_cast<unsigned>(m_virtio.size()),
                .tpm = m_tpm != nullptr};
  if (!m_config.initrd.empty()) {
    auto initrd = read_image_file(m_config.initrd, "initrd", dtb_addr - kernel_end);
    if (!initrd) return std::unexpected(initrd.error());
    const uint64_t start = (dtb_addr - initrd->size()) & ~riscv::kPageMask;
    if (start < kernel_end) {
      return make_error("initrd '{}' ({} bytes) does not fit in guest memory beside the kernel; raise --memory",
                        m_config.initrd, initrd->size());
    }
    std::memcpy(m_memory->ptr(start), initrd->data(), initrd->size());
    if (m_tpm) measurements.push_back(measure(9, "initrd", *initrd));
    fdt.initrd_start = start;
    fdt.initrd_end = start + initrd->size();
  }
  const std::span bootargs(reinterpret_cast<const uint8_t*>(m_config.append.data()), m_config.append.size());
  const uint64_t log_addr = dtb_addr + layout::kTpmLogOffset;
  if (m_tpm) {
    // The log's size is known before the DTB that names it: only the DTB's digest is missing.
    auto sized = measurements;
    sized.push_back(measure(1, "dtb", {}));
    sized.push_back(measure(1, "bootargs", bootargs));
    if (!m_config.firmware.empty()) sized.push_back(measure(0, "firmware", {}));
    const size_t log_size = tcg2_event_log(sized).size();
    if (log_size > layout::kTpmLogMaxSize) {
      return make_error("the vTPM event log would take {} bytes, more than its {} (shorten the command line)", log_size,
                        layout::kTpmLogMaxSize);
    }
    fdt.tpm_log_base = log_addr;
    fdt.tpm_log_size = static_cast<uint32_t>(log_size);
  }
  auto dtb = build_fdt(fdt);
  if (!dtb) return std::unexpected(dtb.error());
  std::memcpy(m_memory->ptr(dtb_addr), dtb->data(), dtb->size());
  if (m_tpm) {
    measurements.push_back(measure(1, "dtb", *dtb));
    measurements.push_back(measure(1, "bootargs", bootargs));
  }

  if (m_config.firmware.empty()) {
    // Direct kernel boot: hart 0 starts in S-mode as if firmware had just handed over;
    // the others wait for SBI HSM hart_start.
    riscv::Hart& boot = *m_harts[0];
    boot.enter_supervisor_as_firmware(kernel_addr, 0, dtb_addr);
    m_hsm[0].state = HsmState::kStarted;
    for (unsigned i = 1; i < m_harts.size(); ++i) {
      m_harts[i]->builtin_sbi = true;
      m_harts[i]->state = riscv::HartState::kStopped;
    }
  } else {
    auto fw = read_image_file(m_config.firmware, "firmware", layout::kKernelOffset);
    if (!fw) return std::unexpected(fw.error());
    if (fw->size() >= 4 && std::memcmp(fw->data(), "\x7f" "ELF", 4) == 0) {
      return make_error("firmware '{}' is an ELF file; pass the raw binary (fw_dynamic.bin or fw_jump.bin)",
                        m_config.firmware);
    }
    std::memcpy(m_memory->ptr(layout::kRamBase), fw->data(), fw->size());
    if (m_tpm) measurements.insert(measurements.begin(), measure(0, "firmware", *fw));
    const uint64_t info[6] = {kFwDynamicMagic, kFwDynamicVersion, next_addr, kFwDynamicNextModeS, 0, ~0ull};
    std::memcpy(m_memory->ptr(fw_info_addr), info, sizeof(info));
    // All harts enter the firmware together, as after a platform reset (OpenSBI picks one).
    for (auto& h : m_harts) {
      h->reset(layout::kRamBase);
      h->x[10] = h->hartid();
      h->x[11] = dtb_addr;
      h->x[12] = fw_info_addr;
    }
  }
  if (m_tpm) {
    const std::vector<uint8_t> log = tcg2_event_log(measurements);
    if (log.size() != fdt.tpm_log_size) return make_error("the vTPM event log changed size while it was built");
    std::memcpy(m_memory->ptr(log_addr), log.data(), log.size());
    return extend_all(*m_config.tpm, measurements);
  }
  return {};
}

Outcome Machine::run(std::optional<std::chrono::milliseconds> timeout) {
  for (unsigned i = 0; i < m_harts.size(); ++i) m_threads.emplace_back([this, i] { vcpu_thread(i); });
  {
    std::unique_lock lock(m_stop_mutex);
    const auto done = [&] { return m_stopping.load(); };
    if (timeout) {
      if (!m_stop_cv.wait_for(lock, *timeout, done)) {
        lock.unlock();
        stop(StopReason::kTimeout, fmt::format("guest still running after the {:.1f} s timeout", timeout->count() / 1000.0));
      }
    } else {
      m_stop_cv.wait(lock, done);
    }
  }
  for (auto& t : m_threads) t.join();
  m_threads.clear();
  std::lock_guard lock(m_stop_mutex);
  if (m_outcome->reason == StopReason::kTimeout) {
    // Where each hart was helps tell a hung guest from a slow one.
    for (const auto& h : m_harts) {
      m_outcome->message += fmt::format("; hart {}: {} pc {:#x} priv {}", h->hartid(),
                                        h->state.load() == riscv::HartState::kRunning ? (h->wfi_pending ? "wfi" : "running") : "stopped",
                                        h->pc, static_cast<int>(h->priv));
    }
  }
  return *m_outcome;
}

void Machine::stop(StopReason reason, std::string message) {
  bool first = false;
  Outcome copy;
  {
    std::lock_guard lock(m_stop_mutex);
    if (!m_outcome) {
      m_outcome = Outcome{reason, std::move(message)};
      copy = *m_outcome;
      first = true;
    }
    m_stopping = true;
  }
  m_stop_cv.notify_all();
  {
    std::lock_guard lock(m_hsm_mutex);
    m_hsm_cv.notify_all();
  }
  for (auto& h : m_harts) h->kick();
  if (first && on_stop) on_stop(copy);
}

std::optional<Outcome> Machine::outcome() {
  std::lock_guard lock(m_stop_mutex);
  return m_outcome;
}

Machine::StepResult Machine::step_vcpu(unsigned id, uint64_t budget, uint64_t& wake_mtime) {
  wake_mtime = ~0ull;
  if (m_stopping.load(std::memory_order_acquire)) return StepResult::kStopped;
  riscv::Hart& hart = *m_harts[id];
  HsmSlot& hsm = m_hsm[id];
  if (hsm.state.load(std::memory_order_acquire) == HsmState::kStartPending) {
    hart.enter_supervisor_as_firmware(hsm.start_addr, id, hsm.opaque);
    hart.state.store(riscv::HartState::kRunning, std::memory_order_release);
    hsm.state.store(HsmState::kStarted, std::memory_order_release);
  }
  if (hart.state.load(std::memory_order_acquire) != riscv::HartState::kRunning) {
    return m_stopping ? StepResult::kStopped : StepResult::kIdle;
  }
  const riscv::ExitReason why = hart.run(budget);
  // Device work deferred by a work budget (VirtioDevice::budget_spent) is served here, on
  // the domain's own time; while some remains, this vCPU is not idle.
  bool deferred = false;
  for (auto& v : m_virtio) deferred |= v->service_deferred();
  switch (why) {
    case riscv::ExitReason::kSliceDone:
      return StepResult::kRan;
    case riscv::ExitReason::kWfi:
      wake_mtime = hart.update_timers(mtime());
      if (deferred || hart.interrupt_pending_for_wfi() || hart.pending_requests() != 0) return StepResult::kRan;
      return StepResult::kIdle;
    case riscv::ExitReason::kStopped:
      break;
  }
  return m_stopping ? StepResult::kStopped : StepResult::kIdle;
}

void Machine::set_wake_hook(std::function<void(unsigned)> hook) {
  for (auto& h : m_harts) {
    const unsigned id = h->hartid();
    h->wake_hook = [hook, id] { hook(id); };
  }
}

std::chrono::steady_clock::time_point Machine::host_time_of(uint64_t mtime_value) {
  const uint64_t now = mtime();
  const auto now_host = std::chrono::steady_clock::now();
  if (mtime_value <= now) return now_host;
  const uint64_t ticks = std::min<uint64_t>(mtime_value - now, 3600ull * layout::kTimebaseHz);
  return now_host + std::chrono::nanoseconds(ticks * (1'000'000'000 / layout::kTimebaseHz));
}

void Machine::pause_clock() {
  const auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - m_epoch).count();
  int64_t expected = -1;
  m_paused_at_ns.compare_exchange_strong(expected, now - m_clock_offset_ns.load());
}

void Machine::resume_clock() {
  const int64_t paused_at = m_paused_at_ns.load();
  if (paused_at < 0) return;
  const auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - m_epoch).count();
  m_clock_offset_ns.store(now - paused_at);
  m_paused_at_ns.store(-1);
  for (auto& h : m_harts) h->kick();
}

void Machine::vcpu_thread(unsigned id) {
  riscv::Hart& hart = *m_harts[id];
  while (!m_stopping.load(std::memory_order_acquire)) {
    uint64_t wake = 0;
    const StepResult r = step_vcpu(id, kSliceInstructions, wake);
    if (r == StepResult::kStopped) break;
    if (r != StepResult::kIdle) continue;
    if (hart.state.load(std::memory_order_acquire) == riscv::HartState::kRunning) {
      hart.wait_for_interrupt(wake);
    } else {
      std::unique_lock lock(m_hsm_mutex);
      m_hsm_cv.wait_for(lock, std::chrono::milliseconds(100), [&] {
        return m_stopping.load() || m_hsm[id].state.load() == HsmState::kStartPending;
      });
    }
  }
}

// ---- riscv::Platform ----

bool Machine::mmio_read(riscv::Hart&, uint64_t pa, unsigned size, uint64_t& value) {
  uint64_t offset = 0;
  devices::MmioDevice* dev = m_bus.find(pa, size, offset);
  return dev != nullptr && dev->read(offset, size, value);
}

bool Machine::mmio_write(riscv::Hart&, uint64_t pa, unsigned size, uint64_t value) {
  uint64_t offset = 0;
  devices::MmioDevice* dev = m_bus.find(pa, size, offset);
  return dev != nullptr && dev->write(offset, size, value);
}

uint64_t Machine::mtime() {
  int64_t ns = m_paused_at_ns.load(std::memory_order_acquire);
  if (ns < 0) {
    ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - m_epoch).count() -
         m_clock_offset_ns.load(std::memory_order_acquire);
  }
  return static_cast<uint64_t>(ns) / (1'000'000'000 / layout::kTimebaseHz);
}

bool Machine::sbi_ecall(riscv::Hart& hart) { return handle_sbi_call(*this, hart); }

void Machine::unhandled_machine_trap(riscv::Hart& hart, uint64_t cause, uint64_t tval) {
  stop(StopReason::kCrash,
       fmt::format("hart {} took {} (mcause {:#x}, tval {:#x}) at pc {:#x} into M-mode, where no firmware runs",
                   hart.hartid(), cause_name(cause), cause, tval, hart.pc));
}

// ---- interrupts ----

void Machine::set_hart_irq(unsigned hart, unsigned mip_bit, bool level) {
  if (hart < m_harts.size() && mip_bit < 64) m_harts[hart]->set_mip_bits(1ull << mip_bit, level);
}

bool Machine::msip(unsigned hart) {
  return hart < m_harts.size() && (m_harts[hart]->mip() & (1u << riscv::irq::kMsi));
}
void Machine::set_msip(unsigned hart, bool level) {
  if (hart < m_harts.size()) m_harts[hart]->set_mip_bits(1u << riscv::irq::kMsi, level);
}
uint64_t Machine::mtimecmp(unsigned hart) {
  return hart < m_harts.size() ? m_harts[hart]->mtimecmp.load() : 0;
}
void Machine::set_mtimecmp(unsigned hart, uint64_t value) {
  if (hart >= m_harts.size()) return;
  m_harts[hart]->mtimecmp.store(value);
  m_harts[hart]->update_timers(mtime());
  m_harts[hart]->kick();  // a sleeping hart recomputes its wake-up time
}

// ---- console ----

void Machine::console_write(const uint8_t* data, size_t len) { m_console(data, len); }

int Machine::console_getchar() {
  std::lock_guard lock(m_input_mutex);
  if (m_sbi_input.empty()) return -1;
  const int c = m_sbi_input.front();
  m_sbi_input.pop_front();
  return c;
}

void Machine::console_input(const uint8_t* data, size_t len) {
  {
    std::lock_guard lock(m_input_mutex);
    for (size_t i = 0; i < len; ++i) {
      if (m_sbi_input.size() >= kSbiInputMax) m_sbi_input.pop_front();
      m_sbi_input.push_back(data[i]);
    }
  }
  if (m_virtio_console != nullptr) m_virtio_console->push_input(data, len);
  // The UART FIFO may be full; give the guest up to a second to drain it, then drop the
  // rest (a guest that never reads its UART must not block the console thread forever).
  size_t done = 0;
  for (int tries = 0; done < len && tries < 200 && !m_stopping; ++tries) {
    done += m_uart->push_input(data + done, len - done);
    if (done < len) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

// ---- SBI host ----

void Machine::system_reset(uint32_t type, uint32_t reason) {
  if (type == 0) {
    if (reason == 1) {
      stop(StopReason::kCrash, "guest shut down reporting a system failure");
    } else {
      stop(StopReason::kPoweroff, "guest powered off");
    }
  } else {
    stop(StopReason::kReset, "guest requested a reset");
  }
}

int64_t Machine::hart_start(unsigned hart, uint64_t start_addr, uint64_t opaque) {
  if (hart >= m_harts.size()) return kSbiErrInvalidParam;
  // IALIGN is 16: an odd start address is no instruction address at all.
  if ((start_addr & 1) != 0 || !m_memory->contains(start_addr, 4)) return kSbiErrInvalidAddress;
  HsmSlot& slot = m_hsm[hart];
  HsmState expected = HsmState::kStopped;
  if (slot.state.load() != HsmState::kStopped) return kSbiErrAlreadyAvailable;
  slot.start_addr = start_addr;
  slot.opaque = opaque;
  if (!slot.state.compare_exchange_strong(expected, HsmState::kStartPending)) return kSbiErrAlreadyAvailable;
  {
    std::lock_guard lock(m_hsm_mutex);
    m_hsm_cv.notify_all();
  }
  m_harts[hart]->kick();  // a scheduler parks stopped vCPUs: tell it this one has work
  return kSbiSuccess;
}

int64_t Machine::hart_stop(unsigned hart) {
  if (hart >= m_harts.size()) return kSbiErrInvalidParam;
  if (m_hsm[hart].state.load() != HsmState::kStarted) return kSbiErrFailed;
  m_harts[hart]->state.store(riscv::HartState::kStopped);
  m_hsm[hart].state.store(HsmState::kStopped);
  return kSbiSuccess;
}

int64_t Machine::hart_status(unsigned hart) {
  return hart < m_harts.size() ? static_cast<int64_t>(m_hsm[hart].state.load()) : kSbiErrInvalidParam;
}

Machine::HsmSnapshot Machine::hsm_state(unsigned hart) const {
  const HsmSlot& slot = m_hsm[hart];
  return HsmSnapshot{static_cast<int64_t>(slot.state.load()), slot.start_addr, slot.opaque};
}

Result<void> Machine::set_hsm_state(unsigned hart, const HsmSnapshot& s) {
  if (hart >= m_harts.size()) return make_error("there is no hart {}", hart);
  if (s.state < 0 || s.state > 3) return make_error("HSM state {} is not one of 0..3", s.state);
  if (static_cast<HsmState>(s.state) == HsmState::kStartPending &&
      ((s.start_addr & 1) != 0 || !m_memory->contains(s.start_addr, 4)))
    return make_error("HSM start address {:#x} is not in guest RAM", s.start_addr);
  m_hsm[hart].start_addr = s.start_addr;
  m_hsm[hart].opaque = s.opaque;
  m_hsm[hart].state.store(static_cast<HsmState>(s.state));
  return {};
}

bool Machine::set_paused_clock(uint64_t mtime_value) {
  constexpr uint64_t kNsPerTick = 1'000'000'000 / layout::kTimebaseHz;
  if (mtime_value > static_cast<uint64_t>(INT64_MAX) / kNsPerTick) return false;
  m_clock_offset_ns.store(0);
  m_paused_at_ns.store(static_cast<int64_t>(mtime_value * kNsPerTick));
  return true;
}

std::vector<devices::VirtioBlk::Stats> Machine::disk_stats() const {
  std::vector<devices::VirtioBlk::Stats> out;
  for (const auto& d : m_virtio_backends) {
    if (const auto* blk = dynamic_cast<const devices::VirtioBlk*>(d.get())) out.push_back(blk->stats());
  }
  return out;
}

std::vector<devices::VirtioNet::Stats> Machine::nic_stats() const {
  std::vector<devices::VirtioNet::Stats> out;
  for (const auto& d : m_virtio_backends) {
    if (const auto* net = dynamic_cast<const devices::VirtioNet*>(d.get())) out.push_back(net->stats());
  }
  return out;
}

}  // namespace vigil::machine
