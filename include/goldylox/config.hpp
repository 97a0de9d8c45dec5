// Configuration: presets, the resolved cache_config, and the builder options shared by
// cache<K>::builder() and typed_cache<K, V>::builder().
//
// What each option does (docs/configuration.md has the full table):
//   max_entries                 the memory tiers' total (hot + warm), split by the preset's
//                               hot:warm ratio unless a tier's own size is set too
//                               (docs/configuration.md#capacity has the rule for each
//                               combination).
//   hot_tier_max_entries        bounds the hot tier: it holds at most this many entries and
//                               evicts (CLOCK) beyond it, into the warm tier when there is one.
//   warm_tier_max_entries       bounds the warm tier (0: no warm tier; hot-tier evictions leave
//                               the cache). The presets give every cache a warm tier.
//   max_weight                  a second bound on the memory tiers: the total weight of their
//                               entries (bytes by default: weight.hpp; a typed_cache may set its
//                               own weigher), split like the entries; off by default.
//   expire_after_write          entries expire this long after they were written; off by default.
//   expire_after_access         entries expire this long after they were last read or written
//                               (with expire_after_write too: whichever comes first).
//   enable_expiry               entries may expire: put(key, value, ttl) gives one its own ttl
//                               (implied by either option above). docs/api.md#expiry.
//   refresh_after_write         a typed_cache with a loader reloads an entry this long after it
//                               was written, on the background pool, while reads keep getting
//                               the old value (implies enable_expiry). docs/api.md#refresh.
//   warm_tier_policy            the warm tier's eviction policy: a name (default "adaptive"), a
//                               policy type, or a factory making a user policy.
//   warm_tier_promotion_hits    warm hits after which an entry moves back to the hot tier
//                               (memory_layout::two_tables only).
//   memory_layout               one_table (default): the hot and warm budgets add up to one
//                               lock-free table whose evictions the warm tier's policy decides;
//                               two_tables: a CLOCK hot table over a separate warm tier, entries
//                               moving between them (docs/architecture.md#memory-layout).
//   enable_simd                 picks the SSE2 tag compare (true) or the portable SWAR compare.
//   enable_telemetry            counts hits and misses (off by default, as Caffeine's
//                               recordStats(): counting costs a get ~15 % of its instructions).
//   cold_tier_storage_path      turns the cold tier on: a directory of segment files that
//                               survives restarts (docs/cold-tier.md). Without it the cache
//                               stays in memory. The other cold_tier_* options and
//                               compression_level require it.
//   cold_tier_max_bytes         the cold tier's disk capacity (default 1 GiB).
//   cold_tier_codec             "zstd" (default), "lz4", "brotli", "none" or "adaptive".
//   compression_level           the codec's level (zstd 0..22, 0 meaning zstd's default 3; lz4
//                               0 fast, 1..12 HC; brotli 0..11). Presets give zstd 1, 3 or 9;
//                               other codecs default to their own default level.
//   cold_tier_durability        none, periodic (default: fdatasync every
//                               cold_tier_sync_interval, 1 s), on_close, every_write.
//   cold_tier_strict_open       refuse to open a directory that lost data (default: open with
//                               what is intact and count the loss in stats()).
//   cold_tier_write_through     every write reaches the cold tier before it returns, synced as
//                               cold_tier_durability says (default false: write-back, the cold
//                               tier takes what memory evicts).
//   background_pool             the threads the cache's background jobs run on, shareable
//                               between caches (background_pool.hpp): the promotion manager's
//                               queued moves (warm to hot, cold to memory), and with a cold tier
//                               its demotion write-back (memory evictions written to the cold
//                               tier) and periodic sync; with expiry, the timer wheels that
//                               remove expired entries nobody reads.
//   enable_background_workers   true (default): background jobs run on background_pool, or on
//                               background_pool::shared_default() when none is given. false:
//                               no pool; moves run inline on the reading thread and each call
//                               writes the evictions it caused to the cold tier before it
//                               returns (deterministic), the periodic sync keeps a private thread
//                               of its own (its promise needs one), and background_pool is
//                               refused.
//   preset                      supplies defaults for every size option not set explicitly,
//                               and the hot:warm ratio a total is split by.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <numeric>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include <unistd.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "goldylox/background_pool.hpp"
#include "goldylox/detail/cold/durability.hpp"
#include "goldylox/detail/warm/policy/any_policy.hpp"
#include "goldylox/version.hpp"

GOLDYLOX_BEGIN_NAMESPACE

enum class preset { high_performance, balanced, high_capacity, ml_optimized };

// How the memory tiers hold their entries (docs/architecture.md#memory-layout):
//   one_table   every memory entry lives in the hot tier's lock-free table, sized for the hot and
//               warm budgets together, and the warm tier's policy decides what that table
//               evicts (engine/governor.hpp): reads cost the hot table's read, the hit ratio is
//               the policy's at the whole budget, and nothing moves between memory tiers;
//   two_tables  the hot table (CLOCK) holds the entries the promotion manager moves up from a
//               separate warm tier, which holds the rest under its policy.
enum class memory_layout : std::uint8_t { one_table, two_tables };

// Which of the warm tier's evictions the cold tier takes: all of them, or only those read at
// least once in the warm tier (docs/cold-tier.md measures both).
enum class cold_admission : std::uint8_t { all, reread };

constexpr std::string_view to_string(preset p) noexcept {
  switch (p) {
    case preset::high_performance:
      return "high_performance";
    case preset::balanced:
      return "balanced";
    case preset::high_capacity:
      return "high_capacity";
    case preset::ml_optimized:
      return "ml_optimized";
  }
  return "unknown";
}

// The configuration a cache was built with, after presets were applied and validation passed.
struct cache_config {
  preset profile = preset::balanced;
  std::size_t hot_tier_max_entries = 0;
  std::size_t warm_tier_max_entries = 0;  // 0 = no warm tier
  // The memory tiers' weight budget (0: entries only) and its split: one_table gives all of it to
  // the one table; two_tables splits it as the entries are split.
  std::size_t max_weight = 0;
  std::size_t hot_tier_max_weight = 0;
  std::size_t warm_tier_max_weight = 0;
  // Expiry: every entry carries a deadline (any of the options below, or enable_expiry); 0: the
  // option is off.
  bool expiry = false;
  std::chrono::nanoseconds expire_after_write{0};
  std::chrono::nanoseconds expire_after_access{0};
  // Refresh: an entry is reloaded this long after it was written (0: off; needs expiry).
  std::chrono::nanoseconds refresh_after_write{0};
  std::string warm_tier_policy;  // the warm tier's policy: its name, or P::name for a type
  std::uint32_t warm_tier_promotion_hits = 2;
  goldylox::memory_layout memory_layout = goldylox::memory_layout::one_table;
  std::string cold_tier_storage_path;  // empty = memory only
  std::uint64_t cold_tier_max_bytes = 0;
  std::uint64_t cold_tier_segment_bytes = 0;  // 0: derived from cold_tier_max_bytes
  std::string cold_tier_codec = "zstd";
  int compression_level = 0;  // the level cold_tier_codec uses
  cold_durability cold_tier_durability = cold_durability::periodic;
  std::uint32_t cold_tier_sync_interval_ms = 1000;
  cold_admission cold_tier_admission = cold_admission::all;
  bool cold_tier_strict_open = false;    // refuse to open a directory that lost data
  bool cold_tier_write_through = false;  // writes reach the cold tier before they return
  bool enable_simd = true;
  bool enable_background_workers = true;
  bool enable_telemetry = false;
  // The pool the cache's background jobs run on: the builder's background_pool, else, with
  // enable_background_workers and a job to run (moves between tiers: a warm or a cold tier; with
  // a cold tier also its demotion write-back; with expiry its timer wheels),
  // background_pool::shared_default(). Empty
  // otherwise.
  std::optional<goldylox::background_pool> background_pool;
};

// Defaults a preset supplies for options the user did not set. The ratio of its two sizes is also
// the ratio max_entries is split by, so a preset's defaults equal max_entries(hot + warm).
struct preset_defaults {
  std::size_t hot_tier_max_entries;
  std::size_t warm_tier_max_entries;
  int compression_level;
  std::string_view warm_tier_policy = "adaptive";
};

constexpr preset_defaults defaults_for(preset p) noexcept {
  switch (p) {
    case preset::high_performance:
      return {250'000, 250'000, 1};
    case preset::high_capacity:
      return {50'000, 450'000, 9};
    case preset::ml_optimized:
      return {100'000, 300'000, 3, "linear-model"};
    case preset::balanced:
      break;
  }
  return {100'000, 300'000, 3};
}

inline constexpr std::size_t max_hot_tier_entries = std::size_t{1} << 32;
inline constexpr std::size_t max_warm_tier_entries = std::size_t{1} << 36;
inline constexpr int max_compression_level = 22;

namespace detail {

struct config_request {
  preset profile = preset::balanced;
  // The memory tiers' total in entries. A byte budget (max_bytes with a weigher) would be a
  // sibling of this field, split by the same ratio in the same unit-agnostic way.
  std::optional<std::size_t> max_entries;
  std::optional<std::size_t> max_weight;
  std::optional<std::chrono::nanoseconds> expire_after_write;
  std::optional<std::chrono::nanoseconds> expire_after_access;
  std::optional<std::chrono::nanoseconds> refresh_after_write;
  bool enable_expiry = false;
  std::optional<std::size_t> hot_tier_max_entries;
  std::optional<std::size_t> warm_tier_max_entries;
  // A named policy (looked up at build) or, when `warm_policy_make` is set, a user's choice.
  std::optional<std::string> warm_policy_name;
  policy_factory warm_policy_make;
  std::optional<std::uint32_t> warm_tier_promotion_hits;
  std::optional<goldylox::memory_layout> memory_layout;
  std::optional<std::string> cold_tier_storage_path;
  std::optional<std::uint64_t> cold_tier_max_bytes;
  std::optional<std::uint64_t> cold_tier_segment_bytes;
  std::optional<std::string> cold_tier_codec;
  std::optional<int> compression_level;
  std::optional<cold_durability> cold_tier_durability;
  std::optional<std::uint32_t> cold_tier_sync_interval_ms;
  std::optional<cold_admission> cold_tier_admission;
  std::optional<bool> cold_tier_strict_open;
  std::optional<bool> cold_tier_write_through;
  std::optional<goldylox::background_pool> pool;
  bool enable_simd = true;
  bool enable_background_workers = true;
  bool enable_telemetry = false;
};

inline std::size_t physical_memory_bytes() noexcept {
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long page_size = ::sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page_size <= 0) return SIZE_MAX;
  return static_cast<std::size_t>(pages) * static_cast<std::size_t>(page_size);
}

// The policy factory a request asks for: the user's, else the named one (default "adaptive").
// kInvalidArgument, listing the valid names, for an unknown name.
inline absl::StatusOr<policy_factory> resolve_warm_policy(const config_request& r) {
  if (r.warm_policy_make) return r.warm_policy_make;
  const std::string name =
      r.warm_policy_name.value_or(std::string(defaults_for(r.profile).warm_tier_policy));
  std::optional<policy_factory> made = named_policy_factory(name);
  if (!made) {
    return absl::InvalidArgumentError(absl::StrCat("goldylox: unknown warm_tier_policy '", name,
                                                   "'; valid policies: ", named_policy_list()));
  }
  return *std::move(made);
}

// The hot tier's share of `total` split as hot:warm, rounded down: floor(total * hot / (hot +
// warm)) without the product, which could overflow. Unit-agnostic, so a byte budget can be split
// the same way.
constexpr std::size_t hot_share_of(std::size_t total, std::size_t hot, std::size_t warm) noexcept {
  const std::size_t sum = hot + warm;
  return total / sum * hot + total % sum * hot / sum;
}

// The expiry options into `c` (after its tiers are resolved): kInvalidArgument for a duration
// <= 0, for both durations together, and for a configuration whose tiers cannot carry deadlines
// yet (the warm tier of memory_layout::two_tables, the cold tier).
inline absl::Status resolve_expiry(const config_request& r, cache_config& c) {
  for (const auto& [given, name] : {std::pair{r.expire_after_write, "expire_after_write"},
                                    std::pair{r.expire_after_access, "expire_after_access"},
                                    std::pair{r.refresh_after_write, "refresh_after_write"}}) {
    if (given && *given <= std::chrono::nanoseconds::zero()) {
      return absl::InvalidArgumentError(
          absl::StrCat("goldylox: ", name,
                       " must be a duration above zero (omit it for entries "
                       "that do not ",
                       std::string_view(name) == "refresh_after_write" ? "refresh)" : "expire)"));
    }
  }
  c.expire_after_write = r.expire_after_write.value_or(std::chrono::nanoseconds::zero());
  c.expire_after_access = r.expire_after_access.value_or(std::chrono::nanoseconds::zero());
  c.refresh_after_write = r.refresh_after_write.value_or(std::chrono::nanoseconds::zero());
  // Refresh keeps its write times beside expiry's deadlines, and ticks by expiry's clock.
  c.expiry =
      r.enable_expiry || r.expire_after_write || r.expire_after_access || r.refresh_after_write;
  if (!c.expiry) return absl::OkStatus();
  if (!c.cold_tier_storage_path.empty() ||
      (c.warm_tier_max_entries != 0 && c.memory_layout == memory_layout::two_tables)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "goldylox: ", r.refresh_after_write ? "refresh_after_write" : "expiry",
        " works with the in-memory one_table layout (the default) for now; the "
        "cold tier and memory_layout::two_tables's warm tier do not carry deadlines yet"));
  }
  if (r.refresh_after_write && !r.enable_background_workers) {
    return absl::InvalidArgumentError(
        "goldylox: refresh_after_write reloads entries on the background pool; it needs "
        "enable_background_workers (the default)");
  }
  return absl::OkStatus();
}

// The two memory tiers' sizes and, for sizes the user did not set, where they came from (for
// error messages: a derived size must name the option the user actually gave).
struct tier_sizes {
  std::size_t hot = 0;
  std::size_t warm = 0;
  std::string hot_origin;  // empty when set explicitly
  std::string warm_origin;
};

// The rules, for a preset whose default sizes are d.hot:d.warm (docs/configuration.md#capacity):
//   nothing set                  the preset's sizes
//   max_entries(n)               split by the preset's ratio, the hot tier getting at least 1
//   max_entries(n) + one tier    that tier as given, the other tier the rest of n
//   max_entries(n) + both tiers  they must add up to n
//   one tier alone               the other derived from it by the preset's ratio, so a small
//                                hot tier never sits above the preset's full-size warm tier
//   warm_tier_max_entries(0)     no warm tier; the hot tier keeps the preset's size
// A preset without a warm tier puts everything in the hot tier. Limits are checked by the caller.
inline absl::StatusOr<tier_sizes> resolve_tier_sizes(const config_request& r,
                                                     const preset_defaults& d) {
  const std::size_t dh = d.hot_tier_max_entries;
  const std::size_t dw = d.warm_tier_max_entries;
  const std::size_t g = std::gcd(dh, dw);
  const std::string preset_name(to_string(r.profile));  // StrCat may not take std::string_view
  const std::string ratio =
      absl::StrCat("the ", preset_name, " preset's hot:warm ratio ", dh / g, ":", dw / g);
  tier_sizes t;
  if (r.max_entries) {
    const std::size_t n = *r.max_entries;
    if (n == 0) {
      return absl::InvalidArgumentError(
          "goldylox: max_entries must be at least 1 (the hot tier needs an entry)");
    }
    const std::string from = absl::StrCat("max_entries = ", n);
    if (r.hot_tier_max_entries && r.warm_tier_max_entries) {
      const std::size_t h = *r.hot_tier_max_entries;
      const std::size_t w = *r.warm_tier_max_entries;
      if (h > n || w != n - h) {
        return absl::InvalidArgumentError(absl::StrCat(
            "goldylox: hot_tier_max_entries = ", h, " and warm_tier_max_entries = ", w,
            " do not add up to ", from, "; set the total or the two tiers, or make them agree"));
      }
      t.hot = h;
      t.warm = w;
    } else if (r.hot_tier_max_entries) {
      t.hot = *r.hot_tier_max_entries;
      if (t.hot > n) {
        return absl::InvalidArgumentError(absl::StrCat("goldylox: hot_tier_max_entries = ", t.hot,
                                                       " exceeds ", from,
                                                       ", the hot and warm tiers' total"));
      }
      t.warm = n - t.hot;
      t.warm_origin = absl::StrCat(from, " less hot_tier_max_entries = ", t.hot);
    } else if (r.warm_tier_max_entries) {
      t.warm = *r.warm_tier_max_entries;
      if (t.warm >= n) {
        return absl::InvalidArgumentError(
            absl::StrCat("goldylox: warm_tier_max_entries = ", t.warm, " leaves no entry of ", from,
                         " for the hot tier, which needs at least 1"));
      }
      t.hot = n - t.warm;
      t.hot_origin = absl::StrCat(from, " less warm_tier_max_entries = ", t.warm);
    } else {
      t.hot = dw == 0 ? n : std::max<std::size_t>(1, hot_share_of(n, dh, dw));
      t.warm = n - t.hot;
      t.hot_origin = t.warm_origin = absl::StrCat(from, " split by ", ratio);
    }
    return t;
  }
  if (r.hot_tier_max_entries && !r.warm_tier_max_entries) {
    t.hot = *r.hot_tier_max_entries;
    // A hot size above its limit fails the caller's check; below it (2^32), times a preset's
    // size (below 2^19), the product cannot overflow.
    t.warm = t.hot <= max_hot_tier_entries ? t.hot / dh * dw + t.hot % dh * dw / dh : 0;
    t.warm_origin = absl::StrCat("hot_tier_max_entries = ", t.hot, " scaled by ", ratio);
    return t;
  }
  if (r.warm_tier_max_entries && !r.hot_tier_max_entries && *r.warm_tier_max_entries != 0 &&
      dw != 0) {
    t.warm = *r.warm_tier_max_entries;
    // As above: a warm size above its limit fails the caller's check, which runs first.
    t.hot = t.warm <= max_warm_tier_entries
                ? std::max<std::size_t>(1, t.warm / dw * dh + t.warm % dw * dh / dw)
                : 1;
    t.hot_origin = absl::StrCat("warm_tier_max_entries = ", t.warm, " scaled by ", ratio);
    return t;
  }
  t.hot = r.hot_tier_max_entries.value_or(dh);
  t.warm = r.warm_tier_max_entries.value_or(dw);
  if (!r.hot_tier_max_entries) t.hot_origin = absl::StrCat("the ", preset_name, " preset");
  if (!r.warm_tier_max_entries) {
    t.warm_origin = absl::StrCat("the ", preset_name, " preset");
  }
  return t;
}

// Applies the preset and validates. `hot_bytes_per_entry` and `warm_bytes_per_entry` are the
// tiers' memory per entry for the concrete key and value types, used to reject sizes this machine
// cannot hold.
inline absl::StatusOr<cache_config> resolve_config(const config_request& r,
                                                   std::size_t hot_bytes_per_entry,
                                                   std::size_t warm_bytes_per_entry = 0) {
  const preset_defaults d = defaults_for(r.profile);
  absl::StatusOr<tier_sizes> sizes = resolve_tier_sizes(r, d);
  if (!sizes.ok()) return sizes.status();
  cache_config c;
  c.profile = r.profile;
  c.hot_tier_max_entries = sizes->hot;
  c.warm_tier_max_entries = sizes->warm;
  c.warm_tier_promotion_hits = r.warm_tier_promotion_hits.value_or(2);
  c.memory_layout = r.memory_layout.value_or(memory_layout::one_table);
  c.cold_tier_storage_path = r.cold_tier_storage_path.value_or("");
  c.cold_tier_codec = r.cold_tier_codec.value_or("zstd");
  if (r.compression_level) {
    c.compression_level = *r.compression_level;
  } else if (c.cold_tier_codec == "zstd" || c.cold_tier_codec == "adaptive") {
    c.compression_level = d.compression_level;
  } else {
    c.compression_level = c.cold_tier_codec == "brotli" ? 5 : 0;
  }
  c.cold_tier_max_bytes = r.cold_tier_max_bytes.value_or(std::uint64_t{1} << 30);
  c.cold_tier_segment_bytes = r.cold_tier_segment_bytes.value_or(0);
  c.cold_tier_durability = r.cold_tier_durability.value_or(cold_durability::periodic);
  c.cold_tier_sync_interval_ms = r.cold_tier_sync_interval_ms.value_or(1000);
  c.cold_tier_admission = r.cold_tier_admission.value_or(cold_admission::all);
  c.cold_tier_strict_open = r.cold_tier_strict_open.value_or(false);
  c.cold_tier_write_through = r.cold_tier_write_through.value_or(false);
  c.enable_simd = r.enable_simd;
  c.enable_background_workers = r.enable_background_workers;
  c.enable_telemetry = r.enable_telemetry;

  if (c.hot_tier_max_entries == 0) {
    return absl::InvalidArgumentError("goldylox: hot_tier_max_entries must be at least 1");
  }
  const std::size_t ram = physical_memory_bytes();
  // A derived size says where it came from, so the message leads to the option the user set.
  const auto named = [](const char* option, std::size_t n, const std::string& origin) {
    return origin.empty() ? absl::StrCat(option, " = ", n)
                          : absl::StrCat(option, " = ", n, " (from ", origin, ")");
  };
  const auto check_hot = [&]() -> absl::Status {
    const std::string hot =
        named("hot_tier_max_entries", c.hot_tier_max_entries, sizes->hot_origin);
    if (c.hot_tier_max_entries > max_hot_tier_entries) {
      return absl::InvalidArgumentError(absl::StrCat("goldylox: ", hot, " exceeds the limit of ",
                                                     max_hot_tier_entries, " entries"));
    }
    if (hot_bytes_per_entry != 0 && c.hot_tier_max_entries > ram / hot_bytes_per_entry) {
      return absl::InvalidArgumentError(absl::StrCat(
          "goldylox: ", hot, " needs about ",
          c.hot_tier_max_entries / (std::size_t{1} << 20) * hot_bytes_per_entry,
          " MiB for the hot tier alone, more than this machine's ", ram >> 20, " MiB of memory"));
    }
    return absl::OkStatus();
  };
  const auto check_warm = [&]() -> absl::Status {
    const std::string warm =
        named("warm_tier_max_entries", c.warm_tier_max_entries, sizes->warm_origin);
    if (c.warm_tier_max_entries > max_warm_tier_entries) {
      return absl::InvalidArgumentError(absl::StrCat("goldylox: ", warm, " exceeds the limit of ",
                                                     max_warm_tier_entries, " entries"));
    }
    if (warm_bytes_per_entry != 0 && c.warm_tier_max_entries > ram / warm_bytes_per_entry) {
      return absl::InvalidArgumentError(absl::StrCat(
          "goldylox: ", warm, " needs about ",
          c.warm_tier_max_entries / (std::size_t{1} << 20) * warm_bytes_per_entry,
          " MiB for the warm tier alone, more than this machine's ", ram >> 20, " MiB of memory"));
    }
    return absl::OkStatus();
  };
  // The size the user set is checked first: an absurd warm_tier_max_entries must be reported as
  // such, not as the absurd hot tier derived from it.
  const bool warm_first = sizes->warm_origin.empty() && !sizes->hot_origin.empty();
  if (absl::Status s = warm_first ? check_warm() : check_hot(); !s.ok()) return s;
  if (absl::Status s = warm_first ? check_hot() : check_warm(); !s.ok()) return s;
  if (c.warm_tier_max_entries == 0 &&
      (r.warm_policy_name || r.warm_policy_make || r.warm_tier_promotion_hits)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "goldylox: warm_tier_policy and warm_tier_promotion_hits apply to the warm tier, which "
        "is off (",
        named("warm_tier_max_entries", 0, sizes->warm_origin), ")"));
  }
  if (c.memory_layout == memory_layout::one_table && c.warm_tier_max_entries != 0) {
    if (r.warm_tier_promotion_hits) {
      return absl::InvalidArgumentError(
          "goldylox: warm_tier_promotion_hits applies to memory_layout::two_tables; with "
          "one_table (the default) no entry moves between the memory tiers");
    }
    if (c.hot_tier_max_entries + c.warm_tier_max_entries > max_hot_tier_entries) {
      return absl::InvalidArgumentError(
          absl::StrCat("goldylox: memory_layout::one_table holds hot_tier_max_entries + "
                       "warm_tier_max_entries = ",
                       c.hot_tier_max_entries + c.warm_tier_max_entries,
                       " entries in one table, over its limit of ", max_hot_tier_entries));
    }
  }
  if (r.max_weight) {
    c.max_weight = *r.max_weight;
    if (c.max_weight == 0) {
      return absl::InvalidArgumentError(
          "goldylox: max_weight must be at least 1 (omit it to bound the cache by entries only)");
    }
    if (c.warm_tier_max_entries == 0 || c.memory_layout == memory_layout::one_table) {
      c.hot_tier_max_weight = c.max_weight;
    } else {
      c.hot_tier_max_weight = std::max<std::size_t>(
          1, hot_share_of(c.max_weight, c.hot_tier_max_entries, c.warm_tier_max_entries));
      c.warm_tier_max_weight = c.max_weight - c.hot_tier_max_weight;
      if (c.warm_tier_max_weight == 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("goldylox: max_weight = ", c.max_weight,
                         " is too small to split between the hot and warm tiers (two_tables)"));
      }
    }
  }
  if (absl::Status st = resolve_expiry(r, c); !st.ok()) return st;
  if (c.warm_tier_promotion_hits == 0) {
    return absl::InvalidArgumentError(
        "goldylox: warm_tier_promotion_hits must be at least 1 (1 promotes on every warm hit)");
  }
  if (c.warm_tier_max_entries != 0) {
    absl::StatusOr<policy_factory> make = resolve_warm_policy(r);
    if (!make.ok()) return make.status();
    // A named policy keeps its name; a type or factory reports P::name, read from a one-entry
    // instance (cheap: policies size to their capacity).
    c.warm_tier_policy = r.warm_policy_make
                             ? std::string((*make)(1, 1).policy_name())
                             : r.warm_policy_name.value_or(std::string(d.warm_tier_policy));
  }
  if (c.compression_level < 0 || c.compression_level > max_compression_level) {
    return absl::InvalidArgumentError(
        absl::StrCat("goldylox: compression_level = ", c.compression_level, " is outside 0..",
                     max_compression_level));
  }
  if (r.cold_tier_storage_path) {
    if (r.cold_tier_storage_path->empty()) {
      return absl::InvalidArgumentError(
          "goldylox: cold_tier_storage_path is empty; omit it for a memory-only cache");
    }
    if (r.cold_tier_storage_path->find('\0') != std::string::npos) {
      return absl::InvalidArgumentError("goldylox: cold_tier_storage_path contains a NUL byte");
    }
  }
  if (!r.cold_tier_storage_path &&
      (r.compression_level || r.cold_tier_max_bytes || r.cold_tier_segment_bytes ||
       r.cold_tier_codec || r.cold_tier_durability || r.cold_tier_sync_interval_ms ||
       r.cold_tier_admission || r.cold_tier_strict_open || r.cold_tier_write_through)) {
    return absl::InvalidArgumentError(
        "goldylox: compression_level and the cold_tier_* options apply to the cold tier, which "
        "is off; set cold_tier_storage_path too, or drop them");
  }
  if (c.cold_tier_codec != "zstd" && c.cold_tier_codec != "lz4" && c.cold_tier_codec != "brotli" &&
      c.cold_tier_codec != "none" && c.cold_tier_codec != "adaptive") {
    return absl::InvalidArgumentError(
        absl::StrCat("goldylox: unknown cold_tier_codec '", c.cold_tier_codec,
                     "'; valid codecs: zstd, lz4, brotli, none, adaptive"));
  }
  if (c.cold_tier_durability == cold_durability::periodic && c.cold_tier_sync_interval_ms == 0) {
    return absl::InvalidArgumentError("goldylox: cold_tier_sync_interval must be at least 1 ms");
  }
  if (r.pool && !c.enable_background_workers) {
    return absl::InvalidArgumentError(
        "goldylox: background_pool is set but enable_background_workers is false; drop one");
  }
  // Last, once the options are valid: the default pool starts its thread on first use, and only
  // a cache with a background job needs it.
  if (r.pool) {
    c.background_pool = *r.pool;
  } else if (c.enable_background_workers &&
             (c.warm_tier_max_entries != 0 || !c.cold_tier_storage_path.empty() || c.expiry)) {
    c.background_pool = goldylox::background_pool::shared_default();
  }
  return c;
}

}  // namespace detail

// Options shared by every builder; Derived is the concrete builder (CRTP) so chains keep its type.
template <class Derived>
class basic_builder {
 public:
  // The cache's capacity in memory: the hot and warm tiers together hold at most n entries
  // (capacity() == n; the cold tier is bounded by cold_tier_max_bytes instead). Split by the
  // preset's hot:warm ratio, the hot tier's share rounded down but at least 1: balanced 1:3, so
  // max_entries(100'000) gives 25,000 hot and 75,000 warm. With one tier's size also set, the
  // other tier gets the rest (a hot tier of all n leaves no warm tier); with both, they must
  // add up to n. build() fails with kInvalidArgument for n = 0 or a tier size that does not fit
  // in n. docs/configuration.md#capacity lists every combination.
  Derived& max_entries(std::size_t n) {
    request_.max_entries = n;
    return self();
  }
  // A weight budget for the memory tiers, on top of the entry bound: the entries' total weight
  // stays within n (weights are estimated bytes by default, weight.hpp; typed_cache's weigher()
  // sets its own). With memory_layout::two_tables it is split between the tiers as the entries
  // are. The budget is shared out between the tiers' shards (by hash), and an entry heavier than
  // its shard's share is refused with kInvalidArgument (stats() shows the weight). build() fails
  // with kInvalidArgument for n = 0, or when n is smaller than the number of shards.
  Derived& max_weight(std::size_t n) {
    request_.max_weight = n;
    return self();
  }
  // Maximum entries in the hot (in-memory, lock-free) tier. Required to be >= 1. Without
  // max_entries or warm_tier_max_entries, the warm tier is sized from it by the preset's ratio
  // (balanced: 3 warm entries per hot entry).
  Derived& hot_tier_max_entries(std::size_t n) {
    request_.hot_tier_max_entries = n;
    return self();
  }
  // Maximum entries in the warm tier, which receives the hot tier's evictions (0: no warm tier).
  // Without max_entries or hot_tier_max_entries, a non-zero n sizes the hot tier by the preset's
  // ratio (balanced: a third of n, at least 1); with 0 the hot tier keeps the preset's size.
  Derived& warm_tier_max_entries(std::size_t n) {
    request_.warm_tier_max_entries = n;
    return self();
  }
  // The warm tier's eviction policy by name: "adaptive" (the default), "lru", "fifo", "clock",
  // "lfu", "arc", "lirs", "s3fifo", "sieve", "w-tinylfu", "w-tinylfu-fixed", "linear-model"
  // (policies.hpp). An unknown name fails build() with kInvalidArgument listing these.
  Derived& warm_tier_policy(std::string_view name) {
    request_.warm_policy_name = std::string(name);
    request_.warm_policy_make = nullptr;
    return self();
  }
  // The warm tier's eviction policy by type: P(capacity) per shard (any eviction_policy,
  // concepts.hpp, including a user's own).
  template <eviction_policy P>
  Derived& warm_tier_policy() {
    request_.warm_policy_name.reset();
    request_.warm_policy_make = &detail::make_shard_policy<P>;
    return self();
  }
  // A user policy with options: make(capacity) returns the policy for a shard of that capacity.
  template <class F>
    requires eviction_policy<std::invoke_result_t<F&, std::size_t>>
  Derived& warm_tier_policy(F make) {
    request_.warm_policy_name.reset();
    request_.warm_policy_make = [make = std::move(make)](std::size_t capacity,
                                                         std::size_t) mutable {
      return detail::any_policy(make(capacity));
    };
    return self();
  }
  // An entry in the warm tier moves back to the hot tier on its n-th read there (default 2; 1
  // promotes on every warm hit). Reads before that are served from the warm tier.
  Derived& warm_tier_promotion_hits(std::uint32_t n) {
    request_.warm_tier_promotion_hits = n;
    return self();
  }
  // Directory of the persistent cold tier (created if missing, one level). build() fails if it
  // cannot be written (kPermissionDenied, kNotFound) or another open cache holds it
  // (kFailedPrecondition). Reopening the directory brings its entries back.
  Derived& cold_tier_storage_path(std::string path) {
    request_.cold_tier_storage_path = std::move(path);
    return self();
  }
  // The cold tier's disk capacity in bytes (default 1 GiB); the oldest data is reclaimed
  // beyond it.
  Derived& cold_tier_max_bytes(std::uint64_t n) {
    request_.cold_tier_max_bytes = n;
    return self();
  }
  // Size of one segment file (a power of two, 64 KiB to 4 GiB; default: a sixteenth of the
  // capacity, between 1 and 64 MiB). The capacity must hold at least two.
  Derived& cold_tier_segment_bytes(std::uint64_t n) {
    request_.cold_tier_segment_bytes = n;
    return self();
  }
  // The cold tier's codec: "zstd" (default), "lz4", "brotli", "none", or "adaptive" (per value
  // type and record: none, LZ4 or zstd at compression_level, whichever pays; docs/cold-tier.md).
  Derived& cold_tier_codec(std::string_view name) {
    request_.cold_tier_codec = std::string(name);
    return self();
  }
  // The codec's level: zstd 0..22 (presets give 1, 3 or 9), lz4 0 (fast) or 1..12 (HC), brotli
  // 0..11 (default 5). Requires cold_tier_storage_path.
  Derived& compression_level(int level) {
    request_.compression_level = level;
    return self();
  }
  // What a cold write promises when it returns (docs/cold-tier.md): none, periodic (default),
  // on_close, every_write.
  Derived& cold_tier_durability(cold_durability d) {
    request_.cold_tier_durability = d;
    return self();
  }
  // Which warm-tier evictions are written to the cold tier: all (default), or only entries read
  // at least once in the warm tier (reread). Without a warm tier every eviction is written.
  Derived& cold_tier_admission(cold_admission a) {
    request_.cold_tier_admission = a;
    return self();
  }
  // Whether build() refuses (kDataLoss) to open a cold tier directory that lost data: a segment
  // the manifest lists that is missing, unreadable or replaced, a damaged record (a removed
  // key's tombstone among them), a missing or damaged manifest. Off (the default), the cache
  // opens with what is intact and counts the rest in stats() (cold_missing_segments,
  // cold_corrupt_segments, cold_corrupt_records, cold_damaged_manifests).
  Derived& cold_tier_strict_open(bool strict = true) {
    request_.cold_tier_strict_open = strict;
    return self();
  }
  // Write-through (true) or write-back (false, the default). With write-through every write (put,
  // put_if_absent, replace, compare_and_swap and get_or_insert when they store, remove) reaches
  // the cold tier before it returns, synced as cold_tier_durability says: with every_write, a
  // returned put survives kill -9 and power loss. A write the cold tier refuses (a full disk, an
  // I/O error, a value larger than a segment or of a type cereal cannot serialize) returns the
  // error and leaves the cache as it was. Evicting an entry then writes nothing: the cold tier
  // has its value already. Named as the caching literature names the policy (Ehcache's
  // write-through, JCS's UPDATE pattern); cold_tier_ like the other options it needs a cold
  // tier for (kInvalidArgument without cold_tier_storage_path). docs/cold-tier.md has the
  // guarantees and the cost.
  Derived& cold_tier_write_through(bool on = true) {
    request_.cold_tier_write_through = on;
    return self();
  }
  // How often the periodic durability mode syncs (default 1000 ms).
  Derived& cold_tier_sync_interval(std::chrono::milliseconds interval) {
    request_.cold_tier_sync_interval_ms = static_cast<std::uint32_t>(
        std::clamp<std::int64_t>(interval.count(), 0, std::int64_t{UINT32_MAX}));
    return self();
  }
  // Defaults for the size options not set (docs/configuration.md#presets), and the hot:warm
  // ratio max_entries and a lone tier size are split by.
  Derived& preset(goldylox::preset p) {
    request_.profile = p;
    return self();
  }
  // SSE2 tag matching (true, the default) or the portable SWAR path (false).
  Derived& enable_simd(bool on) {
    request_.enable_simd = on;
    return self();
  }
  // The pool the cache's background jobs run on (moves between tiers; with a cold tier its
  // demotion write-back and periodic sync); give several builders the same pool to share its
  // threads. Without it, such jobs use background_pool::shared_default(). Requires
  // enable_background_workers (the default).
  Derived& background_pool(goldylox::background_pool pool) {
    request_.pool = std::move(pool);
    return self();
  }
  // Whether background jobs run on a pool (true, the default: background_pool, else the shared
  // default pool). With false every move between tiers runs inline on the read that asked for it
  // and every call writes the evictions it caused to the cold tier before it returns
  // (deterministic: what unit tests want), the cold tier's periodic sync runs on a private thread
  // per cache instead, and background_pool fails build() with kInvalidArgument.
  Derived& enable_background_workers(bool on) {
    request_.enable_background_workers = on;
    return self();
  }
  // How the memory tiers hold their entries: memory_layout::one_table (the default: one
  // lock-free table holds hot and warm budgets together, its evictions decided by the warm
  // tier's policy) or memory_layout::two_tables (a CLOCK hot table over a separate warm tier).
  Derived& memory_layout(goldylox::memory_layout layout) {
    request_.memory_layout = layout;
    return self();
  }
  // Expiry (docs/api.md#expiry). An entry expires `d` after it was written (put, put_if_absent,
  // replace, compute, get_or_insert's load): from then on no call sees it, and it leaves memory
  // at the first read or write of its key or when the cache's timer wheels reach it (on the
  // background pool, or with enable_background_workers(false) within the writes and
  // run_pending_tasks()). Times come from the builder's ticker() if given, else from a clock
  // with about a millisecond's resolution (an entry may be seen up to ~1 ms past its deadline).
  // build() fails with kInvalidArgument for d <= 0, or with a cold tier or
  // memory_layout::two_tables (not supported yet).
  Derived& expire_after_write(std::chrono::nanoseconds d) {
    request_.expire_after_write = d;
    return self();
  }
  // As expire_after_write, but each read that finds the entry also restarts its time: it expires
  // `d` after its last read or write. With expire_after_write as well, whichever comes first:
  // reads keep an entry alive, but never past expire_after_write from its write (Caffeine's
  // expireAfterAccess with expireAfterWrite).
  Derived& expire_after_access(std::chrono::nanoseconds d) {
    request_.expire_after_access = d;
    return self();
  }
  // Entries may expire, each by its own ttl: put(key, value, ttl). Entries written without one
  // never expire (with expire_after_write or expire_after_access, they take that duration).
  Derived& enable_expiry(bool on = true) {
    request_.enable_expiry = on;
    return self();
  }
  // Hit/miss counting in stats() (false, the default: it costs a get about 16 instructions).
  Derived& enable_telemetry(bool on) {
    request_.enable_telemetry = on;
    return self();
  }

 protected:
  const detail::config_request& request() const noexcept { return request_; }
  // For a facade's own options that live in the request (typed_cache's refresh_after_write).
  detail::config_request& edit_request() noexcept { return request_; }

 private:
  Derived& self() noexcept { return static_cast<Derived&>(*this); }
  detail::config_request request_;
};

GOLDYLOX_END_NAMESPACE
