#include "base/sandbox.h"

#include <fcntl.h>
#include <linux/if_tun.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

namespace vigil::sandbox {

namespace {

std::atomic<bool> g_enabled{true};

// One allow (or errno) rule: the call is matched when all `args` comparisons hold. Several
// rules for one call are alternatives.
struct Rule {
  const char* name;
  int nr;  // libseccomp's number; negative (a pseudo-number) when the call does not exist here
  std::vector<scmp_arg_cmp> args{};
  uint32_t action = SCMP_ACT_ALLOW;
};

#define VIGIL_SYS(call) #call, SCMP_SYS(call)

// Comparisons. Arguments the kernel takes as int are compared on their low 32 bits only,
// so whatever the caller left in the upper half cannot change the answer.
scmp_arg_cmp int_is(unsigned arg, uint32_t value) {
  return {.arg = arg, .op = SCMP_CMP_MASKED_EQ, .datum_a = 0xffffffffu, .datum_b = value};
}
scmp_arg_cmp bits_clear(unsigned arg, uint64_t mask) {
  return {.arg = arg, .op = SCMP_CMP_MASKED_EQ, .datum_a = mask, .datum_b = 0};
}
scmp_arg_cmp masked_is(unsigned arg, uint64_t mask, uint64_t value) {
  return {.arg = arg, .op = SCMP_CMP_MASKED_EQ, .datum_a = mask, .datum_b = value};
}

// Flags that make clone() create something other than a plain thread of this process.
constexpr uint64_t kCloneNamespaces = CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER |
                                      CLONE_NEWPID | CLONE_NEWNET;
constexpr uint64_t kCloneThread = CLONE_THREAD | CLONE_SIGHAND | CLONE_VM;
// open flags that create or destroy file contents (O_TMPFILE is __O_TMPFILE | O_DIRECTORY).
constexpr uint64_t kOpenCreates = O_CREAT | O_TRUNC | (O_TMPFILE & ~O_DIRECTORY);

// Every thread: memory, time, locks, thread exit, logging to stderr, closing fds.
void add_common(std::vector<Rule>& r) {
  const auto self = static_cast<uint32_t>(::getpid());
  r.insert(r.end(), {
      {VIGIL_SYS(futex)},
      {VIGIL_SYS(clock_gettime)},  // normally the vDSO; the syscall when it has no fast path
      {VIGIL_SYS(clock_getres)},
      {VIGIL_SYS(clock_nanosleep)},
      {VIGIL_SYS(nanosleep)},
      {VIGIL_SYS(gettimeofday)},
      {VIGIL_SYS(sched_yield)},
      {VIGIL_SYS(sched_getaffinity)},  // glibc sizes malloc arenas by it
      {VIGIL_SYS(getpid)},
      {VIGIL_SYS(gettid)},
      {VIGIL_SYS(brk)},
      {VIGIL_SYS(mmap), {bits_clear(2, PROT_EXEC)}},
      {VIGIL_SYS(mprotect), {bits_clear(2, PROT_EXEC)}},
      {VIGIL_SYS(munmap)},
      {VIGIL_SYS(mremap)},  // realloc of large blocks; keeps the protection
      {VIGIL_SYS(madvise)},
      {VIGIL_SYS(rt_sigprocmask)},
      {VIGIL_SYS(rt_sigreturn)},
      {VIGIL_SYS(restart_syscall)},
      {VIGIL_SYS(tgkill), {int_is(0, self)}},  // abort() and pthread_kill, this process only
      {VIGIL_SYS(exit)},
      {VIGIL_SYS(exit_group)},
      {VIGIL_SYS(getrandom)},
      {VIGIL_SYS(write)},   // stderr logs, eventfd wakeups, tap frames
      {VIGIL_SYS(writev)},
      {VIGIL_SYS(close)},
      {VIGIL_SYS(fstat)},
      {VIGIL_SYS(newfstatat)},               // glibc's fstat() is fstatat(fd, "", AT_EMPTY_PATH)
      {VIGIL_SYS(ioctl), {int_is(1, TCGETS)}},  // isatty(), when stdio first buffers a stream
      {VIGIL_SYS(rseq)},
      {VIGIL_SYS(set_robust_list)},
      // glibc tries clone3 first and falls back to clone on ENOSYS; clone's flags (in a
      // register, unlike clone3's) are then checked.
      {VIGIL_SYS(clone3), {}, SCMP_ACT_ERRNO(ENOSYS)},
  });
}

// vCPU workers: the instruction emulator and the devices the guest notifies. virtio-blk
// does its file I/O here; console listeners are written without blocking.
void add_vcpu(std::vector<Rule>& r) {
  r.insert(r.end(), {
      {VIGIL_SYS(read)},  // eventfd and pipe wakeups
      {VIGIL_SYS(pread64)},
      {VIGIL_SYS(pwrite64)},
      {VIGIL_SYS(lseek)},
      {VIGIL_SYS(fdatasync)},
      {VIGIL_SYS(fsync)},
      {VIGIL_SYS(fallocate)},  // virtio-blk DISCARD punches holes
      {VIGIL_SYS(flock)},
      // A slow console client loses output; it never stalls a vCPU.
      {VIGIL_SYS(sendto), {masked_is(3, MSG_DONTWAIT, MSG_DONTWAIT)}},
      // A vCPU waiting for a monitor's answer polls the session socket before it sleeps.
      {VIGIL_SYS(recvfrom), {masked_is(3, MSG_DONTWAIT, MSG_DONTWAIT)}},
  });
}

// Backend I/O threads: libslirp's event loop on host sockets (it reads /etc/resolv.conf
// for the guest's DNS server), eventfd wakeups.
void add_device_io(std::vector<Rule>& r) {
  r.insert(r.end(), {
      {VIGIL_SYS(read)},
      {VIGIL_SYS(readv)},
      {VIGIL_SYS(poll)},
      {VIGIL_SYS(ppoll)},
      {VIGIL_SYS(recvfrom)},
      {VIGIL_SYS(recvmsg)},
      {VIGIL_SYS(sendto)},
      {VIGIL_SYS(sendmsg)},
      {VIGIL_SYS(socket), {int_is(0, AF_UNIX)}},
      {VIGIL_SYS(socket), {int_is(0, AF_INET)}},
      {VIGIL_SYS(socket), {int_is(0, AF_INET6)}},
      {VIGIL_SYS(connect)},
      {VIGIL_SYS(bind)},
      {VIGIL_SYS(listen)},
      {VIGIL_SYS(accept)},
      {VIGIL_SYS(accept4)},
      {VIGIL_SYS(setsockopt)},
      {VIGIL_SYS(getsockopt)},
      {VIGIL_SYS(getsockname)},
      {VIGIL_SYS(getpeername)},
      {VIGIL_SYS(shutdown)},
      {VIGIL_SYS(fcntl), {int_is(1, F_GETFD)}},
      {VIGIL_SYS(fcntl), {int_is(1, F_SETFD)}},
      {VIGIL_SYS(fcntl), {int_is(1, F_GETFL)}},
      {VIGIL_SYS(fcntl), {int_is(1, F_SETFL)}},
      {VIGIL_SYS(ioctl), {int_is(1, FIONREAD)}},
      {VIGIL_SYS(ioctl), {int_is(1, FIONBIO)}},
      {VIGIL_SYS(eventfd2)},
      {VIGIL_SYS(pipe2)},
      {VIGIL_SYS(rt_sigtimedwait)},  // draining a blocked SIGPIPE
      {VIGIL_SYS(openat), {masked_is(2, O_ACCMODE | kOpenCreates, O_RDONLY)}},  // read-only, creates nothing
      {VIGIL_SYS(statx)},
      {VIGIL_SYS(lseek)},
  });
}

// API threads (and the domain reaper): everything the other classes need, because they
// create domains and so the device I/O threads that inherit their filter, plus what
// creating a domain takes (config, kernel, initrd and disk images, tap devices) and
// creating threads.
void add_api(std::vector<Rule>& r) {
  add_vcpu(r);
  add_device_io(r);
  r.insert(r.end(), {
      // Threads only: the kernel requires CLONE_SIGHAND and CLONE_VM with CLONE_THREAD.
      {VIGIL_SYS(clone), {masked_is(0, kCloneThread | kCloneNamespaces, kCloneThread)}},
      // Disk images open read-write; nothing is created or truncated.
      {VIGIL_SYS(openat), {bits_clear(2, kOpenCreates)}},
      {VIGIL_SYS(getuid)},
      {VIGIL_SYS(geteuid)},  // SO_PEERCRED checks
      {VIGIL_SYS(getgid)},
      {VIGIL_SYS(getegid)},
      {VIGIL_SYS(ioctl), {int_is(1, TUNSETIFF)}},  // attaching a tap interface
      // A monitor session's shared-memory channel: a sealed memfd (monitor/shm_channel.h).
      {VIGIL_SYS(memfd_create)},
      {VIGIL_SYS(fcntl), {int_is(1, F_ADD_SEALS)}},
      {VIGIL_SYS(prctl), {int_is(0, PR_SET_NAME)}},
      {VIGIL_SYS(prctl), {int_is(0, PR_GET_NAME)}},
      // Naming a new domain's guest RAM mapping (smaps shows [anon:vigil-guest-ram]).
      {VIGIL_SYS(prctl), {int_is(0, PR_SET_VMA), int_is(1, PR_SET_VMA_ANON_NAME)}},
      // A child thread stacking its own (narrower) filter: no_new_privs, then seccomp
      // without TSYNC (which would impose it on every thread) or a user-space listener.
      {VIGIL_SYS(prctl), {int_is(0, PR_SET_NO_NEW_PRIVS)}},
      {VIGIL_SYS(seccomp),
       {int_is(0, SECCOMP_SET_MODE_FILTER), bits_clear(1, SECCOMP_FILTER_FLAG_TSYNC | SECCOMP_FILTER_FLAG_NEW_LISTENER)}},
      {VIGIL_SYS(seccomp), {int_is(0, SECCOMP_GET_ACTION_AVAIL)}},
      {VIGIL_SYS(seccomp), {int_is(0, SECCOMP_GET_NOTIF_SIZES)}},
      // vTPM (src/vtpm/swtpm.h): a domain's swtpm process, started by the unsandboxed vTPM
      // launcher thread, is watched, stopped and reaped through its pidfd and only through
      // it: no waitid on other ids, no kill(2), so no other process can be signalled or reaped.
      {VIGIL_SYS(waitid), {int_is(0, P_PIDFD)}},
      {VIGIL_SYS(pidfd_send_signal)},
      // Saving a domain (issue 11, migrate/snapshot.h): the snapshot is written into an
      // unnamed write-only file (O_TMPFILE; nothing else opens with a create bit) and given
      // its name by linkat through /proc/self/fd once complete. linkat adds a name and never
      // replaces one, so no existing file can be overwritten, truncated or removed.
      {VIGIL_SYS(openat), {masked_is(2, O_ACCMODE | kOpenCreates, O_WRONLY | (O_TMPFILE & ~O_DIRECTORY))}},
      {VIGIL_SYS(linkat), {int_is(4, AT_SYMLINK_FOLLOW)}},
  });
}

// Sanitizer builds (VIGIL_SANITIZE: ASan with UBSan; GCC defines __SANITIZE_ADDRESS__):
// the runtimes probe memory through a pipe (UBSan's vptr check), give each thread an
// alternate signal stack, and read /proc/self when they report. Never in release builds.
void add_sanitizer_runtime([[maybe_unused]] std::vector<Rule>& r) {
#if defined(__SANITIZE_ADDRESS__)
  r.insert(r.end(), {
      {VIGIL_SYS(pipe2)},
      {VIGIL_SYS(read)},
      {VIGIL_SYS(sigaltstack)},
      {VIGIL_SYS(readlink)},
      {VIGIL_SYS(open), {masked_is(1, O_ACCMODE | kOpenCreates, O_RDONLY)}},
      {VIGIL_SYS(openat), {masked_is(2, O_ACCMODE | kOpenCreates, O_RDONLY)}},
  });
#endif
}

struct CtxDeleter {
  void operator()(void* ctx) const { seccomp_release(ctx); }
};
using Ctx = std::unique_ptr<void, CtxDeleter>;

// Builds a filter from `rules` answering `default_action` to everything else. With `log`,
// the kernel logs every call the filter refuses (when it supports SECCOMP_FILTER_FLAG_LOG).
Result<Ctx> build(ThreadClass c, uint32_t default_action, const std::vector<Rule>& rules, bool log) {
  Ctx ctx(seccomp_init(default_action));
  if (!ctx) return make_error("sandbox: libseccomp could not start a filter for {} threads", to_string(c));
  // Kernel errors from seccomp_load as themselves, not as ECANCELED.
  seccomp_attr_set(ctx.get(), SCMP_FLTATR_API_SYSRAWRC, 1);
  // Another architecture's system call ABI (int 0x80 on x86-64) is refused like any other call.
  if (int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_ERRNO(EPERM)); rc < 0) {
    return make_error("sandbox: cannot set the foreign-ABI action for {} threads: {}", to_string(c), std::strerror(-rc));
  }
  // Best effort: older kernels cannot log, and the filter works the same without it.
  if (log) seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_LOG, 1);
  for (const Rule& rule : rules) {
    if (rule.nr < 0) continue;  // no such call on this architecture
    const int rc = seccomp_rule_add_array(ctx.get(), rule.action, rule.nr, static_cast<unsigned>(rule.args.size()),
                                          rule.args.empty() ? nullptr : rule.args.data());
    if (rc < 0 && rc != -EEXIST) {
      return make_error("sandbox: cannot add the rule for {} to the {} thread filter: {}", rule.name, to_string(c),
                        std::strerror(-rc));
    }
  }
  return ctx;
}

Result<void> load(ThreadClass c, const Ctx& ctx) {
  if (int rc = seccomp_load(ctx.get()); rc < 0) {
    return make_error(
        "sandbox: the kernel refused the seccomp filter for {} threads: {} (vigild --no-sandbox runs without it)",
        to_string(c), std::strerror(-rc));
  }
  return {};
}

}  // namespace

const char* to_string(ThreadClass c) {
  switch (c) {
    case ThreadClass::kVcpuWorker: return "vCPU worker";
    case ThreadClass::kDeviceIo: return "device I/O";
    case ThreadClass::kApi: return "API";
  }
  return "unknown";
}

bool enabled() { return g_enabled.load(std::memory_order_relaxed); }

void set_enabled(bool on) { g_enabled.store(on, std::memory_order_relaxed); }

Result<void> restrict_thread(ThreadClass c) {
  if (!enabled()) return {};

  std::vector<Rule> rules;
  add_common(rules);
  add_sanitizer_runtime(rules);
  switch (c) {
    case ThreadClass::kVcpuWorker: add_vcpu(rules); break;
    case ThreadClass::kDeviceIo: add_device_io(rules); break;
    case ThreadClass::kApi: add_api(rules); break;
  }

  // API threads create threads all the time, each time with clone3 first: that refusal is
  // routine, so it comes from a separate filter that does not log, and the logging filter
  // lets clone3 through to it. Elsewhere a clone3 is a bug worth a log line.
  Ctx quiet;
  if (c == ThreadClass::kApi) {
    for (Rule& rule : rules) {
      if (rule.nr == SCMP_SYS(clone3)) rule.action = SCMP_ACT_ALLOW;
    }
    auto q = build(c, SCMP_ACT_ALLOW, {{VIGIL_SYS(clone3), {}, SCMP_ACT_ERRNO(ENOSYS)}}, false);
    if (!q) return std::unexpected(q.error());
    quiet = std::move(*q);
  }
  auto filter = build(c, SCMP_ACT_ERRNO(EPERM), rules, true);
  if (!filter) return std::unexpected(filter.error());

  // Required for an unprivileged thread to install a filter, and it keeps a setuid binary
  // from ever gaining privileges here. Per thread, inherited by the thread's children.
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    return make_error("sandbox: cannot set no_new_privs on a {} thread: {}", to_string(c), std::strerror(errno));
  }
  if (quiet) {
    if (auto r = load(c, quiet); !r) return r;
  }
  return load(c, *filter);
}

void restrict_thread_or_abort(ThreadClass c) {
  if (auto r = restrict_thread(c); !r) {
    std::fprintf(stderr, "vigil: sandbox: %s (run with --no-sandbox to go on without it)\n",
                 r.error().message.c_str());
    std::abort();
  }
}

namespace {
// glibc's malloc, the first time it shrinks a thread's arena, reads
// /proc/sys/vm/overcommit_memory once for the whole process (check_may_shrink_heap in
// malloc/arena.c). In a sandboxed thread that open is refused (harmlessly: it then only
// madvises) and logged as a seccomp denial. Growing and emptying an arena here, in an
// unrestricted thread, lets that one read happen before any filter exists.
void settle_malloc() {
  std::vector<void*> blocks;
  for (int i = 0; i < 32; ++i) {
    void* p = std::malloc(64 * 1024);  // under the mmap threshold: from this thread's arena
    if (p) static_cast<volatile char*>(p)[0] = 1;  // used, so the pair is not optimized away
    blocks.push_back(p);
  }
  for (auto it = blocks.rbegin(); it != blocks.rend(); ++it) std::free(*it);
}
}  // namespace

Result<void> probe() {
  if (!enabled()) return {};
  Result<void> result;
  std::thread([&result] {
    settle_malloc();
    result = restrict_thread(ThreadClass::kVcpuWorker);
  }).join();
  return result;
}

}  // namespace vigil::sandbox
