// The contracts between goldylox's parts, as C++20 concepts.
//
//  * cache_key / cache_value — what user keys and values must provide.
//  * hasher_for             — what a custom hasher must provide.
//  * hot_tier               — what the engine needs from its first tier.
//  * eviction_policy        — what the warm tier (and goldylox-sim) needs from a replacement
//                             policy; users can write their own (deferred_learning_policy:
//                             the optional hooks that let a policy learn off the request path).
//  * codec                  — what the cold tier needs from a compressor (codec.hpp has LZ4,
//                             Zstandard, Brotli and none).
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string_view>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "goldylox/detail/common/hash.hpp"

GOLDYLOX_BEGIN_NAMESPACE

template <class Hash, class K>
concept hasher_for = std::default_initializable<Hash> && requires(const Hash& h, const K& k) {
  { h(k) } -> std::convertible_to<std::size_t>;
};

// A key must be copyable (it is stored), equality comparable (candidates are verified) and
// hashable by the cache's Hash (absl::Hash by default: give the type an AbslHashValue overload).
template <class K, class Hash = default_hash<K>>
concept cache_key = std::is_object_v<K> && !std::is_const_v<K> && std::copy_constructible<K> &&
                    std::equality_comparable<K> && hasher_for<Hash, K>;

// A value must be a non-const object type that can be copied out of the cache.
template <class V>
concept cache_value = std::is_object_v<V> && !std::is_const_v<V> && !std::is_array_v<V> &&
                      std::copy_constructible<V> && std::move_constructible<V>;

// The hot tier contract the engine relies on. `T::decision` is what a compute() callback returns:
// keep, assign a new value, or erase; assign(key, value) is compute() with a decision that
// always assigns, for which a tier may take a shorter path. visit() must be safe to call
// concurrently with everything else and must not block; compute() and assign() must be atomic
// with respect to every other operation on the same key.
template <class T>
concept hot_tier =
    requires(T& t, const T& ct, typename T::key_type key, const typename T::key_type& ckey,
             typename T::mapped_type value, typename T::eviction_sink sink) {
      typename T::mapped_type;
      {
        ct.visit(ckey, [](const typename T::mapped_type&) {})
      } -> std::same_as<bool>;
      t.compute(key, [](const typename T::mapped_type*) { return typename T::decision{}; });
      t.assign(key, value);
      { t.erase(ckey) } -> std::same_as<bool>;
      t.clear();
      t.set_eviction_sink(sink);
      { ct.size() } -> std::convertible_to<std::size_t>;
      { ct.capacity() } -> std::convertible_to<std::size_t>;
      { ct.memory_bytes() } -> std::convertible_to<std::size_t>;
    };

// A replacement policy over dense slots. The owner (a warm-tier shard, or goldylox-sim) maps
// each resident key to a slot in [0, capacity()) and tells the policy what happens:
//   on_hit(s)             a resident entry was read;
//   on_miss(hash)         a key not resident was requested (before anything else is done about
//                         it): policies with history (ghost lists, frequency sketches) look it up;
//   victim()              the owner is full and needs room: the policy picks a resident slot,
//                         forgets it and returns it (the owner then frees that slot);
//   on_insert(s, hash)    the missed key was stored in slot s;
//   on_erase(s)           the owner removed s on its own (a delete, an expiry).
// A miss is always on_miss, then victim() while size() == capacity(), then on_insert; if the
// owner fails to store the entry (an exception), the next event may be another on_miss. The hash
// identifies a key across its stays in the cache (ghost entries remember hashes, not keys).
// Construction takes the capacity in entries and throws std::invalid_argument for 0. A policy is
// used by one thread at a time; each must cost O(1) amortised per event (or bounded sampling).
template <class P>
concept eviction_policy = std::constructible_from<P, std::size_t> &&
                          requires(P& p, const P& cp, typename P::slot s, std::uint64_t hash) {
                            requires std::same_as<typename P::slot, std::uint32_t>;
                            p.on_hit(s);
                            p.on_miss(hash);
                            { p.victim() } -> std::same_as<typename P::slot>;
                            p.on_insert(s, hash);
                            p.on_erase(s);
                            { cp.size() } -> std::convertible_to<std::size_t>;
                            { cp.capacity() } -> std::convertible_to<std::size_t>;
                            { P::name } -> std::convertible_to<std::string_view>;
                          };

// Optional: a policy whose decisions depend on whether (and about when) a slot was hit, not on
// how often (LRU, FIFO, CLOCK, SIEVE, ARC, LIRS), declares `static constexpr bool coalesces_hits
// = true` (or a `bool coalesces_hits() const` member, for a run-time choice). A warm tier then
// passes on at most one hit per entry between two drains of its read buffer, which keeps repeated
// reads of hot entries off the buffer's shared cache lines. Without the declaration every hit is
// passed on (as far as the lossy buffer keeps them): frequency-based policies need the counts.
namespace detail {
template <class P>
constexpr bool coalesces_hits(const P& p) noexcept {
  if constexpr (requires {
                  { p.coalesces_hits() } -> std::convertible_to<bool>;
                }) {
    return p.coalesces_hits();
  } else if constexpr (requires {
                         { P::coalesces_hits } -> std::convertible_to<bool>;
                       }) {
    return P::coalesces_hits;
  } else {
    return false;
  }
}
}  // namespace detail

// Optional: a policy that learns from the requests it sees (the adaptive family's miniature
// simulations, the linear model's training pairs) may let its owner run that learning later,
// in batches, off the path of the request that caused it:
//   p.defer_learning(n)    from now on, queue the learning of up to n requests (0, the
//                          default: learn inline, as each event arrives);
//   p.learn()              does the queued learning now; true if there was any;
//   p.learning_backlog()   requests queued.
// learn() runs under the same exclusion as the other events (the warm tier: the shard's lock).
// A policy whose queue is full learns inline, so what it decides never lags its requests by more
// than n; decisions stay O(1) amortised. A warm tier with a background pool defers and has the
// pool call learn() (engine/maintenance.hpp); goldylox-sim never defers.
template <class P>
concept deferred_learning_policy = requires(P& p, const P& cp, std::size_t n) {
  p.defer_learning(n);
  { p.learn() } -> std::convertible_to<bool>;
  { cp.learning_backlog() } -> std::convertible_to<std::size_t>;
};

// The compressors of the cold tier's records. Each record stores its codec's id (stable across
// releases: it is part of the on-disk format) and the value's original size, so decompression
// always knows how many bytes to expect:
//   C::id, C::name              the on-disk id and a name for messages and statistics;
//   c.bound(n)                  an output size that always suffices to compress n bytes;
//   c.compress(in, out)         writes the compressed form of `in` into `out` and returns its
//                               size; an error status (never an overrun) if `out` is too small;
//   c.decompress(in, out)       fills `out`, whose size is the original size, from `in`; a
//                               corrupt or truncated input, or one of another size, is a
//                               kDataLoss status, never a crash or a short value.
// A codec object holds its settings (a level) and is used by one thread at a time; copies are
// independent.
enum class codec_id : std::uint8_t { none = 0, lz4 = 1, zstd = 2, brotli = 3 };

template <class C>
concept codec = std::copy_constructible<C> && requires(C& c, std::span<const std::byte> in,
                                                       std::span<std::byte> out, std::size_t n) {
  { C::id } -> std::convertible_to<codec_id>;
  { C::name } -> std::convertible_to<std::string_view>;
  { c.bound(n) } -> std::same_as<std::size_t>;
  { c.compress(in, out) } -> std::same_as<absl::StatusOr<std::size_t>>;
  { c.decompress(in, out) } -> std::same_as<absl::Status>;
};

GOLDYLOX_END_NAMESPACE
