// Component codec/ (main header: this one; adaptive.hpp picks a codec per value type). Owns the
// compressors the cold tier stores values with. Stateless apart from per-thread scratch contexts;
// every call reports failure by status and never writes past a caller's buffer. May call common/
// and the codec contract in concepts.hpp, never a tier.
//
// The cold tier's codecs (the `codec` concept, concepts.hpp): none, LZ4, Zstandard and Brotli.
//
//   none_codec           a copy; bound(n) = n
//   lz4_codec(level)     0: LZ4's fast mode; 1..12: LZ4 HC at that level (better ratio, slower
//                        compression, the same fast decompression)
//   zstd_codec(level)    ZSTD_minCLevel() (negative: faster) .. ZSTD_maxCLevel() (22); default 3
//   brotli_codec(q)      quality 0..11; default 5 (11 is very slow to compress)
// A level outside its codec's range throws std::invalid_argument naming the range.
//
// Every call works on caller buffers and reports failure by status, never by overrunning or
// under-filling them: compression into too small an output is kResourceExhausted (callers size
// it with bound()); decompression that fails, or yields any size other than the output's (the
// record's stored original size), is kDataLoss. LZ4 and Brotli decode with their bounds-checked
// entry points, Zstandard with an exact destination capacity, so a corrupt input cannot make
// them write past the output.
//
// Zstandard's compression and decompression contexts are kept per thread and reused: making one
// costs more than compressing a small value. LZ4 and Brotli's one-shot calls keep no state.
#pragma once

#include <algorithm>
#include <bit>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>

#include <brotli/decode.h>
#include <brotli/encode.h>
#include <lz4.h>
#include <lz4hc.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "goldylox/concepts.hpp"
#include "goldylox/detail/common/platform.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

// Debian's abseil has its own string_view, which StrCat takes; std::string_view converts here.
inline absl::string_view as_absl(std::string_view s) noexcept {
  return {s.data(), s.size()};
}

inline absl::Status codec_data_loss(std::string_view codec, std::string_view what,
                                    std::size_t expected) {
  return absl::DataLossError(absl::StrCat(as_absl(codec), ": ", as_absl(what), " (expected ",
                                          expected, " bytes after decompression)"));
}

inline absl::Status codec_output_too_small(std::string_view codec, std::size_t in,
                                           std::size_t out) {
  return absl::ResourceExhaustedError(absl::StrCat(as_absl(codec), ": ", in,
                                                   " bytes do not compress into an output of ", out,
                                                   " bytes (size it with bound())"));
}

// A decoder that produced another size than the record's stored original size.
inline absl::Status check_decoded_size(std::string_view codec, std::size_t got,
                                       std::size_t expected) {
  if (got == expected) return absl::OkStatus();
  return codec_data_loss(codec, absl::StrCat("the input decompresses to ", got, " bytes"),
                         expected);
}

// The level of a codec that has one, checked against its range once, at construction.
class leveled_codec {
 public:
  int level() const noexcept { return level_; }

 protected:
  leveled_codec(std::string_view codec, int level, int lo, int hi) : level_(level) {
    if (level < lo || level > hi) {
      throw std::invalid_argument(
          absl::StrCat(as_absl(codec), ": level ", level, " is outside ", lo, "..", hi));
    }
  }
  int level_;
};

class none_codec {
 public:
  static constexpr codec_id id = codec_id::none;
  static constexpr std::string_view name = "none";
  std::size_t bound(std::size_t n) const noexcept { return n; }
  absl::StatusOr<std::size_t> compress(std::span<const std::byte> in,
                                       std::span<std::byte> out) const {
    if (out.size() < in.size()) return codec_output_too_small(name, in.size(), out.size());
    if (!in.empty()) std::memcpy(out.data(), in.data(), in.size());
    return in.size();
  }
  absl::Status decompress(std::span<const std::byte> in, std::span<std::byte> out) const {
    if (in.size() != out.size()) {
      return codec_data_loss(name, absl::StrCat("a stored size of ", in.size()), out.size());
    }
    if (!in.empty()) std::memcpy(out.data(), in.data(), in.size());
    return absl::OkStatus();
  }
};

class lz4_codec : public leveled_codec {
 public:
  static constexpr codec_id id = codec_id::lz4;
  static constexpr std::string_view name = "lz4";
  static constexpr int max_level = LZ4HC_CLEVEL_MAX;

  explicit lz4_codec(int level = 0) : leveled_codec(name, level, 0, max_level) {}

  std::size_t bound(std::size_t n) const noexcept {
    return n > LZ4_MAX_INPUT_SIZE
               ? 0
               : static_cast<std::size_t>(LZ4_compressBound(static_cast<int>(n)));
  }
  absl::StatusOr<std::size_t> compress(std::span<const std::byte> in,
                                       std::span<std::byte> out) const {
    if (in.size() > LZ4_MAX_INPUT_SIZE) {
      return absl::InvalidArgumentError(
          absl::StrCat("lz4: ", in.size(), " bytes exceed LZ4's limit of ", LZ4_MAX_INPUT_SIZE));
    }
    const int cap = static_cast<int>(std::min<std::size_t>(out.size(), INT_MAX));
    // LZ4 HC reads through its source pointer even for 0 bytes: never hand it a null one.
    static constexpr char empty = 0;
    const char* src = in.empty() ? &empty : reinterpret_cast<const char*>(in.data());
    auto* dst = reinterpret_cast<char*>(out.data());
    // LZ4_compress_HC would allocate (and clear) a 256 KiB state on every call; the HC state
    // is kept per thread instead, like zstd's contexts.
    const int n = level_ == 0 ? LZ4_compress_default(src, dst, static_cast<int>(in.size()), cap)
                              : LZ4_compress_HC_extStateHC(
                                    hc_state(), src, dst, static_cast<int>(in.size()), cap, level_);
    if (n <= 0) return codec_output_too_small(name, in.size(), out.size());
    return static_cast<std::size_t>(n);
  }
  absl::Status decompress(std::span<const std::byte> in, std::span<std::byte> out) const {
    if (in.size() > LZ4_MAX_INPUT_SIZE || out.size() > LZ4_MAX_INPUT_SIZE) {
      return codec_data_loss(name, "a frame larger than LZ4 allows", out.size());
    }
    const int n = LZ4_decompress_safe(reinterpret_cast<const char*>(in.data()),
                                      reinterpret_cast<char*>(out.data()),
                                      static_cast<int>(in.size()), static_cast<int>(out.size()));
    if (n < 0) return codec_data_loss(name, "corrupt or truncated input", out.size());
    return check_decoded_size(name, static_cast<std::size_t>(n), out.size());
  }

 private:
  static void* hc_state() {
    struct aligned_free {
      void operator()(void* p) const noexcept { std::free(p); }
    };
    static thread_local std::unique_ptr<void, aligned_free> state(std::aligned_alloc(
        alignof(std::max_align_t), (static_cast<std::size_t>(LZ4_sizeofStateHC()) + 15) / 16 * 16));
    if (state == nullptr) throw std::bad_alloc();
    return state.get();
  }
};

class zstd_codec : public leveled_codec {
 public:
  static constexpr codec_id id = codec_id::zstd;
  static constexpr std::string_view name = "zstd";

  explicit zstd_codec(int level = 3)
      : leveled_codec(name, level, ZSTD_minCLevel(), ZSTD_maxCLevel()) {}

  std::size_t bound(std::size_t n) const noexcept {
    const std::size_t b = ZSTD_compressBound(n);
    return ZSTD_isError(b) != 0U ? 0 : b;
  }
  absl::StatusOr<std::size_t> compress(std::span<const std::byte> in,
                                       std::span<std::byte> out) const {
    const std::size_t n =
        ZSTD_compressCCtx(contexts().c.get(), out.data(), out.size(), in.data(), in.size(), level_);
    if (ZSTD_isError(n) != 0U) {
      if (ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall) {
        return codec_output_too_small(name, in.size(), out.size());
      }
      return absl::InternalError(absl::StrCat("zstd: ", ZSTD_getErrorName(n)));
    }
    return n;
  }
  absl::Status decompress(std::span<const std::byte> in, std::span<std::byte> out) const {
    const std::size_t n =
        ZSTD_decompressDCtx(contexts().d.get(), out.data(), out.size(), in.data(), in.size());
    if (ZSTD_isError(n) != 0U) return codec_data_loss(name, ZSTD_getErrorName(n), out.size());
    return check_decoded_size(name, static_cast<std::size_t>(n), out.size());
  }

 private:
  struct cctx_free {
    void operator()(ZSTD_CCtx* c) const noexcept { ZSTD_freeCCtx(c); }
  };
  struct dctx_free {
    void operator()(ZSTD_DCtx* d) const noexcept { ZSTD_freeDCtx(d); }
  };
  struct thread_contexts {
    std::unique_ptr<ZSTD_CCtx, cctx_free> c{ZSTD_createCCtx()};
    std::unique_ptr<ZSTD_DCtx, dctx_free> d{ZSTD_createDCtx()};
  };
  static thread_contexts& contexts() {
    static thread_local thread_contexts t;
    if (t.c == nullptr || t.d == nullptr) throw std::bad_alloc();
    return t;
  }
};

class brotli_codec : public leveled_codec {
 public:
  static constexpr codec_id id = codec_id::brotli;
  static constexpr std::string_view name = "brotli";

  explicit brotli_codec(int quality = 5)
      : leveled_codec(name, quality, BROTLI_MIN_QUALITY, BROTLI_MAX_QUALITY) {}

  std::size_t bound(std::size_t n) const noexcept {
    // 0 means "too large to bound"; the smallest input still needs a byte or two.
    const std::size_t b = BrotliEncoderMaxCompressedSize(n);
    return b == 0 && n < 16 ? 16 : b;
  }
  absl::StatusOr<std::size_t> compress(std::span<const std::byte> in,
                                       std::span<std::byte> out) const {
    // A window no larger than the value: the encoder sizes its tables by the window, and a
    // default 4 MiB window made every 1 KiB value pay for them (quality 9: 1.5 against 28 MB/s).
    const int lgwin = std::clamp(static_cast<int>(std::bit_width(in.size())),
                                 BROTLI_MIN_WINDOW_BITS, BROTLI_DEFAULT_WINDOW);
    std::size_t n = out.size();
    if (BrotliEncoderCompress(level_, lgwin, BROTLI_MODE_GENERIC, in.size(),
                              reinterpret_cast<const std::uint8_t*>(in.data()), &n,
                              reinterpret_cast<std::uint8_t*>(out.data())) != BROTLI_TRUE) {
      return codec_output_too_small(name, in.size(), out.size());
    }
    return n;
  }
  absl::Status decompress(std::span<const std::byte> in, std::span<std::byte> out) const {
    std::size_t n = out.size();
    const BrotliDecoderResult r =
        BrotliDecoderDecompress(in.size(), reinterpret_cast<const std::uint8_t*>(in.data()), &n,
                                reinterpret_cast<std::uint8_t*>(out.data()));
    if (r != BROTLI_DECODER_RESULT_SUCCESS) {
      return codec_data_loss(name,
                             r == BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT
                                 ? "the input decompresses to more bytes"
                                 : "corrupt or truncated input",
                             out.size());
    }
    return check_decoded_size(name, static_cast<std::size_t>(n), out.size());
  }
};

static_assert(codec<none_codec> && codec<lz4_codec> && codec<zstd_codec> && codec<brotli_codec>);

}  // namespace detail
GOLDYLOX_END_NAMESPACE
