// Workload generation shared by goldylox_bench_micro and goldylox_bench_mt: a deterministic PRNG,
// a Zipf sampler, the key sets and pre-generated key streams.
//
// Everything here is reproducible from a seed on any platform: the generator, the bounded draw,
// the shuffle and the Zipf sampler are written out below instead of using <random>'s
// distributions, whose algorithms the standard leaves to the implementation.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <unordered_set>
#include <vector>

namespace goldylox_bench {

__extension__ using u128 = unsigned __int128;  // __extension__: quiet under -Wpedantic

// ---- random numbers -------------------------------------------------------------------------

// SplitMix64's output function: a bijection on 64-bit integers with full avalanche. Used both to
// seed the generator and to turn indices into well-spread, distinct keys.
constexpr std::uint64_t splitmix64(std::uint64_t x) noexcept {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// xoshiro256** (Blackman & Vigna), seeded through SplitMix64.
class rng {
 public:
  explicit rng(std::uint64_t seed) noexcept {
    for (std::uint64_t& w : s_) {
      seed += 0x9e3779b97f4a7c15ULL;
      w = splitmix64(seed);
    }
  }

  std::uint64_t next() noexcept {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  // Uniform in [0, 1) with 53 random bits.
  double unit() noexcept { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

  // Uniform in [0, bound) (Lemire's multiply-shift with rejection; exact).
  std::uint64_t below(std::uint64_t bound) noexcept {
    u128 m = static_cast<u128>(next()) * bound;
    auto low = static_cast<std::uint64_t>(m);
    if (low < bound) {
      const std::uint64_t threshold = (0 - bound) % bound;
      while (low < threshold) {
        m = static_cast<u128>(next()) * bound;
        low = static_cast<std::uint64_t>(m);
      }
    }
    return static_cast<std::uint64_t>(m >> 64);
  }

 private:
  static constexpr std::uint64_t rotl(std::uint64_t x, int k) noexcept {
    return (x << k) | (x >> (64 - k));
  }
  std::uint64_t s_[4];
};

template <class T>
void shuffle(std::vector<T>& v, rng& r) {
  for (std::size_t i = v.size(); i > 1; --i) {
    const std::size_t j = static_cast<std::size_t>(r.below(i));
    std::swap(v[i - 1], v[j]);
  }
}

// ---- Zipf -----------------------------------------------------------------------------------

// Draws ranks 0..n-1 with P(rank r) proportional to (r + 1)^-theta, in O(1) per draw, by
// rejection-inversion (W. Hörmann and G. Derflinger, "Rejection-inversion to generate variates
// from monotone discrete distributions", ACM TOMACS 6(3), 1996). The continuous hat is
// h(x) = x^-theta; the integer k owns the interval [k - 1/2, k + 1/2] of the hat's integral H.
// Valid for any theta > 0 including 1 (the helpers below handle (1 - theta) -> 0 smoothly).
class zipf_sampler {
 public:
  zipf_sampler(std::uint64_t n, double theta) : n_(n), theta_(theta) {
    if (n == 0 || !(theta > 0.0)) {
      std::fprintf(stderr, "zipf_sampler: need n >= 1 and theta > 0\n");
      std::abort();
    }
    h_integral_x1_ = h_integral(1.5) - 1.0;
    h_integral_n_ = h_integral(static_cast<double>(n) + 0.5);
    squeeze_ = 2.0 - h_integral_inverse(h_integral(2.5) - h(2.0));
  }

  std::uint64_t operator()(rng& r) const noexcept {
    for (;;) {
      // u is uniform over (H(n + 1/2), H(3/2) - 1]; inverting it lands x in [1/2, n + 1/2].
      const double u = h_integral_n_ + r.unit() * (h_integral_x1_ - h_integral_n_);
      const double x = h_integral_inverse(u);
      double k = std::floor(x + 0.5);
      if (k < 1.0) k = 1.0;
      if (k > static_cast<double>(n_)) k = static_cast<double>(n_);
      // Accept immediately inside the squeeze, otherwise when u falls under the bar of k.
      if (k - x <= squeeze_ || u >= h_integral(k + 0.5) - h(k)) {
        return static_cast<std::uint64_t>(k) - 1;
      }
    }
  }

  std::uint64_t size() const noexcept { return n_; }
  double theta() const noexcept { return theta_; }

  // The exact probability of rank r (for self-checks): (r + 1)^-theta / sum_k k^-theta.
  double exact_probability(std::uint64_t rank) const {
    if (normaliser_ == 0.0) {
      double sum = 0.0;
      for (std::uint64_t k = n_; k >= 1; --k) sum += std::pow(static_cast<double>(k), -theta_);
      normaliser_ = sum;
    }
    return std::pow(static_cast<double>(rank + 1), -theta_) / normaliser_;
  }

 private:
  // log1p(x) / x, continuous at 0.
  static double log1p_over_x(double x) noexcept {
    return std::abs(x) > 1e-8 ? std::log1p(x) / x : 1.0 - x * (0.5 - x / 3.0);
  }
  // expm1(x) / x, continuous at 0.
  static double expm1_over_x(double x) noexcept {
    return std::abs(x) > 1e-8 ? std::expm1(x) / x : 1.0 + x * (0.5 + x / 6.0);
  }
  double h(double x) const noexcept { return std::exp(-theta_ * std::log(x)); }
  // H(x) = (x^(1-theta) - 1) / (1 - theta), or log(x) when theta == 1.
  double h_integral(double x) const noexcept {
    const double lx = std::log(x);
    return expm1_over_x((1.0 - theta_) * lx) * lx;
  }
  double h_integral_inverse(double y) const noexcept {
    double t = y * (1.0 - theta_);
    if (t < -1.0) t = -1.0;  // rounding guard: keeps log1p finite at the lower end
    return std::exp(log1p_over_x(t) * y);
  }

  std::uint64_t n_;
  double theta_;
  double h_integral_x1_;
  double h_integral_n_;
  double squeeze_;
  mutable double normaliser_ = 0.0;
};

// ---- keys -----------------------------------------------------------------------------------

// Bit 63 of a stream entry marks a put; keys themselves therefore use only bits 0..62.
inline constexpr std::uint64_t put_flag = std::uint64_t{1} << 63;
inline constexpr std::uint64_t key_mask = put_flag - 1;
// Bit 62 separates the stored keys (0) from the keys used for misses (1).
inline constexpr std::uint64_t miss_bit = std::uint64_t{1} << 62;

inline void require_distinct(std::vector<std::uint64_t> copy, const char* what) {
  std::sort(copy.begin(), copy.end());
  if (std::adjacent_find(copy.begin(), copy.end()) != copy.end()) {
    std::fprintf(stderr, "goldylox_bench: duplicate %s keys; change the seed\n", what);
    std::abort();
  }
}

// n distinct, well-spread 62-bit keys. Random rather than sequential so that peers hashing with
// std::hash (the identity on integers: std::unordered_map, tbb, libcuckoo) are not flattered or
// punished by key structure.
inline std::vector<std::uint64_t> make_u64_keys(std::size_t n, std::uint64_t seed) {
  std::vector<std::uint64_t> keys(n);
  for (std::size_t i = 0; i < n; ++i) keys[i] = splitmix64(seed ^ splitmix64(i)) & (miss_bit - 1);
  require_distinct(keys, "stored");
  return keys;
}

// n keys guaranteed absent from make_u64_keys's sets (bit 62 is set).
inline std::vector<std::uint64_t> make_u64_miss_keys(std::size_t n, std::uint64_t seed) {
  std::vector<std::uint64_t> keys(n);
  for (std::size_t i = 0; i < n; ++i) {
    keys[i] = (splitmix64(~seed ^ splitmix64(i)) & key_mask) | miss_bit;
  }
  require_distinct(keys, "miss");
  return keys;
}

// n distinct strings of 16..24 characters: 16 hex digits (distinct because splitmix64 is a
// bijection) plus 0..8 suffix characters. Miss keys start with 'z', which never occurs in a
// stored key. Strings longer than 15 characters live on the heap in libstdc++ (no SSO).
inline std::vector<std::string> make_string_keys(std::size_t n, std::uint64_t seed, bool miss) {
  static constexpr char hex[] = "0123456789abcdef";
  static constexpr char suffix[] = "/:-_.ghijkl";
  std::vector<std::string> keys(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint64_t core = splitmix64(seed ^ splitmix64(i));
    const std::uint64_t extra = splitmix64(core);
    std::string s(16 + extra % 9, '-');
    for (int d = 0; d < 16; ++d) s[static_cast<std::size_t>(d)] = hex[(core >> (4 * d)) & 15];
    for (std::size_t d = 16; d < s.size(); ++d) s[d] = suffix[(extra >> (4 + 3 * (d - 16))) % 11];
    if (miss) s[0] = 'z';
    keys[i] = std::move(s);
  }
  std::unordered_set<std::string> seen(keys.begin(), keys.end());
  if (seen.size() != keys.size()) {
    std::fprintf(stderr, "goldylox_bench: duplicate string keys; change the seed\n");
    std::abort();
  }
  return keys;
}

// ---- streams --------------------------------------------------------------------------------

enum class distribution { uniform, zipf };

inline const char* to_string(distribution d) {
  return d == distribution::zipf ? "zipf" : "uniform";
}

// Draws indices into a key set of size n. For Zipf, rank r maps to a shuffled index, so the
// hottest keys are scattered over the key set (and thus over every table) instead of adjacent.
class index_source {
 public:
  index_source(distribution d, std::size_t n, double theta, std::uint64_t seed)
      : dist_(d), n_(n), zipf_(n, d == distribution::zipf ? theta : 1.0) {
    if (d == distribution::zipf) {
      rank_to_index_.resize(n);
      for (std::size_t i = 0; i < n; ++i) rank_to_index_[i] = static_cast<std::uint32_t>(i);
      rng shuffler(seed ^ 0x5a17f00dULL);  // fixed per key set: the same keys are hot everywhere
      shuffle(rank_to_index_, shuffler);
    }
  }

  std::size_t operator()(rng& r) const noexcept {
    if (dist_ == distribution::uniform) return static_cast<std::size_t>(r.below(n_));
    return rank_to_index_[static_cast<std::size_t>(zipf_(r))];
  }

 private:
  distribution dist_;
  std::size_t n_;
  zipf_sampler zipf_;
  std::vector<std::uint32_t> rank_to_index_;
};

// A stream of `length` entries: key | put_flag for puts (probability put_percent / 100).
inline std::vector<std::uint64_t> make_u64_stream(const std::vector<std::uint64_t>& keys,
                                                  const index_source& source, std::size_t length,
                                                  unsigned put_percent, std::uint64_t seed) {
  std::vector<std::uint64_t> stream(length);
  rng r(seed);
  for (std::uint64_t& e : stream) {
    const std::uint64_t key = keys[source(r)];
    const bool put = put_percent != 0 && r.below(100) < put_percent;
    e = key | (put ? put_flag : 0);
  }
  return stream;
}

// A stream of copies of string keys: copies made in order, so their heap buffers are laid out in
// stream order and reading the stream stays sequential.
inline std::vector<std::string> make_string_stream(const std::vector<std::string>& keys,
                                                   const index_source& source, std::size_t length,
                                                   std::uint64_t seed) {
  std::vector<std::string> stream;
  stream.reserve(length);
  rng r(seed);
  for (std::size_t i = 0; i < length; ++i) stream.push_back(keys[source(r)]);
  return stream;
}

// Object ids for trace-like streams (the policy and warm-tier benchmarks): `length` draws of a
// Zipf(theta) rank over `keys` objects, each rank spread to a distinct nonzero 64-bit id.
inline std::vector<std::uint64_t> zipf_ids(std::size_t keys, std::size_t length, double theta,
                                           std::uint64_t seed) {
  const index_source source(distribution::zipf, keys, theta, seed);
  std::vector<std::uint64_t> out(length);
  rng r(seed);
  for (std::uint64_t& id : out)
    id = static_cast<std::uint64_t>(source(r)) * 0x9e3779b97f4a7c15ULL + 1;
  return out;
}

}  // namespace goldylox_bench
