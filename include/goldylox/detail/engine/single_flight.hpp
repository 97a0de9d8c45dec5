// single_flight: at most one loader per absent key, however many threads ask (get_or_insert). The
// engine's get_or_insert is load() below; loaders and refresh build on it.
//
// The first thread to miss a key registers a `flight` for it in a small mutex-protected map and
// becomes the leader; later arrivals wait on the flight's state with C++20 atomic wait (a futex),
// not on the map's mutex. The leader re-checks the table (a put may have landed between its miss
// and its registration), runs the factory outside every lock, inserts the result unless a
// concurrent put won, publishes the winning value in the flight and wakes the waiters.
//
// If the factory throws, nothing is inserted, the flight is marked failed and removed, waiters
// wake and retry from the start (one of them becomes the next leader), and the exception
// propagates to the leader's caller. A loader's failure is different: it throws `failure` with
// the loader's status, which the flight keeps, and every waiter of that flight gets the same
// status (as Caffeine's waiters share a failed load) instead of each retrying the loader in turn
// against a backend that just failed. The map is only touched on misses, never on hits.
//
// Batches (a bulk loader serving get_all) use join() and land() directly: the caller leads the
// flights of the keys it joins first and lands every one of them before it waits for any flight
// it follows, so two batches that share keys cannot wait for each other.
//
// A factory that asks for its own key again (directly or through other calls) would wait for
// itself forever; join() detects that the caller already leads the key's flight and throws
// std::logic_error instead, as Caffeine reports a recursive computeIfAbsent.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "goldylox/version.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

// Whether T is an absl::StatusOr (a loader's result, as opposed to a factory's plain value).
template <class T>
inline constexpr bool is_status_or_v = false;
template <class T>
inline constexpr bool is_status_or_v<absl::StatusOr<T>> = true;

template <class K, class S, class Hash, class KeyEqual>
class single_flight {
 public:
  struct flight {
    static constexpr int running = 0, done = 1, failed = 2;
    std::atomic<int> state{running};
    std::optional<S> result;  // written by the leader before state becomes done
    absl::Status error;       // a loader's failure, written before state becomes failed
    std::thread::id leader;   // guarded by the map's mutex
  };

  // A load that failed with a status: shared with the flight's waiters.
  struct failure {
    absl::Status status;
  };

  // Returns the flight for `key` and whether the caller leads it.
  std::pair<std::shared_ptr<flight>, bool> join(const K& key) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto [it, inserted] = flights_.try_emplace(key);
    if (inserted) {
      it->second = std::make_shared<flight>();
      it->second->leader = std::this_thread::get_id();
    } else if (it->second->leader == std::this_thread::get_id()) {
      throw std::logic_error(
          "goldylox: get_or_insert's factory asked for its own key (recursive get_or_insert)");
    }
    return {it->second, inserted};
  }

  // Called by the leader exactly once, with flight::done or flight::failed.
  void land(const K& key, flight& f, int outcome) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      flights_.erase(key);
    }
    f.state.store(outcome, std::memory_order_release);
    f.state.notify_all();
  }

  static int wait(const flight& f) {
    f.state.wait(flight::running, std::memory_order_acquire);
    return f.state.load(std::memory_order_acquire);
  }

  // get_or_insert after its first, counted miss: use(const S&) gets the key's value, made at most
  // once across the threads asking. lookup(key, g) reads every tier without counting and calls
  // g(const S&) on a hit; make() produces a value; insert(S fresh, std::optional<S>& result)
  // stores `fresh` unless a concurrent put got there first, and leaves in `result` the value
  // that won. A follower whose leader failed retries from the start (and may lead).
  template <class Lookup, class Make, class Insert, class Use>
  void load(const K& key, Lookup&& lookup, Make&& make, Insert&& insert, Use&& use) {
    for (;;) {
      auto [f, leader] = join(key);
      if (!leader) {
        if (wait(*f) == flight::done) {
          use(std::as_const(*f->result));
          return;
        }
        if (!f->error.ok()) throw failure{f->error};
        if (lookup(key, use)) return;  // the failed leader's key was put meanwhile
        continue;
      }
      try {
        if (!lookup(key, [&](const S& v) { f->result.emplace(v); })) insert(make(), f->result);
      } catch (const failure& e) {
        f->result.reset();
        f->error = e.status;
        land(key, *f, flight::failed);
        throw;
      } catch (...) {
        f->result.reset();
        land(key, *f, flight::failed);
        throw;
      }
      land(key, *f, flight::done);
      use(std::as_const(*f->result));
      return;
    }
  }

 private:
  std::mutex mutex_;
  absl::flat_hash_map<K, std::shared_ptr<flight>, Hash, KeyEqual> flights_;
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
