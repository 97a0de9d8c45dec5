// A cache of keys only, driven by an eviction policy: what goldylox-sim replays traces through,
// and what the adaptive policy runs its miniature simulations on.
//
// Layout: a hash map from key hash to slot, the reverse array, and a stack of free slots. An
// access that misses follows the eviction_policy contract exactly as the warm tier does (on_miss,
// victim() while full, on_insert), so a policy behaves the same here as in a cache.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "goldylox/concepts.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

template <eviction_policy P>
class simulated_cache {
 public:
  using slot = typename P::slot;

  template <class... Args>
  explicit simulated_cache(std::size_t capacity, Args&&... policy_args)
      : policy_(capacity, std::forward<Args>(policy_args)...), id_of_(capacity) {
    where_.reserve(capacity + 1);
    free_.reserve(capacity);
    for (std::size_t i = capacity; i-- > 0;) free_.push_back(static_cast<slot>(i));
  }

  // Requests `id`; true on a hit. A miss is always inserted; on_evict(id) hears of each key it
  // pushes out.
  bool access(std::uint64_t id) {
    return access(id, [](std::uint64_t) {});
  }
  template <class OnEvict>
  bool access(std::uint64_t id, OnEvict&& on_evict) {
    if (const auto it = where_.find(id); it != where_.end()) {
      policy_.on_hit(it->second);
      return true;
    }
    policy_.on_miss(id);
    while (free_.empty()) {
      const slot v = policy_.victim();
      where_.erase(id_of_[v]);
      on_evict(id_of_[v]);
      free_.push_back(v);
    }
    const slot s = free_.back();
    free_.pop_back();
    id_of_[s] = id;
    where_.emplace(id, s);
    policy_.on_insert(s, id);
    return false;
  }

  std::size_t size() const noexcept { return where_.size(); }
  bool contains(std::uint64_t id) const { return where_.contains(id); }
  const P& policy() const noexcept { return policy_; }

 private:
  P policy_;
  absl::flat_hash_map<std::uint64_t, slot> where_;
  std::vector<std::uint64_t> id_of_;
  std::vector<slot> free_;
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
