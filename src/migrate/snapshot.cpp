#include "migrate/snapshot.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "migrate/objects.h"
#include "migrate/vtpm_record.h"

namespace vigil::migrate {
namespace {

using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

const char* action_name(hv::LifecycleAction a) {
  switch (a) {
    case hv::LifecycleAction::kDestroy: return "destroy";
    case hv::LifecycleAction::kRestart: return "restart";
    case hv::LifecycleAction::kPreserve: return "preserve";
  }
  return "destroy";
}

// Typed, checked access to one JSON object of the CONFIG record.
class ConfigReader {
 public:
  explicit ConfigReader(const Json& j, std::string where) : m_j(j), m_where(std::move(where)) {}
  Result<std::string> str(const char* key) const {
    auto it = m_j.find(key);
    if (it == m_j.end() || !it->is_string()) return make_error("{}: \"{}\" is missing or not a string", m_where, key);
    return it->get<std::string>();
  }
  Result<uint64_t> num(const char* key, uint64_t max) const {
    auto it = m_j.find(key);
    if (it == m_j.end() || !it->is_number_unsigned())
      return make_error("{}: \"{}\" is missing or not an unsigned number", m_where, key);
    const uint64_t v = it->get<uint64_t>();
    if (v > max) return make_error("{}: \"{}\" is {}, more than {}", m_where, key, v, max);
    return v;
  }
  Result<bool> flag(const char* key) const {
    auto it = m_j.find(key);
    if (it == m_j.end() || !it->is_boolean()) return make_error("{}: \"{}\" is missing or not a boolean", m_where, key);
    return it->get<bool>();
  }
  Result<const Json*> array(const char* key, size_t max) const {
    auto it = m_j.find(key);
    if (it == m_j.end() || !it->is_array()) return make_error("{}: \"{}\" is missing or not an array", m_where, key);
    if (it->size() > max) return make_error("{}: \"{}\" has {} entries, more than {}", m_where, key, it->size(), max);
    return &*it;
  }
  Result<hv::LifecycleAction> action(const char* key) const {
    auto s = str(key);
    if (!s) return std::unexpected(s.error());
    for (auto a : {hv::LifecycleAction::kDestroy, hv::LifecycleAction::kRestart, hv::LifecycleAction::kPreserve}) {
      if (*s == action_name(a)) return a;
    }
    return make_error("{}: \"{}\" is '{}', not destroy, restart or preserve", m_where, key, *s);
  }

 private:
  const Json& m_j;
  std::string m_where;
};

#define VIGIL_TRY_SET(target, expr)                   \
  do {                                                \
    auto vigil_try_v = (expr);                        \
    if (!vigil_try_v) return std::unexpected(vigil_try_v.error()); \
    target = *vigil_try_v;                            \
  } while (0)

std::string errno_text() { return std::strerror(errno); }

}  // namespace

// ---- CONFIG ----

std::string encode_config(const hv::DomainConfig& c) {
  Json j;
  j["name"] = c.name;
  j["memory_mib"] = c.memory_mib;
  j["vcpus"] = c.vcpus;
  j["kernel"] = c.kernel;
  j["ramdisk"] = c.ramdisk;
  j["extra"] = c.extra;
  j["firmware"] = c.firmware;
  j["system_map"] = c.system_map;
  j["kernel_btf"] = c.kernel_btf;
  j["disks"] = Json::array();
  for (const auto& d : c.disks) j["disks"].push_back({{"path", d.path}, {"read_only", d.read_only}, {"vdev", d.vdev}});
  j["nics"] = Json::array();
  for (const auto& n : c.nics) {
    Json fw = Json::array();
    for (auto [h, g] : n.forwards) fw.push_back({h, g});
    j["nics"].push_back({{"model", n.model}, {"tap_name", n.tap_name}, {"mac", n.mac}, {"forwards", fw}});
  }
  j["rng"] = c.rng;
  j["on_poweroff"] = action_name(c.on_poweroff);
  j["on_reboot"] = action_name(c.on_reboot);
  j["on_crash"] = action_name(c.on_crash);
  j["cpu_weight"] = c.cpu_weight;
  j["cap"] = c.cap;
  j["cpu_pins"] = c.cpu_pins;
  if (c.vtpm) j["vtpm"] = {{"state_dir", c.vtpm->state_dir}};  // absent: no vTPM
  return j.dump();
}

Result<hv::DomainConfig> decode_config(std::string_view text) {
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return make_error("config is not a JSON object");
  ConfigReader r(j, "config");
  hv::DomainConfig c;
  VIGIL_TRY_SET(c.name, r.str("name"));
  VIGIL_TRY_SET(c.memory_mib, r.num("memory_mib", 64 * 1024));
  VIGIL_TRY_SET(c.vcpus, r.num("vcpus", 64));
  VIGIL_TRY_SET(c.kernel, r.str("kernel"));
  VIGIL_TRY_SET(c.ramdisk, r.str("ramdisk"));
  VIGIL_TRY_SET(c.extra, r.str("extra"));
  VIGIL_TRY_SET(c.firmware, r.str("firmware"));
  VIGIL_TRY_SET(c.system_map, r.str("system_map"));
  VIGIL_TRY_SET(c.kernel_btf, r.str("kernel_btf"));
  const Json* disks = nullptr;
  VIGIL_TRY_SET(disks, r.array("disks", 16));
  for (const Json& d : *disks) {
    if (!d.is_object()) return make_error("config: a disk is not an object");
    ConfigReader dr(d, "config: disk");
    hv::DiskConfig disk;
    VIGIL_TRY_SET(disk.path, dr.str("path"));
    VIGIL_TRY_SET(disk.read_only, dr.flag("read_only"));
    VIGIL_TRY_SET(disk.vdev, dr.str("vdev"));
    c.disks.push_back(std::move(disk));
  }
  const Json* nics = nullptr;
  VIGIL_TRY_SET(nics, r.array("nics", 16));
  for (const Json& n : *nics) {
    if (!n.is_object()) return make_error("config: a NIC is not an object");
    ConfigReader nr(n, "config: NIC");
    hv::NetConfig nic;
    VIGIL_TRY_SET(nic.model, nr.str("model"));
    VIGIL_TRY_SET(nic.tap_name, nr.str("tap_name"));
    VIGIL_TRY_SET(nic.mac, nr.str("mac"));
    const Json* fw = nullptr;
    VIGIL_TRY_SET(fw, nr.array("forwards", 64));
    for (const Json& p : *fw) {
      if (!p.is_array() || p.size() != 2 || !p[0].is_number_unsigned() || !p[1].is_number_unsigned() ||
          p[0].get<uint64_t>() > 65535 || p[1].get<uint64_t>() > 65535)
        return make_error("config: a NIC port forward is not a pair of ports");
      nic.forwards.emplace_back(p[0].get<uint16_t>(), p[1].get<uint16_t>());
    }
    c.nics.push_back(std::move(nic));
  }
  VIGIL_TRY_SET(c.rng, r.flag("rng"));
  VIGIL_TRY_SET(c.on_poweroff, r.action("on_poweroff"));
  VIGIL_TRY_SET(c.on_reboot, r.action("on_reboot"));
  VIGIL_TRY_SET(c.on_crash, r.action("on_crash"));
  VIGIL_TRY_SET(c.cpu_weight, r.num("cpu_weight", 65535));
  VIGIL_TRY_SET(c.cap, r.num("cap", 100 * 64));
  const Json* pins = nullptr;
  VIGIL_TRY_SET(pins, r.array("cpu_pins", 64));
  for (const Json& p : *pins) {
    if (!p.is_array() || p.size() > 64) return make_error("config: a vCPU's pins are not a list of CPUs");
    std::vector<unsigned> cpus;
    for (const Json& cpu : p) {
      if (!cpu.is_number_unsigned() || cpu.get<uint64_t>() > 63) return make_error("config: a pinned CPU is not 0..63");
      cpus.push_back(cpu.get<unsigned>());
    }
    c.cpu_pins.push_back(std::move(cpus));
  }
  if (auto it = j.find("vtpm"); it != j.end()) {
    if (!it->is_object()) return make_error("config: \"vtpm\" is not an object");
    ConfigReader vr(*it, "config: vtpm");
    hv::VtpmConfig vtpm;
    VIGIL_TRY_SET(vtpm.state_dir, vr.str("state_dir"));
    c.vtpm = std::move(vtpm);
  }
  return c;
}

// ---- save ----

Result<std::vector<uint8_t>> snapshot_domain(hv::Domain& domain) {
  machine::Machine& m = domain.machine();
  // The vTPM (migrate/vtpm_record.h): taken first, so a TPM that cannot be saved refuses
  // before the RAM is compressed.
  std::vector<uint8_t> vtpm;
  if (domain.config().vtpm) {
    if (!m.tpm_tis() || !domain.tpm()) return make_error("domain '{}': its vTPM is not running", domain.name());
    auto v = encode_vtpm_record(*m.tpm_tis(), *domain.tpm());
    if (!v) return make_error("domain '{}': {}", domain.name(), v.error().message);
    vtpm = std::move(*v);
  }
  StreamWriter w;
  const std::string config = encode_config(domain.config());
  w.add(RecordType::kConfig, 0, std::span(reinterpret_cast<const uint8_t*>(config.data()), config.size()));
  // Devices first into a side writer, so a device that cannot be saved refuses before the
  // RAM is compressed.
  StreamWriter devices_probe;
  for (size_t slot = 0; slot < m.virtio_count(); ++slot) {
    if (auto r = add_virtio(devices_probe, static_cast<uint32_t>(slot), m.virtio(slot)); !r)
      return make_error("domain '{}': {}", domain.name(), r.error().message);
  }
  add_all_ram(w, m.ram());
  for (unsigned h = 0; h < m.hart_count(); ++h) add_hart(w, m.hart(h));
  add_clint(w, m);
  add_plic(w, m.plic());
  add_uart(w, m.uart());
  add_test_device(w);
  for (size_t slot = 0; slot < m.virtio_count(); ++slot) {
    if (auto r = add_virtio(w, static_cast<uint32_t>(slot), m.virtio(slot)); !r)
      return make_error("domain '{}': {}", domain.name(), r.error().message);
  }
  add_hsm(w, m);
  add_clock(w, m.mtime());
  if (domain.config().vtpm) add_vtpm(w, vtpm);
  return w.finish();
}

Result<void> write_snapshot_file(const std::string& path, std::span<const uint8_t> bytes) {
  if (path.empty()) return make_error("save: no file name given");
  std::filesystem::path p(path);
  const std::string dir = p.has_parent_path() ? p.parent_path().string() : ".";
  // An unnamed file in the target directory: nothing appears under any name until it is
  // complete, whatever fails on the way (a full disk, a crash).
  const int fd = ::open(dir.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EOPNOTSUPP || errno == EISDIR)
      return make_error("save: {}: the filesystem cannot make unnamed files (O_TMPFILE)", dir);
    return make_error("save: {}: {}", dir, errno_text());
  }
  const auto fail = [&](std::string what) {
    const int saved = errno;
    ::close(fd);
    return make_error("save: {}: {}", what, std::strerror(saved));
  };
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, std::min<size_t>(bytes.size() - done, 8u << 20));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = ENOSPC;
      return fail(path);
    }
    done += static_cast<size_t>(n);
  }
  // Some filesystems report a full disk only when the data goes out.
  if (::fdatasync(fd) != 0) return fail(path);
  const std::string proc = fmt::format("/proc/self/fd/{}", fd);
  if (::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, path.c_str(), AT_SYMLINK_FOLLOW) == 0) {
    ::close(fd);
    return {};
  }
  // linkat never replaces a name, so an existing file (perhaps a disk image) stays as it
  // was; the sandbox allows API threads no call that could replace one.
  return fail(path);
}

Result<std::vector<uint8_t>> read_snapshot_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return make_error("restore: {}: {}", path, errno_text());
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return make_error("restore: {}: not a regular file", path);
  }
  std::vector<uint8_t> out(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = ::read(fd, out.data() + done, out.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const std::string why = errno_text();
      ::close(fd);
      return make_error("restore: {}: {}", path, why);
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  out.resize(done);
  return out;
}

Result<SaveReport> save_domain(hv::DomainManager& manager, uint32_t id, const std::string& path, AfterSave after) {
  auto dom = manager.get(id);
  if (!dom) return make_error("no domain with id {}", id);
  const hv::DomainState before = dom->state();
  if (before != hv::DomainState::kRunning && before != hv::DomainState::kPaused)
    return make_error("domain {} is {}; only a running or paused domain can be saved", id, hv::to_string(before));
  SaveReport report;
  const auto paused_at = Clock::now();
  if (before == hv::DomainState::kRunning) {
    if (auto r = manager.pause(id); !r) return std::unexpected(r.error());
  }
  const auto put_back = [&] {
    if (before == hv::DomainState::kRunning) (void)manager.unpause(id);
  };
  auto t = Clock::now();
  auto bytes = snapshot_domain(*dom);
  report.snapshot_ms = ms_since(t);
  if (!bytes) {
    put_back();
    return std::unexpected(bytes.error());
  }
  t = Clock::now();
  if (auto w = write_snapshot_file(path, *bytes); !w) {
    put_back();
    return std::unexpected(w.error());
  }
  report.write_ms = ms_since(t);
  report.bytes = bytes->size();
  switch (after) {
    case AfterSave::kDestroy:
      if (auto r = manager.destroy(id); !r) return std::unexpected(r.error());
      break;
    case AfterSave::kKeep: put_back(); break;
    case AfterSave::kPause: break;
  }
  report.pause_ms = ms_since(paused_at);
  return report;
}

// ---- restore ----

Result<void> load_domain_state(hv::Domain& domain, std::span<const Record> records) {
  machine::Machine& m = domain.machine();
  const unsigned harts = m.hart_count();
  const size_t slots = m.virtio_count();
  bool ram_info = false, device_seen = false;
  std::vector<bool> hart_done(harts), slot_done(slots);
  bool clint = false, plic = false, uart = false, test = false, hsm = false, clock = false, vtpm = false;
  const auto once = [](bool& seen, const Record& r) -> Result<void> {
    if (seen) return make_error("{}: appears twice", record_context(r));
    seen = true;
    return {};
  };
  // RAM records come in one run before the devices; they are applied together (two threads).
  std::vector<const Record*> ram_run;
  for (size_t i = 0; i < records.size(); ++i) {
    const Record& r = records[i];
    const auto type = static_cast<RecordType>(r.type);
    if ((i == 0) != (type == RecordType::kConfig))
      return make_error("{}: the stream must open with CONFIG, and only once", record_context(r));
    if (type != RecordType::kRam && !ram_run.empty()) {
      if (auto ok = restore_ram_records(ram_run, m.ram()); !ok) return ok;
      ram_run.clear();
    }
    Result<void> ok;
    switch (type) {
      case RecordType::kConfig: break;  // read by the caller
      case RecordType::kRamInfo:
        ok = once(ram_info, r);
        if (ok) ok = check_ram_info(r, m.ram().size());
        break;
      case RecordType::kRam:
        if (!ram_info) return make_error("{}: RAM before RAM_INFO", record_context(r));
        if (device_seen) return make_error("{}: RAM after device state", record_context(r));
        ram_run.push_back(&r);
        break;
      case RecordType::kHart: {
        device_seen = true;
        if (r.instance >= harts)
          return make_error("{}: the domain has {} harts", record_context(r), harts);
        bool seen = hart_done[r.instance];
        ok = once(seen, r);
        hart_done[r.instance] = true;
        if (ok) ok = restore_hart(r, m.hart(r.instance));
        break;
      }
      case RecordType::kClint:
        device_seen = true;
        ok = once(clint, r);
        if (ok) ok = restore_clint(r, m);
        break;
      case RecordType::kPlic:
        device_seen = true;
        ok = once(plic, r);
        if (ok) ok = restore_plic(r, m.plic());
        break;
      case RecordType::kUart:
        device_seen = true;
        ok = once(uart, r);
        if (ok) ok = restore_uart(r, m.uart());
        break;
      case RecordType::kTestDevice:
        device_seen = true;
        ok = once(test, r);
        if (ok) ok = restore_test_device(r);
        break;
      case RecordType::kVirtio: {
        device_seen = true;
        if (r.instance >= slots)
          return make_error("{}: the domain has {} virtio slots", record_context(r), slots);
        bool seen = slot_done[r.instance];
        ok = once(seen, r);
        slot_done[r.instance] = true;
        if (ok) ok = restore_virtio(r, m.virtio(r.instance));
        break;
      }
      case RecordType::kHsm:
        device_seen = true;
        ok = once(hsm, r);
        if (ok) ok = restore_hsm(r, m);
        break;
      case RecordType::kClock:
        device_seen = true;
        ok = once(clock, r);
        if (ok) ok = restore_clock(r, m);
        break;
      case RecordType::kExtraDeviceState:
        if (r.instance != kVtpmInstance) break;  // an optional device this build does not know: skipped
        device_seen = true;
        if (!m.tpm_tis() || !domain.tpm()) return make_error("{}: vTPM state for a domain without a vTPM", record_context(r));
        ok = once(vtpm, r);
        if (ok) ok = restore_vtpm(r, *m.tpm_tis(), *domain.tpm());
        break;
      case RecordType::kEnd:
        break;
    }
    if (!ok) return ok;
  }
  if (!ram_run.empty()) {
    if (auto ok = restore_ram_records(ram_run, m.ram()); !ok) return ok;
  }
  if (!ram_info) return make_error("snapshot: no RAM_INFO record");
  for (unsigned h = 0; h < harts; ++h) {
    if (!hart_done[h]) return make_error("snapshot: no HART record for hart {}", h);
  }
  for (size_t s = 0; s < slots; ++s) {
    if (!slot_done[s]) return make_error("snapshot: no VIRTIO record for slot {} ({})", s, m.virtio(s).name());
  }
  for (auto [seen, name] : {std::pair{clint, "CLINT"}, {plic, "PLIC"}, {uart, "UART"}, {test, "TEST_DEVICE"},
                            {hsm, "HSM"}, {clock, "CLOCK"}}) {
    if (!seen) return make_error("snapshot: no {} record", name);
  }
  if (m.tpm_tis() && !vtpm) return make_error("snapshot: no vTPM record (EXTRA_DEVICE_STATE(0)) for a domain with a vTPM");
  return {};
}

Result<RestoreReport> restore_domain(hv::DomainManager& manager, std::span<const uint8_t> stream,
                                     const std::optional<hv::DomainConfig>& override, bool paused) {
  RestoreReport report;
  auto t = Clock::now();
  auto records = parse_stream(stream);
  if (!records) return std::unexpected(records.error());
  if (records->empty() || records->front().type != static_cast<uint32_t>(RecordType::kConfig))
    return make_error("snapshot: the stream does not open with a CONFIG record");
  const Record& cr = records->front();
  auto saved = decode_config(std::string_view(reinterpret_cast<const char*>(cr.payload.data()), cr.payload.size()));
  if (!saved) return make_error("{}: {}", record_context(cr), saved.error().message);
  hv::DomainConfig config = *saved;
  // A config that does not fit the snapshot (RAM size, harts, devices) is refused by the
  // record it does not fit (RAM_INFO, CLINT, VIRTIO ...).
  if (override) config = *override;
  report.parse_ms = ms_since(t);
  t = Clock::now();
  auto id = manager.create_prepared(
      config, [&](hv::Domain& d) { return load_domain_state(d, *records); }, paused);
  if (!id) return std::unexpected(id.error());
  report.restore_ms = ms_since(t);
  report.id = *id;
  return report;
}

}  // namespace vigil::migrate
