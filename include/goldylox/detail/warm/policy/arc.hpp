// ARC, the Adaptive Replacement Cache (Megiddo & Modha, FAST '03).
//
// Resident entries sit on T1 (seen once recently) or T2 (seen at least twice); ghost lists B1 and
// B2 remember the keys (hashes only) recently evicted from each. A miss that hits a ghost moves the
// target size p of T1 towards the list that would have kept it: a B1 hit grows p by
// max(|B2|/|B1|, 1), a B2 hit shrinks it by max(|B1|/|B2|, 1) (p is a double, as in the paper
// and in libCacheSim, whose miss ratios the trace tests reproduce). REPLACE evicts T1's oldest into
// B1 when |T1| > p, or |T1| == p and the missed key was in B2, or T2 is empty; otherwise T2's
// oldest into B2. Ghost lists are trimmed as in the paper's case IV: when |T1| + |B1| reaches c,
// B1's oldest ghost goes (or, with B1 empty, T1's oldest entry is evicted without a ghost); when
// all four lists reach 2c, B2's oldest ghost goes.
//
// The contract's order (on_miss, victim while full, on_insert) is the paper's: on_miss handles
// the ghost hit or the trimming, victim() runs REPLACE, on_insert puts the key on T2 (ghost hit)
// or T1.
//
// Memory per entry: 8 bytes of links and 8 of hash per resident slot, side by side
// (keyed_index_lists); each ghost (up to c of them) costs the same and 16 of slot_index (8-byte
// cells, at most half full): about 48 bytes per entry.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "goldylox/detail/warm/policy/classic.hpp"
#include "goldylox/detail/warm/policy/index_lists.hpp"
#include "goldylox/detail/warm/policy/slot_index.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

class arc_policy {
 public:
  using slot = std::uint32_t;
  static constexpr std::string_view name = "ARC";
  static constexpr bool coalesces_hits = true;  // concepts.hpp

  explicit arc_policy(std::size_t capacity)
      : c_(checked_policy_capacity(capacity, name)),
        resident_(capacity, 2),
        list_of_(capacity, t1),
        ghosts_(capacity + 1, 2),
        ghost_list_(capacity + 1, 0),
        ghost_index_(capacity + 1) {
    free_ghosts_.reserve(capacity + 1);
    for (std::size_t g = capacity + 1; g-- > 0;) free_ghosts_.push_back(static_cast<slot>(g));
  }

  std::size_t capacity() const noexcept { return c_; }
  std::size_t size() const noexcept { return resident_.size(t1) + resident_.size(t2); }
  // Current target size of T1 (for tests and diagnostics).
  double target_t1() const noexcept { return p_; }

  void on_hit(slot s) noexcept {
    resident_.move_to_front(list_of_[s], t2, s);
    list_of_[s] = t2;
  }

  void on_miss(std::uint64_t hash) {
    pending_ = pending::none;
    evict_t1_without_ghost_ = false;
    const double b1 = static_cast<double>(ghosts_.size(b1_list));
    const double b2 = static_cast<double>(ghosts_.size(b2_list));
    if (const slot g = ghost_index_.find(hash, ghost_key()); g != slot_index::none) {
      if (ghost_list_[g] == b1_list) {
        p_ = std::min(p_ + std::max(b2 / b1, 1.0), static_cast<double>(c_));
        pending_ = pending::from_b1;
      } else {
        p_ = std::max(p_ - std::max(b1 / b2, 1.0), 0.0);
        pending_ = pending::from_b2;
      }
      drop_ghost(g);
      return;
    }
    const std::size_t t1_size = resident_.size(t1);
    if (t1_size + ghosts_.size(b1_list) >= c_) {
      if (!ghosts_.empty(b1_list)) {
        drop_ghost(ghosts_.back(b1_list));
      } else {
        evict_t1_without_ghost_ = true;  // T1 is the whole cache: its oldest goes, no ghost
      }
    } else if (size() + ghosts_.size(b1_list) + ghosts_.size(b2_list) >= 2 * c_ &&
               !ghosts_.empty(b2_list)) {
      drop_ghost(ghosts_.back(b2_list));
    }
  }

  slot victim() {
    const std::size_t t1_size = resident_.size(t1);
    if (evict_t1_without_ghost_ && t1_size > 0) {
      evict_t1_without_ghost_ = false;
      return resident_.pop_back(t1);
    }
    const double t1d = static_cast<double>(t1_size);
    const bool from_t1 =
        (t1_size >= 1 && (t1d > p_ || (t1d == p_ && pending_ == pending::from_b2))) ||
        resident_.empty(t2);
    const unsigned from = from_t1 ? t1 : t2;
    const slot s = resident_.pop_back(from);
    if (s != index_lists::none) add_ghost(from_t1 ? b1_list : b2_list, resident_.key(s));
    return s;
  }

  void on_insert(slot s, std::uint64_t hash) noexcept {
    const unsigned to = pending_ == pending::none ? t1 : t2;
    resident_.push_front(to, s);
    list_of_[s] = static_cast<std::uint8_t>(to);
    resident_.set_key(s, hash);
    pending_ = pending::none;
    evict_t1_without_ghost_ = false;
  }

  void on_erase(slot s) noexcept { resident_.unlink(list_of_[s], s); }

  // Another policy chose s (the adaptive policy's experts): it leaves a ghost, as REPLACE's do.
  void evict(slot s) {
    resident_.unlink(list_of_[s], s);
    add_ghost(list_of_[s] == t1 ? b1_list : b2_list, resident_.key(s));
  }

  static constexpr std::size_t bytes_per_entry() noexcept {
    return 2 * keyed_index_lists::bytes_per_entry() + 1 + slot_index::bytes_per_key();
  }

 private:
  static constexpr unsigned t1 = 0, t2 = 1;            // lists of resident_
  static constexpr unsigned b1_list = 0, b2_list = 1;  // lists of ghosts_
  enum class pending : std::uint8_t { none, from_b1, from_b2 };

  keyed_index_lists::key_reader ghost_key() const noexcept { return ghosts_.keys(); }

  void add_ghost(unsigned list, std::uint64_t hash) {
    // The paper's trimming keeps the pool from running out; evictions decided by another policy
    // (evict()) can still fill it, and then the other list's oldest ghost goes first.
    if (free_ghosts_.empty()) {
      const unsigned other = list == b1_list ? b2_list : b1_list;
      drop_ghost(ghosts_.back(ghosts_.empty(other) ? list : other));
    }
    const slot g = free_ghosts_.back();
    free_ghosts_.pop_back();
    ghosts_.push_front(list, g);
    ghost_list_[g] = static_cast<std::uint8_t>(list);
    ghosts_.set_key(g, hash);
    ghost_index_.assign(hash, g, ghost_key());
  }
  void drop_ghost(slot g) {
    ghosts_.unlink(ghost_list_[g], g);
    ghost_index_.erase(ghosts_.key(g), ghost_key());
    free_ghosts_.push_back(g);
  }

  std::size_t c_;
  double p_ = 0;
  pending pending_ = pending::none;
  bool evict_t1_without_ghost_ = false;
  keyed_index_lists resident_;  // links and hash of each slot
  std::vector<std::uint8_t> list_of_;
  keyed_index_lists ghosts_;  // links and hash of each ghost
  std::vector<std::uint8_t> ghost_list_;
  slot_index ghost_index_;
  std::vector<slot> free_ghosts_;
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
