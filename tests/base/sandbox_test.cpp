// The per-thread seccomp sandbox. A filter cannot be removed and is inherited by the
// threads its thread creates, so every check runs on a fresh std::thread that restricts
// itself, checks, and exits: the test runner's own thread stays unrestricted.
#include "base/sandbox.h"

#include <fcntl.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/personality.h>
extern "C" {  // glibc 2.36's <sys/pidfd.h> lacks the C++ guards
#include <sys/pidfd.h>
}
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "migrate/snapshot.h"
#include "migrate/live.h"
#include <netinet/tcp.h>
#include "monitor/shm_channel.h"

namespace vigil::sandbox {
namespace {

// errno of a failed call, 0 if it succeeded.
int err_of(long rc) { return rc < 0 ? errno : 0; }

// getppid(2) through syscall(), which sets errno: glibc's getppid() assumes it cannot fail
// and leaves errno alone. Not on any allow-list, harmless, and a pid when unrestricted.
long raw_getppid() { return ::syscall(SYS_getppid); }

// Runs `fn` on a new thread restricted to class `c`; returns when the thread has exited.
template <typename Fn>
void in_sandbox(ThreadClass c, Fn fn) {
  std::thread t([&] {
    auto r = restrict_thread(c);
    ASSERT_TRUE(r.has_value()) << r.error().message;
    fn();
  });
  t.join();
}

// What every thread class must refuse.
void expect_forbidden_everywhere() {
  // A real program (not /bin/true): were execve allowed, the test binary would be replaced
  // by a shell that says so and exits with status 1, failing the run.
  char arg0[] = "/bin/sh", arg1[] = "-c", arg2[] = "echo 'sandbox_test: execve was NOT refused' >&2; exit 1";
  char* argv[] = {arg0, arg1, arg2, nullptr};
  char* envp[] = {nullptr};
  EXPECT_EQ(err_of(::execve("/bin/sh", argv, envp)), EPERM);
  EXPECT_EQ(err_of(::syscall(SYS_execveat, AT_FDCWD, "/bin/sh", argv, envp, 0)), EPERM);

  // fork() is clone without CLONE_THREAD; so is the raw call.
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);  // the filter failed: leave quietly, the parent reports it
  EXPECT_EQ(pid, -1);
  EXPECT_EQ(errno, EPERM);
  const long raw = ::syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
  if (raw == 0) ::_exit(0);
  EXPECT_EQ(raw, -1);
  EXPECT_EQ(errno, EPERM);

  // No executable memory, neither mapped nor made so.
  void* page = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(page, MAP_FAILED);
  EXPECT_EQ(err_of(::mprotect(page, 4096, PROT_READ | PROT_EXEC)), EPERM);
  EXPECT_EQ(err_of(::syscall(SYS_pkey_mprotect, page, 4096, PROT_READ | PROT_EXEC, -1)), EPERM);
  EXPECT_EQ(err_of(::mprotect(page, 4096, PROT_READ)), 0);
  EXPECT_EQ(::munmap(page, 4096), 0);
  EXPECT_EQ(::mmap(nullptr, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), MAP_FAILED);
  EXPECT_EQ(errno, EPERM);

  // Harmless calls whose unrestricted answers differ from EPERM, standing for the rest of
  // the default-deny list (ptrace, process_vm_*, bpf, personality, namespaces, ...).
  int word = 42, copy = 0;
  iovec local{&copy, sizeof copy}, remote{&word, sizeof word};
  EXPECT_EQ(err_of(::process_vm_readv(::getpid(), &local, 1, &remote, 1, 0)), EPERM);
  EXPECT_EQ(copy, 0);
  EXPECT_EQ(err_of(::syscall(SYS_bpf, -1, nullptr, 0)), EPERM);     // else EINVAL
  EXPECT_EQ(err_of(::syscall(SYS_personality, 0xffffffff)), EPERM);  // else the persona
  EXPECT_EQ(err_of(raw_getppid()), EPERM);                             // else the parent's pid
  EXPECT_EQ(err_of(::unshare(CLONE_NEWUSER)), EPERM);                // else EINVAL (threaded)
  EXPECT_EQ(err_of(::socket(AF_NETLINK, SOCK_RAW, 0)), EPERM);       // exotic families
  EXPECT_EQ(err_of(::socket(AF_PACKET, SOCK_RAW, 0)), EPERM);
  EXPECT_EQ(err_of(::syscall(SYS_ptrace, PTRACE_PEEKDATA, 1, 0, 0)), EPERM);  // else ESRCH
  // TSYNC would impose a filter on every thread of vigild; else EFAULT.
  EXPECT_EQ(err_of(::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, nullptr)), EPERM);
}


// What every thread class still needs: memory, time, locks, pipes.
void expect_allowed_everywhere(int pipe_rd, int pipe_wr) {
  constexpr size_t kBig = 64u << 20;  // above the mmap threshold: mmap and munmap
  auto* big = static_cast<char*>(std::malloc(kBig));
  ASSERT_NE(big, nullptr);
  std::memset(big, 0x5a, kBig);
  EXPECT_EQ(big[kBig - 1], 0x5a);
  std::free(big);
  std::vector<std::string> many;
  for (int i = 0; i < 10000; ++i) many.push_back(std::string(static_cast<size_t>(i % 300), 'x'));
  EXPECT_EQ(many.back().size(), 9999u % 300);

  std::mutex m;
  std::condition_variable cv;
  std::unique_lock lock(m);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(cv.wait_for(lock, std::chrono::milliseconds(20), [] { return false; }));
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(20));
  lock.unlock();
  std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::this_thread::yield();

  timespec ts{};
  EXPECT_EQ(err_of(::syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts)), 0);  // the call, not the vDSO
  EXPECT_GT(ts.tv_sec + ts.tv_nsec, 0);
  uint64_t random = 0;
  EXPECT_EQ(::getrandom(&random, sizeof random, 0), static_cast<ssize_t>(sizeof random));

  const char msg[] = "wake";
  EXPECT_EQ(::write(pipe_wr, msg, sizeof msg), static_cast<ssize_t>(sizeof msg));
  char got[sizeof msg] = {};
  EXPECT_EQ(::read(pipe_rd, got, sizeof got), static_cast<ssize_t>(sizeof msg));
  EXPECT_STREQ(got, msg);
  EXPECT_EQ(::getpid(), static_cast<pid_t>(::syscall(SYS_getpid)));
}

// Files and sockets made by the unrestricted test thread, for the restricted ones to use.
class SandboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(enabled());
    char tmpl[] = "/tmp/vigil-sandbox-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    m_dir = tmpl;
    m_file = m_dir + "/disk.img";
    const int fd = ::open(m_file.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, 1 << 20), 0);
    ::close(fd);
    ASSERT_EQ(::pipe2(m_pipe, O_CLOEXEC), 0);
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, m_pair), 0);
  }
  void TearDown() override {
    set_enabled(true);
    for (int fd : {m_pipe[0], m_pipe[1], m_pair[0], m_pair[1]}) {
      if (fd >= 0) ::close(fd);
    }
    std::error_code ec;
    std::filesystem::remove_all(m_dir, ec);
  }

  std::string m_dir, m_file;
  int m_pipe[2] = {-1, -1};
  int m_pair[2] = {-1, -1};
};

class SandboxClassTest : public SandboxTest, public ::testing::WithParamInterface<ThreadClass> {};

TEST_P(SandboxClassTest, RefusesWhatNoThreadNeeds) { in_sandbox(GetParam(), [] { expect_forbidden_everywhere(); }); }

TEST_P(SandboxClassTest, AllowsWhatEveryThreadNeeds) {
  in_sandbox(GetParam(), [this] { expect_allowed_everywhere(m_pipe[0], m_pipe[1]); });
}

INSTANTIATE_TEST_SUITE_P(AllClasses, SandboxClassTest,
                         ::testing::Values(ThreadClass::kVcpuWorker, ThreadClass::kDeviceIo, ThreadClass::kApi),
                         [](const auto& info) {
                           switch (info.param) {
                             case ThreadClass::kVcpuWorker: return std::string("VcpuWorker");
                             case ThreadClass::kDeviceIo: return std::string("DeviceIo");
                             case ThreadClass::kApi: return std::string("Api");
                           }
                           return std::string("Unknown");
                         });

TEST_F(SandboxTest, VcpuWorkerDoesDiskIoAndNonBlockingSendsOnly) {
  const int disk = ::open(m_file.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(disk, 0);
  in_sandbox(ThreadClass::kVcpuWorker, [&] {
    // virtio-blk on an image opened before.
    const char block[512] = "sector";
    EXPECT_EQ(::pwrite(disk, block, sizeof block, 4096), 512);
    char back[512] = {};
    EXPECT_EQ(::pread(disk, back, sizeof back, 4096), 512);
    EXPECT_STREQ(back, "sector");
    EXPECT_EQ(err_of(::fdatasync(disk)), 0);
    EXPECT_EQ(err_of(::fallocate(disk, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096)), 0);
    EXPECT_EQ(::lseek(disk, 0, SEEK_END), 1 << 20);

    // Console listeners: sends that cannot block only.
    EXPECT_EQ(::send(m_pair[0], "out", 3, MSG_NOSIGNAL | MSG_DONTWAIT), 3);
    EXPECT_EQ(err_of(::send(m_pair[0], "out", 3, MSG_NOSIGNAL)), EPERM);
    // Monitor sessions: receives that cannot block only (a vCPU polls for an answer).
    char none[4];
    EXPECT_EQ(err_of(::recv(m_pair[0], none, sizeof none, MSG_DONTWAIT)), EAGAIN);
    EXPECT_EQ(err_of(::recv(m_pair[0], none, sizeof none, 0)), EPERM);

    // Nothing new: files, sockets, threads.
#if !defined(__SANITIZE_ADDRESS__)  // sanitizer runtimes may read files when they report
    EXPECT_EQ(err_of(::open(m_file.c_str(), O_RDONLY | O_CLOEXEC)), EPERM);
#endif
    EXPECT_EQ(err_of(::open(m_file.c_str(), O_RDWR | O_CLOEXEC)), EPERM);
    EXPECT_EQ(err_of(::open("/proc/self/mem", O_RDWR | O_CLOEXEC)), EPERM);
    EXPECT_EQ(err_of(::socket(AF_INET, SOCK_DGRAM, 0)), EPERM);
    EXPECT_EQ(err_of(::eventfd(0, EFD_CLOEXEC)), EPERM);
    EXPECT_EQ(err_of(::memfd_create("x", MFD_CLOEXEC)), EPERM);
    EXPECT_EQ(err_of(::ftruncate(disk, 0)), EPERM);
    EXPECT_THROW(std::thread([] {}).join(), std::system_error);
  });
  ::close(disk);
  char got[4] = {};
  EXPECT_EQ(::recv(m_pair[1], got, 3, MSG_DONTWAIT), 3);
  EXPECT_STREQ(got, "out");
}

TEST_F(SandboxTest, DeviceIoRunsSocketsButOpensReadOnlyAndSpawnsNothing) {
  in_sandbox(ThreadClass::kDeviceIo, [&] {
    // A UDP round trip on loopback, as libslirp does for the guest.
    const int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(s, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    socklen_t len = sizeof addr;
    ASSERT_EQ(::getsockname(s, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    const int flags = ::fcntl(s, F_GETFL);
    EXPECT_EQ(err_of(::fcntl(s, F_SETFL, flags | O_NONBLOCK)), 0);
    EXPECT_EQ(::sendto(s, "ping", 4, 0, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 4);
    pollfd p{s, POLLIN, 0};
    EXPECT_EQ(::poll(&p, 1, 1000), 1);
    int pending = 0;
    EXPECT_EQ(err_of(::ioctl(s, FIONREAD, &pending)), 0);
    EXPECT_EQ(pending, 4);
    char buf[8] = {};
    EXPECT_EQ(::recvfrom(s, buf, sizeof buf, 0, nullptr, nullptr), 4);
    EXPECT_STREQ(buf, "ping");
    EXPECT_EQ(err_of(::ioctl(s, FIOCLEX)), EPERM);      // only FIONREAD, FIONBIO, TCGETS
    EXPECT_EQ(err_of(::fcntl(s, F_DUPFD_CLOEXEC, 0)), EPERM);  // only the flag commands
    ::close(s);

    const int ev = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    EXPECT_GE(ev, 0);
    ::close(ev);
    sigset_t pipe_only;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    const timespec no_wait{};
    EXPECT_EQ(err_of(::sigtimedwait(&pipe_only, nullptr, &no_wait)), EAGAIN);

    // /etc/resolv.conf-style reads only.
    const int ro = ::open(m_file.c_str(), O_RDONLY | O_CLOEXEC);
    EXPECT_GE(ro, 0);
    ::close(ro);
    EXPECT_EQ(err_of(::open(m_file.c_str(), O_RDWR | O_CLOEXEC)), EPERM);
    EXPECT_EQ(err_of(::open(m_file.c_str(), O_WRONLY | O_CLOEXEC)), EPERM);
    EXPECT_EQ(err_of(::open(m_file.c_str(), O_RDONLY | O_TRUNC | O_CLOEXEC)), EPERM);
    EXPECT_EQ(err_of(::open((m_dir + "/new").c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0600)), EPERM);
    EXPECT_EQ(err_of(::open("/proc/self/mem", O_RDWR | O_CLOEXEC)), EPERM);
    EXPECT_THROW(std::thread([] {}).join(), std::system_error);
  });
  EXPECT_FALSE(std::filesystem::exists(m_dir + "/new"));
  EXPECT_EQ(std::filesystem::file_size(m_file), 1u << 20);
}

TEST_F(SandboxTest, ApiCreatesThreadsAndOpensImagesButCreatesNoFiles) {
  in_sandbox(ThreadClass::kApi, [&] {
    bool ran = false;
    std::thread([&] { ran = true; }).join();
    EXPECT_TRUE(ran);

    // Disk images open read-write; nothing is created or truncated.
    const int rw = ::open(m_file.c_str(), O_RDWR | O_CLOEXEC);
    EXPECT_GE(rw, 0);
    ::close(rw);
    EXPECT_EQ(err_of(::open(m_file.c_str(), O_RDWR | O_TRUNC | O_CLOEXEC)), EPERM);
    EXPECT_EQ(err_of(::open((m_dir + "/new").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600)), EPERM);
    EXPECT_EQ(err_of(::open(m_dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600)), EPERM);
    EXPECT_EQ(err_of(::unlink(m_file.c_str())), EPERM);

    // The acceptor's peer check.
    ucred cred{};
    socklen_t len = sizeof cred;
    EXPECT_EQ(err_of(::getsockopt(m_pair[0], SOL_SOCKET, SO_PEERCRED, &cred, &len)), 0);
    EXPECT_EQ(cred.uid, ::geteuid());
    EXPECT_EQ(err_of(::prctl(PR_SET_NAME, "vigil-api", 0, 0, 0)), 0);
    EXPECT_EQ(err_of(::prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)), EPERM);

    // A monitor session's shared-memory channel: a sealed memfd, sized without ftruncate
    // (which could cut a disk image short).
    auto channel = monitor::shm::Channel::create(4);
    EXPECT_TRUE(channel) << channel.error().message;
    EXPECT_EQ(err_of(::truncate(m_file.c_str(), 0)), EPERM);
    const int img = ::open(m_file.c_str(), O_RDWR | O_CLOEXEC);
    EXPECT_EQ(err_of(::ftruncate(img, 0)), EPERM);
    ::close(img);

    // Threads, but nothing else clone can make: here a thread in a new user namespace
    // (which the kernel itself would refuse with EINVAL).
    EXPECT_EQ(err_of(::syscall(SYS_clone, CLONE_THREAD | CLONE_SIGHAND | CLONE_VM | CLONE_NEWUSER, 0, 0, 0, 0)), EPERM);
  });
  EXPECT_TRUE(std::filesystem::exists(m_file));
  EXPECT_FALSE(std::filesystem::exists(m_dir + "/new"));
}

// Saving a domain (issue 11): an API thread creates the snapshot as a new file (O_TMPFILE,
// then linkat), and that is all the file creation it gets: no named create, no
// replacing, renaming or removing an existing file, no read-write unnamed file.
TEST_F(SandboxTest, ApiWritesSnapshotsAsNewFilesOnly) {
  in_sandbox(ThreadClass::kApi, [&] {
    const std::vector<uint8_t> bytes(10000, 0x5a);
    auto ok = migrate::write_snapshot_file(m_dir + "/snap", bytes);
    EXPECT_TRUE(ok) << ok.error().message;
    EXPECT_EQ(std::filesystem::file_size(m_dir + "/snap"), bytes.size());
    // The kernel's linkat never replaces: the disk image stays.
    auto over = migrate::write_snapshot_file(m_file, bytes);
    ASSERT_FALSE(over);
    EXPECT_EQ(over.error().message, "save: " + m_file + ": File exists");
    EXPECT_EQ(err_of(::open(m_dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600)), EPERM);
    EXPECT_EQ(err_of(::open((m_dir + "/named").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600)), EPERM);
    EXPECT_EQ(err_of(::rename((m_dir + "/snap").c_str(), m_file.c_str())), EPERM);
    EXPECT_EQ(err_of(::syscall(SYS_renameat2, AT_FDCWD, (m_dir + "/snap").c_str(), AT_FDCWD, m_file.c_str(), 0)), EPERM);
    EXPECT_EQ(err_of(::unlink((m_dir + "/snap").c_str())), EPERM);
    EXPECT_EQ(err_of(::linkat(AT_FDCWD, m_file.c_str(), AT_FDCWD, (m_dir + "/l").c_str(), 0)), EPERM);
  });
  EXPECT_EQ(std::filesystem::file_size(m_file), 1u << 20);
  EXPECT_FALSE(std::filesystem::exists(m_dir + "/named"));
}

TEST_F(SandboxTest, ThreadsOfApiThreadsNarrowTheirFilter) {
  in_sandbox(ThreadClass::kApi, [&] {
    // The device I/O thread a domain's network backend starts.
    std::thread([&] {
      auto r = restrict_thread(ThreadClass::kDeviceIo);
      ASSERT_TRUE(r.has_value()) << r.error().message;
      EXPECT_EQ(err_of(::open(m_file.c_str(), O_RDWR | O_CLOEXEC)), EPERM);  // the API could
      EXPECT_THROW(std::thread([] {}).join(), std::system_error);
      const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      EXPECT_GE(s, 0);
      ::close(s);
      expect_forbidden_everywhere();
    }).join();
    // A stacked vCPU filter: sockets go as well.
    std::thread([&] {
      auto r = restrict_thread(ThreadClass::kVcpuWorker);
      ASSERT_TRUE(r.has_value()) << r.error().message;
      EXPECT_EQ(err_of(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)), EPERM);
      expect_allowed_everywhere(m_pipe[0], m_pipe[1]);
    }).join();
    // The API thread itself kept its own list.
    const int rw = ::open(m_file.c_str(), O_RDWR | O_CLOEXEC);
    EXPECT_GE(rw, 0);
    ::close(rw);
  });
}

TEST_F(SandboxTest, FiltersArePerThread) {
  std::mutex m;
  std::condition_variable cv;
  bool restricted = false, checked = false;
  std::thread t([&] {
    auto r = restrict_thread(ThreadClass::kVcpuWorker);
    ASSERT_TRUE(r.has_value()) << r.error().message;
    EXPECT_EQ(err_of(raw_getppid()), EPERM);
    std::unique_lock lock(m);
    restricted = true;
    cv.notify_all();
    cv.wait(lock, [&] { return checked; });
  });
  {
    std::unique_lock lock(m);
    cv.wait(lock, [&] { return restricted; });
  }
  // While the restricted thread lives, this one (and so the process) is not filtered (no TSYNC).
  EXPECT_GT(raw_getppid(), 0);
  EXPECT_EQ(::prctl(PR_GET_SECCOMP, 0, 0, 0, 0), 0);
  {
    std::lock_guard lock(m);
    checked = true;
  }
  cv.notify_all();
  t.join();
}

TEST_F(SandboxTest, DisabledMakesRestrictThreadANoOp) {
  set_enabled(false);
  EXPECT_FALSE(enabled());
  std::thread([] {
    auto r = restrict_thread(ThreadClass::kVcpuWorker);
    EXPECT_TRUE(r.has_value());
    EXPECT_EQ(::prctl(PR_GET_SECCOMP, 0, 0, 0, 0), 0);  // no filter on this thread
    EXPECT_GT(raw_getppid(), 0);
  }).join();
  set_enabled(true);
  std::thread([] {
    auto r = restrict_thread(ThreadClass::kVcpuWorker);
    EXPECT_TRUE(r.has_value());
    EXPECT_EQ(err_of(raw_getppid()), EPERM);
  }).join();
}

TEST_F(SandboxTest, ProbeRestrictsOnlyItsOwnThread) {
  EXPECT_TRUE(probe().has_value());
  EXPECT_GT(raw_getppid(), 0);  // the caller stays unrestricted
  EXPECT_EQ(::prctl(PR_GET_SECCOMP, 0, 0, 0, 0), 0);
  set_enabled(false);
  EXPECT_TRUE(probe().has_value());
}

// vTPM (issue 9): API threads watch, stop and reap their swtpm children through pidfds only.
TEST_F(SandboxTest, ApiReapsAndSignalsChildrenThroughPidfdsOnly) {
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::pause();
    ::_exit(0);
  }
  const int pidfd = ::pidfd_open(child, 0);
  ASSERT_GE(pidfd, 0);
  in_sandbox(ThreadClass::kApi, [&] {
    siginfo_t info{};
    EXPECT_EQ(err_of(::kill(child, SIGTERM)), EPERM);
    EXPECT_EQ(err_of(::waitid(P_PID, static_cast<id_t>(child), &info, WEXITED | WNOHANG)), EPERM);
    EXPECT_EQ(err_of(::waitid(P_ALL, 0, &info, WEXITED | WNOHANG)), EPERM);
    EXPECT_EQ(err_of(::wait4(child, nullptr, WNOHANG, nullptr)), EPERM);
    EXPECT_EQ(err_of(::waitid(P_PIDFD, static_cast<id_t>(pidfd), &info, WEXITED | WNOHANG)), 0);
    EXPECT_EQ(info.si_pid, 0) << "still running";
    EXPECT_EQ(err_of(::pidfd_send_signal(pidfd, SIGKILL, nullptr, 0)), 0);
    info = {};
    EXPECT_EQ(err_of(::waitid(P_PIDFD, static_cast<id_t>(pidfd), &info, WEXITED)), 0);
    EXPECT_EQ(info.si_pid, child);
    EXPECT_EQ(info.si_code, CLD_KILLED);
    EXPECT_EQ(info.si_status, SIGKILL);
  });
  ::close(pidfd);
}

TEST(Sandbox, NamesClasses) {
  EXPECT_STREQ(to_string(ThreadClass::kVcpuWorker), "vCPU worker");
  EXPECT_STREQ(to_string(ThreadClass::kDeviceIo), "device I/O");
  EXPECT_STREQ(to_string(ThreadClass::kApi), "API");
}

}  // namespace
}  // namespace vigil::sandbox

namespace vigil::sandbox {
namespace {

// Live migration (migrate/live.h) runs on API-class threads: the listener and each outgoing
// migration. They need TCP on loopback (socket, bind, listen, accept4, connect, poll,
// send/recv with MSG_DONTWAIT|MSG_NOSIGNAL, getsockopt SO_ERROR, setsockopt TCP_NODELAY),
// getrandom for the nonces (OpenSSL's RAND_bytes) and mremap (received RAM moved into place).
// Here the destination's side of the handshake runs sandboxed against a peer with the
// wrong proof: it must get as far as refusing it, not die on a denied call.
TEST_F(SandboxTest, ApiThreadsSpeakTheMigrationProtocolOverTcp) {
  hv::DomainManager manager(1);
  in_sandbox(ThreadClass::kApi, [&] {
    const int srv = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(srv, 0) << std::strerror(errno);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(srv, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0) << std::strerror(errno);
    ASSERT_EQ(::listen(srv, 1), 0);
    socklen_t len = sizeof sa;
    ASSERT_EQ(::getsockname(srv, reinterpret_cast<sockaddr*>(&sa), &len), 0);
    const int cli = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    ASSERT_GE(cli, 0);
    const int rc = ::connect(cli, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    ASSERT_TRUE(rc == 0 || errno == EINPROGRESS) << std::strerror(errno);
    pollfd p{cli, POLLOUT, 0};
    ASSERT_EQ(::poll(&p, 1, 5000), 1);
    int err = -1, one = 1;
    socklen_t el = sizeof err;
    ASSERT_EQ(::getsockopt(cli, SOL_SOCKET, SO_ERROR, &err, &el), 0);
    EXPECT_EQ(err, 0);
    EXPECT_EQ(::setsockopt(cli, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one), 0);
    const int conn = ::accept4(srv, nullptr, nullptr, SOCK_CLOEXEC);
    ASSERT_GE(conn, 0) << std::strerror(errno);
    Result<uint32_t> got = make_error("not run");
    std::thread dest([&] { got = migrate::receive_migration(manager, conn, "the-token-of-the-destination"); });
    // The source's greeting, then a proof made without the token.
    uint8_t hello[44] = {'V', 'I', 'G', 'I', 'L', 'M', 'I', 'G', 1, 0, 0, 0};
    ASSERT_EQ(::getrandom(hello + 12, 32, 0), 32);
    ASSERT_EQ(::send(cli, hello, sizeof hello, MSG_NOSIGNAL), static_cast<ssize_t>(sizeof hello));
    uint8_t reply[64];
    size_t have = 0;
    while (have < sizeof reply) {
      pollfd q{cli, POLLIN, 0};
      ASSERT_EQ(::poll(&q, 1, 10000), 1);
      const ssize_t n = ::recv(cli, reply + have, sizeof reply - have, MSG_DONTWAIT);
      ASSERT_GT(n, 0) << std::strerror(errno);
      have += static_cast<size_t>(n);
    }
    const uint8_t forged[32] = {};
    ASSERT_EQ(::send(cli, forged, sizeof forged, MSG_NOSIGNAL | MSG_DONTWAIT), 32);
    dest.join();
    ASSERT_FALSE(got);
    EXPECT_EQ(got.error().message, "authentication failed: the peer does not know the migration token");
    void* a = ::mmap(nullptr, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    void* b = ::mmap(nullptr, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(a, MAP_FAILED);
    ASSERT_NE(b, MAP_FAILED);
    EXPECT_EQ(::mremap(a, 1 << 16, 1 << 16, MREMAP_MAYMOVE | MREMAP_FIXED, b), b) << std::strerror(errno);
    ::munmap(b, 1 << 16);
    for (int fd : {srv, cli, conn}) ::close(fd);
  });
}

}  // namespace
}  // namespace vigil::sandbox
