// Eviction policies: the contract, hand-checked sequences, and each policy against a brute-force
// model of its definition on random traces.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <list>
#include <map>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <sim/replay.hpp>

#include <goldylox/policies.hpp>

namespace {

namespace detail = goldylox::detail;
namespace policy = goldylox::policy;
using slot = std::uint32_t;

// A policy missing victim(): not an eviction_policy.
struct no_victim {
  using slot = std::uint32_t;
  static constexpr std::string_view name = "broken";
  explicit no_victim(std::size_t) {}
  void on_hit(slot) {}
  void on_miss(std::uint64_t) {}
  void on_insert(slot, std::uint64_t) {}
  void on_erase(slot) {}
  std::size_t size() const { return 0; }
  std::size_t capacity() const { return 0; }
};
static_assert(!goldylox::eviction_policy<no_victim>);
static_assert(goldylox::eviction_policy<policy::lru>);
static_assert(goldylox::eviction_policy<policy::arc>);

template <class P>
void expect_rejects_zero_capacity() {
  try {
    P p(0);
    ADD_FAILURE() << P::name << " accepted capacity 0";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(P::name), std::string::npos) << e.what();
  }
}

TEST(Policies, ZeroCapacityIsAnInvalidArgumentNamingThePolicy) {
  expect_rejects_zero_capacity<policy::lru>();
  expect_rejects_zero_capacity<policy::fifo>();
  expect_rejects_zero_capacity<policy::clock>();
  expect_rejects_zero_capacity<policy::lfu>();
  expect_rejects_zero_capacity<policy::arc>();
}

// Fills slots 0..n-1 as a miss each, in order.
template <class P>
void fill(P& p, slot n) {
  for (slot s = 0; s < n; ++s) {
    p.on_miss(100 + s);
    p.on_insert(s, 100 + s);
  }
}

TEST(Policies, LruEvictsTheLeastRecentlyUsed) {
  policy::lru p(3);
  fill(p, 3);
  p.on_hit(0);
  EXPECT_EQ(p.victim(), 1u);
  EXPECT_EQ(p.victim(), 2u);
  EXPECT_EQ(p.victim(), 0u);
  EXPECT_EQ(p.size(), 0u);
}

TEST(Policies, FifoIgnoresHits) {
  policy::fifo p(3);
  fill(p, 3);
  p.on_hit(0);
  EXPECT_EQ(p.victim(), 0u);
  EXPECT_EQ(p.victim(), 1u);
}

TEST(Policies, ClockGivesReferencedEntriesASecondChance) {
  policy::clock p(3);
  fill(p, 3);
  p.on_hit(0);
  p.on_hit(1);
  EXPECT_EQ(p.victim(), 2u);  // 0 and 1 lose their bits and go round again
  p.on_miss(200);
  p.on_insert(2, 200);
  EXPECT_EQ(p.victim(), 0u);  // bits cleared: back to insertion order
}

TEST(Policies, LfuEvictsTheFewestHitsAndBreaksTiesByAge) {
  policy::lfu p(4);
  fill(p, 4);
  p.on_hit(0);
  p.on_hit(0);
  p.on_hit(2);
  p.on_hit(1);
  // Counts: 0 -> 3, 1 -> 2, 2 -> 2, 3 -> 1. Among 1 and 2, slot 2 reached count 2 first.
  EXPECT_EQ(p.victim(), 3u);
  EXPECT_EQ(p.victim(), 2u);
  EXPECT_EQ(p.victim(), 1u);
  // An evicted entry comes back with a fresh count.
  p.on_miss(500);
  p.on_insert(1, 500);
  EXPECT_EQ(p.victim(), 1u);
  EXPECT_EQ(p.victim(), 0u);
}

TEST(Policies, ErasedEntriesAreNeverVictims) {
  policy::lru lru(3);
  policy::lfu lfu(3);
  policy::arc arc(3);
  fill(lru, 3);
  fill(lfu, 3);
  fill(arc, 3);
  lru.on_erase(0);
  lfu.on_erase(0);
  arc.on_erase(0);
  EXPECT_EQ(lru.victim(), 1u);
  EXPECT_EQ(lfu.victim(), 1u);
  EXPECT_EQ(arc.victim(), 1u);
  EXPECT_EQ(lru.size(), 1u);
  EXPECT_EQ(lfu.size(), 1u);
  EXPECT_EQ(arc.size(), 1u);
}

// ARC's point: a scan of one-time keys cannot flush entries used twice, and a ghost hit in B1
// grows T1's target.
TEST(Policies, ArcSurvivesAScanAndAdaptsOnGhostHits) {
  constexpr std::size_t c = 8;
  std::vector<detail::trace_request> trace;
  for (int round = 0; round < 3; ++round) {
    for (std::uint64_t k = 1; k <= 4; ++k) trace.push_back({k, -1});  // hot set, used repeatedly
  }
  for (std::uint64_t k = 1000; k < 1100; ++k) trace.push_back({k, -1});  // a long scan
  for (std::uint64_t k = 1; k <= 4; ++k) trace.push_back({k, -1});
  const detail::replay_result arc = detail::replay<policy::arc>(trace, c);
  const detail::replay_result lru = detail::replay<policy::lru>(trace, c);
  EXPECT_EQ(arc.misses, 4u + 100u);  // the hot set still hits after the scan
  EXPECT_EQ(lru.misses, 4u + 100u + 4u);

  policy::arc p(2);
  fill(p, 2);   // T1 = {101, 100}
  p.on_hit(0);  // 100 -> T2
  p.on_miss(102);
  EXPECT_EQ(p.victim(), 1u);  // T1's oldest, 101, goes to B1
  p.on_insert(1, 102);
  EXPECT_EQ(p.target_t1(), 0.0);
  p.on_miss(101);  // a B1 ghost hit: T1 should have been larger
  EXPECT_EQ(p.target_t1(), 1.0);
  EXPECT_EQ(p.victim(), 0u);  // |T1| = p now, so REPLACE takes T2's oldest, 100
  p.on_insert(0, 101);        // a ghost hit enters T2
  p.on_miss(100);             // a B2 ghost hit: shrink T1's target again
  EXPECT_EQ(p.target_t1(), 0.0);
}

// ---- brute-force models of each definition ---------------------------------------------------

struct model_entry {
  std::uint64_t id;
  std::uint64_t last_use;     // LRU
  std::uint64_t inserted;     // FIFO
  std::uint64_t count;        // LFU: hits + 1 since insertion
  std::uint64_t count_since;  // LFU tie-break: when the current count was reached
};

// Misses of a cache of `c` objects that evicts the entry minimising `key`.
template <class Key>
std::uint64_t model_misses(const std::vector<std::uint64_t>& ids, std::size_t c, Key key) {
  std::vector<model_entry> cache;
  std::uint64_t misses = 0, t = 0;
  for (const std::uint64_t id : ids) {
    ++t;
    auto it = std::find_if(cache.begin(), cache.end(), [&](auto& e) { return e.id == id; });
    if (it != cache.end()) {
      it->last_use = t;
      ++it->count;
      it->count_since = t;
      continue;
    }
    ++misses;
    if (cache.size() == c) {
      cache.erase(std::min_element(cache.begin(), cache.end(),
                                   [&](auto& a, auto& b) { return key(a) < key(b); }));
    }
    cache.push_back({id, t, t, 1, t});
  }
  return misses;
}

std::uint64_t model_clock(const std::vector<std::uint64_t>& ids, std::size_t c) {
  std::list<std::pair<std::uint64_t, bool>> q;  // front: newest
  std::uint64_t misses = 0;
  for (const std::uint64_t id : ids) {
    auto it = std::find_if(q.begin(), q.end(), [&](auto& e) { return e.first == id; });
    if (it != q.end()) {
      it->second = true;
      continue;
    }
    ++misses;
    if (q.size() == c) {
      while (q.back().second) {
        auto e = q.back();
        q.pop_back();
        q.push_front({e.first, false});
      }
      q.pop_back();
    }
    q.push_front({id, false});
  }
  return misses;
}

std::uint64_t model_belady(const std::vector<std::uint64_t>& ids, std::size_t c) {
  std::vector<std::uint64_t> cache;
  std::uint64_t misses = 0;
  const auto next_use = [&](std::size_t from, std::uint64_t id) {
    for (std::size_t j = from; j < ids.size(); ++j) {
      if (ids[j] == id) return j;
    }
    return std::numeric_limits<std::size_t>::max();
  };
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (std::find(cache.begin(), cache.end(), ids[i]) != cache.end()) continue;
    ++misses;
    if (cache.size() == c) {
      std::size_t worst = 0;
      for (std::size_t k = 1; k < cache.size(); ++k) {
        if (next_use(i + 1, cache[k]) > next_use(i + 1, cache[worst])) worst = k;
      }
      cache.erase(cache.begin() + static_cast<std::ptrdiff_t>(worst));
    }
    cache.push_back(ids[i]);
  }
  return misses;
}

std::vector<detail::trace_request> as_trace(const std::vector<std::uint64_t>& ids) {
  std::vector<detail::trace_request> t;
  for (const std::uint64_t id : ids) t.push_back({id, -1});
  detail::fill_next_access(t);
  return t;
}

TEST(Policies, EachMatchesABruteForceModelOfItsDefinition) {
  std::mt19937_64 rng(2024);
  for (int round = 0; round < 60; ++round) {
    const std::size_t objects = 5 + rng() % 40;
    const std::size_t c = 1 + rng() % 12;
    std::vector<std::uint64_t> ids(300);
    // Skewed: squaring a uniform draw makes small ids popular, so counts and recency both matter.
    for (auto& id : ids) {
      const double u = std::uniform_real_distribution<double>(0, 1)(rng);
      id = 1 + static_cast<std::uint64_t>(u * u * static_cast<double>(objects));
    }
    const auto trace = as_trace(ids);
    SCOPED_TRACE("round " + std::to_string(round) + ", capacity " + std::to_string(c));
    EXPECT_EQ(detail::replay<policy::lru>(trace, c).misses,
              model_misses(ids, c, [](const model_entry& e) { return e.last_use; }));
    EXPECT_EQ(detail::replay<policy::fifo>(trace, c).misses,
              model_misses(ids, c, [](const model_entry& e) { return e.inserted; }));
    EXPECT_EQ(detail::replay<policy::lfu>(trace, c).misses,
              model_misses(ids, c,
                           [](const model_entry& e) { return std::pair(e.count, e.count_since); }));
    EXPECT_EQ(detail::replay<policy::clock>(trace, c).misses, model_clock(ids, c));
    EXPECT_EQ(detail::replay_belady(trace, c).misses, model_belady(ids, c));
    // No online policy beats the optimum.
    EXPECT_GE(detail::replay<policy::arc>(trace, c).misses, model_belady(ids, c));
  }
}

}  // namespace
