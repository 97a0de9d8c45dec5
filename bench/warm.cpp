// Warm-tier throughput against sharded-LRU peers, in the same run: a read-through workload (get;
// on a miss, put) over a Zipf(0.99) stream of 4M requests on 1M keys, a 100K-entry cache, at 1
// and 2 threads (Google Benchmark ->Threads; each thread starts at its own offset in the stream).
// GOLDYLOX_BENCH_THETA=0.8 (say) runs the same with another Zipf exponent, and
// GOLDYLOX_BENCH_HOT_SHARE=0.75 (say) gives goldylox_tiered another hot:warm split.
//
//   goldylox warm_tier<uint64_t, uint64_t, P>, P = lru, sieve, s3fifo, adaptive; and adaptive
//     with its miniature-cache budget shared among the shards (goldylox_warm_adaptive_shared)
//   goldylox_default   the whole cache as README builds it: typed_cache with max_entries(100K),
//     the default preset (one table of 100K entries whose evictions the adaptive policy
//     decides), learning on the shared background pool; goldylox_default_inline: the same with
//     enable_background_workers(false)
//   goldylox_tiered<sieve|adaptive|lirs|w-tinylfu>  the whole cache (typed_cache) with that
//     policy: one table of 100K entries, or with GOLDYLOX_BENCH_LAYOUT=two_tables a 25K-entry hot
//     tier over a 75K-entry warm tier (GOLDYLOX_BENCH_HOT_SHARE moves the split);
//     goldylox_hot_only: the hot tier alone, 100K entries
//   absl_sharded_lru   64 shards, each a std::mutex around an absl::flat_hash_map and a list
//   rocksdb_lru        rocksdb::NewLRUCache (64 shards), if librocksdb-dev is installed
//   rocksdb_hyperclock rocksdb::HyperClockCacheOptions (64 shards), likewise
// GOLDYLOX_BENCH_ITERATIONS=N: a fixed number of operations per thread (for callgrind, below).
// Counters: hit_ratio, and for the whole cache moves_per_op, the entries moved between its memory
// tiers (promotions and demotions) per operation, which is the churn the coordinator keeps down.
// RocksDB keys are the 8-byte key padded to the 16 bytes HyperClockCache requires; values are
// stored in the void* itself (no allocation, a no-op deleter); every entry has charge 1 and
// metadata is not charged, so both caches are bounded by entries, like ours.
//
//   ./build/release/bench/goldylox_bench_warm --benchmark_min_time=2
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include <benchmark/benchmark.h>

#include "absl/container/flat_hash_map.h"
#include "common/workload.hpp"
#include "goldylox/detail/warm/tier.hpp"
#include "goldylox/goldylox.hpp"
#include "goldylox/policies.hpp"

#if defined(GOLDYLOX_BENCH_HAVE_ROCKSDB)
#include <rocksdb/cache.h>
#endif

namespace {

namespace gl = goldylox;
namespace gd = goldylox::detail;

constexpr std::size_t capacity = 100'000;

// The Zipf exponent: 0.99, or GOLDYLOX_BENCH_THETA (a number in (0, 2)).
double theta() {
  const char* v = std::getenv("GOLDYLOX_BENCH_THETA");
  const double t = v != nullptr ? std::strtod(v, nullptr) : 0.99;
  if (!(t > 0.0 && t < 2.0)) {
    std::fprintf(stderr, "GOLDYLOX_BENCH_THETA must be a number between 0 and 2\n");
    std::exit(2);
  }
  return t;
}

// goldylox_tiered's hot tier, in entries: a quarter of the capacity, or GOLDYLOX_BENCH_HOT_SHARE
// (a number in (0, 1)) of it.
bool env_is(const char* name, std::string_view value) {
  const char* v = std::getenv(name);
  return v != nullptr && value == v;
}

std::size_t tiered_hot_entries() {
  const char* v = std::getenv("GOLDYLOX_BENCH_HOT_SHARE");
  const double share = v != nullptr ? std::strtod(v, nullptr) : 0.25;
  if (!(share > 0.0 && share < 1.0)) {
    std::fprintf(stderr, "GOLDYLOX_BENCH_HOT_SHARE must be a number between 0 and 1\n");
    std::exit(2);
  }
  return std::max<std::size_t>(1, static_cast<std::size_t>(share * capacity));
}

const std::vector<std::uint64_t>& stream() {
  static const std::vector<std::uint64_t> ids =
      goldylox_bench::zipf_ids(1 << 20, 1 << 22, theta(), 4242);
  return ids;
}

// ---- the caches under test, behind one interface: get (true on a hit) and put ---------------

template <class P>
struct goldylox_warm {
  gd::warm_tier<std::uint64_t, std::uint64_t, P> tier{{.max_entries = capacity, .shards = 64}};
  bool get(std::uint64_t k) {
    return tier.visit(k, [](const std::uint64_t& v) { benchmark::DoNotOptimize(v); });
  }
  void put(std::uint64_t k, std::uint64_t v) { (void)tier.put(k, v); }
};

// The adaptive policy with its 4096-entry miniature-cache budget shared among the 64 shards (64
// entries per expert per shard) instead of 4096 per shard.
struct goldylox_warm_adaptive_shared {
  gd::warm_tier<std::uint64_t, std::uint64_t, gl::policy::adaptive> tier{
      {.max_entries = capacity, .shards = 64}, {}, {}, [](std::size_t c, std::size_t shards) {
        gl::policy::adaptive_options o;
        o.shadow_budget = std::max<std::size_t>(1, o.shadow_budget / shards);
        return gl::policy::adaptive(c, o);
      }};
  bool get(std::uint64_t k) {
    return tier.visit(k, [](const std::uint64_t& v) { benchmark::DoNotOptimize(v); });
  }
  void put(std::uint64_t k, std::uint64_t v) { (void)tier.put(k, v); }
};

// The whole cache at the same total capacity: typed_cache with a hot tier of a quarter of it (the
// design's 10:30 hot:warm split) and the warm tier holding the rest under policy `Name`; and the
// hot tier alone holding all of it (CLOCK, no warm tier).
struct goldylox_cache {
  explicit goldylox_cache(gl::typed_cache<std::uint64_t, std::uint64_t> made)
      : cache(std::move(made)) {}
  bool get(std::uint64_t k) {
    const std::optional<std::uint64_t> v = cache.get(k);
    benchmark::DoNotOptimize(v);
    return v.has_value();
  }
  void put(std::uint64_t k, std::uint64_t v) { (void)cache.put(k, v); }
  // Entries moved between the memory tiers so far (the churn the moves_per_op counter reports).
  std::uint64_t moves() {
    cache.run_pending_tasks();
    const gl::cache_stats st = cache.stats();
    return st.promotions + st.demotions;
  }
  gl::typed_cache<std::uint64_t, std::uint64_t> cache;
};
// The whole cache as README builds it: max_entries(100K) with the default preset (one table, the
// adaptive policy) and background workers (the policy learns on the shared default pool).
struct goldylox_default : goldylox_cache {
  goldylox_default()
      : goldylox_cache(gl::typed_cache<std::uint64_t, std::uint64_t>::builder()
                           .max_entries(capacity)
                           .build()
                           .value()) {}
};
// The same with every move made inline, on the reading thread (enable_background_workers(false)).
struct goldylox_default_inline : goldylox_cache {
  goldylox_default_inline()
      : goldylox_cache(gl::typed_cache<std::uint64_t, std::uint64_t>::builder()
                           .max_entries(capacity)
                           .enable_background_workers(false)
                           .build()
                           .value()) {}
};
// GOLDYLOX_BENCH_LAYOUT=two_tables builds these with memory_layout::two_tables;
// GOLDYLOX_BENCH_INLINE=1 without background workers.
template <const char* Name>
struct goldylox_tiered : goldylox_cache {
  goldylox_tiered()
      : goldylox_cache(gl::typed_cache<std::uint64_t, std::uint64_t>::builder()
                           .hot_tier_max_entries(tiered_hot_entries())
                           .warm_tier_max_entries(capacity - tiered_hot_entries())
                           .warm_tier_policy(Name)
                           .memory_layout(env_is("GOLDYLOX_BENCH_LAYOUT", "two_tables")
                                              ? gl::memory_layout::two_tables
                                              : gl::memory_layout::one_table)
                           .enable_background_workers(!env_is("GOLDYLOX_BENCH_INLINE", "1"))
                           .build()
                           .value()) {}
};
constexpr char sieve_name[] = "sieve";
constexpr char adaptive_name[] = "adaptive";
constexpr char lirs_name[] = "lirs";
constexpr char tinylfu_name[] = "w-tinylfu";
struct goldylox_hot_only : goldylox_cache {
  goldylox_hot_only()
      : goldylox_cache(gl::typed_cache<std::uint64_t, std::uint64_t>::builder()
                           .hot_tier_max_entries(capacity)
                           .warm_tier_max_entries(0)
                           .build()
                           .value()) {}
};

class absl_sharded_lru {
 public:
  bool get(std::uint64_t k) {
    shard& s = shard_for(k);
    std::lock_guard lock(s.mutex);
    const auto it = s.index.find(k);
    if (it == s.index.end()) return false;
    s.order.splice(s.order.begin(), s.order, it->second);
    benchmark::DoNotOptimize(it->second->second);
    return true;
  }
  void put(std::uint64_t k, std::uint64_t v) {
    shard& s = shard_for(k);
    std::lock_guard lock(s.mutex);
    if (const auto it = s.index.find(k); it != s.index.end()) {
      it->second->second = v;
      s.order.splice(s.order.begin(), s.order, it->second);
      return;
    }
    if (s.index.size() >= capacity / shards) {
      s.index.erase(s.order.back().first);
      s.order.pop_back();
    }
    s.order.emplace_front(k, v);
    s.index.emplace(k, s.order.begin());
  }

 private:
  static constexpr std::size_t shards = 64;
  struct alignas(64) shard {
    std::mutex mutex;
    std::list<std::pair<std::uint64_t, std::uint64_t>> order;
    absl::flat_hash_map<std::uint64_t, std::list<std::pair<std::uint64_t, std::uint64_t>>::iterator>
        index;
  };
  shard& shard_for(std::uint64_t k) { return shards_[(k * 0x9e3779b97f4a7c15ULL) >> 58]; }
  std::array<shard, shards> shards_;
};

#if defined(GOLDYLOX_BENCH_HAVE_ROCKSDB)
class rocksdb_cache {
 public:
  explicit rocksdb_cache(std::shared_ptr<rocksdb::Cache> c) : cache_(std::move(c)) {}
  bool get(std::uint64_t k) {
    char key[16];
    encode(k, key);
    rocksdb::Cache::Handle* h = cache_->Lookup(rocksdb::Slice(key, 16));
    if (h == nullptr) return false;
    benchmark::DoNotOptimize(cache_->Value(h));
    cache_->Release(h);
    return true;
  }
  void put(std::uint64_t k, std::uint64_t v) {
    char key[16];
    encode(k, key);
    (void)cache_->Insert(rocksdb::Slice(key, 16), reinterpret_cast<void*>(v), 1,
                         [](const rocksdb::Slice&, void*) {});
  }

 private:
  static void encode(std::uint64_t k, char* out) {
    std::memcpy(out, &k, 8);
    std::memset(out + 8, 0, 8);
  }
  std::shared_ptr<rocksdb::Cache> cache_;
};
struct rocksdb_lru : rocksdb_cache {
  rocksdb_lru()
      : rocksdb_cache(rocksdb::NewLRUCache(capacity, 6, false, 0.0, nullptr,
                                           rocksdb::kDefaultToAdaptiveMutex,
                                           rocksdb::kDontChargeCacheMetadata)) {}
};
struct rocksdb_hyperclock : rocksdb_cache {
  rocksdb_hyperclock()
      : rocksdb_cache(rocksdb::HyperClockCacheOptions(capacity, 1, 6, false, nullptr,
                                                      rocksdb::kDontChargeCacheMetadata)
                          .MakeSharedCache()) {}
};
#endif

// ---- the workload ---------------------------------------------------------------------------

template <class C>
C& shared_cache() {
  static C* c = [] {
    auto* made = new C();
    for (const std::uint64_t k : stream()) {  // warm: a full cache
      if (!made->get(k)) made->put(k, k);
    }
    return made;
  }();
  return *c;
}

template <class C>
void read_through(benchmark::State& state) {
  C& cache = shared_cache<C>();
  const auto& s = stream();
  std::size_t i = (s.size() / 4) * static_cast<std::size_t>(state.thread_index());
  std::uint64_t hits = 0, ops = 0;
  constexpr bool tiered = requires { cache.moves(); };
  std::uint64_t moves_before = 0;
  if constexpr (tiered) {
    if (state.thread_index() == 0) moves_before = cache.moves();
  }
  for (auto _ : state) {
    const std::uint64_t k = s[i];
    if (cache.get(k)) {
      ++hits;
    } else {
      cache.put(k, k);
    }
    ++ops;
    if (++i == s.size()) i = 0;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(ops));
  state.counters["hit_ratio"] = benchmark::Counter(
      static_cast<double>(hits) / static_cast<double>(ops), benchmark::Counter::kAvgThreads);
  if constexpr (tiered) {
    // Thread 0 brackets the run (the other threads start and stop with it): moves over all
    // threads' operations.
    if (state.thread_index() == 0) {
      const double total_ops = static_cast<double>(ops) * state.threads();
      state.counters["moves_per_op"] =
          static_cast<double>(cache.moves() - moves_before) / total_ops;
    }
  }
}

// GOLDYLOX_BENCH_ITERATIONS=N runs each benchmark for exactly N operations per thread (instead
// of a time), so that `valgrind --tool=callgrind` counts the same work every run: two runs with
// different N give the instructions per operation as the difference of their totals over the
// difference of N (stream generation and cache construction cancel out).
void fixed_iterations(benchmark::internal::Benchmark* b) {
  if (const char* v = std::getenv("GOLDYLOX_BENCH_ITERATIONS")) {
    const long long n = std::atoll(v);
    if (n > 0) b->Iterations(n);
  }
}

#define GOLDYLOX_WARM_BENCH(...)                \
  BENCHMARK_TEMPLATE(read_through, __VA_ARGS__) \
      ->Threads(1)                              \
      ->Threads(2)                              \
      ->UseRealTime()                           \
      ->Apply(fixed_iterations)

GOLDYLOX_WARM_BENCH(goldylox_warm<gl::policy::lru>);
GOLDYLOX_WARM_BENCH(goldylox_warm<gl::policy::sieve>);
GOLDYLOX_WARM_BENCH(goldylox_warm<gl::policy::s3fifo>);
GOLDYLOX_WARM_BENCH(goldylox_warm<gl::policy::adaptive>);
GOLDYLOX_WARM_BENCH(goldylox_warm_adaptive_shared);
GOLDYLOX_WARM_BENCH(goldylox_default);
GOLDYLOX_WARM_BENCH(goldylox_default_inline);
GOLDYLOX_WARM_BENCH(goldylox_tiered<sieve_name>);
GOLDYLOX_WARM_BENCH(goldylox_tiered<adaptive_name>);
GOLDYLOX_WARM_BENCH(goldylox_tiered<lirs_name>);
GOLDYLOX_WARM_BENCH(goldylox_tiered<tinylfu_name>);
GOLDYLOX_WARM_BENCH(goldylox_hot_only);
GOLDYLOX_WARM_BENCH(absl_sharded_lru);
#if defined(GOLDYLOX_BENCH_HAVE_ROCKSDB)
GOLDYLOX_WARM_BENCH(rocksdb_lru);
GOLDYLOX_WARM_BENCH(rocksdb_hyperclock);
#endif

}  // namespace

BENCHMARK_MAIN();
