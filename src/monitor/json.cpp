// JSON forms of events, responses and subscriptions (json.h).
#include "monitor/json.h"

#include <fmt/compile.h>

#include <charconv>
#include <iterator>

namespace vigil::monitor {

namespace {
const char* priv_name(riscv::Priv p) {
  return p == riscv::Priv::U ? "U" : p == riscv::Priv::S ? "S" : "M";
}
const char* access_name(riscv::AccessType t) {
  return t == riscv::AccessType::kRead ? "r" : t == riscv::AccessType::kWrite ? "w" : "x";
}
Json args_json(const Event& ev) {
  return Json(std::vector<uint64_t>(ev.args.begin(), ev.args.end()));
}
}  // namespace

Result<uint64_t> number_from_json(const Json& j, std::string_view what) {
  if (j.is_number_unsigned()) return j.get<uint64_t>();
  if (j.is_number_integer()) return static_cast<uint64_t>(j.get<int64_t>());
  if (j.is_string()) {
    const std::string s = j.get<std::string>();
    const bool hex = s.starts_with("0x") || s.starts_with("0X");
    const char* begin = s.data() + (hex ? 2 : 0);
    uint64_t v = 0;
    const auto [p, ec] = std::from_chars(begin, s.data() + s.size(), v, hex ? 16 : 10);
    if (ec == std::errc() && p == s.data() + s.size() && p != begin) return v;
  }
  return make_error("{} must be a number or a \"0x...\" string", what);
}

Result<uint8_t> rights_from_string(std::string_view s) {
  uint8_t r = 0;
  for (char c : s) {
    switch (c) {
      case 'r':
        r |= riscv::p2m::kRead;
        break;
      case 'w':
        r |= riscv::p2m::kWrite;
        break;
      case 'x':
        r |= riscv::p2m::kExec;
        break;
      case '-':
        break;
      default:
        return make_error("rights \"{}\": only r, w, x and - are allowed", s);
    }
  }
  return r;
}

Json to_json(const Event& ev) {
  Json j = {{"seq", ev.seq},   {"type", to_string(ev.type)}, {"sync", ev.sync},
            {"vcpu", ev.vcpu}, {"priv", priv_name(ev.priv)}, {"pc", ev.pc},
            {"satp", ev.satp}};
  switch (ev.type) {
    case EventType::kMemAccess:
      j["gpa"] = ev.gpa;
      j["gva"] = ev.gva;
      j["access"] = access_name(ev.access);
      j["size"] = ev.size;
      break;
    case EventType::kCsrWrite:
      j["csr"] = csr_name(ev.csr).empty() ? Json(ev.csr) : Json(csr_name(ev.csr));
      j["csr_num"] = ev.csr;
      j["old"] = ev.old_value;
      j["new"] = ev.new_value;
      break;
    case EventType::kBreakpoint:
      j["gpa"] = ev.gpa;
      j["gva"] = ev.gva;
      break;
    case EventType::kSingleStep:
      break;
    case EventType::kSyscallReturn:
      j["ret"] = ev.ret;
      [[fallthrough]];
    case EventType::kSyscall:
      j["nr"] = ev.nr;
      j["args"] = args_json(ev);
      j["sp"] = ev.sp;
      j["task"] = ev.sscratch;
      break;
    case EventType::kGuestRequest:
      j["fid"] = ev.nr;
      j["args"] = args_json(ev);
      break;
    case EventType::kTrap:
      j["cause"] = ev.cause;
      j["tval"] = ev.tval;
      j["interrupt"] = ev.interrupt;
      j["epc"] = ev.gva;
      break;
  }
  return j;
}

void append_event_line(const Event& ev, std::string_view extra, std::string& out) {
  auto it = std::back_inserter(out);
  fmt::format_to(it, FMT_COMPILE(R"({{"seq":{},"type":"{}","sync":{},"vcpu":{},"priv":"{}","pc":{},"satp":{})"), ev.seq,
                 to_string(ev.type), ev.sync, ev.vcpu, priv_name(ev.priv), ev.pc, ev.satp);
  auto args = [&] {
    fmt::format_to(it, FMT_COMPILE(R"(,"args":[{},{},{},{},{},{}])"), ev.args[0], ev.args[1], ev.args[2], ev.args[3],
                   ev.args[4], ev.args[5]);
  };
  switch (ev.type) {
    case EventType::kMemAccess:
      fmt::format_to(it, FMT_COMPILE(R"(,"gpa":{},"gva":{},"access":"{}","size":{})"), ev.gpa, ev.gva,
                     access_name(ev.access), ev.size);
      break;
    case EventType::kCsrWrite: {
      const std::string_view name = csr_name(ev.csr);
      if (name.empty())
        fmt::format_to(it, FMT_COMPILE(R"(,"csr":{})"), ev.csr);
      else
        fmt::format_to(it, FMT_COMPILE(R"(,"csr":"{}")"), name);
      fmt::format_to(it, FMT_COMPILE(R"(,"csr_num":{},"old":{},"new":{})"), ev.csr, ev.old_value, ev.new_value);
      break;
    }
    case EventType::kBreakpoint:
      fmt::format_to(it, FMT_COMPILE(R"(,"gpa":{},"gva":{})"), ev.gpa, ev.gva);
      break;
    case EventType::kSingleStep:
      break;
    case EventType::kSyscallReturn:
      fmt::format_to(it, FMT_COMPILE(R"(,"ret":{})"), ev.ret);
      [[fallthrough]];
    case EventType::kSyscall:
      fmt::format_to(it, FMT_COMPILE(R"(,"nr":{},"sp":{},"task":{})"), ev.nr, ev.sp, ev.sscratch);
      args();
      break;
    case EventType::kGuestRequest:
      fmt::format_to(it, FMT_COMPILE(R"(,"fid":{})"), ev.nr);
      args();
      break;
    case EventType::kTrap:
      fmt::format_to(it, FMT_COMPILE(R"(,"cause":{},"tval":{},"interrupt":{},"epc":{})"), ev.cause, ev.tval, ev.interrupt,
                     ev.gva);
      break;
  }
  out += extra;
  out += "}\n";
}

void append_json_string(std::string_view bytes, std::string& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (const char c : bytes) {
    const auto b = static_cast<unsigned char>(c);
    if (b >= 0x20 && b < 0x7f && c != '"' && c != '\\') {
      out += c;
    } else {
      out += "\\u00";
      out += kHex[b >> 4];
      out += kHex[b & 15];
    }
  }
  out += '"';
}

Result<Response> response_from_json(const Json& j) {
  if (!j.is_object()) return make_error("a response must be a JSON object");
  Response r;
  if (auto it = j.find("action"); it != j.end()) {
    auto a = it->is_string() ? action_from(it->get<std::string>()) : std::nullopt;
    if (!a) return make_error("action must be continue, deny or emulate");
    r.action = *a;
  }
  if (auto it = j.find("value"); it != j.end()) {
    auto v = number_from_json(*it, "value");
    if (!v) return std::unexpected(v.error());
    r.value = *v;
  }
  if (auto it = j.find("regs"); it != j.end()) {
    if (!it->is_object()) return make_error("regs must be an object of register names");
    for (const auto& [name, value] : it->items()) {
      auto reg = reg_from_name(name);
      if (!reg || *reg == 0) return make_error("regs: no register \"{}\"", name);
      auto v = number_from_json(value, name);
      if (!v) return std::unexpected(v.error());
      r.regs.push_back({*reg, *v});
    }
  }
  if (auto it = j.find("pc"); it != j.end()) {
    auto v = number_from_json(*it, "pc");
    if (!v) return std::unexpected(v.error());
    r.pc = *v;
  }
  if (auto it = j.find("singlestep"); it != j.end()) {
    if (!it->is_boolean()) return make_error("singlestep must be true or false");
    r.single_step = it->get<bool>();
  }
  if (auto it = j.find("rights"); it != j.end()) {
    if (!it->is_array()) return make_error("rights must be a list");
    for (const Json& e : *it) {
      if (!e.is_object() || !e.contains("gpa") || !e.contains("length") || !e.contains("rights") ||
          !e["rights"].is_string()) {
        return make_error("each rights entry needs gpa, length and rights");
      }
      auto gpa = number_from_json(e["gpa"], "gpa");
      auto len = number_from_json(e["length"], "length");
      auto bits = rights_from_string(e["rights"].get<std::string>());
      if (!gpa || !len || !bits) return make_error("bad rights entry {}", e.dump());
      r.rights.push_back({*gpa, *len, *bits});
    }
  }
  return r;
}

Result<Subscription> subscription_from_json(const Json& j) {
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) {
    return make_error("a subscription is an object with a \"type\"");
  }
  const std::string type = j["type"].get<std::string>();
  auto t = event_type_from(type);
  if (!t)
    return make_error(
        "unknown event type \"{}\" (mem, csr, breakpoint, singlestep, syscall, sysret, request, trap)", type);
  Subscription s{.type = *t};
  if (auto it = j.find("sync"); it != j.end()) s.sync = it->is_boolean() && it->get<bool>();
  if (auto it = j.find("on_change"); it != j.end()) s.on_change = it->is_boolean() && it->get<bool>();
  if (auto it = j.find("numbers"); it != j.end()) {
    if (!it->is_array()) return make_error("numbers must be a list");
    for (const Json& n : *it) {
      if (n.is_string() && *t == EventType::kCsrWrite) {
        if (auto c = csr_from_name(n.get<std::string>())) {
          s.filter.numbers.push_back(*c);
          continue;
        }
      }
      auto v = number_from_json(n, "numbers");
      if (!v) return std::unexpected(v.error());
      s.filter.numbers.push_back(*v);
    }
  }
  for (const char* key : {"lo", "hi", "satp", "vcpu"}) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) continue;
    auto v = number_from_json(*it, key);
    if (!v) return std::unexpected(v.error());
    if (std::string_view(key) == "lo")
      s.filter.lo = *v;
    else if (std::string_view(key) == "hi")
      s.filter.hi = *v;
    else if (std::string_view(key) == "satp")
      s.filter.satp = *v;
    else
      s.filter.vcpu = static_cast<uint32_t>(*v);
  }
  return s;
}

}  // namespace vigil::monitor
