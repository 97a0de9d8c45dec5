// Demotion into the cold tier: evictions from the lowest memory tier wait in a queue of the engine
// on the evicting thread until that engine's outermost call on the thread returns; then, with a
// background pool, they are handed to the pool, which writes them, and without one the caller
// writes them itself. Either way each is written under its key's home lock if coherence allows
// (rule C2 in coherence.hpp).
//
// Why a queue per thread: an eviction reaches the engine inside other locks (the warm tier's sink
// runs under the home lock of the hot victim that displaced it, and the hot tier's under its own
// victim's), and a cold write takes the victim key's home lock, which may be another group's:
// writing there could deadlock against a thread locking in the other order. So the sink only
// registers and queues; scope (held by every engine call that can evict) drains when this
// engine's call nesting on the thread is back to zero. An eviction outside any call of this engine
// drains at once.
//
// Why per (engine, thread): calls nest across engines (a callback of one cache calls another
// cache of the same type), and a queue or depth shared by the engines of a type let one engine's
// scope end inside another's with its entries left behind for a drain that never took them. Each
// thread keeps a small vector of frames {engine id, depth, entries}, one per engine with a call
// in progress or entries pending on the thread; a frame goes when its depth is zero and it is
// empty, so a thread that exits holds none.
//
// Why the pool (cache_config::background_pool set: enable_background_workers, the default, with a
// cold tier): a cold write compresses and appends a record (and with every_write waits for a
// sync), and the call that evicted is usually a read that promoted a cold hit; making that read
// pay for another key's disk write put the write's cost into the tail of get latency. So a drain
// moves its entries, with their registered tickets, into this engine's shared queue and notifies
// the pool job, which writes them with the same write() as the caller would. The queue is
// bounded (default_bound): when a drain's entries do not fit, the caller writes them itself
// (backpressure: counted in cold_backpressure_demotions), so a dirty demotion is never dropped
// and what waits for the disk stays bounded however far the evicting threads outrun the writer.
// Ordering between the pool and the callers does not matter: a later departure or a write of the
// key supersedes an earlier demotion in flight (C1, C2), so whichever writer comes second finds
// the older value superseded, or memory holding the key, and writes nothing.
//
// Owns: the frames (one thread_local vector per engine type; entries of one engine only ever sit
// in that engine's frame), the shared queue and the pool job. Each queued entry owns its
// in-flight ticket (coherence.hpp), registered from the moment its value left memory until its
// write decides, or until the entry is destroyed.
// Invariants: drain() runs with the frame's depth raised, so the writes it makes never drain
// recursively. `depth_` counts the entries handed to the pool and not written yet (queued, or in
// the batch the job is writing), and never exceeds bound_. Once stop() has returned, nothing is
// queued, the job is unregistered, and drains write inline.
// May call: the tiers through tier_stack, cold_coherence for the in-flight registry, and the
// worker pool (background/pool.hpp) it registers its job with.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <utility>
#include <vector>

#include "goldylox/detail/background/pool.hpp"
#include "goldylox/detail/engine/coherence.hpp"
#include "goldylox/detail/engine/tiers.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

template <class K, class S, class Hash, class KeyEqual>
class demotion_queue {
 public:
  using tiers_type = tier_stack<K, S, Hash, KeyEqual>;
  using coherence_type = cold_coherence<K, S, Hash, KeyEqual>;
  using decision = typename tiers_type::decision;

  // The shared queue's bound for memory tiers holding `capacity` entries: a sixteenth of them,
  // at least 64 and at most 4096. Why: each queued value is a copy held beyond the tiers'
  // capacity (and a ticket in the in-flight registry, which writes and departures of keys in its
  // shard walk), so a sixteenth keeps that memory small beside what the tiers hold. 4096 is
  // about 20-40 ms of the job's writes (a 1 KiB value compresses and appends in 5-10 us), enough
  // to ride out a time slice in which the job waits for a CPU or a sync round, while the largest
  // queue holds only a few MiB of 1 KiB values; 64 lets even a tiny cache hand off whole drains.
  // Values are counted, not their bytes: a generic S has no cheap size, and a value larger than a
  // segment is refused by the cold tier anyway.
  static constexpr std::size_t default_bound(std::size_t capacity) noexcept {
    return std::clamp<std::size_t>(capacity / 16, 64, 4096);
  }

  // A drain notifies the job once this many evictions wait (at most half the smallest bound, so
  // the queue never fills before the job is woken), and the job also runs every wake_period,
  // so fewer never wait longer than that. Why not a notify per drain: with the pool's worker
  // asleep, each notify is a futex wake on the evicting thread and a context switch that, on a
  // busy machine, preempts a caller. Measured with goldylox_bench_cold --cache when gets still
  // promoted cold hits, and so evicted, on their own thread (docs/benchmarks.md): a notify per
  // eviction gave the 1-thread get p99 20.5-21.9 us and 23-35 thousand involuntary switches a
  // second; per 32, 14.1-15.2 us and about 4 thousand. A run of 32 writes (about 0.3 ms)
  // preempts a caller rarely enough that a get's p99 does not see it.
  static constexpr std::size_t wake_batch = 32;
  static constexpr std::chrono::milliseconds wake_period{20};

  // Registers the pool job when the config has a pool and there is a cold tier to write to.
  demotion_queue(const tiers_type& tiers, const coherence_type& coherence)
      : tiers_(tiers),
        coherence_(coherence),
        bound_(default_bound(tiers.hot.capacity() +
                             (tiers.warm != nullptr ? tiers.warm->capacity() : 0))) {
    if constexpr (tiers_type::cold_capable) {
      if (tiers.cold == nullptr || !tiers.config.background_pool) return;
      pool_ = background_pool_access::pool(*tiers.config.background_pool);
      // Its first run is a period (or a notify, which only a drain makes) away: after this
      // constructor returns.
      job_ = pool_->add([this](std::stop_token) { run(); }, wake_period);
      async_ = true;
    }
  }

  demotion_queue(const demotion_queue&) = delete;
  demotion_queue& operator=(const demotion_queue&) = delete;

  // The job goes (and what it had queued is written) before the tiers it writes to.
  ~demotion_queue() { stop(); }

  // Held by every engine call that may evict into the cold tier: this engine's outermost one on
  // the thread drains. Without a cold tier nothing is ever queued, and a scope costs nothing (a
  // frame lookup on every warm read was a tenth of a memory-only cache's read path).
  class scope {
   public:
    explicit scope(const demotion_queue& q) : q_(q.tiers_.cold != nullptr ? &q : nullptr) {
      if (q_ != nullptr) ++q_->frame().depth;
    }
    scope(const scope&) = delete;
    scope& operator=(const scope&) = delete;
    ~scope() {
      if (q_ == nullptr) return;
      frame_type* f = q_->find_frame();
      if (--f->depth == 0) q_->drain();
    }

   private:
    const demotion_queue* q_;
  };

  // The warm tier's stamp: runs under its shard lock as the value of `key` leaves, and registers
  // the departure there (C2). Returns the entry to pass to push_stamped(), or 0 if it could not
  // be made (then the departure is counted as dropped).
  std::uint64_t depart(const K& key) const noexcept {
    try {
      auto e = std::make_unique<entry>(coherence_, key);
      coherence_.enter(e->ticket);
      return reinterpret_cast<std::uintptr_t>(e.release());
    } catch (...) {
      return 0;
    }
  }

  // The warm tier's sink, after its lock: queues the entry depart() made, with its value.
  // admitted = false drops it (the admission rule: counted by the caller).
  void push_stamped(const S& value, std::uint64_t stamp, bool admitted) const noexcept {
    if (stamp == 0) {
      tiers_.counters.add(counter::dropped_demotions);
      return;
    }
    std::unique_ptr<entry> e(reinterpret_cast<entry*>(static_cast<std::uintptr_t>(stamp)));
    if (!admitted) return;
    try {
      e->value.emplace(value);
    } catch (...) {
      tiers_.counters.add(counter::dropped_demotions);
      return;
    }
    coherence_.publish(e->ticket, &*e->value);
    queue(std::move(e));
  }

  // The hot tier's sink (no warm tier), under the victim's home lock: registers and queues.
  void push(const K& key, const S& value) const noexcept {
    std::unique_ptr<entry> e;
    try {
      e = std::make_unique<entry>(coherence_, key);
      e->value.emplace(value);
    } catch (...) {
      tiers_.counters.add(counter::dropped_demotions);
      return;
    }
    e->ticket.value = &*e->value;  // not registered yet: enter() publishes it
    coherence_.enter(e->ticket);
    queue(std::move(e));
  }

  // A read below memory: f(const S&) with the value of `key` on its way to the cold tier (queued
  // in a frame or for the pool, not written yet), if there is one a read may return
  // (cold_coherence::visit_in_flight); f runs under a spin lock, so it must only copy.
  template <class F>
  bool visit_in_flight(const K& key, F&& f) const {
    return coherence_.visit_in_flight(key, f);
  }

  // Hands this engine's queued demotions on this thread to the pool, or writes them here (no
  // pool, the pool stopped, or its queue full).
  void drain() const noexcept {
    frame_type* f = find_frame();
    if (f == nullptr) return;
    ++f->depth;  // the writes below queue nothing, but must never drain recursively
    if constexpr (tiers_type::cold_capable) {
      for (;;) {
        f = find_frame();
        if (f->entries.empty()) break;
        std::vector<std::unique_ptr<entry>> batch;
        batch.swap(f->entries);  // FIFO: a key's departures are written in the order they left
        const handoff h = hand_off(batch);
        if (h == handoff::queued) continue;
        const writer by = h == handoff::full ? writer::backpressure : writer::caller;
        for (auto& e : batch) {
          write(*e, by);
          e.reset();
        }
      }
    }
    f = find_frame();
    if (--f->depth == 0 && f->entries.empty()) release_frame();
  }

  // Writes, on the calling thread, what the pool has not taken yet, then waits for the batch the
  // job is writing: once this returns, every demotion handed over before it was called has been
  // decided (written, superseded or refused). sync() calls it first, so a sync covers the
  // demotions of calls that returned before it. Must not be called under a home lock.
  void settle() const {
    if constexpr (tiers_type::cold_capable) {
      write_queued();
      std::unique_lock lock(mu_);
      const std::uint64_t taken = taken_;
      written_cv_.wait(lock, [&] { return finished_ >= taken; });
    }
  }

  // Drops what is queued for the pool and waits for the batch the job is writing (clear(): the
  // cache is being emptied, and a value queued before it must not reach the disk after it).
  void discard() const {
    std::vector<std::unique_ptr<entry>> dropped;
    {
      std::unique_lock lock(mu_);
      dropped.swap(queued_);
      depth_.fetch_sub(dropped.size(), std::memory_order_relaxed);
      const std::uint64_t taken = taken_;
      written_cv_.wait(lock, [&] { return finished_ >= taken; });
    }
    // Destroyed outside mu_: each leaves the in-flight registry.
  }

  // Stops handing entries to the pool: from now on drains write inline. The job is notified to
  // write what is queued meanwhile: close() calls this before it flushes memory, so the job and
  // the flush write at once (with every_write they share the cold store's sync rounds, where one
  // writer after the other would pay a round per entry). Idempotent.
  void stop_handoffs() noexcept {
    std::lock_guard lock(mu_);
    if (!async_) return;
    async_ = false;
    job_->notify();  // under mu_, before async_ is seen false: the job is still registered
  }

  // stop_handoffs(), then unregisters the job (waiting for a run in progress, which writes its
  // whole batch) and writes what is still queued on the calling thread. Once it returns nothing
  // is queued and nothing of the job runs. Idempotent.
  void stop() noexcept {
    stop_handoffs();
    job_.reset();
    write_queued();
  }

  // Demotions handed to the pool and not written yet, now and at most so far (stats()).
  std::size_t queue_depth() const noexcept { return depth_.load(std::memory_order_relaxed); }
  std::size_t queue_peak() const noexcept { return peak_.load(std::memory_order_relaxed); }

 private:
  struct entry {
    entry(const coherence_type& c, const K& key) : registry(c), ticket(key) {}
    entry(const entry&) = delete;
    entry& operator=(const entry&) = delete;
    ~entry() { registry.leave(ticket); }  // every path out of the queue leaves the registry

    const coherence_type& registry;
    inflight_demotion<K, S> ticket;  // the key, registered while the value is in flight
    std::optional<S> value;
  };

  struct frame_type {
    std::uint64_t owner = 0;  // the engine's id
    unsigned depth = 0;       // this engine's calls in progress on the thread
    std::vector<std::unique_ptr<entry>> entries;
  };

  using batch_type = std::vector<std::unique_ptr<entry>>;

  // Who writes a demotion (each adds its own count to cold_demotions).
  enum class writer { caller, pool, backpressure };
  enum class handoff { none, queued, full };

  void queue(std::unique_ptr<entry> e) const noexcept {
    try {
      frame_type& f = frame();
      f.entries.push_back(std::move(e));
      if (f.depth == 0) drain();  // an eviction outside any call of this engine
    } catch (...) {               // e (if not moved) leaves the registry as it goes
      tiers_.counters.add(counter::dropped_demotions);
      if (frame_type* f = find_frame(); f != nullptr && f->depth == 0 && f->entries.empty()) {
        release_frame();
      }
    }
  }

  // Moves the batch into the shared queue and notifies the job (queued; the batch is left
  // empty), or leaves it to the caller: none without a running pool, full when the queue has no
  // room for all of it (a drain's entries stay together: they are few, and splitting them would
  // only spread the caller's write over two writers).
  handoff hand_off(batch_type& batch) const noexcept {
    std::lock_guard lock(mu_);
    if (!async_) return handoff::none;
    const std::size_t n = batch.size();
    const std::size_t depth = depth_.load(std::memory_order_relaxed);
    if (n > bound_ - std::min(depth, bound_)) return handoff::full;
    try {
      // The queue never holds more than bound_ entries: one allocation, reused (run()).
      if (queued_.capacity() < bound_) queued_.reserve(bound_);
    } catch (...) {  // no memory for the queue: the caller writes, as when it is full
      return handoff::full;
    }
    for (auto& e : batch) queued_.push_back(std::move(e));  // within the reserved capacity
    batch.clear();
    // Only this (under mu_) adds to depth_; the job and write_queued subtract as they write,
    // which only makes room, so the bound checked above holds.
    const std::size_t now = depth_.fetch_add(n, std::memory_order_relaxed) + n;
    if (now > peak_.load(std::memory_order_relaxed)) peak_.store(now, std::memory_order_relaxed);
    // Under mu_: stop() unregisters the job only after clearing async_ under it.
    if (queued_.size() >= wake_batch) job_->notify();
    return handoff::queued;
  }

  // The pool job: writes what is queued, as one batch (one run per notify or period; a drain that
  // notifies during the run makes it run once more for what came meanwhile). A run writes its
  // whole batch even when its stop is requested: stop() writes only what is still queued.
  void run() const noexcept {
    batch_type batch;
    {
      std::lock_guard lock(mu_);
      if (queued_.empty()) return;
      batch.swap(queued_);
      ++taken_;
    }
    for (auto& e : batch) {
      write(*e, writer::pool);
      e.reset();
      depth_.fetch_sub(1, std::memory_order_relaxed);
    }
    batch.clear();
    {
      std::lock_guard lock(mu_);
      ++finished_;
      if (queued_.empty()) queued_.swap(batch);  // its capacity, for the next drains
    }
    written_cv_.notify_all();
  }

  // Writes, on the calling thread, what the job has not taken (settle(), stop()).
  void write_queued() const noexcept {
    batch_type batch;
    {
      std::lock_guard lock(mu_);
      batch.swap(queued_);
    }
    for (auto& e : batch) {
      write(*e, writer::caller);
      e.reset();
      depth_.fetch_sub(1, std::memory_order_relaxed);
    }
  }

  // Under the key's home lock: written only if no memory tier has the key and no write or later
  // departure of it came in since the value left memory, and (write-through) the cold tier does
  // not hold it already. The entry leaves the in-flight registry only after its record landed:
  // a read that no longer finds the value in flight (promotion.hpp) finds the record.
  void write(entry& d, writer by) const noexcept {
    try {
      // Serialized and compressed before the home lock, which every writer of the keys of that
      // group waits for: under it there is only the decision and the append (a put of such a
      // key used to wait for a compression too). A demotion superseded already (it stays so) is
      // not worth the work; one superseded later wastes it, never writes it.
      cold_store::prepared_value& prepared = prepared_buffer();
      absl::Status ready = absl::FailedPreconditionError("superseded");
      if (!coherence_.superseded(d.ticket)) ready = tiers_.cold->prepare(*d.value, prepared);
      tiers_.hot.compute(
          K(d.ticket.key),
          [&](const K& k, const S* current) -> decision {
            store(d, k, current, by, ready, prepared);
            coherence_.leave(d.ticket);
            return decision::keep();
          },
          [](const K&) noexcept {});
    } catch (...) {  // d leaves the registry as it is destroyed
      tiers_.counters.add(counter::cold_refused);
    }
  }

  // write()'s decision, under the key's home lock, the entry still registered.
  void store(entry& d, const K& k, const S* current, writer by, const absl::Status& ready,
             const cold_store::prepared_value& prepared) const {
    const bool in_memory =
        current != nullptr || (tiers_.warm != nullptr && tiers_.warm->contains(k));
    // Read after the memory check: a departure that emptied the warm tier registered before it,
    // and has marked this entry. With the key in no memory tier and its home lock held, nothing
    // can mark it from here on (a write, a promotion or a move into the warm tier, which a later
    // departure needs, all take that lock), so the decision below stands until the entry leaves.
    const bool superseded = coherence_.superseded(d.ticket);
    // Memory has this value or a newer one, demoted in its turn: no loss, counted as superseded.
    if (in_memory || superseded) {
      tiers_.counters.add(counter::cold_superseded);
      return;
    }
    // Write-through: a record of the key holds this very value (rule C4), so rewriting it would
    // cost a disk write (and with every_write a sync) for nothing. A record that reclamation
    // dropped is absent here, and the value is written as usual.
    if (tiers_.config.cold_tier_write_through && tiers_.cold->contains(k)) {
      tiers_.counters.add(counter::cold_already_stored);
      return;
    }
    if (!ready.ok() || !tiers_.cold->put_prepared(k, prepared).ok()) {
      tiers_.counters.add(counter::cold_refused);
      return;
    }
    tiers_.counters.add(counter::cold_demotions);
    if (by == writer::pool) tiers_.counters.add(counter::cold_background_demotions);
    if (by == writer::backpressure) tiers_.counters.add(counter::cold_backpressure_demotions);
  }

  // This engine's frame on the calling thread, made if absent.
  frame_type& frame() const {
    if (frame_type* f = find_frame()) return *f;
    auto& fs = frames();
    fs.push_back(frame_type{id_, 0, {}});
    return fs.back();
  }
  frame_type* find_frame() const noexcept {
    for (frame_type& f : frames()) {
      if (f.owner == id_) return &f;
    }
    return nullptr;
  }
  void release_frame() const noexcept {
    auto& fs = frames();
    fs.erase(
        std::find_if(fs.begin(), fs.end(), [&](const frame_type& f) { return f.owner == id_; }));
  }

  // The writer's buffer for a value on its way to disk (its capacity is kept between writes).
  static cold_store::prepared_value& prepared_buffer() {
    thread_local cold_store::prepared_value p;
    return p;
  }
  static std::vector<frame_type>& frames() {
    thread_local std::vector<frame_type> fs;
    return fs;
  }
  static std::uint64_t next_id() noexcept {
    static std::atomic<std::uint64_t> n{0};
    return n.fetch_add(1, std::memory_order_relaxed) + 1;
  }

  const tiers_type& tiers_;
  const coherence_type& coherence_;
  const std::uint64_t id_ = next_id();
  const std::size_t bound_;
  // The shared queue. mu_ is taken by drains (under no lock of this engine's; under another
  // cache's home lock when a call nests in its callback), by the job, and by settle, discard and
  // stop; under it only the pool's mutex is taken (notify), so it closes no lock cycle.
  mutable std::mutex mu_;
  mutable std::condition_variable written_cv_;  // a job run finished its batch
  // Guarded by mu_:
  mutable batch_type queued_;           // handed over, not taken by a job run yet
  mutable std::uint64_t taken_ = 0;     // batches job runs took
  mutable std::uint64_t finished_ = 0;  // of which written
  mutable bool async_ = false;          // drains hand entries to the job (it is registered)
  // Changed under mu_ when they grow (the job and write_queued subtract without it); read
  // without it by stats.
  mutable std::atomic<std::size_t> depth_{0};
  mutable std::atomic<std::size_t> peak_{0};
  std::shared_ptr<worker_pool> pool_;  // keeps the pool alive while job_ is registered
  std::unique_ptr<job_handle> job_;    // last: unregistered first, while the rest exists
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
