// The cold tier's adaptive codec: per value type, sample how well and how fast LZ4 and zstd
// compress its values, and compress each record with the one that pays (or none).
//
// State: one entry per type tag (a hash map under a mutex, touched once per record for a
// counter and the current choice). The first 16 records of a type and every 64th after are
// samples: compressed with both codecs (timed), which updates the type's moving averages of
// compressed/original size and nanoseconds per input byte; the sample is stored with the smaller
// output. Other records use the type's current choice:
//   * none  if neither codec gets below 0.9 of the original size (compression does not pay);
//   * zstd  if it saves at least a sixth more than LZ4 (ratio <= 0.85 x LZ4's), unless it
//           compresses under 20 MB/s (50 ns per byte) for a saving of less than a third;
//   * lz4   otherwise: nearly the same size, several times faster to compress and decompress.
// The thresholds are documented in docs/cold-tier.md with the measurements behind them. The
// choice is per record: records of one type may use different codecs as the type's data
// changes, and each record names its codec, so reading never depends on the choice.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <span>
#include <type_traits>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "goldylox/detail/codec/codec.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

class adaptive_codec {
 public:
  explicit adaptive_codec(int zstd_level = 3) : zstd_(zstd_level) {}
  adaptive_codec(const adaptive_codec& o) : zstd_(o.zstd_) {}

  struct choice {
    codec_id codec = codec_id::none;
    std::size_t size = 0;  // bytes of `out` holding the compressed value (codec != none)
  };

  // Compresses `value` for a record of type `tag` into `out` (resized as needed).
  choice compress(std::uint64_t tag, std::span<const std::byte> value,
                  std::vector<std::byte>& out) {
    if (value.empty()) return {};
    codec_id current;
    bool sample;
    {
      std::lock_guard lock(mu_);
      type_stats& t = types_[tag];
      sample = t.records < 16 || t.records % 64 == 0;
      ++t.records;
      current = t.choice;
    }
    if (!sample) return run(current, value, out);

    const auto timed = [&](auto& codec, std::vector<std::byte>& buf, double& ns) {
      buf.resize(codec.bound(value.size()));
      const auto start = std::chrono::steady_clock::now();
      auto n = codec.compress(value, buf);
      ns = static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now() - start)
                                   .count());
      return n.ok() ? *n : value.size();
    };
    thread_local std::vector<std::byte> other;
    double lz4_ns = 0, zstd_ns = 0;
    const std::size_t lz4_n = timed(lz4_, other, lz4_ns);
    const std::size_t zstd_n = timed(zstd_, out, zstd_ns);
    const double n = static_cast<double>(value.size());
    {
      std::lock_guard lock(mu_);
      type_stats& t = types_[tag];
      const double w = t.samples == 0 ? 1.0 : 0.25;  // a moving average over recent samples
      t.lz4_ratio += w * (static_cast<double>(lz4_n) / n - t.lz4_ratio);
      t.zstd_ratio += w * (static_cast<double>(zstd_n) / n - t.zstd_ratio);
      t.zstd_ns_per_byte += w * (zstd_ns / n - t.zstd_ns_per_byte);
      ++t.samples;
      t.choice = decide(t);
    }
    // This record gets the smaller of the two outputs it already has.
    if (zstd_n < value.size() && zstd_n <= lz4_n) return {codec_id::zstd, zstd_n};
    if (lz4_n < value.size()) {
      out.assign(other.begin(), other.begin() + static_cast<std::ptrdiff_t>(lz4_n));
      return {codec_id::lz4, lz4_n};
    }
    return {};
  }

  // The codec the next non-sample record of `tag` would use (for tests and statistics).
  codec_id current(std::uint64_t tag) const {
    std::lock_guard lock(mu_);
    auto it = types_.find(tag);
    return it == types_.end() ? codec_id::none : it->second.choice;
  }

 private:
  struct type_stats {
    std::uint64_t records = 0, samples = 0;
    double lz4_ratio = 1, zstd_ratio = 1, zstd_ns_per_byte = 0;
    codec_id choice = codec_id::none;
  };

  static codec_id decide(const type_stats& t) {
    const double best = std::min(t.lz4_ratio, t.zstd_ratio);
    if (best > 0.9) return codec_id::none;
    if (t.zstd_ratio <= 0.85 * t.lz4_ratio) {
      const bool slow = t.zstd_ns_per_byte > 50.0;
      if (!slow || t.zstd_ratio <= 0.67 * t.lz4_ratio) return codec_id::zstd;
    }
    return codec_id::lz4;
  }

  choice run(codec_id id, std::span<const std::byte> value, std::vector<std::byte>& out) {
    const auto with = [&](auto& codec) -> choice {
      out.resize(codec.bound(value.size()));
      auto n = codec.compress(value, out);
      if (!n.ok() || *n >= value.size()) return {};
      return {std::remove_cvref_t<decltype(codec)>::id, *n};
    };
    switch (id) {
      case codec_id::zstd:
        return with(zstd_);
      case codec_id::lz4:
        return with(lz4_);
      default:
        return {};
    }
  }

  mutable std::mutex mu_;
  absl::flat_hash_map<std::uint64_t, type_stats> types_;
  // Shared by all threads: their compress() is const and keeps its working state per thread.
  const lz4_codec lz4_;
  const zstd_codec zstd_;
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
