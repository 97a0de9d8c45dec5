// Component hot/ (with table.hpp): the seam through which a replacement policy outside the hot
// tier decides the hot table's evictions instead of its CLOCK hand (engine/governor.hpp is the
// one implementation). May call common/ only.
//
// A governed table tells its governor, under the home lock of the key concerned, of every entry
// it publishes (slot, hash) and every entry it removes, whatever the cause (an erase, a
// replacement by compute, an eviction, clear); after an insert, with no lock held, it asks the
// governor to bring it back to capacity (the governor picked its victims when it heard of the
// insert and now evicts them through hot_table::evict_slot). Lock order: a home lock, then the
// governor's lock, never the other way round (the governor takes no home lock while it holds
// its own).
//
// Reads record the slot they hit in hit_rings: one small lossy ring per (governor shard, thread
// stripe), so a reader writes only lines its own thread writes (a thread has a stripe of its own
// while there are no more threads than stripes) and takes no lock. The governor drains a shard's
// rings under that shard's lock before every decision it makes, so its policy hears of the hits
// in the order each thread made them. A reader that finds its ring full asks the governor to
// drain it (try-lock: a reader never waits) and otherwise drops the record: hit recording is a
// hint, as in Caffeine's read buffers. With one thread nothing is ever dropped (the ring is
// drained as it fills), which is what makes goldylox-sim's replay of a governed cache decide as
// the policy alone does.
//
// Memory order: a ring's head is stored with release after its cell, and the drainer loads it
// with acquire before reading cells; the tail it stores (release) tells readers the space is
// free. Two threads sharing a stripe can overwrite each other's record: a lost hint, never a
// torn or out-of-range value (every record is re-validated by the governor).
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <thread>

#include "goldylox/detail/common/counters.hpp"
#include "goldylox/detail/common/platform.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

class hit_rings {
 public:
  static constexpr std::uint32_t ring_size = 62;  // a ring is 256 bytes
  static constexpr std::size_t max_stripes = 16;

  // shards: a power of two. Stripes: one per core, up to max_stripes (beyond, threads share
  // stripes and the occasional lost record is the price of bounded memory: shards x stripes x
  // 256 bytes, 1 MiB at most).
  explicit hit_rings(std::size_t shards)
      : shard_mask_(shards - 1),
        stripes_(std::min<std::size_t>(
            max_stripes, std::bit_ceil(std::max(1U, std::thread::hardware_concurrency())))),
        rings_(std::make_unique<ring[]>(shards * stripes_)) {}

  // The shard a hash belongs to (bits 16 and up: the table uses the low byte as its tag and the
  // next bits for overflow marks, and the high bits for the home group).
  std::size_t shard_of(std::uint64_t h) const noexcept {
    return static_cast<std::size_t>(h >> 16) & shard_mask_;
  }
  std::size_t shards() const noexcept { return shard_mask_ + 1; }

  // Records a hit on table slot s; false if this thread's ring of the shard is full.
  GOLDYLOX_ALWAYS_INLINE bool record(std::size_t shard, std::uint32_t s) noexcept {
    ring& r = rings_[shard * stripes_ + (this_thread_index() & (stripes_ - 1))];
    const std::uint32_t head = r.head.load(std::memory_order_relaxed);
    if (head - r.tail.load(std::memory_order_acquire) >= ring_size) return false;
    r.cells[head % ring_size].store(s, std::memory_order_relaxed);
    r.head.store(head + 1, std::memory_order_release);
    return true;
  }

  // Calls f(slot) for every record of the shard's rings, oldest first per ring, and frees them.
  // The caller holds the shard's lock (one drainer per shard at a time).
  template <class F>
  void drain(std::size_t shard, F&& f) {
    for (std::size_t i = 0; i < stripes_; ++i) {
      ring& r = rings_[shard * stripes_ + i];
      std::uint32_t t = r.tail.load(std::memory_order_relaxed);
      const std::uint32_t head = r.head.load(std::memory_order_acquire);
      if (head - t > ring_size) t = head - ring_size;  // two readers raced past a full ring
      for (; t != head; ++t) f(r.cells[t % ring_size].load(std::memory_order_relaxed));
      r.tail.store(head, std::memory_order_release);
    }
  }

 private:
  struct alignas(cache_line) ring {
    std::atomic<std::uint32_t> head{0};  // next record's position (readers)
    std::atomic<std::uint32_t> tail{0};  // first undrained position (the drainer)
    std::atomic<std::uint32_t> cells[ring_size] = {};
  };
  const std::size_t shard_mask_;
  const std::size_t stripes_;
  std::unique_ptr<ring[]> rings_;
};

// What a weighted hot table (hot_table::set_weight_bound) or its governor throws for an entry
// heavier than the budget that would hold it; nothing has changed when it is thrown.
struct too_heavy : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// What a governed hot table calls; see the header comment for when and under which lock.
class table_governor {
 public:
  explicit table_governor(std::size_t shards) : hits_(shards) {}
  virtual ~table_governor() = default;
  table_governor(const table_governor&) = delete;
  table_governor& operator=(const table_governor&) = delete;

  // Under the home lock, before slot s becomes visible with an entry of hash h and weight w (0
  // in a table without weights). May throw (the policy's allocation, an entry heavier than its
  // shard's budget): the table then abandons the insert.
  virtual void on_publish(std::size_t s, std::uint64_t h, std::size_t w) = 0;
  // Under the home lock, before the value of slot s (hash h) is replaced by one of weight w, in a
  // table with weights. May choose victims (after_insert evicts them) but never the entry itself;
  // may throw as on_publish does: the table then keeps the old value.
  virtual void on_reweigh(std::size_t s, std::uint64_t h, std::size_t w) = 0;
  // Throws too_heavy if an entry of weight w is heavier than a shard's share of the budget.
  virtual void check_weight(std::size_t w) const = 0;
  // Under the home lock, before slot s (holding an entry of hash h) is emptied.
  virtual void on_remove(std::size_t s, std::uint64_t h) noexcept = 0;
  // With no lock held, after an insert of hash h (or a replace that changed a weight): evict the
  // victims chosen for it.
  virtual void after_insert(std::uint64_t h) noexcept = 0;
  // A reader's ring of `shard` is full: drain the shard if its lock is free (never waits).
  virtual void rings_full(std::size_t shard) noexcept = 0;

  hit_rings& hits() noexcept { return hits_; }

 private:
  hit_rings hits_;
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
