// Spinning locks for short critical sections: group_lock, a 4-byte writer lock (one per hot-tier
// group; readers never touch it), and shared_spin_lock, a 4-byte reader-writer lock (one per
// warm-tier shard: its writers take it exclusively, size and statistics queries shared; reads
// of entries never take it).
//
// States: 0 free, 1 locked. Taking it uncontended is one CAS; releasing it is a plain release
// store. Contended waiters spin briefly with a pause (critical sections are tens to a few hundred
// nanoseconds), then yield the CPU between attempts, so a preempted holder gets to run.
//
// Why not a futex lock that sleeps: waking sleepers needs the unlock to learn whether anyone
// sleeps, which takes an atomic read-modify-write (or a store-load fence). On x86 that is a
// locked instruction, a full barrier that keeps the next operation's loads from overlapping with
// this one's; the plain-store unlock measured 1.16-1.33x -> 1.24-1.37x libcuckoo's throughput
// at 2 threads on 1M keys, Zipf 0.99, 90/10 (docs/benchmarks.md).
// Acquire/release orderings make the protected writes visible to the next holder.
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>

#include "goldylox/detail/common/platform.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

// Retries try_acquire() until it succeeds: 128 attempts with a pause between them, then a yield
// between attempts, so a preempted holder gets to run.
template <class TryAcquire>
GOLDYLOX_NOINLINE void spin_then_yield(TryAcquire&& try_acquire) noexcept {
  for (int spin = 0; spin < 128; ++spin) {
    if (try_acquire()) return;
    cpu_relax();
  }
  while (!try_acquire()) std::this_thread::yield();
}

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

  void unlock() noexcept { state_.store(0, std::memory_order_release); }

 private:
  void lock_contended() noexcept {
    spin_then_yield([this] {
      std::uint32_t expected = 0;
      return state_.load(std::memory_order_relaxed) == 0 &&
             state_.compare_exchange_weak(expected, 1, std::memory_order_acquire,
                                          std::memory_order_relaxed);
    });
  }

  std::atomic<std::uint32_t> state_{0};
};

// A reader-writer lock that spins instead of sleeping: a warm-tier shard's critical sections are
// a hash lookup (readers) or a policy event (writers), far shorter than the futex sleep and wake
// std::shared_mutex falls back to under contention, which measured 23 % of a 2-thread tiered
// benchmark's time in the kernel (docs/eviction.md). State: bit 0 a writer holds it, bit 1 a
// writer waits (new readers then stand back, so a stream of readers cannot starve writers), bits
// 2.. the reader count. Taking or releasing it is one atomic read-modify-write.
class shared_spin_lock {
 public:
  void lock_shared() noexcept {
    if (GOLDYLOX_UNLIKELY(!try_lock_shared())) {
      spin_then_yield([this] { return try_lock_shared(); });
    }
  }
  bool try_lock_shared() noexcept {
    std::uint32_t s = state_.load(std::memory_order_relaxed);
    while ((s & (writer | waiting)) == 0) {
      if (state_.compare_exchange_weak(s, s + reader, std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
        return true;
      }
    }
    return false;
  }
  void unlock_shared() noexcept { state_.fetch_sub(reader, std::memory_order_release); }

  void lock() noexcept {
    if (GOLDYLOX_UNLIKELY(!try_lock())) {
      spin_then_yield([this] {
        if (try_lock()) return true;
        if ((state_.load(std::memory_order_relaxed) & waiting) == 0) {
          state_.fetch_or(waiting, std::memory_order_relaxed);
        }
        return false;
      });
    }
  }
  // Succeeds when no one holds the lock (a waiting writer's flag is taken over and cleared).
  bool try_lock() noexcept {
    std::uint32_t s = state_.load(std::memory_order_relaxed);
    return (s & ~waiting) == 0 &&
           state_.compare_exchange_strong(s, writer, std::memory_order_acquire,
                                          std::memory_order_relaxed);
  }
  // Keeps a waiting writer's flag set by another writer meanwhile.
  void unlock() noexcept { state_.fetch_and(~writer, std::memory_order_release); }

 private:
  static constexpr std::uint32_t writer = 1, waiting = 2, reader = 4;
  std::atomic<std::uint32_t> state_{0};
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
