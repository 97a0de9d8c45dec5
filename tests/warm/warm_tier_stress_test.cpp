// The warm tier under concurrency (ThreadSanitizer and AddressSanitizer in CI): reads never go
// back in time while buffers drain and entries are evicted, and lock-free reads never miss a key
// that stays. The harness is in ../stress_support.hpp.
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <goldylox/detail/warm/tier.hpp>
#include <goldylox/goldylox.hpp>

#include "stress_support.hpp"

namespace {

using namespace goldylox_test::stress;

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

// Node memory is recycled (warm/tier.hpp's node_recycler) only after the epoch domain has
// reclaimed it. Two writers churn new keys through a small tier, so that every put evicts and
// every node's memory is soon reused; two readers visit recent keys and, still inside the visit,
// wait a while and look again: the key and value they hold must not change under them, as they
// would if a node's memory were reused while a reader held it (and ThreadSanitizer would see the
// reuse race with the read; AddressSanitizer, a read of a recycled block).
TEST(Stress, WarmTierRecycledNodeMemoryIsNeverReusedUnderAReader) {
  const std::uint64_t ops = scaled(100'000);
  detail::warm_tier<std::uint64_t, std::uint64_t, goldylox::policy::sieve> w(
      {.max_entries = 64, .shards = 2});
  std::atomic<std::uint64_t> next{0};
  std::atomic<std::uint64_t> held{0};
  std::atomic<int> writers_done{0};
  Failures failures;
  const auto value_of = [](std::uint64_t k) { return (k << 32) | ((k * 0x9e3779b9U) >> 32); };
  run_concurrently(kThreads, [&](int t) {
    Rng rng(static_cast<std::uint64_t>(t) + 7);
    if (t < 2) {
      for (std::uint64_t i = 0; i < ops; ++i) {
        const std::uint64_t k = next.fetch_add(1, std::memory_order_relaxed);
        if (!w.put(k, value_of(k)).ok()) failures.report("put refused");
      }
      writers_done.fetch_add(1);
      return;
    }
    // Readers keep reading while any writer runs (on two cores the scheduler may run a reader's
    // whole quota before a writer starts), then until they have held at least one entry.
    for (std::uint64_t i = 0;; ++i) {
      if (i >= ops && writers_done.load() == 2 && held.load(std::memory_order_relaxed) > 0) break;
      const std::uint64_t newest = next.load(std::memory_order_relaxed);
      const std::uint64_t k = newest - std::min<std::uint64_t>(newest, rng.below(96));
      w.visit_entry(k, [&](const std::uint64_t& key, const std::uint64_t& v, std::uint32_t) {
        held.fetch_add(1, std::memory_order_relaxed);
        const std::uint64_t key_before = key, v_before = v;
        for (int spin = 0; spin < 64; ++spin) {
          if (spin % 16 == 0) std::this_thread::yield();
          if (key != key_before || v != v_before) break;
        }
        if (key_before != k || v_before != value_of(k)) {
          failures.report("key ", k, " read key ", key_before, " value ", v_before);
        } else if (key != k || v != value_of(k)) {
          failures.report("key ", k, " changed under its reader to key ", key, " value ", v);
        }
      });
    }
  });
  EXPECT_EQ(failures.count(), 0);
  EXPECT_GT(held.load(), 0u);
  EXPECT_GT(w.stats().evictions, ops);
}

// Deferred learning under load (engine/maintenance.hpp's arrangement): writers and readers of a
// warm tier whose policies queue their learning, one thread replaying the queues as the pool's
// job would (skipping busy shards), and the `due` callback counting. Every value read is the
// key's own, the bound holds, and after a last learn() nothing is left queued.
TEST(Stress, WarmTierPoliciesLearnWhileReadersAndWritersRun) {
  const std::uint64_t ops = scaled(100'000);
  constexpr std::uint64_t keys = 4096;
  namespace gd = goldylox::detail;
  gd::warm_tier<std::uint64_t, std::uint64_t, gd::any_policy> w(
      {.max_entries = 512, .shards = 4}, {}, {}, [](std::size_t c, std::size_t shards) {
        return gd::make_shard_policy<goldylox::policy::adaptive>(c, shards);
      });
  std::atomic<std::uint64_t> dues{0};
  w.defer_learning(256, 32, [&]() noexcept { dues.fetch_add(1, std::memory_order_relaxed); });
  std::atomic<int> running{kThreads - 1};
  std::atomic<std::uint64_t> learnt{0};
  Failures failures;
  run_concurrently(kThreads, [&](int t) {
    if (t == 0) {  // the maintenance job
      while (running.load() != 0) learnt.fetch_add(w.learn(/*wait=*/false));
      return;
    }
    Rng rng(static_cast<std::uint64_t>(t) + 31);
    for (std::uint64_t i = 0; i < ops; ++i) {
      const std::uint64_t k = rng.below(keys);
      if (t % 2 == 1) {
        if (!w.put(k, k * 3 + 1).ok()) failures.report("put refused");
      } else if (const auto got = w.get(k); got && *got != k * 3 + 1) {
        failures.report("key ", k, " read ", *got);
      }
    }
    running.fetch_sub(1);
  });
  EXPECT_EQ(failures.count(), 0);
  EXPECT_GT(dues.load(), 0u);
  EXPECT_GT(learnt.load(), 0u);
  EXPECT_LE(w.size(), 512u);
  w.learn();
  EXPECT_EQ(w.learning_backlog(), 0u);
}

}  // namespace
