// The board's device tree, built with libfdt (Devicetree spec v0.4; bindings as Linux uses
// them for riscv cpus, sifive,plic-1.0.0, riscv,clint0, ns16550a, virtio,mmio).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/error.h"

namespace vigil::machine {

struct FdtParams {
  uint64_t ram_base = 0;
  uint64_t ram_size = 0;
  unsigned harts = 1;
  std::string bootargs;
  uint64_t initrd_start = 0, initrd_end = 0;  // both 0: no initrd
  unsigned virtio_slots = 0;                  // virtio-mmio nodes to describe
  bool tpm = false;                           // a TPM TIS node (tcg,tpm-tis-mmio)
  // Its TCG2 event log in guest RAM (linux,sml-base/-size, and a /memreserve/ entry); 0 = none.
  uint64_t tpm_log_base = 0;
  uint32_t tpm_log_size = 0;
};

Result<std::vector<uint8_t>> build_fdt(const FdtParams& p);

}  // namespace vigil::machine
