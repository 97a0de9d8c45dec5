// The tiered engine behind both facades: routes reads and writes through the tiers and owns the
// statistics and the get_or_insert coordination.
//
// Tiers. The hot tier (hot_table.hpp) holds the most recently used entries; when the config has a
// warm tier (warm_tier.hpp, driven by a run-time chosen policy: any_policy.hpp), the hot tier's
// evictions are demoted into it, and a read that misses the hot tier looks there. A warm entry
// read `warm_tier_promotion_hits` times moves back to the hot tier. The cold tier (cold_tier.hpp,
// when the config has a storage path) sits below: the lowest memory tier's evictions are demoted
// into it, and a read that misses memory looks there; a cold hit is promoted into the warm tier
// (the hot tier without one).
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
// The cold tier is inclusive where the memory tiers are exclusive: a cold hit promoted to memory
// keeps its cold record, so evicting it again later rewrites an identical record at worst. The
// rule is that once a write of a key has returned, no tier serves an older value of the key, on
// disk or after a restart:
//   * every write of a key (assign, compute that assigns or erases, erase) first retires the
//     key's cold state: it bumps the key's write generation (a slot of a small table indexed by
//     the key's hash) and erases the key's cold record (a tombstone on disk), under the key's
//     home lock where the write takes one, and then does its memory operation. The lock-free
//     in-place put retires before it (the key is in memory, so nothing can write its record
//     again meanwhile) and, should the key leave memory first, again under the lock when its
//     insert lands (on_insert). erase() retires once more after its memory operation, because
//     the key's value may be in flight to the cold tier without being in any tier;
//   * evictions reach the engine inside other locks (the warm tier's sink runs under the home
//     lock of the hot victim that displaced them), so they are queued per thread, stamped with
//     the key's generation as the value leaves memory (under the warm shard lock, or under the
//     key's home lock for the hot tier), and written when the outermost engine call on that
//     thread returns (demotion_scope), under the key's home lock, only if no memory tier has the
//     key and its generation has not moved: a write that came in between retired the record
//     and moved the generation, so the older value is dropped;
//   * a promotion from the cold tier lands under the key's home lock only if no memory tier has
//     the key and the key's cold record still has the version the read saw.
// A write racing a demotion of its own key can lose the entry (a miss, never an older value),
// and so can a demotion whose generation slot a concurrent write of another key moved (counted
// as refused). ColdCacheStress.NoReadIsOlderThanAReturnedWrite checks all of it under TSan.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "goldylox/concepts.hpp"
#include "goldylox/config.hpp"
#include "goldylox/detail/any_policy.hpp"
#include "goldylox/detail/cold_tier.hpp"
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
  using cold_tier_type = cold_tier<K, S>;
  using decision = table_decision<S>;
  static_assert(hot_tier<hot_tier_type>);
  static constexpr bool cold_capable = cold_serializable<K>;

  // make_policy: the warm tier's policy per shard (config.warm_tier_max_entries != 0).
  // cold: the opened cold store (config.cold_tier_storage_path set; K must be serializable).
  explicit engine(const cache_config& config, policy_factory make_policy = {},
                  std::unique_ptr<cold_store> cold = nullptr)
      : config_(config),
        telemetry_(config.enable_telemetry),
        promotion_hits_(config.warm_tier_promotion_hits),
        hot_(config.hot_tier_max_entries, config.enable_simd, counters_) {
    if constexpr (cold_capable) {
      if (cold != nullptr) {
        cold_ = std::make_unique<cold_tier_type>(std::move(cold));
        generations_ = make_generations(config_, cold_);
      }
    }
    if (config.warm_tier_max_entries == 0) {
      if (cold_ != nullptr) {
        // The hot tier's sink runs under the victim's home lock, which every locked write of
        // the key takes: the generation read there is the one the value left memory with.
        hot_.set_eviction_sink([this](const K& key, const S& value) noexcept {
          queue_demotion(key, value, generation_of(key));
        });
      }
      return;
    }
    if (!make_policy) make_policy = &make_shard_policy<policy::adaptive>;
    warm_ = std::make_unique<warm_tier_type>(
        warm_tier_options{.max_entries = config.warm_tier_max_entries}, nullptr, nullptr,
        [&](std::size_t capacity, std::size_t shards) { return make_policy(capacity, shards); });
    if (cold_ != nullptr) {
      // The generation is read under the warm shard's lock, as the entry leaves: read later (in
      // the sink), a write of the key finishing in between would go unnoticed.
      warm_->set_stamped_sink(
          [this](const K& key) { return generation_of(key); },
          [this](const K& key, const S& value, std::uint64_t stamp, std::uint32_t reads) {
            // The admission rule: with `reread`, an entry never read in the warm tier is not
            // worth a disk write (closing the cache writes everything).
            if (reads == 0 && !flushing_.load(std::memory_order_relaxed) &&
                config_.cold_tier_admission == cold_admission::reread) {
              counters_.add(counter::cold_not_admitted);
              return;
            }
            queue_demotion(key, value, stamp);
          });
    }
    // Runs under the victim's home lock (see the header comment); must not throw.
    hot_.set_eviction_sink([this](const K& key, const S& value) noexcept {
      try {
        if (warm_->put(K(key), S(value)).ok()) return;
      } catch (...) {  // copying or storing failed: the entry leaves the cache, counted
      }
      counters_.add(counter::dropped_demotions);
    });
  }

  engine(const engine&) = delete;
  engine& operator=(const engine&) = delete;

  // With a cold tier, the memory tiers are written to it on the way out, so reopening the
  // directory brings back everything the cache held (docs/cold-tier.md).
  ~engine() {
    if (cold_ != nullptr) flush_to_cold();
  }

  // Moves every memory entry into the cold tier (those it refuses are dropped and counted).
  void flush_to_cold() noexcept {
    flushing_.store(true, std::memory_order_relaxed);
    try {
      demotion_scope scope(*this);
      hot_.clear(/*to_sink=*/true);  // into the warm tier when there is one, else queued
      if (warm_ != nullptr) warm_->clear(/*to_sink=*/true);
    } catch (...) {
    }
  }

  template <class Q, class F>
  GOLDYLOX_ALWAYS_INLINE bool visit(const Q& key, F&& f) const {
    const bool hit = hot_.visit(key, f);
    record_lookup(hit);
    if (GOLDYLOX_LIKELY(hit || !has_lower_tier())) return hit;
    return visit_lower(key, f);
  }

  // A copy of the value of `key`, or nullopt.
  template <class Q>
  GOLDYLOX_ALWAYS_INLINE std::optional<S> get(const Q& key) const {
    if constexpr (hot_tier_type::packed) {
      // The warm tier is consulted from the hot table's miss branch, so a hit's inline path is
      // the hot table's alone (see hot_table::find).
      if (!has_lower_tier()) return hot_.find(key, telemetry_);
      return hot_.find(key, telemetry_, [this](const Q& k) { return get_lower(k); });
    } else {
      std::optional<S> out;
      visit(key, [&](const S& v) { out.emplace(v); });
      return out;
    }
  }

  template <class Q>
  bool contains(const Q& key) const {
    if (hot_.template visit<false>(key, [](const S&) noexcept {})) return true;
    if (warm_ != nullptr && warm_->contains(key)) return true;
    if constexpr (cold_capable) {
      if (cold_ == nullptr) return false;
      if (auto k = as_key(key)) return cold_->contains(*k);
    }
    return false;
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
      } else if (!has_lower_tier()) {
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
      if (!visit_lower(keys[i], [&](const S& v) { f(i, &v); })) {
        f(i, static_cast<const S*>(nullptr));
      }
    }
  }

  // decide(const S* current) sees the key's value in whichever tier holds it.
  template <class F>
  compute_outcome compute(K key, F&& decide) {
    if (!has_lower_tier()) return hot_.compute(std::move(key), std::forward<F>(decide));
    demotion_scope scope(*this);
    bool erased_lower = false;
    const compute_outcome outcome = hot_.compute(
        std::move(key),
        [&](const K& k, const S* current) -> decision {
          if (current != nullptr) {
            decision d = decide(current);
            if (d.what != decision::kind::keep) retire_cold(k);
            return d;
          }
          const std::optional<S> warm = warm_ != nullptr ? warm_copy(k) : std::optional<S>();
          const std::optional<S> cold = warm ? std::optional<S>() : cold_copy(k);
          const S* lower = warm ? &*warm : cold ? &*cold : nullptr;
          decision d = decide(lower);
          if (d.what == decision::kind::keep) return d;
          const bool had_cold = retire_cold(k);
          if (d.what == decision::kind::erase) {
            erased_lower = (warm && warm_->erase(k)) || (cold && had_cold);
            return decision::keep();
          }
          return d;  // assign inserts, and on_insert drops any warm copy
        },
        drop_warm_copy());
    if (erased_lower) {
      counters_.add(counter::removals);
      return compute_outcome::erased;
    }
    return outcome;
  }

  // KeyArg: K or const K& (see hot_table::assign).
  template <class KeyArg>
  compute_outcome assign(KeyArg&& key, S value) {
    if (cold_ == nullptr) {
      if (warm_ == nullptr) return hot_.assign(std::forward<KeyArg>(key), std::move(value));
      return hot_.assign(std::forward<KeyArg>(key), std::move(value), drop_warm_copy());
    }
    demotion_scope scope(*this);
    // Before the memory write: the lock-free in-place put (the key is in the hot tier) takes no
    // lock, and while the key stays in memory nothing can write its cold record again. If it
    // leaves memory before the put lands, the put inserts under the lock, and on_insert retires
    // whatever a demotion wrote meanwhile.
    retire_cold(key);
    return hot_.assign(std::forward<KeyArg>(key), std::move(value), [this](const K& k) noexcept {
      if (warm_ != nullptr) warm_->erase(k);
      retire_cold(k);
    });
  }

  template <class Q>
  bool erase(const Q& key) {
    if (cold_ == nullptr) {
      if (warm_ == nullptr) return hot_.erase(key);
      return hot_.erase(key, [&] {
        if (!warm_->erase(key)) return false;
        counters_.add(counter::removals);
        return true;
      });
    }
    std::optional<K> k = as_key(key);
    if (!k) return hot_.erase(key);
    const K copy = *k;
    const bool erased = compute(std::move(*k), [](const S* current) {
                          return current != nullptr ? decision::erase() : decision::keep();
                        }) == compute_outcome::erased;
    // Even when no tier had the key: its value may be on its way to the cold tier (a demotion
    // queued on another thread), which the generation bump stops. This also removes a cold value
    // of a type this program does not know, which compute's decision never sees.
    if (retire_cold(copy) && !erased) {
      counters_.add(counter::removals);
      return true;
    }
    return erased;
  }

  void clear() {
    hot_.clear();
    if (warm_ != nullptr) warm_->clear();
    if (cold_ != nullptr) cold_->clear();
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

  // Entries in the memory tiers plus cold records (a promoted entry's cold copy counts again).
  std::size_t size() const {
    return hot_.size() + (warm_ != nullptr ? warm_->size() : 0) +
           (cold_ != nullptr ? cold_->size() : 0);
  }
  std::size_t capacity() const noexcept {
    return hot_.capacity() + (warm_ != nullptr ? warm_->capacity() : 0);
  }
  const cache_config& config() const noexcept { return config_; }
  const hot_tier_type& hot() const noexcept { return hot_; }
  // nullptr without a warm tier.
  const warm_tier_type* warm() const noexcept { return warm_.get(); }
  // nullptr without a cold tier.
  cold_tier_type* cold() const noexcept { return cold_.get(); }

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
    if (cold_ != nullptr) {
      const cold_store_stats c = cold_->stats();
      s.cold_hits = counters_.total(counter::cold_hits);
      s.misses = s.misses > s.cold_hits ? s.misses - s.cold_hits : 0;
      s.hits = lookups > s.misses ? lookups - s.misses : 0;
      s.cold_demotions = counters_.total(counter::cold_demotions);
      s.cold_refused = counters_.total(counter::cold_refused);
      s.cold_promotions = counters_.total(counter::cold_promotions);
      s.cold_not_admitted = counters_.total(counter::cold_not_admitted);
      s.cold_size = c.entries;
      s.cold_disk_bytes = c.disk_bytes;
      s.cold_corrupt_records = c.corrupt_records + cold_->undecodable();
      s.size += c.entries;
      s.memory_bytes += c.index_bytes;
      // Entries the memory tiers let go that the cold tier did not take, or later reclaimed.
      s.evictions =
          (s.evictions > s.cold_demotions ? s.evictions - s.cold_demotions : 0) + c.evicted;
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
    return hot_.visit(key, f) || (has_lower_tier() && visit_lower(key, f));
  }

  bool has_lower_tier() const noexcept { return warm_ != nullptr || cold_ != nullptr; }

  // The key as K, for the cold tier (which serializes keys), or nullopt if a transparent key
  // type cannot make one.
  template <class Q>
  static std::optional<K> as_key(const Q& key) {
    if constexpr (std::is_same_v<Q, K>) {
      return key;
    } else if constexpr (std::is_constructible_v<K, const Q&>) {
      return K(key);
    } else {
      return std::nullopt;
    }
  }

  // Below the hot tier: warm, then cold.
  template <class Q, class F>
  GOLDYLOX_NOINLINE bool visit_lower(const Q& key, F&& f) const {
    if (warm_ != nullptr && visit_warm(key, f)) return true;
    if (cold_ == nullptr) return false;
    return visit_cold(key, f);
  }

  template <class Q>
  GOLDYLOX_NOINLINE std::optional<S> get_lower(const Q& key) const {
    std::optional<S> out;
    visit_lower(key, [&](const S& v) { out.emplace(v); });
    return out;
  }

  // A cold hit: f sees the value, then it is promoted into memory (unless it is of a type this
  // program does not know, which only ever reports a mismatch).
  template <class Q, class F>
  bool visit_cold(const Q& key, F& f) const {
    if constexpr (cold_capable) {
      std::optional<K> k = as_key(key);
      if (!k) return false;
      std::uint64_t version = 0;
      std::optional<S> v = cold_->get(*k, &version);
      if (!v) return false;
      f(std::as_const(*v));
      if (telemetry_) counters_.add(counter::cold_hits);
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
  // has the key by then and its cold record is still the one read (a write retires the record
  // under this lock before its value enters memory; a demotion replaces it). Best effort, like
  // promote_to_hot.
  void promote_from_cold(K key, S value, std::uint64_t version) const {
    demotion_scope scope(*this);
    try {
      bool promoted = false;
      hot_.compute(
          std::move(key),
          [&](const K& k, const S* current) -> decision {
            if (current != nullptr || cold_->version_of(k) != version) return decision::keep();
            if (warm_ == nullptr) {
              promoted = true;
              return decision::assign(std::move(value));
            }
            if (!warm_->contains(k)) promoted = warm_->put(K(k), std::move(value)).ok();
            return decision::keep();
          },
          [](const K&) noexcept {});
      if (promoted) counters_.add(counter::cold_promotions);
    } catch (...) {
    }
  }

  // The cold record's value for a write's decision (under the key's home lock), or nullopt.
  std::optional<S> cold_copy(const K& k) const {
    if constexpr (cold_capable) {
      if (cold_ == nullptr) return std::nullopt;
      std::optional<S> v = cold_->get(k);
      if constexpr (std::is_same_v<S, any_value>) {
        if (v && v->template holds<unknown_cold_type>()) return std::nullopt;
      }
      return v;
    } else {
      return std::nullopt;
    }
  }

  // Drops the key's cold record; true if there was one. A tombstone that cannot be written (a
  // full disk) leaves the record in place: counted as refused.
  bool erase_cold(const K& k) const {
    if constexpr (cold_capable) {
      if (cold_ == nullptr) return false;
      absl::StatusOr<bool> erased = cold_->erase(k);
      if (!erased.ok()) {
        counters_.add(counter::cold_refused);
        return false;
      }
      return *erased;
    } else {
      return false;
    }
  }

  // Write generations (see the header comment): a counter per slot of key hashes, bumped by
  // every write before its memory operation. A demotion goes ahead only if its key's slot has
  // not moved since the value left memory; a move means a write of the key came in between (or,
  // rarely, a concurrent write of another key sharing the slot).
  std::atomic<std::uint64_t>& generation_slot(const K& k) const {
    const std::uint64_t h = mix_hash(hash_(k));
    return generations_[static_cast<std::size_t>(h >> 32) & (generations_.size() - 1)];
  }
  std::uint64_t generation_of(const K& k) const {
    return generation_slot(k).load(std::memory_order_seq_cst);
  }

  // Every write of a key calls this before its memory operation: the generation moves, so no
  // demotion of an older value queued before it can land, and the key's cold record goes.
  // True if there was one.
  bool retire_cold(const K& k) const noexcept {
    if constexpr (cold_capable) {
      if (cold_ == nullptr) return false;
      try {
        generation_slot(k).fetch_add(1, std::memory_order_seq_cst);
        return erase_cold(k);
      } catch (...) {
        counters_.add(counter::cold_refused);
      }
    }
    return false;
  }

  // Evictions from the lowest memory tier wait here until the outermost engine call on this
  // thread returns (see the header comment). Entries carry the engine's id, so one thread's
  // queue serves every engine of this type.
  struct pending_demotion {
    std::uint64_t engine;
    std::uint64_t generation;  // of the key's slot when the value left memory
    K key;
    S value;
  };
  static std::vector<std::unique_ptr<pending_demotion>>& pending() {
    thread_local std::vector<std::unique_ptr<pending_demotion>> q;
    return q;
  }
  static unsigned& scope_depth() {
    thread_local unsigned depth = 0;
    return depth;
  }

  class demotion_scope {
   public:
    explicit demotion_scope(const engine& e) noexcept : e_(e) { ++scope_depth(); }
    demotion_scope(const demotion_scope&) = delete;
    demotion_scope& operator=(const demotion_scope&) = delete;
    ~demotion_scope() {
      if (--scope_depth() == 0) e_.drain_demotions();
    }

   private:
    const engine& e_;
  };

  void queue_demotion(const K& key, const S& value, std::uint64_t stamp) const noexcept {
    try {
      pending().push_back(
          std::make_unique<pending_demotion>(pending_demotion{id_, stamp, key, value}));
      if (scope_depth() == 0) drain_demotions();  // an eviction outside any engine call
    } catch (...) {
      counters_.add(counter::dropped_demotions);
    }
  }

  void drain_demotions() const noexcept {
    if constexpr (cold_capable) {
      auto& q = pending();
      ++scope_depth();  // the demotions below queue nothing, but must never drain recursively
      for (;;) {
        auto it = std::find_if(q.begin(), q.end(), [&](const auto& p) { return p->engine == id_; });
        if (it == q.end()) break;
        const std::unique_ptr<pending_demotion> taken = std::move(*it);
        q.erase(it);
        pending_demotion& d = *taken;
        try {
          hot_.compute(
              std::move(d.key),
              [&](const K& k, const S* current) -> decision {
                if (current != nullptr || (warm_ != nullptr && warm_->contains(k))) {
                  return decision::keep();  // back in memory, with this value or a newer one
                }
                if (generation_of(k) != d.generation) {  // written since: the value is old
                  counters_.add(counter::cold_refused);
                  return decision::keep();
                }
                if (cold_->put(k, d.value).ok()) {
                  counters_.add(counter::cold_demotions);
                } else {
                  counters_.add(counter::cold_refused);
                }
                return decision::keep();
              },
              [](const K&) noexcept {});
        } catch (...) {
          counters_.add(counter::cold_refused);
        }
      }
      --scope_depth();
    }
  }

  // The warm half of a read that missed the hot tier: f runs on the warm entry (read without a
  // lock); the entry is promoted afterwards if this read brings it to the promotion threshold.
  template <class Q, class F>
  GOLDYLOX_NOINLINE bool visit_warm(const Q& key, F&& f) const {
    demotion_scope scope(*this);
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
  std::unique_ptr<cold_tier_type> cold_;
  std::atomic<bool> flushing_{false};  // closing: every entry goes to the cold tier
  [[no_unique_address]] Hash hash_{};
  mutable std::vector<std::atomic<std::uint64_t>> generations_;  // with a cold tier only
  const std::uint64_t id_ = next_engine_id();

  static std::vector<std::atomic<std::uint64_t>> make_generations(
      const cache_config& c, const std::unique_ptr<cold_tier_type>& cold) {
    if (cold == nullptr) return {};
    // Enough slots that two keys written within one demotion's flight rarely share one.
    return std::vector<std::atomic<std::uint64_t>>(std::bit_ceil(std::clamp<std::size_t>(
        (c.hot_tier_max_entries + c.warm_tier_max_entries) / 4, 1024, std::size_t{1} << 16)));
  }

  static std::uint64_t next_engine_id() noexcept {
    static std::atomic<std::uint64_t> n{0};
    return n.fetch_add(1, std::memory_order_relaxed) + 1;
  }
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
