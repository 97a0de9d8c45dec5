// LFU: evict the entry with the fewest hits since it was inserted.
//
// Which LFU: counts are kept only while an entry is resident (an evicted entry that comes back
// starts again at 1), and ties go to the entry that reached the lowest count first — the one that
// has waited longest at that count. This is the "in-cache LFU" of libCacheSim, whose miss ratios
// the trace tests reproduce; the "perfect" LFU of the ARC paper keeps counts forever.
//
// O(1) per event (Shah, Mitra & Matani's frequency list): entries with the same count share a
// bucket, buckets form a list in increasing count order, so the victim is the oldest entry of the
// first bucket and a hit moves an entry to the next bucket, creating it if that count is not yet
// present. At most one bucket per resident entry exists, so buckets live in a pool of `capacity`
// indices of their own.
//
// Memory per entry: 8 bytes of entry links, 4 for the entry's bucket, and up to 24 for a bucket
// (count, bucket links, its entry list's sentinel).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "goldylox/detail/warm/policy/classic.hpp"
#include "goldylox/detail/warm/policy/index_lists.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

class lfu_policy {
 public:
  using slot = std::uint32_t;
  static constexpr std::string_view name = "LFU";

  explicit lfu_policy(std::size_t capacity)
      : capacity_(checked_policy_capacity(capacity, name)),
        entries_(capacity, capacity),  // one entry list per bucket: list index = bucket index
        bucket_of_(capacity, none),
        buckets_(capacity, 1),  // list 0: buckets in increasing count order
        count_(capacity, 0) {
    free_buckets_.reserve(capacity);
    for (std::size_t b = capacity; b-- > 0;) free_buckets_.push_back(static_cast<bucket>(b));
  }

  std::size_t capacity() const noexcept { return capacity_; }
  std::size_t size() const noexcept { return size_; }

  void on_hit(slot s) noexcept {
    const bucket b = bucket_of_[s];
    const std::uint64_t next_count = count_[b] + 1;
    bucket target = buckets_.next_older(b);  // list 0 runs from the lowest count (front) up
    if (target == none || count_[target] != next_count) {
      if (entries_.size(b) == 1) {  // alone at its count: the bucket itself moves up one
        count_[b] = next_count;
        return;
      }
      target = new_bucket_after(b, next_count);
    }
    entries_.unlink(b, s);
    entries_.push_back(target, s);
    bucket_of_[s] = target;
    if (entries_.empty(b)) free_bucket(b);
  }

  void on_miss(std::uint64_t) noexcept {}

  slot victim() noexcept {
    const bucket b = buckets_.front(0);
    if (b == none) return none;
    const slot s = entries_.pop_front(b);
    if (entries_.empty(b)) free_bucket(b);
    --size_;
    return s;
  }

  void on_insert(slot s, std::uint64_t) noexcept {
    bucket b = buckets_.front(0);
    if (b == none || count_[b] != 1) {
      b = take_bucket(1);
      buckets_.push_front(0, b);
    }
    entries_.push_back(b, s);
    bucket_of_[s] = b;
    ++size_;
  }

  void on_erase(slot s) noexcept {
    const bucket b = bucket_of_[s];
    entries_.unlink(b, s);
    if (entries_.empty(b)) free_bucket(b);
    --size_;
  }

  static constexpr std::size_t bytes_per_entry() noexcept {
    return index_lists::bytes_per_entry() + sizeof(bucket) +
           (sizeof(std::uint64_t) + 2 * index_lists::bytes_per_entry());
  }

 private:
  using bucket = std::uint32_t;
  static constexpr std::uint32_t none = index_lists::none;

  bucket take_bucket(std::uint64_t count) noexcept {
    const bucket b = free_buckets_.back();
    free_buckets_.pop_back();
    count_[b] = count;
    return b;
  }
  // A bucket for `count`, placed right behind b in count order.
  bucket new_bucket_after(bucket b, std::uint64_t count) noexcept {
    const bucket fresh = take_bucket(count);
    buckets_.insert_behind(0, b, fresh);
    return fresh;
  }
  void free_bucket(bucket b) noexcept {
    buckets_.unlink(0, b);
    free_buckets_.push_back(b);
  }

  std::size_t capacity_;
  std::size_t size_ = 0;
  index_lists entries_;
  std::vector<bucket> bucket_of_;
  index_lists buckets_;
  std::vector<std::uint64_t> count_;
  std::vector<bucket> free_buckets_;
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
