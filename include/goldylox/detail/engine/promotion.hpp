// Promotion: the part of a read that missed the hot tier, and the promotion manager's decision of
// what moves up. A read looks in the warm tier, then in the cold tier, and moves what it finds
// up: a warm entry goes to the hot tier when promotion_gate (below) says the move pays (rule M2
// in coherence.hpp); a cold hit goes into the warm tier, or the hot tier without one (rule C3).
// Both moves are best effort: a failure (an exception copying the value, a race with a write)
// leaves the entry where it was, never a stale copy. New keys enter the warm tier (rule M6, in
// engine.hpp), so promotion is the only way into the hot tier when there is a warm tier: the hot
// tier holds the entries that earned it.
//
// Owns: the promotion gate (a frequency sketch and the hot tier's admission bar), fed by warm hits
// and, through the hot table's reference observer and eviction sink, by what the hot tier's CLOCK
// hand finds. Moves are still made inline on the reading thread, under the key's home lock; the
// background pool of the coordinator (docs/architecture.md) is where queued moves will run.
// May call: the tiers through tier_stack, and demotion_queue (a promotion evicts, so it holds a
// demotion scope).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <type_traits>
#include <utility>

#include "goldylox/detail/common/frequency_sketch.hpp"
#include "goldylox/detail/common/platform.hpp"
#include "goldylox/detail/engine/demotion.hpp"
#include "goldylox/detail/engine/tiers.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

// Whether a warm entry is worth moving into the hot tier: the promotion manager's cost/benefit
// rule. A move into a full hot tier displaces its CLOCK victim back to the warm tier, so it pays
// only if the candidate will be read more often than the victim would have been (each such read
// then costs a hot hit instead of a warm one), and it costs two moves. The expected future reads
// of an entry are estimated from its recent frequency: a count-min sketch (TinyLFU's, sized to
// the memory tiers) counts every warm hit; the victim side is the hot tier's admission bar, a
// moving average of the sketch's estimate for the entries the hot tier has recently let go (its
// CLOCK victims, which by CLOCK's rule were not read during a whole sweep). A candidate moves when
// it has been read `min_reads` times in the warm tier (the cost side: a move is never made for an
// entry read once) and its estimate is above the bar (TinyLFU's admission rule). While the hot
// tier has room a move displaces nothing, so the bar does not apply. The bar follows the
// workload: when the hot tier holds the most frequent keys its victims are frequent and few
// candidates beat them; when popularity shifts, the old favourites age in the sketch (halved every
// 10 x capacity counts), their evictions lower the bar, and new ones move in.
//
// Concurrency: the sketch and the bar are read and written with relaxed atomics, from any thread,
// with no lock; a lost update makes one decision on a slightly stale estimate, never a wrong value
// anywhere (the move itself is made under the key's home lock, promotion below).
class promotion_gate {
 public:
  promotion_gate(std::size_t memory_capacity, std::uint32_t min_reads)
      : sketch_(memory_capacity), min_reads_(min_reads) {}

  // A read found the key with this hash in the warm tier.
  void record(std::uint64_t hash) noexcept { sketch_.increment(hash); }

  // Whether the warm entry with this hash, read `reads` times there, should move up now.
  bool admit(std::uint64_t hash, std::uint32_t reads, bool hot_full) const noexcept {
    if (reads < min_reads_) return false;
    if (!hot_full) return true;
    return sketch_.frequency(hash) * bar_scale > bar_.load(std::memory_order_relaxed);
  }

  // The hot tier evicted the entry with this hash (to the warm tier or beyond).
  void on_hot_victim(std::uint64_t hash) noexcept {
    const std::uint32_t f = sketch_.frequency(hash) * bar_scale;
    const std::uint32_t bar = bar_.load(std::memory_order_relaxed);
    // An average over about the last 8 victims, in 1/16ths of a count, rounded towards the
    // newest (so a run of equal victims brings it to their value exactly).
    bar_.store(f >= bar ? bar + (f - bar + 7) / 8 : bar - (bar - f + 7) / 8,
               std::memory_order_relaxed);
  }

  // The bar in counts of the sketch (what a candidate's estimate must exceed).
  double bar() const noexcept {
    return static_cast<double>(bar_.load(std::memory_order_relaxed)) / bar_scale;
  }

 private:
  static constexpr std::uint32_t bar_scale = 16;
  frequency_sketch sketch_;
  const std::uint32_t min_reads_;
  std::atomic<std::uint32_t> bar_{0};
};

template <class K, class S, class Hash, class KeyEqual>
class promotion {
 public:
  using tiers_type = tier_stack<K, S, Hash, KeyEqual>;
  using demotions_type = demotion_queue<K, S, Hash, KeyEqual>;
  using decision = typename tiers_type::decision;

  promotion(const tiers_type& tiers, const demotions_type& demotions)
      : tiers_(tiers),
        demotions_(demotions),
        gate_(tiers.warm != nullptr ? tiers.hot.capacity() + tiers.warm->capacity() : 8,
              tiers.promotion_hits) {}

  // The hot tier's eviction sink calls this for each victim (the admission bar follows them).
  void on_hot_victim(const K& key) const noexcept { gate_.on_hot_victim(hash_(key)); }
  // The hot tier's CLOCK hand passed an entry read since its last pass: one more count for it, so
  // entries read in the hot tier keep their standing without their reads touching the sketch.
  void on_hot_reference(const K& key) const noexcept { gate_.record(hash_(key)); }

  const promotion_gate& gate() const noexcept { return gate_; }

  // Below the hot tier: warm, then cold. f(const S&) runs on the value found.
  template <class Q, class F>
  GOLDYLOX_NOINLINE bool visit_lower(const Q& key, F&& f) const {
    if (tiers_.warm != nullptr && visit_warm(key, f)) return true;
    if (tiers_.cold == nullptr) return false;
    return visit_cold(key, f);
  }

  template <class Q>
  GOLDYLOX_NOINLINE std::optional<S> get_lower(const Q& key) const {
    std::optional<S> out;
    visit_lower(key, [&](const S& v) { out.emplace(v); });
    return out;
  }

 private:
  // The warm half of a read that missed the hot tier: f runs on the warm entry (read without a
  // lock); the entry is promoted afterwards if this read brings it to the promotion threshold.
  template <class Q, class F>
  GOLDYLOX_NOINLINE bool visit_warm(const Q& key, F&& f) const {
    typename demotions_type::scope scope(demotions_);
    std::optional<K> promote;
    const bool hit =
        tiers_.warm->visit_entry(key, [&](const K& stored, const S& v, std::uint32_t n) {
          f(v);
          const std::uint64_t h = hash_(stored);
          gate_.record(h);
          if (gate_.admit(h, n, tiers_.hot.size() >= tiers_.hot.capacity())) {
            promote.emplace(stored);
          }
        });
    if (!hit) return false;
    if (tiers_.telemetry) tiers_.counters.add(counter::warm_hits);
    if (promote) promote_to_hot(std::move(*promote));
    return true;
  }

  // Moves `key` from the warm tier to the hot tier (M2). A failure (an exception copying the
  // value) leaves the entry in the warm tier: promotion is an optimisation.
  void promote_to_hot(K key) const {
    try {
      const compute_outcome outcome = tiers_.hot.compute(
          std::move(key),
          [&](const K& k, const S* current) -> decision {
            // Already hot (a put or another promotion got there first): by exclusivity the
            // warm tier then holds no copy either.
            if (current != nullptr) return decision::keep();
            std::optional<S> lower = tiers_.warm_copy(k);
            if (!lower) return decision::keep();  // erased or promoted meanwhile
            return decision::assign(std::move(*lower));
          },
          tiers_.drop_warm_copy());
      if (outcome == compute_outcome::inserted) tiers_.counters.add(counter::promotions);
    } catch (...) {
    }
  }

  // A cold hit: f sees the value, then it is promoted into memory (unless it is of a type this
  // program does not know, which only ever reports a mismatch).
  template <class Q, class F>
  bool visit_cold(const Q& key, F& f) const {
    if constexpr (tiers_type::cold_capable) {
      std::optional<K> k = tiers_type::as_key(key);
      if (!k) return false;
      std::uint64_t version = 0;
      std::optional<S> v = tiers_.cold->get(*k, &version);
      if (!v) return false;
      f(std::as_const(*v));
      if (tiers_.telemetry) tiers_.counters.add(counter::cold_hits);
      if constexpr (std::is_same_v<S, any_value>) {
        if (v->template holds<unknown_cold_type>()) return true;
      }
      promote_from_cold(std::move(*k), std::move(*v), version);
      return true;
    } else {
      return false;
    }
  }

  // Into the warm tier (the hot tier without one), under the key's home lock, if no memory tier
  // has the key by then and its cold record is still the one read (C3: a write retires the record
  // under this lock before its value enters memory; a demotion replaces it).
  void promote_from_cold(K key, S value, std::uint64_t version) const {
    typename demotions_type::scope scope(demotions_);
    try {
      bool promoted = false;
      tiers_.hot.compute(
          std::move(key),
          [&](const K& k, const S* current) -> decision {
            if (current != nullptr || tiers_.cold->version_of(k) != version) {
              return decision::keep();
            }
            if (tiers_.warm == nullptr) {
              promoted = true;
              return decision::assign(std::move(value));
            }
            if (!tiers_.warm->contains(k)) promoted = tiers_.warm->put(K(k), std::move(value)).ok();
            return decision::keep();
          },
          [](const K&) noexcept {});
      if (promoted) tiers_.counters.add(counter::cold_promotions);
    } catch (...) {
    }
  }

  const tiers_type& tiers_;
  const demotions_type& demotions_;
  [[no_unique_address]] Hash hash_{};
  mutable promotion_gate gate_;
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
