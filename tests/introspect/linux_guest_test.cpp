// The Linux layer over a fake kernel built in a FakeGuest: a task list, mm->pgd page tables,
// per-vCPU current, the KASLR offset, modules, and corrupted lists. The profile here is
// synthetic (the real one comes from BTF: linux_profile_test.cpp).
#include "introspect/linux_guest.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "fake_guest.h"

namespace vigil::introspect {
namespace {

using testing::FakeGuest;
constexpr uint64_t kBase = FakeGuest::kBase;
constexpr uint64_t kLinear = 0xffff'ffd8'0000'0000ull;  // linear map of RAM (Sv39 PAGE_OFFSET)
constexpr uint64_t kImage = 0xffff'ffff'8000'0000ull;   // kernel image link address
constexpr uint64_t kImagePa = kBase + 0x20'0000;

LinuxProfile fake_profile() {
  LinuxProfile p;
  p.task_struct.size = 0x100;
  p.task_struct.tasks = {0x10, 16};
  p.task_struct.pid = {0x20, 4};
  p.task_struct.tgid = {0x24, 4};
  p.task_struct.comm = {0x30, 16};
  p.task_struct.real_parent = {0x40, 8};
  p.task_struct.mm = {0x48, 8};
  p.task_struct.active_mm = {0x50, 8};
  p.mm_struct.pgd = {0x8, 8};
  p.list_head.next = {0, 8};
  p.list_head.prev = {8, 8};
  return p;
}

// Kernel objects at fixed link-time addresses in the image; `kaslr` moves where they really are.
struct FakeKernel {
  static constexpr uint64_t kBanner = kImage + 0x1000;
  static constexpr uint64_t kInitTask = kImage + 0x2000;
  static constexpr uint64_t kInitMm = kImage + 0x3000;
  static constexpr uint64_t kModules = kImage + 0x3800;
  static constexpr uint64_t kTask1 = kImage + 0x4000, kTask2 = kImage + 0x4100, kTask42 = kImage + 0x4200;
  static constexpr uint64_t kIdle1 = kImage + 0x4300;
  static constexpr uint64_t kMm1 = kImage + 0x5000, kMm42 = kImage + 0x5100;

  FakeGuest g;
  LinuxProfile profile = fake_profile();
  SymbolTable symbols;
  uint64_t kernel_satp = 0, satp1 = 0, satp42 = 0;
  int64_t kaslr;

  explicit FakeKernel(int64_t kaslr_offset = 0, bool with_modules = false) : kaslr(kaslr_offset) {
    kernel_satp = g.new_root(sv::kModeSv39);
    // Linear map (1 GiB) and the kernel image (2 MiB pages), as Linux sets them up.
    g.map(kernel_satp, kLinear, kBase, 2);
    for (uint64_t off = 0; off < (14 << 20); off += 2 << 20) {
      g.map(kernel_satp, kImage + static_cast<uint64_t>(kaslr) + off, kImagePa + off, 1);
    }
    // swapper_pg_dir is in the image (its link-time address; the root sits at the top of RAM).
    const uint64_t swapper = kImage + (((kernel_satp & sv::kSatpPpnMask) << 12) - kImagePa);
    // Process page tables: a copy of the kernel's root (shared upper half) plus user mappings.
    satp1 = clone_root();
    satp42 = clone_root();

    put_str(kBanner, "Linux version 6.1.0-fake (test)\n");
    put64(kInitMm + 8, moved(swapper));
    put_task(kInitTask, 0, "swapper/0", kInitTask, 0, kTask1 + 0x10, kModules /*unused*/);
    put_task(kTask1, 1, "init", kInitTask, kMm1, kTask2 + 0x10, kInitTask + 0x10);
    put_task(kTask2, 2, "kthreadd", kInitTask, 0, kTask42 + 0x10, kTask1 + 0x10);
    put_task(kTask42, 42, "sleep", kTask1, kMm42, kInitTask + 0x10, kTask2 + 0x10);
    put_task(kIdle1, 0, "swapper/1", kInitTask, 0, 0, 0);
    put64(kMm1 + 8, linear((satp1 & sv::kSatpPpnMask) << 12));
    put64(kMm42 + 8, linear((satp42 & sv::kSatpPpnMask) << 12));

    std::string map = fmt::format(
        "{:016x} D linux_banner\n{:016x} D init_task\n{:016x} D init_mm\n{:016x} B swapper_pg_dir\n", kBanner,
        kInitTask, kInitMm, swapper);
    if (with_modules) map += fmt::format("{:016x} d modules\n", kModules);
    symbols = *SymbolTable::parse(map, "fake.map");
  }

  static uint64_t linear(uint64_t pa) { return kLinear + (pa - kBase); }
  // Where a link-time image address really is, physically.
  uint64_t image_pa(uint64_t va) const { return kImagePa + (va - kImage); }
  void put64(uint64_t va, uint64_t v) { g.put64(image_pa(va), v); }
  void put_str(uint64_t va, const std::string& s) { g.put_bytes(image_pa(va), s.c_str(), s.size() + 1); }
  uint64_t moved(uint64_t va) const { return va + static_cast<uint64_t>(kaslr); }

  uint64_t clone_root() {
    const uint64_t root = g.alloc_page();
    const uint64_t kroot = (kernel_satp & sv::kSatpPpnMask) << 12;
    for (int i = 256; i < 512; ++i) g.put64(root + i * 8, g.get64(kroot + i * 8));
    return make_satp(sv::kModeSv39, root);
  }

  // Pointers inside tasks are run-time addresses: moved by kaslr.
  void put_task(uint64_t task, int32_t pid, const char* comm, uint64_t parent, uint64_t mm, uint64_t next,
                uint64_t prev) {
    const auto m = [&](uint64_t p) { return p ? moved(p) : 0; };
    put64(task + 0x10, m(next));
    put64(task + 0x18, m(prev));
    const uint64_t ids =
        static_cast<uint32_t>(pid) | (static_cast<uint64_t>(static_cast<uint32_t>(pid)) << 32);
    put64(task + 0x20, ids);
    char name[16] = {};
    std::strncpy(name, comm, 15);
    g.put_bytes(image_pa(task + 0x30), name, 16);
    put64(task + 0x40, m(parent));
    put64(task + 0x48, m(mm));
  }

  std::vector<VcpuRegs> vcpus() {
    std::vector<VcpuRegs> v(3);
    v[0] = {0, true, riscv::Priv::U, 0x10000, 0x3ff0, moved(kTask42), satp42};       // user mode: sscratch
    v[1] = {1, true, riscv::Priv::S, moved(kImage), moved(kIdle1), 0, kernel_satp};  // idle: tp
    v[2] = {2, false, riscv::Priv::S, 0, 0, 0, 0};
    return v;
  }
};

TEST(LinuxGuest, ProcessListCurrentAndSatp) {
  FakeKernel k;
  const auto vcpus = k.vcpus();
  auto g = LinuxGuest::attach(k.g.view(), k.symbols, k.profile, vcpus);
  ASSERT_TRUE(g) << g.error().message;
  EXPECT_EQ(g->kernel_offset(), 0);
  EXPECT_EQ(g->kernel_satp(), k.kernel_satp);
  EXPECT_EQ(g->banner(), "Linux version 6.1.0-fake (test)");

  auto ps = g->processes();
  ASSERT_TRUE(ps) << ps.error().message;
  ASSERT_EQ(ps->size(), 4u);
  const auto& p = *ps;
  EXPECT_EQ(p[0].pid, 0);
  EXPECT_EQ(p[0].comm, "swapper/0");
  EXPECT_EQ(p[1].pid, 1);
  EXPECT_EQ(p[1].ppid, 0);
  EXPECT_EQ(p[1].comm, "init");
  EXPECT_EQ(p[1].satp, k.satp1);
  EXPECT_FALSE(p[1].kernel_thread);
  EXPECT_EQ(p[2].comm, "kthreadd");
  EXPECT_TRUE(p[2].kernel_thread);
  EXPECT_EQ(p[2].satp, k.kernel_satp);
  EXPECT_EQ(p[3].pid, 42);
  EXPECT_EQ(p[3].ppid, 1);
  EXPECT_EQ(p[3].satp, k.satp42);
  EXPECT_EQ(*g->satp_of_pid(42), k.satp42);
  EXPECT_FALSE(g->satp_of_pid(7));

  auto cur = g->current(vcpus, &*ps);
  ASSERT_EQ(cur.size(), 3u);
  EXPECT_EQ(cur[0].pid, 42);
  EXPECT_EQ(cur[0].comm, "sleep");
  EXPECT_EQ(cur[0].mode, 'U');
  EXPECT_EQ(cur[1].pid, 0);
  EXPECT_EQ(cur[1].comm, "swapper/1");  // the idle task is not on the task list
  EXPECT_FALSE(cur[2].online);
  EXPECT_EQ(cur[2].task, 0u);
  LinuxGuest::mark_running(*ps, cur);
  EXPECT_EQ((*ps)[3].vcpu, 0u);
  EXPECT_FALSE((*ps)[1].vcpu);

  auto mods = g->modules();
  ASSERT_FALSE(mods);
  EXPECT_NE(mods.error().message.find("kernel built without modules"), std::string::npos);
}

TEST(LinuxGuest, FindsKaslrOffset) {
  FakeKernel k(6 << 20);
  auto g = LinuxGuest::attach(k.g.view(), k.symbols, k.profile, k.vcpus());
  ASSERT_TRUE(g) << g.error().message;
  EXPECT_EQ(g->kernel_offset(), 6 << 20);
  EXPECT_EQ(*k.symbols.address_of("init_task"), FakeKernel::kInitTask + (6 << 20));
  auto ps = g->processes();
  ASSERT_TRUE(ps) << ps.error().message;
  EXPECT_EQ(ps->size(), 4u);
}

TEST(LinuxGuest, WrongSystemMapOrNoPaging) {
  FakeKernel k;
  k.put_str(FakeKernel::kBanner, "not a banner");
  auto g = LinuxGuest::attach(k.g.view(), k.symbols, k.profile, k.vcpus());
  ASSERT_FALSE(g);
  EXPECT_NE(g.error().message.find("does not belong to the running kernel"), std::string::npos)
      << g.error().message;

  FakeKernel bare;
  std::vector<VcpuRegs> off = bare.vcpus();
  for (auto& v : off) v.satp = 0;
  g = LinuxGuest::attach(bare.g.view(), bare.symbols, bare.profile, off);
  ASSERT_FALSE(g);
  EXPECT_NE(g.error().message.find("paging"), std::string::npos) << g.error().message;
}

TEST(LinuxGuest, CorruptedTaskListsEndWithErrors) {
  FakeKernel k;
  auto g = LinuxGuest::attach(k.g.view(), k.symbols, k.profile, k.vcpus());
  ASSERT_TRUE(g);
  // sleep's next points back at init's node instead of the head: a cycle that never returns.
  k.put64(FakeKernel::kTask42 + 0x10, FakeKernel::kTask1 + 0x10);
  auto ps = g->processes();
  ASSERT_FALSE(ps);
  EXPECT_NE(ps.error().message.find("loops"), std::string::npos) << ps.error().message;
  // ... or into unmapped memory.
  k.put64(FakeKernel::kTask42 + 0x10, 0xffff'ffc0'dead'0000ull);
  ps = g->processes();
  ASSERT_FALSE(ps);
  EXPECT_NE(ps.error().message.find("not mapped"), std::string::npos) << ps.error().message;
  // A process whose mm->pgd is garbage is listed with an error instead of a satp.
  k.put64(FakeKernel::kTask42 + 0x10, FakeKernel::kInitTask + 0x10);
  k.put64(FakeKernel::kMm42 + 8, 0x1234);
  ps = g->processes();
  ASSERT_TRUE(ps) << ps.error().message;
  EXPECT_EQ((*ps)[3].satp, 0u);
  EXPECT_NE((*ps)[3].error.find("mm->pgd 0x1234"), std::string::npos) << (*ps)[3].error;
  EXPECT_FALSE(g->satp_of_pid(42));
}

TEST(LinuxGuest, ModulesList) {
  FakeKernel k(0, true);
  k.profile.module = LinuxProfile::Module{{0x8, 16}, {0x18, 56}};
  auto g = LinuxGuest::attach(k.g.view(), k.symbols, k.profile, k.vcpus());
  ASSERT_TRUE(g);
  // modules -> A -> B -> modules
  const uint64_t a = kImage + 0x6000, b = kImage + 0x6100;
  k.put64(FakeKernel::kModules, a + 8);
  k.put64(a + 8, b + 8);
  k.put64(b + 8, FakeKernel::kModules);
  k.put_str(a + 0x18, "virtio_blk");
  k.put_str(b + 0x18, "ext4");
  auto mods = g->modules();
  ASSERT_TRUE(mods) << mods.error().message;
  ASSERT_EQ(mods->size(), 2u);
  EXPECT_EQ((*mods)[0].name, "virtio_blk");
  EXPECT_EQ((*mods)[1].address, b);
  k.put64(b + 8, a + 8);  // loop
  mods = g->modules();
  ASSERT_FALSE(mods);
  EXPECT_NE(mods.error().message.find("loops"), std::string::npos);
}

}  // namespace
}  // namespace vigil::introspect
