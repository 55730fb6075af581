// The Linux profile read with libbpf from the real guest kernel's BTF (vmlinux.btf, written by
// scripts/build-guest.sh with pahole) when VIGIL_GUEST_DIR names that guest.
#include "introspect/linux_profile.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace vigil::introspect {
namespace {

TEST(LinuxProfile, RealGuestBtf) {
  const char* dir = std::getenv("VIGIL_GUEST_DIR");
  if (!dir) GTEST_SKIP() << "VIGIL_GUEST_DIR is not set: no guest vmlinux.btf to read the profile from";
  const std::string path = (std::filesystem::path(dir) / "vmlinux.btf").string();
  auto p = LinuxProfile::from_btf(path);
  ASSERT_TRUE(p) << p.error().message;
  const auto& t = p->task_struct;
  // Shapes, not numbers: the numbers are whatever this kernel's layout is.
  EXPECT_GT(t.size, 1000u);
  EXPECT_EQ(t.tasks.size, 16u);
  EXPECT_EQ(t.pid.size, 4u);
  EXPECT_EQ(t.tgid.offset, t.pid.offset + 4);  // declared next to each other in sched.h
  EXPECT_EQ(t.comm.size, 16u);                 // TASK_COMM_LEN
  EXPECT_EQ(t.active_mm.offset, t.mm.offset + 8);
  for (auto f : {t.tasks, t.pid, t.comm, t.real_parent, t.mm}) EXPECT_LT(f.offset + f.size, t.size + 1);
  EXPECT_EQ(p->list_head.next.offset, 0u);
  EXPECT_EQ(p->list_head.prev.offset, 8u);
  EXPECT_GT(p->mm_struct.pgd.offset, 0u);  // found inside mm_struct's anonymous struct
  EXPECT_FALSE(p->module) << "the test guest is built without CONFIG_MODULES";
}

TEST(LinuxProfile, BadFilesAreClearErrors) {
  auto missing = LinuxProfile::from_btf("/nonexistent/vmlinux.btf");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("/nonexistent/vmlinux.btf"), std::string::npos);

  const auto junk = std::filesystem::temp_directory_path() / fmt::format("vigil-junk-{}.btf", ::getpid());
  {
    std::ofstream f(junk);
    f << "this is not BTF\n";
  }
  auto bad = LinuxProfile::from_btf(junk.string());
  std::filesystem::remove(junk);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("cannot read kernel BTF"), std::string::npos) << bad.error().message;
}

}  // namespace
}  // namespace vigil::introspect
