// The cold tier's codecs on the data its benchmark stores: 1 KiB JSON-like values (each a few
// records of one synthetic user table, so values resemble each other but none repeats), one
// value per call as the cold tier compresses them. Per codec and level: compressed/original size
// (`ratio`, lower is better), and compression and decompression speed in input bytes per second.
//
//   ./build/release/bench/goldylox_bench_codecs --benchmark_min_time=0.5
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "common/json_values.hpp"
#include "goldylox/detail/codec/codec.hpp"

namespace {

namespace gd = goldylox::detail;

constexpr std::size_t value_size = goldylox_bench::json_value_size;
constexpr std::size_t values = 512;

// `values` distinct 1 KiB values (common/json_values.hpp), from one seeded generator.
const std::vector<std::vector<std::byte>>& corpus() {
  static const std::vector<std::vector<std::byte>> out = [] {
    std::mt19937_64 rng(2024);
    std::vector<std::vector<std::byte>> v;
    for (std::size_t i = 0; i < values; ++i) {
      const std::string s = goldylox_bench::json_value([&] { return rng(); }, value_size);
      std::vector<std::byte> b(value_size);
      std::memcpy(b.data(), s.data(), value_size);
      v.push_back(std::move(b));
    }
    return v;
  }();
  return out;
}

template <class C>
void compress(benchmark::State& state, C codec) {
  const auto& in = corpus();
  std::vector<std::byte> out(codec.bound(value_size));
  std::size_t i = 0, packed = 0, original = 0;
  for (auto _ : state) {
    const auto n = codec.compress(in[i], out);
    if (!n.ok()) state.SkipWithError("compress failed");
    packed += n.ok() ? *n : 0;
    original += value_size;
    benchmark::DoNotOptimize(out.data());
    if (++i == in.size()) i = 0;
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(original));
  state.counters["ratio"] = static_cast<double>(packed) / static_cast<double>(original);
}

template <class C>
void decompress(benchmark::State& state, C codec) {
  const auto& in = corpus();
  std::vector<std::vector<std::byte>> packed;
  for (const auto& v : in) {
    std::vector<std::byte> out(codec.bound(value_size));
    out.resize(*codec.compress(v, out));
    packed.push_back(std::move(out));
  }
  std::vector<std::byte> back(value_size);
  std::size_t i = 0, original = 0;
  for (auto _ : state) {
    if (!codec.decompress(packed[i], back).ok()) state.SkipWithError("decompress failed");
    benchmark::DoNotOptimize(back.data());
    original += value_size;
    if (++i == packed.size()) i = 0;
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(original));
}

#define GOLDYLOX_CODEC_BENCH(label, ...)           \
  BENCHMARK_CAPTURE(compress, label, __VA_ARGS__); \
  BENCHMARK_CAPTURE(decompress, label, __VA_ARGS__)

GOLDYLOX_CODEC_BENCH(none, gd::none_codec{});
GOLDYLOX_CODEC_BENCH(lz4_fast, gd::lz4_codec{0});
GOLDYLOX_CODEC_BENCH(lz4_hc_9, gd::lz4_codec{9});
GOLDYLOX_CODEC_BENCH(zstd_minus_5, gd::zstd_codec{-5});
GOLDYLOX_CODEC_BENCH(zstd_1, gd::zstd_codec{1});
GOLDYLOX_CODEC_BENCH(zstd_3, gd::zstd_codec{3});
GOLDYLOX_CODEC_BENCH(zstd_9, gd::zstd_codec{9});
GOLDYLOX_CODEC_BENCH(zstd_19, gd::zstd_codec{19});
GOLDYLOX_CODEC_BENCH(brotli_1, gd::brotli_codec{1});
GOLDYLOX_CODEC_BENCH(brotli_5, gd::brotli_codec{5});
GOLDYLOX_CODEC_BENCH(brotli_9, gd::brotli_codec{9});
GOLDYLOX_CODEC_BENCH(brotli_11, gd::brotli_codec{11});

}  // namespace

BENCHMARK_MAIN();
