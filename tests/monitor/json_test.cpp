// The JSON forms of events, responses and subscriptions (monitor/json.h).
#include "monitor/json.h"

#include <gtest/gtest.h>

namespace vigil::monitor {
namespace {

TEST(MonitorJson, FastEventLineEqualsTheJsonObjectForEveryType) {
  for (unsigned t = 0; t < kEventTypeCount; ++t) {
    Event ev;
    ev.type = static_cast<EventType>(t);
    ev.seq = 7;
    ev.sync = t % 2;
    ev.vcpu = 3;
    ev.priv = riscv::Priv::U;
    ev.pc = 0xffffffff80001234ull;
    ev.satp = 0x9000000000080a64ull;
    ev.gpa = 0x80201000;
    ev.gva = 0xffffffff80001000ull;
    ev.access = riscv::AccessType::kWrite;
    ev.size = 8;
    ev.csr = riscv::csr::kSatp;
    ev.old_value = 1;
    ev.new_value = ~0ull;
    ev.nr = 64;
    ev.args = {1, 2, 3, 4, 5, ~0ull};
    ev.ret = -9;
    ev.cause = 13;
    ev.tval = 0x1000;
    ev.interrupt = true;
    std::string line;
    append_event_line(ev, R"(,"pid":42,"comm":"a\"b")", line);
    ASSERT_EQ(line.back(), '\n');
    Json parsed = Json::parse(line);
    Json expected = to_json(ev);
    expected["pid"] = 42;
    expected["comm"] = "a\"b";
    EXPECT_EQ(parsed, expected) << line;
  }
}

TEST(MonitorJson, ResponsesAndSubscriptions) {
  auto r = response_from_json(Json::parse(
      R"({"seq":1,"action":"emulate","value":"0x10","regs":{"a0":5,"x31":"7"},"pc":4096,"singlestep":true,
          "rights":[{"gpa":"0x80000000","length":4096,"rights":"r-x"}]})"));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->action, Action::kEmulate);
  EXPECT_EQ(r->value, 0x10u);
  ASSERT_EQ(r->regs.size(), 2u);
  EXPECT_EQ(r->regs[0].reg, 10u);
  EXPECT_EQ(r->regs[1].reg, 31u);
  EXPECT_EQ(r->regs[1].value, 7u);
  EXPECT_EQ(*r->pc, 4096u);
  EXPECT_TRUE(*r->single_step);
  EXPECT_EQ(r->rights[0].rights, riscv::p2m::kRead | riscv::p2m::kExec);
  EXPECT_FALSE(response_from_json(Json::parse(R"({"action":"maybe"})")));
  EXPECT_FALSE(response_from_json(Json::parse(R"({"regs":{"zero":1}})")));
  EXPECT_FALSE(response_from_json(Json::parse(R"({"rights":[{"gpa":1}]})")));

  auto s =
      subscription_from_json(Json::parse(R"({"type":"csr","sync":true,"on_change":true,"numbers":["satp",773],
                                                  "satp":"0x9000000000080a64","vcpu":1,"lo":16,"hi":"0x20"})"));
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->type, EventType::kCsrWrite);
  EXPECT_TRUE(s->sync && s->on_change);
  EXPECT_EQ(s->filter.numbers, (std::vector<uint64_t>{riscv::csr::kSatp, 773}));
  EXPECT_EQ(*s->filter.satp, 0x9000000000080a64ull);
  EXPECT_EQ(*s->filter.vcpu, 1u);
  EXPECT_EQ(s->filter.hi, 0x20u);
  EXPECT_FALSE(subscription_from_json(Json::parse(R"({"type":"nope"})")));
  EXPECT_FALSE(subscription_from_json(Json::parse(R"({"type":"syscall","numbers":["x"]})")));
  EXPECT_FALSE(rights_from_string("rwz"));
}

// Guest bytes (a process's comm) become a JSON string whatever they are: quotes, controls,
// backslashes, invalid UTF-8; each byte comes back as the code point of the same value.
TEST(MonitorJson, GuestBytesAlwaysMakeValidJsonStrings) {
  std::string all;
  for (int b = 1; b < 256; ++b) all += static_cast<char>(b);
  for (const std::string& bytes : {std::string("vtest-monitor"), std::string("a\"b\\c\n"), std::string("\xc3\x28\xff"), all,
                                   std::string()}) {
    std::string out = "{\"comm\":";
    append_json_string(bytes, out);
    out += "}";
    const Json j = Json::parse(out, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << out;
    // Back to bytes: every code point is below 256.
    std::u32string points;
    const std::string utf8 = j["comm"].get<std::string>();
    for (size_t i = 0; i < utf8.size();) {
      const auto c = static_cast<unsigned char>(utf8[i]);
      if (c < 0x80) {
        points += c;
        i += 1;
      } else {
        ASSERT_EQ(c & 0xe0, 0xc0) << out;  // two-byte sequences only (U+0080..U+00FF)
        points += static_cast<char32_t>(((c & 0x1f) << 6) | (static_cast<unsigned char>(utf8[i + 1]) & 0x3f));
        i += 2;
      }
    }
    ASSERT_EQ(points.size(), bytes.size());
    for (size_t i = 0; i < bytes.size(); ++i) EXPECT_EQ(points[i], static_cast<unsigned char>(bytes[i])) << i;
  }
}

}  // namespace
}  // namespace vigil::monitor
