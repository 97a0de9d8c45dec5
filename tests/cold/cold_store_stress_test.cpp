// The cold store under concurrency (ThreadSanitizer in CI): writers, erasers and readers on a
// store small enough that segments are reclaimed all the time, with the background syncer
// running. Every value read must be whole and belong to the key it was read under; the store's
// counts must agree with a recovery of the same files afterwards. Also: several stores' periodic
// syncs on one shared worker pool.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
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

// Periodic syncs of several stores as jobs on one shared two-worker pool, racing the stores'
// writers and their close(): every write is durable after close, and under TSan the syncs on
// pool workers race nothing of the stores'.
TEST(ColdStorePoolStress, PeriodicSyncsOfStoresSharingAPoolRaceTheirWriters) {
  auto pool = std::make_shared<gd::worker_pool>(2);
  constexpr int kStores = 3;
  goldylox_test::temp_dir dirs[kStores];
  std::vector<std::unique_ptr<gd::cold_store>> stores;
  for (auto& dir : dirs) {
    gd::cold_store_options o;
    o.path = dir.path();
    o.segment_bytes = 64 * 1024;
    o.max_bytes = 16 * o.segment_bytes;
    o.durability = goldylox::cold_durability::periodic;
    o.sync_interval = std::chrono::milliseconds(1);
    o.codec = goldylox::codec_id::lz4;
    o.pool = pool;
    auto opened = gd::cold_store::open(o);
    ASSERT_TRUE(opened.ok()) << opened.status();
    stores.push_back(*std::move(opened));
  }
  std::atomic<std::uint64_t> errors{0};
  std::vector<std::thread> writers;
  for (int w = 0; w < kStores; ++w) {
    writers.emplace_back([&, w] {
      gd::cold_store& s = *stores[static_cast<std::size_t>(w)];
      for (std::uint64_t n = 0; n < 3000; ++n) {
        const std::uint64_t k = (n * 7919 + static_cast<std::uint64_t>(w)) % 1500;
        if (!s.put(as_bytes(key_of(k)), as_bytes(value_of(k, n)), 1).ok()) errors.fetch_add(1);
      }
      // Closed while the pool may be syncing it; close() waits for that sync.
      if (!s.close().ok()) errors.fetch_add(1);
    });
  }
  for (auto& t : writers) t.join();
  EXPECT_EQ(errors.load(), 0u);
  for (auto& s : stores) {
    const auto st = s->stats();
    EXPECT_EQ(st.durable_version, st.last_version);
  }
  EXPECT_EQ(pool->stats().jobs, 0u);
  EXPECT_GT(pool->stats().runs, 0u);
  EXPECT_EQ(pool->stats().failures, 0u);
}

}  // namespace
