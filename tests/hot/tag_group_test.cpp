// Tag matching (detail/hot/tag_group.hpp): SIMD and SWAR against a byte-by-byte reference, tag
// derivation from hashes, and tag words. Moved from the old tests/unit/internals_test.cpp.
#include "goldylox/detail/hot/tag_group.hpp"

#include <atomic>
#include <cstdint>
#include <iterator>
#include <random>

#include <gtest/gtest.h>

namespace internals_test {

namespace detail = goldylox::detail;

// ---- tags
// -----------------------------------------------------------------------------------------

unsigned reference_match(std::uint64_t lo, std::uint64_t hi, std::uint8_t tag) {
  unsigned mask = 0;
  for (unsigned i = 0; i < 16; ++i) {
    const std::uint64_t w = i < 8 ? lo : hi;
    if (static_cast<std::uint8_t>(w >> ((i % 8) * 8)) == tag) mask |= 1U << i;
  }
  return mask;
}

// Random words, and words seeded with the tag and its near neighbours (tag ^ 0x80, tag +- 1,
// 0x00, 0xff) at random positions: exactly the bytes that break naive SWAR tricks.
std::uint64_t crafted_word(std::mt19937_64& rng, std::uint8_t tag) {
  const std::uint8_t near[] = {tag,
                               static_cast<std::uint8_t>(tag ^ 0x80),
                               static_cast<std::uint8_t>(tag + 1),
                               static_cast<std::uint8_t>(tag - 1),
                               0x00,
                               0xff,
                               static_cast<std::uint8_t>(tag ^ 0x01)};
  std::uint64_t w = rng();
  for (unsigned i = 0; i < 8; ++i) {
    if (rng() % 2 == 0) w = detail::with_tag(w, i, near[rng() % std::size(near)]);
  }
  return w;
}

TEST(TagMatching, SimdAndSwarAgreeWithAByteByByteReference) {
  std::mt19937_64 rng(42);
  for (unsigned t = 0; t < 256; ++t) {
    const auto tag = static_cast<std::uint8_t>(t);
    const std::uint64_t pattern = detail::tag_pattern(tag);
    for (int i = 0; i < 400; ++i) {
      const bool crafted = i % 4 != 0;
      const std::uint64_t lo = crafted ? crafted_word(rng, tag) : rng();
      const std::uint64_t hi = crafted ? crafted_word(rng, tag) : rng();
      const unsigned want = reference_match(lo, hi, tag);
      ASSERT_EQ(detail::match_swar(lo, hi, pattern), want)
          << std::hex << "tag " << t << " lo " << lo << " hi " << hi;
      ASSERT_EQ(detail::match_simd(lo, hi, pattern), want)
          << std::hex << "tag " << t << " lo " << lo << " hi " << hi;
      ASSERT_EQ(detail::match_tags(true, lo, hi, pattern), want);
      ASSERT_EQ(detail::match_tags(false, lo, hi, pattern), want);
      // The read path's group load (one 16-byte load where available) sees the same bytes.
      alignas(16) std::atomic<std::uint64_t> words[2] = {lo, hi};
      ASSERT_EQ(detail::match_group<true>(words, pattern), want)
          << std::hex << "tag " << t << " lo " << lo << " hi " << hi;
      ASSERT_EQ(detail::match_group<false>(words, pattern), want);
    }
    // Edge words: all equal, none equal.
    ASSERT_EQ(detail::match_swar(pattern, pattern, pattern), 0xffffu);
    ASSERT_EQ(detail::match_simd(pattern, pattern, pattern), 0xffffu);
    const std::uint64_t other = detail::tag_pattern(static_cast<std::uint8_t>(t + 1));
    ASSERT_EQ(detail::match_swar(other, other, pattern), 0u);
    ASSERT_EQ(detail::match_simd(other, other, pattern), 0u);
  }
}

TEST(TagMatching, EverySingleBytePosition) {
  for (unsigned t = 0; t < 256; ++t) {
    const auto tag = static_cast<std::uint8_t>(t);
    const auto filler = static_cast<std::uint8_t>(tag ^ 0x80);
    for (unsigned pos = 0; pos < 16; ++pos) {
      std::uint64_t lo = detail::tag_pattern(filler);
      std::uint64_t hi = lo;
      if (pos < 8) {
        lo = detail::with_tag(lo, pos, tag);
      } else {
        hi = detail::with_tag(hi, pos - 8, tag);
      }
      ASSERT_EQ(detail::match_swar(lo, hi, detail::tag_pattern(tag)), 1u << pos) << t;
      ASSERT_EQ(detail::match_simd(lo, hi, detail::tag_pattern(tag)), 1u << pos) << t;
    }
  }
}

TEST(TagMatching, TagOfNeverReturnsEmptyOrReserved) {
  std::mt19937_64 rng(7);
  for (unsigned low = 0; low < 256; ++low) {
    for (int i = 0; i < 64; ++i) {
      const std::uint64_t h = (rng() & ~std::uint64_t{0xff}) | low;
      const std::uint8_t tag = detail::tag_of(h);
      ASSERT_NE(tag, detail::tag_empty);
      ASSERT_NE(tag, detail::tag_reserved);
      if (low >= 2) {
        ASSERT_EQ(tag, low);  // full tags keep the hash byte
      }
      ASSERT_EQ(detail::tag_pattern_of(h), detail::tag_pattern(tag));
    }
  }
}

TEST(TagMatching, WithTagAndTagAtRoundTrip) {
  std::mt19937_64 rng(3);
  for (int i = 0; i < 1000; ++i) {
    const std::uint64_t w = rng();
    const unsigned index = static_cast<unsigned>(rng() % 8);
    const auto tag = static_cast<std::uint8_t>(rng());
    const std::uint64_t changed = detail::with_tag(w, index, tag);
    ASSERT_EQ(detail::tag_at(changed, index), tag);
    for (unsigned j = 0; j < 8; ++j) {
      if (j != index) {
        ASSERT_EQ(detail::tag_at(changed, j), detail::tag_at(w, j));
      }
    }
  }
}

}  // namespace internals_test
