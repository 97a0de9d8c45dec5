// Component common/: a hierarchical timer wheel, the schedule by which expired entries are found
// and removed without a read (expiry: docs/architecture.md, "Where the next features live").
//
// What it holds. Records of (hash, deadline), deadlines in nanoseconds of the cache's ticker; the
// "hash" is any 64-bit id the owner chooses (the hot table files slot numbers). A
// record is identified by a handle (an index into a slab) that its owner keeps with the entry,
// so cancelling or moving it is O(1): no search, and nothing left behind when an entry leaves
// early (evicted, removed, replaced), which is what bounds the wheel by the entries that have a
// deadline. The hash, not the key, is recorded: the owner finds the entries of that hash again
// when the record falls due and checks their own deadlines, so the wheel never holds a copy of a
// key and a stale record costs one lookup, never a wrong removal.
//
// Layout (Varghese and Lauck's hierarchical wheels, as in Caffeine's TimerWheel and the Linux
// kernel's timers). Five levels of 64 buckets; a bucket of level i spans 2^(24 + 6i) ns: about
// 16.8 ms, 1.07 s, 68.7 s, 73 min and 78 h, so level i covers 64 of its buckets and the whole
// wheel about 208 days (longer deadlines wait in the top level and are looked at again each time
// its bucket comes round). A record goes to the finest level whose range holds its distance from
// the wheel's time, in the bucket of its deadline's tick at that level. Buckets are circular
// doubly linked lists threaded through the slab (32-bit links), so a record costs 24 bytes and
// every operation is O(1); advance() is O(buckets passed + records due or cascaded), and a
// record cascades at most once per level.
//
// advance(now) looks, level by level, at the buckets whose tick came since the last advance (all
// 64 if a whole turn passed), the current tick included: each record found is reported if its
// deadline has passed and otherwise re-placed for the new time, which lands it in a finer level
// (or, at the current level-0 tick, back in the same bucket for the next advance). So a record is
// reported by the first advance whose time reaches its deadline, never before, however long
// between advances. Deadlines already past when scheduled go to the current level-0 bucket and
// are reported by the next advance.
//
// Not thread-safe: its owner serialises calls (the engine holds a lock around it).
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <vector>

#include "goldylox/version.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

class timer_wheel {
 public:
  using handle = std::uint32_t;
  static constexpr handle none = std::numeric_limits<handle>::max();
  static constexpr unsigned levels = 5;
  static constexpr unsigned buckets = 64;  // per level
  static constexpr unsigned finest_shift = 24;

  // A bucket of `level` spans 2^shift(level) nanoseconds.
  static constexpr unsigned shift(unsigned level) noexcept { return finest_shift + 6 * level; }

  // `now`: the ticker's time when the wheel starts (any value; deadlines are compared with it).
  explicit timer_wheel(std::int64_t now = 0) : time_(now) {
    for (auto& level : heads_) level.fill(none);
  }

  std::size_t size() const noexcept { return size_; }
  std::int64_t time() const noexcept { return time_; }

  // Schedules a record; returns its handle. O(1); allocates only when the slab grows (a throw
  // then leaves the wheel as it was). At most 2^32 - 1 records at once (std::length_error).
  handle schedule(std::uint64_t hash, std::int64_t deadline) {
    handle h;
    if (free_ != none) {
      h = free_;
      free_ = slab_[h].next;
    } else {
      if (slab_.size() >= none) throw std::length_error("timer wheel: too many records");
      slab_.push_back({});
      h = static_cast<handle>(slab_.size() - 1);
    }
    slab_[h].hash = hash;
    slab_[h].deadline = deadline;
    place(h);
    ++size_;
    return h;
  }

  // Moves a scheduled record to a new deadline. O(1).
  void reschedule(handle h, std::int64_t deadline) {
    unlink(h);
    slab_[h].deadline = deadline;
    place(h);
  }

  // Removes a scheduled record; its handle may be reused by a later schedule(). O(1).
  void cancel(handle h) {
    unlink(h);
    release(h);
  }

  std::int64_t deadline_of(handle h) const noexcept { return slab_[h].deadline; }
  std::uint64_t hash_of(handle h) const noexcept { return slab_[h].hash; }

  // Moves the wheel's time to `now` (an earlier `now` is ignored: the ticker is monotonic) and
  // calls due(handle, hash, deadline) for every record whose deadline is at or before it. The
  // record is removed before due() runs: its handle is no longer the owner's (it may be reused by
  // a schedule() inside due), and due may schedule, reschedule or cancel any other record. An
  // exception from due() propagates; the records it had yet to report are dropped. Returns how
  // many were reported.
  template <class F>
  std::size_t advance(std::int64_t now, F&& due) {
    if (now < time_) now = time_;
    const std::int64_t before = time_;
    time_ = now;
    std::size_t reported = 0;
    for (unsigned level = 0; level < levels; ++level) {
      const std::int64_t from = before >> shift(level);
      const std::int64_t to = now >> shift(level);
      // Above level 0 the bucket of the current tick was emptied when its tick came, and only
      // records a whole turn away alias into it since: nothing to do until the tick moves.
      if (level > 0 && from == to) break;
      const std::int64_t passed = std::min<std::int64_t>(to - from, buckets - 1);
      for (std::int64_t tick = to - passed; tick <= to; ++tick) {
        reported += expire_bucket(level, static_cast<unsigned>(tick & (buckets - 1)), due);
      }
    }
    return reported;
  }

  // The wheel's records in bytes (its slab and bucket heads), for memory accounting.
  std::size_t memory_bytes() const noexcept {
    return slab_.capacity() * sizeof(record) + sizeof(heads_);
  }

 private:
  static constexpr std::uint16_t not_linked = 0xffff;

  struct record {
    std::uint64_t hash = 0;
    std::int64_t deadline = 0;
    handle prev = none, next = none;    // circular within the bucket; next links the free list
    std::uint16_t bucket = not_linked;  // level * buckets + index
  };

  // The level and bucket for a deadline, from the wheel's time.
  std::uint16_t bucket_for(std::int64_t deadline) const noexcept {
    const std::int64_t delta = deadline - time_;
    unsigned level = 0;
    while (level + 1 < levels && delta >= (std::int64_t{1} << shift(level + 1))) ++level;
    const std::int64_t at = delta <= 0 ? time_ : deadline;
    return static_cast<std::uint16_t>(level * buckets +
                                      static_cast<unsigned>((at >> shift(level)) & (buckets - 1)));
  }

  void place(handle h) {
    record& r = slab_[h];
    r.bucket = bucket_for(r.deadline);
    handle& head = heads_[r.bucket / buckets][r.bucket % buckets];
    if (head == none) {
      r.prev = r.next = h;
      head = h;
    } else {
      const handle tail = slab_[head].prev;
      r.prev = tail;
      r.next = head;
      slab_[tail].next = h;
      slab_[head].prev = h;
    }
  }

  void unlink(handle h) {
    record& r = slab_[h];
    handle& head = heads_[r.bucket / buckets][r.bucket % buckets];
    if (r.next == h) {
      head = none;
    } else {
      slab_[r.prev].next = r.next;
      slab_[r.next].prev = r.prev;
      if (head == h) head = r.next;
    }
  }

  // Takes the bucket's list whole and re-places each record not due (it may land in this very
  // bucket again: it is not looked at twice in this call), chaining the due ones; then frees and
  // reports those, so that due() finds the wheel consistent whatever it schedules or cancels.
  template <class F>
  std::size_t expire_bucket(unsigned level, unsigned index, F& due) {
    handle cur = heads_[level][index];
    if (cur == none) return 0;
    heads_[level][index] = none;
    slab_[slab_[cur].prev].next = none;  // break the circle: walk to the end
    handle chain = none;
    while (cur != none) {
      const handle next = slab_[cur].next;
      record& r = slab_[cur];
      if (r.deadline <= time_) {
        r.bucket = not_linked;
        r.next = chain;
        chain = cur;
      } else {
        place(cur);
      }
      cur = next;
    }
    std::size_t reported = 0;
    while (chain != none) {
      const handle h = chain;
      chain = slab_[h].next;
      const std::uint64_t hash = slab_[h].hash;
      const std::int64_t deadline = slab_[h].deadline;
      release(h);
      ++reported;
      try {
        due(h, hash, deadline);
      } catch (...) {  // the records still chained are dropped with the exception
        while (chain != none) {
          const handle rest = chain;
          chain = slab_[rest].next;
          release(rest);
        }
        throw;
      }
    }
    return reported;
  }

  void release(handle h) noexcept {
    slab_[h].bucket = not_linked;
    slab_[h].next = free_;
    free_ = h;
    --size_;
  }

  std::vector<record> slab_;
  std::array<std::array<handle, buckets>, levels> heads_;
  handle free_ = none;
  std::size_t size_ = 0;
  std::int64_t time_;
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
