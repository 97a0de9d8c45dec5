// The cold store under concurrency (ThreadSanitizer in CI): writers, erasers and readers on a
// store small enough that segments are reclaimed all the time, with the background syncer
// running. Every value read must be whole and belong to the key it was read under; the store's
// counts must agree with a recovery of the same files afterwards.
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "goldylox/detail/cold/store.hpp"
#include "goldylox/goldylox.hpp"
#include "test_support.hpp"

namespace {

namespace gd = goldylox::detail;

std::span<const std::byte> as_bytes(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}
std::string key_of(std::uint64_t k) {
  return "key-" + std::to_string(k);
}
std::string value_of(std::uint64_t k, std::uint64_t n) {
  std::string v = key_of(k) + "#" + std::to_string(n) + "#";
  v.append(64 + (k * 31 + n) % 400, static_cast<char>('a' + k % 26));
  return v;
}

// periodic: the background syncer races the writers; every_write: writers share rounds of syncs
// and publish in version order (fewer operations: each waits for an fdatasync).
class ColdStoreStress : public ::testing::TestWithParam<goldylox::cold_durability> {};

TEST_P(ColdStoreStress, ReadersWritersAndReclamationAgree) {
  const goldylox_test::temp_dir scratch("goldylox-stress");
  const std::string& dir = scratch.path();
  gd::cold_store_options o;
  o.path = dir;
  o.segment_bytes = 64 * 1024;
  o.max_bytes = 6 * o.segment_bytes;
  o.durability = GetParam();
  const std::uint64_t ops = GetParam() == goldylox::cold_durability::every_write ? 4000 : 6000;
  o.sync_interval = std::chrono::milliseconds(2);
  o.codec = goldylox::codec_id::lz4;
  constexpr std::uint64_t keys = 4000;
  std::size_t entries = 0;
  {
    auto opened = gd::cold_store::open(o);
    ASSERT_TRUE(opened.ok()) << opened.status();
    auto& s = **opened;
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> bad{0}, hits{0}, errors{0};
    std::vector<std::thread> threads;
    for (int w = 0; w < 2; ++w) {
      threads.emplace_back([&, w] {
        std::uint64_t x = 0x9E3779B97F4A7C15ULL * (w + 1);
        for (std::uint64_t n = 0; n < ops; ++n) {
          x ^= x << 13, x ^= x >> 7, x ^= x << 17;
          const std::uint64_t k = x % keys;
          if (n % 10 == 9) {
            if (!s.erase(as_bytes(key_of(k))).ok()) errors.fetch_add(1);
          } else if (!s.put(as_bytes(key_of(k)), as_bytes(value_of(k, n)), 1).ok()) {
            errors.fetch_add(1);
          }
          if (n % 1000 == 0 && !s.sync().ok()) errors.fetch_add(1);
        }
      });
    }
    for (int r = 0; r < 2; ++r) {
      threads.emplace_back([&, r] {
        std::uint64_t x = 0x2545F4914F6CDD1DULL * (r + 1);
        while (!stop.load(std::memory_order_relaxed)) {
          x ^= x << 13, x ^= x >> 7, x ^= x << 17;
          const std::uint64_t k = x % keys;
          const std::string prefix = key_of(k) + "#";
          auto st = s.read(as_bytes(key_of(k)), [&](const gd::record_meta&, auto v) {
            const std::string got(reinterpret_cast<const char*>(v.data()), v.size());
            const auto hash = got.find('#', prefix.size());
            if (got.compare(0, prefix.size(), prefix) != 0 || hash == std::string::npos ||
                got != value_of(k, std::stoull(got.substr(prefix.size())))) {
              bad.fetch_add(1);
            }
          });
          if (st.ok()) {
            hits.fetch_add(1);
          } else if (!absl::IsNotFound(st)) {
            bad.fetch_add(1);
          }
        }
      });
    }
    for (int i = 0; i < 2; ++i) threads[i].join();
    stop = true;
    for (std::size_t i = 2; i < threads.size(); ++i) threads[i].join();
    EXPECT_EQ(bad.load(), 0u);
    EXPECT_EQ(errors.load(), 0u);
    EXPECT_GT(hits.load(), 0u);
    const auto st = s.stats();
    EXPECT_GT(st.reclaimed_segments, 3u);
    EXPECT_LE(st.segments, 6u);
    entries = st.entries;
  }
  auto reopened = gd::cold_store::open(o);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_EQ((*reopened)->stats().entries, entries);
  EXPECT_EQ((*reopened)->stats().corrupt_records, 0u);
  reopened->reset();
}

INSTANTIATE_TEST_SUITE_P(Durability, ColdStoreStress,
                         ::testing::Values(goldylox::cold_durability::periodic,
                                           goldylox::cold_durability::every_write),
                         [](const auto& info) {
                           return info.param == goldylox::cold_durability::periodic ? "periodic"
                                                                                    : "every_write";
                         });

}  // namespace
