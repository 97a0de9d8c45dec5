// Hashing: the default hasher (absl::Hash, transparent for string-like keys) and the mixer applied
// to hashes that may be weak.
//
// The table takes the group index from the high bits (multiply-high range reduction, so group
// counts need not be powers of two), the tag from the low byte and the overflow class from bits
// 8..10, so every bit must depend on every key bit. A user hasher as weak as std::hash<uint64_t>
// (the identity) would put consecutive keys in one group with one tag, so its output is mixed
// first. Even absl::Hash is mixed: on arithmetic-progression
// keys its high bits are visibly structured (filling a table to 80 % load left 10-40x more probe
// windows full than with the extra finalizer, measured). A user hasher that declares
// `is_avalanching` is trusted and used as is, saving two multiplies.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>

#include "absl/hash/hash.h"
#include "goldylox/detail/common/platform.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

// One 64x64->128-bit multiply by an odd constant, folded (high ^ low): every output bit depends
// on every input bit, in ~4 instructions (the folded-multiply mixer of wyhash and Boost).
inline std::uint64_t mix_hash(std::uint64_t h) noexcept {
  return fold_multiply(h, 0x9E3779B97F4A7C15ULL);
}

// The splitmix64 finaliser (Stafford's "mix13" constants): slower than mix_hash, but every input
// bit affects every output bit through two rounds. The trace policies use it where ids are small
// consecutive integers (W-TinyLFU's sketch) and, applied to a Weyl sequence, as a seeded
// deterministic generator.
inline std::uint64_t splitmix_mix(std::uint64_t x) noexcept {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

template <class Hash>
concept avalanching_hash = requires { typename Hash::is_avalanching; };

template <class Hash, class Q>
std::uint64_t table_hash(const Hash& hash, const Q& key) {
  const auto h = static_cast<std::uint64_t>(hash(key));
  if constexpr (avalanching_hash<Hash>) {
    return h;
  } else {
    return mix_hash(h);
  }
}

template <class T>
inline constexpr bool is_string_like_v =
    std::is_convertible_v<const T&, std::string_view> && !std::is_same_v<T, std::nullptr_t>;

// True when a lookup may pass Q instead of building a K: both the hasher and the equality are
// transparent (declare is_transparent) and accept Q.
template <class Q, class K, class Hash, class KeyEqual>
concept transparent_lookup =
    !std::is_same_v<std::remove_cvref_t<Q>, K> && requires { typename Hash::is_transparent; } &&
    requires { typename KeyEqual::is_transparent; } &&
    requires(const Hash& h, const KeyEqual& eq, const Q& q, const K& k) {
      h(q);
      { eq(k, q) } -> std::convertible_to<bool>;
    };

}  // namespace detail

// The default key hasher: absl::Hash. For std::string keys it is transparent: lookups may pass
// std::string_view or const char* without building a std::string.
template <class K>
struct default_hash : absl::Hash<K> {};

template <>
struct default_hash<std::string> {
  using is_transparent = void;
  template <class Q>
    requires detail::is_string_like_v<Q>
  std::size_t operator()(const Q& key) const noexcept {
    return absl::Hash<std::string_view>{}(std::string_view(key));
  }
};

GOLDYLOX_END_NAMESPACE
