// goldylox::typed_cache<K, V> — a concurrent cache for one value type.
//
//   auto made = goldylox::typed_cache<std::uint64_t, Order>::builder()
//                   .hot_tier_max_entries(1'000'000)
//                   .build();                 // absl::StatusOr<typed_cache<...>>
//   if (!made.ok()) { /* kInvalidArgument: see the message */ }
//   auto& orders = *made;
//   orders.put(42, Order{...});
//   std::optional<Order> o = orders.get(42);
//
// Every member function may be called from any number of threads at once. Reads (get, visit,
// get_many, contains) take no lock; those the hot tier answers write no shared memory, and one
// that falls through to the warm tier bumps the entry's read count. Writes to one key are atomic
// with respect to every other operation on that key. When the hot tier is full it evicts with a
// CLOCK (second-chance) sweep into the warm tier, which evicts by its policy (adaptive by
// default); warm entries read twice move back up. This is the fastest way into goldylox; cache<K>
// adds run-time-typed values on top of the same engine.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <ranges>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "goldylox/concepts.hpp"
#include "goldylox/config.hpp"
#include "goldylox/detail/engine/engine.hpp"
#include "goldylox/detail/facade/builder.hpp"
#include "goldylox/detail/facade/bulk.hpp"
#include "goldylox/detail/facade/loading.hpp"
#include "goldylox/stats.hpp"

GOLDYLOX_BEGIN_NAMESPACE

template <class K, class V, class Hash = default_hash<K>, class KeyEqual = std::equal_to<>>
  requires cache_key<K, Hash> && cache_value<V>
class typed_cache {
 public:
  using key_type = K;
  using mapped_type = V;
  using builder_type = detail::facade_builder<typed_cache>;
  // What get_all returns, and what a bulk loader may return.
  using value_map = absl::flat_hash_map<K, V, Hash, KeyEqual>;
  using loaders_type = detail::cache_loaders<K, V, Hash, KeyEqual>;

  static builder_type builder() { return {}; }

  typed_cache(typed_cache&&) noexcept = default;
  typed_cache& operator=(typed_cache&&) noexcept = default;  // a moved-from cache may only be
                                                             // destroyed or assigned to

  // Inserts or overwrites. Returns OK, or (with a cold tier) the error that kept the key's older
  // cold record from being removed (a full disk, an I/O error): then nothing changed, so the older
  // value can never come back in place of this one.
  // Without a cold tier, an lvalue key is copied only when it is inserted (or into a new node for
  // values that are not updated in place): overwriting a present std::string key allocates
  // nothing for the key.
  absl::Status put(const K& key, V value) {
    if (GOLDYLOX_UNLIKELY(negative_ != nullptr)) negative_->forget(key);
    return engine_->assign(key, std::move(value));
  }
  absl::Status put(K&& key, V value) {
    if (GOLDYLOX_UNLIKELY(negative_ != nullptr)) negative_->forget(key);
    return engine_->assign(std::move(key), std::move(value));
  }
  // put() of a value that expires `ttl` from now, whatever expire_after_write or
  // expire_after_access say (with expire_after_access, its reads then extend it as usual).
  // kInvalidArgument for ttl <= 0; kFailedPrecondition for a cache built without expiry
  // (enable_expiry, expire_after_write or expire_after_access); the cache is then unchanged.
  absl::Status put(const K& key, V value, std::chrono::nanoseconds ttl) {
    if (GOLDYLOX_UNLIKELY(negative_ != nullptr)) negative_->forget(key);
    return engine_->assign_for(key, std::move(value), ttl);
  }

  GOLDYLOX_ALWAYS_INLINE std::optional<V> get(const K& key) const { return get_impl(key); }
  template <class Q>
    requires detail::transparent_lookup<Q, K, Hash, KeyEqual>
  GOLDYLOX_ALWAYS_INLINE std::optional<V> get(const Q& key) const {
    return get_impl(key);
  }

  // Calls f(const V&) on the stored value without copying it; returns whether the key was found.
  // f runs while the entry is protected from reclamation (the calling thread's epoch pinned):
  // keep it short, do not block in it and do not call into the cache.
  template <class F>
  bool visit(const K& key, F&& f) const {
    return engine_->visit(key, f);
  }
  template <class Q, class F>
    requires detail::transparent_lookup<Q, K, Hash, KeyEqual>
  bool visit(const Q& key, F&& f) const {
    return engine_->visit(key, f);
  }

  // Looks up many keys at once, overlapping their memory accesses. out[i] receives keys[i]'s
  // value or nullopt; only min(keys.size(), out.size()) keys are looked up.
  void get_many(std::span<const K> keys, std::span<std::optional<V>> out) const {
    engine_->visit_many(keys.data(), std::min(keys.size(), out.size()),
                        [&](std::size_t i, const V* v) {
                          if (v != nullptr) {
                            out[i].emplace(*v);
                          } else {
                            out[i].reset();
                          }
                        });
  }
  std::vector<std::optional<V>> get_many(std::span<const K> keys) const {
    std::vector<std::optional<V>> out(keys.size());
    get_many(keys, out);
    return out;
  }

  // Puts every (key, value) pair of `entries` (a map, a vector of pairs, ...) as put() would,
  // moving them out of a range passed as an rvalue. Each key is written atomically, the batch is
  // not: a key that fails (with a cold tier, see put) is left unchanged and the others are still
  // written. OK, or the first failure's code with how many keys failed.
  template <class R>
    requires detail::key_value_range<R, K> && std::convertible_to<detail::pair_value_t<R>, V>
  absl::Status put_all(R&& entries) {
    return detail::put_each(
        std::forward<R>(entries), [this](auto&& key, auto&& value) -> absl::Status {
          return put(std::forward<decltype(key)>(key), V(std::forward<decltype(value)>(value)));
        });
  }

  // Removes every key of `keys` (any range of K, or of a transparent key type) as remove()
  // would: how many were present, or the first failure's code with how many keys failed (the
  // others are removed).
  template <std::ranges::input_range R>
  absl::StatusOr<std::size_t> remove_all(const R& keys) {
    return detail::remove_each(keys, [this](const auto& key) { return remove(key); });
  }
  absl::StatusOr<std::size_t> remove_all(std::initializer_list<K> keys) {
    return remove_all<std::initializer_list<K>>(keys);
  }

  bool contains(const K& key) const { return engine_->contains(key); }
  template <class Q>
    requires detail::transparent_lookup<Q, K, Hash, KeyEqual>
  bool contains(const Q& key) const {
    return engine_->contains(key);
  }

  // Returns whether the key was present, or (with a cold tier) the error that kept its cold
  // record from being removed; the cache is then unchanged. A transparent key that cannot make a
  // K (no K(const Q&)) finds the key's cold record only through a memory tier holding the key:
  // if only the cold tier has it, remove(q) returns false and removes nothing (remove it by K).
  absl::StatusOr<bool> remove(const K& key) {
    if (GOLDYLOX_UNLIKELY(negative_ != nullptr)) negative_->forget(key);
    return engine_->erase(key);
  }
  template <class Q>
    requires detail::transparent_lookup<Q, K, Hash, KeyEqual>
  absl::StatusOr<bool> remove(const Q& key) {
    if (GOLDYLOX_UNLIKELY(negative_ != nullptr)) {
      if constexpr (std::is_constructible_v<K, const Q&>) negative_->forget(K(key));
    }
    return engine_->erase(key);
  }

  // With a cold tier: makes every write the cold tier has taken so far durable (fdatasync of the
  // segments written since the last sync, and of the directory), whatever cold_tier_durability
  // says; entries still in memory reach the disk when they are evicted or the cache closes. The
  // error of a failed sync (kPermissionDenied, kInternal for an I/O error, ...) is returned and
  // counted in stats().cold_sync_errors, as are the periodic syncer's. OK without a cold tier.
  absl::Status sync() { return engine_->sync(); }

  // Makes now, on the calling thread, the work the cache has queued for its background pool:
  // moves between tiers that reads asked for (promotions), then the cold tier's write-back of
  // the evictions waiting for it, then the warm tier's policies' learning (the adaptive
  // policy's simulations, the linear model's training). With enable_background_workers(false)
  // there is none (every move is made by the read that asked for it, every eviction written by
  // the call that caused it, and policies learn as requests arrive). Tests call it to make a
  // cache's state deterministic; an application rarely needs to.
  void run_pending_tasks() { engine_->run_pending_tasks(); }

  // Shuts the cold tier down and reports how it went (the destructor does the same but can only
  // count errors). With a cold tier: writes every memory entry to it, syncs it as
  // cold_tier_durability asks and releases its directory, so another cache may open it now.
  // Returns kDataLoss if entries could not be written (the message says how many; the cold
  // tier's refusals are in stats().cold_refused too), else the final sync's error (counted in
  // stats().cold_sync_errors). Afterwards the cache works in memory only: reads no longer see
  // the cold tier, later writes never reach the disk, and destroying the cache writes nothing.
  // OK without a cold tier, and on every call after the first (which does nothing).
  absl::Status close() { return engine_->close(); }

  // Removes every entry (entries inserted concurrently with clear() may survive it).
  absl::Status clear() {
    engine_->clear();
    return absl::OkStatus();
  }

  // The conditional writes below return, with a cold tier, the error that kept the key's older
  // cold record from being removed, and then change nothing (see put).

  // Inserts only if absent. Returns the existing value, or nullopt if `value` was inserted.
  absl::StatusOr<std::optional<V>> put_if_absent(K key, V value) {
    if (GOLDYLOX_UNLIKELY(negative_ != nullptr)) negative_->forget(key);
    std::optional<V> existing;
    const auto done = engine_->compute(std::move(key), [&](const V* current) {
      if (current != nullptr) {
        existing.emplace(*current);
        return decision::keep();
      }
      return decision::assign(std::move(value));
    });
    if (!done.ok()) return done.status();
    return existing;
  }

  // Overwrites only if present. Returns the previous value, or nullopt if nothing was stored.
  absl::StatusOr<std::optional<V>> replace(K key, V value) {
    std::optional<V> previous;
    const auto done = engine_->compute(std::move(key), [&](const V* current) {
      if (current == nullptr) return decision::keep();
      previous.emplace(*current);
      return decision::assign(std::move(value));
    });
    if (!done.ok()) return done.status();
    return previous;
  }

  // Stores `desired` only if the key holds a value equal to `expected`; returns whether it did.
  absl::StatusOr<bool> compare_and_swap(K key, const V& expected, V desired)
    requires std::equality_comparable<V>
  {
    bool swapped = false;
    const auto done = engine_->compute(std::move(key), [&](const V* current) {
      if (current == nullptr || !(*current == expected)) return decision::keep();
      swapped = true;
      return decision::assign(std::move(desired));
    });
    if (!done.ok()) return done.status();
    return swapped;
  }

  // Returns the key's value, calling factory() to make it if absent. The factory runs at most
  // once per absent key however many threads ask at once; the others wait for its result. If it
  // throws, the exception reaches this caller, nothing is inserted and the waiters retry. With a
  // cold tier, the error if the made value could not be stored (see put).
  template <class F>
    requires std::is_invocable_r_v<V, F&>
  absl::StatusOr<V> get_or_insert(K key, F&& factory) {
    if (GOLDYLOX_UNLIKELY(negative_ != nullptr)) negative_->forget(key);
    std::optional<V> out;
    const absl::Status st = engine_->get_or_insert(
        key, [&] { return V(std::invoke(factory)); }, [&](const V& v) { out.emplace(v); });
    if (!st.ok()) return st;
    return std::move(*out);
  }

  // The key's value, loaded on a miss by the builder's loader() (or, without one, its
  // bulk_loader() asked for this key alone). One load per absent key however many threads ask
  // (get_or_insert's and get_all's loads of the key included); the others wait for it and get
  // its value, or its error. The loader's error is returned as it is and nothing is stored
  // (kNotFound is a loader's "no such value"); a loader that throws gives kInternal with the
  // exception's what(). kFailedPrecondition if the cache has no loader. get() never loads.
  absl::StatusOr<V> get_or_load(const K& key) {
    if (!loaders_.one) {
      if (!loaders_.bulk) {
        return absl::FailedPreconditionError(
            "goldylox: get_or_load needs a cache built with loader() or bulk_loader()");
      }
      absl::StatusOr<value_map> got = get_all(std::span<const K>(&key, 1));
      if (!got.ok()) return got.status();
      auto it = got->find(key);
      if (it == got->end()) {
        return absl::NotFoundError("goldylox: the bulk loader returned no value for this key");
      }
      return std::move(it->second);
    }
    if (negative_ != nullptr && !engine_->contains(key)) {
      if (std::optional<absl::Status> known = negative_->find(key)) return *std::move(known);
    }
    std::optional<V> out;
    const absl::Status st = engine_->get_or_insert(
        key, [&] { return detail::guarded_load([&] { return loaders_.one(key); }); },
        [&](const V& v) { out.emplace(v); });
    if (!st.ok()) {
      if (negative_ != nullptr && absl::IsNotFound(st)) negative_->remember(key, st);
      return st;
    }
    return std::move(*out);
  }

  // The values of `keys` (any range of K; repeated keys count once): those present, and with a
  // loader those it could load. Missing keys go to the bulk_loader() in one call (one flight per
  // key: keys another thread is loading are waited for, not loaded twice), else to loader() one
  // at a time; a key loaded as kNotFound is left out. Returns the first load error other than
  // kNotFound (the keys loaded before it are stored all the same), or, with a cold tier, a
  // loaded value's store error. Without loaders, only the keys present.
  template <std::ranges::input_range R>
    requires std::convertible_to<std::ranges::range_reference_t<R>, const K&>
  absl::StatusOr<value_map> get_all(const R& keys) {
    value_map out;
    std::vector<K> missing;
    absl::flat_hash_set<K, Hash, KeyEqual> seen;
    for (const K& key : keys) {
      if (!seen.insert(key).second) continue;
      if (!engine_->visit(key, [&](const V& v) { out.emplace(key, v); })) missing.push_back(key);
    }
    if (missing.empty() || (!loaders_.bulk && !loaders_.one)) return out;
    if (loaders_.bulk) {
      if (negative_ != nullptr) {  // keys known to be absent are not asked for again
        std::erase_if(missing, [&](const K& k) { return negative_->find(k).has_value(); });
      }
      const absl::Status st = engine_->load_all(
          std::span<const K>(missing),
          [&](std::span<const K> ks) {
            return detail::guarded_load([&] { return loaders_.bulk(ks); });
          },
          [&](const K& k, const V& v) { out.insert_or_assign(k, v); });
      if (!st.ok()) return st;
      if (negative_ != nullptr) {
        for (const K& k : missing) {
          if (!out.contains(k)) {
            negative_->remember(
                k, absl::NotFoundError("goldylox: the bulk loader returned no value for this key"));
          }
        }
      }
      return out;
    }
    for (const K& key : missing) {
      absl::StatusOr<V> got = get_or_load(key);
      if (got.ok()) {
        out.insert_or_assign(key, *std::move(got));
      } else if (!absl::IsNotFound(got.status())) {
        return got.status();
      }
    }
    return out;
  }
  absl::StatusOr<value_map> get_all(std::initializer_list<K> keys) {
    return get_all<std::initializer_list<K>>(keys);
  }

  std::size_t size() const noexcept { return engine_->size(); }
  std::size_t capacity() const noexcept { return engine_->capacity(); }
  cache_stats stats() const { return engine_->stats(); }
  const cache_config& config() const noexcept { return engine_->config(); }

 private:
  using engine_type = detail::engine<K, V, Hash, KeyEqual>;
  using decision = typename engine_type::decision;
  friend builder_type;

  explicit typed_cache(std::unique_ptr<engine_type> engine) : engine_(std::move(engine)) {}

  template <class Q>
  GOLDYLOX_ALWAYS_INLINE std::optional<V> get_impl(const Q& key) const {
    return engine_->get(key);
  }

  void set_loaders(loaders_type loaders) {
    loaders_ = std::move(loaders);
    if (loaders_.negative_ttl > std::chrono::nanoseconds::zero()) {
      negative_ = std::make_unique<detail::negative_cache<K, Hash, KeyEqual>>(
          loaders_.negative_ttl, loaders_.negative_max_keys, loaders_.ticker);
    }
    if (engine_->config().refresh_after_write.count() > 0) {
      // A copy of the loaders, not `this`: the cache may move; the engine does not.
      engine_->set_refresh(
          [loaders = loaders_](const K& key) { return detail::load_one(loaders, key); });
    }
  }

  std::unique_ptr<engine_type> engine_;
  loaders_type loaders_;                                                 // set by the builder
  std::unique_ptr<detail::negative_cache<K, Hash, KeyEqual>> negative_;  // negative_cache(ttl)
};

GOLDYLOX_END_NAMESPACE
