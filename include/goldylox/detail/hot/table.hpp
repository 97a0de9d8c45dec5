// Component hot/ (main header: this one; tag_group.hpp is its SIMD tag matching). Owns the hot
// tier's table, its CLOCK eviction and its node reclamation. Invariants: reads take no lock and
// write no shared line except to set a clear CLOCK bit (a governed table's reads also write a
// record into a hit ring of their own thread, governed.hpp); every mutation of a key runs under its
// home group's lock; the table never resizes. May call common/ only; it hands evictions to a sink
// the engine installs (and, with a removal observer, the entries erased, replaced or expired, under
// the same lock) and never calls another tier.
//
// The hot tier: a bounded, concurrent open-addressing table with lock-free reads.
//
// Layout. The table is an array of groups. A group is a 32-byte header — 16 one-byte tags (see
// tag_group.hpp), a 16-bit CLOCK reference mask, the group's CLOCK hand position and 8 one-byte
// overflow counters — plus 16 slots kept in a parallel array. A slot is either
//   * packed (K and V trivially copyable, together <= 32 bytes): a seqlock word plus the key and
//     value bytes, stored as relaxed atomic 64-bit words; readers copy them optimistically and
//     retry if the sequence moved. No pointers, so nothing to reclaim; or
//   * a node pointer: std::atomic<node*> to a heap node {hash, key, value}. The key never
//     changes. A small trivially copyable value sits in a seqlock cell inside the node and is
//     overwritten in place (inline_value); any other value is immutable, and an update publishes
//     a new node and retires the old one through epoch-based reclamation (epoch.hpp). Removal
//     always retires the node.
// Group count is chosen so the table runs at <= 80 % load at capacity; it never resizes.
//
// Probing. A key's home group comes from the high bits of its mixed hash (multiply-high), its tag
// from the low byte. Probing is linear over at most `probe_window` (16) groups. Instead of
// tombstones, each group counts, per hash class (hash >> 8) & 7, the entries whose probe passed it
// and that sit further on: an insert placed past its home group adds one to the counter of its
// class in every group it passed (before its tag is published), its removal takes them back (after
// its slot is emptied), and a lookup stops at the first group whose counter for its class is 0.
// Erase empties the slot and leaves no tombstone. Boost's concurrent_flat_map keeps one bit per
// class instead, set for good until a rehash; this table never rehashes, and under steady churn
// (a cache evicting and inserting all the time) every group would end with all 8 bits set, so
// every miss would walk the whole window: 7 groups on average at 100K entries, measured, against
// about 1 with counters (docs/hot-tier.md).
//
// Reads. visit() loads the 16 tags of each probed group (one 16-byte load, see tag_group.hpp),
// compares all 16 with one SIMD instruction, verifies the key of each candidate and hands the
// value to the caller. A read writes nothing shared: the only store is setting the slot's CLOCK
// reference bit, and only when it is clear. Node-mode reads pin an epoch, which writes the reader's
// own record. A lookup runs in two stages: inline, the home group's first tag match only, in
// straight-line code; out of line, the full probe with retries (see find_and_visit).
//
// Writes. Every mutation of a key happens under the lock of the key's home group (group_lock,
// separate from the headers so readers never see lock traffic), except a put that overwrites a
// present key in a packed slot: that one opens the slot's seqlock with a CAS from the sequence it
// read the key under (update_in_place), and every other writer of a packed slot opens it with a
// CAS too. The lock serializes all other writers of one key, which is what makes compute() — and
// with it put_if_absent, replace, compare-and-swap — atomic per key; a compute that an in-place
// put overtook is ordered before that put (store_locked). Writers of different keys that race for
// the same empty slot resolve it with a CAS of the tag from empty to reserved. Publication order:
// slot contents first, then the tag (release); removal order: slot contents cleared first, then the
// tag, so a slot is never reclaimed by another writer while its old contents are still being torn
// down. A writer prefetches the lock word, tags and likely slot before taking the lock
// (warm_for_write).
//
// Eviction. A governed table (set_governor, governed.hpp) leaves the choice to its governor: it
// reports every publish and removal under the key's home lock and every hit to the hit rings,
// and after an insert the inserter evicts the governor's victims through evict_slot. Otherwise,
// when an insert takes the size past capacity, the inserter (after releasing its lock)
// runs a CLOCK sweep: a shared hand walks groups, each group resumes from its own hand position;
// referenced slots lose their bit (second chance), the first unreferenced one is removed under its
// own home lock and handed to the eviction sink. The insert's own new entry is spared.
// If an insert's whole probe window is full (about 2 inserts per million while filling to 80 %
// load, measured), it evicts within the window,
// using try_lock on foreign home locks so two writers can never deadlock.
//
// Weights (set_weight_bound, off by default). A weigher gives each entry a weight, kept per slot
// in an array allocated only then and read and written only under the home lock of the key in
// the slot; the table's total is one atomic. Every write of a value (insert or replace) weighs it
// under that lock before changing anything, so a weigher that throws, or a value heavier than the
// whole budget (a governor's per-shard budget: std::invalid_argument), leaves the key as it was.
// With weights, a put of a present key takes the home lock instead of updating in place: the
// weight changes with the value. After a write, the writer evicts until both the entry count and
// the total weight are within bounds (a governed table: the governor chooses those victims too,
// by the weights it hears of in on_publish and on_reweigh), sparing the entry it wrote.
//
// Expiry (set_expiry, off by default). Each slot has a deadline in an array allocated only then
// (8 bytes a slot), written by each write of the slot under the key's home lock: inside a packed
// slot's seqlock window (a reader loads it between its two sequence loads, so value and deadline
// belong together), before a node is published (and, while a node is replaced, the earlier of the
// two deadlines stands, so a reader pairing either node with it errs towards expiry; readers
// check that the node did not change around their deadline load). A reader that finds its key
// compares the deadline with the clock (expiry_clock.hpp): an expired entry is not returned, and
// the thread notes its slot so the engine can remove it once the read is over
// (reclaim_expired_read: reads themselves take no lock). Writes find expired entries absent and
// remove them under the lock they hold. Entries nobody touches again are found by timer wheels
// (common/timer_wheel.hpp), one per stripe of groups, each behind its own mutex: every slot has
// at most one timer, due no later than its entry's deadline, whoever occupies the slot (a timer
// outliving its entry is dropped when it falls due, so removals never touch the wheels, and an
// overwrite with a later deadline, the usual case, leaves the timer alone). expire_due() takes
// the due timers and looks at each slot under its entry's home lock: removes it if expired,
// else files a timer for its current deadline (it moved later: an overwrite, or
// expire-after-access, whose readers move the deadline with a CAS and never touch a wheel).
// Lock order: home lock, then a stripe's mutex; expire_due() never holds a stripe's mutex while
// it takes a home lock. With expiry, a put of a present packed key takes the home lock (as with
// weights), and a node's small value is replaced by a new node rather than in place.
//
// Write times (with refresh, or with expire-after-access capped by expire-after-write). Each
// slot then also has the time its value was written, in a second array: every write of the slot
// sets it, under the key's home lock, strictly above its previous value and even, so (slot, write
// time) names one write of the slot. With both expiry durations, an access extension never moves
// a deadline past write time + the write duration.
//
// Refresh (set_refresh, off by default; needs expiry's clock and deadlines). An entry is due for
// a reload at write time + the refresh age. A packed slot's coarse date (below) is the earlier of
// its deadline and that time, so the inline read stays as it is until a refresh falls due; the
// out-of-line read (and every node read) then compares it with the clock, and a reader that
// finds it due claims the refresh with one CAS that sets the write time's low bit (one claim per
// write, however many readers) and hands (key, slot, write time) to the refresh observer: the
// engine queues the reload and keeps serving the old value. The reload is stored only if the key
// still sits in that slot with that claimed write time (refresh_claimed, under the home lock):
// any write, removal or eviction since discards it. A reload that fails or is discarded releases
// the claim (release_refresh), so a later read claims it again.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>

#include "goldylox/detail/common/counters.hpp"
#include "goldylox/detail/common/epoch.hpp"
#include "goldylox/detail/common/expiry_clock.hpp"
#include "goldylox/detail/common/group_lock.hpp"
#include "goldylox/detail/common/hash.hpp"
#include "goldylox/detail/common/timer_wheel.hpp"
#include "goldylox/detail/hot/governed.hpp"
#include "goldylox/detail/hot/tag_group.hpp"
#include "goldylox/removal.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

// What a compute() callback asks the table to do with the key it was given.
template <class V>
struct table_decision {
  enum class kind { keep, assign, erase };
  kind what = kind::keep;
  std::optional<V> value;
  // With expiry (hot_table::set_expiry): when an assigned value expires (expiry_clock.hpp).
  std::int64_t deadline = no_deadline;

  static table_decision keep() { return {}; }
  static table_decision erase() { return {kind::erase, std::nullopt}; }
  template <class... Args>
  static table_decision assign(Args&&... args) {
    table_decision d;
    d.what = kind::assign;
    d.value.emplace(std::forward<Args>(args)...);
    return d;
  }
};

enum class compute_outcome { kept, inserted, updated, erased };

// find()'s default on_miss: no lower tier, so a miss is nullopt.
struct no_value {
  template <class Q>
  constexpr std::nullopt_t operator()(const Q&) const noexcept {
    return std::nullopt;
  }
};

// The default of hot_table's optional hooks: does nothing (erase's if_absent: "not found").
struct no_hook {
  template <class... Args>
  constexpr bool operator()(const Args&...) const noexcept {
    return false;
  }
};

template <class K, class V>
struct packed_pair {
  K key;
  V value;
};

template <class K, class V>
inline constexpr bool use_packed_slots =
    std::is_trivially_copyable_v<K> && std::is_trivially_copyable_v<V> &&
    sizeof(packed_pair<K, V>) <= 32 && alignof(packed_pair<K, V>) <= 8;

template <class K, class V, class Hash, class KeyEqual>
class hot_table {
 public:
  using key_type = K;
  using mapped_type = V;
  using decision = table_decision<V>;
  // Receives each victim while it is still protected (under its home lock); must not throw and
  // must not call back into this table. `referenced` is the victim's reference bit: in a governed
  // table, whether it was read or updated since it was inserted; a CLOCK victim's is always
  // clear.
  using eviction_sink = std::function<void(const K&, const V&, bool referenced)>;
  // An entry's weight (see set_weight_bound). Called under the key's home lock; must not call
  // back into this table.
  using weigher_type = std::function<std::size_t(const K&, const V&)>;

  static constexpr bool packed = use_packed_slots<K, V>;
  static constexpr unsigned probe_window = 16;
  static constexpr double max_load = 0.8;

  hot_table(std::size_t capacity, bool simd, striped_counters& counters, Hash hash = Hash{},
            KeyEqual eq = KeyEqual{})
      : capacity_(capacity),
        groups_(std::max<std::size_t>(
            1, (static_cast<std::size_t>(static_cast<double>(capacity) / max_load) + group_width) /
                   group_width)),
        window_(static_cast<unsigned>(std::min<std::size_t>(groups_, probe_window))),
        simd_(simd && simd_available),
        headers_(std::make_unique<group_header[]>(groups_)),
        slots_(std::make_unique<slot[]>(groups_ * group_width)),
        locks_(std::make_unique<group_lock[]>(groups_)),
        counters_(counters),
        domain_(epoch_domain::global()),
        hash_(std::move(hash)),
        eq_(std::move(eq)) {}

  hot_table(const hot_table&) = delete;
  hot_table& operator=(const hot_table&) = delete;

  ~hot_table() {
    if constexpr (!packed) {
      for (std::size_t s = 0; s < groups_ * group_width; ++s) {
        delete slots_[s].load(std::memory_order_relaxed);
      }
    }
  }

  void set_eviction_sink(eviction_sink sink) { sink_ = std::move(sink); }

  // Receives each entry that leaves other than through the sink (erased, replaced, expired), under
  // its home lock, before it goes; must not throw and must not call back into this table. Set
  // before use. Puts of present keys then take the home lock (the value they replace is read
  // under it), as with weights.
  using removal_observer = std::function<void(const K&, const V&, removal_cause)>;
  void set_removal_observer(removal_observer observer) {
    on_removal_ = std::move(observer);
    if (on_removal_) locked_puts_ = true;
  }

  // Bounds the table by weight as well as by entries: the sum of weigher(key, value) over the
  // entries stays within max_weight (> 0) once each write's evictions are done. An entry heavier
  // than max_weight is refused (std::invalid_argument, the table unchanged). Set before use, on
  // an empty table, and before a governor is constructed over it (the governor splits the budget
  // between its shards).
  void set_weight_bound(std::size_t max_weight, weigher_type weigher) {
    if (max_weight == 0 || !weigher) {
      throw std::invalid_argument("hot tier: a weight bound needs max_weight > 0 and a weigher");
    }
    weights_ = std::make_unique<std::size_t[]>(groups_ * group_width);
    weigher_ = std::move(weigher);
    max_weight_ = max_weight;
    locked_puts_ = true;
  }

  // Gives every entry a deadline (expiry_clock.hpp): the one its write passed (a decision's
  // `deadline`, assign()'s argument; no_deadline: never), checked against `clock` by every read,
  // which then sees an expired entry as absent. With `access_ttl` > 0, a read that finds an entry
  // moves its deadline to now + access_ttl (expire-after-access). Expired entries leave on the
  // first write or read of their key that finds them (a read leaves the removal to
  // reclaim_expired_read) and through expire_due(), whichever comes first. Set before use, on an
  // empty table; `clock` must outlive the table. A put of a present key then takes the home lock
  // (its deadline changes with the value).
  // With `access_ttl` and `write_cap` > 0 both, an access extension stops at write time +
  // write_cap (expire-after-write and expire-after-access together: the earlier one wins).
  void set_expiry(const expiry_clock& clock, std::chrono::nanoseconds access_ttl,
                  std::chrono::nanoseconds write_cap = std::chrono::nanoseconds::zero()) {
    const std::size_t n = groups_ * group_width;
    deadlines_ = std::make_unique<std::atomic<std::int64_t>[]>(n);
    timers_ = std::make_unique<timer_wheel::handle[]>(n);
    for (std::size_t s = 0; s < n; ++s) {
      deadlines_[s].store(no_deadline, std::memory_order_relaxed);
      timers_[s] = timer_wheel::none;
    }
    stripe_count_ = std::bit_ceil(std::clamp<std::size_t>(groups_ / 64, 1, 64));
    stripes_ = std::make_unique<expiry_stripe[]>(stripe_count_);
    const std::int64_t now = clock.now();
    for (std::size_t i = 0; i < stripe_count_; ++i) stripes_[i].wheel = timer_wheel(now);
    clock_ = &clock;
    coarse_word_ = clock.coarse_word();
    access_ttl_ = std::max<std::int64_t>(0, access_ttl.count());
    access_slack_ =
        (static_cast<std::uint64_t>(access_ttl_ - (access_ttl_ >> 6)) >> coarse_unit_shift)
        << coarse_word_shift;
    // Expire-after-access readers move deadlines (and, in packed slots, the sequence word):
    // in-place puts, which rely on the word changing only with the contents, are then off.
    if (access_ttl_ != 0) locked_puts_ = true;
    if (access_ttl_ != 0 && write_cap.count() > 0) {
      write_cap_ = write_cap;
      keep_write_times();
    }
  }

  // Receives a refresh a reader claimed: the key, its slot and the claimed write time (see the
  // header comment). Called on the reading thread, with no lock held; must not throw and must not
  // block. Returns false if the refresh could not be queued (the claim is then released).
  using refresh_observer = std::function<bool(const K&, std::size_t slot, std::int64_t at)>;

  // Makes every entry due for a reload `age` (> 0) after it was written (see the header
  // comment). After set_expiry, before use, on an empty table. Puts of present keys then take
  // the home lock (the write time changes with the value).
  void set_refresh(std::chrono::nanoseconds age, refresh_observer observer) {
    if (deadlines_ == nullptr || age.count() <= 0 || !observer) {
      throw std::invalid_argument("hot tier: refresh needs expiry, an age above 0 and an observer");
    }
    keep_write_times();
    refresh_age_ = age;
    on_refresh_ = std::move(observer);
    locked_puts_ = true;
  }

  // Under the home lock of the key in slot s: whether the slot still holds the write whose
  // refresh was claimed, written at `at` (no write of the slot since).
  bool refresh_claimed(std::size_t s, std::int64_t at) const noexcept {
    return written_at_ != nullptr && s < groups_ * group_width &&
           written_at_[s].load(std::memory_order_acquire) == (at | 1);
  }

  // Gives up the refresh claimed at `at` in slot s (if no write has replaced it), so that a later
  // read claims it again.
  void release_refresh(std::size_t s, std::int64_t at) const noexcept {
    if (written_at_ == nullptr || s >= groups_ * group_width) return;
    std::int64_t claimed = at | 1;
    written_at_[s].compare_exchange_strong(claimed, at, std::memory_order_acq_rel,
                                           std::memory_order_relaxed);
  }

  // With expiry: removes the entries whose deadline is at or before `now` among those the timer
  // wheels hold as due, and re-files the due entries whose deadline moved later meanwhile.
  // Returns how many it removed (counted as expirations). Takes one stripe's lock at a time,
  // then home locks one at a time: call with no lock held. Readers and writers run meanwhile.
  std::size_t expire_due(std::int64_t now) {
    if (deadlines_ == nullptr) return 0;
    std::vector<std::size_t> due;
    std::size_t removed = 0;
    for (std::size_t i = 0; i < stripe_count_; ++i) {
      due.clear();
      std::int64_t at = now;
      {
        const std::lock_guard lock(stripes_[i].mu);
        stripes_[i].wheel.advance(now, [&](timer_wheel::handle, std::uint64_t slot, std::int64_t) {
          timers_[slot] = timer_wheel::none;
          due.push_back(static_cast<std::size_t>(slot));
        });
        // A concurrent sweep may have moved this wheel past `now` (the pool's job and
        // run_pending_tasks): its records came due at the wheel's time, so judge them by it.
        at = stripes_[i].wheel.time();
      }
      for (const std::size_t slot : due) removed += expire_slot(slot, at) ? 1 : 0;
    }
    return removed;
  }

  // With expiry, after a read of this table that missed: if the calling thread's last read found
  // an expired entry here, removes it (if it is still there and still expired). Call with no
  // lock held.
  void reclaim_expired_read() {
    expired_read& seen = last_expired_read;
    if (seen.table != id_) return;
    seen.table = 0;
    expire_slot(seen.slot, clock_->now());
  }

  // 0 without a weight bound.
  std::size_t max_weight() const noexcept { return max_weight_; }
  // With a weight bound: throws too_heavy if a write of (key, value) would be refused as too
  // heavy (for the table, or for its governor's shards), so a caller can refuse it before
  // anything else changes. Nothing without a weight bound.
  void check_weight(const K& key, const V& value) const {
    if (weights_ == nullptr) return;
    const std::size_t w = weigh(key, value);
    if (gov_ != nullptr) gov_->check_weight(w);
  }
  // The resident entries' total weight (0 without a weight bound).
  std::size_t weight() const noexcept { return weight_.load(std::memory_order_relaxed); }

  // Hands eviction to `governor` (governed.hpp): from now on the governor hears of every entry
  // published and removed, and of the hits readers record, and picks the victims; the CLOCK hand
  // only still makes room inside a probe window that is full. Set before use, on an empty table;
  // the governor must outlive every call into the table.
  void set_governor(table_governor* governor) noexcept { gov_ = governor; }

  // Governed tables: evicts the entry in slot s to the eviction sink, as the CLOCK hand would,
  // if it still has hash h (the governor's victim may have been removed, or its slot reused,
  // since it was chosen). Takes the entry's home lock; call it with no lock held.
  //
  // The victim may also be an entry another thread is still publishing: its insert told the
  // governor (on_publish) before writing the slot, both under the key's home lock, and another
  // insert may choose it in between (a policy that rejects new entries, such as W-TinyLFU,
  // often does). A slot that does not hold h yet is therefore looked at again under that home
  // lock, once the publisher has finished: giving up on it would leave an entry in the table
  // that the policy has let go, never evicted again, the table over capacity for good.
  bool evict_slot(std::size_t s, std::uint64_t h) {
    pin_type pin;
    if constexpr (!packed) pin.emplace(domain_);
    // An in-place update of the victim makes remove_observed give up; its value is then read
    // again. Bounded: a key updated without pause keeps its place for a while.
    for (unsigned tries = 0; tries < 64; ++tries) {
      if (!slot_has_hash(s, h)) {
        const std::lock_guard lock(locks_[home_group(h)]);
        if (!slot_has_hash(s, h)) return false;
      }
      if (remove_observed(s, nullptr, /*second_chance=*/false, pin, /*to_sink=*/true, &h)) {
        return true;
      }
    }
    return false;
  }

  // Called, during an eviction, with the key of each entry the CLOCK hand passes because it was
  // read since the hand last passed it: the engine's promotion manager learns from it how often
  // hot entries are read without the read path doing anything (docs/architecture.md). Runs with
  // no lock held; the key is a copy read optimistically, so a slot rewritten meanwhile may report
  // its new key, which only makes the estimate approximate.
  using reference_observer = std::function<void(const K&)>;
  void set_reference_observer(reference_observer observer) { observer_ = std::move(observer); }

  // Calls f(const V&) with the value of `key` if present. Lock-free; see the header comment.
  // Touch = false looks without counting as a use for eviction (contains()).
  template <bool Touch = true, class Q, class F>
  GOLDYLOX_ALWAYS_INLINE bool visit(const Q& key, F&& f) const {
    const std::uint64_t h = hash_of(key);
    if constexpr (packed) {
      return find_and_visit<Touch>(h, key, f);
    } else {
      epoch_guard pin(domain_);
      return find_and_visit<Touch>(h, key, f);
    }
  }

  // A copy of the stored key equal to `key`, or nullopt: how a transparent key that cannot make
  // a K reaches the K (the engine's erase, for the cold tier). Takes the key's home lock, under
  // which the key cannot come or go.
  template <class Q>
  std::optional<K> stored_key(const Q& key) const {
    const std::uint64_t h = hash_of(key);
    std::optional<epoch_guard> pin;
    if constexpr (!packed) pin.emplace(domain_);
    std::lock_guard<group_lock> lock(locks_[home_group(h)]);
    const std::optional<std::size_t> found = locate_locked(h, key);
    if (!found) return std::nullopt;
    if constexpr (packed) {
      const std::optional<packed_pair<K, V>> kv = read_packed(slots_[*found]);
      if (!kv) return std::nullopt;
      return kv->key;
    } else {
      return slots_[*found].load(std::memory_order_relaxed)->key;
    }
  }

  // Returns a copy of the value of `key` (packed slots only: the copy is the read itself), and
  // counts a miss when `record` is set (the caller counted the lookup: tick_lookup); on a miss,
  // returns on_miss(key) instead (a lower tier's answer). Equivalent to visit() with a copying
  // callback, but shaped for the compiler: the inline part ends either in a return or in a tail
  // call (to the out-of-line probe, or to on_miss), so no value has to survive a call and the
  // inline part needs no callee-saved registers (no register saves and restores on the common
  // path). The engine's get() holds two find()s, with and without on_miss, chosen by whether there
  // is a warm tier; that measured 76.4 instructions per hit against 67.6 for one find() alone
  // (docs/benchmarks.md). Dated = false: the caller knows the table has no expiry, so the inline
  // stage leaves out even the test for it (the engine's get without lower tiers or expiry).
  template <bool Dated = true, class Q, class OnMiss = no_value>
    requires packed
  GOLDYLOX_ALWAYS_INLINE std::optional<V> find(const Q& key, bool record,
                                               OnMiss&& on_miss = {}) const {
    const std::uint64_t h = hash_of(key);
    std::optional<V> out;
    auto keep = [&](const V& v) { out.emplace(v); };
    const probe_result r = GOLDYLOX_LIKELY(simd_) ? probe_home<true, true, Dated>(h, key, keep)
                                                  : probe_home<true, false, Dated>(h, key, keep);
    if (GOLDYLOX_LIKELY(r != probe_result::incomplete)) {
      if (record && r != probe_result::hit) counters_.add(counter::misses);
      if constexpr (std::is_same_v<std::remove_cvref_t<OnMiss>, no_value>) {
        return out;
      } else {
        if (GOLDYLOX_LIKELY(r == probe_result::hit)) return out;
        return on_miss(key);
      }
    }
    return find_rest(h, key, record, on_miss);
  }

  // Looks up `count` keys, calling f(i, const V*) for each (nullptr on a miss). Hashes and
  // prefetches a batch of groups before probing any of them, so the cache misses overlap.
  template <class Q, class F>
  void visit_many(const Q* keys, std::size_t count, F&& f) const {
    constexpr std::size_t batch = 16;
    std::uint64_t hashes[batch];
    std::optional<epoch_guard> pin;
    if constexpr (!packed) pin.emplace(domain_);
    for (std::size_t base = 0; base < count; base += batch) {
      const std::size_t n = std::min(batch, count - base);
      for (std::size_t j = 0; j < n; ++j) {
        hashes[j] = hash_of(keys[base + j]);
        const std::size_t g = home_group(hashes[j]);
        prefetch(&headers_[g]);
        prefetch(&slots_[g * group_width]);
      }
      for (std::size_t j = 0; j < n; ++j) {
        auto on_hit = [&](const V& v) { f(base + j, &v); };
        if (!find_and_visit(hashes[j], keys[base + j], on_hit)) {
          f(base + j, static_cast<const V*>(nullptr));
        }
      }
    }
  }

  // Runs decide(const V* current) — or decide(const K& key, const V* current), or decide(key,
  // current, slot) with the key's slot (no_slot when absent) — under the key's
  // home lock and applies its decision. If decide throws, the table is unchanged and the
  // exception propagates. If the decision inserts the key, on_insert(const K&) runs once the entry
  // is published, still under the lock (a lower tier drops its copy there: see engine.hpp). An
  // on_insert returning bool may refuse the insert with false (the lower tier's copy had left
  // it meanwhile, evicted): the entry is removed again, unreported, and the outcome is kept.
  template <class F, class OnInsert = no_hook>
  compute_outcome compute(K key, F&& decide, OnInsert&& on_insert = {}) {
    const std::uint64_t h = hash_of(key);
    return write_key(h, [&](std::size_t home, pin_type& pin, std::size_t& inserted_at) {
      const std::optional<std::size_t> found = locate_live(h, key, pin);
      std::optional<packed_pair<K, V>> snapshot;
      std::optional<V> value_copy;
      const V* current = nullptr;
      std::uint64_t seen = 0;
      if (found) {
        // The key stays in its slot under the lock. A node's value is stable too (only this
        // lock's holders write it); a packed slot's value may still be overwritten by an
        // in-place update (update_in_place), so what is decided here is applied only if the
        // slot still holds the snapshot (`seen`).
        if constexpr (packed) {
          snapshot = read_packed(slots_[*found], &seen);
          current = &snapshot->value;
        } else if constexpr (inline_value) {
          value_copy = read_packed(slots_[*found].load(std::memory_order_relaxed)->cell);
          current = &*value_copy;
        } else {
          current = &slots_[*found].load(std::memory_order_relaxed)->value;
        }
      }
      decision d = [&] {
        if constexpr (std::is_invocable_v<F&, const K&, const V*, std::size_t>) {
          return decide(std::as_const(key), current, found.value_or(no_slot));
        } else if constexpr (std::is_invocable_v<F&, const K&, const V*>) {
          return decide(std::as_const(key), current);
        } else {
          return decide(current);
        }
      }();
      switch (d.what) {
        case decision::kind::keep:
          break;
        case decision::kind::erase:
          if (found) {
            if (on_removal_) report_removal(*found, removal_cause::erased);
            // If an in-place update got there first, this erase is ordered before it (as in
            // store_locked) and the key stays with that update's value.
            if (remove_slot(*found, h, pin, packed && !locked_puts_ ? &seen : nullptr)) {
              counters_.add(counter::removals);
            }
            return compute_outcome::erased;
          }
          break;
        case decision::kind::assign:
          return store_locked(found, h, home, std::move(key), std::move(*d.value), pin, inserted_at,
                              on_insert, d.deadline, packed && !locked_puts_ ? &seen : nullptr);
      }
      return compute_outcome::kept;
    });
  }

  // Inserts or overwrites: compute() with a decision that ignores the current value, without
  // reading that value or building a decision (put's path; 13 % fewer instructions per update).
  //
  // KeyArg is K (moved in) or const K& (copied only if the key is inserted, or into a new node).
  // on_insert: as in compute(), when the key was absent. deadline: with expiry, when the value
  // expires.
  template <class KeyArg, class OnInsert = no_hook>
  compute_outcome assign(KeyArg&& key, V value, OnInsert&& on_insert = {},
                         std::int64_t deadline = no_deadline) {
    const std::uint64_t h = hash_of(key);
    if constexpr (packed) {
      if (!locked_puts_ && update_in_place(h, key, value, deadline)) {
        return compute_outcome::updated;
      }
    }
    return write_key(h, [&](std::size_t home, pin_type& pin, std::size_t& inserted_at) {
      return store_locked(locate_live(h, key, pin), h, home, std::forward<KeyArg>(key),
                          std::move(value), pin, inserted_at, on_insert, deadline);
    });
  }

  // assign() for a key that enters this table only if it is here already: a present key is
  // overwritten as assign() does (in place when packed); an absent one is not inserted but handed
  // to absent(const K&, V&&) under its home lock, and absent's outcome is returned (the engine
  // stores new keys in the warm tier there, so the hot tier takes entries only by promotion).
  template <class KeyArg, class Absent>
  compute_outcome assign_present(KeyArg&& key, V value, Absent&& absent,
                                 std::int64_t deadline = no_deadline) {
    const std::uint64_t h = hash_of(key);
    if constexpr (packed) {
      if (!locked_puts_ && update_in_place(h, key, value, deadline)) {
        return compute_outcome::updated;
      }
    }
    std::optional<compute_outcome> elsewhere;
    const compute_outcome here =
        write_key(h, [&](std::size_t home, pin_type& pin, std::size_t& inserted_at) {
          const std::optional<std::size_t> found = locate_live(h, key, pin);
          if (!found) {
            elsewhere = absent(std::as_const(key), std::move(value));
            return compute_outcome::kept;
          }
          no_hook none;
          return store_locked(found, h, home, std::forward<KeyArg>(key), std::move(value), pin,
                              inserted_at, none, deadline);
        });
    return elsewhere.value_or(here);
  }

  // Removes `key`. If it is absent, returns if_absent() instead, called under the key's home
  // lock (a lower tier removes its copy there).
  template <class Q, class IfAbsent = no_hook>
  bool erase(const Q& key, IfAbsent&& if_absent = {}) {
    const std::uint64_t h = hash_of(key);
    const std::size_t home = home_group(h);
    std::optional<epoch_guard> pin;
    if constexpr (!packed) pin.emplace(domain_);
    std::lock_guard<group_lock> lock(locks_[home]);
    const std::optional<std::size_t> found = locate_live(h, key, pin);
    if (!found) return static_cast<bool>(if_absent());
    if (on_removal_) report_removal(*found, removal_cause::erased);
    remove_slot(*found, h, pin);
    counters_.add(counter::removals);
    return true;
  }

  // Removes every entry; with to_sink, hands each one to the eviction sink as it goes. Entries
  // inserted concurrently with clear() may survive it.
  void clear(bool to_sink = false) {
    std::optional<epoch_guard> pin;
    if constexpr (!packed) pin.emplace(domain_);
    for (std::size_t s = 0; s < groups_ * group_width; ++s) {
      if (tag_of_slot(s) >= 2) remove_observed(s, nullptr, /*second_chance=*/false, pin, to_sink);
    }
  }

  std::size_t size() const noexcept {
    const auto n = size_.load(std::memory_order_relaxed);
    return n < 0 ? 0 : static_cast<std::size_t>(n);
  }
  std::size_t capacity() const noexcept { return capacity_; }
  std::size_t slot_count() const noexcept { return groups_ * group_width; }

  // The sum of every group's overflow counters: the groups the resident entries' probes pass
  // beyond their home group (0 in an empty table; quiescent only, for tests and diagnostics).
  std::size_t overflow_count() const noexcept {
    std::size_t n = 0;
    for (std::size_t g = 0; g < groups_; ++g) {
      for (const auto& c : headers_[g].overflow) n += c.load(std::memory_order_relaxed);
    }
    return n;
  }
  bool simd_enabled() const noexcept { return simd_; }

  // Memory one entry costs at capacity (slot, header and lock share, node), for config checks.
  static constexpr std::size_t bytes_per_entry() noexcept {
    const double fixed =
        static_cast<double>(sizeof(slot)) +
        static_cast<double>(sizeof(group_header) + sizeof(group_lock)) / group_width;
    return static_cast<std::size_t>(fixed / max_load) + (packed ? 0 : sizeof(node));
  }

  std::size_t memory_bytes() const noexcept {
    std::size_t bytes = groups_ * (sizeof(group_header) + sizeof(group_lock)) +
                        groups_ * group_width * sizeof(slot);
    if constexpr (!packed) bytes += size() * sizeof(node);
    if (weights_ != nullptr) bytes += groups_ * group_width * sizeof(std::size_t);
    if (written_at_ != nullptr) bytes += groups_ * group_width * sizeof(std::int64_t);
    if (deadlines_ != nullptr) {
      bytes += groups_ * group_width * (sizeof(std::int64_t) + sizeof(timer_wheel::handle)) +
               stripe_count_ * sizeof(expiry_stripe);
      for (std::size_t i = 0; i < stripe_count_; ++i) {
        // Under the lock: a write may be growing the wheel's slab.
        const std::lock_guard lock(stripes_[i].mu);
        bytes += stripes_[i].wheel.memory_bytes();
      }
    }
    return bytes;
  }

 private:
  // A seqlock over relaxed atomic words holding one T (trivially copyable).
  template <class T>
  struct seq_cell {
    static constexpr std::size_t words = (sizeof(T) + 7) / 8;
    // bit 0: write in progress; bit 1: occupied; bits 2..: version.
    std::atomic<std::uint64_t> seq{0};
    std::atomic<std::uint64_t> data[words] = {};
  };
  using packed_slot = seq_cell<packed_pair<K, V>>;

  // Node-mode values that are trivially copyable and small live in a seqlock cell inside the
  // node, so an update writes them in place (under the key's lock) instead of allocating a new
  // node and retiring the old one; readers copy them out as from a packed slot. Other values are
  // immutable in their node.
  static constexpr bool inline_value =
      !packed && std::is_trivially_copyable_v<V> && sizeof(V) <= 32 && alignof(V) <= 8;
  struct plain_node {
    plain_node(std::uint64_t h, K&& k, V&& v) : hash(h), key(std::move(k)), value(std::move(v)) {}
    std::uint64_t hash;
    K key;
    V value;
  };
  struct cell_node {
    cell_node(std::uint64_t h, K&& k, V&& v) : hash(h), key(std::move(k)) {
      write_packed<false>(cell, &v);  // not yet reachable by anyone else
    }
    std::uint64_t hash;
    K key;
    seq_cell<V> cell;
  };
  using node = std::conditional_t<inline_value, cell_node, plain_node>;

  using slot = std::conditional_t<packed, packed_slot, std::atomic<node*>>;
  static constexpr std::size_t no_slot = ~std::size_t{0};
  using pin_type = std::optional<epoch_guard>;

  struct alignas(32) group_header {
    std::atomic<std::uint64_t> tags[2] = {};
    std::atomic<std::uint16_t> ref{0};
    std::atomic<std::uint8_t> clock{0};  // this group's CLOCK hand position (next slot to examine)
    // Per hash class ((h >> 8) & 7): how many entries of that class whose probe passed this group
    // sit in a later group. At most the 15 x 16 slots after it in the window: never wraps.
    std::atomic<std::uint8_t> overflow[8] = {};
  };
  static_assert(alignof(group_header) >= 16, "match_group loads the tags with one aligned load");

  template <class Q>
  GOLDYLOX_ALWAYS_INLINE std::uint64_t hash_of(const Q& key) const {
    return table_hash(hash_, key);
  }
  std::size_t home_group(std::uint64_t h) const noexcept {
    return static_cast<std::size_t>(mul_high(h, groups_));
  }
  std::size_t next_group(std::size_t g) const noexcept { return ++g == groups_ ? 0 : g; }
  // Whether a probe for hash h must go on past this group: an entry of h's class lives further on.
  static bool overflowed(const group_header& hdr, std::uint64_t h) noexcept {
    return hdr.overflow[(h >> 8) & 7].load(std::memory_order_relaxed) != 0;
  }
  // Counts (delta +1, before the entry's tag is published) or uncounts (-1, after its slot is
  // emptied) the entry of hash h in slot s in the overflow counter of every group its probe
  // passed: from its home group up to, not including, its own.
  void count_passage(std::uint64_t h, std::size_t s, bool add) noexcept {
    const std::size_t last = s / group_width;
    const std::size_t cls = (h >> 8) & 7;
    for (std::size_t g = home_group(h); g != last; g = next_group(g)) {
      if (add) {
        headers_[g].overflow[cls].fetch_add(1, std::memory_order_relaxed);
      } else {
        headers_[g].overflow[cls].fetch_sub(1, std::memory_order_relaxed);
      }
    }
  }

  std::uint8_t tag_of_slot(std::size_t s) const noexcept {
    const group_header& hdr = headers_[s / group_width];
    const unsigned i = static_cast<unsigned>(s % group_width);
    return tag_at(hdr.tags[i >> 3].load(std::memory_order_acquire), i & 7);
  }

  // Changes a tag this thread owns (reserved or full under the key's lock) from `from` to `to`.
  void flip_tag(std::size_t s, std::uint8_t from, std::uint8_t to) noexcept {
    const unsigned i = static_cast<unsigned>(s % group_width);
    const std::uint64_t delta = std::uint64_t{static_cast<std::uint8_t>(from ^ to)}
                                << ((i & 7) * 8);
    headers_[s / group_width].tags[i >> 3].fetch_xor(delta, std::memory_order_release);
  }

  bool try_reserve(std::size_t s) noexcept {
    const unsigned i = static_cast<unsigned>(s % group_width);
    auto& word = headers_[s / group_width].tags[i >> 3];
    std::uint64_t w = word.load(std::memory_order_relaxed);
    while (tag_at(w, i & 7) == tag_empty) {
      if (word.compare_exchange_weak(w, with_tag(w, i & 7, tag_reserved), std::memory_order_acq_rel,
                                     std::memory_order_relaxed)) {
        return true;
      }
    }
    return false;
  }

  // Sets slot i's CLOCK reference bit, writing only if it is clear.
  GOLDYLOX_ALWAYS_INLINE static void touch(group_header& hdr, unsigned i) noexcept {
    if (((hdr.ref.load(std::memory_order_relaxed) >> i) & 1U) == 0) {
      hdr.ref.fetch_or(static_cast<std::uint16_t>(1U << i), std::memory_order_relaxed);
    }
  }
  void touch(std::size_t s) const noexcept { touch(headers_[s / group_width], s % group_width); }

  // A use of slot i of hdr by a key of hash h: its CLOCK bit, and for a governed table a record
  // in the hit rings (a full ring asks the governor to drain it, then the record is tried once
  // more and otherwise dropped).
  GOLDYLOX_ALWAYS_INLINE void note_hit(std::uint64_t h, group_header& hdr, unsigned i) const {
    touch(hdr, i);
    if (gov_ != nullptr) {
      const auto s = static_cast<std::uint32_t>(
          static_cast<std::size_t>(&hdr - headers_.get()) * group_width + i);
      hit_rings& rings = gov_->hits();
      const std::size_t shard = rings.shard_of(h);
      if (GOLDYLOX_UNLIKELY(!rings.record(shard, s))) record_after_drain(shard, s);
    }
  }
  GOLDYLOX_NOINLINE void record_after_drain(std::size_t shard, std::uint32_t s) const noexcept {
    gov_->rings_full(shard);
    (void)gov_->hits().record(shard, s);
  }

  // A timer wheel of the slots of a share of the groups, and its lock (expiry).
  struct alignas(cache_line) expiry_stripe {
    mutable std::mutex mu;
    timer_wheel wheel;
  };

  // The last expired entry the calling thread's reads found, for reclaim_expired_read.
  // Tables are told apart by id_, not address: a table destroyed and another built at the same
  // address must not take the first one's slot number.
  struct expired_read {
    std::uint64_t table = 0;
    std::size_t slot = 0;
  };
  static inline thread_local expired_read last_expired_read;
  static inline std::atomic<std::uint64_t> next_id{1};

  // ---- packed slots: seqlock over relaxed atomic words ----

  // With expiry, a packed slot's sequence word also carries a coarse copy of its deadline, so a
  // reader checks expiry with the word it loads anyway instead of a load from the deadline array
  // (a cache line more per get: measured +36 % per get at 64K keys, +8 to +11 % this way).
  // Layout: bits 0-1 the state, 2-23 a 22-bit write counter, 24-63 the deadline in units of 2^20
  // ns (~1.05 ms) of the clock, rounded down, so the coarse value is a lower bound: a reader that
  // finds now's coarse value below it knows the entry is alive; otherwise (within ~1 ms of the
  // deadline, past it, or due for an access extension) it checks the exact deadline out of line.
  // 40 bits of ~1 ms reach 36 years of the clock (steady_clock counts from boot; a deadline
  // beyond keeps the largest finite value, a lower bound still); the all-ones value means no
  // deadline. A wrap of the 22-bit
  // counter would need 4 million writes of one slot while one reader is between its two loads.
  static constexpr unsigned dated_shift = coarse_word_shift;
  static constexpr std::uint64_t dated_counter_mask = (std::uint64_t{1} << 22) - 1;
  static constexpr std::uint64_t coarse_never = (std::uint64_t{1} << 40) - 1;

  static std::uint64_t coarse(std::int64_t t) noexcept {
    return t <= 0 ? 0 : static_cast<std::uint64_t>(t) >> coarse_unit_shift;
  }
  std::uint64_t dated_bits(std::int64_t deadline) const noexcept {
    const std::uint64_t c =
        deadline == no_deadline ? coarse_never : std::min(coarse(deadline), coarse_never - 1);
    return c << dated_shift;
  }
  // Whether a packed slot read under sequence s1 is certainly alive now and not due for an
  // access extension.
  GOLDYLOX_ALWAYS_INLINE bool dated_fresh(std::uint64_t s1) const {
    // The coarse clock's shared time is one load; 0 (no ticking thread) or an injected ticker
    // take the call.
    // (s1 >> 24) > units(now) + slack, as one compare of whole words: s1 >= (units(now) + 1 +
    // slack) << 24, the state and counter bits below 24 not mattering.
    std::uint64_t after = coarse_word_->load(std::memory_order_relaxed);
    if (GOLDYLOX_UNLIKELY(after == 0)) after = coarse_word_after(clock_->now());
    return s1 >= after + access_slack_;
  }

  template <class T>
  struct word_array {
    std::uint64_t w[seq_cell<T>::words];
  };
  using packed_words = word_array<packed_pair<K, V>>;

  // Rebuilds a T from the words. When the sizes match (e.g. {uint64_t, uint64_t}) this is a
  // bit_cast that stays in registers; a byte-wise copy through memory would store 8-byte words
  // and reload wider, which cannot store-forward and stalls the lookup (see tag_group.hpp).
  template <class T>
  static T unpack(const word_array<T>& words) noexcept {
    if constexpr (sizeof(word_array<T>) == sizeof(T)) {
      return std::bit_cast<T>(words);
    } else {
      alignas(T) unsigned char raw[sizeof(T)];
      std::memcpy(raw, words.w, sizeof(raw));
      return *std::launder(reinterpret_cast<T*>(raw));
    }
  }

  // Returns a consistent copy of the cell (nullopt if empty); *seq_out gets the sequence value
  // the copy belongs to, which changes on every write and so identifies this exact contents.
  // With `deadline`, *deadline_out gets its value as of the same contents (expiry: written inside
  // the cell's write window).
  template <class T>
  static std::optional<T> read_packed(const seq_cell<T>& ps, std::uint64_t* seq_out = nullptr,
                                      const std::atomic<std::int64_t>* deadline = nullptr,
                                      std::int64_t* deadline_out = nullptr) noexcept {
    for (unsigned spins = 0;; ++spins) {
      const std::uint64_t s1 = ps.seq.load(std::memory_order_acquire);
      if ((s1 & 1) == 0) {
        if ((s1 & 2) == 0) return std::nullopt;
        word_array<T> words;
        // Acquire loads (plain loads on x86) instead of relaxed loads plus an acquire fence: if
        // any word comes from a newer write, its release store synchronizes with this load, so
        // the re-read below sees at least that write's odd sequence. Fence-free, the protocol is
        // also visible to ThreadSanitizer, which ignores fences.
        for (std::size_t w = 0; w < seq_cell<T>::words; ++w) {
          words.w[w] = ps.data[w].load(std::memory_order_acquire);
        }
        if (deadline != nullptr) *deadline_out = deadline->load(std::memory_order_acquire);
        if (ps.seq.load(std::memory_order_relaxed) == s1) {
          if (seq_out != nullptr) *seq_out = s1;
          return unpack(words);
        }
      }
      backoff(spins);
    }
  }

  // Writing a cell: open_write makes the sequence odd (readers then wait or retry) and returns
  // its previous value; close_write stores the new contents (nullptr: empty) and the next even
  // sequence. An odd sequence is also the cell's write lock. Cells that other writers may race
  // for (packed slots, which in-place updates write without the home lock) are opened with a CAS
  // that waits out a writer in progress (Shared); a cell only its creator can reach is opened with
  // a store.
  template <bool Shared, class T>
  static std::uint64_t open_write(seq_cell<T>& ps) noexcept {
    if constexpr (Shared) {
      for (unsigned spins = 0;; ++spins) {
        std::uint64_t s = ps.seq.load(std::memory_order_relaxed);
        if ((s & 1) == 0 && ps.seq.compare_exchange_weak(s, s | 1, std::memory_order_acquire,
                                                         std::memory_order_relaxed)) {
          return s;
        }
        backoff(spins);
      }
    } else {
      const std::uint64_t s = ps.seq.load(std::memory_order_relaxed);
      ps.seq.store(s | 1, std::memory_order_relaxed);
      return s;
    }
  }

  // Opens the cell only if it still holds exactly the contents read under sequence `seen`: any
  // write since then has changed the sequence.
  template <class T>
  static bool open_write_if(seq_cell<T>& ps, std::uint64_t seen) noexcept {
    return ps.seq.compare_exchange_strong(seen, seen | 1, std::memory_order_acquire,
                                          std::memory_order_relaxed);
  }

  // `dated` (packed slots with expiry): the sequence's counter keeps 22 bits and the word's top
  // 40 bits carry the contents' coarse deadline (see dated_bits).
  template <class T>
  static void close_write(seq_cell<T>& ps, std::uint64_t opened,
                          const std::type_identity_t<T>* contents, bool dated = false,
                          std::uint64_t deadline_bits = 0) noexcept {
    if (contents != nullptr) {
      std::uint64_t words[seq_cell<T>::words] = {};
      std::memcpy(words, contents, sizeof(T));
      // Release stores order the odd sequence before each word (see read_packed).
      for (std::size_t w = 0; w < seq_cell<T>::words; ++w) {
        ps.data[w].store(words[w], std::memory_order_release);
      }
    }
    std::uint64_t count = (opened >> 2) + 1;
    if (dated) count &= dated_counter_mask;
    const std::uint64_t next = deadline_bits | (count << 2) | (contents != nullptr ? 2 : 0);
    ps.seq.store(next, std::memory_order_release);
  }

  template <bool Shared, class T>
  static void write_packed(seq_cell<T>& ps, const std::type_identity_t<T>* contents) noexcept {
    close_write(ps, open_write<Shared>(ps), contents);
  }

  static void backoff(unsigned spins) noexcept {
    if (spins > 64) {
      std::this_thread::yield();
    } else {
      cpu_relax();
    }
  }

  // A node's value as a lock-free reader sees it: a reference into an immutable node, or a
  // consistent copy out of its cell.
  static std::conditional_t<inline_value, V, const V&> node_value(const node& n) noexcept {
    if constexpr (inline_value) {
      return *read_packed(n.cell);  // a node's cell is always occupied
    } else {
      return n.value;
    }
  }

  // ---- lookup ----

  enum class probe_result { miss, hit, incomplete };

  // Lookup in two stages. The inline stage looks only at the key's home group and its first
  // tag match, in straight-line code: no loop, no call, one optimistic copy of the slot. That
  // settles almost every lookup (a hit in the home group, or a miss at a home group without
  // overflow). Everything else — a second tag match, an overflowed home group, a slot caught
  // mid-write — is `incomplete` and restarts in probe_all(), out of line, which walks the whole
  // window and waits out writers. Keeping loops, spinning and calls out of the inline stage lets
  // the compiler keep it in a few registers, and a short lookup leaves room in the CPU's
  // reorder window for the next lookups' cache misses to overlap (1M-key tables).
  template <bool Touch = true, class Q, class F>
  GOLDYLOX_ALWAYS_INLINE bool find_and_visit(std::uint64_t h, const Q& key, F& f) const {
    const probe_result r = GOLDYLOX_LIKELY(simd_) ? probe_home<Touch, true>(h, key, f)
                                                  : probe_home<Touch, false>(h, key, f);
    if (GOLDYLOX_LIKELY(r != probe_result::incomplete)) return r == probe_result::hit;
    if constexpr (packed) {
      // The out-of-line probe returns a copy rather than calling f, so f (and whatever it
      // captures, such as the caller's result) never escapes into a call and stays in registers.
      const std::optional<V> found = probe_all_packed<Touch>(h, key);
      if (!found) return false;
      f(*found);
      return true;
    } else {
      return probe_all<Touch>(h, key, f);
    }
  }

  template <bool Touch, bool Simd, bool Dated = true, class Q, class F>
  GOLDYLOX_ALWAYS_INLINE probe_result probe_home(std::uint64_t h, const Q& key, F& f) const {
    group_header& hdr = headers_[home_group(h)];
    const unsigned m = match_group<Simd>(hdr.tags, tag_pattern_of(h));
    if (m != 0) {
      const auto i = static_cast<std::size_t>(static_cast<unsigned>(std::countr_zero(m)));
      const std::size_t s = home_group(h) * group_width + i;
      const slot& sl = slots_[s];
      if constexpr (packed) {
        packed_words words;
        const std::uint64_t s1 = sl.seq.load(std::memory_order_acquire);
        for (std::size_t w = 0; w < packed_slot::words; ++w) {
          words.w[w] = sl.data[w].load(std::memory_order_acquire);  // see read_packed
        }
        // (s1 & 3) != 2, i.e. mid-write or empty, as one subtract and one test.
        if (GOLDYLOX_UNLIKELY(((s1 - 2) & 3) != 0 ||
                              sl.seq.load(std::memory_order_relaxed) != s1)) {
          return probe_result::incomplete;  // mid-write, or emptied since the tag was read
        }
        const packed_pair<K, V> kv = unpack(words);
        if (!Dated || GOLDYLOX_LIKELY(deadlines_ == nullptr) || dated_fresh(s1)) {
          const match r = deliver_if<Touch>(kv.key, kv.value, key, h, hdr, i, f, s, no_deadline);
          if (GOLDYLOX_LIKELY(r == match::hit)) return probe_result::hit;
        } else if (eq_(kv.key, key)) {
          return probe_result::incomplete;  // the exact deadline is checked by probe()
        }
      } else {
        const match r = visit_node<Touch>(sl, h, key, hdr, i, f, s);
        if (GOLDYLOX_LIKELY(r == match::hit)) return probe_result::hit;
        if (r != match::other) return probe_result::incomplete;
      }
      if ((m & (m - 1)) != 0) return probe_result::incomplete;
    }
    return !overflowed(hdr, h) ? probe_result::miss : probe_result::incomplete;
  }

  template <bool Touch, class Q>
  GOLDYLOX_NOINLINE std::optional<V> probe_all_packed(std::uint64_t h, const Q& key) const {
    std::optional<V> out;
    auto keep = [&](const V& v) { out.emplace(v); };
    probe_all<Touch>(h, key, keep);
    return out;
  }

  template <class Q, class OnMiss>
  GOLDYLOX_NOINLINE std::optional<V> find_rest(std::uint64_t h, const Q& key, bool record,
                                               OnMiss& on_miss) const {
    std::optional<V> out = probe_all_packed<true>(h, key);
    if (record && !out) counters_.add(counter::misses);
    if (!out) return on_miss(key);
    return out;
  }

  // What a probe found in one slot: another key; the key, delivered; the key, expired (not
  // delivered); or (node slots with expiry) a slot that changed while it was read, to read again.
  enum class match { other, hit, expired, changed };

  // The end of every successful probe: if `candidate` is `key` and, with expiry, its deadline
  // (read with it, from slot s) has not passed, mark slot i used and hand its value to f.
  // no_deadline stands for "known to be alive" (the inline stage's dated_fresh); seq, for a
  // packed slot, the sequence its contents were read under.
  template <bool Touch, class Q, class F>
  GOLDYLOX_ALWAYS_INLINE match deliver_if(const K& candidate, const V& value, const Q& key,
                                          std::uint64_t h, group_header& hdr, unsigned i, F& f,
                                          std::size_t s, std::int64_t deadline,
                                          const std::uint64_t* seq = nullptr) const {
    if (!eq_(candidate, key)) return match::other;
    if (deadline != no_deadline && !alive(s, deadline, seq)) return match::expired;
    if constexpr (Touch) {
      note_hit(h, hdr, i);
      // The inline stage (no seq) has seen the coarse date, which a due refresh would have failed.
      if (seq != nullptr && GOLDYLOX_UNLIKELY(on_refresh_ != nullptr)) claim_refresh(s, candidate);
    }
    f(value);
    return match::hit;
  }

  // With expiry, the deadline is read between two loads of the node pointer: the same node both
  // times means the deadline was read while that node was the slot's (a node is never reused
  // while the reader's epoch pin holds it), and replace_value keeps the earlier of the old and
  // new deadlines in place while the node changes.
  template <bool Touch, class Q, class F>
  GOLDYLOX_ALWAYS_INLINE match visit_node(const slot& sl, std::uint64_t h, const Q& key,
                                          group_header& hdr, unsigned i, F& f,
                                          std::size_t s) const {
    const node* n = sl.load(std::memory_order_seq_cst);  // see epoch.hpp
    if (n == nullptr || n->hash != h || !eq_(n->key, key)) return match::other;
    if (GOLDYLOX_UNLIKELY(deadlines_ != nullptr)) {
      const std::int64_t deadline = deadlines_[s].load(std::memory_order_acquire);
      if (sl.load(std::memory_order_acquire) != n) return match::changed;
      if (!alive(s, deadline, nullptr)) return match::expired;
      if constexpr (Touch) {
        if (GOLDYLOX_UNLIKELY(on_refresh_ != nullptr)) claim_refresh(s, n->key);
      }
    }
    if constexpr (Touch) note_hit(h, hdr, i);
    const auto& value = node_value(*n);  // a copy's lifetime is extended to the block's end
    f(value);
    return match::hit;
  }

  template <bool Touch, class Q, class F>
  GOLDYLOX_NOINLINE bool probe_all(std::uint64_t h, const Q& key, F& f) const {
    return simd_ ? probe<Touch, true>(h, key, f) : probe<Touch, false>(h, key, f);
  }

  // The whole probe: every group of the window, every tag match, waiting out writers.
  template <bool Touch, bool Simd, class Q, class F>
  GOLDYLOX_ALWAYS_INLINE bool probe(std::uint64_t h, const Q& key, F& f) const {
    // Locals, not members: GCC reloads member pointers after every atomic load otherwise.
    group_header* const headers = headers_.get();
    const slot* const slots = slots_.get();
    const std::size_t groups = groups_;
    const std::uint64_t pattern = tag_pattern_of(h);
    std::size_t g = home_group(h);
    // Readers probe the full window even in tables smaller than it: revisiting a group is
    // harmless for a read, and a constant bound frees a register.
    for (unsigned p = 0;;) {
      group_header& hdr = headers[g];
      unsigned m = match_group<Simd>(hdr.tags, pattern);
      while (m != 0) {
        const unsigned i = static_cast<unsigned>(std::countr_zero(m));
        const std::size_t s = g * group_width + i;
        const slot& sl = slots[s];
        m &= m - 1;
        match r;
        if constexpr (packed) {
          std::int64_t deadline = no_deadline;
          std::uint64_t seq = 0;
          const std::optional<packed_pair<K, V>> kv =
              deadlines_ == nullptr ? read_packed(sl)
                                    : read_packed(sl, &seq, &deadlines_[s], &deadline);
          if (!kv) continue;
          r = deliver_if<Touch>(kv->key, kv->value, key, h, hdr, i, f, s, deadline, &seq);
        } else {
          do {
            r = visit_node<Touch>(sl, h, key, hdr, i, f, s);
          } while (r == match::changed);
        }
        if (r == match::hit) return true;
        if (r == match::expired) return false;  // the key's only entry: absent
      }
      if (!overflowed(hdr, h)) return false;
      if (++p == probe_window) return false;
      if (++g == groups) g = 0;
    }
  }

  // The frame of every keyed write: warms the lines, takes the key's home lock, runs
  // locked(home, pin, inserted_at) and, after unlocking, evicts down to capacity if it inserted.
  // The new entry itself is spared: a put must never evict the value it just stored.
  template <class Locked>
  GOLDYLOX_ALWAYS_INLINE compute_outcome write_key(std::uint64_t h, Locked&& locked) {
    const std::size_t home = home_group(h);
    pin_type pin;
    if constexpr (!packed) pin.emplace(domain_);
    std::size_t inserted_at = no_slot;
    compute_outcome outcome;
    warm_for_write(h, home);
    {
      std::lock_guard<group_lock> lock(locks_[home]);
      outcome = locked(home, pin, inserted_at);
    }
    // A replace can make the table heavier: with weights it evicts too (store_locked then sets
    // inserted_at to the replaced slot, which is spared as a new entry is).
    if (outcome == compute_outcome::inserted ||
        (outcome == compute_outcome::updated && weights_ != nullptr)) {
      if (gov_ != nullptr) {
        gov_->after_insert(h);
      } else {
        evict_to_capacity(pin, inserted_at);
      }
    }
    return outcome;
  }

  // The store at the heart of every insert-or-overwrite; the caller holds the home lock and has
  // located the key (`found`). Sets *inserted_at when it claims a new slot. With `seen` (packed
  // slots), an overwrite happens only if the slot still holds the contents read under that
  // sequence; if an in-place update got there first, this write is ordered before it and
  // superseded by it: both overlapped, and the key ends with the later value, as it must.
  template <class KeyArg, class OnInsert>
  compute_outcome store_locked(std::optional<std::size_t> found, std::uint64_t h, std::size_t home,
                               KeyArg&& key, V&& value, pin_type& pin, std::size_t& inserted_at,
                               OnInsert& on_insert, std::int64_t deadline,
                               const std::uint64_t* seen = nullptr) {
    if (found) {
      replace_value(*found, h, std::forward<KeyArg>(key), std::move(value), pin, seen, deadline);
      if (weights_ != nullptr) inserted_at = *found;
      note_hit(h, headers_[*found / group_width], static_cast<unsigned>(*found % group_width));
      counters_.add(counter::updates);
      return compute_outcome::updated;
    }
    inserted_at = claim_slot(home, pin);
    if constexpr (std::is_same_v<std::remove_cvref_t<OnInsert>, no_hook>) {
      publish(inserted_at, h, K(std::forward<KeyArg>(key)), std::move(value), deadline);
    } else if constexpr (packed) {
      const K stored(std::forward<KeyArg>(key));  // trivially copyable: a register copy
      publish(inserted_at, h, K(stored), std::move(value), deadline);
      if (!inserted(on_insert, stored)) return undo_insert(inserted_at, h, pin);
    } else {
      publish(inserted_at, h, K(std::forward<KeyArg>(key)), std::move(value), deadline);
      // The node's key is stable while the home lock is held.
      if (!inserted(on_insert,
                    std::as_const(slots_[inserted_at].load(std::memory_order_relaxed)->key))) {
        return undo_insert(inserted_at, h, pin);
      }
    }
    size_.fetch_add(1, std::memory_order_relaxed);
    counters_.add(counter::inserts);
    return compute_outcome::inserted;
  }

  // Starts the cache misses of a write before its lock is taken: the lock word, the home group's
  // tags and the slot of the first tag match. The lock's atomic RMW is a full barrier on x86, so
  // loads issued after it cannot overlap with its miss; issued before, the three lines arrive
  // together instead of one after another (measured on 1M-key tables, docs/benchmarks.md).
  // Only a hint: nothing read here is trusted, the locked section reads everything again.
  // Runs an insert's on_insert hook: whether the insert stands (see compute).
  template <class OnInsert>
  static bool inserted(OnInsert& on_insert, const K& key) {
    if constexpr (std::is_same_v<std::invoke_result_t<OnInsert&, const K&>, bool>) {
      return on_insert(key);
    } else {
      on_insert(key);
      return true;
    }
  }

  // Takes back an entry just published in slot s (still under its home lock) whose on_insert
  // refused it: nothing else can have written it meanwhile, readers may have seen it.
  compute_outcome undo_insert(std::size_t& s, std::uint64_t h, pin_type& pin) {
    size_.fetch_add(1, std::memory_order_relaxed);  // remove_slot takes it off again
    remove_slot(s, h, pin);
    s = no_slot;
    return compute_outcome::kept;
  }

  void warm_for_write(std::uint64_t h, std::size_t home) const noexcept {
    prefetch<true>(&locks_[home]);
    const group_header& hdr = headers_[home];
    const unsigned m = match_tags(simd_, hdr.tags[0].load(std::memory_order_relaxed),
                                  hdr.tags[1].load(std::memory_order_relaxed), tag_pattern_of(h));
    if (m != 0) prefetch<true>(&slots_[home * group_width + std::countr_zero(m)]);
  }

  // Finds the slot of `key`; the caller holds the key's home lock.
  template <class Q>
  GOLDYLOX_ALWAYS_INLINE std::optional<std::size_t> locate_locked(std::uint64_t h,
                                                                  const Q& key) const {
    const std::size_t s = simd_ ? find_slot<true>(h, key) : find_slot<false>(h, key);
    if (s == no_slot) return std::nullopt;
    return s;
  }

  // Under the key's home lock, no other slot can come to hold this key and its slot cannot lose
  // it (inserting or removing the key needs that lock); an in-place put rewrites the key's word
  // only with the same bytes. Slots of other keys may be mid-write. So a key that fits in one word
  // is compared with one plain atomic load: a load never tears, and the only way to see this key
  // is in its own slot. Larger keys are
  // read through the seqlock, so a torn copy cannot fake a match.
  template <bool Simd, class Q>
  std::size_t find_slot(std::uint64_t h, const Q& key) const {
    const std::uint64_t pattern = tag_pattern_of(h);
    std::size_t g = home_group(h);
    for (unsigned p = 0; p < window_; ++p, g = next_group(g)) {
      const group_header& hdr = headers_[g];
      unsigned m = match_tags<Simd>(hdr.tags[0].load(std::memory_order_acquire),
                                    hdr.tags[1].load(std::memory_order_acquire), pattern);
      while (m != 0) {
        const std::size_t s = g * group_width + static_cast<unsigned>(std::countr_zero(m));
        m &= m - 1;
        if constexpr (packed && sizeof(K) <= sizeof(std::uint64_t)) {
          const std::uint64_t w = slots_[s].data[0].load(std::memory_order_acquire);
          alignas(K) unsigned char raw[sizeof(K)];
          std::memcpy(raw, &w, sizeof(K));  // the key is the pair's first member
          if (eq_(*std::launder(reinterpret_cast<const K*>(raw)), key)) return s;
        } else if constexpr (packed) {
          const auto kv = read_packed(slots_[s]);
          if (kv && eq_(kv->key, key)) return s;
        } else {
          const node* n = slots_[s].load(std::memory_order_acquire);
          if (n != nullptr && n->hash == h && eq_(n->key, key)) return s;
        }
      }
      if (!overflowed(hdr, h)) break;
    }
    return no_slot;
  }

  // Overwrites the value of a present key without the home lock (packed slots): find the key
  // as a reader does, then open the slot's seqlock with a CAS from the exact sequence the key was
  // read under. The CAS succeeds only if nothing was written since, so the slot still holds this
  // key and nothing else is writing it. A put that updates then writes one shared cache line, the
  // slot's; through the lock it also wrote the lock's line, and each line that the other core
  // last wrote costs a cross-core transfer (docs/benchmarks.md). Returns false if the key is
  // absent: inserting needs the lock. Every other writer of a packed slot opens it with a CAS too
  // (open_write<true>, or open_write_if from what it read), so none can be overwritten unseen.
  // With expiry (expire-after-write or a put's ttl; never with expire-after-access, whose readers
  // move deadlines), only an entry alive for at least a coarse unit more, whose timer is due no
  // later than `deadline` already (the new deadline is no earlier than the current one), is
  // updated here; anything else (an expired entry, a shorter deadline) returns false and takes
  // the lock. The deadline is written inside the slot's window with the value.
  template <class Q>
  bool update_in_place(std::uint64_t h, const Q& key, const V& value, std::int64_t deadline)
    requires packed
  {
    const std::uint64_t pattern = tag_pattern_of(h);
    std::size_t g = home_group(h);
    for (unsigned p = 0; p < window_; ++p, g = next_group(g)) {
      group_header& hdr = headers_[g];
      unsigned m =
          simd_ ? match_group<true>(hdr.tags, pattern) : match_group<false>(hdr.tags, pattern);
      while (m != 0) {
        const unsigned i = static_cast<unsigned>(std::countr_zero(m));
        m &= m - 1;
        const std::size_t s = g * group_width + i;
        packed_slot& sl = slots_[s];
        for (;;) {
          std::uint64_t seen = 0;
          std::int64_t current = no_deadline;
          const std::optional<packed_pair<K, V>> kv =
              deadlines_ == nullptr ? read_packed(sl, &seen)
                                    : read_packed(sl, &seen, &deadlines_[s], &current);
          if (!kv || !eq_(kv->key, key)) break;
          if (deadlines_ != nullptr &&
              (current == no_deadline || deadline < current || !dated_fresh(seen))) {
            return false;
          }
          if (open_write_if(sl, seen)) {
            const packed_pair<K, V> fresh{kv->key, value};
            if (deadlines_ == nullptr) {
              close_write(sl, seen, &fresh);
            } else {
              deadlines_[s].store(deadline, std::memory_order_release);
              close_write(sl, seen, &fresh, true, dated_bits(deadline));
            }
            note_hit(h, hdr, i);
            counters_.add(counter::updates);
            return true;
          }
          // Another writer got in between: read the slot again.
        }
      }
      if (!overflowed(hdr, h)) break;
    }
    return false;
  }

  // ---- mutation (caller holds the home lock of the key involved) ----

  void publish(std::size_t s, std::uint64_t h, K&& key, V&& value, std::int64_t deadline) {
    std::size_t w = 0;
    if (weights_ != nullptr || gov_ != nullptr) {
      try {
        if (weights_ != nullptr) w = weigh(key, value);
        if (gov_ != nullptr) gov_->on_publish(s, h, w);
      } catch (...) {
        flip_tag(s, tag_reserved, tag_empty);
        throw;
      }
    }
    if constexpr (packed) {
      const packed_pair<K, V> kv{std::move(key), std::move(value)};
      // A reserved slot: no other writer can reach it. The deadline is written inside the
      // seqlock's window, so a reader's copy and the deadline it checks belong together.
      packed_slot& sl = slots_[s];
      const std::uint64_t opened = open_write<false>(sl);
      if (deadlines_ == nullptr) {
        close_write(sl, opened, &kv);
      } else {
        const std::int64_t dated = stamp_write(s, deadline);
        deadlines_[s].store(deadline, std::memory_order_release);
        close_write(sl, opened, &kv, true, dated_bits(dated));
      }
    } else {
      // Before the node: a reader that loads the node sees this deadline or a later one.
      if (deadlines_ != nullptr) {
        stamp_write(s, deadline);
        deadlines_[s].store(deadline, std::memory_order_release);
      }
      try {
        slots_[s].store(new node(h, std::move(key), std::move(value)), std::memory_order_release);
      } catch (...) {
        if (gov_ != nullptr) gov_->on_remove(s, h);
        flip_tag(s, tag_reserved, tag_empty);
        throw;
      }
    }
    if (weights_ != nullptr) {
      weights_[s] = w;
      weight_.fetch_add(w, std::memory_order_relaxed);
    }
    const auto bit = static_cast<std::uint16_t>(1U << (s % group_width));
    headers_[s / group_width].ref.fetch_and(static_cast<std::uint16_t>(~bit),
                                            std::memory_order_relaxed);
    count_passage(h, s, true);  // the tag's release publishes the counts with the entry
    flip_tag(s, tag_reserved, tag_of(h));
    // Last: a timer of the slot's previous entry may fall due meanwhile, and expire_slot drops a
    // timer whose slot it finds empty; filed after the entry is visible, the timer is either
    // that old one, which expire_slot will then find this entry behind, or a new one.
    if (deadlines_ != nullptr) {
      try {
        file_timer(s, deadline);
      } catch (...) {
        // Out of memory for the wheel's slab: the entry stays without a timer, still never
        // returned once expired and removed by the first read or write that finds it.
      }
    }
  }

  // The weight of an entry about to be written; throws if no budget can hold it.
  std::size_t weigh(const K& key, const V& value) const {
    const std::size_t w = weigher_(key, value);
    if (w > max_weight_) {
      throw too_heavy("hot tier: an entry weighing " + std::to_string(w) +
                      " exceeds the tier's weight budget of " + std::to_string(max_weight_));
    }
    return w;
  }

  // With weights: weighs the value about to replace slot s's and records its weight, before the
  // value changes (a throw leaves the key as it was).
  void reweigh(std::size_t s, std::uint64_t h, const K& key, const V& value) {
    const std::size_t w = weigh(key, value);
    if (gov_ != nullptr) gov_->on_reweigh(s, h, w);  // may throw (per-shard budget)
    const std::size_t old = std::exchange(weights_[s], w);
    if (w >= old) {
      weight_.fetch_add(w - old, std::memory_order_relaxed);
    } else {
      weight_.fetch_sub(old - w, std::memory_order_relaxed);
    }
  }

  template <class KeyArg>
  void replace_value(std::size_t s, std::uint64_t h, KeyArg&& key, V&& value, pin_type& pin,
                     const std::uint64_t* seen, std::int64_t deadline) {
    if (on_removal_) report_removal(s, removal_cause::replaced);  // seen is null (locked puts)
    if (deadlines_ != nullptr) refile_timer(s, deadline);
    if (weights_ != nullptr) {
      // No in-place update runs while weights are on (assign takes the lock), so the slot holds
      // what `seen` says and the write below happens: the weight can change first.
      if constexpr (packed) {
        reweigh(s, h, key, value);
      } else {
        reweigh(s, h, slots_[s].load(std::memory_order_relaxed)->key, value);
      }
    }
    if constexpr (packed) {
      (void)pin;
      packed_slot& sl = slots_[s];
      std::uint64_t opened = 0;
      if (seen == nullptr) {
        opened = open_write<true>(sl);
      } else if (open_write_if(sl, *seen)) {
        opened = *seen;
      } else {
        return;  // superseded (see store_locked)
      }
      const packed_pair<K, V> kv{K(std::forward<KeyArg>(key)), std::move(value)};
      if (deadlines_ == nullptr) {
        close_write(sl, opened, &kv);
      } else {
        const std::int64_t dated = stamp_write(s, deadline);
        deadlines_[s].store(deadline, std::memory_order_release);
        close_write(sl, opened, &kv, true, dated_bits(dated));
      }
    } else {
      if constexpr (inline_value) {
        // Without expiry the value changes in place. With it, a new node is published as for
        // other values: the deadline must change with the value, which the cell cannot.
        if (deadlines_ == nullptr) {
          (void)h, (void)key, (void)pin, (void)seen;  // the key stays: no copy of it is made
          const V v = std::move(value);
          // Only holders of the key's home lock write a node's cell.
          write_packed<false>(slots_[s].load(std::memory_order_relaxed)->cell, &v);
          return;
        }
      }
      (void)seen;
      node* fresh = new node(h, K(std::forward<KeyArg>(key)), std::move(value));
      // Readers check the deadline they load between two loads of the node pointer (visit_node).
      // The earlier of the two deadlines stands while the node changes, so a reader that pairs
      // either node with it errs on the side of expiry; the new one is written after.
      if (deadlines_ != nullptr) {
        stamp_write(s, deadline);
        const std::int64_t before = deadlines_[s].load(std::memory_order_relaxed);
        deadlines_[s].store(std::min(before, deadline), std::memory_order_release);
      }
      node* old = slots_[s].exchange(fresh, std::memory_order_seq_cst);
      if (deadlines_ != nullptr) deadlines_[s].store(deadline, std::memory_order_release);
      pin->retire(old);
    }
  }

  // Empties slot s. With `seen` (packed slots), only if it still holds the contents read under
  // that sequence; returns false if an in-place update changed it meanwhile.
  bool remove_slot(std::size_t s, std::uint64_t h, pin_type& pin,
                   const std::uint64_t* seen = nullptr) {
    const std::uint8_t tag = tag_of_slot(s);
    if constexpr (packed) {
      (void)pin;
      packed_slot& sl = slots_[s];
      if (seen == nullptr) {
        write_packed<true>(sl, nullptr);
      } else if (open_write_if(sl, *seen)) {
        close_write(sl, *seen, nullptr);
      } else {
        return false;
      }
    } else {
      (void)seen;
      node* old = slots_[s].exchange(nullptr, std::memory_order_seq_cst);
      pin->retire(old);
    }
    if (gov_ != nullptr) gov_->on_remove(s, h);  // before the slot can be claimed again
    if (weights_ != nullptr)
      weight_.fetch_sub(std::exchange(weights_[s], 0), std::memory_order_relaxed);
    flip_tag(s, tag, tag_empty);
    count_passage(h, s, false);
    size_.fetch_sub(1, std::memory_order_relaxed);
    return true;
  }

  // ---- expiry (set_expiry; every helper below runs only with it) ----

  // Finds the slot of `key` under its home lock, as locate_locked, but an entry found expired is
  // removed there (an expiration) and reported absent: a write never sees an expired value.
  template <class Q>
  GOLDYLOX_ALWAYS_INLINE std::optional<std::size_t> locate_live(std::uint64_t h, const Q& key,
                                                                pin_type& pin) {
    std::optional<std::size_t> found = locate_locked(h, key);
    if (GOLDYLOX_UNLIKELY(deadlines_ != nullptr) && found && remove_if_expired(*found, h, pin)) {
      found.reset();
    }
    return found;
  }

  // Under the home lock of the key in slot s (hash h): removes the entry if its deadline has
  // passed. In-place puts may rewrite a packed slot without that lock (not with
  // expire-after-access), so its deadline is read with its sequence and the removal happens
  // only if the slot still holds what was read; an in-place put that got in first left a live
  // entry (it updates only entries alive for a coarse unit more).
  bool remove_if_expired(std::size_t s, std::uint64_t h, pin_type& pin) {
    std::int64_t d = no_deadline;
    std::uint64_t seq = 0;
    if constexpr (packed) {
      if (!read_packed(slots_[s], &seq, &deadlines_[s], &d)) return false;
    } else {
      d = deadlines_[s].load(std::memory_order_acquire);
    }
    if (d > clock_->now()) return false;
    // With an observer, puts take the lock: the removal below cannot fail after the report.
    if (on_removal_) report_removal(s, removal_cause::expired);
    if (!remove_slot(s, h, pin, packed && !locked_puts_ ? &seq : nullptr)) return false;
    counters_.add(counter::expirations);
    return true;
  }

  // Removes the entry in slot s if its deadline is at or before `now`; otherwise, if it has a
  // deadline, makes sure a timer will look at it again by then. Takes the entry's home lock
  // (none may be held). The entry is found again under that lock: it may have changed, left or
  // been replaced since its timer fell due.
  bool expire_slot(std::size_t s, std::int64_t now) {
    pin_type pin;
    if constexpr (!packed) pin.emplace(domain_);
    for (;;) {
      std::uint64_t h = 0;
      if constexpr (packed) {
        const std::optional<packed_pair<K, V>> kv = read_packed(slots_[s]);
        if (!kv) return false;
        h = hash_of(kv->key);
      } else {
        const node* n = slots_[s].load(std::memory_order_seq_cst);
        if (n == nullptr) return false;
        h = n->hash;
      }
      const std::lock_guard<group_lock> lock(locks_[home_group(h)]);
      if (!slot_has_hash(s, h)) continue;  // another entry moved in: look at that one
      const std::int64_t d = deadlines_[s].load(std::memory_order_acquire);
      if (d <= now) {
        if (remove_if_expired(s, h, pin)) return true;
        continue;  // an in-place put renewed it meanwhile: look again
      }
      if (d != no_deadline) file_timer(s, d);
      return false;
    }
  }

  expiry_stripe& stripe_of(std::size_t s) const noexcept {
    return stripes_[(s / group_width) & (stripe_count_ - 1)];
  }

  // Makes slot s's timer fall due no later than `deadline` (the invariant: an occupied slot with
  // a deadline has a timer at or before it, except between a timer falling due and expire_slot
  // looking at the slot). One timer per slot, whoever occupies it: a timer left by an entry that
  // has gone is simply looked at and dropped, so removals never touch the wheels.
  void file_timer(std::size_t s, std::int64_t deadline) {
    if (deadline == no_deadline) return;
    expiry_stripe& st = stripe_of(s);
    const std::lock_guard lock(st.mu);
    timer_wheel::handle& t = timers_[s];
    if (t == timer_wheel::none) {
      t = st.wheel.schedule(s, deadline);
    } else if (deadline < st.wheel.deadline_of(t)) {
      st.wheel.reschedule(t, deadline);
    }
  }

  // file_timer() for a value replacing slot s's (under its home lock, before the deadline
  // changes): a deadline no earlier than the current one needs no wheel work, since the slot's
  // timer is due no later than the current one. That is the usual case (expire-after-write),
  // so an update rarely takes a stripe's lock.
  void refile_timer(std::size_t s, std::int64_t deadline) {
    const std::int64_t current = deadlines_[s].load(std::memory_order_relaxed);
    if (current != no_deadline && deadline >= current) return;
    file_timer(s, deadline);
  }

  // A reader's verdict on a matching entry whose deadline it read with the entry: false if it
  // has expired (the thread remembers the slot for reclaim_expired_read); with
  // expire-after-access, a live entry's deadline moves to now + access_ttl. The move is a CAS
  // from the deadline read, so it cannot land on another entry that took the slot meanwhile (whose
  // deadline differs); it is skipped while the deadline has moved less than 1/64 of the ttl, so
  // a key read constantly does not write its line on every read. The timer need not move: the
  // deadline only grows, and expire_slot re-files a timer that falls due early.
  //
  // A packed slot's sequence word carries a coarse copy of the deadline (dated_bits): after
  // moving the deadline, the reader moves that copy too, with a CAS from the sequence it read
  // the entry under (`seq`), which fails if anything was written since; the copy then stays as
  // the writer left it, a lower bound still.
  bool alive(std::size_t s, std::int64_t deadline, const std::uint64_t* seq) const {
    const std::int64_t now = clock_->now();
    if (GOLDYLOX_UNLIKELY(deadline <= now)) {
      last_expired_read = {id_, s};
      return false;
    }
    if (access_ttl_ != 0) {
      std::int64_t moved = deadline_after(now, std::chrono::nanoseconds(access_ttl_));
      if (write_cap_.count() != 0) moved = std::min(moved, deadline_after(written(s), write_cap_));
      if (moved - deadline > (access_ttl_ >> 6)) {
        std::int64_t expected = deadline;
        if (deadlines_[s].compare_exchange_strong(expected, moved, std::memory_order_release,
                                                  std::memory_order_relaxed)) {
          if constexpr (packed) {
            std::uint64_t seen = *seq;
            const std::uint64_t low = (std::uint64_t{1} << dated_shift) - 1;
            const std::int64_t dated =
                on_refresh_ == nullptr ? moved : std::min(moved, refresh_due(written(s)));
            slots_[s].seq.compare_exchange_strong(seen, (seen & low) | dated_bits(dated),
                                                  std::memory_order_release,
                                                  std::memory_order_relaxed);
          }
        }
      }
    }
    return true;
  }

  void keep_write_times() {
    if (written_at_ != nullptr) return;
    const std::size_t n = groups_ * group_width;
    written_at_ = std::make_unique<std::atomic<std::int64_t>[]>(n);
    // -2: a slot's first write at time 0 (an injected ticker's start) gets time 0 itself.
    for (std::size_t s = 0; s < n; ++s) written_at_[s].store(-2, std::memory_order_relaxed);
  }

  // Slot s's write time, without a reader's claim.
  std::int64_t written(std::size_t s) const noexcept {
    return written_at_[s].load(std::memory_order_acquire) & ~std::int64_t{1};
  }
  std::int64_t refresh_due(std::int64_t written) const noexcept {
    return deadline_after(written, refresh_age_);
  }

  // With write times, under the home lock of the key written into slot s: sets the slot's write
  // time for this write, strictly above the one before (so it names this write) and even (the
  // low bit is a reader's claim). Returns the time the slot's coarse date must not pass: the
  // earlier of `deadline` and, with refresh, the time the write falls due for a reload.
  std::int64_t stamp_write(std::size_t s, std::int64_t deadline) {
    if (written_at_ == nullptr) return deadline;
    const std::int64_t before = written_at_[s].load(std::memory_order_relaxed);
    std::int64_t at = std::max<std::int64_t>(0, clock_->now()) & ~std::int64_t{1};
    // Near the end of the clock's range (centuries of uptime) the time stops growing; no write
    // is then due for anything, so no claim can mistake one write for another.
    if (before < no_deadline - 2) at = std::max(at, (before | 1) + 1);
    written_at_[s].store(at, std::memory_order_release);
    return on_refresh_ == nullptr ? deadline : std::min(deadline, refresh_due(at));
  }

  // A reader found `key` alive in slot s: if its refresh is due and unclaimed, claims it and hands
  // it to the refresh observer (releasing the claim if the observer could not queue it).
  void claim_refresh(std::size_t s, const K& key) const noexcept {
    std::int64_t at = written_at_[s].load(std::memory_order_acquire);
    if ((at & 1) != 0 || refresh_due(at) > clock_->now()) return;
    if (!written_at_[s].compare_exchange_strong(at, at | 1, std::memory_order_acq_rel,
                                                std::memory_order_relaxed)) {
      return;  // claimed by another reader, or rewritten
    }
    if (!on_refresh_(key, s, at)) release_refresh(s, at);
  }

  // Reserves a free slot in the key's probe window, evicting inside the window if it is full.
  std::size_t claim_slot(std::size_t home, pin_type& pin) {
    for (unsigned round = 0;; ++round) {
      std::size_t g = home;
      for (unsigned p = 0; p < window_; ++p, g = next_group(g)) {
        group_header& hdr = headers_[g];
        for (;;) {
          unsigned m =
              match_tags(simd_, hdr.tags[0].load(std::memory_order_relaxed),
                         hdr.tags[1].load(std::memory_order_relaxed), tag_pattern(tag_empty));
          if (m == 0) break;
          const std::size_t s = g * group_width + static_cast<unsigned>(std::countr_zero(m));
          if (try_reserve(s)) return s;
        }
      }
      // The whole window is full: make room inside it.
      g = home;
      for (unsigned p = 0; p < window_; ++p, g = next_group(g)) {
        if (evict_from_group(g, &home, pin)) break;
      }
      if (round > 2) std::this_thread::yield();
    }
  }

  // Removes the entry in slot s if it is still the one observed there. `held` is the home group
  // whose lock the caller already holds (nullptr if none): other locks are then only tried, never
  // waited for, so two writers can never wait on each other.
  // With expect_hash, only an entry of that hash is removed.
  bool remove_observed(std::size_t s, const std::size_t* held, bool second_chance, pin_type& pin,
                       bool to_sink, const std::uint64_t* expect_hash = nullptr) {
    std::uint64_t h = 0;
    std::optional<packed_pair<K, V>> snapshot;
    std::uint64_t observed_seq = 0;
    const node* observed = nullptr;
    if constexpr (packed) {
      snapshot = read_packed(slots_[s], &observed_seq);
      if (!snapshot) return false;
      h = hash_of(snapshot->key);
    } else {
      observed = slots_[s].load(std::memory_order_seq_cst);
      if (observed == nullptr) return false;
      h = observed->hash;
    }
    if (expect_hash != nullptr && h != *expect_hash) return false;
    const std::size_t home = home_group(h);
    std::unique_lock<group_lock> lock(locks_[home], std::defer_lock);
    if (held == nullptr) {
      lock.lock();
    } else if (*held != home && !lock.try_lock()) {
      return false;
    }
    // Still the same entry? (It may have been updated, removed or replaced meanwhile.)
    if constexpr (packed) {
      if (slots_[s].seq.load(std::memory_order_acquire) != observed_seq) return false;
    } else {
      if (slots_[s].load(std::memory_order_acquire) != observed) return false;
    }
    if (second_chance && is_referenced(s)) return false;
    if constexpr (packed) {
      // Removed only if no in-place update slipped in since the check above, so the sink never
      // receives a value older than one a put has already acknowledged.
      const bool referenced = is_referenced(s);
      if (!remove_slot(s, h, pin, &observed_seq)) return false;
      if (to_sink && sink_) sink_(snapshot->key, snapshot->value, referenced);
      if (!to_sink && on_removal_)
        on_removal_(snapshot->key, snapshot->value, removal_cause::erased);
    } else {
      if (to_sink && sink_) sink_(observed->key, node_value(*observed), is_referenced(s));
      if (!to_sink && on_removal_) {
        on_removal_(observed->key, node_value(*observed), removal_cause::erased);  // clear()
      }
      remove_slot(s, h, pin);
    }
    if (to_sink) counters_.add(counter::evictions);
    return true;
  }

  // Hands slot s's entry to the removal observer: under the home lock of its key, which every
  // writer of the slot holds then (puts are locked with an observer), so the read is stable.
  GOLDYLOX_NOINLINE void report_removal(std::size_t s, removal_cause cause) const {
    if constexpr (packed) {
      const std::optional<packed_pair<K, V>> kv = read_packed(slots_[s]);
      if (kv) on_removal_(kv->key, kv->value, cause);
    } else {
      const node* n = slots_[s].load(std::memory_order_relaxed);
      if (n != nullptr) on_removal_(n->key, node_value(*n), cause);
    }
  }

  // Whether slot s holds an entry of hash h now (read optimistically; node mode: call pinned).
  bool slot_has_hash(std::size_t s, std::uint64_t h) const {
    if constexpr (packed) {
      const std::optional<packed_pair<K, V>> kv = read_packed(slots_[s]);
      return kv && hash_of(kv->key) == h;
    } else {
      const node* n = slots_[s].load(std::memory_order_seq_cst);
      return n != nullptr && n->hash == h;
    }
  }

  bool is_referenced(std::size_t s) const noexcept {
    return ((headers_[s / group_width].ref.load(std::memory_order_relaxed) >> (s % group_width)) &
            1U) != 0;
  }

  // One CLOCK step over group g. Each group keeps its own hand position (`clock`), so a visit
  // resumes after the previous victim: every slot is examined in turn, whatever its index
  // (scanning from slot 0 each time would churn the low slots and let entries in high slots live
  // forever). Referenced slots passed on the way lose their bit (second chance); the first
  // unreferenced one is evicted and the hand stops after it.
  bool evict_from_group(std::size_t g, const std::size_t* held, pin_type& pin,
                        std::size_t spared = no_slot) {
    group_header& hdr = headers_[g];
    const std::uint64_t t0 = hdr.tags[0].load(std::memory_order_acquire);
    const std::uint64_t t1 = hdr.tags[1].load(std::memory_order_acquire);
    const unsigned referenced = hdr.ref.load(std::memory_order_relaxed);
    const unsigned start = hdr.clock.load(std::memory_order_relaxed) % group_width;
    unsigned passed = 0;  // referenced slots the hand moved past
    bool evicted = false;
    for (unsigned k = 0; k < group_width && !evicted; ++k) {
      const unsigned i = (start + k) % group_width;
      const std::size_t s = g * group_width + i;
      if (tag_at(i < 8 ? t0 : t1, i & 7) < 2 || s == spared) continue;
      if ((referenced >> i) & 1U) {
        passed |= 1U << i;
        continue;
      }
      if (remove_observed(s, held, /*second_chance=*/true, pin, /*to_sink=*/true)) {
        hdr.clock.store(static_cast<std::uint8_t>((i + 1) % group_width),
                        std::memory_order_relaxed);
        evicted = true;
      }
    }
    if (passed != 0) {
      hdr.ref.fetch_and(static_cast<std::uint16_t>(~passed), std::memory_order_relaxed);
      if (observer_) report_passed(g, passed);
    }
    return evicted;
  }

  // The keys of the referenced slots an eviction passed, to the reference observer.
  void report_passed(std::size_t g, unsigned passed) const {
    for (; passed != 0; passed &= passed - 1) {
      const std::size_t s = g * group_width + static_cast<unsigned>(std::countr_zero(passed));
      if constexpr (packed) {
        if (const std::optional<packed_pair<K, V>> kv = read_packed(slots_[s])) observer_(kv->key);
      } else if (const node* n = slots_[s].load(std::memory_order_acquire)) {
        observer_(n->key);  // the caller's epoch pin keeps the node alive
      }
    }
  }

  bool over_bounds() const noexcept {
    return size_.load(std::memory_order_relaxed) > static_cast<std::int64_t>(capacity_) ||
           (weights_ != nullptr && weight_.load(std::memory_order_relaxed) > max_weight_);
  }

  void evict_to_capacity(pin_type& pin, std::size_t spared) {
    // Each full turn of the hand clears every reference bit, so two turns without an eviction
    // mean other writers keep refilling (or the spared entry is all that is left); the bound only
    // stops a pathological livelock. An eviction earns its step back: one heavy entry may need
    // many light ones to leave, more than two turns of the hand evict.
    std::size_t budget = 2 * groups_ + 2;
    std::size_t refunds = 2 * groups_ * group_width;
    while (over_bounds() && budget-- > 0) {
      const std::size_t g = hand_.fetch_add(1, std::memory_order_relaxed) % groups_;
      if (evict_from_group(g, nullptr, pin, spared) && refunds != 0) {
        --refunds;
        ++budget;
      }
    }
  }

  const std::size_t capacity_;
  const std::size_t groups_;
  const unsigned window_;
  const bool simd_;
  std::unique_ptr<group_header[]> headers_;
  std::unique_ptr<slot[]> slots_;
  std::unique_ptr<group_lock[]> locks_;
  striped_counters& counters_;
  epoch_domain& domain_;
  [[no_unique_address]] Hash hash_;
  [[no_unique_address]] KeyEqual eq_;
  eviction_sink sink_;
  removal_observer on_removal_;
  reference_observer observer_;
  table_governor* gov_ = nullptr;
  // Weights (set_weight_bound): per slot, guarded by the home lock of the key in the slot.
  std::unique_ptr<std::size_t[]> weights_;
  weigher_type weigher_;
  std::size_t max_weight_ = 0;
  // Puts of present packed keys take the home lock (weights or expiry): no update_in_place.
  bool locked_puts_ = false;
  // Expiry (set_expiry): per slot, the deadline (written under the home lock of the key in the
  // slot, inside a packed slot's seqlock window, and moved later by expire-after-access readers
  // with a CAS) and the slot's timer handle (guarded by its stripe's mutex).
  std::unique_ptr<std::atomic<std::int64_t>[]> deadlines_;
  std::unique_ptr<timer_wheel::handle[]> timers_;
  std::unique_ptr<expiry_stripe[]> stripes_;
  std::size_t stripe_count_ = 0;
  const expiry_clock* clock_ = nullptr;
  const std::uint64_t id_ = next_id.fetch_add(1, std::memory_order_relaxed);
  const std::atomic<std::uint64_t>* coarse_word_ = nullptr;  // clock_->coarse_word()
  // Write times (refresh, or both expiry durations): per slot, when its value was written, low
  // bit set once a reader claimed its refresh (written under the home lock of the key in the
  // slot; claimed and released with CASes).
  std::unique_ptr<std::atomic<std::int64_t>[]> written_at_;
  std::chrono::nanoseconds refresh_age_{0};
  refresh_observer on_refresh_;
  std::chrono::nanoseconds write_cap_{0};  // both expiry durations: expire-after-write's
  std::int64_t access_ttl_ = 0;
  std::uint64_t access_slack_ = 0;  // how far (as a coarse word) a deadline may be ahead of
                                    // now and still be due for an access extension
  alignas(cache_line) std::atomic<std::int64_t> size_{0};
  alignas(cache_line) std::atomic<std::size_t> weight_{0};
  alignas(cache_line) std::atomic<std::size_t> hand_{0};
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
