// The engine under concurrency (ThreadSanitizer and AddressSanitizer in CI): get_or_insert runs
// a factory once per key and throwing factories release their waiters (single_flight), the hot
// and warm tiers stay coherent while keys move between them, and with a cold tier no read is
// older than an acknowledged write. The harness is in ../stress_support.hpp.
#include <atomic>
#include <barrier>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include <goldylox/goldylox.hpp>

#include "stress_support.hpp"
#include "test_support.hpp"

namespace {

using namespace goldylox_test::stress;

// ---- H3: get_or_insert runs the factory once per key
// ------------------------------------------------------

// All threads race get_or_insert on the same fresh keys, round after round. get(key) builds the
// key's cache key; factory_value(key, tid) is what thread tid's factory would store.
template <class Cache, class GetOrInsert>
void check_single_flight(Cache& cache, GetOrInsert get_or_insert) {
  constexpr std::uint64_t keys_per_round = 32;
  const std::uint64_t rounds = scaled(400);
  std::vector<std::atomic<int>> calls(rounds * keys_per_round);
  std::vector<std::vector<std::uint64_t>> seen(
      kThreads, std::vector<std::uint64_t>(rounds * keys_per_round, ~std::uint64_t{0}));
  std::barrier round_start(kThreads);
  run_concurrently(kThreads, [&](int tid) {
    for (std::uint64_t r = 0; r < rounds; ++r) {
      round_start.arrive_and_wait();
      for (std::uint64_t j = 0; j < keys_per_round; ++j) {
        // Threads walk the keys in different orders so leaders and waiters mix.
        const std::uint64_t id = r * keys_per_round + (j * (2 * tid + 1) + tid) % keys_per_round;
        seen[tid][id] = get_or_insert(cache, id, [&, tid, id] {
          calls[id].fetch_add(1);
          std::this_thread::yield();  // widen the window for the others to pile up
          return static_cast<std::uint64_t>(id * 16 + tid);
        });
      }
    }
  });
  std::uint64_t wrong_calls = 0;
  std::uint64_t disagreements = 0;
  for (std::uint64_t id = 0; id < rounds * keys_per_round; ++id) {
    if (calls[id].load() != 1) ++wrong_calls;
    const std::uint64_t v = seen[0][id];
    if (v / 16 != id) ++disagreements;
    for (int t = 1; t < kThreads; ++t) {
      if (seen[t][id] != v) ++disagreements;
    }
  }
  EXPECT_EQ(wrong_calls, 0u) << "keys whose factory did not run exactly once";
  EXPECT_EQ(disagreements, 0u) << "keys for which threads got different values";
}

TEST(Stress, GetOrInsertFactoryRunsOncePerKeyPacked) {
  auto cache = make_cache<goldylox::typed_cache<std::uint64_t, std::uint64_t>>(1 << 16);
  check_single_flight(
      cache, [](auto& c, std::uint64_t id, auto factory) { return *c.get_or_insert(id, factory); });
}

TEST(Stress, GetOrInsertFactoryRunsOncePerKeyNode) {
  auto cache = make_cache<goldylox::typed_cache<std::string, std::string>>(1 << 16);
  check_single_flight(cache, [](auto& c, std::uint64_t id, auto factory) {
    const std::string v = *c.get_or_insert(
        skey(id), [&] { return std::to_string(factory()) + std::string(40, '+'); });
    return std::stoull(v);
  });
}

TEST(Stress, GetOrInsertFactoryRunsOncePerKeyAnyCache) {
  auto cache = make_cache<goldylox::cache<std::string>>(1 << 16);
  check_single_flight(cache, [](auto& c, std::uint64_t id, auto factory) {
    const absl::StatusOr<std::uint64_t> v =
        c.template get_or_insert<std::uint64_t>(skey(id), factory);
    return v.ok() ? *v : ~std::uint64_t{0};
  });
}

// ---- H4: throwing factories under contention
// ---------------------------------------------------------------

TEST(Stress, ThrowingLeaderReleasesWaitersAndOneRetrySucceeds) {
  auto cache = make_cache<goldylox::typed_cache<std::uint64_t, std::uint64_t>>(1 << 16);
  const std::uint64_t rounds = scaled(400);
  std::vector<std::atomic<int>> calls(rounds);
  std::vector<std::atomic<int>> throws(rounds);
  std::vector<std::vector<std::uint64_t>> got(kThreads, std::vector<std::uint64_t>(rounds, 0));
  std::barrier round_start(kThreads);
  run_concurrently(kThreads, [&](int tid) {
    for (std::uint64_t r = 0; r < rounds; ++r) {
      round_start.arrive_and_wait();
      try {
        got[tid][r] = *cache.get_or_insert(r, [&] {
          const int call = calls[r].fetch_add(1);
          std::this_thread::yield();
          if (call == 0) throw std::runtime_error("first attempt fails");
          return r * 10 + 1;
        });
      } catch (const std::runtime_error&) {
        throws[r].fetch_add(1);
        got[tid][r] = ~std::uint64_t{0};
      }
    }
  });
  std::uint64_t bad_rounds = 0;
  for (std::uint64_t r = 0; r < rounds; ++r) {
    bool ok = calls[r].load() == 2 && throws[r].load() == 1 && cache.get(r) == r * 10 + 1;
    int successes = 0;
    for (int t = 0; t < kThreads; ++t) {
      if (got[t][r] == r * 10 + 1) {
        ++successes;
      } else if (got[t][r] != ~std::uint64_t{0}) {
        ok = false;
      }
    }
    if (successes != kThreads - 1) ok = false;
    if (!ok) ++bad_rounds;
  }
  EXPECT_EQ(bad_rounds, 0u) << "rounds where the factory did not run exactly twice (one throw, one "
                               "success shared by every other thread)";
}

TEST(Stress, AlwaysThrowingFactoryFailsEveryCallerWithoutDeadlock) {
  auto cache = make_cache<goldylox::cache<std::string>>(1 << 16);
  const std::uint64_t rounds = scaled(200);
  std::vector<std::atomic<int>> calls(rounds);
  std::atomic<std::uint64_t> exceptions{0};
  std::barrier round_start(kThreads);
  run_concurrently(kThreads, [&](int) {
    for (std::uint64_t r = 0; r < rounds; ++r) {
      round_start.arrive_and_wait();
      try {
        (void)cache.get_or_insert<int>(skey(r), [&]() -> int {
          calls[r].fetch_add(1);
          std::this_thread::yield();
          throw std::runtime_error("always");
        });
      } catch (const std::runtime_error&) {
        exceptions.fetch_add(1);
      }
    }
  });
  EXPECT_EQ(exceptions.load(), rounds * kThreads);
  std::uint64_t wrong = 0;
  for (std::uint64_t r = 0; r < rounds; ++r) {
    // Every caller eventually leads a flight of its own and sees its own exception.
    if (calls[r].load() != kThreads || cache.contains(skey(r))) ++wrong;
  }
  EXPECT_EQ(wrong, 0u);
  EXPECT_EQ(cache.size(), 0u);
}

// ---- the hot and warm tiers together ----------------------------------------------------------

// Each thread owns the keys k with k % kThreads == t and is their only writer (put, erase,
// replace, put_if_absent, compare_and_swap, with increasing versions), so it knows each key's
// current value exactly: a key may be absent (evicted) but if present holds that value. Every
// thread also reads every key and checks that a value belongs to its key and never goes back in
// time. Tiny tiers and promotion on every warm hit keep keys moving between tiers all the time:
// any path that leaves a stale copy in the warm tier (a put, an erase, a conditional write or a
// promotion racing a demotion) shows up as a read going back, or a conditional write seeing a
// value its owner has replaced.
template <class V>
V to_value(std::uint64_t v) {
  if constexpr (std::is_same_v<V, std::string>) {
    return std::to_string(v);
  } else {
    return v;
  }
}
template <class V>
std::uint64_t from_value(const V& v) {
  if constexpr (std::is_same_v<V, std::string>) {
    return std::stoull(v);
  } else {
    return v;
  }
}

template <class V, class Hash = goldylox::default_hash<std::uint64_t>>
void tiers_stay_coherent() {
  using C = goldylox::typed_cache<std::uint64_t, V, Hash>;
  constexpr std::uint64_t keys = 1024;
  const std::uint64_t ops = scaled(150'000);
  auto made = C::builder()
                  .hot_tier_max_entries(64)
                  .warm_tier_max_entries(256)
                  .warm_tier_promotion_hits(1)
                  .warm_tier_policy("lru")
                  .build();
  ASSERT_TRUE(made.ok()) << made.status();
  C& cache = *made;
  Failures failures;
  std::vector<std::optional<std::uint64_t>> expected(keys);  // owned slices, one writer each
  run_concurrently(kThreads, [&](int t) {
    Rng rng(static_cast<std::uint64_t>(t) + 101);
    std::vector<std::uint64_t> seen(keys, 0);
    std::uint64_t version = 0;
    const auto check = [&](std::uint64_t k, const std::optional<V>& got, const char* op) {
      if (!got) return;
      const std::uint64_t v = from_value(*got);
      if ((v >> 32) != k) failures.report(op, ": key ", k, " read a value of key ", v >> 32);
      if ((v & 0xffffffffU) < seen[k]) {
        failures.report(op, ": key ", k, " went back from ", seen[k], " to ", v & 0xffffffffU);
      }
      seen[k] = v & 0xffffffffU;
    };
    for (std::uint64_t i = 0; i < ops; ++i) {
      const std::uint64_t k = rng.below(keys);
      if (k % kThreads != static_cast<std::uint64_t>(t) || rng.below(2) == 0) {
        check(k, cache.get(k), "get");
        continue;
      }
      std::optional<std::uint64_t>& mine = expected[k];
      const std::uint64_t v = (k << 32) | ++version;
      // What the owner reads back must be its current value (or nothing, if it was evicted).
      const auto owned = [&](const std::optional<V>& got, const char* op) {
        if (got && (!mine || from_value(*got) != *mine)) {
          failures.report(op, ": key ", k, " holds ", from_value(*got) & 0xffffffffU,
                          " but its writer last stored ",
                          mine ? static_cast<std::int64_t>(*mine & 0xffffffffU) : -1);
        }
      };
      switch (rng.below(6)) {
        case 0:
        case 1:
          (void)cache.put(k, to_value<V>(v));
          mine = v;
          break;
        case 2:
          (void)cache.remove(k);
          mine.reset();
          break;
        case 3: {
          const std::optional<V> previous = *cache.replace(k, to_value<V>(v));
          owned(previous, "replace");
          if (previous) mine = v;
          break;
        }
        case 4: {
          const std::optional<V> existing = *cache.put_if_absent(k, to_value<V>(v));
          owned(existing, "put_if_absent");
          if (!existing) mine = v;
          break;
        }
        default: {
          const std::optional<V> now = cache.get(k);
          owned(now, "get");
          if (now && *cache.compare_and_swap(k, *now, to_value<V>(v))) mine = v;
          break;
        }
      }
      if (mine) seen[k] = *mine & 0xffffffffU;
    }
  });
  EXPECT_EQ(failures.count(), 0);
  // Quiescent: every key holds its writer's last value, or nothing.
  for (std::uint64_t k = 0; k < keys; ++k) {
    const std::optional<V> got = cache.get(k);
    if (got && (!expected[k] || from_value(*got) != *expected[k])) {
      ADD_FAILURE() << "key " << k << " ends with a value its writer did not store last";
    }
  }
  const goldylox::cache_stats s = cache.stats();
  EXPECT_LE(s.size, s.capacity);
  EXPECT_GT(s.demotions, 0u);
  EXPECT_GT(s.promotions, 0u);
  EXPECT_GT(s.evictions, 0u);
}

TEST(Stress, TiersStayCoherentPacked) {
  tiers_stay_coherent<std::uint64_t>();
}
TEST(Stress, TiersStayCoherentNode) {
  tiers_stay_coherent<std::string>();
}
// Full probe windows: demotions also run from inside an insert, under two hot-tier locks.
TEST(Stress, TiersStayCoherentCollidingHashes) {
  tiers_stay_coherent<std::uint64_t, EightHashes>();
}

// ---- the cold tier too (moved from the old tests/stress/cold_stress_test.cpp)
// ----------------------------------------------------

// The whole cache with a cold tier: entries move hot -> warm -> cold -> warm all the time, while
// writers put and remove. Each key belongs to one writer, which publishes the version of each
// write once it has returned; a reader that loads that version first must never then read an
// older one (or a removed key's older value), from any tier.
TEST(ColdCacheStress, NoReadIsOlderThanAReturnedWrite) {
  const goldylox_test::temp_dir scratch("goldylox-stress");
  const std::string& dir = scratch.path();
  {
    auto made = goldylox::cache<std::string>::builder()
                    .hot_tier_max_entries(32)
                    .warm_tier_max_entries(64)
                    .cold_tier_storage_path(dir)
                    .cold_tier_max_bytes(16 << 20)
                    .cold_tier_segment_bytes(256 << 10)
                    .cold_tier_codec("lz4")
                    .cold_tier_durability(goldylox::cold_durability::none)
                    .build();
    ASSERT_TRUE(made.ok()) << made.status();
    auto& cache = *made;
    constexpr int writers = 2, keys_per_writer = 150, rounds = 3000;
    using value = std::pair<int, long>;                               // (key, version)
    std::vector<std::atomic<long>> acked(writers * keys_per_writer);  // version; < 0: removed
    std::atomic<bool> stop{false};
    std::atomic<long> stale{0}, wrong{0}, reads{0}, found{0};
    std::vector<std::thread> threads;
    for (int w = 0; w < writers; ++w) {
      threads.emplace_back([&, w] {
        std::uint64_t x = 88172645463325252ULL + w;
        for (long v = 1; v <= rounds; ++v) {
          for (int j = 0; j < 4; ++j) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            const int k = w * keys_per_writer + static_cast<int>(x % keys_per_writer);
            const std::string key = "k" + std::to_string(k);
            const long version = v * 4 + j;
            if (x % 9 == 0) {
              (void)cache.remove(key);
              acked[k].store(-version, std::memory_order_release);
            } else {
              (void)cache.put(key, value{k, version});
              acked[k].store(version, std::memory_order_release);
            }
          }
        }
      });
    }
    for (int r = 0; r < 2; ++r) {
      threads.emplace_back([&, r] {
        std::uint64_t x = 0x2545F4914F6CDD1DULL + r;
        while (!stop.load(std::memory_order_relaxed)) {
          x ^= x << 13, x ^= x >> 7, x ^= x << 17;
          const int k = static_cast<int>(x % (writers * keys_per_writer));
          const long before = acked[k].load(std::memory_order_acquire);
          auto got = cache.get<value>("k" + std::to_string(k));
          reads.fetch_add(1, std::memory_order_relaxed);
          if (!got.ok()) {
            wrong.fetch_add(1);
          } else if (got->has_value()) {
            found.fetch_add(1, std::memory_order_relaxed);
            const auto [key, version] = **got;
            if (key != k) wrong.fetch_add(1);
            if (version < (before < 0 ? -before : before) || (before < 0 && version == -before)) {
              if (stale.fetch_add(1) == 0) {
                std::fprintf(stderr, "stale: key %d acked %ld read %ld now %ld\n", k, before,
                             version, acked[k].load());
              }
            }
          }
        }
      });
    }
    for (int w = 0; w < writers; ++w) threads[w].join();
    stop = true;
    for (std::size_t i = writers; i < threads.size(); ++i) threads[i].join();
    EXPECT_EQ(stale.load(), 0) << "a read returned a value older than an acknowledged write";
    EXPECT_EQ(wrong.load(), 0);
    EXPECT_GT(found.load(), 0);
    const auto st = cache.stats();
    EXPECT_GT(st.cold_demotions, 1000u);
    EXPECT_GT(st.cold_promotions, 0u);
  }
}

}  // namespace
