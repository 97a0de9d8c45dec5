// The removal listener (builder removal_listener; goldylox/removal.hpp) through both facades and
// every memory layout: each entry that leaves the cache is heard once, with its key, the value
// that left and why, before the call that removed it returns and with no lock held (the
// listener calls back into the cache); moves between tiers are not heard; a throwing listener is
// counted and the cache keeps serving; bad settings are refused. The concurrent accounting is in
// engine/engine_stress_test.cpp (ThreadSanitizer).
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include <goldylox/cache.hpp>
#include <goldylox/removal.hpp>
#include <goldylox/typed_cache.hpp>

#include "test_support.hpp"

namespace {

using namespace std::chrono_literals;
using goldylox::removal_cause;
using goldylox_test::kv;
using goldylox_test::manual_ticker;

// What a listener heard, in order.
template <class K, class V>
struct heard {
  struct event {
    K key;
    V value;
    removal_cause cause;
  };
  std::mutex mu;
  std::vector<event> events;

  auto listener() {
    return [this](const K& k, const V& v, removal_cause c) {
      const std::lock_guard lock(mu);
      events.push_back({k, v, c});
    };
  }
  std::vector<event> take() {
    const std::lock_guard lock(mu);
    return std::exchange(events, {});
  }
};

// The memory layouts a listener must work with: the hot table alone, one table governed by the
// warm policy (the default), and a CLOCK hot table over a separate warm tier.
enum class layout { hot_only, one_table, two_tables };
constexpr layout all_layouts[] = {layout::hot_only, layout::one_table, layout::two_tables};

template <class Builder>
Builder& shape(Builder& b, layout l, std::size_t n) {
  switch (l) {
    case layout::hot_only:
      b.hot_tier_max_entries(n).warm_tier_max_entries(0);
      break;
    case layout::one_table:
      b.max_entries(n);
      break;
    case layout::two_tables:
      b.max_entries(n).memory_layout(goldylox::memory_layout::two_tables);
      break;
  }
  return b.enable_background_workers(false);
}

template <class T>
class Listener : public ::testing::Test {};
using layouts = ::testing::Types<kv<std::uint64_t, std::uint64_t>, kv<std::string, std::string>,
                                 kv<std::uint64_t, std::string>, kv<std::string, std::uint64_t>>;
TYPED_TEST_SUITE(Listener, layouts);

// A cache of layout l and capacity n listening into h, holding entries 0 .. filled - 1 (whose
// puts remove nothing, so h has heard nothing yet).
template <class T>
auto make(heard<typename T::key, typename T::value>& h, layout l, std::size_t n = 1000,
          int filled = 0) {
  using cache_type = goldylox::typed_cache<typename T::key, typename T::value>;
  auto b = cache_type::builder();
  shape(b, l, n).removal_listener(h.listener());
  auto made = b.build();
  EXPECT_TRUE(made.ok()) << made.status();
  for (int i = 0; i < filled; ++i) EXPECT_TRUE(made->put(T::k(i), T::v(i)).ok());
  EXPECT_TRUE(h.take().empty());  // inserts remove nothing
  return std::move(made).value();
}

TYPED_TEST(Listener, RemoveIsHeardWithTheValueBeforeItReturns) {
  using T = TypeParam;
  for (const layout l : all_layouts) {
    heard<typename T::key, typename T::value> h;
    auto c = make<T>(h, l, 1000, 10);
    ASSERT_TRUE(*c.remove(T::k(3)));
    auto got = h.take();
    ASSERT_EQ(got.size(), 1U);
    EXPECT_EQ(got[0].key, T::k(3));
    EXPECT_EQ(got[0].value, T::v(3));
    EXPECT_EQ(got[0].cause, removal_cause::erased);
    EXPECT_FALSE(*c.remove(T::k(3)));  // absent: nothing left, nothing heard
    EXPECT_TRUE(h.take().empty());
    ASSERT_EQ(*c.remove_all({T::k(4), T::k(5), T::k(99)}), 2U);
    got = h.take();
    ASSERT_EQ(got.size(), 2U);
    EXPECT_EQ(got[0].cause, removal_cause::erased);
    EXPECT_EQ(got[1].cause, removal_cause::erased);
  }
}

TYPED_TEST(Listener, OverwritesAreHeardAsReplacedWithTheOldValue) {
  using T = TypeParam;
  for (const layout l : all_layouts) {
    heard<typename T::key, typename T::value> h;
    auto c = make<T>(h, l);
    ASSERT_TRUE(c.put(T::k(1), T::v(1)).ok());
    ASSERT_TRUE(c.put(T::k(1), T::v(2)).ok());
    auto got = h.take();
    ASSERT_EQ(got.size(), 1U) << static_cast<int>(l);
    EXPECT_EQ(got[0].key, T::k(1));
    EXPECT_EQ(got[0].value, T::v(1));
    EXPECT_EQ(got[0].cause, removal_cause::replaced);
    // Every write that replaces a value: replace, compare_and_swap; put_if_absent replaces none.
    ASSERT_TRUE(c.replace(T::k(1), T::v(3)).ok());
    ASSERT_TRUE(*c.compare_and_swap(T::k(1), T::v(3), T::v(4)));
    ASSERT_TRUE(c.put_if_absent(T::k(1), T::v(5)).ok());
    got = h.take();
    ASSERT_EQ(got.size(), 2U);
    EXPECT_EQ(got[0].value, T::v(2));
    EXPECT_EQ(got[1].value, T::v(3));
    EXPECT_EQ(got[1].cause, removal_cause::replaced);
    EXPECT_EQ(*c.get(T::k(1)), T::v(4));
  }
}

TYPED_TEST(Listener, ClearIsHeardForEveryEntry) {
  using T = TypeParam;
  for (const layout l : all_layouts) {
    heard<typename T::key, typename T::value> h;
    auto c = make<T>(h, l, 1000, 50);
    for (int r = 0; r < 3; ++r) {
      for (int i = 0; i < 50; ++i) (void)c.get(T::k(i));  // moves entries between tiers
    }
    ASSERT_TRUE(c.clear().ok());
    std::set<typename T::key> keys;
    for (const auto& e : h.take()) {
      EXPECT_EQ(e.cause, removal_cause::erased);
      keys.insert(e.key);
    }
    EXPECT_EQ(keys.size(), 50U) << static_cast<int>(l);
    EXPECT_EQ(c.size(), 0U);
  }
}

// Past capacity every entry that leaves is heard as evicted, exactly once, with its own value:
// what was put is what the cache holds plus what the listener heard.
TYPED_TEST(Listener, EvictionsAccountForEveryEntryThatLeft) {
  using T = TypeParam;
  for (const layout l : all_layouts) {
    heard<typename T::key, typename T::value> h;
    auto c = make<T>(h, l, 200);
    constexpr int n = 2000;
    for (int i = 0; i < n; ++i) {
      ASSERT_TRUE(c.put(T::k(i), T::v(i)).ok());
      if (i % 3 == 0) (void)c.get(T::k(i / 2));  // reads move entries up and down
    }
    std::set<typename T::key> left;
    for (const auto& e : h.take()) {
      EXPECT_EQ(e.cause, removal_cause::evicted);
      EXPECT_TRUE(left.insert(e.key).second) << "heard twice";
      EXPECT_FALSE(c.contains(e.key)) << "heard, yet still held";
    }
    std::size_t held = 0;
    for (int i = 0; i < n; ++i) {
      if (c.contains(T::k(i))) {
        ++held;
      } else {
        EXPECT_TRUE(left.contains(T::k(i)))
            << "left unheard: " << i << " layout " << static_cast<int>(l);
      }
    }
    EXPECT_EQ(held + left.size(), static_cast<std::size_t>(n));
    EXPECT_EQ(left.size(), c.stats().evictions);
  }
}

// The values the listener hears are the evicted entries' own.
TYPED_TEST(Listener, AnEvictionCarriesItsValue) {
  using T = TypeParam;
  heard<typename T::key, typename T::value> h;
  auto c = make<T>(h, layout::hot_only, 100);
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(c.put(T::k(i), T::v(i)).ok());
  const auto got = h.take();
  ASSERT_FALSE(got.empty());
  for (const auto& e : got) {
    bool matched = false;
    for (int i = 0; i < 1000 && !matched; ++i) matched = e.key == T::k(i) && e.value == T::v(i);
    EXPECT_TRUE(matched);
  }
}

// Within capacity nothing leaves, however entries move between the hot and warm tiers.
TYPED_TEST(Listener, MovesBetweenTiersAreNotRemovals) {
  using T = TypeParam;
  heard<typename T::key, typename T::value> h;
  using cache_type = goldylox::typed_cache<typename T::key, typename T::value>;
  auto made = cache_type::builder()
                  .hot_tier_max_entries(20)
                  .warm_tier_max_entries(1000)
                  .memory_layout(goldylox::memory_layout::two_tables)
                  .enable_background_workers(false)
                  .removal_listener(h.listener())
                  .build();
  ASSERT_TRUE(made.ok()) << made.status();
  auto& c = *made;
  for (int i = 0; i < 500; ++i) ASSERT_TRUE(c.put(T::k(i), T::v(i)).ok());
  for (int r = 0; r < 4; ++r) {
    for (int i = 0; i < 500; i += 1 + r) ASSERT_EQ(*c.get(T::k(i)), T::v(i));
  }
  const goldylox::cache_stats s = c.stats();
  EXPECT_GT(s.promotions, 0U);
  EXPECT_GT(s.demotions, 0U);
  EXPECT_TRUE(h.take().empty());
  EXPECT_EQ(c.size(), 500U);
}

// Expired entries are heard as expired, whether a read finds them, a write does, or the timer
// wheels remove them with nobody asking.
TYPED_TEST(Listener, ExpiryIsHeardOnReadWriteAndSweep) {
  using T = TypeParam;
  for (const layout l : {layout::hot_only, layout::one_table}) {
    heard<typename T::key, typename T::value> h;
    manual_ticker clock;
    using cache_type = goldylox::typed_cache<typename T::key, typename T::value>;
    auto b = cache_type::builder();
    shape(b, l, 1000).expire_after_write(1s).ticker(clock).removal_listener(h.listener());
    auto made = b.build();
    ASSERT_TRUE(made.ok()) << made.status();
    auto& c = *made;
    for (int i = 0; i < 30; ++i) ASSERT_TRUE(c.put(T::k(i), T::v(i)).ok());
    clock.advance(2s);
    EXPECT_FALSE(c.get(T::k(0)).has_value());  // a read finds it
    auto got = h.take();
    ASSERT_EQ(got.size(), 1U);
    EXPECT_EQ(got[0].key, T::k(0));
    EXPECT_EQ(got[0].value, T::v(0));
    EXPECT_EQ(got[0].cause, removal_cause::expired);
    // A write finds its key expired (heard as expired, not replaced); without a pool, a write
    // that finds the timer wheels due also sweeps them: everything else.
    ASSERT_TRUE(c.put(T::k(1), T::v(100)).ok());
    got = h.take();
    ASSERT_EQ(got.size(), 29U);
    bool heard_one = false;
    for (const auto& e : got) {
      EXPECT_EQ(e.cause, removal_cause::expired);
      if (e.key == T::k(1)) heard_one = e.value == T::v(1);
    }
    EXPECT_TRUE(heard_one);
    c.run_pending_tasks();
    EXPECT_TRUE(h.take().empty());
    clock.advance(2s);
    c.run_pending_tasks();  // the timer wheels with nobody reading or writing
    got = h.take();
    ASSERT_EQ(got.size(), 1U);
    EXPECT_EQ(got[0].value, T::v(100));
    EXPECT_EQ(got[0].cause, removal_cause::expired);
    EXPECT_EQ(c.size(), 0U);
    EXPECT_EQ(c.stats().expirations, 31U);
  }
}

// The listener runs with no lock held: it may read and write the cache it listens to, and the
// removals its own writes cause are heard too.
TYPED_TEST(Listener, AListenerMayCallBackIntoTheCache) {
  using T = TypeParam;
  for (const layout l : all_layouts) {
    using cache_type = goldylox::typed_cache<typename T::key, typename T::value>;
    auto self = std::make_shared<cache_type*>(nullptr);
    auto seen = std::make_shared<std::vector<std::tuple<typename T::key, removal_cause, bool>>>();
    auto b = cache_type::builder();
    shape(b, l, 100).removal_listener(
        [self, seen](const typename T::key& k, const typename T::value&, removal_cause why) {
          cache_type& c = **self;
          // Still present? (Not for a removal; a key is only ever re-put below by erased.)
          seen->emplace_back(k, why, c.contains(k));
          if (why == removal_cause::erased) {
            ASSERT_TRUE(c.put(k, T::v(7)).ok());  // put it back
            ASSERT_TRUE(c.put(k, T::v(8)).ok());  // replaces: heard after this call
          }
        });
    auto made = b.build();
    ASSERT_TRUE(made.ok()) << made.status();
    *self = &*made;
    ASSERT_TRUE(made->put(T::k(1), T::v(1)).ok());
    ASSERT_TRUE(*made->remove(T::k(1)));
    ASSERT_EQ(seen->size(), 2U);
    EXPECT_EQ(std::get<1>((*seen)[0]), removal_cause::erased);
    EXPECT_FALSE(std::get<2>((*seen)[0]));
    EXPECT_EQ(std::get<1>((*seen)[1]), removal_cause::replaced);
    EXPECT_EQ(*made->get(T::k(1)), T::v(8));
  }
}

TYPED_TEST(Listener, AThrowingListenerIsCountedAndTheCacheKeepsServing) {
  using T = TypeParam;
  for (const layout l : all_layouts) {
    using cache_type = goldylox::typed_cache<typename T::key, typename T::value>;
    auto calls = std::make_shared<std::atomic<int>>(0);
    auto b = cache_type::builder();
    shape(b, l, 100).removal_listener(
        [calls](const typename T::key&, const typename T::value&, removal_cause) {
          calls->fetch_add(1);
          throw std::runtime_error("listener failed");
        });
    auto made = b.build();
    ASSERT_TRUE(made.ok()) << made.status();
    auto& c = *made;
    for (int i = 0; i < 1000; ++i) ASSERT_TRUE(c.put(T::k(i), T::v(i)).ok());
    ASSERT_TRUE(c.put(T::k(999), T::v(5)).ok());
    EXPECT_EQ(*c.get(T::k(999)), T::v(5));
    const goldylox::cache_stats s = c.stats();
    EXPECT_GT(calls->load(), 800);  // every notice is delivered, whatever the ones before did
    EXPECT_EQ(s.removal_listener_failures, static_cast<std::uint64_t>(calls->load()));
    EXPECT_EQ(s.removal_notices_dropped, 0U);
    EXPECT_EQ(c.size() + s.evictions, 1000U);
  }
}

TEST(ListenerCache, AnyValueCacheHearsATypedView) {
  struct event {
    std::string key;
    std::string type;
    std::string as_string;
    bool is_int;
    removal_cause cause;
  };
  auto got = std::make_shared<std::vector<event>>();
  auto made = goldylox::cache<std::string>::builder()
                  .max_entries(100)
                  .removal_listener([got](const std::string& k, const goldylox::value_view& v,
                                          removal_cause why) {
                    const std::string* s = v.get_if<std::string>();
                    got->push_back({k, std::string(v.type_name()), s != nullptr ? *s : "",
                                    v.holds<int>(), why});
                  })
                  .build();
  ASSERT_TRUE(made.ok()) << made.status();
  auto& c = *made;
  ASSERT_TRUE(c.put("a", std::string("first")).ok());
  ASSERT_TRUE(c.put("a", 42).ok());  // another type replaces it
  ASSERT_TRUE(*c.remove("a"));
  ASSERT_EQ(got->size(), 2U);
  EXPECT_EQ((*got)[0].as_string, "first");
  EXPECT_FALSE((*got)[0].is_int);
  EXPECT_EQ((*got)[0].cause, removal_cause::replaced);
  EXPECT_TRUE((*got)[1].is_int);
  EXPECT_EQ((*got)[1].as_string, "");
  EXPECT_NE((*got)[1].type, (*got)[0].type);
  EXPECT_EQ((*got)[1].cause, removal_cause::erased);
}

TEST(ListenerCache, CausesHaveNamesAndEvictionIsTold) {
  EXPECT_EQ(goldylox::to_string(removal_cause::erased), "erased");
  EXPECT_EQ(goldylox::to_string(removal_cause::replaced), "replaced");
  EXPECT_EQ(goldylox::to_string(removal_cause::expired), "expired");
  EXPECT_EQ(goldylox::to_string(removal_cause::evicted), "evicted");
  EXPECT_FALSE(goldylox::was_evicted(removal_cause::erased));
  EXPECT_FALSE(goldylox::was_evicted(removal_cause::replaced));
  EXPECT_TRUE(goldylox::was_evicted(removal_cause::expired));
  EXPECT_TRUE(goldylox::was_evicted(removal_cause::evicted));
}

TEST(ListenerCache, BadListenersAreRefused) {
  using cache_type = goldylox::typed_cache<std::uint64_t, std::uint64_t>;
  std::function<void(const std::uint64_t&, const std::uint64_t&, removal_cause)> empty;
  auto made = cache_type::builder().max_entries(100).removal_listener(empty).build();
  ASSERT_FALSE(made.ok());
  EXPECT_EQ(made.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(made.status().message().find("empty"), std::string::npos);

  const std::string dir = testing::TempDir() + "/goldylox_listener_cold";
  auto cold =
      cache_type::builder()
          .max_entries(100)
          .cold_tier_storage_path(dir)
          .removal_listener([](const std::uint64_t&, const std::uint64_t&, removal_cause) {})
          .build();
  ASSERT_FALSE(cold.ok());
  EXPECT_EQ(cold.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(cold.status().message().find("cold tier"), std::string::npos);
}

// A cache without a listener is unchanged by this feature: nothing is counted.
TEST(ListenerCache, NoListenerNoCounts) {
  auto made =
      goldylox::typed_cache<std::uint64_t, std::uint64_t>::builder().max_entries(10).build();
  ASSERT_TRUE(made.ok());
  for (std::uint64_t i = 0; i < 100; ++i) ASSERT_TRUE(made->put(i, i).ok());
  EXPECT_EQ(made->stats().removal_listener_failures, 0U);
  EXPECT_EQ(made->stats().removal_notices_dropped, 0U);
}

}  // namespace
