// One small adapter per implementation, all with the same shape, so the benchmark loops are
// templates over the adapter and every implementation runs the identical loop (no virtual call
// per operation):
//
//   explicit A(std::size_t capacity);          // sized for `capacity` keys up front
//   bool get(const K& key, V& out) const;      // copies the value out; false on a miss
//   void put(const K& key, V value);           // insert or overwrite
//   static constexpr bool thread_safe;         // false: only valid on one thread
//
// Each get copies the value out (what a caller of typed_cache::get gets), so no implementation is
// measured doing less work than the others. Peers use their default hashers, as a user would.
//
// Optional peers are compiled in only when CMake found them (GOLDYLOX_BENCH_HAVE_TBB,
// GOLDYLOX_BENCH_HAVE_LIBCUCKOO).
#pragma once

#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <utility>

#include <goldylox/goldylox.hpp>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"

#if GOLDYLOX_BENCH_HAVE_TBB
#include <oneapi/tbb/concurrent_hash_map.h>
#endif
#if GOLDYLOX_BENCH_HAVE_LIBCUCKOO
#include <libcuckoo/cuckoohash_map.hh>
#endif

// The goldylox adapters' get and put are forced inline into the benchmark loop, as the library's
// own read path is: a user's loop over typed_cache::get gets the whole lookup inlined, but GCC
// left this thin wrapper out of line (a call, register saves, and member loads it could not hoist
// out of the loop). Peers keep the compiler's own inlining choices, which is what their users get;
// forcing theirs measured worse for some (absl_flat get 44 -> 51 instructions, absl_shard64_mutex
// 122 -> 129) and better for others, so no peer is handicapped by it.
#if defined(__GNUC__) || defined(__clang__)
#define GX_BENCH_INLINE [[gnu::always_inline]] inline
#else
#define GX_BENCH_INLINE inline
#endif

namespace goldylox_bench {

template <class T>
T built_or_die(absl::StatusOr<T> made) {
  if (!made.ok()) {
    std::fprintf(stderr, "goldylox_bench: build() failed: %s\n", made.status().ToString().c_str());
    std::abort();
  }
  return *std::move(made);
}

// ---- goldylox -------------------------------------------------------------------------------

// expire_write / expire_access: expire_after_write / expire_after_access of an hour (nothing
// expires during a run: the cost measured is the deadline check and its bookkeeping).
// listener: a removal listener that counts what it hears (every put_update replaces a value, so
// each one queues and delivers a notice).
// refresh: refresh_after_write of an hour with a loader (nothing falls due during a run: the cost
// measured is the refresh time's bookkeeping on reads and writes).
enum class gx_tag { simd, swar, telemetry, expire_write, expire_access, listener, refresh };

// What the listener variant heard (read only to keep the calls observable).
inline std::atomic<std::uint64_t> gx_heard{0};

// What both goldylox adapters share: the cache, put, and access to it. Sized at exactly
// `capacity` so a prefilled table never evicts.
template <class Cache>
class gx_holder {
 public:
  static constexpr bool thread_safe = true;
  using cache_type = Cache;

  explicit gx_holder(Cache cache) : cache_(std::move(cache)) {}

  template <class K, class V>
  GX_BENCH_INLINE void put(const K& key, V value) {
    (void)cache_.put(key, std::move(value));
  }

  cache_type& raw() noexcept { return cache_; }
  const cache_type& raw() const noexcept { return cache_; }

 protected:
  cache_type cache_;
};

// typed_cache<K, V>::get.
template <class K, class V, gx_tag Tag = gx_tag::simd>
class gx_typed : public gx_holder<goldylox::typed_cache<K, V>> {
 public:
  using typename gx_holder<goldylox::typed_cache<K, V>>::cache_type;

  explicit gx_typed(std::size_t capacity) : gx_holder<cache_type>(make(capacity)) {}

  GX_BENCH_INLINE bool get(const K& key, V& out) const {
    std::optional<V> v = this->cache_.get(key);
    if (!v) return false;
    out = *v;
    return true;
  }

 private:
  static cache_type make(std::size_t capacity) {
    auto b = cache_type::builder();
    b.hot_tier_max_entries(capacity)
        .warm_tier_max_entries(0)
        .enable_simd(Tag != gx_tag::swar)
        .enable_telemetry(Tag == gx_tag::telemetry);
    if constexpr (Tag == gx_tag::expire_write) b.expire_after_write(std::chrono::hours(1));
    if constexpr (Tag == gx_tag::expire_access) b.expire_after_access(std::chrono::hours(1));
    if constexpr (Tag == gx_tag::listener) {
      b.removal_listener([](const K&, const V&, goldylox::removal_cause) {
        gx_heard.fetch_add(1, std::memory_order_relaxed);
      });
    }
    if constexpr (Tag == gx_tag::refresh) {
      b.refresh_after_write(std::chrono::hours(1)).loader([](const K&) -> absl::StatusOr<V> {
        return V{};
      });
    }
    return built_or_die(b.build());
  }
};

// cache<K>::get<V>: the run-time-typed facade, read back as the V that was stored.
template <class K, class V>
class gx_any : public gx_holder<goldylox::cache<K>> {
 public:
  using typename gx_holder<goldylox::cache<K>>::cache_type;

  explicit gx_any(std::size_t capacity)
      : gx_holder<cache_type>(built_or_die(cache_type::builder()
                                               .hot_tier_max_entries(capacity)
                                               .warm_tier_max_entries(0)
                                               .build())) {}

  GX_BENCH_INLINE bool get(const K& key, V& out) const {
    absl::StatusOr<std::optional<V>> v = this->cache_.template get<V>(key);
    if (!v.ok() || !v->has_value()) return false;
    out = **v;
    return true;
  }
};

// ---- absl::flat_hash_map, unsynchronized: the single-thread floor ---------------------------

template <class K, class V>
class absl_flat {
 public:
  static constexpr bool thread_safe = false;

  explicit absl_flat(std::size_t capacity) { map_.reserve(capacity); }

  bool get(const K& key, V& out) const {
    const auto it = map_.find(key);
    if (it == map_.end()) return false;
    out = it->second;
    return true;
  }
  void put(const K& key, V value) { map_.insert_or_assign(key, std::move(value)); }

 private:
  absl::flat_hash_map<K, V> map_;
};

// ---- absl::flat_hash_map sharded 64 ways, a std::mutex per shard -----------------------------

template <class K, class V>
class absl_sharded {
 public:
  static constexpr bool thread_safe = true;
  static constexpr std::size_t shards = 64;

  explicit absl_sharded(std::size_t capacity) {
    for (shard& s : shards_) s.map.reserve(capacity / shards + capacity / (4 * shards) + 16);
  }

  bool get(const K& key, V& out) const {
    const shard& s = shard_of(key);
    std::lock_guard<std::mutex> lock(s.mutex);
    const auto it = s.map.find(key);
    if (it == s.map.end()) return false;
    out = it->second;
    return true;
  }
  void put(const K& key, V value) {
    shard& s = shard_of(key);
    std::lock_guard<std::mutex> lock(s.mutex);
    s.map.insert_or_assign(key, std::move(value));
  }

 private:
  struct alignas(64) shard {
    mutable std::mutex mutex;
    absl::flat_hash_map<K, V> map;
  };
  // The top bits pick the shard; flat_hash_map indexes its slots with the low bits.
  shard& shard_of(const K& key) { return shards_[absl::Hash<K>{}(key) >> 58]; }
  const shard& shard_of(const K& key) const { return shards_[absl::Hash<K>{}(key) >> 58]; }

  std::array<shard, shards> shards_;
};

// ---- std::unordered_map behind one std::shared_mutex -----------------------------------------

template <class K, class V>
class std_shared_mutex_map {
 public:
  static constexpr bool thread_safe = true;

  explicit std_shared_mutex_map(std::size_t capacity) { map_.reserve(capacity); }

  bool get(const K& key, V& out) const {
    std::shared_lock<std::shared_mutex> lock(mutex_);
    const auto it = map_.find(key);
    if (it == map_.end()) return false;
    out = it->second;
    return true;
  }
  void put(const K& key, V value) {
    std::unique_lock<std::shared_mutex> lock(mutex_);
    map_.insert_or_assign(key, std::move(value));
  }

 private:
  mutable std::shared_mutex mutex_;
  std::unordered_map<K, V> map_;
};

// ---- tbb::concurrent_hash_map (accessor-based find) ------------------------------------------

#if GOLDYLOX_BENCH_HAVE_TBB
template <class K, class V>
class tbb_map {
 public:
  static constexpr bool thread_safe = true;
  using map_type = oneapi::tbb::concurrent_hash_map<K, V>;

  explicit tbb_map(std::size_t capacity) : map_(capacity) {}

  bool get(const K& key, V& out) const {
    typename map_type::const_accessor a;  // takes the element's read lock
    if (!map_.find(a, key)) return false;
    out = a->second;
    return true;
  }
  void put(const K& key, V value) {
    typename map_type::accessor a;  // write lock
    map_.insert(a, key);
    a->second = std::move(value);
  }

 private:
  map_type map_;
};
#endif

// ---- libcuckoo::cuckoohash_map ---------------------------------------------------------------

#if GOLDYLOX_BENCH_HAVE_LIBCUCKOO
template <class K, class V>
class cuckoo_map {
 public:
  static constexpr bool thread_safe = true;

  explicit cuckoo_map(std::size_t capacity) { map_.reserve(capacity); }

  bool get(const K& key, V& out) const { return map_.find(key, out); }
  void put(const K& key, V value) { map_.insert_or_assign(key, std::move(value)); }

 private:
  libcuckoo::cuckoohash_map<K, V> map_;
};
#endif

// ---- the memory-traffic floor: not a map ------------------------------------------------------

// A direct-mapped array of {key, value} atomic words: a get is one relaxed load of the pair, a put
// two relaxed stores, with no lock, no probe and no collision handling (a colliding put simply
// overwrites, so gets may miss). No concurrent map can touch less shared memory per operation, so
// its 1 -> 2 thread scaling is the ceiling for any of them on the machine at hand: where this
// drops, the drop is the cost of moving written cache lines between the cores, not a table's.
// Only valid for trivially copyable 8-byte keys and values (the u64 workloads).
template <class K, class V>
class floor_array {
 public:
  static constexpr bool thread_safe = true;

  explicit floor_array(std::size_t capacity)
      : mask_(std::bit_ceil(capacity < 2 ? std::size_t{2} : capacity) * 2 - 1),
        cells_(new entry[mask_ + 1]) {}

  bool get(const K& key, V& out) const {
    const entry& e = cells_[index(key)];
    if (e.key.load(std::memory_order_relaxed) != key) return false;
    out = e.value.load(std::memory_order_relaxed);
    return true;
  }
  void put(const K& key, V value) {
    entry& e = cells_[index(key)];
    e.key.store(key, std::memory_order_relaxed);
    e.value.store(value, std::memory_order_relaxed);
  }

 private:
  struct entry {
    std::atomic<K> key{};
    std::atomic<V> value{};
  };
  std::size_t index(const K& key) const { return absl::Hash<K>{}(key)&mask_; }

  std::size_t mask_;
  std::unique_ptr<entry[]> cells_;
};

}  // namespace goldylox_bench
