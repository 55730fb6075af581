// The metrics endpoint's address parsing and the exposition text of an empty vigild; the
// series of running domains are checked by a real Prometheus in tests/e2e/test_metrics.py.
#include "toolstack/metrics.h"

#include <gtest/gtest.h>

namespace vigil::toolstack {
namespace {

TEST(MetricsAddress, PortAloneMeansLoopback) {
  auto a = parse_listen_address("9464");
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 9464);
}

TEST(MetricsAddress, HostAndPortAndIpv6) {
  auto a = parse_listen_address("0.0.0.0:0");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "0.0.0.0");
  EXPECT_EQ(a->port, 0);
  auto b = parse_listen_address("[::1]:9100");
  ASSERT_TRUE(b) << b.error().message;
  EXPECT_EQ(b->host, "::1");
  EXPECT_EQ(b->port, 9100);
}

TEST(MetricsAddress, BadAddressesAreRefusedByName) {
  for (const char* bad : {"", "abc", "127.0.0.1:", ":80", "127.0.0.1:65536", "1:-1", "[::1]9100", "80x"}) {
    auto a = parse_listen_address(bad);
    ASSERT_FALSE(a) << bad;
    EXPECT_NE(a.error().message.find(std::string("'") + bad + "'"), std::string::npos) << a.error().message;
  }
}

TEST(MetricsText, EmptyHostHasHeadersAndNoBraces) {
  hv::DomainManager m(1);
  const std::string text = render_metrics(m);
  EXPECT_NE(text.find("# TYPE vigil_domains gauge\nvigil_domains 0\n"), std::string::npos) << text;
  EXPECT_NE(text.find("vigil_scheduler_workers 1\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("{}"), std::string::npos) << text;
}

TEST(MetricsServer, TakenPortIsAnErrorNamingTheAddress) {
  hv::DomainManager m(1);
  MetricsServer first(m), second(m);
  ASSERT_TRUE(first.start({"127.0.0.1", 0}));
  ASSERT_GT(first.port(), 0);
  auto r = second.start({"127.0.0.1", first.port()});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("127.0.0.1:" + std::to_string(first.port())), std::string::npos)
      << r.error().message;
}

}  // namespace
}  // namespace vigil::toolstack
