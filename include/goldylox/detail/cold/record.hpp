// The cold tier's on-disk record: one key and one (possibly compressed) value, self-describing
// and checksummed, so a reader can tell a whole, intact record from anything else.
//
// Layout (little-endian, every field at its natural alignment; docs/cold-tier.md):
//   offset  size  field
//        0     4  magic "GLXR"
//        4     1  format version (1)
//        5     1  codec (codec_id: 0 none, 1 lz4, 2 zstd, 3 brotli)
//        6     2  flags (bit 0: tombstone; the other bits must be 0)
//        8     4  key size in bytes
//       12     4  stored value size (after compression)
//       16     4  value size (before compression)
//       20     4  reserved, 0
//       24     8  type tag (a stable hash of the value's type name)
//       32     8  entry version
//       40     8  expiry (nanoseconds since the Unix epoch; 0: none)
//       48        key bytes, then stored value bytes, then zero padding to a multiple of 8
//    end-8     8  XXH3-64 of every byte before it (header, key, value, padding)
// A record's size is therefore a multiple of 8, and records can follow each other in a segment
// with every header aligned.
//
// Decoding trusts nothing: the magic, version, flags and reserved bits are checked, the sizes
// are checked against the bytes available before anything is read through them (with no
// overflow: each size is at most 2^32), and the checksum covers everything else. Any failure is
// kDataLoss naming what was wrong; the record is never returned.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <stdexcept>

#include <xxhash.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "goldylox/concepts.hpp"
#include "goldylox/detail/common/platform.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

inline constexpr std::uint32_t record_magic = 0x52584c47;  // "GLXR" read little-endian
inline constexpr std::uint8_t record_format_version = 1;
inline constexpr std::size_t record_header_size = 48;
inline constexpr std::size_t record_checksum_size = 8;
inline constexpr std::uint16_t record_flag_tombstone = 1;

struct record_meta {
  codec_id codec = codec_id::none;
  bool tombstone = false;
  std::uint64_t type_tag = 0;
  std::uint64_t version = 0;
  std::uint64_t expiry_ns = 0;  // 0: never expires
};

// A decoded record: views into the bytes it was decoded from.
struct record_view {
  record_meta meta;
  std::span<const std::byte> key;
  std::span<const std::byte> stored_value;  // as the codec left it
  std::uint32_t value_size = 0;             // what decompression must produce
  std::size_t size = 0;                     // bytes the record occupies, checksum included
};

// Bytes a record with these sizes occupies.
constexpr std::size_t record_size(std::size_t key_size, std::size_t stored_value_size) noexcept {
  const std::size_t body = record_header_size + key_size + stored_value_size;
  return (body + 7) / 8 * 8 + record_checksum_size;
}

// Writes the record into `out` (at least record_size(...) bytes) and returns its size. Sizes
// above 2^32 - 1 bytes throw std::length_error (the cold tier refuses such values before).
inline std::size_t encode_record(std::span<std::byte> out, const record_meta& meta,
                                 std::span<const std::byte> key,
                                 std::span<const std::byte> stored_value, std::size_t value_size) {
  constexpr std::size_t limit = 0xffffffffU;
  if (key.size() > limit || stored_value.size() > limit || value_size > limit) {
    throw std::length_error("cold tier record: a key or value of 4 GiB or more");
  }
  const std::size_t size = record_size(key.size(), stored_value.size());
  if (out.size() < size) throw std::length_error("cold tier record: output buffer too small");
  std::byte* p = out.data();
  std::memset(p, 0, size);
  store_le<std::uint32_t>(p, record_magic);
  p[4] = static_cast<std::byte>(record_format_version);
  p[5] = static_cast<std::byte>(meta.codec);
  store_le<std::uint16_t>(p + 6, meta.tombstone ? record_flag_tombstone : 0);
  store_le<std::uint32_t>(p + 8, static_cast<std::uint32_t>(key.size()));
  store_le<std::uint32_t>(p + 12, static_cast<std::uint32_t>(stored_value.size()));
  store_le<std::uint32_t>(p + 16, static_cast<std::uint32_t>(value_size));
  store_le<std::uint64_t>(p + 24, meta.type_tag);
  store_le<std::uint64_t>(p + 32, meta.version);
  store_le<std::uint64_t>(p + 40, meta.expiry_ns);
  if (!key.empty()) std::memcpy(p + record_header_size, key.data(), key.size());
  if (!stored_value.empty()) {
    std::memcpy(p + record_header_size + key.size(), stored_value.data(), stored_value.size());
  }
  const std::size_t covered = size - record_checksum_size;
  store_le<std::uint64_t>(p + covered, XXH3_64bits(p, covered));
  return size;
}

// Decodes the record at the start of `in`; kDataLoss for anything but a whole, intact one.
inline absl::StatusOr<record_view> decode_record(std::span<const std::byte> in) {
  const auto loss = [](auto&&... what) {
    return absl::DataLossError(absl::StrCat("cold tier record: ", what...));
  };
  if (in.size() < record_header_size + record_checksum_size) {
    return loss("only ", in.size(), " bytes, less than a record header");
  }
  const std::byte* p = in.data();
  if (load_le<std::uint32_t>(p) != record_magic) return loss("bad magic");
  if (static_cast<std::uint8_t>(p[4]) != record_format_version) {
    return loss("format version ", static_cast<int>(p[4]), ", expected ",
                static_cast<int>(record_format_version));
  }
  const auto codec = static_cast<std::uint8_t>(p[5]);
  if (codec > static_cast<std::uint8_t>(codec_id::brotli)) return loss("unknown codec ", codec);
  const auto flags = load_le<std::uint16_t>(p + 6);
  if ((flags & ~record_flag_tombstone) != 0) return loss("unknown flags ", flags);
  if (load_le<std::uint32_t>(p + 20) != 0) return loss("reserved bits set");
  const std::size_t key_size = load_le<std::uint32_t>(p + 8);
  const std::size_t stored_size = load_le<std::uint32_t>(p + 12);
  const std::size_t size = record_size(key_size, stored_size);  // < 2^34: no overflow
  if (size > in.size()) {
    return loss("sizes (key ", key_size, ", value ", stored_size, ") need ", size, " bytes, ",
                in.size(), " remain");
  }
  const std::size_t covered = size - record_checksum_size;
  if (XXH3_64bits(p, covered) != load_le<std::uint64_t>(p + covered)) {
    return loss("checksum mismatch");
  }
  record_view r;
  r.meta.codec = static_cast<codec_id>(codec);
  r.meta.tombstone = (flags & record_flag_tombstone) != 0;
  r.meta.type_tag = load_le<std::uint64_t>(p + 24);
  r.meta.version = load_le<std::uint64_t>(p + 32);
  r.meta.expiry_ns = load_le<std::uint64_t>(p + 40);
  r.key = in.subspan(record_header_size, key_size);
  r.stored_value = in.subspan(record_header_size + key_size, stored_size);
  r.value_size = load_le<std::uint32_t>(p + 16);
  r.size = size;
  return r;
}

}  // namespace detail
GOLDYLOX_END_NAMESPACE
