// typed_cache's loaders under concurrency (facade/loading.hpp, engine/single_flight.hpp): one load
// per absent key across get_or_load and get_all, whatever the interleaving. In the stress binary
// so that ThreadSanitizer runs it.
#include <atomic>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <goldylox/typed_cache.hpp>

namespace {

using cache_type = goldylox::typed_cache<std::uint64_t, std::string>;

TEST(LoaderStress, ConcurrentMissesOfOneKeyLoadItOnce) {
  std::atomic<int> calls{0};
  std::atomic<bool> release{false};
  auto c = cache_type::builder()
               .max_entries(1000)
               .loader([&](const std::uint64_t& k) -> absl::StatusOr<std::string> {
                 ++calls;
                 while (!release.load()) std::this_thread::yield();
                 return "v" + std::to_string(k);
               })
               .build()
               .value();
  constexpr int threads = 6;
  std::vector<std::string> got(threads);
  std::vector<std::thread> pool;
  for (int i = 0; i < threads; ++i) {
    pool.emplace_back([&, i] { got[i] = c.get_or_load(5).value_or("error"); });
  }
  while (calls.load() == 0) std::this_thread::yield();
  release = true;
  for (auto& t : pool) t.join();
  for (const std::string& g : got) EXPECT_EQ(g, "v5");
  // A thread that missed after the first load landed finds the value stored: never a second
  // load, whatever the timing.
  EXPECT_EQ(calls.load(), 1);
}

// Many threads ask overlapping key sets at once, through get_all and get_or_load: every key is
// loaded once (a key another thread is loading is waited for) and everyone gets every value.
TEST(LoaderStress, OverlappingConcurrentBatchesLoadEachKeyOnce) {
  constexpr std::uint64_t keys = 64;
  std::vector<std::atomic<int>> loads(keys);
  auto c = cache_type::builder()
               .max_entries(10000)
               .bulk_loader([&](std::span<const std::uint64_t> ks)
                                -> absl::StatusOr<std::map<std::uint64_t, std::string>> {
                 std::map<std::uint64_t, std::string> out;
                 for (std::uint64_t k : ks) {
                   ++loads[k];
                   out.emplace(k, "k" + std::to_string(k));
                 }
                 return out;
               })
               .build()
               .value();
  constexpr int threads = 4;
  std::atomic<int> wrong{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      for (std::uint64_t start = 0; start + 8 <= keys; start += 4) {
        std::vector<std::uint64_t> batch;
        for (std::uint64_t k = start; k < start + 8; ++k) batch.push_back((k + 8 * t) % keys);
        const auto got = c.get_all(batch);
        if (!got.ok() || got->size() != batch.size()) {
          ++wrong;
          continue;
        }
        for (std::uint64_t k : batch) wrong += got->at(k) == "k" + std::to_string(k) ? 0 : 1;
        wrong += c.get_or_load(batch[0]).value_or("") == "k" + std::to_string(batch[0]) ? 0 : 1;
      }
    });
  }
  for (auto& th : pool) th.join();
  EXPECT_EQ(wrong.load(), 0);
  for (std::uint64_t k = 0; k < keys; ++k) EXPECT_EQ(loads[k].load(), 1) << "key " << k;
}

}  // namespace
