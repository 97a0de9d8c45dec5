// The eviction policies goldylox ships, by name, for the warm tier and goldylox-sim.
//
//   policy::lru     least recently used
//   policy::fifo    first in, first out
//   policy::clock   second chance (one reference bit)
//   policy::lfu     least frequently used, counts kept while resident, ties to the oldest
//   policy::arc     Adaptive Replacement Cache (Megiddo & Modha)
//
// Each satisfies goldylox::eviction_policy (concepts.hpp), which is also what a user policy must
// satisfy; docs/eviction.md has their behaviour, costs and measured hit ratios.
#pragma once

#include "goldylox/concepts.hpp"
#include "goldylox/detail/policy_arc.hpp"
#include "goldylox/detail/policy_classic.hpp"
#include "goldylox/detail/policy_lfu.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace policy {

using lru = detail::lru_policy;
using fifo = detail::fifo_policy;
using clock = detail::clock_policy;
using lfu = detail::lfu_policy;
using arc = detail::arc_policy;

static_assert(eviction_policy<lru> && eviction_policy<fifo> && eviction_policy<clock> &&
              eviction_policy<lfu> && eviction_policy<arc>);

}  // namespace policy
GOLDYLOX_END_NAMESPACE
