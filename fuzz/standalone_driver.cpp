// A minimal stand-in for libFuzzer's main, for machines without libclang-rt-14-dev
// (cmake -DVIGIL_FUZZ_ENGINE=standalone). It links with any LLVMFuzzerTestOneInput target.
//
//   target FILE...                  runs each file once (reproduce a crash)
//   target [flags] DIR|FILE...      runs every corpus file once, then, if
//                                   -max_total_time=S or -runs=N is given, random mutations
//                                   of the corpus (blind: there is no coverage feedback)
// Flags understood (libFuzzer's spelling, so fuzz/run.sh works with either engine):
//   -max_total_time=S -runs=N -seed=N -max_len=N -artifact_prefix=P; other -flags are ignored.
// On a crash (sanitizer report, abort, fatal signal) the input is written to
// <artifact_prefix>crash-<hash> before the process dies.
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
extern "C" __attribute__((weak)) int LLVMFuzzerInitialize(int* argc, char*** argv);
extern "C" __attribute__((weak)) void __sanitizer_set_death_callback(void (*)(void));

namespace {

using Bytes = std::vector<uint8_t>;

std::string g_prefix = "./";
const Bytes* g_current = nullptr;

uint64_t fnv1a(const Bytes& b) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (uint8_t c : b) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

// Async-signal-safe enough: open/write/close only.
void save_current() {
  static bool saved = false;
  if (saved || g_current == nullptr) return;
  saved = true;
  char name[4096];
  std::snprintf(name, sizeof name, "%scrash-%016llx", g_prefix.c_str(), static_cast<unsigned long long>(fnv1a(*g_current)));
  FILE* f = std::fopen(name, "wb");
  if (f) {
    std::fwrite(g_current->data(), 1, g_current->size(), f);
    std::fclose(f);
    std::fprintf(stderr, "standalone: crashing input written to %s\n", name);
  }
}

void on_signal(int sig) {
  save_current();
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

void run_one(const Bytes& input) {
  g_current = &input;
  // A copy in its own allocation, so ASan catches reads past the end as libFuzzer does.
  uint8_t* copy = new uint8_t[input.size() ? input.size() : 1];
  if (!input.empty()) std::memcpy(copy, input.data(), input.size());
  LLVMFuzzerTestOneInput(copy, input.size());
  delete[] copy;
  g_current = nullptr;
}

bool read_file(const std::string& path, Bytes& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  out.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return true;
}

void load(const std::string& path, std::vector<Bytes>& corpus) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return;
  if (S_ISDIR(st.st_mode)) {
    DIR* d = ::opendir(path.c_str());
    if (!d) return;
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] != '.') names.push_back(path + "/" + e->d_name);
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    for (const auto& n : names) load(n, corpus);
  } else {
    Bytes b;
    if (read_file(path, b)) corpus.push_back(std::move(b));
  }
}

struct Rng {
  uint64_t s;
  uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
  size_t below(size_t n) { return n ? next() % n : 0; }
};

void mutate(Bytes& b, const std::vector<Bytes>& corpus, Rng& r, size_t max_len) {
  static constexpr uint64_t kInteresting[] = {0, 1, 0x7f, 0x80, 0xff, 0x7fff, 0x8000, 0xffff,
                                              0x7fffffff, 0x80000000, 0xffffffff, ~0ull, 0x80000000ull << 1};
  for (size_t n = 1 + r.below(8); n > 0; --n) {
    switch (r.below(8)) {
      case 0:
        if (!b.empty()) b[r.below(b.size())] ^= static_cast<uint8_t>(1u << r.below(8));
        break;
      case 1:
        if (!b.empty()) b[r.below(b.size())] = static_cast<uint8_t>(r.next());
        break;
      case 2: {  // interesting value, 1/2/4/8 bytes
        if (b.empty()) break;
        const size_t w = size_t{1} << r.below(4);
        const size_t at = r.below(b.size());
        const uint64_t v = kInteresting[r.below(std::size(kInteresting))];
        for (size_t i = 0; i < w && at + i < b.size(); ++i) b[at + i] = static_cast<uint8_t>(v >> (8 * i));
        break;
      }
      case 3: {  // insert random bytes
        const size_t at = r.below(b.size() + 1), len = 1 + r.below(8);
        Bytes ins(len);
        for (auto& c : ins) c = static_cast<uint8_t>(r.next());
        b.insert(b.begin() + static_cast<std::ptrdiff_t>(at), ins.begin(), ins.end());
        break;
      }
      case 4: {  // erase a range
        if (b.empty()) break;
        const size_t at = r.below(b.size()), len = 1 + r.below(std::min<size_t>(16, b.size() - at));
        b.erase(b.begin() + static_cast<std::ptrdiff_t>(at), b.begin() + static_cast<std::ptrdiff_t>(at + len));
        break;
      }
      case 5: {  // duplicate a range elsewhere
        if (b.empty()) break;
        const size_t from = r.below(b.size()), len = 1 + r.below(std::min<size_t>(32, b.size() - from));
        const Bytes chunk(b.begin() + static_cast<std::ptrdiff_t>(from), b.begin() + static_cast<std::ptrdiff_t>(from + len));
        b.insert(b.begin() + static_cast<std::ptrdiff_t>(r.below(b.size() + 1)), chunk.begin(), chunk.end());
        break;
      }
      case 6: {  // splice with another corpus entry
        const Bytes& o = corpus[r.below(corpus.size())];
        if (o.empty()) break;
        const size_t cut = r.below(b.size() + 1), from = r.below(o.size());
        b.resize(cut);
        b.insert(b.end(), o.begin() + static_cast<std::ptrdiff_t>(from), o.end());
        break;
      }
      default: {  // small arithmetic on a byte
        if (!b.empty()) b[r.below(b.size())] += static_cast<uint8_t>(r.below(35)) - 17;
        break;
      }
    }
  }
  if (b.size() > max_len) b.resize(max_len);
}

}  // namespace

int main(int argc, char** argv) {
  double max_time = 0;
  long long max_runs = -1;
  uint64_t seed = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) | 1;
  size_t max_len = 4096;
  bool any_dir = false;
  std::vector<std::string> paths;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto val = [&](const char* flag) -> const char* {
      const size_t n = std::strlen(flag);
      return a.compare(0, n, flag) == 0 ? a.c_str() + n : nullptr;
    };
    if (const char* v = val("-max_total_time=")) max_time = std::atof(v);
    else if (const char* v = val("-runs=")) max_runs = std::atoll(v);
    else if (const char* v = val("-seed=")) seed = std::strtoull(v, nullptr, 10) | 1;
    else if (const char* v = val("-max_len=")) max_len = std::strtoull(v, nullptr, 10);
    else if (const char* v = val("-artifact_prefix=")) g_prefix = v;
    else if (a[0] == '-') continue;  // a libFuzzer flag this driver does not need
    else {
      struct stat st {};
      if (::stat(a.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) any_dir = true;
      paths.push_back(a);
    }
  }
  if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
  if (__sanitizer_set_death_callback) __sanitizer_set_death_callback(save_current);
  for (int sig : {SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL}) ::signal(sig, on_signal);

  std::vector<Bytes> corpus;
  for (const auto& p : paths) load(p, corpus);
  const auto start = std::chrono::steady_clock::now();
  long long runs = 0;
  for (const auto& b : corpus) {
    run_one(b);
    ++runs;
  }
  std::fprintf(stderr, "standalone: ran %zu corpus inputs\n", corpus.size());
  if (!any_dir && max_time <= 0 && max_runs < 0) return 0;  // reproduce mode
  if (corpus.empty()) corpus.emplace_back();
  Rng rng{seed};
  std::fprintf(stderr, "standalone: seed %llu, mutating for %.0f s\n", static_cast<unsigned long long>(seed), max_time);
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  while ((max_runs < 0 || runs < max_runs) && (max_time <= 0 ? max_runs >= 0 : elapsed() < max_time)) {
    Bytes b = corpus[rng.below(corpus.size())];
    mutate(b, corpus, rng, max_len);
    run_one(b);
    ++runs;
  }
  std::fprintf(stderr, "Done %lld runs in %.0f second(s)\n", runs, elapsed());
  return 0;
}
