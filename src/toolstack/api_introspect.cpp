#include "toolstack/api_introspect.h"

#include <sys/stat.h>

#include <charconv>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <set>

#include "introspect/domain_session.h"
#include "introspect/linux_guest.h"

namespace vigil::toolstack {

namespace {

using introspect::KernelFiles;
using introspect::KernelInfo;
using Clock = std::chrono::steady_clock;

// One introspection request at a time: they are rare, and the cached symbol tables carry the
// offset of the domain being read.
std::mutex g_mutex;

// Parsed kernel files, reused while the files do not change (System.map and BTF together take
// ~100 ms to parse).
struct CacheEntry {
  struct timespec map_mtime {
  }, btf_mtime{};
  std::shared_ptr<KernelInfo> info;
};
std::map<std::pair<std::string, std::string>, CacheEntry> g_cache;

bool same_time(const struct timespec& a, const struct timespec& b) {
  return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

Result<std::shared_ptr<KernelInfo>> kernel_info(const KernelFiles& files) {
  struct stat ms {
  }, bs{};
  if (::stat(files.system_map.c_str(), &ms) != 0) {
    return make_error(
        "no System.map for this domain at '{}' (set system_map in its config or in the request)",
        files.system_map);
  }
  if (::stat(files.btf.c_str(), &bs) != 0) {
    return make_error(
        "no kernel BTF for this domain at '{}' (set kernel_btf in its config or in the request)", files.btf);
  }
  CacheEntry& e = g_cache[{files.system_map, files.btf}];
  if (e.info && same_time(e.map_mtime, ms.st_mtim) && same_time(e.btf_mtime, bs.st_mtim)) return e.info;
  auto info = KernelInfo::load(files);
  if (!info) return std::unexpected(info.error());
  e.info = std::make_shared<KernelInfo>(std::move(*info));
  e.map_mtime = ms.st_mtim;
  e.btf_mtime = bs.st_mtim;
  return e.info;
}

// A number given as a JSON unsigned integer or a string ("0x..." hex or decimal).
Result<uint64_t> number(const Json& req, const char* key) {
  auto it = req.find(key);
  if (it == req.end()) return make_error("missing \"{}\"", key);
  if (it->is_number_unsigned()) return it->get<uint64_t>();
  if (it->is_string()) {
    const std::string s = it->get<std::string>();
    const bool hex = s.starts_with("0x") || s.starts_with("0X");
    const char* begin = s.data() + (hex ? 2 : 0);
    uint64_t v = 0;
    const auto [p, ec] = std::from_chars(begin, s.data() + s.size(), v, hex ? 16 : 10);
    if (ec == std::errc() && p == s.data() + s.size() && begin != p) return v;
  }
  return make_error("\"{}\" must be a non-negative number or a string like \"0xffffffff80000000\"", key);
}

std::string hex_encode(const std::vector<uint8_t>& data) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  s.reserve(data.size() * 2);
  for (uint8_t b : data) {
    s += kDigits[b >> 4];
    s += kDigits[b & 15];
  }
  return s;
}

Result<std::vector<uint8_t>> hex_decode(const std::string& s) {
  if (s.size() % 2) return make_error("\"data\" must be an even number of hex digits");
  std::vector<uint8_t> out(s.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) {
    const auto [p, ec] = std::from_chars(s.data() + 2 * i, s.data() + 2 * i + 2, out[i], 16);
    if (ec != std::errc() || p != s.data() + 2 * i + 2) return make_error("\"data\" must be hex digits");
  }
  return out;
}

std::string hex(uint64_t v) {
  return fmt::format("{:#x}", v);
}

KernelFiles files_for(const hv::DomainConfig& config, const Json& req) {
  KernelFiles files = introspect::kernel_files_for(config);
  if (auto it = req.find("system_map"); it != req.end() && it->is_string()) files.system_map = *it;
  if (auto it = req.find("kernel_btf"); it != req.end() && it->is_string()) files.btf = *it;
  return files;
}

// Everything one request needs: the paused domain and, on demand, its Linux view.
class Session {
 public:
  Session(introspect::PausedDomain paused, const Json& req) : m_paused(std::move(paused)), m_req(req) {}

  introspect::PausedDomain& paused() { return m_paused; }
  introspect::GuestView view() { return m_paused.view(); }
  std::vector<introspect::VcpuRegs>& vcpus() {
    if (m_vcpus.empty()) m_vcpus = m_paused.vcpus();
    return m_vcpus;
  }

  Result<introspect::LinuxGuest*> linux_guest() {
    if (m_linux) return &*m_linux;
    const KernelFiles files = files_for(m_paused.domain().config(), m_req);
    auto info = kernel_info(files);
    if (!info) return std::unexpected(info.error());
    m_info = *info;
    m_files = files;
    auto g = introspect::LinuxGuest::attach(view(), m_info->symbols, m_info->profile, vcpus());
    if (!g) return std::unexpected(g.error());
    m_linux.emplace(std::move(*g));
    return &*m_linux;
  }
  const KernelFiles& files() const { return m_files; }

  // The page tables a request names: "satp", or "pid" (a process's), else the kernel's.
  Result<uint64_t> satp() {
    if (m_req.contains("satp")) return number(m_req, "satp");
    auto g = linux_guest();
    if (!g) return std::unexpected(g.error());
    if (m_req.contains("pid")) {
      auto pid = number(m_req, "pid");
      if (!pid) return std::unexpected(pid.error());
      if (*pid > INT32_MAX) return make_error("no process with pid {}", *pid);
      return (*g)->satp_of_pid(static_cast<int32_t>(*pid));
    }
    return (*g)->kernel_satp();
  }

 private:
  introspect::PausedDomain m_paused;
  const Json& m_req;
  std::vector<introspect::VcpuRegs> m_vcpus;
  std::shared_ptr<KernelInfo> m_info;
  KernelFiles m_files;
  std::optional<introspect::LinuxGuest> m_linux;
};

Json ps(Session& s) {
  auto g = s.linux_guest();
  if (!g) return error_json(g.error().message);
  auto list = (*g)->processes();
  if (!list) return error_json(list.error().message);
  const auto current = (*g)->current(s.vcpus(), &*list);
  introspect::LinuxGuest::mark_running(*list, current);
  Json procs = Json::array();
  for (const auto& p : *list) {
    Json j{{"pid", p.pid},
           {"tid", p.tid},
           {"ppid", p.ppid},
           {"comm", p.comm},
           {"satp", p.satp},
           {"task", hex(p.task)},
           {"kernel_thread", p.kernel_thread}};
    j["vcpu"] = p.vcpu ? Json(*p.vcpu) : Json(nullptr);
    if (!p.error.empty()) j["error"] = p.error;
    procs.push_back(std::move(j));
  }
  Json vcpus = Json::array();
  for (const auto& c : current) {
    Json j{{"vcpu", c.vcpu},
           {"online", c.online},
           {"mode", std::string(1, c.mode)},
           {"pc", hex(c.pc)},
           {"satp", c.satp}};
    if (c.task) {
      j["pid"] = c.pid;
      j["comm"] = c.comm;
      j["task"] = hex(c.task);
    } else {
      j["error"] = c.error;
    }
    vcpus.push_back(std::move(j));
  }
  return Json{{"ok", true}, {"processes", procs}, {"vcpus", vcpus}};
}

Json modules(Session& s) {
  auto g = s.linux_guest();
  if (!g) return error_json(g.error().message);
  auto mods = (*g)->modules();
  if (!mods) return error_json(mods.error().message);
  Json list = Json::array();
  for (const auto& m : *mods) list.push_back({{"name", m.name}, {"address", hex(m.address)}});
  return Json{{"ok", true}, {"modules", list}};
}

Json kernel_info_json(Session& s) {
  auto g = s.linux_guest();
  if (!g) return error_json(g.error().message);
  return Json{{"ok", true},
              {"banner", (*g)->banner()},
              {"kernel_offset", (*g)->kernel_offset()},
              {"kernel_satp", (*g)->kernel_satp()},
              {"paging", introspect::satp_mode_name((*g)->kernel_satp())},
              {"symbols", (*g)->symbols().size()},
              {"system_map", s.files().system_map},
              {"kernel_btf", s.files().btf}};
}

Json translate(Session& s, const Json& req) {
  auto va = number(req, "va");
  if (!va) return error_json(va.error().message);
  auto satp = s.satp();
  if (!satp) return error_json(satp.error().message);
  auto t = s.view().translate(*satp, *va);
  if (!t) return error_json(t.error().message);
  return Json{
      {"ok", true},    {"va", t->va},  {"pa", t->pa}, {"level", t->level}, {"page_size", t->page_size},
      {"pte", t->pte}, {"satp", *satp}};
}

Json read_memory(Session& s, const Json& req) {
  auto addr = number(req, "address");
  if (!addr) return error_json(addr.error().message);
  auto len = number(req, "length");
  if (!len) return error_json(len.error().message);
  if (*len > kMaxIntrospectBytes)
    return error_json(fmt::format("at most {} bytes per read", kMaxIntrospectBytes));
  std::vector<uint8_t> data(*len);
  Result<void> r;
  if (req.value("physical", false)) {
    r = s.view().read_phys(*addr, data);
  } else {
    auto satp = s.satp();
    if (!satp) return error_json(satp.error().message);
    r = s.view().read_virt(*satp, *addr, data);
  }
  if (!r) return error_json(r.error().message);
  return Json{{"ok", true}, {"data", hex_encode(data)}};
}

Json write_memory(Session& s, const Json& req) {
  auto addr = number(req, "address");
  if (!addr) return error_json(addr.error().message);
  auto it = req.find("data");
  if (it == req.end() || !it->is_string()) return error_json("write-memory needs \"data\": hex digits");
  if (it->get_ref<const std::string&>().size() > 2 * kMaxIntrospectBytes) {
    return error_json(fmt::format("at most {} bytes per write", kMaxIntrospectBytes));
  }
  auto data = hex_decode(*it);
  if (!data) return error_json(data.error().message);
  Result<void> r;
  if (req.value("physical", false)) {
    r = s.view().write_phys(*addr, *data);
  } else {
    auto satp = s.satp();
    if (!satp) return error_json(satp.error().message);
    r = s.view().write_virt(*satp, *addr, *data);
  }
  if (!r) return error_json(r.error().message);
  return Json{{"ok", true}, {"written", data->size()}};
}

Json symbol(Session& s, const Json& req) {
  auto g = s.linux_guest();
  if (!g) return error_json(g.error().message);
  const introspect::SymbolTable& symbols = (*g)->symbols();
  if (auto it = req.find("name"); it != req.end() && it->is_string()) {
    const introspect::Symbol* sym = symbols.find(it->get<std::string>());
    if (!sym) return error_json(fmt::format("the kernel has no symbol '{}'", it->get<std::string>()));
    return Json{
        {"ok", true}, {"name", sym->name}, {"address", sym->address}, {"type", std::string(1, sym->type)}};
  }
  auto addr = number(req, "address");
  if (!addr) return error_json("symbol needs \"name\" or \"address\"");
  auto hit = symbols.nearest(*addr);
  if (!hit) return error_json(fmt::format("no kernel symbol at or below {:#x}", *addr));
  return Json{{"ok", true},
              {"name", hit->symbol->name},
              {"address", hit->symbol->address},
              {"offset", hit->offset},
              {"type", std::string(1, hit->symbol->type)}};
}

}  // namespace

std::optional<Json> handle_introspect_request(hv::DomainManager& m, const std::string& op, const Json& req) {
  static const std::set<std::string> kOps = {"ps",          "modules",      "kernel-info", "translate",
                                             "read-memory", "write-memory", "symbol"};
  if (!kOps.contains(op)) return std::nullopt;
  auto id = request_domain(m, req);
  if (!id) return error_json(id.error().message);

  std::lock_guard lock(g_mutex);
  // Parse the kernel files (cached) before pausing, so the guest does not wait for that.
  if (auto d = m.get(*id)) (void)kernel_info(files_for(d->config(), req));
  const auto start = Clock::now();
  auto paused = introspect::PausedDomain::open(m, *id);
  if (!paused) return error_json(paused.error().message);
  const bool paused_by_us = paused->paused_by_us();
  Json answer;
  {
    Session s(std::move(*paused), req);
    if (op == "ps")
      answer = ps(s);
    else if (op == "modules")
      answer = modules(s);
    else if (op == "kernel-info")
      answer = kernel_info_json(s);
    else if (op == "translate")
      answer = translate(s, req);
    else if (op == "read-memory")
      answer = read_memory(s, req);
    else if (op == "write-memory")
      answer = write_memory(s, req);
    else
      answer = symbol(s, req);
  }  // the domain resumes here
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count();
  if (answer.value("ok", false)) {
    answer["id"] = *id;
    answer["paused_us"] = paused_by_us ? us : 0;
  }
  return answer;
}

}  // namespace vigil::toolstack
