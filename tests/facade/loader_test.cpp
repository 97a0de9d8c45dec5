// typed_cache's loaders (facade/loading.hpp): get_or_load and get_all, one load per absent key,
// failures handed to every waiter and never stored, bulk loads, and the load counters (the
// concurrent cases are in engine/loader_stress_test.cpp, which ThreadSanitizer runs).
#include <atomic>
#include <cstdint>
#include <map>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include <goldylox/typed_cache.hpp>

#include "goldylox/detail/engine/single_flight.hpp"

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
