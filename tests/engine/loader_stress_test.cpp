// typed_cache's loaders under concurrency (facade/loading.hpp, engine/single_flight.hpp): one load
// per absent key across get_or_load and get_all, whatever the interleaving. In the stress binary
// so that ThreadSanitizer runs it.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <gtest/gtest.h>

#include <goldylox/typed_cache.hpp>

#include "test_support.hpp"

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

// refresh_after_write under concurrency (engine/refresh.hpp): readers claim due refreshes while
// one writer per key overwrites and removes, a ticking thread moves time and the pool reloads.
// Every value read belongs to its key; no key is ever being reloaded twice at once (one claim
// per write); once quiet, each key holds its last put or a reload newer than it.
template <class V>
void refresh_under_churn() {
  using namespace std::chrono_literals;
  constexpr std::uint64_t keys = 256;
  constexpr int writers = 2, readers = 2;
  constexpr std::uint64_t stride = 1'000'000;
  const auto enc = [](std::uint64_t k, std::uint64_t version) {
    if constexpr (std::is_same_v<V, std::string>) {
      return "value of a length that lives on the heap " + std::to_string(k * stride + version);
    } else {
      return static_cast<V>(k * stride + version);
    }
  };
  const auto dec = [](const V& v) -> std::uint64_t {
    if constexpr (std::is_same_v<V, std::string>) {
      return std::stoull(v.substr(v.rfind(' ') + 1));
    } else {
      return static_cast<std::uint64_t>(v);
    }
  };
  std::vector<std::atomic<std::uint64_t>> version(keys);   // the last version handed out per key
  std::vector<std::atomic<std::uint64_t>> last_put(keys);  // 0: removed
  std::vector<std::atomic<int>> loading(keys);
  std::atomic<int> overlapping{0}, wrong{0}, loads{0};
  std::atomic<bool> stop{false};
  goldylox_test::manual_ticker clock;
  auto c = goldylox::typed_cache<std::uint64_t, V>::builder()
               .max_entries(4 * keys)
               .ticker(clock)
               .refresh_after_write(5ms)
               .loader([&](const std::uint64_t& k) -> absl::StatusOr<V> {
                 if (loading[k].fetch_add(1) != 0) ++overlapping;
                 ++loads;
                 const std::uint64_t v = ++version[k];
                 std::this_thread::yield();
                 --loading[k];
                 return enc(k, v);
               })
               .build()
               .value();
  std::vector<std::thread> threads;
  for (int w = 0; w < writers; ++w) {
    threads.emplace_back([&, w] {
      std::uint64_t n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        for (std::uint64_t k = static_cast<std::uint64_t>(w); k < keys; k += writers) {
          if (++n % 97 == 0) {
            last_put[k] = 0;
            (void)c.remove(k);
          } else if (n % 5 == 0) {
            const std::uint64_t v = ++version[k];
            last_put[k] = v;
            if (!c.put(k, enc(k, v)).ok()) ++wrong;
          }
        }
      }
    });
  }
  for (int r = 0; r < readers; ++r) {
    threads.emplace_back([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        for (std::uint64_t k = 0; k < keys; ++k) {
          if (const std::optional<V> v = c.get(k); v && dec(*v) / stride != k) ++wrong;
        }
      }
    });
  }
  for (int i = 0; i < 400; ++i) {
    clock.advance(1ms);
    std::this_thread::sleep_for(250us);
  }
  stop = true;
  for (auto& t : threads) t.join();
  c.run_pending_tasks();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(overlapping.load(), 0);
  EXPECT_GT(loads.load(), static_cast<int>(keys));  // each key falls due about 80 times
  for (std::uint64_t k = 0; k < keys; ++k) {
    const std::optional<V> v = c.get(k);
    if (last_put[k] == 0) continue;   // removed last: a reload may not bring it back, checked below
    ASSERT_TRUE(v.has_value()) << k;  // capacity 4x the keys: nothing is evicted
    EXPECT_GE(dec(*v) % stride, last_put[k].load()) << k;
  }
  // A key whose last write was a removal stays removed (a reload lands only on the write it
  // claimed).
  c.run_pending_tasks();
  for (std::uint64_t k = 0; k < keys; ++k) {
    if (last_put[k] == 0) {
      EXPECT_FALSE(c.contains(k)) << k;
    }
  }
}

TEST(RefreshStress, PackedSlots) {
  refresh_under_churn<std::uint64_t>();
}
TEST(RefreshStress, NodeSlots) {
  refresh_under_churn<std::string>();
}

}  // namespace
