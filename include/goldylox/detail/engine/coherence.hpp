// Cross-tier coherence: the rules that keep every tier from serving an older value of a key once
// a write of it has returned, stated once, here, beside the code that enforces the cold half of
// them (the memory half is enforced by the hot table's home lock and on_insert hook, wired in
// engine.hpp; demotion.hpp and promotion.hpp follow these rules when they move entries).
//
// Memory tiers (hot, warm) are exclusive: outside a transition, a key is in at most one of them.
// Every transition of a key between tiers, and every write that could leave a stale copy behind,
// runs under the key's hot-tier home lock (group_lock), which every writer of the key takes:
//   M1 demotion hot -> warm: the hot tier's eviction sink runs under the victim's home lock and
//      stores the victim in the warm tier there (a packed slot is removed only if no lock-free
//      in-place put changed it since it was read, so the warm tier never receives a value older
//      than one a put has acknowledged);
//   M2 promotion warm -> hot: a compute() on the hot tier: under the lock it re-reads the warm
//      copy, inserts it into the hot tier unless the key is already there, then drops the warm
//      copy (and takes the insert back if the warm tier evicted that copy meanwhile: an evicted
//      entry never comes back);
//   M3 an insert into the hot tier (a promotion; a put without a warm tier) drops any warm copy
//      through the hot table's on_insert hook (tier_stack::drop_warm_copy), under the lock;
//   M4 erase removes the warm copy under the lock when the key is not in the hot tier;
//   M5 compute (put_if_absent, replace, compare_and_swap) on a key held only by the warm tier
//      decides on the warm copy, read under the lock;
//   M6 a write of a key the hot tier does not hold (put, put_if_absent, get_or_insert, replace)
//      goes to the warm tier, replacing its copy there, under the lock (hot_table::assign_present
//      and compute): new keys enter the warm tier, and only promotion (M2) fills the hot tier.
// The lock-free in-place put (used only without a cold tier) touches only keys present in the hot
// tier, which by exclusivity have no warm copy. So once a write returns no memory tier holds an
// older value of its key, and a read sees a value only if no write that finished before the read
// began has replaced it. A read that races a transition may miss a key that is moving between tiers
// (a cache may always miss). Lock order is always hot home lock, then warm shard lock; the warm
// tier never calls up.
//
// The cold tier is inclusive: a cold hit promoted to memory keeps its cold record, so evicting it
// again later rewrites an identical record at worst. Once a write of a key has returned, no tier
// serves an older value of the key, on disk or after a restart; and while the cold tier has room
// no value leaves the cache except by erase or an eviction the policy chose (and counted):
//   C1 every write of a key (assign, compute that assigns or erases, erase) runs under the key's
//      home lock (with a cold tier, put takes it too: there is no lock-free in-place put) and
//      first retires the key's cold state (cold_coherence::retire): it erases the key's cold
//      record (a tombstone on disk), then marks every demotion of the key in flight superseded,
//      and only then does its memory operation. If the tombstone cannot be written (a full disk,
//      an I/O error), the write leaves memory untouched and returns the error: going on would let
//      the older record come back once the new value leaves memory. An erase marks the key's
//      demotions superseded once more after removing the warm copy, since that copy may have
//      left the warm tier (and registered below) while the erase held only the home lock;
//   C2 evictions reach the engine inside other locks (the warm tier's sink runs under the home
//      lock of the hot victim that displaced them), so they are queued per (engine, thread) and,
//      when that engine's outermost call on the thread returns, written by that thread or (with
//      a background pool) handed to the pool's job, which writes them later (demotion.hpp). As
//      the value leaves memory (under the warm shard lock, or the key's home lock for the hot
//      tier) the queued entry registers in the in-flight registry below; a write of the key
//      (C1), or a later departure of the key (which carries a value at least as new), marks it
//      superseded. So two writers of one key's demotions (two threads, or a thread and the pool)
//      may run in either order: the older value is superseded by the time either decides. The
//      demotion is written under the key's home lock, only if no memory tier has the key (else
//      memory has this value or a newer one, which will be demoted in its turn) and the entry
//      was not superseded; it leaves the registry there after its record landed, on every path
//      (its destructor leaves it too, so an exception cannot leave a dangling entry). A
//      superseded demotion is counted in cold_superseded, not as a failure: a newer value
//      replaced it. While registered, a demotion not superseded holds the key's newest value
//      (the cold record, if any, holds that same value: a write retires the record before its
//      value enters memory, and a promotion brings the record itself), so a read or a write's
//      decision that misses memory takes it from the registry before the cold tier
//      (visit_in_flight): a value waiting for its cold write is neither lost to reads nor shadowed
//      by an older record;
//   C3 a promotion from the cold tier lands under the key's home lock only if no memory tier has
//      the key and the key's cold record still has the version the read saw (promotion.hpp).
//   C4 write-through (cache_config::cold_tier_write_through): a write that stores a value writes
//      it to the cold tier instead of retiring the record (cold_coherence::write_through): the
//      new record supersedes the old one (a higher version; recovery keeps the highest), so no
//      tombstone is needed; in-flight demotions of the key are marked superseded as in C1, and
//      only then does the memory write happen. If the cold write fails, memory is untouched and
//      the error returned (the store leaves the key as it was on any error). A remove retires
//      as in C1. So, while the cold tier is open, a memory tier holds a value of a key only if
//      the key's cold record, when there is one, holds that same value: values enter memory by
//      a written-through write, a promotion of the record itself (C3) or a move between memory
//      tiers; the record changes only by such a write, a remove (which takes memory's copy too),
//      a demotion (written only when memory has no copy) or reclamation (which re-appends the
//      same value or drops the record). Hence a demotion finding a record of its key, with its
//      ticket not superseded, is redundant and skipped (counted in cold_already_stored): the
//      record has its value. A closed cold tier takes no writes; writes then go to memory only.
// ColdCacheStress.NoReadIsOlderThanAReturnedWrite checks that no read is older than a returned
// write (under TSan too), and ColdCacheReopenStress.KeepsEveryAcknowledgedWrite that nothing
// acknowledged is lost or replaced by an older value across clean restarts.
//
// The in-flight registry: shards chosen by the key's mixed hash, each a spin lock, an intrusive
// list of the tickets in flight and their count. The check is exact: a ticket is superseded only
// by a write or departure of a key equal to its own (KeyEqual), never of another key sharing a
// shard (the old design, a table of write generations indexed by hash, dropped a demotion when an
// unrelated key sharing its slot was written, losing that key's only copy). A write reads the
// shard's count without the lock and skips the shard when nothing is in flight there, so a put
// pays one load when no eviction is pending. The shard locks are innermost: taken under the home
// lock or a warm shard lock, they take no other lock.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "goldylox/detail/common/group_lock.hpp"
#include "goldylox/detail/common/hash.hpp"
#include "goldylox/detail/common/platform.hpp"
#include "goldylox/detail/engine/tiers.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

// A demotion in flight: a value of `key` that left memory and is not written to the cold tier
// yet. Registered with cold_coherence from the moment the value leaves memory until its write
// decides (demotion.hpp owns it, inside its queued entry, which also holds the value).
template <class K, class S>
struct inflight_demotion {
  explicit inflight_demotion(K k) : key(std::move(k)) {}
  inflight_demotion(const inflight_demotion&) = delete;
  inflight_demotion& operator=(const inflight_demotion&) = delete;

  K key;
  // The fields below are guarded by the registry shard's lock (`registered` is also read by the
  // owning thread, which alone changes it).
  bool registered = false;
  bool superseded = false;   // a later write or departure of the key made this value old
  const S* value = nullptr;  // the value on its way, once its entry holds it (publish())
  std::uint64_t hash = 0;
  inflight_demotion* prev = nullptr;
  inflight_demotion* next = nullptr;
};

// The cold half of the rules above (C1, and the in-flight registry of C2); a no-op without a cold
// tier. Every member is safe to call concurrently.
template <class K, class S, class Hash, class KeyEqual>
class cold_coherence {
 public:
  using tiers_type = tier_stack<K, S, Hash, KeyEqual>;
  using ticket = inflight_demotion<K, S>;

  explicit cold_coherence(const tiers_type& tiers)
      : tiers_(tiers),
        shards_(tiers.cold != nullptr ? std::make_unique<shard[]>(shard_count) : nullptr) {}

  cold_coherence(const cold_coherence&) = delete;
  cold_coherence& operator=(const cold_coherence&) = delete;

  // Every write of a key calls this under the key's home lock before its memory operation (C1):
  // the key's cold record goes (a tombstone), then every demotion of the key in flight is marked
  // superseded. True if there was a record or a demotion in flight. An error (the tombstone could
  // not be written: a full disk, an I/O error) changes nothing here; the write must then leave
  // memory as it was and report the error, or the older record would come back.
  absl::StatusOr<bool> retire(const K& k) const {
    if constexpr (tiers_type::cold_capable) {
      if (tiers_.cold == nullptr) return false;
      absl::StatusOr<bool> erased;
      try {
        erased = tiers_.cold->erase(k);
      } catch (const std::exception& e) {
        return absl::ResourceExhaustedError(
            absl::StrCat("goldylox: removing the key's cold record failed: ", e.what()));
      }
      if (!erased.ok()) return erased.status();
      const bool in_flight = supersede(k, /*locked=*/false);
      return *erased || in_flight;
    } else {
      return false;
    }
  }

  // Write-through (C4), under the key's home lock before the memory write: stores `v` as the key's
  // cold record, then marks every demotion of the key in flight superseded. An error (the cold
  // tier refused the value: a full disk, an I/O error, an oversized or unserializable value)
  // changes nothing; the write must leave memory as it was and report it. OK without writing
  // once the tier is closed: the cache is memory-only then, and a closed tier serves nothing
  // that could come back.
  absl::Status write_through(const K& k, const S& v) const {
    if constexpr (tiers_type::cold_capable) {
      if (tiers_.cold == nullptr) return absl::OkStatus();
      absl::Status stored;
      try {
        stored = tiers_.cold->put(k, v);
      } catch (const std::exception& e) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "goldylox: writing the value through to the cold tier failed: ", e.what()));
      }
      if (!stored.ok() && !tiers_.cold->closed()) return stored;
      supersede(k, /*locked=*/false);
      return absl::OkStatus();
    } else {
      return absl::OkStatus();
    }
  }

  // Marks every registered demotion of `k` superseded; true if there was one. Without `locked`,
  // a shard with nothing in flight is skipped without its lock: a demotion registering after the
  // count was read is one whose value left memory after this write began, which rule C2 handles
  // (the write's own value is in memory, or left it later and superseded that demotion). With
  // `locked`, the shard is always locked, ordering this call after every registration whose
  // effects (an entry gone from the warm tier) the caller has seen.
  bool supersede(const K& k, bool locked) const noexcept {
    if (shards_ == nullptr) return false;
    const std::uint64_t h = hash_of(k);
    shard& sh = shard_of(h);
    if (!locked && sh.count.load(std::memory_order_seq_cst) == 0) return false;
    std::lock_guard<group_lock> lock(sh.lock);
    return mark_locked(sh, h, k);
  }

  // A value of t.key leaves memory (called where it leaves: under the warm shard's lock, or the
  // hot victim's home lock): from now on every write of the key supersedes it. It supersedes the
  // key's earlier departures still in flight, since it carries a value at least as new as theirs.
  void enter(ticket& t) const noexcept {
    t.hash = hash_of(t.key);
    shard& sh = shard_of(t.hash);
    std::lock_guard<group_lock> lock(sh.lock);
    mark_locked(sh, t.hash, t.key);
    t.superseded = false;
    t.prev = nullptr;
    t.next = sh.head;
    if (sh.head != nullptr) sh.head->prev = &t;
    sh.head = &t;
    t.registered = true;
    sh.count.fetch_add(1, std::memory_order_seq_cst);
  }

  // The entry holding t now holds its value too: from now on reads may be served from it
  // (visit_in_flight). `value` must stay valid until t leaves the registry.
  void publish(ticket& t, const S* value) const noexcept {
    if (!t.registered) return;
    shard& sh = shard_of(t.hash);
    std::lock_guard<group_lock> lock(sh.lock);
    t.value = value;
  }

  // Calls f(const S&) with the value of k's demotion in flight, if one is registered, holds its
  // value and is not superseded (at most one is: a departure supersedes the earlier ones), and
  // returns whether it did. Such a value is the key's newest: every write of the key that has
  // returned superseded the demotions registered before it (C1), and a later departure carries a
  // value at least as new. So a read that missed memory may return it rather than miss while
  // the value waits for its disk write. f runs under the shard's spin lock: it must only copy,
  // never call into the cache.
  template <class F>
  bool visit_in_flight(const K& k, F&& f) const {
    if (shards_ == nullptr) return false;
    const std::uint64_t h = hash_of(k);
    shard& sh = shard_of(h);
    if (sh.count.load(std::memory_order_seq_cst) == 0) return false;
    std::lock_guard<group_lock> lock(sh.lock);
    for (ticket* t = sh.head; t != nullptr; t = t->next) {
      if (t->hash == h && !t->superseded && t->value != nullptr && eq_(t->key, k)) {
        f(*t->value);
        return true;
      }
    }
    return false;
  }

  // Whether t has been superseded so far, without unregistering it.
  bool superseded(const ticket& t) const noexcept {
    if (!t.registered) return t.superseded;
    shard& sh = shard_of(t.hash);
    std::lock_guard<group_lock> lock(sh.lock);
    return t.superseded;
  }

  // Unregisters t (a no-op if it is not registered); returns whether it was superseded.
  bool leave(ticket& t) const noexcept {
    if (!t.registered) return t.superseded;
    shard& sh = shard_of(t.hash);
    std::lock_guard<group_lock> lock(sh.lock);
    if (t.prev != nullptr) {
      t.prev->next = t.next;
    } else {
      sh.head = t.next;
    }
    if (t.next != nullptr) t.next->prev = t.prev;
    t.prev = t.next = nullptr;
    t.registered = false;
    sh.count.fetch_sub(1, std::memory_order_seq_cst);
    return t.superseded;
  }

  // The value below memory for a write's decision (under the key's home lock), or nullopt: the
  // value of the key's demotion in flight if one is not superseded (then it is the key's newest
  // value: visit_in_flight), else the cold record's. Without the first, a conditional write
  // would take a key whose value waits for its cold write as absent.
  std::optional<S> copy(const K& k) const {
    if constexpr (tiers_type::cold_capable) {
      if (tiers_.cold == nullptr) return std::nullopt;
      std::optional<S> queued;
      if (visit_in_flight(k, [&](const S& q) { queued.emplace(q); })) return queued;
      std::optional<S> v = tiers_.cold->get(k);
      if constexpr (std::is_same_v<S, any_value>) {
        if (v && v->template holds<unknown_cold_type>()) return std::nullopt;
      }
      return v;
    } else {
      return std::nullopt;
    }
  }

 private:
  // A shard holds the demotions in flight: a few per thread at a time inline, up to the pool's
  // queue bound (4096, demotion.hpp) with a background pool. Every write, departure and
  // below-memory read of a key whose shard has any walks the shard's list, so 256 shards keep
  // a full queue's lists at about 16 tickets (16 KiB per cache with a cold tier), and writers
  // of different keys rarely take the same lock.
  static constexpr std::size_t shard_count = 256;

  struct alignas(cache_line) shard {
    group_lock lock;
    std::atomic<std::uint32_t> count{0};  // registered tickets; read without the lock
    ticket* head = nullptr;               // guarded by lock
  };

  bool mark_locked(shard& sh, std::uint64_t h, const K& k) const noexcept {
    bool any = false;
    for (ticket* t = sh.head; t != nullptr; t = t->next) {
      if (t->hash == h && eq_(t->key, k)) {
        t->superseded = true;
        any = true;
      }
    }
    return any;
  }

  std::uint64_t hash_of(const K& k) const noexcept { return mix_hash(hash_(k)); }
  shard& shard_of(std::uint64_t h) const noexcept {
    return shards_[static_cast<std::size_t>(h >> 40) & (shard_count - 1)];
  }

  const tiers_type& tiers_;
  [[no_unique_address]] Hash hash_{};
  [[no_unique_address]] KeyEqual eq_{};
  std::unique_ptr<shard[]> shards_;  // with a cold tier only
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
