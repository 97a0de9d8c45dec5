// detail::timer_wheel against a reference schedule: every record is reported by the first
// advance that reaches its deadline, never before, through cascades, long gaps, reschedules,
// cancels and callbacks that change the wheel.
#include <cstdint>
#include <map>
#include <random>
#include <stdexcept>
#include <vector>

#include <gtest/gtest.h>

#include <goldylox/detail/common/timer_wheel.hpp>

namespace {

using goldylox::detail::timer_wheel;
constexpr std::int64_t ms = 1'000'000;
constexpr std::int64_t second = 1000 * ms;
constexpr std::int64_t day = 86'400 * second;

TEST(TimerWheel, ReportsEachRecordAtTheFirstAdvancePastItsDeadline) {
  std::mt19937_64 rng(3);
  const std::int64_t start = 123'456'789'012;  // the ticker need not start at 0
  timer_wheel wheel(start);
  std::map<timer_wheel::handle, std::int64_t> live;  // the reference: handle -> deadline
  std::int64_t now = start;
  // Distances from a millisecond to a year: every level, and past the top one.
  auto distance = [&] {
    const std::int64_t spans[] = {ms,      20 * ms,  second, 70 * second, 2 * 3600 * second,
                                  4 * day, 400 * day};
    return static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(spans[rng() % 7])) -
           (rng() % 16 == 0 ? 5 * ms : 0);  // now and then already past
  };
  std::uint64_t next_hash = 0;
  for (int round = 0; round < 4'000; ++round) {
    for (int op = 0; op < 8; ++op) {
      const unsigned what = static_cast<unsigned>(rng() % 10);
      if (what < 6 || live.empty()) {
        const std::int64_t d = now + distance();
        live[wheel.schedule(next_hash++, d)] = d;
      } else {
        auto it = live.begin();
        std::advance(it, static_cast<long>(rng() % live.size()));
        if (what < 8) {
          const std::int64_t d = now + distance();
          wheel.reschedule(it->first, d);
          it->second = d;
        } else {
          wheel.cancel(it->first);
          live.erase(it);
        }
      }
    }
    // Steps from nothing to days, so advances pass whole turns of the finer levels.
    const std::int64_t steps[] = {0, ms, 17 * ms, second, 90 * second, 3 * 3600 * second, 5 * day};
    now += static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(steps[rng() % 7] + 1));
    std::vector<timer_wheel::handle> reported;
    wheel.advance(now, [&](timer_wheel::handle h, std::uint64_t, std::int64_t deadline) {
      ASSERT_TRUE(live.count(h)) << "reported a handle not scheduled";
      EXPECT_EQ(live[h], deadline);
      EXPECT_LE(deadline, now) << "reported before its deadline";
      reported.push_back(h);
    });
    for (const auto h : reported) live.erase(h);
    for (const auto& [h, d] : live) {
      ASSERT_GT(d, now) << "record " << h << " due at " << d << " not reported by " << now;
    }
    ASSERT_EQ(wheel.size(), live.size());
  }
}

TEST(TimerWheel, PastDeadlinesAndLongGaps) {
  timer_wheel wheel(10 * second);
  const auto past = wheel.schedule(1, 9 * second);
  const auto year = wheel.schedule(2, 10 * second + 365 * day);  // beyond the top level's turn
  const auto soon = wheel.schedule(3, 10 * second + 1);
  std::vector<std::uint64_t> hashes;
  auto collect = [&](timer_wheel::handle, std::uint64_t hash, std::int64_t) {
    hashes.push_back(hash);
  };
  EXPECT_EQ(wheel.advance(10 * second, collect), 1u);  // the past one, at once
  EXPECT_EQ(hashes, std::vector<std::uint64_t>{1});
  EXPECT_EQ(wheel.advance(10 * second + 1, collect), 1u);
  EXPECT_EQ(hashes.back(), 3u);
  EXPECT_EQ(wheel.advance(10 * second + 364 * day, collect), 0u);
  EXPECT_EQ(wheel.deadline_of(year), 10 * second + 365 * day);
  EXPECT_EQ(wheel.advance(10 * second + 366 * day, collect), 1u);
  EXPECT_EQ(hashes.back(), 2u);
  EXPECT_EQ(wheel.size(), 0u);
  EXPECT_EQ(wheel.advance(0, collect), 0u);  // time never goes back
  EXPECT_EQ(wheel.time(), 10 * second + 366 * day);
  (void)past;
  (void)soon;
}

// due() may schedule, reschedule and cancel: records of the bucket being expired included.
TEST(TimerWheel, CallbacksMayChangeTheWheel) {
  timer_wheel wheel(0);
  std::vector<timer_wheel::handle> same_bucket;
  for (std::uint64_t i = 0; i < 10; ++i) same_bucket.push_back(wheel.schedule(i, 5 * ms));
  const auto later = wheel.schedule(100, 3 * second);
  int calls = 0;
  wheel.advance(10 * ms, [&](timer_wheel::handle h, std::uint64_t hash, std::int64_t) {
    ++calls;
    EXPECT_LT(hash, 10u);
    if (hash == 0) {
      wheel.cancel(later);                     // a record elsewhere
      (void)wheel.schedule(200, 9 * ms);       // due already: the next advance reports it
      (void)wheel.schedule(300, 20 * second);  // a new one (may reuse h)
    }
    (void)h;
  });
  EXPECT_EQ(calls, 10);
  EXPECT_EQ(wheel.size(), 2u);
  std::vector<std::uint64_t> hashes;
  wheel.advance(11 * ms, [&](timer_wheel::handle, std::uint64_t hash, std::int64_t) {
    hashes.push_back(hash);
  });
  EXPECT_EQ(hashes, std::vector<std::uint64_t>{200});
  wheel.advance(21 * second, [&](timer_wheel::handle, std::uint64_t hash, std::int64_t) {
    hashes.push_back(hash);
  });
  EXPECT_EQ(hashes.back(), 300u);
  EXPECT_EQ(wheel.size(), 0u);
  EXPECT_GT(wheel.memory_bytes(), 0u);
}

}  // namespace
