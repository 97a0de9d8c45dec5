// The cold tier's in-RAM index: key hash -> record location, in 8 bytes a slot.
//
// Layout. 256 shards, chosen by the top 8 bits of the key's 64-bit hash (XXH3 of the serialized
// key: stable across processes, so recovery rebuilds the same index). Each shard is a
// linear-probing table of one-word slots:
//   bits 63..40  24 hash bits (bits 55..32 of the hash): the slot's home and its tag
//   bit  39      accessed: set by a get, cleared when reclamation re-inserts the entry
//   bits 38..0   location: (segment slot << offset_bits) + record offset / 8 (never 0, because
//                records start after the 64-byte segment header); 0 is an empty slot
// A slot's home is fastrange(hash bits, capacity), so capacities need not be powers of two: a
// shard grows by 1.5x when it would pass 85 % load, which keeps the load between 57 % and 85 %,
// i.e. 9.4 to 14 bytes per entry (docs/cold-tier.md has the measured figure). The 24 bits are
// compared before a record is touched; the caller then verifies the full key against the record,
// so a collision of 32 bits (8 for the shard, 24 here) costs one extra record read, never a
// wrong answer. Removal is backward-shift deletion, so there are no tombstones and probe
// sequences stay as short as the load allows.
//
// Concurrency. Each shard has a reader-writer lock: gets probe under the shared lock (and may set
// the accessed bit, hence atomic slots with relaxed ordering: the lock orders everything else);
// inserts, removals and reclamation take it exclusively. The store holds the shared lock while it
// reads a record through the location, which is what keeps reclamation from unmapping a segment
// under a reader (reclamation removes every entry of a segment under the exclusive locks first).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>

#include "goldylox/detail/common/platform.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

class cold_index {
 public:
  static constexpr int shard_bits = 8;
  static constexpr std::size_t shard_count = std::size_t{1} << shard_bits;
  static constexpr int location_bits = 39;
  static constexpr std::uint64_t location_mask = (std::uint64_t{1} << location_bits) - 1;
  static constexpr std::uint64_t accessed_bit = std::uint64_t{1} << location_bits;
  static constexpr int tag_shift = 40;
  static constexpr std::size_t max_shard_capacity = std::size_t{1} << 24;

  class shard {
   public:
    // The slot holding `location` for this hash, or nullptr; with the lock held (any mode).
    std::atomic<std::uint64_t>* find_location(std::uint64_t hash,
                                              std::uint64_t location) const noexcept {
      return probe(hash, [&](std::uint64_t word) { return (word & location_mask) == location; });
    }

    // The first slot for this hash whose location satisfies `matches(location)` (the caller
    // compares the key stored there), or nullptr.
    template <class Matches>
    std::atomic<std::uint64_t>* find(std::uint64_t hash, Matches&& matches) const {
      return probe(hash, [&](std::uint64_t word) { return matches(word & location_mask); });
    }

    // Adds an entry (exclusive lock held). The caller has checked that the key is absent.
    // Returns false if the shard cannot grow (2^24 slots): the entry is not added.
    bool insert(std::uint64_t hash, std::uint64_t location) {
      if (size_ + 1 > capacity_ * 85 / 100) {
        if (!grow()) return false;
      }
      place(slots_.get(), capacity_, tag_of(hash) << tag_shift | location);
      ++size_;
      return true;
    }

    // Points an existing slot somewhere else, clearing its accessed bit.
    static void relocate(std::atomic<std::uint64_t>* slot, std::uint64_t location) noexcept {
      const std::uint64_t word = slot->load(std::memory_order_relaxed);
      slot->store((word & ~(accessed_bit | location_mask)) | location, std::memory_order_relaxed);
    }

    static void mark_accessed(std::atomic<std::uint64_t>* slot) noexcept {
      if ((slot->load(std::memory_order_relaxed) & accessed_bit) == 0) {
        slot->fetch_or(accessed_bit, std::memory_order_relaxed);
      }
    }

    // Removes a slot returned by find()/find_location() (exclusive lock held).
    void erase(std::atomic<std::uint64_t>* slot) noexcept {
      std::size_t hole = static_cast<std::size_t>(slot - slots_.get());
      std::size_t i = hole;
      for (;;) {
        i = i + 1 == capacity_ ? 0 : i + 1;
        const std::uint64_t word = slots_[i].load(std::memory_order_relaxed);
        if (word == 0) break;
        const std::size_t home = home_of(word >> tag_shift, capacity_);
        // The entry at i may move back into the hole unless its home lies cyclically in
        // (hole, i]: then the hole is before its home, and moving it would hide it.
        const bool home_in_between =
            hole <= i ? (home > hole && home <= i) : (home > hole || home <= i);
        if (home_in_between) continue;
        slots_[hole].store(word, std::memory_order_relaxed);
        hole = i;
      }
      slots_[hole].store(0, std::memory_order_relaxed);
      --size_;
    }

    // Calls fn(slot) for every occupied slot, where fn may relocate the slot or return true to
    // have it erased (exclusive lock held). Erasing shifts later entries back, so the walk
    // re-examines the current position after an erase and stops after one full lap.
    template <class Fn>
    void for_each(Fn&& fn) {
      if (size_ == 0) return;
      // Start just after an empty slot, so no entry moves across the start of the walk.
      std::size_t start = 0;
      while (slots_[start].load(std::memory_order_relaxed) != 0) ++start;
      std::size_t i = start;
      for (std::size_t n = 0; n < capacity_;) {
        auto* slot = &slots_[i];
        if (slot->load(std::memory_order_relaxed) != 0 && fn(slot)) {
          erase(slot);
          if (slot->load(std::memory_order_relaxed) != 0) continue;  // a shifted-in entry
        }
        i = i + 1 == capacity_ ? 0 : i + 1;
        ++n;
      }
    }

    std::size_t size() const noexcept { return size_; }
    std::size_t capacity() const noexcept { return capacity_; }
    std::shared_mutex& mutex() const noexcept { return mutex_; }

   private:
    static std::uint64_t tag_of(std::uint64_t hash) noexcept { return (hash >> 32) & 0xffffff; }
    static std::size_t home_of(std::uint64_t tag, std::size_t capacity) noexcept {
      return static_cast<std::size_t>((tag * capacity) >> 24);
    }

    template <class Pred>
    std::atomic<std::uint64_t>* probe(std::uint64_t hash, Pred&& pred) const {
      if (capacity_ == 0) return nullptr;
      const std::uint64_t tag = tag_of(hash);
      std::size_t i = home_of(tag, capacity_);
      for (;;) {
        const std::uint64_t word = slots_[i].load(std::memory_order_relaxed);
        if (word == 0) return nullptr;
        if ((word >> tag_shift) == tag && pred(word)) return &slots_[i];
        i = i + 1 == capacity_ ? 0 : i + 1;
      }
    }

    static void place(std::atomic<std::uint64_t>* slots, std::size_t capacity,
                      std::uint64_t word) noexcept {
      std::size_t i = home_of(word >> tag_shift, capacity);
      while (slots[i].load(std::memory_order_relaxed) != 0) i = i + 1 == capacity ? 0 : i + 1;
      slots[i].store(word, std::memory_order_relaxed);
    }

    bool grow() {
      const std::size_t next = capacity_ == 0 ? 16 : capacity_ + capacity_ / 2;
      if (next > max_shard_capacity) return false;
      auto fresh = std::make_unique<std::atomic<std::uint64_t>[]>(next);
      for (std::size_t i = 0; i < next; ++i) fresh[i].store(0, std::memory_order_relaxed);
      for (std::size_t i = 0; i < capacity_; ++i) {
        const std::uint64_t word = slots_[i].load(std::memory_order_relaxed);
        if (word != 0) place(fresh.get(), next, word);
      }
      slots_ = std::move(fresh);
      capacity_ = next;
      return true;
    }

    mutable std::shared_mutex mutex_;
    std::unique_ptr<std::atomic<std::uint64_t>[]> slots_;
    std::size_t capacity_ = 0;
    std::size_t size_ = 0;
  };

  shard& shard_for(std::uint64_t hash) noexcept { return shards_[hash >> (64 - shard_bits)]; }
  const shard& shard_for(std::uint64_t hash) const noexcept {
    return shards_[hash >> (64 - shard_bits)];
  }
  shard& shard_at(std::size_t i) noexcept { return shards_[i]; }

  // Entries and slot bytes, each shard read under its shared lock.
  std::size_t size() const {
    std::size_t n = 0;
    for (const auto& s : shards_) {
      std::shared_lock lock(s.mutex());
      n += s.size();
    }
    return n;
  }
  std::size_t memory_bytes() const {
    std::size_t n = sizeof(*this);
    for (const auto& s : shards_) {
      std::shared_lock lock(s.mutex());
      n += s.capacity() * sizeof(std::uint64_t);
    }
    return n;
  }

 private:
  shard shards_[shard_count];
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
