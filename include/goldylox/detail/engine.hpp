// The tiered engine behind both facades: routes reads and writes through the tiers and owns the
// statistics and the get_or_insert coordination.
//
// Today the engine has one tier, the hot table; the warm and cold tiers slot in behind the same
// entry points (get, visit, visit_many, compute, assign, erase, clear) without touching the
// facades: a hot miss falls through to lower tiers, hot evictions arrive through the table's
// eviction sink.
// S is the stored value type: V for typed_cache<K, V>, any_value for cache<K>.
//
// Statistics: hits and misses are counted per thread in striped counters (counters.hpp), so a read
// still writes no shared cache line; they are skipped entirely when telemetry is off.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <utility>

#include "goldylox/concepts.hpp"
#include "goldylox/config.hpp"
#include "goldylox/detail/counters.hpp"
#include "goldylox/detail/hot_table.hpp"
#include "goldylox/detail/single_flight.hpp"
#include "goldylox/stats.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

template <class K, class S, class Hash, class KeyEqual>
class engine {
 public:
  using hot_tier_type = hot_table<K, S, Hash, KeyEqual>;
  using decision = table_decision<S>;
  static_assert(hot_tier<hot_tier_type>);

  explicit engine(const cache_config& config)
      : config_(config),
        telemetry_(config.enable_telemetry),
        hot_(config.hot_tier_max_entries, config.enable_simd, counters_) {}

  template <class Q, class F>
  GOLDYLOX_ALWAYS_INLINE bool visit(const Q& key, F&& f) const {
    const bool hit = hot_.visit(key, f);
    record_lookup(hit);
    return hit;
  }

  // A copy of the value of `key`, or nullopt.
  template <class Q>
  GOLDYLOX_ALWAYS_INLINE std::optional<S> get(const Q& key) const {
    if constexpr (hot_tier_type::packed) {
      return hot_.find(key, telemetry_);
    } else {
      std::optional<S> out;
      visit(key, [&](const S& v) { out.emplace(v); });
      return out;
    }
  }

  template <class Q>
  bool contains(const Q& key) const {
    return hot_.template visit<false>(key, [](const S&) noexcept {});
  }

  // f(index, const S*) for each key; nullptr marks a miss.
  template <class Q, class F>
  void visit_many(const Q* keys, std::size_t count, F&& f) const {
    std::uint64_t hits = 0;
    hot_.visit_many(keys, count, [&](std::size_t i, const S* v) {
      hits += v != nullptr ? 1 : 0;
      f(i, v);
    });
    if (telemetry_) {
      counters_.add(counter::lookups, count);
      counters_.add(counter::misses, count - hits);
    }
  }

  template <class F>
  compute_outcome compute(K key, F&& decide) {
    return hot_.compute(std::move(key), std::forward<F>(decide));
  }

  // KeyArg: K or const K& (see hot_table::assign).
  template <class KeyArg>
  compute_outcome assign(KeyArg&& key, S value) {
    return hot_.assign(std::forward<KeyArg>(key), std::move(value));
  }

  template <class Q>
  bool erase(const Q& key) {
    return hot_.erase(key);
  }

  void clear() { hot_.clear(); }

  // Calls use(const S&) with the value of `key`, running make() to produce it if the key is
  // absent; make() runs at most once per absent key across all threads (single_flight.hpp).
  template <class Make, class Use>
  void get_or_insert(const K& key, Make&& make, Use&& use) {
    if (hot_.visit(key, use)) {
      record_lookup(true);
      return;
    }
    record_lookup(false);
    for (;;) {
      auto [f, leader] = flights_.join(key);
      if (!leader) {
        if (flights_.wait(*f) == flight_type::done) {
          use(std::as_const(*f->result));
          return;
        }
        if (hot_.visit(key, use)) return;  // the failed leader's key was put meanwhile
        continue;
      }
      try {
        if (!hot_.visit(key, [&](const S& v) { f->result.emplace(v); })) {
          S fresh = make();
          hot_.compute(K(key), [&](const S* current) {
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

  std::size_t size() const noexcept { return hot_.size(); }
  std::size_t capacity() const noexcept { return hot_.capacity(); }
  const cache_config& config() const noexcept { return config_; }
  const hot_tier_type& hot() const noexcept { return hot_; }

  cache_stats stats() const {
    cache_stats s;
    // Misses first: a lookup bumps `lookups` before `misses`, so reading in the other order
    // could count a concurrent miss without its lookup. Clamped for relaxed-order stragglers.
    s.misses = counters_.total(counter::misses);
    const std::uint64_t lookups = counters_.total(counter::lookups);
    s.hits = lookups > s.misses ? lookups - s.misses : 0;
    s.inserts = counters_.total(counter::inserts);
    s.updates = counters_.total(counter::updates);
    s.removals = counters_.total(counter::removals);
    s.evictions = counters_.total(counter::evictions);
    s.size = hot_.size();
    s.capacity = hot_.capacity();
    s.memory_bytes = sizeof(*this) + hot_.memory_bytes() + counters_.memory_bytes();
    return s;
  }

 private:
  using flight_type = typename single_flight<K, S, Hash, KeyEqual>::flight;

  void record_lookup(bool hit) const noexcept {
    if (telemetry_) counters_.add_lookup(hit);
  }

  cache_config config_;
  bool telemetry_;
  mutable striped_counters counters_;
  hot_tier_type hot_;
  single_flight<K, S, Hash, KeyEqual> flights_;
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
