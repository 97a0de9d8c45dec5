// refresh_after_write through typed_cache (engine/refresh.hpp, hot/table.hpp's refresh): a due
// entry is reloaded once per write while reads keep its value, a write, removal or failure in
// between keeps the right value, and bad settings are refused. Time is a manual ticker;
// run_pending_tasks() makes the queued reloads (and waits for one the pool is making), so no test
// sleeps. The concurrent case is in engine/loader_stress_test.cpp (ThreadSanitizer).
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include <goldylox/typed_cache.hpp>

#include "test_support.hpp"

namespace {

using namespace std::chrono_literals;

using goldylox_test::kv;
using goldylox_test::manual_ticker;

// The loader of the tests: version n of every key is T::v(n); `next` is the version it returns
// next, `fail` makes it fail with kUnavailable instead, and it counts its calls.
struct source {
  std::atomic<int> next{100};
  std::atomic<int> calls{0};
  std::atomic<bool> fail{false};
  std::atomic<bool> not_found{false};
};

template <class T>
class Refresh : public ::testing::Test {
 protected:
  // Every test's clock and loader source.
  manual_ticker clock_;
  source src_;
};
using layouts = ::testing::Types<kv<std::uint64_t, std::uint64_t>, kv<std::string, std::string>,
                                 kv<std::uint64_t, std::string>, kv<std::string, std::uint64_t>>;
TYPED_TEST_SUITE(Refresh, layouts);

template <class T>
auto cache_of(manual_ticker clock, source& src, auto&& configure) {
  using cache_type = goldylox::typed_cache<typename T::key, typename T::value>;
  auto b = cache_type::builder();
  b.max_entries(1000).ticker(clock).refresh_after_write(10s).loader(
      [&src](const typename T::key&) -> absl::StatusOr<typename T::value> {
        ++src.calls;
        if (src.fail) return absl::UnavailableError("backend down");
        if (src.not_found) return absl::NotFoundError("gone");
        return T::v(src.next.load());
      });
  configure(b);
  return std::move(b).build().value();
}

// Reads `key` and makes the reload the read claimed, reading again until the loader has been
// called once more: a claim whose request the queue refused (a stripe busy beyond a few tries,
// rare) is released and left to the next read. Returns what the first read returned.
template <class C, class Key>
auto read_and_reload(C& c, const Key& key, const std::atomic<int>& calls) {
  const int before = calls.load();
  auto first = c.get(key);
  c.run_pending_tasks();
  for (int i = 0; i < 1000 && calls.load() == before; ++i) {
    (void)c.get(key);
    c.run_pending_tasks();
  }
  return first;
}

template <class T>
auto cache_of(manual_ticker clock, source& src) {
  return cache_of<T>(clock, src, [](auto&) {});
}

TYPED_TEST(Refresh, ADueEntryIsReloadedWhileReadsKeepItsValue) {
  using T = TypeParam;
  auto c = cache_of<T>(this->clock_, this->src_);
  ASSERT_TRUE(c.put(T::k(1), T::v(1)).ok());
  this->clock_.advance(10s - 1ns);
  EXPECT_EQ(c.get(T::k(1)), T::v(1));
  c.run_pending_tasks();
  EXPECT_EQ(this->src_.calls.load(), 0);  // not due yet
  this->clock_.advance(1ns);
  EXPECT_EQ(read_and_reload(c, T::k(1), this->src_.calls),
            T::v(1));  // due: the old value, the reload queued
  EXPECT_EQ(this->src_.calls.load(), 1);
  EXPECT_EQ(c.get(T::k(1)), T::v(100));
  EXPECT_EQ(c.stats().load_successes, 1U);
}

TYPED_TEST(Refresh, OneReloadPerWriteHoweverManyReads) {
  using T = TypeParam;
  std::atomic<bool> release{false};
  auto c = cache_of<T>(this->clock_, this->src_, [&](auto& b) {
    b.loader([&](const typename T::key&) -> absl::StatusOr<typename T::value> {
      ++this->src_.calls;
      while (!release.load()) std::this_thread::yield();  // holds the claim while reads pile up
      if (this->src_.fail) return absl::UnavailableError("backend down");
      return T::v(this->src_.next.load());
    });
  });
  ASSERT_TRUE(c.put(T::k(1), T::v(1)).ok());
  this->clock_.advance(10s);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(c.get(T::k(1)), T::v(1));
  release = true;
  c.run_pending_tasks();
  EXPECT_EQ(this->src_.calls.load(), 1);
  EXPECT_EQ(c.get(T::k(1)), T::v(100));
  // The reloaded value is a new write: due again 10 s after the reload, not before.
  this->src_.next = 200;
  this->src_.fail = true;
  this->clock_.advance(10s - 1ns);
  EXPECT_EQ(c.get(T::k(1)), T::v(100));
  c.run_pending_tasks();
  EXPECT_EQ(this->src_.calls.load(), 1);
  this->clock_.advance(1ns);
  EXPECT_EQ(read_and_reload(c, T::k(1), this->src_.calls), T::v(100));
  EXPECT_EQ(this->src_.calls.load(), 2);
  EXPECT_EQ(c.stats().load_failures, 1U);
  this->src_.fail = false;
  // The failure kept the value and released the claim: the next read asks again.
  EXPECT_EQ(read_and_reload(c, T::k(1), this->src_.calls), T::v(100));
  EXPECT_EQ(this->src_.calls.load(), 3);
  EXPECT_EQ(c.get(T::k(1)), T::v(200));
}

// Other keys' entries are refreshed independently, and only the ones read.
TYPED_TEST(Refresh, OnlyReadEntriesAreReloaded) {
  using T = TypeParam;
  auto c = cache_of<T>(this->clock_, this->src_);
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(c.put(T::k(i), T::v(i)).ok());
  this->clock_.advance(11s);
  // Queued together, made in one batch.
  for (int i = 0; i < 50; i += 2) EXPECT_EQ(c.get(T::k(i)), T::v(i));
  c.run_pending_tasks();
  for (int i = 0; i < 50; i += 2) {
    if (c.get(T::k(i)) != T::v(100))
      read_and_reload(c, T::k(i), this->src_.calls);  // a refused request
  }
  EXPECT_EQ(this->src_.calls.load(), 25);
  // contains() does not refresh: only reads that return the value.
  for (int i = 1; i < 50; i += 2) EXPECT_TRUE(c.contains(T::k(i)));
  c.run_pending_tasks();
  EXPECT_EQ(this->src_.calls.load(), 25);
  for (int i = 0; i < 50; ++i) {
    if (i % 2 == 0) {
      EXPECT_EQ(c.get(T::k(i)), T::v(100)) << i;  // reloaded at 11 s: not due again
    } else {
      EXPECT_EQ(read_and_reload(c, T::k(i), this->src_.calls), T::v(i)) << i;
    }
  }
  EXPECT_EQ(this->src_.calls.load(), 50);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(c.get(T::k(i)), T::v(100)) << i;
}

// A write between the claim and the reload's store wins: the reload is discarded.
TYPED_TEST(Refresh, AWriteDuringTheReloadDiscardsIt) {
  using T = TypeParam;
  std::atomic<bool> release{false};
  auto c = cache_of<T>(this->clock_, this->src_, [&](auto& b) {
    b.loader([&](const typename T::key&) -> absl::StatusOr<typename T::value> {
      ++this->src_.calls;
      while (!release.load()) std::this_thread::yield();
      return T::v(100);
    });
  });
  ASSERT_TRUE(c.put(T::k(1), T::v(1)).ok());
  this->clock_.advance(10s);
  // Read until the pool is running the loader (a refused claim is claimed again by a read).
  while (this->src_.calls.load() == 0) {
    EXPECT_EQ(c.get(T::k(1)), T::v(1));
    std::this_thread::yield();
  }
  ASSERT_TRUE(c.put(T::k(1), T::v(7)).ok());  // while the reload is loading
  release = true;
  c.run_pending_tasks();
  EXPECT_EQ(this->src_.calls.load(), 1);
  EXPECT_EQ(c.get(T::k(1)), T::v(7));
  // The put was a new write: not due before 10 s from it.
  c.run_pending_tasks();
  EXPECT_EQ(this->src_.calls.load(), 1);
}

TYPED_TEST(Refresh, ARemovalDuringTheReloadDiscardsIt) {
  using T = TypeParam;
  auto c = cache_of<T>(this->clock_, this->src_);
  ASSERT_TRUE(c.put(T::k(1), T::v(1)).ok());
  ASSERT_TRUE(c.put(T::k(2), T::v(2)).ok());
  this->clock_.advance(10s);
  EXPECT_EQ(c.get(T::k(1)), T::v(1));
  EXPECT_EQ(c.get(T::k(2)), T::v(2));
  // Removed, and removed then put again (a new write, which may take the same slot): neither
  // reload may land. (The pool may have made them already, before the removals: then the
  // removals are what the reads below see too.)
  EXPECT_TRUE(c.remove(T::k(1)).value_or(false));
  EXPECT_TRUE(c.remove(T::k(2)).value_or(false));
  ASSERT_TRUE(c.put(T::k(2), T::v(9)).ok());
  c.run_pending_tasks();
  EXPECT_FALSE(c.get(T::k(1)).has_value());
  EXPECT_EQ(c.get(T::k(2)), T::v(9));
}

TYPED_TEST(Refresh, NotFoundRemovesTheEntryAndOtherFailuresKeepIt) {
  using T = TypeParam;
  std::vector<std::tuple<typename T::key, typename T::value, goldylox::removal_cause>> heard;
  auto c = cache_of<T>(this->clock_, this->src_, [&](auto& b) {
    b.removal_listener([&](const typename T::key& k, const typename T::value& v,
                           goldylox::removal_cause cause) { heard.emplace_back(k, v, cause); });
  });
  ASSERT_TRUE(c.put(T::k(1), T::v(1)).ok());
  ASSERT_TRUE(c.put(T::k(2), T::v(2)).ok());
  this->clock_.advance(10s);
  this->src_.fail = true;
  EXPECT_EQ(c.get(T::k(1)), T::v(1));
  c.run_pending_tasks();
  EXPECT_EQ(c.get(T::k(1)), T::v(1));  // kUnavailable: kept
  c.run_pending_tasks();
  this->src_.fail = false;
  this->src_.not_found = true;
  EXPECT_EQ(read_and_reload(c, T::k(2), this->src_.calls), T::v(2));
  EXPECT_FALSE(c.contains(T::k(2)));  // kNotFound: removed
  this->src_.not_found = false;
  EXPECT_EQ(read_and_reload(c, T::k(1), this->src_.calls), T::v(1));
  EXPECT_EQ(c.get(T::k(1)), T::v(100));
  ASSERT_EQ(heard.size(), 2U);
  EXPECT_EQ(heard[0], std::make_tuple(T::k(2), T::v(2), goldylox::removal_cause::erased));
  EXPECT_EQ(heard[1], std::make_tuple(T::k(1), T::v(1), goldylox::removal_cause::replaced));
}

TYPED_TEST(Refresh, AThrowingLoaderKeepsTheValue) {
  using T = TypeParam;
  std::atomic<int>& calls = this->src_.calls;
  auto c = cache_of<T>(this->clock_, this->src_, [&](auto& b) {
    b.loader([&](const typename T::key&) -> absl::StatusOr<typename T::value> {
      ++calls;
      throw std::runtime_error("boom");
    });
  });
  ASSERT_TRUE(c.put(T::k(1), T::v(1)).ok());
  this->clock_.advance(10s);
  EXPECT_EQ(read_and_reload(c, T::k(1), calls), T::v(1));
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(read_and_reload(c, T::k(1), calls), T::v(1));
  EXPECT_EQ(calls.load(), 2);  // asked again by the read after the failure
  EXPECT_EQ(c.stats().load_failures, 2U);
  ASSERT_TRUE(c.put(T::k(2), T::v(2)).ok());  // the cache keeps serving
  EXPECT_EQ(c.get(T::k(2)), T::v(2));
}

// An entry that expires before it is read past its refresh time is gone, not refreshed.
TYPED_TEST(Refresh, AnExpiredEntryIsNotRefreshed) {
  using T = TypeParam;
  auto c = cache_of<T>(this->clock_, this->src_, [](auto& b) { b.expire_after_write(15s); });
  ASSERT_TRUE(c.put(T::k(1), T::v(1)).ok());
  ASSERT_TRUE(c.put(T::k(2), T::v(2)).ok());
  this->clock_.advance(12s);
  EXPECT_EQ(read_and_reload(c, T::k(1), this->src_.calls), T::v(1));  // due for refresh, alive
  EXPECT_EQ(c.get(T::k(1)), T::v(100));  // reloaded: a new write, alive until 27 s
  this->clock_.advance(4s);
  EXPECT_FALSE(c.get(T::k(2)).has_value());  // expired at 15 s
  c.run_pending_tasks();
  EXPECT_EQ(this->src_.calls.load(), 1);
  EXPECT_EQ(c.get(T::k(1)), T::v(100));
}

// With expire_after_access, reads keep the entry alive; the refresh still follows the write.
TYPED_TEST(Refresh, FollowsTheWriteUnderExpireAfterAccess) {
  using T = TypeParam;
  auto c = cache_of<T>(this->clock_, this->src_, [](auto& b) { b.expire_after_access(8s); });
  ASSERT_TRUE(c.put(T::k(1), T::v(1)).ok());
  this->clock_.advance(6s);
  EXPECT_EQ(c.get(T::k(1)), T::v(1));  // extends its life to 14 s
  c.run_pending_tasks();
  EXPECT_EQ(this->src_.calls.load(), 0);
  this->clock_.advance(5s);
  EXPECT_EQ(read_and_reload(c, T::k(1), this->src_.calls),
            T::v(1));  // 11 s: alive, due for refresh
  EXPECT_EQ(this->src_.calls.load(), 1);
  EXPECT_EQ(c.get(T::k(1)), T::v(100));
}

TEST(RefreshBulk, ABulkLoaderAloneServesRefresh) {
  manual_ticker clock;
  std::atomic<int> calls{0};
  auto c = goldylox::typed_cache<int, std::string>::builder()
               .max_entries(100)
               .ticker(clock)
               .refresh_after_write(1s)
               .bulk_loader(
                   [&](std::span<const int> keys) -> absl::StatusOr<std::map<int, std::string>> {
                     ++calls;
                     std::map<int, std::string> out;
                     for (int k : keys) {
                       if (k != 3) out.emplace(k, "fresh " + std::to_string(k));
                     }
                     return out;
                   })
               .build()
               .value();
  ASSERT_TRUE(c.put(1, "old").ok());
  ASSERT_TRUE(c.put(3, "old").ok());
  clock.advance(1s);
  EXPECT_EQ(read_and_reload(c, 1, calls), "old");
  EXPECT_EQ(read_and_reload(c, 3, calls), "old");
  EXPECT_EQ(calls.load(), 2);
  EXPECT_EQ(c.get(1), "fresh 1");
  EXPECT_FALSE(c.contains(3));  // the bulk loader returned nothing for it: kNotFound
}

// A cache whose memory is one table with a warm budget (the default layout) refreshes as well;
// an evicted entry's reload is discarded.
TEST(RefreshLayout, WorksWithTheGovernedTableAndDropsEvictedEntries) {
  manual_ticker clock;
  std::atomic<int> calls{0};
  auto c = goldylox::typed_cache<int, int>::builder()
               .max_entries(64)
               .ticker(clock)
               .refresh_after_write(1s)
               .loader([&](const int& k) -> absl::StatusOr<int> {
                 ++calls;
                 return k + 1000;
               })
               .build()
               .value();
  ASSERT_NE(c.config().warm_tier_max_entries, 0U);
  for (int i = 0; i < 32; ++i) ASSERT_TRUE(c.put(i, i).ok());
  clock.advance(1s);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(c.get(i), i);
  c.run_pending_tasks();
  for (int i = 0; i < 32; ++i) {
    if (c.get(i) == i) read_and_reload(c, i, calls);  // a refused request
  }
  EXPECT_EQ(calls.load(), 32);
  int refreshed = 0;
  for (int i = 0; i < 32; ++i) refreshed += c.get(i) == i + 1000 ? 1 : 0;
  EXPECT_EQ(refreshed, 32);
  // Due again; the claims are queued, then the cache is flooded so that they are evicted: a
  // reload lands only on an entry still there, and never brings one back.
  clock.advance(1s);
  for (int i = 0; i < 32; ++i) (void)c.get(i);
  for (int i = 1000; i < 3000; ++i) ASSERT_TRUE(c.put(i, i).ok());
  c.run_pending_tasks();
  EXPECT_LE(c.size(), 64U);
  for (int i = 0; i < 32; ++i) {
    const std::optional<int> v = c.get(i);
    if (v) {
      EXPECT_EQ(*v, i + 1000) << i;
    }
  }
}

TEST(RefreshSettings, BadSettingsAreRefused) {
  using cache_type = goldylox::typed_cache<int, int>;
  auto load = [](const int& k) -> absl::StatusOr<int> { return k; };
  const auto code = [](const auto& built) { return built.status().code(); };
  EXPECT_EQ(code(cache_type::builder().refresh_after_write(0s).loader(load).build()),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(cache_type::builder().refresh_after_write(-1s).loader(load).build()),
            absl::StatusCode::kInvalidArgument);
  const auto no_loader = cache_type::builder().refresh_after_write(1s).build();
  EXPECT_EQ(code(no_loader), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(no_loader.status().message().find("loader"), std::string::npos);
  const auto no_pool = cache_type::builder()
                           .refresh_after_write(1s)
                           .loader(load)
                           .enable_background_workers(false)
                           .build();
  EXPECT_EQ(code(no_pool), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(no_pool.status().message().find("background"), std::string::npos);
  EXPECT_EQ(code(cache_type::builder()
                     .refresh_after_write(1s)
                     .loader(load)
                     .memory_layout(goldylox::memory_layout::two_tables)
                     .build()),
            absl::StatusCode::kInvalidArgument);
  // Refresh turns expiry on, so a put may carry its own ttl.
  auto c = cache_type::builder().refresh_after_write(1s).loader(load).build().value();
  EXPECT_TRUE(c.config().expiry);
  EXPECT_TRUE(c.put(1, 1, 5s).ok());
}

}  // namespace
