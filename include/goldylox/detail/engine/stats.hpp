// The cache's statistics, gathered from the engine's striped counters and the tiers' own figures
// into one cache_stats snapshot (stats.hpp documents each field).
//
// Owns: nothing; reads counters with relaxed loads, so a snapshot taken while other threads work
// is consistent per field, not across fields: the order below makes the derived fields safe
// (never a hit without its lookup), and subtractions clamp at zero.
// May call: tier_stack's tiers (their stats() and sizes).
#pragma once

#include <cstddef>
#include <cstdint>

#include "goldylox/detail/engine/tiers.hpp"
#include "goldylox/stats.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

// The cold demotion queue's figures (demotion.hpp), which the tiers do not keep.
struct demotion_queue_figures {
  std::size_t depth = 0;  // evictions waiting for the background pool's write-back job
  std::size_t peak = 0;
};

// engine_bytes: the engine object's own size, counted in memory_bytes.
template <class K, class S, class Hash, class KeyEqual>
cache_stats collect_stats(const tier_stack<K, S, Hash, KeyEqual>& t, std::size_t engine_bytes,
                          demotion_queue_figures queue = {}) {
  const striped_counters& counters = t.counters;
  cache_stats s;
  // Misses first: a lookup bumps `lookups` before `misses`, and a warm hit is counted after its
  // hot miss, so reading in this order never counts a hit without its lookup. Clamped for
  // relaxed-order stragglers.
  const std::uint64_t warm_hits = counters.total(counter::warm_hits);
  const std::uint64_t hot_misses = counters.total(counter::misses);
  const std::uint64_t lookups = counters.total(counter::lookups);
  s.misses = hot_misses > warm_hits ? hot_misses - warm_hits : 0;
  s.hits = lookups > s.misses ? lookups - s.misses : 0;
  s.warm_hits = warm_hits;
  s.promotions = counters.total(counter::promotions);
  s.dropped_promotions = counters.total(counter::dropped_promotions);
  const std::uint64_t inserts = counters.total(counter::inserts);
  s.inserts = inserts > s.promotions ? inserts - s.promotions : 0;  // a promotion is a move
  s.updates = counters.total(counter::updates);
  s.removals = counters.total(counter::removals);
  s.expirations = counters.total(counter::expirations);
  s.removal_listener_failures = t.notices.failures();
  s.removal_notices_dropped = t.notices.dropped();
  s.load_successes = counters.total(counter::load_successes);
  s.load_failures = counters.total(counter::load_failures);
  s.load_time_ns = counters.total(counter::load_nanos);
  s.hot_size = t.hot.size();
  s.size = s.hot_size;
  s.capacity = t.hot.capacity();
  s.weight = t.hot.weight();
  s.max_weight = t.config.max_weight;
  s.memory_bytes = engine_bytes + t.hot.memory_bytes() + counters.memory_bytes();
  if (t.warm == nullptr) {
    s.evictions = counters.total(counter::evictions);
  } else {
    const warm_tier_stats w = t.warm->stats();
    s.demotions = counters.total(counter::evictions);
    s.evictions = w.evictions + counters.total(counter::dropped_demotions);
    s.warm_size = w.size;
    s.size += w.size;
    if (t.config.max_weight != 0) s.weight += w.weight;  // else it counts 1 per entry
    s.capacity += t.warm->capacity();
    s.memory_bytes += t.warm->memory_bytes();
  }
  if (t.cold != nullptr) {
    const cold_store_stats c = t.cold->stats();
    s.cold_hits = counters.total(counter::cold_hits);
    s.misses = s.misses > s.cold_hits ? s.misses - s.cold_hits : 0;
    s.hits = lookups > s.misses ? lookups - s.misses : 0;
    s.cold_demotions = counters.total(counter::cold_demotions);
    s.cold_background_demotions = counters.total(counter::cold_background_demotions);
    s.cold_backpressure_demotions = counters.total(counter::cold_backpressure_demotions);
    s.cold_demotion_queue = queue.depth;
    s.cold_demotion_queue_peak = queue.peak;
    s.cold_refused = counters.total(counter::cold_refused);
    s.cold_superseded = counters.total(counter::cold_superseded);
    s.cold_already_stored = counters.total(counter::cold_already_stored);
    s.cold_promotions = counters.total(counter::cold_promotions);
    s.cold_not_admitted = counters.total(counter::cold_not_admitted);
    s.cold_size = c.entries;
    s.cold_disk_bytes = c.disk_bytes;
    s.cold_corrupt_records = c.corrupt_records + t.cold->undecodable();
    s.cold_corrupt_segments = c.corrupt_segments;
    s.cold_missing_segments = c.missing_segments;
    s.cold_damaged_manifests = c.damaged_manifests;
    s.cold_sync_errors = c.sync_errors;
    s.size += c.entries;
    s.memory_bytes += c.index_bytes;
    // Entries the memory tiers let go that the cold tier did not take, or later reclaimed. Those
    // still waiting for the write-back job have not left the cache (reads find them), nor have
    // superseded ones (a newer value of the key is in memory or on its way, or a remove took it)
    // or those the cold tier held already (write-through).
    const std::uint64_t kept =
        s.cold_demotions + s.cold_superseded + s.cold_already_stored + queue.depth;
    s.evictions = (s.evictions > kept ? s.evictions - kept : 0) + c.evicted;
  }
  return s;
}

}  // namespace detail
GOLDYLOX_END_NAMESPACE
