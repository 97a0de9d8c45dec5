// goldylox::background_pool — the threads a cache's background jobs run on, shareable between
// caches (docs/api.md, "background_pool").
//
// A cheap copyable handle: copies share one detail::worker_pool (detail/background/pool.hpp),
// which lives as long as any copy or any cache built with it. Give the same pool to several
// builders to make their caches share its threads:
//
//   goldylox::background_pool pool(2);
//   auto a = goldylox::cache<std::string>::builder().background_pool(pool) ... .build();
//   auto b = goldylox::cache<std::string>::builder().background_pool(pool) ... .build();
//
// Without one, a cache with background work uses background_pool::shared_default(), one thread
// for the whole process.
#pragma once

#include <cstddef>
#include <memory>
#include <utility>

#include "goldylox/detail/background/pool.hpp"
#include "goldylox/version.hpp"

GOLDYLOX_BEGIN_NAMESPACE

namespace detail {
struct background_pool_access;
}  // namespace detail

class background_pool {
 public:
  // Starts `threads` workers. Throws std::invalid_argument unless 1 <= threads <= 256 (the
  // message names the value), std::system_error if the system cannot start a thread. A pool is
  // made once, at start-up, from a constant or a configuration value, so a bad count is a
  // programming error rather than a run-time condition to branch on.
  explicit background_pool(std::size_t threads)
      : pool_(std::make_shared<detail::worker_pool>(threads)) {}

  // The process-wide pool (one worker) used by caches with background work that were given no
  // pool. Created on first use; the caches using it share ownership, so it outlives static
  // destruction as long as some cache does.
  static background_pool shared_default() {
    static const std::shared_ptr<detail::worker_pool> pool =
        std::make_shared<detail::worker_pool>(1);
    return background_pool(pool);
  }

  std::size_t thread_count() const noexcept { return pool_->thread_count(); }

  // Whether both handles share one pool.
  friend bool operator==(const background_pool& a, const background_pool& b) noexcept {
    return a.pool_ == b.pool_;
  }

 private:
  friend struct detail::background_pool_access;
  explicit background_pool(std::shared_ptr<detail::worker_pool> pool) noexcept
      : pool_(std::move(pool)) {}

  std::shared_ptr<detail::worker_pool> pool_;  // never null
};

namespace detail {
// The shared worker_pool behind a handle, for the configuration that hands it to the tiers.
struct background_pool_access {
  static const std::shared_ptr<worker_pool>& pool(const background_pool& p) noexcept {
    return p.pool_;
  }
};
}  // namespace detail

GOLDYLOX_END_NAMESPACE
