// Fuzz target `dashboard`: what the dashboard (toolstack/dashboard.h) does with bytes from
// others: a guest's console bytes (printable_console), and the Host, Authorization and Cookie
// headers and the ?token= parameter of an HTTP client (dashboard_access).
//
// Invariants: the cleaned console holds no control byte but \n and \t and is never longer
// than its input; a request is allowed with a token only if one of its credentials equals the
// token exactly (up to a NUL: httplib returns header values as C strings); without a token
// only loopback Host names pass.
#include <httplib.h>

#include <string>

#include "fuzz_input.h"
#include "toolstack/dashboard.h"

namespace {

using namespace vigil::toolstack;

std::string field(vigil::fuzz::Input& in) {
  auto b = in.bytes(in.u8());
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vigil::fuzz::Input in(data, size);
  const uint8_t mode = in.u8();
  if (mode & 1) {
    const std::string_view raw = in.rest_text();
    const std::string out = printable_console(raw);
    FUZZ_CHECK(out.size() <= raw.size());
    for (char c : out) {
      const auto u = static_cast<unsigned char>(c);
      FUZZ_CHECK(u == '\n' || u == '\t' || (u >= 0x20 && u != 0x7f));
    }
    return 0;
  }
  const std::string token = (mode & 2) ? std::string("fuzz-token-0123456789") : std::string();
  httplib::Request req;
  req.path = (mode & 4) ? "/" : "/api/dashboard";
  const std::string host = field(in), auth = field(in), cookie = field(in), param = field(in);
  req.headers.emplace("Host", host);
  if (mode & 8) req.headers.emplace("Authorization", auth);
  if (mode & 16) req.headers.emplace("Cookie", cookie);
  if (mode & 32) req.params.emplace("token", param);
  const DashboardAccess a = dashboard_access(req, token);
  if (token.empty()) {
    FUZZ_CHECK(a != DashboardAccess::kUnauthorized);
    if (a == DashboardAccess::kAllowed) {
      // The host part is a loopback name: the header mentions one.
      FUZZ_CHECK(host.find("127.") != std::string::npos || host.find("::1") != std::string::npos ||
                 host.find("localhost") != std::string::npos);
    }
  } else if (a == DashboardAccess::kAllowed) {
    // httplib hands header values out as C strings: a credential ends at its first NUL.
    const auto c_str = [](const std::string& v) { return v.substr(0, v.find('\0')); };
    FUZZ_CHECK(((mode & 8) && c_str(auth) == "Bearer " + token) ||
               ((mode & 16) && c_str(cookie).find(std::string(kDashboardCookie) + "=" + token) != std::string::npos) ||
               ((mode & 32) && (mode & 4) && param == token));
  } else {
    FUZZ_CHECK(a == DashboardAccess::kUnauthorized);
  }
  return 0;
}
