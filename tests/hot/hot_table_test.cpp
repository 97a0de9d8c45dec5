// The hot tier: capacity and CLOCK eviction through the public facades, SIMD vs SWAR equivalence,
// and detail::hot_table directly (compute outcomes, eviction sink, heavy hash collisions).
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include <goldylox/goldylox.hpp>

namespace {

namespace detail = goldylox::detail;
using U64Cache = goldylox::typed_cache<std::uint64_t, std::uint64_t>;
using StrCache = goldylox::typed_cache<std::string, std::string>;

template <class C>
C make_cache(std::size_t capacity, bool simd = true) {
  // The hot tier alone: without a warm tier its evictions leave the cache.
  auto made = C::builder()
                  .hot_tier_max_entries(capacity)
                  .warm_tier_max_entries(0)
                  .enable_simd(simd)
                  .build();
  EXPECT_TRUE(made.ok()) << made.status();
  return std::move(made).value();
}

std::uint64_t value_for(std::uint64_t key) {
  return key * 1000003 + 11;
}
std::string skey(std::uint64_t k) {
  return "key/" + std::to_string(k);
}

// ---- capacity ----------------------------------------------------------------------------------

class CapacityTest : public ::testing::TestWithParam<std::size_t> {};

TEST_P(CapacityTest, SizeNeverExceedsCapacityAndEvictionsAreCounted) {
  const std::size_t cap = GetParam();
  auto cache = make_cache<U64Cache>(cap);
  EXPECT_EQ(cache.capacity(), cap);
  const std::uint64_t n = 10 * cap + 50;
  for (std::uint64_t k = 0; k < n; ++k) {
    ASSERT_TRUE(cache.put(k, value_for(k)).ok());
    ASSERT_LE(cache.size(), cap) << "after inserting key " << k;
  }
  EXPECT_EQ(cache.size(), cap);  // single-threaded: the cache fills up exactly to capacity
  const goldylox::cache_stats s = cache.stats();
  EXPECT_EQ(s.inserts, n);
  EXPECT_EQ(s.evictions, n - cap);
  // Whatever survived holds its own value, and survivors are exactly size() keys.
  std::size_t present = 0;
  for (std::uint64_t k = 0; k < n; ++k) {
    if (const auto v = cache.get(k)) {
      ++present;
      EXPECT_EQ(*v, value_for(k)) << k;
    }
  }
  EXPECT_EQ(present, cache.size());
}

TEST_P(CapacityTest, NodeSlotsRespectCapacityToo) {
  const std::size_t cap = GetParam();
  auto cache = make_cache<StrCache>(cap);
  const std::uint64_t n = 5 * cap + 20;
  for (std::uint64_t k = 0; k < n; ++k) {
    ASSERT_TRUE(cache.put(skey(k), std::to_string(k)).ok());
    ASSERT_LE(cache.size(), cap);
  }
  std::size_t present = 0;
  for (std::uint64_t k = 0; k < n; ++k) {
    if (const auto v = cache.get(skey(k))) {
      ++present;
      EXPECT_EQ(*v, std::to_string(k));
    }
  }
  EXPECT_EQ(present, cache.size());
  EXPECT_EQ(cache.stats().evictions, n - cache.size());
}

// A put followed by a get of the same key, with nothing in between, must find the key: an
// insertion must not pick the entry it just inserted as its own eviction victim.
TEST_P(CapacityTest, FreshlyInsertedKeyIsReadableRightAway) {
  const std::size_t cap = GetParam();
  auto cache = make_cache<U64Cache>(cap);
  std::vector<std::uint64_t> lost;
  for (std::uint64_t k = 0; k < 20 * cap + 200; ++k) {
    ASSERT_TRUE(cache.put(k, value_for(k)).ok());
    if (cache.get(k) != value_for(k)) lost.push_back(k);
  }
  EXPECT_TRUE(lost.empty()) << lost.size() << " of " << 20 * cap + 200
                            << " keys were evicted by their own put(), first: " << lost.front();
}

TEST_P(CapacityTest, KeyReinsertedAfterEvictionIsReadable) {
  const std::size_t cap = GetParam();
  auto cache = make_cache<StrCache>(cap);
  std::uint64_t next = 0;
  int still_present = 0;
  int unreadable = 0;
  for (int trial = 0; trial < 20; ++trial) {
    const std::uint64_t victim = next++;
    ASSERT_TRUE(cache.put(skey(victim), "first").ok());
    // The victim is never looked at (lookups, contains() included, set its CLOCK bit) while
    // 20 x capacity other keys go in: it must have been evicted by then.
    for (std::size_t i = 0; i < 20 * cap + 20; ++i, ++next) {
      ASSERT_TRUE(cache.put(skey(next), "filler").ok());
    }
    if (cache.contains(skey(victim))) ++still_present;
    ASSERT_TRUE(cache.put(skey(victim), "second").ok());
    if (cache.get(skey(victim)) != "second") ++unreadable;
  }
  EXPECT_EQ(still_present, 0) << "unreferenced keys outlived 20 x capacity newer inserts";
  EXPECT_EQ(unreadable, 0) << "re-inserted keys were not readable right after put()";
}

INSTANTIATE_TEST_SUITE_P(Capacities, CapacityTest,
                         ::testing::Values(1, 2, 3, 15, 16, 17, 64, 100, 1000));

// ---- CLOCK
// ---------------------------------------------------------------------------------------

TEST(ClockEviction, RecentlyReadEntriesGetASecondChance) {
  constexpr std::uint64_t cap = 1024;
  constexpr std::uint64_t hot = 128;
  auto cache = make_cache<U64Cache>(cap);
  for (std::uint64_t k = 0; k < cap; ++k) ASSERT_TRUE(cache.put(k, value_for(k)).ok());
  ASSERT_EQ(cache.size(), cap);

  // Insert 4 x capacity new keys, re-reading the hot keys every 16 inserts (well under one turn of
  // the CLOCK hand). Keys 128..1023 are never touched again.
  std::uint64_t next = cap;
  for (int round = 0; round < 256; ++round) {
    for (std::uint64_t k = 0; k < hot; ++k) (void)cache.get(k);
    for (int i = 0; i < 16; ++i, ++next) ASSERT_TRUE(cache.put(next, value_for(next)).ok());
  }
  std::uint64_t hot_present = 0;
  std::uint64_t cold_present = 0;
  for (std::uint64_t k = 0; k < hot; ++k) hot_present += cache.contains(k) ? 1 : 0;
  for (std::uint64_t k = hot; k < cap; ++k) cold_present += cache.contains(k) ? 1 : 0;
  EXPECT_GE(hot_present * 10, hot * 9) << "hot keys present: " << hot_present << "/" << hot;
  // The cold keys are the oldest unreferenced entries: after 4 x capacity insertions CLOCK has
  // swept past each of them many times, so nearly all must be gone.
  EXPECT_LE(cold_present * 4, cap - hot)
      << "never-read keys still present: " << cold_present << "/" << cap - hot;
  EXPECT_EQ(cache.size(), cap);
}

TEST(ClockEviction, UpdatesCountAsReferences) {
  // An entry that keeps being overwritten is in use and must survive a stream of one-off keys.
  constexpr std::uint64_t cap = 256;
  auto cache = make_cache<U64Cache>(cap);
  for (std::uint64_t k = 0; k < cap; ++k) ASSERT_TRUE(cache.put(k, k).ok());
  std::uint64_t next = 1'000'000;
  for (int round = 0; round < 200; ++round) {
    for (std::uint64_t k = 0; k < 16; ++k) ASSERT_TRUE(cache.put(k, round).ok());
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(cache.put(next++, 0).ok());
  }
  int present = 0;
  for (std::uint64_t k = 0; k < 16; ++k) present += cache.get(k) == 199u ? 1 : 0;
  EXPECT_GE(present, 15);
}

TEST(ClockEviction, ContainsIsNotAUse) {
  // contains() only asks; unlike get() it must not shield an entry from eviction (Caffeine's
  // containsKey does not count as an access either). Same shape as UpdatesCountAsReferences.
  constexpr std::uint64_t cap = 256;
  auto cache = make_cache<U64Cache>(cap);
  for (std::uint64_t k = 0; k < cap; ++k) ASSERT_TRUE(cache.put(k, k).ok());
  std::uint64_t next = 1'000'000;
  for (int round = 0; round < 200; ++round) {
    for (std::uint64_t k = 0; k < 16; ++k) (void)cache.contains(k);
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(cache.put(next++, 0).ok());
  }
  int present = 0;
  for (std::uint64_t k = 0; k < 16; ++k) present += cache.contains(k) ? 1 : 0;
  EXPECT_LE(present, 2) << "contains() kept entries alive like a read would";
}

// ---- SIMD vs SWAR
// ----------------------------------------------------------------------------------

template <class C, class KeyOf, class ValueOf>
void run_same_ops_on_simd_and_swar(KeyOf key_of, ValueOf value_of) {
  auto simd = make_cache<C>(200, true);
  auto swar = make_cache<C>(200, false);
  ASSERT_TRUE(simd.config().enable_simd);
  ASSERT_FALSE(swar.config().enable_simd);
  std::mt19937_64 rng(12345);
  for (int op = 0; op < 20000; ++op) {
    const std::uint64_t k = rng() % 600;
    const auto key = key_of(k);
    const auto value = value_of(rng() % 1000);
    switch (rng() % 8) {
      case 0:
      case 1:
        ASSERT_TRUE(simd.put(key, value).ok());
        ASSERT_TRUE(swar.put(key, value).ok());
        break;
      case 2:
        ASSERT_EQ(simd.remove(key), swar.remove(key)) << op;
        break;
      case 3:
        ASSERT_EQ(simd.put_if_absent(key, value), swar.put_if_absent(key, value)) << op;
        break;
      case 4:
        ASSERT_EQ(simd.replace(key, value), swar.replace(key, value)) << op;
        break;
      case 5:
        ASSERT_EQ(simd.contains(key), swar.contains(key)) << op;
        break;
      default:
        ASSERT_EQ(simd.get(key), swar.get(key)) << op;
        break;
    }
    ASSERT_EQ(simd.size(), swar.size()) << op;
  }
  for (std::uint64_t k = 0; k < 600; ++k) ASSERT_EQ(simd.get(key_of(k)), swar.get(key_of(k))) << k;
  const auto a = simd.stats();
  const auto b = swar.stats();
  EXPECT_EQ(a.hits, b.hits);
  EXPECT_EQ(a.misses, b.misses);
  EXPECT_EQ(a.inserts, b.inserts);
  EXPECT_EQ(a.updates, b.updates);
  EXPECT_EQ(a.removals, b.removals);
  EXPECT_EQ(a.evictions, b.evictions);
  EXPECT_GT(a.evictions, 0u);  // the sequence exercised eviction
}

TEST(SimdSwitch, PackedSlotsBehaveIdentically) {
  run_same_ops_on_simd_and_swar<U64Cache>([](std::uint64_t k) { return k; },
                                          [](std::uint64_t v) { return v; });
}

TEST(SimdSwitch, NodeSlotsBehaveIdentically) {
  run_same_ops_on_simd_and_swar<StrCache>([](std::uint64_t k) { return skey(k); },
                                          [](std::uint64_t v) { return std::to_string(v); });
}

// ---- detail::hot_table directly
// -------------------------------------------------------------------

template <class K, class V, class Hash = goldylox::default_hash<K>>
using table = detail::hot_table<K, V, Hash, std::equal_to<>>;

TEST(HotTable, SimdFlagAndGeometry) {
  detail::striped_counters counters;
  table<std::uint64_t, std::uint64_t> on(1000, true, counters);
  table<std::uint64_t, std::uint64_t> off(1000, false, counters);
  EXPECT_EQ(on.simd_enabled(), detail::simd_available);
  EXPECT_FALSE(off.simd_enabled());
  EXPECT_EQ(on.capacity(), 1000u);
  EXPECT_GE(on.slot_count() * 4, 1000u * 5);  // at most 80 % load at capacity
  EXPECT_EQ(on.slot_count() % detail::group_width, 0u);
  table<std::uint64_t, std::uint64_t> one(1, true, counters);
  EXPECT_EQ(one.slot_count(), detail::group_width);
  EXPECT_GT((table<std::uint64_t, std::uint64_t>::bytes_per_entry()), 0u);
  // Node tables also pay for the node.
  EXPECT_GT((table<std::string, std::string>::bytes_per_entry()),
            (table<std::uint64_t, std::uint64_t>::bytes_per_entry()));
}

template <class K, class V>
void check_compute_outcomes(K k, V v1, V v2) {
  using T = table<K, V>;
  using D = typename T::decision;
  detail::striped_counters counters;
  T t(64, true, counters);
  EXPECT_EQ(t.compute(k,
                      [](const V* cur) {
                        EXPECT_EQ(cur, nullptr);
                        return D::keep();
                      }),
            detail::compute_outcome::kept);
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(t.compute(k, [](const V*) { return D::erase(); }), detail::compute_outcome::kept);
  EXPECT_EQ(t.compute(k, [&](const V*) { return D::assign(v1); }),
            detail::compute_outcome::inserted);
  EXPECT_EQ(t.compute(k,
                      [&](const V* cur) {
                        EXPECT_NE(cur, nullptr);
                        if (cur != nullptr) {
                          EXPECT_EQ(*cur, v1);
                        }
                        return D::assign(v2);
                      }),
            detail::compute_outcome::updated);
  // A throwing decide leaves the table unchanged and releases the lock.
  EXPECT_THROW(t.compute(k, [](const V*) -> D { throw std::runtime_error("decide"); }),
               std::runtime_error);
  V seen{};
  EXPECT_TRUE(t.visit(k, [&](const V& cur) { seen = cur; }));
  EXPECT_EQ(seen, v2);
  EXPECT_EQ(t.compute(k, [](const V*) { return D::erase(); }), detail::compute_outcome::erased);
  EXPECT_FALSE(t.visit(k, [](const V&) {}));
  EXPECT_EQ(t.size(), 0u);
  EXPECT_FALSE(t.erase(k));
  EXPECT_EQ(counters.total(detail::counter::inserts), 1u);
  EXPECT_EQ(counters.total(detail::counter::updates), 1u);
  EXPECT_EQ(counters.total(detail::counter::removals), 1u);
}

TEST(HotTable, ComputeOutcomesPacked) {
  check_compute_outcomes<std::uint64_t, std::uint64_t>(5, 1, 2);
}
TEST(HotTable, ComputeOutcomesNode) {
  check_compute_outcomes<std::string, std::string>("k", "one", std::string(100, 'x'));
}

template <class K, class V, class KeyOf, class ValueOf>
void check_eviction_sink(KeyOf key_of, ValueOf value_of) {
  detail::striped_counters counters;
  table<K, V> t(32, true, counters);
  std::map<K, V> evicted;
  t.set_eviction_sink([&](const K& k, const V& v, bool referenced) {
    EXPECT_FALSE(referenced) << "a CLOCK victim has its reference bit clear";
    EXPECT_TRUE(evicted.emplace(k, v).second) << "evicted twice";
  });
  for (std::uint64_t i = 0; i < 200; ++i) {
    t.compute(key_of(i), [&](const V*) { return table<K, V>::decision::assign(value_of(i)); });
  }
  EXPECT_EQ(t.size(), 32u);
  EXPECT_EQ(evicted.size(), 200u - 32u);
  EXPECT_EQ(counters.total(detail::counter::evictions), 200u - 32u);
  for (const auto& [k, v] : evicted) {
    EXPECT_FALSE(t.visit(k, [](const V&) {}));  // delivered victims are really gone
  }
  for (std::uint64_t i = 0; i < 200; ++i) {
    const auto it = evicted.find(key_of(i));
    if (it != evicted.end()) {
      EXPECT_EQ(it->second, value_of(i));  // delivered with its own value
    } else {
      EXPECT_TRUE(t.visit(key_of(i), [&](const V& v) { EXPECT_EQ(v, value_of(i)); }));
    }
  }
}

TEST(HotTable, EvictionSinkReceivesEachVictimOncePacked) {
  check_eviction_sink<std::uint64_t, std::uint64_t>([](std::uint64_t i) { return i; }, value_for);
}
TEST(HotTable, EvictionSinkReceivesEachVictimOnceNode) {
  check_eviction_sink<std::string, std::string>(skey,
                                                [](std::uint64_t i) { return std::to_string(i); });
}

TEST(HotTable, ClearDoesNotCountRemovalsOrEvictions) {
  detail::striped_counters counters;
  table<std::uint64_t, std::uint64_t> t(100, true, counters);
  for (std::uint64_t i = 0; i < 50; ++i) {
    t.compute(i, [&](const std::uint64_t*) { return decltype(t)::decision::assign(i); });
  }
  t.clear();
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(counters.total(detail::counter::removals), 0u);
  EXPECT_EQ(counters.total(detail::counter::evictions), 0u);
  for (std::uint64_t i = 0; i < 50; ++i) EXPECT_FALSE(t.visit(i, [](const std::uint64_t&) {}));
}

TEST(HotTable, MemoryBytes) {
  detail::striped_counters counters;
  table<std::uint64_t, std::uint64_t> packed(100, true, counters);
  const std::size_t empty_packed = packed.memory_bytes();
  EXPECT_GE(empty_packed, packed.slot_count() * 2 * sizeof(std::uint64_t));
  for (std::uint64_t i = 0; i < 50; ++i) {
    packed.compute(i, [&](const std::uint64_t*) { return decltype(packed)::decision::assign(i); });
  }
  EXPECT_EQ(packed.memory_bytes(), empty_packed);  // packed slots own no extra memory

  table<std::string, std::string> nodes(100, true, counters);
  const std::size_t empty_nodes = nodes.memory_bytes();
  nodes.compute("a", [](const std::string*) { return decltype(nodes)::decision::assign("x"); });
  const std::size_t per_node = nodes.memory_bytes() - empty_nodes;
  EXPECT_GE(per_node, 2 * sizeof(std::string));
  for (int i = 0; i < 9; ++i) {
    nodes.compute(std::to_string(i),
                  [](const std::string*) { return decltype(nodes)::decision::assign("x"); });
  }
  EXPECT_EQ(nodes.memory_bytes(), empty_nodes + 10 * per_node);
}

// ---- heavy collisions
// ---------------------------------------------------------------------------------

// Every key hashes the same: same home group, same tag. Lookups must verify keys, probe past full
// groups through the overflow counters, and never create duplicates.
struct ConstantHash {
  static constexpr std::size_t distinct = 1;
  std::size_t operator()(std::uint64_t) const { return 42; }
};
struct ThreeWayHash {
  static constexpr std::size_t distinct = 3;
  std::size_t operator()(std::uint64_t k) const { return k % 3; }
};

template <class Hash>
void check_colliding_keys() {
  auto made = goldylox::typed_cache<std::uint64_t, std::uint64_t, Hash>::builder()
                  .hot_tier_max_entries(5000)
                  .warm_tier_max_entries(0)
                  .build();
  ASSERT_TRUE(made.ok());
  auto& cache = *made;
  // More colliding keys than a probe window holds: inserts evict inside the window.
  constexpr std::uint64_t n = 1200;
  for (std::uint64_t k = 0; k < n; ++k) {
    ASSERT_TRUE(cache.put(k, value_for(k)).ok());
    ASSERT_EQ(cache.get(k), value_for(k)) << k;  // the new key itself is never the victim
  }
  std::size_t present = 0;
  for (std::uint64_t k = 0; k < n; ++k) {
    if (const auto v = cache.get(k)) {
      ++present;
      EXPECT_EQ(*v, value_for(k));
    }
  }
  EXPECT_EQ(present, cache.size());
  // At most one probe window of slots per distinct hash value.
  using T = detail::hot_table<std::uint64_t, std::uint64_t, Hash, std::equal_to<>>;
  EXPECT_LE(present, Hash::distinct * T::probe_window * detail::group_width);
  EXPECT_EQ(cache.stats().evictions, n - present);
}

TEST(Collisions, ConstantHash) {
  check_colliding_keys<ConstantHash>();
}
TEST(Collisions, ThreeDistinctHashes) {
  check_colliding_keys<ThreeWayHash>();
}

TEST(Collisions, UpdatingAKeyPastAFreedSlotDoesNotDuplicateIt) {
  auto made = goldylox::typed_cache<std::uint64_t, std::uint64_t, ConstantHash>::builder()
                  .hot_tier_max_entries(1000)
                  .warm_tier_max_entries(0)
                  .build();
  ASSERT_TRUE(made.ok());
  auto& cache = *made;
  for (std::uint64_t k = 0; k < 40; ++k) ASSERT_TRUE(cache.put(k, k).ok());  // spills 3 groups
  ASSERT_EQ(cache.size(), 40u);
  // Free slots early in the probe sequence, then write keys that live further along it.
  for (std::uint64_t k = 0; k < 20; ++k) ASSERT_TRUE(*cache.remove(k));
  for (std::uint64_t k = 20; k < 40; ++k) ASSERT_TRUE(cache.put(k, k + 100).ok());
  EXPECT_EQ(cache.size(), 20u);
  for (std::uint64_t k = 20; k < 40; ++k) {
    EXPECT_EQ(cache.get(k), k + 100);
    EXPECT_EQ(*cache.put_if_absent(k, 0), k + 100);  // present: not inserted again
  }
  EXPECT_EQ(cache.size(), 20u);
  for (std::uint64_t k = 20; k < 40; ++k) EXPECT_TRUE(*cache.remove(k));
  for (std::uint64_t k = 20; k < 40; ++k) EXPECT_FALSE(cache.contains(k)) << "duplicate of " << k;
  EXPECT_EQ(cache.size(), 0u);
}

// ---- overflow counters ----------------------------------------------------------------------

// A cache evicts and inserts for ever: the table's overflow marks must follow the entries that
// are there, not every entry that ever was. With marks that are only ever set (one bit per hash
// class, as in Boost's tables, which rehash to clear them), every group ends marked for every
// class and every miss walks the whole probe window.
template <class K, class V, class Hash = goldylox::default_hash<K>, class KeyOf>
void check_overflow_follows_churn(std::size_t capacity, std::uint64_t keys, KeyOf key_of) {
  using T = table<K, V, Hash>;
  detail::striped_counters counters;
  T t(capacity, true, counters);
  std::mt19937_64 rng(7);
  std::size_t peak = 0;
  for (std::uint64_t i = 0; i < keys; ++i) {
    const std::uint64_t k = rng() % (keys / 2);
    if (i % 7 == 3) {
      t.erase(key_of(k));
    } else {
      t.compute(key_of(k), [&](const V*) { return T::decision::assign(V{}); });
    }
    if (i % 1024 == 0) peak = std::max(peak, t.overflow_count());
  }
  ASSERT_EQ(t.size(), capacity);  // full: it has been evicting all along
  // At 80 % load under churn, entries sit on average about 2/3 of a group past their home
  // (measured: 0.65): fewer passed groups than entries, where marks that only accumulate would
  // make every group count as passed for every class.
  EXPECT_LT(peak, capacity) << "peak overflow count";
  // Every entry removed, by whatever path: no count is left behind.
  for (std::uint64_t k = 0; k < keys / 2; ++k) t.erase(key_of(k));
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(t.overflow_count(), 0u);
}

TEST(OverflowCounters, FollowChurnPacked) {
  check_overflow_follows_churn<std::uint64_t, std::uint64_t>(4096, 400'000,
                                                             [](std::uint64_t k) { return k; });
}
TEST(OverflowCounters, FollowChurnNode) {
  check_overflow_follows_churn<std::string, std::string>(2048, 200'000, skey);
}

// Colliding keys spill over many groups; removals in any order (erase, eviction, clear) take every
// count back, and lookups past the freed groups still find the keys that remain.
TEST(OverflowCounters, CollidingKeysLeaveNoCountBehind) {
  using T = table<std::uint64_t, std::uint64_t, ConstantHash>;
  detail::striped_counters counters;
  T t(1000, true, counters);
  for (std::uint64_t k = 0; k < 100; ++k) {
    t.compute(k, [&](const std::uint64_t*) { return T::decision::assign(k); });
  }
  ASSERT_EQ(t.size(), 100u);
  // 100 entries over 7 groups from the home group: 16 in each of the first 6 (passing 0..5
  // groups), 4 in the seventh (passing 6).
  EXPECT_EQ(t.overflow_count(), 16u * (0 + 1 + 2 + 3 + 4 + 5) + 4u * 6);
  for (std::uint64_t k = 0; k < 100; k += 2) EXPECT_TRUE(t.erase(k));
  for (std::uint64_t k = 1; k < 100; k += 2) {
    EXPECT_TRUE(t.visit(k, [&](const std::uint64_t& v) { EXPECT_EQ(v, k); })) << k;
  }
  t.clear();
  EXPECT_EQ(t.overflow_count(), 0u);
  for (std::uint64_t k = 0; k < 100; ++k) EXPECT_FALSE(t.visit(k, [](const std::uint64_t&) {}));
}

}  // namespace

namespace {

// A lookup settles in the home group inline, or continues out of line (a second tag match, an
// overflowed home group). Both stages must count exactly one hit or miss per get.
TEST(Collisions, HitsAndMissesAreCountedInBothLookupStages) {
  auto made = goldylox::typed_cache<std::uint64_t, std::uint64_t, ConstantHash>::builder()
                  .hot_tier_max_entries(1000)
                  .warm_tier_max_entries(0)
                  .enable_telemetry(true)
                  .build();
  ASSERT_TRUE(made.ok());
  auto& cache = *made;
  for (std::uint64_t k = 0; k < 40; ++k) ASSERT_TRUE(cache.put(k, value_for(k)).ok());
  std::uint64_t hits = 0;
  std::uint64_t misses = 0;
  for (int round = 0; round < 3; ++round) {
    for (std::uint64_t k = 0; k < 60; ++k) {  // keys 40..59 are absent
      const std::optional<std::uint64_t> v = cache.get(k);
      if (k < 40) {
        ASSERT_EQ(v, value_for(k)) << k;
        ++hits;
      } else {
        ASSERT_FALSE(v.has_value()) << k;
        ++misses;
      }
    }
  }
  EXPECT_EQ(cache.stats().hits, hits);
  EXPECT_EQ(cache.stats().misses, misses);
}

// Keys narrower than a slot word are compared under the write lock from the slot's first word;
// the bytes past the key must not take part in the comparison.
TEST(Collisions, NarrowKeysUpdateInPlace) {
  struct narrow_hash {
    std::size_t operator()(std::uint32_t) const { return 7; }
  };
  auto made = goldylox::typed_cache<std::uint32_t, std::uint32_t, narrow_hash>::builder()
                  .hot_tier_max_entries(1000)
                  .warm_tier_max_entries(0)
                  .build();
  ASSERT_TRUE(made.ok());
  auto& cache = *made;
  for (std::uint32_t k = 0; k < 30; ++k) ASSERT_TRUE(cache.put(k, k).ok());
  for (std::uint32_t k = 0; k < 30; ++k) ASSERT_TRUE(cache.put(k, k + 1000).ok());
  EXPECT_EQ(cache.size(), 30u);
  EXPECT_EQ(cache.stats().updates, 30u);
  for (std::uint32_t k = 0; k < 30; ++k) EXPECT_EQ(cache.get(k), k + 1000) << k;
  for (std::uint32_t k = 0; k < 30; k += 2) ASSERT_TRUE(*cache.remove(k));
  for (std::uint32_t k = 0; k < 30; ++k) EXPECT_EQ(cache.contains(k), k % 2 == 1) << k;
}

}  // namespace

namespace {

// A key that counts its copies.
struct counted_key {
  static inline int copies = 0;
  std::string text;
  explicit counted_key(std::string t) : text(std::move(t)) {}
  counted_key(const counted_key& other) : text(other.text) { ++copies; }
  counted_key(counted_key&&) noexcept = default;
  counted_key& operator=(const counted_key& other) {
    text = other.text;
    ++copies;
    return *this;
  }
  counted_key& operator=(counted_key&&) noexcept = default;
  bool operator==(const counted_key&) const = default;
  template <class H>
  friend H AbslHashValue(H h, const counted_key& k) {
    return H::combine(std::move(h), k.text);
  }
};

// put(const K&) copies the key only when it inserts it; overwriting a present key whose value is
// updated in place copies nothing.
TEST(PutKeyCopies, LvalueKeyIsCopiedOnlyOnInsert) {
  auto made = goldylox::typed_cache<counted_key, std::uint64_t>::builder()
                  .hot_tier_max_entries(100)
                  .warm_tier_max_entries(0)
                  .build();
  ASSERT_TRUE(made.ok());
  auto& cache = *made;
  const counted_key key("a key longer than the small-string buffer");
  counted_key::copies = 0;
  ASSERT_TRUE(cache.put(key, 1).ok());
  EXPECT_EQ(counted_key::copies, 1);  // the stored key
  counted_key::copies = 0;
  for (std::uint64_t v = 2; v < 12; ++v) ASSERT_TRUE(cache.put(key, v).ok());
  EXPECT_EQ(counted_key::copies, 0);
  EXPECT_EQ(cache.get(key), 11u);
  EXPECT_EQ(cache.stats().updates, 10u);
}

}  // namespace

// ---- weights (set_weight_bound) ----

namespace {

template <class V>
std::size_t weight_of_value(const V& v) {
  if constexpr (std::is_same_v<V, std::string>) {
    return v.size();
  } else {
    return static_cast<std::size_t>(v % 100);  // 0..99: zero weights included
  }
}

template <class V>
V value_weighing(std::size_t w) {
  if constexpr (std::is_same_v<V, std::string>) {
    return std::string(w, 'x');
  } else {
    return static_cast<V>(w);
  }
}

// The sum of the resident entries' weights, read back through the table (quiescent).
template <class T>
std::size_t resident_weight(const T& t, std::uint64_t keys) {
  std::size_t sum = 0;
  for (std::uint64_t k = 0; k < keys; ++k) {
    t.visit(k, [&](const auto& v) { sum += weight_of_value(v); });
  }
  return sum;
}

// A table of `entries` bounded by `max_weight` (weights from weight_of_value), with the table's
// own CLOCK hand or under a governor (LRU).
template <class V>
struct weighted_table {
  weighted_table(std::size_t entries, std::size_t max_weight, bool governed)
      : t(entries, true, counters) {
    t.set_weight_bound(max_weight,
                       [](const std::uint64_t&, const V& v) { return weight_of_value(v); });
    if (governed) gov.emplace(t, &detail::make_shard_policy<goldylox::policy::lru>);
  }
  detail::striped_counters counters;
  table<std::uint64_t, V> t;
  std::optional<detail::slot_governor<table<std::uint64_t, V>>> gov;
};

template <class V>
void weight_bound_holds_under_overload(bool governed) {
  weighted_table<V> w(1000, 5000, governed);
  auto& t = w.t;
  std::mt19937_64 rng(7);
  constexpr std::uint64_t keys = 10'000;  // 10x the entries, and ~100x the weight
  for (int i = 0; i < 50'000; ++i) {
    const std::uint64_t k = rng() % keys;
    t.assign(k, value_weighing<V>(rng() % 100));
    ASSERT_LE(t.weight(), 5000u) << "after write " << i;
    ASSERT_LE(t.size(), 1000u);
  }
  EXPECT_EQ(t.weight(), resident_weight(t, keys));
  EXPECT_GT(t.weight(), 4000u);  // the bound binds, and evictions do not overshoot by much
  t.clear();
  EXPECT_EQ(t.weight(), 0u);
  EXPECT_EQ(t.size(), 0u);
}

}  // namespace

// Each case runs with the table's own CLOCK hand and under a governor (LRU).
template <class V, class Check>
void with_and_without_governor(Check check) {
  for (const bool governed : {false, true}) {
    SCOPED_TRACE(governed ? "governed" : "CLOCK");
    check.template operator()<V>(governed);
  }
}

TEST(Weights, BoundHoldsUnderTenfoldOverload) {
  auto check = []<class V>(bool governed) { weight_bound_holds_under_overload<V>(governed); };
  with_and_without_governor<std::uint64_t>(check);
  with_and_without_governor<std::string>(check);
}

// A value heavier than the budget is refused and changes nothing; a replace that outgrows the
// room left evicts others, never the entry it wrote; erase gives the weight back.
template <class V>
void heavy_entries(bool governed) {
  weighted_table<V> w(100, 1000, governed);
  auto& t = w.t;
  for (std::uint64_t k = 0; k < 50; ++k) t.assign(k, value_weighing<V>(10));
  EXPECT_EQ(t.weight(), 500u);
  if constexpr (std::is_same_v<V, std::string>) {  // packed weights stop at 99
    const std::string huge(1001, 'x');
    EXPECT_THROW(t.assign(std::uint64_t{1000}, huge), std::invalid_argument);
    EXPECT_THROW(t.assign(std::uint64_t{3}, huge), std::invalid_argument);
    EXPECT_FALSE(t.template visit<false>(std::uint64_t{1000}, [](const V&) {}));
    std::optional<V> three;
    t.visit(std::uint64_t{3}, [&](const V& v) { three = v; });
    EXPECT_EQ(three, value_weighing<V>(10));
    EXPECT_EQ(t.weight(), 500u);
    EXPECT_EQ(t.size(), 50u);
  }
  // Key 7 grows: to 900 (node), past the room left, so others leave for it; to 99 (packed).
  const std::size_t big = std::is_same_v<V, std::string> ? 900 : 99;
  t.assign(std::uint64_t{7}, value_weighing<V>(big));
  EXPECT_LE(t.weight(), 1000u);
  std::optional<V> seven;
  t.visit(std::uint64_t{7}, [&](const V& v) { seven = v; });
  EXPECT_EQ(seven, value_weighing<V>(big));
  EXPECT_EQ(t.weight(), resident_weight(t, 100));
  EXPECT_TRUE(t.erase(std::uint64_t{7}));
  EXPECT_EQ(t.weight(), resident_weight(t, 100));
  // Zero-weight entries count against the entry bound only.
  t.clear();
  for (std::uint64_t k = 0; k < 500; ++k) t.assign(k, value_weighing<V>(0));
  EXPECT_EQ(t.weight(), 0u);
  EXPECT_LE(t.size(), 100u);
  EXPECT_GE(t.size(), 90u);
}

TEST(Weights, HeavyEntries) {
  auto check = []<class V>(bool governed) { heavy_entries<V>(governed); };
  with_and_without_governor<std::uint64_t>(check);
  with_and_without_governor<std::string>(check);
}

// A weigher that throws leaves the key as it was; a bad bound is refused.
TEST(Weights, ThrowingWeigherAndBadBounds) {
  detail::striped_counters counters;
  table<std::uint64_t, std::string> t(100, true, counters);
  EXPECT_THROW(t.set_weight_bound(
                   0, [](const std::uint64_t&, const std::string&) { return std::size_t{1}; }),
               std::invalid_argument);
  EXPECT_THROW(t.set_weight_bound(10, {}), std::invalid_argument);
  t.set_weight_bound(1000, [](const std::uint64_t&, const std::string& v) -> std::size_t {
    if (v == "boom") throw std::runtime_error("weigher failed");
    return v.size();
  });
  t.assign(std::uint64_t{1}, std::string("one"));
  EXPECT_THROW(t.assign(std::uint64_t{1}, std::string("boom")), std::runtime_error);
  EXPECT_THROW(t.assign(std::uint64_t{2}, std::string("boom")), std::runtime_error);
  std::optional<std::string> one;
  t.visit(std::uint64_t{1}, [&](const std::string& v) { one = v; });
  EXPECT_EQ(one, "one");
  EXPECT_FALSE(t.template visit<false>(std::uint64_t{2}, [](const std::string&) {}));
  EXPECT_EQ(t.weight(), 3u);
  EXPECT_EQ(t.size(), 1u);
  // A governor refuses a budget smaller than its shard count.
  table<std::uint64_t, std::string> big(200'000, true, counters);
  big.set_weight_bound(1, [](const std::uint64_t&, const std::string& v) { return v.size(); });
  if (detail::slot_governor<table<std::uint64_t, std::string>>::shard_count(200'000) > 1) {
    EXPECT_THROW((detail::slot_governor<table<std::uint64_t, std::string>>(
                     big, &detail::make_shard_policy<goldylox::policy::lru>)),
                 std::invalid_argument);
  }
}
