// Guarded reads of file mappings: a read from a page that a truncation cut off reports a fault
// instead of killing the process (many times over, from several threads at once), while every
// SIGBUS outside a guarded read behaves exactly as it would without the handler: the default
// action kills the process, a user's handler installed earlier still runs, a sanitizer's still
// reports. The tests about other handlers run in fresh processes (threadsafe death tests
// re-execute the binary), since the handler is installed once per process.
#include "goldylox/detail/cold/guarded_read.hpp"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <latch>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_support.hpp"

#if defined(__SANITIZE_ADDRESS__)
#define GOLDYLOX_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GOLDYLOX_TEST_ASAN 1
#endif
#endif
#ifndef GOLDYLOX_TEST_ASAN
#define GOLDYLOX_TEST_ASAN 0
#endif

namespace {

namespace gd = goldylox::detail;
using goldylox_test::in_child;

const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
constexpr std::size_t file_pages = 4;

std::byte pattern(std::size_t offset) {
  return static_cast<std::byte>((offset * 131 + offset / 4096 + 7) & 0xff);
}

// A file of four pages of pattern(), mapped whole (PROT_READ, MAP_SHARED, like a segment). The
// file is unlinked at once, so a process that dies in the middle leaves nothing behind; the
// descriptor stays open to truncate it (or, after a fork, to let another process truncate it).
class mapped_file {
 public:
  explicit mapped_file(int prot = PROT_READ) {
    std::string path =
        (std::filesystem::temp_directory_path() / "goldylox-guarded-XXXXXX").string();
    fd_ = ::mkstemp(path.data());
    if (fd_ < 0) std::abort();
    ::unlink(path.c_str());
    std::vector<std::byte> bytes(file_pages * page);
    for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = pattern(i);
    if (::pwrite(fd_, bytes.data(), bytes.size(), 0) != static_cast<ssize_t>(bytes.size())) {
      std::abort();
    }
    void* p = ::mmap(nullptr, bytes.size(), prot, MAP_SHARED | MAP_POPULATE, fd_, 0);
    if (p == MAP_FAILED) std::abort();
    data_ = static_cast<std::byte*>(p);
  }
  mapped_file(const mapped_file&) = delete;
  mapped_file& operator=(const mapped_file&) = delete;
  ~mapped_file() {
    ::munmap(data_, file_pages * page);
    ::close(fd_);
  }

  std::byte* data() const { return data_; }
  int fd() const { return fd_; }
  // Cuts the file to its first `pages` pages: the mapping's later pages now raise SIGBUS.
  void truncate(std::size_t pages) const {
    if (::ftruncate(fd_, static_cast<off_t>(pages * page)) != 0) std::abort();
  }

 private:
  int fd_ = -1;
  std::byte* data_ = nullptr;
};

bool sigbus_blocked() {
  sigset_t now;
  sigemptyset(&now);
  ::pthread_sigmask(SIG_BLOCK, nullptr, &now);
  return sigismember(&now, SIGBUS) == 1;
}

bool our_handler_installed() {
  struct sigaction now {};
  ::sigaction(SIGBUS, nullptr, &now);
  return (now.sa_flags & SA_SIGINFO) != 0 && now.sa_sigaction == &gd::mapping_fault::on_sigbus;
}

// A read of page 2 outside any guarded call.
void unguarded_read(const mapped_file& f) {
  const volatile std::byte* p = f.data() + 2 * page;
  const std::byte b = *p;
  static_cast<void>(b);
}

TEST(GuardedRead, CopyFromBeyondTheEndOfATruncatedFileFailsAndTheProcessSurvives) {
  ASSERT_TRUE(gd::install_mapping_fault_handler());
  mapped_file f;
  // Another process cuts the file to one page while this one has it mapped.
  ASSERT_EQ(in_child([&] { return ::ftruncate(f.fd(), static_cast<off_t>(page)) == 0 ? 0 : 1; }),
            0);
  ASSERT_EQ(::lseek(f.fd(), 0, SEEK_END), static_cast<off_t>(page));

  std::byte out[64];
  for (int i = 0; i < 1000; ++i) {
    const std::size_t at = (static_cast<std::size_t>(i) * 64) % (page - 64);
    std::memset(out, 0, sizeof out);
    ASSERT_TRUE(gd::guarded_copy(out, f.data() + at, sizeof out)) << i;
    for (std::size_t j = 0; j < sizeof out; ++j) ASSERT_EQ(out[j], pattern(at + j)) << i;

    ASSERT_FALSE(gd::guarded_copy(out, f.data() + 2 * page + at, sizeof out)) << i;
    ASSERT_FALSE(gd::guarded_copy(out, f.data() + (1 + i % 3) * page, 1)) << i;
    // Starts on the surviving page, ends on a cut one.
    ASSERT_FALSE(gd::guarded_copy(out, f.data() + page - 32, sizeof out)) << i;
    // The handler stays, and no SIGBUS is left blocked after a jump out of it.
    ASSERT_FALSE(sigbus_blocked()) << i;
    ASSERT_TRUE(our_handler_installed()) << i;
  }
  // Nothing left armed: the thread's window is closed after a fault as after a success.
  EXPECT_EQ(gd::mapping_fault::open_window.load(), nullptr);
  EXPECT_TRUE(gd::guarded_copy(out, f.data(), 0));
  EXPECT_TRUE(gd::guarded_copy(out, f.data() + 5 * page, 0));  // nothing to read

  // Grown back, the pages read again (as zeros: the cut bytes are gone).
  f.truncate(file_pages);
  ASSERT_TRUE(gd::guarded_copy(out, f.data() + 2 * page, sizeof out));
  for (const std::byte b : out) EXPECT_EQ(b, std::byte{0});
}

TEST(GuardedRead, CompareTellsEqualDifferentAndFault) {
  mapped_file f;
  f.truncate(1);
  std::byte key[48];
  for (std::size_t j = 0; j < sizeof key; ++j) key[j] = pattern(100 + j);
  std::byte other[48];
  std::memcpy(other, key, sizeof other);
  other[47] ^= std::byte{1};

  for (int i = 0; i < 1000; ++i) {
    ASSERT_EQ(gd::guarded_compare(f.data() + 100, key, sizeof key), gd::guarded_result::equal);
    ASSERT_EQ(gd::guarded_compare(f.data() + 100, other, sizeof other),
              gd::guarded_result::different);
    ASSERT_EQ(gd::guarded_compare(f.data() + 3 * page + 100, key, sizeof key),
              gd::guarded_result::fault)
        << i;
    ASSERT_EQ(gd::guarded_compare(f.data() + page - 8, key, sizeof key), gd::guarded_result::fault)
        << i;
    ASSERT_FALSE(sigbus_blocked()) << i;
  }
  EXPECT_EQ(gd::guarded_compare(f.data() + 3 * page, key, 0), gd::guarded_result::equal);
  EXPECT_EQ(gd::mapping_fault::open_window.load(), nullptr);
  EXPECT_TRUE(our_handler_installed());
}

// Every thread faults and recovers on its own, all at once; half of them run the handler on an
// alternate signal stack of their own (SA_ONSTACK; under AddressSanitizer every thread has one).
TEST(GuardedRead, ThreadsFaultAndRecoverIndependently) {
  mapped_file f;
  f.truncate(1);
  constexpr int threads = 8;
  constexpr int rounds = 500;
  std::atomic<int> wrong{0};
  std::atomic<int> faults{0};
  std::latch start(threads);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      std::vector<char> alt;
      stack_t mine{};
      stack_t before{};
      if (t % 2 == 1) {
        alt.resize(64 * 1024);
        mine.ss_sp = alt.data();
        mine.ss_size = alt.size();
        if (::sigaltstack(&mine, &before) != 0) ++wrong;
      }
      start.arrive_and_wait();
      std::byte out[64];
      for (int i = 0; i < rounds; ++i) {
        const std::size_t at = static_cast<std::size_t>(t * 64 + i * 8) % (page - 64);
        if (!gd::guarded_copy(out, f.data() + at, sizeof out)) ++wrong;
        for (std::size_t j = 0; j < sizeof out; ++j) {
          if (out[j] != pattern(at + j)) ++wrong;
        }
        if (gd::guarded_copy(out, f.data() + (1 + (i + t) % 3) * page + at, sizeof out)) {
          ++wrong;
        } else {
          ++faults;
        }
        out[i % 64] ^= std::byte{1};
        if (gd::guarded_compare(f.data() + at, out, sizeof out) != gd::guarded_result::different) {
          ++wrong;
        }
        if (gd::guarded_compare(f.data() + 2 * page, out, sizeof out) ==
            gd::guarded_result::fault) {
          ++faults;
        } else {
          ++wrong;
        }
        if (sigbus_blocked()) ++wrong;
      }
      if (gd::mapping_fault::open_window.load() != nullptr) ++wrong;
      if (t % 2 == 1) ::sigaltstack(&before, nullptr);  // (AddressSanitizer unmaps its own)
    });
  }
  for (auto& th : pool) th.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(faults.load(), threads * rounds * 2);
}

// --- SIGBUS outside a guarded read: as if the handler were not there -------------------------
// Each runs in a fresh process (threadsafe death tests re-execute the binary), so the handler is
// installed there for the first time, after whatever the test put in place.

class GuardedReadDeathTest : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

// In a death test's child: those killed by SIGBUS on purpose leave no core file, and one that
// hangs (a handler that returns to a fault it did not handle runs the faulting load forever)
// dies of SIGALRM, which no test expects.
void child_setup() {
  const struct rlimit none {};
  ::setrlimit(RLIMIT_CORE, &none);
  ::alarm(60);
}

void set_disposition(void (*handler)(int), int flags = 0) {
  struct sigaction act {};
  act.sa_handler = handler;
  sigemptyset(&act.sa_mask);
  act.sa_flags = flags;
  ::sigaction(SIGBUS, &act, nullptr);
}

bool blocked(int sig) {
  sigset_t now;
  sigemptyset(&now);
  ::pthread_sigmask(SIG_BLOCK, nullptr, &now);
  return sigismember(&now, sig) == 1;
}

// Installs the handler and shows it catches a guarded fault; exits with 3 if it did not.
void install_and_catch_one(const mapped_file& f) {
  std::byte out[16];
  if (!gd::install_mapping_fault_handler() || gd::guarded_copy(out, f.data() + 2 * page, 16) ||
      gd::guarded_compare(f.data() + 3 * page, out, 16) != gd::guarded_result::fault) {
    ::_exit(3);
  }
}

TEST_F(GuardedReadDeathTest, AFaultOutsideAGuardedReadStillKillsTheProcess) {
  EXPECT_EXIT(
      {
        child_setup();
        set_disposition(SIG_DFL);  // (under AddressSanitizer, its handler is what was there)
        mapped_file f;
        f.truncate(1);
        install_and_catch_one(f);
        unguarded_read(f);
        ::_exit(0);
      },
      ::testing::KilledBySignal(SIGBUS), "");
  // A default disposition set with SA_SIGINFO: sa_sigaction reads as null, never to be called.
  EXPECT_EXIT(
      {
        child_setup();
        set_disposition(SIG_DFL, SA_SIGINFO);
        mapped_file f;
        f.truncate(1);
        install_and_catch_one(f);
        unguarded_read(f);
        ::_exit(0);
      },
      ::testing::KilledBySignal(SIGBUS), "");
}

// Whatever the process had before -- nothing, or a sanitizer's handler (AddressSanitizer's
// unless ASAN_OPTIONS=handle_sigbus=0, ThreadSanitizer's) -- still handles it.
TEST_F(GuardedReadDeathTest, AFaultOutsideAGuardedReadGoesToTheHandlerThatWasThere) {
  ASSERT_TRUE(gd::install_mapping_fault_handler());
  const struct sigaction& before = gd::mapping_fault::previous_action;
  const bool was_default = (before.sa_flags & SA_SIGINFO) == 0 && before.sa_handler == SIG_DFL;
  ASSERT_TRUE(was_default || GOLDYLOX_TEST_ASAN || GOLDYLOX_TSAN)
      << "a SIGBUS handler nobody expects";
  const int sanitizer_exit_code = GOLDYLOX_TSAN ? 66 : 1;  // their default exitcode
  EXPECT_EXIT(
      {
        child_setup();
        mapped_file f;
        f.truncate(1);
        install_and_catch_one(f);
        unguarded_read(f);
        ::_exit(0);
      },
      [&](int status) {
        // The sanitizer reports, then exits.
        return was_default ? ::testing::KilledBySignal(SIGBUS)(status)
                           : ::testing::ExitedWithCode(sanitizer_exit_code)(status);
      },
      was_default ? "" : "Sanitizer: BUS");
}

// Each handler checks it got the signal mask the kernel would have given it: SIGBUS blocked
// unless SA_NODEFER, and its sa_mask (ThreadSanitizer runs every handler with all signals
// blocked, whoever installed it).
void user_siginfo_handler(int sig, siginfo_t* info, void*) {
  const bool right = sig == SIGBUS && info != nullptr && info->si_code == BUS_ADRERR &&
                     blocked(SIGBUS) && blocked(SIGUSR1) && (GOLDYLOX_TSAN || !blocked(SIGUSR2));
  ::_exit(right ? 42 : 4);
}

void user_plain_handler(int sig) {
  ::_exit(sig == SIGBUS && (GOLDYLOX_TSAN || !blocked(SIGBUS)) ? 43 : 4);
}

// A handler that repairs the file (grows it back) and returns: the read then runs again and
// succeeds, as it would without the guarded reads' handler.
int repair_fd = -1;
volatile sig_atomic_t repaired = 0;
void repairing_handler(int) {
  if (::ftruncate(repair_fd, static_cast<off_t>(file_pages * page)) == 0) repaired = 1;
}

TEST_F(GuardedReadDeathTest, AUserHandlerInstalledBeforeStillRunsForFaultsOutside) {
  EXPECT_EXIT(
      {
        child_setup();
        struct sigaction act {};
        act.sa_sigaction = &user_siginfo_handler;
        sigemptyset(&act.sa_mask);
        sigaddset(&act.sa_mask, SIGUSR1);
        act.sa_flags = SA_SIGINFO;
        ::sigaction(SIGBUS, &act, nullptr);
        mapped_file f;
        f.truncate(1);
        install_and_catch_one(f);  // the user's handler does not see guarded faults
        unguarded_read(f);
        ::_exit(0);
      },
      ::testing::ExitedWithCode(42), "");
  EXPECT_EXIT(
      {
        child_setup();
        set_disposition(&user_plain_handler, SA_NODEFER);
        mapped_file f;
        f.truncate(1);
        install_and_catch_one(f);
        unguarded_read(f);
        ::_exit(0);
      },
      ::testing::ExitedWithCode(43), "");
  EXPECT_EXIT(
      {
        child_setup();
        set_disposition(&repairing_handler);
        mapped_file f;
        f.truncate(1);
        repair_fd = f.fd();
        install_and_catch_one(f);
        unguarded_read(f);
        ::_exit(repaired == 1 && !blocked(SIGBUS) ? 45 : 4);
      },
      ::testing::ExitedWithCode(45), "");
}

// The kernel does not let a fault be ignored: with SIGBUS ignored, the fault still kills.
TEST_F(GuardedReadDeathTest, AnIgnoredSigbusStillKillsOnAFault) {
  EXPECT_EXIT(
      {
        child_setup();
        set_disposition(SIG_IGN);
        mapped_file f;
        f.truncate(1);
        install_and_catch_one(f);
        unguarded_read(f);
        ::_exit(0);
      },
      ::testing::KilledBySignal(SIGBUS), "");
}

// A SIGBUS sent by a process is no fault: it kills under SIG_DFL and is ignored under SIG_IGN.
TEST_F(GuardedReadDeathTest, ASentSigbusKeepsItsDisposition) {
  EXPECT_EXIT(
      {
        child_setup();
        set_disposition(SIG_DFL);
        mapped_file f;
        f.truncate(1);
        install_and_catch_one(f);
        ::raise(SIGBUS);
        ::_exit(0);
      },
      ::testing::KilledBySignal(SIGBUS), "");
  EXPECT_EXIT(
      {
        child_setup();
        set_disposition(SIG_IGN);
        mapped_file f;
        f.truncate(1);
        install_and_catch_one(f);
        ::raise(SIGBUS);
        ::kill(::getpid(), SIGBUS);
        ::_exit(our_handler_installed() ? 0 : 5);
      },
      ::testing::ExitedWithCode(0), "");
}

// A window guards its own thread only: a fault on another thread, on the very page this thread
// keeps faulting on inside its windows, still kills.
TEST_F(GuardedReadDeathTest, AnotherThreadsWindowDoesNotCatchAFault) {
  EXPECT_EXIT(
      {
        child_setup();
        set_disposition(SIG_DFL);
        mapped_file f;
        f.truncate(1);
        install_and_catch_one(f);
        std::atomic<bool> stop{false};
        std::atomic<long> caught{0};
        std::thread guarded([&] {
          std::byte out[64];
          while (!stop.load()) {
            if (!gd::guarded_copy(out, f.data() + 2 * page, sizeof out)) ++caught;
          }
        });
        while (caught.load() < 100) std::this_thread::yield();
        unguarded_read(f);
        stop = true;
        guarded.join();
        ::_exit(0);
      },
      ::testing::KilledBySignal(SIGBUS), "");
}

// Only the mapped source is guarded: a fault on the destination is not a read of the mapping.
TEST_F(GuardedReadDeathTest, AFaultOnTheDestinationIsNotCaught) {
  EXPECT_EXIT(
      {
        child_setup();
        set_disposition(SIG_DFL);
        mapped_file src;
        src.truncate(1);
        install_and_catch_one(src);
        mapped_file dst(PROT_READ | PROT_WRITE);
        dst.truncate(1);
        gd::guarded_copy(dst.data() + 2 * page, src.data(), 64);
        ::_exit(0);
      },
      ::testing::KilledBySignal(SIGBUS), "");
}

}  // namespace
