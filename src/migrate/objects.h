// Save and restore of each object of a domain into snapshot records (issue 11): harts, the
// CLINT, PLIC, UART, the test device, SBI HSM states, the guest clock and every virtio-mmio
// transport with its backend. Each object's payload is versioned by its record type; the
// layouts are in objects.cpp beside the code that writes them.
//
// Every restore_* treats the payload as hostile (a file anyone could have written): lengths,
// counts, indices, addresses and enumerations are checked before use, and a refusal is one
// sentence naming the record, e.g.
//   "snapshot: record HART(1) at offset 9120: privilege 2 is not U, S or M".
// They run while no vCPU does (a new domain that has not started), after RAM is restored
// (virtqueue rings are checked against guest RAM).
#pragma once

#include <cstdint>

#include "base/error.h"
#include "devices/clint.h"
#include "devices/plic.h"
#include "devices/uart16550.h"
#include "devices/virtio_mmio.h"
#include "machine/machine.h"
#include "migrate/stream.h"
#include "riscv/hart.h"

namespace vigil::migrate {

void add_hart(StreamWriter& w, const riscv::Hart& hart);
Result<void> restore_hart(const Record& r, riscv::Hart& hart);

// mtimecmp and msip of every hart (mtime itself is the CLOCK record).
void add_clint(StreamWriter& w, devices::ClintTarget& clint);
Result<void> restore_clint(const Record& r, devices::ClintTarget& clint);

void add_plic(StreamWriter& w, const devices::Plic& plic);
Result<void> restore_plic(const Record& r, devices::Plic& plic);

void add_uart(StreamWriter& w, const devices::Uart16550& uart);
Result<void> restore_uart(const Record& r, devices::Uart16550& uart);

// The sifive,test finisher has no state: an empty record says the board had one.
void add_test_device(StreamWriter& w);
Result<void> restore_test_device(const Record& r);

// Refuses a backend that cannot be saved ("device virtio-net cannot be saved").
Result<void> add_virtio(StreamWriter& w, uint32_t slot, const devices::VirtioMmio& dev);
Result<void> restore_virtio(const Record& r, devices::VirtioMmio& dev);

void add_hsm(StreamWriter& w, machine::Machine& m);
Result<void> restore_hsm(const Record& r, machine::Machine& m);

// The guest's mtime at save; restore holds the clock there (paused) until the domain runs.
void add_clock(StreamWriter& w, uint64_t mtime);
Result<void> restore_clock(const Record& r, machine::Machine& m);

}  // namespace vigil::migrate
