// The engine's maintenance on the background pool: the warm tier's policies learn there, off the
// path of the requests that taught them (concepts.hpp's deferred_learning_policy).
//
// With a pool, the warm tier's policies defer their learning (the adaptive policy's miniature
// simulations, the linear model's training pairs): a request only queues it. A write that leaves
// its shard's backlog at `notify_at` or more wakes this job (reads never do: a reader must not
// wait on the pool's mutex), which has every shard learn in turn, skipping a shard whose lock a
// writer holds (that shard's next write wakes the job again while the backlog stays high). A
// backlog of `batch` is learnt inline by the request that fills it, so a slow or busy pool delays a
// policy's verdicts by at most `batch` of its shard's requests and never blocks a request. Without
// a pool nothing is deferred: the policies learn inline, so inline mode and goldylox-sim decide
// exactly as before.
//
// The batch sizes trade timeliness for work moved off the caller: at `notify_at` = 64 the pool
// wakes at most once per 64 queued requests of a shard, and at `batch` = 1024 a policy lags by at
// most 1024 of its shard's requests, a small fraction of the adaptive policy's decision window (8 x
// its miniature caches' size, at least 2000 requests) and of the linear model's pair memory (its
// capacity).
//
// Owns: the pool job. Invariant: the job is registered only while the warm tier exists (this
// object is destroyed before the tier stack), and no run outlives it (~job_handle waits).
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <stop_token>

#include "goldylox/background_pool.hpp"
#include "goldylox/detail/background/pool.hpp"
#include "goldylox/detail/engine/tiers.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

template <class K, class S, class Hash, class KeyEqual>
class maintenance {
 public:
  using tiers_type = tier_stack<K, S, Hash, KeyEqual>;
  static constexpr std::size_t notify_at = 64;
  static constexpr std::size_t batch = 1024;

  explicit maintenance(tiers_type& tiers) : tiers_(tiers) {
    if ((tiers.warm == nullptr && tiers.governor == nullptr) || !tiers.config.background_pool) {
      return;
    }
    job_ =
        background_pool_access::pool(*tiers.config.background_pool)
            ->add([this](std::stop_token) { learn(/*wait=*/false); }, std::chrono::nanoseconds(0));
    auto due = [this]() noexcept { job_->notify(); };
    if (tiers.warm != nullptr) {
      tiers.warm->defer_learning(batch, notify_at, due);
    } else {
      tiers.governor->defer_learning(batch, notify_at, due);
    }
  }

  maintenance(const maintenance&) = delete;
  maintenance& operator=(const maintenance&) = delete;

  // Learns every shard's backlog now, on the calling thread (nothing to do without a pool).
  void run_pending() {
    if (job_ != nullptr) learn(/*wait=*/true);
  }

 private:
  void learn(bool wait) {
    if (tiers_.warm != nullptr) {
      tiers_.warm->learn(wait);
    } else {
      tiers_.governor->learn(wait);
    }
  }

  tiers_type& tiers_;
  std::unique_ptr<job_handle> job_;
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
