// A count-min sketch of 4-bit counters (TinyLFU's frequency estimate, as Caffeine keeps it): how
// often each key was seen recently, in a few bits per key, with periodic halving so that old
// popularity fades.
//
// Layout. ceil_pow2(max(capacity, 8)) 64-bit words of 16 counters each, so 16 counters per entry
// of capacity at least. A key maps to one 64-byte block of 8 words and to one counter in each of
// 4 pairs of words of that block (depth 4), so an update or a query touches one cache line. The
// key's hash is first mixed with a strong 64-bit mixer (trace ids are small integers; other
// hashes are fine already, mixing again is harmless); the low bits of the mix pick the block, the
// high 32 bits the four counters. increment() raises the key's 4 counters (saturating at 15);
// frequency() is their minimum. Aging: after 10 x capacity increments that changed a counter,
// every counter is halved and the increment count is reduced as Caffeine does:
// (n - odd_counters / 4) / 2.
//
// Sharing. The owner of a W-TinyLFU policy calls it under a shard lock; the engine's promotion
// gate calls it from any thread with no lock. Words and the increment count are atomics read and
// written with relaxed plain loads and stores (no read-modify-write instruction: on x86 they are
// ordinary moves, so the single-owner case costs what plain words would): two threads updating
// one word at once may lose one of the increments, which only makes an estimate a little low, as
// a count-min sketch's estimates are anyway. One halving runs at a time (a flag taken with an
// exchange once per sample); increments racing it may land before or after it.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "goldylox/detail/common/hash.hpp"
#include "goldylox/detail/common/platform.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

class frequency_sketch {
 public:
  explicit frequency_sketch(std::size_t capacity)
      : words_(std::bit_ceil(capacity < 8 ? std::size_t{8} : capacity)),
        table_(std::make_unique<std::atomic<std::uint64_t>[]>(words_)),
        block_mask_(words_ / words_per_block - 1),
        sample_size_(10 * capacity) {
    for (std::size_t i = 0; i < words_; ++i) table_[i].store(0, std::memory_order_relaxed);
  }

  // Moving is for construction (a policy built and then placed): nothing may use `o` meanwhile.
  frequency_sketch(frequency_sketch&& o) noexcept
      : words_(o.words_),
        table_(std::move(o.table_)),
        block_mask_(o.block_mask_),
        sample_size_(o.sample_size_),
        additions_(o.additions_.load(std::memory_order_relaxed)) {}
  frequency_sketch& operator=(frequency_sketch&& o) noexcept {
    words_ = o.words_;
    table_ = std::move(o.table_);
    block_mask_ = o.block_mask_;
    sample_size_ = o.sample_size_;
    additions_.store(o.additions_.load(std::memory_order_relaxed), std::memory_order_relaxed);
    return *this;
  }

  // Counts one access to `hash`; halves every counter once sample_size() increments changed one.
  void increment(std::uint64_t hash) noexcept {
    const std::uint64_t h = splitmix_mix(hash);
    const std::size_t block = static_cast<std::size_t>(h & block_mask_) * words_per_block;
    // The rows written out: the loop cost about as many instructions in control as in work.
    const bool added = increment_row(h, block, 0) | increment_row(h, block, 1) |
                       increment_row(h, block, 2) | increment_row(h, block, 3);
    if (!added) return;
    const std::size_t n = additions_.load(std::memory_order_relaxed) + 1;
    additions_.store(n, std::memory_order_relaxed);
    if (n >= sample_size_ && !halving_.exchange(true, std::memory_order_acquire)) {
      halve();
      halving_.store(false, std::memory_order_release);
    }
  }

  // The estimated number of recent accesses to `hash`, 0..15.
  unsigned frequency(std::uint64_t hash) const noexcept {
    const std::uint64_t h = splitmix_mix(hash);
    const std::size_t block = static_cast<std::size_t>(h & block_mask_) * words_per_block;
    return std::min(std::min(counter(h, block, 0), counter(h, block, 1)),
                    std::min(counter(h, block, 2), counter(h, block, 3)));
  }

  std::size_t sample_size() const noexcept { return sample_size_; }
  std::size_t bytes() const noexcept { return words_ * sizeof(std::uint64_t); }

 private:
  static constexpr unsigned depth = 4;
  static_assert(depth == 4, "increment() and frequency() write the four rows out");
  static constexpr std::size_t words_per_block = 8;  // 64 bytes: one cache line per key
  static constexpr std::uint64_t low_bits = 0x1111111111111111ULL;
  static constexpr std::uint64_t halve_mask = 0x7777777777777777ULL;

  struct position {
    std::size_t word;
    unsigned shift;
  };
  // Row r uses words 2r and 2r + 1 of the block; 8 bits of the high half of h choose the word
  // (1 bit) and the counter within it (4 bits).
  static position locate(std::uint64_t h, std::size_t block, unsigned row) noexcept {
    const auto sel = static_cast<unsigned>(h >> (32 + 8 * row));
    return {block + 2 * row + (sel & 1U), ((sel >> 1) & 0xfU) * 4};
  }

  // Raises row `row`'s counter unless it is saturated; true if it did. Rows use distinct words,
  // so the four calls of an increment are independent.
  bool increment_row(std::uint64_t h, std::size_t block, unsigned row) noexcept {
    const auto [word, shift] = locate(h, block, row);
    const std::uint64_t w = table_[word].load(std::memory_order_relaxed);
    if (((w >> shift) & 0xfU) == 0xfU) return false;
    table_[word].store(w + (std::uint64_t{1} << shift), std::memory_order_relaxed);
    return true;
  }
  unsigned counter(std::uint64_t h, std::size_t block, unsigned row) const noexcept {
    const auto [word, shift] = locate(h, block, row);
    return static_cast<unsigned>((table_[word].load(std::memory_order_relaxed) >> shift) & 0xfU);
  }

  // Out of line: once per 10 x capacity increments, and inlined it made increment() save and
  // restore six registers on every call.
  GOLDYLOX_NOINLINE void halve() noexcept {
    std::size_t odd = 0;
    for (std::size_t i = 0; i < words_; ++i) {
      const std::uint64_t w = table_[i].load(std::memory_order_relaxed);
      odd += static_cast<std::size_t>(std::popcount(w & low_bits));
      table_[i].store((w >> 1) & halve_mask, std::memory_order_relaxed);
    }
    const std::size_t n = additions_.load(std::memory_order_relaxed);
    additions_.store(n > odd / 4 ? (n - odd / 4) / 2 : 0, std::memory_order_relaxed);
  }

  std::size_t words_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> table_;
  std::uint64_t block_mask_;
  std::size_t sample_size_;
  std::atomic<std::size_t> additions_{0};
  std::atomic<bool> halving_{false};
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
