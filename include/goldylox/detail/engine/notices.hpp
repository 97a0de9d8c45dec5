// Removal notification: the tiers report each entry that leaves the cache (erased, replaced,
// expired, evicted: goldylox/removal.hpp) while they hold its lock; the user's listener must
// never run there (it may block, throw, or call back into the cache). So a report only copies
// the key and value into a queue of the reporting thread, and the queue is delivered on that
// same thread once no engine call that can remove entries is in progress on it: every such call
// (and every pool job that removes) holds a notice_scope, and the outermost scope's end delivers.
// A removal is thus heard on the thread whose call caused it (the background pool's for expiry
// sweeps and queued moves), after that call has released every lock and before it returns to
// its caller — as Guava's synchronous listeners, but never inside a tier.
//
// Layout. One thread_local queue per (K, S) instantiation (no allocation per notice beyond the
// copies: the vector's capacity is kept), and one thread_local record shared by all caches: the
// scope depth and the queues holding notices (their flush functions). The depth is shared so
// that a call of one cache nested in another's (a loader filling a second cache) delivers
// neither cache's notices until the outer call is done.
//
// Invariants: notices are delivered in the order they were reported, per (K, S); a listener
// that throws is counted (removal_listener_failures) and the others still run; a listener may
// call into any cache (its calls deliver their own notices when they return). A notice holds a
// shared reference to its listener, so a cache destroyed while its notices wait leaves them
// deliverable. What a listener blocks is the thread that removed: no lock is held then, so
// other threads keep using the cache; at most one call's notices wait per thread.
// May call: common/ only.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "goldylox/removal.hpp"
#include "goldylox/version.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

// The calling thread's delivery state, shared by every cache.
struct notice_thread_state {
  unsigned depth = 0;              // notice_scopes open on this thread
  std::vector<void (*)()> queued;  // the flush of each (K, S) queue that holds notices
};
inline thread_local notice_thread_state notice_thread;

// Delivers every queued notice of the calling thread (called at depth 0: no engine call is in
// progress on it, so no tier lock is held). A listener's own calls may queue and deliver more
// meanwhile.
inline void deliver_notices() noexcept {
  notice_thread_state& t = notice_thread;
  while (!t.queued.empty()) {
    void (*const flush)() = t.queued.back();
    t.queued.pop_back();
    flush();
  }
}

// Held by each engine call (and pool job) that can remove entries, when the cache has a
// listener: the outermost one's end delivers the thread's notices.
class notice_scope {
 public:
  explicit notice_scope(bool active) noexcept : active_(active) {
    if (active_) ++notice_thread.depth;
  }
  notice_scope(const notice_scope&) = delete;
  notice_scope& operator=(const notice_scope&) = delete;
  ~notice_scope() {
    if (active_ && --notice_thread.depth == 0 && !notice_thread.queued.empty()) {
      deliver_notices();
    }
  }

 private:
  bool active_;
};

template <class K, class S>
class removal_notifier {
 public:
  using listener_type = std::function<void(const K&, const S&, removal_cause)>;

  // Set once, before the cache is shared (empty: no listener, and every scope is inactive).
  void set(listener_type listener) {
    if (listener) target_ = std::make_shared<target>(std::move(listener));
  }
  bool active() const noexcept { return target_ != nullptr; }

  // Queues a notice of (key, value, cause) for the calling thread: called under tier locks, so it
  // copies and never calls the listener. A notice that cannot be queued (copying the key or value
  // failed) is counted as dropped, and the removal itself goes ahead.
  void report(const K& key, const S& value, removal_cause cause) const noexcept {
    try {
      std::vector<notice>& q = queue();
      if (q.empty()) notice_thread.queued.push_back(&flush);
      q.push_back(notice{target_, key, value, cause});
    } catch (...) {
      target_->dropped.fetch_add(1, std::memory_order_relaxed);
    }
  }

  // Listener calls that threw, and notices that could not be queued.
  std::uint64_t failures() const noexcept {
    return target_ == nullptr ? 0 : target_->failures.load(std::memory_order_relaxed);
  }
  std::uint64_t dropped() const noexcept {
    return target_ == nullptr ? 0 : target_->dropped.load(std::memory_order_relaxed);
  }

 private:
  struct target {
    explicit target(listener_type l) : listener(std::move(l)) {}
    listener_type listener;
    std::atomic<std::uint64_t> failures{0};
    std::atomic<std::uint64_t> dropped{0};
  };
  struct notice {
    std::shared_ptr<target> to;
    K key;
    S value;
    removal_cause cause;
  };

  // Delivers this thread's notices of (K, S). The batch is taken out first: a listener's own
  // calls may queue more, which a later flush (or their own scope) delivers.
  static void flush() noexcept {
    std::vector<notice> batch;
    std::vector<notice>& q = queue();
    batch.swap(q);
    for (notice& n : batch) {
      try {
        n.to->listener(n.key, n.value, n.cause);
      } catch (...) {
        n.to->failures.fetch_add(1, std::memory_order_relaxed);
      }
    }
    batch.clear();
    if (q.empty()) q.swap(batch);  // keep the capacity for the next batch
  }

  // The calling thread's notices of (K, S). A function-local thread_local: GCC 12 rejects an
  // inline thread_local static member of a class template with a non-trivial type.
  static std::vector<notice>& queue() noexcept {
    thread_local std::vector<notice> q;
    return q;
  }
  std::shared_ptr<target> target_;
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
