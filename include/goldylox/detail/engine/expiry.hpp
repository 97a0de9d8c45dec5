// The engine's expiry sweep: the job that runs the hot table's timer wheels
// (hot_table::expire_due), so that entries nobody reads again still leave memory once they
// expire (reads and writes remove the expired entries they find themselves).
//
// With a background pool, a periodic job sweeps every `period`: the finest bucket of the timer
// wheels spans 2^24 ns (16.8 ms, common/timer_wheel.hpp), so sweeping more often finds nothing
// new, and an expired entry nobody touches leaves memory within about two periods of its
// deadline. Without a pool, the writes sweep: a write that finds the next sweep due claims it
// (one CAS, so one writer sweeps at a time) and sweeps before it returns; run_pending_tasks()
// sweeps too, so a cache without writes can still be swept by its owner.
//
// Owns: the pool job. Invariant: the job is registered only while the hot table exists (this
// object is destroyed before the tier stack), and no run outlives it (~job_handle waits).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <stop_token>

#include "goldylox/background_pool.hpp"
#include "goldylox/detail/background/pool.hpp"
#include "goldylox/detail/engine/notices.hpp"
#include "goldylox/detail/engine/tiers.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

template <class K, class S, class Hash, class KeyEqual>
class expiry_sweep {
 public:
  using tiers_type = tier_stack<K, S, Hash, KeyEqual>;
  static constexpr std::chrono::nanoseconds period{std::int64_t{1} << 24};

  explicit expiry_sweep(tiers_type& tiers) : tiers_(tiers) {
    if (tiers.clock == nullptr) return;
    next_.store(tiers.clock->now() + period.count(), std::memory_order_relaxed);
  }

  // Registers the pool job (with a pool), once the engine has finished setting up what a sweep
  // reads (the removal observers and notifier): the job may run at once, on another thread.
  void start() {
    if (tiers_.clock == nullptr || !tiers_.config.background_pool) return;
    job_ = background_pool_access::pool(*tiers_.config.background_pool)
               ->add([this](std::stop_token) { sweep(); }, period);
  }

  expiry_sweep(const expiry_sweep&) = delete;
  expiry_sweep& operator=(const expiry_sweep&) = delete;

  // After a write, without a pool: sweeps if a sweep is due and no other writer claimed it.
  GOLDYLOX_ALWAYS_INLINE void after_write() {
    if (tiers_.clock == nullptr || job_ != nullptr) return;
    const std::int64_t now = tiers_.clock->now();
    std::int64_t due = next_.load(std::memory_order_relaxed);
    if (GOLDYLOX_LIKELY(now < due)) return;
    if (next_.compare_exchange_strong(due, now + period.count(), std::memory_order_relaxed)) {
      tiers_.hot.expire_due(now);
    }
  }

  // Sweeps now, on the calling thread (run_pending_tasks, the pool's job).
  void sweep() {
    if (tiers_.clock == nullptr) return;
    const notice_scope notices(tiers_.notices.active());
    tiers_.hot.expire_due(tiers_.clock->now());
  }

 private:
  tiers_type& tiers_;
  std::atomic<std::int64_t> next_{0};
  std::unique_ptr<job_handle> job_;
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
