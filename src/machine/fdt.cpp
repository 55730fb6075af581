#include "machine/fdt.h"

#include <libfdt.h>

#include <array>

#include "machine/layout.h"

namespace vigil::machine {

namespace {

// Phandles: one interrupt controller per hart, then the PLIC and the test device.
constexpr uint32_t kPhandleCpuIntc = 1;  // + hart id
constexpr uint32_t kPhandlePlic = 100;
constexpr uint32_t kPhandleTest = 101;

class Writer {
 public:
  explicit Writer(std::vector<uint8_t>& buf) : m_buf(buf) { m_err = fdt_create(m_buf.data(), static_cast<int>(m_buf.size())); }
  void check(int rc) {
    if (rc < 0 && m_err >= 0) m_err = rc;
  }
  void begin(const char* name) { check(fdt_begin_node(fdt(), name)); }
  void end() { check(fdt_end_node(fdt())); }
  void u32(const char* name, uint32_t v) { check(fdt_property_u32(fdt(), name, v)); }
  void u64(const char* name, uint64_t v) { check(fdt_property_u64(fdt(), name, v)); }
  void str(const char* name, const std::string& v) { check(fdt_property_string(fdt(), name, v.c_str())); }
  void empty(const char* name) { check(fdt_property(fdt(), name, nullptr, 0)); }
  // A list of strings (e.g. compatible = "a", "b").
  void strings(const char* name, std::initializer_list<const char*> list) {
    std::string joined;
    for (const char* s : list) joined.append(s).push_back('\0');
    check(fdt_property(fdt(), name, joined.data(), static_cast<int>(joined.size())));
  }
  void cells(const char* name, const std::vector<uint32_t>& v) {
    std::vector<fdt32_t> be;
    for (uint32_t c : v) be.push_back(cpu_to_fdt32(c));
    check(fdt_property(fdt(), name, be.data(), static_cast<int>(be.size() * sizeof(fdt32_t))));
  }
  // reg = <addr-hi addr-lo size-hi size-lo> with #address-cells = #size-cells = 2.
  void reg(uint64_t base, uint64_t size) {
    cells("reg", {static_cast<uint32_t>(base >> 32), static_cast<uint32_t>(base), static_cast<uint32_t>(size >> 32),
                  static_cast<uint32_t>(size)});
  }
  void* fdt() { return m_buf.data(); }
  int error() const { return m_err; }

 private:
  std::vector<uint8_t>& m_buf;
  int m_err = 0;
};

std::string node_name(const char* base, uint64_t addr) { return fmt::format("{}@{:x}", base, addr); }

}  // namespace

Result<std::vector<uint8_t>> build_fdt(const FdtParams& p) {
  std::vector<uint8_t> buf(layout::kDtbMaxSize);
  Writer w(buf);
  // Reserved but still in the linear map (not no-map): Linux copies the log from __va(base).
  if (p.tpm && p.tpm_log_size) w.check(fdt_add_reservemap_entry(w.fdt(), p.tpm_log_base, p.tpm_log_size));
  w.check(fdt_finish_reservemap(w.fdt()));
  w.begin("");
  w.u32("#address-cells", 2);
  w.u32("#size-cells", 2);
  w.str("compatible", "vigil,riscv-virt");
  w.str("model", "Vigil RISC-V virtual board");

  w.begin("chosen");
  w.str("bootargs", p.bootargs);
  w.str("stdout-path", node_name("/soc/serial", layout::kUartBase));
  if (p.initrd_end > p.initrd_start) {
    w.u64("linux,initrd-start", p.initrd_start);
    w.u64("linux,initrd-end", p.initrd_end);
  }
  w.end();

  w.begin(node_name("memory", p.ram_base).c_str());
  w.str("device_type", "memory");
  w.reg(p.ram_base, p.ram_size);
  w.end();

  w.begin("cpus");
  w.u32("#address-cells", 1);
  w.u32("#size-cells", 0);
  w.u32("timebase-frequency", static_cast<uint32_t>(layout::kTimebaseHz));
  for (unsigned h = 0; h < p.harts; ++h) {
    w.begin(fmt::format("cpu@{}", h).c_str());
    w.str("device_type", "cpu");
    w.u32("reg", h);
    w.str("status", "okay");
    w.str("compatible", "riscv");
    w.str("riscv,isa", "rv64imafdc_zicsr_zifencei");
    w.str("mmu-type", "riscv,sv48");
    w.begin("interrupt-controller");
    w.u32("#interrupt-cells", 1);
    w.empty("interrupt-controller");
    w.str("compatible", "riscv,cpu-intc");
    w.u32("phandle", kPhandleCpuIntc + h);
    w.end();
    w.end();
  }
  w.end();

  w.begin("soc");
  w.u32("#address-cells", 2);
  w.u32("#size-cells", 2);
  w.str("compatible", "simple-bus");
  w.empty("ranges");

  w.begin(node_name("test", layout::kTestBase).c_str());
  w.strings("compatible", {"sifive,test1", "sifive,test0", "syscon"});
  w.reg(layout::kTestBase, layout::kTestSize);
  w.u32("phandle", kPhandleTest);
  w.end();

  std::vector<uint32_t> clint_irqs, plic_irqs;
  for (unsigned h = 0; h < p.harts; ++h) {
    // CLINT: machine software (3) and timer (7); PLIC contexts: M external (11), S external (9).
    clint_irqs.insert(clint_irqs.end(), {kPhandleCpuIntc + h, 3, kPhandleCpuIntc + h, 7});
    plic_irqs.insert(plic_irqs.end(), {kPhandleCpuIntc + h, 11, kPhandleCpuIntc + h, 9});
  }
  w.begin(node_name("clint", layout::kClintBase).c_str());
  w.strings("compatible", {"sifive,clint0", "riscv,clint0"});
  w.reg(layout::kClintBase, layout::kClintSize);
  w.cells("interrupts-extended", clint_irqs);
  w.end();

  w.begin(node_name("plic", layout::kPlicBase).c_str());
  w.strings("compatible", {"sifive,plic-1.0.0", "riscv,plic0"});
  w.u32("#interrupt-cells", 1);
  w.u32("#address-cells", 0);
  w.empty("interrupt-controller");
  w.reg(layout::kPlicBase, layout::kPlicSize);
  w.u32("riscv,ndev", layout::kPlicSources - 1);
  w.cells("interrupts-extended", plic_irqs);
  w.u32("phandle", kPhandlePlic);
  w.end();

  w.begin(node_name("serial", layout::kUartBase).c_str());
  w.str("compatible", "ns16550a");
  w.reg(layout::kUartBase, layout::kUartSize);
  w.u32("clock-frequency", 3686400);
  w.u32("interrupt-parent", kPhandlePlic);
  w.u32("interrupts", layout::kUartIrq);
  w.end();

  for (unsigned i = 0; i < p.virtio_slots; ++i) {
    const uint64_t base = layout::kVirtioBase + i * layout::kVirtioSize;
    w.begin(node_name("virtio_mmio", base).c_str());
    w.str("compatible", "virtio,mmio");
    w.reg(base, layout::kVirtioSize);
    w.u32("interrupt-parent", kPhandlePlic);
    w.u32("interrupts", layout::kVirtioIrqBase + i);
    w.end();
  }
  if (p.tpm) {
    // As QEMU's sysbus TIS describes itself: no interrupt, so Linux's tpm_tis polls.
    w.begin(node_name("tpm", layout::kTpmBase).c_str());
    w.str("compatible", "tcg,tpm-tis-mmio");
    w.reg(layout::kTpmBase, layout::kTpmSize);
    if (p.tpm_log_size) {
      w.u64("linux,sml-base", p.tpm_log_base);
      w.u32("linux,sml-size", p.tpm_log_size);
    }
    w.end();
  }
  w.end();  // soc

  w.begin("poweroff");
  w.str("compatible", "syscon-poweroff");
  w.u32("regmap", kPhandleTest);
  w.u32("offset", 0);
  w.u32("value", 0x5555);
  w.end();
  w.begin("reboot");
  w.str("compatible", "syscon-reboot");
  w.u32("regmap", kPhandleTest);
  w.u32("offset", 0);
  w.u32("value", 0x7777);
  w.end();

  w.end();  // root
  w.check(fdt_finish(w.fdt()));
  if (w.error() < 0) return make_error("building the device tree failed: {}", fdt_strerror(w.error()));
  buf.resize(fdt_totalsize(w.fdt()));
  return buf;
}

}  // namespace vigil::machine
