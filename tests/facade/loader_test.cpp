// typed_cache's loaders (facade/loading.hpp): get_or_load and get_all, one load per absent key,
// failures handed to every waiter and never stored, bulk loads, and the load counters (the
// concurrent cases are in engine/loader_stress_test.cpp, which ThreadSanitizer runs).
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include <goldylox/typed_cache.hpp>

#include "goldylox/detail/engine/single_flight.hpp"
#include "test_support.hpp"

namespace {

using cache_type = goldylox::typed_cache<std::uint64_t, std::string>;

TEST(Loader, GetOrLoadLoadsOnceAndServesTheStoredValue) {
  std::atomic<int> calls{0};
  auto c = cache_type::builder()
               .max_entries(1000)
               .loader([&](const std::uint64_t& k) -> absl::StatusOr<std::string> {
                 ++calls;
                 return "v" + std::to_string(k);
               })
               .build()
               .value();
  ASSERT_EQ(c.get(7), std::nullopt);  // get() never loads
  EXPECT_EQ(calls.load(), 0);
  EXPECT_EQ(c.get_or_load(7).value(), "v7");
  EXPECT_EQ(c.get_or_load(7).value(), "v7");
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(c.get(7), "v7");
  ASSERT_TRUE(c.put(8, "put").ok());
  EXPECT_EQ(c.get_or_load(8).value(), "put");  // present: no load
  EXPECT_EQ(calls.load(), 1);
  const goldylox::cache_stats s = c.stats();
  EXPECT_EQ(s.load_successes, 1U);
  EXPECT_EQ(s.load_failures, 0U);
  EXPECT_GT(s.load_time_ns, 0U);
}

TEST(Loader, FailuresAreReturnedCountedAndNeverStored) {
  std::atomic<int> calls{0};
  std::atomic<bool> fail{true};
  auto c = cache_type::builder()
               .max_entries(1000)
               .loader([&](const std::uint64_t&) -> absl::StatusOr<std::string> {
                 ++calls;
                 if (fail) return absl::UnavailableError("backend down");
                 return std::string("ok");
               })
               .build()
               .value();
  const absl::StatusOr<std::string> first = c.get_or_load(1);
  ASSERT_FALSE(first.ok());
  EXPECT_EQ(first.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(first.status().message(), "backend down");
  EXPECT_FALSE(c.contains(1));
  EXPECT_FALSE(c.get_or_load(1).ok());  // not cached: the loader is asked again
  EXPECT_EQ(calls.load(), 2);
  fail = false;
  EXPECT_EQ(c.get_or_load(1).value(), "ok");
  EXPECT_EQ(calls.load(), 3);
  const goldylox::cache_stats s = c.stats();
  EXPECT_EQ(s.load_failures, 2U);
  EXPECT_EQ(s.load_successes, 1U);
}

TEST(Loader, ALoaderThatThrowsIsAnInternalErrorAndTheCacheKeepsServing) {
  auto c = cache_type::builder()
               .max_entries(1000)
               .loader([](const std::uint64_t& k) -> absl::StatusOr<std::string> {
                 if (k == 13) throw std::runtime_error("unlucky key");
                 return std::string("fine");
               })
               .build()
               .value();
  const absl::StatusOr<std::string> bad = c.get_or_load(13);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInternal);
  EXPECT_NE(bad.status().message().find("unlucky key"), std::string_view::npos);
  EXPECT_FALSE(c.contains(13));
  EXPECT_EQ(c.get_or_load(14).value(), "fine");
  EXPECT_EQ(c.stats().load_failures, 1U);
  // The key's flight was landed: a second try loads again rather than waiting forever.
  EXPECT_FALSE(c.get_or_load(13).ok());
}

TEST(Loader, WithoutALoaderGetOrLoadIsAPreconditionError) {
  auto c = cache_type::builder().max_entries(100).build().value();
  EXPECT_EQ(c.get_or_load(1).status().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(c.put(1, "a").ok());
  EXPECT_EQ(c.get_or_load(1).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(Loader, AnEmptyLoaderFailsBuild) {
  std::function<absl::StatusOr<std::string>(const std::uint64_t&)> none;
  const auto made = cache_type::builder().max_entries(100).loader(none).build();
  ASSERT_FALSE(made.ok());
  EXPECT_EQ(made.status().code(), absl::StatusCode::kInvalidArgument);
  std::function<absl::StatusOr<std::map<std::uint64_t, std::string>>(
      std::span<const std::uint64_t>)>
      no_bulk;
  EXPECT_EQ(cache_type::builder().max_entries(100).bulk_loader(no_bulk).build().status().code(),
            absl::StatusCode::kInvalidArgument);
}

// The failure-sharing rule, made deterministic on the flight registry itself: a thread that
// joined a flight before its leader failed with a status gets that status, without loading.
TEST(Loader, AFailedLoadsWaitersGetItsStatus) {
  using flights =
      goldylox::detail::single_flight<std::uint64_t, std::string,
                                      goldylox::default_hash<std::uint64_t>, std::equal_to<>>;
  flights f;
  std::shared_ptr<flights::flight> led;
  std::atomic<bool> joined{false}, finish{false};
  // The leader stays alive until the end: a finished thread's id may be given to the follower,
  // which would then look like the flight's own leader asking again.
  std::thread leader([&] {
    auto [flight, is_leader] = f.join(9);
    EXPECT_TRUE(is_leader);
    led = std::move(flight);
    joined = true;
    while (!finish.load()) std::this_thread::yield();
  });
  while (!joined.load()) std::this_thread::yield();
  std::atomic<int> follower_loads{0};
  absl::Status seen;
  std::thread follower([&] {
    try {
      f.load(
          9, [](const std::uint64_t&, auto&&) { return false; },
          [&]() -> std::string {
            ++follower_loads;
            return "x";
          },
          [](std::string fresh, std::optional<std::string>& out) { out.emplace(std::move(fresh)); },
          [](const std::string&) {});
    } catch (const flights::failure& e) {
      seen = e.status;
    }
  });
  // The follower joined (its join found the flight) once a third owner shares it (the
  // registry and `led` are the first two).
  while (led.use_count() < 3) std::this_thread::yield();
  led->error = absl::UnavailableError("shared failure");
  f.land(9, *led, flights::flight::failed);
  follower.join();
  finish = true;
  leader.join();
  EXPECT_EQ(follower_loads.load(), 0);
  EXPECT_EQ(seen.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(seen.message(), "shared failure");
}

using goldylox_test::manual_ticker;

TEST(NegativeCache, ANotFoundIsRememberedForItsTtlOnly) {
  std::atomic<int> calls{0};
  manual_ticker clock;
  auto c = cache_type::builder()
               .max_entries(1000)
               .loader([&](const std::uint64_t& k) -> absl::StatusOr<std::string> {
                 ++calls;
                 if (k == 404) return absl::NotFoundError("no such key");
                 if (k == 503) return absl::UnavailableError("down");
                 return std::string("v");
               })
               .negative_cache(std::chrono::seconds(5))
               .ticker(clock)
               .build()
               .value();
  EXPECT_EQ(c.get_or_load(404).status().code(), absl::StatusCode::kNotFound);
  const absl::StatusOr<std::string> again = c.get_or_load(404);
  EXPECT_EQ(again.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(again.status().message(), "no such key");  // the remembered answer itself
  EXPECT_EQ(calls.load(), 1);
  clock.advance(std::chrono::seconds(4));
  EXPECT_FALSE(c.get_or_load(404).ok());
  EXPECT_EQ(calls.load(), 1);
  clock.advance(std::chrono::seconds(1));  // the ttl is up: asked again
  EXPECT_FALSE(c.get_or_load(404).ok());
  EXPECT_EQ(calls.load(), 2);
  // Transient failures are never remembered.
  EXPECT_FALSE(c.get_or_load(503).ok());
  EXPECT_FALSE(c.get_or_load(503).ok());
  EXPECT_EQ(calls.load(), 4);
  // A put of the key drops the record at once, even once the value is gone again.
  ASSERT_TRUE(c.put(404, "now it exists").ok());
  EXPECT_EQ(c.get_or_load(404).value(), "now it exists");
  ASSERT_TRUE(c.remove(404).ok());
  EXPECT_FALSE(c.get_or_load(404).ok());
  EXPECT_EQ(calls.load(), 5);
}

TEST(NegativeCache, IsBoundedAndServesGetAll) {
  std::atomic<int> calls{0};
  manual_ticker clock;
  auto make = [&](std::size_t max_keys) {
    return cache_type::builder()
        .max_entries(1000)
        .bulk_loader([&](std::span<const std::uint64_t> keys)
                         -> absl::StatusOr<std::map<std::uint64_t, std::string>> {
          calls += static_cast<int>(keys.size());
          std::map<std::uint64_t, std::string> out;
          for (std::uint64_t k : keys) {
            if (k % 2 == 1) out.emplace(k, "odd");
          }
          return out;
        })
        .negative_cache(std::chrono::minutes(1), max_keys)
        .ticker(clock)
        .build()
        .value();
  };
  // Room for every key (a record holds max_keys / 16 keys per shard, and absl's hash is seeded
  // per process, so two keys share a shard 1 time in 16).
  auto c = make(10'000);
  EXPECT_EQ(c.get_all({1, 2, 4}).value().size(), 1U);
  EXPECT_EQ(calls.load(), 3);
  EXPECT_EQ(c.get_all({2, 4, 3}).value().size(), 1U);  // 2 and 4 are known absent
  EXPECT_EQ(calls.load(), 4);
  // 1000 absent keys: the record keeps about max_keys of them (16 shards of 1), not 1000.
  auto small = make(16);
  for (std::uint64_t k = 100; k < 2100; k += 2) (void)small.get_or_load(k);
  const int before = calls.load();
  int asked_again = 0;
  for (std::uint64_t k = 100; k < 2100; k += 2) {
    (void)small.get_or_load(k);
    asked_again = calls.load() - before;
  }
  EXPECT_GE(asked_again, 1000 - 64);
}

TEST(NegativeCache, InvalidSettingsFailBuild) {
  auto code_of = [](std::chrono::nanoseconds ttl, std::size_t max_keys) {
    return cache_type::builder()
        .max_entries(10)
        .loader([](const std::uint64_t&) -> absl::StatusOr<std::string> { return "x"; })
        .negative_cache(ttl, max_keys)
        .build()
        .status()
        .code();
  };
  EXPECT_EQ(code_of(std::chrono::seconds(0), 10), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code_of(std::chrono::seconds(-1), 10), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code_of(std::chrono::seconds(1), 0), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code_of(std::chrono::nanoseconds(1), 1), absl::StatusCode::kOk);
  std::function<std::chrono::nanoseconds()> no_clock;
  EXPECT_EQ(cache_type::builder().max_entries(10).ticker(no_clock).build().status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(GetAll, WithoutLoadersReturnsThePresentKeysOnce) {
  auto c = cache_type::builder().max_entries(1000).build().value();
  ASSERT_TRUE(c.put(1, "a").ok());
  ASSERT_TRUE(c.put(3, "c").ok());
  const auto got = c.get_all({1, 2, 3, 1}).value();
  EXPECT_EQ(got.size(), 2U);
  EXPECT_EQ(got.at(1), "a");
  EXPECT_EQ(got.at(3), "c");
  const std::vector<std::uint64_t> none{4, 5};
  EXPECT_TRUE(c.get_all(none).value().empty());
}

TEST(GetAll, TheBulkLoaderGetsExactlyTheMissingKeysInOneCall) {
  std::vector<std::vector<std::uint64_t>> asked;
  auto c =
      cache_type::builder()
          .max_entries(1000)
          .bulk_loader([&](std::span<const std::uint64_t> keys)
                           -> absl::StatusOr<std::vector<std::pair<std::uint64_t, std::string>>> {
            asked.emplace_back(keys.begin(), keys.end());
            std::vector<std::pair<std::uint64_t, std::string>> out;
            for (std::uint64_t k : keys) {
              if (k != 4) out.emplace_back(k, "b" + std::to_string(k));  // 4: no such value
            }
            out.emplace_back(100, "extra");  // not asked for: stored too
            return out;
          })
          .build()
          .value();
  ASSERT_TRUE(c.put(2, "present").ok());
  const auto got = c.get_all({1, 2, 3, 4, 3}).value();
  ASSERT_EQ(asked.size(), 1U);
  EXPECT_EQ(asked[0], (std::vector<std::uint64_t>{1, 3, 4}));
  EXPECT_EQ(got.size(), 3U);
  EXPECT_EQ(got.at(1), "b1");
  EXPECT_EQ(got.at(2), "present");
  EXPECT_EQ(got.at(3), "b3");
  EXPECT_FALSE(got.contains(4));
  EXPECT_FALSE(got.contains(100));
  EXPECT_EQ(c.get(1), "b1");  // loaded values are stored
  EXPECT_EQ(c.get(100), "extra");
  EXPECT_FALSE(c.contains(4));
  // A bulk loader alone serves get_or_load too; the key it leaves out is kNotFound.
  EXPECT_EQ(c.get_or_load(7).value(), "b7");
  EXPECT_EQ(c.get_or_load(4).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(c.stats().load_successes, 3U);
}

TEST(GetAll, ABulkFailureIsReturnedAndNothingIsStored) {
  int calls = 0;
  auto c = cache_type::builder()
               .max_entries(1000)
               .bulk_loader([&](std::span<const std::uint64_t>)
                                -> absl::StatusOr<std::map<std::uint64_t, std::string>> {
                 if (++calls == 2) throw std::runtime_error("bulk threw");
                 return absl::DeadlineExceededError("slow backend");
               })
               .build()
               .value();
  const auto first = c.get_all({1, 2});
  ASSERT_FALSE(first.ok());
  EXPECT_EQ(first.status().code(), absl::StatusCode::kDeadlineExceeded);
  const auto second = c.get_all({1, 2});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kInternal);
  EXPECT_FALSE(c.contains(1));
  EXPECT_FALSE(c.contains(2));
  EXPECT_EQ(c.stats().load_failures, 2U);
}

TEST(GetAll, WithASingleLoaderLoadsKeyByKeyAndLeavesOutNotFound) {
  auto c = cache_type::builder()
               .max_entries(1000)
               .loader([](const std::uint64_t& k) -> absl::StatusOr<std::string> {
                 if (k % 2 == 0) return absl::NotFoundError("even");
                 return "odd" + std::to_string(k);
               })
               .build()
               .value();
  const auto got = c.get_all({1, 2, 3, 4}).value();
  EXPECT_EQ(got.size(), 2U);
  EXPECT_EQ(got.at(1), "odd1");
  EXPECT_EQ(got.at(3), "odd3");
}

}  // namespace
