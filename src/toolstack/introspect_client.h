// The client side of vigild's introspection verbs (toolstack/api_introspect.h): what `vigil ps`
// and the Python module (python/vigil_introspect.cpp) use. Out of process on purpose: a tool
// reading a guest never shares vigild's address space, and the domain is paused and resumed
// by vigild around each request.
//
// It keeps one connection to vigild open for all its requests (a Python loop reading memory
// does not reconnect each time) and carries its own few lines of socket code rather than
// api_call(), so the Python module can compile it without linking vigild's server side.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "toolstack/api.h"

namespace vigil::toolstack {

struct ProcessEntry {
  int32_t pid = 0, tid = 0, ppid = 0;
  std::string comm;
  uint64_t satp = 0;
  std::string task;  // "0x..." address of the task_struct
  bool kernel_thread = false;
  std::optional<unsigned> vcpu;  // running on this vCPU now
  std::string error;
};

struct VcpuEntry {
  unsigned vcpu = 0;
  bool online = false;
  std::string mode;  // "U", "S", "M"
  std::string pc;
  uint64_t satp = 0;
  std::optional<int32_t> pid;
  std::string comm;
  std::string error;
};

struct ProcessList {
  std::vector<ProcessEntry> processes;
  std::vector<VcpuEntry> vcpus;
  uint64_t paused_us = 0;
  Json raw;
};

struct TranslationEntry {
  uint64_t va = 0, pa = 0, page_size = 0, pte = 0, satp = 0;
  unsigned level = 0;
};

struct SymbolEntry {
  std::string name;
  uint64_t address = 0;
  uint64_t offset = 0;
  std::string type;
};

// Which page tables a virtual access goes through.
struct AddressSpace {
  std::optional<uint64_t> satp;
  std::optional<int32_t> pid;  // a process's; neither: the kernel's
};

class IntrospectClient {
 public:
  IntrospectClient(std::string socket_path, std::string domain)
      : m_socket(std::move(socket_path)), m_domain(std::move(domain)) {}
  ~IntrospectClient();
  IntrospectClient(const IntrospectClient&) = delete;
  IntrospectClient& operator=(const IntrospectClient&) = delete;

  const std::string& domain() const { return m_domain; }

  Result<ProcessList> processes() const;
  Result<Json> kernel_info() const;
  Result<std::vector<std::string>> modules() const;
  Result<TranslationEntry> translate(uint64_t va, const AddressSpace& as = {}) const;
  Result<std::vector<uint8_t>> read_virtual(uint64_t va, size_t length, const AddressSpace& as = {}) const;
  Result<std::vector<uint8_t>> read_physical(uint64_t pa, size_t length) const;
  Result<void> write_virtual(uint64_t va, const std::vector<uint8_t>& data,
                             const AddressSpace& as = {}) const;
  Result<void> write_physical(uint64_t pa, const std::vector<uint8_t>& data) const;
  Result<SymbolEntry> symbol(const std::string& name) const;
  Result<SymbolEntry> symbol_at(uint64_t address) const;

  // One request with "domain" filled in; an {"ok": false} answer becomes the error.
  Result<Json> call(Json request) const;

 private:
  Result<Json> exchange(const Json& request) const;

  std::string m_socket;
  std::string m_domain;
  mutable std::mutex m_mutex;
  mutable int m_fd = -1;
  mutable std::string m_pending;  // bytes received after the last answer
};

}  // namespace vigil::toolstack
