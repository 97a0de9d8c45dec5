// Component warm/policy/ (main header: this one, with the contract every policy follows below;
// one file per policy family: classic (LRU, FIFO, CLOCK), lfu, arc, lirs, s3fifo, sieve,
// tinylfu, adaptive, linear; any_policy.hpp chooses one at run time; simulated_cache.hpp drives a
// policy as the warm tier does, for the adaptive policy's miniature caches and goldylox-sim). To
// add a policy: a file here, its name in policies.hpp, a row in docs/eviction.md. Policies are
// single-threaded, keep per-slot metadata only, and may call common/ and concepts.hpp only.
//
// The classic recency policies: LRU, FIFO and CLOCK, exactly as the textbooks (and libCacheSim's
// reference implementations, which the trace tests compare against) define them.
//
// Every policy in goldylox follows the eviction_policy contract (concepts.hpp): the owner maps its
// keys to dense slots [0, capacity) and reports each event — on_hit(slot), on_miss(hash) before a
// miss is handled, victim() when it needs room (the policy picks a resident slot and forgets it),
// on_insert(slot, hash) for the new entry, on_erase(slot) for a removal it did not ask for. A miss
// is always: on_miss, then victim() while full, then on_insert. The policies keep only per-slot
// metadata in arrays indexed by slot (no allocation per access) and are single-threaded; the warm
// tier gives each shard its own.
//
// Memory per entry: LRU and FIFO 8 bytes (two 32-bit links), CLOCK 9 (links and a reference bit).
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "goldylox/detail/warm/policy/index_lists.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

inline std::size_t checked_policy_capacity(std::size_t capacity, std::string_view policy) {
  if (capacity == 0 || capacity >= index_lists::none - 8) {
    throw std::invalid_argument(std::string(policy) + ": capacity must be in [1, 2^32 - 9], got " +
                                std::to_string(capacity));
  }
  return capacity;
}

// The three share one queue: entries enter at the front, the back is the oldest.
class queue_policy_base {
 public:
  using slot = std::uint32_t;

  std::size_t capacity() const noexcept { return capacity_; }
  std::size_t size() const noexcept { return queue_.size(0); }
  void on_miss(std::uint64_t) noexcept {}
  void on_insert(slot s, std::uint64_t) noexcept { queue_.push_front(0, s); }
  void on_erase(slot s) noexcept { queue_.unlink(0, s); }
  static constexpr std::size_t bytes_per_entry() noexcept { return index_lists::bytes_per_entry(); }

 protected:
  queue_policy_base(std::size_t capacity, std::string_view name)
      : capacity_(checked_policy_capacity(capacity, name)), queue_(capacity, 1) {}

  std::size_t capacity_;
  index_lists queue_;
};

// Least recently used: a hit moves the entry to the front, the back is evicted.
class lru_policy : public queue_policy_base {
 public:
  static constexpr std::string_view name = "LRU";
  static constexpr bool coalesces_hits = true;  // concepts.hpp
  explicit lru_policy(std::size_t capacity) : queue_policy_base(capacity, name) {}
  void on_hit(slot s) noexcept { queue_.move_to_front(0, 0, s); }
  slot victim() noexcept { return queue_.pop_back(0); }
};

// First in, first out: hits change nothing.
class fifo_policy : public queue_policy_base {
 public:
  static constexpr std::string_view name = "FIFO";
  static constexpr bool coalesces_hits = true;  // concepts.hpp
  explicit fifo_policy(std::size_t capacity) : queue_policy_base(capacity, name) {}
  void on_hit(slot) noexcept {}
  slot victim() noexcept { return queue_.pop_back(0); }
};

// CLOCK (second chance, one reference bit): entries enter at the front unreferenced; a hit sets
// the bit without moving anything; eviction looks at the back, and a referenced entry loses its
// bit and goes back to the front instead of being evicted. The FIFO-with-reinsertion form of the
// clock hand: the same decisions as a circular buffer with a hand, on the same queue as FIFO.
class clock_policy : public queue_policy_base {
 public:
  static constexpr std::string_view name = "CLOCK";
  static constexpr bool coalesces_hits = true;  // concepts.hpp
  explicit clock_policy(std::size_t capacity)
      : queue_policy_base(capacity, name), referenced_(capacity, 0) {}

  void on_hit(slot s) noexcept { referenced_[s] = 1; }
  // Terminates: each pass clears a bit, so within size() steps an unreferenced entry is at the
  // back.
  slot victim() noexcept {
    for (;;) {
      const slot s = queue_.back(0);
      if (s == index_lists::none || referenced_[s] == 0) return queue_.pop_back(0);
      referenced_[s] = 0;
      queue_.move_to_front(0, 0, s);
    }
  }
  void on_insert(slot s, std::uint64_t hash) noexcept {
    referenced_[s] = 0;
    queue_policy_base::on_insert(s, hash);
  }
  static constexpr std::size_t bytes_per_entry() noexcept {
    return queue_policy_base::bytes_per_entry() + 1;
  }

 private:
  std::vector<std::uint8_t> referenced_;
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
