// vigil_introspect: introspection of Vigil domains from Python, through vigild.
//
//   import vigil_introspect as vi
//   d = vi.Domain("web", socket="/tmp/vigil.sock")   # socket: default as for `vigil`
//   for p in d.processes(): print(p.pid, p.ppid, p.comm, hex(p.satp), p.vcpu)
//   t = d.translate(0x10000, pid=42)                 # -> Translation(pa, level, page_size, pte, satp)
//   d.read(d.symbol("linux_banner"), 64)             # bytes (kernel page tables by default)
//   d.read_physical(0x80200000, 16); d.write(va, b"...", pid=42)
//   d.symbol_at(0xffffffff80001eee)                  # -> ("arch_cpu_idle", 8)
//
//   m = vi.Monitor("web", ["syscall"], sync=True, numbers=[64])   # a vm_event session
//   for ev in m:                                     # events as dicts (JSON lines of remote.h)
//       m.answer(ev, "deny", value=-1)               # synchronous ones wait for this
//   m.set_rights(gpa, 4096, "r-x"); m.add_breakpoint(gpa); m.singlestep(0); m.close()
// Every failure raises vigil_introspect.Error with vigild's one-sentence reason.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <variant>

#include "toolstack/introspect_client.h"
#include "toolstack/monitor_client.h"

namespace py = pybind11;
using vigil::toolstack::AddressSpace;
using vigil::toolstack::IntrospectClient;
using vigil::toolstack::Json;
using vigil::toolstack::MonitorClient;

namespace {

// Raised for every failure; set when the module loads.
PyObject* g_error = nullptr;

template <typename T>
T unwrap(vigil::Result<T>&& r) {
  if (!r) {
    PyErr_SetString(g_error, r.error().message.c_str());
    throw py::error_already_set();
  }
  if constexpr (!std::is_void_v<T>) return std::move(*r);
}

std::string default_socket() {
  // Same rule as toolstack::default_socket_path() (api.cpp), which this module does not link.
  if (const char* env = std::getenv("VIGIL_SOCKET"); env && *env) return env;
  if (::geteuid() == 0) return "/run/vigil/vigild.sock";
  return "/tmp/vigil-" + std::to_string(::geteuid()) + "/vigild.sock";
}

AddressSpace space(std::optional<uint64_t> satp, std::optional<int32_t> pid) {
  if (satp && pid) {
    PyErr_SetString(PyExc_ValueError, "give satp or pid, not both");
    throw py::error_already_set();
  }
  return AddressSpace{satp, pid};
}

py::bytes to_bytes(const std::vector<uint8_t>& v) {
  return py::bytes(reinterpret_cast<const char*>(v.data()), v.size());
}

std::vector<uint8_t> from_bytes(const py::bytes& b) {
  const std::string s = b;
  return std::vector<uint8_t>(s.begin(), s.end());
}

py::object to_py(const Json& j) {
  switch (j.type()) {
    case Json::value_t::object: {
      py::dict d;
      for (const auto& [k, v] : j.items()) d[py::str(k)] = to_py(v);
      return d;
    }
    case Json::value_t::array: {
      py::list l;
      for (const Json& v : j) l.append(to_py(v));
      return l;
    }
    case Json::value_t::string:
      return py::str(j.get_ref<const std::string&>());
    case Json::value_t::boolean:
      return py::bool_(j.get<bool>());
    case Json::value_t::number_unsigned:
      return py::int_(j.get<uint64_t>());
    case Json::value_t::number_integer:
      return py::int_(j.get<int64_t>());
    case Json::value_t::number_float:
      return py::float_(j.get<double>());
    default:
      return py::none();
  }
}

// Python values (dicts, lists, str, int, bool, None) as JSON, through the json module: what
// a caller passes through to vigild (subscriptions, answer fields) is checked there.
Json from_py(const py::handle& o) {
  const std::string text = py::module_::import("json").attr("dumps")(o).cast<std::string>();
  return Json::parse(text);
}

// A monitor session (toolstack/monitor_client.h). Blocking socket reads and writes run
// without the GIL, in slices short enough to let Ctrl-C through. One thread reads at a time;
// another may answer events meanwhile.
class PyMonitor {
 public:
  PyMonitor(const std::string& domain, const std::string& socket, Json request) {
    IntrospectClient control(socket, domain);
    request["op"] = "monitor-open";
    if (!request.contains("transport")) request["transport"] = "shm";
    std::optional<vigil::Result<MonitorClient>> client;
    {
      py::gil_scoped_release nogil;
      auto answer = control.call(request);
      if (answer)
        client.emplace(MonitorClient::attach(std::move(*answer)));
      else
        client.emplace(std::unexpected(answer.error()));
    }
    m_client.emplace(unwrap(std::move(*client)));
    m_opened = m_client->opened();
  }

  const Json& opened() const { return m_opened; }
  bool closed() const { return !m_client; }

  // The next event, None after `timeout` seconds without one.
  py::object next(std::optional<double> timeout) {
    auto j = read(timeout, [](const Json& line) { return !line.contains("ack"); });
    return j ? to_py(*j) : py::none();
  }

  void answer(uint64_t seq, Json extra) {
    extra["seq"] = seq;
    send(extra);
  }

  // Sends a command and waits for its acknowledgement; events that come first are kept for
  // next().
  void command(Json cmd) {
    const std::string name = cmd.value("cmd", "");
    send(cmd);
    auto ack = read(std::nullopt, [&](const Json& line) { return line.value("ack", "") == name; });
    if (ack && !ack->value("ok", false)) raise(fmt::format("{}: {}", name, ack->value("error", "refused")));
  }

  void close() {
    std::unique_lock reading = lock(m_read);
    std::unique_lock writing = lock(m_write);
    m_client.reset();
    m_queue.clear();
  }

 private:
  [[noreturn]] static void raise(const std::string& message) {
    PyErr_SetString(g_error, message.c_str());
    throw py::error_already_set();
  }

  // Taken without the GIL, which whoever holds the mutex may be waiting for.
  static std::unique_lock<std::mutex> lock(std::mutex& m) {
    py::gil_scoped_release nogil;
    return std::unique_lock(m);
  }

  MonitorClient& client() {
    if (!m_client) raise("the monitor session is closed");
    return *m_client;
  }

  void send(const Json& line) {
    std::unique_lock writing = lock(m_write);
    MonitorClient& c = client();
    vigil::Result<void> r;
    {
      py::gil_scoped_release nogil;
      r = c.send(line);
    }
    unwrap(std::move(r));
  }

  // The first line `wanted` accepts (others that are events are queued), or nothing after
  // `timeout` seconds.
  template <typename F>
  std::optional<Json> read(std::optional<double> timeout, const F& wanted) {
    std::unique_lock reading = lock(m_read);
    if (const auto it = std::find_if(m_queue.begin(), m_queue.end(), wanted); it != m_queue.end()) {
      Json j = std::move(*it);
      m_queue.erase(it);
      return j;
    }
    MonitorClient& c = client();
    using Clock = std::chrono::steady_clock;
    const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double>(timeout.value_or(0)));
    for (;;) {
      bool ready;
      {
        py::gil_scoped_release nogil;
        int slice = 100;
        if (timeout) {
          const auto left =
              std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
          slice = static_cast<int>(std::clamp<int64_t>(left, 0, slice));
        }
        ready = c.wait(slice);
      }
      if (!ready) {
        if (PyErr_CheckSignals() != 0) throw py::error_already_set();
        if (timeout && Clock::now() >= deadline) return std::nullopt;
        continue;
      }
      std::optional<vigil::Result<Json>> line;
      {
        py::gil_scoped_release nogil;
        line.emplace(c.next());
      }
      Json j = unwrap(std::move(*line));
      if (wanted(j)) return j;
      if (!j.contains("ack")) m_queue.push_back(std::move(j));
    }
  }

  std::optional<MonitorClient> m_client;
  Json m_opened;
  std::deque<Json> m_queue;  // events read while waiting for an acknowledgement
  std::mutex m_read, m_write;
};

// monitor-open as `vigil monitor|trace|protect` build it (apps/cli_monitor.cpp), from keyword
// arguments; dicts and lists in them go to vigild as they are.
Json open_request(const py::list& events, bool sync, const std::optional<py::list>& numbers,
                  const std::optional<py::list>& csrs, bool on_change, std::optional<int64_t> pid,
                  const std::optional<py::list>& breakpoints,
                  const std::optional<std::vector<unsigned>>& singlestep,
                  const std::optional<py::list>& protect, bool kernel_text, std::optional<std::string> rights,
                  unsigned timeout_ms, const std::string& name) {
  Json req = {{"name", name}, {"timeout_ms", timeout_ms}, {"events", Json::array()}};
  for (const py::handle& e : events) {
    if (!py::isinstance<py::str>(e)) {
      Json sub = from_py(e);
      if (sub.is_object() && !sub.contains("sync")) sub["sync"] = sync;
      req["events"].push_back(sub);
      continue;
    }
    const std::string type = e.cast<std::string>();
    Json sub = {{"type", type}, {"sync", sync}};
    if (type == "csr") {
      if (csrs) sub["numbers"] = from_py(*csrs);
      sub["on_change"] = on_change;
    } else if (numbers && (type == "syscall" || type == "sysret" || type == "trap" || type == "request")) {
      sub["numbers"] = from_py(*numbers);
    }
    req["events"].push_back(sub);
  }
  if (pid) req["pid"] = *pid;
  if (breakpoints) {
    req["breakpoints"] = Json::array();
    for (const py::handle& b : *breakpoints) {
      if (py::isinstance<py::str>(b))
        req["breakpoints"].push_back({{"symbol", b.cast<std::string>()}});
      else if (py::isinstance<py::int_>(b))
        req["breakpoints"].push_back({{"va", b.cast<uint64_t>()}});
      else
        req["breakpoints"].push_back(from_py(b));
    }
  }
  if (singlestep) req["singlestep"] = *singlestep;
  if (protect) {
    req["protect"] = Json::array();
    for (const py::handle& p : *protect) {
      if (py::isinstance<py::tuple>(p) && py::len(p) == 2) {
        req["protect"].push_back(
            {{"gpa", p[py::int_(0)].cast<uint64_t>()}, {"length", p[py::int_(1)].cast<uint64_t>()}});
      } else {
        req["protect"].push_back(from_py(p));
      }
    }
  }
  if (kernel_text) req["kernel_text"] = true;
  if (rights) req["rights"] = *rights;
  return req;
}

}  // namespace

PYBIND11_MODULE(vigil_introspect, m) {
  m.doc() =
      "Introspection of Vigil domains (process list, address translation, memory, kernel symbols) through "
      "vigild";
  g_error = PyErr_NewException("vigil_introspect.Error", PyExc_RuntimeError, nullptr);
  m.attr("Error") = py::handle(g_error);
  m.def("default_socket", &default_socket,
        "vigild's socket as `vigil` finds it ($VIGIL_SOCKET or the per-user default)");

  using vigil::toolstack::ProcessEntry;
  py::class_<ProcessEntry>(m, "Process")
      .def_readonly("pid", &ProcessEntry::pid)
      .def_readonly("tid", &ProcessEntry::tid)
      .def_readonly("ppid", &ProcessEntry::ppid)
      .def_readonly("comm", &ProcessEntry::comm)
      .def_readonly("satp", &ProcessEntry::satp)
      .def_property_readonly("task", [](const ProcessEntry& p) { return std::stoull(p.task, nullptr, 16); })
      .def_readonly("kernel_thread", &ProcessEntry::kernel_thread)
      .def_readonly("vcpu", &ProcessEntry::vcpu)
      .def_readonly("error", &ProcessEntry::error)
      .def("__repr__", [](const ProcessEntry& p) {
        return "Process(pid=" + std::to_string(p.pid) + ", ppid=" + std::to_string(p.ppid) + ", comm='" +
               p.comm + "')";
      });

  using vigil::toolstack::VcpuEntry;
  py::class_<VcpuEntry>(m, "Vcpu")
      .def_readonly("vcpu", &VcpuEntry::vcpu)
      .def_readonly("online", &VcpuEntry::online)
      .def_readonly("mode", &VcpuEntry::mode)
      .def_property_readonly("pc", [](const VcpuEntry& v) { return std::stoull(v.pc, nullptr, 16); })
      .def_readonly("satp", &VcpuEntry::satp)
      .def_readonly("pid", &VcpuEntry::pid)
      .def_readonly("comm", &VcpuEntry::comm)
      .def_readonly("error", &VcpuEntry::error)
      .def("__repr__", [](const VcpuEntry& v) {
        return "Vcpu(" + std::to_string(v.vcpu) + ", mode=" + v.mode +
               ", pid=" + (v.pid ? std::to_string(*v.pid) : "None") + ", comm='" + v.comm + "')";
      });

  using vigil::toolstack::TranslationEntry;
  py::class_<TranslationEntry>(m, "Translation")
      .def_readonly("va", &TranslationEntry::va)
      .def_readonly("pa", &TranslationEntry::pa)
      .def_readonly("level", &TranslationEntry::level)
      .def_readonly("page_size", &TranslationEntry::page_size)
      .def_readonly("pte", &TranslationEntry::pte)
      .def_readonly("satp", &TranslationEntry::satp)
      .def("__repr__", [](const TranslationEntry& t) {
        char buf[128];
        std::snprintf(buf, sizeof buf, "Translation(va=%#llx, pa=%#llx, page_size=%llu)",
                      static_cast<unsigned long long>(t.va), static_cast<unsigned long long>(t.pa),
                      static_cast<unsigned long long>(t.page_size));
        return std::string(buf);
      });

  py::class_<IntrospectClient>(
      m, "Domain",
      "A domain of vigild, by name or id. Each call pauses the domain while it is read "
      "(if it was running) and resumes it.")
      .def(py::init([](const std::string& domain, std::optional<std::string> socket) {
             return std::make_unique<IntrospectClient>(socket ? *socket : default_socket(), domain);
           }),
           py::arg("domain"), py::arg("socket") = py::none())
      .def_property_readonly("name", &IntrospectClient::domain)
      .def(
          "processes", [](const IntrospectClient& c) { return unwrap(c.processes()).processes; },
          "init_task and every process: pid, ppid, comm, satp, vcpu (running on), kernel_thread")
      .def(
          "vcpus", [](const IntrospectClient& c) { return unwrap(c.processes()).vcpus; },
          "each vCPU's mode and current task")
      .def(
          "kernel_info",
          [](const IntrospectClient& c) {
            const auto j = unwrap(c.kernel_info());
            py::dict d;
            d["banner"] = j.value("banner", std::string());
            d["kernel_offset"] = j.value("kernel_offset", int64_t{0});
            d["kernel_satp"] = j.value("kernel_satp", uint64_t{0});
            d["paging"] = j.value("paging", std::string());
            d["system_map"] = j.value("system_map", std::string());
            d["kernel_btf"] = j.value("kernel_btf", std::string());
            return d;
          },
          "banner, KASLR offset, the kernel's satp and where the profile came from")
      .def(
          "modules", [](const IntrospectClient& c) { return unwrap(c.modules()); }, "names of loaded modules")
      .def(
          "translate",
          [](const IntrospectClient& c, uint64_t va, std::optional<uint64_t> satp,
             std::optional<int32_t> pid) { return unwrap(c.translate(va, space(satp, pid))); },
          py::arg("va"), py::kw_only(), py::arg("satp") = py::none(), py::arg("pid") = py::none(),
          "guest-virtual -> guest-physical through the kernel's, a process's (pid) or any (satp) page tables")
      .def(
          "read",
          [](const IntrospectClient& c, uint64_t va, size_t length, std::optional<uint64_t> satp,
             std::optional<int32_t> pid) {
            return to_bytes(unwrap(c.read_virtual(va, length, space(satp, pid))));
          },
          py::arg("va"), py::arg("length"), py::kw_only(), py::arg("satp") = py::none(),
          py::arg("pid") = py::none())
      .def(
          "read_physical",
          [](const IntrospectClient& c, uint64_t pa, size_t length) {
            return to_bytes(unwrap(c.read_physical(pa, length)));
          },
          py::arg("pa"), py::arg("length"))
      .def(
          "write",
          [](const IntrospectClient& c, uint64_t va, const py::bytes& data, std::optional<uint64_t> satp,
             std::optional<int32_t> pid) { unwrap(c.write_virtual(va, from_bytes(data), space(satp, pid))); },
          py::arg("va"), py::arg("data"), py::kw_only(), py::arg("satp") = py::none(),
          py::arg("pid") = py::none())
      .def(
          "write_physical",
          [](const IntrospectClient& c, uint64_t pa, const py::bytes& data) {
            unwrap(c.write_physical(pa, from_bytes(data)));
          },
          py::arg("pa"), py::arg("data"))
      .def(
          "symbol",
          [](const IntrospectClient& c, const std::string& name) { return unwrap(c.symbol(name)).address; },
          py::arg("name"), "run-time address of a kernel symbol")
      .def(
          "symbol_at",
          [](const IntrospectClient& c, uint64_t address) {
            auto s = unwrap(c.symbol_at(address));
            return py::make_tuple(s.name, s.offset);
          },
          py::arg("address"), "(name, offset) of the kernel symbol at or below an address");

  py::class_<PyMonitor>(
      m, "Monitor",
      "A vm_event monitor on a domain, through vigild (as `vigil monitor` opens it). Events are dicts "
      "(src/monitor/remote.h): type, seq, sync, vcpu, pc, satp, and per type nr/args/ret, gpa/access, "
      "csr/old/new, ...; pid and comm for user-mode events. Answer every synchronous one (ev['sync']) "
      "within timeout_ms, or vigild drops the monitor and the guest runs on.")
      .def(py::init([](const std::string& domain, const py::list& events, std::optional<std::string> socket,
                       bool sync, std::optional<py::list> numbers, std::optional<py::list> csrs,
                       bool on_change, std::optional<int64_t> pid, std::optional<py::list> breakpoints,
                       std::optional<std::vector<unsigned>> singlestep, std::optional<py::list> protect,
                       bool kernel_text, std::optional<std::string> rights, unsigned timeout_ms,
                       const std::string& name) {
             return std::make_unique<PyMonitor>(
                 domain, socket ? *socket : default_socket(),
                 open_request(events, sync, numbers, csrs, on_change, pid, breakpoints, singlestep, protect,
                              kernel_text, rights, timeout_ms, name));
           }),
           py::arg("domain"), py::arg("events") = py::list(), py::kw_only(), py::arg("socket") = py::none(),
           py::arg("sync") = false, py::arg("numbers") = py::none(), py::arg("csrs") = py::none(),
           py::arg("on_change") = false, py::arg("pid") = py::none(), py::arg("breakpoints") = py::none(),
           py::arg("singlestep") = py::none(), py::arg("protect") = py::none(),
           py::arg("kernel_text") = false, py::arg("rights") = py::none(), py::arg("timeout_ms") = 1500,
           py::arg("name") = "python",
           "events: names (mem, csr, breakpoint, singlestep, syscall, sysret, request, trap) or subscription "
           "dicts; numbers: system call/cause numbers for syscall, sysret, trap, request; csrs: CSR names or "
           "numbers; pid: one process only; breakpoints: kernel symbols or addresses; protect: (gpa, length) "
           "pairs or dicts; kernel_text: protect _stext.._etext and sys_call_table; rights: for protected "
           "ranges (\"r-x\")")
      .def_property_readonly(
          "opened", [](const PyMonitor& p) { return to_py(p.opened()); },
          "vigild's answer to monitor-open: session, socket, protected, breakpoints")
      .def_property_readonly("session",
                             [](const PyMonitor& p) { return to_py(p.opened().value("session", Json())); })
      .def_property_readonly(
          "breakpoints",
          [](const PyMonitor& p) { return to_py(p.opened().value("breakpoints", Json::array())); })
      .def_property_readonly(
          "protected", [](const PyMonitor& p) { return to_py(p.opened().value("protected", Json::array())); })
      .def_property_readonly("closed", &PyMonitor::closed)
      .def("next", &PyMonitor::next, py::arg("timeout") = py::none(),
           "the next event (a dict); None after `timeout` seconds without one; Error once the session ended")
      .def("__iter__", [](py::object self) { return self; })
      .def("__next__",
           [](PyMonitor& p) {
             try {
               return p.next(std::nullopt);
             } catch (py::error_already_set& e) {
               if (!e.matches(g_error)) throw;
               throw py::stop_iteration();
             }
           })
      .def(
          "answer",
          [](PyMonitor& p, const py::object& event, const std::string& action, std::optional<py::int_> value,
             std::optional<py::dict> regs, std::optional<uint64_t> pc, std::optional<bool> singlestep,
             std::optional<py::list> rights) {
            const uint64_t seq =
                py::isinstance<py::dict>(event) ? event["seq"].cast<uint64_t>() : event.cast<uint64_t>();
            Json extra = {{"action", action}};
            if (value) extra["value"] = from_py(*value);  // signed or not
            if (regs) extra["regs"] = from_py(*regs);
            if (pc) extra["pc"] = *pc;
            if (singlestep) extra["singlestep"] = *singlestep;
            if (rights) extra["rights"] = from_py(*rights);
            p.answer(seq, std::move(extra));
          },
          py::arg("event"), py::arg("action") = "continue", py::kw_only(), py::arg("value") = py::none(),
          py::arg("regs") = py::none(), py::arg("pc") = py::none(), py::arg("singlestep") = py::none(),
          py::arg("rights") = py::none(),
          "answers a synchronous event (the dict or its seq): continue, deny or emulate; value: what a "
          "denied "
          "system call or emulated read returns; regs: {'a0': 1, ...}; pc; singlestep: on/off for this vCPU; "
          "rights: [{'gpa', 'length', 'rights'}]")
      .def(
          "subscribe",
          [](PyMonitor& p, const py::object& sub, bool sync) {
            Json s = py::isinstance<py::str>(sub) ? Json{{"type", sub.cast<std::string>()}} : from_py(sub);
            if (s.is_object() && !s.contains("sync")) s["sync"] = sync;
            p.command({{"cmd", "subscribe"}, {"subscription", s}});
          },
          py::arg("subscription"), py::arg("sync") = false, "an event type or a subscription dict")
      .def(
          "unsubscribe",
          [](PyMonitor& p, const std::string& type) {
            p.command({{"cmd", "unsubscribe"}, {"type", type}});
          },
          py::arg("type"))
      .def(
          "set_rights",
          [](PyMonitor& p, uint64_t gpa, uint64_t length, const std::string& rights) {
            p.command({{"cmd", "rights"}, {"gpa", gpa}, {"length", length}, {"rights", rights}});
          },
          py::arg("gpa"), py::arg("length"), py::arg("rights"), "P2m rights for this monitor, like \"r-x\"")
      .def(
          "add_breakpoint",
          [](PyMonitor& p, uint64_t gpa, std::optional<uint64_t> gva) {
            Json c = {{"cmd", "breakpoint"}, {"gpa", gpa}};
            if (gva) c["gva"] = *gva;
            p.command(c);
          },
          py::arg("gpa"), py::arg("gva") = py::none())
      .def(
          "remove_breakpoint",
          [](PyMonitor& p, uint64_t gpa) {
            p.command({{"cmd", "breakpoint"}, {"gpa", gpa}, {"remove", true}});
          },
          py::arg("gpa"))
      .def(
          "singlestep",
          [](PyMonitor& p, unsigned vcpu, bool on) {
            p.command({{"cmd", "singlestep"}, {"vcpu", vcpu}, {"on", on}});
          },
          py::arg("vcpu"), py::arg("on") = true)
      .def("close", &PyMonitor::close,
           "ends the session: vigild drops its subscriptions, rights and breakpoints")
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](PyMonitor& p, const py::args&) { p.close(); });
}
