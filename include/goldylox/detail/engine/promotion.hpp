// Promotion: the part of a read that missed the hot tier, and the promotion manager's decision of
// what moves up. A read looks in the warm tier, then in the cold tier, and moves what it finds
// up: a warm entry goes to the hot tier when promotion_gate (below) says the move pays (rule M2
// in coherence.hpp); a cold hit goes into the warm tier, or the hot tier without one (rule C3).
// Both moves are best effort: a failure (an exception copying the value, a race with a write)
// leaves the entry where it was, never a stale copy. New keys enter the warm tier (rule M6, in
// engine.hpp), so promotion is the only way into the hot tier when there is a warm tier: the hot
// tier holds the entries that earned it.
//
// Where moves run. Without a background pool (enable_background_workers(false)) a read makes the
// move it asked for itself, right after it has its value: deterministic, for tests and for
// applications that want no threads. With a pool, a read only queues the move (move_queue below:
// a key, and for a cold hit the value and the record's version) and returns; a pool job makes the
// queued moves in batches, under the same rules and locks as the inline path, so a get never
// waits for a move and never pays for one (a promotion into a full hot tier also demotes its
// victim into the warm tier, which may evict again: several locks and node allocations). The queue
// is bounded and lossy: a request that finds its stripe busy or full is dropped and counted
// (dropped_promotions); a dropped promotion costs only the speed-up it would have brought, and the
// entry asks again on a later read. run_pending() makes the queued moves on the calling thread
// (cache::run_pending_tasks), and stop() (close) waits for a batch in progress and ends queueing:
// no move runs concurrently with the flush of the memory tiers to the cold tier.
//
// Owns: the promotion gate (a frequency sketch and the hot tier's admission bar), fed by warm hits
// and, through the hot table's reference observer and eviction sink, by what the hot tier's CLOCK
// hand finds; the move queue and its pool job.
// May call: the tiers through tier_stack, and demotion_queue (a promotion evicts, so it holds a
// demotion scope).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <type_traits>
#include <utility>
#include <vector>

#include "goldylox/detail/background/pool.hpp"
#include "goldylox/detail/common/frequency_sketch.hpp"
#include "goldylox/detail/common/group_lock.hpp"
#include "goldylox/detail/common/platform.hpp"
#include "goldylox/detail/engine/demotion.hpp"
#include "goldylox/detail/engine/notices.hpp"
#include "goldylox/detail/engine/tiers.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

// Whether a warm entry is worth moving into the hot tier: the promotion manager's cost/benefit
// rule. A move into a full hot tier displaces its CLOCK victim back to the warm tier, so it pays
// only if the candidate will be read more often than the victim would have been (each such read
// then costs a hot hit instead of a warm one), and it costs two moves. The expected future reads
// of an entry are estimated from its recent frequency: a count-min sketch (TinyLFU's, sized to
// the memory tiers) counts every warm hit; the victim side is the hot tier's admission bar, a
// moving average of the sketch's estimate for the entries the hot tier has recently let go (its
// CLOCK victims, which by CLOCK's rule were not read during a whole sweep). A candidate moves when
// it has been read `min_reads` times in the warm tier (the cost side: a move is never made for an
// entry read once) and its estimate is above the bar (TinyLFU's admission rule). While the hot
// tier has room a move displaces nothing, so the bar does not apply. The bar follows the
// workload: when the hot tier holds the most frequent keys its victims are frequent and few
// candidates beat them; when popularity shifts, the old favourites age in the sketch (halved every
// 10 x capacity counts), their evictions lower the bar, and new ones move in.
//
// Concurrency: the sketch and the bar are read and written with relaxed atomics, from any thread,
// with no lock; a lost update makes one decision on a slightly stale estimate, never a wrong value
// anywhere (the move itself is made under the key's home lock, promotion below).
class promotion_gate {
 public:
  promotion_gate(std::size_t memory_capacity, std::uint32_t min_reads)
      : sketch_(memory_capacity), min_reads_(min_reads) {}

  // A read found the key with this hash in the warm tier.
  void record(std::uint64_t hash) noexcept { sketch_.increment(hash); }

  // Whether the warm entry with this hash, read `reads` times there, should move up now.
  bool admit(std::uint64_t hash, std::uint32_t reads, bool hot_full) const noexcept {
    if (reads < min_reads_) return false;
    if (!hot_full) return true;
    return sketch_.frequency(hash) * bar_scale > bar_.load(std::memory_order_relaxed);
  }

  // The hot tier evicted the entry with this hash (to the warm tier or beyond).
  void on_hot_victim(std::uint64_t hash) noexcept {
    const std::uint32_t f = sketch_.frequency(hash) * bar_scale;
    const std::uint32_t bar = bar_.load(std::memory_order_relaxed);
    // An average over about the last 8 victims, in 1/16ths of a count, rounded towards the
    // newest (so a run of equal victims brings it to their value exactly).
    bar_.store(f >= bar ? bar + (f - bar + 7) / 8 : bar - (bar - f + 7) / 8,
               std::memory_order_relaxed);
  }

  // The bar in counts of the sketch (what a candidate's estimate must exceed).
  double bar() const noexcept {
    return static_cast<double>(bar_.load(std::memory_order_relaxed)) / bar_scale;
  }

 private:
  static constexpr std::uint32_t bar_scale = 16;
  frequency_sketch sketch_;
  const std::uint32_t min_reads_;
  std::atomic<std::uint32_t> bar_{0};
};

// The moves reads asked for, waiting for the pool: `stripes` stripes chosen by key hash, each a
// spin lock and a buffer of at most `per_stripe` requests. A reader only ever try-locks a stripe
// (a busy or full stripe drops its request: a get never waits here); the drainer swaps a
// stripe's buffer for an empty one under the lock and makes the moves after releasing it, so a
// reader waits at most for a swap. Buffers keep their capacity across swaps: after warm-up,
// queueing allocates nothing but what copying the key (and value) allocates.
template <class Request>
class move_queue {
 public:
  static constexpr std::size_t stripes = 8;
  static constexpr std::size_t per_stripe = 64;
  // A stripe holding this many requests asks the pool for a run (a wake-up of a pool thread
  // costs microseconds: one per batch, not per request).
  static constexpr std::size_t batch = 32;

  move_queue() {
    for (stripe& s : stripes_) s.buffer.reserve(per_stripe);
  }

  enum class pushed { dropped, queued, batch_ready };

  // `attempts`: how many times to try a busy stripe's lock before dropping the request (the lock
  // is held for one push or one swap, so a few tries ride out a drainer or another pusher).
  template <class... Args>
  pushed push(std::uint64_t hash, Args&&... args) noexcept {
    return push_trying(1, hash, std::forward<Args>(args)...);
  }
  template <class... Args>
  pushed push_trying(unsigned attempts, std::uint64_t hash, Args&&... args) noexcept {
    stripe& s = stripes_[(hash >> 29) % stripes];
    for (unsigned i = 1; !s.lock.try_lock(); ++i) {
      if (i >= attempts) return pushed::dropped;
      cpu_relax();
    }
    std::size_t n = 0;
    try {
      if (s.buffer.size() < per_stripe) {
        s.buffer.emplace_back(std::forward<Args>(args)...);
        n = s.buffer.size();
      }
    } catch (...) {  // copying the key or value failed: the request is dropped
    }
    s.lock.unlock();
    if (n == 0) return pushed::dropped;
    return n == batch ? pushed::batch_ready : pushed::queued;
  }

  // Calls f(Request&&) for every request queued when it looks at the request's stripe. One
  // drainer at a time (the caller serialises).
  template <class F>
  void drain(F&& f) {
    for (stripe& s : stripes_) {
      {
        std::lock_guard lock(s.lock);
        if (s.buffer.empty()) continue;
        s.buffer.swap(spare_);
      }
      for (Request& r : spare_) f(std::move(r));
      spare_.clear();
    }
  }

  // Requests waiting now (approximate while readers queue).
  std::size_t pending() {
    std::size_t n = 0;
    for (stripe& s : stripes_) {
      std::lock_guard lock(s.lock);
      n += s.buffer.size();
    }
    return n;
  }

 private:
  struct alignas(cache_line) stripe {
    group_lock lock;
    std::vector<Request> buffer;
  };
  std::array<stripe, stripes> stripes_;
  std::vector<Request> spare_ = [] {
    std::vector<Request> v;
    v.reserve(per_stripe);
    return v;
  }();
};

template <class K, class S, class Hash, class KeyEqual>
class promotion {
 public:
  using tiers_type = tier_stack<K, S, Hash, KeyEqual>;
  using demotions_type = demotion_queue<K, S, Hash, KeyEqual>;
  using decision = typename tiers_type::decision;

  promotion(const tiers_type& tiers, const demotions_type& demotions)
      : tiers_(tiers),
        demotions_(demotions),
        gate_(tiers.warm != nullptr ? tiers.hot.capacity() + tiers.warm->capacity() : 8,
              tiers.promotion_hits) {
    if (tiers.has_lower_tier() && tiers.config.background_pool) {
      queue_ = std::make_unique<move_queue<request>>();
      job_ = background_pool_access::pool(*tiers.config.background_pool)
                 ->add([this](std::stop_token) { run_pending(); }, std::chrono::nanoseconds(0));
    }
  }

  promotion(const promotion&) = delete;
  promotion& operator=(const promotion&) = delete;
  ~promotion() { stop(); }

  // Makes the queued moves now, on the calling thread (with a pool; nothing to do without).
  void run_pending() const {
    if (queue_ == nullptr) return;
    // Declared before the lock: removal notices the moves cause are heard after it is released.
    const notice_scope notices(tiers_.notices.active());
    std::lock_guard lock(run_mu_);
    if (stopped_.load(std::memory_order_relaxed)) return;
    last_run_.store(now_ns(), std::memory_order_relaxed);
    queue_->drain([this](request&& r) {
      // stop() waits for this batch: once it has asked, the rest is dropped, so a close waits
      // for one move at most (with a cold tier a move can end in a synced disk write).
      if (stopped_.load(std::memory_order_relaxed)) return;
      // A scope per move, not per batch: the cold write of a victim this move displaces happens
      // right after it, as on the inline path, rather than after the whole batch (meanwhile the
      // victim is in neither memory nor the cold tier, and reads of it miss).
      typename demotions_type::scope scope(demotions_);
      if (r.value) {
        promote_from_cold(std::move(r.key), std::move(*r.value), r.version);
      } else {
        promote_to_hot(std::move(r.key));
      }
    });
  }

  // From now on moves are made inline; waits for a batch in progress. Queued requests are
  // dropped (a closing cache flushes its memory tiers, so no move may run beside that).
  void stop() const noexcept {
    if (queue_ == nullptr) return;
    stopped_.store(true, std::memory_order_relaxed);
    std::lock_guard lock(run_mu_);
  }

  // Moves waiting in the queue (0 without a pool).
  std::size_t pending() const { return queue_ != nullptr ? queue_->pending() : 0; }

  // The hot tier's eviction sink calls this for each victim (the admission bar follows them).
  void on_hot_victim(const K& key) const noexcept { gate_.on_hot_victim(hash_(key)); }
  // The hot tier's CLOCK hand passed an entry read since its last pass: one more count for it, so
  // entries read in the hot tier keep their standing without their reads touching the sketch.
  void on_hot_reference(const K& key) const noexcept { gate_.record(hash_(key)); }

  const promotion_gate& gate() const noexcept { return gate_; }

  // Below the hot tier: warm, then cold. f(const S&) runs on the value found.
  template <class Q, class F>
  GOLDYLOX_NOINLINE bool visit_lower(const Q& key, F&& f) const {
    // A move up can evict (a hot victim into the warm tier, a warm victim out of the cache).
    const notice_scope notices(tiers_.notices.active());
    if (tiers_.warm != nullptr && visit_warm(key, f)) return true;
    if (tiers_.cold == nullptr) return false;
    return visit_cold(key, f);
  }

  template <class Q>
  GOLDYLOX_NOINLINE std::optional<S> get_lower(const Q& key) const {
    std::optional<S> out;
    visit_lower(key, [&](const S& v) { out.emplace(v); });
    return out;
  }

 private:
  // The warm half of a read that missed the hot tier: f runs on the warm entry (read without a
  // lock); the entry is promoted afterwards if this read brings it to the promotion threshold.
  template <class Q, class F>
  GOLDYLOX_NOINLINE bool visit_warm(const Q& key, F&& f) const {
    typename demotions_type::scope scope(demotions_);
    std::optional<K> promote;
    const bool hit =
        tiers_.warm->visit_entry(key, [&](const K& stored, const S& v, std::uint32_t n) {
          f(v);
          const std::uint64_t h = hash_(stored);
          gate_.record(h);
          if (gate_.admit(h, n, tiers_.hot.size() >= tiers_.hot.capacity())) {
            promote.emplace(stored);
          }
        });
    if (!hit) return false;
    if (tiers_.telemetry) tiers_.counters.add(counter::warm_hits);
    if (promote && !enqueue(hash_(*promote), std::move(*promote))) {
      promote_to_hot(std::move(*promote));
    }
    return true;
  }

  // With a pool: queues the move and returns true (a dropped request counts and is forgotten).
  // False without one, or once stopped: the caller makes the move itself.
  template <class... Args>
  bool enqueue(std::uint64_t hash, Args&&... args) const {
    if (queue_ == nullptr || stopped_.load(std::memory_order_relaxed)) return false;
    switch (queue_->push(hash, std::forward<Args>(args)...)) {
      case move_queue<request>::pushed::dropped:
        tiers_.counters.add(counter::dropped_promotions);
        break;
      case move_queue<request>::pushed::batch_ready:
        job_->notify();
        break;
      case move_queue<request>::pushed::queued:
        // A trickle that never fills a batch still gets a run once the last one is this old,
        // with no periodic wake-up of an idle cache.
        if (now_ns() - last_run_.load(std::memory_order_relaxed) > straggler_ns) job_->notify();
        break;
    }
    return true;
  }

  static std::int64_t now_ns() noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }

  // Moves `key` from the warm tier to the hot tier (M2). A failure (an exception copying the
  // value) leaves the entry in the warm tier: promotion is an optimisation.
  void promote_to_hot(K key) const {
    try {
      const compute_outcome outcome = tiers_.hot.compute(
          std::move(key),
          [&](const K& k, const S* current) -> decision {
            // Already hot (a put or another promotion got there first): by exclusivity the
            // warm tier then holds no copy either.
            if (current != nullptr) return decision::keep();
            std::optional<S> lower = tiers_.warm_copy(k);
            if (!lower) return decision::keep();  // erased or promoted meanwhile
            return decision::assign(std::move(*lower));
          },
          tiers_.drop_warm_copy());
      if (outcome == compute_outcome::inserted) tiers_.counters.add(counter::promotions);
    } catch (...) {
    }
  }

  // A cold hit: f sees the value, then it is promoted into memory (unless it is of a type this
  // program does not know, which only ever reports a mismatch).
  template <class Q, class F>
  bool visit_cold(const Q& key, F& f) const {
    if constexpr (tiers_type::cold_capable) {
      std::optional<K> k = tiers_type::as_key(key);
      if (!k) return false;
      if (visit_in_flight(*k, f)) return true;
      std::uint64_t version = 0;
      std::optional<S> v = tiers_.cold->get(*k, &version);
      if (!v) return false;
      f(std::as_const(*v));
      if (tiers_.telemetry) tiers_.counters.add(counter::cold_hits);
      if constexpr (std::is_same_v<S, any_value>) {
        if (v->template holds<unknown_cold_type>()) return true;
      }
      const std::uint64_t h = hash_(*k);
      if (!enqueue(h, std::move(*k), std::move(*v), version)) {
        promote_from_cold(std::move(*k), std::move(*v), version);
      }
      return true;
    } else {
      return false;
    }
  }

  // A value that left memory and waits for its cold write (demotion.hpp) is the key's newest
  // (coherence.hpp, visit_in_flight): returned rather than a miss, and not promoted (its
  // demotion is still to be written; the next read after it lands promotes the record).
  template <class F>
  bool visit_in_flight(const K& key, F& f) const {
    std::optional<S> queued;
    try {
      if (!demotions_.visit_in_flight(key, [&](const S& v) { queued.emplace(v); })) return false;
    } catch (...) {  // copying the value failed: read the cold tier instead
      return false;
    }
    f(std::as_const(*queued));
    if (tiers_.telemetry) tiers_.counters.add(counter::cold_hits);
    return true;
  }

  // Into the warm tier (the hot tier without one), under the key's home lock, if no memory tier
  // has the key by then and its cold record is still the one read (C3: a write retires the record
  // under this lock before its value enters memory; a demotion replaces it).
  void promote_from_cold(K key, S value, std::uint64_t version) const {
    typename demotions_type::scope scope(demotions_);
    try {
      bool promoted = false;
      tiers_.hot.compute(
          std::move(key),
          [&](const K& k, const S* current) -> decision {
            if (current != nullptr || tiers_.cold->version_of(k) != version) {
              return decision::keep();
            }
            if (tiers_.warm == nullptr) {
              promoted = true;
              return decision::assign(std::move(value));
            }
            if (!tiers_.warm->contains(k)) promoted = tiers_.warm->put(K(k), std::move(value)).ok();
            return decision::keep();
          },
          [](const K&) noexcept {});
      if (promoted) tiers_.counters.add(counter::cold_promotions);
    } catch (...) {
    }
  }

  // A queued move: warm to hot (no value), or a cold hit into memory (its value and the version
  // of the record it came from, rule C3).
  struct request {
    explicit request(K k) : key(std::move(k)) {}
    request(K k, S v, std::uint64_t ver) : key(std::move(k)), value(std::move(v)), version(ver) {}
    K key;
    std::optional<S> value;
    std::uint64_t version = 0;
  };
  // A pool run happens when a stripe fills a batch, or for a request queued this long after the
  // last run began.
  static constexpr std::int64_t straggler_ns = 20'000'000;

  const tiers_type& tiers_;
  const demotions_type& demotions_;
  [[no_unique_address]] Hash hash_{};
  mutable promotion_gate gate_;
  // With a pool (else null). run_mu_ serialises batches (the pool's and run_pending's) and lets
  // stop() wait for one in progress.
  mutable std::unique_ptr<move_queue<request>> queue_;
  mutable std::mutex run_mu_;
  mutable std::atomic<bool> stopped_{false};
  mutable std::atomic<std::int64_t> last_run_{0};  // steady clock, ns: when the last batch began
  std::unique_ptr<job_handle> job_;  // last: destroyed first, so no run outlives the rest
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
