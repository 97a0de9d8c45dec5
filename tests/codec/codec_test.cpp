// The cold tier's codecs: round trips at every level class, real compression of compressible
// data, and corrupt, truncated or mis-sized input reported as kDataLoss without a crash (run
// under AddressSanitizer in CI).
#include "goldylox/detail/codec/codec.hpp"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace {

namespace gd = goldylox::detail;
using bytes = std::vector<std::byte>;

bytes random_bytes(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  bytes b(n);
  for (auto& x : b) x = static_cast<std::byte>(rng());
  return b;
}

// About 1 KiB records of JSON-like text, as the cold tier's benchmark stores.
bytes json_like(std::size_t n) {
  std::string s;
  for (int i = 0; s.size() < n; ++i) {
    s += R"({"id":)" + std::to_string(i) + R"(,"name":"user)" + std::to_string(i % 97) +
         R"(","email":"user)" + std::to_string(i % 97) +
         R"(@example.com","active":true,"roles":["reader","writer"],"score":)" +
         std::to_string((i * 7919) % 1000) + "}\n";
  }
  s.resize(n);
  bytes b(n);
  std::memcpy(b.data(), s.data(), n);
  return b;
}

template <class C>
bytes compress(const C& c, const bytes& in) {
  bytes out(c.bound(in.size()));
  const auto n = c.compress(in, out);
  EXPECT_TRUE(n.ok()) << n.status();
  out.resize(n.ok() ? *n : 0);
  return out;
}

template <class C>
void round_trips(const C& c) {
  for (const bytes& in : {bytes{}, bytes{std::byte{42}}, random_bytes(65536, 1), json_like(4096),
                          json_like(200'000)}) {
    const bytes packed = compress(c, in);
    bytes back(in.size());
    const absl::Status s = c.decompress(packed, back);
    ASSERT_TRUE(s.ok()) << C::name << " " << in.size() << ": " << s;
    EXPECT_EQ(back, in) << C::name << " " << in.size();
  }
}

// Includes the empty value: LZ4 HC crashed on it (a null source pointer) before codec.hpp guarded
// it.
TEST(Codec, EveryCodecRoundTripsAtItsLevels) {
  round_trips(gd::none_codec{});
  for (int level : {0, 1, 9, 12}) round_trips(gd::lz4_codec{level});
  for (int level : {ZSTD_minCLevel(), -1, 1, 3, 19}) round_trips(gd::zstd_codec{level});
  for (int quality : {0, 5, 9}) round_trips(gd::brotli_codec{quality});
}

// Levels are not strictly monotonic on every input (zstd 19 can lose to 1 by a fraction of a
// percent), so only the wide gaps are checked: LZ4 HC against LZ4's fast mode, zstd's slowest
// against its fastest, Brotli 9 against 0.
TEST(Codec, CompressibleDataShrinksAndHigherLevelsShrinkItMore) {
  const bytes in = json_like(64 * 1024);
  const auto ratio = [&](const auto& c) {
    return static_cast<double>(compress(c, in).size()) / static_cast<double>(in.size());
  };
  EXPECT_LT(ratio(gd::lz4_codec{0}), 0.5);
  EXPECT_LT(ratio(gd::zstd_codec{3}), 0.25);
  EXPECT_LT(ratio(gd::brotli_codec{5}), 0.25);
  EXPECT_LE(ratio(gd::lz4_codec{12}), ratio(gd::lz4_codec{0}));
  EXPECT_LT(ratio(gd::zstd_codec{19}), ratio(gd::zstd_codec{ZSTD_minCLevel()}));
  EXPECT_LT(ratio(gd::brotli_codec{9}), ratio(gd::brotli_codec{0}));
  EXPECT_EQ(ratio(gd::none_codec{}), 1.0);
}

// The on-disk ids never change.
TEST(Codec, IdsAreStable) {
  EXPECT_EQ(static_cast<int>(gd::none_codec::id), 0);
  EXPECT_EQ(static_cast<int>(gd::lz4_codec::id), 1);
  EXPECT_EQ(static_cast<int>(gd::zstd_codec::id), 2);
  EXPECT_EQ(static_cast<int>(gd::brotli_codec::id), 3);
}

template <class C>
void rejects_bad_input(const C& c) {
  const bytes in = json_like(8192);
  const bytes packed = compress(c, in);
  bytes out(in.size());
  // Truncated.
  const bytes half(packed.begin(), packed.begin() + static_cast<std::ptrdiff_t>(packed.size() / 2));
  EXPECT_EQ(c.decompress(half, out).code(), absl::StatusCode::kDataLoss) << C::name;
  // A stored original size that is wrong either way.
  bytes shorter(in.size() - 1), longer(in.size() + 1);
  EXPECT_EQ(c.decompress(packed, shorter).code(), absl::StatusCode::kDataLoss) << C::name;
  EXPECT_EQ(c.decompress(packed, longer).code(), absl::StatusCode::kDataLoss) << C::name;
  // Random flips: an error or (if the damage decodes) the right size, never a crash; the
  // record checksum above the codec catches the rest.
  std::mt19937_64 rng(7);
  int errors = 0;
  for (int i = 0; i < 200; ++i) {
    bytes bad = packed;
    for (int f = 0; f < 3; ++f) bad[rng() % bad.size()] ^= static_cast<std::byte>(1 + rng() % 255);
    const absl::Status s = c.decompress(bad, out);
    if (!s.ok()) {
      EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << C::name << ": " << s;
      ++errors;
    }
  }
  EXPECT_GT(errors, 0) << C::name;
  // Garbage that was never compressed.
  EXPECT_FALSE(c.decompress(random_bytes(512, 3), out).ok()) << C::name;
  // Too small an output for compression: an error, not an overrun.
  bytes tiny(8);
  const auto n = c.compress(in, tiny);
  EXPECT_EQ(n.status().code(), absl::StatusCode::kResourceExhausted) << C::name;
}

TEST(Codec, CorruptTruncatedOrMisSizedInputIsDataLoss) {
  rejects_bad_input(gd::lz4_codec{0});
  rejects_bad_input(gd::lz4_codec{9});
  rejects_bad_input(gd::zstd_codec{3});
  rejects_bad_input(gd::brotli_codec{5});
  bytes out(4);
  const bytes three(3);
  EXPECT_EQ(gd::none_codec{}.decompress(three, out).code(), absl::StatusCode::kDataLoss);
}

TEST(Codec, LevelsOutsideTheRangeAreRefused) {
  EXPECT_THROW(gd::lz4_codec{-1}, std::invalid_argument);
  EXPECT_THROW(gd::lz4_codec{13}, std::invalid_argument);
  EXPECT_THROW(gd::zstd_codec{ZSTD_maxCLevel() + 1}, std::invalid_argument);
  EXPECT_THROW(gd::brotli_codec{12}, std::invalid_argument);
  try {
    gd::zstd_codec bad{99};
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("zstd: level 99 is outside"), std::string::npos)
        << e.what();
  }
}

}  // namespace
