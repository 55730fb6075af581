// vigil_introspect: introspection of Vigil domains from Python, through vigild.
//
//   import vigil_introspect as vi
//   d = vi.Domain("web", socket="/tmp/vigil.sock")   # socket: default as for `vigil`
//   for p in d.processes(): print(p.pid, p.ppid, p.comm, hex(p.satp), p.vcpu)
//   t = d.translate(0x10000, pid=42)                 # -> Translation(pa, level, page_size, pte, satp)
//   d.read(d.symbol("linux_banner"), 64)             # bytes (kernel page tables by default)
//   d.read_physical(0x80200000, 16); d.write(va, b"...", pid=42)
//   d.symbol_at(0xffffffff80001eee)                  # -> ("arch_cpu_idle", 8)
// Every failure raises vigil_introspect.Error with vigild's one-sentence reason.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <unistd.h>

#include <cstdlib>

#include "toolstack/introspect_client.h"

namespace py = pybind11;
using vigil::toolstack::AddressSpace;
using vigil::toolstack::IntrospectClient;

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
}
