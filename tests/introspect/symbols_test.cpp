// System.map parsing: lookups both ways, the KASLR offset, and malformed files.
#include "introspect/symbols.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace vigil::introspect {
namespace {

constexpr const char* kMap =
    "0000000000000000 A __absolute_zero\n"
    "ffffffff80000000 T _start\n"
    "ffffffff80001000 T do_sys_openat2\n"
    "ffffffff80001040 t helper\n"
    "ffffffff80800000 D linux_banner\n"
    "ffffffff80800100 D init_task\n"
    "ffffffff80800100 D init_task_alias\n"
    "\n";

TEST(Symbols, LookupsBothWays) {
  auto t = SymbolTable::parse(kMap, "System.map");
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_EQ(t->size(), 7u);
  EXPECT_EQ(*t->address_of("do_sys_openat2"), 0xffffffff80001000u);
  auto missing = t->address_of("no_such_symbol");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("no_such_symbol"), std::string::npos);

  EXPECT_EQ(t->describe(0xffffffff80001000), "do_sys_openat2");
  EXPECT_EQ(t->describe(0xffffffff80001010), "do_sys_openat2+0x10");
  EXPECT_EQ(t->describe(0xffffffff80001044), "helper+0x4");
  EXPECT_EQ(t->describe(0x10), "");  // below every symbol; the absolute one does not count
  auto hit = t->nearest(0xffffffff80800104);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->symbol->name, "init_task");  // first of two at the same address
  EXPECT_EQ(hit->offset, 4u);
}

TEST(Symbols, OffsetMovesAllButAbsolute) {
  auto t = SymbolTable::parse(kMap, "System.map");
  ASSERT_TRUE(t);
  t->set_offset(0x200000);
  EXPECT_EQ(*t->address_of("_start"), 0xffffffff80200000u);
  EXPECT_EQ(*t->address_of("__absolute_zero"), 0u);
  EXPECT_EQ(t->describe(0xffffffff80201008), "do_sys_openat2+0x8");
  t->set_offset(-0x200000);
  EXPECT_EQ(*t->address_of("_start"), 0xffffffff7fe00000u);
}

TEST(Symbols, MalformedLinesNameFileAndLine) {
  struct Case {
    const char* text;
    const char* expect;
  };
  for (const Case& c : {Case{"ffffffff80000000 T ok\nzzzz T bad\n", "m:2: the address is not hexadecimal"},
                        Case{"ffffffff80000000 T ok\nffffffff80000000\n", "m:2: no symbol type and name"},
                        Case{" T name\n", "m:1: no address"},
                        Case{"ffffffff80000000 TT name\n", "m:1: no one-letter symbol type"},
                        Case{"ffffffff80000000 1 name\n", "m:1: the symbol type is not a letter"},
                        Case{"ffffffff80000000 T \n", "m:1: no symbol name"},
                        Case{"1ffffffff80000000 T big\n", "m:1: the address has more than 16 hex digits"},
                        Case{"\n\n", "m: no symbols"}}) {
    auto t = SymbolTable::parse(c.text, "m");
    ASSERT_FALSE(t) << c.text;
    EXPECT_TRUE(t.error().message.starts_with(c.expect)) << t.error().message;
  }
  EXPECT_TRUE(SymbolTable::parse("ffffffff80000000 t name\t[mod]\r\n", "m"));
}

TEST(Symbols, LoadErrorsNameThePath) {
  auto t = SymbolTable::load("/nonexistent/System.map");
  ASSERT_FALSE(t);
  EXPECT_NE(t.error().message.find("/nonexistent/System.map"), std::string::npos);
}

TEST(Symbols, RealGuestSystemMap) {
  const char* dir = std::getenv("VIGIL_GUEST_DIR");
  if (!dir) GTEST_SKIP() << "VIGIL_GUEST_DIR is not set: no guest System.map to read";
  auto t = SymbolTable::load(std::filesystem::path(dir) / "System.map");
  ASSERT_TRUE(t) << t.error().message;
  for (const char* s : {"init_task", "init_mm", "swapper_pg_dir", "linux_banner", "do_sys_openat2"}) {
    EXPECT_TRUE(t->find(s)) << s;
  }
  EXPECT_FALSE(t->find("modules")) << "the test guest is built without CONFIG_MODULES";
  EXPECT_EQ(t->describe(*t->address_of("do_sys_openat2") + 4), "do_sys_openat2+0x4");
}

}  // namespace
}  // namespace vigil::introspect
