// The adaptive policy: behaves as whichever of several expert policies is doing best on the
// current workload, and changes its mind when the workload changes.
//
// Three parts:
//  * Miniature simulations (Waldspurger et al., "Cache Modeling and Optimization using Miniature
//    Simulations", ATC '17) say which expert is best. Each expert runs alone, keys only, on a
//    spatially sampled slice of the key space: a key is sampled when its mixed hash (mixed again:
//    trace ids are small integers) is below
//    rate x 2^64, and each miniature cache holds capacity x rate entries, so its hit ratio
//    estimates that expert's at full size. rate = min(1, shadow_budget / capacity): small caches
//    simulate every key exactly, large ones a fixed number of entries. Each expert's hits are
//    counted with exponential decay over a window of sampled requests.
//  * A CUSUM test picks the leader. A challenger whose decayed hits beat the leader's by more
//    than `margin` of the window accumulates its excess lead request by request, and takes over
//    when the sum reaches dwell x window x margin x window (any dip below the margin resets it).
//    A large lead (a phase change) wins within a fraction of a window; a small lead that comes
//    and goes with a loop or a sweep never does, so equally good experts do not trade places on
//    noise and each switch pays for itself.
//  * The real cache follows the leader. Only the leader keeps live metadata over the cache's
//    real resident set; when the lead changes, the new leader's metadata is built from the
//    resident entries in order of last use (so a recency-based leader starts in recency order).
//    A sampled resident key that the leader's miniature cache has evicted is "doomed" and is the
//    next victim (the leader hears of it through evict(slot) where it has it, so its ghost lists
//    stay truthful, else on_erase); with no doomed key the live leader's victim() decides. So
//    the sampled part of the cache holds what the leader alone would hold (with rate 1, exactly:
//    the cache converges to the leader's own contents after a switch, whatever history the new
//    live metadata lacks), and the rest is decided by the live leader.
//
// Deferred learning (concepts.hpp's deferred_learning_policy): the miniature simulations are
// the policy's learning. Deferred, a sampled request only queues its hash; learn() replays the
// queue through the simulations in order (and dooms, and tests the lead, as inline), so the
// simulations see the same request sequence and only their verdicts arrive later: a doomed key
// may stay up to a queue's worth of requests longer, a change of leader happens that much later.
// A full queue is learnt inline by the request that fills it.
//
// The initial leader is the first expert: with cold miniature caches nothing distinguishes the
// experts, so the first should be the most robust (policy::adaptive starts with LIRS).
//
// Costs: the largest expert's per-entry metadata plus 40 B of hash, last use, residency and
// steering per slot; per expert a miniature cache of at most shadow_budget entries (its policy
// plus ~40 B of index per entry); per access one live event and, for sampled keys, one access per
// miniature cache; a change of leader rebuilds the live metadata (O(n log n) in the resident
// entries) and walks the sampled resident keys once.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "goldylox/concepts.hpp"
#include "goldylox/detail/common/hash.hpp"
#include "goldylox/detail/common/platform.hpp"
#include "goldylox/detail/warm/policy/classic.hpp"
#include "goldylox/detail/warm/policy/index_lists.hpp"
#include "goldylox/detail/warm/policy/learning_queue.hpp"
#include "goldylox/detail/warm/policy/simulated_cache.hpp"
#include "goldylox/detail/warm/policy/slot_index.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

struct adaptive_options {
  // Miniature simulations hold at most this many entries per expert.
  std::size_t shadow_budget = 4096;
  // Decay window of the experts' hit counts, in sampled requests, as a multiple of the miniature
  // caches' capacity (at least min_window).
  double window_per_entry = 8.0;
  std::size_t min_window = 2000;
  // A challenger takes the lead when its decayed hits exceed the leader's by this share of the
  // window.
  double margin = 0.005;
  // A challenger takes over when its lead beyond the margin, summed over consecutive sampled
  // requests, reaches dwell x window x (margin x window): a lead of twice the margin must last
  // dwell x window requests, a larger one less.
  double dwell = 1.0;
};

template <class P>
concept forced_eviction = requires(P& p, typename P::slot s) { p.evict(s); };

template <eviction_policy... Experts>
  requires(sizeof...(Experts) >= 1)
class adaptive_policy {
 public:
  using slot = std::uint32_t;
  static constexpr std::string_view name = "adaptive";
  static constexpr std::size_t expert_count = sizeof...(Experts);

  explicit adaptive_policy(std::size_t capacity, adaptive_options o = {})
      : c_(checked_policy_capacity(capacity, name)),
        options_(checked(o)),
        entries_(capacity, entry_state{0, 0, false, false}),
        rate_(std::min(1.0, static_cast<double>(o.shadow_budget) / static_cast<double>(c_))),
        sampled_slot_(expected_sampled(capacity, rate_)),
        doomed_(capacity, 1),
        threshold_(rate_ >= 1.0 ? ~std::uint64_t{0}
                                : static_cast<std::uint64_t>(rate_ * 18446744073709551616.0)),
        live_(std::in_place_index<0>, capacity),
        shadows_(shadow_capacity(capacity, rate_)),
        leader_(0) {
    const double shadow_c = static_cast<double>(shadow_capacity(capacity, rate_));
    const double window =
        std::max(static_cast<double>(o.min_window), o.window_per_entry * shadow_c);
    decay_ = 1.0 - 1.0 / window;
    window_ = window;
    score_.fill(0.0);
  }

  std::size_t capacity() const noexcept { return c_; }
  std::size_t size() const noexcept { return size_; }

  void on_hit(slot s) {
    with_live([s](auto& e) { e.on_hit(s); });
    entry_state& e = entries_[s];
    e.last_use = ++tick_;
    // Only sampled keys reach the miniature caches, and only they are ever doomed: an unsampled
    // hit touches no other per-slot state.
    if (e.sampled) {
      observe(e.hash);
      undoom(s);  // the leader's miniature cache holds it again
    }
    switch_if_due();
  }

  void on_miss(std::uint64_t hash) {
    with_live([hash](auto& e) { e.on_miss(hash); });
    if (sampled(hash)) observe(hash);
  }

  // A sampled key the leader's miniature cache has evicted goes first: the sampled part of the
  // cache then holds what the leader alone would hold, whatever the live experts learnt while
  // they followed others. Otherwise the live leader chooses.
  slot victim() {
    const bool steered = !doomed_.empty(0);
    const slot v = steered ? doomed_.back(0)
                           : with_live([](auto& e) { return static_cast<slot>(e.victim()); });
    if (steered) {
      with_live([v](auto& e) {
        if constexpr (forced_eviction<std::remove_reference_t<decltype(e)>>) {
          e.evict(v);
        } else {
          e.on_erase(v);
        }
      });
    }
    forget(v);
    return v;
  }

  void on_insert(slot s, std::uint64_t hash) {
    const bool is_sampled = sampled(hash);
    entries_[s] = {hash, ++tick_, is_sampled, false};
    ++size_;
    with_live([s, hash](auto& e) { e.on_insert(s, hash); });
    if (is_sampled) sampled_slot_.assign(hash, s, slot_key());
    switch_if_due();
  }

  void on_erase(slot s) {
    with_live([s](auto& e) { e.on_erase(s); });
    forget(s);
  }

  // deferred_learning_policy (see the design comment).
  void defer_learning(std::size_t n) { queued_.set_bound(n, simulator()); }
  bool learn() {
    if (!queued_.drain(simulator())) return false;
    switch_if_due();
    return true;
  }
  std::size_t learning_backlog() const noexcept { return queued_.size(); }

  // Diagnostics: the expert that decides evictions now, how often the lead changed, and the
  // sampling rate of the miniature simulations.
  std::size_t leader() const noexcept { return leader_; }
  std::string_view leader_name() const noexcept { return names_[leader_]; }
  std::uint64_t switches() const noexcept { return switches_; }
  double sampling_rate() const noexcept { return rate_; }
  static constexpr std::array<std::string_view, expert_count> expert_names() noexcept {
    return names_;
  }

  static constexpr std::size_t bytes_per_entry() noexcept {
    // The hash, last use and flags, the steering list, a sampled-key index entry (every key
    // is sampled below shadow_budget entries), and the largest expert (only the leader keeps
    // live metadata).
    return sizeof(entry_state) + index_lists::bytes_per_entry() + slot_index::bytes_per_key() +
           std::max({Experts::bytes_per_entry()...});
  }

 private:
  static constexpr std::array<std::string_view, expert_count> names_{Experts::name...};

  static adaptive_options checked(const adaptive_options& o) {
    if (o.shadow_budget == 0 || !(o.window_per_entry > 0) || !(o.margin >= 0) || !(o.dwell >= 0)) {
      throw std::invalid_argument(
          "adaptive: options need shadow_budget >= 1, window_per_entry > 0, margin >= 0 and "
          "dwell >= 0");
    }
    return o;
  }

  static std::size_t shadow_capacity(std::size_t capacity, double rate) {
    return std::max<std::size_t>(
        1, static_cast<std::size_t>(std::llround(static_cast<double>(capacity) * rate)));
  }
  // About rate x capacity sampled keys are resident; the index grows if a workload packs more.
  static std::size_t expected_sampled(std::size_t capacity, double rate) {
    const std::size_t n = shadow_capacity(capacity, rate);
    return std::min(capacity, n + n / 4);
  }

  bool sampled(std::uint64_t hash) const noexcept {
    return rate_ >= 1.0 || mix_hash(hash) < threshold_;
  }

  // A sampled request: every miniature cache sees it (now, or queued when learning is deferred),
  // and the lead is tested.
  void observe(std::uint64_t hash) {
    if (queued_.deferred()) {
      // A full queue is simulated here; a change of leader it decides waits, as any, for
      // switch_if_due.
      queued_.push(hash, simulator());
    } else {
      simulate(hash);
    }
  }
  auto simulator() {
    return [this](std::uint64_t h) { simulate(h); };
  }

  void simulate(std::uint64_t hash) {
    shadows_.access(
        hash,
        [this](std::size_t i, std::uint64_t id) {
          if (i != leader_) return;
          if (const slot s = sampled_slot_.find(id, slot_key()); s != slot_index::none) doom(s);
        },
        [this](std::size_t i, bool hit) { score_[i] = score_[i] * decay_ + (hit ? 1.0 : 0.0); });
    std::size_t best = leader_;
    for (std::size_t k = 0; k < expert_count; ++k) {
      if (score_[k] > score_[best]) best = k;
    }
    // The CUSUM test of the design comment: a large lead wins within a few requests, while a
    // small one that comes and goes with the workload's cycles (loops, sweeps) never pays for a
    // switch.
    const double lead = score_[best] - score_[leader_];
    // Until a window has been seen, the scores are plain counts over what has been seen, and the
    // test scales with it: a cold cache changes its first leader as soon as the evidence is as
    // strong, relative to its length, as a full window's would be.
    if (observed_ < window_) observed_ += 1.0;
    const double gap = options_.margin * observed_;
    if (best == leader_ || lead <= gap) {
      excess_ = 0;
      return;
    }
    if (best != challenger_) {
      challenger_ = best;
      excess_ = 0;
    }
    excess_ += lead - gap;
    if (excess_ >= options_.dwell * observed_ * gap) {
      excess_ = 0;
      next_leader_ = best;
    }
  }

  // A change of leader decided during a miss waits for its insert: the outgoing leader sees the
  // whole miss (on_miss, victim, on_insert) and the incoming one starts from a settled cache.
  void switch_if_due() {
    if (next_leader_ == expert_count) return;
    leader_ = next_leader_;
    next_leader_ = expert_count;
    ++switches_;
    resteer();
  }

  void doom(slot s) {
    entry_state& e = entries_[s];
    if (e.doomed) return;
    e.doomed = true;
    doomed_.push_front(0, s);
  }
  void undoom(slot s) {
    entry_state& e = entries_[s];
    if (!e.doomed) return;
    e.doomed = false;
    doomed_.unlink(0, s);
  }
  void forget(slot s) {
    entry_state& e = entries_[s];
    if (e.sampled) {
      undoom(s);
      sampled_slot_.erase(e.hash, slot_key());
    }
    e.last_use = 0;
    e.sampled = false;
    --size_;
  }

  // A new leader: its live metadata is built over the resident entries, oldest use first (so a
  // recency-based leader starts in recency order), and the sampled resident keys its miniature
  // cache does not hold are the first to go.
  void resteer() {
    emplace_live(leader_, std::index_sequence_for<Experts...>{});
    std::vector<slot> order;
    order.reserve(size_);
    for (std::size_t s = 0; s < c_; ++s) {
      if (entries_[s].last_use != 0) order.push_back(static_cast<slot>(s));
    }
    std::sort(order.begin(), order.end(),
              [this](slot a, slot b) { return entries_[a].last_use < entries_[b].last_use; });
    with_live([&](auto& e) {
      for (const slot s : order) {
        e.on_miss(entries_[s].hash);
        e.on_insert(s, entries_[s].hash);
      }
    });
    while (!doomed_.empty(0)) undoom(doomed_.back(0));
    // In the same oldest-use-first order, not the sampled-key index's: goldylox-sim must give the
    // same numbers on every run (until 2026-11-24 this walked an absl map, whose order follows
    // its per-process seed), and the order of doomed_ is the order of the steered evictions.
    for (const slot s : order) {
      if (entries_[s].sampled && !shadows_.contains(leader_, entries_[s].hash)) doom(s);
    }
  }

  template <std::size_t... I>
  void emplace_live(std::size_t which, std::index_sequence<I...>) {
    ((which == I ? (void)live_.template emplace<I>(c_) : void()), ...);
  }

  template <class F>
  decltype(auto) with_live(F&& f) {
    return std::visit(std::forward<F>(f), live_);
  }

  // What a hit or an insert touches, in one place: one cache line per event. The flags live here
  // rather than in arrays of their own because every event that reads or writes them has just
  // read this entry (its hash): a sampled hit, a forget, a doom found through the sampled index.
  struct entry_state {
    std::uint64_t hash;
    std::uint64_t last_use : 62;  // 0: the slot is free (ticks start at 1)
    std::uint64_t sampled : 1;    // sampled(hash), kept from the insert
    std::uint64_t doomed : 1;     // on doomed_
  };
  static_assert(sizeof(entry_state) == 16);

  struct entry_hash {
    const entry_state* entries;
    std::uint64_t operator()(slot s) const noexcept { return entries[s].hash; }
  };
  entry_hash slot_key() const noexcept { return {entries_.data()}; }

  std::size_t c_;
  adaptive_options options_;
  std::vector<entry_state> entries_;
  double rate_;
  slot_index sampled_slot_;  // resident sampled keys
  index_lists doomed_;       // evicted by the leader's shadow (entry_state::doomed)
  std::uint64_t threshold_;
  std::variant<Experts...> live_;  // the leader's live metadata only
  std::uint64_t tick_ = 0;
  std::size_t size_ = 0;
  simulated_caches<Experts...> shadows_;
  std::array<double, expert_count> score_{};
  double decay_ = 0;
  double window_ = 0;
  double observed_ = 0;  // sampled requests seen, up to a window
  std::size_t challenger_ = 0;
  double excess_ = 0;
  std::size_t leader_;
  std::size_t next_leader_ = expert_count;  // expert_count: no change pending
  std::uint64_t switches_ = 0;
  learning_queue<std::uint64_t> queued_;  // sampled requests not yet simulated
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
