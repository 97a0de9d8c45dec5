// A 4-byte writer lock (one per hot-tier group). Readers never touch it.
//
// States: 0 free, 1 locked, 2 locked with possible sleepers. Uncontended lock/unlock is one CAS
// and one exchange; contended waiters spin briefly (critical sections are a few hundred
// nanoseconds) and then sleep through C++20 atomic wait (a futex on Linux), so a preempted holder
// does not burn the other core. Acquire/release orderings make the protected writes visible to the
// next holder.
#pragma once

#include <atomic>
#include <cstdint>

#include "goldylox/detail/platform.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

class group_lock {
 public:
  void lock() noexcept {
    std::uint32_t expected = 0;
    if (GOLDYLOX_LIKELY(state_.compare_exchange_strong(expected, 1, std::memory_order_acquire,
                                                       std::memory_order_relaxed))) {
      return;
    }
    lock_contended();
  }

  bool try_lock() noexcept {
    std::uint32_t expected = 0;
    return state_.compare_exchange_strong(expected, 1, std::memory_order_acquire,
                                          std::memory_order_relaxed);
  }

  void unlock() noexcept {
    if (state_.exchange(0, std::memory_order_release) == 2) state_.notify_one();
  }

 private:
  GOLDYLOX_NOINLINE void lock_contended() noexcept {
    for (int spin = 0; spin < 128; ++spin) {
      if (state_.load(std::memory_order_relaxed) == 0) {
        std::uint32_t expected = 0;
        if (state_.compare_exchange_weak(expected, 1, std::memory_order_acquire,
                                         std::memory_order_relaxed)) {
          return;
        }
      }
      cpu_relax();
    }
    while (state_.exchange(2, std::memory_order_acquire) != 0) state_.wait(2);
  }

  std::atomic<std::uint32_t> state_{0};
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
