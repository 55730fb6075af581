// Introspecting a domain of a DomainManager: a consistent view (the domain paused while it is
// read, resumed afterwards only if it was running), its vCPUs' registers, and the kernel files
// (System.map, BTF) its profile comes from.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "base/error.h"
#include "hv/domain_manager.h"
#include "introspect/linux_guest.h"

namespace vigil::introspect {

// Pauses a running domain the way `vigil pause` does (vCPUs stop at a slice boundary, the
// guest's clock stops) and unpauses it when destroyed, only if it paused it: a domain the
// user paused stays paused, and a shut-down or crashed one is read as it is.
class PausedDomain {
 public:
  static Result<PausedDomain> open(hv::DomainManager& manager, uint32_t id);
  PausedDomain(PausedDomain&& other) noexcept;
  PausedDomain& operator=(PausedDomain&&) = delete;
  PausedDomain(const PausedDomain&) = delete;
  ~PausedDomain();

  hv::Domain& domain() { return *m_domain; }
  bool paused_by_us() const { return m_paused_by_us; }
  GuestView view() { return GuestView(m_domain->machine().memory()); }
  // Registers of every vCPU (they are stopped unless someone unpaused the domain meanwhile).
  std::vector<VcpuRegs> vcpus();

 private:
  PausedDomain(hv::DomainManager& m, std::shared_ptr<hv::Domain> d, bool paused)
      : m_manager(&m), m_domain(std::move(d)), m_paused_by_us(paused) {}
  hv::DomainManager* m_manager;
  std::shared_ptr<hv::Domain> m_domain;  // keeps RAM alive even if the domain is destroyed meanwhile
  bool m_paused_by_us;
};

// The files a domain's Linux profile is read from: the config's system_map / kernel_btf, or
// System.map and vmlinux.btf next to its kernel Image.
struct KernelFiles {
  std::string system_map;
  std::string btf;
};
KernelFiles kernel_files_for(const hv::DomainConfig& config);

// Symbols and profile of one kernel build, parsed once.
struct KernelInfo {
  SymbolTable symbols;
  LinuxProfile profile;
  static Result<KernelInfo> load(const KernelFiles& files);
};

}  // namespace vigil::introspect
