#include "toolstack/xl_config.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <utility>
#include <vector>

namespace vigil::toolstack {

namespace {

using hv::DiskConfig;
using hv::DomainConfig;
using hv::LifecycleAction;
using hv::NetConfig;
using hv::VtpmConfig;

constexpr uint64_t kMinMemoryMib = 16;
constexpr uint64_t kMaxMemoryMib = 65536;
constexpr uint64_t kMaxVcpus = 8;
constexpr uint64_t kMaxCpuWeight = 65535;
constexpr uint64_t kCapPerVcpu = 100;
// Pin sets are stored as vectors of worker ids, so a bound keeps "0-4000000000" from allocating
// gigabytes; it is far above the core count of any host Vigil runs on.
constexpr unsigned kMaxCpuId = 1023;
constexpr size_t kMaxNameLength = 64;
constexpr size_t kMaxIfNameLength = 15;  // Linux IFNAMSIZ minus the terminating NUL
constexpr size_t kMaxVdevLength = 16;
// A config is a few hundred bytes. Refusing big files keeps `vigil create disk.img` from reading a
// whole image into memory only to report a syntax error.
constexpr uintmax_t kMaxConfigBytes = 1 << 20;
// Long keys and values are cut in messages so one sentence stays one line.
constexpr size_t kMaxShownChars = 48;

constexpr std::array<std::string_view, 23> kKnownKeys = {
    "name", "memory", "vcpus",       "kernel",    "ramdisk",  "extra",      "cmdline", "firmware", "disk",
    "vif",  "rng",    "on_poweroff", "on_reboot", "on_crash", "cpu_weight", "cap",     "cpus",     "system_map",
    "kernel_btf", "vtpm", "psr_cmt", "psr_cat_cbm", "psr_mba_thrtl"};

// Xen keys that Vigil cannot honour. Ignoring them would boot something other than what the file
// asks for, so each is an error that says what to do instead.
struct UnsupportedKey {
  std::string_view key;
  std::string_view hint;
};
constexpr std::array<UnsupportedKey, 10> kUnsupportedKeys = {{
    {"root", "Vigil does not add it to the command line; put root=... in extra"},
    {"maxmem", "memory ballooning is not supported; set memory alone"},
    {"maxvcpus", "vCPU hotplug is not supported; set vcpus alone"},
    {"bootloader", "Vigil boots the kernel directly; set kernel (and ramdisk) instead"},
    {"cpus_soft", "soft affinity is not supported; use cpus for hard pinning"},
    {"pci", "PCI passthrough is not supported"},
    {"vfb", "Vigil guests have no framebuffer; the console is the UART or hvc0"},
    {"vnc", "Vigil guests have no framebuffer; the console is the UART or hvc0"},
    {"sdl", "Vigil guests have no framebuffer; the console is the UART or hvc0"},
    {"serial", "the console is always the board's UART (ttyS0) or the SBI console (hvc0)"},
}};

// ---------------------------------------------------------------------------------------------
// Small text helpers

std::string_view trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  const auto last = s.find_last_not_of(" \t");
  return s.substr(first, last - first + 1);
}

// Cuts at a character boundary so a message never ends in half a UTF-8 sequence.
std::string shorten(std::string_view s) {
  if (s.size() <= kMaxShownChars) return std::string(s);
  size_t cut = kMaxShownChars;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xc0) == 0x80) --cut;
  return std::string(s.substr(0, cut)) + "...";
}

// The inverse of the double-quoted string reader, so to_xl_config output parses back exactly.
std::string quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        out += c;
    }
  }
  return out + "\"";
}

std::string shown(std::string_view s) {
  return quote(shorten(s));
}

bool is_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool is_hex_digits(std::string_view s) {
  return !s.empty() &&
         std::all_of(s.begin(), s.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
}

bool looks_numeric(std::string_view s) {
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) return is_hex_digits(s.substr(2));
  return is_digits(s);
}

enum class NumberProblem { kNotANumber, kLeadingZero, kTooLarge };

std::expected<uint64_t, NumberProblem> parse_uint(std::string_view s) {
  int base = 10;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    s.remove_prefix(2);
    base = 16;
    if (!is_hex_digits(s)) return std::unexpected(NumberProblem::kNotANumber);
  } else {
    if (!is_digits(s)) return std::unexpected(NumberProblem::kNotANumber);
    if (s.size() > 1 && s[0] == '0') return std::unexpected(NumberProblem::kLeadingZero);
  }
  uint64_t value = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value, base);
  if (ec == std::errc::result_out_of_range) return std::unexpected(NumberProblem::kTooLarge);
  if (ec != std::errc() || end != s.data() + s.size()) return std::unexpected(NumberProblem::kNotANumber);
  return value;
}

// Optimal string alignment distance: a transposition ("memroy") counts as one edit.
size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      const bool same = std::tolower(static_cast<unsigned char>(a[i - 1])) ==
                        std::tolower(static_cast<unsigned char>(b[j - 1]));
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (same ? 0 : 1)});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

std::string_view closest_key(std::string_view key) {
  if (key.size() > 2 * kMaxShownChars) return {};
  const size_t allowed = key.size() <= 4 ? 1 : 2;
  std::string_view best;
  size_t best_distance = allowed + 1;
  auto consider = [&](std::string_view candidate) {
    const size_t distance = edit_distance(key, candidate);
    if (distance < best_distance) {
      best = candidate;
      best_distance = distance;
    }
  };
  for (auto k : kKnownKeys) consider(k);
  for (auto k : kIgnoredXlKeys) consider(k);
  for (const auto& u : kUnsupportedKeys) consider(u.key);
  return best;
}

std::unexpected<Error> located_error(const std::string& origin, int line, std::string_view key,
                                     std::string_view what) {
  if (key.empty()) return make_error("{}:{}: {}", origin, line, what);
  return make_error("{}:{}: {}: {}", origin, line, shorten(key), what);
}

// ---------------------------------------------------------------------------------------------
// Reading: text -> settings. Values keep their kind so each key can say what it expected.

struct Value {
  enum class Kind { kNumber, kString, kWord, kList };
  Kind kind = Kind::kWord;
  std::string text;  // numbers and bare words as written; strings after unescaping
  int line = 0;
  std::vector<Value> items;  // kList only
};

struct Setting {
  std::string key;
  int line = 0;
  Value value;
};

std::string describe(const Value& v) {
  switch (v.kind) {
    case Value::Kind::kNumber:
    case Value::Kind::kWord:
      return shorten(v.text);
    case Value::Kind::kString:
      return shown(v.text);
    case Value::Kind::kList:
      return "a list";
  }
  return {};
}

bool is_bare_char(char c) {
  switch (c) {
    case ' ':
    case '\t':
    case '\r':
    case '\n':
    case '=':
    case '[':
    case ']':
    case ',':
    case ';':
    case '#':
    case '"':
    case '\'':
      return false;
    default:
      return true;
  }
}

bool is_key(std::string_view s) {
  if (s.empty() || !(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
  });
}

class Reader {
 public:
  Reader(std::string_view text, const std::string& origin) : m_text(text), m_origin(origin) {}

  Result<std::vector<Setting>> read() {
    if (auto checked = check_text(); !checked) return std::unexpected(checked.error());
    std::vector<Setting> settings;
    for (;;) {
      skip_blank(/*eat_semicolons=*/true);
      if (at_end()) return settings;
      const int line = m_line;
      const std::string_view key = bare();
      if (key.empty() || !is_key(key)) {
        const std::string got = key.empty() ? next_description() : shorten(key);
        return located_error(m_origin, line, "", fmt::format("expected KEY = VALUE, got {}", got));
      }
      skip_spaces();
      if (peek() != '=') {
        return located_error(m_origin, line, key,
                             fmt::format("expected '=' after the key, got {}", next_description()));
      }
      ++m_pos;
      skip_spaces();
      auto value = read_value(key);
      if (!value) return std::unexpected(value.error());
      skip_spaces();
      if (!at_end() && peek() != '\n' && peek() != ';') {
        return located_error(
            m_origin, m_line, key,
            fmt::format("unexpected {} after the value; write one KEY = VALUE per line", next_description()));
      }
      settings.push_back(Setting{std::string(key), line, std::move(*value)});
    }
  }

 private:
  // Control characters mean a binary file or a corrupted one; naming the line beats a confusing
  // syntax error further on. Tabs and CR (CRLF files) are ordinary whitespace.
  Result<void> check_text() const {
    int line = 1;
    for (char c : m_text) {
      const auto u = static_cast<unsigned char>(c);
      if (c == '\n') {
        ++line;
      } else if ((u < 0x20 && c != '\t' && c != '\r') || u == 0x7f) {
        return located_error(
            m_origin, line, "",
            fmt::format("control character {:#04x} in the file; an xl config is plain text", u));
      }
    }
    return {};
  }

  bool at_end() const { return m_pos >= m_text.size(); }
  char peek() const { return at_end() ? '\0' : m_text[m_pos]; }

  // Spaces and a trailing comment, but not the newline that ends the setting.
  void skip_spaces() {
    while (!at_end()) {
      const char c = peek();
      if (c == ' ' || c == '\t' || c == '\r') {
        ++m_pos;
      } else if (c == '#') {
        while (!at_end() && peek() != '\n') ++m_pos;
      } else {
        return;
      }
    }
  }

  void skip_blank(bool eat_semicolons) {
    for (;;) {
      skip_spaces();
      if (peek() == '\n' && !at_end()) {
        ++m_pos;
        ++m_line;
      } else if (eat_semicolons && peek() == ';') {
        ++m_pos;
      } else {
        return;
      }
    }
  }

  std::string_view bare() {
    const size_t start = m_pos;
    while (!at_end() && is_bare_char(peek())) ++m_pos;
    return m_text.substr(start, m_pos - start);
  }

  std::string next_description() const {
    if (at_end()) return "the end of the file";
    const char c = peek();
    if (c == '\n') return "the end of the line";
    if (c == '"' || c == '\'') return "a string";
    if (!is_bare_char(c)) return fmt::format("'{}'", c);
    size_t end = m_pos;
    while (end < m_text.size() && is_bare_char(m_text[end])) ++end;
    return shorten(m_text.substr(m_pos, end - m_pos));
  }

  Result<Value> read_value(std::string_view key) {
    if (peek() == '[') return read_list(key);
    if (at_end() || peek() == '\n' || peek() == ';') {
      return located_error(m_origin, m_line, key, "missing value after '='");
    }
    return read_scalar(key);
  }

  Result<Value> read_scalar(std::string_view key) {
    const int line = m_line;
    if (peek() == '"' || peek() == '\'') {
      auto text = read_string(key);
      if (!text) return std::unexpected(text.error());
      return Value{Value::Kind::kString, std::move(*text), line, {}};
    }
    const std::string_view word = bare();
    if (word.empty()) {
      return located_error(m_origin, line, key, fmt::format("expected a value, got {}", next_description()));
    }
    return Value{
        looks_numeric(word) ? Value::Kind::kNumber : Value::Kind::kWord, std::string(word), line, {}};
  }

  Result<std::string> read_string(std::string_view key) {
    const char quote_char = peek();
    const int line = m_line;
    ++m_pos;
    std::string out;
    auto unterminated = [&] {
      return located_error(m_origin, line, key,
                           fmt::format("unterminated string: no closing {} on this line", quote_char));
    };
    for (;;) {
      if (at_end() || peek() == '\n') return unterminated();
      const char c = m_text[m_pos++];
      if (c == quote_char) return out;
      if (c != '\\' || quote_char == '\'') {
        out += c;
        continue;
      }
      if (at_end() || peek() == '\n') return unterminated();
      const char escaped = m_text[m_pos++];
      switch (escaped) {
        case 'n':
          out += '\n';
          break;
        case 't':
          out += '\t';
          break;
        case 'r':
          out += '\r';
          break;
        case '\\':
        case '"':
        case '\'':
          out += escaped;
          break;
        default:
          return located_error(m_origin, line, key,
                               fmt::format("unknown escape \\{} in a double-quoted string; write \\\\ for a "
                                           "backslash, or use single quotes",
                                           escaped));
      }
    }
  }

  Result<Value> read_list(std::string_view key) {
    const int start = m_line;
    ++m_pos;  // '['
    Value list{Value::Kind::kList, "", start, {}};
    auto unterminated = [&] {
      return located_error(m_origin, start, key,
                           "unterminated list: the '[' on this line has no matching ']'");
    };
    for (;;) {
      skip_blank(/*eat_semicolons=*/false);
      if (at_end()) return unterminated();
      if (peek() == ']') {
        ++m_pos;
        return list;
      }
      if (peek() == ',') {
        return located_error(m_origin, m_line, key, "empty list entry: a ',' with no value before it");
      }
      if (peek() == '[') return located_error(m_origin, m_line, key, "lists cannot be nested");
      auto item = read_scalar(key);
      if (!item) return std::unexpected(item.error());
      list.items.push_back(std::move(*item));
      skip_blank(/*eat_semicolons=*/false);
      if (at_end()) return unterminated();
      if (peek() == ',') {
        ++m_pos;
      } else if (peek() == ']') {
        ++m_pos;
        return list;
      } else {
        return located_error(m_origin, m_line, key,
                             fmt::format("expected ',' or ']' after a list entry, got {} (is the ']' for the "
                                         "'[' on line {} missing?)",
                                         next_description(), start));
      }
    }
  }

  std::string_view m_text;
  const std::string& m_origin;
  size_t m_pos = 0;
  int m_line = 1;
};

// ---------------------------------------------------------------------------------------------
// Disk specs (xl-disk-configuration): "FILE", positional "FILE,FORMAT,VDEV,ACCESS", or
// "format=raw, vdev=xvda, access=rw, target=FILE", mixed as Xen allows: a parameter without '='
// fills the first positional slot not yet given, and an empty value means the default. target=
// takes the rest of the spec, commas included, which is why Xen wants it last. Errors are returned
// without the file/line prefix.

// Xen's bare-word flags. They would otherwise land in a positional slot and draw a confusing error.
constexpr std::array<std::string_view, 5> kDiskFlags = {"cdrom", "discard", "no-discard", "direct-io-safe",
                                                        "colo"};
// Xen's deprecated "file:/img,xvda,w" form puts the format in a target prefix and shifts the
// positional order, so reading it as FILE,FORMAT,... would misparse it.
constexpr std::array<std::string_view, 9> kDeprecatedTargetPrefixes = {
    "file:", "phy:", "raw:", "aio:", "tap:", "tap2:", "qcow:", "qcow2:", "vhd:"};

bool is_vdev(std::string_view s) {
  if (s.empty() || s.size() > kMaxVdevLength || s[0] < 'a' || s[0] > 'z') return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); });
}

std::expected<DiskConfig, std::string> parse_disk_spec(std::string_view spec) {
  if (trim(spec).empty()) {
    return std::unexpected(std::string("empty disk spec; give at least the image file"));
  }
  constexpr std::array<std::string_view, 4> kPositional = {"target", "format", "vdev", "access"};
  std::array<std::optional<std::string>, 4> slots;  // indexed like kPositional
  bool format_was_positional = false;
  std::string_view rest = spec;
  for (;;) {
    const size_t comma = rest.find(',');
    const std::string_view item = trim(rest.substr(0, comma));
    const size_t eq = item.find('=');
    if (eq == std::string_view::npos) {
      if (std::find(kDiskFlags.begin(), kDiskFlags.end(), item) != kDiskFlags.end()) {
        return std::unexpected(fmt::format("the {} flag is not supported", item));
      }
      const auto free_slot = std::find_if(slots.begin(), slots.end(), [](const auto& slot) { return !slot; });
      if (free_slot == slots.end()) {
        return std::unexpected(fmt::format(
            "too many positional parameters at {}; the order is FILE,FORMAT,VDEV,ACCESS", shown(item)));
      }
      const auto slot = static_cast<size_t>(free_slot - slots.begin());
      if (slot == 0) {
        for (auto prefix : kDeprecatedTargetPrefixes) {
          if (item.starts_with(prefix)) {
            return std::unexpected(fmt::format(
                "{} uses Xen's deprecated FORMAT:FILE form; write FILE,raw,VDEV,ACCESS", shown(item)));
          }
        }
      }
      slots[slot] = std::string(item);
      if (slot == 1) format_was_positional = true;
    } else {
      const std::string_view key = trim(item.substr(0, eq));
      const auto it = std::find(kPositional.begin(), kPositional.end(), key);
      if (it == kPositional.end()) {
        return std::unexpected(fmt::format(
            "unknown disk parameter {}= (Vigil takes format, vdev, access and target)", shorten(key)));
      }
      const auto slot = static_cast<size_t>(it - kPositional.begin());
      if (slots[slot]) return std::unexpected(fmt::format("{} is given twice", key));
      if (key == "target") {
        // item starts at rest's first non-blank, so rest's first '=' is the one after "target".
        slots[slot] = std::string(trim(rest.substr(rest.find('=') + 1)));
        break;
      }
      slots[slot] = std::string(trim(item.substr(eq + 1)));
    }
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }

  const auto& [target, format, vdev, access] = slots;
  DiskConfig disk;
  if (!target || target->empty()) return std::unexpected(std::string("no image file given (target)"));
  disk.path = *target;
  if (format && !format->empty() && *format != "raw") {
    return std::unexpected(
        fmt::format("format {} is not supported, only raw is{}", shown(*format),
                    format_was_positional ? " (positional specs are FILE,FORMAT,VDEV,ACCESS)" : ""));
  }
  if (vdev && !vdev->empty()) {
    if (!is_vdev(*vdev)) {
      return std::unexpected(fmt::format("vdev {} is not a device name like xvda", shown(*vdev)));
    }
    disk.vdev = *vdev;
  }
  if (access && !access->empty()) {
    if (*access == "ro" || *access == "r") {
      disk.read_only = true;
    } else if (*access != "rw" && *access != "w") {
      return std::unexpected(fmt::format("access {} must be rw or ro", shown(*access)));
    }
  }
  return disk;
}

std::string format_disk_spec(const DiskConfig& disk) {
  std::string spec = "format=raw, ";
  if (!disk.vdev.empty()) spec += fmt::format("vdev={}, ", disk.vdev);
  spec += fmt::format("access={}, target={}", disk.read_only ? "ro" : "rw", disk.path);
  return spec;
}

// ---------------------------------------------------------------------------------------------
// vtpm specs: comma-separated KEY=VALUE, all optional ("" is a vTPM with vigild's defaults).
//   state=DIR    the swtpm state directory (relative: to the config file's directory; last, as it
//                takes the rest of the spec, commas included); without
//                it, vigild uses <vigild --vtpm-dir>/<domain name>
// Xen's own keys name a vTPM stub domain (backend=, uuid=) that Vigil does not have.
std::expected<VtpmConfig, std::string> parse_vtpm_spec(std::string_view spec) {
  VtpmConfig vtpm;
  std::string_view rest = spec;
  while (!trim(rest).empty()) {
    const size_t comma = rest.find(',');
    const std::string_view item = trim(rest.substr(0, comma));
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    const std::string_view key = trim(item.substr(0, eq));
    if (eq == std::string_view::npos) {
      return std::unexpected(fmt::format("{} is not KEY=VALUE (Vigil takes state=DIR)", shown(item)));
    }
    if (key == "state") {
      // Like a disk's target=, state= takes the rest of the spec, commas included.
      const std::string_view value = trim(spec.substr(spec.find('=', static_cast<size_t>(item.data() - spec.data())) + 1));
      if (value.empty()) return std::unexpected(std::string("state= needs a directory"));
      if (value.find('\0') != std::string_view::npos) return std::unexpected(std::string("state= holds a NUL byte"));
      vtpm.state_dir = std::string(value);
      break;
    } else if (key == "backend" || key == "uuid" || key == "backend_id") {
      return std::unexpected(fmt::format(
          "{}= names a Xen vTPM stub domain; Vigil runs a swtpm process per domain itself (take state=DIR)", key));
    } else {
      return std::unexpected(fmt::format("unknown vtpm parameter {}= (Vigil takes state)", shorten(key)));
    }
  }
  return vtpm;
}

std::string format_vtpm_spec(const VtpmConfig& vtpm) {
  return vtpm.state_dir.empty() ? std::string() : "state=" + vtpm.state_dir;
}

// ---------------------------------------------------------------------------------------------
// vif specs. Vigil's mapping onto NetConfig (Xen's own vif keys describe a bridge/backend setup
// that Vigil does not have):
//   model=user|tap        NetConfig::model (default user: libslirp, no host setup needed)
//   mac=52:54:00:12:34:56 NetConfig::mac, unicast, stored lowercase (default: generated)
//   tap=NAME              NetConfig::tap_name, required with model=tap; vifname= is Xen's alias
//   hostfwd=tcp:H-:G      NetConfig::forwards, model=user only; several joined by ';' or repeated

bool is_ifname(std::string_view s) {
  if (s.empty() || s.size() > kMaxIfNameLength || s == "." || s == "..") return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
  });
}

std::expected<std::string, std::string> parse_mac(std::string_view mac) {
  auto bad = [&](std::string_view why) { return std::unexpected(fmt::format("mac {} {}", shown(mac), why)); };
  if (mac.size() != 17) return bad("is not a MAC address like 52:54:00:12:34:56");
  std::string out;
  unsigned first = 0;
  bool all_zero = true;
  for (size_t i = 0; i < 6; ++i) {
    const std::string_view octet = mac.substr(3 * i, 2);
    if (!is_hex_digits(octet) || (i < 5 && mac[3 * i + 2] != ':')) {
      return bad("is not a MAC address like 52:54:00:12:34:56");
    }
    unsigned value = 0;
    std::from_chars(octet.data(), octet.data() + 2, value, 16);
    if (i == 0) first = value;
    if (value != 0) all_zero = false;
    out += fmt::format("{}{:02x}", i == 0 ? "" : ":", value);
  }
  if (first & 1) return bad("is a multicast address; the first byte must be even");
  if (all_zero) return bad("is all zeros");
  return out;
}

std::expected<std::pair<uint16_t, uint16_t>, std::string> parse_forward(std::string_view rule) {
  const std::string_view text = trim(rule);
  auto bad = [&] {
    return std::unexpected(fmt::format("hostfwd {} is not like tcp:HOSTPORT-:GUESTPORT", shown(text)));
  };
  if (text.starts_with("udp:")) {
    return std::unexpected(fmt::format("hostfwd {}: only tcp forwards are supported", shown(text)));
  }
  if (!text.starts_with("tcp:")) return bad();
  std::string_view body = text.substr(4);
  if (body.starts_with(':')) body.remove_prefix(1);  // QEMU's "tcp::8080-:80", an empty host address
  const size_t dash = body.find('-');
  if (dash == std::string_view::npos || dash + 1 >= body.size() || body[dash + 1] != ':') return bad();
  const std::string_view ports[2] = {body.substr(0, dash), body.substr(dash + 2)};
  uint16_t parsed[2] = {};
  for (int i = 0; i < 2; ++i) {
    if (!is_digits(ports[i])) return bad();
    const auto port = parse_uint(ports[i]);
    if (!port || *port == 0 || *port > 65535) {
      return std::unexpected(
          fmt::format("hostfwd {}: port {} must be 1 to 65535", shown(text), shorten(ports[i])));
    }
    parsed[i] = static_cast<uint16_t>(*port);
  }
  return std::pair{parsed[0], parsed[1]};
}

std::expected<NetConfig, std::string> parse_vif_spec(std::string_view spec) {
  NetConfig nic;
  bool have_model = false, have_mac = false, have_tap = false;
  std::string_view rest = spec;
  for (;;) {
    const size_t comma = rest.find(',');
    const std::string_view item = trim(rest.substr(0, comma));
    if (!item.empty()) {
      const size_t eq = item.find('=');
      if (eq == std::string_view::npos) {
        return std::unexpected(
            fmt::format("{} is not a KEY=VALUE setting (entries look like model=user,mac=...)", shown(item)));
      }
      const std::string_view key = trim(item.substr(0, eq));
      const std::string_view value = trim(item.substr(eq + 1));
      auto once = [&](bool& seen) -> std::expected<void, std::string> {
        if (seen) return std::unexpected(fmt::format("{} is given twice", key));
        seen = true;
        return {};
      };
      if (key == "model") {
        if (auto ok = once(have_model); !ok) return std::unexpected(ok.error());
        if (value != "user" && value != "tap") {
          return std::unexpected(fmt::format("model {} must be user or tap", shown(value)));
        }
        nic.model = std::string(value);
      } else if (key == "mac") {
        if (auto ok = once(have_mac); !ok) return std::unexpected(ok.error());
        auto mac = parse_mac(value);
        if (!mac) return std::unexpected(mac.error());
        nic.mac = std::move(*mac);
      } else if (key == "tap" || key == "vifname") {
        if (have_tap) {
          return std::unexpected(
              fmt::format("{} is given twice (tap and vifname are the same setting)", key));
        }
        have_tap = true;
        if (!is_ifname(value)) {
          return std::unexpected(fmt::format("{} {} is not an interface name (1 to {} of A-Z a-z 0-9 _ . -)",
                                             key, shown(value), kMaxIfNameLength));
        }
        nic.tap_name = std::string(value);
      } else if (key == "hostfwd") {
        std::string_view rules = value;
        for (;;) {
          const size_t semi = rules.find(';');
          auto forward = parse_forward(rules.substr(0, semi));
          if (!forward) return std::unexpected(forward.error());
          for (const auto& existing : nic.forwards) {
            if (existing.first == forward->first) {
              return std::unexpected(fmt::format("host port {} is forwarded twice", forward->first));
            }
          }
          nic.forwards.push_back(*forward);
          if (semi == std::string_view::npos) break;
          rules.remove_prefix(semi + 1);
        }
      } else if (key == "bridge") {
        return std::unexpected(
            std::string("bridge= is not supported yet; add the tap device to the bridge outside Vigil (ip "
                        "link set TAP master BRIDGE)"));
      } else {
        return std::unexpected(
            fmt::format("unknown vif parameter {}= (Vigil takes model, mac, tap and hostfwd)", shorten(key)));
      }
    }
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  if (nic.model == "tap") {
    if (!nic.forwards.empty()) return std::unexpected(std::string("hostfwd only works with model=user"));
    if (nic.tap_name.empty()) {
      return std::unexpected(std::string("model=tap needs tap=NAME, the host tap device"));
    }
  } else if (have_tap) {
    return std::unexpected(std::string("tap= needs model=tap"));
  }
  return nic;
}

std::string format_vif_spec(const NetConfig& nic) {
  std::string spec = "model=" + nic.model;
  if (!nic.mac.empty()) spec += ",mac=" + nic.mac;
  if (!nic.tap_name.empty()) spec += ",tap=" + nic.tap_name;
  for (size_t i = 0; i < nic.forwards.size(); ++i) {
    spec += fmt::format("{}tcp:{}-:{}", i == 0 ? ",hostfwd=" : ";", nic.forwards[i].first,
                        nic.forwards[i].second);
  }
  return spec;
}

// ---------------------------------------------------------------------------------------------
// CPU sets: "0-3,5" -> {0,1,2,3,5}; "all" -> {} (no pinning).

std::expected<std::vector<unsigned>, std::string> parse_cpu_set(std::string_view text) {
  const std::string_view whole = trim(text);
  if (whole == "all") return std::vector<unsigned>{};
  auto bad = [&] {
    return std::unexpected(
        fmt::format("expected CPU numbers and ranges like \"0-3,5\" (or \"all\"), got {}", shown(text)));
  };
  std::set<unsigned> cpus;
  std::string_view rest = whole;
  for (;;) {
    const size_t comma = rest.find(',');
    const std::string_view item = trim(rest.substr(0, comma));
    const size_t dash = item.find('-');
    const std::string_view bounds[2] = {trim(item.substr(0, dash)), dash == std::string_view::npos
                                                                        ? trim(item)
                                                                        : trim(item.substr(dash + 1))};
    unsigned parsed[2] = {};
    for (int i = 0; i < 2; ++i) {
      if (!is_digits(bounds[i])) return bad();
      uint64_t value = 0;
      const auto [end, ec] = std::from_chars(bounds[i].data(), bounds[i].data() + bounds[i].size(), value);
      if (ec != std::errc() || value > kMaxCpuId) {
        return std::unexpected(
            fmt::format("CPU {} is above the highest supported id, {}", shorten(bounds[i]), kMaxCpuId));
      }
      parsed[i] = static_cast<unsigned>(value);
    }
    if (parsed[0] > parsed[1]) return std::unexpected(fmt::format("range {} is reversed", shorten(item)));
    for (unsigned cpu = parsed[0]; cpu <= parsed[1]; ++cpu) cpus.insert(cpu);
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return std::vector<unsigned>(cpus.begin(), cpus.end());
}

std::string format_cpu_set(const std::vector<unsigned>& cpus) {
  if (cpus.empty()) return "all";
  std::string out;
  for (size_t i = 0; i < cpus.size();) {
    size_t j = i;
    while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) ++j;
    if (!out.empty()) out += ',';
    out += j == i ? fmt::format("{}", cpus[i]) : fmt::format("{}-{}", cpus[i], cpus[j]);
    i = j + 1;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Applying settings to a DomainConfig.

constexpr std::string_view action_name(LifecycleAction action) {
  switch (action) {
    case LifecycleAction::kDestroy:
      return "destroy";
    case LifecycleAction::kRestart:
      return "restart";
    case LifecycleAction::kPreserve:
      return "preserve";
  }
  return "destroy";
}

class Applier {
 public:
  explicit Applier(const std::string& origin) : m_origin(origin) {}

  Result<DomainConfig> apply(const std::vector<Setting>& settings) {
    for (const auto& s : settings) {
      if (auto ok = check_key(s); !ok) return std::unexpected(ok.error());
      if (auto ok = apply_one(s); !ok) return std::unexpected(ok.error());
    }
    if (auto ok = finish(); !ok) return std::unexpected(ok.error());
    return std::move(m_config);
  }

 private:
  std::unexpected<Error> fail(int line, std::string_view key, std::string_view what) const {
    return located_error(m_origin, line, key, what);
  }
  std::unexpected<Error> fail(const Setting& s, std::string_view what) const {
    return fail(s.line, s.key, what);
  }

  Result<void> check_key(const Setting& s) {
    const std::string_view key = s.key;
    const bool known = std::find(kKnownKeys.begin(), kKnownKeys.end(), key) != kKnownKeys.end();
    const bool ignored = std::find(kIgnoredXlKeys.begin(), kIgnoredXlKeys.end(), key) != kIgnoredXlKeys.end();
    if (!known && !ignored) {
      for (const auto& u : kUnsupportedKeys) {
        if (u.key == key) return fail(s, fmt::format("not supported by Vigil: {}", u.hint));
      }
      if (const auto guess = closest_key(key); !guess.empty()) {
        return fail(s, fmt::format("unknown key (did you mean {}?)", guess));
      }
      return fail(s, fmt::format("unknown key; Vigil knows {}", fmt::join(kKnownKeys, ", ")));
    }
    // cmdline is Xen's other name for extra: both at once is the same mistake as a repeated key.
    const std::string canonical = key == "cmdline" ? "extra" : std::string(key);
    const auto [it, inserted] = m_seen.try_emplace(canonical, s.line, std::string(key));
    if (!inserted) {
      const auto& [first_line, first_key] = it->second;
      if (first_key == key) return fail(s, fmt::format("duplicate key (already set on line {})", first_line));
      return fail(s, fmt::format("duplicate key ({} on line {} is the same setting)", first_key, first_line));
    }
    return {};
  }

  Result<std::string> want_string(const Setting& s) const {
    if (s.value.kind == Value::Kind::kString) return s.value.text;
    if (s.value.kind == Value::Kind::kWord) {
      return fail(s, fmt::format("expected a quoted string, got {} (write {})", describe(s.value),
                                 shown(s.value.text)));
    }
    return fail(s, fmt::format("expected a quoted string, got {}", describe(s.value)));
  }

  // `what` says what a well-formed value looks like, `range` which values are allowed.
  Result<uint64_t> want_uint(const Setting& s, std::string_view what, uint64_t min, uint64_t max,
                             std::string_view range) const {
    const Value& v = s.value;
    if (v.kind != Value::Kind::kNumber && v.kind != Value::Kind::kString) {
      return fail(s, fmt::format("expected {}, got {}", what, describe(v)));
    }
    const auto n = parse_uint(v.text);
    if (!n) {
      switch (n.error()) {
        case NumberProblem::kNotANumber:
          return fail(s, fmt::format("expected {}, got {}", what, describe(v)));
        case NumberProblem::kLeadingZero:
          return fail(
              s, fmt::format("{} has a leading zero, which Xen reads as octal; write the number without it",
                             describe(v)));
        case NumberProblem::kTooLarge:
          break;
      }
      return fail(s, fmt::format("expected {}, got {}", range, describe(v)));
    }
    if (*n < min || *n > max) return fail(s, fmt::format("expected {}, got {}", range, describe(v)));
    return *n;
  }

  Result<LifecycleAction> want_action(const Setting& s) const {
    auto text = want_string(s);
    if (!text) return std::unexpected(text.error());
    if (*text == "destroy") return LifecycleAction::kDestroy;
    if (*text == "restart") return LifecycleAction::kRestart;
    if (*text == "preserve") return LifecycleAction::kPreserve;
    return fail(s,
                fmt::format("expected \"destroy\", \"restart\" or \"preserve\", got {}", describe(s.value)));
  }

  // disk and vif take a list of quoted specs; an error names the entry and its own line.
  Result<std::vector<std::pair<std::string, int>>> want_string_list(const Setting& s) const {
    if (s.value.kind != Value::Kind::kList) {
      return fail(
          s, fmt::format("expected a list of quoted strings like [ \"...\" ], got {}", describe(s.value)));
    }
    std::vector<std::pair<std::string, int>> out;
    for (size_t i = 0; i < s.value.items.size(); ++i) {
      const Value& item = s.value.items[i];
      if (item.kind != Value::Kind::kString) {
        return fail(item.line, s.key,
                    fmt::format("entry {}: expected a quoted string, got {}", i + 1, describe(item)));
      }
      out.emplace_back(item.text, item.line);
    }
    return out;
  }

  Result<void> apply_one(const Setting& s) {
    const std::string_view key = s.key;
    if (key == "name") {
      auto name = want_string(s);
      if (!name) return std::unexpected(name.error());
      const bool valid_chars = std::all_of(name->begin(), name->end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
      });
      if (name->empty() || name->size() > kMaxNameLength || !valid_chars) {
        return fail(s, fmt::format("expected 1 to {} characters from A-Z a-z 0-9 _ . -, got {}",
                                   kMaxNameLength, describe(s.value)));
      }
      // Commands take a domain id or a name, and names become file names: keep them unambiguous.
      if (is_digits(*name)) {
        return fail(
            s, fmt::format("{} is all digits, which commands would read as a domain id", describe(s.value)));
      }
      if (*name == "." || *name == "..") {
        return fail(s, fmt::format("{} is not usable as a name", describe(s.value)));
      }
      if ((*name)[0] == '-') {
        return fail(
            s, fmt::format("{} starts with '-', which commands would read as an option", describe(s.value)));
      }
      m_config.name = std::move(*name);
    } else if (key == "memory") {
      auto mib = want_uint(s, "a positive integer (MiB)", kMinMemoryMib, kMaxMemoryMib,
                           fmt::format("{} to {} (MiB)", kMinMemoryMib, kMaxMemoryMib));
      if (!mib) return std::unexpected(mib.error());
      m_config.memory_mib = *mib;
    } else if (key == "vcpus") {
      auto n = want_uint(s, "a positive integer", 1, kMaxVcpus, fmt::format("1 to {}", kMaxVcpus));
      if (!n) return std::unexpected(n.error());
      m_config.vcpus = static_cast<unsigned>(*n);
    } else if (key == "kernel") {
      auto path = want_string(s);
      if (!path) return std::unexpected(path.error());
      if (path->empty()) return fail(s, "expected the path of the kernel Image, got an empty string");
      m_config.kernel = std::move(*path);
    } else if (key == "ramdisk" || key == "firmware" || key == "extra" || key == "cmdline" || key == "system_map" ||
               key == "kernel_btf") {
      auto text = want_string(s);
      if (!text) return std::unexpected(text.error());
      std::string& field = key == "ramdisk"      ? m_config.ramdisk
                           : key == "firmware"   ? m_config.firmware
                           : key == "system_map" ? m_config.system_map
                           : key == "kernel_btf" ? m_config.kernel_btf
                                                 : m_config.extra;
      field = std::move(*text);
    } else if (key == "disk") {
      return apply_disks(s);
    } else if (key == "vif") {
      return apply_nics(s);
    } else if (key == "rng") {
      auto on = want_uint(s, "0 or 1", 0, 1, "0 or 1");
      if (!on) return std::unexpected(on.error());
      m_config.rng = *on == 1;
    } else if (key == "on_poweroff" || key == "on_reboot" || key == "on_crash") {
      auto action = want_action(s);
      if (!action) return std::unexpected(action.error());
      (key == "on_poweroff" ? m_config.on_poweroff
       : key == "on_reboot" ? m_config.on_reboot
                            : m_config.on_crash) = *action;
    } else if (key == "cpu_weight") {
      auto weight =
          want_uint(s, "a positive integer", 1, kMaxCpuWeight, fmt::format("1 to {}", kMaxCpuWeight));
      if (!weight) return std::unexpected(weight.error());
      m_config.cpu_weight = static_cast<unsigned>(*weight);
    } else if (key == "cap") {
      // The upper bound depends on vcpus, which may come later in the file: checked in finish().
      auto cap =
          want_uint(s, "a non-negative integer (percent of one CPU)", 0, kCapPerVcpu * kMaxVcpus,
                    fmt::format("0 to {} (percent of one CPU, 100 per vCPU)", kCapPerVcpu * kMaxVcpus));
      if (!cap) return std::unexpected(cap.error());
      m_config.cap = static_cast<unsigned>(*cap);
      m_cap_line = s.line;
    } else if (key == "psr_cmt" || key == "psr_cat_cbm" || key == "psr_mba_thrtl") {
      // Noisy-neighbour monitor. The mask's rules (contiguous, within the cache's ways) depend on
      // the vigild's cache model and are checked when the domain is created.
      if (key == "psr_cmt") {
        auto on = want_uint(s, "0 or 1", 0, 1, "0 or 1");
        if (!on) return std::unexpected(on.error());
        m_config.psr_cmt = *on == 1;
      } else if (key == "psr_cat_cbm") {
        auto cbm = want_uint(s, "a capacity bitmask (e.g. 0xf)", 1, ~0ull, "a non-zero capacity bitmask");
        if (!cbm) return std::unexpected(cbm.error());
        m_config.psr_cat_cbm = *cbm;
      } else {
        auto t = want_uint(s, "a throttle in percent", 0, 90, "0 to 90 (percent, in steps of 10)");
        if (!t) return std::unexpected(t.error());
        m_config.psr_mba_thrtl = static_cast<unsigned>(*t);
      }
    } else if (key == "cpus") {
      return apply_cpus(s);
    } else if (key == "vtpm") {
      return apply_vtpm(s);
    }
    return {};  // an ignored key
  }

  Result<void> apply_disks(const Setting& s) {
    auto specs = want_string_list(s);
    if (!specs) return std::unexpected(specs.error());
    for (size_t i = 0; i < specs->size(); ++i) {
      const auto& [spec, line] = (*specs)[i];
      auto entry_error = [&](std::string_view what) {
        return fail(line, s.key, fmt::format("entry {}: {}", i + 1, what));
      };
      auto disk = parse_disk_spec(spec);
      if (!disk) return entry_error(disk.error());
      for (size_t j = 0; j < m_config.disks.size(); ++j) {
        const DiskConfig& other = m_config.disks[j];
        if (!disk->vdev.empty() && other.vdev == disk->vdev) {
          return entry_error(fmt::format("vdev {} is already used by entry {}", disk->vdev, j + 1));
        }
        // Two writers on one image corrupt it; the same image twice read-only is fine.
        if (other.path == disk->path && !(other.read_only && disk->read_only)) {
          return entry_error(
              fmt::format("{} is also entry {}; an image attached twice must be read-only both times",
                          shown(disk->path), j + 1));
        }
      }
      m_config.disks.push_back(std::move(*disk));
    }
    return {};
  }

  Result<void> apply_nics(const Setting& s) {
    auto specs = want_string_list(s);
    if (!specs) return std::unexpected(specs.error());
    for (size_t i = 0; i < specs->size(); ++i) {
      const auto& [spec, line] = (*specs)[i];
      auto entry_error = [&](std::string_view what) {
        return fail(line, s.key, fmt::format("entry {}: {}", i + 1, what));
      };
      auto nic = parse_vif_spec(spec);
      if (!nic) return entry_error(nic.error());
      for (size_t j = 0; j < m_config.nics.size(); ++j) {
        const NetConfig& other = m_config.nics[j];
        if (!nic->mac.empty() && other.mac == nic->mac) {
          return entry_error(fmt::format("mac {} is already used by entry {}", nic->mac, j + 1));
        }
        if (!nic->tap_name.empty() && other.tap_name == nic->tap_name) {
          return entry_error(fmt::format("tap {} is already used by entry {}", nic->tap_name, j + 1));
        }
        // Every user-mode NIC binds its forwards on the host, so host ports must be unique across NICs.
        for (const auto& forward : nic->forwards) {
          for (const auto& taken : other.forwards) {
            if (forward.first == taken.first) {
              return entry_error(
                  fmt::format("host port {} is already forwarded by entry {}", forward.first, j + 1));
            }
          }
        }
      }
      m_config.nics.push_back(std::move(*nic));
    }
    return {};
  }

  // vtpm = [ "SPEC" ]: Xen's list form, with at most one vTPM (one TPM per board, as on QEMU).
  Result<void> apply_vtpm(const Setting& s) {
    auto specs = want_string_list(s);
    if (!specs) return std::unexpected(specs.error());
    if (specs->empty()) return {};  // [] = no vTPM, as in Xen
    if (specs->size() > 1) {
      return fail((*specs)[1].second, s.key, "entry 2: a domain has at most one vTPM");
    }
    auto vtpm = parse_vtpm_spec(specs->front().first);
    if (!vtpm) return fail(specs->front().second, s.key, fmt::format("entry 1: {}", vtpm.error()));
    m_config.vtpm = std::move(*vtpm);
    return {};
  }

  // Per Xen: one string pins every vCPU to that set; a list gives vCPU i the i-th set. Expanding to
  // one entry per vCPU needs vcpus, so the expansion happens in finish().
  Result<void> apply_cpus(const Setting& s) {
    m_cpus_line = s.line;
    auto parse_item = [&](const Value& v, std::string_view prefix) -> Result<std::vector<unsigned>> {
      if (v.kind != Value::Kind::kString && v.kind != Value::Kind::kNumber) {
        return fail(v.line, s.key,
                    fmt::format("{}expected a quoted CPU list like \"0-3,5\" or a list of them, got {}",
                                prefix, describe(v)));
      }
      auto cpus = parse_cpu_set(v.text);
      if (!cpus) return fail(v.line, s.key, fmt::format("{}{}", prefix, cpus.error()));
      return std::move(*cpus);
    };
    if (s.value.kind == Value::Kind::kList) {
      m_cpus_is_list = true;
      for (size_t i = 0; i < s.value.items.size(); ++i) {
        auto cpus = parse_item(s.value.items[i], fmt::format("entry {}: ", i + 1));
        if (!cpus) return std::unexpected(cpus.error());
        m_pins.push_back(std::move(*cpus));
      }
    } else {
      m_cpus_is_list = false;
      auto cpus = parse_item(s.value, "");
      if (!cpus) return std::unexpected(cpus.error());
      m_pins.push_back(std::move(*cpus));
    }
    return {};
  }

  Result<void> finish() {
    if (m_config.name.empty()) {
      return make_error("{}: name: required key is missing (the domain's name)", m_origin);
    }
    if (m_config.kernel.empty()) {
      return make_error("{}: kernel: required key is missing (the path of the kernel Image to boot)",
                        m_origin);
    }
    const unsigned vcpus = m_config.vcpus;
    if (m_config.cap > kCapPerVcpu * vcpus) {
      return fail(m_cap_line, "cap",
                  fmt::format("expected 0 to {} (percent of one CPU, 100 per vCPU with vcpus = {}), got {}",
                              kCapPerVcpu * vcpus, vcpus, m_config.cap));
    }
    if (m_cpus_line != 0) {
      if (!m_cpus_is_list) {
        m_config.cpu_pins.assign(vcpus, m_pins.front());
      } else if (!m_pins.empty()) {
        if (m_pins.size() > vcpus) {
          return fail(m_cpus_line, "cpus",
                      fmt::format("the list has {} entries but vcpus is {}; give at most one entry per vCPU",
                                  m_pins.size(), vcpus));
        }
        m_pins.resize(vcpus);  // vCPUs without an entry run anywhere, as in Xen
        m_config.cpu_pins = std::move(m_pins);
      }
    }
    return {};
  }

  const std::string& m_origin;
  DomainConfig m_config;
  // canonical key (cmdline counts as extra) -> line and key as written
  std::map<std::string, std::pair<int, std::string>, std::less<>> m_seen;
  int m_cap_line = 0;
  int m_cpus_line = 0;
  bool m_cpus_is_list = false;
  std::vector<std::vector<unsigned>> m_pins;
};

}  // namespace

Result<hv::DomainConfig> parse_xl_config(std::string_view text, const std::string& origin) {
  auto settings = Reader(text, origin).read();
  if (!settings) return std::unexpected(settings.error());
  return Applier(origin).apply(*settings);
}

Result<hv::DomainConfig> load_xl_config(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return make_error("cannot read config '{}': {}", path, std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) return make_error("config '{}' is not a regular file", path);
  if (static_cast<uintmax_t>(st.st_size) > kMaxConfigBytes) {
    return make_error(
        "config '{}' is {} bytes, too big for an xl config (at most {} KiB); is it the right file?", path,
        st.st_size, kMaxConfigBytes / 1024);
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error("cannot open config '{}': {}", path, std::strerror(errno));
  const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (in.bad()) return make_error("reading config '{}' failed", path);

  auto config = parse_xl_config(text, path);
  if (!config) return config;
  const std::filesystem::path dir = std::filesystem::path(path).parent_path();
  auto resolve = [&](std::string& file) {
    if (!file.empty() && !dir.empty() && std::filesystem::path(file).is_relative()) {
      file = (dir / file).string();
    }
  };
  resolve(config->kernel);
  resolve(config->ramdisk);
  resolve(config->firmware);
  resolve(config->system_map);
  resolve(config->kernel_btf);
  for (auto& disk : config->disks) resolve(disk.path);
  if (config->vtpm) resolve(config->vtpm->state_dir);
  return config;
}

std::string to_xl_config(const hv::DomainConfig& config) {
  std::string out = "# Vigil domain configuration (xl.cfg syntax)\n";
  auto set = [&](std::string_view key, std::string_view value) {
    out += fmt::format("{} = {}\n", key, value);
  };
  auto set_list = [&](std::string_view key, const std::vector<std::string>& entries) {
    out += fmt::format("{} = [\n", key);
    for (size_t i = 0; i < entries.size(); ++i) {
      out += fmt::format("    {}{}\n", quote(entries[i]), i + 1 < entries.size() ? "," : "");
    }
    out += "]\n";
  };

  set("name", quote(config.name));
  set("memory", fmt::format("{}", config.memory_mib));
  set("vcpus", fmt::format("{}", config.vcpus));
  set("kernel", quote(config.kernel));
  if (!config.ramdisk.empty()) set("ramdisk", quote(config.ramdisk));
  if (!config.extra.empty()) set("extra", quote(config.extra));
  if (!config.firmware.empty()) set("firmware", quote(config.firmware));
  if (!config.system_map.empty()) set("system_map", quote(config.system_map));
  if (!config.kernel_btf.empty()) set("kernel_btf", quote(config.kernel_btf));
  if (!config.disks.empty()) {
    std::vector<std::string> specs;
    for (const auto& disk : config.disks) specs.push_back(format_disk_spec(disk));
    set_list("disk", specs);
  }
  if (!config.nics.empty()) {
    std::vector<std::string> specs;
    for (const auto& nic : config.nics) specs.push_back(format_vif_spec(nic));
    set_list("vif", specs);
  }
  set("rng", config.rng ? "1" : "0");
  set("on_poweroff", quote(action_name(config.on_poweroff)));
  set("on_reboot", quote(action_name(config.on_reboot)));
  set("on_crash", quote(action_name(config.on_crash)));
  set("cpu_weight", fmt::format("{}", config.cpu_weight));
  set("cap", fmt::format("{}", config.cap));
  if (config.vtpm) set_list("vtpm", {format_vtpm_spec(*config.vtpm)});
  if (config.psr_cmt) set("psr_cmt", "1");
  if (config.psr_cat_cbm) set("psr_cat_cbm", fmt::format("{:#x}", config.psr_cat_cbm));
  if (config.psr_mba_thrtl) set("psr_mba_thrtl", fmt::format("{}", config.psr_mba_thrtl));
  const auto& pins = config.cpu_pins;
  if (!pins.empty()) {
    if (std::all_of(pins.begin(), pins.end(), [&](const auto& p) { return p == pins.front(); })) {
      set("cpus", quote(format_cpu_set(pins.front())));
    } else {
      std::vector<std::string> sets;
      for (const auto& p : pins) sets.push_back(format_cpu_set(p));
      set_list("cpus", sets);
    }
  }
  return out;
}

}  // namespace vigil::toolstack
