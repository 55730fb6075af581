#include "toolstack/gdb_rsp.h"

namespace vigil::toolstack::gdb {

namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

constexpr char kDigits[] = "0123456789abcdef";

}  // namespace

void PacketReader::feed(std::span<const uint8_t> bytes) {
  if (m_head > 0 && m_head == m_out.size()) {
    m_out.clear();
    m_head = 0;
  }
  for (const uint8_t b : bytes) {
    switch (m_state) {
      case State::kIdle:
        // Between packets only acknowledgements, Ctrl-C and the start of a packet mean
        // anything; other noise is dropped, as gdbserver does.
        if (b == '$') {
          m_state = State::kBody;
          m_body.clear();
          m_sum = 0;
          m_broken = false;
        } else if (b == '+') {
          m_out.push_back({Input::Kind::kAck, {}});
        } else if (b == '-') {
          m_out.push_back({Input::Kind::kNak, {}});
        } else if (b == 0x03) {
          m_out.push_back({Input::Kind::kInterrupt, {}});
        }
        break;
      case State::kBody:
        if (b == '#') {
          m_state = State::kSum1;
          break;
        }
        m_sum = static_cast<uint8_t>(m_sum + b);
        if (b == '$') {
          // A new packet inside a packet: the old one is broken.
          m_broken = true;
        } else if (b == '}') {
          m_state = State::kEscape;
        } else if (b == '*') {
          m_state = m_body.empty() ? (m_broken = true, State::kBody) : State::kRepeat;
        } else if (m_body.size() < kMaxPacket) {
          m_body.push_back(static_cast<char>(b));
        } else {
          m_broken = true;
        }
        break;
      case State::kEscape:
        m_sum = static_cast<uint8_t>(m_sum + b);
        if (b == '#') {  // "}#" is not an escape gdb writes
          m_broken = true;
          m_state = State::kSum1;
          break;
        }
        if (m_body.size() < kMaxPacket) {
          m_body.push_back(static_cast<char>(b ^ 0x20));
        } else {
          m_broken = true;
        }
        m_state = State::kBody;
        break;
      case State::kRepeat: {
        m_sum = static_cast<uint8_t>(m_sum + b);
        // "X*n": n - 29 more copies of X; gdb never uses '#' or '$' as n.
        if (b < 29 + 3 || b == '#' || b == '$' || b > 126) {
          m_broken = true;
          m_state = b == '#' ? State::kSum1 : State::kBody;
          break;
        }
        const size_t n = b - 29u;
        if (m_body.size() + n > kMaxPacket) {
          m_broken = true;
        } else {
          m_body.append(n, m_body.back());
        }
        m_state = State::kBody;
        break;
      }
      case State::kSum1: {
        const int d = hex_digit(static_cast<char>(b));
        if (d < 0) m_broken = true;
        m_given = static_cast<uint8_t>((d < 0 ? 0 : d) << 4);
        m_state = State::kSum2;
        break;
      }
      case State::kSum2: {
        const int d = hex_digit(static_cast<char>(b));
        if (d < 0) m_broken = true;
        m_given = static_cast<uint8_t>(m_given | (d < 0 ? 0 : d));
        finish(!m_broken && m_given == m_sum);
        break;
      }
    }
  }
}

void PacketReader::finish(bool ok) {
  if (ok) {
    m_out.push_back({Input::Kind::kPacket, std::move(m_body)});
  } else {
    m_out.push_back({Input::Kind::kBadPacket, {}});
  }
  m_body.clear();
  m_state = State::kIdle;
}

std::optional<Input> PacketReader::next() {
  if (m_head >= m_out.size()) return std::nullopt;
  return std::move(m_out[m_head++]);
}

std::string frame(std::string_view payload) {
  std::string out;
  out.reserve(payload.size() + 4);
  out.push_back('$');
  uint8_t sum = 0;
  for (const char c : payload) {
    if (c == '$' || c == '#' || c == '}' || c == '*') {
      out.push_back('}');
      sum = static_cast<uint8_t>(sum + '}');
      const char e = static_cast<char>(c ^ 0x20);
      out.push_back(e);
      sum = static_cast<uint8_t>(sum + static_cast<uint8_t>(e));
    } else {
      out.push_back(c);
      sum = static_cast<uint8_t>(sum + static_cast<uint8_t>(c));
    }
  }
  out.push_back('#');
  out.push_back(kDigits[sum >> 4]);
  out.push_back(kDigits[sum & 15]);
  return out;
}

std::string to_hex(std::span<const uint8_t> bytes) {
  std::string s;
  s.reserve(bytes.size() * 2);
  for (const uint8_t b : bytes) {
    s.push_back(kDigits[b >> 4]);
    s.push_back(kDigits[b & 15]);
  }
  return s;
}

std::string to_hex_le(uint64_t value, unsigned bytes) {
  std::string s;
  for (unsigned i = 0; i < bytes; ++i) {
    const uint8_t b = static_cast<uint8_t>(value >> (8 * i));
    s.push_back(kDigits[b >> 4]);
    s.push_back(kDigits[b & 15]);
  }
  return s;
}

std::optional<std::vector<uint8_t>> from_hex(std::string_view hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  std::vector<uint8_t> out;
  out.reserve(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int hi = hex_digit(hex[i]), lo = hex_digit(hex[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<uint8_t>(hi << 4 | lo));
  }
  return out;
}

std::optional<uint64_t> parse_hex_u64(std::string_view hex) {
  if (hex.empty() || hex.size() > 16) return std::nullopt;
  uint64_t v = 0;
  for (const char c : hex) {
    const int d = hex_digit(c);
    if (d < 0) return std::nullopt;
    v = v << 4 | static_cast<uint64_t>(d);
  }
  return v;
}

std::optional<uint64_t> parse_hex_le(std::string_view hex) {
  auto bytes = from_hex(hex);
  if (!bytes || bytes->empty() || bytes->size() > 8) return std::nullopt;
  uint64_t v = 0;
  for (size_t i = 0; i < bytes->size(); ++i) v |= static_cast<uint64_t>((*bytes)[i]) << (8 * i);
  return v;
}

}  // namespace vigil::toolstack::gdb
