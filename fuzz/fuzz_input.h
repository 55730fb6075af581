// A small consumer of fuzz input bytes, shared by the targets (fuzz/README.md).
//
// Values are taken little-endian from the front of the input, so seed files can be written
// with Python's struct.pack('<...') (fuzz/make_seeds.py). Reading past the end yields zeros
// rather than failing: every byte string is a valid input.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

namespace vigil::fuzz {

class Input {
 public:
  Input(const uint8_t* data, size_t size) : m_data(data), m_size(size) {}

  bool empty() const { return m_pos >= m_size; }
  size_t remaining() const { return m_size - m_pos; }

  uint8_t u8() { return static_cast<uint8_t>(take(1)); }
  uint16_t u16() { return static_cast<uint16_t>(take(2)); }
  uint32_t u32() { return static_cast<uint32_t>(take(4)); }
  uint64_t u64() { return take(8); }
  bool flag() { return (u8() & 1) != 0; }

  // Up to n bytes (fewer at the end of the input).
  std::span<const uint8_t> bytes(size_t n) {
    n = std::min(n, remaining());
    std::span<const uint8_t> out(m_data + m_pos, n);
    m_pos += n;
    return out;
  }
  std::span<const uint8_t> rest() { return bytes(remaining()); }
  std::string_view rest_text() {
    auto r = rest();
    return {reinterpret_cast<const char*>(r.data()), r.size()};
  }

 private:
  uint64_t take(unsigned n) {
    uint64_t v = 0;
    for (unsigned i = 0; i < n && m_pos < m_size; ++i) v |= uint64_t{m_data[m_pos++]} << (8 * i);
    return v;
  }

  const uint8_t* m_data;
  size_t m_size;
  size_t m_pos = 0;
};

// A violated invariant: prints the message and aborts, which the fuzz engine reports as a
// crash (with the input that caused it).
[[noreturn]] void invariant_failed(const char* file, int line, const char* what);

// True if `id` is listed in $VIGIL_FUZZ_SKIP (comma-separated; fuzz/run.sh fills it from
// fuzz/known_bugs): a target then leaves out the inputs that reach that known, still open
// bug, so fuzzing can go on past it.
bool known_bug_skipped(std::string_view id);

// Creates <dir>/<prefix>-<pid>-XXXXXX, a directory or an empty file, and returns its path
// (aborts on failure). Entries with the same prefix left by processes that no longer exist
// (a crashed run cannot clean up after itself) are removed first.
std::string make_temp(const std::string& dir, std::string_view prefix, bool directory);

}  // namespace vigil::fuzz

#define FUZZ_CHECK(cond)                                                          \
  do {                                                                            \
    if (!(cond)) ::vigil::fuzz::invariant_failed(__FILE__, __LINE__, #cond);      \
  } while (0)
