// Component warm/ (main header: this one; policy/ holds the eviction policies it drives). Owns the
// warm tier's shards, index, slots and read buffers. Invariants: reads take no lock; a shard's
// policy hears every insert, erase and (lossily) hit of that shard; victims reach the sink outside
// the shard lock. May call common/ and, through the eviction_policy contract, any policy; never
// another tier (evictions leave through the sink the engine installs).
//
// The warm tier: a sharded, thread-safe, bounded key-value store whose replacement decisions come
// from an eviction_policy (policies.hpp), bounded by entries and optionally by weight (bytes, as
// a weigher counts them). Evicted entries go to a sink: the cold tier's demotion, or the user's;
// with a removal observer, erased and replaced entries are reported to it (a move to another
// tier, erase<false>, is not).
//
// Layout. 2^n shards by key hash (high bits, so the shard and the index's own position bits do
// not correlate). An entry is an immutable heap node (hash, weight, slot, generation, read count,
// key, value); replacing a value makes a new node. A shard has:
//  * an index: a linear-probing table of one-word cells, each a node pointer with hash bits
//    32..47 above bit 48 (x86-64 and AArch64 user addresses fit in 48 bits; a node that does not
//    is refused), kept at most half full, doubled when it would not be. An entry's home cell is
//    hash bits 32 and up, masked, so in a table of up to 2^16 cells the cell alone gives it: an
//    erase's shifting and a growth's copying never touch a node;
//  * slots (node pointer and generation, allocated 1024 at a time as the shard fills, so an
//    empty tier costs only its policies' metadata), a stack of free slots threaded through
//    them, and its own policy instance over the slots (the eviction_policy contract);
//  * a writers' lock, an erase counter (`version`, a seqlock), and a read buffer.
//
// Reads take no lock and write no shared line but the read buffer's. A reader pins the epoch
// (epoch.hpp), probes the index, and on a tag match compares the full key against the node; a
// node is immutable, so a match is the entry as some instant between the read's start and end
// saw it. Writers insert into empty cells and swap a cell's pointer in place on replace, which
// no reader can mistake; an erase shifts the later cells of its run back (backward-shift
// deletion, no tombstones), which can move an entry past a reader, so an erase makes `version`
// odd while it moves cells, and a miss counts only if `version` was even and unchanged across
// the probe (otherwise the reader probes again). Growth copies the cells into a table twice the
// size and publishes it; a reader still on the old one sees it as it was at the switch.
// Unlinked nodes and old tables are retired to the epoch domain and reclaimed once no reader can
// hold them: a table is freed; a node's memory goes to the reclaiming thread's node_recycler
// (below), a bounded per-thread stack from which that thread's next inserts take their nodes.
// Memory orders: cell and pointer loads and unlinking stores are seq_cst, as epoch.hpp requires,
// and they order the version checks; publishing a new cell is a release store.
//
// A hit is recorded as (slot, generation) in the shard's read buffer, a lossy ring of 64 entries
// (Caffeine's read buffers): the policy hears of it when the buffer is drained, under the lock,
// by a writer or by the reader that wraps the ring and finds the lock free (try_lock: a reader
// never waits for a writer). Records whose generation no longer matches (the slot was freed and
// reused) are dropped, and a full buffer drops new records: hit recording is a hint, as in
// Caffeine, never a correctness matter. A policy that declares coalesces_hits (concepts.hpp:
// LRU, FIFO, CLOCK, SIEVE, ARC, LIRS) hears of at most one hit per entry between two drains: the
// node remembers the shard's drain count when its hit was last recorded (`recorded`), and a read
// that finds it current records nothing, so repeated reads of a hot entry write no shared line.
// visit_entry also counts the node's reads (a relaxed fetch_add on the node): the engine promotes
// an entry back to the hot tier by that count.
//
// Learning off the request path (concepts.hpp's deferred_learning_policy, for policies that
// learn: adaptive, linear-model): after defer_learning(), a shard's policy queues its learning;
// a writer that leaves the backlog at or past the notify mark calls the `due` callback once its
// lock is released (never a reader: waking a pool may take a mutex), and whoever that wakes (the
// engine's maintenance job on the background pool) calls learn(), which takes each shard's lock
// in turn. A policy whose queue fills learns inline, so nothing waits on the callback for
// correctness.
//
// Writes (put, erase) take the shard's lock, drain the read buffer first (so the policy sees
// hits before it picks victims), then update index, slots and policy. Victims are unlinked under
// the lock and handed to the sink after it is released (by const reference: a reader may still
// be reading the node), so a sink may call back into the tier; then they are retired.
//
// Bounds: each shard holds at most ceil(max_entries / shards) entries and, with a weight bound,
// at most max_weight / shards of weight; a put evicts until both hold (a value that grows on
// replace is taken out of the policy meanwhile, so it is never its own victim). A value heavier
// than a shard's whole weight budget is refused with InvalidArgument and changes nothing.
//
// Exceptions (from K's or V's construction, the weigher, an allocation, the sink): a put or erase
// that throws leaves the tier consistent: a new node is built before anything is unlinked, so a
// failed replace keeps the old value and a failed insert leaves nothing half-inserted and no slot
// lost. Entries already evicted to make room stay evicted and still reach the sink, then the
// exception propagates. A sink that throws does not stop the other victims' delivery; its first
// exception is rethrown afterwards.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <shared_mutex>  // std::shared_lock
#include <stdexcept>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/hash/hash.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "goldylox/concepts.hpp"
#include "goldylox/detail/common/epoch.hpp"
#include "goldylox/detail/common/group_lock.hpp"
#include "goldylox/detail/common/hash.hpp"
#include "goldylox/detail/common/platform.hpp"
#include "goldylox/removal.hpp"

#if GOLDYLOX_ASAN
#include <sanitizer/asan_interface.h>
#endif

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

// The warm tier's node memory (blocks of Size bytes aligned to Align), recycled per thread: the
// epoch domain hands a reclaimed node's block to the thread that reclaimed it, which keeps up to
// `capacity` blocks for its next inserts; past that, and after the thread's exit, blocks go back
// to operator delete. A block arrives here only from a reclaim (no reader can still hold it) or
// from a tier's destructor (no reader is inside), so reuse is as safe as free(). Steady-state
// churn, an insert and an eviction per miss, then neither mallocs nor frees: the domain frees in
// batches of scan_interval (64), which overflowed glibc's per-thread cache and sent most
// allocations to its slower bins. Under AddressSanitizer a kept block is poisoned, so a read of
// recycled memory is still reported as a use after free.
template <std::size_t Size, std::size_t Align>
class node_recycler {
 public:
  // Covers a few reclaim batches, so that one thread's churn never overflows it.
  static constexpr unsigned capacity = 256;

  static void* allocate() {
    shelf& k = shelf_;
    if (k.count != 0) {
      void* p = k.blocks[--k.count];
#if GOLDYLOX_ASAN
      ASAN_UNPOISON_MEMORY_REGION(p, Size);
#endif
      return p;
    }
    return fresh();
  }

  static void deallocate(void* p) noexcept {
    shelf& k = shelf_;
    if (k.count < capacity && k.state != closed) {
      if (GOLDYLOX_UNLIKELY(k.state == unused)) watch_exit();
#if GOLDYLOX_ASAN
      ASAN_POISON_MEMORY_REGION(p, Size);
#endif
      k.blocks[k.count++] = p;
      return;
    }
    give_back(p);
  }

  // A block from allocate() that must not be handed out again.
  static void discard(void* p) noexcept { give_back(p); }

  // How many blocks the calling thread keeps.
  static unsigned kept() noexcept { return shelf_.count; }

 private:
  static constexpr bool over_aligned = Align > __STDCPP_DEFAULT_NEW_ALIGNMENT__;
  static void* fresh() {
    if constexpr (over_aligned) {
      return ::operator new(Size, std::align_val_t{Align});
    } else {
      return ::operator new(Size);
    }
  }
  static void give_back(void* p) noexcept {
    if constexpr (over_aligned) {
      ::operator delete(p, Size, std::align_val_t{Align});
    } else {
      ::operator delete(p, Size);
    }
  }

  enum : unsigned char { unused, open, closed };
  // Trivial, so that reaching it needs no TLS initialisation guard; the exit hook is registered
  // by the first block kept.
  struct shelf {
    void* blocks[capacity];
    unsigned count;
    unsigned char state;
  };
  static inline thread_local constinit shelf shelf_{};

  struct exit_hook {
    ~exit_hook() {
      shelf& k = shelf_;
      k.state = closed;  // blocks reclaimed later in this thread's exit are freed at once
      while (k.count != 0) {
        void* p = k.blocks[--k.count];
#if GOLDYLOX_ASAN
        ASAN_UNPOISON_MEMORY_REGION(p, Size);
#endif
        give_back(p);
      }
    }
  };
  GOLDYLOX_NOINLINE static void watch_exit() noexcept {
    static thread_local exit_hook hook;
    (void)hook;
    shelf_.state = open;
  }
};

struct warm_tier_options {
  std::size_t max_entries = 0;  // required, >= 1
  std::size_t max_weight = 0;   // 0: no weight bound
  std::size_t shards = 0;       // 0: chosen from the hardware and the capacity; else a power of 2
};

// The shard count a policy-driven store of max_entries entries (and max_weight, 0 for none) gets
// when none is asked for: enough shards that two threads rarely meet, few enough that each keeps
// a useful population for its policy (at least 64 entries). A power of two.
inline std::size_t warm_shard_count(std::size_t max_entries, std::size_t max_weight) {
  const std::size_t want = std::bit_ceil(std::max(1U, std::thread::hardware_concurrency()) * 4U);
  std::size_t n = std::max<std::size_t>(
      1, std::min(want, std::bit_floor(std::max<std::size_t>(1, max_entries / 64))));
  if (max_weight != 0) n = std::min(n, std::bit_floor(max_weight));
  return n;
}

// Hits and misses are the engine's to count (its striped counters); the tier counts what only it
// sees.
struct warm_tier_stats {
  std::uint64_t evictions = 0, dropped_reads = 0;
  std::size_t size = 0, weight = 0;
};

template <class K, class V, eviction_policy P, class Hash = absl::Hash<K>,
          class KeyEqual = std::equal_to<K>>
class warm_tier {
  static_assert(sizeof(std::uintptr_t) == 8, "the warm tier's index packs pointers in 64 bits");

 public:
  using weigher_type = std::function<std::size_t(const K&, const V&)>;
  // Called with each evicted entry, after the shard's lock is released. The references are to
  // the evicted node, which concurrent readers may still be reading: copy what you keep.
  using sink_type = std::function<void(const K&, const V&)>;
  // Makes a shard's policy for its capacity (default: P(capacity)); a policy with options, such
  // as the adaptive policy's miniature-cache budget shared among the shards, comes this way.
  using policy_factory = std::function<P(std::size_t capacity, std::size_t shards)>;

  // Throws std::invalid_argument for max_entries 0 or a shard count that is not a power of two.
  explicit warm_tier(warm_tier_options o, weigher_type weigher = {}, sink_type sink = {},
                     policy_factory make_policy = {})
      : weigher_(std::move(weigher)), sink_(std::move(sink)) {
    if (o.max_entries == 0) throw std::invalid_argument("warm tier: max_entries must be >= 1");
    if (o.shards != 0 && !std::has_single_bit(o.shards)) {
      throw std::invalid_argument("warm tier: shards must be a power of two");
    }
    if (o.max_weight != 0 && !weigher_) {
      weigher_ = [](const K&, const V&) { return sizeof(K) + sizeof(V); };
    }
    std::size_t n = o.shards;
    if (n == 0) {
      n = warm_shard_count(o.max_entries, o.max_weight);
    } else if (o.max_weight != 0 && o.max_weight < n) {
      throw std::invalid_argument("warm tier: max_weight must be at least the shard count");
    }
    shard_bits_ = static_cast<unsigned>(std::countr_zero(n));
    // The remainder goes one entry each to the first shards, so capacity() is max_entries
    // exactly (a cache's max_entries(n) promises n whatever the core count); only more shards
    // than entries, which a caller must ask for, round each shard up to one.
    const std::size_t base_entries = o.max_entries / n;
    const std::size_t extra_entries = o.max_entries % n;
    const std::size_t per_weight = o.max_weight / n;
    shards_.reserve(n);
    if (!make_policy) make_policy = [](std::size_t c, std::size_t) { return P(c); };
    max_entries_ = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t entries = std::max<std::size_t>(1, base_entries + (i < extra_entries));
      shards_.push_back(std::make_unique<shard>(entries, per_weight, make_policy(entries, n)));
      max_entries_ += entries;
    }
    max_weight_ = per_weight * n;
  }

  warm_tier(const warm_tier&) = delete;
  warm_tier& operator=(const warm_tier&) = delete;

  // The sink of evictions (instead of the constructor's). Set before use.
  void set_sink(sink_type sink) { sink_ = std::move(sink); }

  // Receives each entry that leaves other than through the sink: erased (erase, clear without
  // to_sink) or replaced (a put of its key), under the shard's lock or just after it, before the
  // node is retired; must not throw and must not call back into this tier. erase<false> (a move
  // to another tier) is not reported. Set before use.
  using removal_observer = std::function<void(const K&, const V&, removal_cause)>;
  void set_removal_observer(removal_observer observer) { on_removal_ = std::move(observer); }

  // Instead of the sink: stamp(key) runs under the shard's lock as each entry leaves the tier,
  // and sink(key, value, stamp, reads) gets the stamp after the lock is released, with the
  // number of reads the entry had in this tier. Every stamp taken reaches the sink (clear()
  // without to_sink takes none). The cache uses it to register the value's departure (its
  // demotion in flight) at the moment it left memory, and for its cold tier's admission rule. Set
  // before use.
  void set_stamped_sink(
      std::function<std::uint64_t(const K&)> stamp,
      std::function<void(const K&, const V&, std::uint64_t, std::uint32_t)> sink) {
    stamp_ = std::move(stamp);
    stamped_sink_ = std::move(sink);
  }

  // From now on each shard's policy queues the learning of up to `batch` requests
  // (deferred_learning_policy; policies that do not learn ignore it), and `due` runs, outside
  // every lock, after a write leaves a shard's backlog at `notify_at` or more. Set before use;
  // `due` must not throw.
  void defer_learning(std::size_t batch, std::size_t notify_at, std::function<void()> due) {
    if constexpr (deferred_learning_policy<P>) {
      for (auto& sh : shards_) {
        std::unique_lock lock(sh->mutex);
        sh->policy.defer_learning(batch);
      }
      learning_mark_ = notify_at;
      learning_due_ = std::move(due);
    }
  }

  // Does the learning the shards' policies queued, each under its shard's lock. With `wait`
  // false a shard whose lock is taken is skipped (its writer is busy with the policy; the backlog
  // waits for the next call, or is learnt inline when it fills). Returns how many shards learnt.
  std::size_t learn(bool wait = true) {
    std::size_t learnt = 0;
    if constexpr (deferred_learning_policy<P>) {
      for (auto& sh : shards_) {
        std::unique_lock lock(sh->mutex, std::defer_lock);
        if (wait) {
          lock.lock();
        } else if (!lock.try_lock()) {
          continue;
        }
        drain(*sh);  // hits first: they are requests the policy learns from too
        learnt += sh->policy.learn() ? 1 : 0;
      }
    }
    return learnt;
  }

  // Requests queued for learning, over all shards.
  std::size_t learning_backlog() const {
    std::size_t n = 0;
    if constexpr (deferred_learning_policy<P>) {
      for (const auto& sh : shards_) {
        std::shared_lock lock(sh->mutex);
        n += sh->policy.learning_backlog();
      }
    }
    return n;
  }

  // Calls f(const V&) if `key` is present, and records the hit for the policy. Takes no lock;
  // f runs with the calling thread's epoch pinned, so it should be short (a long one delays
  // the freeing of retired entries, never correctness). f may call back into the tier.
  template <class Q, class F>
  bool visit(const Q& key, F&& f) const {
    return read<true, false>(key, [&](const node& n, std::uint32_t) { f(n.value); });
  }

  // Calls f(const K& stored_key, const V&, std::uint32_t hits) if `key` is present; `hits`
  // counts the visit_entry reads of this value (this one included) since it was stored (a
  // replace keeps the count; the engine's promotion rule reads it). Touch = false looks without
  // recording or counting a hit.
  template <bool Touch = true, class Q, class F>
  bool visit_entry(const Q& key, F&& f) const {
    return read<Touch, Touch>(key,
                              [&](const node& n, std::uint32_t hits) { f(n.key, n.value, hits); });
  }

  template <class Q>
  std::optional<V> get(const Q& key) const {
    std::optional<V> out;
    visit(key, [&](const V& v) { out.emplace(v); });
    return out;
  }

  // Starts loading the index cell where a lookup of `key` begins, so that a lookup made soon
  // after (the engine's, once the hot tier has missed) does not wait for it. A hint only: it
  // reads the shard's hint (below), not its table, so it needs no epoch pin: the address may be
  // stale (a table replaced meanwhile) and a prefetch of it is then wasted, never a fault.
  template <class Q>
  void prefetch(const Q& key) const noexcept {
    const std::uint64_t h = hash_of(key);
    const shard& sh = shard_for(h);
    const cell* cells = sh.hint_cells.load(std::memory_order_relaxed);
    detail::prefetch(cells + home_of(h, sh.hint_mask.load(std::memory_order_relaxed)));
  }

  template <class Q>
  bool contains(const Q& key) const {
    return read<false, false>(key, [](const node&, std::uint32_t) {});
  }

  // Inserts or replaces. Refuses (InvalidArgument) a value heavier than a shard's weight budget.
  absl::Status put(K key, V value) { return store(key, value).status(); }

  // put(), telling whether the key was inserted (true) or its value replaced (false).
  absl::StatusOr<bool> upsert(K key, V value) { return store(key, value); }

 private:
  // put() and upsert(): moves from key and value (passed by reference, so that storing costs no
  // more moves than put's by-value parameters already made).
  absl::StatusOr<bool> store(K& key, V& value) {
    const std::uint64_t h = hash_of(key);
    shard& sh = shard_for(h);
    const std::size_t w = weigher_ ? weigher_(key, value) : 1;
    if (sh.max_weight != 0 && w > sh.max_weight) {
      return absl::InvalidArgumentError(absl::StrCat(
          "warm tier: an entry weighing ", w, " exceeds the per-shard weight budget of ",
          sh.max_weight, " (max_weight ", max_weight_, " over ", shards_.size(), " shards)"));
    }
    victim_list victims;
    std::exception_ptr failed;
    bool inserted = false;
    bool due = false;
    {
      std::unique_lock lock(sh.mutex);
      drain(sh);
      try {
        if (const std::size_t at = cell_of(sh, key, h); at != npos) {
          replace(sh, at, std::move(key), std::move(value), w, victims);
        } else {
          insert(sh, std::move(key), std::move(value), h, w, victims);
          inserted = true;
        }
      } catch (...) {
        failed = std::current_exception();
      }
      due = learning_due(sh);
    }
    if (due) learning_due_();
    // Entries evicted before a failure still reach the sink; then the failure is reported.
    deliver(victims);
    if (failed) std::rethrow_exception(failed);
    return inserted;
  }

 public:
  // Removes `key`. Looks without the lock first, so erasing an absent key (the common case when
  // the engine inserts a key new to the hot tier) never waits for a writer. Throws only if the
  // policy's on_erase does, and then changes nothing. Report = false: the entry moves to another
  // tier, which is not a removal (no removal observer call).
  template <bool Report = true, class Q>
  bool erase(const Q& key) {
    const std::uint64_t h = hash_of(key);
    shard& sh = shard_for(h);
    {
      epoch_guard pin(*epoch_);
      if (find(sh, key, h) == nullptr) return false;
    }
    node* n = nullptr;
    {
      std::unique_lock lock(sh.mutex);
      drain(sh);
      const std::size_t at = cell_of(sh, key, h);
      if (at == npos) return false;
      n = node_of(sh.table().cells[at].load(std::memory_order_relaxed));
      sh.policy.on_erase(n->at);
      unlink(sh, at);
      release(sh, n->at, n->weight);
    }
    if (Report && on_removal_) on_removal_(n->key, n->value, removal_cause::erased);
    retire(n);
    return true;
  }

  // Removes every entry; with to_sink, hands each one to the sink first (a cache closing its
  // memory tiers into the cold tier).
  void clear(bool to_sink = false) {
    for (auto& sh : shards_) {
      victim_list gone;
      {
        std::unique_lock lock(sh->mutex);
        drain(*sh);
        auto empty = std::make_unique<index_table>(min_cells);
        gone.reserve(sh->count);
        for (slot s = 0; s < sh->fresh; ++s) {
          // Stamped only on the way to the sink: a stamp may be a registration the sink ends.
          if (node* n = (*sh)[s].n) {
            gone.push_back(victim{n, to_sink && stamp_ ? stamp_(n->key) : 0});
          }
        }
        for (const victim& v : gone) {
          sh->policy.on_erase(v.n->at);
          release(*sh, v.n->at, v.n->weight);
        }
        sh->count = 0;
        sh->publish_hint(*empty);
        index_table* old = sh->index.exchange(empty.release(), std::memory_order_seq_cst);
        epoch_->retire(this_thread_epoch_record(), old, destroy<index_table>);
      }
      if (to_sink) {
        deliver(gone);
      } else {
        for (const victim& v : gone) {
          if (on_removal_) on_removal_(v.n->key, v.n->value, removal_cause::erased);
          retire(v.n);
        }
      }
    }
  }

  std::size_t size() const {
    std::size_t n = 0;
    for (const auto& sh : shards_) {
      std::shared_lock lock(sh->mutex);
      n += sh->count;
    }
    return n;
  }
  std::size_t capacity() const noexcept { return max_entries_; }
  std::size_t max_weight() const noexcept { return max_weight_; }
  std::size_t shard_count() const noexcept { return shards_.size(); }

  // Memory of the nodes (with malloc's 16-byte header, not counting what K and V own on the
  // heap), slots and index tables; policy metadata is the policy's own and not
  // counted (docs/eviction.md lists it per policy).
  std::size_t memory_bytes() const {
    std::size_t bytes = sizeof(*this) + shards_.size() * sizeof(shard);
    for (const auto& sh : shards_) {
      std::shared_lock lock(sh->mutex);
      bytes += sh->chunks.size() * sizeof(void*) +
               (sh->fresh + chunk_size - 1) / chunk_size * chunk_size * sizeof(slot_data) +
               (sh->table().mask + 1) * sizeof(cell) + sh->count * (sizeof(node) + malloc_header);
    }
    return bytes;
  }

  // A rough per-entry memory cost at capacity (node, slot, three index cells: the table is a
  // power of two between 2 and 4 cells per entry, and an allowance of 64 bytes for the policy),
  // for configuration checks.
  static constexpr std::size_t bytes_per_entry() noexcept {
    return sizeof(node) + malloc_header + sizeof(slot_data) + 3 * sizeof(cell) + 64;
  }

  warm_tier_stats stats() const {
    warm_tier_stats s;
    for (const auto& sh : shards_) {
      s.dropped_reads += sh->dropped.load(std::memory_order_relaxed);
      std::shared_lock lock(sh->mutex);
      s.evictions += sh->evictions;
      s.size += sh->count;
      s.weight += sh->weight;
    }
    return s;
  }

 private:
  using slot = typename P::slot;
  using cell = std::atomic<std::uintptr_t>;
  static constexpr std::size_t read_buffer_size = 64;
  static constexpr std::size_t chunk_size = 1024;
  static constexpr std::size_t min_cells = 16;
  static constexpr std::size_t malloc_header = 16;
  static constexpr std::size_t npos = ~std::size_t{0};
  static constexpr slot no_slot = ~slot{0};
  static constexpr unsigned tag_shift = 48;
  static constexpr std::uintptr_t address_mask = (std::uintptr_t{1} << tag_shift) - 1;

  struct node {
    template <class KA, class VA>
    node(KA&& k, VA&& v, std::uint64_t h, std::size_t w, slot s, std::uint32_t g)
        : hash(h),
          weight(w),
          at(s),
          generation(g),
          key(std::forward<KA>(k)),
          value(std::forward<VA>(v)) {}
    const std::uint64_t hash;
    const std::size_t weight;
    const slot at;
    const std::uint32_t generation;
    mutable std::atomic<std::uint32_t> hits{0};
    mutable std::atomic<std::uint32_t> recorded{0};  // the shard's drain count at the last record
    const K key;
    const V value;
  };

  // Writers only (under the shard's lock): readers reach nodes through the index.
  struct slot_data {
    node* n = nullptr;
    std::uint32_t generation = 0;
    union {
      // Hash bits 32..63: the entry's cell and home, so an eviction finds the cell without
      // touching the node (the least recently useful entry's node is rarely in cache).
      std::uint32_t hash_hi = 0;
      slot next_free;  // while the slot is free: the one below it on the free stack
    };
  };

  struct index_table {
    explicit index_table(std::size_t n) : mask(n - 1), cells(std::make_unique<cell[]>(n)) {}
    std::size_t mask;
    std::unique_ptr<cell[]> cells;  // value-initialised: 0 is an empty cell
  };

  // A put usually evicts at most one entry: no allocation for it.
  // A node leaving the tier, with its stamp (see set_stamped_sink).
  struct victim {
    node* n;
    std::uint64_t stamp;
  };
  using victim_list = absl::InlinedVector<victim, 2>;

  struct alignas(cache_line) shard {
    shard(std::size_t capacity_, std::size_t weight_budget, P made)
        : max_weight(weight_budget),
          capacity(capacity_),
          chunks((capacity_ + chunk_size - 1) / chunk_size),
          policy(std::move(made)),
          coalesce(detail::coalesces_hits(policy)) {
      for (auto& r : reads) r.store(empty_record, std::memory_order_relaxed);
      publish_hint(table());
    }
    // No reader may still be inside the tier. Nodes and tables retired earlier belong to the
    // epoch domain, which frees them on its own.
    ~shard() {
      for (slot s = 0; s < fresh; ++s) {
        if (node* n = (*this)[s].n) destroy_node(n);
      }
      delete index.load(std::memory_order_relaxed);
    }
    shard(const shard&) = delete;
    shard& operator=(const shard&) = delete;
    slot_data& operator[](slot s) noexcept { return chunks[s / chunk_size][s % chunk_size]; }
    const index_table& table() const noexcept { return *index.load(std::memory_order_relaxed); }

    // Read by every reader; written by erases (version), growth (index) and drains that
    // consumed something (drains; it starts at 1, which no new node's `recorded` matches).
    std::atomic<std::uint64_t> version{0};
    std::atomic<index_table*> index{new index_table(min_cells)};
    std::atomic<std::uint32_t> drains{1};
    // The current table's cells and mask, for prefetch(): written with the table (publish_hint),
    // read without the epoch, so only ever used to compute an address to prefetch.
    std::atomic<const cell*> hint_cells{nullptr};
    std::atomic<std::size_t> hint_mask{0};
    void publish_hint(const index_table& t) noexcept {
      hint_mask.store(t.mask, std::memory_order_relaxed);
      hint_cells.store(t.cells.get(), std::memory_order_relaxed);
    }

    // The writers' state, under `mutex` (size() and stats() read it shared).
    alignas(cache_line) mutable shared_spin_lock mutex;
    std::size_t max_weight;
    std::size_t weight = 0;
    std::size_t count = 0;
    // Slots [0, fresh) exist, in chunks allocated as the shard fills; released ones wait on a
    // stack threaded through their slot_data (`free`, then each one's `next_free`), so releasing
    // never allocates.
    std::size_t capacity;
    std::vector<std::unique_ptr<slot_data[]>> chunks;
    slot fresh = 0;
    slot free = no_slot;
    P policy;
    const bool coalesce;
    std::uint64_t drained = 0;  // read-buffer positions consumed
    std::uint64_t evictions = 0;

    // Read buffer: a reader claims a cell with fetch_add on `written` and fills it if it is
    // empty; the drainer (holding the lock) empties every cell.
    alignas(cache_line) std::atomic<std::uint64_t> written{0};
    std::atomic<std::uint64_t> dropped{0};
    alignas(cache_line) std::array<std::atomic<std::uint64_t>, read_buffer_size> reads;
  };

  static constexpr std::uint64_t empty_record = ~std::uint64_t{0};
  static std::uint64_t pack(slot s, std::uint32_t generation) noexcept {
    return (static_cast<std::uint64_t>(generation) << 32) | s;
  }

  static std::uintptr_t tag_of(std::uint64_t h) noexcept {
    return static_cast<std::uintptr_t>((h >> 32) & 0xffffU) << tag_shift;
  }
  static std::size_t home_of(std::uint64_t h, std::size_t mask) noexcept {
    return static_cast<std::size_t>(h >> 32) & mask;
  }
  static std::size_t home_of_cell(std::uintptr_t c, std::size_t mask) noexcept {
    return mask <= 0xffffU ? static_cast<std::size_t>(c >> tag_shift) & mask
                           : home_of(node_of(c)->hash, mask);
  }
  static std::uintptr_t cell_value(const node* n) noexcept {
    return reinterpret_cast<std::uintptr_t>(n) | tag_of(n->hash);
  }
  static node* node_of(std::uintptr_t c) noexcept {
    return reinterpret_cast<node*>(c & address_mask);
  }

  template <class T>
  static void destroy(void* p) noexcept {
    delete static_cast<T*>(p);
  }
  // Node memory comes from, and goes back to, the thread's recycler (rounded to 16 bytes, so that
  // tiers whose nodes differ by a few bytes share blocks).
  using node_memory = node_recycler<(sizeof(node) + 15) / 16 * 16, alignof(node)>;
  static void destroy_node(void* p) noexcept {
    static_cast<node*>(p)->~node();
    node_memory::deallocate(p);
  }
  void retire(node* n) const { epoch_->retire(this_thread_epoch_record(), n, destroy_node); }

  // The shard takes the top bits of the table hash (hash.hpp); the index bits from 32 up.
  template <class Q>
  std::uint64_t hash_of(const Q& key) const {
    return table_hash(hasher_, key);
  }
  shard& shard_for(std::uint64_t h) const noexcept {
    return *shards_[shard_bits_ == 0 ? 0 : h >> (64 - shard_bits_)];
  }

  // The lock-free read. Record: tell the policy (read buffer); Count: bump the node's reads.
  template <bool Record, bool Count, class Q, class F>
  bool read(const Q& key, F&& f) const {
    const std::uint64_t h = hash_of(key);
    shard& sh = shard_for(h);
    bool record = false;
    std::uint64_t what = 0;
    {
      epoch_guard pin(*epoch_);
      const node* n = find(sh, key, h);
      if (n == nullptr) return false;
      std::uint32_t hits = 0;
      if constexpr (Count) {
        hits = n->hits.fetch_add(1, std::memory_order_relaxed) + 1;
      } else {
        hits = n->hits.load(std::memory_order_relaxed);
      }
      f(*n, hits);
      if constexpr (Record) {
        record = true;
        if (sh.coalesce) {
          const std::uint32_t d = sh.drains.load(std::memory_order_relaxed);
          if (n->recorded.load(std::memory_order_relaxed) == d) {
            record = false;  // a hit of this entry is already waiting for the drain
          } else {
            n->recorded.store(d, std::memory_order_relaxed);
          }
        }
        what = pack(n->at, n->generation);
      }
    }
    if (record) record_hit(sh, what);
    return true;
  }

  // With the epoch pinned: the node holding `key`, or nullptr if it was absent at some instant
  // of the call.
  template <class Q>
  const node* find(const shard& sh, const Q& key, std::uint64_t h) const {
    const std::uintptr_t tag = tag_of(h);
    for (;;) {
      const std::uint64_t before = sh.version.load(std::memory_order_seq_cst);
      const index_table& t = *sh.index.load(std::memory_order_seq_cst);
      // Bounded, so that cells moving under the probe cannot keep it going round.
      std::size_t i = home_of(h, t.mask);
      for (std::size_t probes = 0; probes <= t.mask; ++probes, i = (i + 1) & t.mask) {
        const std::uintptr_t c = t.cells[i].load(std::memory_order_seq_cst);
        if (c == 0) break;
        if ((c & ~address_mask) != tag) continue;
        const node* n = node_of(c);
        if (n->hash == h && key_eq_(n->key, key)) return n;
      }
      if ((before & 1) == 0 && sh.version.load(std::memory_order_seq_cst) == before) {
        return nullptr;
      }
      cpu_relax();  // an erase moved cells meanwhile: the miss may be false
    }
  }

  // Under the lock: the cell holding `key`, or npos.
  template <class Q>
  std::size_t cell_of(const shard& sh, const Q& key, std::uint64_t h) const {
    const index_table& t = sh.table();
    const std::uintptr_t tag = tag_of(h);
    for (std::size_t i = home_of(h, t.mask);; i = (i + 1) & t.mask) {
      const std::uintptr_t c = t.cells[i].load(std::memory_order_relaxed);
      if (c == 0) return npos;
      if ((c & ~address_mask) == tag) {
        const node* n = node_of(c);
        if (n->hash == h && key_eq_(n->key, key)) return i;
      }
    }
  }

  // Under the lock: the cell of the entry in slot `s`.
  static std::size_t cell_of(shard& sh, slot s) noexcept {
    const index_table& t = sh.table();
    const slot_data& d = sh[s];
    const std::uint64_t h = static_cast<std::uint64_t>(d.hash_hi) << 32;
    const std::uintptr_t c = reinterpret_cast<std::uintptr_t>(d.n) | tag_of(h);
    std::size_t i = home_of(h, t.mask);
    while (t.cells[i].load(std::memory_order_relaxed) != c) i = (i + 1) & t.mask;
    return i;
  }

  static void place(index_table& t, std::uintptr_t c, std::size_t home,
                    std::memory_order order) noexcept {
    std::size_t i = home;
    while (t.cells[i].load(std::memory_order_relaxed) != 0) i = (i + 1) & t.mask;
    t.cells[i].store(c, order);
  }

  // Under the lock: removes cell `at` from the index (backward-shift deletion; see the header
  // comment for why `version` is odd meanwhile).
  static void unlink(shard& sh, std::size_t at) noexcept {
    index_table& t = *sh.index.load(std::memory_order_relaxed);
    const std::uint64_t v = sh.version.load(std::memory_order_relaxed);
    sh.version.store(v + 1, std::memory_order_seq_cst);
    std::size_t hole = at;
    for (std::size_t j = (at + 1) & t.mask;; j = (j + 1) & t.mask) {
      const std::uintptr_t c = t.cells[j].load(std::memory_order_relaxed);
      if (c == 0) break;
      // The entry at j may fill the hole unless its home lies cyclically in (hole, j].
      const std::size_t home = home_of_cell(c, t.mask);
      if (((j - home) & t.mask) >= ((j - hole) & t.mask)) {
        t.cells[hole].store(c, std::memory_order_seq_cst);
        hole = j;
      }
    }
    t.cells[hole].store(0, std::memory_order_seq_cst);
    sh.version.store(v + 2, std::memory_order_seq_cst);
    --sh.count;
  }

  // Under the lock, before an insert: keeps the index at most half full. Throws std::bad_alloc
  // with the shard unchanged.
  void reserve_cell(shard& sh) const {
    if ((sh.count + 1) * 2 > sh.table().mask + 1) grow_index(sh);
  }
  GOLDYLOX_NOINLINE void grow_index(shard& sh) const {
    index_table* t = sh.index.load(std::memory_order_relaxed);
    auto bigger = std::make_unique<index_table>((t->mask + 1) * 2);
    for (std::size_t i = 0; i <= t->mask; ++i) {
      const std::uintptr_t c = t->cells[i].load(std::memory_order_relaxed);
      if (c != 0) place(*bigger, c, home_of_cell(c, bigger->mask), std::memory_order_relaxed);
    }
    sh.publish_hint(*bigger);
    sh.index.store(bigger.release(), std::memory_order_seq_cst);
    epoch_->retire(this_thread_epoch_record(), t, destroy<index_table>);
  }

  void record_hit(shard& sh, std::uint64_t record) const {
    const std::uint64_t pos = sh.written.fetch_add(1, std::memory_order_relaxed);
    // An occupied cell means the drainer is a whole buffer behind: the record is dropped. Each
    // time the ring wraps, the reader that wrapped it tries to drain.
    std::atomic<std::uint64_t>& r = sh.reads[pos % read_buffer_size];
    std::uint64_t expected = empty_record;
    if (!r.compare_exchange_strong(expected, record, std::memory_order_release,
                                   std::memory_order_relaxed)) {
      sh.dropped.fetch_add(1, std::memory_order_relaxed);
    }
    // No learning_due_ here: waking the pool can take its mutex, and a reader never waits. The
    // hits drained here join the backlog, which the shard's next write reports (or a full queue
    // learns inline).
    if (pos % read_buffer_size == read_buffer_size - 1) {
      std::unique_lock lock(sh.mutex, std::try_to_lock);
      if (lock.owns_lock()) drain(sh);
    }
  }

  // Under the shard's lock: whether the policy's learning backlog asks for the `due` callback.
  bool learning_due(shard& sh) const {
    if constexpr (deferred_learning_policy<P>) {
      return learning_due_ && sh.policy.learning_backlog() >= learning_mark_;
    } else {
      return false;
    }
  }

  // Under the lock: tells the policy of the buffered hits that are still valid. Only the
  // positions claimed since the last drain are visited (at most a buffer's worth), so a write
  // with no reads since costs one load.
  static void drain(shard& sh) {
    const std::uint64_t written = sh.written.load(std::memory_order_acquire);
    const std::uint64_t from = std::max(
        sh.drained, written > read_buffer_size ? written - read_buffer_size : std::uint64_t{0});
    for (std::uint64_t pos = from; pos < written; ++pos) {
      const std::uint64_t r =
          sh.reads[pos % read_buffer_size].exchange(empty_record, std::memory_order_acquire);
      if (r == empty_record) continue;  // claimed but not yet filled: that record is lost
      const auto s = static_cast<slot>(r & 0xffffffffU);
      if (s < sh.fresh && sh[s].n != nullptr &&
          sh[s].generation == static_cast<std::uint32_t>(r >> 32)) {
        sh.policy.on_hit(s);
      }
    }
    if (written != sh.drained && sh.coalesce) {
      sh.drains.store(sh.drains.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    }
    sh.drained = written;
  }

  template <class KA, class VA>
  static node* make_node(KA&& k, VA&& v, std::uint64_t h, std::size_t w, slot s,
                         std::uint32_t generation) {
    void* p = node_memory::allocate();
    if ((reinterpret_cast<std::uintptr_t>(p) & ~address_mask) != 0) {
      node_memory::discard(p);
      throw std::runtime_error("warm tier: a node's address does not fit in 48 bits");
    }
    try {
      return ::new (p) node(std::forward<KA>(k), std::forward<VA>(v), h, w, s, generation);
    } catch (...) {
      node_memory::deallocate(p);
      throw;
    }
  }

  // Under the lock. The new node is built before anything changes, so a throw keeps the old
  // entry as it was.
  void replace(shard& sh, std::size_t at, K&& key, V&& value, std::size_t w, victim_list& victims) {
    index_table& t = *sh.index.load(std::memory_order_relaxed);
    node* old = node_of(t.cells[at].load(std::memory_order_relaxed));
    const slot s = old->at;
    node* n = make_node(std::move(key), std::move(value), old->hash, w, s, old->generation);
    n->hits.store(old->hits.load(std::memory_order_relaxed), std::memory_order_relaxed);
    t.cells[at].store(cell_value(n), std::memory_order_seq_cst);
    sh[s].n = n;
    sh.weight = sh.weight - old->weight + w;
    if (on_removal_) on_removal_(old->key, old->value, removal_cause::replaced);
    retire(old);
    sh.policy.on_hit(s);
    if (sh.max_weight == 0 || sh.weight <= sh.max_weight) return;
    // The grown entry is taken out of the policy while others are evicted for it, so it can
    // never be picked; it fits on its own (put checked), so the loop ends. It comes back as new.
    sh.policy.on_erase(s);
    try {
      while (sh.weight > sh.max_weight && sh.policy.size() > 0) evict_one(sh, victims);
    } catch (...) {
      sh.policy.on_miss(n->hash);
      sh.policy.on_insert(s, n->hash);
      throw;
    }
    sh.policy.on_miss(n->hash);
    sh.policy.on_insert(s, n->hash);
  }

  // Under the lock. Nothing is published until the node and room for it in the index exist; a
  // throw on the way leaves the shard as it was, but for the evictions made room for (they are
  // in `victims`, delivered by put).
  void insert(shard& sh, K&& key, V&& value, std::uint64_t h, std::size_t w, victim_list& victims) {
    sh.policy.on_miss(h);
    while (sh.policy.size() > 0 && ((sh.free == no_slot && sh.fresh == sh.capacity) ||
                                    (sh.max_weight != 0 && sh.weight + w > sh.max_weight))) {
      evict_one(sh, victims);
    }
    reserve_cell(sh);
    const bool reused = sh.free != no_slot;
    const slot s = reused ? sh.free : fresh_slot(sh);
    slot_data& d = sh[s];
    node* n = make_node(std::move(key), std::move(value), h, w, s, d.generation);
    index_table& t = *sh.index.load(std::memory_order_relaxed);
    place(t, cell_value(n), home_of(h, t.mask), std::memory_order_release);
    if (reused) {
      sh.free = d.next_free;
    } else {
      ++sh.fresh;
    }
    d.n = n;
    d.hash_hi = static_cast<std::uint32_t>(h >> 32);
    ++sh.count;
    sh.weight += w;
    sh.policy.on_insert(s, h);
  }

  void evict_one(shard& sh, victim_list& victims) {
    const slot v = sh.policy.victim();
    node* n = sh[v].n;
    try {
      if (stamp_) {
        // Room first: a stamp taken must reach the sink (it may be a registration the sink ends).
        victims.reserve(victims.size() + 1);
        victims.push_back(victim{n, stamp_(n->key)});
      } else {
        victims.push_back(victim{n, 0});
      }
    } catch (...) {  // the entry stays: give it back to the policy
      sh.policy.on_miss(n->hash);
      sh.policy.on_insert(v, n->hash);
      throw;
    }
    unlink(sh, cell_of(sh, v));
    ++sh.evictions;
    release(sh, v, weigher_ ? n->weight : 1);
  }

  // The next fresh slot (no slot is free and the shard is below capacity), allocating its chunk
  // when it starts one; the caller takes it by advancing `fresh`. Throws std::bad_alloc with the
  // shard unchanged.
  static slot fresh_slot(shard& sh) {
    const std::size_t c = sh.fresh / chunk_size;
    if (!sh.chunks[c]) sh.chunks[c] = std::make_unique<slot_data[]>(chunk_size);
    return sh.fresh;
  }

  // The node has left the index (or is leaving it with the whole table): its slot becomes free.
  static void release(shard& sh, slot s, std::size_t weight) noexcept {
    slot_data& d = sh[s];
    sh.weight -= weight;
    d.n = nullptr;
    ++d.generation;
    d.next_free = sh.free;
    sh.free = s;
  }

  // Every victim reaches the sink even if an earlier call throws; the first exception is then
  // rethrown (after the tier's own state is complete). Then the victims are retired.
  void deliver(victim_list& victims) {
    if (victims.empty()) return;
    if (sink_ || stamped_sink_) {
      deliver_to_sink(victims);
      return;
    }
    epoch_domain::record& r = this_thread_epoch_record();
    for (const victim& v : victims) epoch_->retire(r, v.n, destroy_node);
  }
  GOLDYLOX_NOINLINE void deliver_to_sink(victim_list& victims) {
    std::exception_ptr first;
    for (const victim& v : victims) {
      try {
        if (stamped_sink_) {
          stamped_sink_(v.n->key, v.n->value, v.stamp, v.n->hits.load(std::memory_order_relaxed));
        } else {
          sink_(v.n->key, v.n->value);
        }
      } catch (...) {
        if (!first) first = std::current_exception();
      }
    }
    for (const victim& v : victims) retire(v.n);
    if (first) std::rethrow_exception(first);
  }

  [[no_unique_address]] Hash hasher_{};
  [[no_unique_address]] KeyEqual key_eq_{};
  epoch_domain* const epoch_ = &epoch_domain::global();
  weigher_type weigher_;
  sink_type sink_;
  removal_observer on_removal_;
  std::function<std::uint64_t(const K&)> stamp_;
  std::function<void(const K&, const V&, std::uint64_t, std::uint32_t)> stamped_sink_;
  std::function<void()> learning_due_;  // see defer_learning
  std::size_t learning_mark_ = 0;
  unsigned shard_bits_ = 0;
  std::size_t max_entries_ = 0;
  std::size_t max_weight_ = 0;
  std::vector<std::unique_ptr<shard>> shards_;
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
