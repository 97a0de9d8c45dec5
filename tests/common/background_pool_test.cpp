// The background worker pool (detail/background/pool.hpp) and its public handle
// (background_pool.hpp): notified and periodic jobs run, a notify during a run runs the job
// again, a job never runs on two workers at once, destroying a handle waits for the run in
// progress (and aborts from inside the job), a throwing job is counted and the worker carries
// on, caches can share one pool, and the pool joins promptly.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <latch>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <unistd.h>

#include <goldylox/goldylox.hpp>

#include "test_support.hpp"

namespace background_pool_test {

namespace detail = goldylox::detail;
using namespace std::chrono_literals;

// Polls `done` until it holds or `limit` passes; the pool promises "soon", not a deadline.
template <class P>
bool eventually(P done, std::chrono::milliseconds limit = 10s) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

TEST(WorkerPool, ANotifiedJobRunsAndAnUnnotifiedOneDoesNot) {
  detail::worker_pool pool(2);
  std::atomic<int> runs{0};
  auto job = pool.add([&](std::stop_token) { ++runs; }, 0ns);
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(runs.load(), 0) << "a period-0 job runs only when notified";
  job->notify();
  ASSERT_TRUE(eventually([&] { return runs.load() == 1; }));
  std::this_thread::sleep_for(30ms);
  EXPECT_EQ(runs.load(), 1) << "one notify, one run";
  job->notify();
  ASSERT_TRUE(eventually([&] { return runs.load() == 2; }));
  EXPECT_EQ(pool.stats().runs, 2u);
  EXPECT_EQ(pool.stats().jobs, 1u);
  job.reset();
  EXPECT_EQ(pool.stats().jobs, 0u);
}

TEST(WorkerPool, WhatANotifierWroteIsVisibleToTheRun) {
  detail::worker_pool pool(1);
  int plain = 0;  // not atomic: the notify must publish it (TSan checks)
  std::atomic<int> seen{-1};
  auto job = pool.add([&](std::stop_token) { seen = plain; }, 0ns);
  plain = 42;
  job->notify();
  ASSERT_TRUE(eventually([&] { return seen.load() == 42; }));
}

TEST(WorkerPool, APeriodicJobRunsRepeatedly) {
  detail::worker_pool pool(1);
  std::atomic<int> runs{0};
  const auto start = std::chrono::steady_clock::now();
  auto job = pool.add([&](std::stop_token) { ++runs; }, 5ms);
  ASSERT_TRUE(eventually([&] { return runs.load() >= 5; }));
  // Five periods at least: the first run comes one period after add().
  EXPECT_GE(std::chrono::steady_clock::now() - start, 25ms);
}

TEST(WorkerPool, ANotifiedPeriodicJobRunsAtOnce) {
  detail::worker_pool pool(1);
  std::atomic<int> runs{0};
  auto job = pool.add([&](std::stop_token) { ++runs; }, 1h);
  job->notify();
  ASSERT_TRUE(eventually([&] { return runs.load() == 1; }));
}

TEST(WorkerPool, ANotifyDuringARunRunsTheJobOnceMoreAfterIt) {
  detail::worker_pool pool(2);
  std::atomic<int> started{0};
  std::atomic<int> finished{0};
  std::latch release(1);
  auto job = pool.add(
      [&](std::stop_token) {
        if (++started == 1) release.wait();
        ++finished;
      },
      0ns);
  job->notify();
  ASSERT_TRUE(eventually([&] { return started.load() == 1; }));
  // Several notifies while the first run blocks: they ask for one more run, after it.
  for (int i = 0; i < 5; ++i) job->notify();
  std::this_thread::sleep_for(30ms);
  EXPECT_EQ(started.load(), 1) << "the second run must wait for the first (two idle workers)";
  release.count_down();
  ASSERT_TRUE(eventually([&] { return finished.load() == 2; }));
  std::this_thread::sleep_for(30ms);
  EXPECT_EQ(started.load(), 2) << "the notifies during the run coalesce into one run";
}

TEST(WorkerPool, AJobNeverRunsOnTwoWorkersAtOnce) {
  detail::worker_pool pool(4);
  std::atomic<int> in_flight{0};
  std::atomic<int> overlaps{0};
  std::atomic<int> runs{0};
  auto job = pool.add(
      [&](std::stop_token) {
        if (in_flight.fetch_add(1) != 0) ++overlaps;
        std::this_thread::sleep_for(100us);
        in_flight.fetch_sub(1);
        ++runs;
      },
      1ms);  // periodic and notified at once
  std::vector<std::jthread> notifiers;
  for (int t = 0; t < 3; ++t) {
    notifiers.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        job->notify();
        if (i % 64 == 0) std::this_thread::yield();
      }
    });
  }
  notifiers.clear();
  ASSERT_TRUE(eventually([&] { return runs.load() >= 20; }));
  job.reset();
  EXPECT_EQ(overlaps.load(), 0);
  EXPECT_EQ(in_flight.load(), 0);
}

TEST(WorkerPool, DestroyingAHandleWaitsForTheRunInProgress) {
  detail::worker_pool pool(2);
  std::atomic<bool> started{false};
  std::atomic<bool> finished{false};
  std::atomic<int> runs_after_destroy{0};
  std::atomic<bool> destroyed{false};
  std::latch release(1);
  auto job = pool.add(
      [&](std::stop_token) {
        if (destroyed.load()) ++runs_after_destroy;
        started = true;
        release.wait();
        finished = true;
      },
      0ns);
  job->notify();
  ASSERT_TRUE(eventually([&] { return started.load(); }));
  job->notify();  // pending when the handle goes: must not run after it
  std::atomic<bool> finished_before_return{false};
  std::jthread destroyer([&] {
    job.reset();
    finished_before_return = finished.load();
    destroyed = true;
  });
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(destroyed.load()) << "the handle's destructor returned while its job ran";
  release.count_down();
  destroyer.join();
  EXPECT_TRUE(finished_before_return.load());
  std::this_thread::sleep_for(30ms);
  EXPECT_EQ(runs_after_destroy.load(), 0);
  EXPECT_EQ(pool.stats().runs, 1u);
}

TEST(WorkerPool, DestroyingAHandleStopsItsRun) {
  detail::worker_pool pool(1);
  std::atomic<bool> started{false};
  std::atomic<bool> saw_stop{false};
  auto job = pool.add(
      [&](std::stop_token stop) {
        started = true;
        std::mutex m;
        std::condition_variable_any cv;
        std::unique_lock lock(m);
        // Without the stop request this waits an hour.
        saw_stop = cv.wait_for(lock, stop, 1h, [] { return false; }) || stop.stop_requested();
      },
      0ns);
  job->notify();
  ASSERT_TRUE(eventually([&] { return started.load(); }));
  const auto t0 = std::chrono::steady_clock::now();
  job.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  EXPECT_TRUE(saw_stop.load());
}

TEST(WorkerPool, AThrowingJobIsCountedAndTheWorkerCarriesOn) {
  detail::worker_pool pool(1);
  std::atomic<int> throws{0};
  auto bad = pool.add(
      [&](std::stop_token) {
        ++throws;
        throw std::runtime_error("job failure");
      },
      0ns);
  bad->notify();
  ASSERT_TRUE(eventually([&] { return pool.stats().failures == 1; }));
  std::atomic<int> good_runs{0};
  auto good = pool.add([&](std::stop_token) { ++good_runs; }, 0ns);
  good->notify();
  ASSERT_TRUE(eventually([&] { return good_runs.load() == 1; }))
      << "the pool's only worker died with the exception";
  bad->notify();
  ASSERT_TRUE(eventually([&] { return pool.stats().failures == 2; }));
  const detail::worker_pool_stats s = pool.stats();
  EXPECT_EQ(s.runs, 3u);
  EXPECT_EQ(s.failures, 2u);
  EXPECT_EQ(throws.load(), 2);
}

TEST(WorkerPool, DestroyingAHandleFromInsideItsOwnJobAbortsWithAMessage) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        detail::worker_pool pool(1);
        std::unique_ptr<detail::job_handle> job;
        std::latch added(1);
        job = pool.add(
            [&](std::stop_token) {
              added.wait();
              job.reset();
            },
            0ns);
        added.count_down();
        job->notify();
        std::this_thread::sleep_for(10s);  // the abort comes first
      },
      "destroyed from inside its own job");
}

TEST(WorkerPool, DestroyingThePoolWithAJobRegisteredAbortsWithAMessage) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        auto pool = std::make_unique<detail::worker_pool>(1);
        auto job = pool->add([](std::stop_token) {}, 0ns);
        pool.reset();
      },
      "destroyed while jobs are registered");
}

TEST(WorkerPool, DestructionAfterTheJobsAreGoneJoinsPromptly) {
  auto pool = std::make_unique<detail::worker_pool>(4);
  std::atomic<int> runs{0};
  {
    auto periodic = pool->add([&](std::stop_token) { ++runs; }, 1h);  // workers wait an hour
    auto notified = pool->add([&](std::stop_token) { ++runs; }, 0ns);
    notified->notify();
    ASSERT_TRUE(eventually([&] { return runs.load() == 1; }));
  }
  const auto t0 = std::chrono::steady_clock::now();
  pool.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
}

// fork() copies only the calling thread: a child must neither inherit a pool mutex that a worker
// held at that moment nor wait for the parent's workers. Here a helper thread keeps the worker
// taking the pool's mutex while the test forks, 20 times; each child (a hang is killed by an
// alarm) adds a job to the inherited pool and sees it run, sees an inherited job run when
// notified, and destroys an inherited pool without waiting to join threads it does not have.
TEST(WorkerPool, AForkedChildGetsWorkersOfItsOwn) {
  detail::worker_pool pool(1);
  auto* spare = new detail::worker_pool(1);
  {
    // Every thread of the parent has started before the first fork: a thread still starting
    // allocates (ASan's thread start frees memory in pthread_getattr_np), and libasan 12 does not
    // hold its allocator's locks across fork(), so a child could inherit a size-class lock held
    // and its new worker block on it for ever (seen under gdb: the first fork of a fresh process
    // failed that way). That is the sanitizer runtime's fork hazard, not the pool's.
    std::atomic<int> warm{0};
    auto a = spare->add([&](std::stop_token) { ++warm; }, 0ns);
    a->notify();
    ASSERT_TRUE(eventually([&] { return warm.load() == 1; }));
  }
  std::atomic<int> runs{0};
  auto busy = pool.add([&](std::stop_token) { ++runs; }, 0ns);
  std::atomic<bool> stop{false};
  std::thread notifier([&] {
    while (!stop.load()) busy->notify();
  });
  ASSERT_TRUE(eventually([&] { return runs.load() > 0; }));  // the notifier and the worker run
  for (int i = 0; i < 20; ++i) {
    const int code = goldylox_test::in_child([&] {
      ::alarm(20);
      std::atomic<int> ran{0};
      {
        auto own = pool.add([&](std::stop_token) { ++ran; }, 0ns);
        own->notify();
        if (!eventually([&] { return ran.load() > 0; })) return 2;
      }
      const int before = runs.load();
      busy->notify();
      if (!eventually([&] { return runs.load() > before; })) return 3;
      delete spare;  // its workers are the parent's: nothing to join here
      return 0;
    });
    EXPECT_EQ(code, 0) << "child " << i << " (2: its job never ran, 3: the inherited job never "
                       << "ran, 142: it hung)";
  }
  stop.store(true);
  notifier.join();
  EXPECT_GT(runs.load(), 0);
  delete spare;
}

TEST(WorkerPool, RejectsBadArguments) {
  EXPECT_THROW(detail::worker_pool(0), std::invalid_argument);
  EXPECT_THROW(detail::worker_pool(detail::max_pool_threads + 1), std::invalid_argument);
  detail::worker_pool pool(1);
  EXPECT_THROW((void)pool.add(nullptr, 0ns), std::invalid_argument);
  EXPECT_THROW((void)pool.add([](std::stop_token) {}, -1ns), std::invalid_argument);
  EXPECT_EQ(pool.stats().jobs, 0u);
  // A period of centuries saturates instead of overflowing into the past.
  std::atomic<int> runs{0};
  auto job = pool.add([&](std::stop_token) { ++runs; }, std::chrono::nanoseconds::max());
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(runs.load(), 0);
}

TEST(BackgroundPool, ValidatesItsThreadCount) {
  try {
    goldylox::background_pool bad(0);
    FAIL() << "0 threads accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("1 to 256 threads, got 0"), std::string::npos) << e.what();
  }
  EXPECT_THROW(goldylox::background_pool(257), std::invalid_argument);
  goldylox::background_pool pool(3);
  EXPECT_EQ(pool.thread_count(), 3u);
}

TEST(BackgroundPool, CopiesShareOnePoolAndTheDefaultIsOneSharedThread) {
  goldylox::background_pool a(2);
  const goldylox::background_pool b = a;
  EXPECT_TRUE(a == b);
  EXPECT_FALSE(a == goldylox::background_pool(2));
  EXPECT_EQ(detail::background_pool_access::pool(a), detail::background_pool_access::pool(b));
  const auto d1 = goldylox::background_pool::shared_default();
  const auto d2 = goldylox::background_pool::shared_default();
  EXPECT_TRUE(d1 == d2);
  EXPECT_EQ(d1.thread_count(), 1u);
}

// Two "caches", each registering its jobs on one shared pool of one thread: both are served, by
// that thread, and each cache's jobs go away with it while the other's keep running.
TEST(BackgroundPool, TwoCachesShareOnePool) {
  goldylox::background_pool shared(1);
  struct fake_cache {
    std::shared_ptr<detail::worker_pool> pool;  // keeps the pool alive, as a cold store does
    std::atomic<int> runs{0};
    std::mutex mu;
    std::set<std::thread::id> threads;
    std::unique_ptr<detail::job_handle> periodic, notified;

    explicit fake_cache(const goldylox::background_pool& p)
        : pool(detail::background_pool_access::pool(p)) {
      const auto run = [this](std::stop_token) {
        std::lock_guard lock(mu);
        threads.insert(std::this_thread::get_id());
        ++runs;
      };
      periodic = pool->add(run, 2ms);
      notified = pool->add(run, 0ns);
    }
    ~fake_cache() {
      periodic.reset();  // before the pool reference goes
      notified.reset();
    }
  };
  auto a = std::make_unique<fake_cache>(shared);
  auto b = std::make_unique<fake_cache>(shared);
  a->notified->notify();
  b->notified->notify();
  ASSERT_TRUE(eventually([&] { return a->runs.load() >= 5 && b->runs.load() >= 5; }));
  EXPECT_EQ(detail::background_pool_access::pool(shared)->stats().jobs, 4u);
  a.reset();
  const int b_runs = b->runs.load();
  ASSERT_TRUE(eventually([&] { return b->runs.load() >= b_runs + 5; }));
  EXPECT_EQ(detail::background_pool_access::pool(shared)->stats().jobs, 2u);
  std::lock_guard lock(b->mu);
  EXPECT_EQ(b->threads.size(), 1u) << "a one-thread pool ran jobs on several threads";
}

}  // namespace background_pool_test
