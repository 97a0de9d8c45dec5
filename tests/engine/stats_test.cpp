// Statistics: exact counters for single-threaded operation sequences.
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <goldylox/goldylox.hpp>

namespace {

using U64Cache = goldylox::typed_cache<std::uint64_t, std::uint64_t>;
using StrCache = goldylox::typed_cache<std::string, std::string>;

template <class C>
C make_cache(std::size_t capacity, bool telemetry = true) {
  // The hot tier alone (tiered_test.cpp counts with a warm tier).
  auto made = C::builder()
                  .hot_tier_max_entries(capacity)
                  .warm_tier_max_entries(0)
                  .enable_telemetry(telemetry)
                  .build();
  EXPECT_TRUE(made.ok()) << made.status();
  return std::move(made).value();
}

struct Expected {
  std::uint64_t hits = 0, misses = 0, inserts = 0, updates = 0, removals = 0, evictions = 0;
  std::size_t size = 0;
};

void expect_stats(const goldylox::cache_stats& s, const Expected& e, int line) {
  SCOPED_TRACE(::testing::Message() << "checked at line " << line);
  EXPECT_EQ(s.hits, e.hits);
  EXPECT_EQ(s.misses, e.misses);
  EXPECT_EQ(s.inserts, e.inserts);
  EXPECT_EQ(s.updates, e.updates);
  EXPECT_EQ(s.removals, e.removals);
  EXPECT_EQ(s.evictions, e.evictions);
  EXPECT_EQ(s.size, e.size);
}
#define EXPECT_STATS(cache, expected) expect_stats((cache).stats(), (expected), __LINE__)

TEST(Stats, FreshCacheIsAllZero) {
  auto cache = make_cache<U64Cache>(100);
  EXPECT_STATS(cache, Expected{});
  const auto s = cache.stats();
  EXPECT_EQ(s.capacity, 100u);
  EXPECT_GT(s.memory_bytes, 0u);
  EXPECT_EQ(s.requests(), 0u);
  EXPECT_EQ(s.hit_ratio(), 0.0);
}

TEST(Stats, ExactCountsForASequenceOfOperations) {
  auto cache = make_cache<U64Cache>(100);
  Expected e;
  for (std::uint64_t k = 1; k <= 3; ++k) ASSERT_TRUE(cache.put(k, k).ok());
  e.inserts = 3;
  e.size = 3;
  EXPECT_STATS(cache, e);

  ASSERT_TRUE(cache.put(1, 10).ok());  // overwrite
  e.updates = 1;
  EXPECT_STATS(cache, e);

  (void)cache.get(1);   // hit
  (void)cache.get(99);  // miss
  e.hits = 1;
  e.misses = 1;
  EXPECT_STATS(cache, e);

  EXPECT_TRUE(cache.visit(std::uint64_t{2}, [](const std::uint64_t&) {}));    // hit
  EXPECT_FALSE(cache.visit(std::uint64_t{98}, [](const std::uint64_t&) {}));  // miss
  e.hits = 2;
  e.misses = 2;
  EXPECT_STATS(cache, e);

  (void)cache.get_many(std::vector<std::uint64_t>{1, 2, 97});  // 2 hits, 1 miss
  e.hits = 4;
  e.misses = 3;
  EXPECT_STATS(cache, e);

  (void)cache.get_or_insert(1, [] { return std::uint64_t{0}; });   // hit
  (void)cache.get_or_insert(50, [] { return std::uint64_t{5}; });  // miss + insert
  e.hits = 5;
  e.misses = 4;
  e.inserts = 4;
  e.size = 4;
  EXPECT_STATS(cache, e);

  EXPECT_EQ(*cache.put_if_absent(2, 0), 2u);  // present: nothing changes
  EXPECT_EQ(*cache.put_if_absent(60, 6), std::nullopt);
  e.inserts = 5;
  e.size = 5;
  EXPECT_STATS(cache, e);

  EXPECT_EQ(*cache.replace(3, 30), 3u);
  EXPECT_EQ(*cache.replace(77, 7), std::nullopt);  // absent: nothing
  e.updates = 2;
  EXPECT_STATS(cache, e);

  EXPECT_TRUE(*cache.compare_and_swap(3, 30, 300));
  EXPECT_FALSE(*cache.compare_and_swap(3, 30, 3000));  // mismatch: nothing
  EXPECT_FALSE(*cache.compare_and_swap(78, 0, 1));     // absent: nothing
  e.updates = 3;
  EXPECT_STATS(cache, e);

  EXPECT_TRUE(*cache.remove(1));
  EXPECT_FALSE(*cache.remove(1000));
  e.removals = 1;
  e.size = 4;
  EXPECT_STATS(cache, e);

  ASSERT_TRUE(cache.clear().ok());  // clear() is not counted as removals
  e.size = 0;
  EXPECT_STATS(cache, e);

  const auto s = cache.stats();
  EXPECT_EQ(s.requests(), 9u);
  EXPECT_DOUBLE_EQ(s.hit_ratio(), 5.0 / 9.0);
}

TEST(Stats, EvictionsAreExactWhenSingleThreaded) {
  auto cache = make_cache<U64Cache>(10);
  for (std::uint64_t k = 0; k < 50; ++k) ASSERT_TRUE(cache.put(k, k).ok());
  Expected e;
  e.inserts = 50;
  e.evictions = 40;
  e.size = 10;
  EXPECT_STATS(cache, e);
  EXPECT_EQ(cache.stats().capacity, 10u);
}

TEST(Stats, TelemetryOffSkipsHitsAndMissesOnly) {
  auto cache = make_cache<U64Cache>(100, /*telemetry=*/false);
  for (std::uint64_t k = 0; k < 15; ++k) ASSERT_TRUE(cache.put(k, k).ok());
  ASSERT_TRUE(cache.put(14, 0).ok());
  for (std::uint64_t k = 0; k < 30; ++k) (void)cache.get(k);
  (void)cache.visit(std::uint64_t{1}, [](const std::uint64_t&) {});
  (void)cache.get_or_insert(100, [] { return std::uint64_t{1}; });
  (void)cache.get_many(std::vector<std::uint64_t>{1, 2, 3});
  EXPECT_TRUE(*cache.remove(100));
  const auto s = cache.stats();
  EXPECT_EQ(s.hits, 0u);
  EXPECT_EQ(s.misses, 0u);
  EXPECT_EQ(s.hit_ratio(), 0.0);
  EXPECT_EQ(s.inserts, 16u);
  EXPECT_EQ(s.updates, 1u);
  EXPECT_EQ(s.removals, 1u);
  EXPECT_EQ(s.evictions, 0u);
  EXPECT_EQ(s.size, 15u);
}

TEST(Stats, HitRatio) {
  goldylox::cache_stats s;
  s.hits = 3;
  s.misses = 1;
  EXPECT_EQ(s.requests(), 4u);
  EXPECT_DOUBLE_EQ(s.hit_ratio(), 0.75);
  s.hits = 0;
  EXPECT_DOUBLE_EQ(s.hit_ratio(), 0.0);
  s.misses = 0;
  EXPECT_DOUBLE_EQ(s.hit_ratio(), 0.0);
}

TEST(Stats, MemoryBytesOfPackedCacheDoesNotGrowWithEntries) {
  auto cache = make_cache<U64Cache>(1000);
  const std::size_t empty = cache.stats().memory_bytes;
  EXPECT_GE(empty, 1000 * 2 * sizeof(std::uint64_t));  // at least the slots for the capacity
  for (std::uint64_t k = 0; k < 1000; ++k) ASSERT_TRUE(cache.put(k, k).ok());
  EXPECT_EQ(cache.stats().memory_bytes, empty);
}

TEST(Stats, MemoryBytesOfNodeCacheGrowsLinearly) {
  auto cache = make_cache<StrCache>(1000);
  const std::size_t empty = cache.stats().memory_bytes;
  ASSERT_TRUE(cache.put("k0", "v").ok());
  const std::size_t per_entry = cache.stats().memory_bytes - empty;
  EXPECT_GE(per_entry, 2 * sizeof(std::string));
  for (int k = 1; k < 100; ++k) ASSERT_TRUE(cache.put("k" + std::to_string(k), "v").ok());
  EXPECT_EQ(cache.stats().memory_bytes, empty + 100 * per_entry);
  for (int k = 0; k < 50; ++k) ASSERT_TRUE(*cache.remove("k" + std::to_string(k)));
  EXPECT_EQ(cache.stats().memory_bytes, empty + 50 * per_entry);
  // A bigger cache costs more even when empty.
  auto bigger = make_cache<StrCache>(10000);
  EXPECT_GT(bigger.stats().memory_bytes, empty);
}

TEST(Stats, SizeAndCapacityMatchTheAccessors) {
  auto cache = make_cache<StrCache>(20);
  for (int k = 0; k < 35; ++k) {
    ASSERT_TRUE(cache.put(std::to_string(k), "v").ok());
    const auto s = cache.stats();
    EXPECT_EQ(s.size, cache.size());
    EXPECT_EQ(s.capacity, cache.capacity());
  }
}

}  // namespace
