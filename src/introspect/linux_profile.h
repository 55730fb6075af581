// A Linux profile: where the fields introspection needs sit inside the kernel's structs.
// Read from the kernel's own BTF (the type information pahole encodes from vmlinux's DWARF;
// scripts/build-guest.sh writes it as vmlinux.btf) with libbpf, so no offset is ever typed by
// hand and a kernel with a different layout (another config, struct randomization) still
// reads correctly.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "base/error.h"

namespace vigil::introspect {

struct LinuxProfile {
  struct Field {
    uint64_t offset = 0;  // bytes from the start of the struct
    uint64_t size = 0;    // bytes
  };
  struct {
    uint64_t size = 0;
    Field tasks, pid, tgid, comm, real_parent, mm, active_mm;
  } task_struct;
  struct {
    Field pgd;
  } mm_struct;
  struct {
    Field next, prev;
  } list_head;
  // struct module is complete in BTF only when the kernel has CONFIG_MODULES.
  struct Module {
    Field list, name;
  };
  std::optional<Module> module;

  std::string source;  // where it was read from (for messages)

  // `path` is raw BTF (vmlinux.btf from `pahole --btf_encode_detached`) or an ELF vmlinux
  // with a .BTF section. Errors name the file and the missing struct or member.
  static Result<LinuxProfile> from_btf(const std::string& path);
};

}  // namespace vigil::introspect
