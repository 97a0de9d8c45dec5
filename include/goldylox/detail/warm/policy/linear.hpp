// linear_model: eviction by an online-trained linear model of which entry will be wanted first.
//
// Prediction. Each resident entry has a feature vector x (below); the model scores it w . x, and
// a higher score means "requested again sooner". victim() draws `sample` resident slots at random
// and evicts the lowest-scored, so an eviction costs O(sample) whatever the capacity. The scores
// of a sample are one batched dot product: features are laid out by feature with the candidates
// side by side, and xsimd multiplies four candidates at a time (SSE2; scalar elsewhere).
//
// Features, each scaled to about [0, 2] (L = log2(capacity) + 1, logs base 2):
//   bias 1 | recency log(1 + now - last access) / L | frequency log(1 + hits this stay) / 4
//   age log(1 + now - insertion) / L | gap log(1 + previous inter-arrival time) / L
//   returns log(1 + times the key came back after an eviction) / 2 | once: 1 if never hit
// Time counts requests (hits and misses). The bias cancels in a ranking; it is kept so the
// vector pads to two SSE registers.
//
// Learning to rank, from what happened (never from the future). At each eviction the policy
// also draws a pair of random resident entries (independently of its own choice, so it learns
// about the population it has to rank, not about its picks) and records the difference of their
// features. The first of the two keys to be requested again was the one worth keeping: that is
// the label, and one SGD step of pairwise logistic regression follows,
//   w += rate x (y - sigmoid(w . (x_a - x_b))) x (x_a - x_b),   y = 1 if a came back first.
// This imitates Belady's ordering (evict what is needed last) directly, with no horizon to tune
// and no class imbalance. Unresolved pairs sit in a ring of `memory` x capacity; the oldest is
// dropped unlearnt when the ring wraps. The rate decays slowly to a floor.
//
// Deferred learning (concepts.hpp's deferred_learning_policy): the training is the pair
// bookkeeping (a map lookup per request, a map insert per pair, an SGD step per resolved pair);
// deciding needs only the weights, the entries and the ghosts. Deferred, a request queues its
// hash and an eviction the pair it drew (the features' difference is taken at the eviction: taken
// later, a pair member's request in between would leak into its features, and the model would
// learn its own label), and learn() replays them in order, so the same pairs are resolved by the
// same requests as inline. Only the weights lag, by at most a queue's worth of events.
//
// Untrained, w_recency = -1 and w_frequency = +1 (the rest 0): a sampled blend of LRU and LFU.
// Training moves it where the trace rewards: on loops it learns that entries which come back
// after an eviction, and old ones, are wanted sooner (MRU-like); on OLTP that frequency and
// returns outweigh recency.
//
// Memory per entry: 40 B of entry (hash, last access, insertion, hits, gap, returns, residency);
// per pair (up to one per entry) ~56 B plus two index entries (~32 B); per ghost (returns are
// remembered for `capacity` evicted keys) ~40 B: about 170 B.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "goldylox/detail/common/hash.hpp"
#include "goldylox/detail/common/platform.hpp"
#include "goldylox/detail/warm/policy/classic.hpp"
#include "goldylox/detail/warm/policy/learning_queue.hpp"

#if GOLDYLOX_HAS_SSE2
#include <xsimd/xsimd.hpp>
#endif

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

struct linear_model_options {
  std::size_t sample = 32;      // candidates per eviction (a multiple of 4 is best)
  std::size_t pairs = 1;        // training pairs drawn per eviction
  double memory = 1.0;          // unresolved training pairs kept, in multiples of the capacity
  double learning_rate = 0.05;  // initial SGD step
  double min_learning_rate = 0.005;
  bool train = true;  // false: keep the initial weights (a baseline for comparison)
  std::uint64_t seed = 0x9e3779b97f4a7c15ULL;
};

class linear_model_policy {
 public:
  using slot = std::uint32_t;
  static constexpr std::string_view name = "linear_model";
  static constexpr std::size_t features = 8;  // 7 used, padded to two SSE registers
  using weights = std::array<float, features>;

  explicit linear_model_policy(std::size_t capacity, linear_model_options o = {})
      : c_(checked_policy_capacity(capacity, name)),
        o_(checked(o)),
        unknown_gap_(4 * static_cast<std::uint64_t>(c_)),
        scale_(1.0F / (std::log2(static_cast<float>(c_)) + 1.0F)),
        rate_(o.learning_rate),
        rng_(o.seed),
        e_(capacity),
        pairs_(std::max<std::size_t>(
            16, static_cast<std::size_t>(o.memory * static_cast<double>(c_)))) {
    w_.fill(0.0F);
    w_[recency_feature] = -1.0F;
    w_[frequency_feature] = 1.0F;
    pending_.reserve(2 * pairs_.size() + 1);
    ghosts_.reserve(capacity + 1);
    ghost_ring_.assign(capacity, 0);
  }

  std::size_t capacity() const noexcept { return c_; }
  std::size_t size() const noexcept { return size_; }
  const weights& model() const noexcept { return w_; }
  std::uint64_t trained() const noexcept { return trained_; }

  void on_hit(slot s) {
    ++now_;
    train_on_request(e_[s].hash);
    e_[s].gap = static_cast<std::uint32_t>(std::min<std::uint64_t>(now_ - e_[s].last, 0xffffffffU));
    e_[s].last = now_;
    ++e_[s].hits;
  }

  void on_miss(std::uint64_t hash) {
    ++now_;
    train_on_request(hash);
    pending_returns_ = 0;
    pending_gap_ = 0;
    if (const auto it = ghosts_.find(hash); it != ghosts_.end()) {
      pending_returns_ = it->second.returns + 1;
      pending_gap_ = now_ - it->second.last;
    }
  }

  slot victim() {
    std::array<slot, max_sample> cand{};
    const std::size_t k = std::min<std::size_t>(o_.sample, size_);
    // Draw all candidates and start their loads before reading any: the entries are scattered,
    // and the misses then overlap instead of queueing one behind the other.
    for (std::size_t i = 0; i < k; ++i) {
      cand[i] = random_slot();
      prefetch(&e_[cand[i]]);
    }
    for (std::size_t i = 0; i < k; ++i) {
      while (e_[cand[i]].resident == 0) cand[i] = random_slot();
    }
    alignas(16) float x[features][max_sample];
    for (std::size_t i = 0; i < k; ++i) {
      float f[features];
      features_of(cand[i], f);
      for (std::size_t j = 0; j < features; ++j) x[j][i] = f[j];
    }
    for (std::size_t i = k; i < round_up4(k); ++i) {
      for (std::size_t j = 0; j < features; ++j) x[j][i] = x[j][0];  // padding: a repeat
    }
    alignas(16) float score[max_sample];
    dot(x, round_up4(k), score);
    std::size_t worst = 0;
    for (std::size_t i = 1; i < k; ++i) {
      if (score[i] < score[worst]) worst = i;
    }
    const slot v = cand[worst];
    // Training pairs are drawn uniformly from the resident entries, independent of the model's
    // choice, so the model learns to rank the population it has to rank, not its own picks.
    for (std::size_t i = 0; size_ > 1 && i < o_.pairs; ++i)
      pair_up(random_resident(), random_resident());
    remember_ghost(v);
    leave(v);
    return v;
  }

  void on_insert(slot s, std::uint64_t hash) {
    e_[s].hash = hash;
    e_[s].last = now_;
    e_[s].inserted = now_;
    e_[s].hits = 0;
    e_[s].gap = static_cast<std::uint32_t>(
        std::min<std::uint64_t>(pending_gap_ != 0 ? pending_gap_ : unknown_gap_, 0xffffffffU));
    e_[s].returns = static_cast<std::uint32_t>(pending_returns_);
    e_[s].resident = 1;
    ++size_;
  }

  void on_erase(slot s) { leave(s); }

 private:
  // A queued request (pair == false: `first` is its key) or a drawn pair (its two keys and the
  // difference of their features when it was drawn).
  struct learning_event {
    std::uint64_t first = 0, second = 0;
    std::array<float, features> d{};
    bool pair = false;
  };

  // Replays one queued event (defined before its uses: its type is deduced).
  auto trainer() {
    return [this](const learning_event& e) {
      if (e.pair) {
        if (unpaired(e.first, e.second)) add_pair(e.first, e.second, e.d);
      } else {
        resolve(e.first);
      }
    };
  }

 public:
  // deferred_learning_policy (see the design comment).
  void defer_learning(std::size_t n) { queued_.set_bound(n, trainer()); }
  bool learn() { return queued_.drain(trainer()); }
  std::size_t learning_backlog() const noexcept { return queued_.size(); }

  static constexpr std::size_t bytes_per_entry() noexcept {
    return sizeof(entry) + sizeof(pair_record) + 32 + 40;
  }

 private:
  static constexpr std::size_t max_sample = 64;
  static constexpr std::size_t recency_feature = 1;
  static constexpr std::size_t frequency_feature = 2;

  // Everything a candidate's features need, in one place: one cache line per candidate.
  struct entry {
    std::uint64_t hash = 0;
    std::uint64_t last = 0;
    std::uint64_t inserted = 0;
    std::uint32_t hits = 0;
    std::uint32_t gap = 0;
    std::uint32_t returns = 0;
    std::uint8_t resident = 0;
  };

  struct pair_record {
    std::uint64_t first = 0, second = 0;  // hashes
    std::array<float, features> d{};      // x(first) - x(second)
    bool live = false;
  };
  struct ghost {
    std::uint64_t last;
    std::uint32_t returns;
    std::size_t at;  // its place in ghost_ring_
  };

  static linear_model_options checked(const linear_model_options& o) {
    if (o.sample == 0 || o.sample > max_sample || !(o.memory > 0) || !(o.learning_rate >= 0) ||
        !(o.min_learning_rate >= 0)) {
      throw std::invalid_argument(
          "linear_model: options need sample in [1, 64], memory > 0 and learning rates >= 0");
    }
    return o;
  }

  static constexpr std::size_t round_up4(std::size_t k) noexcept {
    return (k + 3) & ~std::size_t{3};
  }

  // log2(1 + v) to about 0.01: the exponent, plus a quadratic in the mantissa. Features need
  // ranks, not digits, and a victim choice computes dozens of these.
  static float log2_1p(std::uint64_t v) noexcept {
    const float x = 1.0F + static_cast<float>(v);
    const auto bits = std::bit_cast<std::uint32_t>(x);
    const auto exponent = static_cast<float>(static_cast<int>(bits >> 23) - 127);
    const float m = std::bit_cast<float>((bits & 0x007fffffU) | 0x3f800000U);  // [1, 2)
    return exponent + (-0.34484843F * m + 2.02466578F) * m - 1.67487759F;
  }
  float log_scaled(std::uint64_t v) const noexcept { return log2_1p(v) * scale_; }

  void features_of(slot s, float* f) const noexcept {
    f[0] = 1.0F;
    f[1] = log_scaled(now_ - e_[s].last);
    f[2] = log2_1p(e_[s].hits) / 4.0F;
    f[3] = log_scaled(now_ - e_[s].inserted);
    f[4] = log_scaled(e_[s].gap);
    f[5] = log2_1p(e_[s].returns) / 2.0F;
    f[6] = e_[s].hits == 0 ? 1.0F : 0.0F;
    f[7] = 0.0F;
  }

  // score[i] = w . x[.][i] for i < n (n a multiple of 4).
  void dot(const float (&x)[features][max_sample], std::size_t n, float* score) const noexcept {
#if GOLDYLOX_HAS_SSE2
    using batch = xsimd::batch<float, xsimd::sse2>;
    for (std::size_t i = 0; i < n; i += batch::size) {
      batch acc(0.0F);
      for (std::size_t j = 0; j < features; ++j) {
        acc = xsimd::fma(batch(w_[j]), batch::load_aligned(&x[j][i]), acc);
      }
      acc.store_aligned(score + i);
    }
#else
    for (std::size_t i = 0; i < n; ++i) {
      float acc = 0.0F;
      for (std::size_t j = 0; j < features; ++j) acc += w_[j] * x[j][i];
      score[i] = acc;
    }
#endif
  }

  std::uint64_t next_random() noexcept { return splitmix_mix(rng_ += 0x9e3779b97f4a7c15ULL); }

  // A uniformly random resident slot. The owner keeps slots dense (a full cache is all
  // resident), so the expected number of draws is capacity / size.
  slot random_slot() noexcept {  // multiply-shift: no division
    return static_cast<slot>(((next_random() >> 32) * static_cast<std::uint64_t>(c_)) >> 32);
  }
  slot random_resident() noexcept {
    for (;;) {
      const slot s = random_slot();
      if (e_[s].resident != 0) return s;
    }
  }

  void leave(slot s) {
    e_[s].resident = 0;
    --size_;
  }

  // ---- training --------------------------------------------------------------------------

  void pair_up(slot a, slot b) {
    if (!o_.train || a == b) return;
    // Inline, a key already in a pair is skipped before its features are computed; deferred, the
    // replay checks (pairs are made there).
    if (!queued_.deferred() && !unpaired(e_[a].hash, e_[b].hash)) return;
    std::array<float, features> xa{}, xb{};
    features_of(a, xa.data());
    features_of(b, xb.data());
    std::array<float, features> d{};
    for (std::size_t j = 0; j < features; ++j) d[j] = xa[j] - xb[j];
    if (queued_.deferred()) {
      queued_.push({e_[a].hash, e_[b].hash, d, true}, trainer());
    } else {
      add_pair(e_[a].hash, e_[b].hash, d);
    }
  }
  bool unpaired(std::uint64_t first, std::uint64_t second) const {
    return !pending_.contains(first) && !pending_.contains(second);
  }
  // A new pair of two keys in no pair (unpaired).
  void add_pair(std::uint64_t first, std::uint64_t second, const std::array<float, features>& d) {
    pair_record& r = pairs_[pair_head_];
    if (r.live) {  // the ring is full: the oldest unresolved pair is dropped unlearnt
      pending_.erase(r.first);
      pending_.erase(r.second);
    }
    r.d = d;
    r.first = first;
    r.second = second;
    r.live = true;
    pending_[r.first] = pair_head_;
    pending_[r.second] = pair_head_;
    pair_head_ = (pair_head_ + 1) % pairs_.size();
  }

  void train_on_request(std::uint64_t hash) {
    if (!queued_.deferred()) {
      resolve(hash);
    } else if (o_.train) {
      learning_event e;
      e.first = hash;
      queued_.push(e, trainer());
    }
  }

  // The first of a pair to be requested again was the one to keep.
  void resolve(std::uint64_t hash) {
    if (pending_.empty()) return;
    const auto it = pending_.find(hash);
    if (it == pending_.end()) return;
    pair_record& r = pairs_[it->second];
    learn(r.d, hash == r.first ? 1.0F : 0.0F);
    r.live = false;
    pending_.erase(r.first);
    pending_.erase(r.second);
  }

  void learn(const std::array<float, features>& x, float y) {
    float z = 0.0F;
    for (std::size_t j = 0; j < features; ++j) z += w_[j] * x[j];
    const float p = 1.0F / (1.0F + std::exp(-z));
    const auto step = static_cast<float>(rate_) * (y - p);
    for (std::size_t j = 0; j < features; ++j) w_[j] += step * x[j];
    ++trained_;
    rate_ = std::max(o_.min_learning_rate, rate_ * 0.99999);
  }

  // Evicted keys remembered for the returns and gap features (a FIFO of `capacity` hashes).
  void remember_ghost(slot s) {
    if (ghost_count_ == c_) {
      // The oldest ghost leaves, unless its key was evicted again since (a newer ghost).
      const std::uint64_t old = ghost_ring_[ghost_head_];
      if (const auto it = ghosts_.find(old); it != ghosts_.end() && it->second.at == ghost_head_) {
        ghosts_.erase(it);
      }
    } else {
      ++ghost_count_;
    }
    ghost_ring_[ghost_head_] = e_[s].hash;
    ghosts_[e_[s].hash] = ghost{e_[s].last, e_[s].returns, ghost_head_};
    ghost_head_ = (ghost_head_ + 1) % c_;
  }

  std::size_t c_;
  linear_model_options o_;
  std::uint64_t unknown_gap_;
  float scale_;
  double rate_;
  std::uint64_t rng_;
  std::uint64_t now_ = 0;
  std::size_t size_ = 0;
  std::uint64_t trained_ = 0;
  alignas(16) weights w_{};
  std::uint64_t pending_returns_ = 0;
  std::uint64_t pending_gap_ = 0;
  std::vector<entry> e_;
  std::vector<pair_record> pairs_;
  std::size_t pair_head_ = 0;
  absl::flat_hash_map<std::uint64_t, std::size_t> pending_;
  absl::flat_hash_map<std::uint64_t, ghost> ghosts_;
  std::vector<std::uint64_t> ghost_ring_;
  std::size_t ghost_head_ = 0;
  std::size_t ghost_count_ = 0;
  learning_queue<learning_event> queued_;
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
