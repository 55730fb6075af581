// Shared by every fuzz target: what a violated invariant does.
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <cstdlib>
#include <string_view>

#include "fuzz_input.h"

namespace vigil::fuzz {

void invariant_failed(const char* file, int line, const char* what) {
  std::fprintf(stderr, "FUZZ INVARIANT FAILED: %s:%d: %s\n", file, line, what);
  std::fflush(stderr);
  std::abort();
}

bool known_bug_skipped(std::string_view id) {
  const char* env = std::getenv("VIGIL_FUZZ_SKIP");
  std::string_view list = env ? env : "";
  while (!list.empty()) {
    const size_t comma = list.find(',');
    if (list.substr(0, comma) == id) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

std::string make_temp(const std::string& dir, std::string_view prefix, bool directory) {
  const std::string head = std::string(prefix) + "-";
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(head, 0) != 0) continue;
    long pid = 0;
    const char* first = name.data() + head.size();
    const auto [end, err] = std::from_chars(first, name.data() + name.size(), pid);
    if (err != std::errc() || end == first || *end != '-' || pid <= 0) continue;
    if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) std::filesystem::remove_all(e.path(), ec);
  }
  std::string path = dir + "/" + head + std::to_string(::getpid()) + "-XXXXXX";
  bool ok;
  if (directory) {
    ok = ::mkdtemp(path.data()) != nullptr;
  } else {
    const int fd = ::mkstemp(path.data());
    ok = fd >= 0;
    if (ok) ::close(fd);
  }
  if (!ok) {
    std::perror(path.c_str());
    std::abort();
  }
  return path;
}

}  // namespace vigil::fuzz
