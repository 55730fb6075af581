#include "hv/psr_service.h"

namespace vigil::hv {

Result<std::unique_ptr<PsrService>> PsrService::create(const psr::Geometry& g, uint32_t sampling) {
  auto m = psr::CacheModel::create(g, sampling);
  if (!m) return std::unexpected(m.error());
  return std::unique_ptr<PsrService>(new PsrService(std::move(*m)));
}

PsrService::~PsrService() {
  std::vector<uint32_t> ids;
  {
    std::lock_guard lock(m_mutex);
    for (auto& [id, e] : m_domains) ids.push_back(id);
  }
  for (uint32_t id : ids) forget(id);
}

PsrHwInfo PsrService::hwinfo() const {
  PsrHwInfo h;
  h.geometry = m_model->geometry();
  h.sampling = m_model->sampling();
  h.total_rmid = psr::kMaxRmids;
  h.cos_max = psr::kMaxCos - 1;
  h.cbm_len = m_model->cbm_len();
  h.default_cbm = m_model->cos_mask(0);
  h.peak_bytes_per_s = peak_bytes_per_s();
  h.miss_cost_ns = miss_cost_ns();
  return h;
}

void PsrService::Feed::on_marked_access(uint64_t pa, uint64_t len, riscv::AccessType type) {
  const uint32_t r = rmid.load(std::memory_order_relaxed);
  if (r == 0 || len == 0) return;
  const uint64_t addr = reinterpret_cast<uint64_t>(host) + (pa - base);
  const uint64_t m = model->access(r, cos.load(std::memory_order_relaxed), addr,
                                   static_cast<uint32_t>(std::min<uint64_t>(len, UINT32_MAX)),
                                   type == riscv::AccessType::kWrite);
  if (m) misses.fetch_add(m, std::memory_order_relaxed);
}

PsrService::Entry& PsrService::entry(uint32_t domid) {
  Entry& e = m_domains[domid];
  if (!e.feed) {
    e.feed = std::make_unique<Feed>();
    e.feed->model = m_model.get();
    e.cbm = m_model->cos_mask(0);
  }
  return e;
}

void PsrService::mark_pages(Entry& e, bool on) {
  const uint64_t pages = e.mem->size() >> riscv::kPageShift;
  for (uint64_t i = 0; i < pages; ++i) {
    const uint64_t addr = reinterpret_cast<uint64_t>(e.mem->host()) + (i << riscv::kPageShift);
    if (m_model->page_sampled(addr)) e.mem->set_mark(i, riscv::mark::kPsrSample, on);
  }
}

Result<void> PsrService::attach(uint32_t domid, riscv::GuestMemory& mem) {
  std::lock_guard lock(m_mutex);
  Entry& e = entry(domid);
  if (e.feed->rmid.load() != 0) return make_error("domain {} already has monitoring attached", domid);
  if (reinterpret_cast<uint64_t>(mem.host()) & riscv::kPageMask) {
    return make_error("domain {}'s RAM is not page-aligned in the host, so it cannot be sampled", domid);
  }
  auto rmid = m_model->alloc_rmid();
  if (!rmid) return std::unexpected(rmid.error());
  e.mem = &mem;
  e.feed->host = mem.host();
  e.feed->base = mem.base();
  e.feed->cos.store(e.cos, std::memory_order_relaxed);
  e.feed->rmid.store(*rmid, std::memory_order_release);
  mem.page_observer.store(e.feed.get(), std::memory_order_release);
  mark_pages(e, true);
  return {};
}

Result<void> PsrService::detach(uint32_t domid) {
  std::lock_guard lock(m_mutex);
  auto it = m_domains.find(domid);
  if (it == m_domains.end() || it->second.feed->rmid.load() == 0) {
    return make_error("domain {} has no monitoring attached", domid);
  }
  Entry& e = it->second;
  mark_pages(e, false);
  const uint32_t r = e.feed->rmid.exchange(0, std::memory_order_acq_rel);
  // The feed object stays (a vCPU may be inside on_marked_access); it ignores RMID 0.
  m_model->free_rmid(r);
  return {};
}

bool PsrService::attached(uint32_t domid) {
  std::lock_guard lock(m_mutex);
  auto it = m_domains.find(domid);
  return it != m_domains.end() && it->second.feed->rmid.load() != 0;
}

Result<void> PsrService::set_cbm(uint32_t domid, uint64_t cbm) {
  std::lock_guard lock(m_mutex);
  auto cos = m_model->acquire_cos(cbm);
  if (!cos) return std::unexpected(cos.error());
  Entry& e = entry(domid);
  const uint32_t old = e.cos;
  e.cos = *cos;
  e.cbm = cbm;
  e.feed->cos.store(*cos, std::memory_order_release);
  if (old != 0) m_model->release_cos(old);
  // The model drops the domain's lines outside its new mask (cache_model.h, "CAT mask changes").
  if (const uint32_t rmid = e.feed->rmid.load()) m_model->drop_outside(rmid, cbm);
  return {};
}

Result<unsigned> PsrService::set_thrtl(uint32_t domid, unsigned thrtl) {
  if (thrtl > 90) {
    return make_error("The throttle {} is out of range: MBA throttles are 0 (none) to 90 percent.", thrtl);
  }
  if (thrtl % 10 != 0) {
    return make_error("The throttle {} is not a multiple of 10: MBA throttles go in steps of 10 percent.", thrtl);
  }
  std::lock_guard lock(m_mutex);
  Entry& e = entry(domid);
  e.thrtl = thrtl;
  return e.thrtl;
}

Result<PsrDomainStatus> PsrService::status(uint32_t domid) {
  std::lock_guard lock(m_mutex);
  Entry& e = entry(domid);
  PsrDomainStatus s;
  s.rmid = e.feed->rmid.load();
  s.cbm = e.cbm;
  s.thrtl = e.thrtl;
  if (s.rmid) s.counters = m_model->counters(s.rmid);
  return s;
}

void PsrService::forget(uint32_t domid) {
  std::lock_guard lock(m_mutex);
  auto it = m_domains.find(domid);
  if (it == m_domains.end()) return;
  Entry& e = it->second;
  if (const uint32_t r = e.feed->rmid.exchange(0)) {
    mark_pages(e, false);
    m_model->free_rmid(r);
  }
  if (e.mem != nullptr) e.mem->page_observer.store(nullptr, std::memory_order_release);
  if (e.cos != 0) m_model->release_cos(e.cos);
  m_domains.erase(it);
}

Result<void> PsrService::apply_config(uint32_t domid, riscv::GuestMemory& mem, const DomainConfig& c) {
  if (c.psr_cat_cbm != 0) {
    if (auto r = set_cbm(domid, c.psr_cat_cbm); !r) return make_error("psr_cat_cbm: {}", r.error().message);
  }
  if (c.psr_mba_thrtl != 0) {
    if (auto r = set_thrtl(domid, c.psr_mba_thrtl); !r) return make_error("psr_mba_thrtl: {}", r.error().message);
  }
  if (c.psr_cmt) {
    if (auto r = attach(domid, mem); !r) return make_error("psr_cmt: {}", r.error().message);
  }
  return {};
}

std::vector<uint32_t> PsrService::attached_domains() {
  std::lock_guard lock(m_mutex);
  std::vector<uint32_t> ids;
  for (auto& [id, e] : m_domains) {
    if (e.feed->rmid.load() != 0) ids.push_back(id);
  }
  return ids;
}

MemoryCharge PsrService::take(uint32_t domid) {
  std::lock_guard lock(m_mutex);
  auto it = m_domains.find(domid);
  if (it == m_domains.end()) return {};
  Entry& e = it->second;
  const uint64_t now = e.feed->misses.load(std::memory_order_relaxed);
  const uint64_t delta = now - e.taken_misses;
  e.taken_misses = now;
  // Bytes as MBM counts them (misses and dirty writebacks of the domain's lines), so the MBA
  // budget and psr-cmt-show's total-mem-bandwidth agree.
  const uint32_t rmid = e.feed->rmid.load(std::memory_order_relaxed);
  const uint64_t mbm = rmid ? m_model->counters(rmid).mbm_total_bytes : e.taken_mbm;
  const uint64_t bytes = mbm >= e.taken_mbm ? mbm - e.taken_mbm : 0;  // a new RMID starts from zero
  e.taken_mbm = mbm;
  const uint64_t acc = rmid ? m_model->counters(rmid).accesses : e.taken_accesses;
  const uint64_t accesses = acc >= e.taken_accesses ? acc - e.taken_accesses : 0;
  e.taken_accesses = acc;
  return {delta, bytes, e.thrtl, accesses};
}

}  // namespace vigil::hv
