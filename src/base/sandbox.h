// Per-thread seccomp-bpf sandbox for vigild: each thread class gets a default-deny filter
// with the short list of system calls its work needs (built with libseccomp).
//
// Why each thread restricts itself: a guest attacks vigild through the code that runs on
// its behalf (the instruction emulator and the devices on the vCPU worker threads, the
// user-mode network stack on the device I/O threads) and through the control API. Even if
// such a thread is taken over, it must not be able to execve, fork, ptrace, map executable
// memory, load modules or BPF, or open sockets of exotic families.
//
// Design:
//  * Filters are per thread (no TSYNC). A seccomp filter can never be removed, and a
//    thread's children inherit it, so a thread created by a restricted thread can only
//    narrow what it inherited (filters stack and the strictest answer wins). vigild's
//    thread tree is main -> {vCPU workers, domain reaper, API acceptor -> API clients ->
//    device I/O threads}, so the kApi list is a superset of the kVcpuWorker and kDeviceIo
//    lists: an API (or reaper) thread creating a domain spawns the device I/O thread, which
//    then installs its own, narrower filter.
//  * A refused call fails with EPERM (SCMP_ACT_ERRNO), it does not kill. A call missing from
//    a list is a vigild bug, not an attack; with EPERM it surfaces as an ordinary failed call
//    whose caller reports it ("cannot open disk image ...: Operation not permitted") while
//    the other domains keep running. Killing the thread would leave its locks held and its
//    domain wedged; killing the process would take every domain down. The kernel also logs
//    each refusal (SECCOMP_FILTER_FLAG_LOG: an "audit: type=1326 ... syscall=N" line in the
//    kernel log), which names the missing call.
//  * clone3 fails with ENOSYS (its flags are in memory, which seccomp cannot read), so glibc
//    falls back to clone, whose flags are checked: kApi may create threads (CLONE_THREAD,
//    no namespace flags); nothing may create a process.
//  * No class may map or mprotect memory executable (PROT_EXEC).
//
// The main thread is not restricted: it starts the others and tears everything down.
#pragma once

#include "base/error.h"

namespace vigil::sandbox {

enum class ThreadClass {
  kVcpuWorker,  // scheduler workers: run vCPUs and the devices they notify (virtio-blk I/O)
  kDeviceIo,    // backend I/O threads (libslirp's host sockets)
  kApi,         // control API acceptor and clients, the domain reaper: create and destroy domains
};

const char* to_string(ThreadClass c);

// Installs the filter for `c` on the calling thread only, after setting PR_SET_NO_NEW_PRIVS.
// Does nothing when the sandbox is disabled. The error names the class and the failing step.
// Calling it again on the same thread stacks another filter (allowed only from kApi threads).
[[nodiscard]] Result<void> restrict_thread(ThreadClass c);

// restrict_thread() for threads that must never run unrestricted (vCPU workers, API,
// reaper): they start with vigild, after probe() succeeded, so a failure here is a broken
// host; it prints the reason and aborts rather than run guests without the filter.
void restrict_thread_or_abort(ThreadClass c);

// Installs the kVcpuWorker filter on a throwaway thread and waits for it: fails, naming
// the reason, when this kernel cannot sandbox (so vigild can refuse to start and point at
// --no-sandbox instead of finding out on its first worker thread). Succeeds at once when
// the sandbox is disabled. Call it from an unrestricted thread (it creates one).
[[nodiscard]] Result<void> probe();

// Process-wide switch (vigild --no-sandbox), true by default. Affects later
// restrict_thread() calls only; installed filters stay.
bool enabled();
void set_enabled(bool on);

}  // namespace vigil::sandbox
