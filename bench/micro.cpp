// goldylox_bench_micro: single-thread latency/throughput of one operation, goldylox beside its
// peers, on Google Benchmark.
//
// Benchmark names are  <op>/<key type>/<table size>/<key distribution>/<implementation>:
//   op    get_hit | get_miss | put_update | get_many_<B> | get_loop_<B> | pair_get (below)
//   impl  goldylox             typed_cache<K, V>::get (defaults: SSE2 tag match, telemetry off)
//         goldylox_swar        typed_cache, enable_simd(false)
//         goldylox_telemetry   typed_cache, enable_telemetry(true)
//         goldylox_expire_write   typed_cache, expire_after_write(1 h) (u64 only)
//         goldylox_expire_access  typed_cache, expire_after_access(1 h) (u64 only)
//         goldylox_listener    typed_cache with a removal listener that counts (u64 only)
//         goldylox_refresh     typed_cache, refresh_after_write(1 h) with a loader (u64 only)
//         goldylox_any         cache<K>::get<V> (run-time-typed facade), same V
//         absl_flat            absl::flat_hash_map, unsynchronized (the single-thread floor)
//         absl_shard64_mutex   64 absl::flat_hash_map shards, std::mutex each
//         umap_shared_mutex    std::unordered_map + one std::shared_mutex
//         tbb_chm              tbb::concurrent_hash_map, const_accessor find
//         libcuckoo            libcuckoo::cuckoohash_map::find
// Every table is prefilled with all keys of its set (goldylox sized at exactly the key count, so
// it never evicts). Keys come from pre-generated streams (Zipf 0.99 with shuffled ranks, or
// uniform), read sequentially. get_miss checks that no lookup hit; get_hit that every lookup hit,
// except that goldylox filled to exactly its capacity may lose a few keys to in-window eviction
// while it is prefilled: those show as a `missed` counter (an error only above 0.1 %).
//
// Extra flags (consumed before Google Benchmark sees argv):
//   --fixed_iterations=N   run every benchmark for exactly N iterations (for callgrind: divide
//                          the loop's instruction count by N)
//   --no_summary           skip the ratio summary printed after the run
// pair_get/<key type>/<size>/<dist>/any_vs_typed looks up the same keys through cache<K>::get<V>
// and typed_cache<K, V>::get in alternating 256-key chunks and reports the per-get difference
// (diff_ns, median over chunks): far steadier on a noisy machine than two separate benchmarks.
// cold_put/<keys>/<durability>/wt_vs_wb puts 1 KiB std::string values into two
// typed_cache<uint64_t, std::string> with a cold tier in /tmp, one write-back (the default) and
// one cold_tier_write_through(true), in alternating 16-put chunks (which goes first alternates):
// keys `distinct` (each put a new key, memory 1,024 + 4,096 entries, so write-back demotes one
// entry per put once memory is full) or `repeated` (256 keys over and over, all in memory); both
// with enable_background_workers(false), so a write-back put pays its demotion inline.
// Reports wb_ns and wt_ns (mean per put) and ratio = wt_ns / wb_ns, measured in the same run.
// After the run a summary prints, per workload, each implementation's CPU time per op (median and
// min/max over --benchmark_repetitions) and its ratio to goldylox, and the
// cache<K>::get<V> - typed_cache<K, V>::get difference in ns.
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <stdlib.h>

#include "common/maps.hpp"
#include "common/workload.hpp"

namespace gb = goldylox_bench;
using u64 = std::uint64_t;

namespace {

constexpr u64 seed = 0x601d1011ULL;
constexpr double zipf_theta = 0.99;
constexpr std::size_t u64_stream_len = std::size_t{1} << 20;  // 8 MiB per stream
constexpr std::size_t str_stream_len = std::size_t{1} << 19;
constexpr std::size_t big = std::size_t{1} << 20;    // "1M"
constexpr std::size_t small = std::size_t{1} << 16;  // "64K"

std::optional<benchmark::IterationCount> g_fixed_iterations;
std::vector<std::string> g_registration_order;  // the summary follows it, whatever the run order

const char* size_name(std::size_t n) {
  return n == big ? "1M" : n == small ? "64K" : "n";
}

// ---- data sets, built lazily and kept for the whole run ----

struct u64_data {
  std::vector<u64> keys;
  std::vector<u64> zipf;     // stream of stored keys, Zipf
  std::vector<u64> uniform;  // stream of stored keys, uniform
  std::vector<u64> miss;     // stream of absent keys, uniform
  const std::vector<u64>& stream(gb::distribution d) const {
    return d == gb::distribution::zipf ? zipf : uniform;
  }
};

const u64_data& u64_set(std::size_t n) {
  static std::map<std::size_t, std::unique_ptr<u64_data>> sets;
  auto& slot = sets[n];
  if (!slot) {
    slot = std::make_unique<u64_data>();
    slot->keys = gb::make_u64_keys(n, seed);
    const gb::index_source z(gb::distribution::zipf, n, zipf_theta, seed);
    const gb::index_source u(gb::distribution::uniform, n, zipf_theta, seed);
    slot->zipf = gb::make_u64_stream(slot->keys, z, u64_stream_len, 0, seed + 1);
    slot->uniform = gb::make_u64_stream(slot->keys, u, u64_stream_len, 0, seed + 2);
    const std::vector<u64> absent = gb::make_u64_miss_keys(n, seed);
    slot->miss = gb::make_u64_stream(absent, u, u64_stream_len, 0, seed + 3);
  }
  return *slot;
}

struct str_data {
  std::vector<std::string> keys;
  std::vector<std::string> zipf, uniform, miss;
  const std::vector<std::string>& stream(gb::distribution d) const {
    return d == gb::distribution::zipf ? zipf : uniform;
  }
};

const str_data& str_set(std::size_t n) {
  static std::map<std::size_t, std::unique_ptr<str_data>> sets;
  auto& slot = sets[n];
  if (!slot) {
    slot = std::make_unique<str_data>();
    slot->keys = gb::make_string_keys(n, seed, /*miss=*/false);
    const gb::index_source z(gb::distribution::zipf, n, zipf_theta, seed);
    const gb::index_source u(gb::distribution::uniform, n, zipf_theta, seed);
    slot->zipf = gb::make_string_stream(slot->keys, z, str_stream_len, seed + 1);
    slot->uniform = gb::make_string_stream(slot->keys, u, str_stream_len, seed + 2);
    const std::vector<std::string> absent = gb::make_string_keys(n, seed, /*miss=*/true);
    slot->miss = gb::make_string_stream(absent, u, str_stream_len, seed + 3);
  }
  return *slot;
}

// One prefilled table per (implementation, key set), built on first use.
template <class M, class K>
M& table(std::size_t n) {
  static std::map<std::size_t, std::unique_ptr<M>> tables;
  auto& slot = tables[n];
  if (!slot) {
    slot = std::make_unique<M>(n);
    if constexpr (std::is_same_v<K, u64>) {
      for (const u64 k : u64_set(n).keys) slot->put(k, k ^ 0x5555);
    } else {
      u64 i = 0;
      for (const std::string& k : str_set(n).keys) slot->put(k, ++i);
    }
  }
  return *slot;
}

template <class K>
const std::vector<K>& stream_of(std::size_t n, gb::distribution d, bool miss) {
  if constexpr (std::is_same_v<K, u64>) {
    return miss ? u64_set(n).miss : u64_set(n).stream(d);
  } else {
    return miss ? str_set(n).miss : str_set(n).stream(d);
  }
}

// ---- the benchmark loops ----

template <class M, class K>
void bm_get(benchmark::State& state, std::size_t n, gb::distribution d, bool miss) {
  const M& m = table<M, K>(n);
  const std::vector<K>& s = stream_of<K>(n, d, miss);
  const std::size_t mask = s.size() - 1;
  std::size_t i = 0;
  u64 hits = 0;
  u64 sum = 0;
  for (auto _ : state) {
    u64 v = 0;
    hits += m.get(s[i], v) ? 1 : 0;
    sum += v;
    i = (i + 1) & mask;
  }
  benchmark::DoNotOptimize(sum);
  const auto iterations = static_cast<u64>(state.iterations());
  if (miss && hits != 0) {
    state.SkipWithError("a lookup of an absent key hit");
  } else if (!miss && hits != iterations) {
    // goldylox sized at exactly the key count may evict a few keys while it is prefilled (see
    // docs/benchmarks.md); show how many lookups missed, fail only if it is not a handful.
    if (iterations - hits > iterations / 1000) state.SkipWithError("more than 0.1% of hits missed");
    state.counters["missed"] = static_cast<double>(iterations - hits);
  }
  state.SetItemsProcessed(state.iterations());
}

template <class M, class K>
void bm_put(benchmark::State& state, std::size_t n, gb::distribution d) {
  M& m = table<M, K>(n);
  const std::vector<K>& s = stream_of<K>(n, d, false);
  const std::size_t mask = s.size() - 1;
  std::size_t i = 0;
  u64 value = 0;
  for (auto _ : state) {
    m.put(s[i], ++value);
    i = (i + 1) & mask;
  }
  state.SetItemsProcessed(state.iterations());
}

// cache<K>::get<V> against typed_cache<K, V>::get, paired: each iteration looks up the same 256
// stream keys in both (prefilled alike), timing each chunk, and alternates which goes first, so
// slow drifts of the machine cancel out of the difference. Reports typed_ns and any_ns (mean per
// lookup) and diff_ns, the median over chunks of (any - typed) per lookup.
template <class K>
void bm_pair(benchmark::State& state, std::size_t n, gb::distribution d) {
  using typed = gb::gx_typed<K, u64>;
  using any = gb::gx_any<K, u64>;
  const typed& t = table<typed, K>(n);
  const any& a = table<any, K>(n);
  const std::vector<K>& s = stream_of<K>(n, d, false);
  constexpr std::size_t chunk = 256;
  const std::size_t mask = s.size() - 1;
  std::vector<double> diffs;
  double typed_total = 0;
  double any_total = 0;
  std::size_t i = 0;
  u64 sum = 0;
  u64 misses = 0;
  bool typed_first = true;
  const auto run = [&](const auto& m) {
    const auto t0 = std::chrono::steady_clock::now();
    for (std::size_t j = 0; j < chunk; ++j) {
      u64 v = 0;
      misses += m.get(s[(i + j) & mask], v) ? 0 : 1;
      sum += v;
    }
    return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count() /
           chunk;
  };
  for (auto _ : state) {
    double typed_ns = 0;
    double any_ns = 0;
    if (typed_first) {
      typed_ns = run(t);
      any_ns = run(a);
    } else {
      any_ns = run(a);
      typed_ns = run(t);
    }
    typed_first = !typed_first;
    i = (i + chunk) & mask;
    typed_total += typed_ns;
    any_total += any_ns;
    diffs.push_back(any_ns - typed_ns);
  }
  benchmark::DoNotOptimize(sum);
  const auto iterations = static_cast<double>(state.iterations());
  if (static_cast<double>(misses) > iterations * 2 * chunk / 1000) {
    state.SkipWithError("more than 0.1% of hits missed");
  }
  std::sort(diffs.begin(), diffs.end());
  state.counters["typed_ns"] = typed_total / iterations;
  state.counters["any_ns"] = any_total / iterations;
  state.counters["diff_ns"] = diffs.empty() ? 0.0 : diffs[diffs.size() / 2];
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(2 * chunk));
}

// A batch of B lookups: typed_cache::get_many, or the same keys one get at a time. Both write
// the same std::optional array and fold it the same way afterwards.
template <std::size_t B, bool Many>
void bm_batch(benchmark::State& state, std::size_t n, gb::distribution d) {
  using M = gb::gx_typed<u64, u64>;
  const auto& c = table<M, u64>(n).raw();
  const std::vector<u64>& s = u64_set(n).stream(d);
  const std::size_t mask = s.size() - 1;
  std::array<std::optional<u64>, B> out;
  std::size_t i = 0;
  u64 sum = 0;
  u64 hits = 0;
  for (auto _ : state) {
    const std::span<const u64> keys(&s[i], B);
    if constexpr (Many) {
      c.get_many(keys, std::span<std::optional<u64>>(out));
    } else {
      for (std::size_t j = 0; j < B; ++j) out[j] = c.get(keys[j]);
    }
    for (const auto& o : out) {
      hits += o.has_value() ? 1 : 0;
      sum += o.value_or(0);
    }
    i = (i + B) & mask;
  }
  benchmark::DoNotOptimize(sum);
  const u64 lookups = static_cast<u64>(state.iterations()) * B;
  if (lookups - hits > lookups / 1000) state.SkipWithError("more than 0.1% of hits missed");
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(B));
  state.counters["ns_per_key"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * B * 1e-9,
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

// Write-through against write-back, paired (see the top comment).
void bm_cold_put(benchmark::State& state, bool distinct, goldylox::cold_durability durability) {
  using cache_type = goldylox::typed_cache<u64, std::string>;
  struct side {
    std::filesystem::path dir;
    std::optional<cache_type> cache;
    double ns = 0;
  };
  side sides[2];  // [0] write-back, [1] write-through
  for (int i = 0; i < 2; ++i) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "goldylox-bench-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      state.SkipWithError("mkdtemp failed");
      return;
    }
    sides[i].dir = tmpl;
    auto made = cache_type::builder()
                    .hot_tier_max_entries(1024)
                    .warm_tier_max_entries(4096)
                    .cold_tier_storage_path(tmpl)
                    .cold_tier_max_bytes(std::uint64_t{4} << 30)
                    .cold_tier_durability(durability)
                    .cold_tier_write_through(i == 1)
                    // Inline write-back: each put's time includes the demotion it causes (with
                    // the default background pool, the pool's job would write it instead).
                    .enable_background_workers(false)
                    .build();
    if (!made.ok()) {
      state.SkipWithError(made.status().ToString().c_str());
      return;
    }
    sides[i].cache.emplace(*std::move(made));
  }
  constexpr int chunk = 16;
  const std::string value(1024, 'v');
  u64 next = 0;
  std::size_t failures = 0;
  int first = 0;
  for (auto _ : state) {
    const u64 base = next;
    next += chunk;
    for (int turn = 0; turn < 2; ++turn) {
      side& sd = sides[(first + turn) % 2];
      const auto t0 = std::chrono::steady_clock::now();
      for (int j = 0; j < chunk; ++j) {
        const u64 key = distinct ? base + j : (base + j) % 256;
        failures += !sd.cache->put(key, value).ok();
      }
      sd.ns +=
          std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
    }
    first ^= 1;
  }
  if (failures != 0) state.SkipWithError("a put failed");
  const double puts = static_cast<double>(state.iterations()) * chunk;
  state.counters["wb_ns"] = sides[0].ns / puts;
  state.counters["wt_ns"] = sides[1].ns / puts;
  state.counters["ratio"] = sides[1].ns / sides[0].ns;
  state.SetItemsProcessed(state.iterations() * 2 * chunk);
  for (side& sd : sides) {
    sd.cache.reset();  // closes it (write-back flushes memory, not timed)
    std::error_code ec;
    std::filesystem::remove_all(sd.dir, ec);
  }
}

// ---- registration ----

void add(const std::string& name, std::function<void(benchmark::State&)> fn) {
  g_registration_order.push_back(name);
  benchmark::internal::Benchmark* b =
      benchmark::RegisterBenchmark(name.c_str(), [fn](benchmark::State& st) { fn(st); });
  b->Unit(benchmark::kNanosecond);
  // With --benchmark_repetitions, report min and max beside mean/median/stddev.
  b->ComputeStatistics(
      "min", [](const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); });
  b->ComputeStatistics(
      "max", [](const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); });
  if (g_fixed_iterations) b->Iterations(*g_fixed_iterations);
}

template <class M, class K>
struct impl {
  using map_type = M;
  using key_type = K;
  const char* name;
};

std::string name_of(const char* op, const char* key_type, std::size_t n, const char* dist,
                    const char* impl_name) {
  return std::string(op) + "/" + key_type + "/" + size_name(n) + "/" + dist + "/" + impl_name;
}

template <class... I>
void register_gets(const char* key_type, std::size_t n, gb::distribution d, I... impls) {
  (add(name_of("get_hit", key_type, n, gb::to_string(d), impls.name),
       [n, d](benchmark::State& st) {
         bm_get<typename I::map_type, typename I::key_type>(st, n, d, false);
       }),
   ...);
}

template <class... I>
void register_misses(const char* key_type, std::size_t n, I... impls) {
  (add(name_of("get_miss", key_type, n, "uniform", impls.name),
       [n](benchmark::State& st) {
         bm_get<typename I::map_type, typename I::key_type>(st, n, gb::distribution::uniform, true);
       }),
   ...);
}

template <class... I>
void register_puts(const char* key_type, std::size_t n, gb::distribution d, I... impls) {
  (add(name_of("put_update", key_type, n, gb::to_string(d), impls.name),
       [n, d](benchmark::State& st) {
         bm_put<typename I::map_type, typename I::key_type>(st, n, d);
       }),
   ...);
}

template <class K>
void register_pair(const char* key_type, std::size_t n, gb::distribution d) {
  add(name_of("pair_get", key_type, n, gb::to_string(d), "any_vs_typed"),
      [n, d](benchmark::State& st) { bm_pair<K>(st, n, d); });
}

template <std::size_t B>
void register_batch(std::size_t n, gb::distribution d) {
  const std::string many = "get_many_" + std::to_string(B);
  const std::string loop = "get_loop_" + std::to_string(B);
  add(name_of(many.c_str(), "u64", n, gb::to_string(d), "goldylox"),
      [n, d](benchmark::State& st) { bm_batch<B, true>(st, n, d); });
  add(name_of(loop.c_str(), "u64", n, gb::to_string(d), "goldylox"),
      [n, d](benchmark::State& st) { bm_batch<B, false>(st, n, d); });
}

template <class K>
auto all_impls() {
  return std::make_tuple(impl<gb::gx_typed<K, u64>, K>{"goldylox"},
                         impl<gb::gx_any<K, u64>, K>{"goldylox_any"},
                         impl<gb::absl_flat<K, u64>, K>{"absl_flat"},
                         impl<gb::absl_sharded<K, u64>, K>{"absl_shard64_mutex"},
                         impl<gb::std_shared_mutex_map<K, u64>, K>{"umap_shared_mutex"}
#if GOLDYLOX_BENCH_HAVE_TBB
                         ,
                         impl<gb::tbb_map<K, u64>, K>{"tbb_chm"}
#endif
#if GOLDYLOX_BENCH_HAVE_LIBCUCKOO
                         ,
                         impl<gb::cuckoo_map<K, u64>, K>{"libcuckoo"}
#endif
  );
}

// The u64 set also measures goldylox's SWAR tag match, telemetry-on, expiry, listener and
// refresh variants.
auto u64_impls() {
  return std::tuple_cat(
      std::make_tuple(
          impl<gb::gx_typed<u64, u64, gb::gx_tag::swar>, u64>{"goldylox_swar"},
          impl<gb::gx_typed<u64, u64, gb::gx_tag::telemetry>, u64>{"goldylox_telemetry"},
          impl<gb::gx_typed<u64, u64, gb::gx_tag::expire_write>, u64>{"goldylox_expire_write"},
          impl<gb::gx_typed<u64, u64, gb::gx_tag::expire_access>, u64>{"goldylox_expire_access"},
          impl<gb::gx_typed<u64, u64, gb::gx_tag::listener>, u64>{"goldylox_listener"},
          impl<gb::gx_typed<u64, u64, gb::gx_tag::refresh>, u64>{"goldylox_refresh"}),
      all_impls<u64>());
}

void register_all() {
  using gb::distribution;
  for (const distribution d : {distribution::zipf, distribution::uniform}) {
    for (const std::size_t n : {big, small}) {
      std::apply([&](auto... i) { register_gets("u64", n, d, i...); }, u64_impls());
    }
  }
  for (const std::size_t n : {big, small}) {
    std::apply([&](auto... i) { register_misses("u64", n, i...); }, u64_impls());
  }
  for (const distribution d : {distribution::zipf, distribution::uniform}) {
    for (const std::size_t n : {big, small}) {
      std::apply([&](auto... i) { register_puts("u64", n, d, i...); }, u64_impls());
    }
  }
  for (const distribution d : {distribution::zipf, distribution::uniform}) {
    for (const std::size_t n : {big, small}) {
      std::apply([&](auto... i) { register_gets("str", n, d, i...); }, all_impls<std::string>());
    }
  }
  std::apply([&](auto... i) { register_misses("str", big, i...); }, all_impls<std::string>());
  std::apply([&](auto... i) { register_puts("str", big, distribution::zipf, i...); },
             all_impls<std::string>());
  for (const distribution d : {distribution::zipf, distribution::uniform}) {
    for (const std::size_t n : {big, small}) {
      register_pair<std::string>("str", n, d);
      register_pair<u64>("u64", n, d);
    }
  }
  for (const distribution d : {distribution::zipf, distribution::uniform}) {
    for (const std::size_t n : {big, small}) {
      register_batch<16>(n, d);
      register_batch<64>(n, d);
    }
  }
  for (const auto durability :
       {goldylox::cold_durability::none, goldylox::cold_durability::every_write}) {
    for (const bool distinct : {true, false}) {
      const std::string name = std::string("cold_put/") + (distinct ? "distinct/" : "repeated/") +
                               std::string(goldylox::to_string(durability)) + "/wt_vs_wb";
      add(name, [=](benchmark::State& st) { bm_cold_put(st, distinct, durability); });
    }
  }
}

// ---- summary: ratios within this run ----

// Collects each benchmark's time per iteration (median over repetitions when there are several)
// and prints, after the normal output, the per-workload comparison.
class summary_reporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs) {
      if (r.error_occurred) continue;
      const std::string& name = r.run_name.function_name;
      // CPU time, not wall time: on a shared machine a single-thread benchmark that gets
      // preempted accrues wall time but no CPU time.
      if (r.run_type == Run::RT_Iteration) {
        reps_[name].push_back(r.GetAdjustedCPUTime());
        for (const char* c : {"typed_ns", "any_ns", "diff_ns"}) {
          const auto it = r.counters.find(c);
          if (it != r.counters.end()) pair_reps_[name][c].push_back(it->second.value);
        }
      } else if (r.aggregate_name == "median" || r.aggregate_name == "min" ||
                 r.aggregate_name == "max") {
        aggregates_[name][r.aggregate_name] = r.GetAdjustedCPUTime();
        for (const char* c : {"typed_ns", "any_ns", "diff_ns"}) {
          const auto it = r.counters.find(c);
          if (it != r.counters.end())
            pair_aggregates_[name][r.aggregate_name][c] = it->second.value;
        }
      }
    }
    ConsoleReporter::ReportRuns(runs);
  }

  void print_summary() const {
    struct row {
      std::string impl;
      double ns, lo, hi;
    };
    std::vector<std::string> workloads;
    std::map<std::string, std::vector<row>> rows;
    for (const std::string& name : g_registration_order) {
      if (name.rfind("pair_get/", 0) == 0) continue;  // printed in their own section
      double ns = 0, lo = 0, hi = 0;
      if (!time_of(name, ns, lo, hi)) continue;
      const std::size_t cut = name.rfind('/');
      const std::string w = name.substr(0, cut);
      if (rows.find(w) == rows.end()) workloads.push_back(w);
      rows[w].push_back({name.substr(cut + 1), ns, lo, hi});
    }
    std::printf(
        "\n==== summary: CPU ns per op (median; [min, max] over repetitions) and ratio "
        "impl/goldylox (>1: goldylox faster) ====\n");
    for (const std::string& w : workloads) {
      const auto& rs = rows[w];
      const auto gx =
          std::find_if(rs.begin(), rs.end(), [](const row& r) { return r.impl == "goldylox"; });
      std::printf("%s\n", w.c_str());
      for (const row& r : rs) {
        std::printf("  %-20s %8.2f ns  [%7.2f, %7.2f]", r.impl.c_str(), r.ns, r.lo, r.hi);
        if (gx != rs.end() && r.impl != "goldylox") {
          std::printf("   x%.2f", r.ns / gx->ns);
        }
        std::printf("\n");
      }
      if (gx != rs.end()) {
        for (const row& r : rs) {
          if (r.impl == "goldylox_any") {
            std::printf("  -> cache<K>::get<V> - typed_cache<K,V>::get = %+.2f ns\n",
                        r.ns - gx->ns);
          }
          if (r.impl == "absl_flat") {
            std::printf("  -> goldylox / unsynchronized absl_flat = %.2fx\n", gx->ns / r.ns);
          }
        }
      }
    }
    // Paired cache<K>::get<V> vs typed_cache<K, V>::get.
    bool pair_header = false;
    for (const std::string& name : g_registration_order) {
      if (name.rfind("pair_get/", 0) != 0) continue;
      double typed = NAN, any = NAN, diff = NAN, diff_lo = NAN, diff_hi = NAN;
      const auto agg = pair_aggregates_.find(name);
      const auto reps = pair_reps_.find(name);
      if (agg != pair_aggregates_.end() && agg->second.count("median") != 0) {
        const auto& m = agg->second.at("median");
        typed = m.at("typed_ns");
        any = m.at("any_ns");
        diff = m.at("diff_ns");
        if (agg->second.count("min") != 0) diff_lo = agg->second.at("min").at("diff_ns");
        if (agg->second.count("max") != 0) diff_hi = agg->second.at("max").at("diff_ns");
      } else if (reps != pair_reps_.end()) {
        typed = median(reps->second.at("typed_ns"));
        any = median(reps->second.at("any_ns"));
        std::vector<double> d = reps->second.at("diff_ns");
        diff = median(d);
        diff_lo = *std::min_element(d.begin(), d.end());
        diff_hi = *std::max_element(d.begin(), d.end());
      } else {
        continue;
      }
      if (!pair_header) {
        std::printf(
            "cache<K>::get<V> - typed_cache<K,V>::get, paired on the same keys (wall ns "
            "per get; diff = median over 256-key chunks, [min, max] over repetitions):\n");
        pair_header = true;
      }
      std::printf("  %-36s typed %7.2f  any %7.2f  diff %+7.2f  [%+.2f, %+.2f]\n",
                  name.substr(0, name.rfind('/')).c_str(), typed, any, diff, diff_lo, diff_hi);
    }
    // get_many vs loop: pair get_many_B/<rest> with get_loop_B/<rest>.
    bool header = false;
    for (const std::string& w : workloads) {
      if (w.rfind("get_many_", 0) != 0) continue;
      const std::string loop = "get_loop_" + w.substr(9);
      if (rows.find(loop) == rows.end()) continue;
      if (!header) {
        std::printf("get_many vs a loop of get (ns per key):\n");
        header = true;
      }
      const std::size_t batch = std::stoul(w.substr(9, w.find('/') - 9));
      const double many = rows.at(w)[0].ns / static_cast<double>(batch);
      const double one = rows.at(loop)[0].ns / static_cast<double>(batch);
      std::printf("  %-40s get_many %6.2f  loop %6.2f  speed-up x%.2f\n", w.c_str(), many, one,
                  one / many);
    }
  }

 private:
  // Prefers Google Benchmark's aggregates (with --benchmark_repetitions), else the repetitions
  // this reporter saw itself.
  bool time_of(const std::string& name, double& ns, double& lo, double& hi) const {
    const auto agg = aggregates_.find(name);
    if (agg != aggregates_.end() && agg->second.count("median") != 0) {
      const auto& a = agg->second;
      ns = a.at("median");
      lo = a.count("min") != 0 ? a.at("min") : ns;
      hi = a.count("max") != 0 ? a.at("max") : ns;
      return true;
    }
    const auto rep = reps_.find(name);
    if (rep == reps_.end() || rep->second.empty()) return false;
    std::vector<double> v = rep->second;
    std::sort(v.begin(), v.end());
    lo = v.front();
    hi = v.back();
    ns = v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
    return true;
  }

  static double median(std::vector<double> v) {
    if (v.empty()) return NAN;
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  }

  std::map<std::string, std::vector<double>> reps_;
  std::map<std::string, std::map<std::string, double>> aggregates_;
  std::map<std::string, std::map<std::string, std::vector<double>>> pair_reps_;
  std::map<std::string, std::map<std::string, std::map<std::string, double>>> pair_aggregates_;
};

}  // namespace

int main(int argc, char** argv) {
  bool summary = true;
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    const char* a = argv[i];
    if (std::strncmp(a, "--fixed_iterations=", 19) == 0) {
      g_fixed_iterations = std::stoll(a + 19);
    } else if (std::strcmp(a, "--no_summary") == 0) {
      summary = false;
    } else {
      args.push_back(argv[i]);
    }
  }
  int count = static_cast<int>(args.size());
  args.push_back(nullptr);
  register_all();
  benchmark::Initialize(&count, args.data());
  if (benchmark::ReportUnrecognizedArguments(count, args.data())) return 1;
  summary_reporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  if (summary) reporter.print_summary();
  benchmark::Shutdown();
  return 0;
}
