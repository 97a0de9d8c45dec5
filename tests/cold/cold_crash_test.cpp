// Crash safety of the cold tier: a child process writes and syncs without pause, the parent kills
// it with SIGKILL at a random moment, reopens the directory and checks that no value is ever
// wrong and that every write the child had seen synced is there. The directory carries over
// from cycle to cycle, so recovery also runs on top of earlier crashes' torn tails.
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <thread>

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "goldylox/detail/cold/store.hpp"
#include "test_support.hpp"

namespace {

namespace gd = goldylox::detail;
using goldylox::cold_durability;

constexpr std::uint64_t key_space = 997;
constexpr std::uint64_t opened = ~std::uint64_t{0};

std::span<const std::byte> as_bytes(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}
std::string key_of(std::uint64_t k) {
  return "k" + std::to_string(k);
}
// The value written at sequence number seq: names its sequence, padded to a size that varies.
std::string value_of(std::uint64_t seq) {
  std::string v = "seq=" + std::to_string(seq) + ";";
  v.append(40 + seq % 600, static_cast<char>('a' + seq % 26));
  return v;
}

gd::cold_store_options crash_options(const std::string& dir, cold_durability mode) {
  gd::cold_store_options o;
  o.path = dir;
  o.segment_bytes = 64 * 1024;
  o.max_bytes = 256 * 1024 * 1024;  // no reclamation: every synced write must stay
  o.durability = mode;
  o.sync_interval = std::chrono::milliseconds(5);
  o.codec = goldylox::codec_id::lz4;
  return o;
}

// The child: open, report it, then write key seq % key_space = value_of(seq) forever, reporting
// each sequence number once it is synced (every write in every_write mode; after an explicit
// sync() every 16 writes otherwise).
[[noreturn]] void child(const std::string& dir, cold_durability mode, std::uint64_t first_seq,
                        int out) {
  auto s = gd::cold_store::open(crash_options(dir, mode));
  if (!s.ok()) ::_exit(3);
  if (::write(out, &opened, sizeof opened) != sizeof opened) ::_exit(4);
  for (std::uint64_t seq = first_seq;; ++seq) {
    if (!(*s)->put(as_bytes(key_of(seq % key_space)), as_bytes(value_of(seq)), 1).ok()) {
      ::_exit(5);
    }
    const bool synced =
        mode == cold_durability::every_write || (seq % 16 == 15 && (*s)->sync().ok());
    if (synced && ::write(out, &seq, sizeof seq) != sizeof seq) ::_exit(6);
  }
}

TEST(ColdCrash, SigkillAtRandomMomentsNeverCorruptsOrLosesSyncedWrites) {
  const goldylox_test::temp_dir scratch("goldylox-crash");
  const std::string& dir = scratch.path();
  std::mt19937_64 rng(std::random_device{}());
  std::map<std::uint64_t, std::uint64_t> must_have;  // key -> lowest acceptable sequence
  std::uint64_t next_seq = 0;
  constexpr int cycles = 24;
  std::uint64_t total_synced = 0, torn = 0;
  for (int cycle = 0; cycle < cycles; ++cycle) {
    const auto mode = cycle % 2 == 0 ? cold_durability::every_write : cold_durability::periodic;
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    const std::uint64_t first = next_seq;
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(fds[0]);
      child(dir, mode, first, fds[1]);
    }
    ::close(fds[1]);
    std::uint64_t got = 0, last_synced = opened;
    bool is_open = false;
    const auto drain = [&](int timeout_ms) {
      pollfd p{fds[0], POLLIN, 0};
      while (::poll(&p, 1, timeout_ms) > 0) {
        const ssize_t n = ::read(fds[0], &got, sizeof got);
        if (n != sizeof got) return;
        if (got == opened) {
          is_open = true;
          return;
        }
        last_synced = got;
        timeout_ms = 0;
      }
    };
    while (!is_open) {
      drain(5000);
      if (!is_open) {
        int status = 0;
        ASSERT_EQ(::waitpid(pid, &status, WNOHANG), 0) << "child exited " << status;
      }
    }
    // Kill somewhere in the first 30 ms of writing, draining reports meanwhile.
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::microseconds(500 + rng() % 30000);
    while (std::chrono::steady_clock::now() < deadline) drain(1);
    ::kill(pid, SIGKILL);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the child stopped on its own: " << status;
    drain(0);
    ::close(fds[0]);
    if (last_synced != opened) {
      for (std::uint64_t seq = first; seq <= last_synced; ++seq) {
        must_have[seq % key_space] = seq;
      }
      total_synced += last_synced + 1 - first;
    }
    // Sequence numbers of the next cycle stay above anything this child may have written.
    next_seq = first + 10'000'000;

    auto s = gd::cold_store::open(crash_options(dir, cold_durability::none));
    ASSERT_TRUE(s.ok()) << s.status();
    torn += (*s)->stats().corrupt_records;
    for (std::uint64_t k = 0; k < key_space; ++k) {
      std::string value;
      auto st = (*s)->read(as_bytes(key_of(k)), [&](const gd::record_meta&, auto v) {
        value.assign(reinterpret_cast<const char*>(v.data()), v.size());
      });
      const auto need = must_have.find(k);
      if (!st.ok()) {
        ASSERT_TRUE(absl::IsNotFound(st)) << "cycle " << cycle << " key " << k << ": " << st;
        ASSERT_EQ(need, must_have.end()) << "cycle " << cycle << ": synced write of key " << k
                                         << " (seq " << need->second << ") is missing";
        continue;
      }
      const std::uint64_t seq = std::stoull(value.substr(4));
      ASSERT_EQ(value, value_of(seq)) << "cycle " << cycle << ": a damaged value for key " << k;
      ASSERT_EQ(seq % key_space, k) << "cycle " << cycle << ": another key's value";
      if (need != must_have.end()) {
        ASSERT_GE(seq, need->second)
            << "cycle " << cycle << ": key " << k << " went back before a synced write";
      }
    }
  }
  RecordProperty("synced_writes", static_cast<int>(total_synced));
  RecordProperty("corrupt_regions_seen", static_cast<int>(torn));
  EXPECT_GT(total_synced, 100u) << "the children hardly wrote: the test checked little";
}

}  // namespace
