// S3-FIFO (Yang, Zhang, Qiu, Yue & Rashmi, "FIFO queues are all you need for cache eviction",
// SOSP '23), as libCacheSim's `S3FIFO-0.1000-2` defines it, whose miss ratios the trace tests
// reproduce.
//
// Three FIFO queues: a small queue S (target 10 % of the capacity) that every new entry enters,
// a main queue M (the rest), and a ghost queue G remembering the hashes of entries evicted from
// S without being promoted (up to floor(0.9 * capacity) of them). Each resident entry has a
// frequency, incremented on every hit and capped at 3 (two bits in the paper; the cap changes
// no decision, since a count is only ever compared with 1 and 2 or clamped to 3).
//   * Miss: an entry whose hash is in G leaves G and is inserted at the head of M; any other
//     entry at the head of S. Either way with frequency 0.
//   * Eviction: from M if M holds more than its target (capacity - |S target|) or S is empty,
//     otherwise from S.
//   * From S: the oldest entry of S goes to the head of M if its frequency is >= 2 (libCacheSim's
//     move-to-main threshold; it restarts at 0 there, as libCacheSim's re-created object does)
//     and the scan goes on; the first entry with frequency < 2 is evicted and its hash enters G
//     (G drops its oldest hash when full). If S empties without an eviction, evict from M.
//   * From M (CLOCK with a 2-bit counter): the oldest entry of M with frequency f > 0 is moved to
//     the head of M with f - 1; the first with f == 0 is evicted, leaving no ghost.
// S is not bounded by its target on its own: while M is under its target S may grow (a cold
// cache fills through S), as in libCacheSim.
//
// Tiny capacities: libCacheSim sizes S as floor(0.1 * capacity) and stores a new object in S
// only if it is smaller than S, so with unit-size objects and capacity < 20 (S of 0 or 1) it
// never stores anything and reports a 100 % miss ratio. Here S's target is
// max(1, floor(0.1 * capacity)) and an entry always fits, so tiny caches behave as the
// algorithm intends (capacity 1: one entry, replaced on every miss, hits on repeats); for
// capacity >= 20 the decisions are exactly libCacheSim's. G may be empty (capacity 1: no ghost).
//
// Layout: the resident entries sit on two keyed_index_lists lists (S and M, each slot's hash
// beside its links) with a queue tag and a frequency per slot; the ghosts have their own
// keyed_index_lists list (front the newest) and a slot_index from hash to ghost slot, as in ARC. A
// hash colliding with one already in G replaces it.
//
// Memory per entry: 8 bytes of links, 8 of hash, 1 of frequency and 1 of queue tag per resident
// slot; up to 0.9 ghosts per slot at 8 bytes of links, 8 of hash and 16 of slot_index: about 47
// bytes per entry.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "goldylox/detail/warm/policy/classic.hpp"
#include "goldylox/detail/warm/policy/index_lists.hpp"
#include "goldylox/detail/warm/policy/slot_index.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

class s3fifo_policy {
 public:
  using slot = std::uint32_t;
  static constexpr std::string_view name = "S3-FIFO";

  explicit s3fifo_policy(std::size_t capacity)
      : c_(checked_policy_capacity(capacity, name)),
        small_target_(small_target_for(capacity)),
        main_target_(capacity - small_target_),
        ghost_capacity_(ghost_capacity_for(capacity)),
        resident_(capacity, 2),
        queue_of_(capacity, small_queue),
        freq_(capacity, 0),
        ghosts_(ghost_capacity_, 1),
        ghost_index_(ghost_capacity_) {
    free_ghosts_.reserve(ghost_capacity_);
    for (std::size_t g = ghost_capacity_; g-- > 0;) free_ghosts_.push_back(static_cast<slot>(g));
  }

  std::size_t capacity() const noexcept { return c_; }
  std::size_t size() const noexcept {
    return resident_.size(small_queue) + resident_.size(main_queue);
  }
  // Targets and ghost count, for tests and diagnostics.
  std::size_t small_target() const noexcept { return small_target_; }
  std::size_t main_target() const noexcept { return main_target_; }
  std::size_t ghost_count() const noexcept { return ghosts_.size(ghost_list); }

  void on_hit(slot s) noexcept {
    if (freq_[s] < max_freq) ++freq_[s];
  }

  void on_miss(std::uint64_t hash) {
    to_main_ = false;
    if (ghost_capacity_ == 0) return;
    if (const slot g = ghost_index_.find(hash, ghost_key()); g != slot_index::none) {
      drop_ghost(g);
      to_main_ = true;
    }
  }

  slot victim() {
    if (resident_.size(main_queue) <= main_target_) {
      // Scan S from its oldest entry: promote the ones seen twice, evict the first other one.
      for (slot s = resident_.back(small_queue); s != none; s = resident_.back(small_queue)) {
        if (freq_[s] >= move_to_main_threshold) {
          resident_.move_to_front(small_queue, main_queue, s);
          queue_of_[s] = main_queue;
          freq_[s] = 0;
          continue;
        }
        resident_.unlink(small_queue, s);
        add_ghost(resident_.key(s));
        return s;
      }
    }
    // CLOCK over M. Terminates: each pass decrements every count, which are at most 3.
    for (slot s = resident_.back(main_queue); s != none; s = resident_.back(main_queue)) {
      if (freq_[s] == 0) {
        resident_.unlink(main_queue, s);
        return s;
      }
      --freq_[s];
      resident_.move_to_front(main_queue, main_queue, s);
    }
    return none;  // empty
  }

  void on_insert(slot s, std::uint64_t hash) noexcept {
    const unsigned q = to_main_ ? main_queue : small_queue;
    resident_.push_front(q, s);
    queue_of_[s] = static_cast<std::uint8_t>(q);
    freq_[s] = 0;
    resident_.set_key(s, hash);
    to_main_ = false;
  }

  void on_erase(slot s) noexcept { resident_.unlink(queue_of_[s], s); }

  static constexpr std::size_t bytes_per_entry() noexcept {
    return keyed_index_lists::bytes_per_entry() + 2 +
           (keyed_index_lists::bytes_per_entry() + slot_index::bytes_per_key()) * 9 / 10;
  }

 private:
  static constexpr unsigned small_queue = 0, main_queue = 1;  // lists of resident_
  static constexpr unsigned ghost_list = 0;                   // the list of ghosts_
  static constexpr slot none = index_lists::none;
  static constexpr std::uint8_t max_freq = 3;
  static constexpr std::uint8_t move_to_main_threshold = 2;

  // libCacheSim's arithmetic (a double product truncated), with S never empty.
  static std::size_t small_target_for(std::size_t capacity) noexcept {
    const auto s = static_cast<std::size_t>(static_cast<double>(capacity) * 0.1);
    return s == 0 ? 1 : s;
  }
  keyed_index_lists::key_reader ghost_key() const noexcept { return ghosts_.keys(); }

  static std::size_t ghost_capacity_for(std::size_t capacity) noexcept {
    return static_cast<std::size_t>(static_cast<double>(capacity) * 0.9);
  }

  void add_ghost(std::uint64_t hash) {
    if (ghost_capacity_ == 0) return;
    if (const slot g = ghost_index_.find(hash, ghost_key()); g != slot_index::none) drop_ghost(g);
    if (free_ghosts_.empty()) drop_ghost(ghosts_.back(ghost_list));
    const slot g = free_ghosts_.back();
    free_ghosts_.pop_back();
    ghosts_.push_front(ghost_list, g);
    ghosts_.set_key(g, hash);
    ghost_index_.assign(hash, g, ghost_key());
  }
  void drop_ghost(slot g) {
    ghosts_.unlink(ghost_list, g);
    ghost_index_.erase(ghosts_.key(g), ghost_key());
    free_ghosts_.push_back(g);
  }

  std::size_t c_;
  std::size_t small_target_;
  std::size_t main_target_;
  std::size_t ghost_capacity_;
  bool to_main_ = false;        // the pending miss was a ghost hit: insert into M
  keyed_index_lists resident_;  // links and hash of each slot
  std::vector<std::uint8_t> queue_of_;
  std::vector<std::uint8_t> freq_;
  keyed_index_lists ghosts_;  // links and hash of each ghost
  slot_index ghost_index_;
  std::vector<slot> free_ghosts_;
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
