// LIRS, Low Inter-reference Recency Set (Jiang & Zhang, SIGMETRICS '02).
//
// An entry's inter-reference recency (IRR) is the number of other keys touched between its last
// two accesses. LIRS keeps the entries with low IRR ("LIR", about 99 % of the cache) and gives a
// small share ("resident HIR", at least one entry) to everything else, so one-time scans and loops
// longer than the cache pass through the HIR share without flushing the LIR set.
//
// Layout:
//   stack S   recency order of LIR entries, resident HIR entries and non-resident HIR entries
//             (ghosts: hashes of evicted keys), pruned so its oldest entry is always LIR;
//   queue Q   the resident HIR entries, oldest evicted first.
// Node ids: resident entries use their slot, [0, capacity); ghosts use [capacity, capacity +
// ghosts), so S is one index list over both. A resident HIR entry is on S and Q at once. Q and
// the ghosts' age list (oldest dropped first when the ghosts are full) are the two lists of one
// keyed_index_lists, which keeps each node's hash beside those links: an eviction reads the
// victim's hash where it unlinks it from Q, and a dropped ghost's hash is where its age links
// are.
//
// Access to X (the paper's cases):
//   LIR hit           X to the top of S, prune.
//   HIR hit, X on S   X becomes LIR (its IRR is below the oldest LIR's recency): top of S, off Q;
//                     the oldest LIR is demoted to the back of Q; prune.
//   HIR hit, not on S X to the top of S and the back of Q (stays HIR).
//   miss              evict Q's front (it stays on S as a ghost if it was there); if X is a ghost
//                     on S, X enters as LIR and the oldest LIR is demoted, else X enters as HIR.
// While the LIR set is below its size (a cold cache), new entries enter as LIR.
//
// Ghosts are bounded to ghost_ratio x capacity (the paper's stack is unbounded); the oldest ghost
// goes first. A ghost that ages out only means a returning key is treated as new, which keeps the
// LIR set stable: the behaviour that protects loops, but also what keeps a stale LIR set after a
// phase change when the new working set's reuse distance exceeds capacity + ghosts. ghost_ratio
// 1 (the default) reproduces libCacheSim's LIRS; lirs_deep_policy keeps 3x, which measures
// better on most traces (+0.3 points on average over the shared traces, up to +12 on lirs_ps)
// and worse on small Zipf caches (up to -1.6), and is the adaptive policy's LIRS expert.
//
// Memory per entry: 8 B of stack links, 8 B of queue links, 8 B of hash and 1 B of state (LIR, HIR,
// on S) per slot, plus per ghost 8 B of stack links, 8 B of age links, 8 B of hash and 16 B of
// slot_index (8-byte cells, at most half full; 40 B): 65 B with ghost_ratio 1, 145 B with 3.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "goldylox/detail/common/platform.hpp"
#include "goldylox/detail/warm/policy/classic.hpp"
#include "goldylox/detail/warm/policy/index_lists.hpp"
#include "goldylox/detail/warm/policy/slot_index.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

class lirs_policy {
 public:
  using slot = std::uint32_t;
  static constexpr std::string_view name = "LIRS";
  static constexpr bool coalesces_hits = true;  // concepts.hpp

  // hir_percent: the resident HIR share of the cache (the paper uses 1 %); at least one entry.
  // ghost_ratio: how many ghosts S may hold, per cache entry (1 reproduces libCacheSim).
  explicit lirs_policy(std::size_t capacity, double hir_percent = 1.0, double ghost_ratio = 1.0)
      : c_(checked_policy_capacity(capacity, name)),
        hir_target_(std::max<std::size_t>(
            1, static_cast<std::size_t>(static_cast<double>(capacity) * hir_percent / 100.0))),
        lir_target_(c_ > hir_target_ ? c_ - hir_target_ : 0),
        ghosts_(std::max<std::size_t>(
            1, static_cast<std::size_t>(static_cast<double>(capacity) * ghost_ratio))),
        stack_(capacity + ghosts_, 1),
        nodes_(capacity + ghosts_, 2),
        flags_(capacity, free),
        ghost_index_(ghosts_) {
    free_ghosts_.reserve(ghosts_);
    for (std::size_t g = capacity + ghosts_; g-- > capacity;)
      free_ghosts_.push_back(static_cast<slot>(g));
  }

  std::size_t capacity() const noexcept { return c_; }
  std::size_t size() const noexcept { return lir_count_ + nodes_.size(queue); }
  std::size_t lir_size() const noexcept { return lir_count_; }

  void on_hit(slot s) {
    if (state(s) == lir) {
      const bool was_oldest = stack_.back(0) == s;
      stack_.move_to_front(0, 0, s);
      if (was_oldest) prune();
      return;
    }
    on_hir_hit(s);
  }

  void on_miss(std::uint64_t hash) noexcept {
    pending_ghost_ = ghost_index_.find(hash, ghost_key());
  }

  slot victim() {
    if (nodes_.empty(queue)) demote_oldest_lir();  // all resident entries are LIR (tiny caches)
    const slot s = nodes_.pop_back(queue);
    leave_ghost(s);
    return s;
  }

  // Another policy chose s (the adaptive policy's experts): forget it as if evicted, keeping its
  // place on S as a ghost, so a quick return is still recognised.
  void evict(slot s) {
    if (state(s) == lir) {
      --lir_count_;
    } else {
      nodes_.unlink(queue, s);
    }
    leave_ghost(s);
    prune();
  }

  void on_insert(slot s, std::uint64_t hash) {
    nodes_.set_key(s, hash);
    flags_[s] = on_stack_bit;  // its state is set below
    if (pending_ghost_ != index_lists::none) {
      // A key whose last access is still on S: its IRR is below the oldest LIR's recency.
      drop_ghost(pending_ghost_);
      stack_.push_front(0, s);
      make_lir(s);
      if (lir_count_ > lir_target_) demote_oldest_lir();
      prune();
      return;
    }
    stack_.push_front(0, s);
    if (lir_count_ < lir_target_) {
      make_lir(s);
    } else {
      set_state(s, hir);
      nodes_.push_front(queue, s);
    }
  }

  void on_erase(slot s) {
    if (state(s) == lir) {
      stack_.unlink(0, s);
      --lir_count_;
      prune();
    } else {
      nodes_.unlink(queue, s);
      if (on_stack(s)) stack_.unlink(0, s);
    }
    flags_[s] = free;
  }

  static constexpr std::size_t bytes_per_entry() noexcept {
    // A slot's and a ghost's stack links, queue or age links and hash, state, index cells.
    return 2 * index_lists::bytes_per_entry() + 2 * keyed_index_lists::bytes_per_entry() + 1 +
           slot_index::bytes_per_key();
  }

 private:
  static constexpr std::uint8_t free = 0, lir = 1, hir = 2, state_mask = 3;
  static constexpr std::uint8_t on_stack_bit = 4;
  static constexpr unsigned queue = 0, ghost_age = 1;  // lists of nodes_

  bool is_ghost(slot n) const noexcept { return n >= c_; }
  std::uint8_t state(slot s) const noexcept { return flags_[s] & state_mask; }
  bool on_stack(slot s) const noexcept { return (flags_[s] & on_stack_bit) != 0; }
  void set_state(slot s, std::uint8_t st) noexcept {
    flags_[s] = static_cast<std::uint8_t>((flags_[s] & ~state_mask) | st);
  }
  keyed_index_lists::key_reader ghost_key() const noexcept { return nodes_.keys(); }

  // Out of line: about 1 % of the entries are HIR, and inlined this path made every LIR hit save
  // and restore registers it does not use.
  GOLDYLOX_NOINLINE void on_hir_hit(slot s) {
    if (on_stack(s)) {
      nodes_.unlink(queue, s);
      stack_.move_to_front(0, 0, s);
      make_lir(s);
      if (lir_count_ > lir_target_) demote_oldest_lir();
      prune();
    } else {
      stack_.push_front(0, s);
      flags_[s] |= on_stack_bit;
      nodes_.unlink(queue, s);
      nodes_.push_front(queue, s);
    }
  }

  // s leaves the cache; if it is on S it keeps its place there as a ghost.
  void leave_ghost(slot s) {
    if (on_stack(s)) {
      const slot g = take_ghost();
      nodes_.set_key(g, nodes_.key(s));
      ghost_index_.assign(nodes_.key(g), g, ghost_key());
      stack_.insert_behind(0, s, g);
      stack_.unlink(0, s);
      nodes_.push_front(ghost_age, g);
    }
    flags_[s] = free;
  }

  void make_lir(slot s) noexcept {
    set_state(s, lir);
    ++lir_count_;
  }

  // The oldest LIR entry (S's back after pruning) becomes resident HIR at Q's back.
  void demote_oldest_lir() {
    prune();
    const slot s = stack_.back(0);
    if (s == index_lists::none) return;
    stack_.unlink(0, s);
    flags_[s] = hir;  // off S
    --lir_count_;
    nodes_.push_front(queue, s);
    prune();
  }

  // Removes HIR entries and ghosts from S's back until an LIR entry is there.
  void prune() {
    for (slot n = stack_.back(0); n != index_lists::none; n = stack_.back(0)) {
      if (is_ghost(n)) {
        drop_ghost(n);
      } else if (state(n) == hir) {
        stack_.unlink(0, n);
        flags_[n] &= static_cast<std::uint8_t>(~on_stack_bit);
      } else {
        return;
      }
    }
  }

  slot take_ghost() {
    if (free_ghosts_.empty()) drop_ghost(nodes_.back(ghost_age));
    const slot g = free_ghosts_.back();
    free_ghosts_.pop_back();
    return g;
  }

  // A ghost dropped between on_miss and on_insert (for room, or pruned) was the pending miss's:
  // that miss then counts as new.
  void drop_ghost(slot g) {
    if (g == pending_ghost_) pending_ghost_ = index_lists::none;
    stack_.unlink(0, g);
    nodes_.unlink(ghost_age, g);
    ghost_index_.erase(nodes_.key(g), ghost_key());
    free_ghosts_.push_back(g);
  }

  std::size_t c_;
  std::size_t hir_target_;
  std::size_t lir_target_;
  std::size_t ghosts_;
  std::size_t lir_count_ = 0;
  slot pending_ghost_ = index_lists::none;
  index_lists stack_;
  // By node: Q (resident HIR slots) and the ghosts by age (front the newest), each node's hash
  // beside its links.
  keyed_index_lists nodes_;
  // By slot: the state (free, lir, hir) and whether the entry is on S, in one byte, so an event
  // that reads both touches one line.
  std::vector<std::uint8_t> flags_;
  slot_index ghost_index_;
  std::vector<slot> free_ghosts_;
};

// LIRS remembering 3 ghosts per entry: see ghost_ratio above.
class lirs_deep_policy : public lirs_policy {
 public:
  static constexpr std::string_view name = "LIRS-deep";
  explicit lirs_deep_policy(std::size_t capacity) : lirs_policy(capacity, 1.0, 3.0) {}
  static constexpr std::size_t bytes_per_entry() noexcept {
    return lirs_policy::bytes_per_entry() +
           2 * (index_lists::bytes_per_entry() + keyed_index_lists::bytes_per_entry() +
                slot_index::bytes_per_key());
  }
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
