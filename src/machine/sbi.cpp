#include "machine/sbi.h"

#include <chrono>
#include <thread>

namespace vigil::machine {

namespace {

// Extension IDs (SBI spec chapters 4-12).
constexpr uint64_t kEidLegacySetTimer = 0x00, kEidLegacyPutchar = 0x01, kEidLegacyGetchar = 0x02;
constexpr uint64_t kEidLegacyClearIpi = 0x03, kEidLegacySendIpi = 0x04, kEidLegacyFenceI = 0x05;
constexpr uint64_t kEidLegacySfenceVma = 0x06, kEidLegacySfenceVmaAsid = 0x07, kEidLegacyShutdown = 0x08;
constexpr uint64_t kEidBase = 0x10, kEidTime = 0x54494D45, kEidIpi = 0x735049, kEidRfence = 0x52464E43;
constexpr uint64_t kEidHsm = 0x48534D, kEidSrst = 0x53525354, kEidDbcn = 0x4442434E;

constexpr uint64_t kSpecVersion = 2ull << 24;  // v2.0
constexpr uint64_t kImplId = 0x5647;           // not an assigned ID: "VG"
constexpr uint64_t kImplVersion = 1;
// DBCN transfers are capped so one call cannot hold the hart for long.
constexpr uint64_t kDbcnMaxBytes = 4096;

enum Reg { kA0 = 10, kA1, kA2, kA3, kA4, kA5, kA6, kA7 };

struct SbiRet {
  int64_t error;
  uint64_t value;
};

// Applies `fn` to each hart named by (mask, base); base == -1 means all harts (SBI spec 3.3).
template <typename Fn>
int64_t for_each_hart(SbiHost& host, uint64_t mask, uint64_t base, Fn fn) {
  const unsigned n = host.hart_count();
  if (base == ~0ull) {
    for (unsigned i = 0; i < n; ++i) fn(i);
    return kSbiSuccess;
  }
  for (unsigned bit = 0; bit < 64; ++bit) {
    if (((mask >> bit) & 1) && (base >= n || base + bit >= n)) return kSbiErrInvalidParam;
  }
  for (unsigned bit = 0; bit < 64; ++bit) {
    if ((mask >> bit) & 1) fn(static_cast<unsigned>(base + bit));
  }
  return kSbiSuccess;
}

// Remote fences complete before the call returns: each target applies the request at its
// next slice boundary, and a hart outside run() (sleeping, parked by the scheduler) applies
// it before it runs again, so only targets inside run() are waited for. The caller services
// its own requests while it waits so two harts fencing each other make progress.
int64_t remote_fence(SbiHost& host, riscv::Hart& self, uint64_t mask, uint64_t base, uint32_t what) {
  std::vector<unsigned> targets;
  const int64_t rc = for_each_hart(host, mask, base, [&](unsigned id) { targets.push_back(id); });
  if (rc != kSbiSuccess) return rc;
  for (unsigned id : targets) host.hart(id).request(what);
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  for (unsigned id : targets) {
    riscv::Hart& t = host.hart(id);
    if (&t == &self) continue;
    while ((t.pending_requests() & what) && t.in_run.load(std::memory_order_acquire)) {
      self.service_requests();
      if (std::chrono::steady_clock::now() > give_up) break;
      std::this_thread::yield();
    }
  }
  return kSbiSuccess;
}

// Legacy calls pass a hart mask by virtual address (0: all harts).
uint64_t legacy_mask(riscv::Hart& hart, uint64_t va, uint64_t& base) {
  base = 0;
  if (va == 0) {
    base = ~0ull;
    return 0;
  }
  uint64_t pa = 0, mask = 0;
  if (hart.translate_for_debug(va, riscv::AccessType::kRead, pa) && hart.memory().allows(pa, 8, riscv::p2m::kRead)) {
    std::memcpy(&mask, hart.memory().ptr(pa), 8);
  }
  return mask;
}

bool probe(uint64_t eid) {
  switch (eid) {
    case kEidBase: case kEidTime: case kEidIpi: case kEidRfence: case kEidHsm: case kEidSrst: case kEidDbcn:
    case kEidLegacySetTimer: case kEidLegacyPutchar: case kEidLegacyGetchar: case kEidLegacyClearIpi:
    case kEidLegacySendIpi: case kEidLegacyFenceI: case kEidLegacySfenceVma: case kEidLegacySfenceVmaAsid:
    case kEidLegacyShutdown:
      return true;
    default:
      return false;
  }
}

SbiRet call(SbiHost& host, riscv::Hart& h, uint64_t eid, uint64_t fid) {
  const uint64_t a0 = h.x[kA0], a1 = h.x[kA1], a2 = h.x[kA2];
  switch (eid) {
    case kEidBase:
      switch (fid) {
        case 0: return {kSbiSuccess, kSpecVersion};
        case 1: return {kSbiSuccess, kImplId};
        case 2: return {kSbiSuccess, kImplVersion};
        case 3: return {kSbiSuccess, probe(a0) ? 1u : 0u};
        case 4: case 5: case 6: return {kSbiSuccess, 0};  // mvendorid, marchid, mimpid
        default: return {kSbiErrNotSupported, 0};
      }
    case kEidTime:
      if (fid != 0) return {kSbiErrNotSupported, 0};
      h.stimecmp.store(a0, std::memory_order_release);
      return {kSbiSuccess, 0};
    case kEidIpi:
      if (fid != 0) return {kSbiErrNotSupported, 0};
      return {for_each_hart(host, a0, a1, [&](unsigned id) { host.hart(id).set_mip_bits(1u << riscv::irq::kSsi, true); }),
              0};
    case kEidRfence:
      switch (fid) {
        case 0: return {remote_fence(host, h, a0, a1, riscv::Hart::kReqFenceI), 0};
        case 1: case 2: return {remote_fence(host, h, a0, a1, riscv::Hart::kReqSfenceVma), 0};
        default: return {kSbiErrNotSupported, 0};  // hypervisor fences: no H extension
      }
    case kEidHsm:
      switch (fid) {
        case 0: return {a0 >= host.hart_count() ? kSbiErrInvalidParam : host.hart_start(static_cast<unsigned>(a0), a1, a2), 0};
        case 1: return {host.hart_stop(h.hartid()), 0};
        case 2: {
          if (a0 >= host.hart_count()) return {kSbiErrInvalidParam, 0};
          const int64_t st = host.hart_status(static_cast<unsigned>(a0));
          return {kSbiSuccess, static_cast<uint64_t>(st)};
        }
        default: return {kSbiErrNotSupported, 0};
      }
    case kEidSrst:
      if (fid != 0) return {kSbiErrNotSupported, 0};
      if (a0 > 2 || a1 > 1) return {kSbiErrInvalidParam, 0};
      host.system_reset(static_cast<uint32_t>(a0), static_cast<uint32_t>(a1));
      return {kSbiSuccess, 0};
    case kEidDbcn: {
      // base_addr_hi holds the upper XLEN bits: on RV64 any of them set names an address
      // beyond 2^64, which no guest memory has.
      if (fid <= 1 && a2 != 0) return {kSbiErrInvalidParam, 0};
      const uint64_t pa = a1;
      switch (fid) {
        case 0: {
          const uint64_t n = std::min(a0, kDbcnMaxBytes);
          // The SBI reads guest memory on the guest's behalf: P2m rights apply, as for DMA.
          if (!h.memory().contains(pa, n) || (n > 0 && !h.memory().allows(pa, n, riscv::p2m::kRead))) {
            return {kSbiErrInvalidParam, 0};
          }
          host.console_write(h.memory().ptr(pa), n);
          return {kSbiSuccess, n};
        }
        case 1: {
          const uint64_t n = std::min(a0, kDbcnMaxBytes);
          if (!h.memory().contains(pa, n) || (n > 0 && !h.memory().allows(pa, n, riscv::p2m::kWrite))) {
            return {kSbiErrInvalidParam, 0};
          }
          uint64_t got = 0;
          for (int c; got < n && (c = host.console_getchar()) >= 0; ++got) h.memory().ptr(pa)[got] = static_cast<uint8_t>(c);
          h.memory().note_write(pa, got);
          return {kSbiSuccess, got};
        }
        case 2: {
          const auto byte = static_cast<uint8_t>(a0);
          host.console_write(&byte, 1);
          return {kSbiSuccess, 0};
        }
        default: return {kSbiErrNotSupported, 0};
      }
    }
    default:
      return {kSbiErrNotSupported, 0};
  }
}

}  // namespace

bool handle_sbi_call(SbiHost& host, riscv::Hart& h) {
  const uint64_t eid = h.x[kA7], fid = h.x[kA6];
  // Legacy extensions (SBI spec chapter 5) return one value in a0 and leave a1 alone.
  if (eid <= kEidLegacyShutdown) {
    int64_t ret = 0;
    uint64_t base = 0, mask = 0;
    switch (eid) {
      case kEidLegacySetTimer: h.stimecmp.store(h.x[kA0], std::memory_order_release); break;
      case kEidLegacyPutchar: {
        const auto byte = static_cast<uint8_t>(h.x[kA0]);
        host.console_write(&byte, 1);
        break;
      }
      case kEidLegacyGetchar: ret = host.console_getchar(); break;
      case kEidLegacyClearIpi: h.set_mip_bits(1u << riscv::irq::kSsi, false); break;
      case kEidLegacySendIpi:
        mask = legacy_mask(h, h.x[kA0], base);
        ret = for_each_hart(host, mask, base, [&](unsigned id) { host.hart(id).set_mip_bits(1u << riscv::irq::kSsi, true); });
        break;
      case kEidLegacyFenceI:
        mask = legacy_mask(h, h.x[kA0], base);
        ret = remote_fence(host, h, mask, base, riscv::Hart::kReqFenceI);
        break;
      case kEidLegacySfenceVma:
      case kEidLegacySfenceVmaAsid:
        mask = legacy_mask(h, h.x[kA0], base);
        ret = remote_fence(host, h, mask, base, riscv::Hart::kReqSfenceVma);
        break;
      case kEidLegacyShutdown: host.system_reset(0, 0); break;
      default: break;
    }
    h.x[kA0] = static_cast<uint64_t>(ret);
    return true;
  }
  const SbiRet r = call(host, h, eid, fid);
  h.x[kA0] = static_cast<uint64_t>(r.error);
  h.x[kA1] = r.value;
  return true;
}

}  // namespace vigil::machine
