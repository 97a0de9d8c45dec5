// Epoch-based memory reclamation (EBR) for the node-mode hot tier.
//
// Readers pin the current global epoch before touching shared nodes and unpin afterwards; a pin
// writes only the calling thread's own record (its own cache line), never a shared line. Writers
// that unlink a node retire it with the epoch at retirement; it is freed once the global epoch has
// advanced twice past that, which proves that every reader that could have seen it has unpinned.
//
// Invariants:
//  * The global epoch advances from G to G+1 only when every pinned record announces G. A pinned
//    reader therefore announces G or G-1, so an object retired at epoch E is unreachable to every
//    pinned reader once the global epoch is >= E+2.
//  * pin() announces with a seq_cst exchange and re-checks the global epoch; try_advance() scans
//    the records with seq_cst loads. In the single total order of seq_cst operations this forbids
//    the store-buffering outcome in which a reader loads a node pointer that a reclaimer believes
//    unreachable. No fences are used, so ThreadSanitizer (which ignores fences) checks all of it.
//  * Users must load shared node pointers and unlink them with seq_cst operations, and retire()
//    reads the epoch seq_cst, so the retirement epoch is never older than the epoch announced by
//    a reader that saw the node before its unlink (on x86 seq_cst loads are plain loads, and the
//    unlink is a locked instruction either way).
//  * Records are never freed while the process runs; a thread's record is recycled after it exits.
//    Nodes still in limbo when a thread exits move to a shared orphan list that any later
//    reclaimer frees. The domain is intentionally leaked at exit (it stays reachable, so leak
//    checkers stay quiet), because static destruction order cannot be trusted with thread-exit
//    callbacks that may still run.
//
// Pins nest (a visitor may call back into the cache), tracked by an owner-only counter.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <vector>

#include "goldylox/detail/common/platform.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

class epoch_domain {
 public:
  using deleter = void (*)(void*) noexcept;

  struct retired {
    void* object;
    deleter destroy;
    std::uint64_t epoch;
  };

  struct alignas(cache_line) record {
    std::atomic<std::uint64_t> announced{0};  // 0 = quiescent, else (epoch << 1) | 1
    std::atomic<bool> in_use{false};
    record* next = nullptr;  // immutable once the record is published
    // Owner-thread only:
    unsigned nesting = 0;
    unsigned retires_since_scan = 0;
    std::vector<retired> limbo;
  };

  // How many retirements a thread batches before it tries to advance and reclaim.
  static constexpr unsigned scan_interval = 64;

  static epoch_domain& global() {
    // Leaked on purpose; see the header comment.
    static epoch_domain* const domain = new epoch_domain;
    return *domain;
  }

  void pin(record& r) noexcept {
    if (r.nesting++ != 0) return;
    std::uint64_t e = epoch_.load(std::memory_order_relaxed);
    for (;;) {
      r.announced.exchange((e << 1) | 1, std::memory_order_seq_cst);
      const std::uint64_t now = epoch_.load(std::memory_order_seq_cst);
      if (now == e) return;
      e = now;
    }
  }

  void unpin(record& r) noexcept {
    if (--r.nesting == 0) r.announced.store(0, std::memory_order_release);
  }

  void retire(record& r, void* object, deleter destroy) {
    // seq_cst, like the unlink before it and the readers' pointer loads: in that single total
    // order a reader that loaded the object before the unlink announced an epoch <= this one.
    r.limbo.push_back({object, destroy, epoch_.load(std::memory_order_seq_cst)});
    if (++r.retires_since_scan >= scan_interval) {
      r.retires_since_scan = 0;
      try_advance();
      reclaim(r.limbo, epoch_.load(std::memory_order_acquire));
      reclaim_orphans();
    }
  }

  // Advances the global epoch if every pinned thread has caught up with it.
  bool try_advance() noexcept {
    const std::uint64_t e = epoch_.load(std::memory_order_relaxed);
    for (record* r = head_.load(std::memory_order_acquire); r != nullptr; r = r->next) {
      const std::uint64_t a = r->announced.load(std::memory_order_seq_cst);
      if ((a & 1) != 0 && (a >> 1) != e) return false;
    }
    std::uint64_t expected = e;
    return epoch_.compare_exchange_strong(expected, e + 1, std::memory_order_seq_cst);
  }

  // Claims a record for the calling thread (recycling one whose thread exited).
  record& acquire_record() {
    for (record* r = head_.load(std::memory_order_acquire); r != nullptr; r = r->next) {
      bool expected = false;
      if (!r->in_use.load(std::memory_order_relaxed) &&
          r->in_use.compare_exchange_strong(expected, true, std::memory_order_acquire)) {
        return *r;
      }
    }
    auto* r = new record;
    r->in_use.store(true, std::memory_order_relaxed);
    record* head = head_.load(std::memory_order_relaxed);
    do {
      r->next = head;
    } while (!head_.compare_exchange_weak(head, r, std::memory_order_release,
                                          std::memory_order_relaxed));
    return *r;
  }

  // Called when the owning thread exits: its pending garbage becomes everybody's.
  void release_record(record& r) {
    if (!r.limbo.empty()) {
      std::lock_guard<std::mutex> lock(orphan_mutex_);
      orphans_.insert(orphans_.end(), r.limbo.begin(), r.limbo.end());
      r.limbo.clear();
      r.limbo.shrink_to_fit();
    }
    r.nesting = 0;
    r.retires_since_scan = 0;
    r.announced.store(0, std::memory_order_release);
    r.in_use.store(false, std::memory_order_release);
  }

  std::uint64_t epoch() const noexcept { return epoch_.load(std::memory_order_acquire); }

  // Frees everything the calling thread retired that is provably unreachable now; used by tests
  // and by callers that want garbage gone without waiting for the next scan interval.
  void collect(record& r) {
    for (int i = 0; i < 3 && try_advance(); ++i) {
    }
    reclaim(r.limbo, epoch_.load(std::memory_order_acquire));
    reclaim_orphans();
  }

 private:
  epoch_domain() = default;

  static void reclaim(std::vector<retired>& list, std::uint64_t global_epoch) noexcept {
    // Entries are appended in non-decreasing epoch order, so the freeable ones form a prefix.
    std::size_t n = 0;
    while (n < list.size() && list[n].epoch + 2 <= global_epoch) {
      list[n].destroy(list[n].object);
      ++n;
    }
    list.erase(list.begin(), list.begin() + static_cast<std::ptrdiff_t>(n));
  }

  void reclaim_orphans() {
    std::unique_lock<std::mutex> lock(orphan_mutex_, std::try_to_lock);
    if (!lock.owns_lock() || orphans_.empty()) return;
    const std::uint64_t e = epoch_.load(std::memory_order_acquire);
    std::size_t kept = 0;
    for (auto& item : orphans_) {
      if (item.epoch + 2 <= e) {
        item.destroy(item.object);
      } else {
        orphans_[kept++] = item;
      }
    }
    orphans_.resize(kept);
  }

  alignas(cache_line) std::atomic<std::uint64_t> epoch_{2};
  alignas(cache_line) std::atomic<record*> head_{nullptr};
  std::mutex orphan_mutex_;
  std::vector<retired> orphans_;
};

// Per-thread access to the global domain. The fast path reads a trivially-initialized
// thread_local pointer (no TLS init guard); the first use registers an exit hook.
inline thread_local epoch_domain::record* tls_epoch_record = nullptr;

struct epoch_thread_exit {
  epoch_domain::record* r = nullptr;
  ~epoch_thread_exit() {
    if (r != nullptr) {
      epoch_domain::global().release_record(*r);
      tls_epoch_record = nullptr;
    }
  }
};

GOLDYLOX_NOINLINE inline epoch_domain::record& register_epoch_thread() {
  static thread_local epoch_thread_exit exit_hook;
  epoch_domain::record& r = epoch_domain::global().acquire_record();
  exit_hook.r = &r;
  tls_epoch_record = &r;
  return r;
}

GOLDYLOX_ALWAYS_INLINE epoch_domain::record& this_thread_epoch_record() {
  epoch_domain::record* r = tls_epoch_record;
  return GOLDYLOX_LIKELY(r != nullptr) ? *r : register_epoch_thread();
}

// RAII pin of the calling thread.
class epoch_guard {
 public:
  explicit epoch_guard(epoch_domain& d) : domain_(d), record_(this_thread_epoch_record()) {
    domain_.pin(record_);
  }
  epoch_guard(const epoch_guard&) = delete;
  epoch_guard& operator=(const epoch_guard&) = delete;
  ~epoch_guard() { domain_.unpin(record_); }

  template <class T>
  void retire(T* object) {
    domain_.retire(record_, object, [](void* p) noexcept { delete static_cast<T*>(p); });
  }

 private:
  epoch_domain& domain_;
  epoch_domain::record& record_;
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
