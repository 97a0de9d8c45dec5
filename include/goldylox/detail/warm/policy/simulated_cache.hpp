// A cache of keys only, driven by an eviction policy: what goldylox-sim replays traces through
// (simulated_cache), and several such caches over one request stream (simulated_caches), what
// the adaptive policy runs its miniature simulations on.
//
// Layout: a slot_index from key hash to slot (sized for the capacity, so it never grows), the
// reverse array, and a stack of free slots. An access that misses follows the eviction_policy
// contract exactly as the warm tier does (on_miss, victim() while full, on_insert), so a policy
// behaves the same here as in a cache.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <tuple>
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
  P& policy() noexcept { return policy_; }

 private:
  keys_by_slot key_of() const noexcept { return {id_of_.data()}; }

  P policy_;
  slot_index where_;
  std::vector<std::uint64_t> id_of_;
  std::vector<slot> free_;
};

// Caches of the same capacity, one per policy, that all see every request: the adaptive policy's
// miniature simulations, one per expert. Each behaves exactly as a simulated_cache of its policy
// would on the same requests (the same slots, and the same policy events in the same order);
// what they share is the lookup. A request finds its key's slot in every cache with one index
// probe and one record, where separate simulated_caches would each probe their own index and
// confirm the key in their own reverse array: two cache misses per cache per request saved, on
// structures that are cold by the time a sampled request comes back.
//
// Layout: one record per key that at least one cache holds, {key, its slot in each cache or
// none}, in a pool with a free list; a slot_index from key to record; per cache, the record of
// each slot and a stack of free slots. A record goes back to the pool when its last cache
// evicts the key.
template <eviction_policy... P>
  requires(sizeof...(P) >= 1)
class simulated_caches {
 public:
  using slot = std::uint32_t;
  static constexpr std::size_t count = sizeof...(P);

  explicit simulated_caches(std::size_t capacity)
      : policies_(P(capacity)...), index_(std::min(count, std::size_t{2}) * capacity) {
    for (per_cache& c : caches_) {
      c.record_of.assign(capacity, none);
      c.free.reserve(capacity);
      for (std::size_t i = capacity; i-- > 0;) c.free.push_back(static_cast<slot>(i));
    }
    records_.reserve(std::min(count, std::size_t{2}) * capacity);
  }

  // Requests `id` in every cache, first to last. After cache i's access, on_result(i, hit);
  // on_evict(i, key) hears of each key cache i pushes out, as simulated_cache's on_evict does.
  template <class OnEvict, class OnResult>
  void access(std::uint64_t id, OnEvict&& on_evict, OnResult&& on_result) {
    std::uint32_t r = index_.find(id, record_key());
    if (r == none) r = new_record(id);
    for_each_policy([&](auto& policy, std::size_t i) {
      if (const slot s = records_[r].slots[i]; s != none) {
        policy.on_hit(s);
        on_result(i, true);
        return;
      }
      per_cache& c = caches_[i];
      policy.on_miss(id);
      while (c.free.empty()) {
        const slot v = policy.victim();
        // Not r: cache i does not hold id.
        const std::uint32_t rv = c.record_of[v];
        records_[rv].slots[i] = none;
        on_evict(i, records_[rv].key);
        release_if_unused(rv);
        c.free.push_back(v);
      }
      const slot s = c.free.back();
      c.free.pop_back();
      records_[r].slots[i] = s;
      c.record_of[s] = r;
      policy.on_insert(s, id);
      on_result(i, false);
    });
  }

  bool contains(std::size_t cache, std::uint64_t id) const {
    const std::uint32_t r = index_.find(id, record_key());
    return r != none && records_[r].slots[cache] != none;
  }
  std::size_t size(std::size_t cache) const noexcept {
    return caches_[cache].record_of.size() - caches_[cache].free.size();
  }
  template <std::size_t I>
  const auto& policy() const noexcept {
    return std::get<I>(policies_);
  }

 private:
  static constexpr std::uint32_t none = slot_index::none;

  struct record {
    std::uint64_t key;
    std::array<slot, count> slots;  // none: not in that cache
  };
  struct record_keys {
    const record* records;
    std::uint64_t operator()(std::uint32_t r) const noexcept { return records[r].key; }
  };
  struct per_cache {
    std::vector<std::uint32_t> record_of;  // by slot
    std::vector<slot> free;
  };

  record_keys record_key() const noexcept { return {records_.data()}; }

  std::uint32_t new_record(std::uint64_t id) {
    std::uint32_t r;
    if (free_records_.empty()) {
      r = static_cast<std::uint32_t>(records_.size());
      records_.emplace_back();
    } else {
      r = free_records_.back();
      free_records_.pop_back();
    }
    records_[r].key = id;
    records_[r].slots.fill(none);
    index_.assign(id, r, record_key());
    return r;
  }

  void release_if_unused(std::uint32_t r) {
    for (const slot s : records_[r].slots) {
      if (s != none) return;
    }
    index_.erase(records_[r].key, record_key());
    free_records_.push_back(r);
  }

  template <class F>
  void for_each_policy(F&& f) {
    std::size_t i = 0;
    std::apply([&](auto&... policy) { (f(policy, i++), ...); }, policies_);
  }

  std::tuple<P...> policies_;
  std::array<per_cache, count> caches_;
  std::vector<record> records_;
  std::vector<std::uint32_t> free_records_;
  slot_index index_;  // key -> record
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
