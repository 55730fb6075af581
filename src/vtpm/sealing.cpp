#include "vtpm/sealing.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

namespace vigil::vtpm {

namespace {

constexpr char kMagic[8] = {'V', 'I', 'G', 'I', 'L', 'S', 'K', '2'};
constexpr size_t kMaxBlobBytes = 4096;
constexpr int32_t kTimeoutMs = 30'000;  // per command; CreatePrimary on a slow hardware TPM takes seconds

// Owns the TCTI and ESAPI contexts and the transient objects of one sealing exchange.
class Host {
 public:
  explicit Host(std::string tcti) : m_tcti_name(std::move(tcti)) {}
  ~Host() {
    if (m_esys) {
      for (ESYS_TR h : {m_policy, m_object, m_session, m_primary}) {
        if (h != ESYS_TR_NONE) Esys_FlushContext(m_esys, h);
      }
      Esys_Finalize(&m_esys);
    }
    if (m_tcti) Tss2_TctiLdr_Finalize(&m_tcti);
  }

  std::unexpected<Error> fail(std::string_view what, TSS2_RC rc) const {
    return make_error("host TPM '{}': {}: {}", m_tcti_name, what, Tss2_RC_Decode(rc));
  }

  Result<void> open() {
    if (TSS2_RC rc = Tss2_TctiLdr_Initialize(m_tcti_name.c_str(), &m_tcti); rc != TSS2_RC_SUCCESS) {
      return fail("cannot open the TCTI", rc);
    }
    if (TSS2_RC rc = Esys_Initialize(&m_esys, m_tcti, nullptr); rc != TSS2_RC_SUCCESS) {
      return fail("cannot start ESAPI", rc);
    }
    // A host TPM that accepts and never answers must not hold vigild's vTPM launcher forever.
    if (TSS2_RC rc = Esys_SetTimeout(m_esys, kTimeoutMs); rc != TSS2_RC_SUCCESS) return fail("cannot set a timeout", rc);
    // The storage primary key: ECC P-256, restricted decrypt, from the owner seed (an SRK).
    TPM2B_SENSITIVE_CREATE sensitive{};
    TPM2B_PUBLIC pub{};
    pub.publicArea.type = TPM2_ALG_ECC;
    pub.publicArea.nameAlg = TPM2_ALG_SHA256;
    pub.publicArea.objectAttributes = TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT |
                                      TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                      TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_NODA;
    auto& ecc = pub.publicArea.parameters.eccDetail;
    ecc.symmetric.algorithm = TPM2_ALG_AES;
    ecc.symmetric.keyBits.aes = 128;
    ecc.symmetric.mode.aes = TPM2_ALG_CFB;
    ecc.scheme.scheme = TPM2_ALG_NULL;
    ecc.curveID = TPM2_ECC_NIST_P256;
    ecc.kdf.scheme = TPM2_ALG_NULL;
    TPM2B_DATA outside{};
    TPML_PCR_SELECTION pcrs{};
    if (TSS2_RC rc = Esys_CreatePrimary(m_esys, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                                        &sensitive, &pub, &outside, &pcrs, &m_primary, nullptr, nullptr, nullptr,
                                        nullptr);
        rc != TSS2_RC_SUCCESS) {
      m_primary = ESYS_TR_NONE;
      return fail("cannot create the storage primary key", rc);
    }
    // An HMAC session salted by the primary key, encrypting the sealed data both ways.
    TPMT_SYM_DEF sym{.algorithm = TPM2_ALG_AES, .keyBits = {.aes = 128}, .mode = {.aes = TPM2_ALG_CFB}};
    if (TSS2_RC rc = Esys_StartAuthSession(m_esys, m_primary, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                           nullptr, TPM2_SE_HMAC, &sym, TPM2_ALG_SHA256, &m_session);
        rc != TSS2_RC_SUCCESS) {
      m_session = ESYS_TR_NONE;
      return fail("cannot start a salted session", rc);
    }
    const TPMA_SESSION attrs = TPMA_SESSION_DECRYPT | TPMA_SESSION_ENCRYPT | TPMA_SESSION_CONTINUESESSION;
    if (TSS2_RC rc = Esys_TRSess_SetAttributes(m_esys, m_session, attrs, 0xff); rc != TSS2_RC_SUCCESS) {
      return fail("cannot set the session's attributes", rc);
    }
    return {};
  }

  // A session of `type` (TPM2_SE_TRIAL or TPM2_SE_POLICY) with PolicyPCR on `mask`'s current values.
  Result<ESYS_TR> pcr_policy(TPM2_SE type, uint32_t mask) {
    TPMT_SYM_DEF sym{.algorithm = TPM2_ALG_AES, .keyBits = {.aes = 128}, .mode = {.aes = TPM2_ALG_CFB}};
    ESYS_TR session = ESYS_TR_NONE;
    const ESYS_TR salt = type == TPM2_SE_POLICY ? m_primary : ESYS_TR_NONE;
    if (TSS2_RC rc = Esys_StartAuthSession(m_esys, salt, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, nullptr,
                                           type, &sym, TPM2_ALG_SHA256, &session);
        rc != TSS2_RC_SUCCESS) {
      return fail("cannot start a policy session", rc);
    }
    TPML_PCR_SELECTION pcrs{};
    pcrs.count = 1;
    pcrs.pcrSelections[0].hash = TPM2_ALG_SHA256;
    pcrs.pcrSelections[0].sizeofSelect = 3;
    for (unsigned i = 0; i < 3; ++i) pcrs.pcrSelections[0].pcrSelect[i] = static_cast<BYTE>(mask >> (8 * i));
    TPM2B_DIGEST none{};  // the TPM takes the PCRs' current values
    if (TSS2_RC rc = Esys_PolicyPCR(m_esys, session, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &none, &pcrs);
        rc != TSS2_RC_SUCCESS) {
      Esys_FlushContext(m_esys, session);
      return fail(fmt::format("PolicyPCR on host PCRs {} failed", format_pcr_list(mask)), rc);
    }
    return session;
  }

  Result<SealedBlob> seal(std::span<const uint8_t> key, uint32_t mask) {
    TPM2B_DIGEST policy{};
    if (mask) {
      auto trial = pcr_policy(TPM2_SE_TRIAL, mask);
      if (!trial) return std::unexpected(trial.error());
      TPM2B_DIGEST* digest = nullptr;
      TSS2_RC rc = Esys_PolicyGetDigest(m_esys, *trial, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &digest);
      Esys_FlushContext(m_esys, *trial);
      if (rc != TSS2_RC_SUCCESS) return fail("cannot compute the PCR policy", rc);
      policy = *digest;
      Esys_Free(digest);
    }
    TPM2B_SENSITIVE_CREATE sensitive{};
    sensitive.sensitive.data.size = static_cast<UINT16>(key.size());
    std::memcpy(sensitive.sensitive.data.buffer, key.data(), key.size());
    TPM2B_PUBLIC pub{};
    pub.publicArea.type = TPM2_ALG_KEYEDHASH;
    pub.publicArea.nameAlg = TPM2_ALG_SHA256;
    // With a PCR policy, the policy is the only way to use the object (no user auth).
    pub.publicArea.objectAttributes = (mask ? 0 : TPMA_OBJECT_USERWITHAUTH) | TPMA_OBJECT_FIXEDTPM |
                                      TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_NODA;
    pub.publicArea.authPolicy = policy;
    pub.publicArea.parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_NULL;
    TPM2B_DATA outside{};
    TPML_PCR_SELECTION pcrs{};
    TPM2B_PRIVATE* out_priv = nullptr;
    TPM2B_PUBLIC* out_pub = nullptr;
    TSS2_RC rc = Esys_Create(m_esys, m_primary, m_session, ESYS_TR_NONE, ESYS_TR_NONE, &sensitive, &pub, &outside,
                             &pcrs, &out_priv, &out_pub, nullptr, nullptr, nullptr);
    explicit_bzero(&sensitive, sizeof(sensitive));
    if (rc != TSS2_RC_SUCCESS) return fail("cannot seal the vTPM state key", rc);
    SealedBlob blob;
    blob.pcr_mask = mask;
    auto marshal = [](auto fn, const auto* v, std::vector<uint8_t>& out) {
      uint8_t buf[kMaxBlobBytes];
      size_t off = 0;
      if (fn(v, buf, sizeof(buf), &off) != TSS2_RC_SUCCESS) return false;
      out.assign(buf, buf + off);
      return true;
    };
    const bool ok = marshal(Tss2_MU_TPM2B_PUBLIC_Marshal, out_pub, blob.pub) &&
                    marshal(Tss2_MU_TPM2B_PRIVATE_Marshal, out_priv, blob.priv);
    Esys_Free(out_priv);
    Esys_Free(out_pub);
    if (!ok) return make_error("host TPM '{}': the sealed key does not marshal", m_tcti_name);
    return blob;
  }

  Result<std::vector<uint8_t>> unseal(const SealedBlob& blob) {
    TPM2B_PUBLIC pub{};
    TPM2B_PRIVATE priv{};
    size_t off = 0;
    if (Tss2_MU_TPM2B_PUBLIC_Unmarshal(blob.pub.data(), blob.pub.size(), &off, &pub) != TSS2_RC_SUCCESS) {
      return make_error("host TPM '{}': the sealed key's public part does not unmarshal", m_tcti_name);
    }
    off = 0;
    if (Tss2_MU_TPM2B_PRIVATE_Unmarshal(blob.priv.data(), blob.priv.size(), &off, &priv) != TSS2_RC_SUCCESS) {
      return make_error("host TPM '{}': the sealed key's private part does not unmarshal", m_tcti_name);
    }
    if (TSS2_RC rc = Esys_Load(m_esys, m_primary, m_session, ESYS_TR_NONE, ESYS_TR_NONE, &priv, &pub, &m_object);
        rc != TSS2_RC_SUCCESS) {
      m_object = ESYS_TR_NONE;
      return fail("cannot load the sealed vTPM state key (sealed by another TPM, or its owner seed changed)", rc);
    }
    ESYS_TR auth = m_session;
    if (blob.pcr_mask) {
      auto policy = pcr_policy(TPM2_SE_POLICY, blob.pcr_mask);
      if (!policy) return std::unexpected(policy.error());
      m_policy = auth = *policy;
      const TPMA_SESSION attrs = TPMA_SESSION_ENCRYPT | TPMA_SESSION_CONTINUESESSION;
      if (TSS2_RC rc = Esys_TRSess_SetAttributes(m_esys, auth, attrs, 0xff); rc != TSS2_RC_SUCCESS) {
        return fail("cannot set the policy session's attributes", rc);
      }
    }
    TPM2B_SENSITIVE_DATA* out = nullptr;
    if (TSS2_RC rc = Esys_Unseal(m_esys, m_object, auth, ESYS_TR_NONE, ESYS_TR_NONE, &out); rc != TSS2_RC_SUCCESS) {
      // TPM_RC_POLICY_FAIL (format one, error 0x1d): the PCRs are not what they were.
      if (blob.pcr_mask && (rc & 0xffff0000) == 0 && (rc & 0x80) && (rc & 0x3f) == 0x1d) {
        return make_error("host TPM '{}': cannot unseal the vTPM state key: host PCRs {} differ from when it was sealed",
                          m_tcti_name, format_pcr_list(blob.pcr_mask));
      }
      return fail("cannot unseal the vTPM state key", rc);
    }
    std::vector<uint8_t> key(out->buffer, out->buffer + out->size);
    explicit_bzero(out, sizeof(*out));
    Esys_Free(out);
    if (key.size() != kStateKeyBytes) {
      return make_error("host TPM '{}': the unsealed vTPM state key has {} bytes, not {}", m_tcti_name, key.size(),
                        kStateKeyBytes);
    }
    return key;
  }

 private:
  std::string m_tcti_name;
  TSS2_TCTI_CONTEXT* m_tcti = nullptr;
  ESYS_CONTEXT* m_esys = nullptr;
  ESYS_TR m_primary = ESYS_TR_NONE, m_session = ESYS_TR_NONE, m_object = ESYS_TR_NONE, m_policy = ESYS_TR_NONE;
};

void put_part(std::vector<uint8_t>& out, const std::vector<uint8_t>& part) {
  out.push_back(static_cast<uint8_t>(part.size() >> 8));
  out.push_back(static_cast<uint8_t>(part.size()));
  out.insert(out.end(), part.begin(), part.end());
}

}  // namespace

Result<uint32_t> parse_pcr_list(const std::string& text) {
  uint32_t mask = 0;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    const std::string item = text.substr(start, comma - start);
    unsigned n = 0;
    const auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), n);
    if (item.empty() || ec != std::errc() || ptr != item.data() + item.size() || n > 23) {
      return make_error("host PCR list '{}': '{}' is not a PCR number 0-23", text, item);
    }
    mask |= 1u << n;
    start = comma + 1;
  }
  return mask;
}

std::string format_pcr_list(uint32_t mask) {
  std::string out;
  for (unsigned i = 0; i < 24; ++i) {
    if (mask & (1u << i)) out += (out.empty() ? "" : ",") + std::to_string(i);
  }
  return out;
}

std::vector<uint8_t> format_sealed_blob(const SealedBlob& blob) {
  std::vector<uint8_t> out(std::begin(kMagic), std::end(kMagic));
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(blob.pcr_mask >> shift));
  put_part(out, blob.pub);
  put_part(out, blob.priv);
  return out;
}

Result<SealedBlob> parse_sealed_blob(std::span<const uint8_t> bytes) {
  if (bytes.size() < sizeof(kMagic) || std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0) {
    return make_error("it does not start with the sealed-key magic");
  }
  if (bytes.size() < sizeof(kMagic) + 4) return make_error("it ends before its host PCR mask");
  const uint32_t mask = (uint32_t{bytes[8]} << 24) | (uint32_t{bytes[9]} << 16) | (uint32_t{bytes[10]} << 8) | bytes[11];
  if (mask & ~kHostPcrMask) return make_error("its host PCR mask {:#x} names PCRs beyond 23", mask);
  size_t at = sizeof(kMagic) + 4;
  auto part = [&](const char* what) -> Result<std::vector<uint8_t>> {
    if (bytes.size() - at < 2) return make_error("it ends before the {} part's length", what);
    const size_t n = (size_t{bytes[at]} << 8) | bytes[at + 1];
    at += 2;
    if (bytes.size() - at < n) return make_error("its {} part declares {} bytes but {} remain", what, n, bytes.size() - at);
    std::vector<uint8_t> v(bytes.begin() + static_cast<ptrdiff_t>(at), bytes.begin() + static_cast<ptrdiff_t>(at + n));
    at += n;
    return v;
  };
  auto pub = part("public");
  if (!pub) return std::unexpected(pub.error());
  auto priv = part("private");
  if (!priv) return std::unexpected(priv.error());
  if (at != bytes.size()) return make_error("it has {} bytes after the private part", bytes.size() - at);
  // Both parts must be exactly one marshaled structure each.
  TPM2B_PUBLIC p{};
  TPM2B_PRIVATE q{};
  size_t off = 0;
  if (Tss2_MU_TPM2B_PUBLIC_Unmarshal(pub->data(), pub->size(), &off, &p) != TSS2_RC_SUCCESS || off != pub->size()) {
    return make_error("its public part is not a TPM2B_PUBLIC");
  }
  if (p.publicArea.type != TPM2_ALG_KEYEDHASH) return make_error("its public part is not a sealed data object");
  off = 0;
  if (Tss2_MU_TPM2B_PRIVATE_Unmarshal(priv->data(), priv->size(), &off, &q) != TSS2_RC_SUCCESS || off != priv->size()) {
    return make_error("its private part is not a TPM2B_PRIVATE");
  }
  return SealedBlob{std::move(*pub), std::move(*priv), mask};
}

Result<std::vector<uint8_t>> state_key(const std::string& tcti, const std::string& state_dir, uint32_t pcr_mask) {
  if (pcr_mask & ~kHostPcrMask) return make_error("host PCR mask {:#x} names PCRs beyond 23", pcr_mask);
  const std::string path = state_dir + "/" + kSealedKeyFile;
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) {
    std::ifstream in(path, std::ios::binary);
    std::vector<uint8_t> bytes;
    if (in) {
      bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    if (!in && !in.eof()) return make_error("cannot read the sealed vTPM state key '{}'", path);
    if (bytes.size() > kMaxBlobBytes) return make_error("sealed vTPM state key '{}' is {} bytes, too big", path, bytes.size());
    auto blob = parse_sealed_blob(bytes);
    if (!blob) return make_error("sealed vTPM state key '{}' is damaged: {}", path, blob.error().message);
    Host host(tcti);
    if (auto r = host.open(); !r) return std::unexpected(r.error());
    return host.unseal(*blob);
  }
  // No blob: only a vTPM that has no state yet may get a new key.
  if (std::filesystem::exists(state_dir + "/tpm2-00.permall", ec)) {
    return make_error(
        "vTPM state in '{}' has no sealed key ({}): it was made without a host TPM or the key was removed, and a "
        "new key would not open it",
        state_dir, kSealedKeyFile);
  }
  std::filesystem::create_directories(state_dir, ec);
  if (ec) return make_error("cannot create vTPM state directory '{}': {}", state_dir, ec.message());
  ::chmod(state_dir.c_str(), 0700);
  std::vector<uint8_t> key(kStateKeyBytes);
  if (::getrandom(key.data(), key.size(), 0) != static_cast<ssize_t>(key.size())) {
    return make_error("getrandom failed: {}", std::strerror(errno));
  }
  Host host(tcti);
  if (auto r = host.open(); !r) return std::unexpected(r.error());
  auto blob = host.seal(key, pcr_mask);
  if (!blob) return std::unexpected(blob.error());
  // Written whole under a temporary name, then renamed: a crash leaves no half blob.
  const std::vector<uint8_t> bytes = format_sealed_blob(*blob);
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return make_error("cannot write the sealed vTPM state key '{}': {}", tmp, std::strerror(errno));
  const bool written = ::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!written || ::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return make_error("cannot write the sealed vTPM state key '{}': {}", path, std::strerror(errno));
  }
  return key;
}

}  // namespace vigil::vtpm
