// A cache of keys only, driven by an eviction policy: what goldylox-sim replays traces through,
// and what the adaptive policy runs its miniature simulations on.
//
// Layout: a slot_index from key hash to slot (sized for the capacity, so it never grows), the
// reverse array, and a stack of free slots. An access that misses follows the eviction_policy
// contract exactly as the warm tier does (on_miss, victim() while full, on_insert), so a policy
// behaves the same here as in a cache.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "goldylox/concepts.hpp"
#include "goldylox/detail/warm/policy/slot_index.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

template <eviction_policy P>
class simulated_cache {
 public:
  using slot = typename P::slot;

  template <class... Args>
  explicit simulated_cache(std::size_t capacity, Args&&... policy_args)
      : policy_(capacity, std::forward<Args>(policy_args)...), where_(capacity), id_of_(capacity) {
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
    if (const slot s = where_.find(id, key_of()); s != slot_index::none) {
      policy_.on_hit(s);
      return true;
    }
    policy_.on_miss(id);
    while (free_.empty()) {
      const slot v = policy_.victim();
      where_.erase(id_of_[v], key_of());
      on_evict(id_of_[v]);
      free_.push_back(v);
    }
    const slot s = free_.back();
    free_.pop_back();
    id_of_[s] = id;
    where_.assign(id, s, key_of());
    policy_.on_insert(s, id);
    return false;
  }

  std::size_t size() const noexcept { return where_.size(); }
  bool contains(std::uint64_t id) const { return where_.contains(id, key_of()); }
  const P& policy() const noexcept { return policy_; }

 private:
  keys_by_slot key_of() const noexcept { return {id_of_.data()}; }

  P policy_;
  slot_index where_;
  std::vector<std::uint64_t> id_of_;
  std::vector<slot> free_;
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
