// The hot tier under concurrency (ThreadSanitizer and AddressSanitizer in CI), through the
// typed_cache and cache facades and detail::hot_table directly: values always belong to their
// key, compare-and-swap loses no increment, capacity stays bounded, clear/remove/eviction race
// readers, colliding hashes, node reclamation, hit and miss counts, and in-place updates. The
// harness is in ../stress_support.hpp.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <gtest/gtest.h>

#include <goldylox/goldylox.hpp>

#include "stress_support.hpp"

namespace {

using namespace goldylox_test::stress;

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
        if (*cache.compare_and_swap(7, *cur, *cur + 1)) break;
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
        if (*cache.compare_and_swap("counter", cur, std::to_string(std::stoull(cur) + 1))) break;
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
        if (*cache.compare_and_swap("counter", *cur, *cur + 1)) break;
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

// ---- in-place updates (puts without the home lock) racing every locked writer
// ---------------------

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
  t.set_eviction_sink([&](const std::uint64_t& k, const std::uint64_t& v, bool) {
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

}  // namespace

namespace {

// The overflow counters under concurrent inserts, updates, erasures and evictions of colliding
// and ordinary keys: whatever interleaving, every entry's counts are taken back when it leaves
// (0 once the table is empty), and no present key is ever hidden from a lookup by a count that
// reached 0 too early.
template <class Hash>
void check_overflow_counts_concurrently() {
  using T = detail::hot_table<std::uint64_t, std::uint64_t, Hash, std::equal_to<>>;
  detail::striped_counters counters;
  T t(512, true, counters);
  constexpr std::uint64_t keyspace = 4096;
  Failures failures;
  run_concurrently(kThreads, [&](int tid) {
    Rng rng(static_cast<std::uint64_t>(tid) + 101);
    for (std::uint64_t i = 0; i < scaled(60'000); ++i) {
      const std::uint64_t k = rng.below(keyspace);
      switch (rng.below(4)) {
        case 0:
          t.erase(k);
          break;
        case 1:
          t.visit(k, [&](const std::uint64_t& v) {
            if (v != k) failures.report("key ", k, " holds ", v);
          });
          break;
        default:
          t.assign(k, k);
      }
    }
  });
  EXPECT_EQ(failures.count(), 0);
  // Quiescent: every resident key is found (a count that reached 0 too early would hide one).
  std::size_t found = 0;
  for (std::uint64_t k = 0; k < keyspace; ++k) found += t.visit(k, [](const std::uint64_t&) {});
  EXPECT_EQ(found, t.size());
  for (std::uint64_t k = 0; k < keyspace; ++k) t.erase(k);
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(t.overflow_count(), 0u);
}

TEST(Stress, OverflowCountsReturnToZeroOrdinaryHash) {
  check_overflow_counts_concurrently<goldylox::default_hash<std::uint64_t>>();
}
TEST(Stress, OverflowCountsReturnToZeroCollidingHash) {
  check_overflow_counts_concurrently<EightHashes>();
}

// ---- H9: a weight bound holds under concurrent writes (hot_table::set_weight_bound)
// ------------------------------------------

// Writers put values of random weight (inserts and replaces that grow or shrink) and erase, while
// readers read; once quiet, the table's total equals the resident entries' weights and is within
// the bound. While writing, each writer may be one write ahead of its evictions.
template <bool Governed, class V, class Make>
void check_weight_bound(Make make_value) {
  namespace detail = goldylox::detail;
  using table =
      detail::hot_table<std::uint64_t, V, goldylox::default_hash<std::uint64_t>, std::equal_to<>>;
  detail::striped_counters counters;
  table t(2000, true, counters);
  constexpr std::size_t budget = 20'000;
  constexpr std::size_t heaviest = 99;
  auto weigh = [](const std::uint64_t&, const V& v) -> std::size_t {
    if constexpr (std::is_same_v<V, std::string>) {
      return v.size();
    } else {
      return static_cast<std::size_t>(v % 100);
    }
  };
  t.set_weight_bound(budget, weigh);
  std::optional<detail::slot_governor<table>> gov;
  if constexpr (Governed) gov.emplace(t, &detail::make_shard_policy<goldylox::policy::lru>);
  constexpr std::uint64_t keyspace = 8192;
  std::atomic<std::size_t> max_seen{0};
  run_concurrently(kThreads, [&](int tid) {
    std::uint64_t x = 0x9e3779b97f4a7c15ULL * static_cast<std::uint64_t>(tid + 1);
    for (std::uint64_t i = 0; i < scaled(40'000); ++i) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      const std::uint64_t k = x % keyspace;
      if (tid == 0) {
        t.visit(k, [](const V&) {});
      } else if (x % 16 == 0) {
        t.erase(k);
      } else {
        t.assign(k, make_value((x >> 20) % (heaviest + 1)));
      }
      const std::size_t w = t.weight();
      std::size_t prev = max_seen.load(std::memory_order_relaxed);
      while (w > prev && !max_seen.compare_exchange_weak(prev, w)) {
      }
    }
  });
  EXPECT_LE(max_seen.load(), budget + kThreads * heaviest);
  EXPECT_LE(t.weight(), budget);
  EXPECT_LE(t.size(), 2000u);
  std::size_t resident = 0;
  for (std::uint64_t k = 0; k < keyspace; ++k) {
    t.visit(k, [&](const V& v) { resident += weigh(k, v); });
  }
  EXPECT_EQ(t.weight(), resident);
}

TEST(Stress, WeightBoundHoldsPacked) {
  check_weight_bound<false, std::uint64_t>([](std::uint64_t w) { return w; });
}
TEST(Stress, WeightBoundHoldsNode) {
  check_weight_bound<false, std::string>([](std::uint64_t w) { return std::string(w, 'w'); });
}
TEST(Stress, WeightBoundHoldsGovernedPacked) {
  check_weight_bound<true, std::uint64_t>([](std::uint64_t w) { return w; });
}
TEST(Stress, WeightBoundHoldsGovernedNode) {
  check_weight_bound<true, std::string>([](std::uint64_t w) { return std::string(w, 'w'); });
}

}  // namespace
