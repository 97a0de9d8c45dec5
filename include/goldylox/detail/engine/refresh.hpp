// Refresh (a typed_cache's refresh_after_write): the reloads that reads of due entries claimed,
// queued for the background pool and made there.
//
// The hot table decides when an entry is due and lets exactly one reader claim each due write
// (hot/table.hpp, "Refresh"); that reader calls request() and returns the old value at once. A
// request is the key, its slot and the claimed write time, which together name the write the
// reload replaces. Requests wait in a move_queue (promotion.hpp: striped, try-locked, bounded and
// lossy: a read never waits for more than a few tries of a stripe's lock); a full stripe, or one
// still busy after those tries, refuses the request, and the table then releases the claim so a
// later read claims it again. Each accepted request notifies the
// pool job, which drains the queue and hands every request to the engine's reload (engine.hpp):
// the loader runs on the pool thread, outside every lock, and its value is stored only if the
// slot still holds the claimed write (any write, removal or eviction since discards it, as
// Caffeine 3 discards a refresh that raced with a write). A reload that fails keeps the old value
// and releases the claim.
//
// Cost on the read path: none until an entry falls due (the table's inline read checks one
// coarse date that already carries the time the write falls due); a due read makes one CAS, one
// try-locked push and one pool notify, once per write of the entry.
//
// Owns: the queue and the pool job. Invariant: the job is registered only once the table's
// observer can reach it, and no run outlives this object (~job_handle waits); the engine declares
// it last, so it goes first.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <stop_token>
#include <utility>

#include "goldylox/background_pool.hpp"
#include "goldylox/detail/background/pool.hpp"
#include "goldylox/detail/common/hash.hpp"
#include "goldylox/detail/engine/promotion.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

// One claimed refresh: the key, its slot in the hot table and the claimed write's time.
template <class K>
struct refresh_request {
  refresh_request(const K& k, std::size_t s, std::int64_t a) : key(k), slot(s), at(a) {}
  K key;
  std::size_t slot;
  std::int64_t at;
};

template <class K>
class refresh_queue {
 public:
  using request_type = refresh_request<K>;
  using reload_function = std::function<void(request_type&&)>;

  refresh_queue() = default;
  refresh_queue(const refresh_queue&) = delete;
  refresh_queue& operator=(const refresh_queue&) = delete;

  // Registers the pool job that hands each queued request to reload (once, before the table can
  // call request()).
  void start(const goldylox::background_pool& pool, reload_function reload) {
    reload_ = std::move(reload);
    job_ = background_pool_access::pool(pool)->add([this](std::stop_token) { run_pending(); },
                                                   std::chrono::nanoseconds(0));
  }

  static constexpr unsigned push_attempts = 64;

  bool active() const noexcept { return job_ != nullptr; }

  // A reader claimed the refresh of `key` (the table's refresh observer). False if the queue
  // refused it (the caller releases the claim).
  bool request(const K& key, std::size_t slot, std::int64_t at) noexcept {
    // A refused request costs a reload until the entry's next read, so unlike a promotion it is
    // worth a few tries of a busy stripe (held for one push or one swap).
    if (queue_.push_trying(push_attempts, splitmix_mix(slot), key, slot, at) ==
        move_queue<request_type>::pushed::dropped) {
      return false;
    }
    job_->notify();
    return true;
  }

  // Makes the queued reloads on the calling thread (the pool's job, run_pending_tasks). One
  // drainer at a time: a caller waits for a batch in progress, so when it returns every request
  // queued before the call has been made.
  void run_pending() {
    if (job_ == nullptr) return;
    std::lock_guard lock(run_mu_);
    queue_.drain([this](request_type&& r) { reload_(std::move(r)); });
  }

  // Requests waiting now (approximate while readers queue).
  std::size_t pending() { return job_ != nullptr ? queue_.pending() : 0; }

 private:
  move_queue<request_type> queue_;
  reload_function reload_;
  std::mutex run_mu_;
  std::unique_ptr<job_handle> job_;  // last: its destruction waits for a run in progress
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
