// The dashboard's JSON endpoint and its access rules, through a real HTTP client (httplib's);
// the page itself is loaded by headless Chromium in tests/e2e/test_dashboard.py.
#include "toolstack/dashboard.h"

#include "riscv/jit.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

namespace vigil::toolstack {
namespace {

constexpr const char* kToken = "s3cret-token-0123456789";

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / fmt::format("vigil-dash-{}-{}", ::getpid(), name)).string();
}

// A minimal RISC-V Linux Image: the header's first word jumps to offset 64, where the code
// prints `text` through the legacy SBI putchar and then spins (a CPU-bound guest).
std::string write_spinning_kernel(const std::string& text) {
  std::vector<uint32_t> words(16, 0);
  words[0] = 0x0400006f;  // jal x0, +64
  const uint32_t magic2 = 0x05435352;  // "RSC\x05" at offset 56
  std::memcpy(&words[14], &magic2, 4);
  auto addi = [](unsigned rd, uint32_t imm) { return (imm << 20) | (rd << 7) | 0x13; };
  words.push_back(addi(17, 1));  // a7 = 1: legacy console putchar
  for (unsigned char c : text) {
    words.push_back(addi(10, c));  // a0 = c
    words.push_back(0x00000073);   // ecall
  }
  words.push_back(0x0000006f);  // jal x0, 0: spin
  const std::string path = temp_path("kernel.img");
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(words.data()),
                                               static_cast<std::streamsize>(words.size() * 4));
  return path;
}

std::string write_token(const std::string& token, mode_t mode) {
  const std::string path = temp_path("token");
  std::ofstream(path) << token << "\n";
  ::chmod(path.c_str(), mode);
  return path;
}

TEST(DashboardText, ConsoleLosesEscapesAndControlsButKeepsText) {
  EXPECT_EQ(printable_console("ok\x1b[31mred\x1b[0m\r\n<b>x</b>\x07\tend\x7f\x1b" "c\n"), "okred\n<b>x</b>\tend\n");
  EXPECT_EQ(printable_console("\xc3\xa9t\xc3\xa9"), "\xc3\xa9t\xc3\xa9");  // UTF-8 passes
  EXPECT_EQ(printable_console("cut\x1b["), "cut");                        // a sequence cut short
}

TEST(DashboardAuth, ConstantTimeEqualAndLoopbackNames) {
  EXPECT_TRUE(constant_time_equal(kToken, kToken));
  EXPECT_FALSE(constant_time_equal(kToken, std::string(kToken) + "x"));
  EXPECT_FALSE(constant_time_equal(std::string(kToken).substr(0, 5), kToken));
  EXPECT_FALSE(constant_time_equal("", kToken));
  EXPECT_FALSE(constant_time_equal("s3cret-token-0123456780", kToken));
  for (const char* h : {"127.0.0.1", "127.1.2.3", "::1", "localhost"}) EXPECT_TRUE(is_loopback_host(h)) << h;
  for (const char* h : {"0.0.0.0", "::", "10.0.0.1", "127.0.0.1.evil.example", "127.", "localhost.evil", ""}) {
    EXPECT_FALSE(is_loopback_host(h)) << h;
  }
}

TEST(DashboardAuth, TokenFileMustBePrivateAndSane) {
  auto good = read_token_file(write_token(kToken, 0600));
  ASSERT_TRUE(good) << good.error().message;
  EXPECT_EQ(*good, kToken);
  auto open = read_token_file(write_token(kToken, 0644));
  ASSERT_FALSE(open);
  EXPECT_NE(open.error().message.find("chmod 600"), std::string::npos) << open.error().message;
  auto shortish = read_token_file(write_token("short", 0600));
  ASSERT_FALSE(shortish);
  EXPECT_NE(shortish.error().message.find("16 to 256"), std::string::npos) << shortish.error().message;
  auto spaced = read_token_file(write_token("has a space in it, long enough", 0600));
  EXPECT_FALSE(spaced);
  auto missing = read_token_file(temp_path("no-such-file"));
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("no-such-file"), std::string::npos);
  std::filesystem::remove(temp_path("token"));
}

TEST(DashboardJson, EmptyHost) {
  hv::DomainManager m(1);
  const Json j = dashboard_json(m);
  EXPECT_TRUE(j["ok"].get<bool>());
  EXPECT_TRUE(j["domains"].is_array());
  EXPECT_TRUE(j["domains"].empty());
  EXPECT_EQ(j["workers"].get<unsigned>(), 1u);
  EXPECT_TRUE(j["time_s"].is_number());
}

TEST(DashboardJson, RunningDomainHasStateCpuMemoryAndCleanConsole) {
  // As vigild's main(): the JIT's executable memory is mapped before sandboxed threads exist.
  (void)riscv::JitPool::instance();
  hv::DomainManager m(1);
  hv::DomainConfig c;
  c.name = "spin";
  c.memory_mib = 16;
  c.kernel = write_spinning_kernel("boot\x1b[1mBOLD\x1b[0m\r\n<script>x</script>\n");
  c.rng = false;
  auto id = m.create(c);
  std::filesystem::remove(c.kernel);
  ASSERT_TRUE(id) << id.error().message;
  Json d;
  // The guest prints, then spins: wait for both (CPU time is accounted per scheduling slice).
  for (int i = 0; i < 500; ++i) {
    d = dashboard_json(m)["domains"][0];
    if (d["console_tail"].get<std::string>().find("</script>\n") != std::string::npos &&
        d["cpu_seconds"].get<double>() > 0) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(d["name"], "spin");
  EXPECT_EQ(d["id"].get<uint32_t>(), *id);
  EXPECT_EQ(d["state"], "running");
  EXPECT_EQ(d["vcpus"].get<unsigned>(), 1u);
  EXPECT_EQ(d["memory_mib"].get<uint64_t>(), 16u);
  EXPECT_GT(d["cpu_seconds"].get<double>(), 0);
  ASSERT_EQ(d["vcpu_states"].size(), 1u);
  EXPECT_TRUE(d["psr"].is_null());
  EXPECT_EQ(d["vm_events"].get<uint64_t>(), 0u);
  // Escape sequences and \r are gone; markup stays text for the page to show as text.
  EXPECT_EQ(d["console_tail"], "bootBOLD\n<script>x</script>\n");
  ASSERT_TRUE(m.pause(*id));
  EXPECT_EQ(dashboard_json(m)["domains"][0]["state"], "paused");
  ASSERT_TRUE(m.destroy(*id));
}

class DashboardHttp : public ::testing::Test {
 protected:
  void start(const std::string& host, std::string token) {
    auto r = server.start({host, 0}, std::move(token));
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_GT(server.port(), 0);
  }
  httplib::Client client() { return httplib::Client("127.0.0.1", server.port()); }

  hv::DomainManager m{1};
  DashboardServer server{m};
};

TEST_F(DashboardHttp, LoopbackServesPageScriptAndJsonWithoutToken) {
  start("127.0.0.1", "");
  auto cli = client();
  auto page = cli.Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_NE(page->body.find("<canvas id=\"plot-cpu\""), std::string::npos);
  EXPECT_NE(page->get_header_value("Content-Security-Policy").find("script-src 'self'"), std::string::npos);
  auto js = cli.Get("/dashboard.js");
  ASSERT_TRUE(js);
  EXPECT_EQ(js->status, 200);
  EXPECT_EQ(js->get_header_value("Content-Type").rfind("text/javascript", 0), 0u);
  EXPECT_NE(js->body.find("/api/dashboard"), std::string::npos);
  auto css = cli.Get("/dashboard.css");
  ASSERT_TRUE(css);
  EXPECT_EQ(css->status, 200);
  auto api = cli.Get("/api/dashboard");
  ASSERT_TRUE(api);
  EXPECT_EQ(api->status, 200);
  const Json j = Json::parse(api->body);
  EXPECT_TRUE(j["ok"].get<bool>());
  EXPECT_TRUE(j["domains"].is_array());
  auto none = cli.Get("/nothing-here");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 404);
}

TEST_F(DashboardHttp, LoopbackRefusesForeignHostHeader) {
  // A page elsewhere that rebinds its own name to 127.0.0.1 sends its name as Host.
  start("127.0.0.1", "");
  auto cli = client();
  auto r = cli.Get("/api/dashboard", {{"Host", "evil.example:80"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 403);
  EXPECT_EQ(r->body.find("domains"), std::string::npos);
  auto ok = cli.Get("/api/dashboard", {{"Host", "localhost"}});
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
}

TEST_F(DashboardHttp, NonLoopbackWithoutTokenDoesNotStart) {
  auto r = server.start({"0.0.0.0", 0}, "");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("0.0.0.0"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("--dashboard-token-file"), std::string::npos) << r.error().message;
}

TEST_F(DashboardHttp, TokenByBearerOrCookieFromLinkElse401) {
  start("0.0.0.0", kToken);
  auto cli = client();
  for (const char* path : {"/", "/api/dashboard", "/dashboard.js"}) {
    auto r = cli.Get(path);
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->status, 401) << path;
    EXPECT_EQ(r->get_header_value("WWW-Authenticate").rfind("Bearer", 0), 0u);
  }
  auto wrong = cli.Get("/api/dashboard", {{"Authorization", "Bearer s3cret-token-0123456780"}});
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 401);
  auto prefix = cli.Get("/api/dashboard", {{"Authorization", "Bearer s3cret"}});
  ASSERT_TRUE(prefix);
  EXPECT_EQ(prefix->status, 401);
  auto bearer = cli.Get("/api/dashboard", {{"Authorization", std::string("Bearer ") + kToken}});
  ASSERT_TRUE(bearer);
  EXPECT_EQ(bearer->status, 200);
  EXPECT_TRUE(Json::parse(bearer->body)["ok"].get<bool>());

  // The link trades its token for a cookie and redirects to the bare page.
  auto link = cli.Get(std::string("/?token=") + kToken);
  ASSERT_TRUE(link);
  EXPECT_EQ(link->status, 303);
  EXPECT_EQ(link->get_header_value("Location"), "/");
  const std::string set_cookie = link->get_header_value("Set-Cookie");
  EXPECT_EQ(set_cookie.rfind(std::string(kDashboardCookie) + "=" + kToken + ";", 0), 0u) << set_cookie;
  EXPECT_NE(set_cookie.find("HttpOnly"), std::string::npos);
  EXPECT_NE(set_cookie.find("SameSite=Strict"), std::string::npos);
  auto cookie = cli.Get("/api/dashboard", {{"Cookie", std::string("other=1; ") + kDashboardCookie + "=" + kToken}});
  ASSERT_TRUE(cookie);
  EXPECT_EQ(cookie->status, 200);
  auto bad_cookie = cli.Get("/api/dashboard", {{"Cookie", std::string(kDashboardCookie) + "=nope"}});
  ASSERT_TRUE(bad_cookie);
  EXPECT_EQ(bad_cookie->status, 401);
  auto bad_link = cli.Get("/?token=nope");
  ASSERT_TRUE(bad_link);
  EXPECT_EQ(bad_link->status, 401);
  EXPECT_TRUE(bad_link->get_header_value("Set-Cookie").empty());
  // The query token opens only the page (which trades it at once), not the data.
  auto query_api = cli.Get(std::string("/api/dashboard?token=") + kToken);
  ASSERT_TRUE(query_api);
  EXPECT_EQ(query_api->status, 401);
}

}  // namespace
}  // namespace vigil::toolstack
