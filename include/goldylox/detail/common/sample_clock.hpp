// Component common/: the clock telemetry times its sampled gets and puts with.
//
// Why not steady_clock. On the 2-vCPU KVM machines this project measures on, steady_clock::now()
// costs ~26 ns (kvm-clock through the vDSO) and RDTSC ~11 ns; a hot-tier get takes 8-50 ns. A
// timed get reads the clock twice, so with steady_clock the clock alone was a third of
// telemetry's cost on the get path, and every sample read ~26 ns high.
//
// How. On x86-64 with an invariant TSC (CPUID 0x80000007, EDX bit 8: constant rate, counting
// through sleep states), now() returns RDTSC ticks; elsewhere steady_clock nanoseconds (one tick
// = 1 ns). Ticks are turned into nanoseconds only when a histogram is read: ns_per_tick()
// divides the steady_clock time since the first use of this clock in the process by the ticks
// counted meanwhile, waiting until at least 1 ms has passed (only a stats() call in the first
// millisecond of a process waits). Over one millisecond the two clocks' read costs make an error
// below 1e-4; the ratio only gets better as the process runs. A sample taken across a migration
// to a CPU whose TSC is offset can be off; invariant TSCs are synchronized across sockets by
// the kernel at boot, and a negative difference is clamped to 0 by the caller.
#pragma once

#include <chrono>
#include <cstdint>
#include <thread>

#include "goldylox/version.hpp"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <x86intrin.h>
#define GOLDYLOX_HAVE_RDTSC 1
#else
#define GOLDYLOX_HAVE_RDTSC 0
#endif

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

class sample_clock {
 public:
  // A tick count: RDTSC with an invariant TSC, else steady_clock nanoseconds.
  static std::uint64_t now() noexcept {
#if GOLDYLOX_HAVE_RDTSC
    if (uses_tsc()) return __rdtsc();
#endif
    return steady_ns();
  }

  // Nanoseconds per tick (1 without a TSC); see the header comment. Anchors the clock if
  // nothing did (the first call then waits 1 ms).
  static double ns_per_tick() noexcept {
    if (!uses_tsc()) return 1.0;
    const anchor_point& a = anchor();
    std::uint64_t ns = steady_ns();
    while (ns - a.ns < 1'000'000) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      ns = steady_ns();
    }
    const std::uint64_t ticks = now() - a.ticks;
    return ticks == 0 ? 1.0 : static_cast<double>(ns - a.ns) / static_cast<double>(ticks);
  }

  // Records the calibration's starting point if not done yet (a histogram does it when built,
  // so that by the time it is read the interval is long).
  static void start() noexcept { (void)anchor(); }

  static bool uses_tsc() noexcept {
#if GOLDYLOX_HAVE_RDTSC
    static const bool invariant = [] {
      unsigned a = 0, b = 0, c = 0, d = 0;
      if (__get_cpuid(0x80000000U, &a, &b, &c, &d) == 0 || a < 0x80000007U) return false;
      if (__get_cpuid(0x80000007U, &a, &b, &c, &d) == 0) return false;
      return (d & (1U << 8)) != 0;
    }();
    return invariant;
#else
    return false;
#endif
  }

 private:
  struct anchor_point {
    std::uint64_t ticks;
    std::uint64_t ns;
  };
  static const anchor_point& anchor() noexcept {
    static const anchor_point a{now(), steady_ns()};
    return a;
  }
  static std::uint64_t steady_ns() noexcept {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                          std::chrono::steady_clock::now().time_since_epoch())
                                          .count());
  }
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
