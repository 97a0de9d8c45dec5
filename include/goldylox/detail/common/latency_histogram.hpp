// Component common/: latency histograms for the cache's telemetry (get, put and load times).
//
// Layout. Log-linear buckets of nanoseconds, HdrHistogram's idea at 3 bits of precision: values
// below 16 ns have a bucket each; from 16 ns on, each power of two [2^e, 2^(e+1)) is split into 8
// buckets of equal width, so a bucket spans at most 1/8 of its lowest value and a percentile read
// as the upper edge of its bucket is at most 12.5 % above the true value (never below). Values
// from 15 x 2^37 ns (about 34 minutes) up share the last bucket. 312 buckets of 64-bit counters:
// 2.4 KiB per histogram.
//
// Units. A histogram counts nanoseconds, or (made with `ticks`) ticks of sample_clock, the TSC
// where there is an invariant one: the buckets are then buckets of ticks, and summary() turns
// their edges into nanoseconds with the clock's measured rate, which keeps the 12.5 % bound.
//
// Sampling. Reading a clock costs a good part of a hot-tier get (~11 ns for RDTSC, ~26 ns for
// steady_clock here, twice per timed call), so gets and puts are timed one call in `sample_period`
// per thread: a get when the thread's lookup count on the cache is a multiple of it
// (striped_counters::tick_lookup, which counts the lookup anyway), a put by sample_due()'s
// thread-local countdown; the first call of each thread is timed. Samples of one kind from all
// threads are equally likely, so percentiles are unbiased; counts are the samples', not the calls'.
// Loads are slow (they call the application) and are timed every time.
//
// Concurrency. record() is a relaxed fetch_add on one counter: at one call in 256 the bucket lines
// are rarely contended. summary() reads each counter with a relaxed load: a snapshot taken while
// others record is consistent per bucket, not across buckets (a percentile may miss a sample in
// flight).
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>

#include "goldylox/detail/common/sample_clock.hpp"
#include "goldylox/version.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

// p50, p99 and p99.9 of what a histogram recorded, in nanoseconds (0 with no samples).
struct latency_summary {
  std::uint64_t samples = 0;
  std::uint64_t p50_ns = 0;
  std::uint64_t p99_ns = 0;
  std::uint64_t p999_ns = 0;
};

class latency_histogram {
 public:
  // ticks: record() takes sample_clock ticks rather than nanoseconds.
  explicit latency_histogram(bool ticks = false) noexcept : ticks_(ticks) {
    if (ticks) sample_clock::start();
  }

  static constexpr unsigned sub_bits = 3;  // 8 buckets per power of two
  static constexpr std::uint64_t linear_below = 16;
  static constexpr unsigned max_exponent = 40;  // [2^40, 2^41) is the last split range
  static constexpr std::size_t bucket_count =
      linear_below + (max_exponent - 4 + 1) * (std::size_t{1} << sub_bits);
  static constexpr std::uint32_t sample_period = 256;

  static constexpr std::size_t bucket_of(std::uint64_t ns) noexcept {
    if (ns < linear_below) return static_cast<std::size_t>(ns);
    const unsigned e = static_cast<unsigned>(std::bit_width(ns)) - 1;  // >= 4
    if (e > max_exponent) return bucket_count - 1;
    const std::size_t sub = static_cast<std::size_t>(ns >> (e - sub_bits)) & 7;
    return linear_below + (e - 4) * 8 + sub;
  }
  // The largest value bucket b holds (the last bucket: everything from 2^40 ns up).
  static constexpr std::uint64_t upper_edge(std::size_t b) noexcept {
    if (b < linear_below) return b;
    if (b == bucket_count - 1) return ~std::uint64_t{0};
    const unsigned e = 4 + static_cast<unsigned>((b - linear_below) / 8);
    const std::uint64_t sub = (b - linear_below) % 8;
    const std::uint64_t lower = (8 + sub) << (e - sub_bits);
    return lower + (std::uint64_t{1} << (e - sub_bits)) - 1;
  }

  // Whether this thread's current put is one to time (see the design comment).
  static bool sample_due() noexcept {
    thread_local std::uint32_t countdown = 0;
    if (countdown != 0) {
      --countdown;
      return false;
    }
    countdown = sample_period - 1;
    return true;
  }

  // One sample, in the histogram's unit.
  void record(std::uint64_t value) noexcept {
    counts_[bucket_of(value)].fetch_add(1, std::memory_order_relaxed);
  }

  latency_summary summary() const noexcept {
    std::array<std::uint64_t, bucket_count> c;
    std::uint64_t n = 0;
    for (std::size_t b = 0; b < bucket_count; ++b) {
      c[b] = counts_[b].load(std::memory_order_relaxed);
      n += c[b];
    }
    latency_summary s;
    s.samples = n;
    if (n == 0) return s;
    const double scale = ticks_ ? sample_clock::ns_per_tick() : 1.0;
    const auto ns = [scale](std::uint64_t edge) {
      if (scale == 1.0 || edge == ~std::uint64_t{0}) return edge;
      return static_cast<std::uint64_t>(static_cast<double>(edge) * scale + 0.999);
    };
    s.p50_ns = ns(percentile(c, n, 500));
    s.p99_ns = ns(percentile(c, n, 990));
    s.p999_ns = ns(percentile(c, n, 999));
    return s;
  }

 private:
  // The upper edge of the bucket holding the sample of rank ceil(n * per_mille / 1000).
  static std::uint64_t percentile(const std::array<std::uint64_t, bucket_count>& c, std::uint64_t n,
                                  std::uint64_t per_mille) noexcept {
    const std::uint64_t rank = std::max<std::uint64_t>(1, (n * per_mille + 999) / 1000);
    std::uint64_t seen = 0;
    for (std::size_t b = 0; b < bucket_count; ++b) {
      seen += c[b];
      if (seen >= rank) return upper_edge(b);
    }
    return upper_edge(bucket_count - 1);
  }

  std::array<std::atomic<std::uint64_t>, bucket_count> counts_{};
  bool ticks_;
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
