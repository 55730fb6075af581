#include "toolstack/xl_config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <tuple>
#include <vector>

namespace vigil::toolstack {
namespace {

using hv::DiskConfig;
using hv::DomainConfig;
using hv::LifecycleAction;
using hv::NetConfig;

constexpr const char* kOrigin = "dom.cfg";
// Two valid lines so that a test's own line is line 3.
constexpr const char* kPrelude = "name = \"d\"\nkernel = \"/k\"\n";

constexpr const char* kFullConfig = R"(# A domain that sets every key Vigil knows.
name = "web-1.test_a"
memory = 0x200        # hex works too
vcpus = 2
kernel = "/boot/Image"
ramdisk = '/boot/initrd.gz'
extra = "console=ttyS0 root=/dev/vda rw # kept, it is inside a string"
firmware = "/usr/lib/opensbi/fw_dynamic.bin"
system_map = "/boot/System.map"
kernel_btf = "/boot/vmlinux.btf"
disk = [ "/img/root.raw",
         "format=raw, vdev=xvdb, access=ro, target=/img/data,with,commas.raw",
         "/img/scratch.raw,raw,xvdc,rw",   # positional
]
vif = [
  "model=user,mac=52:54:00:AB:cd:01,hostfwd=tcp:8080-:80;tcp:2222-:22",
  'model=tap, tap=tap0, mac=52:54:00:12:34:56',
]
rng = 0
on_poweroff = "preserve"
on_reboot = "destroy"
on_crash = "restart"
cpu_weight = 512
cap = 150
cpus = [ "0-1", "2,4-5" ]
psr_cmt = 1
psr_cat_cbm = 0xf0
psr_mba_thrtl = 30
)";

// Compares every field. The structured bindings stop compiling when a struct gains a field, so this
// comparison cannot silently fall behind DomainConfig.
void expect_same(const DomainConfig& a, const DomainConfig& b) {
  const auto& [name, memory_mib, vcpus, kernel, ramdisk, extra, firmware, system_map, kernel_btf, disks, nics, rng,
               on_poweroff, on_reboot, on_crash, cpu_weight, cap, cpu_pins, vtpm, psr_cmt, psr_cat_cbm,
               psr_mba_thrtl] = a;
  EXPECT_EQ(name, b.name);
  EXPECT_EQ(memory_mib, b.memory_mib);
  EXPECT_EQ(vcpus, b.vcpus);
  EXPECT_EQ(kernel, b.kernel);
  EXPECT_EQ(ramdisk, b.ramdisk);
  EXPECT_EQ(extra, b.extra);
  EXPECT_EQ(firmware, b.firmware);
  EXPECT_EQ(system_map, b.system_map);
  EXPECT_EQ(kernel_btf, b.kernel_btf);
  auto disk_fields = [](const DiskConfig& d) {
    const auto& [path, read_only, vdev] = d;
    return std::tie(path, read_only, vdev);
  };
  ASSERT_EQ(disks.size(), b.disks.size());
  for (size_t i = 0; i < disks.size(); ++i) {
    EXPECT_EQ(disk_fields(disks[i]), disk_fields(b.disks[i])) << "disk " << i;
  }
  auto nic_fields = [](const NetConfig& n) {
    const auto& [model, tap_name, mac, forwards] = n;
    return std::tie(model, tap_name, mac, forwards);
  };
  ASSERT_EQ(nics.size(), b.nics.size());
  for (size_t i = 0; i < nics.size(); ++i) {
    EXPECT_EQ(nic_fields(nics[i]), nic_fields(b.nics[i])) << "nic " << i;
  }
  EXPECT_EQ(rng, b.rng);
  EXPECT_EQ(on_poweroff, b.on_poweroff);
  EXPECT_EQ(on_reboot, b.on_reboot);
  EXPECT_EQ(on_crash, b.on_crash);
  EXPECT_EQ(cpu_weight, b.cpu_weight);
  EXPECT_EQ(cap, b.cap);
  EXPECT_EQ(cpu_pins, b.cpu_pins);
  ASSERT_EQ(vtpm.has_value(), b.vtpm.has_value());
  if (vtpm) {
    EXPECT_EQ(vtpm->state_dir, b.vtpm->state_dir);
  }
  EXPECT_EQ(psr_cmt, b.psr_cmt);
  EXPECT_EQ(psr_cat_cbm, b.psr_cat_cbm);
  EXPECT_EQ(psr_mba_thrtl, b.psr_mba_thrtl);
}

DomainConfig parse_ok(const std::string& text) {
  auto config = parse_xl_config(text, kOrigin);
  EXPECT_TRUE(config.has_value()) << (config ? "" : config.error().message) << "\n--- input ---\n" << text;
  return config ? *config : DomainConfig{};
}

std::string parse_error(const std::string& text) {
  auto config = parse_xl_config(text, kOrigin);
  EXPECT_FALSE(config.has_value()) << "parsed but should not have:\n" << text;
  return config ? std::string() : config.error().message;
}

// `line` is a setting placed on line 3 after the prelude.
DomainConfig parse_line_ok(const std::string& line) {
  return parse_ok(kPrelude + line + "\n");
}

TEST(XlConfig, FullConfigSetsEveryField) {
  const DomainConfig c = parse_ok(kFullConfig);
  EXPECT_EQ(c.name, "web-1.test_a");
  EXPECT_EQ(c.memory_mib, 512u);
  EXPECT_EQ(c.vcpus, 2u);
  EXPECT_EQ(c.kernel, "/boot/Image");
  EXPECT_EQ(c.ramdisk, "/boot/initrd.gz");
  EXPECT_EQ(c.extra, "console=ttyS0 root=/dev/vda rw # kept, it is inside a string");
  EXPECT_EQ(c.firmware, "/usr/lib/opensbi/fw_dynamic.bin");
  EXPECT_EQ(c.system_map, "/boot/System.map");
  EXPECT_EQ(c.kernel_btf, "/boot/vmlinux.btf");
  ASSERT_EQ(c.disks.size(), 3u);
  EXPECT_EQ(c.disks[0].path, "/img/root.raw");
  EXPECT_FALSE(c.disks[0].read_only);
  EXPECT_EQ(c.disks[0].vdev, "");
  EXPECT_EQ(c.disks[1].path, "/img/data,with,commas.raw");
  EXPECT_TRUE(c.disks[1].read_only);
  EXPECT_EQ(c.disks[1].vdev, "xvdb");
  EXPECT_EQ(c.disks[2].path, "/img/scratch.raw");
  EXPECT_FALSE(c.disks[2].read_only);
  EXPECT_EQ(c.disks[2].vdev, "xvdc");
  ASSERT_EQ(c.nics.size(), 2u);
  EXPECT_EQ(c.nics[0].model, "user");
  EXPECT_EQ(c.nics[0].mac, "52:54:00:ab:cd:01");  // stored lowercase
  EXPECT_EQ(c.nics[0].tap_name, "");
  EXPECT_EQ(c.nics[0].forwards, (std::vector<std::pair<uint16_t, uint16_t>>{{8080, 80}, {2222, 22}}));
  EXPECT_EQ(c.nics[1].model, "tap");
  EXPECT_EQ(c.nics[1].tap_name, "tap0");
  EXPECT_EQ(c.nics[1].mac, "52:54:00:12:34:56");
  EXPECT_TRUE(c.nics[1].forwards.empty());
  EXPECT_FALSE(c.rng);
  EXPECT_EQ(c.on_poweroff, LifecycleAction::kPreserve);
  EXPECT_EQ(c.on_reboot, LifecycleAction::kDestroy);
  EXPECT_EQ(c.on_crash, LifecycleAction::kRestart);
  EXPECT_EQ(c.cpu_weight, 512u);
  EXPECT_EQ(c.cap, 150u);
  EXPECT_EQ(c.cpu_pins, (std::vector<std::vector<unsigned>>{{0, 1}, {2, 4, 5}}));
}

TEST(XlConfig, MinimalConfigKeepsDefaults) {
  const DomainConfig c = parse_ok(kPrelude);
  DomainConfig expected;
  expected.name = "d";
  expected.kernel = "/k";
  expect_same(c, expected);
}

TEST(XlConfig, RequiredKeys) {
  EXPECT_EQ(parse_error("kernel = \"/k\"\n"), "dom.cfg: name: required key is missing (the domain's name)");
  EXPECT_EQ(parse_error("name = \"d\"\n"),
            "dom.cfg: kernel: required key is missing (the path of the kernel Image to boot)");
  EXPECT_NE(parse_error("").find("name: required key is missing"), std::string::npos);
  EXPECT_NE(parse_error("# only a comment\n\n").find("name: required key is missing"), std::string::npos);
}

// Each bad line goes on line 3; the error must start with "dom.cfg:3: KEY: " and explain itself.
struct BadValue {
  std::string line;
  std::string key;
  std::string explanation;  // a substring of the message
};

class XlConfigBadValue : public testing::TestWithParam<BadValue> {};

TEST_P(XlConfigBadValue, NamesOriginLineAndKey) {
  const BadValue& bad = GetParam();
  // The prelude's own key would be a duplicate: use a fresh prelude when the bad key is name/kernel.
  std::string prelude = kPrelude;
  if (bad.key == "name") prelude = "kernel = \"/k\"\n\n";
  if (bad.key == "kernel") prelude = "name = \"d\"\n\n";
  const std::string message = parse_error(prelude + bad.line + "\n");
  EXPECT_TRUE(message.starts_with("dom.cfg:3: " + bad.key + ": ")) << message;
  EXPECT_NE(message.find(bad.explanation), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << "one line per error: " << message;
}

INSTANTIATE_TEST_SUITE_P(
    EveryKey, XlConfigBadValue,
    testing::Values(
        // name
        BadValue{"name = \"\"", "name", "expected 1 to 64 characters"},
        BadValue{"name = \"my dom\"", "name", "got \"my dom\""},
        BadValue{"name = \"" + std::string(65, 'a') + "\"", "name", "expected 1 to 64 characters"},
        BadValue{"name = \"dom/1\"", "name", "A-Z a-z 0-9 _ . -"},
        BadValue{"name = \"42\"", "name", "domain id"}, BadValue{"name = \"..\"", "name", "not usable"},
        BadValue{"name = \"-x\"", "name", "option"},
        BadValue{"name = web", "name", "expected a quoted string, got web (write \"web\")"},
        BadValue{"name = 5", "name", "expected a quoted string, got 5"},
        // memory
        BadValue{"memory = \"lots\"", "memory", "expected a positive integer (MiB), got \"lots\""},
        BadValue{"memory = lots", "memory", "expected a positive integer (MiB), got lots"},
        BadValue{"memory = -5", "memory", "expected a positive integer (MiB), got -5"},
        BadValue{"memory = 1.5", "memory", "got 1.5"},
        BadValue{"memory = 8", "memory", "expected 16 to 65536 (MiB), got 8"},
        BadValue{"memory = 65537", "memory", "expected 16 to 65536 (MiB), got 65537"},
        BadValue{"memory = 0x0", "memory", "got 0x0"},
        BadValue{"memory = 99999999999999999999999", "memory", "expected 16 to 65536 (MiB)"},
        BadValue{"memory = 0512", "memory", "leading zero"},
        BadValue{"memory = [ 512 ]", "memory", "got a list"},
        // vcpus
        BadValue{"vcpus = 0", "vcpus", "expected 1 to 8, got 0"},
        BadValue{"vcpus = 9", "vcpus", "expected 1 to 8, got 9"},
        BadValue{"vcpus = two", "vcpus", "expected a positive integer, got two"},
        // kernel / ramdisk / extra / cmdline / firmware
        BadValue{"kernel = \"\"", "kernel", "empty string"},
        BadValue{"kernel = /boot/Image", "kernel", "expected a quoted string"},
        BadValue{"kernel = [ \"/k\" ]", "kernel", "got a list"},
        BadValue{"ramdisk = 7", "ramdisk", "expected a quoted string, got 7"},
        BadValue{"extra = [ \"a\" ]", "extra", "expected a quoted string, got a list"},
        BadValue{"cmdline = quiet", "cmdline", "expected a quoted string, got quiet"},
        BadValue{"firmware = 0", "firmware", "expected a quoted string"},
        // disk
        BadValue{"disk = \"/img\"", "disk", "expected a list of quoted strings"},
        BadValue{"disk = [ 5 ]", "disk", "entry 1: expected a quoted string, got 5"},
        BadValue{"disk = [ \"\" ]", "disk", "entry 1: empty disk spec"},
        BadValue{"disk = [ \"/a\", \"/b,qcow2\" ]", "disk",
                 "entry 2: format \"qcow2\" is not supported, only raw is"},
        BadValue{"disk = [ \"format=qcow2,target=/a\" ]", "disk", "format \"qcow2\" is not supported"},
        BadValue{"disk = [ \"/a,xvda,w\" ]", "disk", "positional specs are FILE,FORMAT,VDEV,ACCESS"},
        BadValue{"disk = [ \"/a,raw,xvda,rw,extra\" ]", "disk", "too many positional parameters"},
        BadValue{"disk = [ \"/a,raw,xvda,rx\" ]", "disk", "access \"rx\" must be rw or ro"},
        BadValue{"disk = [ \"vdev=xvda,/a,raw,xvdb\" ]", "disk", "access \"xvdb\" must be rw or ro"},
        BadValue{"disk = [ \"file:/img/a.raw,xvda,w\" ]", "disk", "deprecated FORMAT:FILE form"},
        BadValue{"disk = [ \"/a,,hdc,cdrom\" ]", "disk", "the cdrom flag is not supported"},
        BadValue{"disk = [ \"/a,target=/b\" ]", "disk", "target is given twice"},
        BadValue{"disk = [ \"access=rw\" ]", "disk", "no image file given"},
        BadValue{"disk = [ \"vdev=xvda, target=\" ]", "disk", "no image file given"},
        BadValue{"disk = [ \"devtype=cdrom, target=/a\" ]", "disk", "unknown disk parameter devtype="},
        BadValue{"disk = [ \"/a,raw,XVDA\" ]", "disk", "vdev \"XVDA\" is not a device name"},
        BadValue{"disk = [ \"vdev=xvda,vdev=xvdb,target=/a\" ]", "disk", "vdev is given twice"},
        BadValue{"disk = [ \"/a,raw,xvda\", \"/b,raw,xvda\" ]", "disk",
                 "entry 2: vdev xvda is already used by entry 1"},
        BadValue{"disk = [ \"/a\", \"/a,raw,xvdb,ro\" ]", "disk", "must be read-only both times"},
        // vif
        BadValue{"vif = \"model=user\"", "vif", "expected a list of quoted strings"},
        BadValue{"vif = [ \"model=e1000\" ]", "vif", "model \"e1000\" must be user or tap"},
        BadValue{"vif = [ \"mac=52:54:00:12:34\" ]", "vif", "is not a MAC address"},
        BadValue{"vif = [ \"mac=52-54-00-12-34-56\" ]", "vif", "is not a MAC address"},
        BadValue{"vif = [ \"mac=zz:54:00:12:34:56\" ]", "vif", "is not a MAC address"},
        BadValue{"vif = [ \"mac=01:00:5e:00:00:01\" ]", "vif", "multicast"},
        BadValue{"vif = [ \"mac=00:00:00:00:00:00\" ]", "vif", "all zeros"},
        BadValue{"vif = [ \"hostfwd=udp:53-:53\" ]", "vif", "only tcp forwards"},
        BadValue{"vif = [ \"hostfwd=tcp:8080:80\" ]", "vif", "is not like tcp:HOSTPORT-:GUESTPORT"},
        BadValue{"vif = [ \"hostfwd=tcp:8080-10.0.2.15:80\" ]", "vif", "is not like tcp:HOSTPORT-:GUESTPORT"},
        BadValue{"vif = [ \"hostfwd=tcp:70000-:80\" ]", "vif", "port 70000 must be 1 to 65535"},
        BadValue{"vif = [ \"hostfwd=tcp:0-:80\" ]", "vif", "port 0 must be 1 to 65535"},
        BadValue{"vif = [ \"hostfwd=tcp:80-:80;tcp:80-:81\" ]", "vif", "host port 80 is forwarded twice"},
        BadValue{"vif = [ \"hostfwd=tcp:80-:80\", \"hostfwd=tcp:80-:81\" ]", "vif", "entry 2: host port 80"},
        BadValue{"vif = [ \"model=tap\" ]", "vif", "model=tap needs tap=NAME"},
        BadValue{"vif = [ \"model=tap,tap=tap0,hostfwd=tcp:1-:2\" ]", "vif",
                 "hostfwd only works with model=user"},
        BadValue{"vif = [ \"tap=tap0\" ]", "vif", "tap= needs model=tap"},
        BadValue{"vif = [ \"model=tap,tap=much-too-long-name0\" ]", "vif", "is not an interface name"},
        BadValue{"vif = [ \"model=tap,tap=t0,vifname=t1\" ]", "vif", "vifname is given twice"},
        BadValue{"vif = [ \"model=tap,bridge=br0,tap=tap0\" ]", "vif", "bridge= is not supported yet"},
        BadValue{"vif = [ \"model=user,ip=10.0.0.2\" ]", "vif", "unknown vif parameter ip="},
        BadValue{"vif = [ \"user\" ]", "vif", "is not a KEY=VALUE setting"},
        BadValue{"vif = [ \"model=user,model=tap\" ]", "vif", "model is given twice"},
        BadValue{"vif = [ \"mac=52:54:00:12:34:56\", \"mac=52:54:00:12:34:56\" ]", "vif",
                 "already used by entry 1"},
        BadValue{"vif = [ \"model=tap,tap=t0\", \"model=tap,tap=t0\" ]", "vif", "tap t0 is already used"},
        // rng
        BadValue{"rng = 2", "rng", "expected 0 or 1, got 2"},
        BadValue{"rng = yes", "rng", "expected 0 or 1, got yes"},
        BadValue{"rng = \"true\"", "rng", "expected 0 or 1, got \"true\""},
        // lifecycle actions
        BadValue{"on_poweroff = \"coredump-destroy\"", "on_poweroff",
                 "expected \"destroy\", \"restart\" or \"preserve\""},
        BadValue{"on_reboot = \"rename-restart\"", "on_reboot", "got \"rename-restart\""},
        BadValue{"on_crash = destroy", "on_crash",
                 "expected a quoted string, got destroy (write \"destroy\")"},
        BadValue{"on_crash = 1", "on_crash", "expected a quoted string"},
        // cpu_weight / cap
        BadValue{"cpu_weight = 0", "cpu_weight", "expected 1 to 65535, got 0"},
        BadValue{"cpu_weight = 65536", "cpu_weight", "expected 1 to 65535, got 65536"},
        BadValue{"cpu_weight = heavy", "cpu_weight", "expected a positive integer"},
        BadValue{"cap = 101", "cap",
                 "expected 0 to 100 (percent of one CPU, 100 per vCPU with vcpus = 1), got 101"},
        BadValue{"cap = 900", "cap", "got 900"},
        BadValue{"cap = -1", "cap", "expected a non-negative integer"},
        // cpus
        BadValue{"cpus = 0-3", "cpus", "expected a quoted CPU list like \"0-3,5\""},
        BadValue{"cpus = \"3-1\"", "cpus", "range 3-1 is reversed"},
        BadValue{"cpus = \"0,,1\"", "cpus", "expected CPU numbers and ranges"},
        BadValue{"cpus = \"nodes:0\"", "cpus", "got \"nodes:0\""},
        BadValue{"cpus = \"0-4000000000\"", "cpus", "above the highest supported id"},
        BadValue{"cpus = \"\"", "cpus", "expected CPU numbers and ranges"},
        BadValue{"cpus = [ \"0\", \"1\" ]", "cpus", "the list has 2 entries but vcpus is 1"},
        BadValue{"cpus = [ \"x\" ]", "cpus", "entry 1: expected CPU numbers"}));

TEST(XlConfig, CapLimitFollowsVcpusWhereverItIsSet) {
  // vcpus comes after cap: the limit still uses it, and the error still points at cap's line.
  EXPECT_EQ(parse_line_ok("cap = 250\nvcpus = 3").cap, 250u);
  EXPECT_EQ(parse_error(std::string(kPrelude) + "cap = 250\nvcpus = 2\n"),
            "dom.cfg:3: cap: expected 0 to 200 (percent of one CPU, 100 per vCPU with vcpus = 2), got 250");
}

TEST(XlConfig, PsrKeys) {
  const DomainConfig full = parse_ok(kFullConfig);
  EXPECT_TRUE(full.psr_cmt);
  EXPECT_EQ(full.psr_cat_cbm, 0xf0u);
  EXPECT_EQ(full.psr_mba_thrtl, 30u);
  const DomainConfig plain = parse_line_ok("rng = 1");
  EXPECT_FALSE(plain.psr_cmt);
  EXPECT_EQ(plain.psr_cat_cbm, 0u);
  EXPECT_EQ(plain.psr_mba_thrtl, 0u);
  EXPECT_EQ(parse_error(std::string(kPrelude) + "psr_mba_thrtl = 95\n"),
            "dom.cfg:3: psr_mba_thrtl: expected 0 to 90 (percent, in steps of 10), got 95");
  EXPECT_NE(parse_error(std::string(kPrelude) + "psr_cat_cbm = 0\n").find("non-zero capacity bitmask"), std::string::npos);
  EXPECT_NE(parse_error(std::string(kPrelude) + "psr_cmt = 2\n").find("0 or 1"), std::string::npos);
}

TEST(XlConfig, BadListEntryNamesItsOwnLine) {
  const std::string message = parse_error(std::string(kPrelude) + "disk = [\n  \"/a\",\n  \"/b,vmdk\",\n]\n");
  EXPECT_TRUE(message.starts_with("dom.cfg:5: disk: entry 2: ")) << message;
}

TEST(XlConfig, MisspelledKeyIsAnErrorWithASuggestion) {
  EXPECT_EQ(parse_error(std::string(kPrelude) + "memroy = 512\n"),
            "dom.cfg:3: memroy: unknown key (did you mean memory?)");
  EXPECT_EQ(parse_error(std::string(kPrelude) + "Memory = 512\n"),
            "dom.cfg:3: Memory: unknown key (did you mean memory?)");
  EXPECT_EQ(parse_error(std::string(kPrelude) + "on-crash = \"destroy\"\n"),
            "dom.cfg:3: on-crash: unknown key (did you mean on_crash?)");
  EXPECT_EQ(parse_error(std::string(kPrelude) + "vpcus = 2\n"),
            "dom.cfg:3: vpcus: unknown key (did you mean vcpus?)");
  // A swap of two letters is one edit, so even short keys get a suggestion; longer keys allow two edits.
  EXPECT_EQ(parse_error(std::string(kPrelude) + "cpa = 10\n"),
            "dom.cfg:3: cpa: unknown key (did you mean cap?)");
  EXPECT_EQ(parse_error(std::string(kPrelude) + "cpu-wieght = 10\n"),
            "dom.cfg:3: cpu-wieght: unknown key (did you mean cpu_weight?)");
  const std::string unrelated = parse_error(std::string(kPrelude) + "frobnicate = 1\n");
  EXPECT_TRUE(unrelated.starts_with("dom.cfg:3: frobnicate: unknown key; Vigil knows name, memory"))
      << unrelated;
}

TEST(XlConfig, UnsupportedXenKeysSayWhatToDoInstead) {
  EXPECT_EQ(parse_error(std::string(kPrelude) + "root = \"/dev/xvda1\"\n"),
            "dom.cfg:3: root: not supported by Vigil: Vigil does not add it to the command line; put "
            "root=... in extra");
  EXPECT_TRUE(
      parse_error(std::string(kPrelude) + "maxmem = 1024\n").starts_with("dom.cfg:3: maxmem: not supported"));
  EXPECT_TRUE(parse_error(std::string(kPrelude) + "bootloader = \"pygrub\"\n")
                  .starts_with("dom.cfg:3: bootloader: "));
}

TEST(XlConfig, IgnoredXenKeysAreAcceptedButChangeNothing) {
  const DomainConfig plain = parse_ok(kPrelude);
  const DomainConfig with_xen_keys = parse_ok(std::string(kPrelude) +
                                              "type = \"pvh\"\nbuilder = \"generic\"\n"
                                              "uuid = \"b3a9c1f0-1f2e-4d5c-9a8b-7c6d5e4f3a2b\"\n"
                                              "apic = 1\npae = 1\nhap = 1\n");
  expect_same(with_xen_keys, plain);
  EXPECT_EQ(kIgnoredXlKeys.size(), 6u);
  // Ignored keys still follow the rules: a repeat is an error.
  EXPECT_EQ(parse_error(std::string(kPrelude) + "type = \"pvh\"\ntype = \"hvm\"\n"),
            "dom.cfg:4: type: duplicate key (already set on line 3)");
}

TEST(XlConfig, DuplicateKeys) {
  EXPECT_EQ(parse_error(std::string(kPrelude) + "memory = 512\n\nmemory = 1024\n"),
            "dom.cfg:5: memory: duplicate key (already set on line 3)");
  EXPECT_EQ(parse_error(std::string(kPrelude) + "extra = \"a\"\ncmdline = \"b\"\n"),
            "dom.cfg:4: cmdline: duplicate key (extra on line 3 is the same setting)");
  EXPECT_EQ(parse_error("name = \"a\"\nkernel = \"/k\"\nname = \"a\"\n"),
            "dom.cfg:3: name: duplicate key (already set on line 1)");
  EXPECT_EQ(parse_line_ok("cmdline = \"console=hvc0\"").extra, "console=hvc0");
}

TEST(XlConfig, UnterminatedStrings) {
  EXPECT_EQ(parse_error("name = \"d\"\nkernel = \"/k\n"),
            "dom.cfg:2: kernel: unterminated string: no closing \" on this line");
  EXPECT_EQ(parse_error("name = \"d\"\nkernel = '/k"),
            "dom.cfg:2: kernel: unterminated string: no closing ' on this line");
  // An escaped quote does not close the string.
  EXPECT_NE(
      parse_error(std::string(kPrelude) + "extra = \"a\\\"\n").find("dom.cfg:3: extra: unterminated string"),
      std::string::npos);
  EXPECT_NE(
      parse_error(std::string(kPrelude) + "disk = [ \"/a\n").find("dom.cfg:3: disk: unterminated string"),
      std::string::npos);
}

TEST(XlConfig, UnterminatedLists) {
  EXPECT_EQ(parse_error(std::string(kPrelude) + "disk = [ \"/a\",\n  \"/b\"\n"),
            "dom.cfg:3: disk: unterminated list: the '[' on this line has no matching ']'");
  EXPECT_EQ(parse_error(std::string(kPrelude) + "disk = [\n"),
            "dom.cfg:3: disk: unterminated list: the '[' on this line has no matching ']'");
  // A forgotten ']' usually runs into the next setting: blame that line and point back at the '['.
  EXPECT_EQ(
      parse_error(std::string(kPrelude) + "disk = [ \"/a\",\n  \"/b\"\nmemory = 512\n"),
      "dom.cfg:5: disk: expected ',' or ']' after a list entry, got memory (is the ']' for the '[' on line 3 "
      "missing?)");
}

TEST(XlConfig, MultiLineListsWithCommentsAndTrailingCommas) {
  const DomainConfig c = parse_line_ok(
      "disk = [   # images\n"
      "\n"
      "  \"/a\" ,  # first\n"
      "  # a comment line inside the list\n"
      "  '/b'\n"
      "  ,\n"
      "  \"/c\",\n"
      "]");
  ASSERT_EQ(c.disks.size(), 3u);
  EXPECT_EQ(c.disks[0].path, "/a");
  EXPECT_EQ(c.disks[1].path, "/b");
  EXPECT_EQ(c.disks[2].path, "/c");
  EXPECT_TRUE(parse_line_ok("disk = []").disks.empty());
  EXPECT_TRUE(parse_line_ok("vif = [\n]").nics.empty());
}

TEST(XlConfig, HashInsideStringsIsNotAComment) {
  const DomainConfig c = parse_line_ok(
      "extra = \"init=/bin/sh # not a comment\"   # a comment\n"
      "ramdisk = '/srv/#1/initrd' # another\n"
      "disk = [ \"/img/#2.raw\" ] # and another");
  EXPECT_EQ(c.extra, "init=/bin/sh # not a comment");
  EXPECT_EQ(c.ramdisk, "/srv/#1/initrd");
  ASSERT_EQ(c.disks.size(), 1u);
  EXPECT_EQ(c.disks[0].path, "/img/#2.raw");
}

TEST(XlConfig, StringEscapesAndQuotes) {
  EXPECT_EQ(parse_line_ok(R"(extra = "a \"b\" c\\d\te")").extra, "a \"b\" c\\d\te");
  EXPECT_EQ(parse_line_ok(R"(extra = 'single "quotes" keep \ backslashes')").extra,
            "single \"quotes\" keep \\ backslashes");
  EXPECT_EQ(parse_line_ok(R"(extra = "it's")").extra, "it's");
  EXPECT_EQ(
      parse_error(std::string(kPrelude) + R"(extra = "C:\path")" + "\n"),
      "dom.cfg:3: extra: unknown escape \\p in a double-quoted string; write \\\\ for a backslash, or use "
      "single quotes");
}

TEST(XlConfig, SyntaxErrors) {
  EXPECT_EQ(parse_error(std::string(kPrelude) + "memory 512\n"),
            "dom.cfg:3: memory: expected '=' after the key, got 512");
  EXPECT_EQ(parse_error(std::string(kPrelude) + "memory =\n"), "dom.cfg:3: memory: missing value after '='");
  EXPECT_EQ(parse_error(std::string(kPrelude) + "memory = # forgot\n"),
            "dom.cfg:3: memory: missing value after '='");
  EXPECT_EQ(parse_error(std::string(kPrelude) + "memory = 512 1024\n"),
            "dom.cfg:3: memory: unexpected 1024 after the value; write one KEY = VALUE per line");
  EXPECT_EQ(parse_error(std::string(kPrelude) + "= 512\n"), "dom.cfg:3: expected KEY = VALUE, got '='");
  EXPECT_EQ(parse_error(std::string(kPrelude) + "\"memory\" = 512\n"),
            "dom.cfg:3: expected KEY = VALUE, got a string");
  EXPECT_EQ(parse_error(std::string(kPrelude) + "9lives = 1\n"),
            "dom.cfg:3: expected KEY = VALUE, got 9lives");
  EXPECT_EQ(parse_error(std::string(kPrelude) + "memory += 5\n"),
            "dom.cfg:3: memory: expected '=' after the key, got +");
  EXPECT_EQ(parse_error(std::string(kPrelude) + "disk = [ [ \"/a\" ] ]\n"),
            "dom.cfg:3: disk: lists cannot be nested");
  EXPECT_EQ(parse_error(std::string(kPrelude) + "disk = [ , \"/a\" ]\n"),
            "dom.cfg:3: disk: empty list entry: a ',' with no value before it");
  EXPECT_EQ(parse_error(std::string(kPrelude) + "disk = [ \"/a\",, ]\n"),
            "dom.cfg:3: disk: empty list entry: a ',' with no value before it");
  EXPECT_EQ(parse_error(std::string(kPrelude) + "memory = ]\n"),
            "dom.cfg:3: memory: expected a value, got ']'");
  EXPECT_EQ(parse_error(std::string(kPrelude) + "memory = 5\x01\n"),
            "dom.cfg:3: control character 0x01 in the file; an xl config is plain text");
  EXPECT_EQ(parse_error(std::string("name = \"d\"\0", 11)),
            "dom.cfg:1: control character 0x00 in the file; an xl config is plain text");
}

TEST(XlConfig, LexicalConveniences) {
  // ';' ends a setting as in Xen, CRLF files work, numbers may be hex or quoted, and spaces are optional.
  const DomainConfig c =
      parse_ok("name=\"d\";kernel='/k'\r\nmemory = \"1024\"\r\nvcpus=0x4;;\r\ncap=\"0x10\"\r\n");
  EXPECT_EQ(c.name, "d");
  EXPECT_EQ(c.kernel, "/k");
  EXPECT_EQ(c.memory_mib, 1024u);
  EXPECT_EQ(c.vcpus, 4u);
  EXPECT_EQ(c.cap, 16u);
  EXPECT_EQ(parse_line_ok("memory = 0X40").memory_mib, 64u);
  EXPECT_EQ(parse_line_ok("rng = 0").rng, false);
  EXPECT_EQ(parse_line_ok("rng = '1'").rng, true);
}

TEST(XlConfig, DiskSpecForms) {
  const DomainConfig c = parse_line_ok(
      "disk = [ '/a',\n"
      "  '/b,raw,xvdb,ro',\n"
      "  '/c,,xvdc',\n"                 // empty positional: default format
      "  'vdev=xvdd, /d, access=r',\n"  // a positional after a keyed one is the target
      "  ' format = raw , access = w , target = /e e ',\n"
      "  'target=/f,raw,xvda,ro',\n"  // target= swallows the commas
      "  'format=raw, /g, xvde',\n"   // positionals skip slots given by name
      "]");
  ASSERT_EQ(c.disks.size(), 7u);
  EXPECT_EQ(c.disks[0].path, "/a");
  EXPECT_EQ(c.disks[1].path, "/b");
  EXPECT_TRUE(c.disks[1].read_only);
  EXPECT_EQ(c.disks[1].vdev, "xvdb");
  EXPECT_EQ(c.disks[2].path, "/c");
  EXPECT_EQ(c.disks[2].vdev, "xvdc");
  EXPECT_FALSE(c.disks[2].read_only);
  EXPECT_EQ(c.disks[3].path, "/d");
  EXPECT_EQ(c.disks[3].vdev, "xvdd");
  EXPECT_TRUE(c.disks[3].read_only);
  EXPECT_EQ(c.disks[4].path, "/e e");
  EXPECT_FALSE(c.disks[4].read_only);
  EXPECT_EQ(c.disks[5].path, "/f,raw,xvda,ro");
  EXPECT_EQ(c.disks[5].vdev, "");
  EXPECT_EQ(c.disks[6].path, "/g");
  EXPECT_EQ(c.disks[6].vdev, "xvde");
  // The same image twice is fine when both attachments are read-only.
  EXPECT_EQ(parse_line_ok("disk = [ '/a,raw,xvda,ro', '/a,raw,xvdb,ro' ]").disks.size(), 2u);
}

TEST(XlConfig, VifMapping) {
  const DomainConfig c = parse_line_ok(
      "vif = [ '',\n"  // all defaults, as in Xen
      "  'hostfwd=tcp::2222-:22, hostfwd=tcp:8443-:443,',\n"
      "  'model=tap,vifname=vif1.0',\n"
      "]");
  ASSERT_EQ(c.nics.size(), 3u);
  EXPECT_EQ(c.nics[0].model, "user");
  EXPECT_EQ(c.nics[0].mac, "");
  EXPECT_TRUE(c.nics[0].forwards.empty());
  EXPECT_EQ(c.nics[1].forwards, (std::vector<std::pair<uint16_t, uint16_t>>{{2222, 22}, {8443, 443}}));
  EXPECT_EQ(c.nics[2].model, "tap");
  EXPECT_EQ(c.nics[2].tap_name, "vif1.0");
}

TEST(XlConfig, CpuPinning) {
  // A single string pins every vCPU to the same set.
  EXPECT_EQ(parse_line_ok("vcpus = 3\ncpus = \"0-2, 5,1\"").cpu_pins,
            (std::vector<std::vector<unsigned>>(3, std::vector<unsigned>{0, 1, 2, 5})));
  EXPECT_EQ(parse_line_ok("cpus = 3").cpu_pins, (std::vector<std::vector<unsigned>>{{3}}));
  // A list gives one entry per vCPU; a short list leaves the rest unpinned; "all" means unpinned.
  EXPECT_EQ(parse_line_ok("cpus = [ \"2\", 0 ]\nvcpus = 2").cpu_pins,
            (std::vector<std::vector<unsigned>>{{2}, {0}}));
  EXPECT_EQ(parse_line_ok("vcpus = 3\ncpus = [ \"4-5\" ]").cpu_pins,
            (std::vector<std::vector<unsigned>>{{4, 5}, {}, {}}));
  EXPECT_EQ(parse_line_ok("vcpus = 2\ncpus = [ \"all\", \"1\" ]").cpu_pins,
            (std::vector<std::vector<unsigned>>{{}, {1}}));
  EXPECT_TRUE(parse_line_ok("cpus = []").cpu_pins.empty());
  EXPECT_EQ(parse_line_ok("cpus = \"1023\"").cpu_pins, (std::vector<std::vector<unsigned>>{{1023}}));
}

// load_xl_config needs real files; each test gets a fresh directory.
class XlConfigFiles : public testing::Test {
 protected:
  void SetUp() override {
    m_dir = std::filesystem::temp_directory_path() /
            ("vigil_xl_config_test_" + std::to_string(::getpid()) + "_" +
             testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(m_dir);
    std::filesystem::create_directories(m_dir / "vm");
  }
  void TearDown() override { std::filesystem::remove_all(m_dir); }

  std::string write(const std::string& relative, const std::string& text) {
    const auto path = m_dir / relative;
    std::ofstream(path, std::ios::binary) << text;
    return path.string();
  }

  std::filesystem::path m_dir;
};

TEST_F(XlConfigFiles, RelativePathsResolveAgainstTheConfigDirectory) {
  const std::string path = write("vm/dom.cfg",
                                 "name = \"d\"\n"
                                 "kernel = \"Image\"\n"
                                 "ramdisk = \"boot/initrd.gz\"\n"
                                 "firmware = \"/usr/lib/opensbi/fw_dynamic.bin\"\n"
                                 "system_map = \"System.map\"\n"
                                 "disk = [ \"../images/root.raw\", \"format=raw, target=/abs/data.raw\" ]\n");
  auto config = load_xl_config(path);
  ASSERT_TRUE(config.has_value()) << config.error().message;
  const auto vm = m_dir / "vm";
  EXPECT_EQ(config->kernel, (vm / "Image").string());
  EXPECT_EQ(config->ramdisk, (vm / "boot/initrd.gz").string());
  EXPECT_EQ(config->firmware, "/usr/lib/opensbi/fw_dynamic.bin");  // absolute: untouched
  EXPECT_EQ(config->system_map, (vm / "System.map").string());
  EXPECT_EQ(config->kernel_btf, "");  // unset: introspection looks next to the kernel
  ASSERT_EQ(config->disks.size(), 2u);
  EXPECT_EQ(config->disks[0].path, (vm / "../images/root.raw").string());
  EXPECT_EQ(config->disks[1].path, "/abs/data.raw");
  // parse_xl_config alone leaves paths as written.
  EXPECT_EQ(parse_ok("name = \"d\"\nkernel = \"Image\"\n").kernel, "Image");
}

TEST_F(XlConfigFiles, ErrorsNameTheFile) {
  const std::string missing = (m_dir / "nope.cfg").string();
  auto config = load_xl_config(missing);
  ASSERT_FALSE(config.has_value());
  EXPECT_EQ(config.error().message, "cannot read config '" + missing + "': No such file or directory");

  config = load_xl_config((m_dir / "vm").string());
  ASSERT_FALSE(config.has_value());
  EXPECT_EQ(config.error().message, "config '" + (m_dir / "vm").string() + "' is not a regular file");

  const std::string bad = write("vm/bad.cfg", "name = \"d\"\nkernel = \"Image\"\n\nmemory = \"lots\"\n");
  config = load_xl_config(bad);
  ASSERT_FALSE(config.has_value());
  EXPECT_EQ(config.error().message, bad + ":4: memory: expected a positive integer (MiB), got \"lots\"");

  const std::string huge = write("vm/huge.cfg", std::string(2 << 20, '#'));
  config = load_xl_config(huge);
  ASSERT_FALSE(config.has_value());
  EXPECT_NE(config.error().message.find("is it the right file?"), std::string::npos)
      << config.error().message;
}

TEST_F(XlConfigFiles, SavedConfigLoadsBack) {
  const DomainConfig original = parse_ok(kFullConfig);
  const std::string path = write("vm/saved.cfg", to_xl_config(original));
  auto loaded = load_xl_config(path);
  ASSERT_TRUE(loaded.has_value()) << loaded.error().message;
  expect_same(*loaded, original);  // every path in kFullConfig is absolute
}

TEST(XlConfig, RoundTripOfTheFullConfig) {
  const DomainConfig original = parse_ok(kFullConfig);
  const std::string text = to_xl_config(original);
  expect_same(parse_ok(text), original);
  EXPECT_EQ(to_xl_config(parse_ok(text)), text);  // and the writer is stable
}

TEST(XlConfig, RoundTripOfAwkwardValues) {
  DomainConfig c;
  c.name = "a.b-c_9";
  c.memory_mib = 65536;
  c.vcpus = 8;
  c.kernel = "/k with \"quotes\" and \\backslash\\ and # hash";
  c.ramdisk = "it's";
  c.extra = "tab\there\nnewline";
  c.firmware = "";
  c.disks = {{"/d,with,commas", true, "xvda"}, {"=odd=path", false, "vdb1"}, {"/plain", false, ""}};
  c.nics = {
      NetConfig{}, {"tap", "tap9", "02:00:00:00:00:01", {}}, {"user", "", "", {{1, 65535}, {65535, 1}}}};
  c.rng = false;
  c.on_poweroff = LifecycleAction::kRestart;
  c.on_reboot = LifecycleAction::kPreserve;
  c.on_crash = LifecycleAction::kPreserve;
  c.cpu_weight = 65535;
  c.cap = 800;
  c.cpu_pins = {{0, 1, 2, 7}, {}, {3}, {3}, {}, {1023}, {0}, {5, 6}};
  expect_same(parse_ok(to_xl_config(c)), c);

  // Equal pins collapse to one string, which must expand back to every vCPU.
  c.cpu_pins.assign(8, {2, 3});
  const std::string text = to_xl_config(c);
  EXPECT_NE(text.find("cpus = \"2-3\"\n"), std::string::npos) << text;
  expect_same(parse_ok(text), c);
  c.cpu_pins.assign(8, {});
  expect_same(parse_ok(to_xl_config(c)), c);

  DomainConfig defaults;
  defaults.name = "d";
  defaults.kernel = "/k";
  expect_same(parse_ok(to_xl_config(defaults)), defaults);
}

// Random and mutated inputs must only ever produce a config or an error, never a crash, a hang or an
// error that does not name the file. Accepted inputs must also survive a round trip.
TEST(XlConfig, FuzzedInputsNeverCrash) {
  std::mt19937_64 rng(20240611);  // fixed: a failure must reproduce
  const std::string seed_text = kFullConfig;
  // clang-format off
  const std::vector<std::string> tokens = {
      "name", "memory", "vcpus", "kernel", "disk", "vif", "cpus", "cap", "rng", "on_crash", "extra",
      "=", "[", "]", ",", ";", "#", "\"", "'", "\\", "\n", " ", "\t", "\r", "0", "0x", "65536", "-", ":",
      "\"/k\"", "\"d\"", "\"0-3\"", "\"model=tap,tap=t\"", "\"/a,raw,xvda,ro\"", "\"hostfwd=tcp:1-:2\"",
      "\"destroy\"", "target=", "99999999999999999999", "\xc3\xa9"};
  // clang-format on
  auto random_byte = [&] { return static_cast<char>(rng() % 256); };
  size_t accepted = 0, rejected = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string input;
    switch (i % 4) {
      case 0:  // random bytes
        for (size_t n = rng() % 200; n > 0; --n) input += random_byte();
        break;
      case 1:  // random tokens
        for (size_t n = rng() % 60; n > 0; --n) input += tokens[rng() % tokens.size()];
        break;
      default: {  // mutations of a valid config
        input = seed_text;
        for (size_t n = 1 + rng() % 4; n > 0; --n) {
          const size_t at = input.empty() ? 0 : rng() % input.size();
          switch (rng() % 5) {
            case 0:
              input.erase(at, 1 + rng() % 8);
              break;
            case 1:
              input.insert(at, 1, random_byte());
              break;
            case 2:
              input.insert(at, tokens[rng() % tokens.size()]);
              break;
            case 3:
              if (!input.empty()) input[at] = random_byte();
              break;
            case 4:
              if (!input.empty()) input.insert(at, input.substr(rng() % input.size(), rng() % 40));
              break;
          }
        }
      }
    }
    auto config = parse_xl_config(input, "fuzz.cfg");
    if (config) {
      ++accepted;
      auto again = parse_xl_config(to_xl_config(*config), "again.cfg");
      ASSERT_TRUE(again.has_value()) << again.error().message << "\n--- input ---\n" << input;
      expect_same(*again, *config);
      if (testing::Test::HasFailure()) FAIL() << "round trip differs for input:\n" << input;
    } else {
      ++rejected;
      ASSERT_TRUE(config.error().message.starts_with("fuzz.cfg:")) << config.error().message;
      ASSERT_EQ(config.error().message.find('\n'), std::string::npos) << config.error().message;
    }
  }
  // Both outcomes must actually be exercised, or the mutations are too weak (or too strong) to test much.
  EXPECT_GT(accepted, 500u);
  EXPECT_GT(rejected, 5000u);
}

}  // namespace
}  // namespace vigil::toolstack
