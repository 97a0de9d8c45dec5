// Component common/: the text encodings of cache_stats that metrics.hpp exports (Prometheus text
// exposition format 0.0.4, and JSON).
//
// One table (stats_fields) names every cache_stats field once, with its help text and whether
// it is a counter (only grows) or a gauge (a level now); both encoders walk it, so a metric has
// the same name and meaning in both. A static_assert ties the table to the struct: cache_stats
// holds only 64-bit fields, so a field added to it without a row here fails to compile.
//
// Prometheus: a family's `# HELP` and `# TYPE` lines come once, then one sample per cache, each
// labelled cache="<name>" (the label value escaped as the format asks: backslash, double quote,
// newline); counters are named <name>_total. Several caches go into one exposition, because a
// family may appear only once in a scrape. JSON: one object of the fields plus hit_ratio;
// numbers are integers except the ratio, which is printed in its shortest round-trip form.
#pragma once

#include <array>
#include <charconv>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

#include "goldylox/stats.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

enum class metric_kind { counter, gauge };

struct stats_field {
  std::string_view name;
  std::string_view help;
  metric_kind kind;
  std::uint64_t (*read)(const cache_stats&);
};

#define GOLDYLOX_STATS_FIELD(field, kind, help)                                  \
  stats_field {                                                                  \
    #field, help, metric_kind::kind,                                             \
        [](const cache_stats& s) { return static_cast<std::uint64_t>(s.field); } \
  }

inline constexpr std::array stats_fields{
    GOLDYLOX_STATS_FIELD(hits, counter, "Lookups that found their key in any tier (telemetry)."),
    GOLDYLOX_STATS_FIELD(misses, counter, "Lookups that found their key in no tier (telemetry)."),
    GOLDYLOX_STATS_FIELD(warm_hits, counter, "Hits the warm tier served (telemetry)."),
    GOLDYLOX_STATS_FIELD(inserts, counter, "Entries created."),
    GOLDYLOX_STATS_FIELD(updates, counter, "Existing entries overwritten."),
    GOLDYLOX_STATS_FIELD(removals, counter, "Entries removed by remove()."),
    GOLDYLOX_STATS_FIELD(expirations, counter, "Entries removed because they expired."),
    GOLDYLOX_STATS_FIELD(removal_listener_failures, counter,
                         "Removal listener calls that threw (caught)."),
    GOLDYLOX_STATS_FIELD(removal_notices_dropped, counter,
                         "Removals the listener did not hear of (out of memory)."),
    GOLDYLOX_STATS_FIELD(evictions, counter, "Entries that left the cache to respect capacity."),
    GOLDYLOX_STATS_FIELD(demotions, counter, "Hot-tier evictions moved into the warm tier."),
    GOLDYLOX_STATS_FIELD(promotions, counter, "Warm entries moved into the hot tier."),
    GOLDYLOX_STATS_FIELD(dropped_promotions, counter,
                         "Moves up that the promotion queue had no room for."),
    GOLDYLOX_STATS_FIELD(pending_moves, gauge, "Moves queued for the background pool."),
    GOLDYLOX_STATS_FIELD(learning_backlog, gauge,
                         "Requests the warm policy has yet to learn from."),
    GOLDYLOX_STATS_FIELD(cold_hits, counter, "Hits the cold tier served (telemetry)."),
    GOLDYLOX_STATS_FIELD(cold_demotions, counter, "Memory evictions written to the cold tier."),
    GOLDYLOX_STATS_FIELD(cold_background_demotions, counter,
                         "Cold demotions the background pool wrote."),
    GOLDYLOX_STATS_FIELD(cold_backpressure_demotions, counter,
                         "Cold demotions the evicting thread wrote (queue full)."),
    GOLDYLOX_STATS_FIELD(cold_demotion_queue, gauge, "Evictions waiting for the cold write-back."),
    GOLDYLOX_STATS_FIELD(cold_demotion_queue_peak, gauge,
                         "The most evictions that ever waited for the cold write-back."),
    GOLDYLOX_STATS_FIELD(cold_promotions, counter, "Cold hits copied back into memory."),
    GOLDYLOX_STATS_FIELD(cold_not_admitted, counter,
                         "Evictions the cold admission rule kept off disk."),
    GOLDYLOX_STATS_FIELD(cold_superseded, counter,
                         "Evictions not written because a later write replaced them."),
    GOLDYLOX_STATS_FIELD(cold_already_stored, counter,
                         "Evictions not written because the cold tier held them (write-through)."),
    GOLDYLOX_STATS_FIELD(cold_refused, counter,
                         "Cold writes that failed; those entries left the cache."),
    GOLDYLOX_STATS_FIELD(cold_corrupt_records, counter,
                         "Damaged cold records found (never served)."),
    GOLDYLOX_STATS_FIELD(cold_corrupt_segments, counter, "Damaged segment files skipped on open."),
    GOLDYLOX_STATS_FIELD(cold_missing_segments, counter,
                         "Segments the manifest listed that were missing on open."),
    GOLDYLOX_STATS_FIELD(cold_damaged_manifests, counter,
                         "Opens that found the manifest missing or damaged."),
    GOLDYLOX_STATS_FIELD(cold_sync_errors, counter, "Cold-tier syncs that failed."),
    GOLDYLOX_STATS_FIELD(cold_size, gauge, "Cold records."),
    GOLDYLOX_STATS_FIELD(cold_disk_bytes, gauge, "Bytes of the cold tier's segment files."),
    GOLDYLOX_STATS_FIELD(size, gauge, "Entries held, all tiers."),
    GOLDYLOX_STATS_FIELD(hot_size, gauge, "Entries in the hot tier (one table: all memory)."),
    GOLDYLOX_STATS_FIELD(warm_size, gauge, "Entries in the warm tier."),
    GOLDYLOX_STATS_FIELD(capacity, gauge, "Maximum entries of the memory tiers."),
    GOLDYLOX_STATS_FIELD(weight, gauge, "Total weight of the memory tiers' entries."),
    GOLDYLOX_STATS_FIELD(max_weight, gauge, "Weight budget of the memory tiers (0: none)."),
    GOLDYLOX_STATS_FIELD(memory_bytes, gauge, "Approximate bytes the cache owns."),
    GOLDYLOX_STATS_FIELD(get_latency_samples, counter, "Gets timed (1 in 256; telemetry)."),
    GOLDYLOX_STATS_FIELD(get_p50_ns, gauge, "Median get latency, nanoseconds (telemetry)."),
    GOLDYLOX_STATS_FIELD(get_p99_ns, gauge, "99th percentile get latency, nanoseconds."),
    GOLDYLOX_STATS_FIELD(get_p999_ns, gauge, "99.9th percentile get latency, nanoseconds."),
    GOLDYLOX_STATS_FIELD(put_latency_samples, counter, "Puts timed (1 in 256; telemetry)."),
    GOLDYLOX_STATS_FIELD(put_p50_ns, gauge, "Median put latency, nanoseconds (telemetry)."),
    GOLDYLOX_STATS_FIELD(put_p99_ns, gauge, "99th percentile put latency, nanoseconds."),
    GOLDYLOX_STATS_FIELD(put_p999_ns, gauge, "99.9th percentile put latency, nanoseconds."),
    GOLDYLOX_STATS_FIELD(load_successes, counter, "Loads that produced a value."),
    GOLDYLOX_STATS_FIELD(load_failures, counter, "Loads that failed (never cached)."),
    GOLDYLOX_STATS_FIELD(load_time_ns, counter, "Time spent loading, nanoseconds."),
    GOLDYLOX_STATS_FIELD(loads, counter, "Loads timed into the latency histogram (telemetry)."),
    GOLDYLOX_STATS_FIELD(load_p50_ns, gauge, "Median load latency, nanoseconds (telemetry)."),
    GOLDYLOX_STATS_FIELD(load_p99_ns, gauge, "99th percentile load latency, nanoseconds."),
    GOLDYLOX_STATS_FIELD(load_p999_ns, gauge, "99.9th percentile load latency, nanoseconds."),
};
#undef GOLDYLOX_STATS_FIELD

static_assert(sizeof(cache_stats) == stats_fields.size() * sizeof(std::uint64_t),
              "a cache_stats field is missing from stats_fields (metrics_text.hpp)");

inline void append_number(std::string& out, std::uint64_t v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

inline void append_number(std::string& out, double v) {
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

// A Prometheus label value: backslash, double quote and line feed escaped.
inline void append_label_value(std::string& out, std::string_view v) {
  for (const char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

// One sample per (field, cache): caches[i].first names cache i, caches[i].second its stats.
template <class Named>
std::string prometheus_text(std::span<const Named> caches) {
  std::string out;
  out.reserve(caches.empty() ? 0 : stats_fields.size() * (120 + 60 * caches.size()));
  for (const stats_field& f : stats_fields) {
    std::string name = "goldylox_";
    name += f.name;
    if (f.kind == metric_kind::counter) name += "_total";
    out += "# HELP ";
    out += name;
    out += ' ';
    out += f.help;
    out += "\n# TYPE ";
    out += name;
    out += f.kind == metric_kind::counter ? " counter\n" : " gauge\n";
    for (const Named& c : caches) {
      out += name;
      out += "{cache=\"";
      append_label_value(out, c.cache);
      out += "\"} ";
      append_number(out, f.read(c.stats));
      out += '\n';
    }
  }
  return out;
}

inline std::string json_text(const cache_stats& s) {
  std::string out = "{";
  for (const stats_field& f : stats_fields) {
    out += '"';
    out += f.name;
    out += "\":";
    append_number(out, f.read(s));
    out += ',';
  }
  out += "\"hit_ratio\":";
  append_number(out, s.hit_ratio());
  out += '}';
  return out;
}

}  // namespace detail
GOLDYLOX_END_NAMESPACE
