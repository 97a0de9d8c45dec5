// The cold tier's admission rule, measured: a read-through workload (a get that misses loads the
// value and puts it, as a service in front of a database would) runs through a three-tier
// typed_cache<uint64_t, std::string> of 1 KiB JSON-like values, once with every warm eviction
// written to disk (`all`) and once with only entries read in the warm tier (`reread`). Reported
// per rule: the hit ratio (memory and cold), the cold tier's writes and bytes, and the time.
//
//   goldylox_bench_admission [--keys N] [--ops N] [--theta T] [--hot N] [--warm N] [--dir D]
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <goldylox/goldylox.hpp>

#include "common/json_values.hpp"
#include "common/workload.hpp"

namespace {

namespace gb = goldylox_bench;

struct options {
  std::size_t keys = 1'000'000;
  std::size_t ops = 3'000'000;
  double theta = 0.99;
  std::size_t hot = 10'000;
  std::size_t warm = 30'000;
  std::string dir = (std::filesystem::temp_directory_path() / "goldylox-bench-admission").string();
};

struct result {
  double hit_ratio = 0, memory_hit_ratio = 0, seconds = 0;
  std::uint64_t cold_writes = 0, not_admitted = 0, cold_hits = 0, disk_bytes = 0;
};

result run(const options& o, goldylox::cold_admission rule, const std::vector<std::uint64_t>& ids) {
  std::filesystem::remove_all(o.dir);
  auto made = goldylox::typed_cache<std::uint64_t, std::string>::builder()
                  .hot_tier_max_entries(o.hot)
                  .warm_tier_max_entries(o.warm)
                  .warm_tier_policy("lru")
                  .cold_tier_storage_path(o.dir)
                  .cold_tier_max_bytes(std::uint64_t{4} << 30)
                  .cold_tier_durability(goldylox::cold_durability::none)
                  .cold_tier_admission(rule)
                  .enable_telemetry(true)
                  .build();
  if (!made.ok()) {
    std::fprintf(stderr, "build: %s\n", std::string(made.status().message()).c_str());
    std::exit(1);
  }
  auto& cache = *made;
  result r;
  std::uint64_t hits = 0;
  const auto start = std::chrono::steady_clock::now();
  for (const std::uint64_t id : ids) {
    if (cache.get(id)) {
      ++hits;
      continue;
    }
    std::uint64_t x = id;
    (void)cache.put(id, gb::json_value([&] { return x = gb::splitmix64(x); }));
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const goldylox::cache_stats s = cache.stats();
  r.hit_ratio = static_cast<double>(hits) / static_cast<double>(ids.size());
  r.cold_hits = s.cold_hits;
  r.memory_hit_ratio = static_cast<double>(hits - s.cold_hits) / static_cast<double>(ids.size());
  r.cold_writes = s.cold_demotions;
  r.not_admitted = s.cold_not_admitted;
  r.disk_bytes = s.cold_disk_bytes;
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    const auto next = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", argv[i]);
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--keys") {
      o.keys = std::strtoull(next(), nullptr, 10);
    } else if (a == "--ops") {
      o.ops = std::strtoull(next(), nullptr, 10);
    } else if (a == "--theta") {
      o.theta = std::strtod(next(), nullptr);
    } else if (a == "--hot") {
      o.hot = std::strtoull(next(), nullptr, 10);
    } else if (a == "--warm") {
      o.warm = std::strtoull(next(), nullptr, 10);
    } else if (a == "--dir") {
      o.dir = next();
    } else {
      std::fprintf(stderr,
                   "usage: goldylox_bench_admission [--keys N] [--ops N] [--theta T] [--hot N] "
                   "[--warm N] [--dir D]\n");
      return a == "--help" ? 0 : 2;
    }
  }
  if (o.keys == 0 || o.ops == 0 || !(o.theta > 0)) {
    std::fprintf(stderr, "keys, ops and theta must be positive\n");
    return 2;
  }
  const std::vector<std::uint64_t> ids = gb::zipf_ids(o.keys, o.ops, o.theta, 42);
  std::printf("%zu keys, %zu read-through gets, zipf %.2f, hot %zu, warm %zu (lru), 1 KiB values\n",
              o.keys, o.ops, o.theta, o.hot, o.warm);
  std::printf("%-8s %9s %10s %10s %12s %12s %10s %9s\n", "rule", "hit ratio", "memory", "cold hits",
              "cold writes", "not admitted", "disk MiB", "seconds");
  for (const auto rule : {goldylox::cold_admission::all, goldylox::cold_admission::reread}) {
    const result r = run(o, rule, ids);
    std::printf("%-8s %9.4f %10.4f %10llu %12llu %12llu %10.1f %9.2f\n",
                rule == goldylox::cold_admission::all ? "all" : "reread", r.hit_ratio,
                r.memory_hit_ratio, static_cast<unsigned long long>(r.cold_hits),
                static_cast<unsigned long long>(r.cold_writes),
                static_cast<unsigned long long>(r.not_admitted),
                static_cast<double>(r.disk_bytes) / (1 << 20), r.seconds);
  }
  std::filesystem::remove_all(o.dir);
  return 0;
}
