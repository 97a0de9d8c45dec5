// Trace replay: runs an eviction policy (or Belady's optimum) over a trace and counts misses,
// under libCacheSim's rules so results compare with its published numbers: capacity in objects,
// a cold start, every request counted, every miss inserted.
//
// A policy is driven through simulated_cache, exactly as the warm tier drives it, with the object
// id mixed by splitmix_mix as the key hash: the hash the whole cache gives the same key in
// `goldylox-sim --tiered` (its fixed_hash), so a policy that samples or counts by hash (adaptive,
// W-TinyLFU) sees the same keys alone and in the cache. The mix is a bijection: ids stay
// distinct, so ghost lists never confuse two objects.
//
// Belady (OPT/MIN) evicts the resident object whose next request is farthest away, never-again
// counting as infinitely far; a max-heap with lazy deletion makes it O(log n) per request. The
// evicted object is chosen before the new one is inserted, as in libCacheSim: inserting a
// never-again object and evicting it next time costs the same misses as bypassing it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <queue>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "goldylox/concepts.hpp"
#include "goldylox/detail/common/hash.hpp"
#include "goldylox/detail/warm/policy/simulated_cache.hpp"
#include "sim/trace.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

struct replay_result {
  std::uint64_t requests = 0;
  std::uint64_t misses = 0;
  double miss_ratio() const noexcept {
    return requests == 0 ? 0.0 : static_cast<double>(misses) / static_cast<double>(requests);
  }
};

template <eviction_policy P>
replay_result replay(const std::vector<trace_request>& trace, std::size_t capacity) {
  simulated_cache<P> cache(capacity);
  replay_result r;
  for (const trace_request& q : trace) {
    ++r.requests;
    if (!cache.access(splitmix_mix(q.id))) ++r.misses;
  }
  return r;
}

inline replay_result replay_belady(const std::vector<trace_request>& trace, std::size_t capacity) {
  constexpr std::int64_t never = std::numeric_limits<std::int64_t>::max();
  // Resident objects and the next-access time each was last filed under.
  absl::flat_hash_map<std::uint64_t, std::int64_t> resident;
  resident.reserve(capacity + 1);
  std::priority_queue<std::pair<std::int64_t, std::uint64_t>> farthest;
  replay_result r;
  for (const trace_request& q : trace) {
    ++r.requests;
    const std::int64_t next = q.next_access < 0 ? never : q.next_access;
    if (const auto it = resident.find(q.id); it != resident.end()) {
      it->second = next;
      farthest.emplace(next, q.id);
      continue;
    }
    ++r.misses;
    if (resident.size() >= capacity) {
      for (;;) {
        const auto [when, id] = farthest.top();
        farthest.pop();
        const auto it = resident.find(id);
        if (it != resident.end() && it->second == when) {  // not a stale heap entry
          resident.erase(it);
          break;
        }
      }
    }
    resident.emplace(q.id, next);
    farthest.emplace(next, q.id);
  }
  return r;
}

}  // namespace detail
GOLDYLOX_END_NAMESPACE
