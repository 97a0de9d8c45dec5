// goldylox::cache_stats — a snapshot of a cache's counters.
#pragma once

#include <cstddef>
#include <cstdint>

#include "goldylox/version.hpp"

GOLDYLOX_BEGIN_NAMESPACE

// Counters since construction. Counting is per thread and summed on demand, so a snapshot taken
// while other threads run is approximate (each counter is exact once those threads are quiet).
struct cache_stats {
  std::uint64_t hits = 0;         // lookups that found their key in any tier (get, visit,
                                  // get_many, get_or_insert); counted with enable_telemetry
  std::uint64_t misses = 0;       // lookups that did not
  std::uint64_t warm_hits = 0;    // hits the warm tier served (the hot tier had missed)
  std::uint64_t inserts = 0;      // entries created
  std::uint64_t updates = 0;      // existing entries overwritten
  std::uint64_t removals = 0;     // entries removed by remove() (clear() is not counted)
  std::uint64_t expirations = 0;  // entries removed because they expired (expire_after_write,
                                  // expire_after_access, a put's ttl): found by a read, a
                                  // write or the timer wheels
  std::uint64_t removal_listener_failures = 0;  // removal listener calls that threw (caught)
  std::uint64_t removal_notices_dropped = 0;    // removals the listener did not hear of: the
                                                // notice could not be queued (out of memory)
  std::uint64_t evictions = 0;   // entries that left the cache to respect capacity (with a warm
                                 // tier: its evictions, plus demotions it could not take)
  std::uint64_t demotions = 0;   // hot-tier evictions moved into the warm tier
  std::uint64_t promotions = 0;  // warm entries moved back into the hot tier
  std::uint64_t dropped_promotions = 0;  // moves up (warm to hot, cold to memory) that reads
                                         // asked for and the promotion manager's queue had no
                                         // room for (with a background pool): not made
  std::size_t pending_moves = 0;         // moves queued for the background pool now
  std::size_t learning_backlog = 0;      // requests the warm tier's policy has yet to learn
                                         // from (with a background pool; see
                                         // run_pending_tasks)
  std::uint64_t cold_hits = 0;           // hits the cold tier served, values on their way to
                                         // it included (counted with telemetry)
  std::uint64_t cold_demotions = 0;      // memory evictions written to the cold tier
  std::uint64_t cold_background_demotions = 0;    // of which the background pool wrote
  std::uint64_t cold_backpressure_demotions = 0;  // of which the evicting thread wrote because
                                                  // the pool's queue was full
  std::size_t cold_demotion_queue = 0;       // evictions waiting for the pool to write them now
  std::size_t cold_demotion_queue_peak = 0;  // the most that ever waited (at most the bound)
  std::uint64_t cold_promotions = 0;         // cold hits copied back into memory
  std::uint64_t cold_not_admitted = 0;       // warm evictions the admission rule kept off disk
  std::uint64_t cold_superseded = 0;         // memory evictions not written to the cold tier
                                             // because a later write of the key replaced or
                                             // removed their value, or memory had the key
                                             // again (no loss)
  std::uint64_t cold_already_stored = 0;     // memory evictions not written because the cold
                                             // tier held their value already (write-through)
  std::uint64_t cold_refused = 0;           // cold writes that failed (a full disk, an oversized or
                                            // unserializable value): those entries left the cache
  std::uint64_t cold_corrupt_records = 0;   // damaged records found on open or read; never served
  std::uint64_t cold_corrupt_segments = 0;  // segment files found damaged on open (a bad header,
                                            // or another segment's file): skipped, their
                                            // entries lost; worth an alert
  std::uint64_t cold_missing_segments = 0;  // segments the manifest listed that were not there
                                            // on open: their entries lost; worth an alert
  std::uint64_t cold_damaged_manifests = 0;  // opens that found the manifest missing or damaged,
                                             // so lost segments could not be told; an alert
  std::uint64_t cold_sync_errors = 0;        // syncs that failed (periodic, sync(), close): the
                                             // writes since the last good sync may not survive
                                             // an OS crash; worth an alert
  std::size_t cold_size = 0;                 // cold records (promoted entries keep theirs)
  std::uint64_t cold_disk_bytes = 0;         // bytes of the cold tier's segment files
  std::size_t size = 0;                      // entries held now, all tiers
  std::size_t hot_size = 0;                  // of which in the hot tier (one table: all memory)
  std::size_t warm_size = 0;                 // of which in the warm tier (one table: 0)
  std::size_t capacity = 0;                  // maximum entries, all tiers
  std::size_t weight = 0;        // the memory tiers' entries' total weight (with max_weight)
  std::size_t max_weight = 0;    // the memory tiers' weight budget (0: bounded by entries only)
  std::size_t memory_bytes = 0;  // approximate bytes owned by the cache (heap parts of values
                                 // stored in cache<K>, and warm-tier policy metadata, are not
                                 // included)
  // Loads: get_or_insert's factory, the loader of get_or_load, the bulk loader of get_all (one
  // per call). Counted whether or not telemetry is on (a load is slow next to two clock reads).
  std::uint64_t load_successes = 0;  // loads that produced a value
  std::uint64_t load_failures = 0;   // loads that returned an error or threw (never cached)
  std::uint64_t load_time_ns = 0;    // time spent loading, all loads; the mean is
                                     // load_time_ns / (load_successes + load_failures)
  // Latencies, with telemetry: one get (get, visit) and one put in 256 per thread is timed, and
  // every load. Percentiles in nanoseconds, read as the upper edge of
  // a log-linear bucket: at most 12.5 % above the true value, never below; 0 with no samples.
  std::uint64_t get_latency_samples = 0;
  std::uint64_t get_p50_ns = 0;
  std::uint64_t get_p99_ns = 0;
  std::uint64_t get_p999_ns = 0;
  std::uint64_t put_latency_samples = 0;
  std::uint64_t put_p50_ns = 0;
  std::uint64_t put_p99_ns = 0;
  std::uint64_t put_p999_ns = 0;
  std::uint64_t loads = 0;  // loads timed (with telemetry: every one)
  std::uint64_t load_p50_ns = 0;
  std::uint64_t load_p99_ns = 0;
  std::uint64_t load_p999_ns = 0;

  std::uint64_t requests() const noexcept { return hits + misses; }
  // Entries moved between tiers per lookup (promotions and demotions, memory and cold): the
  // churn the promotion manager exists to keep low. Needs telemetry (lookups are counted there).
  double moves_per_request() const noexcept {
    const std::uint64_t moves = promotions + demotions + cold_promotions + cold_demotions;
    return requests() == 0 ? 0.0 : static_cast<double>(moves) / static_cast<double>(requests());
  }
  double hit_ratio() const noexcept {
    return requests() == 0 ? 0.0 : static_cast<double>(hits) / static_cast<double>(requests());
  }
};

GOLDYLOX_END_NAMESPACE
