#include "toolstack/gdb_stub.h"

#include <fmt/format.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <vector>

namespace vigil::toolstack::gdb {

namespace {

constexpr std::array<const char*, 32> kXNames = {
    "zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "fp", "s1", "a0", "a1", "a2", "a3", "a4", "a5",
    "a6",   "a7", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "t3", "t4", "t5", "t6"};
constexpr std::array<const char*, 32> kFNames = {
    "ft0", "ft1", "ft2",  "ft3",  "ft4", "ft5", "ft6",  "ft7",  "fs0",  "fs1", "fa0",
    "fa1", "fa2", "fa3",  "fa4",  "fa5", "fa6", "fa7",  "fs2",  "fs3",  "fs4", "fs5",
    "fs6", "fs7", "fs8",  "fs9",  "fs10", "fs11", "ft8", "ft9", "ft10", "ft11"};

// Errors as gdbserver writes them: "E" and an errno in hex.
constexpr std::string_view kErrInval = "E16", kErrFault = "E0e", kErrNoThread = "E03";

// Registers the "g" packet carries: x0-x31 and pc (the rest come by "p").
constexpr unsigned kGRegs = 33;

std::string_view before(std::string_view s, char c) { return s.substr(0, s.find(c)); }

std::optional<std::pair<uint64_t, uint64_t>> addr_len(std::string_view args) {
  const size_t comma = args.find(',');
  if (comma == std::string_view::npos) return std::nullopt;
  auto a = parse_hex_u64(args.substr(0, comma));
  auto l = parse_hex_u64(args.substr(comma + 1));
  if (!a || !l) return std::nullopt;
  return std::pair{*a, *l};
}

}  // namespace

std::string stop_reply(const StopReason& stop) {
  switch (stop.kind) {
    case StopReason::Kind::kExited: return fmt::format("W{:02x}", stop.exit_code & 0xff);
    case StopReason::Kind::kKilled: return fmt::format("X{:02x}", stop.signal & 0xff);
    case StopReason::Kind::kSignal: break;
  }
  std::string r = fmt::format("T{:02x}thread:{:x};", stop.signal & 0xff, stop.vcpu + 1);
  switch (stop.watch) {
    case Watch::kNone: break;
    case Watch::kWrite: r += fmt::format("watch:{:x};", stop.watch_addr); break;
    case Watch::kRead: r += fmt::format("rwatch:{:x};", stop.watch_addr); break;
    case Watch::kAccess: r += fmt::format("awatch:{:x};", stop.watch_addr); break;
  }
  return r;
}

const std::string& target_xml() {
  static const std::string xml = [] {
    std::string s =
        "<?xml version=\"1.0\"?>\n<!DOCTYPE target SYSTEM \"gdb-target.dtd\">\n<target version=\"1.0\">\n"
        "<architecture>riscv:rv64</architecture>\n<feature name=\"org.gnu.gdb.riscv.cpu\">\n";
    for (unsigned i = 0; i < 32; ++i) {
      const char* type = i == 1 ? "code_ptr" : (i == 2 || i == 3 || i == 4 || i == 8) ? "data_ptr" : "int";
      s += fmt::format("<reg name=\"{}\" bitsize=\"64\" type=\"{}\" regnum=\"{}\"/>\n", kXNames[i], type, i);
    }
    s += "<reg name=\"pc\" bitsize=\"64\" type=\"code_ptr\" regnum=\"32\"/>\n</feature>\n";
    s += "<feature name=\"org.gnu.gdb.riscv.fpu\">\n"
         "<union id=\"riscv_double\"><field name=\"float\" type=\"ieee_single\"/>"
         "<field name=\"double\" type=\"ieee_double\"/></union>\n";
    for (unsigned i = 0; i < 32; ++i) {
      s += fmt::format("<reg name=\"{}\" bitsize=\"64\" type=\"riscv_double\" regnum=\"{}\"/>\n", kFNames[i],
                       kRegF0 + i);
    }
    s += fmt::format(
        "<reg name=\"fflags\" bitsize=\"32\" type=\"int\" regnum=\"{}\"/>\n"
        "<reg name=\"frm\" bitsize=\"32\" type=\"int\" regnum=\"{}\"/>\n"
        "<reg name=\"fcsr\" bitsize=\"32\" type=\"int\" regnum=\"{}\"/>\n</feature>\n",
        kRegFflags, kRegFrm, kRegFcsr);
    s += fmt::format(
        "<feature name=\"org.gnu.gdb.riscv.virtual\">\n"
        "<reg name=\"priv\" bitsize=\"64\" type=\"int\" regnum=\"{}\"/>\n</feature>\n</target>\n",
        kRegPriv);
    return s;
  }();
  return xml;
}

Session::Session(Target& target, int fd, StopReason initial) : m_target(target), m_fd(fd), m_last(initial) {
  m_g_vcpu = m_c_vcpu = initial.vcpu;
}

void Session::stopped(const StopReason& stop) {
  m_running = false;
  m_last = stop;
  if (stop.kind == StopReason::Kind::kSignal) m_g_vcpu = m_c_vcpu = stop.vcpu;
}

std::optional<unsigned> Session::thread_vcpu(std::string_view tid) const {
  if (tid == "0" || tid == "-1") return m_g_vcpu;
  if (tid.starts_with("p")) {  // multiprocess syntax "p1.2": the process is the domain
    const size_t dot = tid.find('.');
    if (dot == std::string_view::npos) return m_g_vcpu;
    tid = tid.substr(dot + 1);
    if (tid == "0" || tid == "-1") return m_g_vcpu;
  }
  auto n = parse_hex_u64(tid);
  if (!n || *n == 0 || *n > m_target.vcpu_count()) return std::nullopt;
  return static_cast<unsigned>(*n - 1);
}

std::string Session::read_registers() {
  std::string s;
  s.reserve(kGRegs * 16);
  for (unsigned r = 0; r < kGRegs; ++r) {
    auto v = m_target.read_register(m_g_vcpu, r);
    s += v ? to_hex_le(*v, 8) : std::string(16, 'x');
  }
  return s;
}

std::string Session::write_registers(std::string_view hex) {
  if (hex.size() % 16 != 0 || hex.size() / 16 > kGRegs) return std::string(kErrInval);
  for (unsigned r = 0; r < hex.size() / 16; ++r) {
    auto v = parse_hex_le(hex.substr(r * 16, 16));
    if (!v) return std::string(kErrInval);
    if (r != 0 && !m_target.write_register(m_g_vcpu, r, *v)) return std::string(kErrInval);
  }
  return "OK";
}

std::string Session::read_memory(std::string_view args) {
  auto al = addr_len(args);
  if (!al) return std::string(kErrInval);
  const auto [addr, len] = *al;
  if (len > kMaxPacket / 2) return std::string(kErrInval);
  std::vector<uint8_t> buf(len);
  if (auto r = m_target.read_memory(m_g_vcpu, addr, buf); !r) return std::string(kErrFault);
  return to_hex(buf);
}

std::string Session::write_memory(std::string_view args, bool binary) {
  const size_t colon = args.find(':');
  if (colon == std::string_view::npos) return std::string(kErrInval);
  auto al = addr_len(args.substr(0, colon));
  if (!al) return std::string(kErrInval);
  const auto [addr, len] = *al;
  const std::string_view data = args.substr(colon + 1);
  std::vector<uint8_t> bytes;
  if (binary) {
    bytes.assign(data.begin(), data.end());
  } else {
    auto h = from_hex(data);
    if (!h) return std::string(kErrInval);
    bytes = std::move(*h);
  }
  if (bytes.size() != len) return std::string(kErrInval);
  if (len == 0) return "OK";  // gdb probes "X" with an empty write
  if (auto r = m_target.write_memory(m_g_vcpu, addr, bytes); !r) return std::string(kErrFault);
  return "OK";
}

std::string Session::breakpoint(std::string_view args, bool insert) {
  // "type,addr,kind[;cond...]": software (0) and hardware (1) breakpoints are the same here,
  // hypervisor breakpoints that never touch guest memory. Watchpoints (2 write, 3 read, 4
  // access; kind = length) are P2m rights on the watched page, free for every other page.
  if (args.size() < 2 || args[1] != ',') return std::string(kErrInval);
  if (args[0] < '0' || args[0] > '4') return "";
  const std::string_view rest = before(args.substr(2), ';');
  auto al = addr_len(rest);
  if (!al) return std::string(kErrInval);
  if (args[0] >= '2') {
    if (al->second == 0 || al->second > 4096) return std::string(kErrInval);
    const auto type = static_cast<Watch>(args[0] - '0');
    auto r = insert ? m_target.insert_watchpoint(m_g_vcpu, type, al->first, al->second)
                    : m_target.remove_watchpoint(type, al->first, al->second);
    if (!r) {
      spdlog::info("gdb: watchpoint at {:#x}: {}", al->first, r.error().message);
      return std::string(kErrFault);
    }
    return "OK";
  }
  if (al->second != 2 && al->second != 4) return std::string(kErrInval);
  auto r = insert ? m_target.insert_breakpoint(m_g_vcpu, al->first) : m_target.remove_breakpoint(al->first);
  if (!r) {
    spdlog::info("gdb: breakpoint at {:#x}: {}", al->first, r.error().message);
    return std::string(kErrFault);
  }
  return "OK";
}

std::string Session::select_thread(std::string_view args) {
  if (args.empty()) return std::string(kErrInval);
  const char which = args[0];
  auto v = thread_vcpu(args.substr(1));
  if (!v) return std::string(kErrNoThread);
  if (which == 'g') {
    m_g_vcpu = *v;
  } else if (which == 'c') {
    m_c_vcpu = *v;
  } else {
    return std::string(kErrInval);
  }
  return "OK";
}

std::optional<std::string> Session::query(std::string_view q) {
  if (q.starts_with("qSupported")) {
    return fmt::format("PacketSize={:x};qXfer:features:read+;vContSupported+;QStartNoAckMode+", kMaxPacket);
  }
  if (q == "QStartNoAckMode") {
    m_no_ack = true;
    return "OK";
  }
  if (q.starts_with("qXfer:features:read:")) {
    // qXfer:features:read:ANNEX:OFFSET,LENGTH
    std::string_view rest = q.substr(20);
    const size_t colon = rest.find(':');
    if (colon == std::string_view::npos) return std::string(kErrInval);
    if (rest.substr(0, colon) != "target.xml") return "E00";
    auto al = addr_len(rest.substr(colon + 1));
    if (!al) return std::string(kErrInval);
    const std::string& xml = target_xml();
    const uint64_t off = al->first, len = std::min<uint64_t>(al->second, kMaxPacket / 2);
    if (off >= xml.size()) return "l";
    const std::string part = xml.substr(off, len);
    return (off + part.size() >= xml.size() ? "l" : "m") + part;
  }
  if (q == "qAttached" || q.starts_with("qAttached:")) return "1";  // detach, do not kill, on quit
  if (q == "qC") return fmt::format("QC{:x}", m_g_vcpu + 1);
  if (q == "qfThreadInfo") {
    std::string s = "m";
    for (unsigned v = 0; v < m_target.vcpu_count(); ++v) s += fmt::format("{}{:x}", v ? "," : "", v + 1);
    return s;
  }
  if (q == "qsThreadInfo") return "l";
  if (q.starts_with("qThreadExtraInfo,")) {
    auto v = thread_vcpu(q.substr(17));
    if (!v) return std::string(kErrNoThread);
    const std::string text = fmt::format("vCPU {}", *v);
    return to_hex({reinterpret_cast<const uint8_t*>(text.data()), text.size()});
  }
  if (q == "qSymbol::") return "OK";
  return "";  // unsupported query: the empty reply
}

std::optional<std::string> Session::resume_packet(std::string_view payload) {
  // c [addr], s [addr], C sig[;addr], S sig[;addr], vCont;ACTION[:tid];...
  // vCont: the first action that names a thread applies to it; one without a thread to
  // every thread not named; threads with no action stay stopped.
  const unsigned n = m_target.vcpu_count();
  std::vector<bool> run(n, false), named(n, false);
  std::optional<unsigned> step;
  std::optional<uint64_t> new_pc;
  if (payload.starts_with("vCont;")) {
    std::string_view rest = payload.substr(6);
    while (!rest.empty()) {
      const std::string_view action = before(rest, ';');
      rest = action.size() < rest.size() ? rest.substr(action.size() + 1) : std::string_view{};
      if (action.empty()) return std::string(kErrInval);
      const char a = action[0];
      const size_t colon = action.find(':');
      std::optional<unsigned> vcpu;
      if (colon != std::string_view::npos) {
        vcpu = thread_vcpu(action.substr(colon + 1));
        if (!vcpu) return std::string(kErrNoThread);
      }
      if (a != 's' && a != 'S' && a != 'c' && a != 'C') {
        return std::string(kErrInval);  // 't' and ranged steps are non-stop/extension features
      }
      const bool is_step = a == 's' || a == 'S';
      if (vcpu) {
        if (named[*vcpu]) continue;
        named[*vcpu] = run[*vcpu] = true;
        if (is_step && !step) step = *vcpu;
      } else {
        for (unsigned v = 0; v < n; ++v) {
          if (named[v]) continue;
          named[v] = run[v] = true;
          if (is_step && !step) step = v;  // "vCont;s": the current thread steps
        }
      }
    }
  } else {
    run.assign(n, true);
    const char a = payload[0];
    std::string_view arg = payload.substr(1);
    if (a == 'C' || a == 'S') arg = arg.find(';') == std::string_view::npos ? std::string_view{} : arg.substr(arg.find(';') + 1);
    if (!arg.empty()) {
      new_pc = parse_hex_u64(arg);
      if (!new_pc) return std::string(kErrInval);
    }
    if (a == 's' || a == 'S') step = m_c_vcpu;
  }
  if (new_pc && !m_target.write_register(m_c_vcpu, kRegPc, *new_pc)) return std::string(kErrInval);
  if (auto r = m_target.resume(run, step); !r) {
    spdlog::info("gdb: resume: {}", r.error().message);
    return std::string(kErrInval);
  }
  m_running = true;
  return std::nullopt;
}

std::optional<std::string> Session::handle(std::string_view p) {
  if (p.empty()) return "";
  switch (p[0]) {
    case '?': return stop_reply(m_last);
    case 'g': return read_registers();
    case 'G': return write_registers(p.substr(1));
    case 'p': {
      auto n = parse_hex_u64(p.substr(1));
      if (!n || *n > 0xffff) return std::string(kErrInval);
      auto v = m_target.read_register(m_g_vcpu, static_cast<unsigned>(*n));
      if (!v) return std::string(kErrInval);
      const bool narrow = *n == kRegFflags || *n == kRegFrm || *n == kRegFcsr;
      return to_hex_le(*v, narrow ? 4 : 8);
    }
    case 'P': {
      const size_t eq = p.find('=');
      if (eq == std::string_view::npos) return std::string(kErrInval);
      auto n = parse_hex_u64(p.substr(1, eq - 1));
      auto v = parse_hex_le(p.substr(eq + 1));
      if (!n || !v || *n > 0xffff) return std::string(kErrInval);
      return m_target.write_register(m_g_vcpu, static_cast<unsigned>(*n), *v) ? "OK" : std::string(kErrInval);
    }
    case 'm': return read_memory(p.substr(1));
    case 'M': return write_memory(p.substr(1), false);
    case 'X': return write_memory(p.substr(1), true);
    case 'Z': return breakpoint(p.substr(1), true);
    case 'z': return breakpoint(p.substr(1), false);
    case 'H': return select_thread(p.substr(1));
    case 'T': return thread_vcpu(p.substr(1)) ? "OK" : std::string(kErrNoThread);
    case 'c':
    case 's':
    case 'C':
    case 'S': return resume_packet(p);
    case 'D':
    case 'k':
      m_finished = true;
      return p[0] == 'D' ? std::optional<std::string>("OK") : std::nullopt;
    case 'q':
    case 'Q': return query(p);
    case 'v':
      if (p == "vCont?") return "vCont;c;C;s;S";
      if (p.starts_with("vCont;")) return resume_packet(p);
      if (p == "vMustReplyEmpty") return "";
      return "";
    default: return "";
  }
}

bool Session::send(std::string_view payload) {
  m_last_sent = frame(payload);
  size_t done = 0;
  while (done < m_last_sent.size()) {
    const ssize_t n = ::send(m_fd, m_last_sent.data() + done, m_last_sent.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

void Session::run(const std::function<bool()>& should_quit, int refuse_fd) {
  PacketReader reader;
  std::array<uint8_t, 4096> buf{};
  bool open = true;
  while (open && !m_finished) {
    if (should_quit && should_quit()) break;
    if (auto end = m_target.ended()) {
      send(stop_reply(*end));
      break;
    }
    std::array<pollfd, 3> fds{{{m_fd, POLLIN, 0}, {m_running ? m_target.stop_fd() : -1, POLLIN, 0}, {refuse_fd, POLLIN, 0}}};
    const int n = ::poll(fds.data(), fds.size(), 200);
    if (n < 0 && errno != EINTR) break;
    if (n <= 0) continue;
    if (fds[2].revents & POLLIN) {
      const int extra = ::accept4(refuse_fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (extra >= 0) {
        spdlog::info("gdb: refused a second connection: one debugger at a time");
        ::close(extra);
      }
    }
    if (fds[1].revents & POLLIN) {
      if (auto stop = m_target.take_stop()) {
        stopped(*stop);
        if (!send(stop_reply(*stop))) break;
      }
    }
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      const ssize_t got = ::recv(m_fd, buf.data(), buf.size(), 0);
      if (got <= 0) break;
      reader.feed({buf.data(), static_cast<size_t>(got)});
      while (auto in = reader.next()) {
        switch (in->kind) {
          case Input::Kind::kAck: break;
          case Input::Kind::kNak:
            if (!m_last_sent.empty()) ::send(m_fd, m_last_sent.data(), m_last_sent.size(), MSG_NOSIGNAL);
            break;
          case Input::Kind::kBadPacket:
            if (!m_no_ack) ::send(m_fd, "-", 1, MSG_NOSIGNAL);
            break;
          case Input::Kind::kInterrupt:
            if (m_running) {
              const StopReason stop = m_target.interrupt();
              stopped(stop);
              if (!send(stop_reply(stop))) open = false;
            }
            break;
          case Input::Kind::kPacket: {
            if (!m_no_ack) ::send(m_fd, "+", 1, MSG_NOSIGNAL);
            if (m_running) break;  // all-stop: nothing but Ctrl-C is meaningful while it runs
            auto reply = handle(in->payload);
            if (reply && !send(*reply)) open = false;
            break;
          }
        }
        if (!open || m_finished) break;
      }
    }
  }
  if (m_running) {
    m_target.interrupt();
    m_running = false;
  }
  m_target.detach();
}

}  // namespace vigil::toolstack::gdb
