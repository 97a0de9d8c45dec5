// The tiered engine behind both facades: routes reads and writes through the tiers and owns the
// statistics and the get_or_insert coordination.
//
// Tiers. The hot tier (hot_table.hpp) holds the most recently used entries; when the config has a
// warm tier (warm_tier.hpp, driven by a run-time chosen policy: any_policy.hpp), the hot tier's
// evictions are demoted into it, and a read that misses the hot tier looks there. A warm entry
// read `warm_tier_promotion_hits` times moves back to the hot tier. The cold tier will slot in
// below the warm tier the same way.
//
// Coherence. The tiers are exclusive: outside a transition, a key is in at most one tier. Every
// transition of a key between tiers, and every write that could leave a stale copy behind, runs
// under the key's hot-tier home lock (group_lock), which every writer of the key takes anyway:
//   * demotion — the hot tier's eviction sink runs under the victim's home lock and stores the
//     victim in the warm tier there (a packed slot is removed only if no lock-free in-place put
//     changed it since it was read, so the warm tier never receives a value older than one a put
//     has acknowledged);
//   * promotion — a compute() on the hot tier: under the lock it re-reads the warm copy, inserts
//     it into the hot tier unless the key is already there, then drops the warm copy;
//   * an insert into the hot tier (put, put_if_absent, get_or_insert, promotion) drops any warm
//     copy through the hot table's on_insert hook, still under the lock;
//   * erase removes the warm copy under the lock when the key is not in the hot tier;
//   * compute (put_if_absent, replace, compare_and_swap) on a key held only by the warm tier
//     decides on the warm copy, read under the lock.
// The lock-free in-place put touches only keys present in the hot tier, which by exclusivity have
// no warm copy. So once a write returns no tier holds an older value of its key, and a read can
// see a value only if no write that finished before the read began has replaced it. A read that
// races a transition may miss a key that is moving between tiers (a cache may always miss). Lock
// order is always hot home lock, then warm shard lock; the warm tier never calls up.
//
// S is the stored value type: V for typed_cache<K, V>, any_value for cache<K>.
//
// Statistics: hits and misses are counted per thread in striped counters (counters.hpp), so a read
// still writes no shared cache line; they are skipped entirely when telemetry is off. `lookups`
// and `misses` count the hot tier's outcome (the packed fast path counts inside the hot table);
// `warm_hits` counts the hot misses the warm tier served, and stats() combines them.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "goldylox/concepts.hpp"
#include "goldylox/config.hpp"
#include "goldylox/detail/any_policy.hpp"
#include "goldylox/detail/counters.hpp"
#include "goldylox/detail/hot_table.hpp"
#include "goldylox/detail/single_flight.hpp"
#include "goldylox/detail/warm_tier.hpp"
#include "goldylox/stats.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

template <class K, class S, class Hash, class KeyEqual>
class engine {
 public:
  using hot_tier_type = hot_table<K, S, Hash, KeyEqual>;
  using warm_tier_type = warm_tier<K, S, any_policy, Hash, KeyEqual>;
  using decision = table_decision<S>;
  static_assert(hot_tier<hot_tier_type>);

  // make_policy: the warm tier's policy per shard (config.warm_tier_max_entries != 0).
  explicit engine(const cache_config& config, policy_factory make_policy = {})
      : config_(config),
        telemetry_(config.enable_telemetry),
        promotion_hits_(config.warm_tier_promotion_hits),
        hot_(config.hot_tier_max_entries, config.enable_simd, counters_) {
    if (config.warm_tier_max_entries == 0) return;
    if (!make_policy) make_policy = &make_shard_policy<policy::adaptive>;
    warm_ = std::make_unique<warm_tier_type>(
        warm_tier_options{.max_entries = config.warm_tier_max_entries}, nullptr, nullptr,
        [&](std::size_t capacity, std::size_t shards) { return make_policy(capacity, shards); });
    // Runs under the victim's home lock (see the header comment); must not throw.
    hot_.set_eviction_sink([this](const K& key, const S& value) noexcept {
      try {
        if (warm_->put(K(key), S(value)).ok()) return;
      } catch (...) {  // copying or storing failed: the entry leaves the cache, counted
      }
      counters_.add(counter::dropped_demotions);
    });
  }

  template <class Q, class F>
  GOLDYLOX_ALWAYS_INLINE bool visit(const Q& key, F&& f) const {
    const bool hit = hot_.visit(key, f);
    record_lookup(hit);
    if (GOLDYLOX_LIKELY(hit || warm_ == nullptr)) return hit;
    return visit_warm(key, f);
  }

  // A copy of the value of `key`, or nullopt.
  template <class Q>
  GOLDYLOX_ALWAYS_INLINE std::optional<S> get(const Q& key) const {
    if constexpr (hot_tier_type::packed) {
      // The warm tier is consulted from the hot table's miss branch, so a hit's inline path is
      // the hot table's alone (see hot_table::find).
      if (warm_ == nullptr) return hot_.find(key, telemetry_);
      return hot_.find(key, telemetry_, [this](const Q& k) { return get_warm(k); });
    } else {
      std::optional<S> out;
      visit(key, [&](const S& v) { out.emplace(v); });
      return out;
    }
  }

  template <class Q>
  bool contains(const Q& key) const {
    return hot_.template visit<false>(key, [](const S&) noexcept {}) ||
           (warm_ != nullptr && warm_->contains(key));
  }

  // f(index, const S*) for each key; nullptr marks a miss.
  template <class Q, class F>
  void visit_many(const Q* keys, std::size_t count, F&& f) const {
    std::uint64_t hits = 0;
    std::vector<std::size_t> missed;
    hot_.visit_many(keys, count, [&](std::size_t i, const S* v) {
      if (v != nullptr) {
        ++hits;
        f(i, v);
      } else if (warm_ == nullptr) {
        f(i, v);
      } else {
        missed.push_back(i);
      }
    });
    if (telemetry_) {
      counters_.add(counter::lookups, count);
      counters_.add(counter::misses, count - hits);
    }
    for (const std::size_t i : missed) {
      if (!visit_warm(keys[i], [&](const S& v) { f(i, &v); })) f(i, static_cast<const S*>(nullptr));
    }
  }

  // decide(const S* current) sees the key's value in whichever tier holds it.
  template <class F>
  compute_outcome compute(K key, F&& decide) {
    if (warm_ == nullptr) return hot_.compute(std::move(key), std::forward<F>(decide));
    bool erased_warm = false;
    const compute_outcome outcome = hot_.compute(
        std::move(key),
        [&](const K& k, const S* current) -> decision {
          if (current != nullptr) return decide(current);
          std::optional<S> lower = warm_copy(k);
          if (!lower) return decide(nullptr);
          decision d = decide(&*lower);
          if (d.what == decision::kind::erase) {
            erased_warm = warm_->erase(k);
            return decision::keep();
          }
          return d;  // keep leaves the warm copy; assign inserts, and on_insert drops the copy
        },
        drop_warm_copy());
    if (erased_warm) {
      counters_.add(counter::removals);
      return compute_outcome::erased;
    }
    return outcome;
  }

  // KeyArg: K or const K& (see hot_table::assign).
  template <class KeyArg>
  compute_outcome assign(KeyArg&& key, S value) {
    if (warm_ == nullptr) return hot_.assign(std::forward<KeyArg>(key), std::move(value));
    return hot_.assign(std::forward<KeyArg>(key), std::move(value), drop_warm_copy());
  }

  template <class Q>
  bool erase(const Q& key) {
    if (warm_ == nullptr) return hot_.erase(key);
    return hot_.erase(key, [&] {
      if (!warm_->erase(key)) return false;
      counters_.add(counter::removals);
      return true;
    });
  }

  void clear() {
    hot_.clear();
    if (warm_ != nullptr) warm_->clear();
  }

  // Calls use(const S&) with the value of `key`, running make() to produce it if the key is
  // absent; make() runs at most once per absent key across all threads (single_flight.hpp).
  template <class Make, class Use>
  void get_or_insert(const K& key, Make&& make, Use&& use) {
    if (visit(key, use)) return;
    for (;;) {
      auto [f, leader] = flights_.join(key);
      if (!leader) {
        if (flights_.wait(*f) == flight_type::done) {
          use(std::as_const(*f->result));
          return;
        }
        if (lookup(key, use)) return;  // the failed leader's key was put meanwhile
        continue;
      }
      try {
        if (!lookup(key, [&](const S& v) { f->result.emplace(v); })) {
          S fresh = make();
          compute(K(key), [&](const S* current) {
            if (current != nullptr) {  // a concurrent put won the race: keep and return it
              f->result.emplace(*current);
              return decision::keep();
            }
            f->result.emplace(fresh);
            return decision::assign(std::move(fresh));
          });
        }
      } catch (...) {
        f->result.reset();
        flights_.land(key, *f, flight_type::failed);
        throw;
      }
      flights_.land(key, *f, flight_type::done);
      use(std::as_const(*f->result));
      return;
    }
  }

  std::size_t size() const noexcept { return hot_.size() + (warm_ != nullptr ? warm_->size() : 0); }
  std::size_t capacity() const noexcept {
    return hot_.capacity() + (warm_ != nullptr ? warm_->capacity() : 0);
  }
  const cache_config& config() const noexcept { return config_; }
  const hot_tier_type& hot() const noexcept { return hot_; }
  // nullptr without a warm tier.
  const warm_tier_type* warm() const noexcept { return warm_.get(); }

  cache_stats stats() const {
    cache_stats s;
    // Misses first: a lookup bumps `lookups` before `misses`, and a warm hit is counted after
    // its hot miss, so reading in this order never counts a hit without its lookup. Clamped for
    // relaxed-order stragglers.
    const std::uint64_t warm_hits = counters_.total(counter::warm_hits);
    const std::uint64_t hot_misses = counters_.total(counter::misses);
    const std::uint64_t lookups = counters_.total(counter::lookups);
    s.misses = hot_misses > warm_hits ? hot_misses - warm_hits : 0;
    s.hits = lookups > s.misses ? lookups - s.misses : 0;
    s.warm_hits = warm_hits;
    s.promotions = counters_.total(counter::promotions);
    const std::uint64_t inserts = counters_.total(counter::inserts);
    s.inserts = inserts > s.promotions ? inserts - s.promotions : 0;  // a promotion is a move
    s.updates = counters_.total(counter::updates);
    s.removals = counters_.total(counter::removals);
    s.hot_size = hot_.size();
    s.size = s.hot_size;
    s.capacity = hot_.capacity();
    s.memory_bytes = sizeof(*this) + hot_.memory_bytes() + counters_.memory_bytes();
    if (warm_ == nullptr) {
      s.evictions = counters_.total(counter::evictions);
    } else {
      const warm_tier_stats w = warm_->stats();
      s.demotions = counters_.total(counter::evictions);
      s.evictions = w.evictions + counters_.total(counter::dropped_demotions);
      s.warm_size = w.size;
      s.size += w.size;
      s.capacity += warm_->capacity();
      s.memory_bytes += warm_->memory_bytes();
    }
    return s;
  }

 private:
  using flight_type = typename single_flight<K, S, Hash, KeyEqual>::flight;

  void record_lookup(bool hit) const noexcept {
    if (telemetry_) counters_.add_lookup(hit);
  }

  // A lookup through every tier without counting it (get_or_insert's re-checks).
  template <class Q, class F>
  bool lookup(const Q& key, F&& f) const {
    return hot_.visit(key, f) || (warm_ != nullptr && visit_warm(key, f));
  }

  // The warm half of a read that missed the hot tier: f runs on the warm entry (read without a
  // lock); the entry is promoted afterwards if this read brings it to the promotion threshold.
  template <class Q, class F>
  GOLDYLOX_NOINLINE bool visit_warm(const Q& key, F&& f) const {
    std::optional<K> promote;
    const bool hit = warm_->visit_entry(key, [&](const K& stored, const S& v, std::uint32_t n) {
      f(v);
      if (n >= promotion_hits_) promote.emplace(stored);
    });
    if (!hit) return false;
    if (telemetry_) counters_.add(counter::warm_hits);
    if (promote) promote_to_hot(std::move(*promote));
    return true;
  }

  template <class Q>
  GOLDYLOX_NOINLINE std::optional<S> get_warm(const Q& key) const {
    std::optional<S> out;
    visit_warm(key, [&](const S& v) { out.emplace(v); });
    return out;
  }

  // Moves `key` from the warm tier to the hot tier (see the header comment). A failure (an
  // exception copying the value) leaves the entry in the warm tier: promotion is an optimisation.
  void promote_to_hot(K key) const {
    try {
      const compute_outcome outcome = hot_.compute(
          std::move(key),
          [&](const K& k, const S* current) -> decision {
            // Already hot (a put or another promotion got there first): by exclusivity the
            // warm tier then holds no copy either.
            if (current != nullptr) return decision::keep();
            std::optional<S> lower = warm_copy(k);
            if (!lower) return decision::keep();  // erased or promoted meanwhile
            return decision::assign(std::move(*lower));
          },
          drop_warm_copy());
      if (outcome == compute_outcome::inserted) counters_.add(counter::promotions);
    } catch (...) {
    }
  }

  // A copy of the warm tier's value of `k` that neither counts nor records a hit (the reads a
  // write makes under the key's home lock).
  std::optional<S> warm_copy(const K& k) const {
    std::optional<S> out;
    warm_->template visit_entry<false>(
        k, [&](const K&, const S& v, std::uint32_t) { out.emplace(v); });
    return out;
  }

  // The hot table's on_insert hook: a key new to the hot tier leaves the warm tier (under the
  // key's home lock). warm_tier::erase throws only if the policy's on_erase does.
  auto drop_warm_copy() const {
    return [this](const K& k) noexcept { warm_->erase(k); };
  }

  cache_config config_;
  bool telemetry_;
  std::uint32_t promotion_hits_;
  mutable striped_counters counters_;
  // Mutable: a read may promote an entry between tiers, which changes no value.
  mutable hot_tier_type hot_;
  mutable std::unique_ptr<warm_tier_type> warm_;
  single_flight<K, S, Hash, KeyEqual> flights_;
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
