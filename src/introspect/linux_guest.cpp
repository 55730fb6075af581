#include "introspect/linux_guest.h"

#include <algorithm>
#include <cstring>
#include <unordered_map>

namespace vigil::introspect {

namespace {

constexpr std::string_view kBannerPrefix = "Linux version ";
// KASLR moves the kernel in PMD-sized steps (2 MiB on RV64); 1024 steps each way covers the
// whole randomization range of every RISC-V kernel so far.
constexpr int64_t kKaslrAlign = 2 << 20;
constexpr int kKaslrSteps = 1024;
// Linux's PID_MAX_LIMIT on 64-bit kernels (4M): a larger pid is not a task.
constexpr int32_t kPidMaxLimit = 4 * 1024 * 1024;

template <typename T>
T field_at(const std::vector<uint8_t>& bytes, const LinuxProfile::Field& f) {
  T v{};
  std::memcpy(&v, bytes.data() + f.offset, sizeof(T));
  return v;
}

std::string printable(std::string_view raw) {
  std::string s;
  for (char c : raw) {
    if (c == 0) break;
    s += (c >= 0x20 && c < 0x7f) ? c : '?';
  }
  return s;
}

char mode_letter(riscv::Priv p) {
  return p == riscv::Priv::U ? 'U' : p == riscv::Priv::S ? 'S' : 'M';
}

}  // namespace

Result<LinuxGuest> LinuxGuest::attach(GuestView view, SymbolTable& symbols, const LinuxProfile& profile,
                                      std::span<const VcpuRegs> vcpus) {
  LinuxGuest g(view, symbols, profile);
  const Symbol* banner = symbols.find("linux_banner");
  if (!banner) return make_error("the System.map has no linux_banner: is it a Linux System.map?");
  for (const char* needed : {"init_task", "init_mm", "swapper_pg_dir"}) {
    if (!symbols.find(needed)) return make_error("the System.map has no {}", needed);
  }
  symbols.set_offset(0);
  const uint64_t banner_link = banner->address;

  // Any vCPU with paging on maps the kernel (every process's tables share its upper half).
  bool any_paging = false;
  for (const VcpuRegs& v : vcpus) {
    if (!v.online || (v.satp >> sv::kModeShift) == sv::kModeBare) continue;
    any_paging = true;
    const uint64_t satp = v.satp;
    auto banner_at = [&](int64_t offset) -> bool {
      char buf[kBannerPrefix.size()];
      if (!view.read_virt(satp, banner_link + static_cast<uint64_t>(offset),
                          {reinterpret_cast<uint8_t*>(buf), sizeof buf})) {
        return false;
      }
      return std::string_view(buf, sizeof buf) == kBannerPrefix;
    };
    std::optional<int64_t> offset;
    if (banner_at(0)) offset = 0;
    for (int step = 1; !offset && step <= kKaslrSteps; ++step) {
      for (int64_t sign : {1, -1}) {
        if (banner_at(sign * step * kKaslrAlign)) {
          offset = sign * step * kKaslrAlign;
          break;
        }
      }
    }
    if (!offset) continue;
    symbols.set_offset(*offset);
    auto text = view.read_virt_string(satp, *symbols.address_of("linux_banner"), 256);
    if (text) g.m_banner = printable(*text);
    while (!g.m_banner.empty() && (g.m_banner.back() == '?' || g.m_banner.back() == ' '))
      g.m_banner.pop_back();

    // The kernel's own page tables: swapper_pg_dir, which init_mm.pgd must name.
    const uint64_t swapper = *symbols.address_of("swapper_pg_dir");
    auto root = view.translate(satp, swapper);
    if (!root) return make_error("cannot find the kernel's page tables: {}", root.error().message);
    g.m_kernel_satp = make_satp(satp >> sv::kModeShift, root->pa);
    auto init_pgd = g.read_kernel_u64(*symbols.address_of("init_mm") + profile.mm_struct.pgd.offset);
    if (!init_pgd) return make_error("cannot read init_mm.pgd: {}", init_pgd.error().message);
    if (*init_pgd != swapper) {
      return make_error(
          "init_mm.pgd is {:#x}, not swapper_pg_dir {:#x}: the System.map or BTF do not match the "
          "running kernel",
          *init_pgd, swapper);
    }
    g.m_init_task = *symbols.address_of("init_task");
    return g;
  }
  if (!any_paging)
    return make_error("the guest has not turned paging on yet (every online vCPU's satp is Bare)");
  return make_error(
      "linux_banner does not read \"Linux version\" at its System.map address or any KASLR offset: "
      "the System.map does not belong to the running kernel");
}

Result<uint64_t> LinuxGuest::satp_for_pgd(uint64_t pgd) const {
  auto t = m_view.translate(m_kernel_satp, pgd);
  if (!t) return make_error("mm->pgd {:#x}: {}", pgd, t.error().message);
  if (t->pa & riscv::kPageMask) return make_error("mm->pgd {:#x} is not page-aligned", pgd);
  return make_satp(m_kernel_satp >> sv::kModeShift, t->pa);
}

Result<Process> LinuxGuest::process_at(uint64_t task) const {
  const auto& ts = m_profile->task_struct;
  // One read of the whole struct (a few KiB): fewer walks than reading field by field.
  std::vector<uint8_t> bytes(ts.size);
  if (auto r = m_view.read_virt(m_kernel_satp, task, bytes); !r) {
    return make_error("task_struct at {:#x}: {}", task, r.error().message);
  }
  Process p;
  p.task = task;
  p.tid = field_at<int32_t>(bytes, ts.pid);
  p.pid = field_at<int32_t>(bytes, ts.tgid);
  p.comm =
      printable(std::string_view(reinterpret_cast<const char*>(bytes.data() + ts.comm.offset), ts.comm.size));
  if (p.pid < 0 || p.pid > kPidMaxLimit || p.tid < 0 || p.tid > kPidMaxLimit) {
    return make_error("task_struct at {:#x} has pid {} / tgid {}: not a task", task, p.tid, p.pid);
  }
  const uint64_t parent = field_at<uint64_t>(bytes, ts.real_parent);
  if (parent && parent != task) {
    auto ppid = m_view.read_virt_u32(m_kernel_satp, parent + ts.tgid.offset);
    if (ppid) {
      p.ppid = static_cast<int32_t>(*ppid);
    } else {
      p.error = fmt::format("real_parent {:#x}: {}", parent, ppid.error().message);
    }
  }
  p.mm = field_at<uint64_t>(bytes, ts.mm);
  p.kernel_thread = p.mm == 0;
  if (p.kernel_thread) {
    p.satp = m_kernel_satp;
  } else {
    auto pgd = read_kernel_u64(p.mm + m_profile->mm_struct.pgd.offset);
    auto satp = pgd ? satp_for_pgd(*pgd) : Result<uint64_t>(std::unexpected(pgd.error()));
    if (satp) {
      p.satp = *satp;
    } else {
      p.error = fmt::format("mm {:#x}: {}", p.mm, satp.error().message);
    }
  }
  return p;
}

Result<std::vector<Process>> LinuxGuest::processes() const {
  std::vector<Process> out;
  auto init = process_at(m_init_task);
  if (!init) return make_error("cannot read init_task: {}", init.error().message);
  out.push_back(std::move(*init));

  const uint64_t tasks_off = m_profile->task_struct.tasks.offset;
  const uint64_t next_off = m_profile->list_head.next.offset;
  const uint64_t head = m_init_task + tasks_off;
  std::unordered_set<uint64_t> seen{head};
  auto next = read_kernel_u64(head + next_off);
  if (!next) return make_error("cannot read init_task.tasks.next: {}", next.error().message);
  uint64_t node = *next;
  while (node != head) {
    if (!seen.insert(node).second) {
      return make_error("the task list loops back to {:#x} without returning to init_task (corrupted list)",
                        node);
    }
    if (out.size() >= kMaxTasks) return make_error("the task list has more than {} entries", kMaxTasks);
    auto p = process_at(node - tasks_off);
    if (!p) return make_error("task list entry {:#x}: {}", node, p.error().message);
    out.push_back(std::move(*p));
    auto n = read_kernel_u64(node + next_off);
    if (!n)
      return make_error("task list entry {:#x}: cannot read its next pointer: {}", node, n.error().message);
    node = *n;
  }
  return out;
}

std::vector<VcpuCurrent> LinuxGuest::current(std::span<const VcpuRegs> vcpus,
                                             const std::vector<Process>* known) const {
  std::unordered_map<uint64_t, const Process*> by_task;
  if (known) {
    for (const Process& p : *known) by_task[p.task] = &p;
  }
  std::vector<VcpuCurrent> out;
  for (const VcpuRegs& v : vcpus) {
    VcpuCurrent c;
    c.vcpu = v.vcpu;
    c.online = v.online;
    c.mode = mode_letter(v.priv);
    c.pc = v.pc;
    c.satp = v.satp;
    if (!v.online) {
      c.error = "vCPU is stopped";
      out.push_back(c);
      continue;
    }
    // Linux on RISC-V keeps `current` in tp while in the kernel and parks it in sscratch while
    // user code runs (arch/riscv/kernel/entry.S swaps them on every trap). Around the swap
    // either may hold it, so both are tried, the likelier first.
    const uint64_t first = v.priv == riscv::Priv::U ? v.sscratch : v.tp;
    const uint64_t second = v.priv == riscv::Priv::U ? v.tp : v.sscratch;
    std::string why;
    for (uint64_t candidate : {first, second}) {
      if (candidate == 0) continue;
      if (auto it = by_task.find(candidate); it != by_task.end()) {
        c.task = candidate;
        c.pid = it->second->pid;
        c.comm = it->second->comm;
        break;
      }
      // Idle tasks (swapper/N) are not on the task list: accept any readable, sane task.
      auto p = process_at(candidate);
      if (p && !p->comm.empty() && p->error.empty()) {
        c.task = candidate;
        c.pid = p->pid;
        c.comm = p->comm;
        break;
      }
      if (!p && why.empty()) why = p.error().message;
    }
    if (!c.task) c.error = why.empty() ? "neither tp nor sscratch holds a task" : why;
    out.push_back(c);
  }
  return out;
}

void LinuxGuest::mark_running(std::vector<Process>& processes, const std::vector<VcpuCurrent>& current) {
  for (const VcpuCurrent& c : current) {
    if (!c.task) continue;
    for (Process& p : processes) {
      // The vCPU may run a thread of the process rather than its leader.
      if (p.task == c.task || (c.pid > 0 && p.pid == c.pid && !p.vcpu)) {
        p.vcpu = c.vcpu;
        break;
      }
    }
  }
}

Result<std::vector<Module>> LinuxGuest::modules() const {
  const Symbol* head_sym = m_symbols->find("modules");
  if (!head_sym)
    return make_error(
        "kernel built without modules (CONFIG_MODULES is off: no 'modules' list in System.map)");
  if (!m_profile->module) return make_error("the kernel's BTF has no complete struct module");
  const auto& mod = *m_profile->module;
  const uint64_t head = head_sym->address;
  std::vector<Module> out;
  std::unordered_set<uint64_t> seen{head};
  auto next = read_kernel_u64(head + m_profile->list_head.next.offset);
  if (!next) return make_error("cannot read the modules list: {}", next.error().message);
  uint64_t node = *next;
  while (node != head) {
    if (!seen.insert(node).second)
      return make_error("the module list loops back to {:#x} (corrupted list)", node);
    if (out.size() >= kMaxModules) return make_error("the module list has more than {} entries", kMaxModules);
    const uint64_t m = node - mod.list.offset;
    auto name = m_view.read_virt_string(m_kernel_satp, m + mod.name.offset, mod.name.size);
    if (!name) return make_error("module at {:#x}: {}", m, name.error().message);
    out.push_back(Module{printable(*name), m});
    auto n = read_kernel_u64(node + m_profile->list_head.next.offset);
    if (!n) return make_error("module at {:#x}: cannot read its next pointer: {}", m, n.error().message);
    node = *n;
  }
  return out;
}

Result<uint64_t> LinuxGuest::satp_of_pid(int32_t pid) const {
  if (pid == 0) return m_kernel_satp;
  auto list = processes();
  if (!list) return std::unexpected(list.error());
  for (const Process& p : *list) {
    if (p.pid != pid) continue;
    if (!p.error.empty() && !p.kernel_thread) return make_error("process {}: {}", pid, p.error);
    return p.satp;
  }
  return make_error("no process with pid {}", pid);
}

}  // namespace vigil::introspect
