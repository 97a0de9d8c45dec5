// goldylox — a tiered, concurrent, in-process cache. Include this header for everything.
//
//   goldylox::cache<K>            any copyable value type per entry, checked at run time
//   goldylox::typed_cache<K, V>   one value type, no type erasure: the fastest path
//   goldylox::cache_stats         counters (stats())
//   goldylox::to_prometheus       those counters for a monitoring system (also to_json)
//   goldylox::preset              configuration presets for the builders
//   goldylox::background_pool     threads for background jobs, shareable between caches
//
// See docs/api.md for the reference and docs/architecture.md for how the tiers fit together.
#pragma once

#include "goldylox/background_pool.hpp"  // IWYU pragma: export
#include "goldylox/cache.hpp"            // IWYU pragma: export
#include "goldylox/concepts.hpp"         // IWYU pragma: export
#include "goldylox/config.hpp"           // IWYU pragma: export
#include "goldylox/metrics.hpp"          // IWYU pragma: export
#include "goldylox/policies.hpp"         // IWYU pragma: export
#include "goldylox/removal.hpp"          // IWYU pragma: export
#include "goldylox/stats.hpp"            // IWYU pragma: export
#include "goldylox/typed_cache.hpp"      // IWYU pragma: export
#include "goldylox/version.hpp"          // IWYU pragma: export
#include "goldylox/weight.hpp"           // IWYU pragma: export
