// Expiry through both facades (config.hpp's expire_after_write, expire_after_access,
// enable_expiry; a put's ttl): an expired entry is never returned by any call, leaves memory on
// the first read or write that finds it and through the timer wheels without a read, and bad
// settings are refused. Time is a manual ticker, so no test sleeps except the one that checks the
// default clock. The concurrent cases are in hot/hot_table_stress_test.cpp (ThreadSanitizer).
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include <goldylox/cache.hpp>
#include <goldylox/typed_cache.hpp>

#include "test_support.hpp"

namespace {

using namespace std::chrono_literals;

using goldylox_test::kv;
using goldylox_test::manual_ticker;

template <class T>
class Expiry : public ::testing::Test {};
// The last two: a node with a heap value, and a node whose small value sits in a cell inside it.
using layouts = ::testing::Types<kv<std::uint64_t, std::uint64_t>, kv<std::string, std::string>,
                                 kv<std::uint64_t, std::string>, kv<std::string, std::uint64_t>>;
TYPED_TEST_SUITE(Expiry, layouts);

template <class T>
auto cache_of(manual_ticker clock, auto&& configure, std::size_t n = 1000) {
  using cache_type = goldylox::typed_cache<typename T::key, typename T::value>;
  auto b = cache_type::builder();
  b.max_entries(n).ticker(clock);
  configure(b);
  return std::move(b).build().value();
}

// Puts keys [from, to) with their values.
template <class T, class C>
void fill(C& c, int from, int to) {
  for (int i = from; i < to; ++i) ASSERT_TRUE(c.put(T::k(i), T::v(i)).ok()) << i;
}

TYPED_TEST(Expiry, AfterWriteAnEntryIsGoneAtItsDeadlineNotBefore) {
  using T = TypeParam;
  manual_ticker clock;
  auto c = cache_of<T>(clock, [](auto& b) { b.expire_after_write(10s); });
  ASSERT_TRUE(c.put(T::k(1), T::v(1)).ok());
  clock.advance(10s - 1ns);
  EXPECT_EQ(c.get(T::k(1)), T::v(1));
  EXPECT_TRUE(c.contains(T::k(1)));
  clock.advance(1ns);
  EXPECT_EQ(c.size(), 1U);  // nothing has looked yet
  EXPECT_FALSE(c.contains(T::k(1)));
  EXPECT_EQ(c.get(T::k(1)), std::nullopt);
  EXPECT_EQ(c.size(), 0U);  // the read that found it expired removed it
  EXPECT_EQ(c.stats().expirations, 1U);
  bool visited = false;
  EXPECT_FALSE(c.visit(T::k(1), [&](const auto&) { visited = true; }));
  EXPECT_FALSE(visited);
}

TYPED_TEST(Expiry, AfterWriteAnOverwriteStartsANewTerm) {
  using T = TypeParam;
  manual_ticker clock;
  auto c = cache_of<T>(clock, [](auto& b) { b.expire_after_write(10s); });
  ASSERT_TRUE(c.put(T::k(1), T::v(1)).ok());
  clock.advance(8s);
  ASSERT_TRUE(c.put(T::k(1), T::v(2)).ok());
  clock.advance(8s);  // 16 s after the first write, 8 s after the second
  EXPECT_EQ(c.get(T::k(1)), T::v(2));
  clock.advance(2s);
  EXPECT_EQ(c.get(T::k(1)), std::nullopt);
  // Reads do not extend a write term.
  ASSERT_TRUE(c.put(T::k(2), T::v(2)).ok());
  for (int i = 0; i < 10; ++i) {
    clock.advance(1s);
    if (i < 9) {
      EXPECT_EQ(c.get(T::k(2)), T::v(2)) << i;
    }
  }
  EXPECT_EQ(c.get(T::k(2)), std::nullopt);
}

TYPED_TEST(Expiry, AfterAccessEachReadRestartsTheTerm) {
  using T = TypeParam;
  manual_ticker clock;
  auto c = cache_of<T>(clock, [](auto& b) { b.expire_after_access(10s); });
  ASSERT_TRUE(c.put(T::k(1), T::v(1)).ok());
  ASSERT_TRUE(c.put(T::k(2), T::v(2)).ok());
  for (int i = 0; i < 5; ++i) {
    clock.advance(6s);
    // The sweep finds k1's timer due at its first deadline and files it again for the moved one.
    c.run_pending_tasks();
    EXPECT_EQ(c.get(T::k(1)), T::v(1)) << i;  // 30 s in all, never 10 s without a read
  }
  EXPECT_EQ(c.get(T::k(2)), std::nullopt);  // never read: expired 10 s after its write
  clock.advance(10s);
  EXPECT_EQ(c.get(T::k(1)), std::nullopt);
  EXPECT_EQ(c.stats().expirations, 2U);
}

// Both durations: reads keep an entry alive, but never past expire_after_write from its write.
TYPED_TEST(Expiry, WriteAndAccessTogetherTheEarlierWins) {
  using T = TypeParam;
  manual_ticker clock;
  auto c = cache_of<T>(clock, [](auto& b) { b.expire_after_write(10s).expire_after_access(3s); });
  ASSERT_TRUE(c.put(T::k(1), T::v(1)).ok());
  ASSERT_TRUE(c.put(T::k(2), T::v(2)).ok());
  for (int i = 0; i < 4; ++i) {
    clock.advance(2s);
    c.run_pending_tasks();
    EXPECT_EQ(c.get(T::k(1)), T::v(1)) << i;  // 2, 4, 6, 8 s: each read extends by 3 s
  }
  EXPECT_EQ(c.get(T::k(2)), std::nullopt);  // never read: gone 3 s after its write
  clock.advance(2s - 1ns);
  EXPECT_EQ(c.get(T::k(1)), T::v(1));
  clock.advance(1ns);
  EXPECT_EQ(c.get(T::k(1)), std::nullopt);  // 10 s after its write, however often read
  // An overwrite starts both terms again.
  ASSERT_TRUE(c.put(T::k(1), T::v(3)).ok());
  clock.advance(2s);
  EXPECT_EQ(c.get(T::k(1)), T::v(3));
  clock.advance(2s);
  EXPECT_EQ(c.get(T::k(1)), T::v(3));
  clock.advance(3s);
  EXPECT_EQ(c.get(T::k(1)), std::nullopt);  // 3 s after its last read
  EXPECT_EQ(c.stats().expirations, 3U);
}

TYPED_TEST(Expiry, APutsTtlGivesAnEntryItsOwnTerm) {
  using T = TypeParam;
  manual_ticker clock;
  auto c = cache_of<T>(clock, [](auto& b) { b.enable_expiry(); });
  ASSERT_TRUE(c.put(T::k(1), T::v(1), 1s).ok());
  ASSERT_TRUE(c.put(T::k(2), T::v(2), 1h).ok());
  ASSERT_TRUE(c.put(T::k(3), T::v(3)).ok());  // no ttl: never expires
  clock.advance(1s);
  EXPECT_EQ(c.get(T::k(1)), std::nullopt);
  EXPECT_EQ(c.get(T::k(2)), T::v(2));
  clock.advance(1h);
  EXPECT_EQ(c.get(T::k(2)), std::nullopt);
  EXPECT_EQ(c.get(T::k(3)), T::v(3));
  // A shorter ttl on an overwrite takes effect (the timer moves earlier).
  ASSERT_TRUE(c.put(T::k(4), T::v(4), 1h).ok());
  ASSERT_TRUE(c.put(T::k(4), T::v(5), 1s).ok());
  clock.advance(2s);
  c.run_pending_tasks();
  EXPECT_EQ(c.size(), 1U);  // only k3
  // Bad ttls are refused and change nothing.
  EXPECT_EQ(c.put(T::k(3), T::v(9), 0s).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(c.put(T::k(3), T::v(9), -1s).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(c.get(T::k(3)), T::v(3));
}

TYPED_TEST(Expiry, TheTimerWheelsReclaimEntriesNobodyReads) {
  using T = TypeParam;
  manual_ticker clock;
  // With the background pool the job sweeps on its own schedule; run_pending_tasks() sweeps now.
  auto c = cache_of<T>(clock, [](auto& b) { b.expire_after_write(1s); });
  fill<T>(c, 0, 500);
  clock.advance(500ms);
  fill<T>(c, 500, 700);
  clock.advance(600ms);  // the first 500 are past their deadline, the last 200 are not
  c.run_pending_tasks();
  EXPECT_EQ(c.size(), 200U);
  EXPECT_EQ(c.stats().expirations, 500U);
  clock.advance(1s);
  c.run_pending_tasks();
  EXPECT_EQ(c.size(), 0U);
  EXPECT_EQ(c.stats().expirations, 700U);
  EXPECT_EQ(c.get(T::k(600)), std::nullopt);
}

TYPED_TEST(Expiry, WithoutAPoolWritesSweep) {
  using T = TypeParam;
  manual_ticker clock;
  auto c = cache_of<T>(clock,
                       [](auto& b) { b.expire_after_write(1s).enable_background_workers(false); });
  fill<T>(c, 0, 300);
  clock.advance(2s);
  EXPECT_EQ(c.size(), 300U);
  ASSERT_TRUE(c.put(T::k(1000), T::v(1000)).ok());  // finds the sweep due
  EXPECT_EQ(c.size(), 1U);
  EXPECT_EQ(c.stats().expirations, 300U);
}

TYPED_TEST(Expiry, WritesSeeAnExpiredEntryAsAbsent) {
  using T = TypeParam;
  manual_ticker clock;
  auto c = cache_of<T>(clock, [](auto& b) { b.expire_after_write(1s); });
  fill<T>(c, 0, 4);
  clock.advance(1s);
  const auto absent = c.put_if_absent(T::k(0), T::v(100));
  ASSERT_TRUE(absent.ok());
  EXPECT_EQ(*absent, std::nullopt);  // inserted: the expired value does not count
  EXPECT_EQ(c.get(T::k(0)), T::v(100));
  const auto replaced = c.replace(T::k(1), T::v(101));
  ASSERT_TRUE(replaced.ok());
  EXPECT_EQ(*replaced, std::nullopt);  // nothing to replace
  EXPECT_EQ(c.get(T::k(1)), std::nullopt);
  int made = 0;
  const auto got = c.get_or_insert(T::k(2), [&] {
    ++made;
    return T::v(102);
  });
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, T::v(102));
  EXPECT_EQ(made, 1);
  const auto removed = c.remove(T::k(3));
  ASSERT_TRUE(removed.ok());
  EXPECT_FALSE(*removed);  // it had expired: nothing to remove
  const goldylox::cache_stats s = c.stats();
  EXPECT_EQ(s.expirations, 4U);
  EXPECT_EQ(s.removals, 0U);
  EXPECT_EQ(c.size(), 2U);  // k0 and k2, with new terms
  clock.advance(999ms);
  EXPECT_EQ(c.get(T::k(2)), T::v(102));
}

TYPED_TEST(Expiry, ExpiredEntriesFreeTheirCapacity) {
  using T = TypeParam;
  manual_ticker clock;
  // The default layout: one table whose evictions the adaptive policy decides (a governor).
  auto c = cache_of<T>(
      clock, [](auto& b) { b.expire_after_write(1s); }, 400);
  fill<T>(c, 0, 400);
  clock.advance(2s);
  c.run_pending_tasks();
  EXPECT_EQ(c.size(), 0U);
  const std::uint64_t evicted_before = c.stats().evictions;
  fill<T>(c, 1000, 1300);
  EXPECT_EQ(c.stats().evictions, evicted_before);  // room was free: nothing had to go
  EXPECT_EQ(c.size(), 300U);
  for (int i = 1000; i < 1300; ++i) EXPECT_EQ(c.get(T::k(i)), T::v(i)) << i;
}

TEST(ExpiryConfig, BadSettingsAreRefused) {
  using cache_type = goldylox::typed_cache<std::uint64_t, std::uint64_t>;
  auto code = [](auto&& configure) {
    auto b = cache_type::builder();
    b.max_entries(100);
    configure(b);
    return b.build().status().code();
  };
  EXPECT_EQ(code([](auto& b) { b.expire_after_write(0s); }), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code([](auto& b) { b.expire_after_write(-5s); }), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code([](auto& b) { b.expire_after_access(0s); }), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code([](auto& b) { b.expire_after_write(1s).expire_after_access(1s); }),
            absl::StatusCode::kOk);  // together: whichever comes first
  EXPECT_EQ(code([](auto& b) {
              b.expire_after_write(1s).memory_layout(goldylox::memory_layout::two_tables);
            }),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code([](auto& b) { b.enable_expiry().cold_tier_storage_path("/tmp/never-opened"); }),
            absl::StatusCode::kInvalidArgument);
  std::function<std::chrono::nanoseconds()> no_clock;
  EXPECT_EQ(code([&](auto& b) { b.expire_after_write(1s).ticker(no_clock); }),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code([](auto& b) { b.expire_after_write(1ns); }), absl::StatusCode::kOk);
  // Two tables without a warm tier is one table: allowed.
  EXPECT_EQ(code([](auto& b) {
              b.expire_after_write(1s)
                  .memory_layout(goldylox::memory_layout::two_tables)
                  .warm_tier_max_entries(0)
                  .hot_tier_max_entries(100);
            }),
            absl::StatusCode::kOk);
  // A put's ttl needs a cache with expiry.
  auto plain = cache_type::builder().max_entries(100).build().value();
  EXPECT_EQ(plain.put(1, 1, 1s).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(plain.get(1), std::nullopt);
  EXPECT_EQ(plain.stats().expirations, 0U);
}

TEST(ExpiryCache, RunTimeTypedValuesExpireToo) {
  manual_ticker clock;
  auto c = goldylox::cache<std::string>::builder()
               .max_entries(100)
               .expire_after_write(10s)
               .ticker(clock)
               .build()
               .value();
  ASSERT_TRUE(c.put("user", std::string("ada")).ok());
  ASSERT_TRUE(c.put("count", 7, 1s).ok());
  clock.advance(1s);
  EXPECT_EQ(c.get<int>("count").value(), std::nullopt);
  EXPECT_EQ(c.get<std::string>("user").value(), "ada");
  clock.advance(9s);
  EXPECT_EQ(c.get<std::string>("user").value(), std::nullopt);
  EXPECT_EQ(c.stats().expirations, 2U);
}

// expire_after: each value's own ttl, decided from the value (here: value i lives i seconds).
template <class T>
std::chrono::nanoseconds own_ttl(const typename T::value& v) {
  for (int i = 0; i < 100; ++i) {
    if (v == T::v(i)) return std::chrono::seconds(i);
  }
  return std::chrono::nanoseconds::max();
}

TYPED_TEST(Expiry, ExpireAfterGivesEachValueItsOwnTtl) {
  using T = TypeParam;
  manual_ticker clock;
  auto c = cache_of<T>(clock, [](auto& b) {
    b.expire_after(
        [](const typename T::key&, const typename T::value& v) { return own_ttl<T>(v); });
  });
  fill<T>(c, 0, 10);  // value i expires i seconds from now; value 0 at once
  EXPECT_EQ(c.get(T::k(0)), std::nullopt);
  ASSERT_TRUE(c.put(T::k(20), T::v(50)).ok());      // 50 s, by the value, whatever the key
  ASSERT_TRUE(c.put(T::k(21), T::v(1), 30s).ok());  // a put's own ttl overrides it
  clock.advance(5s);
  for (int i = 1; i < 10; ++i) EXPECT_EQ(c.get(T::k(i)).has_value(), i > 5) << i;
  EXPECT_TRUE(c.contains(T::k(21)));
  // An overwrite takes its new value's ttl: 1 s from now.
  ASSERT_TRUE(c.put(T::k(9), T::v(1)).ok());
  clock.advance(1s);
  EXPECT_FALSE(c.contains(T::k(9)));
  // Every write that stores a value asks: put_if_absent, replace, compare_and_swap.
  ASSERT_TRUE(c.put_if_absent(T::k(30), T::v(2)).ok());
  ASSERT_TRUE(c.replace(T::k(20), T::v(3)).ok());
  clock.advance(2s);
  EXPECT_FALSE(c.contains(T::k(30)));
  EXPECT_TRUE(c.contains(T::k(20)));
  clock.advance(1s);
  EXPECT_FALSE(c.contains(T::k(20)));
  EXPECT_TRUE(c.contains(T::k(21)));  // 30 s
  clock.advance(30s);
  EXPECT_FALSE(c.contains(T::k(21)));
}

TYPED_TEST(Expiry, ExpireAfterGivesLoadedValuesTheirOwnTtl) {
  using T = TypeParam;
  manual_ticker clock;
  auto loads = std::make_shared<std::atomic<int>>(0);
  using cache_type = goldylox::typed_cache<typename T::key, typename T::value>;
  auto c = cache_type::builder()
               .max_entries(100)
               .ticker(clock)
               .expire_after(
                   [](const typename T::key&, const typename T::value& v) { return own_ttl<T>(v); })
               .loader([loads](const typename T::key&) -> absl::StatusOr<typename T::value> {
                 loads->fetch_add(1);
                 return T::v(3);  // lives 3 s
               })
               .build()
               .value();
  EXPECT_EQ(*c.get_or_load(T::k(1)), T::v(3));
  clock.advance(2s);
  EXPECT_EQ(*c.get_or_load(T::k(1)), T::v(3));
  EXPECT_EQ(loads->load(), 1);
  clock.advance(1s);
  EXPECT_EQ(*c.get_or_load(T::k(1)), T::v(3));  // expired: loaded again
  EXPECT_EQ(loads->load(), 2);
}

TYPED_TEST(Expiry, AThrowingExpireAfterFailsTheWriteAndChangesNothing) {
  using T = TypeParam;
  manual_ticker clock;
  auto c = cache_of<T>(clock, [](auto& b) {
    b.expire_after([](const typename T::key&, const typename T::value& v) {
      if (v == T::v(7)) throw std::runtime_error("no ttl for this one");
      return std::chrono::nanoseconds(std::chrono::hours(1));
    });
  });
  ASSERT_TRUE(c.put(T::k(1), T::v(1)).ok());
  EXPECT_THROW((void)c.put(T::k(1), T::v(7)), std::runtime_error);
  EXPECT_THROW((void)c.put_if_absent(T::k(2), T::v(7)), std::runtime_error);
  EXPECT_EQ(c.get(T::k(1)), T::v(1));
  EXPECT_FALSE(c.contains(T::k(2)));
  ASSERT_TRUE(c.put(T::k(2), T::v(2)).ok());  // the cache keeps serving
  EXPECT_EQ(c.get(T::k(2)), T::v(2));
}

TEST(ExpiryOptions, ExpireAfterIsRefusedWithFixedTtlsOrEmpty) {
  using cache_type = goldylox::typed_cache<std::uint64_t, std::uint64_t>;
  auto ttl = [](const std::uint64_t&, const std::uint64_t&) { return std::chrono::seconds(1); };
  for (int which = 0; which < 2; ++which) {
    auto b = cache_type::builder();
    b.max_entries(10).expire_after(ttl);
    if (which == 0) b.expire_after_write(1s);
    if (which == 1) b.expire_after_access(1s);
    auto made = b.build();
    ASSERT_FALSE(made.ok());
    EXPECT_EQ(made.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(made.status().message().find("expire_after"), std::string::npos);
  }
  std::function<std::chrono::nanoseconds(const std::uint64_t&, const std::uint64_t&)> empty;
  auto made = cache_type::builder().max_entries(10).expire_after(empty).build();
  ASSERT_FALSE(made.ok());
  EXPECT_NE(made.status().message().find("empty"), std::string::npos);
  made = cache_type::builder().max_entries(10).expire_after(ttl).enable_expiry(false).build();
  ASSERT_FALSE(made.ok());
  EXPECT_EQ(made.status().code(), absl::StatusCode::kInvalidArgument);
  // Like every expiry setting, not with a cold tier yet.
  made = cache_type::builder()
             .max_entries(10)
             .expire_after(ttl)
             .cold_tier_storage_path(testing::TempDir() + "/goldylox_expire_after")
             .build();
  ASSERT_FALSE(made.ok());
  EXPECT_EQ(made.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ExpiryOptions, AnyValueCacheDecidesByTheValuesType) {
  manual_ticker clock;
  auto c = goldylox::cache<std::string>::builder()
               .max_entries(100)
               .ticker(clock)
               .expire_after([](const std::string&, const goldylox::value_view& v) {
                 // Tokens live their own lifetime; everything else an hour.
                 if (const auto* t = v.get_if<std::chrono::seconds>()) return *t;
                 return std::chrono::seconds(3600);
               })
               .build()
               .value();
  ASSERT_TRUE(c.put("token", std::chrono::seconds(5)).ok());
  ASSERT_TRUE(c.put("name", std::string("ada")).ok());
  clock.advance(5s);
  EXPECT_EQ(c.get<std::chrono::seconds>("token").value(), std::nullopt);
  EXPECT_EQ(c.get<std::string>("name").value(), "ada");
  clock.advance(3595s);
  EXPECT_EQ(c.get<std::string>("name").value(), std::nullopt);
}

TEST(ExpiryClock, TheDefaultClockExpiresEntriesInRealTime) {
  // The one test on the real clock: the coarse clock ticks every millisecond.
  auto c = goldylox::typed_cache<std::uint64_t, std::uint64_t>::builder()
               .max_entries(100)
               .expire_after_write(30ms)
               .build()
               .value();
  ASSERT_TRUE(c.put(1, 10).ok());
  EXPECT_EQ(c.get(1), 10U);
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(c.get(1), std::nullopt);
}

}  // namespace
