// xl.cfg `vtpm = [ ... ]` (issue 9): syntax, errors, round trip, relative state paths.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "toolstack/xl_config.h"

namespace vigil::toolstack {
namespace {

constexpr const char* kBase = "name = \"d\"\nkernel = \"/k\"\n";

Result<hv::DomainConfig> parse(const std::string& line) { return parse_xl_config(kBase + line, "dom.cfg"); }

TEST(XlVtpm, AbsentMeansNoTpm) {
  auto c = parse("");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_FALSE(c->vtpm);
  auto empty = parse("vtpm = []\n");
  ASSERT_TRUE(empty) << empty.error().message;
  EXPECT_FALSE(empty->vtpm);
}

TEST(XlVtpm, StateDirAndDefault) {
  auto c = parse("vtpm = [ \"state=/var/lib/vigil/vtpm/d\" ]\n");
  ASSERT_TRUE(c) << c.error().message;
  ASSERT_TRUE(c->vtpm);
  EXPECT_EQ(c->vtpm->state_dir, "/var/lib/vigil/vtpm/d");
  auto d = parse("vtpm = [ \"\" ]\n");
  ASSERT_TRUE(d) << d.error().message;
  ASSERT_TRUE(d->vtpm);
  EXPECT_EQ(d->vtpm->state_dir, "");
  auto spaced = parse("vtpm = [ \" , state = /s \" ]\n");
  ASSERT_TRUE(spaced) << spaced.error().message;
  EXPECT_EQ(spaced->vtpm->state_dir, "/s");
}

TEST(XlVtpm, ErrorsNameLineKeyAndProblem) {
  struct Case {
    std::string line, message;
  } cases[] = {
      {"vtpm = 1\n", "dom.cfg:3: vtpm: expected a list of quoted strings"},
      {"vtpm = \"state=/s\"\n", "dom.cfg:3: vtpm: expected a list of quoted strings"},
      {"vtpm = [ \"state=/a\", \"state=/b\" ]\n", "dom.cfg:3: vtpm: entry 2: a domain has at most one vTPM"},
      {"vtpm = [ \"backend=vtpm-stubdom\" ]\n", "dom.cfg:3: vtpm: entry 1: backend= names a Xen vTPM stub domain"},
      {"vtpm = [ \"uuid=1234\" ]\n", "entry 1: uuid= names a Xen vTPM stub domain"},
      {"vtpm = [ \"state=\" ]\n", "entry 1: state= needs a directory"},
      {"vtpm = [ \"statedir=/a\" ]\n", "entry 1: unknown vtpm parameter statedir= (Vigil takes state)"},
      {"vtpm = [ \"/a\" ]\n", "entry 1: \"/a\" is not KEY=VALUE"},
      {"vtpm = [ 1 ]\n", "entry 1: expected a quoted string"},
      {"vtpm = []\nvtpm = []\n", "dom.cfg:4: vtpm: duplicate key"},
  };
  for (const auto& c : cases) {
    auto r = parse(c.line);
    ASSERT_FALSE(r) << c.line;
    EXPECT_NE(r.error().message.find(c.message), std::string::npos) << c.line << " -> " << r.error().message;
    EXPECT_EQ(r.error().message.find('\n'), std::string::npos) << "one line: " << r.error().message;
  }
}

TEST(XlVtpm, RoundTripsThroughToXlConfig) {
  for (const char* line : {"vtpm = [ \"state=/srv/tpm,x\" ]\n", "vtpm = [ \"state=/srv/tpm\" ]\n", "vtpm = [ \"\" ]\n", ""}) {
    auto c = parse(line);
    ASSERT_TRUE(c) << line;
    auto again = parse_xl_config(to_xl_config(*c), "saved.cfg");
    ASSERT_TRUE(again) << again.error().message;
    ASSERT_EQ(again->vtpm.has_value(), c->vtpm.has_value()) << line;
    if (c->vtpm) {
      EXPECT_EQ(again->vtpm->state_dir, c->vtpm->state_dir);
    }
  }
}

TEST(XlVtpm, RelativeStateDirResolvesAgainstTheConfigFile) {
  const auto dir = std::filesystem::temp_directory_path() / ("xl-vtpm-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  {
    std::ofstream(dir / "d.cfg") << kBase << "vtpm = [ \"state=tpm/d\" ]\n";
    std::ofstream(dir / "e.cfg") << kBase << "vtpm = [ \"\" ]\n";
  }
  auto c = load_xl_config((dir / "d.cfg").string());
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->vtpm->state_dir, (dir / "tpm/d").string());
  auto e = load_xl_config((dir / "e.cfg").string());
  ASSERT_TRUE(e) << e.error().message;
  EXPECT_EQ(e->vtpm->state_dir, "") << "the default stays vigild's to choose";
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace vigil::toolstack
