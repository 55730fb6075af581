// vigild's vm_event verbs (api_monitor.h): one monitor Hub per domain, one RemoteSession per
// client on a socket of its own.
#include "toolstack/api_monitor.h"

#include <fmt/compile.h>
#include <poll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "introspect/domain_session.h"
#include "introspect/linux_guest.h"
#include "monitor/json.h"
#include "monitor/remote.h"

namespace vigil::toolstack {

namespace {

using monitor::RemoteSession;
using monitor::Subscription;

// __NR_syscalls of Linux 6.1 on riscv64 (include/uapi/asm-generic/unistd.h): the length of
// sys_call_table, which System.map gives no size for.
constexpr uint64_t kLinuxSyscalls = 451;

// What a session was and is, for monitor-list.
struct SessionRecord {
  uint64_t id = 0;
  std::string name;
  std::string state = "waiting";  // waiting for the client, connected, closed, expired
  std::string end_reason;
  std::string transport = "socket";  // "shm" once the client has the shared-memory channel
  uint64_t events = 0, lost = 0;
  std::weak_ptr<RemoteSession> session;
};

// The monitors of one domain. The Hub lives as long as the domain object: it is never
// taken off running harts.
struct DomainMonitors {
  std::shared_ptr<hv::Domain> dom;  // declared first: outlives the hub
  std::unique_ptr<monitor::Hub> hub;
  std::unique_ptr<introspect::KernelInfo> kernel;  // loaded on first need
  std::mutex mutex;                                // sessions, kernel
  std::vector<std::shared_ptr<SessionRecord>> sessions;
  // Set by detach_monitors (a save, issue 11): serving threads end their sessions.
  std::atomic<bool> detaching{false};
  std::string detach_reason;  // guarded by mutex
};

struct Registry {
  std::mutex mutex;
  std::map<uint32_t, std::shared_ptr<DomainMonitors>> domains;
  uint64_t next_session = 1;
};
// Never destroyed: session threads may still run while vigild exits.
Registry& registry() {
  static auto* r = new Registry;
  return *r;
}

Result<std::shared_ptr<DomainMonitors>> monitors_for(hv::DomainManager& m, uint32_t id) {
  auto dom = m.get(id);
  if (!dom) return make_error("domain {} went away", id);
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  // Forget domains that are gone and have no session left.
  std::erase_if(r.domains, [&](const auto& kv) {
    if (m.get(kv.first) == kv.second->dom) return false;
    std::lock_guard l(kv.second->mutex);
    return std::none_of(kv.second->sessions.begin(), kv.second->sessions.end(),
                        [](const auto& s) { return s->state == "connected" || s->state == "waiting"; });
  });
  auto it = r.domains.find(id);
  if (it != r.domains.end() && it->second->dom == dom) return it->second;
  // The hub goes onto the harts while they are stopped at a slice boundary.
  auto paused = introspect::PausedDomain::open(m, id);
  if (!paused) return std::unexpected(paused.error());
  auto dm = std::make_shared<DomainMonitors>();
  dm->dom = dom;
  dm->hub = monitor::Hub::for_machine(dom->machine());
  r.domains[id] = dm;
  return dm;
}

// The running kernel's view (symbols with their KASLR offset, its page tables), read while
// the domain is paused.
struct KernelView {
  introspect::GuestView view;
  uint64_t kernel_satp = 0;
  const introspect::SymbolTable* symbols = nullptr;
  const introspect::LinuxProfile* profile = nullptr;
  std::optional<introspect::LinuxGuest> linux_guest;
};

Result<KernelView> kernel_view(hv::DomainManager& m, uint32_t id, DomainMonitors& dm) {
  auto paused = introspect::PausedDomain::open(m, id);
  if (!paused) return std::unexpected(paused.error());
  std::lock_guard lock(dm.mutex);
  if (!dm.kernel) {
    auto info = introspect::KernelInfo::load(introspect::kernel_files_for(dm.dom->config()));
    if (!info) return std::unexpected(info.error());
    dm.kernel = std::make_unique<introspect::KernelInfo>(std::move(*info));
  }
  const auto vcpus = paused->vcpus();
  auto guest = introspect::LinuxGuest::attach(paused->view(), dm.kernel->symbols, dm.kernel->profile, vcpus);
  if (!guest) return std::unexpected(guest.error());
  KernelView kv{paused->view(), guest->kernel_satp(), &dm.kernel->symbols, &dm.kernel->profile,
                std::move(*guest)};
  return kv;
}

Result<uint64_t> number(const Json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end()) return make_error("missing \"{}\"", key);
  return monitor::number_from_json(*it, key);
}

struct Range {
  uint64_t gpa = 0, length = 0;
  Json describe;
};
struct Breakpoint {
  uint64_t gpa = 0, gva = 0;
  Json describe;
};

// Guest-virtual [va, va+len) through the kernel's tables, as guest-physical page runs.
Result<std::vector<Range>> physical_ranges(const KernelView& kv, uint64_t va, uint64_t len,
                                           const Json& what) {
  std::vector<Range> out;
  for (uint64_t a = va & ~riscv::kPageMask; a < va + len; a += riscv::kPageSize) {
    auto t = kv.view.translate(kv.kernel_satp, a);
    if (!t) return std::unexpected(t.error());
    if (!out.empty() && out.back().gpa + out.back().length == t->pa) {
      out.back().length += riscv::kPageSize;
    } else {
      out.push_back({t->pa, riscv::kPageSize, what});
    }
  }
  return out;
}

// Everything a monitor-open asks for, resolved before the answer goes out (so mistakes are
// reported to the caller, not discovered later).
struct Plan {
  std::vector<Subscription> subs;
  std::vector<Range> protect;
  uint8_t rights = riscv::p2m::kRead | riscv::p2m::kExec;
  std::vector<Breakpoint> breakpoints;
  std::vector<uint32_t> single_step;
  std::chrono::milliseconds timeout = RemoteSession::kDefaultTimeout;
  bool shm = false;  // "transport": "shm" (monitor/shm_channel.h)
  std::optional<KernelView> kernel;
};

Result<Plan> make_plan(hv::DomainManager& m, uint32_t id, DomainMonitors& dm, const Json& req) {
  Plan plan;
  auto kernel = [&]() -> Result<KernelView*> {
    if (!plan.kernel) {
      auto kv = kernel_view(m, id, dm);
      if (!kv) return std::unexpected(kv.error());
      plan.kernel = std::move(*kv);
    }
    return &*plan.kernel;
  };
  if (auto it = req.find("events"); it != req.end()) {
    if (!it->is_array()) return make_error("\"events\" must be a list of subscriptions");
    for (const Json& e : *it) {
      auto s = monitor::subscription_from_json(e);
      if (!s) return std::unexpected(s.error());
      plan.subs.push_back(*s);
    }
  }
  if (auto it = req.find("pid"); it != req.end()) {
    auto pid = monitor::number_from_json(*it, "pid");
    if (!pid) return std::unexpected(pid.error());
    auto kv = kernel();
    if (!kv) return std::unexpected(kv.error());
    auto satp = (*kv)->linux_guest->satp_of_pid(static_cast<int32_t>(*pid));
    if (!satp) return std::unexpected(satp.error());
    for (auto& s : plan.subs) s.filter.satp = *satp;
  }
  if (auto it = req.find("rights"); it != req.end()) {
    auto r = monitor::rights_from_string(it->is_string() ? it->get<std::string>() : "?");
    if (!r) return std::unexpected(r.error());
    plan.rights = *r;
  }
  auto symbol = [&](const std::string& name) -> Result<uint64_t> {
    auto kv = kernel();
    if (!kv) return std::unexpected(kv.error());
    return (*kv)->symbols->address_of(name);
  };
  auto add_virtual = [&](uint64_t va, uint64_t len, Json what) -> Result<void> {
    auto kv = kernel();
    if (!kv) return std::unexpected(kv.error());
    auto ranges = physical_ranges(**kv, va, len, what);
    if (!ranges) return std::unexpected(ranges.error());
    plan.protect.insert(plan.protect.end(), ranges->begin(), ranges->end());
    return {};
  };
  std::vector<Json> protect;
  if (auto it = req.find("protect"); it != req.end() && it->is_array())
    protect.assign(it->begin(), it->end());
  if (req.value("kernel_text", false)) {
    protect.push_back({{"from", "_stext"}, {"to", "_etext"}});
    protect.push_back({{"symbol", "sys_call_table"}, {"length", kLinuxSyscalls * 8}});
  }
  for (const Json& p : protect) {
    if (!p.is_object()) return make_error("each \"protect\" entry must be an object");
    if (p.contains("from")) {
      auto from = symbol(p.value("from", "")), to = symbol(p.value("to", ""));
      if (!from) return std::unexpected(from.error());
      if (!to) return std::unexpected(to.error());
      if (*to <= *from)
        return make_error("protect: {} is not above {}", p.value("to", ""), p.value("from", ""));
      if (auto r = add_virtual(*from, *to - *from, p); !r) return std::unexpected(r.error());
      continue;
    }
    auto len = number(p, "length");
    if (!len || *len == 0)
      return make_error("each \"protect\" entry needs a non-zero \"length\" (or from/to symbols)");
    if (p.contains("gpa")) {
      auto gpa = number(p, "gpa");
      if (!gpa) return std::unexpected(gpa.error());
      if (!dm.hub->memory().contains(*gpa, *len))
        return make_error("protect: {:#x}+{:#x} is not guest RAM", *gpa, *len);
      plan.protect.push_back({*gpa, *len, p});
      continue;
    }
    auto va = p.contains("symbol") ? symbol(p.value("symbol", "")) : number(p, "va");
    if (!va) return std::unexpected(va.error());
    if (auto r = add_virtual(*va, *len, p); !r) return std::unexpected(r.error());
  }
  if (auto it = req.find("breakpoints"); it != req.end()) {
    if (!it->is_array()) return make_error("\"breakpoints\" must be a list");
    for (const Json& b : *it) {
      if (!b.is_object()) return make_error("each breakpoint must be an object");
      if (b.contains("gpa")) {
        auto gpa = number(b, "gpa");
        if (!gpa) return std::unexpected(gpa.error());
        plan.breakpoints.push_back({*gpa, 0, b});
        continue;
      }
      auto va = b.contains("symbol") ? symbol(b.value("symbol", "")) : number(b, "va");
      if (!va) return std::unexpected(va.error());
      auto kv = kernel();
      if (!kv) return std::unexpected(kv.error());
      auto t = (*kv)->view.translate((*kv)->kernel_satp, *va);
      if (!t) return std::unexpected(t.error());
      Json d = b;
      d["va"] = *va;
      d["gpa"] = t->pa;
      plan.breakpoints.push_back({t->pa, *va, d});
    }
  }
  if (auto it = req.find("singlestep"); it != req.end() && it->is_array()) {
    for (const Json& v : *it) {
      auto n = monitor::number_from_json(v, "singlestep");
      if (!n || *n >= dm.hub->vcpu_count()) return make_error("singlestep: no vCPU {}", v.dump());
      plan.single_step.push_back(static_cast<uint32_t>(*n));
    }
  }
  // System call events carry the pid and comm when the kernel can be read (best effort).
  const bool user_events = std::any_of(plan.subs.begin(), plan.subs.end(), [](const Subscription& s) {
    return s.type == monitor::EventType::kSyscall || s.type == monitor::EventType::kSyscallReturn;
  });
  if (user_events && !plan.kernel) (void)kernel();
  if (auto it = req.find("timeout_ms"); it != req.end()) {
    auto t = monitor::number_from_json(*it, "timeout_ms");
    if (!t || *t < 10 || *t > 600'000) return make_error("timeout_ms must be 10..600000");
    plan.timeout = std::chrono::milliseconds(*t);
  }
  if (auto it = req.find("transport"); it != req.end()) {
    const std::string t = it->is_string() ? it->get<std::string>() : "";
    if (t != "shm" && t != "socket") return make_error("\"transport\" must be \"socket\" or \"shm\"");
    plan.shm = t == "shm";
  }
  return plan;
}

// A listening socket in the abstract namespace, named after this vigild, the session and a
// random tag (nothing to clean up on disk; the peer's uid is checked on accept).
Result<std::pair<int, std::string>> listen_abstract(uint64_t session) {
  uint64_t tag = 0;
  if (::getrandom(&tag, sizeof(tag), 0) != sizeof(tag))
    return make_error("cannot get random bytes for a socket name");
  const std::string name = fmt::format("vigil-monitor-{}-{}-{:016x}", ::getpid(), session, tag);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return make_error("cannot create a socket: {}", std::strerror(errno));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path + 1, name.data(), name.size());
  const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 || ::listen(fd, 1) != 0) {
    const int e = errno;
    ::close(fd);
    return make_error("cannot listen on a monitor socket: {}", std::strerror(e));
  }
  return std::pair{fd, name};
}

// Waits for the one client of a session; -1 if none came in time.
int accept_client(int listen_fd) {
  const auto until = std::chrono::steady_clock::now() + kAcceptTimeout;
  while (std::chrono::steady_clock::now() < until) {
    pollfd p{listen_fd, POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;
    const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    ucred cred{};
    socklen_t len = sizeof(cred);
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 &&
        (cred.uid == 0 || cred.uid == ::geteuid())) {
      return fd;
    }
    ::close(fd);  // someone else's process: not this session's client
  }
  return -1;
}

// Adds "pid" and "comm" to user-mode events: Linux keeps `current` in sscratch while in
// U-mode (arch/riscv/kernel/entry.S), and the profile gives task_struct's tgid and comm.
std::function<void(const monitor::Event&, std::string&)> pid_annotator(const Plan& plan) {
  if (!plan.kernel) return {};
  const introspect::GuestView view = plan.kernel->view;
  const uint64_t satp = plan.kernel->kernel_satp;
  const uint64_t tgid = plan.kernel->profile->task_struct.tgid.offset;
  const uint64_t comm = plan.kernel->profile->task_struct.comm.offset;
  return [view, satp, tgid, comm](const monitor::Event& ev, std::string& out) {
    if (ev.priv != riscv::Priv::U || ev.sscratch == 0) return;
    auto pid = view.read_virt_u32(satp, ev.sscratch + tgid);
    if (!pid) return;
    fmt::format_to(std::back_inserter(out), FMT_COMPILE(R"(,"pid":{})"), static_cast<int32_t>(*pid));
    // comm is the guest's bytes: quoted and escaped, never pasted.
    auto name = view.read_virt_string(satp, ev.sscratch + comm, 16);
    if (name) {
      out += ",\"comm\":";
      monitor::append_json_string(*name, out);
    }
  };
}

// Once a stopped domain is held by nothing but its DomainMonitors (the manager has dropped
// it, so the scheduler has let go of its vCPUs), forgets it: its RAM goes with the hub.
void forget_when_gone(uint32_t id, const std::shared_ptr<DomainMonitors>& dm) {
  for (int i = 0; i < 200 && dm->dom.use_count() > 1; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  if (dm->dom.use_count() > 1) return;  // still in use: the next monitor-open or monitor-list prunes it
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  auto it = r.domains.find(id);
  if (it == r.domains.end() || it->second != dm) return;
  std::lock_guard l(dm->mutex);
  const bool live = std::any_of(dm->sessions.begin(), dm->sessions.end(), [](const auto& s) {
    return s->state == "connected" || s->state == "waiting";
  });
  if (!live) r.domains.erase(it);
}

void run_session(uint32_t id, std::shared_ptr<DomainMonitors> dm, std::shared_ptr<SessionRecord> rec,
                 int listen_fd, Plan plan) {
  const int fd = accept_client(listen_fd);
  ::close(listen_fd);
  if (fd < 0) {
    std::lock_guard lock(dm->mutex);
    rec->state = "expired";
    rec->end_reason = "no client connected in time";
    return;
  }
  RemoteSession::Options options{.timeout = plan.timeout, .annotate = pid_annotator(plan), .shm = plan.shm};
  auto session = RemoteSession::start(*dm->hub, fd, rec->name, std::move(options));
  {
    std::lock_guard lock(dm->mutex);
    rec->state = "connected";
    rec->session = session;
  }
  monitor::Monitor& mon = session->monitor();
  for (const Range& r : plan.protect) mon.set_rights(r.gpa, r.length, plan.rights);
  for (const Breakpoint& b : plan.breakpoints) mon.add_breakpoint(b.gpa, b.gva);
  for (const Subscription& s : plan.subs) mon.subscribe(s);
  for (uint32_t v : plan.single_step) mon.set_single_step(v, true);
  // The channel's memfd goes with the "ready" line; a client that asked for shared memory
  // and cannot have it is told why and stays on the socket.
  Json ready = {{"ready", true}, {"session", rec->id}, {"transport", session->shm_fd() >= 0 ? "shm" : "socket"}};
  if (plan.shm && session->shm_fd() < 0) ready["shm_error"] = session->shm_error();
  if (session->shm_fd() >= 0) {
    std::lock_guard lock(dm->mutex);
    rec->transport = "shm";
  }
  session->send(ready, session->shm_fd());
  session->serve([&] { return !dm->dom->outcome().has_value() && !dm->detaching.load(); });
  {
    std::lock_guard lock(dm->mutex);
    rec->state = "closed";
    rec->end_reason = dm->detaching.load() ? dm->detach_reason : session->end_reason();
    rec->events = mon.delivered();
    rec->lost = session->lost();
  }
  session.reset();
  plan.kernel.reset();
  if (dm->dom->outcome()) forget_when_gone(id, dm);
}

Json open_session(hv::DomainManager& m, const Json& req) {
  auto id = request_domain(m, req);
  if (!id) return error_json(id.error().message);
  auto dm = monitors_for(m, *id);
  if (!dm) return error_json(dm.error().message);
  auto plan = make_plan(m, *id, **dm, req);
  if (!plan) return error_json(plan.error().message);
  uint64_t session_id;
  {
    std::lock_guard lock(registry().mutex);
    session_id = registry().next_session++;
  }
  auto sock = listen_abstract(session_id);
  if (!sock) return error_json(sock.error().message);
  auto rec = std::make_shared<SessionRecord>();
  rec->id = session_id;
  rec->name = req.value("name", fmt::format("monitor-{}", session_id));
  Json answer = {{"ok", true}, {"id", *id}, {"session", session_id}, {"socket", sock->second}};
  answer["protected"] = Json::array();
  for (const Range& r : plan->protect)
    answer["protected"].push_back({{"gpa", r.gpa}, {"length", r.length}, {"for", r.describe}});
  answer["breakpoints"] = Json::array();
  for (const Breakpoint& b : plan->breakpoints) answer["breakpoints"].push_back(b.describe);
  {
    std::lock_guard lock((*dm)->mutex);
    (*dm)->sessions.push_back(rec);
  }
  std::thread(run_session, *id, *dm, rec, sock->first, std::move(*plan)).detach();
  return answer;
}

}  // namespace

void detach_monitors(hv::DomainManager& m, uint32_t id, const std::string& reason) {
  std::shared_ptr<DomainMonitors> dm;
  {
    std::lock_guard lock(registry().mutex);
    auto it = registry().domains.find(id);
    if (it != registry().domains.end() && it->second->dom == m.get(id)) dm = it->second;
  }
  if (!dm) return;
  std::vector<std::shared_ptr<RemoteSession>> live;
  {
    std::lock_guard lock(dm->mutex);
    dm->detach_reason = reason;
    for (const auto& rec : dm->sessions) {
      if (auto s = rec->session.lock(); s && !s->dead()) live.push_back(std::move(s));
    }
  }
  if (live.empty()) return;
  for (const auto& s : live) s->send(Json{{"event", "detached"}, {"reason", reason}});
  dm->detaching.store(true);
  // Serving threads look every 10 ms; a session that does not end within 2 s is ended by
  // the domain's own teardown.
  for (int i = 0; i < 200; ++i) {
    if (std::all_of(live.begin(), live.end(), [](const auto& s) { return s->dead(); })) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  live.clear();
  dm->detaching.store(false);
}

namespace {

Json list_sessions(hv::DomainManager& m, const Json& req) {
  auto id = request_domain(m, req);
  if (!id) return error_json(id.error().message);
  Json out = Json::array();
  std::shared_ptr<DomainMonitors> dm;
  {
    std::lock_guard lock(registry().mutex);
    auto it = registry().domains.find(*id);
    if (it != registry().domains.end() && it->second->dom == m.get(*id)) dm = it->second;
  }
  if (dm) {
    std::lock_guard lock(dm->mutex);
    for (const auto& s : dm->sessions) {
      Json j = {{"session", s->id},
                {"name", s->name},
                {"state", s->state},
                {"transport", s->transport},
                {"events", s->events},
                {"lost", s->lost}};
      if (auto live = s->session.lock()) {
        j["events"] = live->monitor().delivered();
        j["lost"] = live->lost();
      }
      if (!s->end_reason.empty()) j["end_reason"] = s->end_reason;
      out.push_back(j);
    }
  }
  return Json{{"ok", true}, {"id", *id}, {"sessions", out}};
}

}  // namespace

std::vector<MonitorTotals> monitor_totals(hv::DomainManager& m) {
  std::vector<std::pair<uint32_t, std::shared_ptr<DomainMonitors>>> doms;
  {
    std::lock_guard lock(registry().mutex);
    for (const auto& [id, dm] : registry().domains)
      if (dm->dom == m.get(id)) doms.emplace_back(id, dm);
  }
  std::vector<MonitorTotals> out;
  for (const auto& [id, dm] : doms) {
    MonitorTotals t{.domain = id};
    std::lock_guard lock(dm->mutex);
    for (const auto& s : dm->sessions) {
      if (auto live = s->session.lock()) {
        t.events += live->monitor().delivered();
        t.lost += live->lost();
        t.connected += s->state == "connected";
      } else {
        t.events += s->events;
        t.lost += s->lost;
      }
    }
    out.push_back(t);
  }
  return out;
}

std::optional<Json> handle_monitor_request(hv::DomainManager& manager, const std::string& op,
                                           const Json& req) {
  if (op == "monitor-open") return open_session(manager, req);
  if (op == "monitor-list") return list_sessions(manager, req);
  return std::nullopt;
}

Result<std::shared_ptr<monitor::Hub>> domain_hub(hv::DomainManager& manager, uint32_t id) {
  auto dm = monitors_for(manager, id);
  if (!dm) return std::unexpected(dm.error());
  return std::shared_ptr<monitor::Hub>(*dm, (*dm)->hub.get());
}

}  // namespace vigil::toolstack
