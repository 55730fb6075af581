// Kernel symbols from System.map ("<hex address> <type> <name>" per line, as nm prints
// them), with the offset between link-time and run-time addresses (KASLR) applied.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/error.h"

namespace vigil::introspect {

struct Symbol {
  std::string name;
  uint64_t address = 0;  // run-time address (link address + offset)
  char type = '?';       // nm type letter: T t D d B b R r A a W w V v ...
};

struct SymbolHit {
  const Symbol* symbol = nullptr;
  uint64_t offset = 0;  // address - symbol->address
};

class SymbolTable {
 public:
  // Malformed lines are errors naming `origin` and the line number.
  static Result<SymbolTable> parse(std::string_view text, const std::string& origin);
  static Result<SymbolTable> load(const std::string& path);

  size_t size() const { return m_symbols.size(); }
  // Run-time address of `name`, or an error naming it.
  Result<uint64_t> address_of(std::string_view name) const;
  const Symbol* find(std::string_view name) const;
  // The symbol at or below `address` (absolute symbols excluded), if any.
  std::optional<SymbolHit> nearest(uint64_t address) const;
  // "name+0xoff" or "name" for `address`, "" when nothing is below it.
  std::string describe(uint64_t address) const;

  // Run-time minus link-time addresses; applies to every address given or returned.
  int64_t offset() const { return m_offset; }
  void set_offset(int64_t offset);

 private:
  std::vector<Symbol> m_symbols;                      // in file order
  std::vector<uint64_t> m_link_addresses;             // System.map's addresses, parallel to m_symbols
  std::unordered_map<std::string, size_t> m_by_name;  // first definition wins
  std::vector<size_t> m_sorted;  // relocatable symbols (not absolute) by address, for nearest()
  int64_t m_offset = 0;
};

}  // namespace vigil::introspect
