// Component common/: the clock a cache's expiry deadlines are set and checked against.
//
// Why not read steady_clock on every get. A hot-tier get costs 8-50 ns; steady_clock::now()
// costs ~26 ns on the KVM machines this project measures on and RDTSC ~11 ns
// (sample_clock.hpp), so reading either on each get would break the bound expiry must meet (a get
// with expiry at most 15 % slower, issue 16). Caches with expiry therefore read a coarse clock by
// default: one process-wide atomic that a background thread sets from steady_clock every
// millisecond (`coarse_clock`), so a get pays one load of a line that changes once a millisecond.
// Consequence, documented for users: without an injected ticker, an entry is treated as expired
// up to about one millisecond (a tick, plus the ticking thread's scheduling delay) after its
// deadline, and deadlines are set from a time that is up to that much old.
//
// The ticking thread runs only while some cache with expiry exists (acquire/release count them):
// it stops itself at the first tick that finds no user, and the next acquire starts a new one. It
// is detached and touches only this file's constant-initialised atomics, which are never
// destroyed, so a process may exit with caches alive and the thread running. While no thread
// ticks (before the first tick, in a forked child, whose copy of the process has no such thread),
// the clock's value is 0 and now() reads steady_clock itself: slower, never stale.
//
// An injected ticker (the builders' ticker(f): tests move time without sleeping) replaces all of
// this; it is called on every check, from any thread.
//
// Deadlines are int64 nanoseconds of the cache's clock; `no_deadline` (the largest value) means
// the entry never expires. An entry with deadline d is expired at time t when t >= d.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <thread>
#include <type_traits>
#include <utility>

#include "goldylox/version.hpp"

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#define GOLDYLOX_HAVE_ATFORK 1
#else
#define GOLDYLOX_HAVE_ATFORK 0
#endif

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

// A cache's clock when a user injects one: a monotonic time in nanoseconds.
using ticker_function = std::function<std::chrono::nanoseconds()>;

inline std::chrono::nanoseconds steady_ticker() noexcept {
  return std::chrono::steady_clock::now().time_since_epoch();
}

inline constexpr std::int64_t no_deadline = std::numeric_limits<std::int64_t>::max();

// Coarse deadlines (the hot table keeps one in each packed slot's sequence word): time in units
// of 2^20 ns (~1.05 ms), placed at bit 24 of a 64-bit word.
inline constexpr unsigned coarse_unit_shift = 20;
inline constexpr unsigned coarse_word_shift = 24;

// The word a coarse deadline must reach for an entry to be alive after time t: (units(t) + 1)
// placed at bit 24 (a negative t counts as 0).
inline std::uint64_t coarse_word_after(std::int64_t t) noexcept {
  const std::uint64_t units = t <= 0 ? 0 : static_cast<std::uint64_t>(t) >> coarse_unit_shift;
  return (units + 1) << coarse_word_shift;
}

// now + ttl, saturating at no_deadline (a ttl of years must not wrap into the past).
inline std::int64_t deadline_after(std::int64_t now, std::chrono::nanoseconds ttl) noexcept {
  const std::int64_t t = ttl.count();
  if (t <= 0) return now;
  return now > no_deadline - t ? no_deadline : now + t;
}

// coarse_clock's state: constant-initialised and trivially destructible, so the detached
// ticking thread may use it until the process ends.
struct coarse_clock_state {
  std::atomic<std::int64_t> now{0};
  std::atomic<std::uint64_t> word{0};  // coarse_word_after(now), 0 when `now` is
  std::atomic<std::int64_t> users{0};
  std::atomic<bool> running{false};
};
static_assert(std::is_trivially_destructible_v<coarse_clock_state>);
inline constinit coarse_clock_state coarse_clock_shared{};

class coarse_clock {
 public:
  static constexpr std::chrono::milliseconds tick{1};

  static std::int64_t now() noexcept {
    const std::int64_t t = state.now.load(std::memory_order_relaxed);
    return t != 0 ? t : steady_ns();
  }

  // A cache with expiry exists from acquire() to its release(). acquire() may throw
  // std::system_error if no thread can be started (the cache then is not built).
  static void acquire() {
#if GOLDYLOX_HAVE_ATFORK
    // A forked child has no ticking thread: its clock must not stay frozen at the fork's time.
    [[maybe_unused]] static const bool fork_handled =
        pthread_atfork(nullptr, nullptr, &after_fork_in_child) == 0;
#endif
    state.users.fetch_add(1, std::memory_order_relaxed);
    if (!state.running.exchange(true, std::memory_order_acq_rel)) {
      try {
        std::thread(run).detach();
      } catch (...) {
        state.running.store(false, std::memory_order_release);
        state.users.fetch_sub(1, std::memory_order_relaxed);
        throw;
      }
    }
  }
  static void release() noexcept { state.users.fetch_sub(1, std::memory_order_relaxed); }

 private:
  static inline coarse_clock_state& state = coarse_clock_shared;

  static std::int64_t steady_ns() noexcept { return steady_ticker().count(); }

  static void after_fork_in_child() noexcept {
    state.now.store(0, std::memory_order_relaxed);
    state.word.store(0, std::memory_order_relaxed);
    state.running.store(false, std::memory_order_relaxed);
  }

  static void run() noexcept {
    for (;;) {
      const std::int64_t t = steady_ns();
      state.now.store(t, std::memory_order_relaxed);
      state.word.store(coarse_word_after(t), std::memory_order_relaxed);
      std::this_thread::sleep_for(tick);
      if (state.users.load(std::memory_order_relaxed) > 0) continue;
      // No user: stop, unless one arrived after the test above and found this thread running
      // (it then started none, so this one carries on).
      state.now.store(0, std::memory_order_relaxed);
      state.word.store(0, std::memory_order_relaxed);
      state.running.store(false, std::memory_order_release);
      if (state.users.load(std::memory_order_relaxed) == 0 ||
          state.running.exchange(true, std::memory_order_acq_rel)) {
        return;
      }
    }
  }
};

// One cache's expiry clock: its injected ticker, else the coarse clock (which it keeps ticking
// while it lives).
class expiry_clock {
 public:
  explicit expiry_clock(ticker_function ticker) : ticker_(std::move(ticker)) {
    if (!ticker_) coarse_clock::acquire();
  }
  expiry_clock(const expiry_clock&) = delete;
  expiry_clock& operator=(const expiry_clock&) = delete;
  ~expiry_clock() {
    if (!ticker_) coarse_clock::release();
  }

  std::int64_t now() const {
    if (ticker_) return ticker_().count();
    return coarse_clock::now();
  }

  // For readers on a hot path: coarse_word_after(now) in one load, or 0, meaning "call now()":
  // the coarse clock's shared word (0 while no thread ticks it), or with an injected ticker an
  // atomic that is always 0.
  const std::atomic<std::uint64_t>* coarse_word() const noexcept {
    return ticker_ ? &always_zero_ : &coarse_clock_shared.word;
  }

 private:
  ticker_function ticker_;
  std::atomic<std::uint64_t> always_zero_{0};
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
