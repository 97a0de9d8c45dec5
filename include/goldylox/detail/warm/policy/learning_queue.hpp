// The queue behind a policy's deferred learning (concepts.hpp's deferred_learning_policy): the
// events a policy learns from, kept in arrival order until the owner has them replayed.
//
// Bound 0 (the default) means nothing is deferred: the policy learns as events arrive and never
// pushes. A push that fills the queue replays it at once, so a policy never lags its requests by
// more than the bound, whether or not its owner calls learn(). replay(event) must not push.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

#include "goldylox/version.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

template <class Event>
class learning_queue {
 public:
  bool deferred() const noexcept { return bound_ != 0; }
  std::size_t size() const noexcept { return events_.size(); }

  // A new bound; what it no longer holds is replayed first.
  template <class Replay>
  void set_bound(std::size_t n, Replay&& replay) {
    if (n < events_.size()) drain(replay);
    bound_ = n;
    events_.reserve(n);
  }

  template <class Replay>
  void push(Event e, Replay&& replay) {
    events_.push_back(std::move(e));
    if (events_.size() >= bound_) drain(replay);
  }

  // Replays every queued event in order; false if there were none.
  template <class Replay>
  bool drain(Replay&& replay) {
    if (events_.empty()) return false;
    for (const Event& e : events_) replay(e);
    events_.clear();
    return true;
  }

 private:
  std::size_t bound_ = 0;
  std::vector<Event> events_;
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
