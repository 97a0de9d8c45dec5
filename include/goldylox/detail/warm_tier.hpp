// The warm tier: a sharded, thread-safe, bounded key-value store whose replacement decisions come
// from an eviction_policy (policies.hpp), bounded by entries and optionally by weight (bytes, as
// a weigher counts them). Evicted entries go to a sink: the cold tier's demotion, or the user's.
//
// Layout. 2^n shards by key hash (high bits, so the shard and the index's own bucket bits do not
// correlate). A shard has a reader-writer lock, an index (absl::flat_hash_map key -> slot), slots
// holding key, value, hash, weight, a generation and a read count (allocated 1024 at a time as
// the shard fills, so an empty tier costs only its policies' metadata), a free-slot stack, its
// own policy instance over those slots (the eviction_policy contract), and a read buffer.
//
// Reads take the shard's lock shared (a shared_spin_lock, group_lock.hpp: critical sections are
// short, so waiters spin rather than sleep in the kernel): concurrent readers of a shard never
// wait for each other, and a read never runs policy code. A hit is recorded as (slot, generation)
// in the shard's read buffer, a lossy ring of 64 entries (Caffeine's read buffers): the policy
// hears of it when the buffer is drained, under the exclusive lock, by a writer or by the reader
// that finds the buffer full and the lock free (try_lock: a reader never blocks on a writer to
// record a hit). Records whose generation no longer matches (the slot was freed and reused) are
// dropped, and a full buffer drops new records: hit recording is a hint, as in Caffeine, never a
// correctness matter. Each slot also counts its reads exactly (a relaxed fetch_add on the slot's
// own line): the engine promotes an entry back to the hot tier by that count.
//
// Writes (put, erase, take) take the exclusive lock, drain the read buffer first (so the policy
// sees hits before it picks victims), then update index, slots and policy. Victims are collected
// and handed to the sink after the lock is released, so a sink may call back into the tier.
//
// Bounds: each shard holds at most ceil(max_entries / shards) entries and, with a weight bound,
// at most max_weight / shards of weight; a put evicts until both hold (a value that grows in place
// is taken out of the policy meanwhile, so it is never its own victim). A value heavier than a
// shard's whole weight budget is refused with InvalidArgument and changes nothing.
//
// Exceptions (from K's or V's copy and move, the weigher, the hash map's allocation, the sink):
// a put, take or erase that throws leaves the tier consistent: nothing half-inserted, no slot
// lost, the replaced value as V's assignment left it. Entries already evicted to make room are
// still handed to the sink, then the exception propagates. A sink that throws does not stop the
// other victims' delivery; its first exception is rethrown afterwards.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>  // std::shared_lock
#include <stdexcept>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "goldylox/concepts.hpp"
#include "goldylox/detail/group_lock.hpp"
#include "goldylox/detail/hash.hpp"
#include "goldylox/detail/platform.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

struct warm_tier_options {
  std::size_t max_entries = 0;  // required, >= 1
  std::size_t max_weight = 0;   // 0: no weight bound
  std::size_t shards = 0;       // 0: chosen from the hardware and the capacity; else a power of 2
};

// Hits and misses are the engine's to count (its striped counters); the tier counts what only it
// sees.
struct warm_tier_stats {
  std::uint64_t evictions = 0, dropped_reads = 0;
  std::size_t size = 0, weight = 0;
};

template <class K, class V, eviction_policy P, class Hash = absl::Hash<K>,
          class KeyEqual = std::equal_to<K>>
class warm_tier {
 public:
  using weigher_type = std::function<std::size_t(const K&, const V&)>;
  using sink_type = std::function<void(K&&, V&&)>;
  // Makes a shard's policy for its capacity (default: P(capacity)); a policy with options, such
  // as the adaptive policy's miniature-cache budget shared among the shards, comes this way.
  using policy_factory = std::function<P(std::size_t capacity, std::size_t shards)>;

  // Throws std::invalid_argument for max_entries 0 or a shard count that is not a power of two.
  explicit warm_tier(warm_tier_options o, weigher_type weigher = {}, sink_type sink = {},
                     policy_factory make_policy = {})
      : weigher_(std::move(weigher)), sink_(std::move(sink)) {
    if (o.max_entries == 0) throw std::invalid_argument("warm tier: max_entries must be >= 1");
    if (o.shards != 0 && !std::has_single_bit(o.shards)) {
      throw std::invalid_argument("warm tier: shards must be a power of two");
    }
    if (o.max_weight != 0 && !weigher_) {
      weigher_ = [](const K&, const V&) { return sizeof(K) + sizeof(V); };
    }
    std::size_t n = o.shards;
    if (n == 0) {
      // Enough shards that two threads rarely meet, few enough that each keeps a useful
      // population for its policy (at least 64 entries).
      const std::size_t want =
          std::bit_ceil(std::max(1U, std::thread::hardware_concurrency()) * 4U);
      n = std::max<std::size_t>(
          1, std::min(want, std::bit_floor(std::max<std::size_t>(1, o.max_entries / 64))));
      if (o.max_weight != 0) n = std::min(n, std::bit_floor(o.max_weight));
    } else if (o.max_weight != 0 && o.max_weight < n) {
      throw std::invalid_argument("warm tier: max_weight must be at least the shard count");
    }
    shard_bits_ = static_cast<unsigned>(std::countr_zero(n));
    const std::size_t per_entries = (o.max_entries + n - 1) / n;
    const std::size_t per_weight = o.max_weight / n;
    shards_.reserve(n);
    if (!make_policy) make_policy = [](std::size_t c, std::size_t) { return P(c); };
    for (std::size_t i = 0; i < n; ++i) {
      shards_.push_back(
          std::make_unique<shard>(per_entries, per_weight, make_policy(per_entries, n)));
    }
    max_entries_ = per_entries * n;
    max_weight_ = per_weight * n;
  }

  warm_tier(const warm_tier&) = delete;
  warm_tier& operator=(const warm_tier&) = delete;

  // Calls f(const V&) under the shard's shared lock if `key` is present, and records the hit.
  template <class Q, class F>
  bool visit(const Q& key, F&& f) const {
    return visit_entry(key, [&](const K&, const V& v, std::uint32_t) { f(v); });
  }

  // Calls f(const K& stored_key, const V&, std::uint32_t hits) under the shard's shared lock if
  // `key` is present; `hits` counts this read too, since the entry entered the tier (the
  // engine's promotion rule reads it). Touch = false looks without recording a hit.
  template <bool Touch = true, class Q, class F>
  bool visit_entry(const Q& key, F&& f) const {
    const std::uint64_t h = hash_of(key);
    shard& sh = shard_for(h);
    std::uint64_t record = 0;
    {
      std::shared_lock lock(sh.mutex);
      const auto it = sh.index.find(key);
      if (it == sh.index.end()) return false;
      slot_data& d = sh[it->second];
      std::uint32_t hits = d.hits.load(std::memory_order_relaxed);
      if constexpr (Touch) hits = d.hits.fetch_add(1, std::memory_order_relaxed) + 1;
      f(std::as_const(*d.key), std::as_const(*d.value), hits);
      record = pack(it->second, d.generation);
    }
    if constexpr (Touch) record_hit(sh, record);
    return true;
  }

  template <class Q>
  std::optional<V> get(const Q& key) const {
    std::optional<V> out;
    visit(key, [&](const V& v) { out.emplace(v); });
    return out;
  }

  // Inserts or replaces. Refuses (InvalidArgument) a value heavier than a shard's weight budget.
  absl::Status put(K key, V value) {
    const std::uint64_t h = hash_of(key);
    shard& sh = shard_for(h);
    const std::size_t w = weigher_ ? weigher_(key, value) : 1;
    if (sh.max_weight != 0 && w > sh.max_weight) {
      return absl::InvalidArgumentError(absl::StrCat(
          "warm tier: an entry weighing ", w, " exceeds the per-shard weight budget of ",
          sh.max_weight, " (max_weight ", max_weight_, " over ", shards_.size(), " shards)"));
    }
    victim_list victims;
    std::exception_ptr failed;
    {
      std::unique_lock lock(sh.mutex);
      drain(sh);
      try {
        if (const auto it = sh.index.find(key); it != sh.index.end()) {
          replace(sh, it->second, std::move(value), w, victims);
        } else {
          insert(sh, std::move(key), std::move(value), h, w, victims);
        }
      } catch (...) {
        failed = std::current_exception();
      }
    }
    // Entries evicted before a failure still reach the sink; then the failure is reported.
    deliver(victims);
    if (failed) std::rethrow_exception(failed);
    return absl::OkStatus();
  }

  // Removes `key` and returns its value (a promotion to the hot tier takes the entry this way).
  template <class Q>
  std::optional<V> take(const Q& key) {
    const std::uint64_t h = hash_of(key);
    shard& sh = shard_for(h);
    std::unique_lock lock(sh.mutex);
    drain(sh);
    const auto it = sh.index.find(key);
    if (it == sh.index.end()) return std::nullopt;
    const auto s = it->second;
    std::optional<V> out(std::move(*sh[s].value));  // first: if it throws, nothing changed
    sh.index.erase(it);
    sh.policy.on_erase(s);
    release(sh, s);
    return out;
  }

  // Removes `key` without moving its value out. Looks under the shared lock first, so erasing
  // an absent key (the common case when the engine inserts a key new to the hot tier) never
  // waits for other readers of the shard. Throws only if the policy's on_erase does.
  template <class Q>
  bool erase(const Q& key) {
    const std::uint64_t h = hash_of(key);
    shard& sh = shard_for(h);
    {
      std::shared_lock lock(sh.mutex);
      if (!sh.index.contains(key)) return false;
    }
    std::unique_lock lock(sh.mutex);
    drain(sh);
    const auto it = sh.index.find(key);
    if (it == sh.index.end()) return false;
    const auto s = it->second;
    sh.index.erase(it);
    sh.policy.on_erase(s);
    release(sh, s);
    return true;
  }

  template <class Q>
  bool contains(const Q& key) const {
    const std::uint64_t h = hash_of(key);
    shard& sh = shard_for(h);
    std::shared_lock lock(sh.mutex);
    return sh.index.contains(key);
  }

  void clear() {
    for (auto& sh : shards_) {
      std::unique_lock lock(sh->mutex);
      drain(*sh);
      for (const auto& [k, s] : sh->index) {
        sh->policy.on_erase(s);
        release(*sh, s);
      }
      sh->index.clear();
    }
  }

  std::size_t size() const {
    std::size_t n = 0;
    for (const auto& sh : shards_) {
      std::shared_lock lock(sh->mutex);
      n += sh->index.size();
    }
    return n;
  }
  std::size_t capacity() const noexcept { return max_entries_; }
  std::size_t max_weight() const noexcept { return max_weight_; }
  std::size_t shard_count() const noexcept { return shards_.size(); }

  // Memory of the slots, indexes and free lists (policy metadata is the policy's own and not
  // counted; docs/eviction.md lists it per policy).
  std::size_t memory_bytes() const {
    std::size_t bytes = sizeof(*this) + shards_.size() * sizeof(shard);
    for (const auto& sh : shards_) {
      std::shared_lock lock(sh->mutex);
      bytes += sh->chunks.size() * sizeof(void*) +
               (sh->fresh + chunk_size - 1) / chunk_size * chunk_size * sizeof(slot_data) +
               sh->free.capacity() * sizeof(slot) +
               sh->index.capacity() * (sizeof(std::pair<const K, slot>) + 1);
    }
    return bytes;
  }

  // A rough per-entry memory cost at capacity (slot, index entry, free-list entry, and an
  // allowance of 64 bytes for the policy), for configuration checks.
  static constexpr std::size_t bytes_per_entry() noexcept {
    return sizeof(slot_data) + (sizeof(std::pair<const K, slot>) + 1) * 8 / 7 + sizeof(slot) + 64;
  }

  warm_tier_stats stats() const {
    warm_tier_stats s;
    for (const auto& sh : shards_) {
      s.dropped_reads += sh->dropped.load(std::memory_order_relaxed);
      std::shared_lock lock(sh->mutex);
      s.evictions += sh->evictions;
      s.size += sh->index.size();
      s.weight += sh->weight;
    }
    return s;
  }

 private:
  using slot = typename P::slot;
  // A put usually evicts at most one entry: no allocation for it.
  using victim_list = absl::InlinedVector<std::pair<K, V>, 2>;
  static constexpr std::size_t read_buffer_size = 64;
  static constexpr std::size_t chunk_size = 1024;

  struct slot_data {
    std::optional<K> key;
    std::optional<V> value;
    std::uint64_t hash = 0;
    std::size_t weight = 0;
    std::uint32_t generation = 0;
    // Reads since the entry was stored; bumped under the shared lock, reset under the exclusive.
    std::atomic<std::uint32_t> hits{0};
  };

  struct alignas(cache_line) shard {
    shard(std::size_t capacity_, std::size_t weight_budget, P made)
        : max_weight(weight_budget),
          capacity(capacity_),
          chunks((capacity_ + chunk_size - 1) / chunk_size),
          policy(std::move(made)) {
      for (auto& r : reads) r.store(empty_record, std::memory_order_relaxed);
    }
    slot_data& operator[](slot s) noexcept { return chunks[s / chunk_size][s % chunk_size]; }

    mutable shared_spin_lock mutex;
    std::size_t max_weight;
    std::size_t weight = 0;
    absl::flat_hash_map<K, slot, Hash, KeyEqual> index;
    // Slots [0, fresh) exist, in chunks allocated as the shard fills (an empty tier costs only
    // its policies' metadata); released ones wait in `free`.
    std::size_t capacity;
    std::vector<std::unique_ptr<slot_data[]>> chunks;
    slot fresh = 0;
    std::vector<slot> free;
    P policy;
    // Read buffer: a reader claims a cell with fetch_add on `written` and fills it if it is
    // empty; the drainer (holding the exclusive lock) empties every cell.
    std::array<std::atomic<std::uint64_t>, read_buffer_size> reads;
    std::atomic<std::uint64_t> written{0};
    std::uint64_t drained = 0;    // positions consumed, under the exclusive lock
    std::uint64_t evictions = 0;  // under the exclusive lock
    std::atomic<std::uint64_t> dropped{0};
  };

  static constexpr std::uint64_t empty_record = ~std::uint64_t{0};
  static std::uint64_t pack(slot s, std::uint32_t generation) noexcept {
    return (static_cast<std::uint64_t>(generation) << 32) | s;
  }

  // The shard takes the top bits of the table hash (hash.hpp); the index hashes the key itself.
  template <class Q>
  std::uint64_t hash_of(const Q& key) const {
    return table_hash(hasher_, key);
  }
  shard& shard_for(std::uint64_t h) const noexcept {
    return *shards_[shard_bits_ == 0 ? 0 : h >> (64 - shard_bits_)];
  }

  void record_hit(shard& sh, std::uint64_t record) const {
    const std::uint64_t pos = sh.written.fetch_add(1, std::memory_order_relaxed);
    // An occupied cell means the drainer is a whole buffer behind: the record is dropped. Each
    // time the ring wraps, the reader that wrapped it tries to drain.
    std::atomic<std::uint64_t>& cell = sh.reads[pos % read_buffer_size];
    std::uint64_t expected = empty_record;
    if (!cell.compare_exchange_strong(expected, record, std::memory_order_release,
                                      std::memory_order_relaxed)) {
      sh.dropped.fetch_add(1, std::memory_order_relaxed);
    }
    if (pos % read_buffer_size == read_buffer_size - 1) {
      std::unique_lock lock(sh.mutex, std::try_to_lock);
      if (lock.owns_lock()) drain(sh);
    }
  }

  // Under the exclusive lock: tells the policy of the buffered hits that are still valid. Only
  // the positions claimed since the last drain are visited (at most a buffer's worth), so a
  // write with no reads since costs one load.
  static void drain(shard& sh) {
    const std::uint64_t written = sh.written.load(std::memory_order_acquire);
    const std::uint64_t from = std::max(
        sh.drained, written > read_buffer_size ? written - read_buffer_size : std::uint64_t{0});
    for (std::uint64_t pos = from; pos < written; ++pos) {
      const std::uint64_t r =
          sh.reads[pos % read_buffer_size].exchange(empty_record, std::memory_order_acquire);
      if (r == empty_record) continue;  // claimed but not yet filled: that record is lost
      const auto s = static_cast<slot>(r & 0xffffffffU);
      if (s < sh.fresh && sh[s].key.has_value() &&
          sh[s].generation == static_cast<std::uint32_t>(r >> 32)) {
        sh.policy.on_hit(s);
      }
    }
    sh.drained = written;
  }

  // Under the exclusive lock. The value is assigned before any accounting changes, so a throwing
  // assignment leaves the old entry as it was (in the state V's assignment leaves it).
  void replace(shard& sh, slot s, V&& value, std::size_t w, victim_list& victims) {
    slot_data& d = sh[s];
    if constexpr (std::is_move_assignable_v<V>) {
      *d.value = std::move(value);
    } else {
      // No assignment (cache<K>'s any_value): rebuild in place. If the move throws, the entry
      // has lost its value, so it leaves the tier before the exception propagates.
      try {
        d.value.reset();
        d.value.emplace(std::move(value));
      } catch (...) {
        sh.index.erase(*d.key);
        sh.policy.on_erase(s);
        release(sh, s);
        throw;
      }
    }
    sh.weight = sh.weight - d.weight + w;
    d.weight = w;
    sh.policy.on_hit(s);
    if (sh.max_weight == 0 || sh.weight <= sh.max_weight) return;
    // The grown entry is taken out of the policy while others are evicted for it, so it can
    // never be picked; it fits on its own (put checked), so the loop ends. It comes back as new.
    sh.policy.on_erase(s);
    try {
      while (sh.weight > sh.max_weight && sh.policy.size() > 0) evict_one(sh, victims);
    } catch (...) {
      sh.policy.on_miss(d.hash);
      sh.policy.on_insert(s, d.hash);
      throw;
    }
    sh.policy.on_miss(d.hash);
    sh.policy.on_insert(s, d.hash);
  }

  // Under the exclusive lock. Nothing is published until key, value and index entry all exist;
  // a throw on the way leaves the slot free and the shard as it was, but for the evictions made
  // room for (they are in `victims`, delivered by put).
  void insert(shard& sh, K&& key, V&& value, std::uint64_t h, std::size_t w, victim_list& victims) {
    sh.policy.on_miss(h);
    while (sh.policy.size() > 0 && ((sh.free.empty() && sh.fresh == sh.capacity) ||
                                    (sh.max_weight != 0 && sh.weight + w > sh.max_weight))) {
      evict_one(sh, victims);
    }
    if (sh.free.empty()) grow(sh);
    const slot s = sh.free.back();
    slot_data& d = sh[s];
    try {
      d.key.emplace(key);
      d.value.emplace(std::move(value));
      sh.index.emplace(std::move(key), s);
    } catch (...) {
      d.key.reset();
      d.value.reset();
      throw;
    }
    sh.free.pop_back();
    d.hash = h;
    d.weight = w;
    d.hits.store(0, std::memory_order_relaxed);
    sh.weight += w;
    sh.policy.on_insert(s, h);
  }

  void evict_one(shard& sh, victim_list& victims) {
    const slot v = sh.policy.victim();
    slot_data& d = sh[v];
    const auto it = sh.index.find(*d.key);
    try {
      victims.emplace_back(std::move(*d.key), std::move(*d.value));
    } catch (...) {  // the entry stays: give it back to the policy
      sh.policy.on_miss(d.hash);
      sh.policy.on_insert(v, d.hash);
      throw;
    }
    sh.index.erase(it);
    ++sh.evictions;
    release(sh, v);
  }

  // Makes one more slot free (the shard is below capacity): the next fresh one, allocating its
  // chunk when it starts one. Throws std::bad_alloc with the shard unchanged.
  static void grow(shard& sh) {
    sh.free.reserve(sh.free.size() + 1);
    const std::size_t c = sh.fresh / chunk_size;
    if (!sh.chunks[c]) sh.chunks[c] = std::make_unique<slot_data[]>(chunk_size);
    sh.free.push_back(sh.fresh++);
  }

  static void release(shard& sh, slot s) {
    slot_data& d = sh[s];
    sh.weight -= d.weight;
    d.key.reset();
    d.value.reset();
    d.weight = 0;
    ++d.generation;
    sh.free.push_back(s);
  }

  // Every victim reaches the sink even if an earlier call throws; the first exception is then
  // rethrown (after the tier's own state is complete).
  void deliver(victim_list& victims) {
    if (!sink_) return;
    std::exception_ptr first;
    for (auto& [k, v] : victims) {
      try {
        sink_(std::move(k), std::move(v));
      } catch (...) {
        if (!first) first = std::current_exception();
      }
    }
    if (first) std::rethrow_exception(first);
  }

  [[no_unique_address]] Hash hasher_{};
  weigher_type weigher_;
  sink_type sink_;
  unsigned shard_bits_ = 0;
  std::size_t max_entries_ = 0;
  std::size_t max_weight_ = 0;
  std::vector<std::unique_ptr<shard>> shards_;
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
