// Component facade/ (with the public cache.hpp and typed_cache.hpp). Owns the handles users hold
// and their build(). May call the engine, config.hpp and common/; never a tier directly (the
// engine opens the cold store, the facades only check that the types can go to disk).
//
// The build() shared by cache<K> and typed_cache<K, V>: resolve and validate the options, then
// allocate the engine. Facades expose a private `engine_type` and a private constructor taking
// the engine, and befriend this builder.
#pragma once

#include <memory>
#include <new>
#include <stdexcept>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "goldylox/config.hpp"
#include "goldylox/detail/common/serialization.hpp"
#include "goldylox/detail/engine/engine.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

// The build() shared by every facade: resolve and validate the options, then allocate the engine.
template <class Cache>
class facade_builder : public basic_builder<facade_builder<Cache>> {
 public:
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
    try {
      return Cache(std::make_unique<engine_type>(*config, std::move(make_policy), std::move(cold)));
    } catch (const std::bad_alloc&) {
      return absl::ResourceExhaustedError(
          "goldylox: could not allocate the cache's tiers; lower max_entries, "
          "hot_tier_max_entries or warm_tier_max_entries");
    } catch (const std::invalid_argument& e) {  // a user policy refusing its capacity
      return absl::InvalidArgumentError(absl::StrCat("goldylox: warm tier: ", e.what()));
    }
  }
};

}  // namespace detail

GOLDYLOX_END_NAMESPACE
