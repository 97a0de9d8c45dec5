// W-TinyLFU (Einziger, Friedman & Manes, "TinyLFU: A Highly Efficient Cache Admission Policy",
// ACM ToS 2017), as Caffeine implements it, with Caffeine's adaptive window (hill climbing).
//
// Regions. Resident entries sit in one of three LRU lists:
//   * the admission window, where every new entry starts (target window_max_, 1 % of the
//     capacity at construction);
//   * the main area, a segmented LRU: probation (entries admitted from the window, and entries
//     demoted from protected) and protected (entries hit while on probation; at most
//     protected_max_, 80 % of the main area at construction; its overflow is demoted to the
//     most recent end of probation).
// A hit moves an entry to the front of its list; a probation hit promotes it to protected.
//
// Admission. A count-min sketch estimates how often each key was requested recently (below).
// When a miss needs room and the window is at its target, the window's LRU entry becomes the
// candidate: it moves to probation, and the main area's victim (probation's LRU; protected's if
// probation holds nothing else) is compared with it: the candidate stays only if its estimated
// frequency is higher, otherwise it is evicted itself. As in Caffeine, a candidate whose
// estimate is at least 6 also wins with probability 1/128 (against an attacker who inflates a
// victim's count to pin it: "HashDoS"); the coin comes from a deterministic PRNG (splitmix64),
// so runs are reproducible. When the window is below its target (it was just enlarged), the
// victim is taken from the main area and compared with the window's LRU entry in the same way.
// The owner always inserts the missed key (the eviction_policy contract), so a new entry is
// never rejected outright: it is the window that filters.
//
// Sketch: common/frequency_sketch.hpp (4-bit count-min, depth 4, one cache line per key, halved
// after 10 x capacity increments). Every access (hit or miss) increments the key's counters. No
// doorkeeper.
//
// Adaptive window (Caffeine's BoundedLocalCache.climb()). Once the cache has been half full,
// hits and misses are counted in samples of 10 × capacity requests. At the end of a sample the
// hit rate is compared with the previous sample's: if it did not fall the window keeps moving
// in the same direction, otherwise it reverses; the step starts at 6.25 % of the capacity (first
// direction: shrinking, as Caffeine), decays by × 0.98 per sample, and restarts at 6.25 % when
// the hit rate changed by 5 points or more. One deliberate difference: Caffeine compares the
// first sample with a hit rate of 0, so it always "improved" and the window always shrinks (to 1
// entry, as the 1 % window cannot shrink by 6.25 %) and keeps shrinking while the cache warms
// up; here the first sample only sets the baseline. On arc_OLTP at 15000 entries (under 7
// samples in the whole trace) Caffeine's rule leaves the window at 1 entry for most of the run,
// a miss ratio of 0.405 against 0.373 with the baseline (and 0.377 with the fixed window). Growing
// the window takes room from protected (moving main LRU entries into the window's MRU end);
// shrinking it gives room to protected (moving window LRU entries to probation's MRU end). The
// window never drops below 1 entry, and protected never below 0. Entries are moved at most 16 per
// event (the rest of the adjustment carries over, like Caffeine's queue-transfer threshold), so no
// event costs more than O(16); an adjustment is at most 6.25 % of the capacity per 10 × capacity
// requests. w_tinylfu_fixed_policy keeps the window at its initial 1 %: the libCacheSim-style
// `WTinyLFU-w0.01-SLRU` for comparison (its sketch, tie-breaks and SLRU details differ).
//
// Sizes: window_max_ = max(1, floor(0.01 × capacity)), main = capacity - window_max_,
// protected_max_ = floor(0.8 × main). Tiny capacities: the window never rounds to 0 (libCacheSim
// sizes it floor(0.01 × capacity) and then cannot store anything below capacity 100: a 100 % miss
// ratio); capacity 1 is a one-entry window with an empty main area (every miss replaces the
// entry, repeats hit), capacity 2..100 a one-entry window in front of an SLRU of the rest. The
// hill climber's step, 6.25 % of the capacity, truncates to 0 below capacity 16: tiny caches keep
// the fixed window.
//
// Invariants: window_max_ >= 1; window_max_ + (main area target) == capacity; protected_max_ <=
// capacity - window_max_; every resident slot is on exactly the list region_of_ names.
//
// Memory per entry: 8 bytes of links and 8 of hash side by side (keyed_index_lists: a hit reads
// the hash for the sketch from the line it relinks), 1 of region tag, and 8 to 16 of sketch
// (ceil_pow2(capacity) words of 8 bytes): 25 to 33 bytes; no allocation after construction.
#pragma once

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "goldylox/detail/common/frequency_sketch.hpp"
#include "goldylox/detail/common/hash.hpp"
#include "goldylox/detail/warm/policy/classic.hpp"
#include "goldylox/detail/warm/policy/index_lists.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

class w_tinylfu_policy {
 public:
  using slot = std::uint32_t;
  static constexpr std::string_view name = "W-TinyLFU";

  explicit w_tinylfu_policy(std::size_t capacity) : w_tinylfu_policy(capacity, true, name) {}

  std::size_t capacity() const noexcept { return c_; }
  std::size_t size() const noexcept {
    return lists_.size(window) + lists_.size(probation) + lists_.size(protected_);
  }
  // Current region targets, for tests and diagnostics.
  std::size_t window_target() const noexcept { return window_max_; }
  std::size_t protected_target() const noexcept { return protected_max_; }
  bool adaptive() const noexcept { return adaptive_; }

  void on_hit(slot s) noexcept {
    sketch_.increment(lists_.key(s));
    switch (region_of_[s]) {
      case window:
        lists_.move_to_front(window, window, s);
        break;
      case probation:
        lists_.move_to_front(probation, protected_, s);
        region_of_[s] = protected_;
        demote_protected_overflow();
        break;
      default:
        lists_.move_to_front(protected_, protected_, s);
        break;
    }
    record(true);
  }

  void on_miss(std::uint64_t hash) noexcept {
    sketch_.increment(hash);
    record(false);
  }

  slot victim() noexcept {
    const std::size_t w = lists_.size(window);
    if (w >= window_max_ && w > 0) {
      // The new entry will overflow the window: its LRU entry is the candidate for the main
      // area, where it competes with the main area's victim.
      const slot candidate = lists_.back(window);
      lists_.move_to_front(window, probation, candidate);
      region_of_[candidate] = probation;
      slot v = lists_.back(probation);
      if (v == candidate) v = lists_.back(protected_);
      if (v == none || !admit(lists_.key(candidate), lists_.key(v))) v = candidate;
      lists_.unlink(region_of_[v], v);
      return v;
    }
    // The window has room (it has just grown): evict from the main area, unless the window's
    // LRU entry is the less frequent of the two.
    slot v = lists_.back(probation);
    if (v == none) v = lists_.back(protected_);
    const slot candidate = lists_.back(window);
    if (v == none || (candidate != none && !admit(lists_.key(candidate), lists_.key(v)))) {
      v = candidate;
    }
    if (v == none) return none;  // empty
    lists_.unlink(region_of_[v], v);
    return v;
  }

  void on_insert(slot s, std::uint64_t hash) noexcept {
    lists_.push_front(window, s);
    region_of_[s] = window;
    lists_.set_key(s, hash);
    // While the cache fills (no victim() calls), the window's overflow goes to probation.
    while (lists_.size(window) > window_max_) {
      const slot o = lists_.back(window);
      lists_.move_to_front(window, probation, o);
      region_of_[o] = probation;
    }
  }

  void on_erase(slot s) noexcept { lists_.unlink(region_of_[s], s); }

  // Amortised: the sketch's ceil_pow2(capacity) words are shared by the entries.
  static constexpr std::size_t bytes_per_entry() noexcept {
    return keyed_index_lists::bytes_per_entry() + 1 + 16;
  }

 protected:
  w_tinylfu_policy(std::size_t capacity, bool adaptive, std::string_view policy_name)
      : c_(checked_policy_capacity(capacity, policy_name)),
        window_max_(initial_window(capacity)),
        protected_max_(static_cast<std::size_t>(0.8 * static_cast<double>(capacity - window_max_))),
        adaptive_(adaptive),
        lists_(capacity, 3),
        region_of_(capacity, window),
        sketch_(capacity),
        step_size_(-step_percent * static_cast<double>(capacity)) {}

 private:
  static constexpr unsigned window = 0, probation = 1, protected_ = 2;  // lists
  static constexpr slot none = index_lists::none;
  static constexpr unsigned hashdos_threshold = 6;
  static constexpr double step_percent = 0.0625;
  static constexpr double step_decay = 0.98;
  static constexpr double restart_threshold = 0.05;
  static constexpr int transfers_per_event = 16;

  static std::size_t initial_window(std::size_t capacity) noexcept {
    const auto w = static_cast<std::size_t>(0.01 * static_cast<double>(capacity));
    return w == 0 ? 1 : w;
  }

  bool admit(std::uint64_t candidate, std::uint64_t victim) noexcept {
    const unsigned cf = sketch_.frequency(candidate);
    if (cf > sketch_.frequency(victim)) return true;
    return cf >= hashdos_threshold && (next_random() & 127U) == 0;
  }

  std::uint64_t next_random() noexcept {
    rng_ += 0x9e3779b97f4a7c15ULL;
    return splitmix_mix(rng_);
  }

  void demote_protected_overflow() noexcept {
    while (lists_.size(protected_) > protected_max_) {
      const slot d = lists_.back(protected_);
      lists_.move_to_front(protected_, probation, d);
      region_of_[d] = probation;
    }
  }

  // The hill climber: counts the request, closes a sample, and moves a few entries towards the
  // current targets.
  void record(bool hit) noexcept {
    if (!adaptive_) return;
    if (!sampling_) {
      if (2 * size() < c_) return;  // as Caffeine: no sampling until half full
      sampling_ = true;
    }
    ++(hit ? hits_in_sample_ : misses_in_sample_);
    if (hits_in_sample_ + misses_in_sample_ >= sketch_.sample_size()) determine_adjustment();
    if (pending_adjustment_ != 0) transfer(transfers_per_event);
  }

  void determine_adjustment() noexcept {
    const double requests = static_cast<double>(hits_in_sample_ + misses_in_sample_);
    const double hit_rate = static_cast<double>(hits_in_sample_) / requests;
    if (!have_baseline_) {  // the first sample has nothing to be compared with
      have_baseline_ = true;
      previous_hit_rate_ = hit_rate;
      hits_in_sample_ = misses_in_sample_ = 0;
      return;
    }
    const double change = hit_rate - previous_hit_rate_;
    const double amount = change >= 0 ? step_size_ : -step_size_;
    step_size_ = std::abs(change) >= restart_threshold
                     ? step_percent * static_cast<double>(c_) * (amount >= 0 ? 1.0 : -1.0)
                     : step_decay * amount;
    previous_hit_rate_ = hit_rate;
    pending_adjustment_ = static_cast<std::int64_t>(amount);  // truncated, as Caffeine
    hits_in_sample_ = misses_in_sample_ = 0;
  }

  // Moves the window target by up to `budget` entries in the pending direction.
  void transfer(int budget) noexcept {
    for (; budget > 0 && pending_adjustment_ > 0; --budget, --pending_adjustment_) {
      if (protected_max_ == 0) {
        pending_adjustment_ = 0;
        break;
      }
      --protected_max_;
      ++window_max_;
      slot s = lists_.back(probation);
      unsigned from = probation;
      if (s == none) {
        s = lists_.back(protected_);
        from = protected_;
      }
      if (s != none) {
        lists_.move_to_front(from, window, s);
        region_of_[s] = window;
      }
      demote_protected_overflow();
    }
    for (; budget > 0 && pending_adjustment_ < 0; --budget, ++pending_adjustment_) {
      if (window_max_ <= 1) {
        pending_adjustment_ = 0;
        break;
      }
      --window_max_;
      ++protected_max_;
      if (lists_.size(window) > window_max_) {
        const slot s = lists_.back(window);
        lists_.move_to_front(window, probation, s);
        region_of_[s] = probation;
      }
    }
  }

  std::size_t c_;
  std::size_t window_max_;
  std::size_t protected_max_;
  bool adaptive_;
  keyed_index_lists lists_;  // links and hash of each slot
  std::vector<std::uint8_t> region_of_;
  frequency_sketch sketch_;
  std::uint64_t rng_ = 0;
  // Hill climber state.
  bool sampling_ = false;
  bool have_baseline_ = false;
  std::size_t hits_in_sample_ = 0;
  std::size_t misses_in_sample_ = 0;
  double previous_hit_rate_ = 0;
  double step_size_;
  std::int64_t pending_adjustment_ = 0;
};

// W-TinyLFU with the window fixed at its initial 1 % of the capacity (no hill climbing).
class w_tinylfu_fixed_policy : public w_tinylfu_policy {
 public:
  static constexpr std::string_view name = "W-TinyLFU-fixed";
  explicit w_tinylfu_fixed_policy(std::size_t capacity) : w_tinylfu_policy(capacity, false, name) {}
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
