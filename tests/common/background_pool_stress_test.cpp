// The background worker pool under churn: threads add, notify and remove jobs on a two-worker pool
// while long-lived jobs are notified from everywhere (worker threads included). No job may run
// after its handle's destructor returned, nor on two workers at once; throwing runs are counted
// and never stop a worker. Run under TSan in CI, which also checks the pool's own locking.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <stop_token>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <goldylox/goldylox.hpp>

#include "stress_support.hpp"

namespace {

using namespace goldylox_test::stress;
using namespace std::chrono_literals;

constexpr int kShared = 3;  // long-lived jobs of the churn test

struct job_probe {
  std::atomic<int> in_flight{0};
  std::atomic<bool> gone{false};  // set right after the handle's destructor returned
  std::atomic<std::uint64_t> runs{0};
};

// The body every job runs: checks the probe at both ends of a short run (a run still going when
// the destructor returned shows up at its end), and throws now and then.
void probe_run(job_probe& p, bool throws, Failures& failures, std::atomic<std::uint64_t>& thrown) {
  if (p.gone.load()) failures.report("a job started after its handle was destroyed");
  if (p.in_flight.fetch_add(1) != 0) failures.report("a job ran on two workers at once");
  for (int i = 0; i < 50; ++i) detail::cpu_relax();
  p.runs.fetch_add(1);
  if (p.gone.load()) failures.report("a job was still running after its handle was destroyed");
  p.in_flight.fetch_sub(1);
  if (throws) {
    thrown.fetch_add(1);
    throw std::runtime_error("stress: a failing job");
  }
}

TEST(Stress, BackgroundPoolJobsNeverOutliveTheirHandlesNorOverlapThemselves) {
  detail::worker_pool pool(2);
  Failures failures;
  std::atomic<std::uint64_t> thrown{0};

  // Long-lived jobs everyone notifies, also from inside other jobs' runs.
  std::vector<std::shared_ptr<job_probe>> shared_probes;
  std::vector<std::unique_ptr<detail::job_handle>> shared_jobs;
  for (int i = 0; i < kShared; ++i) {
    auto p = std::make_shared<job_probe>();
    shared_probes.push_back(p);
    shared_jobs.push_back(pool.add(
        [p, &failures, &thrown](std::stop_token) { probe_run(*p, false, failures, thrown); },
        i == 0 ? 1ms : 0ns));
  }

  const std::uint64_t rounds = scaled(20000);
  run_concurrently(kThreads, [&](int t) {
    Rng rng(static_cast<std::uint64_t>(t) + 77);
    struct owned {
      std::shared_ptr<job_probe> probe;
      std::unique_ptr<detail::job_handle> handle;
    };
    std::vector<owned> mine;
    const auto remove_one = [&](std::size_t i) {
      mine[i].handle.reset();
      mine[i].probe->gone.store(true);
      mine[i] = std::move(mine.back());
      mine.pop_back();
    };
    for (std::uint64_t r = 0; r < rounds; ++r) {
      const std::uint64_t dice = rng.below(100);
      if (dice < 25 || mine.empty()) {
        auto p = std::make_shared<job_probe>();
        const bool throws = rng.below(8) == 0;
        const int poke = static_cast<int>(rng.below(kShared + 1));  // kShared: none
        const auto period = rng.below(4) == 0 ? std::chrono::nanoseconds(rng.below(200'000)) : 0ns;
        auto h = pool.add(
            [p, throws, poke, &failures, &thrown, &shared_jobs](std::stop_token) {
              // Notifying from a worker: the shared handles outlive every owned job.
              if (poke < kShared) shared_jobs[static_cast<std::size_t>(poke)]->notify();
              probe_run(*p, throws, failures, thrown);
            },
            period);
        h->notify();
        mine.push_back({std::move(p), std::move(h)});
      } else if (dice < 65) {
        mine[rng.below(mine.size())].handle->notify();
      } else if (dice < 85) {
        shared_jobs[rng.below(kShared)]->notify();
      } else {
        remove_one(rng.below(mine.size()));
      }
      if (mine.size() > 16) remove_one(0);
      if (r % 256 == 0) std::this_thread::yield();
    }
    while (!mine.empty()) remove_one(mine.size() - 1);
  });

  // The shared jobs still run after the churn, so no worker died.
  const std::uint64_t before = shared_probes[1]->runs.load();
  shared_jobs[1]->notify();
  for (int i = 0; i < 10'000 && shared_probes[1]->runs.load() == before; ++i) {
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_GT(shared_probes[1]->runs.load(), before) << "the pool stopped running jobs";
  for (std::size_t i = 0; i < shared_jobs.size(); ++i) {
    shared_jobs[i].reset();
    shared_probes[i]->gone.store(true);
  }
  std::this_thread::sleep_for(5ms);  // a run started after a destructor returned would show here

  EXPECT_EQ(failures.count(), 0);
  const detail::worker_pool_stats s = pool.stats();
  EXPECT_EQ(s.jobs, 0u);
  EXPECT_EQ(s.failures, thrown.load());
  EXPECT_GT(s.runs, rounds / 10) << "the pool ran almost nothing";
}

}  // namespace
