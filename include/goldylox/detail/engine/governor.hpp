// The memory tiers as one table: the warm tier's replacement policy deciding the hot table's
// evictions (hot/governed.hpp is the seam; this is its implementation).
//
// Why. With two tables, every entry the policy keeps in memory but the hot tier lets go has to
// move between them, and every hot miss looks in a second index: the whole cache measured 0.4-0.5x
// the throughput of a sharded LRU and below its own policy's hit ratio on traces (docs/
// eviction.md). Here every memory entry lives in the lock-free hot table, and the policy that
// would have run the warm tier (adaptive by default) decides over all of them: a read is the hot
// table's read plus one record in a ring its own thread writes, and the hit ratio is the
// policy's at the whole memory budget.
//
// Layout. 2^n shards by hash (hit_rings::shard_of), each with its own lock, policy (of the
// shard's share of the capacity), free list of policy slots and list of victims chosen but not
// yet evicted. Policy slots are numbered globally (shard * stride + slot) so one array maps a
// table slot to its policy slot (`owner_`) and one maps a policy slot back to its entry's hash
// and table slot (`resident_`: one line to read when a victim is chosen or an entry leaves).
//
// Events. Under the key's home lock the table calls on_publish (the shard's hits are drained
// first, then the policy hears on_miss, picks victims while it is full, and on_insert) and
// on_remove (the policy forgets the entry, unless it was a victim already). Victims are evicted
// after the insert's home lock is released (after_insert), each through hot_table::evict_slot,
// which checks that the slot still holds an entry of the victim's hash. Lock order: home lock,
// then shard lock; the shard lock is never held while a home lock is taken.
//
// Invariants (per shard, under its lock): a policy slot is either free, or resident with
// owner_[resident_[g].pos] == g; a victim's slot is free and its table slot's owner_ is cleared
// when it is chosen, so the removal that follows finds nothing to forget. owner_ entries of one
// table slot are written under different shards' locks over time, but always in the order the
// table's tags impose (a slot is emptied, which on_remove precedes, before it can be claimed again,
// which on_publish follows). The table's size exceeds its capacity by at most the victims chosen
// and not yet evicted (one per insert in flight).
//
// Weights (a table with set_weight_bound): each shard gets an equal share of the table's weight
// budget and keeps the weight of its resident entries (in resident_, as the table reports them
// in on_publish and on_reweigh); it chooses victims until both its entry count and its weight
// fit. An entry heavier than a shard's share is refused (std::invalid_argument). A replace that
// makes an entry heavier never chooses that entry (it leaves the policy meanwhile and comes back
// as newly inserted, as in the warm tier).
//
// Learning off the request path works as in the warm tier (maintenance.hpp): defer_learning,
// learn(wait), learning_backlog.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iterator>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "goldylox/detail/common/group_lock.hpp"
#include "goldylox/detail/hot/governed.hpp"
#include "goldylox/detail/warm/policy/any_policy.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

template <class Table>
class slot_governor final : public table_governor {
 public:
  // The governor of `table` with a policy per shard from make_policy(shard capacity, shards);
  // capacity is the table's. Installs itself in the table (which must be empty and must not be
  // used before this constructor returns).
  slot_governor(Table& table, const policy_factory& make_policy)
      : table_governor(shard_count(table.capacity())),
        table_(table),
        shards_(hits().shards()),
        stride_((table.capacity() + shards_ - 1) / shards_),
        owner_(std::make_unique<std::atomic<std::uint32_t>[]>(table.slot_count())),
        resident_(std::make_unique<resident[]>(shards_ * stride_)) {
    if (table.max_weight() != 0 && table.max_weight() < shards_) {
      throw std::invalid_argument("goldylox: a weight budget must be at least the shard count");
    }
    if (shards_ * stride_ >= none || table.slot_count() > none) {
      throw std::invalid_argument("goldylox: the governed hot table holds too many entries");
    }
    for (std::size_t s = 0; s < table.slot_count(); ++s) {
      owner_[s].store(none, std::memory_order_relaxed);
    }
    const std::size_t base = table.capacity() / shards_, extra = table.capacity() % shards_;
    shard_.reserve(shards_);
    for (std::size_t i = 0; i < shards_; ++i) {
      const std::size_t entries = std::max<std::size_t>(1, base + (i < extra));
      shard_.push_back(std::make_unique<shard>(make_policy(entries, shards_), entries,
                                               table.max_weight() / shards_));
    }
    table.set_governor(this);
  }

  // Shards for a table of `capacity` entries: enough that two writers rarely meet (4 per core, as
  // the warm tier), but each with at least 4096 entries. A shard's policy sees only its share of
  // the keys and of the capacity, and with fewer entries per shard the hash's imbalance between
  // shards (about 1/sqrt(entries)) and the split itself start to cost hit ratio: a cache of up
  // to 8191 entries has one shard and decides exactly as its policy alone (goldylox-sim).
  // Reads never take a shard's lock, so a small cache pays for its single shard only on writes.
  static std::size_t shard_count(std::size_t capacity) {
    const std::size_t want = std::bit_ceil(std::max(1U, std::thread::hardware_concurrency()) * 4U);
    return std::max<std::size_t>(
        1, std::min(want, std::bit_floor(std::max<std::size_t>(1, capacity / 4096))));
  }

  void on_publish(std::size_t s, std::uint64_t h, std::size_t w) override {
    const std::size_t i = hits().shard_of(h);
    shard& sh = *shard_[i];
    std::lock_guard lock(sh.mutex);
    check_weight(sh, w);
    drain(i, sh);
    sh.policy.on_miss(h);
    while (sh.policy.size() >= sh.policy.capacity() ||
           (sh.policy.size() != 0 && sh.weight + w > sh.max_weight)) {
      choose_victim(i, sh, sh.policy.victim());
    }
    const slot_type ps = sh.free.back();
    sh.policy.on_insert(ps, h);  // a throw leaves ps free: the table abandons the insert
    sh.free.pop_back();
    const std::size_t g = i * stride_ + ps;
    resident_[g] = {h, static_cast<std::uint32_t>(s), w};
    sh.weight += w;
    owner_[s].store(static_cast<std::uint32_t>(g), std::memory_order_relaxed);
    if (learning_due_ && sh.policy.learning_backlog() >= learning_mark_) {
      sh.due.store(true, std::memory_order_relaxed);
    }
  }

  void check_weight(std::size_t w) const override { check_weight(*shard_[0], w); }

  void on_reweigh(std::size_t s, std::uint64_t h, std::size_t w) override {
    const std::size_t i = hits().shard_of(h);
    shard& sh = *shard_[i];
    std::lock_guard lock(sh.mutex);
    check_weight(sh, w);
    const std::uint32_t g = owner_[s].load(std::memory_order_relaxed);
    if (g == none || g / stride_ != i || resident_[g].hash != h) return;  // a victim already
    const std::size_t old = std::exchange(resident_[g].weight, w);
    sh.weight = sh.weight - old + w;
    if (sh.weight <= sh.max_weight) return;
    drain(i, sh);
    // The grown entry leaves the policy while others are evicted for it, so it is never picked
    // (it fits on its own: checked above, so the loop ends), and comes back as newly inserted.
    const auto own = static_cast<slot_type>(g - i * stride_);
    sh.policy.on_erase(own);
    try {
      while (sh.weight > sh.max_weight && sh.policy.size() > 0) {
        choose_victim(i, sh, sh.policy.victim());
      }
    } catch (...) {  // the table keeps the old value: so does its weight here
      resident_[g].weight = old;
      sh.weight = sh.weight - w + old;
      sh.policy.on_miss(h);
      sh.policy.on_insert(own, h);
      throw;
    }
    sh.policy.on_miss(h);
    sh.policy.on_insert(own, h);
  }

  void on_remove(std::size_t s, std::uint64_t h) noexcept override {
    const std::size_t i = hits().shard_of(h);
    shard& sh = *shard_[i];
    std::lock_guard lock(sh.mutex);
    const std::uint32_t g = owner_[s].load(std::memory_order_relaxed);
    if (g == none || g / stride_ != i || resident_[g].hash != h) return;  // a victim already
    owner_[s].store(none, std::memory_order_relaxed);
    const auto ps = static_cast<slot_type>(g - i * stride_);
    try {
      sh.policy.on_erase(ps);
    } catch (...) {  // a policy that failed to forget keeps a stale slot: it will be its victim
      return;        // (and its weight goes when it is chosen, in choose_victim)
    }
    sh.weight -= resident_[g].weight;
    sh.free.push_back(ps);  // reserved for the capacity at construction: cannot throw
  }

  // Takes the shard's victims a batch at a time (no allocation) and evicts them with the shard's
  // lock released. An eviction that cannot retire its node (out of memory) leaves the entry in
  // the table, unknown to the policy: the table then holds one entry more than its capacity.
  void after_insert(std::uint64_t h) noexcept override {
    shard& sh = *shard_[hits().shard_of(h)];
    while (sh.pending.load(std::memory_order_relaxed) != 0) {
      victim batch[8];
      std::size_t n = 0;
      {
        std::lock_guard lock(sh.mutex);
        n = std::min(std::size(batch), sh.victims.size());
        std::copy(sh.victims.end() - static_cast<std::ptrdiff_t>(n), sh.victims.end(), batch);
        sh.victims.resize(sh.victims.size() - n);
        sh.pending.store(sh.victims.size(), std::memory_order_relaxed);
      }
      for (std::size_t k = 0; k < n; ++k) {
        try {
          table_.evict_slot(batch[k].pos, batch[k].hash);
        } catch (...) {  // retiring a node failed to allocate: the entry stays, untracked
        }
      }
    }
    if (sh.due.load(std::memory_order_relaxed) &&
        sh.due.exchange(false, std::memory_order_relaxed)) {
      learning_due_();
    }
  }

  void rings_full(std::size_t i) noexcept override {
    shard& sh = *shard_[i];
    std::unique_lock lock(sh.mutex, std::try_to_lock);
    if (!lock.owns_lock()) return;
    try {
      drain(i, sh);
    } catch (...) {  // a policy that cannot record a hit loses it: hits are hints
    }
  }

  // As the warm tier's: from now on each shard's policy queues up to `batch` requests' learning
  // (its miniature simulations, its training pairs), and `due` runs (outside every lock, after
  // an insert) when a shard's backlog reaches `notify_at`, for a background job to call learn()
  // (maintenance.hpp). Hits are still drained by every insert, before its decisions: a policy
  // decides on every hit recorded so far, deferred or not. Set before use; `due` must not throw.
  void defer_learning(std::size_t batch, std::size_t notify_at, std::function<void()> due) {
    for (auto& sh : shard_) {
      std::lock_guard lock(sh->mutex);
      sh->policy.defer_learning(batch);
    }
    learning_mark_ = notify_at;
    learning_due_ = std::move(due);
  }

  // Has every shard's policy learn what it queued; with `wait` false, skips a shard whose lock
  // is taken. Returns how many shards learnt.
  std::size_t learn(bool wait) {
    std::size_t learnt = 0;
    for (std::size_t i = 0; i < shards_; ++i) {
      shard& sh = *shard_[i];
      std::unique_lock lock(sh.mutex, std::defer_lock);
      if (wait) {
        lock.lock();
      } else if (!lock.try_lock()) {
        continue;
      }
      drain(i, sh);  // hits first: they are requests the policy learns from too
      learnt += sh.policy.learn() ? 1 : 0;
    }
    return learnt;
  }

  std::size_t learning_backlog() {
    std::size_t n = 0;
    for (auto& sh : shard_) {
      std::lock_guard lock(sh->mutex);
      n += sh->policy.learning_backlog();
    }
    return n;
  }

 private:
  using slot_type = any_policy::slot;
  static constexpr std::uint32_t none = 0xffffffffU;
  struct resident {
    std::uint64_t hash;
    std::uint32_t pos;       // table slot
    std::size_t weight = 0;  // as the table weighed it (0 without weights)
  };
  struct victim {
    std::size_t pos;
    std::uint64_t hash;
  };
  struct alignas(cache_line) shard {
    shard(any_policy p, std::size_t entries, std::size_t weight_budget)
        : policy(std::move(p)), max_weight(weight_budget == 0 ? SIZE_MAX : weight_budget) {
      free.reserve(entries);
      victims.reserve(64);
      for (std::size_t s = entries; s-- > 0;) free.push_back(static_cast<slot_type>(s));
    }
    group_lock mutex;
    any_policy policy;
    std::vector<slot_type> free;          // policy slots not in use, lowest on top
    std::vector<victim> victims;          // chosen, not yet evicted
    std::atomic<std::size_t> pending{0};  // victims.size(), for a lock-free check
    std::atomic<bool> due{false};         // the learning backlog reached the mark
    const std::size_t max_weight;         // SIZE_MAX without weights
    std::size_t weight = 0;               // of the resident entries
  };

  static void check_weight(const shard& sh, std::size_t w) {
    if (w > sh.max_weight) {
      throw too_heavy("goldylox: an entry weighing " + std::to_string(w) +
                      " exceeds its shard's weight budget of " + std::to_string(sh.max_weight));
    }
  }

  // Under the shard's lock: policy slot v (just returned by victim()) leaves the policy; its
  // entry is queued for after_insert to evict.
  void choose_victim(std::size_t i, shard& sh, slot_type v) {
    const std::size_t g = i * stride_ + v;
    const resident r = resident_[g];
    // Normally the slot still maps to g; after a policy failed to forget an entry (on_remove)
    // its slot may hold another's, whose mapping stays.
    std::uint32_t expected = static_cast<std::uint32_t>(g);
    owner_[r.pos].compare_exchange_strong(expected, none, std::memory_order_relaxed);
    sh.weight -= r.weight;
    sh.free.push_back(v);  // reserved for the capacity: cannot throw
    // A few at a time, within its reserve; a heavy entry may choose more, and if growing the
    // list fails the entry stays in the table untracked (as after_insert's failures do).
    sh.victims.push_back({r.pos, r.hash});
    sh.pending.store(sh.victims.size(), std::memory_order_relaxed);
  }

  // Under the shard's lock: the hits readers recorded, for the entries still resident here.
  void drain(std::size_t i, shard& sh) {
    hits().drain(i, [&](std::uint32_t s) {
      if (s >= table_.slot_count()) return;
      const std::uint32_t g = owner_[s].load(std::memory_order_relaxed);
      if (g != none && g / stride_ == i) sh.policy.on_hit(static_cast<slot_type>(g - i * stride_));
    });
  }

  Table& table_;
  const std::size_t shards_;
  const std::size_t stride_;
  std::unique_ptr<std::atomic<std::uint32_t>[]> owner_;  // table slot -> policy slot, or none
  std::unique_ptr<resident[]> resident_;                 // policy slot -> its entry
  std::vector<std::unique_ptr<shard>> shard_;
  std::size_t learning_mark_ = 0;
  std::function<void()> learning_due_;
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
