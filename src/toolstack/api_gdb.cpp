#include "toolstack/api_gdb.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "base/sandbox.h"
#include "introspect/guest_view.h"
#include "monitor/monitor.h"
#include "toolstack/api_monitor.h"
#include "toolstack/gdb_stub.h"

namespace vigil::toolstack {

namespace {

using gdb::StopReason;

struct Watchpoint {
  gdb::Watch type;
  uint64_t va, len, gpa;
};

// One gdb connection's view of a domain.
class DomainTarget final : public gdb::Target {
 public:
  static Result<std::unique_ptr<DomainTarget>> attach(hv::DomainManager& m, uint32_t id) {
    auto dom = m.get(id);
    if (!dom) return make_error("domain {} went away", id);
    auto hub = domain_hub(m, id);
    if (!hub) return std::unexpected(hub.error());
    const int efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd < 0) return make_error("gdb: eventfd: {}", std::strerror(errno));
    std::unique_ptr<DomainTarget> t(new DomainTarget(m, id, std::move(dom), std::move(*hub), efd));
    t->m_monitor = t->m_hub->attach("gdb", [p = t.get()](const monitor::Event& e) { return p->on_event(e); });
    t->m_monitor->subscribe({.type = monitor::EventType::kBreakpoint, .sync = true});
    t->m_monitor->subscribe({.type = monitor::EventType::kSingleStep, .sync = true});
    t->m_resume_on_detach = t->m_dom->state() == hv::DomainState::kRunning;
    t->stop_all();
    return t;
  }

  ~DomainTarget() override {
    detach();
    ::close(m_efd);
  }

  unsigned vcpu_count() override { return m_dom->machine().hart_count(); }

  std::optional<uint64_t> read_register(unsigned vcpu, unsigned reg) override {
    if (vcpu >= vcpu_count()) return std::nullopt;
    riscv::Hart& h = m_dom->machine().hart(vcpu);
    if (reg < 32) return reg == 0 ? 0 : h.x[reg];
    if (reg == gdb::kRegPc) return h.pc;
    if (reg >= gdb::kRegF0 && reg < gdb::kRegF0 + 32) return h.fp.f[reg - gdb::kRegF0];
    if (reg == gdb::kRegFflags) return h.fp.fcsr & 0x1f;
    if (reg == gdb::kRegFrm) return (h.fp.fcsr >> 5) & 7;
    if (reg == gdb::kRegFcsr) return h.fp.fcsr & 0xff;
    if (reg == gdb::kRegPriv) return static_cast<uint64_t>(h.priv);
    return std::nullopt;
  }

  bool write_register(unsigned vcpu, unsigned reg, uint64_t value) override {
    if (vcpu >= vcpu_count()) return false;
    riscv::Hart& h = m_dom->machine().hart(vcpu);
    if (reg == 0) return true;  // x0 stays zero
    if (reg < 32) {
      h.x[reg] = value;
    } else if (reg == gdb::kRegPc) {
      h.pc = value & ~1ull;  // pc is always 2-byte aligned (C extension)
    } else if (reg >= gdb::kRegF0 && reg < gdb::kRegF0 + 32) {
      h.fp.f[reg - gdb::kRegF0] = value;
    } else if (reg == gdb::kRegFflags) {
      h.fp.fcsr = (h.fp.fcsr & ~0x1fu) | static_cast<uint32_t>(value & 0x1f);
    } else if (reg == gdb::kRegFrm) {
      h.fp.fcsr = (h.fp.fcsr & ~0xe0u) | static_cast<uint32_t>((value & 7) << 5);
    } else if (reg == gdb::kRegFcsr) {
      h.fp.fcsr = static_cast<uint32_t>(value & 0xff);
    } else {
      return false;  // priv is read-only here: a mode switch without a trap would break the hart
    }
    return true;
  }

  Result<void> read_memory(unsigned vcpu, uint64_t va, std::span<uint8_t> out) override {
    return view().read_virt(satp_of(vcpu), va, out);
  }

  Result<void> write_memory(unsigned vcpu, uint64_t va, std::span<const uint8_t> data) override {
    if (auto r = view().write_virt(satp_of(vcpu), va, data); !r) return r;
    // The bytes may be code some vCPU has decoded or translated: every vCPU fences first.
    for (unsigned v = 0; v < vcpu_count(); ++v) m_dom->machine().hart(v).request(riscv::Hart::kReqFenceI);
    return {};
  }

  Result<void> insert_breakpoint(unsigned vcpu, uint64_t va) override {
    auto t = view().translate(satp_of(vcpu), va);
    if (!t) return std::unexpected(t.error());
    if (!m_monitor->add_breakpoint(t->pa, va)) {
      return make_error("guest-physical {:#x} (virtual {:#x}) is not 2-byte aligned guest RAM", t->pa, va);
    }
    std::lock_guard lock(m_mutex);
    m_breakpoints[va] = t->pa;
    return {};
  }

  Result<void> remove_breakpoint(uint64_t va) override {
    uint64_t gpa = 0;
    {
      std::lock_guard lock(m_mutex);
      auto it = m_breakpoints.find(va);
      if (it == m_breakpoints.end()) return make_error("no breakpoint at {:#x}", va);
      gpa = it->second;
      m_breakpoints.erase(it);
      // Another address may name the same physical instruction: keep it while one does.
      for (const auto& [v, p] : m_breakpoints) {
        if (p == gpa) return {};
      }
    }
    m_monitor->remove_breakpoint(gpa);
    return {};
  }

  Result<void> insert_watchpoint(unsigned vcpu, gdb::Watch type, uint64_t va, uint64_t len) override {
    if (len == 0 || ((va ^ (va + len - 1)) >> riscv::kPageShift) != 0) {
      return make_error("watchpoint {:#x}+{} crosses a page boundary (one page per watchpoint)", va, len);
    }
    auto t = view().translate(satp_of(vcpu), va);
    if (!t) return std::unexpected(t.error());
    if (!m_dom->machine().memory().contains(t->pa, len)) {
      return make_error("watchpoint {:#x} is at guest-physical {:#x}, not guest RAM", va, t->pa);
    }
    {
      std::lock_guard lock(m_mutex);
      for (const Watchpoint& w : m_watches) {
        if (w.type == type && w.va == va && w.len == len) return {};  // gdb re-inserts after steps
      }
      m_watches.push_back({type, va, len, t->pa});
    }
    sync_watch_pages();
    return {};
  }

  Result<void> remove_watchpoint(gdb::Watch type, uint64_t va, uint64_t len) override {
    {
      std::lock_guard lock(m_mutex);
      const size_t n = std::erase_if(m_watches, [&](const Watchpoint& w) {
        return w.type == type && w.va == va && w.len == len;
      });
      if (n == 0) return make_error("no watchpoint at {:#x}+{}", va, len);
    }
    sync_watch_pages();
    return {};
  }

  Result<void> resume(const std::vector<bool>& run, std::optional<unsigned> step) override {
    if (step && *step >= vcpu_count()) return make_error("no vCPU {}", *step);
    if (run.size() != vcpu_count()) return make_error("resume: {} vCPUs given, the domain has {}", run.size(), vcpu_count());
    drain();
    for (unsigned v = 0; v < vcpu_count(); ++v) {
      m_monitor->set_single_step(v, step && *step == v);
      m_manager.scheduler().hold_vcpu(m_id, v, !run[v]);
    }
    {
      std::lock_guard lock(m_mutex);
      m_pending.reset();
      m_run = Run::kRunning;
    }
    if (m_dom->state() == hv::DomainState::kPaused) {
      if (auto r = m_manager.unpause(m_id); !r) return r;
    }
    return {};
  }

  StopReason interrupt() override {
    std::optional<StopReason> raced;
    {
      std::lock_guard lock(m_mutex);
      m_run = Run::kStopping;
    }
    stop_all();
    drain();
    {
      std::lock_guard lock(m_mutex);
      m_run = Run::kStopped;
      raced = std::move(m_pending);
      m_pending.reset();
    }
    // A breakpoint that came at the same moment is the better answer.
    return raced.value_or(StopReason{StopReason::Kind::kSignal, 0, 2});
  }

  int stop_fd() override { return m_efd; }

  std::optional<StopReason> take_stop() override {
    drain();
    {
      std::lock_guard lock(m_mutex);
      if (!m_pending) return std::nullopt;
    }
    // vCPUs that reach a breakpoint meanwhile wait at it (kStopping) until all have stopped.
    stop_all();
    std::lock_guard lock(m_mutex);
    m_run = Run::kStopped;
    std::optional<StopReason> stop = std::move(m_pending);
    m_pending.reset();
    return stop;
  }

  std::optional<StopReason> ended() override {
    const hv::DomainState s = m_dom->state();
    if (s == hv::DomainState::kShutdown) return StopReason{StopReason::Kind::kExited, 0, 0, 0};
    if (s == hv::DomainState::kCrashed) return StopReason{StopReason::Kind::kKilled, 0, 11};
    if (m_manager.get(m_id) != m_dom) return StopReason{StopReason::Kind::kKilled, 0, 9};
    return std::nullopt;
  }

  void detach() override {
    if (!m_monitor) return;
    {
      std::lock_guard lock(m_mutex);
      m_run = Run::kStopped;
      m_breakpoints.clear();
      m_watches.clear();
    }
    {
      std::lock_guard lock(m_watch_mutex);
      m_watch_pages.clear();
    }
    m_monitor->detach();  // its breakpoints and steps go with it
    m_monitor.reset();
    for (unsigned v = 0; v < vcpu_count(); ++v) m_manager.scheduler().hold_vcpu(m_id, v, false);
    if (m_resume_on_detach && m_manager.get(m_id) == m_dom && m_dom->state() == hv::DomainState::kPaused) {
      (void)m_manager.unpause(m_id);
    }
  }

 private:
  DomainTarget(hv::DomainManager& m, uint32_t id, std::shared_ptr<hv::Domain> dom,
               std::shared_ptr<monitor::Hub> hub, int efd)
      : m_manager(m), m_id(id), m_dom(std::move(dom)), m_hub(std::move(hub)), m_efd(efd) {}

  introspect::GuestView view() { return introspect::GuestView(m_dom->machine().memory()); }

  // The page tables a vCPU's addresses go through: none in M-mode.
  uint64_t satp_of(unsigned vcpu) {
    if (vcpu >= vcpu_count()) return 0;
    riscv::Hart& h = m_dom->machine().hart(vcpu);
    return h.priv == riscv::Priv::M ? 0 : h.satp();
  }

  void stop_all() {
    if (m_dom->state() == hv::DomainState::kRunning) (void)m_manager.pause(m_id);
  }

  void drain() {
    uint64_t v;
    while (::read(m_efd, &v, sizeof(v)) == sizeof(v)) {
    }
  }

  // The P2m side of the watchpoints: each watched page loses the rights its watchpoints
  // watch, and gets its own memory-access subscription, so other pages stay fast and a
  // page being unwatched never loses its listener while its rights are still reduced.
  void sync_watch_pages() {
    std::map<uint64_t, uint8_t> want;  // page gpa -> rights
    {
      std::lock_guard lock(m_mutex);
      for (const Watchpoint& w : m_watches) {
        uint8_t& rights = want.try_emplace(w.gpa & ~riscv::kPageMask, riscv::p2m::kAll).first->second;
        if (w.type != gdb::Watch::kRead) rights &= static_cast<uint8_t>(~riscv::p2m::kWrite);
        if (w.type != gdb::Watch::kWrite) rights &= static_cast<uint8_t>(~riscv::p2m::kRead);
      }
    }
    std::lock_guard lock(m_watch_mutex);
    for (const auto& [page, rights] : want) {
      auto it = m_watch_pages.find(page);
      if (it == m_watch_pages.end()) {
        m_monitor->subscribe({.type = monitor::EventType::kMemAccess, .sync = true,
                              .filter = {.lo = page, .hi = page + riscv::kPageSize - 1}});
      }
      if (it == m_watch_pages.end() || it->second != rights) m_monitor->set_rights(page, riscv::kPageSize, rights);
    }
    for (auto it = m_watch_pages.begin(); it != m_watch_pages.end();) {
      if (want.contains(it->first)) {
        ++it;
        continue;
      }
      m_monitor->set_rights(it->first, riscv::kPageSize, riscv::p2m::kAll);
      m_monitor->unsubscribe(monitor::EventType::kMemAccess, it->first);
      it = m_watch_pages.erase(it);
    }
    for (const auto& [page, rights] : want) m_watch_pages[page] = rights;
  }

  // The watchpoint an access (guest-physical) hits, if any: locked by the caller.
  const Watchpoint* watch_hit(const monitor::Event& e) const {
    if (e.access == riscv::AccessType::kFetch) return nullptr;
    for (const Watchpoint& w : m_watches) {
      const bool kind = w.type == gdb::Watch::kAccess ||
                        (w.type == gdb::Watch::kWrite) == (e.access == riscv::AccessType::kWrite);
      if (kind && e.gpa < w.gpa + w.len && w.gpa < e.gpa + e.size) return &w;
    }
    return nullptr;
  }

  // On the vCPU thread that hit a breakpoint or a watchpoint or finished a step.
  monitor::Response on_event(const monitor::Event& e) {
    monitor::Response r;
    if (e.type == monitor::EventType::kSingleStep) r.single_step = false;
    std::lock_guard lock(m_mutex);
    StopReason stop{StopReason::Kind::kSignal, e.vcpu, 5};
    if (e.type == monitor::EventType::kMemAccess) {
      // Another variable on a watched page: the access goes ahead, once.
      const Watchpoint* w = watch_hit(e);
      if (w == nullptr) return r;
      stop.watch = w->type;
      stop.watch_addr = w->va + (e.gpa > w->gpa ? e.gpa - w->gpa : 0);
    }
    switch (m_run) {
      case Run::kRunning: {
        m_run = Run::kStopping;
        m_pending = stop;
        m_manager.scheduler().request_pause(m_id);
        const uint64_t one = 1;
        [[maybe_unused]] const ssize_t n = ::write(m_efd, &one, sizeof(one));
        r.hold = true;
        break;
      }
      case Run::kStopping:
        // Another vCPU's stop is on its way: this one waits at its breakpoint too.
        r.hold = true;
        break;
      case Run::kStopped:
        // gdb has the domain stopped and someone else resumed it (vigil unpause): let it run.
        break;
    }
    return r;
  }

  enum class Run : uint8_t { kStopped, kRunning, kStopping };

  hv::DomainManager& m_manager;
  uint32_t m_id;
  std::shared_ptr<hv::Domain> m_dom;
  std::shared_ptr<monitor::Hub> m_hub;
  std::shared_ptr<monitor::Monitor> m_monitor;
  int m_efd;
  bool m_resume_on_detach = false;
  std::mutex m_mutex;  // guards what follows (vCPU threads and the session thread)
  Run m_run = Run::kStopped;
  std::optional<StopReason> m_pending;
  std::map<uint64_t, uint64_t> m_breakpoints;  // va -> gpa
  std::vector<Watchpoint> m_watches;
  std::mutex m_watch_mutex;                    // serializes sync_watch_pages
  std::map<uint64_t, uint8_t> m_watch_pages;   // page gpa -> rights set (m_watch_mutex)
};

// A listener for one domain.
struct Server {
  uint32_t domain = 0;
  std::string name;
  std::string address;
  uint16_t port = 0;
  int fd = -1;
  std::atomic<bool> quit{false};
  std::atomic<bool> client{false};
  std::atomic<bool> done{false};
  std::thread thread;
};

struct Servers {
  std::mutex mutex;
  std::map<uint32_t, std::shared_ptr<Server>> by_domain;
};
// Never destroyed: server threads may still run while vigild exits.
Servers& servers() {
  static auto* s = new Servers;
  return *s;
}

void serve(hv::DomainManager& m, std::shared_ptr<Server> s) {
  sandbox::restrict_thread_or_abort(sandbox::ThreadClass::kApi);
  auto dom = m.get(s->domain);
  auto alive = [&] { return !s->quit && dom && m.get(s->domain) == dom; };
  while (alive()) {
    pollfd p{s->fd, POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;
    const int c = ::accept4(s->fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;
    const int one = 1;
    ::setsockopt(c, IPPROTO_TCP, 1 /* TCP_NODELAY */, &one, sizeof(one));
    auto target = DomainTarget::attach(m, s->domain);
    if (!target) {
      spdlog::warn("gdb: domain {}: {}", s->domain, target.error().message);
      ::close(c);
      continue;
    }
    spdlog::info("gdb: a debugger attached to domain {} ({}) on {}:{}", s->domain, s->name, s->address, s->port);
    s->client = true;
    {
      gdb::Session session(**target, c, StopReason{StopReason::Kind::kSignal, 0, 5});
      session.run([&] { return s->quit.load(); }, s->fd);
    }
    target->reset();
    s->client = false;
    ::close(c);
    spdlog::info("gdb: the debugger left domain {} ({})", s->domain, s->name);
  }
  ::close(s->fd);
  s->done = true;
}

Json start_server(hv::DomainManager& m, uint32_t id, const Json& req) {
  std::string address = "127.0.0.1";
  uint64_t port = 0;
  if (auto it = req.find("address"); it != req.end()) {
    if (!it->is_string()) return error_json("\"address\" must be an IPv4 address string");
    address = it->get<std::string>();
  }
  if (auto it = req.find("port"); it != req.end()) {
    if (!it->is_number_unsigned() || it->get<uint64_t>() > 65535) return error_json("\"port\" must be 0-65535");
    port = it->get<uint64_t>();
  }
  auto dom = m.get(id);
  if (!dom) return error_json(fmt::format("domain {} went away", id));
  Servers& all = servers();
  std::lock_guard lock(all.mutex);
  std::erase_if(all.by_domain, [](const auto& kv) {
    if (!kv.second->done) return false;
    kv.second->thread.join();
    return true;
  });
  if (auto it = all.by_domain.find(id); it != all.by_domain.end()) {
    return error_json(fmt::format("domain {} already has a gdbserver on {}:{}", dom->name(), it->second->address,
                                  it->second->port));
  }
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  if (::inet_pton(AF_INET, address.c_str(), &sa.sin_addr) != 1) {
    return error_json(fmt::format("gdbserver: '{}' is not an IPv4 address", address));
  }
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return error_json(fmt::format("gdbserver: socket: {}", std::strerror(errno)));
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0 || ::listen(fd, 2) != 0) {
    const int err = errno;
    ::close(fd);
    return error_json(fmt::format("gdbserver: cannot listen on {}:{}: {}", address, port, std::strerror(err)));
  }
  socklen_t len = sizeof(sa);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  auto s = std::make_shared<Server>();
  s->domain = id;
  s->name = dom->name();
  s->address = address;
  s->port = ntohs(sa.sin_port);
  s->fd = fd;
  s->thread = std::thread(serve, std::ref(m), s);
  all.by_domain[id] = s;
  spdlog::info("gdb: domain {} ({}) listens for gdb on {}:{}", id, s->name, address, s->port);
  return Json{{"ok", true}, {"domain", id}, {"address", address}, {"port", s->port}};
}

}  // namespace

std::optional<Json> handle_gdb_request(hv::DomainManager& m, const std::string& op, const Json& req) {
  if (op != "gdbserver" && op != "gdbserver-stop" && op != "gdbserver-list") return std::nullopt;
  if (op == "gdbserver-list") {
    Json list = Json::array();
    Servers& all = servers();
    std::lock_guard lock(all.mutex);
    for (const auto& [id, s] : all.by_domain) {
      if (s->done) continue;
      list.push_back({{"id", id}, {"domain", s->name}, {"address", s->address}, {"port", s->port},
                      {"client", s->client.load()}});
    }
    return Json{{"ok", true}, {"servers", list}};
  }
  auto id = request_domain(m, req);
  if (!id) return error_json(id.error().message);
  if (op == "gdbserver") return start_server(m, *id, req);
  std::shared_ptr<Server> s;
  {
    Servers& all = servers();
    std::lock_guard lock(all.mutex);
    auto it = all.by_domain.find(*id);
    if (it == all.by_domain.end() || it->second->done) {
      return error_json(fmt::format("domain {} has no gdbserver", *id));
    }
    s = it->second;
    all.by_domain.erase(it);
  }
  s->quit = true;
  s->thread.join();
  return Json{{"ok", true}};
}

}  // namespace vigil::toolstack
