// The common building blocks under concurrency (ThreadSanitizer in CI): the reader-writer spin
// lock (detail/common/group_lock.hpp), and the striped counters and the statistics built on them
// with more live threads than stripes. The harness is in ../stress_support.hpp.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include <goldylox/detail/common/group_lock.hpp>
#include <goldylox/goldylox.hpp>

#include "stress_support.hpp"

#if defined(__linux__)
#include <pthread.h>
#include <sched.h>
#endif

namespace {

using namespace goldylox_test::stress;

// ---- striped counters: more live threads than stripes
// ---------------------------------------------------

// Pins the calling thread to the `which`-th CPU it may run on (Linux), so that two threads pinned
// to 0 and 1 really run in parallel. Returns false if that is not possible.
bool pin_to_nth_cpu(int which) {
#if defined(__linux__)
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) return false;
  int seen = 0;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &allowed)) continue;
    if (seen++ == which) {
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(cpu, &one);
      return pthread_setaffinity_np(pthread_self(), sizeof(one), &one) == 0;
    }
  }
#else
  (void)which;
#endif
  return false;
}

// Keeps `n` threads alive (each holding its counter index) and lets a chosen pair run rounds of
// work together, each pinned to its own CPU where possible, while the rest sleep.
class ThreadPark {
 public:
  explicit ThreadPark(int n) : indices_(static_cast<std::size_t>(n)) {
    for (int t = 0; t < n; ++t) {
      threads_.emplace_back([this, t] {
        indices_[static_cast<std::size_t>(t)] = detail::this_thread_index();
        std::unique_lock<std::mutex> lock(mutex_);
        ++registered_;
        cv_.notify_all();
        for (std::uint64_t seen = 0;;) {
          cv_.wait(lock, [&] { return stop_ || round_ != seen; });
          if (stop_) return;
          seen = round_;
          if (t != a_ && t != b_) continue;
          lock.unlock();
          (void)pin_to_nth_cpu(t == a_ ? 0 : 1);
          ready_.fetch_add(1);
          while (ready_.load() < 2) std::this_thread::yield();
          work_();
          lock.lock();
          ++finished_;
          cv_.notify_all();
        }
      });
    }
    std::unique_lock<std::mutex> lock(mutex_);
    cv_.wait(lock, [&] { return registered_ == n; });
  }
  ~ThreadPark() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  const std::vector<std::uint32_t>& indices() const { return indices_; }
  // Runs work() on threads a and b at the same time and waits for both.
  void run_pair(int a, int b, std::function<void()> work) {
    std::unique_lock<std::mutex> lock(mutex_);
    a_ = a;
    b_ = b;
    work_ = std::move(work);
    ready_ = 0;
    finished_ = 0;
    ++round_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return finished_ == 2; });
  }

 private:
  std::vector<std::uint32_t> indices_;
  std::vector<std::thread> threads_;
  std::mutex mutex_;
  std::condition_variable cv_;
  int registered_ = 0;
  bool stop_ = false;
  std::uint64_t round_ = 0;
  int a_ = -1, b_ = -1, finished_ = 0;
  std::atomic<int> ready_{0};
  std::function<void()> work_;
};

// Enough live threads that some hold an index beyond the owned stripes.
int parked_threads() {
  return static_cast<int>(detail::striped_counters().owned_stripes()) + 2;
}

// A thread whose index owns a stripe and one whose index is past the owned stripes, chosen so
// that the latter's index maps onto the former's stripe under a naive `index % stripes` (the
// pairing that lost increments before overflow threads got stripes of their own).
std::pair<int, int> find_pair(const ThreadPark& park) {
  const std::uint32_t owned = detail::striped_counters().owned_stripes();
  const auto& idx = park.indices();
  std::pair<int, int> best{-1, -1};
  for (std::size_t b = 0; b < idx.size(); ++b) {
    if (idx[b] < owned) continue;
    for (std::size_t a = 0; a < idx.size(); ++a) {
      if (idx[a] >= owned) continue;
      if (best.first < 0 || idx[a] == idx[b] % owned)
        best = {static_cast<int>(a), static_cast<int>(b)};
    }
  }
  return best;
}

// The warm tier's reader-writer spin lock: writers exclude everyone, readers only writers. Two
// plain (non-atomic) fields written together under the exclusive lock must always be read equal
// under the shared one; under TSan any overlap of a writer with anyone is also a reported race.
TEST(Stress, SharedSpinLockExcludesWritersFromEveryone) {
  detail::shared_spin_lock lock;
  std::uint64_t a = 0, b = 0;
  Failures failures;
  const std::uint64_t ops = scaled(200'000);
  run_concurrently(kThreads, [&](int t) {
    for (std::uint64_t i = 0; i < ops; ++i) {
      if ((i + static_cast<std::uint64_t>(t)) % 8 == 0) {
        std::unique_lock guard(lock);
        ++a;
        ++b;
      } else {
        std::shared_lock guard(lock);
        if (a != b) failures.report("a reader saw a half-done write: ", a, " vs ", b);
      }
    }
  });
  EXPECT_EQ(failures.count(), 0);
  EXPECT_EQ(a, b);
  std::uint64_t writes = 0;
  for (int t = 0; t < kThreads; ++t) {
    for (std::uint64_t i = 0; i < ops; ++i) writes += (i + static_cast<std::uint64_t>(t)) % 8 == 0;
  }
  EXPECT_EQ(a, writes);  // no write lost
}

TEST(Stress, StripedCountersAreExactWithMoreThreadsThanStripes) {
  ThreadPark park(parked_threads());
  const auto [owner, sharer] = find_pair(park);
  if (owner < 0) GTEST_SKIP() << "no pair of parked threads with an owned and an overflow index";
  // Counting only (no data race for TSan to see), so sanitizer builds run a token amount.
  const std::uint64_t n = (GL_TSAN || GL_ASAN) ? 50'000 : 1'000'000;
  constexpr int rounds = (GL_TSAN || GL_ASAN) ? 5 : 20;
  int lossy_rounds = 0;
  std::uint64_t lost = 0;
  for (int round = 0; round < rounds; ++round) {
    detail::striped_counters counters;
    park.run_pair(owner, sharer, [&] {
      for (std::uint64_t i = 0; i < n; ++i) counters.add(detail::counter::lookups);
    });
    const std::uint64_t total = counters.total(detail::counter::lookups);
    if (total != 2 * n) {
      ++lossy_rounds;
      lost += 2 * n - total;
    }
  }
  EXPECT_EQ(lossy_rounds, 0) << lost << " increments lost in " << lossy_rounds << " of " << rounds
                             << " rounds (thread indices " << park.indices()[owner] << " and "
                             << park.indices()[sharer] << ")";
}

TEST(Stress, StatsAreExactWithMoreThreadsThanStripes) {
  ThreadPark park(parked_threads());
  const auto [owner, sharer] = find_pair(park);
  if (owner < 0) GTEST_SKIP() << "no pair of parked threads with an owned and an overflow index";
  auto cache = make_cache<goldylox::typed_cache<std::uint64_t, std::uint64_t>>(1024, true);
  ASSERT_TRUE(cache.put(1, 1).ok());
  const std::uint64_t n = (GL_TSAN || GL_ASAN) ? 20'000 : 300'000;
  constexpr std::uint64_t rounds = (GL_TSAN || GL_ASAN) ? 3 : 10;
  for (std::uint64_t round = 0; round < rounds; ++round) {
    park.run_pair(owner, sharer, [&] {
      for (std::uint64_t i = 0; i < n; ++i) (void)cache.get(1);
    });
  }
  EXPECT_EQ(cache.stats().hits, rounds * 2 * n) << "hits were lost";
}

}  // namespace
