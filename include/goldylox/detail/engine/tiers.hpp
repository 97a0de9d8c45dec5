// The engine's tier stack: the hot tier, the optional warm and cold tiers, and the counters they
// share, owned in one place so that each of the engine's jobs (routing in engine.hpp, coherence in
// coherence.hpp, demotion in demotion.hpp, promotion in promotion.hpp, statistics in stats.hpp)
// works on the same tiers without owning them.
//
// Owns: the tiers and the striped counters (declared first: the hot tier counts into them).
// Invariant: the memory tiers are exclusive (coherence.hpp); `warm` and `cold` are fixed at
// construction, so their null tests need no synchronisation.
// May call: the tiers (hot/, warm/, cold/), never the facade.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

#include "absl/status/statusor.h"
#include "goldylox/config.hpp"
#include "goldylox/detail/cold/tier.hpp"
#include "goldylox/detail/common/any_value.hpp"
#include "goldylox/detail/common/counters.hpp"
#include "goldylox/detail/common/expiry_clock.hpp"
#include "goldylox/detail/common/weight.hpp"
#include "goldylox/detail/engine/governor.hpp"
#include "goldylox/detail/engine/notices.hpp"
#include "goldylox/detail/hot/table.hpp"
#include "goldylox/detail/warm/policy/any_policy.hpp"
#include "goldylox/detail/warm/tier.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

// The cold store's options from a validated config.
inline cold_store_options cold_options(const cache_config& c) {
  cold_store_options o;
  o.path = c.cold_tier_storage_path;
  o.max_bytes = c.cold_tier_max_bytes;
  o.segment_bytes = c.cold_tier_segment_bytes;
  o.durability = c.cold_tier_durability;
  o.sync_interval = std::chrono::milliseconds(c.cold_tier_sync_interval_ms);
  o.adaptive = c.cold_tier_codec == "adaptive";
  o.codec = c.cold_tier_codec == "lz4"      ? codec_id::lz4
            : c.cold_tier_codec == "brotli" ? codec_id::brotli
            : c.cold_tier_codec == "none"   ? codec_id::none
                                            : codec_id::zstd;
  o.codec_level = c.compression_level;
  o.strict_open = c.cold_tier_strict_open;
  if (c.background_pool) o.pool = background_pool_access::pool(*c.background_pool);
  return o;
}

template <class K, class S, class Hash, class KeyEqual>
struct tier_stack {
  using hot_type = hot_table<K, S, Hash, KeyEqual>;
  using warm_type = warm_tier<K, S, any_policy, Hash, KeyEqual>;
  using cold_type = cold_tier<K, S>;
  using governor_type = slot_governor<hot_type>;
  using decision = table_decision<S>;
  using weigher_type = std::function<std::size_t(const K&, const S&)>;
  // A value's own time to live (builder expire_after): <= 0 expires it at once,
  // nanoseconds::max() never.
  using expiry_function = std::function<std::chrono::nanoseconds(const K&, const S&)>;
  static constexpr bool cold_capable = cold_serializable<K>;

  // An entry's weight when the cache has a byte budget and no weigher: weight_of<K> plus
  // weight_of<S> (an any_value weighs itself and its value: any_value::weight).
  static std::size_t default_weight(const K& key, const S& value) {
    if constexpr (std::is_same_v<S, any_value>) {
      return weight_of<K>{}(key) + value.weight();
    } else {
      return weight_of<K>{}(key) + weight_of<S>{}(value);
    }
  }

  // make_policy: the warm tier's policy per shard (c.warm_tier_max_entries != 0; the adaptive
  // policy when empty). store: the opened cold store, or nullptr for none. weigher: the entries'
  // weight with a byte budget (c.max_weight != 0; default_weight when empty).
  // ticker: the clock of expiry (c.expiry), steady-based when empty (expiry_clock.hpp).
  tier_stack(const cache_config& c, policy_factory make_policy, std::unique_ptr<cold_store> store,
             weigher_type weigher = {}, ticker_function ticker = {})
      : config(c),
        telemetry(c.enable_telemetry),
        promotion_hits(c.warm_tier_promotion_hits),
        clock(c.expiry ? std::make_unique<expiry_clock>(std::move(ticker)) : nullptr),
        hot(c.hot_tier_max_entries +
                (c.memory_layout == memory_layout::one_table ? c.warm_tier_max_entries : 0),
            c.enable_simd, counters) {
    // With both durations, reads extend an entry's life up to expire_after_write from its write.
    if (clock != nullptr) hot.set_expiry(*clock, c.expire_after_access, c.expire_after_write);
    if constexpr (cold_capable) {
      if (store != nullptr) cold = std::make_unique<cold_type>(std::move(store));
    }
    if (c.max_weight != 0) {
      if (!weigher) weigher = &default_weight;
      hot.set_weight_bound(c.hot_tier_max_weight, weigher);  // before a governor splits it
    }
    if (c.warm_tier_max_entries == 0) return;
    if (!make_policy) make_policy = &make_shard_policy<policy::adaptive>;
    if (c.memory_layout == memory_layout::one_table) {
      governor = std::make_unique<governor_type>(hot, make_policy);
      return;
    }
    warm = std::make_unique<warm_type>(
        warm_tier_options{.max_entries = c.warm_tier_max_entries,
                          .max_weight = c.warm_tier_max_weight},
        c.max_weight != 0 ? std::move(weigher) : weigher_type{}, nullptr,
        [&](std::size_t capacity, std::size_t shards) { return make_policy(capacity, shards); });
  }

  tier_stack(const tier_stack&) = delete;
  tier_stack& operator=(const tier_stack&) = delete;

  // Opens the directory config.cold_tier_storage_path names: kPermissionDenied, kNotFound,
  // kFailedPrecondition when another cache holds it (cold/store.hpp).
  static absl::StatusOr<std::unique_ptr<cold_store>> open_cold(const cache_config& c) {
    return cold_store::open(cold_options(c));
  }

  bool has_lower_tier() const noexcept { return warm != nullptr || cold != nullptr; }

  // The deadline of a value written now: now + the cache's expire_after_write or
  // expire_after_access (the shorter, with both), or no_deadline (also without expiry).
  std::int64_t write_deadline() const {
    if (clock == nullptr) return no_deadline;
    const std::chrono::nanoseconds w = config.expire_after_write;
    const std::chrono::nanoseconds a = config.expire_after_access;
    const std::chrono::nanoseconds ttl = w.count() == 0 ? a : (a.count() == 0 ? w : std::min(w, a));
    return ttl.count() == 0 ? no_deadline : deadline_after(clock->now(), ttl);
  }

  // The deadline of (key, value) written now: expire_after's for it when the cache has one, else
  // write_deadline().
  std::int64_t write_deadline(const K& key, const S& value) const {
    if (clock == nullptr) return no_deadline;
    if (!expire_after) return write_deadline();
    return deadline_after(clock->now(), expire_after(key, value));
  }

  // A copy of the warm tier's value of `k` that neither counts nor records a hit (the reads a
  // write makes under the key's home lock).
  std::optional<S> warm_copy(const K& k) const {
    std::optional<S> out;
    warm->template visit_entry<false>(k,
                                      [&](const K&, const S& v, std::uint32_t) { out.emplace(v); });
    return out;
  }

  // The hot table's on_insert hook of a promotion: the key leaves the warm tier (under the key's
  // home lock). If the warm tier no longer had it, it was evicted (and reported so) after the
  // promotion read it: the insert is refused, so an evicted entry never comes back. (Writes of
  // the key take the home lock too, so eviction is the only way it can have left.)
  // warm_tier::erase throws only if the policy's on_erase does.
  auto drop_warm_copy() const {
    return [this](const K& k) noexcept { return warm->template erase<false>(k); };
  }

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

  const cache_config config;
  const bool telemetry;
  // Reads end in the hot table (no warm or cold tier), without expiry (direct_reads) or with it
  // (expiring_reads: a miss reclaims the expired entry it found). One test on the get path
  // instead of three; set by the engine once the tiers exist.
  bool direct_reads = false;
  bool expiring_reads = false;
  const std::uint32_t promotion_hits;
  mutable striped_counters counters;
  // With a removal listener: where the tiers report what leaves the cache (notices.hpp).
  removal_notifier<K, S> notices;
  // With expiry: the clock deadlines are set and checked against (declared before the tiers,
  // which point to it).
  const std::unique_ptr<expiry_clock> clock;
  // With expiry: each value's own time to live (empty: the config's); set by the engine before
  // use.
  expiry_function expire_after;
  // Mutable: a read may move an entry between tiers, which changes no value.
  mutable hot_type hot;
  // memory_layout::one_table with a warm budget: the warm policy deciding the hot table's
  // evictions (declared after `hot`, which it points into; nullptr otherwise).
  std::unique_ptr<governor_type> governor;
  mutable std::unique_ptr<warm_type> warm;  // nullptr without a warm tier
  std::unique_ptr<cold_type> cold;          // nullptr without a cold tier
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
