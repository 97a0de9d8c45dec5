// The warm tier on its own: bounds, the eviction sink, the policy's decisions, bad input.
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "goldylox/detail/warm/policy/any_policy.hpp"
#include "goldylox/detail/warm/tier.hpp"
#include "goldylox/policies.hpp"

namespace {

namespace gl = goldylox;
namespace gd = goldylox::detail;

template <class P = gl::policy::lru>
using string_tier = gd::warm_tier<std::string, std::string, P>;

TEST(WarmTier, StoresReplacesAndErases) {
  string_tier<> w({.max_entries = 100, .shards = 4});
  ASSERT_TRUE(w.put("a", "1").ok());
  ASSERT_TRUE(w.put("b", "2").ok());
  EXPECT_EQ(w.get(std::string("a")), "1");
  ASSERT_TRUE(w.put("a", "3").ok());
  EXPECT_EQ(w.get(std::string("a")), "3");
  EXPECT_EQ(w.size(), 2u);
  EXPECT_TRUE(w.erase(std::string("a")));
  EXPECT_FALSE(w.get(std::string("a")).has_value());
  EXPECT_FALSE(w.contains(std::string("a")));
  EXPECT_TRUE(w.contains(std::string("b")));
  EXPECT_TRUE(w.erase(std::string("b")));
  EXPECT_FALSE(w.erase(std::string("b")));
  EXPECT_EQ(w.size(), 0u);
  EXPECT_EQ(w.stats().evictions, 0u);
}

// clear() drops every entry without evicting it (the sink hears nothing) and frees every slot;
// the index keeps working after its tables were replaced, and after it grew well past its start.
TEST(WarmTier, ClearFreesEverythingAndTheTierKeepsWorking) {
  int sunk = 0;
  gd::warm_tier<int, int, gl::policy::lru> w({.max_entries = 500, .shards = 1}, {},
                                             [&](const int&, const int&) { ++sunk; });
  for (int k = 0; k < 500; ++k) ASSERT_TRUE(w.put(k, k).ok());
  w.clear();
  EXPECT_EQ(w.size(), 0u);
  EXPECT_EQ(sunk, 0);
  for (int k = 0; k < 500; ++k) ASSERT_FALSE(w.contains(k)) << k;
  for (int k = 1000; k < 1500; ++k) ASSERT_TRUE(w.put(k, -k).ok());
  EXPECT_EQ(sunk, 0);  // every slot was free again
  EXPECT_EQ(w.size(), 500u);
  for (int k = 1000; k < 1500; k += 7) EXPECT_EQ(w.get(k), -k);
  EXPECT_EQ(w.stats().evictions, 0u);
}

// Every entry that leaves by eviction reaches the sink once, with its latest value; the bound
// holds throughout.
TEST(WarmTier, EvictionsGoToTheSinkExactlyOnce) {
  std::map<std::string, std::string> evicted;
  int duplicates = 0;
  string_tier<gl::policy::adaptive> w({.max_entries = 64, .shards = 2}, {},
                                      [&](const std::string& k, const std::string& v) {
                                        duplicates += evicted.contains(k) ? 1 : 0;
                                        evicted[k] = v;
                                      });
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(w.put("k" + std::to_string(i), "v" + std::to_string(i)).ok());
    ASSERT_LE(w.size(), w.capacity());
  }
  EXPECT_EQ(w.size() + evicted.size(), 1000u);
  EXPECT_EQ(duplicates, 0);
  EXPECT_EQ(w.stats().evictions, evicted.size());
  for (const auto& [k, v] : evicted) {
    EXPECT_EQ("v" + k.substr(1), v);
    EXPECT_FALSE(w.get(k).has_value()) << k << " is both evicted and resident";
  }
}

// Hits recorded in the read buffer reach the policy before it picks a victim.
TEST(WarmTier, BufferedHitsInformTheNextEviction) {
  std::vector<std::string> evicted;
  string_tier<gl::policy::lru> w(
      {.max_entries = 3, .shards = 1}, {},
      [&](const std::string& k, const std::string&) { evicted.push_back(k); });
  ASSERT_TRUE(w.put("a", "").ok());
  ASSERT_TRUE(w.put("b", "").ok());
  ASSERT_TRUE(w.put("c", "").ok());
  EXPECT_TRUE(w.get(std::string("a")).has_value());  // a is now the most recently used
  ASSERT_TRUE(w.put("d", "").ok());
  ASSERT_EQ(evicted.size(), 1u);
  EXPECT_EQ(evicted[0], "b");
}

// LRU that counts the hits it hears, declaring coalesces_hits or not.
template <bool Coalesce>
struct counting_lru : gl::policy::lru {
  static constexpr bool coalesces_hits = Coalesce;
  static inline int hits = 0;
  explicit counting_lru(std::size_t capacity) : gl::policy::lru(capacity) {}
  void on_hit(slot s) {
    ++hits;
    gl::policy::lru::on_hit(s);
  }
};

// A policy that coalesces hits hears of one per entry between drains; any other hears of each
// (the reader that wraps the ring drains it, so none is dropped single-threaded).
TEST(WarmTier, RepeatedHitsReachACoalescingPolicyOncePerDrain) {
  const auto reads_then_write = [](auto& w) {
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(w.put(i, i).ok());
    for (int i = 0; i < 200; ++i) ASSERT_TRUE(w.get(1).has_value());
    ASSERT_TRUE(w.put(3, 3).ok());  // drains
    for (int i = 0; i < 200; ++i) ASSERT_TRUE(w.get(1).has_value());
    ASSERT_TRUE(w.put(4, 4).ok());
  };
  gd::warm_tier<int, int, counting_lru<true>> coalescing({.max_entries = 8, .shards = 1});
  reads_then_write(coalescing);
  EXPECT_EQ(counting_lru<true>::hits, 2);  // one per drain
  gd::warm_tier<int, int, counting_lru<false>> every({.max_entries = 8, .shards = 1});
  reads_then_write(every);
  EXPECT_EQ(counting_lru<false>::hits, 400);
  EXPECT_EQ(every.stats().dropped_reads, 0u);
  // Which policies declare it, also through the run-time wrapper the cache uses.
  EXPECT_TRUE(gd::coalesces_hits(gl::policy::sieve(8)));
  EXPECT_FALSE(gd::coalesces_hits(gl::policy::lfu(8)));
  EXPECT_TRUE(gd::any_policy(gl::policy::arc(8)).coalesces_hits());
  EXPECT_FALSE(gd::any_policy(gl::policy::w_tinylfu(8)).coalesces_hits());
}

TEST(WarmTier, WeightBoundAndOversizedValues) {
  const auto weigh = [](const std::string& k, const std::string& v) { return k.size() + v.size(); };
  std::size_t evicted = 0;
  string_tier<> w({.max_entries = 1000, .max_weight = 100, .shards = 1}, weigh,
                  [&](const std::string&, const std::string&) { ++evicted; });
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(w.put("k" + std::to_string(i), std::string(9, 'x')).ok());
    ASSERT_LE(w.stats().weight, 100u);
  }
  EXPECT_GT(evicted, 0u);
  // Growing a value in place evicts others, never the entry just written.
  ASSERT_TRUE(w.put("k49", std::string(60, 'y')).ok());
  EXPECT_LE(w.stats().weight, 100u);
  EXPECT_EQ(w.get(std::string("k49")), std::string(60, 'y'));
  // Heavier than the whole budget: refused, and nothing changes.
  const auto before = w.stats();
  const absl::Status s = w.put("k49", std::string(200, 'z'));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("exceeds the per-shard weight budget of 100"), std::string::npos)
      << s.message();
  EXPECT_EQ(w.get(std::string("k49")), std::string(60, 'y'));
  EXPECT_EQ(w.stats().size, before.size);
  EXPECT_EQ(w.stats().weight, before.weight);
}

TEST(WarmTier, RejectsInvalidOptions) {
  EXPECT_THROW(string_tier<>({.max_entries = 0}), std::invalid_argument);
  EXPECT_THROW(string_tier<>({.max_entries = 10, .shards = 3}), std::invalid_argument);
  // Shards chosen automatically keep at least 64 entries each.
  const string_tier<> small({.max_entries = 100});
  EXPECT_EQ(small.shard_count(), 1u);
}

// Each shard's policy comes from the factory, told the shard's capacity and the shard count.
TEST(WarmTier, PoliciesComeFromTheFactory) {
  std::vector<std::pair<std::size_t, std::size_t>> calls;
  gd::warm_tier<int, int, gl::policy::adaptive> w({.max_entries = 1000, .shards = 4}, {}, {},
                                                  [&](std::size_t c, std::size_t shards) {
                                                    calls.emplace_back(c, shards);
                                                    gl::policy::adaptive_options o;
                                                    o.shadow_budget = 4096 / shards;
                                                    return gl::policy::adaptive(c, o);
                                                  });
  ASSERT_EQ(calls.size(), 4u);
  for (const auto& [c, shards] : calls) {
    EXPECT_EQ(c, 250u);
    EXPECT_EQ(shards, 4u);
  }
  for (int i = 0; i < 5000; ++i) ASSERT_TRUE(w.put(i % 1500, i).ok());
  EXPECT_LE(w.size(), 1000u);
}

// A capacity the shard count does not divide is shared out exactly, not rounded up per shard:
// a cache's max_entries(n) promises capacity() == n on any core count.
TEST(WarmTier, CapacityIsMaxEntriesExactly) {
  std::vector<std::size_t> shard_capacities;
  gd::warm_tier<int, int, gl::policy::lru> w({.max_entries = 1'003, .shards = 8}, {}, {},
                                             [&](std::size_t c, std::size_t) {
                                               shard_capacities.push_back(c);
                                               return gl::policy::lru(c);
                                             });
  EXPECT_EQ(w.capacity(), 1'003u);
  EXPECT_EQ(shard_capacities, (std::vector<std::size_t>{126, 126, 126, 125, 125, 125, 125, 125}));
  for (int k = 0; k < 20'000; ++k) {
    ASSERT_TRUE(w.put(k, k).ok());
    ASSERT_LE(w.size(), 1'003u);
  }
  EXPECT_EQ(w.size(), 1'003u);  // every shard filled to its share
  // More shards than entries, asked for explicitly: each shard still holds one.
  const gd::warm_tier<int, int, gl::policy::lru> tiny({.max_entries = 3, .shards = 8});
  EXPECT_EQ(tiny.capacity(), 8u);
}

// A sink runs after the shard lock is released, so it may use the tier.
TEST(WarmTier, TheSinkMayCallBackIntoTheTier) {
  string_tier<>* self = nullptr;
  int reentered = 0;
  string_tier<> w({.max_entries = 2, .shards = 1}, {},
                  [&](const std::string& k, const std::string&) {
                    if (self->get(k).has_value()) ADD_FAILURE() << "evicted key still readable";
                    ++reentered;
                  });
  self = &w;
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(w.put(std::to_string(i), "v").ok());
  EXPECT_EQ(reentered, 8);
}

}  // namespace

namespace {

// A value whose moves throw on demand: the move after `moves_left` more succeed (-1: never).
struct bomb {
  static inline int moves_left = -1;
  int v = 0;
  bomb() = default;
  explicit bomb(int x) : v(x) {}
  bomb(const bomb&) = default;
  bomb& operator=(const bomb&) = default;
  bomb(bomb&& o) : v(o.v) { tick(); }
  bomb& operator=(bomb&& o) {
    tick();
    v = o.v;
    return *this;
  }
  static void tick() {
    if (moves_left == 0) throw std::runtime_error("move");
    if (moves_left > 0) --moves_left;
  }
};

struct disarm {
  ~disarm() { bomb::moves_left = -1; }
};

// A throwing move (building an entry's node) leaves the tier consistent and usable: a failed
// replace keeps the old value, a failed insert leaves no half-entry and loses no slot, and the
// eviction already made for it still reaches the sink.
TEST(WarmTier, ThrowingValuesLeaveTheTierConsistent) {
  disarm guard;
  std::vector<int> sunk;
  gd::warm_tier<int, bomb, gl::policy::lru> w(
      {.max_entries = 2, .shards = 1}, {}, [&](const int& k, const bomb&) { sunk.push_back(k); });
  ASSERT_TRUE(w.put(1, bomb(10)).ok());
  ASSERT_TRUE(w.put(2, bomb(20)).ok());
  bomb::moves_left = 0;
  EXPECT_THROW((void)w.put(1, bomb(11)), std::runtime_error);  // building the replacement
  EXPECT_EQ(w.get(1)->v, 10);                                  // 1 is now the most recent
  EXPECT_TRUE(sunk.empty());
  EXPECT_EQ(w.size(), 2u);
  EXPECT_THROW((void)w.put(3, bomb(30)), std::runtime_error);  // 2 is evicted, then 3 fails
  ASSERT_EQ(sunk, std::vector<int>{2});
  EXPECT_FALSE(w.get(2).has_value());
  EXPECT_FALSE(w.get(3).has_value());
  EXPECT_EQ(w.get(1)->v, 10);
  EXPECT_EQ(w.size(), 1u);
  bomb::moves_left = -1;
  for (int k = 4; k < 20; ++k) ASSERT_TRUE(w.put(k, bomb(k)).ok());  // no slot was lost
  EXPECT_EQ(w.size(), 2u);
  EXPECT_EQ(sunk.size(), 16u);  // 2, then one for each put from 5 on
}

// A value growing in place never evicts itself, and the bound holds even when the policy ranks
// it lowest (LFU: it was not hit while the others were).
TEST(WarmTier, AGrowingValueKeepsTheWeightBoundUnderAnyPolicy) {
  const auto weigh = [](const int&, const int& v) { return static_cast<std::size_t>(v); };
  gd::warm_tier<int, int, gl::policy::lfu> w({.max_entries = 4, .max_weight = 10, .shards = 1},
                                             weigh);
  for (int k = 1; k <= 3; ++k) ASSERT_TRUE(w.put(k, 3).ok());
  for (int i = 0; i < 20; ++i) {
    (void)w.get(2);
    (void)w.get(3);
  }
  ASSERT_TRUE(w.put(1, 8).ok());
  EXPECT_LE(w.stats().weight, 10u);
  EXPECT_EQ(w.get(1), 8);
}

TEST(WarmTier, EveryVictimReachesAThrowingSink) {
  int calls = 0;
  gd::warm_tier<int, int, gl::policy::fifo> w(
      {.max_entries = 10, .max_weight = 10, .shards = 1},
      [](const int&, const int& v) { return static_cast<std::size_t>(v); },
      [&](const int&, const int&) {
        ++calls;
        throw std::runtime_error("sink");
      });
  for (int k = 0; k < 5; ++k) ASSERT_TRUE(w.put(k, 2).ok());
  EXPECT_THROW((void)w.put(99, 6), std::runtime_error);  // evicts three entries of weight 2
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(w.get(99), 6);  // the put itself completed
  EXPECT_THROW((gd::warm_tier<int, int, gl::policy::fifo>(
                   {.max_entries = 10, .max_weight = 3, .shards = 4})),
               std::invalid_argument);
}

}  // namespace

// A node's memory is recycled only once the epoch domain has reclaimed it: a reader holding an
// entry (its visit still running, the epoch pinned) keeps the node intact while the entry is
// evicted and thousands of others come and go. Early reuse would overwrite the held key and
// value with another entry's (and under AddressSanitizer, read a poisoned block).
TEST(WarmTier, ANodeIsNotRecycledWhileAReaderHoldsIt) {
  gd::warm_tier<std::uint64_t, std::uint64_t, gl::policy::lru> w({.max_entries = 4, .shards = 1});
  ASSERT_TRUE(w.put(1, 100).ok());
  bool held = false;
  ASSERT_TRUE(w.visit_entry(
      std::uint64_t{1}, [&](const std::uint64_t& k, const std::uint64_t& v, std::uint32_t) {
        held = true;
        for (std::uint64_t i = 0; i < 10'000; ++i) ASSERT_TRUE(w.put(1000 + i, 1000 + i).ok());
        EXPECT_FALSE(w.contains(std::uint64_t{1}));  // evicted long ago
        EXPECT_EQ(k, 1u);
        EXPECT_EQ(v, 100u);
        for (std::uint64_t i = 10'996; i < 11'000; ++i) {
          EXPECT_TRUE(w.visit(i, [&](const std::uint64_t& live) { EXPECT_NE(&live, &v); }));
        }
      }));
  EXPECT_TRUE(held);
}

// Reclaimed node memory is kept per thread up to a bound, handed out last in, first out, and
// freed when the thread exits (LeakSanitizer, in the asan preset, reports a block that is not).
TEST(WarmTier, TheNodeRecyclerIsBoundedAndFreesItsBlocksAtThreadExit) {
  using recycler = gd::node_recycler<208, 16>;  // a size no tier here uses: this test's own
  std::thread([] {
    EXPECT_EQ(recycler::kept(), 0u);
    std::vector<void*> blocks;
    for (unsigned i = 0; i < 2 * recycler::capacity; ++i) blocks.push_back(recycler::allocate());
    for (void* p : blocks) recycler::deallocate(p);
    EXPECT_EQ(recycler::kept(), recycler::capacity);
    void* p = recycler::allocate();
    EXPECT_EQ(p, blocks[recycler::capacity - 1]);
    EXPECT_EQ(recycler::kept(), recycler::capacity - 1);
    recycler::deallocate(p);
  }).join();
  EXPECT_EQ(recycler::kept(), 0u);  // another thread's blocks are not this one's
}

// Deferred learning (engine/maintenance.hpp): each shard's policy queues what it learns, `due`
// runs once a shard's backlog reaches the mark (never under the shard's lock: it may call back
// in), learn() empties every backlog, and a full queue is learnt inline without any call.
TEST(WarmTier, PoliciesLearnWhenToldAndTheBacklogIsBounded) {
  constexpr std::size_t batch = 128, mark = 32;
  gd::warm_tier<int, int, gd::any_policy> w(
      {.max_entries = 400, .shards = 2}, {}, {}, [](std::size_t c, std::size_t shards) {
        return gd::make_shard_policy<gl::policy::adaptive>(c, shards);
      });
  int dues = 0;
  std::size_t backlog_at_due = 0;
  w.defer_learning(batch, mark, [&]() noexcept {
    ++dues;
    backlog_at_due = std::max(backlog_at_due, w.learning_backlog());  // takes the shard locks
  });
  std::size_t most = 0;
  // Misses over a key space 10x the capacity: at 200 entries a shard samples every key.
  for (int i = 0; i < 3000; ++i) {
    ASSERT_TRUE(w.put((i * 7919) % 4000, i).ok());
    most = std::max(most, w.learning_backlog());
  }
  EXPECT_GT(dues, 0);
  EXPECT_GE(backlog_at_due, mark);
  EXPECT_LE(most, 2 * batch);  // two shards, each at most a queue
  EXPECT_GT(w.learning_backlog(), 0u);
  EXPECT_EQ(w.learn(), 2u);
  EXPECT_EQ(w.learning_backlog(), 0u);
  EXPECT_EQ(w.learn(), 0u);  // nothing left to learn
  EXPECT_LE(w.size(), 400u);

  // A policy that does not learn has nothing to defer.
  gd::warm_tier<int, int, gl::policy::lru> plain({.max_entries = 100, .shards = 1});
  plain.defer_learning(batch, mark, [&]() noexcept { ++dues; });
  const int dues_before = dues;
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(plain.put(i, i).ok());
  EXPECT_EQ(plain.learning_backlog(), 0u);
  EXPECT_EQ(dues, dues_before);
}
