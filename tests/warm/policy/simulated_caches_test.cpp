// simulated_caches, the adaptive policy's miniature simulations sharing one key index: each of
// its caches must behave exactly as a simulated_cache of the same policy on the same requests.
#include <cstdint>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "goldylox/detail/warm/policy/simulated_cache.hpp"
#include "goldylox/policies.hpp"

namespace {

namespace gl = goldylox;
namespace gd = goldylox::detail;

// Skewed random requests (a hot set and a long tail, so keys come and go in every cache at
// different times): every request's hit or miss and every evicted key, cache by cache, equal
// those of separate simulated_caches.
TEST(SimulatedCaches, EachCacheBehavesAsItsOwnSimulatedCache) {
  using lirs_deep = gd::lirs_deep_policy;
  using lru = gl::policy::lru;
  using arc = gl::policy::arc;
  using s3fifo = gl::policy::s3fifo;
  using w_tinylfu = gl::policy::w_tinylfu;
  using sieve = gl::policy::sieve;
  for (const std::size_t capacity : {1u, 2u, 5u, 64u, 300u}) {
    gd::simulated_caches<lirs_deep, lru, arc, s3fifo, w_tinylfu, sieve> together(capacity);
    gd::simulated_cache<lirs_deep> c0(capacity);
    gd::simulated_cache<lru> c1(capacity);
    gd::simulated_cache<arc> c2(capacity);
    gd::simulated_cache<s3fifo> c3(capacity);
    gd::simulated_cache<w_tinylfu> c4(capacity);
    gd::simulated_cache<sieve> c5(capacity);
    std::mt19937_64 rng(capacity);
    const std::uint64_t keys = 8 * capacity + 10;
    for (int step = 0; step < 30000; ++step) {
      const std::uint64_t id =
          rng() % 3 == 0 ? rng() % keys : rng() % (capacity + 2) * 0x9e3779b97f4a7c15ULL;
      std::vector<std::vector<std::uint64_t>> evicted_together(6), evicted_apart(6);
      std::vector<int> hit_together(6, -1), hit_apart(6, -1);
      together.access(
          id, [&](std::size_t i, std::uint64_t k) { evicted_together[i].push_back(k); },
          [&](std::size_t i, bool hit) {
            ASSERT_EQ(hit_together[i], -1) << "cache " << i << " answered twice";
            hit_together[i] = hit ? 1 : 0;
          });
      const auto apart = [&](auto& c, std::size_t i) {
        hit_apart[i] =
            c.access(id, [&, i](std::uint64_t k) { evicted_apart[i].push_back(k); }) ? 1 : 0;
      };
      apart(c0, 0);
      apart(c1, 1);
      apart(c2, 2);
      apart(c3, 3);
      apart(c4, 4);
      apart(c5, 5);
      ASSERT_EQ(hit_together, hit_apart) << "capacity " << capacity << " step " << step;
      ASSERT_EQ(evicted_together, evicted_apart) << "capacity " << capacity << " step " << step;
      for (std::size_t i = 0; i < 6; ++i) {
        ASSERT_TRUE(together.contains(i, id));
        ASSERT_LE(together.size(i), capacity);
      }
    }
    EXPECT_EQ(together.size(0), c0.size());
    EXPECT_EQ(together.size(1), c1.size());
    EXPECT_EQ(together.size(5), c5.size());
    for (std::uint64_t k = 0; k < keys; ++k) {
      EXPECT_EQ(together.contains(1, k), c1.contains(k));
      EXPECT_EQ(together.contains(2, k), c2.contains(k));
    }
  }
}

}  // namespace
