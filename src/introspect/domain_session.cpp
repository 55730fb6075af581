#include "introspect/domain_session.h"

#include <filesystem>

namespace vigil::introspect {

Result<PausedDomain> PausedDomain::open(hv::DomainManager& manager, uint32_t id) {
  auto d = manager.get(id);
  if (!d) return make_error("no domain with id {}", id);
  // pause() fails for a domain that is not running (already paused, shut down, crashed):
  // its vCPUs are not running then, so it is read as it is and left as it is.
  const bool paused = d->state() == hv::DomainState::kRunning && manager.pause(id).has_value();
  return PausedDomain(manager, std::move(d), paused);
}

PausedDomain::PausedDomain(PausedDomain&& other) noexcept
    : m_manager(other.m_manager), m_domain(std::move(other.m_domain)), m_paused_by_us(other.m_paused_by_us) {
  other.m_paused_by_us = false;
}

PausedDomain::~PausedDomain() {
  // Fails harmlessly if the user unpaused or destroyed the domain meanwhile.
  if (m_paused_by_us && m_domain) (void)m_manager->unpause(m_domain->id());
}

std::vector<VcpuRegs> PausedDomain::vcpus() {
  machine::Machine& m = m_domain->machine();
  std::vector<VcpuRegs> out;
  for (unsigned i = 0; i < m.hart_count(); ++i) {
    riscv::Hart& h = m.hart(i);
    VcpuRegs r;
    r.vcpu = i;
    r.online = h.state.load() == riscv::HartState::kRunning;
    r.priv = h.priv;
    r.pc = h.pc;
    r.tp = h.x[4];  // x4 = tp
    r.sscratch = h.sscratch();
    r.satp = h.satp();
    out.push_back(r);
  }
  return out;
}

KernelFiles kernel_files_for(const hv::DomainConfig& config) {
  const std::filesystem::path dir = std::filesystem::path(config.kernel).parent_path();
  KernelFiles f;
  f.system_map = !config.system_map.empty() ? config.system_map : (dir / "System.map").string();
  f.btf = !config.kernel_btf.empty() ? config.kernel_btf : (dir / "vmlinux.btf").string();
  return f;
}

Result<KernelInfo> KernelInfo::load(const KernelFiles& files) {
  auto symbols = SymbolTable::load(files.system_map);
  if (!symbols) return std::unexpected(symbols.error());
  auto profile = LinuxProfile::from_btf(files.btf);
  if (!profile) return std::unexpected(profile.error());
  return KernelInfo{std::move(*symbols), std::move(*profile)};
}

}  // namespace vigil::introspect
