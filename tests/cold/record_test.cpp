// The cold tier's on-disk record: fields survive a round trip at fixed offsets, and any damage
// (every single-bit flip, every truncation, random garbage, absurd sizes) is kDataLoss, never a
// crash or a read out of bounds (AddressSanitizer in CI).
#include "goldylox/detail/cold/record.hpp"

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

bytes of(const std::string& s) {
  bytes b(s.size());
  if (!s.empty()) std::memcpy(b.data(), s.data(), s.size());
  return b;
}

bytes encode(const gd::record_meta& m, const std::string& key, const std::string& value,
             std::size_t value_size) {
  bytes out(gd::record_size(key.size(), value.size()));
  EXPECT_EQ(gd::encode_record(out, m, of(key), of(value), value_size), out.size());
  return out;
}

const gd::record_meta meta{.codec = goldylox::codec_id::zstd,
                           .tombstone = false,
                           .type_tag = 0x1122334455667788ULL,
                           .version = 42,
                           .expiry_ns = 1'800'000'000'000'000'000ULL};

TEST(Record, RoundTripsEveryFieldAtItsOffset) {
  const bytes r = encode(meta, "user:1", "compressed-bytes", 1000);
  EXPECT_EQ(r.size() % 8, 0u);
  EXPECT_EQ(r.size(), 48u + 24u + 8u);  // header, 6 + 16 bytes padded to 24, checksum
  EXPECT_EQ(std::memcmp(r.data(), "GLXR", 4), 0);
  EXPECT_EQ(static_cast<int>(r[4]), 1);  // format version
  EXPECT_EQ(static_cast<int>(r[5]), 2);  // zstd
  const auto v = gd::decode_record(r);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->meta.codec, goldylox::codec_id::zstd);
  EXPECT_FALSE(v->meta.tombstone);
  EXPECT_EQ(v->meta.type_tag, meta.type_tag);
  EXPECT_EQ(v->meta.version, 42u);
  EXPECT_EQ(v->meta.expiry_ns, meta.expiry_ns);
  EXPECT_EQ(bytes(v->key.begin(), v->key.end()), of("user:1"));
  EXPECT_EQ(bytes(v->stored_value.begin(), v->stored_value.end()), of("compressed-bytes"));
  EXPECT_EQ(v->value_size, 1000u);
  EXPECT_EQ(v->size, r.size());
}

TEST(Record, TombstonesEmptyKeysAndBackToBackRecords) {
  gd::record_meta t = meta;
  t.tombstone = true;
  bytes segment = encode(t, "gone", "", 0);
  const bytes second = encode(meta, "", "v", 1);
  segment.insert(segment.end(), second.begin(), second.end());
  auto a = gd::decode_record(segment);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_TRUE(a->meta.tombstone);
  EXPECT_TRUE(a->stored_value.empty());
  auto b = gd::decode_record(std::span<const std::byte>(segment).subspan(a->size));
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_TRUE(b->key.empty());
  EXPECT_EQ(b->stored_value.size(), 1u);
}

TEST(Record, EverySingleBitFlipIsDataLoss) {
  const bytes r = encode(meta, "key-17", "a value of some length", 22);
  for (std::size_t bit = 0; bit < r.size() * 8; ++bit) {
    bytes bad = r;
    bad[bit / 8] ^= static_cast<std::byte>(1U << (bit % 8));
    const auto v = gd::decode_record(bad);
    ASSERT_FALSE(v.ok()) << "flip of bit " << bit << " went unnoticed";
    EXPECT_EQ(v.status().code(), absl::StatusCode::kDataLoss);
  }
}

TEST(Record, EveryTruncationIsDataLoss) {
  const bytes r = encode(meta, "key", "value", 5);
  for (std::size_t n = 0; n < r.size(); ++n) {
    const auto v = gd::decode_record(std::span<const std::byte>(r.data(), n));
    ASSERT_FALSE(v.ok()) << n;
    EXPECT_EQ(v.status().code(), absl::StatusCode::kDataLoss);
  }
}

// Sizes that point far past the buffer (up to 4 GiB each) are refused before anything is read
// through them; random bytes never decode.
TEST(Record, GarbageAndAbsurdSizesAreDataLoss) {
  bytes r = encode(meta, "k", "v", 1);
  gd::store_le<std::uint32_t>(r.data() + 8, 0xffffffffU);
  gd::store_le<std::uint32_t>(r.data() + 12, 0xffffffffU);
  const auto v = gd::decode_record(r);
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.status().message().find("remain"), std::string::npos) << v.status();
  std::mt19937_64 rng(5);
  for (int i = 0; i < 2000; ++i) {
    bytes g(48 + rng() % 200);
    for (auto& x : g) x = static_cast<std::byte>(rng());
    if (i % 2 == 0) std::memcpy(g.data(), "GLXR\x01", 5);  // get past the cheap checks
    EXPECT_EQ(gd::decode_record(g).status().code(), absl::StatusCode::kDataLoss);
  }
}

TEST(Record, EncodingRefusesTooSmallABuffer) {
  bytes out(gd::record_size(3, 3) - 1);
  EXPECT_THROW(gd::encode_record(out, meta, of("abc"), of("def"), 3), std::length_error);
}

}  // namespace
