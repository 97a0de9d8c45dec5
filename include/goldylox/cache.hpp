// goldylox::cache<K> — a concurrent cache whose entries may hold values of any copyable type.
//
//   auto made = goldylox::cache<std::string>::builder().hot_tier_max_entries(100'000).build();
//   goldylox::cache<std::string>& cache = *made;
//   cache.put("user:1", User{1, "Ada"});
//   absl::StatusOr<std::optional<User>> u = cache.get<User>("user:1");   // the User
//   absl::StatusOr<std::optional<int>> x = cache.get<int>("user:1");     // kFailedPrecondition
//
// Each entry remembers its value's type; asking for it as another type returns
// kFailedPrecondition (the message names both types) and leaves the entry untouched. put()
// overwrites whatever was stored, of any type. Concurrency guarantees and tiers are typed_cache's:
// hot-tier reads are lock-free and write nothing shared; writes to a key are atomic with respect
// to each other.
// Values up to 24 bytes live inside the entry; larger ones cost one more allocation.
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

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "goldylox/concepts.hpp"
#include "goldylox/config.hpp"
#include "goldylox/detail/common/any_value.hpp"
#include "goldylox/detail/engine/engine.hpp"
#include "goldylox/detail/facade/builder.hpp"
#include "goldylox/detail/facade/bulk.hpp"
#include "goldylox/stats.hpp"

GOLDYLOX_BEGIN_NAMESPACE

namespace detail {

inline absl::Status type_mismatch(const type_descriptor& stored, const type_descriptor& asked) {
  // Debian's abseil has its own absl::string_view (ABSL_OPTION_USE_STD_STRING_VIEW is 0), which
  // StrCat wants; std::string_view does not convert to it implicitly.
  const absl::string_view have(stored.name.data(), stored.name.size());
  const absl::string_view want(asked.name.data(), asked.name.size());
  return absl::FailedPreconditionError(absl::StrCat("goldylox: type mismatch: the entry holds '",
                                                    have, "' but '", want, "' was requested"));
}

// Copies the value out of `stored` as V, or records a type mismatch.
template <class V>
struct typed_reader {
  std::optional<V> value;
  const type_descriptor* mismatch = nullptr;

  void operator()(const any_value& stored) {
    if (stored.holds<V>()) {
      value.emplace(stored.get<V>());
    } else {
      mismatch = &stored.type();
    }
  }
  absl::StatusOr<std::optional<V>> result() && {
    (void)registered_type<V>;  // a type read from a cache can be read back from its cold tier
    if (mismatch != nullptr) return type_mismatch(*mismatch, descriptor_of<V>);
    return std::move(value);
  }
};

}  // namespace detail

template <class K, class Hash = default_hash<K>, class KeyEqual = std::equal_to<>>
  requires cache_key<K, Hash>
class cache {
 public:
  using key_type = K;
  using builder_type = detail::facade_builder<cache>;

  static builder_type builder() { return {}; }

  cache(cache&&) noexcept = default;
  cache& operator=(cache&&) noexcept = default;  // a moved-from cache may only be destroyed or
                                                 // assigned to

  // Inserts or overwrites, whatever type the key held before. With a cold tier, returns the error
  // that kept the key's older cold record from being removed (a full disk, an I/O error): then
  // nothing changed. An lvalue key is copied only when it is inserted or a new node is built.
  template <cache_value V>
  absl::Status put(const K& key, V value) {
    return engine_->assign(key, detail::any_value(std::in_place_type<V>, std::move(value)));
  }
  template <cache_value V>
  absl::Status put(K&& key, V value) {
    return engine_->assign(std::move(key),
                           detail::any_value(std::in_place_type<V>, std::move(value)));
  }
  // put() of a value that expires `ttl` from now, whatever expire_after_write or
  // expire_after_access say. kInvalidArgument for ttl <= 0; kFailedPrecondition for a cache
  // built without expiry (enable_expiry, expire_after_write or expire_after_access).
  template <cache_value V>
  absl::Status put(const K& key, V value, std::chrono::nanoseconds ttl) {
    return engine_->assign_for(key, detail::any_value(std::in_place_type<V>, std::move(value)),
                               ttl);
  }

  // The value as V; nullopt if absent; kFailedPrecondition if the key holds another type.
  template <cache_value V>
  GOLDYLOX_ALWAYS_INLINE absl::StatusOr<std::optional<V>> get(const K& key) const {
    return get_impl<V>(key);
  }
  template <cache_value V, class Q>
    requires detail::transparent_lookup<Q, K, Hash, KeyEqual>
  GOLDYLOX_ALWAYS_INLINE absl::StatusOr<std::optional<V>> get(const Q& key) const {
    return get_impl<V>(key);
  }

  // Calls f(const V&) on the stored value without copying it. Returns whether the key was found,
  // or kFailedPrecondition (f not called) if it holds another type. Keep f short; do not block or
  // call into the cache (it runs with the calling thread's epoch pinned).
  template <cache_value V, class F>
  absl::StatusOr<bool> visit(const K& key, F&& f) const {
    return visit_impl<V>(key, f);
  }
  template <cache_value V, class Q, class F>
    requires detail::transparent_lookup<Q, K, Hash, KeyEqual>
  absl::StatusOr<bool> visit(const Q& key, F&& f) const {
    return visit_impl<V>(key, f);
  }

  // Looks up many keys at once, overlapping their memory accesses; out[i] is keys[i]'s result.
  template <cache_value V>
  void get_many(std::span<const K> keys, std::span<absl::StatusOr<std::optional<V>>> out) const {
    engine_->visit_many(keys.data(), std::min(keys.size(), out.size()),
                        [&](std::size_t i, const detail::any_value* stored) {
                          detail::typed_reader<V> reader;
                          if (stored != nullptr) reader(*stored);
                          out[i] = std::move(reader).result();
                        });
  }

  // Puts every (key, value) pair of `entries` (a map, a vector of pairs, ...; the values' type,
  // decayed, is the type stored) as put() would, moving them out of a range passed as an rvalue.
  // Each key is written atomically, the batch is not: a key that fails (with a cold tier, see
  // put) is left unchanged and the others are still written. OK, or the first failure's code
  // with how many keys failed.
  template <class R>
    requires detail::key_value_range<R, K> && cache_value<detail::pair_value_t<R>>
  absl::Status put_all(R&& entries) {
    using V = detail::pair_value_t<R>;
    return detail::put_each(
        std::forward<R>(entries), [this](auto&& key, auto&& value) -> absl::Status {
          return put<V>(std::forward<decltype(key)>(key), V(std::forward<decltype(value)>(value)));
        });
  }

  // The values of `keys` (any range of K; repeated keys count once) that are present, as V, in a
  // map; kFailedPrecondition, naming the key's position, if one holds another type.
  template <cache_value V, std::ranges::input_range R>
    requires std::convertible_to<std::ranges::range_reference_t<R>, const K&>
  absl::StatusOr<absl::flat_hash_map<K, V, Hash, KeyEqual>> get_all(const R& keys) const {
    absl::flat_hash_map<K, V, Hash, KeyEqual> out;
    std::size_t position = 0;
    for (const K& key : keys) {
      absl::StatusOr<std::optional<V>> got = get<V>(key);
      if (!got.ok()) {
        return absl::FailedPreconditionError(
            absl::StrCat("goldylox: get_all: key #", position, ": ", got.status().message()));
      }
      if (got->has_value()) out.insert_or_assign(key, **std::move(got));
      ++position;
    }
    return out;
  }
  template <cache_value V>
  absl::StatusOr<absl::flat_hash_map<K, V, Hash, KeyEqual>> get_all(
      std::initializer_list<K> keys) const {
    return get_all<V, std::initializer_list<K>>(keys);
  }

  // Removes every key of `keys` (any range of K, or of a transparent key type), whatever type
  // each holds, as remove() would: how many were present, or the first failure's code with how
  // many keys failed (the others are removed).
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

  // Returns whether the key was present (of any type), or (with a cold tier) the error that kept
  // its cold record from being removed; the cache is then unchanged. A transparent key that
  // cannot make a K reaches a key held only by the cold tier not at all: false, nothing removed.
  absl::StatusOr<bool> remove(const K& key) { return engine_->erase(key); }
  template <class Q>
    requires detail::transparent_lookup<Q, K, Hash, KeyEqual>
  absl::StatusOr<bool> remove(const Q& key) {
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

  // Inserts only if absent: nullopt if inserted, else the existing value; kFailedPrecondition if
  // the existing value has another type.
  template <cache_value V>
  absl::StatusOr<std::optional<V>> put_if_absent(K key, V value) {
    detail::typed_reader<V> existing;
    const auto done = engine_->compute(std::move(key), [&](const detail::any_value* current) {
      if (current != nullptr) {
        existing(*current);
        return decision::keep();
      }
      return decision::assign(std::in_place_type<V>, std::move(value));
    });
    if (!done.ok()) return done.status();
    return std::move(existing).result();
  }

  // Overwrites only if present: the previous value, or nullopt if absent (nothing stored);
  // kFailedPrecondition, entry untouched, if the existing value has another type.
  template <cache_value V>
  absl::StatusOr<std::optional<V>> replace(K key, V value) {
    detail::typed_reader<V> previous;
    const auto done = engine_->compute(std::move(key), [&](const detail::any_value* current) {
      if (current == nullptr) return decision::keep();
      previous(*current);
      if (previous.mismatch != nullptr) return decision::keep();
      return decision::assign(std::in_place_type<V>, std::move(value));
    });
    if (!done.ok()) return done.status();
    return std::move(previous).result();
  }

  // Stores `desired` only if the key holds a V equal to `expected` (V's operator==). Returns
  // whether it swapped; kFailedPrecondition if the key holds another type.
  template <cache_value V>
    requires std::equality_comparable<V>
  absl::StatusOr<bool> compare_and_swap(K key, const V& expected, V desired) {
    bool swapped = false;
    const detail::type_descriptor* mismatch = nullptr;
    const auto done = engine_->compute(std::move(key), [&](const detail::any_value* current) {
      if (current == nullptr) return decision::keep();
      if (!current->holds<V>()) {
        mismatch = &current->type();
        return decision::keep();
      }
      if (!(current->get<V>() == expected)) return decision::keep();
      swapped = true;
      return decision::assign(std::in_place_type<V>, std::move(desired));
    });
    if (!done.ok()) return done.status();
    if (mismatch != nullptr) return detail::type_mismatch(*mismatch, detail::descriptor_of<V>);
    return swapped;
  }

  // Returns the key's value, calling factory() to make it if absent; the factory runs at most
  // once per absent key however many threads ask. A throwing factory's exception reaches this
  // caller and nothing is inserted. kFailedPrecondition if the key holds another type. V is the
  // factory's (decayed) return type unless given: get_or_insert(k, [] { return User{}; }).
  template <class F>
    requires std::invocable<F&> && cache_value<std::decay_t<std::invoke_result_t<F&>>>
  absl::StatusOr<std::decay_t<std::invoke_result_t<F&>>> get_or_insert(K key, F&& factory) {
    return get_or_insert<std::decay_t<std::invoke_result_t<F&>>>(std::move(key),
                                                                 std::forward<F>(factory));
  }
  template <cache_value V, class F>
    requires std::is_invocable_r_v<V, F&>
  absl::StatusOr<V> get_or_insert(K key, F&& factory) {
    detail::typed_reader<V> reader;
    const absl::Status st = engine_->get_or_insert(
        key, [&] { return detail::any_value(std::in_place_type<V>, V(std::invoke(factory))); },
        [&](const detail::any_value& stored) { reader(stored); });
    if (!st.ok()) return st;
    absl::StatusOr<std::optional<V>> result = std::move(reader).result();
    if (!result.ok()) return result.status();
    return std::move(**result);
  }

  std::size_t size() const noexcept { return engine_->size(); }
  std::size_t capacity() const noexcept { return engine_->capacity(); }
  cache_stats stats() const { return engine_->stats(); }
  const cache_config& config() const noexcept { return engine_->config(); }

 private:
  using engine_type = detail::engine<K, detail::any_value, Hash, KeyEqual>;
  using decision = typename engine_type::decision;
  friend builder_type;

  explicit cache(std::unique_ptr<engine_type> engine) : engine_(std::move(engine)) {}

  template <class V, class Q>
  GOLDYLOX_ALWAYS_INLINE absl::StatusOr<std::optional<V>> get_impl(const Q& key) const {
    detail::typed_reader<V> reader;
    engine_->visit(key, reader);
    return std::move(reader).result();
  }

  template <class V, class Q, class F>
  absl::StatusOr<bool> visit_impl(const Q& key, F& f) const {
    const detail::type_descriptor* mismatch = nullptr;
    const bool found = engine_->visit(key, [&](const detail::any_value& stored) {
      if (stored.holds<V>()) {
        f(stored.get<V>());
      } else {
        mismatch = &stored.type();
      }
    });
    if (mismatch != nullptr) return detail::type_mismatch(*mismatch, detail::descriptor_of<V>);
    return found;
  }

  std::unique_ptr<engine_type> engine_;
};

GOLDYLOX_END_NAMESPACE
