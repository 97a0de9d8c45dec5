// The hot and warm tiers together, through both facades: demotion, warm hits, promotion, the
// coherence of writes across tiers, statistics, and the warm-tier builder options.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <vector>

#include <gtest/gtest.h>

#include <goldylox/goldylox.hpp>
#include <goldylox/policies.hpp>

#include "test_support.hpp"

namespace {

using U64 = goldylox::typed_cache<std::uint64_t, std::uint64_t>;
using Str = goldylox::typed_cache<std::string, std::string>;
using Any = goldylox::cache<std::string>;

// Inline mode (no background pool): every move is made by the read that asks for it, so these
// tests can follow the promotion manager's decisions read by read. The queued moves of the pool
// have tests of their own (QueuedMoves below).
template <class C>
C make_tiered(std::size_t hot, std::size_t warm, std::uint32_t promotion_hits = 2) {
  auto made = C::builder()
                  .hot_tier_max_entries(hot)
                  .warm_tier_max_entries(warm)
                  .memory_layout(goldylox::memory_layout::two_tables)
                  .warm_tier_promotion_hits(promotion_hits)
                  .enable_telemetry(true)
                  .enable_background_workers(false)
                  .build();
  EXPECT_TRUE(made.ok()) << made.status();
  return std::move(made).value();
}

std::string key(int i) {
  return "key-" + std::to_string(i);
}

// Writes 64 other keys after `k`. New keys enter the warm tier (the hot tier takes entries only
// by promotion), so `k` is in the warm tier before and after; the fillers make sure no read of `k`
// below is a hot hit whatever the routing of writes.
template <class C, class MakeKey>
void push_out_of_hot(C& cache, MakeKey make_key, int first_filler) {
  for (int i = 0; i < 64; ++i) {
    if constexpr (std::is_same_v<C, Any>) {
      ASSERT_TRUE(cache.put(make_key(first_filler + i), 0).ok());
    } else {
      ASSERT_TRUE(cache.put(make_key(first_filler + i), {}).ok());
    }
  }
}

// New keys enter the warm tier; reads promote them into the hot tier, whose CLOCK victims go back
// to the warm tier (demotions), never out of the cache.
TEST(Tiered, HotEvictionsAreDemotedNotLost) {
  auto cache = make_tiered<U64>(16, 1000);
  for (std::uint64_t k = 0; k < 200; ++k) ASSERT_TRUE(cache.put(k, k * 10).ok());
  goldylox::cache_stats s = cache.stats();
  EXPECT_EQ(s.hot_size, 0u);
  EXPECT_EQ(s.warm_size, 200u);
  EXPECT_EQ(s.inserts, 200u);
  for (int round = 0; round < 2; ++round) {  // the second read of each key asks for a promotion
    for (std::uint64_t k = 0; k < 200; ++k) ASSERT_EQ(cache.get(k), k * 10) << k;
  }
  s = cache.stats();
  EXPECT_EQ(s.size, 200u);
  EXPECT_EQ(s.hot_size, 16u);
  EXPECT_EQ(s.hot_size + s.warm_size, 200u);
  EXPECT_GT(s.promotions, 16u);
  EXPECT_EQ(s.demotions, s.promotions - s.hot_size);
  EXPECT_EQ(s.evictions, 0u);
  EXPECT_EQ(s.inserts, 200u);  // moves create nothing
  EXPECT_EQ(s.capacity, 16u + 1000u);
  for (std::uint64_t k = 0; k < 200; ++k) {
    const auto v = cache.get(k);
    ASSERT_TRUE(v.has_value()) << k;
    EXPECT_EQ(*v, k * 10);
  }
}

TEST(Tiered, TotalCapacityBoundsTheCache) {
  auto cache = make_tiered<Str>(16, 100);
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(cache.put(key(i), std::string(40, 'v')).ok());
    ASSERT_LE(cache.size(), 116u);
  }
  const goldylox::cache_stats s = cache.stats();
  EXPECT_GE(s.size, 100u);
  EXPECT_EQ(s.evictions, 1000u - s.size);
  EXPECT_EQ(s.inserts, 1000u);
}

TEST(Tiered, WarmHitsPromoteOnTheConfiguredRead) {
  auto cache = make_tiered<U64>(16, 1000, /*promotion_hits=*/2);
  ASSERT_TRUE(cache.put(7, 70).ok());
  push_out_of_hot(
      cache, [](int i) { return static_cast<std::uint64_t>(i); }, 1000);
  ASSERT_EQ(cache.stats().promotions, 0u);
  const std::uint64_t warm_before = cache.stats().warm_size;

  EXPECT_EQ(cache.get(7), 70u);  // first warm hit: served from the warm tier, stays there
  goldylox::cache_stats s = cache.stats();
  EXPECT_EQ(s.warm_hits, 1u);
  EXPECT_EQ(s.promotions, 0u);
  EXPECT_EQ(s.warm_size, warm_before);

  EXPECT_EQ(cache.get(7), 70u);  // second: promoted
  s = cache.stats();
  EXPECT_EQ(s.warm_hits, 2u);
  EXPECT_EQ(s.promotions, 1u);

  EXPECT_EQ(cache.get(7), 70u);  // now a hot hit
  s = cache.stats();
  EXPECT_EQ(s.warm_hits, 2u);
  EXPECT_EQ(s.hits, 3u);
  EXPECT_EQ(s.misses, 0u);
  EXPECT_EQ(s.inserts, 65u);  // promotion moves an entry; it does not create one
}

TEST(Tiered, PromotionOnEveryWarmHit) {
  auto cache = make_tiered<Str>(16, 1000, /*promotion_hits=*/1);
  ASSERT_TRUE(cache.put("k", "v").ok());
  push_out_of_hot(cache, key, 0);
  EXPECT_EQ(cache.get("k"), "v");
  EXPECT_EQ(cache.stats().promotions, 1u);
  EXPECT_EQ(cache.get("k"), "v");
  EXPECT_EQ(cache.stats().warm_hits, 1u);
}

// The promotion manager's cost/benefit rule: once the hot tier is full, a warm entry moves up
// only if the frequency sketch says it is read more often than the entries the hot tier lets go.
// 16 keys fill the hot tier and stay popular (read between every two other keys); 400 other keys
// pass through, each read twice (enough reads for the count rule alone). The popular keys gain a
// count each time the CLOCK hand finds them read, the scanned keys have two, so after the first
// few moves the bar (the victims' counts) stops the rest: by the count rule alone all 400 would
// have moved up and back down again.
TEST(Tiered, ARarelyReadEntryDoesNotDisplaceFrequentOnes) {
  auto cache = make_tiered<U64>(16, 1000);
  const auto read_popular = [&] {
    for (std::uint64_t k = 0; k < 16; ++k) ASSERT_EQ(cache.get(k), k);
  };
  for (std::uint64_t k = 0; k < 16; ++k) ASSERT_TRUE(cache.put(k, k).ok());
  for (int round = 0; round < 4; ++round) read_popular();
  ASSERT_EQ(cache.stats().hot_size, 16u);
  const std::uint64_t promotions_before = cache.stats().promotions;
  for (std::uint64_t k = 1000; k < 1400; ++k) {
    ASSERT_TRUE(cache.put(k, k).ok());
    ASSERT_EQ(cache.get(k), k);
    ASSERT_EQ(cache.get(k), k);
    read_popular();
  }
  const goldylox::cache_stats s = cache.stats();
  EXPECT_LE(s.promotions - promotions_before, 40u);
  // The frequent keys are still hot: reading them is no warm hit.
  int still_hot = 0;
  for (std::uint64_t k = 0; k < 16; ++k) {
    const std::uint64_t warm_hits = cache.stats().warm_hits;
    ASSERT_EQ(cache.get(k), k);
    still_hot += cache.stats().warm_hits == warm_hits ? 1 : 0;
  }
  EXPECT_GE(still_hot, 8);
}

// While the hot tier has room, a promotion displaces nothing and the count rule alone decides.
TEST(Tiered, PromotionGateAdmitsFreelyWhileTheHotTierHasRoom) {
  goldylox::detail::promotion_gate gate(1024, 2);
  EXPECT_FALSE(gate.admit(42, 1, false));  // one read: never worth a move
  EXPECT_TRUE(gate.admit(42, 2, false));
  // Full: the candidate must beat the bar the victims set.
  EXPECT_TRUE(gate.admit(42, 2, true) == (gate.bar() < 0.0));  // unseen: estimate 0, bar 0
  for (int i = 0; i < 10; ++i) gate.record(7);
  for (int i = 0; i < 40; ++i) gate.on_hot_victim(7);  // victims read 10 times
  EXPECT_GT(gate.bar(), 8.0);
  EXPECT_LE(gate.bar(), 10.0);
  for (int i = 0; i < 5; ++i) gate.record(42);
  EXPECT_FALSE(gate.admit(42, 5, true));
  for (int i = 0; i < 10; ++i) gate.record(42);
  EXPECT_TRUE(gate.admit(42, 15, true));
  for (int i = 0; i < 40; ++i) gate.on_hot_victim(99);  // victims never read: the bar falls
  EXPECT_LT(gate.bar(), 1.0);
}

// The coherence rules of engine.hpp, one at a time, each on a key that sits in the warm tier.
TEST(Tiered, APutSupersedesTheWarmCopy) {
  auto cache = make_tiered<U64>(16, 1000);
  ASSERT_TRUE(cache.put(1, 100).ok());
  push_out_of_hot(
      cache, [](int i) { return static_cast<std::uint64_t>(i); }, 1000);
  ASSERT_TRUE(cache.put(1, 200).ok());  // inserted into the hot tier; the warm 100 must go
  EXPECT_EQ(cache.get(1), 200u);
  const std::size_t size = cache.size();
  push_out_of_hot(
      cache, [](int i) { return static_cast<std::uint64_t>(i); }, 2000);
  EXPECT_EQ(cache.get(1), 200u);  // demoted again: the warm tier holds the new value
  EXPECT_EQ(cache.size(), size + 64);
  ASSERT_TRUE(*cache.remove(1));
  EXPECT_FALSE(cache.get(1).has_value());
  EXPECT_FALSE(cache.contains(1));
}

TEST(Tiered, EraseReachesTheWarmTier) {
  auto cache = make_tiered<Str>(16, 1000);
  ASSERT_TRUE(cache.put("gone", "v").ok());
  push_out_of_hot(cache, key, 0);
  ASSERT_TRUE(cache.contains("gone"));
  EXPECT_TRUE(*cache.remove("gone"));
  EXPECT_FALSE(cache.contains("gone"));
  EXPECT_FALSE(cache.get("gone").has_value());
  EXPECT_FALSE(*cache.remove("gone"));
  EXPECT_EQ(cache.stats().removals, 1u);
}

TEST(Tiered, ConditionalWritesSeeTheWarmValue) {
  auto cache = make_tiered<U64>(16, 1000, /*promotion_hits=*/100);
  const auto fill = [](int i) { return static_cast<std::uint64_t>(i); };
  ASSERT_TRUE(cache.put(1, 10).ok());
  ASSERT_TRUE(cache.put(2, 20).ok());
  ASSERT_TRUE(cache.put(3, 30).ok());
  ASSERT_TRUE(cache.put(4, 40).ok());
  push_out_of_hot(cache, fill, 1000);

  EXPECT_EQ(*cache.put_if_absent(1, 11), 10u);  // present (warm): not overwritten
  EXPECT_EQ(cache.get(1), 10u);
  EXPECT_EQ(*cache.replace(2, 21), 20u);  // present (warm): replaced
  EXPECT_EQ(cache.get(2), 21u);
  EXPECT_FALSE(*cache.compare_and_swap(3, 99, 31));
  EXPECT_TRUE(*cache.compare_and_swap(3, 30, 31));
  EXPECT_EQ(cache.get(3), 31u);
  int calls = 0;
  EXPECT_EQ(*cache.get_or_insert(4, [&] { return ++calls, std::uint64_t{41}; }), 40u);
  EXPECT_EQ(calls, 0);

  // None of the replaced values may come back from the warm tier.
  push_out_of_hot(cache, fill, 2000);
  EXPECT_EQ(cache.get(2), 21u);
  EXPECT_EQ(cache.get(3), 31u);
}

TEST(Tiered, ClearEmptiesEveryTier) {
  auto cache = make_tiered<U64>(16, 1000);
  for (std::uint64_t k = 0; k < 300; ++k) ASSERT_TRUE(cache.put(k, k).ok());
  ASSERT_TRUE(cache.clear().ok());
  EXPECT_EQ(cache.size(), 0u);
  for (std::uint64_t k = 0; k < 300; ++k) ASSERT_FALSE(cache.contains(k)) << k;
}

TEST(Tiered, GetManyReadsEveryTier) {
  auto cache = make_tiered<Str>(16, 1000);
  std::vector<std::string> keys;
  for (int i = 0; i < 200; ++i) {
    keys.push_back(key(i));
    ASSERT_TRUE(cache.put(key(i), "v" + std::to_string(i)).ok());
  }
  keys.push_back("absent");
  const std::vector<std::optional<std::string>> got = cache.get_many(keys);
  for (int i = 0; i < 200; ++i) EXPECT_EQ(got[i], "v" + std::to_string(i)) << i;
  EXPECT_FALSE(got[200].has_value());
  const goldylox::cache_stats s = cache.stats();
  EXPECT_EQ(s.hits, 200u);
  EXPECT_EQ(s.misses, 1u);
  EXPECT_GE(s.warm_hits, 200u - 16u);
}

TEST(Tiered, TypedValuesKeepTheirTypeInTheWarmTier) {
  auto cache = make_tiered<Any>(16, 1000);
  ASSERT_TRUE(cache.put("user", std::string("Ada")).ok());
  push_out_of_hot(cache, key, 0);
  const auto wrong = cache.get<int>("user");
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kFailedPrecondition);
  const auto right = cache.get<std::string>("user");
  ASSERT_TRUE(right.ok());
  EXPECT_EQ(**right, "Ada");
  std::size_t seen = 0;
  EXPECT_TRUE(*cache.visit<std::string>("user", [&](const std::string& s) { seen = s.size(); }));
  EXPECT_EQ(seen, 3u);
  // A put of another type replaces the warm entry whatever it held.
  ASSERT_TRUE(cache.put("user", 42).ok());
  EXPECT_EQ(**cache.get<int>("user"), 42);
}

// A loop over more keys than the hot tier holds: the hot tier alone misses every time, the two
// tiers together hit every time once warm.
TEST(Tiered, AWorkingSetLargerThanTheHotTierStaysCached) {
  auto tiered = make_tiered<U64>(100, 1000);
  auto hot_only = U64::builder()
                      .hot_tier_max_entries(100)
                      .warm_tier_max_entries(0)
                      .enable_telemetry(true)
                      .build()
                      .value();
  for (int round = 0; round < 5; ++round) {
    for (std::uint64_t k = 0; k < 500; ++k) {
      for (U64* c : {&tiered, &hot_only}) {
        if (!c->get(k)) {
          ASSERT_TRUE(c->put(k, k).ok());
        }
      }
    }
  }
  EXPECT_EQ(tiered.stats().misses, 500u);  // the first round only
  EXPECT_GT(hot_only.stats().misses, 2000u);
}

// A value whose copy throws on demand: a demotion that cannot copy drops the entry, counted,
// and the cache keeps serving. `fail` makes every copy throw; `copies_before_failure` (when >= 0)
// lets that many copies succeed first.
struct fragile {
  static inline std::atomic<bool> fail{false};
  static inline std::atomic<int> copies_before_failure{-1};
  std::uint64_t v = 0;
  fragile() = default;
  explicit fragile(std::uint64_t x) : v(x) {}
  fragile(const fragile& o) : v(o.v) {
    if (fail.load()) throw std::runtime_error("copy failed");
    if (copies_before_failure.load() == 0) throw std::runtime_error("copy failed");
    if (copies_before_failure.load() > 0) --copies_before_failure;
  }
  fragile(fragile&&) noexcept = default;
  fragile& operator=(const fragile&) = default;
  fragile& operator=(fragile&&) noexcept = default;
};

TEST(Tiered, AFailedDemotionIsCountedAndTheCacheKeepsServing) {
  auto made = goldylox::typed_cache<std::uint64_t, fragile>::builder()
                  .hot_tier_max_entries(16)
                  .warm_tier_max_entries(1000)
                  .memory_layout(goldylox::memory_layout::two_tables)
                  .enable_background_workers(false)  // each read's copies, in order
                  .build();
  ASSERT_TRUE(made.ok());
  auto& cache = *made;
  const auto read = [&](std::uint64_t k) {  // visit: no copy of its own
    return cache.visit(k, [&](const fragile& f) { EXPECT_EQ(f.v, k); });
  };
  // Keys 0..15 promoted: the hot tier is full.
  for (std::uint64_t k = 0; k < 16; ++k) {
    ASSERT_TRUE(cache.put(k, fragile(k)).ok());
    ASSERT_TRUE(read(k));
    ASSERT_TRUE(read(k));
  }
  ASSERT_EQ(cache.stats().hot_size, 16u);
  ASSERT_EQ(cache.stats().warm_size, 0u);
  // Each further promotion copies its entry once out of the warm tier, then demotes a hot victim
  // into it, which copies the victim: that copy fails, and the victim leaves the cache, counted.
  for (std::uint64_t k = 16; k < 64; ++k) {
    ASSERT_TRUE(cache.put(k, fragile(k)).ok());
    ASSERT_TRUE(read(k));
    fragile::copies_before_failure = 1;
    ASSERT_TRUE(read(k));
    fragile::copies_before_failure = -1;
  }
  const goldylox::cache_stats s = cache.stats();
  // Each promotion past the first 16 displaced a victim (as many as the promotion gate let
  // through: it stops admitting twice-read keys once victims read as often set the bar), and
  // every one of those demotions failed.
  EXPECT_GT(s.demotions, 0u);
  EXPECT_EQ(s.demotions, s.promotions - 16u);
  EXPECT_EQ(s.evictions, s.demotions);
  // The failed demotions' entries are gone; the rest are where the gate left them.
  EXPECT_EQ(s.hot_size, 16u);
  EXPECT_EQ(s.size, 64u - s.evictions);
  EXPECT_EQ(s.warm_size, 48u - s.evictions);
  std::uint64_t readable = 0;  // each with its own value (read() checks it)
  for (std::uint64_t k = 0; k < 64; ++k) readable += read(k) ? 1 : 0;
  EXPECT_EQ(readable, s.size);
  for (std::uint64_t k = 100; k < 200; ++k) ASSERT_TRUE(cache.put(k, fragile(k)).ok());
  EXPECT_GT(cache.stats().warm_size, 0u);
  EXPECT_EQ(cache.get(199)->v, 199u);
}

// ---- builder options ------------------------------------------------------------------------

// A user policy: LRU that counts its events, to prove the warm tier really runs the policy given.
struct counting_lru : goldylox::policy::lru {
  using base = goldylox::policy::lru;
  static constexpr std::string_view name = "counting-lru";
  static inline std::atomic<int> inserts{0};
  explicit counting_lru(std::size_t capacity) : base(capacity) {}
  void on_insert(slot s, std::uint64_t hash) {
    ++inserts;
    base::on_insert(s, hash);
  }
};
static_assert(goldylox::eviction_policy<counting_lru>);

TEST(TieredBuilder, NamedPolicies) {
  auto lru = U64::builder().warm_tier_policy("lru").build();
  ASSERT_TRUE(lru.ok()) << lru.status();
  EXPECT_EQ(lru->config().warm_tier_policy, "lru");
  auto dflt = U64::builder().build();
  EXPECT_EQ(dflt->config().warm_tier_policy, "adaptive");
  auto w = Any::builder().warm_tier_policy("w-tinylfu").build();
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->config().warm_tier_policy, "w-tinylfu");
}

TEST(TieredBuilder, UnknownPolicyNameListsTheValidOnes) {
  auto made = U64::builder().warm_tier_policy("mru").build();
  ASSERT_EQ(made.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string msg(made.status().message());
  EXPECT_NE(msg.find("'mru'"), std::string::npos) << msg;
  for (const char* valid : {"lru", "arc", "sieve", "s3fifo", "adaptive", "linear-model"}) {
    EXPECT_NE(msg.find(valid), std::string::npos) << msg;
  }
}

TEST(TieredBuilder, PolicyTypesAndUserPolicies) {
  auto sieve = U64::builder().warm_tier_policy<goldylox::policy::sieve>().build();
  ASSERT_TRUE(sieve.ok());
  EXPECT_EQ(sieve->config().warm_tier_policy, "SIEVE");  // P::name

  counting_lru::inserts = 0;
  auto user = U64::builder()
                  .hot_tier_max_entries(16)
                  .warm_tier_max_entries(100)
                  .warm_tier_policy<counting_lru>()
                  .build();
  ASSERT_TRUE(user.ok());
  EXPECT_EQ(user->config().warm_tier_policy, "counting-lru");
  for (std::uint64_t k = 0; k < 100; ++k) ASSERT_TRUE(user->put(k, k).ok());
  // Every entry the warm tier took: the 100 new keys (they enter there) and any demotions.
  EXPECT_EQ(counting_lru::inserts.load(),
            static_cast<int>(user->stats().inserts + user->stats().demotions));
  EXPECT_GT(counting_lru::inserts.load(), 0);

  // A factory, for a policy with options.
  auto with_options = U64::builder()
                          .warm_tier_policy([](std::size_t capacity) {
                            goldylox::policy::linear_model_options o;
                            o.sample = 8;
                            return goldylox::policy::linear_model(capacity, o);
                          })
                          .build();
  ASSERT_TRUE(with_options.ok()) << with_options.status();
  EXPECT_EQ(with_options->config().warm_tier_policy, "linear_model");
}

TEST(TieredBuilder, InvalidWarmOptions) {
  auto zero = U64::builder().warm_tier_promotion_hits(0).build();
  EXPECT_EQ(zero.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(zero.status().message().find("warm_tier_promotion_hits"), std::string::npos);
  auto off = U64::builder().warm_tier_max_entries(0).warm_tier_policy("lru").build();
  EXPECT_EQ(off.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(off.status().message().find("warm tier, which is off"), std::string::npos)
      << off.status();
  auto no_warm = U64::builder().warm_tier_max_entries(0).build();
  ASSERT_TRUE(no_warm.ok());
  EXPECT_EQ(no_warm->config().warm_tier_policy, "");
}

// ---- One table (the default layout): the warm policy decides the hot table's evictions -------

U64 make_one_table(std::size_t entries, std::string_view policy) {
  auto made = U64::builder()
                  .max_entries(entries)
                  .warm_tier_policy(policy)
                  .enable_telemetry(true)
                  .enable_background_workers(false)
                  .build();
  EXPECT_TRUE(made.ok()) << made.status();
  return std::move(made).value();
}

// LRU over all of memory: a read saves a key from the next eviction, whichever it is.
TEST(OneTable, EvictsWhatThePolicyChooses) {
  auto cache = make_one_table(64, "lru");
  for (std::uint64_t k = 0; k < 64; ++k) ASSERT_TRUE(cache.put(k, k).ok());
  EXPECT_EQ(cache.get(0), 0u);  // 0 becomes the most recent; 1 is now the least
  ASSERT_TRUE(cache.put(100, 100).ok());
  EXPECT_TRUE(cache.contains(0));
  EXPECT_FALSE(cache.contains(1));
  EXPECT_EQ(cache.size(), 64u);
  const goldylox::cache_stats s = cache.stats();
  EXPECT_EQ(s.hot_size, 64u);
  EXPECT_EQ(s.warm_size, 0u);
  EXPECT_EQ(s.evictions, 1u);
  EXPECT_EQ(s.promotions + s.demotions, 0u);
  // FIFO: the same read saves nothing.
  auto fifo = make_one_table(64, "fifo");
  for (std::uint64_t k = 0; k < 64; ++k) ASSERT_TRUE(fifo.put(k, k).ok());
  EXPECT_EQ(fifo.get(0), 0u);
  ASSERT_TRUE(fifo.put(100, 100).ok());
  EXPECT_FALSE(fifo.contains(0));
  EXPECT_TRUE(fifo.contains(1));
}

// Erases and overwrites reach the policy: the freed places are
// refilled without an eviction, and an erased key is never the policy's victim later (the
// victim would not be found, and the cache would run a place short).
TEST(OneTable, RemovalsLeaveThePolicy) {
  auto cache = make_one_table(64, "lru");
  for (std::uint64_t k = 0; k < 64; ++k) ASSERT_TRUE(cache.put(k, k).ok());
  ASSERT_TRUE(*cache.remove(5));
  ASSERT_TRUE(*cache.remove(6));
  ASSERT_TRUE(cache.put(7, 70).ok());      // an overwrite: a use, no new entry
  ASSERT_TRUE(cache.replace(8, 80).ok());  // likewise, under the key's lock
  ASSERT_TRUE(cache.put(200, 200).ok());
  ASSERT_TRUE(cache.put(201, 201).ok());
  EXPECT_EQ(cache.stats().evictions, 0u);
  EXPECT_EQ(cache.size(), 64u);
  for (std::uint64_t k = 300; k < 300 + 64; ++k) ASSERT_TRUE(cache.put(k, k).ok());
  EXPECT_EQ(cache.size(), 64u);  // every new key evicted exactly one old one
  EXPECT_EQ(cache.stats().evictions, 64u);
  ASSERT_TRUE(cache.clear().ok());
  EXPECT_EQ(cache.size(), 0u);
  for (std::uint64_t k = 0; k < 64; ++k) ASSERT_TRUE(cache.put(k, k).ok());
  EXPECT_EQ(cache.size(), 64u);  // clear emptied the policy too: no eviction to refill
  EXPECT_EQ(cache.stats().evictions, 64u);
}

// Values in nodes (std::string) go through the same governor.
TEST(OneTable, NodeValuesAreGovernedToo) {
  auto made = Str::builder()
                  .max_entries(32)
                  .warm_tier_policy("lru")
                  .enable_background_workers(false)
                  .build();
  ASSERT_TRUE(made.ok()) << made.status();
  for (int i = 0; i < 32; ++i) ASSERT_TRUE(made->put(key(i), key(i)).ok());
  EXPECT_EQ(made->get(key(0)), key(0));
  ASSERT_TRUE(made->put(key(100), key(100)).ok());
  EXPECT_TRUE(made->contains(key(0)));
  EXPECT_FALSE(made->contains(key(1)));
  EXPECT_EQ(made->size(), 32u);
}

TEST(OneTable, OptionsOnlyTwoTablesHaveAreRefused) {
  auto promotions = U64::builder().max_entries(100).warm_tier_promotion_hits(3).build();
  EXPECT_EQ(promotions.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(promotions.status().message().find("memory_layout::two_tables"), std::string::npos)
      << promotions.status();
  auto two = U64::builder()
                 .max_entries(100)
                 .warm_tier_promotion_hits(3)
                 .memory_layout(goldylox::memory_layout::two_tables)
                 .build();
  EXPECT_TRUE(two.ok()) << two.status();
  EXPECT_EQ(two->config().memory_layout, goldylox::memory_layout::two_tables);
  auto one = U64::builder().max_entries(100).build();
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->config().memory_layout, goldylox::memory_layout::one_table);
  EXPECT_EQ(one->capacity(), 100u);
}

// ---- Queued moves: with a background pool, reads queue the moves they ask for ----------------

// Occupies a one-thread pool with a job of its own until released (or destroyed), so a test can
// hold the cache's queued moves back and look at the queue.
class pool_blocker {
 public:
  explicit pool_blocker(const goldylox::background_pool& pool) {
    job_ = goldylox::detail::background_pool_access::pool(pool)->add(
        [this](std::stop_token stop) {
          running_.store(true);
          while (!released_.load() && !stop.stop_requested()) {
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
          }
        },
        std::chrono::nanoseconds(0));
    job_->notify();
    while (!running_.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  void release() { released_.store(true); }

 private:
  std::atomic<bool> running_{false}, released_{false};
  std::unique_ptr<goldylox::detail::job_handle> job_;  // last: stops the job before the flags go
};

U64 make_pooled(const goldylox::background_pool& pool, std::size_t hot, std::size_t warm,
                std::uint32_t promotion_hits = 2) {
  auto made = U64::builder()
                  .hot_tier_max_entries(hot)
                  .warm_tier_max_entries(warm)
                  .memory_layout(goldylox::memory_layout::two_tables)
                  .warm_tier_promotion_hits(promotion_hits)
                  .enable_telemetry(true)
                  .background_pool(pool)
                  .build();
  EXPECT_TRUE(made.ok()) << made.status();
  return std::move(made).value();
}

// A read that asks for a move returns before it is made; the pool makes it (here, after the
// pool is released), and run_pending_tasks() makes what is queued on the calling thread.
TEST(QueuedMoves, AReadQueuesItsPromotionAndThePoolMakesIt) {
  goldylox::background_pool pool(1);
  auto cache = make_pooled(pool, 16, 1000);
  auto blocker = std::make_unique<pool_blocker>(pool);
  for (std::uint64_t k = 0; k < 8; ++k) ASSERT_TRUE(cache.put(k, k).ok());
  for (int round = 0; round < 2; ++round) {
    for (std::uint64_t k = 0; k < 8; ++k) ASSERT_EQ(cache.get(k), k);
  }
  goldylox::cache_stats s = cache.stats();
  EXPECT_EQ(s.promotions, 0u);
  EXPECT_EQ(s.pending_moves, 8u);
  EXPECT_EQ(s.hot_size, 0u);
  EXPECT_EQ(s.warm_size, 8u);
  for (std::uint64_t k = 0; k < 8; ++k) ASSERT_EQ(cache.get(k), k);  // still served meanwhile

  blocker->release();
  for (int i = 0; i < 5000 && cache.stats().promotions < 8; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  s = cache.stats();
  EXPECT_EQ(s.promotions, 8u);
  EXPECT_EQ(s.hot_size, 8u);
  EXPECT_EQ(s.warm_size, 0u);
  EXPECT_EQ(s.pending_moves, 0u);
  EXPECT_EQ(s.dropped_promotions, 0u);
  blocker.reset();

  // run_pending_tasks: the same moves, now, on this thread.
  blocker = std::make_unique<pool_blocker>(pool);
  for (std::uint64_t k = 100; k < 104; ++k) ASSERT_TRUE(cache.put(k, k).ok());
  for (int round = 0; round < 2; ++round) {
    for (std::uint64_t k = 100; k < 104; ++k) ASSERT_EQ(cache.get(k), k);
  }
  EXPECT_EQ(cache.stats().pending_moves, 4u);
  cache.run_pending_tasks();
  s = cache.stats();
  EXPECT_EQ(s.pending_moves, 0u);
  EXPECT_EQ(s.promotions, 12u);
  EXPECT_EQ(s.hot_size, 12u);
  for (std::uint64_t k = 0; k < 8; ++k) ASSERT_EQ(cache.get(k), k);
  for (std::uint64_t k = 100; k < 104; ++k) ASSERT_EQ(cache.get(k), k);
}

// With a pool the warm tier's policy learns there: requests only queue what it learns
// (stats().learning_backlog), the pool's maintenance job learns it, and run_pending_tasks() learns
// the rest on the calling thread. Without a pool nothing is queued.
TEST(QueuedMoves, ThePolicyLearnsOnThePool) {
  goldylox::background_pool pool(1);
  auto cache = make_pooled(pool, 64, 1000);
  std::size_t most = 0;
  {
    pool_blocker blocker(pool);
    for (std::uint64_t i = 0; i < 20000; ++i) {
      const std::uint64_t k = (i * 7919) % 5000;
      if (!cache.get(k)) {
        ASSERT_TRUE(cache.put(k, k).ok());
      }
      most = std::max(most, cache.stats().learning_backlog);
    }
    EXPECT_GT(cache.stats().learning_backlog, 0u) << "the blocked pool learnt";
  }
  EXPECT_GT(most, 0u);
  // Bounded while the pool could not run: a shard's queue (1024) is learnt inline when it
  // fills, and a 1000-entry warm tier has at most 8 shards (64 entries or more each).
  EXPECT_LE(most, 8u * 1024);
  // Released, the pool learns what is queued (each shard's last queue reached the notify mark,
  // or was below it: what remains is less than the mark per shard).
  for (int i = 0; i < 2000 && cache.stats().learning_backlog >= 64; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  cache.run_pending_tasks();
  EXPECT_EQ(cache.stats().learning_backlog, 0u);

  auto made = U64::builder()
                  .hot_tier_max_entries(64)
                  .warm_tier_max_entries(1000)
                  .enable_background_workers(false)
                  .build();
  ASSERT_TRUE(made.ok()) << made.status();
  for (std::uint64_t i = 0; i < 5000; ++i) {
    const std::uint64_t k = (i * 7919) % 5000;
    if (!made->get(k)) {
      ASSERT_TRUE(made->put(k, k).ok());
    }
    ASSERT_EQ(made->stats().learning_backlog, 0u);
  }
}

// 10x more moves asked for than the queue holds, with the pool unable to run: the queue stays
// within its bound, the rest are dropped and counted, and every entry is still served from where
// it is. Released, the pool makes what was queued.
TEST(QueuedMoves, AnOverloadedQueueStaysBoundedAndDropsPromotionsCounted) {
  goldylox::background_pool pool(1);
  auto cache = make_pooled(pool, 4096, 20000, /*promotion_hits=*/1);
  auto blocker = std::make_unique<pool_blocker>(pool);
  constexpr std::uint64_t keys = 5120;  // 10x the queue's 8 stripes x 64
  for (std::uint64_t k = 0; k < keys; ++k) ASSERT_TRUE(cache.put(k, k + 1).ok());
  for (std::uint64_t k = 0; k < keys; ++k) ASSERT_EQ(cache.get(k), k + 1);
  goldylox::cache_stats s = cache.stats();
  EXPECT_LE(s.pending_moves, 512u);
  EXPECT_GT(s.pending_moves, 0u);
  EXPECT_EQ(s.pending_moves + s.dropped_promotions, keys);
  EXPECT_EQ(s.promotions, 0u);
  EXPECT_EQ(s.size, keys);
  const std::uint64_t queued = s.pending_moves;
  blocker->release();
  for (int i = 0; i < 5000 && cache.stats().pending_moves != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  // The pool took every request; run_pending_tasks waits for the batch it may still be making
  // (a taken batch no longer counts as pending: failed once on a loaded machine without this).
  ASSERT_EQ(cache.stats().pending_moves, 0u);
  cache.run_pending_tasks();
  s = cache.stats();
  EXPECT_EQ(s.promotions, queued);
  EXPECT_EQ(s.hot_size, queued);
  EXPECT_EQ(s.size, keys);
  for (std::uint64_t k = 0; k < keys; ++k) ASSERT_EQ(cache.get(k), k + 1);
}

// A cold tier under a pool: cold hits queue their promotion with the value read; closing while
// those moves are queued or running loses nothing, and reopening brings every value back.
TEST(QueuedMoves, ClosingWithMovesQueuedLosesNothing) {
  goldylox_test::temp_dir dir;
  goldylox::background_pool pool(1);
  const auto build = [&] {
    return goldylox::typed_cache<std::uint64_t, std::string>::builder()
        .hot_tier_max_entries(16)
        .warm_tier_max_entries(48)
        .cold_tier_storage_path(dir.path())
        .cold_tier_segment_bytes(64 << 10)
        .cold_tier_max_bytes(16 << 20)
        .cold_tier_durability(goldylox::cold_durability::none)
        .enable_telemetry(true)
        .background_pool(pool)
        .build();
  };
  const auto value = [](std::uint64_t k, int version) {
    return std::to_string(k) + ":" + std::to_string(version);
  };
  for (int pass = 0; pass < 2; ++pass) {
    SCOPED_TRACE(pass);
    auto cache = build();
    ASSERT_TRUE(cache.ok()) << cache.status();
    for (std::uint64_t k = 0; k < 400; ++k) ASSERT_TRUE(cache->put(k, value(k, pass)).ok());
    // pass 0: the pool is held back, so the moves are still queued at close; pass 1: it runs
    // them while the reads go on and the cache closes.
    auto blocker = pass == 0 ? std::make_unique<pool_blocker>(pool) : nullptr;
    for (std::uint64_t k = 0; k < 400; k += 3) ASSERT_EQ(cache->get(k), value(k, pass));
    EXPECT_GT(cache->stats().cold_hits, 0u);
    if (pass == 0) {
      EXPECT_GT(cache->stats().pending_moves, 0u);
    }
    ASSERT_TRUE(cache->close().ok());
    blocker.reset();
    auto reopened = build();
    ASSERT_TRUE(reopened.ok()) << reopened.status();
    for (std::uint64_t k = 0; k < 400; ++k) ASSERT_EQ(reopened->get(k), value(k, pass)) << k;
    ASSERT_TRUE(reopened->close().ok());
  }
}

}  // namespace
