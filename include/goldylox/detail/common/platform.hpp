// Component common/ (main header: this one). The building blocks every layer may use: platform
// helpers (here), hashing (hash.hpp), striped counters (counters.hpp), epoch-based reclamation
// (epoch.hpp), spin locks (group_lock.hpp), type names and tags (type_name.hpp), cereal
// serialization (serialization.hpp) and type-erased values (any_value.hpp). Owns no cache state;
// includes nothing of goldylox above it (only version.hpp and stats.hpp share its layer), so any
// layer may include it (cmake/goldyloxCheckLayers.cmake enforces it).
//
// Compiler and CPU helpers shared by the detail headers: cache-line size, pause, prefetch,
// branch hints. Nothing here allocates or synchronizes.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "goldylox/version.hpp"

#if defined(__SSE2__) || defined(_M_X64) || (defined(_M_IX86_FP) && _M_IX86_FP >= 2)
#include <emmintrin.h>
#define GOLDYLOX_HAS_SSE2 1
#else
#define GOLDYLOX_HAS_SSE2 0
#endif

// ThreadSanitizer builds (GCC defines __SANITIZE_THREAD__, clang has the feature test).
#if defined(__SANITIZE_THREAD__)
#define GOLDYLOX_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GOLDYLOX_TSAN 1
#endif
#endif
#ifndef GOLDYLOX_TSAN
#define GOLDYLOX_TSAN 0
#endif
// AddressSanitizer builds, likewise.
#if defined(__SANITIZE_ADDRESS__)
#define GOLDYLOX_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GOLDYLOX_ASAN 1
#endif
#endif
#ifndef GOLDYLOX_ASAN
#define GOLDYLOX_ASAN 0
#endif

#if defined(__GNUC__) || defined(__clang__)
#define GOLDYLOX_LIKELY(x) __builtin_expect(!!(x), 1)
#define GOLDYLOX_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define GOLDYLOX_NOINLINE __attribute__((noinline))
#define GOLDYLOX_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define GOLDYLOX_LIKELY(x) (x)
#define GOLDYLOX_UNLIKELY(x) (x)
#define GOLDYLOX_NOINLINE
#define GOLDYLOX_ALWAYS_INLINE inline
#endif

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

// Fixed rather than std::hardware_destructive_interference_size: that value may differ between
// translation units built with different -mtune flags, which would change struct layouts.
inline constexpr std::size_t cache_line = 64;

inline void cpu_relax() noexcept {
#if GOLDYLOX_HAS_SSE2
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

// High 64 bits of a 64x64-bit product: maps a hash onto [0, n) without a division.
inline std::uint64_t mul_high(std::uint64_t a, std::uint64_t b) noexcept {
#if defined(__SIZEOF_INT128__)
  __extension__ typedef unsigned __int128 u128;
  return static_cast<std::uint64_t>((static_cast<u128>(a) * b) >> 64);
#else
  const std::uint64_t a_lo = a & 0xffffffffU, a_hi = a >> 32;
  const std::uint64_t b_lo = b & 0xffffffffU, b_hi = b >> 32;
  const std::uint64_t lo_lo = a_lo * b_lo, hi_lo = a_hi * b_lo, lo_hi = a_lo * b_hi;
  const std::uint64_t cross = (lo_lo >> 32) + (hi_lo & 0xffffffffU) + lo_hi;
  return a_hi * b_hi + (hi_lo >> 32) + (cross >> 32);
#endif
}

// (a * b) folded: high 64 bits xor low 64 bits of the 128-bit product.
inline std::uint64_t fold_multiply(std::uint64_t a, std::uint64_t b) noexcept {
#if defined(__SIZEOF_INT128__)
  __extension__ typedef unsigned __int128 u128;
  const u128 p = static_cast<u128>(a) * b;
  return static_cast<std::uint64_t>(p) ^ static_cast<std::uint64_t>(p >> 64);
#else
  return (a * b) ^ mul_high(a, b);
#endif
}

// Starts loading the line at p into all cache levels. ForWrite asks for it in a writable state
// (prefetchw where the CPU has it), for lines this thread is about to modify: the later write or
// atomic RMW then needs no second coherence request.
template <bool ForWrite = false>
GOLDYLOX_ALWAYS_INLINE void prefetch(const void* p) noexcept {
#if defined(__GNUC__) || defined(__clang__)
  __builtin_prefetch(p, ForWrite ? 1 : 0, 3);
#else
  (void)p;
#endif
}

// Little-endian integers in byte buffers (on-disk formats: trace files, cold-tier records),
// whatever the host's byte order.
template <class T>
void store_le(std::byte* at, T v) noexcept {
  if constexpr (std::endian::native == std::endian::big) {
    for (std::size_t i = 0; i < sizeof(T); ++i) {
      at[i] = static_cast<std::byte>((static_cast<std::uint64_t>(v) >> (8 * i)) & 0xff);
    }
  } else {
    std::memcpy(at, &v, sizeof(T));
  }
}

template <class T>
T load_le(const void* from) noexcept {
  const auto* at = static_cast<const unsigned char*>(from);
  if constexpr (std::endian::native == std::endian::big) {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < sizeof(T); ++i) v |= static_cast<std::uint64_t>(at[i]) << (8 * i);
    return static_cast<T>(v);
  } else {
    T v;
    std::memcpy(&v, at, sizeof(T));
    return v;
  }
}

}  // namespace detail
GOLDYLOX_END_NAMESPACE
