// TPM 2.0 TIS FIFO interface on MMIO (TCG PC Client Platform TPM Profile (PTP) for TPM 2.0,
// r1.05, 6.3 "FIFO Interface" and 6.5.2 "Register Space": 5 localities of 4 KiB each). Polled:
// no interrupt line, INTF_CAPABILITY reports no interrupt support, INT_* read 0. Linux binds
// tpm_tis to it through the DT compatible "tcg,tpm-tis-mmio" (as on QEMU's sysbus TIS).
//
// The device frames commands; the TPM itself is a TpmBackend (for Vigil, a swtpm process:
// src/vtpm/). A complete command written to the FIFO and started with tpmGo runs on the
// device's own worker thread, so a slow or dead TPM never blocks a vCPU: the guest polls STS
// until dataAvail, and a failing backend yields a TPM_RC_FAILURE response.
//
// Every guest value is checked: the command size in the header against the buffer and the
// bytes written, FIFO access in the wrong state, register offsets and sizes, accesses from a
// locality that is not active, and locality request/seize/relinquish sequences.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "base/error.h"
#include "devices/device.h"

namespace vigil::devices {

// The TPM behind the interface. execute() may block (the device calls it on its own thread);
// it must return within a bounded time (the implementation's own timeout).
class TpmBackend {
 public:
  virtual ~TpmBackend() = default;
  virtual Result<std::vector<uint8_t>> execute(std::span<const uint8_t> command) = 0;
  virtual std::string describe() const = 0;  // for log lines: "swtpm pid 123 of domain x"
  // A platform reset (the guest rebooted, the board is rebuilt): the TPM restarts as after
  // power-on and TPM2_Startup(CLEAR), so the new boot is measured from zeroed PCRs.
  virtual Result<void> platform_reset() { return {}; }
  // The domain is gone: stop the TPM now (its state stays), not when the last user lets go.
  virtual void shutdown() {}
  // A TPM started asynchronously (vtpm::Swtpm::pending): waits until it runs, or says why not.
  virtual Result<void> wait_ready() { return {}; }
  // Snapshots (migrate/vtpm_record.h): the TPM's whole state as opaque bytes, taken while no
  // command runs, and put back into a TPM of a new domain (replacing what it measured). A
  // backend that cannot do it refuses in one sentence.
  virtual Result<std::vector<uint8_t>> save_state() { return make_error("{} cannot be saved", describe()); }
  virtual Result<void> load_state(std::span<const uint8_t>) { return make_error("{} cannot be restored", describe()); }
};

class TpmTis final : public MmioDevice {
 public:
  static constexpr unsigned kLocalities = 5;
  static constexpr uint64_t kLocalitySize = 0x1000;
  static constexpr uint64_t kSize = kLocalities * kLocalitySize;
  static constexpr size_t kBufferSize = 4096;  // commands and responses (TPM2 MAX_COMMAND_SIZE)

  // Register offsets within a locality (PTP 6.5.2, Table 19).
  static constexpr uint64_t kAccess = 0x00, kIntEnable = 0x08, kIntVector = 0x0c, kIntStatus = 0x10,
                            kIntfCapability = 0x14, kSts = 0x18, kDataFifo = 0x24, kInterfaceId = 0x30,
                            kXDataFifo = 0x80, kXDataFifoEnd = 0xc0, kDidVid = 0xf00, kRid = 0xf04;
  // TPM_ACCESS_x bits (PTP Table 20).
  static constexpr uint8_t kAccessEstablishment = 0x01, kAccessRequestUse = 0x02, kAccessPending = 0x04,
                           kAccessSeize = 0x08, kAccessBeenSeized = 0x10, kAccessActive = 0x20,
                           kAccessValid = 0x80;
  // TPM_STS_x bits (PTP Table 23).
  static constexpr uint32_t kStsResponseRetry = 0x02, kStsSelfTestDone = 0x04, kStsExpect = 0x08,
                            kStsDataAvail = 0x10, kStsGo = 0x20, kStsCommandReady = 0x40, kStsValid = 0x80,
                            kStsFamilyTpm2 = 1u << 26;
  static constexpr uint16_t kVendorId = 0x1014, kDeviceId = 0x0001;  // as QEMU's TIS reports
  static constexpr uint8_t kRevisionId = 0x01;

  using Log = std::function<void(const std::string&)>;
  TpmTis(std::shared_ptr<TpmBackend> backend, Log log);
  ~TpmTis() override;
  TpmTis(const TpmTis&) = delete;
  TpmTis& operator=(const TpmTis&) = delete;

  std::string_view name() const override { return "tpm-tis"; }
  bool read(uint64_t offset, unsigned size, uint64_t& value) override;
  bool write(uint64_t offset, unsigned size, uint64_t value) override;
  void reset() override;

  // For tests: waits until no command is executing (true) or `ms` pass (false).
  bool wait_idle(unsigned ms);

  // The interface's registers and buffer for a snapshot (migrate/vtpm_record.h). Taken with no
  // command executing (snapshot() waits up to `ms` for one to finish, then refuses); restore()
  // checks every field (a hostile file) and refuses in one sentence.
  struct Snapshot {
    uint8_t state = 0;        // State: 0 idle, 1 ready, 2 reception, 4 completion (never 3, execution)
    int8_t active = -1;       // active locality, -1 = none
    uint8_t requested = 0;    // bit n: locality n requested use
    uint8_t seized = 0;       // bit n: locality n was seized
    uint32_t offset = 0;      // bytes received, or of the response read
    std::vector<uint8_t> buffer;  // the command being received (kBufferSize bytes) or the response
  };
  Result<Snapshot> snapshot(unsigned ms);
  Result<void> restore(const Snapshot& s);
  uint64_t commands_executed() const;
  uint64_t backend_failures() const;

 private:
  // PTP 5.5.2.2 "TPM state machine" (command phases of the active locality).
  enum class State { kIdle, kReady, kReception, kExecution, kCompletion };

  uint32_t read_register(unsigned locality, uint64_t reg);
  void write_access(unsigned locality, uint8_t value);
  void write_sts(unsigned locality, uint32_t value, uint32_t mask);
  void fifo_write(unsigned locality, uint64_t value, unsigned size);
  uint64_t fifo_read(unsigned locality, unsigned size);
  uint32_t sts_value() const;
  uint16_t burst_count() const;
  bool expecting() const;
  void set_active(int locality);
  void abort_command();
  void worker_loop();
  static std::vector<uint8_t> error_response(uint32_t rc);
  // Checks a backend response's framing; a bad one becomes TPM_RC_FAILURE.
  std::vector<uint8_t> checked_response(Result<std::vector<uint8_t>> r);

  std::shared_ptr<TpmBackend> m_backend;
  Log m_log;

  mutable std::mutex m_mutex;
  std::condition_variable m_cv;
  State m_state = State::kIdle;
  int m_active = -1;                 // active locality, -1 = none
  uint8_t m_requested = 0;           // bit n: locality n has requestUse pending
  uint8_t m_seized = 0;              // bit n: locality n lost its access by a seize
  std::vector<uint8_t> m_buffer;     // command being received, then the response
  size_t m_offset = 0;               // bytes received / bytes of the response read
  bool m_oversized = false;          // the command does not fit the buffer (answered with an error)
  uint64_t m_generation = 0;         // bumped on abort: a late response is discarded
  bool m_job = false;                // a command waits for the worker
  std::vector<uint8_t> m_job_command;
  uint64_t m_job_generation = 0;
  bool m_running = false;            // the worker is inside execute()
  bool m_quit = false;
  bool m_backend_down = false;       // logged once until it works again
  uint64_t m_executed = 0, m_failures = 0;
  std::thread m_worker;
};

}  // namespace vigil::devices
