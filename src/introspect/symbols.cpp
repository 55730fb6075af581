#include "introspect/symbols.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <iterator>

namespace vigil::introspect {

namespace {

// Absolute symbols (nm type A/a) are numbers, not places: the offset does not move them and
// they never name an address.
bool is_absolute(char type) {
  return type == 'A' || type == 'a';
}

// A System.map of a 6.1 kernel is about 2 MB; refuse absurd files before reading them.
constexpr uintmax_t kMaxMapBytes = 256ull << 20;

}  // namespace

Result<SymbolTable> SymbolTable::parse(std::string_view text, const std::string& origin) {
  SymbolTable t;
  size_t line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;

    auto bad = [&](std::string_view why) {
      const std::string shown(line.substr(0, 60));
      return make_error("{}:{}: {} (expected '<hex address> <type> <name>', got '{}')", origin, line_no, why,
                        shown);
    };
    const size_t sp1 = line.find(' ');
    if (sp1 == 0) return bad("no address");
    if (sp1 == std::string_view::npos) return bad("no symbol type and name");
    const std::string_view addr_text = line.substr(0, sp1);
    if (addr_text.size() > 16) return bad("the address has more than 16 hex digits");
    uint64_t addr = 0;
    const auto [p, ec] = std::from_chars(addr_text.data(), addr_text.data() + addr_text.size(), addr, 16);
    if (ec != std::errc() || p != addr_text.data() + addr_text.size())
      return bad("the address is not hexadecimal");
    if (line.size() < sp1 + 3 || line[sp1 + 2] != ' ') return bad("no one-letter symbol type");
    const char type = line[sp1 + 1];
    if (!std::isalpha(static_cast<unsigned char>(type))) return bad("the symbol type is not a letter");
    std::string_view name = line.substr(sp1 + 3);
    // Module symbols carry "\t[module]" after the name (kallsyms format); keep the name.
    if (const size_t tab = name.find_first_of(" \t"); tab != std::string_view::npos)
      name = name.substr(0, tab);
    if (name.empty()) return bad("no symbol name");

    t.m_by_name.try_emplace(std::string(name), t.m_symbols.size());
    t.m_symbols.push_back(Symbol{std::string(name), addr, type});
    t.m_link_addresses.push_back(addr);
  }
  if (t.m_symbols.empty()) return make_error("{}: no symbols (is it a System.map?)", origin);
  for (size_t i = 0; i < t.m_symbols.size(); ++i) {
    if (!is_absolute(t.m_symbols[i].type)) t.m_sorted.push_back(i);
  }
  std::stable_sort(t.m_sorted.begin(), t.m_sorted.end(),
                   [&](size_t a, size_t b) { return t.m_link_addresses[a] < t.m_link_addresses[b]; });
  return t;
}

Result<SymbolTable> SymbolTable::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error("cannot open System.map '{}': {}", path, std::strerror(errno));
  in.seekg(0, std::ios::end);
  const auto size = static_cast<uintmax_t>(in.tellg());
  if (size > kMaxMapBytes) return make_error("'{}' is {} bytes, too large for a System.map", path, size);
  in.seekg(0);
  const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (in.bad()) return make_error("reading System.map '{}' failed", path);
  return parse(text, path);
}

void SymbolTable::set_offset(int64_t offset) {
  m_offset = offset;
  for (size_t i = 0; i < m_symbols.size(); ++i) {
    if (!is_absolute(m_symbols[i].type))
      m_symbols[i].address = m_link_addresses[i] + static_cast<uint64_t>(offset);
  }
}

const Symbol* SymbolTable::find(std::string_view name) const {
  auto it = m_by_name.find(std::string(name));
  return it == m_by_name.end() ? nullptr : &m_symbols[it->second];
}

Result<uint64_t> SymbolTable::address_of(std::string_view name) const {
  const Symbol* s = find(name);
  if (!s) return make_error("the kernel has no symbol '{}' in its System.map", name);
  return s->address;
}

std::optional<SymbolHit> SymbolTable::nearest(uint64_t address) const {
  // Sorted by link address; the offset is the same for all of them, so order is kept.
  auto it = std::upper_bound(m_sorted.begin(), m_sorted.end(), address,
                             [&](uint64_t a, size_t i) { return a < m_symbols[i].address; });
  if (it == m_sorted.begin()) return std::nullopt;
  // Of several symbols at that address, the first in the file (the sort is stable).
  const uint64_t at = m_symbols[*std::prev(it)].address;
  it = std::lower_bound(m_sorted.begin(), it, at,
                        [&](size_t i, uint64_t a) { return m_symbols[i].address < a; });
  const Symbol& s = m_symbols[*it];
  return SymbolHit{&s, address - s.address};
}

std::string SymbolTable::describe(uint64_t address) const {
  auto hit = nearest(address);
  if (!hit) return "";
  return hit->offset ? fmt::format("{}+{:#x}", hit->symbol->name, hit->offset) : hit->symbol->name;
}

}  // namespace vigil::introspect
