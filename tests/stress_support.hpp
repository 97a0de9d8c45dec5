// The shared harness of the concurrency stress tests (the *_stress_test.cpp files of each
// component folder, built into goldylox_<component>_stress). Moved from the old
// tests/stress/concurrency_test.cpp, which these tests came from:
//
// Concurrency stress tests: several threads run random operations on random keys and check
// invariants that fail loudly on a lost update, a torn or foreign value, a use-after-free (under
// ASan), a data race (under TSan) or a deadlock (the test never finishes).
//
// Values encode the key they were written for, so every read can be checked: a read may return
// an old value or nothing, but never a value written for another key.
//
// Iteration counts are scaled down under ThreadSanitizer and AddressSanitizer so that each test
// stays within a few seconds on two cores. No test asserts anything about timing.
#pragma once

#include <atomic>
#include <barrier>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include <goldylox/goldylox.hpp>

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

namespace goldylox_test::stress {

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

inline void collect_garbage() {
  for (int i = 0; i < 4; ++i) {
    detail::epoch_domain::global().collect(detail::this_thread_epoch_record());
  }
}

// ---- value encodings
// ------------------------------------------------------------------------------

// uint64: key in the high 32 bits, the writer's stamp (thread, sequence) in the low 32.
inline std::uint64_t encode(std::uint64_t key, int tid, std::uint64_t seq) {
  return (key << 32) | (static_cast<std::uint64_t>(tid + 1) << 24) | (seq & 0xffffff);
}
inline bool belongs(std::uint64_t key, std::uint64_t value) {
  const std::uint64_t writer = (value >> 24) & 0xff;
  return (value >> 32) == key && writer >= 1 && writer <= kThreads + 1;
}

inline std::string skey(std::uint64_t k) {
  return "key:" + std::to_string(k);
}
// Long enough to live on the heap; the key is the prefix up to '|'.
inline std::string svalue(std::uint64_t k, int tid, std::uint64_t seq) {
  return skey(k) + "|" + std::to_string(tid) + ":" + std::to_string(seq) +
         std::string(seq % 48, '.');
}
inline bool sbelongs(std::uint64_t k, const std::string& v) {
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
      check(k, *cache.put_if_absent(key, enc(k, tid, seq)), "put_if_absent");
    } else if (dice < 77) {
      check(k, *cache.replace(key, enc(k, tid, seq)), "replace");
    } else if (dice < 82) {
      if (const auto cur = cache.get(key)) {
        check(k, cur, "get");
        (void)cache.compare_and_swap(key, *cur, enc(k, tid, seq));
      }
    } else if (dice < 88) {
      const V v = *cache.get_or_insert(key, [&] { return enc(k, tid, seq); });
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

// ---- heavy collisions
// ------------------------------------------------------------------------------------------

// Eight hash values for every key: inserts constantly find their probe window full and evict inside
// it, taking foreign group locks with try_lock while other writers hold them.
struct EightHashes {
  std::size_t operator()(std::uint64_t k) const { return k % 8; }
};
struct EightStringHashes {
  std::size_t operator()(const std::string& k) const { return k.size() % 8 + 8 * (k.back() % 2); }
};

}  // namespace goldylox_test::stress
