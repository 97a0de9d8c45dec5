// The engine under concurrency (ThreadSanitizer and AddressSanitizer in CI): get_or_insert runs
// a factory once per key and throwing factories release their waiters (single_flight), the hot
// and warm tiers stay coherent while keys move between them, and with a cold tier no read is
// older than an acknowledged write, nor is anything acknowledged lost across clean restarts. The
// harness is in ../stress_support.hpp.
#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
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

// Two tables: entries move between the hot and warm tiers all the time. One table: the warm
// policy's governor picks the hot table's victims while writers insert and remove.
template <class V, class Hash = goldylox::default_hash<std::uint64_t>>
void tiers_stay_coherent(goldylox::memory_layout layout = goldylox::memory_layout::two_tables) {
  using C = goldylox::typed_cache<std::uint64_t, V, Hash>;
  constexpr std::uint64_t keys = 1024;
  const std::uint64_t ops = scaled(150'000);
  const bool two_tables = layout == goldylox::memory_layout::two_tables;
  auto builder = C::builder();
  builder.hot_tier_max_entries(64).warm_tier_max_entries(256).memory_layout(layout);
  if (two_tables) {
    builder.warm_tier_promotion_hits(1).warm_tier_policy("lru");
  } else {
    builder.warm_tier_policy("adaptive");  // the default, and the policy with the most state
  }
  auto made = builder.build();
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
  cache.run_pending_tasks();  // what the reads queued for the background pool
  const goldylox::cache_stats s = cache.stats();
  EXPECT_LE(s.size, s.capacity);
  EXPECT_GT(s.evictions, 0u);
  if (two_tables) {
    EXPECT_GT(s.demotions, 0u);
    EXPECT_GT(s.promotions, 0u);
  } else {
    EXPECT_EQ(s.warm_size, 0u);
    EXPECT_EQ(s.promotions + s.demotions, 0u);
  }
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
TEST(Stress, OneTableStaysCoherentPacked) {
  tiers_stay_coherent<std::uint64_t>(goldylox::memory_layout::one_table);
}
TEST(Stress, OneTableStaysCoherentNode) {
  tiers_stay_coherent<std::string>(goldylox::memory_layout::one_table);
}
// Full probe windows: the CLOCK hand makes room inside a window, behind the governor's back.
TEST(Stress, OneTableStaysCoherentCollidingHashes) {
  tiers_stay_coherent<std::uint64_t, EightHashes>(goldylox::memory_layout::one_table);
}

// The governor may choose as a victim an entry another thread is still publishing (its policy
// heard of the insert, its slot is not written yet): W-TinyLFU with distinct keys rejects the
// newest candidate on most inserts, which makes that frequent. Such a victim must still be
// evicted once it lands, else it stays in the table unknown to the policy, never evicted again,
// and the cache holds more than its capacity for good.
template <class V>
void one_table_stays_within_capacity(const char* policy) {
  constexpr std::size_t capacity = 256;
  auto made = goldylox::typed_cache<std::uint64_t, V>::builder()
                  .max_entries(capacity)
                  .warm_tier_policy(policy)
                  .enable_background_workers(false)
                  .build();
  ASSERT_TRUE(made.ok()) << made.status();
  auto& cache = *made;
  constexpr int threads = 4;
  constexpr std::uint64_t per_thread = 40'000;
  std::vector<std::thread> writers;
  for (int t = 0; t < threads; ++t) {
    writers.emplace_back([&cache, t] {
      for (std::uint64_t i = 0; i < per_thread; ++i) {
        const std::uint64_t k = static_cast<std::uint64_t>(t) * per_thread + i;
        if constexpr (std::is_same_v<V, std::string>) {
          (void)cache.put(k, std::string(40, 'v'));
        } else {
          (void)cache.put(k, k);
        }
      }
    });
  }
  for (std::thread& w : writers) w.join();
  EXPECT_LE(cache.size(), capacity) << policy << ": entries the policy let go stayed";
  // And what stays is evictable: a second round of new keys replaces every one of them.
  for (std::uint64_t k = 0; k < 4 * capacity; ++k) {
    if constexpr (std::is_same_v<V, std::string>) {
      (void)cache.put(~k, std::string(40, 'w'));
    } else {
      (void)cache.put(~k, k);
    }
  }
  EXPECT_LE(cache.size(), capacity) << policy;
}
TEST(Stress, OneTableStaysWithinCapacityPacked) {
  for (const char* policy : {"w-tinylfu", "adaptive"}) {
    one_table_stays_within_capacity<std::uint64_t>(policy);
  }
}
TEST(Stress, OneTableStaysWithinCapacityNode) {
  for (const char* policy : {"w-tinylfu", "adaptive"}) {
    one_table_stays_within_capacity<std::string>(policy);
  }
}

// A byte budget through the whole cache, concurrently: writers of values of random weight,
// erasers and readers (whose warm hits move entries up, on the pool, with two tables) keep the
// memory tiers' weight within the budget, but for one value per writer in flight; once quiet,
// the reported weight is exactly the sum over the entries held.
void byte_budget_holds(goldylox::memory_layout layout) {
  constexpr std::size_t budget = 64 << 10;
  constexpr std::size_t heaviest = 600;
  auto weigh = [](const std::uint64_t& k, const std::string& v) { return k % 7 + v.size(); };
  auto made = goldylox::typed_cache<std::uint64_t, std::string>::builder()
                  .max_entries(4'096)
                  .memory_layout(layout)
                  .max_weight(budget)
                  .weigher(weigh)
                  .build();
  ASSERT_TRUE(made.ok()) << made.status();
  auto& cache = *made;
  constexpr std::uint64_t keyspace = 8'192;
  std::atomic<std::size_t> max_seen{0};
  run_concurrently(kThreads, [&](int tid) {
    std::uint64_t x = 0x2545f4914f6cdd1dULL * static_cast<std::uint64_t>(tid + 1);
    for (std::uint64_t i = 0; i < scaled(20'000); ++i) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      const std::uint64_t k = (x >> 8) % keyspace;
      if (tid == 0 || x % 4 == 0) {
        (void)cache.get(k);
      } else if (x % 32 == 1) {
        (void)cache.remove(k);
      } else {
        (void)cache.put(k, std::string((x >> 32) % (heaviest - 6), 'w'));
      }
      if (i % 256 == 0) {
        const std::size_t w = cache.stats().weight;
        std::size_t prev = max_seen.load();
        while (w > prev && !max_seen.compare_exchange_weak(prev, w)) {
        }
      }
    }
  });
  cache.run_pending_tasks();
  EXPECT_LE(max_seen.load(), budget + kThreads * heaviest);
  const goldylox::cache_stats s = cache.stats();
  EXPECT_LE(s.weight, budget);
  std::size_t held = 0;
  for (std::uint64_t k = 0; k < keyspace; ++k) {
    if (auto v = cache.get(k)) held += weigh(k, *v);
  }
  EXPECT_EQ(s.weight, held);
}
// Expiry under concurrency: readers, writers, erasers, the pool's sweep job and a thread running
// the sweep itself all at once, over a table small enough to evict too. Time moves in phases
// (a barrier on each side of every step of the manual clock), so a value written in phase p has
// its deadline at p + ttl exactly, and a read in phase r may return it only if p + ttl > r: every
// read checks that, whichever path (inline probe, out-of-line probe, a slot being rewritten,
// reclaimed or reused) it took. With expire-after-access (`access`) reads move deadlines too (a
// CAS beside the writers' in packed sequence words), so only a value for another key is an error
// there, and the end of the run, when every entry must be found expired. With both durations
// (`capped`: access 2 phases, write 3), reads extend deadlines but a value is still never
// returned 3 phases after its write.
enum class expiry_mode { write, access, capped };
template <class V>
void expiry_never_serves_an_expired_value(expiry_mode mode = expiry_mode::write) {
  constexpr std::int64_t ttl_phases = 3;
  constexpr std::uint64_t keyspace = 2'048;
  const bool access = mode == expiry_mode::access;
  auto phase = std::make_shared<std::atomic<std::int64_t>>(0);
  auto builder = goldylox::typed_cache<std::uint64_t, V>::builder();
  builder.max_entries(1'024).ticker([phase] { return std::chrono::seconds(phase->load()); });
  if (mode != expiry_mode::write) {
    builder.expire_after_access(std::chrono::seconds(access ? ttl_phases : ttl_phases - 1));
  }
  if (mode != expiry_mode::access) builder.expire_after_write(std::chrono::seconds(ttl_phases));
  auto made = builder.build();
  ASSERT_TRUE(made.ok()) << made.status();
  auto& cache = *made;
  auto encode = [](std::uint64_t k, std::int64_t p) {
    const std::uint64_t bits = k << 20 | static_cast<std::uint64_t>(p);
    if constexpr (std::is_same_v<V, std::string>) {
      return std::to_string(bits) + std::string(24, '.');  // on the heap
    } else {
      return bits;
    }
  };
  auto decode = [](const V& v) -> std::uint64_t {
    if constexpr (std::is_same_v<V, std::string>) {
      return std::stoull(v.substr(0, v.find('.')));
    } else {
      return v;
    }
  };
  constexpr int phases = 24;
  std::barrier step(kThreads);
  std::atomic<long> stale{0}, wrong{0}, older{0};
  run_concurrently(kThreads, [&](int tid) {
    std::uint64_t x = 0x9e3779b97f4a7c15ULL * static_cast<std::uint64_t>(tid + 1);
    for (int p = 0; p < phases; ++p) {
      const std::int64_t now = phase->load();
      for (std::uint64_t i = 0; i < scaled(4'000); ++i) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        const std::uint64_t k = (x >> 8) % keyspace;
        const unsigned op = static_cast<unsigned>(x % 16);
        if (op < 9) {
          if (std::optional<V> got = cache.get(k)) {
            const std::uint64_t bits = decode(*got);
            const auto written = static_cast<std::int64_t>(bits & 0xfffff);
            if ((bits >> 20) != k) ++wrong;
            if (!access && written + ttl_phases <= now) ++stale;
            if (written < now) ++older;
          }
        } else if (op < 14) {
          // Writers stop two phases before the end, so the last phases only expire.
          if (p < phases - 2) (void)cache.put(k, encode(k, now));
        } else if (op == 14) {
          (void)cache.remove(k);
        } else if (tid == 1 && i % 64 == 0) {
          cache.run_pending_tasks();  // the sweep on this thread, beside the pool's
        }
      }
      step.arrive_and_wait();
      if (tid == 0) phase->fetch_add(1);
      step.arrive_and_wait();
    }
  });
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(stale.load(), 0);
  EXPECT_GT(older.load(), 0);  // reads did find values of earlier phases still alive
  phase->fetch_add(ttl_phases);
  // Every entry's time is up: the wheels must find them all. The pool's job may be sweeping
  // with the time it read before the last step (it then re-files what was not due yet into a
  // wheel the step has moved past, for the next sweep): sweep until clean, within a bound.
  for (int i = 0; i < 200 && cache.size() != 0; ++i) {
    cache.run_pending_tasks();
    if (cache.size() != 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(cache.size(), 0U);
  EXPECT_GT(cache.stats().expirations, 0U);
}

TEST(Stress, ExpiryNeverServesAnExpiredValuePacked) {
  expiry_never_serves_an_expired_value<std::uint64_t>();
}
TEST(Stress, ExpiryNeverServesAnExpiredValueNode) {
  expiry_never_serves_an_expired_value<std::string>();
}
TEST(Stress, ExpiryAfterAccessStaysConsistentPacked) {
  expiry_never_serves_an_expired_value<std::uint64_t>(expiry_mode::access);
}
TEST(Stress, ExpiryAfterAccessStaysConsistentNode) {
  expiry_never_serves_an_expired_value<std::string>(expiry_mode::access);
}
TEST(Stress, ExpiryAfterAccessCappedByWritePacked) {
  expiry_never_serves_an_expired_value<std::uint64_t>(expiry_mode::capped);
}
TEST(Stress, ExpiryAfterAccessCappedByWriteNode) {
  expiry_never_serves_an_expired_value<std::string>(expiry_mode::capped);
}

TEST(Stress, ByteBudgetHoldsOneTable) {
  byte_budget_holds(goldylox::memory_layout::one_table);
}
TEST(Stress, ByteBudgetHoldsTwoTables) {
  byte_budget_holds(goldylox::memory_layout::two_tables);
}

// ---- the cold tier too (moved from the old tests/stress/cold_stress_test.cpp)
// ----------------------------------------------------

// The whole cache with a cold tier: entries move hot -> warm -> cold -> warm all the time, while
// writers put and remove. Each key belongs to one writer, which publishes the version of each
// write once it has returned; a reader that loads that version first must never then read an
// older one (or a removed key's older value), from any tier, the values queued for the disk
// included. Inline (each call writes its own evictions) and with the write-back on a pool of two
// workers (its job and the writers' and readers' calls run at once).
class ColdCacheStress : public ::testing::TestWithParam<std::tuple<bool, goldylox::memory_layout>> {
};

TEST_P(ColdCacheStress, NoReadIsOlderThanAReturnedWrite) {
  const auto [background, layout] = GetParam();
  const goldylox_test::temp_dir scratch("goldylox-stress");
  const std::string& dir = scratch.path();
  goldylox::background_pool pool(2);
  {
    auto builder = goldylox::cache<std::string>::builder();
    builder.hot_tier_max_entries(32)
        .warm_tier_max_entries(64)
        .memory_layout(layout)
        .cold_tier_storage_path(dir)
        .cold_tier_max_bytes(16 << 20)
        .cold_tier_segment_bytes(256 << 10)
        .cold_tier_codec("lz4")
        .cold_tier_durability(goldylox::cold_durability::none);
    if (background) {
      builder.background_pool(pool);
    } else {
      builder.enable_background_workers(false);
    }
    auto made = builder.build();
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
    if (background) {
      EXPECT_GT(st.cold_background_demotions, 0u) << "the pool wrote no demotion";
    } else {
      EXPECT_EQ(st.cold_background_demotions + st.cold_demotion_queue_peak, 0u);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    WriteBack, ColdCacheStress,
    ::testing::Combine(::testing::Bool(), ::testing::Values(goldylox::memory_layout::one_table,
                                                            goldylox::memory_layout::two_tables)),
    [](const auto& info) {
      return std::string(std::get<0>(info.param) ? "background_pool" : "inline") +
             (std::get<1>(info.param) == goldylox::memory_layout::one_table ? "_one_table"
                                                                            : "_two_tables");
    });

// ---- nothing acknowledged is lost across clean restarts (issue 23)
// ----------------------------------------------------

// Two writers (disjoint keys) put, remove and read their own keys, a reader reads random keys, and
// the cache is closed cleanly and reopened every 40-300 operations; after each reopen every key
// must hold exactly its last acknowledged value (or nothing after a remove). The cold tier has
// ample room, so nothing may be lost: an older value (a demotion that landed after a newer write,
// a record a failed tombstone left), a lost one (a demotion dropped because an unrelated key's
// write was mistaken for its own, or left in a queue nobody drains) and a foreign one all fail.
// Every codec and durability mode. GOLDYLOX_LONG_STRESS=1 runs over 10^6 operations in all.
using reopen_mode = std::tuple<std::string_view, goldylox::cold_durability>;

class ColdCacheReopenStress : public ::testing::TestWithParam<reopen_mode> {};

// The value written as version `version` of `key`: "<key>:<version>:" padded to 16 B - 8 KiB
// (mostly small), so each read says which write it came from and a torn one is seen.
std::string reopen_value(std::uint64_t key, std::uint64_t version) {
  std::uint64_t h = (key * 0x9E3779B97F4A7C15ULL) ^ (version * 0xC2B2AE3D27D4EB4FULL);
  h ^= h >> 29;
  std::string v = std::to_string(key) + ":" + std::to_string(version) + ":";
  const std::size_t len = 16 + (h % 16 == 0 ? h % 8176 : h % 240);
  v.resize(std::max(len, v.size()), static_cast<char>('a' + h % 26));
  return v;
}

// key and version of a value, or (~0, 0) if it is not one reopen_value made.
std::pair<std::uint64_t, std::uint64_t> parse_reopen_value(const std::string& v) {
  const std::size_t a = v.find(':');
  const std::size_t b = a == std::string::npos ? a : v.find(':', a + 1);
  if (b == std::string::npos) return {~std::uint64_t{0}, 0};
  const std::uint64_t key = std::stoull(v.substr(0, a));
  const std::uint64_t version = std::stoull(v.substr(a + 1, b - a - 1));
  if (v != reopen_value(key, version)) return {~std::uint64_t{0}, 0};
  return {key, version};
}

bool long_stress() {
  const char* v = std::getenv("GOLDYLOX_LONG_STRESS");
  return v != nullptr && std::string_view(v) == "1";
}

template <class Hash>
void keeps_every_acknowledged_write(std::string_view codec, goldylox::cold_durability durability,
                                    std::uint64_t total_ops, bool write_through = false,
                                    bool background = true) {
  constexpr std::uint64_t keys = 2000;
  constexpr int writers = 2;
  const goldylox_test::temp_dir dir("goldylox-reopen");
  // background: the write-back on the shared default pool (the default), else inline.
  const auto build = [&](goldylox::cold_durability mode) {
    return goldylox::typed_cache<std::uint64_t, std::string, Hash>::builder()
        .hot_tier_max_entries(64)
        .warm_tier_max_entries(64)
        .cold_tier_storage_path(dir.path())
        .cold_tier_segment_bytes(1 << 20)
        .cold_tier_max_bytes(std::size_t{512} << 20)
        .cold_tier_codec(codec)
        .cold_tier_durability(mode)
        .cold_tier_write_through(write_through)
        .enable_background_workers(background)
        .build();
  };
  // acked[k]: the version of k's last acknowledged write; > 0 a put, < 0 a remove, 0 none. Only
  // k's writer stores it; the reader loads it before reading k.
  std::vector<std::atomic<std::int64_t>> acked(keys);
  std::atomic<std::uint64_t> next_version{1};
  Failures failures;
  std::uint64_t lost = 0, older = 0, foreign = 0, demotions = 0, done = 0, restarts = 0;
  std::uint64_t busy_closes = 0;  // closes that found demotions waiting for the pool
  // Checks every key (`step` 1) or every step-th from a random start: each read of a cold key
  // promotes it and so, later, writes it to the cold tier again.
  const auto check = [&](goldylox::typed_cache<std::uint64_t, std::string, Hash>& cache,
                         std::uint64_t step, std::uint64_t start) {
    for (std::uint64_t k = start % step; k < keys; k += step) {
      const std::int64_t a = acked[k].load();
      const std::optional<std::string> got = cache.get(k);
      if (!got) {
        if (a > 0 && lost++ == 0) failures.report("key ", k, " lost version ", a);
        continue;
      }
      const auto [key, version] = parse_reopen_value(*got);
      if (key != k) {
        if (foreign++ == 0) failures.report("key ", k, " holds a foreign or torn value");
      } else if (a <= 0 || static_cast<std::int64_t>(version) != a) {
        if (older++ == 0) failures.report("key ", k, " holds version ", version, ", acked ", a);
      }
    }
  };
  Rng plan(0x5EED ^ std::hash<std::string_view>{}(codec) ^ static_cast<std::uint64_t>(durability));
  while (done < total_ops) {
    auto made = build(durability);
    ASSERT_TRUE(made.ok()) << made.status();
    auto& cache = *made;
    check(cache, 10, restarts);  // a tenth of the keys, each key every ten restarts
    const std::uint64_t epoch = 40 + plan.below(261);
    std::atomic<int> writing{writers};
    std::vector<std::thread> threads;
    for (int w = 0; w < writers; ++w) {
      threads.emplace_back([&, w, seed = plan.below(1ULL << 62)] {
        Rng rng(seed);
        for (std::uint64_t i = 0; i < epoch / writers; ++i) {
          const std::uint64_t k =
              rng.below(keys / writers) * writers + static_cast<std::uint64_t>(w);
          const std::uint64_t dice = rng.below(100);
          if (dice < 55) {
            const std::uint64_t v = next_version.fetch_add(1);
            const absl::Status st = cache.put(k, reopen_value(k, v));
            if (!st.ok()) {
              failures.report("put: ", st.ToString());
            } else {
              acked[k].store(static_cast<std::int64_t>(v));
            }
          } else if (dice < 70) {
            const std::uint64_t v = next_version.fetch_add(1);
            const auto removed = cache.remove(k);
            if (!removed.ok()) {
              failures.report("remove: ", removed.status().ToString());
            } else {
              acked[k].store(-static_cast<std::int64_t>(v));
            }
          } else {
            // The owner reads its own key: its last value, or a miss while it moves between tiers.
            const std::int64_t a = acked[k].load();
            if (const std::optional<std::string> got = cache.get(k)) {
              const auto [key, version] = parse_reopen_value(*got);
              if (key != k || a <= 0 || static_cast<std::int64_t>(version) != a) {
                failures.report("owner read of key ", k, ": version ", version, ", acked ", a);
              }
            }
          }
        }
        writing.fetch_sub(1);
      });
    }
    threads.emplace_back([&, seed = plan.below(1ULL << 62)] {
      Rng rng(seed);
      while (writing.load() > 0) {
        const std::uint64_t k = rng.below(keys);
        const std::int64_t before = acked[k].load();
        if (const std::optional<std::string> got = cache.get(k)) {
          const auto [key, version] = parse_reopen_value(*got);
          if (key != k) {
            failures.report("reader: key ", k, " holds a foreign or torn value");
          } else if (static_cast<std::int64_t>(version) < (before < 0 ? -before : before)) {
            failures.report("reader: key ", k, " read version ", version, " after ", before);
          }
        }
      }
    });
    for (auto& t : threads) t.join();
    busy_closes += cache.stats().cold_demotion_queue != 0;
    const absl::Status closed = cache.close();
    ASSERT_TRUE(closed.ok()) << closed;
    EXPECT_EQ(cache.stats().cold_demotion_queue, 0u) << "close() left demotions queued";
    // Evictions that reached the cold tier, or found it already holding them (write-through).
    demotions += cache.stats().cold_demotions + cache.stats().cold_already_stored;
    done += epoch / writers * writers;
    ++restarts;
  }
  // The final check of every key needs no durability (its promotions are written back).
  auto made = build(goldylox::cold_durability::none);
  ASSERT_TRUE(made.ok()) << made.status();
  check(*made, 1, 0);
  EXPECT_EQ(lost, 0u) << "acknowledged puts lost";
  EXPECT_EQ(older, 0u) << "keys holding an older (or removed) value";
  EXPECT_EQ(foreign, 0u);
  EXPECT_EQ(failures.count(), 0);
  EXPECT_GT(demotions, 100u) << "the run must exercise the cold tier";
  std::printf("%llu operations, %llu restarts (%llu with demotions queued), %llu cold demotions\n",
              static_cast<unsigned long long>(done), static_cast<unsigned long long>(restarts),
              static_cast<unsigned long long>(busy_closes),
              static_cast<unsigned long long>(demotions));
}

TEST_P(ColdCacheReopenStress, KeepsEveryAcknowledgedWrite) {
  const auto [codec, durability] = GetParam();
  // Each cold write of every_write pays an fdatasync (about a millisecond here): fewer operations.
  // The long run: 12 x 75,000 + 4 x 25,000 operations (and 100,000 more with colliding hashes).
  const bool syncs = durability == goldylox::cold_durability::every_write;
  const std::uint64_t ops = long_stress() ? (syncs ? 25'000 : 75'000) : (syncs ? 1'000 : 4'000);
  keeps_every_acknowledged_write<goldylox::default_hash<std::uint64_t>>(codec, durability,
                                                                        scaled(ops));
}

// Eight hash values for 2,000 keys: every key shares its hash with 250 others (and the hot tier's
// probe windows overflow, so demotions also start inside inserts). Any check that tells keys apart
// by hash instead of by equality drops demotions here: the generation table of old did so in
// most runs.
TEST(ColdCacheReopenCollidingStress, KeepsEveryAcknowledgedWrite) {
  keeps_every_acknowledged_write<EightHashes>("lz4", goldylox::cold_durability::none,
                                              long_stress() ? 100'000 : scaled(4'000));
}

// The same with write-through (every write reaches the cold tier before it returns; evictions of
// entries it already holds are skipped), for the codec-independent part: two durability modes.
class ColdCacheReopenWriteThroughStress
    : public ::testing::TestWithParam<goldylox::cold_durability> {};

TEST_P(ColdCacheReopenWriteThroughStress, KeepsEveryAcknowledgedWrite) {
  const bool syncs = GetParam() == goldylox::cold_durability::every_write;
  const std::uint64_t ops = long_stress() ? (syncs ? 25'000 : 75'000) : (syncs ? 1'000 : 4'000);
  keeps_every_acknowledged_write<goldylox::default_hash<std::uint64_t>>("lz4", GetParam(),
                                                                        scaled(ops), true);
}

INSTANTIATE_TEST_SUITE_P(Durability, ColdCacheReopenWriteThroughStress,
                         ::testing::Values(goldylox::cold_durability::none,
                                           goldylox::cold_durability::every_write),
                         [](const auto& info) {
                           return info.param == goldylox::cold_durability::none
                                      ? std::string("none")
                                      : std::string("every_write");
                         });

std::string reopen_mode_name(const ::testing::TestParamInfo<reopen_mode>& info) {
  static constexpr const char* durability[] = {"none", "periodic", "on_close", "every_write"};
  return std::string(std::get<0>(info.param)) + "_" +
         durability[static_cast<int>(std::get<1>(info.param))];
}

INSTANTIATE_TEST_SUITE_P(
    AllModes, ColdCacheReopenStress,
    ::testing::Combine(::testing::Values("zstd", "lz4", "brotli", "none"),
                       ::testing::Values(goldylox::cold_durability::none,
                                         goldylox::cold_durability::periodic,
                                         goldylox::cold_durability::on_close,
                                         goldylox::cold_durability::every_write)),
    reopen_mode_name);

// The tests above write back on the background pool (the default); the same without it, where
// each call writes the evictions it caused before it returns.
class ColdCacheReopenInlineStress : public ::testing::TestWithParam<goldylox::cold_durability> {};

TEST_P(ColdCacheReopenInlineStress, KeepsEveryAcknowledgedWrite) {
  const bool syncs = GetParam() == goldylox::cold_durability::every_write;
  keeps_every_acknowledged_write<goldylox::default_hash<std::uint64_t>>(
      "lz4", GetParam(), scaled(syncs ? 1'000 : 4'000), false, /*background=*/false);
}

INSTANTIATE_TEST_SUITE_P(Durability, ColdCacheReopenInlineStress,
                         ::testing::Values(goldylox::cold_durability::none,
                                           goldylox::cold_durability::every_write),
                         [](const auto& info) {
                           return info.param == goldylox::cold_durability::none
                                      ? std::string("none")
                                      : std::string("every_write");
                         });

// ---- the demotion write-back on the background pool (issue 15)
// ---------------------------------------------------------------

// A value whose serialization takes 50 us: a cold tier slower than the threads that evict into
// it, so the pool's queue fills and stays full, the callers meet backpressure, and a close finds
// the job in the middle of a batch.
struct slow_value {
  std::uint64_t key = 0;
  std::int64_t version = 0;  // > 0
  template <class Archive>
  void save(Archive& ar) const {
    std::this_thread::sleep_for(std::chrono::microseconds(50));
    ar(key, version);
  }
  template <class Archive>
  void load(Archive& ar) {
    ar(key, version);
  }
};

using slow_cache = goldylox::typed_cache<std::uint64_t, slow_value>;

// `writers` threads own disjoint keys (keys_per_writer each) and put (80 %) or remove them,
// publishing each acknowledged version; a reader checks that no read is older than a published
// version, a monitor samples the queue's depth. Each epoch ends with close() while the pool is
// still writing, and the next reopens the directory and checks every key's last acknowledged
// state (a put's value, or nothing after a remove). Returns the closes that found demotions
// queued and the deepest queue sampled or reported.
struct pool_run {
  std::uint64_t busy_closes = 0;
  std::size_t max_depth = 0;
  std::uint64_t backpressure = 0;
  std::uint64_t background = 0;
};

pool_run write_back_under_load(int writers, std::uint64_t keys_per_writer, std::size_t hot,
                               std::size_t warm, int epochs, std::uint64_t ops_per_writer) {
  const goldylox_test::temp_dir dir("goldylox-pool");
  goldylox::background_pool pool(1);
  const auto build = [&] {
    return slow_cache::builder()
        .hot_tier_max_entries(hot)
        .warm_tier_max_entries(warm)
        .cold_tier_storage_path(dir.path())
        .cold_tier_segment_bytes(1 << 20)
        .cold_tier_max_bytes(std::size_t{256} << 20)
        .cold_tier_codec("lz4")
        .cold_tier_durability(goldylox::cold_durability::none)
        .background_pool(pool)
        .build();
  };
  const std::uint64_t keys = static_cast<std::uint64_t>(writers) * keys_per_writer;
  std::vector<std::atomic<std::int64_t>> acked(keys);  // > 0 a put's version, < 0 removed
  std::atomic<std::int64_t> next_version{1};
  Failures failures;
  pool_run run;
  const auto check_all = [&](slow_cache& cache) {
    std::uint64_t lost = 0, wrong = 0;
    for (std::uint64_t k = 0; k < keys; ++k) {
      const std::int64_t a = acked[k].load();
      const std::optional<slow_value> got = cache.get(k);
      if (!got) {
        if (a > 0 && lost++ == 0) failures.report("key ", k, " lost version ", a);
      } else if (got->key != k || a <= 0 || got->version != a) {
        if (wrong++ == 0)
          failures.report("key ", k, " holds version ", got->version, ", acked ", a);
      }
    }
  };
  for (int epoch = 0; epoch < epochs; ++epoch) {
    auto made = build();
    EXPECT_TRUE(made.ok()) << made.status();
    if (!made.ok()) return run;
    slow_cache& cache = *made;
    check_all(cache);
    std::atomic<int> writing{writers};
    std::vector<std::thread> threads;
    for (int w = 0; w < writers; ++w) {
      threads.emplace_back([&, w] {
        Rng rng(static_cast<std::uint64_t>(epoch) * 1000 + static_cast<std::uint64_t>(w) + 1);
        for (std::uint64_t i = 0; i < ops_per_writer; ++i) {
          const std::uint64_t k =
              static_cast<std::uint64_t>(w) * keys_per_writer + rng.below(keys_per_writer);
          const std::int64_t version = next_version.fetch_add(1);
          if (rng.below(5) != 0) {
            const absl::Status st = cache.put(k, slow_value{k, version});
            if (!st.ok()) failures.report("put: ", st.ToString());
            acked[k].store(version);
          } else {
            const absl::StatusOr<bool> removed = cache.remove(k);
            if (!removed.ok()) failures.report("remove: ", removed.status().ToString());
            acked[k].store(-version);
          }
        }
        writing.fetch_sub(1);
      });
    }
    threads.emplace_back([&] {  // reads never go back in time
      Rng rng(static_cast<std::uint64_t>(epoch) + 77);
      while (writing.load() > 0) {
        const std::uint64_t k = rng.below(keys);
        const std::int64_t before = acked[k].load();
        if (const std::optional<slow_value> got = cache.get(k)) {
          if (got->key != k) {
            failures.report("reader: key ", k, " holds another key's value");
          } else if (got->version < (before < 0 ? -before : before) ||
                     (before < 0 && got->version == -before)) {
            failures.report("reader: key ", k, " read version ", got->version, " after ", before);
          }
        }
      }
    });
    std::atomic<std::size_t> sampled{0};
    threads.emplace_back([&] {  // the queue's depth, as an operator would watch it
      while (writing.load() > 0) {
        const std::size_t d = cache.stats().cold_demotion_queue;
        if (d > sampled.load()) sampled.store(d);
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    });
    for (auto& t : threads) t.join();
    const goldylox::cache_stats st = cache.stats();
    run.busy_closes += st.cold_demotion_queue != 0;
    run.max_depth = std::max({run.max_depth, sampled.load(), st.cold_demotion_queue_peak});
    const absl::Status closed = cache.close();
    EXPECT_TRUE(closed.ok()) << closed;
    const goldylox::cache_stats after = cache.stats();
    EXPECT_EQ(after.cold_demotion_queue, 0u);
    EXPECT_EQ(after.cold_refused, 0u);
    run.backpressure += after.cold_backpressure_demotions;
    run.background += after.cold_background_demotions;
  }
  auto made = build();
  EXPECT_TRUE(made.ok()) << made.status();
  if (made.ok()) check_all(*made);
  EXPECT_EQ(failures.count(), 0);
  std::printf(
      "%d epochs: %llu closes with demotions queued, deepest queue %zu, %llu written by "
      "the pool, %llu by backpressure\n",
      epochs, static_cast<unsigned long long>(run.busy_closes), run.max_depth,
      static_cast<unsigned long long>(run.background),
      static_cast<unsigned long long>(run.backpressure));
  return run;
}

std::size_t queue_bound(std::size_t memory_capacity) {
  return goldylox::detail::demotion_queue<
      std::uint64_t, slow_value, goldylox::default_hash<std::uint64_t>,
      std::equal_to<std::uint64_t>>::default_bound(memory_capacity);
}

// close() while the pool is in the middle of writing (the writers just stopped, the queue is
// still full): nothing acknowledged is lost, nothing older comes back, and the job is gone.
TEST(ColdCachePoolStress, ClosingWhileThePoolWritesLosesNothing) {
  const pool_run run =
      write_back_under_load(/*writers=*/2, /*keys_per_writer=*/400, /*hot=*/16,
                            /*warm=*/48, /*epochs=*/GL_TSAN ? 3 : 6, scaled(2'000));
  EXPECT_GT(run.busy_closes, 0u) << "no close found the pool busy: the test tests nothing";
  EXPECT_GT(run.background, 0u);
  EXPECT_LE(run.max_depth, queue_bound(64));
}

// A 10x overload: eight threads evict into a cache of 16 entries whose cold writes take 50 us
// each, so they produce evictions many times faster than the pool's one job writes them. The
// queue stays at its bound (64), the excess is written by the evicting threads themselves
// (backpressure), and nothing is lost.
TEST(ColdCachePoolStress, OverloadKeepsTheQueueBoundedAndLosesNothing) {
  const pool_run run =
      write_back_under_load(/*writers=*/8, /*keys_per_writer=*/100, /*hot=*/4, /*warm=*/12,
                            /*epochs=*/2, scaled(400));
  EXPECT_LE(run.max_depth, queue_bound(16)) << "the queue outgrew its bound";
  EXPECT_EQ(queue_bound(16), 64u);
  EXPECT_GT(run.backpressure, 0u) << "the callers never outran the pool: no overload";
  EXPECT_GT(run.background, 0u);
}

// The removal listener under concurrency: writers, erasers and readers on a cache small enough
// to evict all the time (with expiry, a clock stepping forward too), each put writing a value
// no other put writes. Every value a put stored either is still held at the end or was heard
// exactly once: heard + held == stored, no value heard twice, and none heard while still held.
// With a background pool the pool's moves and sweeps remove too (their notices on its threads).
template <class V>
void listener_accounts_for_every_value(goldylox::memory_layout layout, bool pool, bool expiry) {
  constexpr std::uint64_t keyspace = 4'096;
  struct ledger {
    std::mutex mu;
    std::vector<std::uint64_t> heard;  // the values' ids
    std::atomic<long> inside{0};       // listener calls running now
  };
  auto book = std::make_shared<ledger>();
  auto now = std::make_shared<std::atomic<std::int64_t>>(0);
  auto id_of = [](const V& v) -> std::uint64_t {
    if constexpr (std::is_same_v<V, std::string>) {
      return std::stoull(v.substr(0, v.find('.')));
    } else {
      return v;
    }
  };
  auto builder = goldylox::typed_cache<std::uint64_t, V>::builder();
  builder.max_entries(512).memory_layout(layout).enable_background_workers(pool).removal_listener(
      [book, id_of](const std::uint64_t&, const V& v, goldylox::removal_cause) {
        book->inside.fetch_add(1);
        {
          const std::lock_guard lock(book->mu);
          book->heard.push_back(id_of(v));
        }
        book->inside.fetch_sub(1);
      });
  if (expiry) {
    builder.expire_after_write(std::chrono::seconds(2)).ticker([now] {
      return std::chrono::seconds(now->load());
    });
  }
  auto made = builder.build();
  ASSERT_TRUE(made.ok()) << made.status();
  auto& cache = *made;
  std::atomic<std::uint64_t> stored{0};
  run_concurrently(kThreads, [&](int tid) {
    std::uint64_t x = 0x9e3779b97f4a7c15ULL * static_cast<std::uint64_t>(tid + 1);
    for (std::uint64_t i = 0; i < scaled(40'000); ++i) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      const std::uint64_t k = (x >> 8) % keyspace;
      const unsigned op = static_cast<unsigned>(x % 16);
      if (op < 7) {
        (void)cache.get(k);
      } else if (op < 14) {
        const std::uint64_t id = static_cast<std::uint64_t>(tid) << 40 | i;
        V v;
        if constexpr (std::is_same_v<V, std::string>) {
          v = std::to_string(id) + std::string(24, '.');
        } else {
          v = id;
        }
        if (cache.put(k, std::move(v)).ok()) stored.fetch_add(1);
      } else if (op == 14) {
        (void)cache.remove(k);
      } else if (expiry && tid == 0 && i % 256 == 0) {
        now->fetch_add(1);
      } else if (tid == 1 && i % 512 == 0) {
        cache.run_pending_tasks();
      }
    }
  });
  // The pool's last moves may still be delivering their notices: wait until the books balance
  // (bounded), then check them exactly.
  for (int i = 0; i < 200; ++i) {
    cache.run_pending_tasks();
    std::size_t heard = 0;
    {
      const std::lock_guard lock(book->mu);
      heard = book->heard.size();
    }
    if (heard + cache.size() == stored.load() && book->inside.load() == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::vector<std::uint64_t> heard;
  {
    const std::lock_guard lock(book->mu);
    heard = book->heard;
  }
  EXPECT_EQ(heard.size() + cache.size(), stored.load());
  std::sort(heard.begin(), heard.end());
  EXPECT_EQ(std::adjacent_find(heard.begin(), heard.end()), heard.end()) << "a value heard twice";
  std::size_t held_but_heard = 0;
  for (std::uint64_t k = 0; k < keyspace; ++k) {
    cache.visit(k, [&](const V& v) {
      if (std::binary_search(heard.begin(), heard.end(), id_of(v))) ++held_but_heard;
    });
  }
  EXPECT_EQ(held_but_heard, 0U);
  EXPECT_GT(cache.stats().evictions, 0U);
  EXPECT_EQ(cache.stats().removal_listener_failures, 0U);
}

TEST(Stress, ListenerAccountsForEveryValueOneTablePacked) {
  listener_accounts_for_every_value<std::uint64_t>(goldylox::memory_layout::one_table, false,
                                                   false);
}
TEST(Stress, ListenerAccountsForEveryValueOneTableNode) {
  listener_accounts_for_every_value<std::string>(goldylox::memory_layout::one_table, false, false);
}
TEST(Stress, ListenerAccountsForEveryValueTwoTablesWithPool) {
  listener_accounts_for_every_value<std::uint64_t>(goldylox::memory_layout::two_tables, true,
                                                   false);
}
TEST(Stress, ListenerAccountsForEveryValueTwoTablesNode) {
  listener_accounts_for_every_value<std::string>(goldylox::memory_layout::two_tables, false, false);
}
TEST(Stress, ListenerAccountsForEveryValueWithExpiryAndPool) {
  listener_accounts_for_every_value<std::uint64_t>(goldylox::memory_layout::one_table, true, true);
}
TEST(Stress, ListenerAccountsForEveryValueWithExpiryNode) {
  listener_accounts_for_every_value<std::string>(goldylox::memory_layout::one_table, false, true);
}

}  // namespace
