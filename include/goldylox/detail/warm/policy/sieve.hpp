// SIEVE (Zhang, Yang, Yue, Vigfusson & Rashmi, "SIEVE is Simpler than LRU", NSDI '24).
//
// One FIFO queue of resident entries and one "visited" bit per entry. A new entry enters at the
// head of the queue unvisited; a hit sets its bit and moves nothing. Eviction walks a hand from
// where it last stopped towards the head: every visited entry it passes loses its bit and stays
// where it is, the first unvisited one is evicted, and the hand stays at the entry just newer
// than the victim for the next eviction. When the hand runs past the head it wraps to the tail
// (the oldest entry). Unlike CLOCK, survivors are never moved to the head: old popular entries
// stay near the tail, and new entries that are not revisited are evicted on the hand's next
// pass ("quick demotion"). This is libCacheSim's `Sieve`, whose miss ratios the trace tests
// reproduce.
//
// Layout: one index_lists list. Its orientation is reversed with respect to the paper's picture
// because index_lists only walks from front to back: the list's front is the oldest entry (the
// paper's tail, where the hand starts) and its back the newest (the paper's head, where entries
// are inserted with push_back); next_older() therefore steps the hand towards newer entries.
//
// Invariants: hand_ is either `none` (start from the oldest entry) or a resident slot; on_erase of
// the slot under the hand moves the hand one step on first, exactly as an eviction would, so the
// hand never points at a free slot. victim() terminates within size() + 1 steps: a full pass
// clears every bit.
//
// Memory per entry: 8 bytes of links and a 1-byte visited bit: 9 bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "goldylox/detail/warm/policy/classic.hpp"
#include "goldylox/detail/warm/policy/index_lists.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

class sieve_policy {
 public:
  using slot = std::uint32_t;
  static constexpr std::string_view name = "SIEVE";
  static constexpr bool coalesces_hits = true;  // concepts.hpp

  explicit sieve_policy(std::size_t capacity)
      : capacity_(checked_policy_capacity(capacity, name)),
        lists_(capacity, 1),
        visited_(capacity, 0) {}

  std::size_t capacity() const noexcept { return capacity_; }
  std::size_t size() const noexcept { return lists_.size(queue); }

  void on_hit(slot s) noexcept { visited_[s] = 1; }
  void on_miss(std::uint64_t) noexcept {}

  slot victim() noexcept {
    slot s = hand_ == none ? lists_.front(queue) : hand_;
    if (s == none) return none;  // empty
    while (visited_[s] != 0) {
      visited_[s] = 0;
      s = lists_.next_older(s);                // one step towards the newest entry
      if (s == none) s = lists_.front(queue);  // past the newest: wrap to the oldest
    }
    hand_ = lists_.next_older(s);  // `none` when s was the newest: the next pass starts over
    lists_.unlink(queue, s);
    return s;
  }

  void on_insert(slot s, std::uint64_t) noexcept {
    visited_[s] = 0;
    lists_.push_back(queue, s);  // the back is the newest end (see the layout note above)
  }

  void on_erase(slot s) noexcept {
    if (s == hand_) hand_ = lists_.next_older(s);
    lists_.unlink(queue, s);
  }

  static constexpr std::size_t bytes_per_entry() noexcept {
    return index_lists::bytes_per_entry() + 1;
  }

 private:
  static constexpr unsigned queue = 0;
  static constexpr slot none = index_lists::none;

  std::size_t capacity_;
  index_lists lists_;
  std::vector<std::uint8_t> visited_;
  slot hand_ = none;
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
