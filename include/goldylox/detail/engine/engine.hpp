// The tiered engine behind both facades (cache<K>, typed_cache<K, V>): it routes every read and
// write through the tiers and is the only place where the tiers meet.
//
// Tiers. When the config has a warm tier (warm/tier.hpp, driven by a run-time chosen policy:
// warm/policy/any_policy.hpp), new keys enter it (rule M6 in coherence.hpp) and the hot tier
// (hot/table.hpp) holds the entries the promotion manager moved up (promotion.hpp: read at least
// `warm_tier_promotion_hits` times, and more often than what the hot tier lets go); the hot
// tier's evictions are demoted back into the warm tier, and a read that misses the hot tier looks
// there. Without a warm tier the hot tier takes every key. The cold tier
// (cold/tier.hpp, when the config has a storage path) sits below: the lowest memory tier's
// evictions are demoted into it, and a read that misses memory looks there; a cold hit is
// promoted into the warm tier (the hot tier without one).
//
// The engine's jobs, one file each in this folder:
//   engine.hpp        routing: which tier a read or write goes to, and wiring the tiers' sinks
//   tiers.hpp         the tier stack the other jobs share (tiers and counters)
//   coherence.hpp     the cross-tier coherence rules (M1-M6, C1-C4) and the in-flight registry
//   demotion.hpp      the cold demotion queues, per (engine, thread), and the pool job that
//                     writes them (rule C2)
//   promotion.hpp     reads below the hot tier and the moves up they cause (M2, C3)
//   maintenance.hpp   the pool job the warm tier's policies learn on (off the request path)
//   single_flight.hpp get_or_insert: one loader per absent key
//   refresh.hpp       refresh_after_write: the reloads reads claim, made on the pool (reload
//                     below stores them)
//   stats.hpp         the cache_stats snapshot
// With a cold tier every write runs under the key's home lock (no lock-free in-place put), retires
// the key's cold record first and, if that fails, returns the error with memory untouched (C1);
// with write-through a write that stores a value puts it in the cold tier instead (C4).
// Owns: all of the above, for one cache. Invariant: the coherence rules of coherence.hpp hold
// whenever no engine call is running, and no demotion of this engine is queued on any thread
// then (with a background pool, demotions may wait in its queue, registered in flight, until its
// job writes them; sync(), clear() and close() wait for them). May call: the tiers (hot/, warm/,
// cold/), background/ (through demotion.hpp) and common/; only the facades call it.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "goldylox/concepts.hpp"
#include "goldylox/config.hpp"
#include "goldylox/detail/common/latency_histogram.hpp"
#include "goldylox/detail/engine/coherence.hpp"
#include "goldylox/detail/engine/demotion.hpp"
#include "goldylox/detail/engine/expiry.hpp"
#include "goldylox/detail/engine/maintenance.hpp"
#include "goldylox/detail/engine/notices.hpp"
#include "goldylox/detail/engine/promotion.hpp"
#include "goldylox/detail/engine/refresh.hpp"
#include "goldylox/detail/engine/single_flight.hpp"
#include "goldylox/detail/engine/stats.hpp"
#include "goldylox/detail/engine/tiers.hpp"
#include "goldylox/stats.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

template <class K, class S, class Hash, class KeyEqual>
class engine {
  using tiers_type = tier_stack<K, S, Hash, KeyEqual>;
  using demotion_scope = typename demotion_queue<K, S, Hash, KeyEqual>::scope;

 public:
  using hot_tier_type = typename tiers_type::hot_type;
  using warm_tier_type = typename tiers_type::warm_type;
  using cold_tier_type = typename tiers_type::cold_type;
  using decision = table_decision<S>;
  static_assert(hot_tier<hot_tier_type>);
  static constexpr bool cold_capable = tiers_type::cold_capable;

  // The cold store for `config` (its storage path set), to pass to the constructor.
  static absl::StatusOr<std::unique_ptr<cold_store>> open_cold(const cache_config& config) {
    return tiers_type::open_cold(config);
  }

  using weigher_type = typename tiers_type::weigher_type;
  using listener_type = typename removal_notifier<K, S>::listener_type;
  using expiry_function = typename tiers_type::expiry_function;
  // A refresh's loader: the key's fresh value; kNotFound removes the entry, any other error
  // keeps the old value.
  using reload_function = std::function<absl::StatusOr<S>(const K&)>;

  // make_policy: the warm tier's policy per shard (config.warm_tier_max_entries != 0).
  // cold: the opened cold store (config.cold_tier_storage_path set; K must be serializable).
  // weigher: the entries' weight with a byte budget (config.max_weight != 0; empty: the default,
  // weight_of<K> + weight_of<S>).
  // ticker: the clock of expiry (config.expiry; empty: expiry_clock's default).
  // listener: hears of every entry that leaves the cache (notices.hpp); empty: none. Not with a
  // cold tier (std::invalid_argument: its removals from disk are not reported yet).
  // expire_after: with expiry, each written value's time to live (empty: the config's).
  explicit engine(const cache_config& config, policy_factory make_policy = {},
                  std::unique_ptr<cold_store> cold = nullptr, weigher_type weigher = {},
                  ticker_function ticker = {}, listener_type listener = {},
                  expiry_function expire_after = {})
      : t_(config, std::move(make_policy), std::move(cold), std::move(weigher), std::move(ticker)),
        coherence_(t_),
        demotions_(t_, coherence_),
        promotion_(t_, demotions_) {
    t_.direct_reads = !t_.has_lower_tier() && t_.clock == nullptr;
    t_.expiring_reads = !t_.has_lower_tier() && t_.clock != nullptr;
    if (t_.clock != nullptr) t_.expire_after = std::move(expire_after);
    if (listener) {
      if (t_.cold != nullptr) {
        throw std::invalid_argument(
            "goldylox: a removal listener is not available with a cold tier yet (removals from "
            "disk are not reported); drop cold_tier_storage_path or the listener");
      }
      t_.notices.set(std::move(listener));
      watch_removals();
    }
    // After the removal observers: the sweep job reads them from the pool's threads. (What the
    // rest of this constructor sets, the lower tiers' sinks, no sweep touches: expiry exists only
    // without a warm or cold tier.)
    expiry_.start();
    if (t_.warm == nullptr) {
      if (t_.cold != nullptr) {
        // The hot tier's sink runs under the victim's home lock, which every write of the key
        // takes: the departure registers there (C2). With one table (a governed hot tier) the
        // admission rule applies as to warm evictions below: `referenced` says whether the
        // entry was read since it was inserted.
        t_.hot.set_eviction_sink([this](const K& key, const S& value, bool referenced) noexcept {
          if (!admitted(referenced || t_.governor == nullptr)) return;
          demotions_.push(key, value);
        });
      }
      return;
    }
    if (t_.cold != nullptr) {
      // The departure registers under the warm shard's lock, as the entry leaves: registered
      // later (in the sink), a write of the key finishing in between would not supersede it.
      t_.warm->set_stamped_sink(
          [this](const K& key) noexcept { return demotions_.depart(key); },
          [this](const K&, const S& value, std::uint64_t stamp, std::uint32_t reads) noexcept {
            demotions_.push_stamped(value, stamp, admitted(reads != 0));
          });
    }
    t_.hot.set_reference_observer([this](const K& key) { promotion_.on_hot_reference(key); });
    // Rule M1: runs under the victim's home lock; must not throw.
    t_.hot.set_eviction_sink([this](const K& key, const S& value, bool) noexcept {
      promotion_.on_hot_victim(key);
      try {
        if (t_.warm->put(K(key), S(value)).ok()) return;
      } catch (...) {  // copying or storing failed: the entry leaves the cache, counted
      }
      t_.counters.add(counter::dropped_demotions);
      if (t_.notices.active()) t_.notices.report(key, value, removal_cause::evicted);
    });
  }

  engine(const engine&) = delete;
  engine& operator=(const engine&) = delete;

  // Closes the cache unless close() did: with a cold tier the memory tiers are written to it on
  // the way out, so reopening the directory brings back everything the cache held
  // (docs/cold-tier.md). close()'s status is dropped here (the errors stay counted).
  ~engine() {
    promotion_.stop();  // no queued move may run while the members below go
    try {
      (void)close();
    } catch (...) {  // an allocation or lock failure: nothing more can be done on the way out
    }
  }

  // With a cold tier: stops the queued moves, writes every memory entry into the cold tier (while
  // the demotion job writes what it had queued), unregisters the demotion job (waiting for its
  // batch in progress) and writes what is still queued, then closes the cold tier
  // (cold_store::close: the final sync the durability mode asks for, the directory's lock
  // released) and detaches it
  // (cold_tier::close: from then on the cache works in memory only). Returns the first error:
  // kDataLoss if entries did not reach the cold tier (refused, dropped, or still in memory
  // after the flush), else the final sync's (also counted in cold_sync_errors). OK without a
  // cold tier, and for every call after the first, which does nothing (a concurrent one waits
  // for the first to finish).
  absl::Status close() {
    std::lock_guard lock(close_mu_);
    if (std::exchange(closed_, true) || t_.cold == nullptr) return absl::OkStatus();
    promotion_.stop();  // no queued move runs beside the flush (and none is made after it)
    const std::uint64_t lost_before = lost_entries();
    // Before the flush, so the flush's demotions are written here rather than queued for a job
    // that is going away; the job writes what it had queued meanwhile (those are acknowledged
    // values too, and their losses count as the flush's), and is gone before the tier closes.
    demotions_.stop_handoffs();
    flush_to_cold();
    demotions_.stop();
    const std::uint64_t lost = lost_entries() - lost_before + memory_entries();
    const absl::Status closed = t_.cold->close();
    if (lost == 0) return closed;
    return absl::DataLossError(absl::StrCat(
        "goldylox: closing the cache: ", lost, lost == 1 ? " entry" : " entries",
        " could not be written to the cold tier in ", t_.config.cold_tier_storage_path,
        " (too large for a segment, of a type that cannot be serialized, or a write error) and ",
        lost == 1 ? "is" : "are", " lost",
        closed.ok() ? "" : "; closing the cold tier failed too: ", closed.message()));
  }

  template <class Q, class F>
  GOLDYLOX_ALWAYS_INLINE bool visit(const Q& key, F&& f) const {
    if (GOLDYLOX_UNLIKELY(t_.telemetry) &&
        t_.counters.template tick_lookup<latency_histogram::sample_period>()) {
      const latency_timer timer(get_latency_);
      return visit_untimed(key, f);
    }
    return visit_untimed(key, f);
  }

  // A copy of the value of `key`, or nullopt.
  template <class Q>
  GOLDYLOX_ALWAYS_INLINE std::optional<S> get(const Q& key) const {
    if (GOLDYLOX_UNLIKELY(t_.telemetry) &&
        t_.counters.template tick_lookup<latency_histogram::sample_period>()) {
      return timed_get(key);
    }
    return get_untimed(key);
  }

 private:
  // Telemetry's timing of a sampled get or put (common/latency_histogram.hpp): records the
  // sample_clock ticks from its construction to its destruction, a throw included.
  class latency_timer {
   public:
    explicit latency_timer(latency_histogram& h) noexcept : h_(h), start_(sample_clock::now()) {}
    latency_timer(const latency_timer&) = delete;
    latency_timer& operator=(const latency_timer&) = delete;
    ~latency_timer() {
      const std::uint64_t end = sample_clock::now();
      h_.record(end > start_ ? end - start_ : 0);  // 0 if a migration made the clock go back
    }

   private:
    latency_histogram& h_;
    std::uint64_t start_;
  };

  template <class Q>
  GOLDYLOX_NOINLINE std::optional<S> timed_get(const Q& key) const {
    const latency_timer timer(get_latency_);
    return get_untimed(key);
  }

  template <class Q, class F>
  GOLDYLOX_ALWAYS_INLINE bool visit_untimed(const Q& key, F&& f) const {
    const bool hit = t_.hot.visit(key, f);
    if (t_.telemetry && !hit) t_.counters.add(counter::misses);  // the lookup: tick_lookup
    if (GOLDYLOX_LIKELY(hit)) return true;
    if (t_.clock != nullptr) reclaim_expired_read();  // lazy removal of what it found
    if (!t_.has_lower_tier()) return false;
    return promotion_.visit_lower(key, f);
  }

  template <class Q>
  GOLDYLOX_ALWAYS_INLINE std::optional<S> get_untimed(const Q& key) const {
    if constexpr (hot_tier_type::packed) {
      // The lower tiers are consulted from the hot table's miss branch, so a hit's inline path is
      // the hot table's alone (see hot_table::find).
      if (GOLDYLOX_LIKELY(t_.direct_reads)) return t_.hot.template find<false>(key, t_.telemetry);
      if (t_.expiring_reads) {
        // With expiry, a miss removes the expired entry it may have found (lazy removal).
        return t_.hot.find(key, t_.telemetry, [this](const Q&) {
          reclaim_expired_read();
          return std::optional<S>();
        });
      }
      // A hot miss looks in the warm tier next: its index cell loads while the hot tier probes.
      if (t_.warm != nullptr) t_.warm->prefetch(key);
      return t_.hot.find(key, t_.telemetry, [this](const Q& k) { return promotion_.get_lower(k); });
    } else {
      std::optional<S> out;
      visit_untimed(key, [&](const S& v) { out.emplace(v); });
      return out;
    }
  }

 public:
  template <class Q>
  bool contains(const Q& key) const {
    if (t_.hot.template visit<false>(key, [](const S&) noexcept {})) return true;
    if (t_.warm != nullptr && t_.warm->contains(key)) return true;
    if constexpr (cold_capable) {
      if (t_.cold == nullptr) return false;
      if (auto k = tiers_type::as_key(key)) {
        // A value on its way to the cold tier is still the cache's (promotion.hpp reads it).
        return demotions_.visit_in_flight(*k, [](const S&) noexcept {}) || t_.cold->contains(*k);
      }
    }
    return false;
  }

  // f(index, const S*) for each key; nullptr marks a miss.
  template <class Q, class F>
  void visit_many(const Q* keys, std::size_t count, F&& f) const {
    std::uint64_t hits = 0;
    std::vector<std::size_t> missed;
    const bool lower = t_.has_lower_tier();
    t_.hot.visit_many(keys, count, [&](std::size_t i, const S* v) {
      if (v != nullptr) {
        ++hits;
        f(i, v);
      } else if (!lower) {
        f(i, v);
      } else {
        missed.push_back(i);
      }
    });
    if (t_.telemetry) {
      t_.counters.add(counter::lookups, count);
      t_.counters.add(counter::misses, count - hits);
    }
    for (const std::size_t i : missed) {
      if (!promotion_.visit_lower(keys[i], [&](const S& v) { f(i, &v); })) {
        f(i, static_cast<const S*>(nullptr));
      }
    }
    if (t_.clock != nullptr && hits != count) reclaim_expired_read();
  }

  // decide(const S* current) sees the key's value in whichever tier holds it (rule M5). With a
  // cold tier, a decision to write that cannot retire the key's cold record (C1) is not applied:
  // the error is returned and the cache is unchanged.
  // With a byte budget, a value too heavy for the tier it would go to is kInvalidArgument, the
  // cache unchanged (the hot tier refuses it before changing anything: too_heavy).
  template <class F>
  absl::StatusOr<compute_outcome> compute(K key, F&& decide) {
    const notice_scope notices(t_.notices.active());
    if (GOLDYLOX_LIKELY(t_.config.max_weight == 0)) {
      return compute_weighed(std::move(key), std::forward<F>(decide));
    }
    return refusing_too_heavy([&]() -> absl::StatusOr<compute_outcome> {
      return compute_weighed(std::move(key), std::forward<F>(decide));
    });
  }

 private:
  // With a byte budget: a write the hot tier refuses as too heavy (too_heavy, thrown before
  // anything changed) becomes kInvalidArgument. Out of line and only then, so that the write
  // path of a cache without a budget is what it was without one (a try block around it cost a
  // put 11 instructions: callgrind, put_update/u64/64K/zipf/goldylox).
  template <class Write>
  static GOLDYLOX_NOINLINE auto refusing_too_heavy(Write&& write) -> decltype(write()) {
    try {
      return write();
    } catch (const too_heavy& e) {
      return absl::InvalidArgumentError(e.what());
    }
  }

  template <class F>
  absl::StatusOr<compute_outcome> compute_weighed(K key, F&& decide) {
    if (!t_.has_lower_tier()) {
      if (GOLDYLOX_LIKELY(t_.clock == nullptr)) {
        return t_.hot.compute(std::move(key), std::forward<F>(decide));
      }
      const compute_outcome done =
          t_.hot.compute(std::move(key), [&](const K& k, const S* current) {
            decision d = decide(current);
            if (d.what == decision::kind::assign) d.deadline = t_.write_deadline(k, *d.value);
            return d;
          });
      expiry_.after_write();
      return done;
    }
    demotion_scope scope(demotions_);
    absl::Status failed;
    bool current_in_hot = false;  // the decision applies to the hot table (set under the lock)
    bool erased_lower = false;
    std::optional<compute_outcome> lower_outcome;
    auto retire = [&](const K& k) {
      absl::StatusOr<bool> r = coherence_.retire(k);
      if (!r.ok()) failed = r.status();
      return r;
    };
    // The cold half of a write that stores d's value: write-through puts it (C4), write-back
    // retires the record (C1). False (and `failed` set) if the memory write must not happen.
    auto prepare_store = [&](const K& k, const decision& d) {
      // A value the hot tier would refuse as too heavy is refused (too_heavy) before the cold
      // tier is touched: after retiring the record or writing it through, the refusal would
      // leave memory and disk disagreeing. (The warm tier refuses with a status instead, handled
      // below.)
      if (t_.cold != nullptr && (t_.warm == nullptr || current_in_hot)) {
        t_.hot.check_weight(k, *d.value);
      }
      if (!write_through_) return retire(k).ok();
      failed = coherence_.write_through(k, *d.value);
      return failed.ok();
    };
    auto locked = [&](const K& k, const S* current) -> decision {
      current_in_hot = current != nullptr;
      if (current != nullptr) {
        decision d = decide(current);
        if (d.what == decision::kind::keep) return d;
        const bool ready = d.what == decision::kind::assign ? prepare_store(k, d) : retire(k).ok();
        return ready ? d : decision::keep();
      }
      const std::optional<S> warm = t_.warm != nullptr ? t_.warm_copy(k) : std::optional<S>();
      const std::optional<S> cold = warm ? std::optional<S>() : coherence_.copy(k);
      const S* lower = warm ? &*warm : cold ? &*cold : nullptr;
      decision d = decide(lower);
      if (d.what == decision::kind::keep) return d;
      if (d.what == decision::kind::erase) {
        const absl::StatusOr<bool> had_cold = retire(k);
        if (!had_cold.ok()) return decision::keep();
        const bool warm_erased = t_.warm != nullptr && t_.warm->erase(k);
        // The warm copy may have left for the cold tier while this held only the home lock:
        // its departure registered before it left the warm tier (C1).
        const bool in_flight = coherence_.supersede(k, /*locked=*/true);
        erased_lower = warm_erased || *had_cold || in_flight;
        return decision::keep();
      }
      if (!prepare_store(k, d)) return decision::keep();
      if (t_.warm != nullptr) {  // M6: a key the hot tier does not hold is written to the warm tier
        absl::StatusOr<compute_outcome> stored = put_warm(k, std::move(*d.value));
        if (stored.ok()) {
          lower_outcome = *stored;
        } else if (write_through_) {
          // The value is the cold record already, and the write has taken effect there: drop
          // the warm copy (older than the record) rather than report a write that happened as
          // failed, and keep C4's invariant (memory never holds a value other than the record).
          t_.warm->erase(k);
          lower_outcome = lower != nullptr ? compute_outcome::updated : compute_outcome::inserted;
        } else {
          failed = stored.status();
        }
        return decision::keep();
      }
      return d;  // assign inserts (without a warm tier)
    };
    // No on_insert hook: with a warm tier a key the hot tier lacks is written there (M6), so this
    // compute inserts into the hot tier only without one.
    const compute_outcome outcome = t_.hot.compute(std::move(key), locked);
    if (!failed.ok()) return failed;
    if (erased_lower) {
      t_.counters.add(counter::removals);
      return compute_outcome::erased;
    }
    return lower_outcome.value_or(outcome);
  }

 public:
  // KeyArg: K or const K& (see hot_table::assign). With a cold tier, an error if the key's older
  // cold record cannot be retired (C1); the cache is then unchanged. With a byte budget, a value
  // too heavy for its tier is kInvalidArgument (as compute).
  template <class KeyArg>
  absl::Status assign(KeyArg&& key, S value) {
    const std::int64_t deadline = t_.write_deadline(std::as_const(key), std::as_const(value));
    return assign_until(std::forward<KeyArg>(key), std::move(value), deadline);
  }

  // assign() of a value that expires `ttl` from now (whatever the cache's expire_after_write or
  // expire_after_access say). kInvalidArgument for ttl <= 0; kFailedPrecondition for a cache
  // built without expiry.
  template <class KeyArg>
  absl::Status assign_for(KeyArg&& key, S value, std::chrono::nanoseconds ttl) {
    if (t_.clock == nullptr) {
      return absl::FailedPreconditionError(
          "goldylox: a put with a ttl needs a cache built with expiry (enable_expiry, "
          "expire_after_write or expire_after_access)");
    }
    if (ttl <= std::chrono::nanoseconds::zero()) {
      return absl::InvalidArgumentError("goldylox: a put's ttl must be above zero");
    }
    return assign_until(std::forward<KeyArg>(key), std::move(value),
                        deadline_after(t_.clock->now(), ttl));
  }

 private:
  template <class KeyArg>
  absl::Status assign_until(KeyArg&& key, S value, std::int64_t deadline) {
    const notice_scope notices(t_.notices.active());
    if (GOLDYLOX_UNLIKELY(t_.telemetry) && latency_histogram::sample_due()) {
      const latency_timer timer(put_latency_);
      return assign_untimed(std::forward<KeyArg>(key), std::move(value), deadline);
    }
    return assign_untimed(std::forward<KeyArg>(key), std::move(value), deadline);
  }

  template <class KeyArg>
  absl::Status assign_untimed(KeyArg&& key, S value, std::int64_t deadline) {
    if (GOLDYLOX_LIKELY(t_.config.max_weight == 0)) {
      return assign_weighed(std::forward<KeyArg>(key), std::move(value), deadline);
    }
    return refusing_too_heavy([&]() -> absl::Status {
      return assign_weighed(std::forward<KeyArg>(key), std::move(value), deadline);
    });
  }

  // deadline: with expiry, when the value expires (the memory-only one_table layout is the only
  // one with expiry: config.hpp's resolve_expiry).
  template <class KeyArg>
  absl::Status assign_weighed(KeyArg&& key, S value, std::int64_t deadline) {
    if (t_.cold == nullptr) {
      if (t_.warm == nullptr) {
        t_.hot.assign(std::forward<KeyArg>(key), std::move(value), no_hook{}, deadline);
        expiry_.after_write();
        return absl::OkStatus();
      }
      // M6: a key the hot tier does not hold is written to the warm tier (new keys enter there;
      // the hot tier takes entries only by promotion).
      absl::Status status;
      t_.hot.assign_present(std::forward<KeyArg>(key), std::move(value), [&](const K& k, S&& v) {
        absl::StatusOr<compute_outcome> stored = put_warm(k, std::move(v));
        if (!stored.ok()) status = stored.status();
        return stored.value_or(compute_outcome::kept);
      });
      return status;
    }
    // Under the home lock, not the lock-free in-place put: the record must be retired before the
    // memory write, and the write must not happen if that fails (C1). A key the hot tier does not
    // hold goes to the warm tier there (M6).
    return compute(K(std::forward<KeyArg>(key)),
                   [&](const S*) { return decision::assign(std::move(value)); })
        .status();
  }

 public:
  // Removes `key` from every tier; true if a tier had it (or a value of it was on its way to the
  // cold tier). With a cold tier, an error if its record cannot be removed (the cache is then
  // unchanged). A transparent key Q that cannot make a K reaches the cold tier only through the
  // stored key of a memory tier: a key held only by the cold tier is not found (false).
  template <class Q>
  absl::StatusOr<bool> erase(const Q& key) {
    const notice_scope notices(t_.notices.active());
    if (t_.cold == nullptr) {
      if (t_.warm == nullptr) return t_.hot.erase(key);
      return t_.hot.erase(key, [&] {  // rule M4
        if (!t_.warm->erase(key)) return false;
        t_.counters.add(counter::removals);
        return true;
      });
    }
    if constexpr (!std::is_same_v<Q, K> && !std::is_constructible_v<K, const Q&>) {
      // The memory tiers know the stored K. It may move between them while this looks, or be
      // erased: look again until the erase through K answers or no tier has the key.
      for (int attempt = 0; attempt < 8; ++attempt) {
        std::optional<K> stored = t_.hot.stored_key(key);
        if (!stored && t_.warm != nullptr) {
          t_.warm->template visit_entry<false>(
              key, [&](const K& k, const S&, std::uint32_t) { stored.emplace(k); });
        }
        if (!stored) return false;
        absl::StatusOr<bool> erased = erase_key(std::move(*stored));
        if (!erased.ok() || *erased) return erased;
      }
      return false;
    } else {
      return erase_key(*tiers_type::as_key(key));
    }
  }
  // Makes the moves between tiers that reads have queued for the background pool now, on the
  // calling thread, then writes the demotions waiting for the pool (theirs and the moves') to the
  // cold tier, then has the warm tier's policies learn what they queued (maintenance.hpp);
  // nothing to do without a pool.
  void run_pending_tasks() {
    const notice_scope notices(t_.notices.active());
    promotion_.run_pending();
    demotions_.settle();
    maintenance_.run_pending();
    expiry_.sweep();
    refresh_.run_pending();
  }

  // Turns on refresh (config.refresh_after_write, which implies expiry and a background pool:
  // config.hpp checks both): an entry read config.refresh_after_write or more after its write is
  // reloaded by `reload` on the pool, once per write, while reads keep getting its value
  // (refresh.hpp). Call once, before the cache is shared. std::invalid_argument if the config has
  // no refresh, `reload` is empty, or it was called before.
  void set_refresh(reload_function reload) {
    if (t_.config.refresh_after_write.count() <= 0 || t_.clock == nullptr ||
        !t_.config.background_pool || !reload || refresh_.active()) {
      throw std::invalid_argument(
          "goldylox: refresh needs refresh_after_write, a background pool and a loader, once");
    }
    reload_ = std::move(reload);
    refresh_.start(*t_.config.background_pool,
                   [this](refresh_request<K>&& r) { this->reload(std::move(r)); });
    t_.hot.set_refresh(t_.config.refresh_after_write,
                       [this](const K& key, std::size_t slot, std::int64_t at) noexcept {
                         return refresh_.request(key, slot, at);
                       });
  }

  // Makes what the cold tier holds durable (cold_store::sync); OK without a cold tier. First
  // writes the demotions handed to the background pool (and waits for the batch it is writing),
  // so the sync covers every eviction of a call that returned before it.
  absl::Status sync() {
    if (t_.cold == nullptr) return absl::OkStatus();
    demotions_.settle();
    return t_.cold->sync();
  }

  void clear() {
    const notice_scope notices(t_.notices.active());
    t_.hot.clear();
    if (t_.warm != nullptr) t_.warm->clear();
    if (t_.cold == nullptr) return;
    // Values queued for the pool left memory before the clear: they must not land after it.
    demotions_.discard();
    t_.cold->clear();
  }

  // Calls use(const S&) with the value of `key`, running make() to produce it if the key is
  // absent; make() runs at most once per absent key across all threads (single_flight.hpp).
  // make() returns S, or absl::StatusOr<S> (a loader): a failed status is returned to this
  // caller and to every caller waiting for the same load, and nothing is stored. With a cold
  // tier, an error (use not called) if the value could not be stored (C1).
  template <class Make, class Use>
  absl::Status get_or_insert(const K& key, Make&& make, Use&& use) {
    const notice_scope notices(t_.notices.active());
    if (visit(key, use)) return absl::OkStatus();
    auto counted_make = [&]() -> S {
      load_meter meter(*this);
      if constexpr (is_status_or_v<std::invoke_result_t<Make&>>) {
        absl::StatusOr<S> made = make();
        if (!made.ok()) throw typename flights_type::failure{made.status()};
        meter.succeeded();
        return *std::move(made);
      } else {
        S made = make();
        meter.succeeded();
        return made;
      }
    };
    try {
      flights_.load(
          key, [this](const K& k, auto&& f) { return visit_any_tier(k, f); }, counted_make,
          [&](S fresh, std::optional<S>& result) {
            const absl::Status stored = store_loaded(key, std::move(fresh), result);
            // A failed leader: its followers try again (and report their own outcome).
            if (!stored.ok()) throw store_failed{stored};
          },
          use);
    } catch (const store_failed& e) {
      return e.status;
    } catch (const typename flights_type::failure& e) {
      return e.status;
    }
    return absl::OkStatus();
  }

  // get_all's loading half: the values of `keys` (distinct keys, which the caller found in no
  // tier) by one call of bulk(std::span<const K>) -> absl::StatusOr<map of K to S> for the keys
  // whose flight this thread leads, and by waiting for the flights other threads lead (a
  // get_or_insert, a loader, another get_all). use(const K&, const S&) gets each key's value;
  // keys the bulk loader did not return get none. Entries it returned for keys not asked for are
  // stored too (Caffeine's getAll does the same). Returns the bulk loader's failure (shared with
  // the waiters of its keys), a store's failure (with a cold tier), or a failure of a flight
  // followed; every flight this call leads is landed before it waits for any other.
  template <class Bulk, class Use>
  absl::Status load_all(std::span<const K> keys, Bulk&& bulk, Use&& use) {
    const notice_scope notices(t_.notices.active());
    using flight = typename flights_type::flight;
    std::vector<std::pair<const K*, std::shared_ptr<flight>>> led, followed, ready;
    // Whatever throws (a recursive join, an allocation, the bulk loader), no flight this call
    // leads may stay unlanded: its waiters would wait forever.
    auto abandon = [&] {
      for (auto& [k, f] : led) flights_.land(*k, *f, flight::failed);
    };
    std::vector<K> asked;
    absl::StatusOr<absl::flat_hash_map<K, S, Hash, KeyEqual>> loaded;
    try {
      for (const K& k : keys) {
        auto [f, leader] = flights_.join(k);
        if (!leader) {
          followed.emplace_back(&k, std::move(f));
          continue;
        }
        led.emplace_back(&k, f);
        // A put or another load may have landed between the caller's miss and this flight.
        if (visit_any_tier(k, [&](const S& v) { f->result.emplace(v); })) continue;
        asked.push_back(k);
      }
      if (!asked.empty()) {
        load_meter meter(*this);
        loaded = bulk(std::span<const K>(asked));
        if (loaded.ok()) meter.succeeded();
      }
    } catch (...) {
      abandon();
      throw;
    }
    absl::Status first;
    for (auto& [k, f] : led) {
      absl::Status st;
      if (!f->result.has_value()) {  // asked of the bulk loader
        st = loaded.status();
        if (st.ok()) {
          auto it = loaded->find(*k);
          if (it == loaded->end()) {
            st = absl::NotFoundError("goldylox: the bulk loader returned no value for this key");
          } else {
            try {
              st = store_loaded(*k, std::move(it->second), f->result);
            } catch (...) {
              st = absl::ResourceExhaustedError("goldylox: a loaded value could not be stored");
            }
            loaded->erase(it);
          }
        }
      }
      if (st.ok()) {
        flights_.land(*k, *f, flight::done);
        ready.emplace_back(k, std::move(f));
        continue;
      }
      f->result.reset();
      f->error = st;
      flights_.land(*k, *f, flight::failed);
      if (!absl::IsNotFound(st) && first.ok()) first = st;
    }
    led.clear();  // every one landed
    if (loaded.ok()) {
      for (auto& [k, v] : *loaded) (void)assign(k, std::move(v));  // extras: as put() would
    }
    for (auto& [k, f] : ready) use(*k, std::as_const(*f->result));
    for (auto& [k, f] : followed) {
      if (flights_type::wait(*f) == flight::done) {
        use(*k, std::as_const(*f->result));
      } else if (!f->error.ok()) {
        if (!absl::IsNotFound(f->error) && first.ok()) first = f->error;
      } else if (!visit_any_tier(*k, [&](const S& v) { use(*k, v); })) {
        // Its leader was a get_or_insert whose factory threw: load this key on its own.
        const absl::Status st = load_all(std::span<const K>(k, 1), bulk, use);
        if (!st.ok() && first.ok()) first = st;
      }
    }
    return first;
  }

  // Entries in the memory tiers plus cold records (a promoted entry's cold copy counts again).
  std::size_t size() const {
    return t_.hot.size() + (t_.warm != nullptr ? t_.warm->size() : 0) +
           (t_.cold != nullptr ? t_.cold->size() : 0);
  }
  std::size_t capacity() const noexcept {
    return t_.hot.capacity() + (t_.warm != nullptr ? t_.warm->capacity() : 0);
  }
  const cache_config& config() const noexcept { return t_.config; }
  const hot_tier_type& hot() const noexcept { return t_.hot; }
  // nullptr without a warm tier.
  const warm_tier_type* warm() const noexcept { return t_.warm.get(); }
  // nullptr without a cold tier.
  cold_tier_type* cold() const noexcept { return t_.cold.get(); }

  cache_stats stats() const {
    cache_stats s =
        collect_stats(t_, sizeof(*this), {demotions_.queue_depth(), demotions_.queue_peak()});
    s.pending_moves = promotion_.pending();
    if (t_.warm != nullptr) s.learning_backlog = t_.warm->learning_backlog();
    if (t_.governor != nullptr) s.learning_backlog = t_.governor->learning_backlog();
    const auto fill = [](const latency_summary& l, std::uint64_t& samples, std::uint64_t& p50,
                         std::uint64_t& p99, std::uint64_t& p999) {
      samples = l.samples;
      p50 = l.p50_ns;
      p99 = l.p99_ns;
      p999 = l.p999_ns;
    };
    fill(get_latency_.summary(), s.get_latency_samples, s.get_p50_ns, s.get_p99_ns, s.get_p999_ns);
    fill(put_latency_.summary(), s.put_latency_samples, s.put_p50_ns, s.put_p99_ns, s.put_p999_ns);
    fill(load_latency_.summary(), s.loads, s.load_p50_ns, s.load_p99_ns, s.load_p999_ns);
    return s;
  }

 private:
  using flights_type = single_flight<K, S, Hash, KeyEqual>;
  struct store_failed {
    absl::Status status;
  };
  // The loads' lookup: every tier, not counted (the caller's lookup was).
  template <class F>
  bool visit_any_tier(const K& k, F&& f) const {
    return t_.hot.visit(k, f) || (t_.has_lower_tier() && promotion_.visit_lower(k, f));
  }

  // Counts and times one load (get_or_insert's factory, a loader, a bulk loader) from its
  // construction to its destruction, a throw included: a success only if succeeded() was called.
  // Loads are slow, so two clock reads are noise next to them: counted whether or not telemetry
  // is on; the latency histogram is telemetry's.
  class load_meter {
   public:
    explicit load_meter(const engine& e) noexcept
        : e_(e), start_(std::chrono::steady_clock::now()) {}
    load_meter(const load_meter&) = delete;
    load_meter& operator=(const load_meter&) = delete;
    void succeeded() noexcept { ok_ = true; }
    ~load_meter() {
      const auto ns = static_cast<std::uint64_t>(std::max<std::int64_t>(
          0, std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() -
                                                                  start_)
                 .count()));
      e_.t_.counters.add(ok_ ? counter::load_successes : counter::load_failures);
      e_.t_.counters.add(counter::load_nanos, ns);
      if (e_.t_.telemetry) e_.load_latency_.record(ns);
    }

   private:
    const engine& e_;
    std::chrono::steady_clock::time_point start_;
    bool ok_ = false;
  };

  // Stores a loaded value unless a concurrent put won the race; `result` gets the value that
  // won. With a cold tier, the error if it could not be stored (C1).
  absl::Status store_loaded(const K& key, S fresh, std::optional<S>& result) {
    absl::StatusOr<compute_outcome> stored = compute(K(key), [&](const S* current) {
      if (current != nullptr) {  // a concurrent put won the race: keep and return it
        result.emplace(*current);
        return decision::keep();
      }
      result.emplace(fresh);
      return decision::assign(std::move(fresh));
    });
    return stored.ok() ? absl::OkStatus() : stored.status();
  }

  // One refresh (refresh.hpp), on the pool: loads the key and stores the value if the slot still
  // holds the write whose refresh was claimed (kNotFound: removes it then, as Caffeine does with
  // a refresh that loads nothing); otherwise, or if the load fails, the old value stays and the
  // claim is released, so a later read asks again. Counted and timed as every load.
  void reload(refresh_request<K>&& r) {
    const notice_scope notices(t_.notices.active());
    // (Built in place, never assigned: S need not be assignable.)
    absl::StatusOr<S> loaded = [&]() -> absl::StatusOr<S> {
      load_meter meter(*this);
      try {
        absl::StatusOr<S> got = reload_(std::as_const(r.key));
        if (got.ok()) meter.succeeded();
        return got;
      } catch (...) {  // the facade's loaders turn exceptions into statuses; this is a last guard
        return absl::InternalError("goldylox: a refresh's loader threw");
      }
    }();
    compute_outcome outcome = compute_outcome::kept;
    if (loaded.ok() || absl::IsNotFound(loaded.status())) {
      try {
        outcome = t_.hot.compute(K(r.key), [&](const K& k, const S* current, std::size_t slot) {
          if (current == nullptr || slot != r.slot || !t_.hot.refresh_claimed(slot, r.at)) {
            return decision::keep();  // written, removed or evicted since the claim
          }
          if (!loaded.ok()) return decision::erase();
          decision d = decision::assign(std::move(*loaded));
          d.deadline = t_.write_deadline(k, *d.value);
          return d;
        });
      } catch (...) {  // the value's ttl function threw, or the value is too heavy to store
        outcome = compute_outcome::kept;
      }
    }
    if (outcome == compute_outcome::kept) t_.hot.release_refresh(r.slot, r.at);
  }

  // erase() with the key as K, with a cold tier.
  absl::StatusOr<bool> erase_key(K key) {
    // Decides erase whatever the decision sees: a cold record of a type this program does not
    // know (which compute's decision sees as absent) or a value in flight goes too.
    absl::StatusOr<compute_outcome> outcome =
        compute(std::move(key), [](const S*) { return decision::erase(); });
    if (!outcome.ok()) return outcome.status();
    return *outcome == compute_outcome::erased;
  }

  // Moves every memory entry into the cold tier (those it refuses are dropped and counted).
  void flush_to_cold() noexcept {
    flushing_.store(true, std::memory_order_relaxed);
    try {
      demotion_scope scope(demotions_);
      t_.hot.clear(/*to_sink=*/true);  // into the warm tier when there is one, else queued
      if (t_.warm != nullptr) t_.warm->clear(/*to_sink=*/true);
    } catch (...) {  // what stays in memory is counted as lost by close()
    }
  }

  // Writes a key the hot tier does not hold into the warm tier (rule M6), under the key's home
  // lock, and counts it as the hot tier counts its own writes. A value the warm tier refuses is
  // the write's error; the warm tier is then as it was.
  absl::StatusOr<compute_outcome> put_warm(const K& k, S&& v) {
    const absl::StatusOr<bool> inserted = t_.warm->upsert(K(k), std::move(v));
    if (!inserted.ok()) return inserted.status();
    t_.counters.add(*inserted ? counter::inserts : counter::updates);
    return *inserted ? compute_outcome::inserted : compute_outcome::updated;
  }

  // Entries that left memory without reaching the cold tier, so far.
  std::uint64_t lost_entries() const {
    return t_.counters.total(counter::cold_refused) + t_.counters.total(counter::dropped_demotions);
  }
  std::uint64_t memory_entries() const {
    return t_.hot.size() + (t_.warm != nullptr ? t_.warm->size() : 0);
  }

  // In this order: each part refers to those above it.
  tiers_type t_;
  cold_coherence<K, S, Hash, KeyEqual> coherence_;
  demotion_queue<K, S, Hash, KeyEqual> demotions_;
  promotion<K, S, Hash, KeyEqual> promotion_;
  flights_type flights_;
  // Telemetry's latencies (written from const lookups: the histograms are not the cache's state).
  mutable latency_histogram get_latency_{/*ticks=*/true};
  latency_histogram put_latency_{/*ticks=*/true};
  mutable latency_histogram load_latency_;  // nanoseconds: load_meter has them anyway
  // C4: writes store their value in the cold tier before memory (fixed at construction).
  const bool write_through_ = t_.cold != nullptr && t_.config.cold_tier_write_through;
  std::atomic<bool> flushing_{false};  // closing: every entry goes to the cold tier

  // The cold tier's admission rule for a memory eviction: with `reread`, an entry never read in
  // memory after it was stored there is not worth a disk write (closing the cache writes
  // everything). Counts what it refuses.
  // After a read of the hot table missed, with expiry: removes the expired entry the read found.
  void reclaim_expired_read() const {
    if (GOLDYLOX_LIKELY(!t_.notices.active())) {
      t_.hot.reclaim_expired_read();
      return;
    }
    const notice_scope notices(true);
    t_.hot.reclaim_expired_read();
  }

  // With a removal listener: the tiers report what leaves the cache (erased, replaced, expired)
  // and the evictions that leave it rather than move down a tier (from the lowest memory tier;
  // a hot victim the warm tier could not take, in the hot tier's sink below).
  void watch_removals() {
    auto report = [this](const K& key, const S& value, removal_cause cause) noexcept {
      t_.notices.report(key, value, cause);
    };
    auto evicted = [this](const K& key, const S& value) noexcept {
      t_.notices.report(key, value, removal_cause::evicted);
    };
    t_.hot.set_removal_observer(report);
    if (t_.warm == nullptr) {
      t_.hot.set_eviction_sink(
          [evicted](const K& key, const S& value, bool) noexcept { evicted(key, value); });
      return;
    }
    t_.warm->set_removal_observer(report);
    t_.warm->set_sink(evicted);
  }

  bool admitted(bool was_read) const noexcept {
    const bool in = was_read || flushing_.load(std::memory_order_relaxed) ||
                    t_.config.cold_tier_admission != cold_admission::reread;
    if (!in) t_.counters.add(counter::cold_not_admitted);
    return in;
  }
  std::mutex close_mu_;
  bool closed_ = false;  // guarded by close_mu_
  // Last, so destroyed first: its job calls into the warm tier, and the warm tier calls it
  // (~engine has stopped the queued moves, the only pool job that writes the warm tier).
  maintenance<K, S, Hash, KeyEqual> maintenance_{t_};
  expiry_sweep<K, S, Hash, KeyEqual> expiry_{t_};
  reload_function reload_;  // set_refresh's loader
  // Last, so destroyed first: its job stores into the hot table.
  refresh_queue<K> refresh_;
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
