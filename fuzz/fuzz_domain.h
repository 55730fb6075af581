// A small domain for the fuzz targets that build one (restore, migrate_wire): 16 MiB,
// virtio-rng, and as its kernel a bare RISC-V Linux Image header (written once per process
// under /tmp) that never runs far.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "hv/domain.h"

namespace vigil::fuzz {

inline hv::DomainConfig small_domain_config(const std::string& tag, unsigned vcpus) {
  static const std::string kernel = [&] {
    std::string p = "/tmp/vigil-fuzz-" + tag + "-image-" + std::to_string(::getpid());
    std::vector<char> img(4096);
    const uint32_t magic2 = 0x05435352;  // "RSC\x05": a RISC-V Linux Image header
    std::memcpy(img.data() + 56, &magic2, 4);
    std::ofstream(p, std::ios::binary).write(img.data(), static_cast<std::streamsize>(img.size()));
    return p;
  }();
  hv::DomainConfig c;
  c.name = "fuzz";
  c.memory_mib = 16;
  c.vcpus = vcpus;
  c.kernel = kernel;
  c.rng = true;
  return c;
}

}  // namespace vigil::fuzz
