// Promotion: the part of a read that missed the hot tier. It looks in the warm tier, then in the
// cold tier, and moves what it finds up: a warm entry read `warm_tier_promotion_hits` times goes
// back to the hot tier (rule M2 in coherence.hpp); a cold hit goes into the warm tier, or the hot
// tier without one (rule C3). Both moves are best effort: a failure (an exception copying the
// value, a race with a write) leaves the entry where it was, never a stale copy.
//
// Owns: no state. The promotion manager and background pool planned for the coordinator
// (docs/architecture.md) replace these inline moves by queued ones and live beside this file.
// May call: the tiers through tier_stack, and demotion_queue (a promotion evicts, so it holds a
// demotion scope).
#pragma once

#include <cstdint>
#include <optional>
#include <type_traits>
#include <utility>

#include "goldylox/detail/common/platform.hpp"
#include "goldylox/detail/engine/demotion.hpp"
#include "goldylox/detail/engine/tiers.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

template <class K, class S, class Hash, class KeyEqual>
class promotion {
 public:
  using tiers_type = tier_stack<K, S, Hash, KeyEqual>;
  using demotions_type = demotion_queue<K, S, Hash, KeyEqual>;
  using decision = typename tiers_type::decision;

  promotion(const tiers_type& tiers, const demotions_type& demotions) noexcept
      : tiers_(tiers), demotions_(demotions) {}

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
          if (n >= tiers_.promotion_hits) promote.emplace(stored);
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
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
