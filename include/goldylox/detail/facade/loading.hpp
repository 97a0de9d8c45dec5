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
// A loader that throws is treated as one that failed: the exception becomes kInternal with its
// what(), because an exception thrown through a get_all would have to skip keys other threads are
// waiting for. Loaders run on the calling thread, outside every lock of the cache, concurrently
// with each other: they must be safe to call from many threads at once.
#pragma once

#include <concepts>
#include <exception>
#include <functional>
#include <span>
#include <type_traits>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "goldylox/detail/facade/bulk.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

template <class K, class V, class Hash, class KeyEqual>
struct cache_loaders {
  using value_map = absl::flat_hash_map<K, V, Hash, KeyEqual>;
  std::function<absl::StatusOr<V>(const K&)> one;
  std::function<absl::StatusOr<value_map>(std::span<const K>)> bulk;
  // A setter was given an empty callable (build() reports it).
  bool empty_given = false;
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

template <class T>
inline constexpr bool is_status_or_v = false;
template <class T>
inline constexpr bool is_status_or_v<absl::StatusOr<T>> = true;

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
