// goldylox/metrics.hpp — a cache's counters for monitoring systems.
//
//   std::string scrape = goldylox::to_prometheus({{"sessions", sessions.stats()},
//                                                 {"users", users.stats()}});
//   std::string doc = goldylox::to_json(cache.stats());
//
// to_prometheus writes the Prometheus text exposition format (version 0.0.4, what a /metrics
// endpoint serves): every cache_stats field as goldylox_<field> (counters as
// goldylox_<field>_total), one sample per cache labelled cache="<name>". Pass every cache of a
// process in one call: a metric family may appear only once per scrape. to_json writes one JSON
// object with every field (named as in cache_stats) and hit_ratio. Lookup counts (hits,
// misses, warm_hits, cold_hits) are zero unless the cache was built with enable_telemetry(true).
#pragma once

#include <initializer_list>
#include <span>
#include <string>
#include <string_view>

#include "goldylox/detail/common/metrics_text.hpp"
#include "goldylox/stats.hpp"

GOLDYLOX_BEGIN_NAMESPACE

// A cache's stats and the name its samples are labelled with.
struct named_stats {
  std::string_view cache;
  cache_stats stats;
};

inline std::string to_prometheus(std::span<const named_stats> caches) {
  return detail::prometheus_text(caches);
}
inline std::string to_prometheus(std::initializer_list<named_stats> caches) {
  return detail::prometheus_text(std::span<const named_stats>(caches.begin(), caches.size()));
}
inline std::string to_prometheus(const cache_stats& stats, std::string_view cache = "default") {
  return to_prometheus({named_stats{cache, stats}});
}

inline std::string to_json(const cache_stats& stats) {
  return detail::json_text(stats);
}

GOLDYLOX_END_NAMESPACE
