#include "vtpm/swtpm_state.h"

#include <cstring>

namespace vigil::vtpm {

namespace {

constexpr char kMagic[8] = {'V', 'T', 'P', 'M', 'S', 'T', '0', '1'};
constexpr uint32_t kTypes[3] = {kBlobPermanent, kBlobVolatile, kBlobSavestate};

void put_le32(std::vector<uint8_t>& v, uint32_t x) {
  for (int s = 0; s < 32; s += 8) v.push_back(static_cast<uint8_t>(x >> s));
}

}  // namespace

const char* blob_name(uint32_t type) {
  switch (type) {
    case kBlobPermanent: return "permanent";
    case kBlobVolatile: return "volatile";
    case kBlobSavestate: return "savestate";
  }
  return "unknown";
}

bool SwtpmState::encrypted() const {
  bool any = false;
  for (const StateBlob& b : blobs) {
    if (b.data.empty()) continue;
    if (!(b.flags & kBlobFlagEncrypted)) return false;
    any = true;
  }
  return any;
}

std::vector<uint8_t> format_swtpm_state(const SwtpmState& state) {
  std::vector<uint8_t> out(kMagic, kMagic + sizeof kMagic);
  put_le32(out, static_cast<uint32_t>(state.blobs.size()));
  for (const StateBlob& b : state.blobs) {
    put_le32(out, b.type);
    put_le32(out, b.flags);
    put_le32(out, static_cast<uint32_t>(b.data.size()));
    out.insert(out.end(), b.data.begin(), b.data.end());
  }
  return out;
}

Result<SwtpmState> parse_swtpm_state(std::span<const uint8_t> bytes) {
  size_t pos = 0;
  const auto u32 = [&](uint32_t& v) {
    if (bytes.size() - pos < 4) return false;
    v = uint32_t{bytes[pos]} | uint32_t{bytes[pos + 1]} << 8 | uint32_t{bytes[pos + 2]} << 16 | uint32_t{bytes[pos + 3]} << 24;
    pos += 4;
    return true;
  };
  if (bytes.size() < sizeof kMagic || std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0)
    return make_error("the swtpm state does not start with {}", std::string_view(kMagic, sizeof kMagic));
  pos = sizeof kMagic;
  uint32_t count = 0;
  if (!u32(count)) return make_error("the swtpm state is truncated before its blob count");
  if (count != 3) return make_error("the swtpm state has {} blobs, not 3", count);
  SwtpmState s;
  for (uint32_t i = 0; i < count; ++i) {
    StateBlob b;
    uint32_t length = 0;
    if (!u32(b.type) || !u32(b.flags) || !u32(length)) return make_error("the swtpm state is truncated in blob {}", i + 1);
    if (b.type != kTypes[i]) return make_error("blob {} is type {}, not {}", i + 1, b.type, blob_name(kTypes[i]));
    if (b.flags != 0 && b.flags != kBlobFlagEncrypted)
      return make_error("the {} blob has flags {:#x}, not 0 or encrypted", blob_name(b.type), b.flags);
    if (length > kMaxBlob) return make_error("the {} blob claims {} bytes, more than {}", blob_name(b.type), length, kMaxBlob);
    if (bytes.size() - pos < length)
      return make_error("the {} blob claims {} bytes, {} remain", blob_name(b.type), length, bytes.size() - pos);
    b.data.assign(bytes.begin() + static_cast<std::ptrdiff_t>(pos), bytes.begin() + static_cast<std::ptrdiff_t>(pos + length));
    pos += length;
    s.blobs.push_back(std::move(b));
  }
  if (pos != bytes.size()) return make_error("{} bytes follow the swtpm state", bytes.size() - pos);
  if (s.blobs[0].data.empty()) return make_error("the permanent blob is empty");
  return s;
}

}  // namespace vigil::vtpm
