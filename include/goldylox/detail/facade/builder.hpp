// Component facade/ (with the public cache.hpp and typed_cache.hpp). Owns the handles users hold
// and their build(). May call the engine, config.hpp and common/; never a tier directly (the
// engine opens the cold store, the facades only check that the types can go to disk).
//
// The build() shared by cache<K> and typed_cache<K, V>: resolve and validate the options, then
// allocate the engine. Facades expose a private `engine_type` and a private constructor taking
// the engine, and befriend this builder.
#pragma once

#include <chrono>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "goldylox/config.hpp"
#include "goldylox/detail/common/serialization.hpp"
#include "goldylox/detail/engine/engine.hpp"
#include "goldylox/detail/facade/loading.hpp"
#include "goldylox/removal.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

// A facade's loaders (typed_cache has them; cache<K> does not).
template <class Cache>
struct loaders_of {
  struct type {};
};
template <class Cache>
  requires requires { typename Cache::loaders_type; }
struct loaders_of<Cache> {
  using type = typename Cache::loaders_type;
};

// The build() shared by every facade: resolve and validate the options, then allocate the engine.
template <class Cache>
class facade_builder : public basic_builder<facade_builder<Cache>> {
  using loaders_type = typename loaders_of<Cache>::type;
  using weigher_type = typename Cache::engine_type::weigher_type;

 public:
  // typed_cache: the weight of an entry under max_weight, std::size_t(const K&, const V&),
  // instead of the default estimate of its bytes (weight.hpp). Called once per value written
  // (twice with a cold tier, which refuses a too heavy value before the disk is touched), under
  // a lock of the tier it goes to: it must be quick, must not call back into the cache,
  // and must give equal values the same weight. 0 is allowed (such entries count against the
  // entry bound only); a value heavier than its share of the budget is refused with
  // kInvalidArgument; an exception it throws reaches the caller of the write, the cache
  // unchanged. Without max_weight, or given an empty callable, build() fails with
  // kInvalidArgument.
  template <class F>
    requires requires { typename Cache::mapped_type; } &&
             std::is_invocable_r_v<std::size_t, const F&, const typename Cache::key_type&,
                                   const typename Cache::mapped_type&>
  facade_builder& weigher(F weigh) {
    weigher_empty_ = callable_is_empty(weigh);
    weigher_ = [weigh = std::move(weigh)](const typename Cache::key_type& k,
                                          const typename Cache::mapped_type& v) {
      return static_cast<std::size_t>(weigh(k, v));
    };
    return *this;
  }

  // typed_cache: the loader get_or_load and get_all call for a missing key,
  // absl::StatusOr<V>(const K&) (or anything convertible to it), called from many threads at
  // once (facade/loading.hpp). An empty callable fails build() with kInvalidArgument.
  template <class F>
    requires requires { typename Cache::mapped_type; } &&
             std::is_invocable_r_v<absl::StatusOr<typename Cache::mapped_type>, const F&,
                                   const typename Cache::key_type&>
  facade_builder& loader(F load) {
    loaders_.empty_given |= callable_is_empty(load);
    loaders_.one = [load = std::move(load)](const typename Cache::key_type& key) {
      return absl::StatusOr<typename Cache::mapped_type>(load(key));
    };
    return *this;
  }

  // typed_cache with a loader() or bulk_loader(): an entry read `d` or more after it was written
  // is reloaded by the loader on the background pool, once per write, while reads keep getting
  // its current value without waiting (Caffeine's refreshAfterWrite). The reloaded value replaces
  // it only if nothing wrote, removed or evicted the entry meanwhile (the listener hears
  // `replaced`); a reload answering kNotFound removes it (`erased`); any other failure keeps the
  // old value, is counted in load_failures, and the next read asks again. Turns expiry on (as
  // enable_expiry: with expire_after_write, an entry that expires first is gone, not refreshed).
  // build() fails with kInvalidArgument for d <= 0, without a loader, with
  // enable_background_workers(false), or with a cold tier or memory_layout::two_tables (not
  // supported yet). Reloads run one at a time on one pool thread: give a cache with slow loads a
  // background_pool of its own.
  facade_builder& refresh_after_write(std::chrono::nanoseconds d)
    requires requires { typename Cache::loaders_type; }
  {
    this->edit_request().refresh_after_write = d;
    return *this;
  }

  // typed_cache: remembers for `ttl` each key a loader answered kNotFound for, so that asking
  // for it again within ttl returns kNotFound without calling the loader (facade/loading.hpp);
  // at most `max_keys` keys are remembered, the oldest dropped first, and a put or remove of the
  // key drops its record. A ttl <= 0 or max_keys == 0 fails build() with kInvalidArgument.
  facade_builder& negative_cache(std::chrono::nanoseconds ttl, std::size_t max_keys = 10'000)
    requires requires { typename Cache::mapped_type; }
  {
    loaders_.bad_negative = ttl <= std::chrono::nanoseconds::zero() || max_keys == 0;
    loaders_.negative_ttl = ttl;
    loaders_.negative_max_keys = max_keys;
    return *this;
  }

  // The clock of the cache's time-based features (expiry; a typed_cache's negative_cache): a
  // monotonic time in nanoseconds, returned as std::chrono::nanoseconds (or convertible to it).
  // Without one, expiry reads a clock of about a millisecond's resolution (expiry_clock.hpp) and
  // negative_cache steady_clock. Tests pass their own to move time without sleeping. Called
  // from many threads at once, on every read with expiry: it must be cheap and must not call
  // into the cache. An empty callable fails build() with kInvalidArgument.
  template <class F>
    requires std::is_invocable_r_v<std::chrono::nanoseconds, const F&>
  facade_builder& ticker(F now) {
    ticker_empty_ = callable_is_empty(now);
    ticker_ = [now = std::move(now)] { return std::chrono::nanoseconds(now()); };
    return *this;
  }

  // typed_cache: the loader get_all calls once with every key it misses: returns absl::StatusOr
  // of a range of (key, value) pairs (a map, a vector of pairs). Keys it leaves out are absent;
  // pairs for keys not asked for are stored too. Without loader(), get_or_load uses it for
  // single keys. An empty callable fails build() with kInvalidArgument.
  template <class F>
    requires requires { typename Cache::mapped_type; } &&
             std::is_invocable_v<const F&, std::span<const typename Cache::key_type>> &&
             bulk_load_result<
                 std::invoke_result_t<const F&, std::span<const typename Cache::key_type>>,
                 typename Cache::key_type, typename Cache::mapped_type>
  facade_builder& bulk_loader(F load) {
    using K = typename Cache::key_type;
    using V = typename Cache::mapped_type;
    using map = typename loaders_type::value_map;
    loaders_.empty_given |= callable_is_empty(load);
    loaders_.bulk = [load = std::move(load)](std::span<const K> keys) -> absl::StatusOr<map> {
      auto got = load(keys);
      if (!got.ok()) return got.status();
      if constexpr (std::is_same_v<std::remove_cvref_t<decltype(*got)>, map>) {
        return *std::move(got);
      } else {
        map out;
        for (auto&& entry : *got)
          out.insert_or_assign(K(std::get<0>(entry)), V(std::get<1>(entry)));
        return out;
      }
    };
    return *this;
  }

  // Hears of every entry that leaves the cache: listener(const K&, const V&, removal_cause) for a
  // typed_cache, listener(const K&, const value_view&, removal_cause) for a cache<K>
  // (goldylox/removal.hpp). It runs on the thread whose call removed the entry (the background
  // pool's for expiry sweeps and moves it makes), after that call has released its locks and
  // before it returns, so it may call into this or any cache; what it blocks is that thread
  // only. Moves between tiers are not removals. An exception it throws is caught and counted
  // (stats().removal_listener_failures); the cache is unaffected. With a listener, a put of a
  // present key takes the key's lock (to read the value it replaces). An empty callable, or a
  // cache with a cold tier (not supported yet), fails build() with kInvalidArgument.
  template <class F>
    requires(requires { typename Cache::mapped_type; } &&
             std::is_invocable_v<const F&, const typename Cache::key_type&,
                                 const typename Cache::mapped_type&, removal_cause>) ||
            (!requires { typename Cache::mapped_type; } &&
             std::is_invocable_v<const F&, const typename Cache::key_type&, const value_view&,
                                 removal_cause>)
  facade_builder& removal_listener(F listener) {
    using K = typename Cache::key_type;
    listener_empty_ = callable_is_empty(listener);
    if constexpr (requires { typename Cache::mapped_type; }) {
      listener_ = [listener = std::move(listener)](
                      const K& key, const typename Cache::mapped_type& value, removal_cause cause) {
        listener(key, value, cause);
      };
    } else {
      listener_ = [listener = std::move(listener)](const K& key, const any_value& value,
                                                   removal_cause cause) {
        listener(key, value_view(value), cause);
      };
    }
    return *this;
  }

  // Each value's own time to live, decided from the value when it is written (as Caffeine's
  // Expiry): duration(const K&, const V&) for a typed_cache, duration(const K&, const
  // value_view&) for a cache<K>, returning std::chrono::nanoseconds (or convertible to it); <= 0
  // expires the value at once, std::chrono::nanoseconds::max() never. Called on every write that
  // stores a value (put, put_if_absent, replace, compare_and_swap, a load: the way to give
  // loaded values their own ttl), under the key's lock: it must be quick and must not call into
  // the cache; what it throws reaches the caller of the write, the cache unchanged. A put with
  // its own ttl overrides it. Turns expiry on (as enable_expiry); cannot be combined with
  // expire_after_write or expire_after_access (kInvalidArgument), nor given an empty callable.
  template <class F>
    requires(requires { typename Cache::mapped_type; } &&
             std::is_invocable_r_v<std::chrono::nanoseconds, const F&,
                                   const typename Cache::key_type&,
                                   const typename Cache::mapped_type&>) ||
            (!requires { typename Cache::mapped_type; } &&
             std::is_invocable_r_v<std::chrono::nanoseconds, const F&,
                                   const typename Cache::key_type&, const value_view&>)
  facade_builder& expire_after(F duration) {
    using K = typename Cache::key_type;
    expire_after_empty_ = callable_is_empty(duration);
    if constexpr (requires { typename Cache::mapped_type; }) {
      expire_after_ = [duration = std::move(duration)](const K& key,
                                                       const typename Cache::mapped_type& value) {
        return std::chrono::nanoseconds(duration(key, value));
      };
    } else {
      expire_after_ = [duration = std::move(duration)](const K& key, const any_value& value) {
        return std::chrono::nanoseconds(duration(key, value_view(value)));
      };
    }
    this->enable_expiry();
    return *this;
  }

  // kInvalidArgument for invalid or conflicting options, kResourceExhausted if the tables cannot
  // be allocated; with a cold tier, what opening its directory reports (kPermissionDenied,
  // kNotFound, kFailedPrecondition when another cache holds it).
  absl::StatusOr<Cache> build() const {
    using engine_type = typename Cache::engine_type;
    absl::StatusOr<cache_config> config =
        resolve_config(this->request(), engine_type::hot_tier_type::bytes_per_entry(),
                       engine_type::warm_tier_type::bytes_per_entry());
    if (!config.ok()) return config.status();
    policy_factory make_policy;
    if (config->warm_tier_max_entries != 0) {
      absl::StatusOr<policy_factory> made = resolve_warm_policy(this->request());
      if (!made.ok()) return made.status();
      make_policy = *std::move(made);
    }
    if (expire_after_empty_) {
      return absl::InvalidArgumentError("goldylox: expire_after() was given an empty callable");
    }
    if (expire_after_ && (!config->expiry || config->expire_after_write.count() != 0 ||
                          config->expire_after_access.count() != 0)) {
      return absl::InvalidArgumentError(
          !config->expiry ? "goldylox: expire_after needs expiry, which enable_expiry(false) "
                            "turned off after it"
                          : "goldylox: expire_after (each value's own ttl) cannot be combined "
                            "with expire_after_write or expire_after_access; fold their "
                            "duration into it");
    }
    if (listener_empty_ || (listener_ && !config->cold_tier_storage_path.empty())) {
      return absl::InvalidArgumentError(
          listener_empty_ ? "goldylox: removal_listener() was given an empty callable"
                          : "goldylox: a removal listener is not available with a cold tier yet "
                            "(removals from disk are not reported); drop "
                            "cold_tier_storage_path or the listener");
    }
    std::unique_ptr<cold_store> cold;
    if (!config->cold_tier_storage_path.empty()) {
      if constexpr (!engine_type::cold_capable) {
        return absl::InvalidArgumentError(
            "goldylox: the cold tier needs a key type cereal can serialize (and default-"
            "construct); this cache's key type cannot be, so drop cold_tier_storage_path or "
            "give the key a serialize function");
      } else {
        if constexpr (requires { typename Cache::mapped_type; }) {
          if constexpr (!cold_serializable<typename Cache::mapped_type>) {
            return absl::InvalidArgumentError(
                "goldylox: the cold tier of a typed_cache needs a value type cereal can "
                "serialize (and default-construct)");
          }
        }
        auto opened = engine_type::open_cold(*config);
        if (!opened.ok()) return opened.status();
        cold = *std::move(opened);
      }
    }
    if constexpr (requires { typename Cache::loaders_type; }) {
      if (loaders_.empty_given) {
        return absl::InvalidArgumentError(
            "goldylox: loader() or bulk_loader() was given an empty callable");
      }
      if (loaders_.bad_negative) {
        return absl::InvalidArgumentError(
            "goldylox: negative_cache needs a ttl above zero and max_keys of at least 1");
      }
      if (config->refresh_after_write.count() > 0 && !loaders_.one && !loaders_.bulk) {
        return absl::InvalidArgumentError(
            "goldylox: refresh_after_write reloads entries with the cache's loader; give it a "
            "loader() or bulk_loader()");
      }
    }
    if (ticker_empty_) {
      return absl::InvalidArgumentError("goldylox: ticker() was given an empty callable");
    }
    if (weigher_empty_ || (weigher_ && config->max_weight == 0)) {
      return absl::InvalidArgumentError(
          weigher_empty_ ? "goldylox: weigher() was given an empty callable"
                         : "goldylox: a weigher needs max_weight (the budget it weighs against)");
    }
    try {
      Cache made(std::make_unique<engine_type>(*config, std::move(make_policy), std::move(cold),
                                               weigher_, ticker_, listener_, expire_after_));
      if constexpr (requires { typename Cache::loaders_type; }) {
        loaders_type loaders = loaders_;
        loaders.ticker = ticker_;
        made.set_loaders(std::move(loaders));
      }
      return made;
    } catch (const std::bad_alloc&) {
      return absl::ResourceExhaustedError(
          "goldylox: could not allocate the cache's tiers; lower max_entries, "
          "hot_tier_max_entries or warm_tier_max_entries");
    } catch (const std::invalid_argument& e) {
      // A user policy refusing its capacity, or a weight budget smaller than a tier's shards.
      const std::string what = e.what();
      if (what.starts_with("goldylox:")) return absl::InvalidArgumentError(what);
      return absl::InvalidArgumentError(
          absl::StrCat("goldylox: ", what.starts_with("warm tier:") ? "" : "warm tier: ", what));
    }
  }

 private:
  loaders_type loaders_;
  weigher_type weigher_;  // typed_cache's weigher(); empty: the default (with max_weight)
  bool weigher_empty_ = false;
  ticker_function ticker_;  // empty: the features' default clocks
  bool ticker_empty_ = false;
  typename Cache::engine_type::listener_type listener_;  // removal_listener(); empty: none
  bool listener_empty_ = false;
  typename Cache::engine_type::expiry_function expire_after_;  // expire_after(); empty: none
  bool expire_after_empty_ = false;
};

}  // namespace detail

GOLDYLOX_END_NAMESPACE
