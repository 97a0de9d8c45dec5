// Churn between the memory tiers: how many entries the whole cache moves between its hot and warm
// tiers per request, and the hit ratio it gets, on the read-through workload of
// goldylox_bench_warm (get; on a miss, put) over a Zipf stream of 4M requests on 1M keys, with a
// cache of 25K hot + 75K warm entries (what max_entries(100K) gives with the default preset).
// One line per pass over the stream; the counts are cumulative from an empty cache.
//
//   ./build/release/bench/goldylox_bench_churn [inline|pool] [theta]   (default: inline 0.99)
//
// Not a timing benchmark (bench/warm.cpp is, with its moves_per_op counter): counts, which the
// machine's load does not change in inline mode (they vary by a fraction of a percent between
// runs: absl::Hash is seeded per process). The source uses only API that the
// pre-coordinator design (commit 9b9b5c3) had as well, so docs/architecture.md's "before" row
// comes from this same file compiled against that commit's headers.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "common/workload.hpp"
#include "goldylox/goldylox.hpp"

// Makes the moves a pool run would make (the API has it since the pool does).
template <class C>
void settle(C& cache) {
  if constexpr (requires { cache.run_pending_tasks(); }) cache.run_pending_tasks();
}

int main(int argc, char** argv) {
  namespace gl = goldylox;
  const bool pool = argc > 1 && std::strcmp(argv[1], "pool") == 0;
  const double theta = argc > 2 ? std::atof(argv[2]) : 0.99;
  if (!(theta > 0.0 && theta < 2.0)) {
    std::fprintf(stderr, "usage: goldylox_bench_churn [inline|pool] [theta in (0, 2)]\n");
    return 2;
  }
  const auto ids = goldylox_bench::zipf_ids(1 << 20, 1 << 22, theta, 4242);
  auto cache = gl::typed_cache<std::uint64_t, std::uint64_t>::builder()
                   .hot_tier_max_entries(25'000)
                   .warm_tier_max_entries(75'000)
                   .enable_telemetry(true)
                   .enable_background_workers(pool)
                   .build()
                   .value();
  std::printf("zipf %.2f, %s moves\n", theta, pool ? "pool" : "inline");
  std::printf("pass  hit_ratio  promotions  demotions  moves_per_request\n");
  for (int pass = 1; pass <= 3; ++pass) {
    std::uint64_t hits = 0;
    for (const std::uint64_t k : ids) {
      if (cache.get(k)) {
        ++hits;
      } else {
        (void)cache.put(k, k);
      }
    }
    settle(cache);
    const gl::cache_stats s = cache.stats();
    const double requests = static_cast<double>(s.hits + s.misses);
    std::printf("%4d  %9.4f  %10llu  %9llu  %17.4f\n", pass,
                static_cast<double>(hits) / static_cast<double>(ids.size()),
                static_cast<unsigned long long>(s.promotions),
                static_cast<unsigned long long>(s.demotions),
                static_cast<double>(s.promotions + s.demotions) / requests);
  }
}
