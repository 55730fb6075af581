// The GDB remote serial protocol's framing (gdb's "Remote Protocol" appendix, "Overview"):
// `$payload#cs` packets with a two-hex-digit modulo-256 checksum, '+'/'-' acknowledgements,
// '}' escapes (the next byte XOR 0x20), '*' run-length encoding, and a bare 0x03 byte for
// Ctrl-C. The bytes come from whoever reached the stub's TCP port: every length is bounded
// and a bad packet is NAKed, never trusted.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace vigil::toolstack::gdb {

// Largest payload accepted (and announced as PacketSize): 16 KiB.
inline constexpr size_t kMaxPacket = 16 * 1024;

struct Input {
  enum class Kind : uint8_t {
    kPacket,     // `payload` is a complete, checksum-verified, unescaped packet: ACK it
    kBadPacket,  // checksum mismatch, bad escape or oversized: NAK it ('-')
    kInterrupt,  // 0x03 outside a packet
    kAck,        // '+'
    kNak,        // '-': resend the last reply
  };
  Kind kind;
  std::string payload;
};

// Incremental reader: feed it bytes as they arrive, take complete inputs out.
class PacketReader {
 public:
  void feed(std::span<const uint8_t> bytes);
  std::optional<Input> next();
  bool empty() const { return m_head >= m_out.size(); }

 private:
  enum class State : uint8_t { kIdle, kBody, kEscape, kRepeat, kSum1, kSum2 };
  void finish(bool ok);

  State m_state = State::kIdle;
  std::string m_body;      // decoded payload so far
  uint8_t m_sum = 0;       // checksum over the raw bytes between '$' and '#'
  uint8_t m_given = 0;     // the checksum the sender wrote
  bool m_broken = false;   // oversized or malformed: NAK at '#xx'
  std::vector<Input> m_out;
  size_t m_head = 0;
};

// `$payload#cs` with '$', '#', '}' and '*' escaped.
std::string frame(std::string_view payload);

// Hex helpers for packet bodies.
std::string to_hex(std::span<const uint8_t> bytes);
std::string to_hex_le(uint64_t value, unsigned bytes);  // little-endian target order
// Decodes an even number of hex digits; nullopt on a bad digit or odd length.
std::optional<std::vector<uint8_t>> from_hex(std::string_view hex);
// A big-endian hex number as gdb writes addresses and lengths ("ffffffff80001000").
std::optional<uint64_t> parse_hex_u64(std::string_view hex);
// A register value in target (little-endian) byte order, up to 8 bytes.
std::optional<uint64_t> parse_hex_le(std::string_view hex);

}  // namespace vigil::toolstack::gdb
