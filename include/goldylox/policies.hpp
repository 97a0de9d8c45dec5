// The eviction policies goldylox ships, by name, for the warm tier and goldylox-sim.
//
//   policy::lru     least recently used
//   policy::fifo    first in, first out
//   policy::clock   second chance (one reference bit)
//   policy::lfu     least frequently used, counts kept while resident, ties to the oldest
//   policy::arc     Adaptive Replacement Cache (Megiddo & Modha)
//   policy::lirs    Low Inter-reference Recency Set (Jiang & Zhang)
//   policy::s3fifo  S3-FIFO (Yang et al.): small, main and ghost FIFO queues
//   policy::sieve   SIEVE (Zhang et al.): a FIFO with a hand that clears visited bits
//   policy::w_tinylfu        W-TinyLFU with Caffeine's hill-climbing window
//   policy::w_tinylfu_fixed  W-TinyLFU with a fixed 1 % window
//   policy::linear_model     an online-trained linear model ranks a sample of entries
//   policy::adaptive  the default: follows the best of LIRS (with 3 ghosts per entry), lru, arc,
//                     s3fifo, w_tinylfu and sieve on the current workload (adaptive_of<...>
//                     picks other experts)
//
// Each satisfies goldylox::eviction_policy (concepts.hpp), which is also what a user policy must
// satisfy; docs/eviction.md has their behaviour, costs and measured hit ratios.
#pragma once

#include <string_view>
#include <type_traits>

#include "goldylox/concepts.hpp"
#include "goldylox/detail/warm/policy/adaptive.hpp"
#include "goldylox/detail/warm/policy/arc.hpp"
#include "goldylox/detail/warm/policy/classic.hpp"
#include "goldylox/detail/warm/policy/lfu.hpp"
#include "goldylox/detail/warm/policy/linear.hpp"
#include "goldylox/detail/warm/policy/lirs.hpp"
#include "goldylox/detail/warm/policy/s3fifo.hpp"
#include "goldylox/detail/warm/policy/sieve.hpp"
#include "goldylox/detail/warm/policy/tinylfu.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace policy {

using lru = detail::lru_policy;
using fifo = detail::fifo_policy;
using clock = detail::clock_policy;
using lfu = detail::lfu_policy;
using arc = detail::arc_policy;
using lirs = detail::lirs_policy;
using s3fifo = detail::s3fifo_policy;
using sieve = detail::sieve_policy;
using w_tinylfu = detail::w_tinylfu_policy;
using w_tinylfu_fixed = detail::w_tinylfu_fixed_policy;
using linear_model = detail::linear_model_policy;
using linear_model_options = detail::linear_model_options;

// An adaptive policy over any experts (each an eviction_policy); the first leads at the start.
template <eviction_policy... Experts>
using adaptive_of = detail::adaptive_policy<Experts...>;
using adaptive_options = detail::adaptive_options;
using adaptive = adaptive_of<detail::lirs_deep_policy, lru, arc, s3fifo, w_tinylfu, sieve>;

// Calls f(std::type_identity<P>{}, name) for each policy above, by the name goldylox-sim and the
// builders' warm_tier_policy(name) accept: lru, fifo, clock, lfu, arc, lirs, s3fifo, sieve,
// w-tinylfu, w-tinylfu-fixed, linear-model, adaptive.
template <class F>
void for_each_named(F&& f) {
  f(std::type_identity<lru>{}, "lru");
  f(std::type_identity<fifo>{}, "fifo");
  f(std::type_identity<clock>{}, "clock");
  f(std::type_identity<lfu>{}, "lfu");
  f(std::type_identity<arc>{}, "arc");
  f(std::type_identity<lirs>{}, "lirs");
  f(std::type_identity<s3fifo>{}, "s3fifo");
  f(std::type_identity<sieve>{}, "sieve");
  f(std::type_identity<w_tinylfu>{}, "w-tinylfu");
  f(std::type_identity<w_tinylfu_fixed>{}, "w-tinylfu-fixed");
  f(std::type_identity<linear_model>{}, "linear-model");
  f(std::type_identity<adaptive>{}, "adaptive");
}

static_assert(eviction_policy<lru> && eviction_policy<fifo> && eviction_policy<clock> &&
              eviction_policy<lfu> && eviction_policy<arc> && eviction_policy<lirs> &&
              eviction_policy<s3fifo> && eviction_policy<sieve> && eviction_policy<w_tinylfu> &&
              eviction_policy<w_tinylfu_fixed> && eviction_policy<linear_model> &&
              eviction_policy<adaptive>);
static_assert(deferred_learning_policy<linear_model> && deferred_learning_policy<adaptive>);

}  // namespace policy
GOLDYLOX_END_NAMESPACE
