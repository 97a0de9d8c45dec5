// A tour of goldylox in one program: build a cache, store values of different types, read them
// back type-checked, use the atomic operations, hammer it from two threads and print stats, then
// give a cache a cold tier on disk and read its data back after reopening it.
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <goldylox/goldylox.hpp>

struct User {
  int id = 0;
  std::string name;
  bool operator==(const User&) const = default;
  // For the cold tier: cereal serializes the fields (types without this stay in memory).
  template <class Archive>
  void serialize(Archive& ar) {
    ar(id, name);
  }
};

int main() {
  absl::StatusOr<goldylox::cache<std::string>> made = goldylox::cache<std::string>::builder()
                                                          .max_entries(100'000)
                                                          .enable_simd(true)
                                                          .enable_background_workers(false)
                                                          .enable_telemetry(true)
                                                          .build();
  if (!made.ok()) {
    std::cerr << "build failed: " << made.status() << "\n";
    return 1;
  }
  goldylox::cache<std::string>& cache = *made;

  // Values of any copyable type share one cache; each entry remembers its type.
  if (!cache.put("user:1", User{1, "Ada"}).ok() || !cache.put("config:timeout", 30).ok()) return 1;

  absl::StatusOr<std::optional<User>> user = cache.get<User>("user:1");
  std::cout << "get<User>(\"user:1\")      -> " << (*user)->name << "\n";

  absl::StatusOr<std::optional<int>> wrong = cache.get<int>("user:1");
  std::cout << "get<int>(\"user:1\")       -> " << wrong.status() << "\n";

  absl::StatusOr<std::optional<int>> old = cache.replace("config:timeout", 60);
  std::cout << "replace(timeout, 60)     -> previous " << **old << "\n";

  absl::StatusOr<bool> swapped = cache.compare_and_swap("config:timeout", 60, 120);
  std::cout << "compare_and_swap(60,120) -> " << std::boolalpha << *swapped << "\n";

  int factory_calls = 0;
  // The value type is the factory's: a std::string here.
  absl::StatusOr<std::string> greeting = cache.get_or_insert("greeting", [&] {
    ++factory_calls;
    return std::string("hello");
  });
  greeting = cache.get_or_insert("greeting", [&] {
    ++factory_calls;
    return std::string("never built");
  });
  std::cout << "get_or_insert twice      -> " << *greeting << " (factory ran " << factory_calls
            << " time)\n";

  // A typed cache for one value type: no type checks at all, the fastest path. 100,000 keys
  // compete for 65,536 entries, all in one lock-free table whose evictions the adaptive policy
  // decides (the default memory layout); two threads read (90 %) and write (10 %) them, popular
  // keys more often, so the stats show hits, and evictions the policy chose.
  auto counters = goldylox::typed_cache<std::uint64_t, std::uint64_t>::builder()
                      .max_entries(1 << 16)
                      .warm_tier_policy("adaptive")  // the default, named here to show the option
                      .enable_telemetry(true)        // hits and misses are counted only when asked
                      .build();
  if (!counters.ok()) return 1;
  std::vector<std::jthread> workers;
  for (std::uint64_t t = 0; t < 2; ++t) {
    workers.emplace_back([&counters, t] {
      std::uint64_t x = 0x9E3779B97F4A7C15ULL * (t + 1);
      for (std::uint64_t i = 0; i < 200'000; ++i) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;  // xorshift
        // Squaring a uniform draw skews it towards small keys: a few keys are popular.
        const double u = static_cast<double>(x >> 11) / 9007199254740992.0;
        const auto key = static_cast<std::uint64_t>(u * u * 100'000);
        if (i % 10 == 0) {
          (void)counters->put(key, i);
        } else if (!counters->get(key)) {
          (void)counters->put_if_absent(key, i);  // a miss loads the key, as a real cache would
        }
      }
    });
  }
  workers.clear();  // joins

  const goldylox::cache_stats s = counters->stats();
  std::cout << "typed_cache after 400k ops on 2 threads: size " << s.size << "/" << s.capacity
            << ", hits " << s.hits << ", misses " << s.misses << ", inserts " << s.inserts
            << ", updates " << s.updates << ", evictions " << s.evictions << ", ~"
            << s.memory_bytes / 1024 << " KiB\n";

  // A third tier on disk: what memory evicts goes to compressed, checksummed segment files, and
  // closing the cache writes the rest there too, so the data outlives the cache.
  const std::string dir = (std::filesystem::temp_directory_path() / "goldylox-demo").string();
  std::filesystem::remove_all(dir);
  const auto open_disk_cache = [&] {
    return goldylox::cache<std::string>::builder()
        .max_entries(3'000)  // in memory; the rest of the 50,000 entries go to disk
        .cold_tier_storage_path(dir)
        .cold_tier_max_bytes(64 << 20)
        .build();
  };
  {
    auto disk = open_disk_cache();
    if (!disk.ok()) {
      std::cerr << "cold tier: " << disk.status() << "\n";
      return 1;
    }
    for (int i = 0; i < 50'000; ++i) {
      (void)disk->put("user:" + std::to_string(i), User{i, "user " + std::to_string(i)});
    }
    const goldylox::cache_stats d = disk->stats();
    std::cout << "cold tier after 50k puts: " << d.cold_demotions << " demoted to disk, "
              << d.cold_size << " records in " << d.cold_disk_bytes / 1024 << " KiB of segments\n";
  }
  {
    auto reopened = open_disk_cache();
    if (!reopened.ok()) return 1;
    absl::StatusOr<std::optional<User>> back = reopened->get<User>("user:4242");
    std::cout << "reopened: get<User>(\"user:4242\") -> " << (*back)->name << "; get<int> -> "
              << reopened->get<int>("user:4242").status().code() << "\n";
  }
  std::filesystem::remove_all(dir);
  return 0;
}
