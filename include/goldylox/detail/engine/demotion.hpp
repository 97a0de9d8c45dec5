// Demotion into the cold tier: evictions from the lowest memory tier wait in a queue of the engine
// on the evicting thread until that engine's outermost call on the thread returns, then each is
// written under its key's home lock if coherence allows (rule C2 in coherence.hpp).
//
// Why a queue: an eviction reaches the engine inside other locks (the warm tier's sink runs under
// the home lock of the hot victim that displaced it, and the hot tier's under its own victim's),
// and a cold write takes the victim key's home lock, which may be another group's: writing there
// could deadlock against a thread locking in the other order. So the sink only registers and
// queues; scope (held by every engine call that can evict) drains when this engine's call nesting
// on the thread is back to zero. An eviction outside any call of this engine drains at once.
//
// Why per (engine, thread): calls nest across engines (a callback of one cache calls another
// cache of the same type), and a queue or depth shared by the engines of a type let one engine's
// scope end inside another's with its entries left behind for a drain that never took them. Each
// thread keeps a small vector of frames {engine id, depth, entries}, one per engine with a call
// in progress or entries pending on the thread; a frame goes when its depth is zero and it is
// empty, so a thread that exits holds none.
//
// Owns: the frames (one thread_local vector per engine type; entries of one engine only ever sit
// in that engine's frame). Each queued entry owns its in-flight ticket (coherence.hpp), registered
// from the moment its value left memory until its write decides, or until the entry is destroyed.
// Invariant: drain() runs with the frame's depth raised, so the writes it makes never drain
// recursively.
// May call: the tiers through tier_stack, cold_coherence for the in-flight registry.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
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

  // Held by every engine call that may evict into the cold tier: this engine's outermost one on
  // the thread drains.
  class scope {
   public:
    explicit scope(const demotion_queue& q) : q_(q) { ++q.frame().depth; }
    scope(const scope&) = delete;
    scope& operator=(const scope&) = delete;
    ~scope() {
      frame_type* f = q_.find_frame();
      if (--f->depth == 0) q_.drain();
    }

   private:
    const demotion_queue& q_;
  };

  // The warm tier's stamp: runs under its shard lock as the value of `key` leaves, and registers
  // the departure there (C2). Returns the entry to pass to push_stamped(), or 0 if it could not
  // be made (then the departure is counted as dropped).
  std::uint64_t depart(const K& key) const noexcept {
    try {
      auto e = std::make_unique<entry>(coherence_, key);
      coherence_.enter(e->ticket);
      return reinterpret_cast<std::uintptr_t>(e.release());
    } catch (...) {
      return 0;
    }
  }

  // The warm tier's sink, after its lock: queues the entry depart() made, with its value.
  // admitted = false drops it (the admission rule: counted by the caller).
  void push_stamped(const S& value, std::uint64_t stamp, bool admitted) const noexcept {
    if (stamp == 0) {
      tiers_.counters.add(counter::dropped_demotions);
      return;
    }
    std::unique_ptr<entry> e(reinterpret_cast<entry*>(static_cast<std::uintptr_t>(stamp)));
    if (!admitted) return;
    try {
      e->value.emplace(value);
    } catch (...) {
      tiers_.counters.add(counter::dropped_demotions);
      return;
    }
    queue(std::move(e));
  }

  // The hot tier's sink (no warm tier), under the victim's home lock: registers and queues.
  void push(const K& key, const S& value) const noexcept {
    std::unique_ptr<entry> e;
    try {
      e = std::make_unique<entry>(coherence_, key);
      e->value.emplace(value);
    } catch (...) {
      tiers_.counters.add(counter::dropped_demotions);
      return;
    }
    coherence_.enter(e->ticket);
    queue(std::move(e));
  }

  // Writes this engine's queued demotions on this thread.
  void drain() const noexcept {
    frame_type* f = find_frame();
    if (f == nullptr) return;
    ++f->depth;  // the writes below queue nothing, but must never drain recursively
    if constexpr (tiers_type::cold_capable) {
      for (;;) {
        f = find_frame();
        if (f->entries.empty()) break;
        std::vector<std::unique_ptr<entry>> batch;
        batch.swap(f->entries);  // FIFO: a key's departures are written in the order they left
        for (auto& e : batch) {
          write(*e);
          e.reset();
        }
      }
    }
    f = find_frame();
    if (--f->depth == 0 && f->entries.empty()) release_frame();
  }

 private:
  struct entry {
    entry(const coherence_type& c, const K& key) : registry(c), ticket(key) {}
    entry(const entry&) = delete;
    entry& operator=(const entry&) = delete;
    ~entry() { registry.leave(ticket); }  // every path out of the queue leaves the registry

    const coherence_type& registry;
    inflight_demotion<K> ticket;  // the key, registered while the value is in flight
    std::optional<S> value;
  };

  struct frame_type {
    std::uint64_t owner = 0;  // the engine's id
    unsigned depth = 0;       // this engine's calls in progress on the thread
    std::vector<std::unique_ptr<entry>> entries;
  };

  void queue(std::unique_ptr<entry> e) const noexcept {
    try {
      frame_type& f = frame();
      f.entries.push_back(std::move(e));
      if (f.depth == 0) drain();  // an eviction outside any call of this engine
    } catch (...) {               // e (if not moved) leaves the registry as it goes
      tiers_.counters.add(counter::dropped_demotions);
      if (frame_type* f = find_frame(); f != nullptr && f->depth == 0 && f->entries.empty()) {
        release_frame();
      }
    }
  }

  // Under the key's home lock: written only if no memory tier has the key and no write or later
  // departure of it came in since the value left memory, and (write-through) the cold tier does
  // not hold it already.
  void write(entry& d) const noexcept {
    try {
      tiers_.hot.compute(
          K(d.ticket.key),
          [&](const K& k, const S* current) -> decision {
            const bool in_memory =
                current != nullptr || (tiers_.warm != nullptr && tiers_.warm->contains(k));
            // Read after the memory check: a departure that emptied the warm tier registered
            // before it, and has marked this entry.
            const bool superseded = coherence_.leave(d.ticket);
            if (in_memory) return decision::keep();  // this value or a newer one, demoted later
            if (superseded) {
              tiers_.counters.add(counter::cold_superseded);
              return decision::keep();
            }
            // Write-through: a record of the key holds this very value (rule C4), so rewriting
            // it would cost a disk write (and with every_write a sync) for nothing. A record
            // that reclamation dropped is absent here, and the value is written as usual.
            if (tiers_.config.cold_tier_write_through && tiers_.cold->contains(k)) {
              tiers_.counters.add(counter::cold_already_stored);
              return decision::keep();
            }
            if (tiers_.cold->put(k, *d.value).ok()) {
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

  // This engine's frame on the calling thread, made if absent.
  frame_type& frame() const {
    if (frame_type* f = find_frame()) return *f;
    auto& fs = frames();
    fs.push_back(frame_type{id_, 0, {}});
    return fs.back();
  }
  frame_type* find_frame() const noexcept {
    for (frame_type& f : frames()) {
      if (f.owner == id_) return &f;
    }
    return nullptr;
  }
  void release_frame() const noexcept {
    auto& fs = frames();
    fs.erase(
        std::find_if(fs.begin(), fs.end(), [&](const frame_type& f) { return f.owner == id_; }));
  }

  static std::vector<frame_type>& frames() {
    thread_local std::vector<frame_type> fs;
    return fs;
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
