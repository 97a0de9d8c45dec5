// A read-through cache in front of a slow function, as a service would put one in front of its
// database: four threads ask for user profiles by id (a few popular ids asked for very often),
// three one at a time and one a page of eight at a time. The cache is a loading cache: it loads
// each missing profile once however many threads miss on it at the same time, a page's missing
// profiles in one bulk call, remembers for a while which ids do not exist, serves no profile
// older than 250 ms (expiry: the next request reloads it), tells a listener why each profile
// left, and the process exports the cache's counters for Prometheus.
//
//   cmake --preset release && cmake --build build/release --target goldylox_read_through
//   ./build/release/examples/goldylox_read_through
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <map>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <goldylox/goldylox.hpp>

namespace {

struct profile {
  std::uint64_t id = 0;
  std::string name;
};

// The slow backend: 100 microseconds a call, one id or a page of them, and it counts its calls.
// Ids that are multiples of 97 do not exist.
std::atomic<int> backend_calls{0};
bool exists(std::uint64_t id) {
  return id % 97 != 0;
}

absl::StatusOr<profile> fetch_profile(std::uint64_t id) {
  backend_calls.fetch_add(1, std::memory_order_relaxed);
  std::this_thread::sleep_for(std::chrono::microseconds(100));
  if (!exists(id)) return absl::NotFoundError("no such user");
  return profile{id, "user-" + std::to_string(id)};
}

absl::StatusOr<std::map<std::uint64_t, profile>> fetch_profiles(
    std::span<const std::uint64_t> ids) {
  backend_calls.fetch_add(1, std::memory_order_relaxed);
  std::this_thread::sleep_for(std::chrono::microseconds(100));
  std::map<std::uint64_t, profile> found;  // ids that do not exist are simply left out
  for (std::uint64_t id : ids) {
    if (exists(id)) found.emplace(id, profile{id, "user-" + std::to_string(id)});
  }
  return found;
}

}  // namespace

int main() {
  // Why profiles left the cache, as the listener heard it (an audit log, a metric per cause).
  std::atomic<std::uint64_t> left[4] = {};
  auto made = goldylox::typed_cache<std::uint64_t, profile>::builder()
                  .max_entries(1'000)      // room for the popular ids, not for all 5,000
                  .enable_telemetry(true)  // count hits and misses for the export
                  .loader(fetch_profile)
                  .bulk_loader(fetch_profiles)
                  .negative_cache(std::chrono::seconds(30))            // "no such user" for 30 s
                  .expire_after_write(std::chrono::milliseconds(250))  // never staler than this
                  .removal_listener(
                      [&left](const std::uint64_t&, const profile&, goldylox::removal_cause why) {
                        left[static_cast<int>(why)].fetch_add(1, std::memory_order_relaxed);
                      })
                  .build();
  if (!made.ok()) {
    std::fprintf(stderr, "build failed: %s\n", made.status().ToString().c_str());
    return 1;
  }
  goldylox::typed_cache<std::uint64_t, profile>& profiles = *made;

  // Each thread asks 20,000 times; id i's share falls off as 1/i (a Zipf-like popularity
  // drawn from a small multiplicative generator, so the run repeats exactly).
  constexpr int threads = 4;
  constexpr int requests_per_thread = 20'000;
  constexpr std::uint64_t ids = 5'000;
  std::atomic<int> wrong{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      std::uint64_t x = 0x9e3779b97f4a7c15ULL * static_cast<std::uint64_t>(t + 1);
      for (int r = 0; r < requests_per_thread; ++r) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        const double u = static_cast<double>(x >> 11) / 9007199254740992.0;  // [0, 1)
        const auto id = static_cast<std::uint64_t>(std::exp(u * std::log(double(ids))));
        if (t == 0) {  // a page of eight ids, in one call
          if (r % 8 != 0) continue;
          std::vector<std::uint64_t> page;
          for (std::uint64_t k = id; k < id + 8; ++k) page.push_back(k);
          const auto got = profiles.get_all(page);
          if (!got.ok()) {
            wrong.fetch_add(1, std::memory_order_relaxed);
            continue;
          }
          for (std::uint64_t k : page) {
            const auto it = got->find(k);
            const bool ok = exists(k) ? it != got->end() && it->second.id == k : it == got->end();
            if (!ok) wrong.fetch_add(1, std::memory_order_relaxed);
          }
          continue;
        }
        const absl::StatusOr<profile> p = profiles.get_or_load(id);
        const bool ok = exists(id) ? p.ok() && p->id == id : absl::IsNotFound(p.status());
        if (!ok) wrong.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  for (std::thread& w : workers) w.join();

  const goldylox::cache_stats st = profiles.stats();
  std::printf("requests: %d, backend calls: %d, wrong answers: %d\n", threads * requests_per_thread,
              backend_calls.load(), wrong.load());
  std::printf("hit ratio: %.3f, entries: %zu of %zu, evictions: %llu\n", st.hit_ratio(), st.size,
              st.capacity, static_cast<unsigned long long>(st.evictions));
  // A miss that found another thread loading the same id waited for that load (one flight);
  // an id known not to exist was answered without a load.
  const std::uint64_t loads = st.load_successes + st.load_failures;
  std::printf("misses: %llu, loads: %llu (%llu failed: ids that do not exist), mean load %.0f us\n",
              static_cast<unsigned long long>(st.misses), static_cast<unsigned long long>(loads),
              static_cast<unsigned long long>(st.load_failures),
              loads == 0 ? 0.0 : static_cast<double>(st.load_time_ns) / loads / 1000.0);
  std::printf("left the cache (listener): %llu evicted, %llu expired (stats: %llu, %llu)\n",
              static_cast<unsigned long long>(
                  left[static_cast<int>(goldylox::removal_cause::evicted)].load()),
              static_cast<unsigned long long>(
                  left[static_cast<int>(goldylox::removal_cause::expired)].load()),
              static_cast<unsigned long long>(st.evictions),
              static_cast<unsigned long long>(st.expirations));

  // What a /metrics endpoint would serve (first lines only here).
  const std::string scrape = goldylox::to_prometheus({{"profiles", st}});
  std::size_t shown = 0, lines = 0;
  while (lines < 6 && shown < scrape.size()) {
    const std::size_t end = scrape.find('\n', shown);
    std::printf("  %s\n", scrape.substr(shown, end - shown).c_str());
    shown = end + 1;
    ++lines;
  }
  return wrong.load() == 0 && backend_calls.load() < threads * requests_per_thread ? 0 : 1;
}
