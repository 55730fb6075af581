// The Linux view of a guest (LibVMI's OS layer): the process list from init_task.tasks, the
// task each vCPU is running, loaded modules, and each process's page tables as a satp. Built
// from a SymbolTable (System.map) and a LinuxProfile (BTF offsets); every pointer read from
// the guest is checked and every list walk is bounded, so a corrupted or hostile kernel gets
// an error, not a hang.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <unordered_set>
#include <vector>

#include "base/error.h"
#include "introspect/guest_view.h"
#include "introspect/linux_profile.h"
#include "introspect/symbols.h"
#include "riscv/csr.h"

namespace vigil::introspect {

// What introspection needs of one vCPU, read while it is stopped.
struct VcpuRegs {
  unsigned vcpu = 0;
  bool online = false;  // false: stopped (SBI HSM) or not started yet
  riscv::Priv priv = riscv::Priv::S;
  uint64_t pc = 0, tp = 0, sscratch = 0, satp = 0;
};

struct Process {
  uint64_t task = 0;  // address of the task_struct (kernel virtual)
  int32_t pid = 0;    // the process id (task->tgid; ps's PID)
  int32_t tid = 0;    // task->pid
  int32_t ppid = 0;   // real_parent->tgid (0 for init_task's children, as /proc says)
  std::string comm;
  uint64_t mm = 0;
  uint64_t satp = 0;             // page tables the process runs on (the kernel's for kernel threads)
  bool kernel_thread = false;    // mm == NULL
  std::optional<unsigned> vcpu;  // a vCPU currently running this process (one of its threads)
  std::string error;             // set when part of the task could not be read (satp then 0)
};

struct VcpuCurrent {
  unsigned vcpu = 0;
  bool online = false;
  char mode = '?';  // 'U', 'S' or 'M'
  uint64_t pc = 0, satp = 0;
  uint64_t task = 0;  // 0: unknown (see error)
  int32_t pid = -1;
  std::string comm;
  std::string error;
};

struct Module {
  std::string name;
  uint64_t address = 0;  // the struct module
};

class LinuxGuest {
 public:
  static constexpr size_t kMaxTasks = 1 << 16;  // bound of a task-list walk
  static constexpr size_t kMaxModules = 4096;

  // Finds a vCPU whose satp maps the kernel, verifies the symbols against the running kernel
  // (linux_banner must read "Linux version") and finds the symbol offset (KASLR: tried in
  // 2 MiB steps when 0 does not match), which it applies to `symbols`. Then locates the
  // kernel's own page tables (swapper_pg_dir, checked against init_mm.pgd).
  // `symbols` and `profile` must outlive the LinuxGuest.
  static Result<LinuxGuest> attach(GuestView view, SymbolTable& symbols, const LinuxProfile& profile,
                                   std::span<const VcpuRegs> vcpus);

  const GuestView& view() const { return m_view; }
  const SymbolTable& symbols() const { return *m_symbols; }
  uint64_t kernel_satp() const { return m_kernel_satp; }
  int64_t kernel_offset() const { return m_symbols->offset(); }
  const std::string& banner() const { return m_banner; }

  // init_task (pid 0) and every process on init_task.tasks, in list order.
  Result<std::vector<Process>> processes() const;
  Result<Process> process_at(uint64_t task) const;
  // The task running on each vCPU: tp in the kernel, sscratch while in user mode.
  std::vector<VcpuCurrent> current(std::span<const VcpuRegs> vcpus,
                                   const std::vector<Process>* known = nullptr) const;
  // Marks processes with the vCPU running them.
  static void mark_running(std::vector<Process>& processes, const std::vector<VcpuCurrent>& current);
  Result<std::vector<Module>> modules() const;
  // The satp of process `pid` (0: the kernel's).
  Result<uint64_t> satp_of_pid(int32_t pid) const;

 private:
  LinuxGuest(GuestView view, SymbolTable& symbols, const LinuxProfile& profile)
      : m_view(view), m_symbols(&symbols), m_profile(&profile) {}
  Result<uint64_t> read_kernel_u64(uint64_t va) const { return m_view.read_virt_u64(m_kernel_satp, va); }
  Result<uint64_t> satp_for_pgd(uint64_t pgd) const;

  GuestView m_view;
  SymbolTable* m_symbols;
  const LinuxProfile* m_profile;
  uint64_t m_kernel_satp = 0;
  uint64_t m_init_task = 0;
  std::string m_banner;
};

}  // namespace vigil::introspect
