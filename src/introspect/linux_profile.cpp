#include "introspect/linux_profile.h"

#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <string_view>

namespace vigil::introspect {

namespace {

struct BtfDeleter {
  void operator()(btf* b) const { btf__free(b); }
};

// Finds `member` in the struct or union `type_id`, looking through anonymous struct and union
// members (6.1's mm_struct keeps pgd inside one) with their offsets added. Depth-bounded:
// a malformed BTF cannot recurse forever.
std::optional<LinuxProfile::Field> find_member(const btf* b, uint32_t type_id, std::string_view member,
                                               uint64_t base_bits = 0, int depth = 0) {
  if (depth > 8) return std::nullopt;
  const int resolved = btf__resolve_type(b, type_id);
  if (resolved < 0) return std::nullopt;
  const btf_type* t = btf__type_by_id(b, static_cast<uint32_t>(resolved));
  if (!t || !btf_is_composite(t)) return std::nullopt;
  const btf_member* m = btf_members(t);
  for (uint32_t i = 0; i < btf_vlen(t); ++i, ++m) {
    const uint64_t bits = base_bits + btf_member_bit_offset(t, i);
    const char* name = btf__name_by_offset(b, m->name_off);
    if (name && *name) {
      if (member != name) continue;
      if (btf_member_bitfield_size(t, i) != 0 || bits % 8 != 0) return std::nullopt;  // not byte-addressable
      const int64_t size = btf__resolve_size(b, m->type);
      if (size < 0) return std::nullopt;
      return LinuxProfile::Field{bits / 8, static_cast<uint64_t>(size)};
    }
    if (auto f = find_member(b, m->type, member, bits, depth + 1)) return f;
  }
  return std::nullopt;
}

struct StructLookup {
  const btf* b;
  const std::string& path;
  uint32_t id = 0;
  std::string name;

  Result<uint64_t> open(const char* struct_name) {
    name = struct_name;
    const int found = btf__find_by_name_kind(b, struct_name, BTF_KIND_STRUCT);
    if (found < 0) return make_error("{}: the kernel's BTF has no struct {}", path, struct_name);
    id = static_cast<uint32_t>(found);
    const int64_t size = btf__resolve_size(b, id);
    if (size <= 0) return make_error("{}: struct {} has no size in the BTF", path, struct_name);
    return static_cast<uint64_t>(size);
  }
  // `size` 0: any size.
  Result<LinuxProfile::Field> field(const char* member, uint64_t size = 0) {
    auto f = find_member(b, id, member);
    if (!f) return make_error("{}: struct {} has no byte-aligned member '{}' in the BTF", path, name, member);
    if (size && f->size != size) {
      return make_error("{}: struct {} member '{}' is {} bytes, expected {}", path, name, member, f->size,
                        size);
    }
    return *f;
  }
};

#define VIGIL_TRY_ASSIGN(lhs, expr)                        \
  do {                                                     \
    auto vigil_r = (expr);                                 \
    if (!vigil_r) return std::unexpected(vigil_r.error()); \
    lhs = *vigil_r;                                        \
  } while (0)

}  // namespace

Result<LinuxProfile> LinuxProfile::from_btf(const std::string& path) {
  // libbpf prints its own diagnostics to stderr; the error returned here says it in one sentence.
  static std::once_flag quiet;
  std::call_once(quiet, [] { libbpf_set_print([](libbpf_print_level, const char*, va_list) { return 0; }); });
  errno = 0;
  std::unique_ptr<btf, BtfDeleter> owned(btf__parse(path.c_str(), nullptr));
  if (!owned) {
    const int e = errno ? errno : EINVAL;
    return make_error(
        "cannot read kernel BTF from '{}': {}", path,
        e == EPROTO || e == EINVAL ? "not raw BTF nor an ELF file with a .BTF section" : std::strerror(e));
  }
  const btf* b = owned.get();
  LinuxProfile p;
  p.source = path;
  constexpr uint64_t kPtr = 8, kInt = 4;

  StructLookup task{b, path};
  VIGIL_TRY_ASSIGN(p.task_struct.size, task.open("task_struct"));
  VIGIL_TRY_ASSIGN(p.task_struct.tasks, task.field("tasks", 2 * kPtr));
  VIGIL_TRY_ASSIGN(p.task_struct.pid, task.field("pid", kInt));
  VIGIL_TRY_ASSIGN(p.task_struct.tgid, task.field("tgid", kInt));
  VIGIL_TRY_ASSIGN(p.task_struct.comm, task.field("comm"));
  VIGIL_TRY_ASSIGN(p.task_struct.real_parent, task.field("real_parent", kPtr));
  VIGIL_TRY_ASSIGN(p.task_struct.mm, task.field("mm", kPtr));
  VIGIL_TRY_ASSIGN(p.task_struct.active_mm, task.field("active_mm", kPtr));
  if (p.task_struct.comm.size == 0 || p.task_struct.comm.size > 64) {
    return make_error("{}: task_struct.comm is {} bytes, not a short name buffer", path,
                      p.task_struct.comm.size);
  }

  StructLookup mm{b, path};
  if (auto r = mm.open("mm_struct"); !r) return std::unexpected(r.error());
  VIGIL_TRY_ASSIGN(p.mm_struct.pgd, mm.field("pgd", kPtr));

  StructLookup list{b, path};
  if (auto r = list.open("list_head"); !r) return std::unexpected(r.error());
  VIGIL_TRY_ASSIGN(p.list_head.next, list.field("next", kPtr));
  VIGIL_TRY_ASSIGN(p.list_head.prev, list.field("prev", kPtr));

  // Without CONFIG_MODULES struct module is at most a forward declaration.
  StructLookup mod{b, path};
  if (mod.open("module")) {
    auto l = mod.field("list", 2 * kPtr);
    auto n = mod.field("name");
    if (l && n) p.module = Module{*l, *n};
  }
  return p;
}

}  // namespace vigil::introspect
