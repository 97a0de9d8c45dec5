// Cross-tier coherence: the rules that keep every tier from serving an older value of a key once
// a write of it has returned, stated once, here, beside the code that enforces the cold half of
// them (the memory half is enforced by the hot table's home lock and on_insert hook, wired in
// engine.hpp; demotion.hpp and promotion.hpp follow these rules when they move entries).
//
// Memory tiers (hot, warm) are exclusive: outside a transition, a key is in at most one of them.
// Every transition of a key between tiers, and every write that could leave a stale copy behind,
// runs under the key's hot-tier home lock (group_lock), which every writer of the key takes:
//   M1 demotion hot -> warm: the hot tier's eviction sink runs under the victim's home lock and
//      stores the victim in the warm tier there (a packed slot is removed only if no lock-free
//      in-place put changed it since it was read, so the warm tier never receives a value older
//      than one a put has acknowledged);
//   M2 promotion warm -> hot: a compute() on the hot tier: under the lock it re-reads the warm
//      copy, inserts it into the hot tier unless the key is already there, then drops the warm
//      copy;
//   M3 an insert into the hot tier (a promotion; a put without a warm tier) drops any warm copy
//      through the hot table's on_insert hook (tier_stack::drop_warm_copy), under the lock;
//   M4 erase removes the warm copy under the lock when the key is not in the hot tier;
//   M5 compute (put_if_absent, replace, compare_and_swap) on a key held only by the warm tier
//      decides on the warm copy, read under the lock;
//   M6 a write of a key the hot tier does not hold (put, put_if_absent, get_or_insert, replace)
//      goes to the warm tier, replacing its copy there, under the lock (hot_table::assign_present
//      and compute): new keys enter the warm tier, and only promotion (M2) fills the hot tier.
// The lock-free in-place put touches only keys present in the hot tier, which by exclusivity have
// no warm copy. So once a write returns no memory tier holds an older value of its key, and a read
// sees a value only if no write that finished before the read began has replaced it. A read that
// races a transition may miss a key that is moving between tiers (a cache may always miss). Lock
// order is always hot home lock, then warm shard lock; the warm tier never calls up.
//
// The cold tier is inclusive: a cold hit promoted to memory keeps its cold record, so evicting it
// again later rewrites an identical record at worst. Once a write of a key has returned, no tier
// serves an older value of the key, on disk or after a restart:
//   C1 every write of a key (assign, compute that assigns or erases, erase) first retires the
//      key's cold state (cold_coherence::retire): it bumps the key's write generation and erases
//      the key's cold record (a tombstone on disk), under the key's home lock where the write
//      takes one, and then does its memory operation. The lock-free in-place put retires before
//      it (the key is in memory, so nothing can write its record again meanwhile) and, should the
//      key leave memory first, again under the lock when its insert lands (on_insert). erase()
//      retires once more after its memory operation, because the key's value may be in flight to
//      the cold tier without being in any tier;
//   C2 evictions reach the engine inside other locks (the warm tier's sink runs under the home
//      lock of the hot victim that displaced them), so they are queued per thread, stamped with
//      the key's generation as the value leaves memory (under the warm shard lock, or under the
//      key's home lock for the hot tier), and written when the outermost engine call on that
//      thread returns (demotion.hpp), under the key's home lock, only if no memory tier has the
//      key and its generation has not moved: a write that came in between retired the record and
//      moved the generation, so the older value is dropped;
//   C3 a promotion from the cold tier lands under the key's home lock only if no memory tier has
//      the key and the key's cold record still has the version the read saw (promotion.hpp).
// A write racing a demotion of its own key can lose the entry (a miss, never an older value),
// and so can a demotion whose generation slot a concurrent write of another key moved (counted
// as refused). ColdCacheStress.NoReadIsOlderThanAReturnedWrite checks all of it under TSan.
//
// Write generations: a counter per slot of a small table indexed by the key's hash, bumped by
// every write before its memory operation (seq_cst, so a demotion that reads the slot after the
// write's bump sees it). A move means a write of the key came in between, or, rarely, a
// concurrent write of another key sharing the slot.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <type_traits>
#include <vector>

#include "absl/status/statusor.h"
#include "goldylox/detail/common/hash.hpp"
#include "goldylox/detail/engine/tiers.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

// The cold half of the rules above (C1, and the generation checks of C2); a no-op without a cold
// tier. Every member is safe to call concurrently.
template <class K, class S, class Hash, class KeyEqual>
class cold_coherence {
 public:
  using tiers_type = tier_stack<K, S, Hash, KeyEqual>;

  explicit cold_coherence(const tiers_type& tiers)
      : tiers_(tiers), generations_(make_generations(tiers)) {}

  std::uint64_t generation_of(const K& k) const { return slot(k).load(std::memory_order_seq_cst); }

  // Every write of a key calls this before its memory operation (C1): the generation moves, so no
  // demotion of an older value queued before it can land, and the key's cold record goes.
  // True if there was one.
  bool retire(const K& k) const noexcept {
    if constexpr (tiers_type::cold_capable) {
      if (tiers_.cold == nullptr) return false;
      try {
        slot(k).fetch_add(1, std::memory_order_seq_cst);
        return erase_record(k);
      } catch (...) {
        tiers_.counters.add(counter::cold_refused);
      }
    }
    return false;
  }

  // The cold record's value for a write's decision (under the key's home lock), or nullopt.
  std::optional<S> copy(const K& k) const {
    if constexpr (tiers_type::cold_capable) {
      if (tiers_.cold == nullptr) return std::nullopt;
      std::optional<S> v = tiers_.cold->get(k);
      if constexpr (std::is_same_v<S, any_value>) {
        if (v && v->template holds<unknown_cold_type>()) return std::nullopt;
      }
      return v;
    } else {
      return std::nullopt;
    }
  }

 private:
  // Drops the key's cold record; true if there was one. A tombstone that cannot be written (a
  // full disk) leaves the record in place: counted as refused.
  bool erase_record(const K& k) const {
    if constexpr (tiers_type::cold_capable) {
      absl::StatusOr<bool> erased = tiers_.cold->erase(k);
      if (!erased.ok()) {
        tiers_.counters.add(counter::cold_refused);
        return false;
      }
      return *erased;
    } else {
      return false;
    }
  }

  std::atomic<std::uint64_t>& slot(const K& k) const {
    const std::uint64_t h = mix_hash(hash_(k));
    return generations_[static_cast<std::size_t>(h >> 32) & (generations_.size() - 1)];
  }

  static std::vector<std::atomic<std::uint64_t>> make_generations(const tiers_type& t) {
    if (t.cold == nullptr) return {};
    // Enough slots that two keys written within one demotion's flight rarely share one.
    return std::vector<std::atomic<std::uint64_t>>(std::bit_ceil(std::clamp<std::size_t>(
        (t.config.hot_tier_max_entries + t.config.warm_tier_max_entries) / 4, 1024,
        std::size_t{1} << 16)));
  }

  const tiers_type& tiers_;
  [[no_unique_address]] Hash hash_{};
  mutable std::vector<std::atomic<std::uint64_t>> generations_;  // with a cold tier only
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
