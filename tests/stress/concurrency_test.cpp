// Concurrency stress tests: several threads run random operations on random keys and check
// invariants that fail loudly on a lost update, a torn or foreign value, a use-after-free (under
// ASan), a data race (under TSan) or a deadlock (the test never finishes).
//
// Values encode the key they were written for, so every read can be checked: a read may return
// an old value or nothing, but never a value written for another key.
//
// Iteration counts are scaled down under ThreadSanitizer and AddressSanitizer so that each test
// stays within a few seconds on two cores. No test asserts anything about timing.
#include <algorithm>
#include <atomic>
#include <barrier>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <gtest/gtest.h>

#include <goldylox/detail/group_lock.hpp>
#include <goldylox/detail/warm_tier.hpp>
#include <goldylox/goldylox.hpp>

#if defined(__linux__)
#include <pthread.h>
#include <sched.h>
#endif

#if defined(__SANITIZE_THREAD__)
#define GL_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GL_TSAN 1
#endif
#endif
#ifndef GL_TSAN
#define GL_TSAN 0
#endif
#if defined(__SANITIZE_ADDRESS__)
#define GL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GL_ASAN 1
#endif
#endif
#ifndef GL_ASAN
#define GL_ASAN 0
#endif

namespace {

namespace detail = goldylox::detail;

constexpr int kThreads = 4;  // even on two cores: preemption inside critical sections matters
constexpr std::uint64_t kScale = GL_TSAN ? 4 : (GL_ASAN ? 2 : 1);
constexpr std::uint64_t scaled(std::uint64_t n) {
  return n / kScale > 0 ? n / kScale : 1;
}

// ---- harness ------------------------------------------------------------------------------------

// Runs body(thread_index) on `threads` threads released together.
template <class F>
void run_concurrently(int threads, F&& body) {
  std::barrier start(threads);
  std::vector<std::thread> pool;
  pool.reserve(static_cast<std::size_t>(threads));
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      start.arrive_and_wait();
      body(t);
    });
  }
  for (auto& th : pool) th.join();
}

// Thread-safe failure reporting that does not flood the log.
class Failures {
 public:
  template <class... Parts>
  void report(const Parts&... parts) {
    if (count_.fetch_add(1) < 8) {
      ::testing::Message m;
      (m << ... << parts);
      ADD_FAILURE() << m;
    }
  }
  int count() const { return count_.load(); }

 private:
  std::atomic<int> count_{0};
};

struct Rng {
  std::uint64_t s;
  explicit Rng(std::uint64_t seed) : s(seed * 0x9e3779b97f4a7c15ULL + 1) {}
  std::uint64_t next() {  // splitmix64
    std::uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  std::uint64_t below(std::uint64_t n) { return next() % n; }
};

// The hot tier alone, whose evictions leave the cache (the tiered tests below build their own).
template <class C>
C make_cache(std::size_t capacity, bool telemetry = false) {
  auto made = C::builder()
                  .hot_tier_max_entries(capacity)
                  .warm_tier_max_entries(0)
                  .enable_telemetry(telemetry)
                  .build();
  EXPECT_TRUE(made.ok()) << made.status();
  return std::move(made).value();
}

void collect_garbage() {
  for (int i = 0; i < 4; ++i) {
    detail::epoch_domain::global().collect(detail::this_thread_epoch_record());
  }
}

// ---- value encodings
// ------------------------------------------------------------------------------

// uint64: key in the high 32 bits, the writer's stamp (thread, sequence) in the low 32.
std::uint64_t encode(std::uint64_t key, int tid, std::uint64_t seq) {
  return (key << 32) | (static_cast<std::uint64_t>(tid + 1) << 24) | (seq & 0xffffff);
}
bool belongs(std::uint64_t key, std::uint64_t value) {
  const std::uint64_t writer = (value >> 24) & 0xff;
  return (value >> 32) == key && writer >= 1 && writer <= kThreads + 1;
}

std::string skey(std::uint64_t k) {
  return "key:" + std::to_string(k);
}
// Long enough to live on the heap; the key is the prefix up to '|'.
std::string svalue(std::uint64_t k, int tid, std::uint64_t seq) {
  return skey(k) + "|" + std::to_string(tid) + ":" + std::to_string(seq) +
         std::string(seq % 48, '.');
}
bool sbelongs(std::uint64_t k, const std::string& v) {
  const std::string prefix = skey(k) + "|";
  return v.compare(0, prefix.size(), prefix) == 0;
}

// ---- random operations on typed caches
// --------------------------------------------------------------

// Runs a random mix of every typed_cache operation; `enc(key, tid, seq)` makes a value for a key
// and `ok(key, value)` checks that a value read for `key` was written for it.
template <class Cache, class KeyOf, class Enc, class Ok>
void random_typed_ops(Cache& cache, int tid, std::uint64_t ops, std::uint64_t keyspace,
                      KeyOf key_of, Enc enc, Ok ok, Failures& failures, bool with_clear = false) {
  using V = typename Cache::mapped_type;
  using K = typename Cache::key_type;
  Rng rng(static_cast<std::uint64_t>(tid) + 1000);
  const auto check = [&](std::uint64_t k, const std::optional<V>& v, const char* op) {
    if (v && !ok(k, *v))
      failures.report(op, ": key ", k, " returned a value written for another key");
  };
  std::vector<K> batch_keys;
  std::vector<std::uint64_t> batch_ids;
  for (std::uint64_t seq = 0; seq < ops; ++seq) {
    const std::uint64_t k = rng.below(keyspace);
    const K key = key_of(k);
    const std::uint64_t dice = rng.below(100);
    if (dice < 28) {
      (void)cache.put(key, enc(k, tid, seq));
    } else if (dice < 55) {
      check(k, cache.get(key), "get");
    } else if (dice < 62) {
      cache.visit(key, [&](const V& v) {
        if (!ok(k, v)) failures.report("visit: key ", k, " saw a foreign value");
      });
    } else if (dice < 67) {
      batch_keys.clear();
      batch_ids.clear();
      for (int i = 0; i < 20; ++i) {
        batch_ids.push_back(rng.below(keyspace));
        batch_keys.push_back(key_of(batch_ids.back()));
      }
      const auto got = cache.get_many(batch_keys);
      for (std::size_t i = 0; i < got.size(); ++i) check(batch_ids[i], got[i], "get_many");
    } else if (dice < 72) {
      check(k, cache.put_if_absent(key, enc(k, tid, seq)), "put_if_absent");
    } else if (dice < 77) {
      check(k, cache.replace(key, enc(k, tid, seq)), "replace");
    } else if (dice < 82) {
      if (const auto cur = cache.get(key)) {
        check(k, cur, "get");
        (void)cache.compare_and_swap(key, *cur, enc(k, tid, seq));
      }
    } else if (dice < 88) {
      const V v = cache.get_or_insert(key, [&] { return enc(k, tid, seq); });
      if (!ok(k, v)) failures.report("get_or_insert: key ", k, " returned a foreign value");
    } else if (dice < 96) {
      (void)cache.remove(key);
    } else if (dice < 98) {
      (void)cache.contains(key);
    } else if (with_clear && tid == 0 && rng.below(20) == 0) {
      (void)cache.clear();
    } else {
      const auto s = cache.stats();
      if (s.capacity != cache.capacity()) failures.report("stats().capacity changed");
    }
  }
}

// After all threads stopped: every present key holds its own value and the count of present keys
// equals size().
template <class Cache, class KeyOf, class Ok>
void check_quiescent(const Cache& cache, std::uint64_t keyspace, KeyOf key_of, Ok ok) {
  std::size_t present = 0;
  for (std::uint64_t k = 0; k < keyspace; ++k) {
    if (const auto v = cache.get(key_of(k))) {
      ++present;
      EXPECT_TRUE(ok(k, *v)) << "key " << k;
    }
  }
  EXPECT_EQ(present, cache.size()) << "size() disagrees with the entries actually present";
  EXPECT_LE(cache.size(), cache.capacity());
}

// ---- H1: reads only ever return values written for their key
// ---------------------------------------

// Random operations from all threads on a table with twice as many keys as capacity (constant
// eviction); no read may return a value written for another key.
template <class Cache, class KeyOf, class ValueOf, class Ok>
void check_values_belong(std::uint64_t ops, KeyOf key_of, ValueOf value_of, Ok ok) {
  auto cache = make_cache<Cache>(2048);
  constexpr std::uint64_t keyspace = 4096;
  Failures failures;
  run_concurrently(kThreads, [&](int tid) {
    random_typed_ops(cache, tid, scaled(ops), keyspace, key_of, value_of, ok, failures);
  });
  EXPECT_EQ(failures.count(), 0);
  check_quiescent(cache, keyspace, key_of, ok);
}

TEST(Stress, PackedValuesAlwaysBelongToTheirKey) {
  check_values_belong<goldylox::typed_cache<std::uint64_t, std::uint64_t>>(
      200'000, [](std::uint64_t k) { return k; }, encode, belongs);
}

TEST(Stress, NodeValuesAlwaysBelongToTheirKey) {
  check_values_belong<goldylox::typed_cache<std::string, std::string>>(100'000, skey, svalue,
                                                                       sbelongs);
}

// String keys with small trivially copyable values: the node keeps the value in a seqlock cell
// that updates overwrite in place, so readers race with in-place writes, not only with node swaps.
TEST(Stress, InlineNodeValuesAlwaysBelongToTheirKey) {
  check_values_belong<goldylox::typed_cache<std::string, std::uint64_t>>(100'000, skey, encode,
                                                                         belongs);
}

TEST(Stress, MixedTypeCacheNeverReturnsForeignValues) {
  auto cache = make_cache<goldylox::cache<std::string>>(2048);
  constexpr std::uint64_t keyspace = 4096;
  Failures failures;
  // int values: key * 1000 + (seq % 1000); string values: svalue().
  const auto int_ok = [](std::uint64_t k, int v) {
    return v >= 0 && static_cast<std::uint64_t>(v) / 1000 == k;
  };
  const auto check_int = [&](std::uint64_t k, const absl::StatusOr<std::optional<int>>& r,
                             const char* op) {
    if (!r.ok()) {
      if (r.status().code() != absl::StatusCode::kFailedPrecondition) {
        failures.report(op, ": unexpected status ", r.status().ToString());
      }
    } else if (r->has_value() && !int_ok(k, **r)) {
      failures.report(op, ": key ", k, " returned int ", **r);
    }
  };
  run_concurrently(kThreads, [&](int tid) {
    Rng rng(static_cast<std::uint64_t>(tid) + 77);
    for (std::uint64_t seq = 0; seq < scaled(100'000); ++seq) {
      const std::uint64_t k = rng.below(keyspace);
      const std::string key = skey(k);
      const int ival = static_cast<int>(k * 1000 + seq % 1000);
      switch (rng.below(12)) {
        case 0:
          (void)cache.put(key, ival);
          break;
        case 1:
          (void)cache.put(key, svalue(k, tid, seq));
          break;
        case 2:
        case 3:
          check_int(k, cache.get<int>(key), "get<int>");
          break;
        case 4: {
          const auto r = cache.get<std::string>(std::string_view(key));
          if (!r.ok()) {
            if (r.status().code() != absl::StatusCode::kFailedPrecondition) {
              failures.report("get<string>: unexpected status ", r.status().ToString());
            }
          } else if (r->has_value() && !sbelongs(k, **r)) {
            failures.report("get<string>: key ", k, " returned ", **r);
          }
          break;
        }
        case 5: {
          const auto r = cache.visit<std::string>(key, [&](const std::string& v) {
            if (!sbelongs(k, v)) failures.report("visit<string>: foreign value ", v);
          });
          if (!r.ok() && r.status().code() != absl::StatusCode::kFailedPrecondition) {
            failures.report("visit: unexpected status ", r.status().ToString());
          }
          break;
        }
        case 6:
          check_int(k, cache.replace(key, ival), "replace<int>");
          break;
        case 7:
          check_int(k, cache.put_if_absent(key, ival), "put_if_absent<int>");
          break;
        case 8: {
          const auto cur = cache.get<int>(key);
          check_int(k, cur, "get<int>");
          if (cur.ok() && cur->has_value()) {
            const auto swapped = cache.compare_and_swap(key, **cur, ival);
            if (!swapped.ok() && swapped.status().code() != absl::StatusCode::kFailedPrecondition) {
              failures.report("compare_and_swap: unexpected status ", swapped.status().ToString());
            }
          }
          break;
        }
        case 9: {
          const auto r = cache.get_or_insert<int>(key, [&] { return ival; });
          if (r.ok() && !int_ok(k, *r)) failures.report("get_or_insert<int>: foreign ", *r);
          if (!r.ok() && r.status().code() != absl::StatusCode::kFailedPrecondition) {
            failures.report("get_or_insert: unexpected status ", r.status().ToString());
          }
          break;
        }
        case 10: {
          std::vector<std::string> keys;
          std::vector<std::uint64_t> ids;
          for (int i = 0; i < 8; ++i) {
            ids.push_back(rng.below(keyspace));
            keys.push_back(skey(ids.back()));
          }
          std::vector<absl::StatusOr<std::optional<int>>> out(keys.size());
          cache.get_many<int>(keys, out);
          for (std::size_t i = 0; i < out.size(); ++i) check_int(ids[i], out[i], "get_many<int>");
          break;
        }
        default:
          (void)cache.remove(key);
          break;
      }
    }
  });
  EXPECT_EQ(failures.count(), 0);
  EXPECT_LE(cache.size(), cache.capacity());
}

// ---- H2: compare-and-swap increments are never lost
// ----------------------------------------------------

TEST(Stress, TypedCompareAndSwapLosesNoIncrement) {
  auto cache = make_cache<goldylox::typed_cache<std::uint64_t, std::uint64_t>>(1024);
  ASSERT_TRUE(cache.put(7, 0).ok());
  const std::uint64_t per_thread = scaled(20'000);
  run_concurrently(kThreads, [&](int tid) {
    Rng rng(static_cast<std::uint64_t>(tid));
    for (std::uint64_t i = 0; i < per_thread; ++i) {
      for (;;) {
        const std::optional<std::uint64_t> cur = cache.get(7);
        if (!cur) {
          ADD_FAILURE() << "the counter disappeared";
          return;
        }
        if (cache.compare_and_swap(7, *cur, *cur + 1)) break;
      }
      // Unrelated writes in the same table keep the group locks busy.
      if (i % 8 == 0) (void)cache.put(100 + rng.below(200), i);
    }
  });
  EXPECT_EQ(cache.get(7), per_thread * kThreads);
}

TEST(Stress, NodeCompareAndSwapLosesNoIncrement) {
  auto cache = make_cache<goldylox::typed_cache<std::string, std::string>>(1024);
  ASSERT_TRUE(cache.put("counter", "0").ok());
  const std::uint64_t per_thread = scaled(10'000);
  run_concurrently(kThreads, [&](int) {
    for (std::uint64_t i = 0; i < per_thread; ++i) {
      for (;;) {
        const std::string cur = cache.get("counter").value_or("missing");
        if (cache.compare_and_swap("counter", cur, std::to_string(std::stoull(cur) + 1))) break;
      }
    }
  });
  EXPECT_EQ(cache.get("counter"), std::to_string(per_thread * kThreads));
}

TEST(Stress, InlineNodeCompareAndSwapLosesNoIncrement) {
  auto cache = make_cache<goldylox::typed_cache<std::string, std::uint64_t>>(1024);
  ASSERT_TRUE(cache.put("counter", 0).ok());
  const std::uint64_t per_thread = scaled(20'000);
  run_concurrently(kThreads, [&](int tid) {
    for (std::uint64_t i = 0; i < per_thread; ++i) {
      for (;;) {
        const std::optional<std::uint64_t> cur = cache.get("counter");
        if (!cur) {
          ADD_FAILURE() << "the counter disappeared";
          return;
        }
        if (cache.compare_and_swap("counter", *cur, *cur + 1)) break;
      }
      if (i % 8 == 0) (void)cache.put("other" + std::to_string(tid), i);  // in-place updates
    }
  });
  EXPECT_EQ(cache.get("counter"), per_thread * kThreads);
}

TEST(Stress, AnyCacheCompareAndSwapLosesNoIncrement) {
  auto cache = make_cache<goldylox::cache<std::string>>(1024);
  ASSERT_TRUE(cache.put("counter", std::int64_t{0}).ok());
  const std::uint64_t per_thread = scaled(20'000);
  Failures failures;
  run_concurrently(kThreads, [&](int) {
    for (std::uint64_t i = 0; i < per_thread; ++i) {
      for (;;) {
        const auto cur = cache.get<std::int64_t>("counter");
        if (!cur.ok() || !cur->has_value()) {
          failures.report("counter unreadable: ", cur.status().ToString());
          return;
        }
        const auto swapped = cache.compare_and_swap("counter", **cur, **cur + 1);
        if (!swapped.ok()) {
          failures.report("compare_and_swap: ", swapped.status().ToString());
          return;
        }
        if (*swapped) break;
      }
    }
  });
  EXPECT_EQ(failures.count(), 0);
  EXPECT_EQ(**cache.get<std::int64_t>("counter"), static_cast<std::int64_t>(per_thread * kThreads));
}

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
      cache, [](auto& c, std::uint64_t id, auto factory) { return c.get_or_insert(id, factory); });
}

TEST(Stress, GetOrInsertFactoryRunsOncePerKeyNode) {
  auto cache = make_cache<goldylox::typed_cache<std::string, std::string>>(1 << 16);
  check_single_flight(cache, [](auto& c, std::uint64_t id, auto factory) {
    const std::string v =
        c.get_or_insert(skey(id), [&] { return std::to_string(factory()) + std::string(40, '+'); });
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
        got[tid][r] = cache.get_or_insert(r, [&] {
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

// ---- H5: capacity stays bounded under concurrent inserts
// ----------------------------------------------

TEST(Stress, CapacityBoundedUnderConcurrentInserts) {
  constexpr std::size_t cap = 1000;
  auto cache = make_cache<goldylox::typed_cache<std::uint64_t, std::uint64_t>>(cap);
  const std::uint64_t per_thread = scaled(50'000);
  std::atomic<std::size_t> max_seen{0};
  run_concurrently(kThreads, [&](int tid) {
    for (std::uint64_t i = 0; i < per_thread; ++i) {
      const std::uint64_t key = (static_cast<std::uint64_t>(tid) << 28) | i;
      (void)cache.put(key, encode(key & 0xfffffff, tid, i));
      if (i % 16 == 0) {
        const std::size_t s = cache.size();
        std::size_t prev = max_seen.load();
        while (s > prev && !max_seen.compare_exchange_weak(prev, s)) {
        }
      }
    }
  });
  // While inserting, each thread may be one entry ahead of its eviction.
  EXPECT_LE(max_seen.load(), cap + kThreads);
  // Quiescent: within capacity, and the counters add up.
  EXPECT_LE(cache.size(), cap);
  const auto s = cache.stats();
  EXPECT_EQ(s.inserts, per_thread * kThreads);
  EXPECT_EQ(s.evictions, s.inserts - s.size);
}

// ---- H6: put/remove/clear/get_many mixed with readers
// ---------------------------------------------------

TEST(Stress, MixedOpsWithClearPacked) {
  auto cache = make_cache<goldylox::typed_cache<std::uint64_t, std::uint64_t>>(4096);
  constexpr std::uint64_t keyspace = 2048;  // fits: clear() and remove() are the only removers
  Failures failures;
  const auto key_of = [](std::uint64_t k) { return k; };
  run_concurrently(kThreads, [&](int tid) {
    random_typed_ops(cache, tid, scaled(150'000), keyspace, key_of, encode, belongs, failures,
                     /*with_clear=*/true);
  });
  EXPECT_EQ(failures.count(), 0);
  check_quiescent(cache, keyspace, key_of, belongs);
  EXPECT_EQ(cache.stats().evictions, 0u);
}

TEST(Stress, MixedOpsWithClearNode) {
  auto cache = make_cache<goldylox::typed_cache<std::string, std::string>>(4096);
  constexpr std::uint64_t keyspace = 2048;
  Failures failures;
  run_concurrently(kThreads, [&](int tid) {
    random_typed_ops(cache, tid, scaled(80'000), keyspace, skey, svalue, sbelongs, failures,
                     /*with_clear=*/true);
  });
  EXPECT_EQ(failures.count(), 0);
  check_quiescent(cache, keyspace, skey, sbelongs);
}

// ---- H7: eviction under concurrency with a small capacity
// ------------------------------------------------

TEST(Stress, SmallCapacityEvictionPacked) {
  auto cache = make_cache<goldylox::typed_cache<std::uint64_t, std::uint64_t>>(256);
  constexpr std::uint64_t keyspace = 100'000;
  Failures failures;
  const auto key_of = [](std::uint64_t k) { return k; };
  run_concurrently(kThreads, [&](int tid) {
    random_typed_ops(cache, tid, scaled(200'000), keyspace, key_of, encode, belongs, failures);
  });
  EXPECT_EQ(failures.count(), 0);
  check_quiescent(cache, keyspace, key_of, belongs);
  EXPECT_GT(cache.stats().evictions, 0u);
}

TEST(Stress, SmallCapacityEvictionNode) {
  auto cache = make_cache<goldylox::typed_cache<std::string, std::string>>(256);
  constexpr std::uint64_t keyspace = 50'000;
  Failures failures;
  run_concurrently(kThreads, [&](int tid) {
    random_typed_ops(cache, tid, scaled(100'000), keyspace, skey, svalue, sbelongs, failures);
  });
  EXPECT_EQ(failures.count(), 0);
  check_quiescent(cache, keyspace, skey, sbelongs);
}

// Hot readers keep setting CLOCK bits while writers evict: eviction must still make progress and
// the cache must end within capacity.
TEST(Stress, EvictionWithHotReaders) {
  constexpr std::size_t cap = 256;
  auto cache = make_cache<goldylox::typed_cache<std::uint64_t, std::uint64_t>>(cap);
  Failures failures;
  run_concurrently(kThreads, [&](int tid) {
    Rng rng(static_cast<std::uint64_t>(tid) + 5);
    for (std::uint64_t i = 0; i < scaled(200'000); ++i) {
      if (tid < 2) {  // readers of a hot set that fits the cache
        const std::uint64_t k = rng.below(cap / 2);
        if (const auto v = cache.get(k); v && !belongs(k, *v)) failures.report("foreign value");
      } else {  // writers: hot keys and a stream of one-off keys
        const std::uint64_t k =
            rng.below(4) == 0 ? rng.below(cap / 2) : 1'000'000 + rng.below(1 << 20);
        (void)cache.put(k, encode(k, tid, i));
      }
    }
  });
  EXPECT_EQ(failures.count(), 0);
  EXPECT_LE(cache.size(), cap);
}

// ---- heavy collisions under contention
// ---------------------------------------------------------------

// Eight hash values for every key: inserts constantly find their probe window full and evict inside
// it, taking foreign group locks with try_lock while other writers hold them.
struct EightHashes {
  std::size_t operator()(std::uint64_t k) const { return k % 8; }
};
struct EightStringHashes {
  std::size_t operator()(const std::string& k) const { return k.size() % 8 + 8 * (k.back() % 2); }
};

TEST(Stress, CollidingHashesPacked) {
  auto made = goldylox::typed_cache<std::uint64_t, std::uint64_t, EightHashes>::builder()
                  .hot_tier_max_entries(5000)
                  .warm_tier_max_entries(0)
                  .build();
  ASSERT_TRUE(made.ok());
  auto& cache = *made;
  constexpr std::uint64_t keyspace = 6000;
  Failures failures;
  const auto key_of = [](std::uint64_t k) { return k; };
  run_concurrently(kThreads, [&](int tid) {
    random_typed_ops(cache, tid, scaled(30'000), keyspace, key_of, encode, belongs, failures);
  });
  EXPECT_EQ(failures.count(), 0);
  check_quiescent(cache, keyspace, key_of, belongs);
  EXPECT_GT(cache.stats().evictions, 0u);  // the windows overflowed
}

TEST(Stress, CollidingHashesNode) {
  auto made = goldylox::typed_cache<std::string, std::string, EightStringHashes>::builder()
                  .hot_tier_max_entries(5000)
                  .warm_tier_max_entries(0)
                  .build();
  ASSERT_TRUE(made.ok());
  auto& cache = *made;
  constexpr std::uint64_t keyspace = 6000;
  Failures failures;
  run_concurrently(kThreads, [&](int tid) {
    random_typed_ops(cache, tid, scaled(20'000), keyspace, skey, svalue, sbelongs, failures);
  });
  EXPECT_EQ(failures.count(), 0);
  check_quiescent(cache, keyspace, skey, sbelongs);
}

// ---- node reclamation under concurrency
// -------------------------------------------------------------------

struct Tracked {
  static constexpr std::uint64_t alive = 0x0a11ce0a11ce0a11ULL;
  static inline std::atomic<long> live{0};
  static inline std::atomic<long> bad{0};
  std::uint64_t key = 0;
  std::uint64_t magic = alive;
  explicit Tracked(std::uint64_t k) : key(k) { ++live; }
  Tracked(const Tracked& o) : key(o.key) {
    if (o.magic != alive) ++bad;
    ++live;
  }
  Tracked(Tracked&& o) noexcept : key(o.key) {
    if (o.magic != alive) ++bad;
    ++live;
  }
  ~Tracked() {
    if (magic != alive) ++bad;
    magic = 0;
    --live;
  }
  friend bool operator==(const Tracked& a, const Tracked& b) { return a.key == b.key; }
};

TEST(Stress, NodeReclamationFreesEveryValueExactlyOnce) {
  collect_garbage();
  const long baseline = Tracked::live.load();
  {
    auto cache = make_cache<goldylox::typed_cache<std::uint64_t, Tracked>>(256);
    Failures failures;
    run_concurrently(kThreads, [&](int tid) {
      Rng rng(static_cast<std::uint64_t>(tid) + 99);
      for (std::uint64_t i = 0; i < scaled(100'000); ++i) {
        const std::uint64_t k = rng.below(512);
        switch (rng.below(6)) {
          case 0:
          case 1:
            (void)cache.put(k, Tracked(k));
            break;
          case 2:
            (void)cache.remove(k);
            break;
          case 3:
            cache.visit(k, [&](const Tracked& t) {
              if (t.magic != Tracked::alive || t.key != k) failures.report("visited a dead value");
            });
            break;
          case 4:
            if (i % 512 == 0 && tid == 0) {
              (void)cache.clear();
            } else {
              (void)cache.replace(k, Tracked(k));
            }
            break;
          default:
            if (const auto v = cache.get(k); v && v->key != k) failures.report("foreign value");
            break;
        }
      }
    });
    EXPECT_EQ(failures.count(), 0);
    // The workers exited: their retired values are orphans that a collect frees.
    collect_garbage();
    EXPECT_EQ(Tracked::live.load() - baseline, static_cast<long>(cache.size()))
        << "values alive beyond those the cache holds";
  }
  EXPECT_EQ(Tracked::live.load(), baseline);
  EXPECT_EQ(Tracked::bad.load(), 0) << "a value was destroyed twice or used after destruction";
}

// Visitors that take their time while writers overwrite and remove the very keys they visit: the
// visited value must stay alive and unchanged until the visitor returns (epoch protection).
TEST(Stress, SlowVisitorsSeeStableValues) {
  collect_garbage();
  const long baseline = Tracked::live.load();
  {
    auto cache = make_cache<goldylox::typed_cache<std::uint64_t, Tracked>>(64);
    Failures failures;
    std::atomic<bool> stop{false};
    std::atomic<int> readers_done{0};
    run_concurrently(kThreads, [&](int tid) {
      Rng rng(static_cast<std::uint64_t>(tid) + 3);
      if (tid < 2) {
        for (std::uint64_t i = 0; i < scaled(4'000); ++i) {
          const std::uint64_t k = rng.below(16);
          cache.visit(k, [&](const Tracked& t) {
            const std::uint64_t before = t.key;
            // Linger so that writers retire (and try to free) the visited node meanwhile. Mostly
            // a busy wait: a yield per visit costs a whole time slice on a loaded machine.
            if (i % 16 == 0) {
              std::this_thread::yield();
            } else {
              // Nodes are immutable once published: a plain (volatile, so not optimised away)
              // read of a value that may be retired meanwhile, which ASan would catch if freed.
              const volatile std::uint64_t* key = &t.key;
              for (int spin = 0; spin < 200 && *key == before; ++spin) {
              }
            }
            if (t.magic != Tracked::alive || t.key != before || before != k) {
              failures.report("visited value changed or died during the visit");
            }
          });
        }
        if (readers_done.fetch_add(1) == 1) stop.store(true);
      } else {
        while (!stop.load()) {
          const std::uint64_t k = rng.below(16);
          if (rng.below(3) == 0) {
            (void)cache.remove(k);
          } else {
            (void)cache.put(k, Tracked(k));
          }
        }
      }
    });
    EXPECT_EQ(failures.count(), 0);
  }
  collect_garbage();
  EXPECT_EQ(Tracked::live.load(), baseline);
  EXPECT_EQ(Tracked::bad.load(), 0);
}

// ---- striped counters: more live threads than stripes
// ---------------------------------------------------

// Pins the calling thread to the `which`-th CPU it may run on (Linux), so that two threads pinned
// to 0 and 1 really run in parallel. Returns false if that is not possible.
bool pin_to_nth_cpu(int which) {
#if defined(__linux__)
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) return false;
  int seen = 0;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &allowed)) continue;
    if (seen++ == which) {
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(cpu, &one);
      return pthread_setaffinity_np(pthread_self(), sizeof(one), &one) == 0;
    }
  }
#else
  (void)which;
#endif
  return false;
}

// Keeps `n` threads alive (each holding its counter index) and lets a chosen pair run rounds of
// work together, each pinned to its own CPU where possible, while the rest sleep.
class ThreadPark {
 public:
  explicit ThreadPark(int n) : indices_(static_cast<std::size_t>(n)) {
    for (int t = 0; t < n; ++t) {
      threads_.emplace_back([this, t] {
        indices_[static_cast<std::size_t>(t)] = detail::this_thread_index();
        std::unique_lock<std::mutex> lock(mutex_);
        ++registered_;
        cv_.notify_all();
        for (std::uint64_t seen = 0;;) {
          cv_.wait(lock, [&] { return stop_ || round_ != seen; });
          if (stop_) return;
          seen = round_;
          if (t != a_ && t != b_) continue;
          lock.unlock();
          (void)pin_to_nth_cpu(t == a_ ? 0 : 1);
          ready_.fetch_add(1);
          while (ready_.load() < 2) std::this_thread::yield();
          work_();
          lock.lock();
          ++finished_;
          cv_.notify_all();
        }
      });
    }
    std::unique_lock<std::mutex> lock(mutex_);
    cv_.wait(lock, [&] { return registered_ == n; });
  }
  ~ThreadPark() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  const std::vector<std::uint32_t>& indices() const { return indices_; }
  // Runs work() on threads a and b at the same time and waits for both.
  void run_pair(int a, int b, std::function<void()> work) {
    std::unique_lock<std::mutex> lock(mutex_);
    a_ = a;
    b_ = b;
    work_ = std::move(work);
    ready_ = 0;
    finished_ = 0;
    ++round_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return finished_ == 2; });
  }

 private:
  std::vector<std::uint32_t> indices_;
  std::vector<std::thread> threads_;
  std::mutex mutex_;
  std::condition_variable cv_;
  int registered_ = 0;
  bool stop_ = false;
  std::uint64_t round_ = 0;
  int a_ = -1, b_ = -1, finished_ = 0;
  std::atomic<int> ready_{0};
  std::function<void()> work_;
};

// Enough live threads that some hold an index beyond the owned stripes.
int parked_threads() {
  return static_cast<int>(detail::striped_counters().owned_stripes()) + 2;
}

// A thread whose index owns a stripe and one whose index is past the owned stripes, chosen so
// that the latter's index maps onto the former's stripe under a naive `index % stripes` (the
// pairing that lost increments before overflow threads got stripes of their own).
std::pair<int, int> find_pair(const ThreadPark& park) {
  const std::uint32_t owned = detail::striped_counters().owned_stripes();
  const auto& idx = park.indices();
  std::pair<int, int> best{-1, -1};
  for (std::size_t b = 0; b < idx.size(); ++b) {
    if (idx[b] < owned) continue;
    for (std::size_t a = 0; a < idx.size(); ++a) {
      if (idx[a] >= owned) continue;
      if (best.first < 0 || idx[a] == idx[b] % owned)
        best = {static_cast<int>(a), static_cast<int>(b)};
    }
  }
  return best;
}

// The warm tier's reader-writer spin lock: writers exclude everyone, readers only writers. Two
// plain (non-atomic) fields written together under the exclusive lock must always be read equal
// under the shared one; under TSan any overlap of a writer with anyone is also a reported race.
TEST(Stress, SharedSpinLockExcludesWritersFromEveryone) {
  detail::shared_spin_lock lock;
  std::uint64_t a = 0, b = 0;
  Failures failures;
  const std::uint64_t ops = scaled(200'000);
  run_concurrently(kThreads, [&](int t) {
    for (std::uint64_t i = 0; i < ops; ++i) {
      if ((i + static_cast<std::uint64_t>(t)) % 8 == 0) {
        std::unique_lock guard(lock);
        ++a;
        ++b;
      } else {
        std::shared_lock guard(lock);
        if (a != b) failures.report("a reader saw a half-done write: ", a, " vs ", b);
      }
    }
  });
  EXPECT_EQ(failures.count(), 0);
  EXPECT_EQ(a, b);
  std::uint64_t writes = 0;
  for (int t = 0; t < kThreads; ++t) {
    for (std::uint64_t i = 0; i < ops; ++i) writes += (i + static_cast<std::uint64_t>(t)) % 8 == 0;
  }
  EXPECT_EQ(a, writes);  // no write lost
}

TEST(Stress, StripedCountersAreExactWithMoreThreadsThanStripes) {
  ThreadPark park(parked_threads());
  const auto [owner, sharer] = find_pair(park);
  if (owner < 0) GTEST_SKIP() << "no pair of parked threads with an owned and an overflow index";
  // Counting only (no data race for TSan to see), so sanitizer builds run a token amount.
  const std::uint64_t n = (GL_TSAN || GL_ASAN) ? 50'000 : 1'000'000;
  constexpr int rounds = (GL_TSAN || GL_ASAN) ? 5 : 20;
  int lossy_rounds = 0;
  std::uint64_t lost = 0;
  for (int round = 0; round < rounds; ++round) {
    detail::striped_counters counters;
    park.run_pair(owner, sharer, [&] {
      for (std::uint64_t i = 0; i < n; ++i) counters.add(detail::counter::lookups);
    });
    const std::uint64_t total = counters.total(detail::counter::lookups);
    if (total != 2 * n) {
      ++lossy_rounds;
      lost += 2 * n - total;
    }
  }
  EXPECT_EQ(lossy_rounds, 0) << lost << " increments lost in " << lossy_rounds << " of " << rounds
                             << " rounds (thread indices " << park.indices()[owner] << " and "
                             << park.indices()[sharer] << ")";
}

TEST(Stress, StatsAreExactWithMoreThreadsThanStripes) {
  ThreadPark park(parked_threads());
  const auto [owner, sharer] = find_pair(park);
  if (owner < 0) GTEST_SKIP() << "no pair of parked threads with an owned and an overflow index";
  auto cache = make_cache<goldylox::typed_cache<std::uint64_t, std::uint64_t>>(1024, true);
  ASSERT_TRUE(cache.put(1, 1).ok());
  const std::uint64_t n = (GL_TSAN || GL_ASAN) ? 20'000 : 300'000;
  constexpr std::uint64_t rounds = (GL_TSAN || GL_ASAN) ? 3 : 10;
  for (std::uint64_t round = 0; round < rounds; ++round) {
    park.run_pair(owner, sharer, [&] {
      for (std::uint64_t i = 0; i < n; ++i) (void)cache.get(1);
    });
  }
  EXPECT_EQ(cache.stats().hits, rounds * 2 * n) << "hits were lost";
}

}  // namespace

namespace {

// Every get is counted exactly once, as a hit exactly when it returned a value, whichever lookup
// stage settled it: here keys collide (the out-of-line stage runs often) and writers keep slots
// mid-write (the inline stage gives up on them), while keys come and go.
TEST(Stress, HitAndMissCountsMatchWhatGetsReturned) {
  auto cache =
      make_cache<goldylox::typed_cache<std::uint64_t, std::uint64_t, EightHashes>>(1000, true);
  const std::uint64_t gets_per_thread = scaled(40'000);
  std::atomic<std::uint64_t> returned{0};
  run_concurrently(kThreads, [&](int tid) {
    std::uint64_t seen = 0;
    for (std::uint64_t i = 0; i < gets_per_thread; ++i) {
      const std::uint64_t k = (i * 7 + static_cast<std::uint64_t>(tid)) % 200;
      if (tid % 2 == 0 && i % 4 == 0) {
        if (i % 8 == 0) {
          (void)cache.remove(k);
        } else {
          ASSERT_TRUE(cache.put(k, k + i).ok());
        }
      }
      if (cache.get(k).has_value()) ++seen;
    }
    returned.fetch_add(seen);
  });
  const goldylox::cache_stats s = cache.stats();
  EXPECT_EQ(s.hits + s.misses, gets_per_thread * kThreads);
  EXPECT_EQ(s.hits, returned.load());
}

}  // namespace

// ---- in-place updates (puts without the home lock) racing every locked writer
// ---------------------

namespace {

// Two writers put and compare-and-swap values that rise per writer into a few colliding keys,
// while a third thread floods the table with one-off keys (evicting the shared ones, which the
// writers then re-insert under the lock). Writes by one thread are ordered, so no reader may see a
// writer's values go backwards for a key: a compute() overwriting a newer in-place value with an
// older decision, or an eviction resurrecting an old value, would show as exactly that.
TEST(Stress, InPlaceUpdatesKeepEachWritersValuesInOrder) {
  auto cache =
      make_cache<goldylox::typed_cache<std::uint64_t, std::uint64_t, EightHashes>>(48, false);
  constexpr std::uint64_t shared_keys = 6;
  const std::uint64_t rounds = scaled(60'000);
  Failures failures;
  // value = writer (1 or 2) << 40 | sequence
  const auto writer_of = [](std::uint64_t v) { return v >> 40; };
  const auto seq_of = [](std::uint64_t v) { return v & ((std::uint64_t{1} << 40) - 1); };
  run_concurrently(kThreads, [&](int tid) {
    Rng rng(static_cast<std::uint64_t>(tid) + 11);
    std::uint64_t last_seen[shared_keys][3] = {};  // [key][writer] highest sequence observed
    const auto observe = [&](std::uint64_t k, std::optional<std::uint64_t> v) {
      if (!v) return;
      const std::uint64_t w = writer_of(*v);
      if (w < 1 || w > 2) {
        failures.report("key ", k, ": foreign value ", *v);
        return;
      }
      if (seq_of(*v) < last_seen[k][w]) {
        failures.report("key ", k, ": writer ", w, " went back from ", last_seen[k][w], " to ",
                        seq_of(*v));
      }
      last_seen[k][w] = std::max(last_seen[k][w], seq_of(*v));
    };
    for (std::uint64_t i = 1; i <= rounds; ++i) {
      const std::uint64_t k = rng.below(shared_keys);
      if (tid == 0 || tid == 1) {
        const std::uint64_t mine = (static_cast<std::uint64_t>(tid + 1) << 40) | i;
        switch (rng.below(4)) {
          case 0:
          case 1:
            (void)cache.put(k, mine);
            break;
          case 2:
            if (const auto cur = cache.get(k)) (void)cache.compare_and_swap(k, *cur, mine);
            break;
          default:
            (void)cache.replace(k, mine);
            break;
        }
        observe(k, cache.get(k));
      } else if (tid == 2) {
        (void)cache.put(1000 + rng.below(100'000), 0);  // evictions
      } else {
        observe(k, cache.get(k));
      }
    }
  });
  EXPECT_EQ(failures.count(), 0);
}

// A put that updates in place, racing compare-and-swaps of the same key: a CAS that succeeds
// must have seen the value it replaced. The putter writes even values 2i; the CAS thread
// replaces whatever it read, 2i or 2i+1, by 2i+1 ("derived from i"). Right after put(2i) returns,
// the key may hold 2i, or a CAS result derived from i or later, never one derived from an older
// put: that CAS would have succeeded against a value the key no longer held.
TEST(Stress, CompareAndSwapNeverOverwritesANewerInPlacePut) {
  auto cache = make_cache<goldylox::typed_cache<std::uint64_t, std::uint64_t>>(64, false);
  constexpr std::uint64_t key = 9;
  ASSERT_TRUE(cache.put(key, 0).ok());
  const std::uint64_t rounds = scaled(200'000);
  std::atomic<bool> done{false};
  Failures failures;
  run_concurrently(2, [&](int tid) {
    if (tid == 0) {
      for (std::uint64_t i = 1; i <= rounds; ++i) {
        (void)cache.put(key, 2 * i);
        const std::optional<std::uint64_t> now = cache.get(key);
        if (!now || *now / 2 < i) {
          failures.report("after put(", 2 * i, ") the key holds ",
                          now ? std::to_string(*now) : std::string("nothing"));
        }
      }
      done.store(true);
    } else {
      while (!done.load()) {
        if (const auto cur = cache.get(key)) (void)cache.compare_and_swap(key, *cur, *cur | 1);
      }
    }
  });
  EXPECT_EQ(failures.count(), 0);
}

// With an eviction sink (the next tier's demotion), a put's value must never be lost: each writer
// takes fresh keys one after another and puts a few rising values into each (an insert, then
// in-place updates) while other threads force evictions; a key is never written again once its
// writer has moved on. So each key must end either in the table with its last value or with that
// value delivered to the sink. An eviction that removed a slot after an in-place update without
// noticing it would deliver the older value and drop the newer one for good.
TEST(Stress, EvictionsNeverDropAnAcknowledgedPut) {
  using table = detail::hot_table<std::uint64_t, std::uint64_t, EightHashes, std::equal_to<>>;
  detail::striped_counters counters;
  table t(16, true, counters);
  constexpr int writers = 2;
  const std::uint64_t keys_per_writer = scaled(20'000);
  constexpr std::uint64_t puts_per_key = 4;
  std::mutex sink_mutex;
  std::vector<std::vector<std::uint64_t>> delivered(writers * keys_per_writer);
  t.set_eviction_sink([&](const std::uint64_t& k, const std::uint64_t& v) {
    if (k < delivered.size()) {
      const std::lock_guard<std::mutex> lock(sink_mutex);
      delivered[k].push_back(v);
    }
  });
  std::atomic<int> writing{writers};
  run_concurrently(kThreads, [&](int tid) {
    Rng rng(static_cast<std::uint64_t>(tid) + 23);
    if (tid < writers) {
      for (std::uint64_t j = 0; j < keys_per_writer; ++j) {
        const std::uint64_t k = static_cast<std::uint64_t>(tid) * keys_per_writer + j;
        for (std::uint64_t v = 1; v <= puts_per_key; ++v) t.assign(k, v);
      }
      writing.fetch_sub(1);
    } else {
      while (writing.load() > 0) t.assign(1'000'000 + rng.below(1'000'000), 0);
    }
  });
  std::uint64_t lost = 0;
  for (std::uint64_t k = 0; k < delivered.size(); ++k) {
    std::optional<std::uint64_t> held;
    t.visit(k, [&](const std::uint64_t& v) { held = v; });
    const auto& d = delivered[k];
    const bool in_sink = std::find(d.begin(), d.end(), puts_per_key) != d.end();
    if (!(held == puts_per_key || (!held && in_sink)) && lost++ < 5) {
      ADD_FAILURE() << "key " << k << ": table holds " << (held ? std::to_string(*held) : "nothing")
                    << ", sink got " << (in_sink ? "the last value" : "only older values");
    }
  }
  EXPECT_EQ(lost, 0u);
  EXPECT_GT(counters.total(detail::counter::evictions), 0u);
}

// ---- the warm tier ----------------------------------------------------------------------------

// Writers own disjoint keys and write increasing versions; readers on every thread check that a
// key's value belongs to it and never goes back in time (no stale value survives a newer put or
// comes back after an eviction), while the read buffers, drains and evictions run concurrently.
// At the end every eviction reached the sink exactly once and the bounds held.
TEST(Stress, WarmTierReadsNeverGoBackInTimeAndEveryEvictionReachesTheSink) {
  constexpr std::uint64_t keys = 512;
  const std::uint64_t ops = scaled(200'000);
  std::atomic<std::uint64_t> sunk{0};
  detail::warm_tier<std::uint64_t, std::uint64_t, goldylox::policy::adaptive> w(
      {.max_entries = 256, .max_weight = 256 * 16, .shards = 4},
      [](const std::uint64_t&, const std::uint64_t& v) { return 8 + (v & 15); },
      [&](const std::uint64_t& k, const std::uint64_t& v) {
        if ((v >> 32) != k) ADD_FAILURE() << "sink got a foreign value";
        sunk.fetch_add(1, std::memory_order_relaxed);
      });
  Failures failures;
  run_concurrently(kThreads, [&](int t) {
    Rng rng(static_cast<std::uint64_t>(t) + 11);
    std::vector<std::uint64_t> seen(keys, 0);
    std::vector<std::uint64_t> version(keys, 0);
    for (std::uint64_t i = 0; i < ops; ++i) {
      const std::uint64_t k = rng.below(keys);
      if (k % kThreads == static_cast<std::uint64_t>(t) && rng.below(4) == 0) {
        const std::uint64_t v = (k << 32) | ++version[k];
        if (!w.put(k, v).ok()) failures.report("put refused");
        seen[k] = v & 0xffffffffU;
      } else if (rng.below(64) == 0 && k % kThreads == static_cast<std::uint64_t>(t)) {
        w.erase(k);
      } else if (const auto got = w.get(k)) {
        if ((*got >> 32) != k) failures.report("key ", k, " read a value of key ", *got >> 32);
        const std::uint64_t v = *got & 0xffffffffU;
        if (v < seen[k]) failures.report("key ", k, " went back from ", seen[k], " to ", v);
        seen[k] = v;
      }
    }
  });
  EXPECT_EQ(failures.count(), 0);
  const auto s = w.stats();
  EXPECT_EQ(s.evictions, sunk.load());
  EXPECT_GT(s.evictions, 0u);
  EXPECT_LE(s.size, w.capacity());
  EXPECT_LE(s.weight, w.max_weight());
}

// Reads take no lock: a reader probing the index while an erase shifts cells back must not miss
// a key that is present throughout, nor read a value of another key, nor touch a freed node
// (ASan). One hash value for all keys and one shard make the index a single run that every erase
// shifts, and re-inserted keys go to its end, so keys keep moving. Two writers each own half the
// keys and re-insert them (erase, then put), bumping the key's state to odd before and to even
// after; a reader that sees the same even state before and after its get knows the key was
// present throughout, so a miss there is a false miss. Nothing is ever evicted.
struct OneHash {
  std::size_t operator()(std::uint64_t) const { return 42; }
};
TEST(Stress, WarmTierLockFreeReadsNeverMissAKeyThatStays) {
  constexpr std::uint64_t keys = 256;
  const std::uint64_t ops = scaled(100'000);
  detail::warm_tier<std::uint64_t, std::uint64_t, goldylox::policy::lru, OneHash> w(
      {.max_entries = keys, .shards = 1});
  std::vector<std::atomic<std::uint64_t>> state(keys);
  for (std::uint64_t k = 0; k < keys; ++k) ASSERT_TRUE(w.put(k, k << 32).ok());
  Failures failures;
  std::atomic<std::uint64_t> checked{0};
  run_concurrently(kThreads, [&](int t) {
    Rng rng(static_cast<std::uint64_t>(t) + 101);
    for (std::uint64_t i = 0; i < ops; ++i) {
      if (t < 2) {  // writer t owns the keys k with k % 2 == t
        const std::uint64_t k = 2 * rng.below(keys / 2) + static_cast<std::uint64_t>(t);
        state[k].fetch_add(1);
        w.erase(k);
        if (!w.put(k, (k << 32) | (i & 0xffffffffU)).ok()) failures.report("put refused");
        state[k].fetch_add(1);
      } else {
        const std::uint64_t k = rng.below(keys);
        const std::uint64_t before = state[k].load();
        const auto got = w.get(k);
        if (got && (*got >> 32) != k)
          failures.report("key ", k, " read a value of key ", *got >> 32);
        if ((before & 1) != 0 || state[k].load() != before) continue;
        checked.fetch_add(1, std::memory_order_relaxed);
        if (!got) failures.report("key ", k, " was present throughout but was missed");
      }
    }
  });
  EXPECT_EQ(failures.count(), 0);
  EXPECT_GT(checked.load(), 0u);
  EXPECT_EQ(w.stats().evictions, 0u);
  EXPECT_EQ(w.size(), keys);
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
          cache.remove(k);
          mine.reset();
          break;
        case 3: {
          const std::optional<V> previous = cache.replace(k, to_value<V>(v));
          owned(previous, "replace");
          if (previous) mine = v;
          break;
        }
        case 4: {
          const std::optional<V> existing = cache.put_if_absent(k, to_value<V>(v));
          owned(existing, "put_if_absent");
          if (!existing) mine = v;
          break;
        }
        default: {
          const std::optional<V> now = cache.get(k);
          owned(now, "get");
          if (now && cache.compare_and_swap(k, *now, to_value<V>(v))) mine = v;
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

}  // namespace
