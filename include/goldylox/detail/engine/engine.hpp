// The tiered engine behind both facades (cache<K>, typed_cache<K, V>): it routes every read and
// write through the tiers and is the only place where the tiers meet.
//
// Tiers. When the config has a warm tier (warm/tier.hpp, driven by a run-time chosen policy:
// warm/policy/any_policy.hpp), new keys enter it (rule M6 in coherence.hpp) and the hot tier
// (hot/table.hpp) holds the entries the promotion manager moved up (promotion.hpp: read at least
// `warm_tier_promotion_hits` times, and more often than what the hot tier lets go); the hot
// tier's evictions are demoted back into the warm tier, and a read that misses the hot tier looks
// there. Without a warm tier the hot tier takes every key. The cold tier
// (cold/tier.hpp, when the config has a storage path) sits below: the lowest memory tier's
// evictions are demoted into it, and a read that misses memory looks there; a cold hit is
// promoted into the warm tier (the hot tier without one).
//
// The engine's jobs, one file each in this folder:
//   engine.hpp        routing: which tier a read or write goes to, and wiring the tiers' sinks
//   tiers.hpp         the tier stack the other jobs share (tiers and counters)
//   coherence.hpp     the cross-tier coherence rules (M1-M5, C1-C3) and the write generations
//   demotion.hpp      the cold demotion queue (rule C2)
//   promotion.hpp     reads below the hot tier and the moves up they cause (M2, C3)
//   single_flight.hpp get_or_insert: one loader per absent key
//   stats.hpp         the cache_stats snapshot
// Owns: all of the above, for one cache. Invariant: the coherence rules of coherence.hpp hold
// whenever no engine call is running. May call: the tiers (hot/, warm/, cold/) and common/;
// only the facades call it.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "goldylox/concepts.hpp"
#include "goldylox/config.hpp"
#include "goldylox/detail/engine/coherence.hpp"
#include "goldylox/detail/engine/demotion.hpp"
#include "goldylox/detail/engine/promotion.hpp"
#include "goldylox/detail/engine/single_flight.hpp"
#include "goldylox/detail/engine/stats.hpp"
#include "goldylox/detail/engine/tiers.hpp"
#include "goldylox/stats.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

template <class K, class S, class Hash, class KeyEqual>
class engine {
  using tiers_type = tier_stack<K, S, Hash, KeyEqual>;
  using demotion_scope = typename demotion_queue<K, S, Hash, KeyEqual>::scope;

 public:
  using hot_tier_type = typename tiers_type::hot_type;
  using warm_tier_type = typename tiers_type::warm_type;
  using cold_tier_type = typename tiers_type::cold_type;
  using decision = table_decision<S>;
  static_assert(hot_tier<hot_tier_type>);
  static constexpr bool cold_capable = tiers_type::cold_capable;

  // The cold store for `config` (its storage path set), to pass to the constructor.
  static absl::StatusOr<std::unique_ptr<cold_store>> open_cold(const cache_config& config) {
    return tiers_type::open_cold(config);
  }

  // make_policy: the warm tier's policy per shard (config.warm_tier_max_entries != 0).
  // cold: the opened cold store (config.cold_tier_storage_path set; K must be serializable).
  explicit engine(const cache_config& config, policy_factory make_policy = {},
                  std::unique_ptr<cold_store> cold = nullptr)
      : t_(config, std::move(make_policy), std::move(cold)),
        coherence_(t_),
        demotions_(t_, coherence_),
        promotion_(t_, demotions_) {
    if (t_.warm == nullptr) {
      if (t_.cold != nullptr) {
        // The hot tier's sink runs under the victim's home lock, which every locked write of
        // the key takes: the generation read there is the one the value left memory with.
        t_.hot.set_eviction_sink([this](const K& key, const S& value) noexcept {
          demotions_.push(key, value, coherence_.generation_of(key));
        });
      }
      return;
    }
    if (t_.cold != nullptr) {
      // The generation is read under the warm shard's lock, as the entry leaves: read later (in
      // the sink), a write of the key finishing in between would go unnoticed.
      t_.warm->set_stamped_sink(
          [this](const K& key) { return coherence_.generation_of(key); },
          [this](const K& key, const S& value, std::uint64_t stamp, std::uint32_t reads) {
            // The admission rule: with `reread`, an entry never read in the warm tier is not
            // worth a disk write (closing the cache writes everything).
            if (reads == 0 && !flushing_.load(std::memory_order_relaxed) &&
                t_.config.cold_tier_admission == cold_admission::reread) {
              t_.counters.add(counter::cold_not_admitted);
              return;
            }
            demotions_.push(key, value, stamp);
          });
    }
    t_.hot.set_reference_observer([this](const K& key) { promotion_.on_hot_reference(key); });
    // Rule M1: runs under the victim's home lock; must not throw.
    t_.hot.set_eviction_sink([this](const K& key, const S& value) noexcept {
      promotion_.on_hot_victim(key);
      try {
        if (t_.warm->put(K(key), S(value)).ok()) return;
      } catch (...) {  // copying or storing failed: the entry leaves the cache, counted
      }
      t_.counters.add(counter::dropped_demotions);
    });
  }

  engine(const engine&) = delete;
  engine& operator=(const engine&) = delete;

  // Closes the cache unless close() did: with a cold tier the memory tiers are written to it on
  // the way out, so reopening the directory brings back everything the cache held
  // (docs/cold-tier.md). close()'s status is dropped here (the errors stay counted).
  ~engine() {
    try {
      (void)close();
    } catch (...) {  // an allocation or lock failure: nothing more can be done on the way out
    }
  }

  // With a cold tier: writes every memory entry into it, then closes it (cold_store::close: the
  // final sync the durability mode asks for, the directory's lock released) and detaches it
  // (cold_tier::close: from then on the cache works in memory only). Returns the first error:
  // kDataLoss if entries did not reach the cold tier (refused, dropped, or still in memory
  // after the flush), else the final sync's (also counted in cold_sync_errors). OK without a
  // cold tier, and for every call after the first, which does nothing (a concurrent one waits
  // for the first to finish).
  absl::Status close() {
    std::lock_guard lock(close_mu_);
    if (std::exchange(closed_, true) || t_.cold == nullptr) return absl::OkStatus();
    const std::uint64_t lost_before = lost_entries();
    flush_to_cold();
    const std::uint64_t lost = lost_entries() - lost_before + memory_entries();
    const absl::Status closed = t_.cold->close();
    if (lost == 0) return closed;
    return absl::DataLossError(absl::StrCat(
        "goldylox: closing the cache: ", lost, lost == 1 ? " entry" : " entries",
        " could not be written to the cold tier in ", t_.config.cold_tier_storage_path,
        " (too large for a segment, of a type that cannot be serialized, or a write error) and ",
        lost == 1 ? "is" : "are", " lost",
        closed.ok() ? "" : "; closing the cold tier failed too: ", closed.message()));
  }

  template <class Q, class F>
  GOLDYLOX_ALWAYS_INLINE bool visit(const Q& key, F&& f) const {
    const bool hit = t_.hot.visit(key, f);
    if (t_.telemetry) t_.counters.add_lookup(hit);
    if (GOLDYLOX_LIKELY(hit || !t_.has_lower_tier())) return hit;
    return promotion_.visit_lower(key, f);
  }

  // A copy of the value of `key`, or nullopt.
  template <class Q>
  GOLDYLOX_ALWAYS_INLINE std::optional<S> get(const Q& key) const {
    if constexpr (hot_tier_type::packed) {
      // The lower tiers are consulted from the hot table's miss branch, so a hit's inline path is
      // the hot table's alone (see hot_table::find).
      if (!t_.has_lower_tier()) return t_.hot.find(key, t_.telemetry);
      return t_.hot.find(key, t_.telemetry, [this](const Q& k) { return promotion_.get_lower(k); });
    } else {
      std::optional<S> out;
      visit(key, [&](const S& v) { out.emplace(v); });
      return out;
    }
  }

  template <class Q>
  bool contains(const Q& key) const {
    if (t_.hot.template visit<false>(key, [](const S&) noexcept {})) return true;
    if (t_.warm != nullptr && t_.warm->contains(key)) return true;
    if constexpr (cold_capable) {
      if (t_.cold == nullptr) return false;
      if (auto k = tiers_type::as_key(key)) return t_.cold->contains(*k);
    }
    return false;
  }

  // f(index, const S*) for each key; nullptr marks a miss.
  template <class Q, class F>
  void visit_many(const Q* keys, std::size_t count, F&& f) const {
    std::uint64_t hits = 0;
    std::vector<std::size_t> missed;
    const bool lower = t_.has_lower_tier();
    t_.hot.visit_many(keys, count, [&](std::size_t i, const S* v) {
      if (v != nullptr) {
        ++hits;
        f(i, v);
      } else if (!lower) {
        f(i, v);
      } else {
        missed.push_back(i);
      }
    });
    if (t_.telemetry) {
      t_.counters.add(counter::lookups, count);
      t_.counters.add(counter::misses, count - hits);
    }
    for (const std::size_t i : missed) {
      if (!promotion_.visit_lower(keys[i], [&](const S& v) { f(i, &v); })) {
        f(i, static_cast<const S*>(nullptr));
      }
    }
  }

  // decide(const S* current) sees the key's value in whichever tier holds it (rule M5).
  template <class F>
  compute_outcome compute(K key, F&& decide) {
    if (!t_.has_lower_tier()) return t_.hot.compute(std::move(key), std::forward<F>(decide));
    demotion_scope scope(demotions_);
    bool erased_lower = false;
    std::optional<compute_outcome> lower_outcome;
    const compute_outcome outcome = t_.hot.compute(
        std::move(key),
        [&](const K& k, const S* current) -> decision {
          if (current != nullptr) {
            decision d = decide(current);
            if (d.what != decision::kind::keep) coherence_.retire(k);
            return d;
          }
          const std::optional<S> warm = t_.warm != nullptr ? t_.warm_copy(k) : std::optional<S>();
          const std::optional<S> cold = warm ? std::optional<S>() : coherence_.copy(k);
          const S* lower = warm ? &*warm : cold ? &*cold : nullptr;
          decision d = decide(lower);
          if (d.what == decision::kind::keep) return d;
          const bool had_cold = coherence_.retire(k);
          if (d.what == decision::kind::erase) {
            erased_lower = (warm && t_.warm->erase(k)) || (cold && had_cold);
            return decision::keep();
          }
          if (t_.warm != nullptr) {  // M6: a key not in the hot tier is written to the warm tier
            lower_outcome = put_warm(k, std::move(*d.value));
            return decision::keep();
          }
          return d;  // assign inserts (without a warm tier)
        },
        t_.drop_warm_copy());
    if (erased_lower) {
      t_.counters.add(counter::removals);
      return compute_outcome::erased;
    }
    return lower_outcome.value_or(outcome);
  }

  // KeyArg: K or const K& (see hot_table::assign).
  template <class KeyArg>
  compute_outcome assign(KeyArg&& key, S value) {
    if (t_.cold == nullptr) {
      if (t_.warm == nullptr) return t_.hot.assign(std::forward<KeyArg>(key), std::move(value));
      // M6: a key the hot tier does not hold is written to the warm tier (new keys enter there;
      // the hot tier takes entries only by promotion).
      return t_.hot.assign_present(std::forward<KeyArg>(key), std::move(value),
                                   [this](const K& k, S&& v) { return put_warm(k, std::move(v)); });
    }
    demotion_scope scope(demotions_);
    // Rule C1 before the memory write: the lock-free in-place put (the key is in the hot tier)
    // takes no lock, and while the key stays in memory nothing can write its cold record again.
    // If it leaves memory before the put lands, the put writes under the lock (into the warm
    // tier, or inserts into the hot tier without one), and retires whatever a demotion wrote
    // meanwhile there.
    coherence_.retire(key);
    if (t_.warm != nullptr) {
      return t_.hot.assign_present(std::forward<KeyArg>(key), std::move(value),
                                   [this](const K& k, S&& v) {
                                     coherence_.retire(k);
                                     return put_warm(k, std::move(v));
                                   });
    }
    return t_.hot.assign(std::forward<KeyArg>(key), std::move(value),
                         [this](const K& k) noexcept { coherence_.retire(k); });
  }

  template <class Q>
  bool erase(const Q& key) {
    if (t_.cold == nullptr) {
      if (t_.warm == nullptr) return t_.hot.erase(key);
      return t_.hot.erase(key, [&] {  // rule M4
        if (!t_.warm->erase(key)) return false;
        t_.counters.add(counter::removals);
        return true;
      });
    }
    std::optional<K> k = tiers_type::as_key(key);
    if (!k) return t_.hot.erase(key);
    const K copy = *k;
    const bool erased = compute(std::move(*k), [](const S* current) {
                          return current != nullptr ? decision::erase() : decision::keep();
                        }) == compute_outcome::erased;
    // Even when no tier had the key: its value may be on its way to the cold tier (a demotion
    // queued on another thread), which the generation bump stops. This also removes a cold value
    // of a type this program does not know, which compute's decision never sees.
    if (coherence_.retire(copy) && !erased) {
      t_.counters.add(counter::removals);
      return true;
    }
    return erased;
  }

  // Makes what the cold tier holds durable (cold_store::sync); OK without a cold tier.
  absl::Status sync() {
    if (t_.cold == nullptr) return absl::OkStatus();
    return t_.cold->sync();
  }

  void clear() {
    t_.hot.clear();
    if (t_.warm != nullptr) t_.warm->clear();
    if (t_.cold != nullptr) t_.cold->clear();
  }

  // Calls use(const S&) with the value of `key`, running make() to produce it if the key is
  // absent; make() runs at most once per absent key across all threads (single_flight.hpp).
  template <class Make, class Use>
  void get_or_insert(const K& key, Make&& make, Use&& use) {
    if (visit(key, use)) return;
    flights_.load(
        key,
        [this](const K& k, auto&& f) {  // every tier, uncounted
          return t_.hot.visit(k, f) || (t_.has_lower_tier() && promotion_.visit_lower(k, f));
        },
        make,
        [&](S fresh, std::optional<S>& result) {
          compute(K(key), [&](const S* current) {
            if (current != nullptr) {  // a concurrent put won the race: keep and return it
              result.emplace(*current);
              return decision::keep();
            }
            result.emplace(fresh);
            return decision::assign(std::move(fresh));
          });
        },
        use);
  }

  // Entries in the memory tiers plus cold records (a promoted entry's cold copy counts again).
  std::size_t size() const {
    return t_.hot.size() + (t_.warm != nullptr ? t_.warm->size() : 0) +
           (t_.cold != nullptr ? t_.cold->size() : 0);
  }
  std::size_t capacity() const noexcept {
    return t_.hot.capacity() + (t_.warm != nullptr ? t_.warm->capacity() : 0);
  }
  const cache_config& config() const noexcept { return t_.config; }
  const hot_tier_type& hot() const noexcept { return t_.hot; }
  // nullptr without a warm tier.
  const warm_tier_type* warm() const noexcept { return t_.warm.get(); }
  // nullptr without a cold tier.
  cold_tier_type* cold() const noexcept { return t_.cold.get(); }

  cache_stats stats() const { return collect_stats(t_, sizeof(*this)); }

 private:
  // Moves every memory entry into the cold tier (those it refuses are dropped and counted).
  void flush_to_cold() noexcept {
    flushing_.store(true, std::memory_order_relaxed);
    try {
      demotion_scope scope(demotions_);
      t_.hot.clear(/*to_sink=*/true);  // into the warm tier when there is one, else queued
      if (t_.warm != nullptr) t_.warm->clear(/*to_sink=*/true);
    } catch (...) {  // what stays in memory is counted as lost by close()
    }
  }

  // Writes a key the hot tier does not hold into the warm tier (rule M6), under the key's home
  // lock, and counts it as the hot tier counts its own writes. A value the warm tier refuses
  // leaves the key as it was: `kept`.
  compute_outcome put_warm(const K& k, S&& v) {
    const absl::StatusOr<bool> inserted = t_.warm->upsert(K(k), std::move(v));
    if (!inserted.ok()) return compute_outcome::kept;
    t_.counters.add(*inserted ? counter::inserts : counter::updates);
    return *inserted ? compute_outcome::inserted : compute_outcome::updated;
  }

  // Entries that left memory without reaching the cold tier, so far.
  std::uint64_t lost_entries() const {
    return t_.counters.total(counter::cold_refused) + t_.counters.total(counter::dropped_demotions);
  }
  std::uint64_t memory_entries() const {
    return t_.hot.size() + (t_.warm != nullptr ? t_.warm->size() : 0);
  }

  // In this order: each part refers to those above it.
  tiers_type t_;
  cold_coherence<K, S, Hash, KeyEqual> coherence_;
  demotion_queue<K, S, Hash, KeyEqual> demotions_;
  promotion<K, S, Hash, KeyEqual> promotion_;
  single_flight<K, S, Hash, KeyEqual> flights_;
  std::atomic<bool> flushing_{false};  // closing: every entry goes to the cold tier
  std::mutex close_mu_;
  bool closed_ = false;  // guarded by close_mu_
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
