// Demotion into the cold tier: evictions from the lowest memory tier wait in a per-thread queue
// until the outermost engine call on that thread returns, then each is written under its key's
// home lock if coherence allows (rule C2 in coherence.hpp).
//
// Why a queue: an eviction reaches the engine inside other locks (the warm tier's sink runs under
// the home lock of the hot victim that displaced it, and the hot tier's under its own victim's),
// and a cold write takes the victim key's home lock, which may be another group's: writing there
// could deadlock against a thread locking in the other order. So the sink only stamps and queues;
// scope (held by every engine call that can evict) drains when the call's lock nesting is back
// to zero. An eviction outside any engine call (none today, but a sink may be called by a tier's
// clear) drains at once.
//
// Owns: the per-thread queue (one per engine type and thread; entries carry the engine's id, so
// one queue serves every engine of the type) and the nesting depth.
// Invariant: drain() runs with the depth raised, so the writes it makes, which may evict and queue
// again, never drain recursively.
// May call: the tiers through tier_stack, cold_coherence for the generation check.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "goldylox/detail/engine/coherence.hpp"
#include "goldylox/detail/engine/tiers.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

template <class K, class S, class Hash, class KeyEqual>
class demotion_queue {
 public:
  using tiers_type = tier_stack<K, S, Hash, KeyEqual>;
  using coherence_type = cold_coherence<K, S, Hash, KeyEqual>;
  using decision = typename tiers_type::decision;

  demotion_queue(const tiers_type& tiers, const coherence_type& coherence) noexcept
      : tiers_(tiers), coherence_(coherence) {}

  demotion_queue(const demotion_queue&) = delete;
  demotion_queue& operator=(const demotion_queue&) = delete;

  // Held by every engine call that may evict into the cold tier: the outermost one drains.
  class scope {
   public:
    explicit scope(const demotion_queue& q) noexcept : q_(q) { ++depth(); }
    scope(const scope&) = delete;
    scope& operator=(const scope&) = delete;
    ~scope() {
      if (--depth() == 0) q_.drain();
    }

   private:
    const demotion_queue& q_;
  };

  // A value leaving memory with its key's generation at that moment (the stamp).
  void push(const K& key, const S& value, std::uint64_t stamp) const noexcept {
    try {
      pending().push_back(std::make_unique<entry>(entry{id_, stamp, key, value}));
      if (depth() == 0) drain();  // an eviction outside any engine call
    } catch (...) {
      tiers_.counters.add(counter::dropped_demotions);
    }
  }

  // Writes this engine's queued demotions (those of other engines on this thread wait for theirs).
  void drain() const noexcept {
    if constexpr (tiers_type::cold_capable) {
      auto& q = pending();
      ++depth();  // the demotions below queue nothing, but must never drain recursively
      for (;;) {
        auto it = std::find_if(q.begin(), q.end(), [&](const auto& p) { return p->owner == id_; });
        if (it == q.end()) break;
        const std::unique_ptr<entry> taken = std::move(*it);
        q.erase(it);
        write(*taken);
      }
      --depth();
    }
  }

 private:
  struct entry {
    std::uint64_t owner;       // the engine's id
    std::uint64_t generation;  // of the key's slot when the value left memory
    K key;
    S value;
  };

  // Under the key's home lock: written only if no memory tier has the key and no write of it came
  // in since the value left memory.
  void write(entry& d) const noexcept {
    try {
      tiers_.hot.compute(
          std::move(d.key),
          [&](const K& k, const S* current) -> decision {
            if (current != nullptr || (tiers_.warm != nullptr && tiers_.warm->contains(k))) {
              return decision::keep();  // back in memory, with this value or a newer one
            }
            if (coherence_.generation_of(k) != d.generation) {  // written since: the value is old
              tiers_.counters.add(counter::cold_refused);
              return decision::keep();
            }
            if (tiers_.cold->put(k, d.value).ok()) {
              tiers_.counters.add(counter::cold_demotions);
            } else {
              tiers_.counters.add(counter::cold_refused);
            }
            return decision::keep();
          },
          [](const K&) noexcept {});
    } catch (...) {
      tiers_.counters.add(counter::cold_refused);
    }
  }

  static std::vector<std::unique_ptr<entry>>& pending() {
    thread_local std::vector<std::unique_ptr<entry>> q;
    return q;
  }
  static unsigned& depth() {
    thread_local unsigned d = 0;
    return d;
  }
  static std::uint64_t next_id() noexcept {
    static std::atomic<std::uint64_t> n{0};
    return n.fetch_add(1, std::memory_order_relaxed) + 1;
  }

  const tiers_type& tiers_;
  const coherence_type& coherence_;
  const std::uint64_t id_ = next_id();
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
