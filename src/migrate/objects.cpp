#include "migrate/objects.h"

#include <optional>

namespace vigil::migrate {
namespace {

// One field list per object, walked by both the encoder and the decoder, so the two sides
// cannot drift apart (STYLE.md: no copy-paste variants).
class Encoder {
 public:
  explicit Encoder(PayloadWriter& w) : m_w(w) {}
  void u64(const uint64_t& v) { m_w.u64(v); }
  void u32(const uint32_t& v) { m_w.u32(v); }
  void u16(const uint16_t& v) { m_w.u32(v); }
  void u8(const uint8_t& v) { m_w.u8(v); }
  void flag(const bool& v) { m_w.u8(v ? 1 : 0); }

 private:
  PayloadWriter& m_w;
};

// Reads fields in order; the first failure sticks and later reads do nothing.
class Decoder {
 public:
  explicit Decoder(PayloadReader& in) : m_in(in) {}
  void u64(uint64_t& v) { take(m_in.u64(), v); }
  void u32(uint32_t& v) { take(m_in.u32(), v); }
  void u16(uint16_t& v) {
    uint32_t w = 0;
    take(m_in.u32(), w);
    if (!m_err && w > 0xffff) m_err = m_in.fail(fmt::format("16-bit field holds {}", w)).error();
    v = static_cast<uint16_t>(w);
  }
  void u8(uint8_t& v) { take(m_in.u8(), v); }
  void flag(bool& v) {
    uint8_t b = 0;
    take(m_in.u8(), b);
    if (!m_err && b > 1) m_err = m_in.fail(fmt::format("flag byte {} is neither 0 nor 1", b)).error();
    v = b != 0;
  }
  // Done reading: the first error, or trailing bytes.
  Result<void> finish() {
    if (m_err) return std::unexpected(*m_err);
    return m_in.finish();
  }
  bool ok() const { return !m_err; }

 private:
  template <typename T, typename U>
  void take(Result<T> r, U& v) {
    if (m_err) return;
    if (!r) {
      m_err = r.error();
      return;
    }
    v = static_cast<U>(*r);
  }
  PayloadReader& m_in;
  std::optional<Error> m_err;
};

template <typename V, typename S>
void hart_fields(V& v, S& s) {
  for (auto& reg : s.x) v.u64(reg);
  v.u64(s.pc);
  for (auto& f : s.fp.f) v.u64(f);
  v.u32(s.fp.fcsr);
  v.u64(s.mstatus);
  v.u64(s.misa);
  v.u64(s.medeleg);
  v.u64(s.mideleg);
  v.u64(s.mie);
  v.u64(s.mip);
  v.u64(s.mtvec);
  v.u64(s.mscratch);
  v.u64(s.mepc);
  v.u64(s.mcause);
  v.u64(s.mtval);
  v.u64(s.stvec);
  v.u64(s.sscratch);
  v.u64(s.sepc);
  v.u64(s.scause);
  v.u64(s.stval);
  v.u64(s.satp);
  v.u32(s.mcounteren);
  v.u32(s.scounteren);
  v.u32(s.mcountinhibit);
  v.u64(s.menvcfg);
  v.u64(s.senvcfg);
  for (auto& e : s.pmp) {
    v.u8(e.cfg);
    v.u64(e.addr);
  }
  v.u64(s.instret);
  v.u64(s.mtimecmp);
  v.u64(s.stimecmp);
  v.flag(s.running);
  v.flag(s.wfi_pending);
  v.flag(s.builtin_sbi);
}

template <typename V, typename S>
void layout_fields(V& v, S& l) {
  v.u32(l.size);
  v.u64(l.desc);
  v.u64(l.avail);
  v.u64(l.used);
}

template <typename V, typename S>
void virtio_fields(V& v, S& s) {
  v.u32(s.device_id);
  v.u32(s.status);
  v.u32(s.device_features_sel);
  v.u32(s.driver_features_sel);
  v.u64(s.driver_features);
  v.u32(s.queue_sel);
  v.u32(s.interrupt_status);
  v.u32(s.config_generation);
}

template <typename V, typename S>
void queue_fields(V& v, S& q) {
  layout_fields(v, q.pending);
  v.flag(q.vq.enabled);
  v.flag(q.vq.broken);
  v.flag(q.vq.indirect_allowed);
  layout_fields(v, q.vq.layout);
  v.u16(q.vq.last_avail);
  v.u16(q.vq.avail_shadow);
  v.u16(q.vq.used_idx);
  v.flag(q.vq.used_pending);
}

void put_words(PayloadWriter& p, const std::vector<uint32_t>& words) {
  p.u32(static_cast<uint32_t>(words.size()));
  for (uint32_t w : words) p.u32(w);
}

Result<std::vector<uint32_t>> get_words(PayloadReader& in, const char* what) {
  auto n = in.u32();
  if (!n) return std::unexpected(n.error());
  // Checked against what is left before anything is allocated.
  if (uint64_t{*n} * 4 > in.remaining())
    return in.fail(fmt::format("{} count {} exceeds the payload", what, *n));
  std::vector<uint32_t> out(*n);
  for (auto& w : out) {
    auto v = in.u32();
    if (!v) return std::unexpected(v.error());
    w = *v;
  }
  return out;
}

template <typename T>
Result<void> with_context(const Record& r, Result<T> result) {
  if (!result) return make_error("{}: {}", record_context(r), result.error().message);
  return {};
}

}  // namespace

// ---- HART: hart_fields, all little-endian ----

void add_hart(StreamWriter& w, const riscv::Hart& hart) {
  riscv::HartSnapshot s = hart.save_state();
  PayloadWriter p;
  Encoder e(p);
  hart_fields(e, s);
  p.u8(static_cast<uint8_t>(s.priv));
  w.add(RecordType::kHart, hart.hartid(), p.data());
}

Result<void> restore_hart(const Record& r, riscv::Hart& hart) {
  if (r.instance != hart.hartid())
    return make_error("{}: meant for hart {}, not hart {}", record_context(r), r.instance, hart.hartid());
  PayloadReader in(r);
  Decoder d(in);
  riscv::HartSnapshot s;
  uint8_t priv = 0;
  hart_fields(d, s);
  // Privilege follows the fields, read apart so an invalid value never becomes a Priv.
  d.u8(priv);
  if (auto f = d.finish(); !f) return f;
  namespace ms = riscv::mstatus;
  const riscv::HartSnapshot fresh = hart.save_state();
  if (priv != 0 && priv != 1 && priv != 3) return in.fail(fmt::format("privilege {} is not U, S or M", priv));
  s.priv = static_cast<riscv::Priv>(priv);
  if (((s.mstatus & ms::kMpp) >> ms::kMppShift) == 2)
    return in.fail(fmt::format("mstatus {:#x} has MPP = 2, which is no privilege", s.mstatus));
  if ((s.mstatus & (ms::kUxl | ms::kSxl)) != (fresh.mstatus & (ms::kUxl | ms::kSxl)))
    return in.fail(fmt::format("mstatus {:#x} does not have 64-bit UXL and SXL", s.mstatus));
  if (s.misa != fresh.misa)
    return in.fail(fmt::format("misa {:#x} is not this hart's {:#x} (a different ISA)", s.misa, fresh.misa));
  const uint64_t mode = s.satp >> riscv::satp::kModeShift;
  if (mode != riscv::satp::kModeBare && mode != riscv::satp::kModeSv39 && mode != riscv::satp::kModeSv48)
    return in.fail(fmt::format("satp mode {} is not Bare, Sv39 or Sv48", mode));
  if ((s.mip & ~riscv::irq::kAll) != 0 || (s.mie & ~riscv::irq::kAll) != 0)
    return in.fail(fmt::format("mip {:#x} / mie {:#x} name interrupts this hart does not have", s.mip, s.mie));
  if (s.fp.fcsr > 0xff) return in.fail(fmt::format("fcsr {:#x} has bits above frm and fflags", s.fp.fcsr));
  if (s.x[0] != 0) return in.fail("x0 is not zero");
  hart.restore_state(s);
  return {};
}

// ---- CLINT: u32 harts | per hart: u64 mtimecmp, u8 msip ----

void add_clint(StreamWriter& w, devices::ClintTarget& clint) {
  PayloadWriter p;
  p.u32(clint.hart_count());
  for (unsigned h = 0; h < clint.hart_count(); ++h) {
    p.u64(clint.mtimecmp(h));
    p.u8(clint.msip(h) ? 1 : 0);
  }
  w.add(RecordType::kClint, 0, p.data());
}

Result<void> restore_clint(const Record& r, devices::ClintTarget& clint) {
  PayloadReader in(r);
  Decoder d(in);
  uint32_t harts = 0;
  d.u32(harts);
  if (d.ok() && harts != clint.hart_count())
    return in.fail(fmt::format("saved for {} harts, the domain has {}", harts, clint.hart_count()));
  std::vector<std::pair<uint64_t, bool>> values(d.ok() ? harts : 0);
  for (auto& [cmp, msip] : values) {
    d.u64(cmp);
    d.flag(msip);
  }
  if (auto f = d.finish(); !f) return f;
  for (unsigned h = 0; h < harts; ++h) {
    clint.set_mtimecmp(h, values[h].first);
    clint.set_msip(h, values[h].second);
  }
  return {};
}

// ---- PLIC: five word vectors, each u32 count | count x u32 ----

void add_plic(StreamWriter& w, const devices::Plic& plic) {
  const devices::Plic::State s = plic.save_state();
  PayloadWriter p;
  for (const auto* v : {&s.priority, &s.level, &s.in_service, &s.enable, &s.threshold}) put_words(p, *v);
  w.add(RecordType::kPlic, 0, p.data());
}

Result<void> restore_plic(const Record& r, devices::Plic& plic) {
  PayloadReader in(r);
  devices::Plic::State s;
  const std::pair<std::vector<uint32_t>*, const char*> parts[] = {
      {&s.priority, "priority"}, {&s.level, "level"}, {&s.in_service, "claimed"},
      {&s.enable, "enable"},     {&s.threshold, "threshold"}};
  for (auto [vec, what] : parts) {
    auto words = get_words(in, what);
    if (!words) return std::unexpected(words.error());
    *vec = std::move(*words);
  }
  if (auto f = in.finish(); !f) return f;
  return with_context(r, plic.restore_state(s));
}

// ---- UART: nine register bytes | u8 THRE pending | u32 count | FIFO bytes ----

void add_uart(StreamWriter& w, const devices::Uart16550& uart) {
  const devices::Uart16550::State s = uart.save_state();
  PayloadWriter p;
  for (uint8_t b : {s.ier, s.fcr, s.lcr, s.mcr, s.lsr_errors, s.msr_delta, s.scr, s.dll, s.dlm}) p.u8(b);
  p.u8(s.thre_pending ? 1 : 0);
  p.u32(static_cast<uint32_t>(s.rx.size()));
  p.bytes(s.rx);
  w.add(RecordType::kUart, 0, p.data());
}

Result<void> restore_uart(const Record& r, devices::Uart16550& uart) {
  PayloadReader in(r);
  Decoder d(in);
  devices::Uart16550::State s;
  for (uint8_t* b : {&s.ier, &s.fcr, &s.lcr, &s.mcr, &s.lsr_errors, &s.msr_delta, &s.scr, &s.dll, &s.dlm}) d.u8(*b);
  d.flag(s.thre_pending);
  uint32_t count = 0;
  d.u32(count);
  if (!d.ok()) return d.finish();
  if (count > devices::Uart16550::kRxFifoCapacity)
    return in.fail(fmt::format("receive FIFO holds {} bytes, more than its {}", count,
                               devices::Uart16550::kRxFifoCapacity));
  auto bytes = in.bytes(count);
  if (!bytes) return std::unexpected(bytes.error());
  s.rx.assign(bytes->begin(), bytes->end());
  if (auto f = in.finish(); !f) return f;
  return with_context(r, uart.restore_state(s));
}

// ---- TEST_DEVICE: empty ----

void add_test_device(StreamWriter& w) { w.add(RecordType::kTestDevice, 0, {}); }

Result<void> restore_test_device(const Record& r) {
  PayloadReader in(r);
  return in.finish();
}

// ---- VIRTIO(slot): virtio_fields | u32 queues | queue_fields each | u32 n | backend ----

Result<void> add_virtio(StreamWriter& w, uint32_t slot, const devices::VirtioMmio& dev) {
  auto s = dev.save_state();
  if (!s) return std::unexpected(s.error());
  PayloadWriter p;
  Encoder e(p);
  virtio_fields(e, *s);
  p.u32(static_cast<uint32_t>(s->queues.size()));
  for (const auto& q : s->queues) queue_fields(e, q);
  p.u32(static_cast<uint32_t>(s->backend.size()));
  p.bytes(s->backend);
  w.add(RecordType::kVirtio, slot, p.data());
  return {};
}

Result<void> restore_virtio(const Record& r, devices::VirtioMmio& dev) {
  PayloadReader in(r);
  Decoder d(in);
  devices::VirtioMmio::State s;
  virtio_fields(d, s);
  uint32_t queues = 0;
  d.u32(queues);
  if (!d.ok()) return d.finish();
  if (queues > devices::VirtioMmio::kMaxQueues)
    return in.fail(fmt::format("{} queues, more than a transport has ({})", queues, devices::VirtioMmio::kMaxQueues));
  s.queues.resize(queues);
  for (auto& q : s.queues) queue_fields(d, q);
  uint32_t backend = 0;
  d.u32(backend);
  if (!d.ok()) return d.finish();
  auto bytes = in.bytes(backend);
  if (!bytes) return std::unexpected(bytes.error());
  s.backend.assign(bytes->begin(), bytes->end());
  if (auto f = d.finish(); !f) return f;
  return with_context(r, dev.restore_state(s));
}

// ---- HSM: u32 harts | per hart: u64 state, u64 start address, u64 opaque ----

void add_hsm(StreamWriter& w, machine::Machine& m) {
  PayloadWriter p;
  p.u32(m.hart_count());
  for (unsigned h = 0; h < m.hart_count(); ++h) {
    const auto s = m.hsm_state(h);
    p.u64(static_cast<uint64_t>(s.state));
    p.u64(s.start_addr);
    p.u64(s.opaque);
  }
  w.add(RecordType::kHsm, 0, p.data());
}

Result<void> restore_hsm(const Record& r, machine::Machine& m) {
  PayloadReader in(r);
  Decoder d(in);
  uint32_t harts = 0;
  d.u32(harts);
  if (d.ok() && harts != m.hart_count())
    return in.fail(fmt::format("saved for {} harts, the domain has {}", harts, m.hart_count()));
  std::vector<machine::Machine::HsmSnapshot> states(d.ok() ? harts : 0);
  for (auto& s : states) {
    uint64_t state = 0;
    d.u64(state);
    s.state = state > 3 ? -1 : static_cast<int64_t>(state);
    d.u64(s.start_addr);
    d.u64(s.opaque);
  }
  if (auto f = d.finish(); !f) return f;
  for (unsigned h = 0; h < harts; ++h) {
    if (auto ok = m.set_hsm_state(h, states[h]); !ok) return in.fail(fmt::format("hart {}: {}", h, ok.error().message));
  }
  return {};
}

// ---- CLOCK: u64 mtime ----

void add_clock(StreamWriter& w, uint64_t mtime) {
  PayloadWriter p;
  p.u64(mtime);
  w.add(RecordType::kClock, 0, p.data());
}

Result<void> restore_clock(const Record& r, machine::Machine& m) {
  PayloadReader in(r);
  auto mtime = in.u64();
  if (!mtime) return std::unexpected(mtime.error());
  if (auto f = in.finish(); !f) return f;
  if (!m.set_paused_clock(*mtime)) return in.fail(fmt::format("mtime {} is beyond the clock's range", *mtime));
  return {};
}

}  // namespace vigil::migrate
