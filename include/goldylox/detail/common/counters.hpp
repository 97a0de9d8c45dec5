// Striped statistics counters that keep the read path free of shared writes.
//
// Each live thread owns a small index (recycled when it exits). A cache keeps one cache-line
// stripe per index; a thread whose index fits updates its own stripe with a relaxed load and store
// (no read-modify-write, no shared line): it is that stripe's only writer. Threads beyond the
// stripe count use a separate set of shared overflow stripes with relaxed fetch_add — never an
// owned stripe, whose owner's plain load/store would lose their increments. Readers sum all
// stripes with relaxed loads: totals are a consistent-enough snapshot, as in Caffeine's LongAdder.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

#include "goldylox/detail/common/platform.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

class thread_index_pool {
 public:
  static thread_index_pool& global() {
    static thread_index_pool* const pool = new thread_index_pool;  // outlives thread exits
    return *pool;
  }
  std::uint32_t acquire() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!free_.empty()) {
      const std::uint32_t i = free_.back();
      free_.pop_back();
      return i;
    }
    return next_++;
  }
  void release(std::uint32_t i) {
    std::lock_guard<std::mutex> lock(mutex_);
    free_.push_back(i);
  }

 private:
  std::mutex mutex_;
  std::vector<std::uint32_t> free_;
  std::uint32_t next_ = 0;
};

inline constexpr std::uint32_t no_thread_index = 0xffffffffU;
inline thread_local std::uint32_t tls_thread_index = no_thread_index;

struct thread_index_exit {
  std::uint32_t index = no_thread_index;
  ~thread_index_exit() {
    if (index != no_thread_index) thread_index_pool::global().release(index);
    tls_thread_index = no_thread_index;
  }
};

GOLDYLOX_NOINLINE inline std::uint32_t register_thread_index() {
  static thread_local thread_index_exit exit_hook;
  exit_hook.index = thread_index_pool::global().acquire();
  tls_thread_index = exit_hook.index;
  return exit_hook.index;
}

GOLDYLOX_ALWAYS_INLINE std::uint32_t this_thread_index() {
  const std::uint32_t i = tls_thread_index;
  return GOLDYLOX_LIKELY(i != no_thread_index) ? i : register_thread_index();
}

// `lookups` counts every get, `misses` the ones that missed the hot tier; hits are the difference
// (see add_lookup for why hits are not counted directly). `warm_hits` counts hot misses the warm
// tier served, `evictions` the hot tier's evictions (demotions when there is a warm tier),
// `promotions` warm entries moved back to the hot tier, `dropped_demotions` hot evictions the warm
// tier could not take (an exception while copying or storing).
enum class counter : unsigned {
  lookups,
  misses,
  inserts,
  updates,
  removals,
  evictions,
  warm_hits,
  promotions,
  dropped_promotions,
  dropped_demotions,
  cold_hits,
  cold_demotions,
  cold_refused,
  cold_promotions,
  cold_not_admitted,
  cold_superseded,
  cold_already_stored,
  cold_background_demotions,    // of cold_demotions: written by the background pool
  cold_backpressure_demotions,  // of cold_demotions: written by the evicting thread, the pool's
                                // queue being full
  load_successes,               // loads (factories, loaders, bulk loaders) that produced a value
  load_failures,                // loads that failed (a status or an exception)
  load_nanos,                   // time spent in loads, nanoseconds
  expirations,                  // entries removed because their deadline passed
  count
};

class striped_counters {
 public:
  static constexpr unsigned kinds = static_cast<unsigned>(counter::count);

  static constexpr std::uint32_t overflow_stripes = 8;

  striped_counters()
      : owned_(std::bit_ceil(std::clamp(2 * std::thread::hardware_concurrency(), 16U, 1024U))),
        stripes_(std::make_unique<stripe[]>(owned_ + overflow_stripes)) {}

  GOLDYLOX_ALWAYS_INLINE void add(counter c, std::uint64_t n = 1) noexcept {
    const std::uint32_t i = tls_thread_index;
    if (GOLDYLOX_LIKELY(i < owned_)) {
      bump<false>(stripes_[i], c, n);
      return;
    }
    add_unowned(c, n);
  }

  // Counts one lookup and says whether it is one to time: the first of every `period` (a power
  // of two) lookups this thread makes on this cache, so the latency sample needs no counter of its
  // own (the thread-local countdown it replaced cost a third of telemetry's price on a hot hit).
  // Only the lookup is counted here, before its outcome is known; a miss is counted apart
  // (add(counter::misses)) behind the miss branch. Counting into a cell chosen by the outcome, or
  // adding the outcome as data, makes each get's counter update depend on its cache misses and
  // the next get's update on that one; on 1M-key tables that chain cost up to 2x get throughput
  // (docs/benchmarks.md). Straight-line code on the owned-stripe path, everything else out of
  // line: written as a callback taking the stripe, GCC kept the callback as a call on the get
  // path.
  template <std::uint64_t Period>
  GOLDYLOX_ALWAYS_INLINE bool tick_lookup() noexcept {
    static_assert(std::has_single_bit(Period));
    const std::uint32_t i = tls_thread_index;
    if (GOLDYLOX_LIKELY(i < owned_)) {
      auto& cell = stripes_[i].values[static_cast<unsigned>(counter::lookups)];
      const std::uint64_t n = cell.load(std::memory_order_relaxed);
      cell.store(n + 1, std::memory_order_relaxed);
      return (n & (Period - 1)) == 0;
    }
    return (add_unowned(counter::lookups, 1) & (Period - 1)) == 0;
  }

  // Stripes a thread can own; threads with a larger index share the overflow stripes.
  std::uint32_t owned_stripes() const noexcept { return owned_; }

  std::uint64_t total(counter c) const noexcept {
    std::uint64_t sum = 0;
    for (std::uint32_t i = 0; i < owned_ + overflow_stripes; ++i) {
      sum += stripes_[i].values[static_cast<unsigned>(c)].load(std::memory_order_relaxed);
    }
    return sum;
  }

  std::size_t memory_bytes() const noexcept { return (owned_ + overflow_stripes) * sizeof(stripe); }

 private:
  struct alignas(cache_line) stripe {
    std::atomic<std::uint64_t> values[kinds] = {};
  };

  // The calling thread had no owned stripe in tls_thread_index: it is unregistered (it reads
  // no_thread_index, which is >= owned_, so one compare covers both cases), or its index is past
  // the owned stripes and it shares an overflow stripe with other threads.
  // Returns the cell's value before the addition.
  GOLDYLOX_NOINLINE std::uint64_t add_unowned(counter c, std::uint64_t n) noexcept {
    const std::uint32_t i = this_thread_index();
    if (i < owned_) return bump<false>(stripes_[i], c, n);
    return bump<true>(stripes_[owned_ + i % overflow_stripes], c, n);
  }

  // An owned stripe has one writer, so a plain load and store suffice; a shared one needs an RMW.
  // Returns the cell's value before the addition.
  template <bool Shared>
  GOLDYLOX_ALWAYS_INLINE static std::uint64_t bump(stripe& st, counter c,
                                                   std::uint64_t n) noexcept {
    auto& cell = st.values[static_cast<unsigned>(c)];
    if constexpr (Shared) {
      return cell.fetch_add(n, std::memory_order_relaxed);
    } else {
      const std::uint64_t old = cell.load(std::memory_order_relaxed);
      cell.store(old + n, std::memory_order_relaxed);
      return old;
    }
  }

  std::uint32_t owned_;
  std::unique_ptr<stripe[]> stripes_;
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
