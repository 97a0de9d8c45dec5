// Tag groups: the 16 one-byte control tags that front each group of 16 slots.
//
// Layout: a group's tags are stored as two std::atomic<uint64_t> words (tag i lives in word i/8,
// bits 8*(i%8)..8*(i%8)+7), 16-byte aligned. Writers change them with atomic RMWs on one word.
// Readers need each tag byte read whole, and nothing more: the two words are never consistent
// with each other anyway (a writer changes one at a time), and every match is verified against
// the slot. So the lock-free read path (match_group) loads all 16 bytes with one aligned SSE load
// where the CPU has it: on x86-64 an aligned 16-byte load never tears within an aligned 8-byte
// word (Intel SDM vol. 3, 9.1.1; on AVX CPUs the whole 16 bytes are atomic). The load is written
// as inline assembly, so the compiler treats it as an opaque read it cannot split, merge or
// repeat, as it must treat an atomic load. ThreadSanitizer cannot see inside assembly, so its
// builds, and every other target, load the two words with relaxed atomic loads instead — the
// same protocol, visible to the race detector.
//
// Tag values: 0 = empty, 1 = reserved (a writer is filling the slot), 2..255 = full, derived from
// the low hash byte. A full-tag match is only a hint; callers always verify the key.
//
// Matching: an SSE2 compare through xsimd at a fixed 128-bit width (never the compiler's default
// width: two translation units built with different -m flags must agree), or a portable SWAR
// compare on the two words. Both return the same 16-bit mask (bit i = tag i matches), and the
// caller can pick either at run time (enable_simd) so they can be compared on one machine.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

#include "goldylox/detail/common/platform.hpp"

#if GOLDYLOX_HAS_SSE2
#include <xsimd/xsimd.hpp>
#endif

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

inline constexpr std::uint8_t tag_empty = 0;
inline constexpr std::uint8_t tag_reserved = 1;
inline constexpr unsigned group_width = 16;

// Maps a mixed hash to a full tag in [2, 255].
constexpr std::uint8_t tag_of(std::uint64_t h) noexcept {
  const auto t = static_cast<std::uint8_t>(h);
  return t < 2 ? static_cast<std::uint8_t>(t + 2) : t;
}

// Exact per-byte equality on one 64-bit word: returns 0x80 in every byte of `w` equal to the
// byte in `pattern`, no false positives (unlike the classic has-zero-byte trick).
GOLDYLOX_ALWAYS_INLINE constexpr std::uint64_t swar_eq(std::uint64_t w,
                                                       std::uint64_t pattern) noexcept {
  constexpr std::uint64_t lo7 = 0x7f7f7f7f7f7f7f7fULL;
  const std::uint64_t x = w ^ pattern;
  return ~(((x & lo7) + lo7) | x | lo7);
}

// Gathers the 0x80 marker of each byte into bits 0..7.
GOLDYLOX_ALWAYS_INLINE constexpr unsigned swar_pack(std::uint64_t m) noexcept {
  return static_cast<unsigned>(((m >> 7) * 0x0102040810204080ULL) >> 56);
}

// The tag repeated in all 8 bytes of a word: what the matchers compare against. Computed once
// per lookup and kept in a 64-bit register.
constexpr std::uint64_t tag_pattern(std::uint8_t tag) noexcept {
  return 0x0101010101010101ULL * tag;
}

// tag_pattern(tag_of(h)) for every low hash byte, so a lookup gets its pattern with one load
// instead of a compare, a conditional move and a multiply (2 KiB, in L1 while lookups run).
alignas(cache_line) inline constexpr std::array<std::uint64_t, 256> hash_tag_patterns = [] {
  std::array<std::uint64_t, 256> t{};
  for (unsigned b = 0; b < 256; ++b) t[b] = tag_pattern(tag_of(b));
  return t;
}();

GOLDYLOX_ALWAYS_INLINE std::uint64_t tag_pattern_of(std::uint64_t h) noexcept {
  return hash_tag_patterns[h & 0xff];
}

GOLDYLOX_ALWAYS_INLINE constexpr unsigned match_swar(std::uint64_t lo, std::uint64_t hi,
                                                     std::uint64_t pattern) noexcept {
  return swar_pack(swar_eq(lo, pattern)) | (swar_pack(swar_eq(hi, pattern)) << 8);
}

#if GOLDYLOX_HAS_SSE2
GOLDYLOX_ALWAYS_INLINE unsigned match_simd(std::uint64_t lo, std::uint64_t hi,
                                           std::uint64_t pattern) noexcept {
  using batch = xsimd::batch<std::uint8_t, xsimd::sse2>;
  // Both registers are built from 64-bit general registers (movq + punpcklqdq). Going through
  // memory instead — spilling the words or a one-byte tag and reloading them wider — defeats store
  // forwarding, and a load that cannot forward waits for the store to retire, i.e. behind the
  // previous lookup's cache miss: that serialized lookups and halved throughput (measured).
  const batch tags(_mm_set_epi64x(static_cast<long long>(hi), static_cast<long long>(lo)));
  const batch wanted(_mm_set1_epi64x(static_cast<long long>(pattern)));
  const auto eq = (tags == wanted);
  // xsimd 8.1 has no batch_bool::mask(); the register is an __m128i.
  return static_cast<unsigned>(_mm_movemask_epi8(static_cast<__m128i>(eq)));
}
inline constexpr bool simd_available = true;
#else
inline unsigned match_simd(std::uint64_t lo, std::uint64_t hi, std::uint64_t pattern) noexcept {
  return match_swar(lo, hi, pattern);
}
inline constexpr bool simd_available = false;
#endif

GOLDYLOX_ALWAYS_INLINE unsigned match_tags(bool simd, std::uint64_t lo, std::uint64_t hi,
                                           std::uint64_t pattern) noexcept {
  return simd ? match_simd(lo, hi, pattern) : match_swar(lo, hi, pattern);
}
template <bool Simd>
GOLDYLOX_ALWAYS_INLINE unsigned match_tags(std::uint64_t lo, std::uint64_t hi,
                                           std::uint64_t pattern) noexcept {
  if constexpr (Simd) {
    return match_simd(lo, hi, pattern);
  } else {
    return match_swar(lo, hi, pattern);
  }
}

// The lock-free read of a group's tags (see the header comment): the match mask of all 16 tags
// against `pattern`. Relaxed: callers verify every match under the slot's own synchronization.
#if GOLDYLOX_HAS_SSE2 && !GOLDYLOX_TSAN && (defined(__GNUC__) || defined(__clang__)) && \
    (defined(__x86_64__) || defined(__i386__))
#define GOLDYLOX_TAG_LOAD_128 1
#else
#define GOLDYLOX_TAG_LOAD_128 0
#endif

template <bool Simd>
GOLDYLOX_ALWAYS_INLINE unsigned match_group(const std::atomic<std::uint64_t> (&tags)[2],
                                            std::uint64_t pattern) noexcept {
#if GOLDYLOX_TAG_LOAD_128
  if constexpr (Simd) {
    __m128i v;
    asm("movdqa %1, %0" : "=x"(v) : "m"(*reinterpret_cast<const __m128i*>(&tags)));
    const __m128i eq = _mm_cmpeq_epi8(v, _mm_set1_epi64x(static_cast<long long>(pattern)));
    return static_cast<unsigned>(_mm_movemask_epi8(eq));
  }
#endif
  return match_tags<Simd>(tags[0].load(std::memory_order_relaxed),
                          tags[1].load(std::memory_order_relaxed), pattern);
}

// Returns word `w` with the byte at `index` (0..7) replaced by `tag`.
constexpr std::uint64_t with_tag(std::uint64_t w, unsigned index, std::uint8_t tag) noexcept {
  const unsigned shift = index * 8;
  return (w & ~(0xffULL << shift)) | (std::uint64_t{tag} << shift);
}

constexpr std::uint8_t tag_at(std::uint64_t w, unsigned index) noexcept {
  return static_cast<std::uint8_t>(w >> (index * 8));
}

}  // namespace detail
GOLDYLOX_END_NAMESPACE
