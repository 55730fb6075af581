#include "toolstack/introspect_client.h"

#include <charconv>

namespace vigil::toolstack {

namespace {

void add_space(Json& req, const AddressSpace& as) {
  if (as.satp) req["satp"] = *as.satp;
  if (as.pid) req["pid"] = *as.pid;
}

Result<std::vector<uint8_t>> unhex(const Json& answer) {
  const std::string& s = answer.at("data").get_ref<const std::string&>();
  std::vector<uint8_t> out(s.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) {
    const auto [p, ec] = std::from_chars(s.data() + 2 * i, s.data() + 2 * i + 2, out[i], 16);
    if (ec != std::errc()) return make_error("vigild sent malformed memory data");
  }
  return out;
}

std::string hex(const std::vector<uint8_t>& data) {
  std::string s;
  for (uint8_t b : data) s += fmt::format("{:02x}", b);
  return s;
}

// Typed fields from an answer: a malformed answer is an error, not an exception.
template <typename F>
auto decode(F f) -> Result<std::remove_cvref_t<decltype(*f())>> {
  try {
    return f();
  } catch (const std::exception& e) {
    return make_error("vigild sent a malformed answer: {}", e.what());
  }
}

SymbolEntry symbol_from(const Json& j) {
  return SymbolEntry{j.at("name"), j.at("address"), j.value("offset", uint64_t{0}), j.value("type", std::string())};
}

}  // namespace

Result<Json> IntrospectClient::call(Json request) const {
  request["domain"] = m_domain;
  auto r = api_call(m_socket, request);
  if (!r) return r;
  if (!r->value("ok", false)) return make_error("{}", r->value("error", std::string("request failed")));
  return r;
}

Result<ProcessList> IntrospectClient::processes() const {
  auto r = call(Json{{"op", "ps"}});
  if (!r) return std::unexpected(r.error());
  try {
    ProcessList out;
    for (const Json& p : r->at("processes")) {
      ProcessEntry e;
      e.pid = p.at("pid");
      e.tid = p.at("tid");
      e.ppid = p.at("ppid");
      e.comm = p.at("comm");
      e.satp = p.at("satp");
      e.task = p.at("task");
      e.kernel_thread = p.at("kernel_thread");
      if (!p.at("vcpu").is_null()) e.vcpu = p.at("vcpu").get<unsigned>();
      e.error = p.value("error", std::string());
      out.processes.push_back(std::move(e));
    }
    for (const Json& v : r->at("vcpus")) {
      VcpuEntry e;
      e.vcpu = v.at("vcpu");
      e.online = v.at("online");
      e.mode = v.at("mode");
      e.pc = v.at("pc");
      e.satp = v.at("satp");
      if (v.contains("pid")) e.pid = v.at("pid").get<int32_t>();
      e.comm = v.value("comm", std::string());
      e.error = v.value("error", std::string());
      out.vcpus.push_back(std::move(e));
    }
    out.paused_us = r->value("paused_us", uint64_t{0});
    out.raw = std::move(*r);
    return out;
  } catch (const std::exception& e) {
    return make_error("vigild sent a malformed process list: {}", e.what());
  }
}

Result<Json> IntrospectClient::kernel_info() const { return call(Json{{"op", "kernel-info"}}); }

Result<std::vector<std::string>> IntrospectClient::modules() const {
  auto r = call(Json{{"op", "modules"}});
  if (!r) return std::unexpected(r.error());
  return decode([&]() -> Result<std::vector<std::string>> {
    std::vector<std::string> names;
    for (const Json& m : r->at("modules")) names.push_back(m.at("name"));
    return names;
  });
}

Result<TranslationEntry> IntrospectClient::translate(uint64_t va, const AddressSpace& as) const {
  Json req{{"op", "translate"}, {"va", va}};
  add_space(req, as);
  auto r = call(req);
  if (!r) return std::unexpected(r.error());
  return decode([&]() -> Result<TranslationEntry> {
    return TranslationEntry{r->at("va"), r->at("pa"), r->at("page_size"), r->at("pte"), r->at("satp"), r->at("level")};
  });
}

Result<std::vector<uint8_t>> IntrospectClient::read_virtual(uint64_t va, size_t length, const AddressSpace& as) const {
  Json req{{"op", "read-memory"}, {"address", va}, {"length", length}};
  add_space(req, as);
  auto r = call(req);
  if (!r) return std::unexpected(r.error());
  return decode([&] { return unhex(*r); });
}

Result<std::vector<uint8_t>> IntrospectClient::read_physical(uint64_t pa, size_t length) const {
  auto r = call(Json{{"op", "read-memory"}, {"address", pa}, {"length", length}, {"physical", true}});
  if (!r) return std::unexpected(r.error());
  return decode([&] { return unhex(*r); });
}

Result<void> IntrospectClient::write_virtual(uint64_t va, const std::vector<uint8_t>& data,
                                             const AddressSpace& as) const {
  Json req{{"op", "write-memory"}, {"address", va}, {"data", hex(data)}};
  add_space(req, as);
  auto r = call(req);
  if (!r) return std::unexpected(r.error());
  return {};
}

Result<void> IntrospectClient::write_physical(uint64_t pa, const std::vector<uint8_t>& data) const {
  auto r = call(Json{{"op", "write-memory"}, {"address", pa}, {"data", hex(data)}, {"physical", true}});
  if (!r) return std::unexpected(r.error());
  return {};
}

Result<SymbolEntry> IntrospectClient::symbol(const std::string& name) const {
  auto r = call(Json{{"op", "symbol"}, {"name", name}});
  if (!r) return std::unexpected(r.error());
  return decode([&]() -> Result<SymbolEntry> { return symbol_from(*r); });
}

Result<SymbolEntry> IntrospectClient::symbol_at(uint64_t address) const {
  auto r = call(Json{{"op", "symbol"}, {"address", address}});
  if (!r) return std::unexpected(r.error());
  return decode([&]() -> Result<SymbolEntry> { return symbol_from(*r); });
}

}  // namespace vigil::toolstack
