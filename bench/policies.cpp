// Cost of each eviction policy per access: a Zipf(0.99) stream of 1M requests over 1M keys
// through a key-only cache of 10K or 100K entries (simulated_cache: the same calls the warm tier
// makes). The time includes the cache's key index (one absl::flat_hash_map probe per access,
// plus an insert and an erase per miss), which FIFO is little more than; the difference to FIFO
// is the policy's own cost. Counters: hit ratio, so cost and quality are read together.
//
//   ./build/release/bench/goldylox_bench_policies --benchmark_min_time=1
#include "goldylox/policies.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include <benchmark/benchmark.h>

#include "common/workload.hpp"
#include "goldylox/detail/warm/policy/simulated_cache.hpp"

namespace {

namespace gl = goldylox;
namespace gd = goldylox::detail;

const std::vector<std::uint64_t>& zipf_stream() {
  static const std::vector<std::uint64_t> ids =
      goldylox_bench::zipf_ids(1 << 20, 1 << 20, 0.99, 12345);
  return ids;
}

template <class P>
void per_access(benchmark::State& state) {
  const auto& stream = zipf_stream();
  const auto capacity = static_cast<std::size_t>(state.range(0));
  gd::simulated_cache<P> cache(capacity);
  for (const std::uint64_t id : stream) cache.access(id);  // warm: a full cache, trained state
  std::size_t i = 0;
  std::uint64_t hits = 0, accesses = 0;
  for (auto _ : state) {
    hits += cache.access(stream[i]) ? 1 : 0;
    ++accesses;
    if (++i == stream.size()) i = 0;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(accesses));
  state.counters["hit_ratio"] = static_cast<double>(hits) / static_cast<double>(accesses);
}

#define GOLDYLOX_POLICY_BENCH(P) \
  BENCHMARK_TEMPLATE(per_access, P)->Arg(10'000)->Arg(100'000)->Unit(benchmark::kNanosecond)

GOLDYLOX_POLICY_BENCH(gl::policy::fifo);
GOLDYLOX_POLICY_BENCH(gl::policy::lru);
GOLDYLOX_POLICY_BENCH(gl::policy::clock);
GOLDYLOX_POLICY_BENCH(gl::policy::lfu);
GOLDYLOX_POLICY_BENCH(gl::policy::arc);
GOLDYLOX_POLICY_BENCH(gl::policy::lirs);
GOLDYLOX_POLICY_BENCH(gl::policy::s3fifo);
GOLDYLOX_POLICY_BENCH(gl::policy::sieve);
GOLDYLOX_POLICY_BENCH(gl::policy::w_tinylfu);
GOLDYLOX_POLICY_BENCH(gl::policy::linear_model);
GOLDYLOX_POLICY_BENCH(gl::policy::adaptive);

}  // namespace

BENCHMARK_MAIN();
