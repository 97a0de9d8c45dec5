// Component facade/: the loaders a typed_cache can be built with (loader, bulk_loader) and how the
// cache calls them (get_or_load, get_all).
//
// A loader is the application's way to produce a missing value: absl::StatusOr<V>(const K&), or
// a bulk loader taking every missing key of a get_all at once. The engine runs it at most once
// per absent key across all threads (engine/single_flight.hpp), stores its value in the memory
// tiers and hands it to every thread that asked; a failure is handed to them as well and is
// never stored, so the next request loads again. absl::NotFoundError is a loader's way to say
// "no such value": get_or_load returns it, get_all leaves the key out.
//
// Refresh (refresh_after_write(d)): an entry read d or more after its write is reloaded by the
// same loaders (load_one), on the background pool, while reads keep its old value
// (engine/refresh.hpp).
//
// Negative caching (negative_cache(ttl)): a key the loader answered kNotFound for is remembered
// for ttl, so that a key asked for again and again (does this user exist?) reaches the loader
// once per ttl rather than on every request. Only kNotFound is remembered: other failures
// (kUnavailable, kDeadlineExceeded, ...) are transient, and remembering them would prolong an
// outage. The record lives beside the tiers, not in them: it is consulted on a miss only (a
// hit never sees it), it is bounded (the oldest record goes first), and a put or remove of the
// key drops it, so a value put after the miss is never hidden by it.
//
// A loader that throws is treated as one that failed: the exception becomes kInternal with its
// what(), because an exception thrown through a get_all would have to skip keys other threads are
// waiting for. Loaders run on the calling thread, outside every lock of the cache, concurrently
// with each other: they must be safe to call from many threads at once.
#pragma once

#include <atomic>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <type_traits>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "goldylox/detail/common/expiry_clock.hpp"
#include "goldylox/detail/common/hash.hpp"
#include "goldylox/detail/engine/single_flight.hpp"
#include "goldylox/detail/facade/bulk.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

// The kNotFound answers remembered for a ttl (see the header comment). Sharded by hash so that
// loads of different keys rarely meet on a lock; `any_` lets a put skip every lock while
// nothing is remembered, which is the common case.
template <class K, class Hash, class KeyEqual>
class negative_cache {
 public:
  negative_cache(std::chrono::nanoseconds ttl, std::size_t max_keys, ticker_function ticker)
      : ttl_(ttl),
        per_shard_(std::max<std::size_t>(1, (max_keys + shard_count - 1) / shard_count)),
        ticker_(ticker ? std::move(ticker) : ticker_function(steady_ticker)) {}

  // The remembered answer for `key`, if it has not expired.
  std::optional<absl::Status> find(const K& key) {
    if (any_.load(std::memory_order_acquire) == 0) return std::nullopt;
    shard& sh = shard_of(key);
    std::lock_guard lock(sh.mu);
    auto it = sh.map.find(key);
    if (it == sh.map.end()) return std::nullopt;
    if (ticker_() >= it->second.deadline) {
      sh.map.erase(it);
      any_.fetch_sub(1, std::memory_order_relaxed);
      return std::nullopt;
    }
    return it->second.status;
  }

  void remember(const K& key, const absl::Status& status) {
    shard& sh = shard_of(key);
    const std::chrono::nanoseconds deadline = ticker_() + ttl_;
    std::lock_guard lock(sh.mu);
    auto [it, inserted] = sh.map.insert_or_assign(key, record{status, deadline});
    if (inserted) any_.fetch_add(1, std::memory_order_relaxed);
    sh.order.push_back(key);
    // The oldest first; a key remembered twice is in `order` twice, and its older position
    // finds the map entry gone or newer (then skipped unless its time is up).
    while (sh.map.size() > per_shard_ || sh.order.size() > 2 * per_shard_) {
      auto old = sh.map.find(sh.order.front());
      if (old != sh.map.end() &&
          (sh.map.size() > per_shard_ || ticker_() >= old->second.deadline)) {
        sh.map.erase(old);
        any_.fetch_sub(1, std::memory_order_relaxed);
      }
      sh.order.pop_front();
    }
  }

  // A put or remove of `key`: whatever was remembered no longer holds.
  void forget(const K& key) {
    if (any_.load(std::memory_order_acquire) == 0) return;
    shard& sh = shard_of(key);
    std::lock_guard lock(sh.mu);
    if (sh.map.erase(key) != 0) any_.fetch_sub(1, std::memory_order_relaxed);
  }

  std::size_t size() const noexcept { return any_.load(std::memory_order_relaxed); }

 private:
  static constexpr std::size_t shard_count = 16;
  struct record {
    absl::Status status;
    std::chrono::nanoseconds deadline;
  };
  struct shard {
    std::mutex mu;
    absl::flat_hash_map<K, record, Hash, KeyEqual> map;
    std::deque<K> order;
  };
  // High bits of a remix: the maps inside use the hash's low bits, which a modulo would make
  // equal across a shard.
  shard& shard_of(const K& key) {
    return shards_[splitmix_mix(static_cast<std::uint64_t>(Hash{}(key))) >> 60];
  }

  const std::chrono::nanoseconds ttl_;
  const std::size_t per_shard_;
  const ticker_function ticker_;
  std::atomic<std::size_t> any_{0};
  shard shards_[shard_count];
};

template <class K, class V, class Hash, class KeyEqual>
struct cache_loaders {
  using value_map = absl::flat_hash_map<K, V, Hash, KeyEqual>;
  std::function<absl::StatusOr<V>(const K&)> one;
  std::function<absl::StatusOr<value_map>(std::span<const K>)> bulk;
  // negative_cache(ttl, max_keys): ttl 0 means off.
  std::chrono::nanoseconds negative_ttl{0};
  std::size_t negative_max_keys = 0;
  ticker_function ticker;
  // A setter was given an empty callable or an invalid value (build() reports it).
  bool empty_given = false;
  bool bad_negative = false;
};

// Calls load(), turning an exception into kInternal (see the header comment).
template <class F>
auto guarded_load(F&& load) noexcept -> decltype(load()) {
  try {
    return load();
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("goldylox: the loader threw: ", e.what()));
  } catch (...) {
    return absl::InternalError("goldylox: the loader threw (not a std::exception)");
  }
}

// One key's value by the loaders: loader() if set, else the bulk loader asked for this key alone
// (kNotFound if it returns no value for it). A loader that throws gives kInternal (guarded_load).
// refresh_after_write's reloads.
template <class K, class V, class Hash, class KeyEqual>
absl::StatusOr<V> load_one(const cache_loaders<K, V, Hash, KeyEqual>& loaders, const K& key) {
  if (loaders.one) return guarded_load([&] { return loaders.one(key); });
  auto got = guarded_load([&] { return loaders.bulk(std::span<const K>(&key, 1)); });
  if (!got.ok()) return got.status();
  auto it = got->find(key);
  if (it == got->end()) {
    return absl::NotFoundError("goldylox: the bulk loader returned no value for this key");
  }
  return std::move(it->second);
}

// What a bulk loader may return: absl::StatusOr of any range of (key, value) pairs (a map, a
// vector of pairs).
template <class R, class K, class V>
concept bulk_load_result = is_status_or_v<R> && key_value_range<typename R::value_type, K> &&
                           std::convertible_to<pair_value_t<typename R::value_type>, V>;

// True if the callable is empty (a null function pointer, an empty std::function).
template <class F>
bool callable_is_empty(const F& f) noexcept {
  if constexpr (std::is_constructible_v<bool, const F&>) {
    return !static_cast<bool>(f);
  } else {
    return false;
  }
}

}  // namespace detail
GOLDYLOX_END_NAMESPACE
