// The cold tier inside cache<K> and typed_cache<K, V>: evictions from memory land on disk and
// come back on a read, values keep their type across a restart, writes never let an older cold
// value resurface, values that cannot be serialized stay in memory, and the builder refuses
// what cannot work with clear errors.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "goldylox/goldylox.hpp"
#include "test_support.hpp"

namespace {

namespace fs = std::filesystem;

struct user {
  int id = 0;
  std::string name;
  std::vector<double> scores;
  bool operator==(const user&) const = default;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(id, name, scores);
  }
};

// Copyable but not serializable: stays in memory.
struct opaque {
  int x = 0;
};

using goldylox_test::process_threads;
using goldylox_test::temp_dir;

user user_for(int i) {
  return user{i, "user-" + std::to_string(i), {i * 0.5, i * 1.5}};
}

goldylox::cache<std::string> make_cache(const std::string& dir, std::size_t hot = 64,
                                        std::size_t warm = 128) {
  auto made = goldylox::cache<std::string>::builder()
                  .hot_tier_max_entries(hot)
                  .warm_tier_max_entries(warm)
                  .cold_tier_storage_path(dir)
                  .cold_tier_max_bytes(64 << 20)
                  .cold_tier_segment_bytes(256 << 10)
                  .cold_tier_durability(goldylox::cold_durability::none)
                  .enable_telemetry(true)
                  .build();
  EXPECT_TRUE(made.ok()) << made.status();
  return *std::move(made);
}

TEST(ColdCache, EvictionsLandOnDiskAndComeBackTyped) {
  temp_dir dir;
  auto cache = make_cache(dir.path());
  for (int i = 0; i < 3000; ++i) {
    ASSERT_TRUE(cache.put("user:" + std::to_string(i), user_for(i)).ok());
    ASSERT_TRUE(cache.put("n:" + std::to_string(i), i).ok());
  }
  const auto st = cache.stats();
  EXPECT_GT(st.cold_demotions, 5000u);
  EXPECT_GT(st.cold_size, 5000u);
  EXPECT_GT(st.cold_disk_bytes, 0u);
  for (int i = 0; i < 3000; i += 13) {
    auto u = cache.get<user>("user:" + std::to_string(i));
    ASSERT_TRUE(u.ok()) << u.status();
    ASSERT_TRUE(u->has_value()) << i;
    EXPECT_EQ(**u, user_for(i));
    auto n = cache.get<int>("n:" + std::to_string(i));
    ASSERT_TRUE(n.ok() && n->has_value());
    EXPECT_EQ(**n, i);
    // The type still matters on disk.
    auto wrong = cache.get<int>("user:" + std::to_string(i));
    EXPECT_TRUE(absl::IsFailedPrecondition(wrong.status())) << wrong.status();
  }
  EXPECT_GT(cache.stats().cold_hits, 0u);
  cache.run_pending_tasks();  // the promotions those reads queued for the background pool
  EXPECT_GT(cache.stats().cold_promotions, 0u);
  EXPECT_TRUE(cache.contains(std::string("user:5")));
  EXPECT_FALSE(cache.contains(std::string("user:99999")));
}

TEST(ColdCache, ReopeningTheDirectoryBringsEverythingBack) {
  temp_dir dir;
  {
    auto cache = make_cache(dir.path());
    for (int i = 0; i < 1000; ++i)
      ASSERT_TRUE(cache.put("u" + std::to_string(i), user_for(i)).ok());
    ASSERT_TRUE(cache.put(std::string("greeting"), std::string("hello")).ok());
  }  // closing writes the memory tiers to disk
  auto cache = make_cache(dir.path());
  for (int i = 0; i < 1000; ++i) {
    auto u = cache.get<user>("u" + std::to_string(i));
    ASSERT_TRUE(u.ok() && u->has_value()) << i << ": " << u.status();
    EXPECT_EQ(**u, user_for(i));
  }
  auto g = cache.get<std::string>(std::string("greeting"));
  ASSERT_TRUE(g.ok() && g->has_value());
  EXPECT_EQ(**g, "hello");
  auto wrong = cache.get<double>(std::string("greeting"));
  EXPECT_TRUE(absl::IsFailedPrecondition(wrong.status()));
}

TEST(ColdCache, WritesNeverLetAnOlderColdValueResurface) {
  temp_dir dir;
  {
    auto cache = make_cache(dir.path(), 16, 16);
    for (int i = 0; i < 500; ++i) ASSERT_TRUE(cache.put("k" + std::to_string(i), i).ok());
    // Everything below 400 is on disk now; overwrite, remove and conditionally write some.
    for (int i = 0; i < 100; ++i) ASSERT_TRUE(cache.put("k" + std::to_string(i), -i).ok());
    for (int i = 100; i < 200; ++i) {
      auto removed = cache.remove("k" + std::to_string(i));
      ASSERT_TRUE(removed.ok() && *removed) << i;
    }
    for (int i = 200; i < 300; ++i) {
      auto prev = cache.replace("k" + std::to_string(i), i * 10);
      ASSERT_TRUE(prev.ok() && prev->has_value()) << i;
      EXPECT_EQ(**prev, i);
    }
    for (int i = 300; i < 310; ++i) {
      auto existing = cache.put_if_absent("k" + std::to_string(i), 0);
      ASSERT_TRUE(existing.ok() && existing->has_value()) << "cold value not seen for " << i;
      EXPECT_EQ(**existing, i);
    }
    // Push the new values out of memory too.
    for (int i = 1000; i < 1200; ++i) ASSERT_TRUE(cache.put("f" + std::to_string(i), i).ok());
    const auto check = [&] {
      for (int i = 0; i < 310; ++i) {
        auto v = cache.get<int>("k" + std::to_string(i));
        ASSERT_TRUE(v.ok());
        if (i >= 100 && i < 200) {
          EXPECT_FALSE(v->has_value()) << "removed key came back: " << i;
        } else {
          ASSERT_TRUE(v->has_value()) << i;
          EXPECT_EQ(**v, i < 100 ? -i : i < 300 ? i * 10 : i);
        }
      }
    };
    check();
  }
  auto cache = make_cache(dir.path(), 16, 16);
  for (int i = 0; i < 310; ++i) {
    auto v = cache.get<int>("k" + std::to_string(i));
    ASSERT_TRUE(v.ok());
    if (i >= 100 && i < 200) {
      EXPECT_FALSE(v->has_value()) << "removed key came back after a restart: " << i;
    } else {
      ASSERT_TRUE(v->has_value()) << i;
      EXPECT_EQ(**v, i < 100 ? -i : i < 300 ? i * 10 : i);
    }
  }
}

TEST(ColdCache, UnserializableValuesStayInMemoryAndAreCounted) {
  temp_dir dir;
  auto cache = make_cache(dir.path(), 16, 0);  // CLOCK alone: "o" goes after its second chance
  ASSERT_TRUE(cache.put(std::string("o"), opaque{7}).ok());
  auto o = cache.get<opaque>(std::string("o"));
  ASSERT_TRUE(o.ok() && o->has_value());
  EXPECT_EQ((*o)->x, 7);
  for (int i = 0; i < 5000; ++i) ASSERT_TRUE(cache.put("x" + std::to_string(i), i).ok());
  // Every eviction tried (a sync writes those still waiting for the background pool).
  ASSERT_TRUE(cache.sync().ok());
  EXPECT_GT(cache.stats().cold_refused, 0u);
  auto gone = cache.get<opaque>(std::string("o"));
  ASSERT_TRUE(gone.ok());
  EXPECT_FALSE(gone->has_value());
}

// One table: `read` is the entry's reference bit (read since stored); two tables: reads in the
// warm tier.
TEST(ColdCache, TheRereadRuleKeepsEntriesNeverReadOffTheDisk) {
  for (const auto layout :
       {goldylox::memory_layout::one_table, goldylox::memory_layout::two_tables}) {
    SCOPED_TRACE(layout == goldylox::memory_layout::one_table ? "one table" : "two tables");
    temp_dir dir;
    const auto build = [&](goldylox::cold_admission rule) {
      return goldylox::typed_cache<int, int>::builder()
          .hot_tier_max_entries(1)  // two tables: each put pushes the previous key to the warm tier
          .warm_tier_max_entries(64)
          .warm_tier_policy("fifo")
          .memory_layout(layout)
          .cold_tier_storage_path(dir.path())
          .cold_tier_segment_bytes(256 << 10)
          .cold_tier_max_bytes(16 << 20)
          .cold_tier_admission(rule)
          .enable_telemetry(true)
          // Inline demotions: the counts below are read right after the puts that evicted.
          .enable_background_workers(false)
          .build();
    };
    {
      auto made = build(goldylox::cold_admission::reread);
      ASSERT_TRUE(made.ok()) << made.status();
      EXPECT_EQ(made->config().cold_tier_admission, goldylox::cold_admission::reread);
      // 0..15 are read once after they are stored (two tables: in the warm tier); 1000.. never.
      for (int i = 0; i < 16; ++i) ASSERT_TRUE(made->put(i, i).ok());
      ASSERT_TRUE(made->put(1000, 1000).ok());
      for (int i = 0; i < 16; ++i) EXPECT_EQ(made->get(i), i);
      for (int i = 1001; i < 1016; ++i) ASSERT_TRUE(made->put(i, i).ok());
      for (int i = 1016; i < 2000; ++i) ASSERT_TRUE(made->put(i, i).ok());
      const auto st = made->stats();
      EXPECT_GT(st.cold_not_admitted, 800u);
      EXPECT_LE(st.cold_demotions, 16u);
      for (int i = 0; i < 16; ++i) EXPECT_EQ(made->get(i), i) << "read entries reach the disk";
      EXPECT_FALSE(made->get(1100).has_value()) << "an entry never read was not written";
    }
    auto all = build(goldylox::cold_admission::all);
    ASSERT_TRUE(all.ok()) << all.status();
    for (int i = 3000; i < 4000; ++i) ASSERT_TRUE(all->put(i, i).ok());
    EXPECT_EQ(all->stats().cold_not_admitted, 0u);
    EXPECT_GT(all->stats().cold_demotions, 900u);
    EXPECT_EQ(all->get(3100), 3100);
  }
}

TEST(ColdCache, TypedCacheRoundTripsThroughDisk) {
  temp_dir dir;
  const auto build = [&] {
    return goldylox::typed_cache<int, user>::builder()
        .hot_tier_max_entries(32)
        .warm_tier_max_entries(0)
        .cold_tier_storage_path(dir.path())
        .cold_tier_codec("lz4")
        .cold_tier_max_bytes(16 << 20)
        .cold_tier_segment_bytes(256 << 10)
        .build();
  };
  {
    auto made = build();
    ASSERT_TRUE(made.ok()) << made.status();
    for (int i = 0; i < 2000; ++i) ASSERT_TRUE(made->put(i, user_for(i)).ok());
    for (int i = 0; i < 2000; i += 7) {
      auto u = made->get(i);
      ASSERT_TRUE(u.has_value()) << i;
      EXPECT_EQ(*u, user_for(i));
    }
    EXPECT_EQ(made->config().cold_tier_codec, "lz4");
    EXPECT_EQ(made->config().compression_level, 0);
  }
  auto made = build();
  ASSERT_TRUE(made.ok()) << made.status();
  for (int i = 0; i < 2000; ++i) {
    auto u = made->get(i);
    ASSERT_TRUE(u.has_value()) << i;
    EXPECT_EQ(*u, user_for(i));
  }
}

// A full disk (RLIMIT_FSIZE below the segment size, in a child process): no cold write lands,
// every put still succeeds, reads are served from memory, and the refusals are counted.
TEST(ColdCache, AFullDiskLeavesTheCacheServingFromMemory) {
  temp_dir dir;
  const int code = goldylox_test::in_child([&] {
    ::signal(SIGXFSZ, SIG_IGN);
    rlimit lim{1 << 20, 1 << 20};
    if (::setrlimit(RLIMIT_FSIZE, &lim) != 0) return 10;
    auto made = goldylox::typed_cache<int, std::string>::builder()
                    .hot_tier_max_entries(64)
                    .warm_tier_max_entries(64)
                    .cold_tier_storage_path(dir.path())
                    .cold_tier_segment_bytes(4 << 20)
                    .cold_tier_max_bytes(64 << 20)
                    .enable_telemetry(true)
                    // Inline demotions: each refusal is counted before the put that evicted
                    // returns, and no value waits for the disk when the reads below run.
                    .enable_background_workers(false)
                    .build();
    if (!made.ok()) return 11;
    for (int i = 0; i < 1000; ++i) {
      if (!made->put(i, std::string(100, 'v')).ok()) return 12;
    }
    const auto st = made->stats();
    if (st.cold_refused < 800 || st.cold_demotions != 0 || st.cold_size != 0) return 13;
    if (made->get(999) != std::string(100, 'v')) return 14;  // the newest are in memory
    int present = 0;  // what memory holds, no more: nothing came from the disk
    for (int i = 0; i < 1000; ++i) present += made->get(i).has_value();
    if (present > 128 || made->stats().cold_hits != 0) return 15;
    return 0;
  });
  EXPECT_EQ(code, 0);
}

TEST(ColdCache, AReadOnlyDirectoryFailsBuildWithAClearError) {
  temp_dir dir;
  const std::string ro = goldylox_test::read_only_dir(dir);
  const int code = goldylox_test::in_child([&] {
    if (!goldylox_test::drop_root()) return 10;
    auto made = goldylox::cache<std::string>::builder()
                    .hot_tier_max_entries(8)
                    .cold_tier_storage_path(ro)
                    .build();
    if (made.ok()) return 11;
    if (!absl::IsPermissionDenied(made.status())) return 12;
    return made.status().message().find(ro) == std::string::npos ? 13 : 0;
  });
  EXPECT_EQ(code, 0);
}

TEST(ColdCache, TheBuilderRefusesWhatCannotWork) {
  temp_dir dir;
  // Options of a cold tier that is off.
  auto r = goldylox::cache<std::string>::builder().cold_tier_max_bytes(1 << 20).build();
  EXPECT_TRUE(absl::IsInvalidArgument(r.status())) << r.status();
  r = goldylox::cache<std::string>::builder()
          .cold_tier_admission(goldylox::cold_admission::reread)
          .build();
  EXPECT_TRUE(absl::IsInvalidArgument(r.status())) << r.status();
  r = goldylox::cache<std::string>::builder().cold_tier_write_through(true).build();
  EXPECT_TRUE(absl::IsInvalidArgument(r.status())) << r.status();
  r = goldylox::cache<std::string>::builder().cold_tier_write_through(false).build();
  EXPECT_TRUE(absl::IsInvalidArgument(r.status())) << r.status();
  r = goldylox::cache<std::string>::builder()
          .cold_tier_storage_path(dir.path())
          .cold_tier_codec("snappy")
          .build();
  EXPECT_TRUE(absl::IsInvalidArgument(r.status()));
  EXPECT_NE(r.status().message().find("zstd, lz4, brotli, none, adaptive"), std::string::npos);
  r = goldylox::cache<std::string>::builder()
          .cold_tier_storage_path(dir.path())
          .cold_tier_codec("lz4")
          .compression_level(20)
          .build();
  EXPECT_TRUE(absl::IsInvalidArgument(r.status())) << r.status();
  r = goldylox::cache<std::string>::builder()
          .cold_tier_storage_path(dir.path())
          .cold_tier_max_bytes(100)
          .build();
  EXPECT_TRUE(absl::IsInvalidArgument(r.status())) << r.status();
  // An unserializable value type for typed_cache.
  auto t = goldylox::typed_cache<int, opaque>::builder()
               .hot_tier_max_entries(8)
               .cold_tier_storage_path(dir.path())
               .build();
  EXPECT_TRUE(absl::IsInvalidArgument(t.status())) << t.status();
  // A second cache on the same directory.
  auto first = goldylox::cache<std::string>::builder()
                   .hot_tier_max_entries(8)
                   .cold_tier_storage_path(dir.path())
                   .build();
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = goldylox::cache<std::string>::builder()
                    .hot_tier_max_entries(8)
                    .cold_tier_storage_path(dir.path())
                    .build();
  EXPECT_TRUE(absl::IsFailedPrecondition(second.status())) << second.status();
  // A path under a regular file.
  const std::string file = dir.path() + "/plain";
  {
    std::FILE* f = std::fopen(file.c_str(), "w");
    std::fclose(f);
  }
  auto under_file = goldylox::cache<std::string>::builder()
                        .hot_tier_max_entries(8)
                        .cold_tier_storage_path(file + "/cold")
                        .build();
  EXPECT_FALSE(under_file.ok());
}

auto periodic_builder(const std::string& dir) {
  auto b = goldylox::cache<std::string>::builder();
  b.hot_tier_max_entries(8)
      .warm_tier_max_entries(8)
      .cold_tier_storage_path(dir)
      .cold_tier_max_bytes(16 << 20)
      .cold_tier_segment_bytes(256 << 10)
      .cold_tier_durability(goldylox::cold_durability::periodic)
      .cold_tier_sync_interval(std::chrono::milliseconds(10));
  return b;
}

// Caches given one background_pool run their periodic sync and their demotion write-back as jobs
// on its threads: no thread of their own. Without a pool they use the shared default; with
// background workers off, each keeps a private syncer thread (and writes its demotions inline).
TEST(ColdCache, CachesSharingABackgroundPoolSyncOnItsThreads) {
  namespace gd = goldylox::detail;
  goldylox::background_pool pool(1);
  const auto& worker_pool = gd::background_pool_access::pool(pool);
  temp_dir dirs[3];
  const std::size_t threads_before = process_threads();
  std::vector<goldylox::cache<std::string>> caches;
  for (auto& dir : dirs) {
    auto made = periodic_builder(dir.path()).background_pool(pool).build();
    ASSERT_TRUE(made.ok()) << made.status();
    ASSERT_TRUE(made->config().background_pool.has_value());
    EXPECT_TRUE(*made->config().background_pool == pool);
    caches.push_back(*std::move(made));
  }
  EXPECT_EQ(process_threads(), threads_before) << "a cache started a thread of its own";
  // Per cache: its sync, its promotion manager, its demotion write-back and its warm tier's
  // policy learning (engine/maintenance.hpp).
  EXPECT_EQ(worker_pool->stats().jobs, 12u);
  for (auto& c : caches) {
    for (int i = 0; i < 100; ++i) ASSERT_TRUE(c.put("k" + std::to_string(i), user_for(i)).ok());
  }
  // Three caches, ten milliseconds apart: runs come quickly, and they are the caches' syncs.
  for (int i = 0; i < 1000 && worker_pool->stats().runs < 30; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_GE(worker_pool->stats().runs, 30u);
  EXPECT_EQ(worker_pool->stats().failures, 0u);
  for (auto& c : caches) EXPECT_EQ(c.stats().cold_sync_errors, 0u);
  caches.clear();
  EXPECT_EQ(worker_pool->stats().jobs, 0u) << "a destroyed cache left a job behind";

  // No pool given: the process-wide default, created once.
  const goldylox::background_pool fallback = goldylox::background_pool::shared_default();
  const std::size_t with_default = process_threads();
  {
    auto made = periodic_builder(dirs[0].path()).build();
    ASSERT_TRUE(made.ok()) << made.status();
    ASSERT_TRUE(made->config().background_pool.has_value());
    EXPECT_TRUE(*made->config().background_pool == fallback);
    EXPECT_EQ(process_threads(), with_default);
    EXPECT_EQ(gd::background_pool_access::pool(fallback)->stats().jobs, 4u);
  }

  // Background workers off: the periodic promise keeps a private syncer per cache.
  {
    auto a = periodic_builder(dirs[1].path()).enable_background_workers(false).build();
    auto b = periodic_builder(dirs[2].path()).enable_background_workers(false).build();
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_FALSE(a->config().background_pool.has_value());
    EXPECT_EQ(process_threads(), with_default + 2);
  }
  EXPECT_EQ(process_threads(), with_default);
}

TEST(ColdCache, TheBackgroundPoolOptionIsCheckedAndRecorded) {
  temp_dir dir;
  goldylox::background_pool pool(1);
  auto off = periodic_builder(dir.path()).background_pool(pool).enable_background_workers(false);
  auto refused = off.build();
  EXPECT_TRUE(absl::IsInvalidArgument(refused.status())) << refused.status();
  EXPECT_NE(refused.status().message().find("enable_background_workers"), std::string::npos);
  // No background job (the hot tier alone: no moves, no sync): no default pool is taken, but a
  // given one is recorded.
  auto memory_only = goldylox::cache<std::string>::builder()
                         .hot_tier_max_entries(8)
                         .warm_tier_max_entries(0)
                         .build();
  ASSERT_TRUE(memory_only.ok());
  EXPECT_FALSE(memory_only->config().background_pool.has_value());
  auto given =
      goldylox::cache<std::string>::builder().hot_tier_max_entries(8).background_pool(pool).build();
  ASSERT_TRUE(given.ok());
  ASSERT_TRUE(given->config().background_pool.has_value());
  EXPECT_TRUE(*given->config().background_pool == pool);
  // Lower tiers mean moves for the promotion manager, and a cold tier a demotion write-back: the
  // default pool, with or without a sync.
  auto tiered = goldylox::cache<std::string>::builder().max_entries(64).build();
  ASSERT_TRUE(tiered.ok());
  ASSERT_TRUE(tiered->config().background_pool.has_value());
  EXPECT_TRUE(*tiered->config().background_pool == goldylox::background_pool::shared_default());
  auto no_sync = periodic_builder(dir.path())
                     .cold_tier_durability(goldylox::cold_durability::on_close)
                     .build();
  ASSERT_TRUE(no_sync.ok()) << no_sync.status();
  ASSERT_TRUE(no_sync->config().background_pool.has_value());
  EXPECT_TRUE(*no_sync->config().background_pool == goldylox::background_pool::shared_default());
}

// A sync that fails (here the directory's own fsync: a user without read permission on the
// directory cannot open it) is returned by sync() and counted in stats(); once the cause is gone
// the next sync succeeds. The cache keeps serving meanwhile.
TEST(ColdCache, ASyncThatFailsIsReturnedAndCounted) {
  temp_dir dir;
  ::chmod(dir.path().c_str(), 0777);
  const std::string cold = dir.path() + "/cold";
  const int code = goldylox_test::in_child([&] {
    if (!goldylox_test::drop_root()) return 10;
    auto made = goldylox::typed_cache<int, std::string>::builder()
                    .hot_tier_max_entries(16)
                    .warm_tier_max_entries(0)
                    .cold_tier_storage_path(cold)
                    .cold_tier_segment_bytes(64 << 10)
                    .cold_tier_max_bytes(16 << 20)
                    .cold_tier_durability(goldylox::cold_durability::none)
                    .build();
    if (!made.ok()) return 11;
    if (!made->sync().ok()) return 12;
    if (made->stats().cold_sync_errors != 0) return 13;
    // Enough evictions to start a new segment, which the next sync must make durable in the
    // directory too.
    for (int i = 0; i < 2000; ++i) {
      if (!made->put(i, std::string(100, 'v')).ok()) return 14;
    }
    if (made->stats().cold_demotions == 0) return 15;
    ::chmod(cold.c_str(), 0300);  // write and search, no read: open(O_RDONLY) fails, EACCES
    const absl::Status failed = made->sync();
    ::chmod(cold.c_str(), 0700);
    if (!absl::IsPermissionDenied(failed)) return 16;
    if (failed.message().find(cold) == std::string::npos) return 17;
    if (made->stats().cold_sync_errors != 1) return 18;
    if (made->get(0) != std::string(100, 'v')) return 19;  // still served
    if (!made->sync().ok()) return 20;                     // the directory is synced now
    return made->stats().cold_sync_errors == 1 ? 0 : 21;
  });
  EXPECT_EQ(code, 0);
}

// Without a cold tier there is nothing to sync.
TEST(ColdCache, SyncWithoutAColdTierIsOk) {
  auto made = goldylox::cache<std::string>::builder().hot_tier_max_entries(8).build();
  ASSERT_TRUE(made.ok());
  EXPECT_TRUE(made->sync().ok());
  EXPECT_EQ(made->stats().cold_sync_errors, 0u);
}

absl::StatusOr<goldylox::cache<std::string>> build_cache(const std::string& dir) {
  return goldylox::cache<std::string>::builder()
      .hot_tier_max_entries(64)
      .warm_tier_max_entries(128)
      .cold_tier_storage_path(dir)
      .cold_tier_max_bytes(64 << 20)
      .cold_tier_segment_bytes(256 << 10)
      .enable_telemetry(true)
      .build();
}

// close() writes the memory tiers to disk and lets go of the directory: a second cache opens it
// while the first still exists, and finds every entry.
TEST(ColdCache, CloseWritesEverythingAndReleasesTheDirectory) {
  temp_dir dir;
  auto first = build_cache(dir.path());
  ASSERT_TRUE(first.ok()) << first.status();
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(first->put("u" + std::to_string(i), user_for(i)).ok());
  ASSERT_GT(first->stats().hot_size + first->stats().warm_size, 0u);
  const absl::Status closed = first->close();
  ASSERT_TRUE(closed.ok()) << closed;
  const auto st = first->stats();
  EXPECT_EQ(st.hot_size + st.warm_size, 0u);
  EXPECT_EQ(st.cold_demotions, 1000u);
  EXPECT_EQ(st.cold_refused, 0u);
  EXPECT_EQ(st.cold_size, 1000u);
  EXPECT_EQ(st.cold_sync_errors, 0u);

  auto second = build_cache(dir.path());
  ASSERT_TRUE(second.ok()) << "the closed cache still holds the directory: " << second.status();
  for (int i = 0; i < 1000; ++i) {
    auto u = second->get<user>("u" + std::to_string(i));
    ASSERT_TRUE(u.ok() && u->has_value()) << i << ": " << u.status();
    EXPECT_EQ(**u, user_for(i));
  }
}

// After close() the cache works in memory only; a second close() and the destructor write
// nothing more, so the directory holds exactly what the close wrote.
TEST(ColdCache, AfterCloseTheCacheIsMemoryOnlyAndNothingMoreIsWritten) {
  temp_dir dir;
  {
    auto cache = build_cache(dir.path());
    ASSERT_TRUE(cache.ok()) << cache.status();
    for (int i = 0; i < 1000; ++i) ASSERT_TRUE(cache->put("k" + std::to_string(i), i).ok());
    ASSERT_TRUE(cache->close().ok());
    const auto at_close = cache->stats();
    ASSERT_TRUE(cache->close().ok());  // does nothing
    EXPECT_EQ(cache->stats().cold_demotions, at_close.cold_demotions);
    EXPECT_EQ(cache->stats().cold_disk_bytes, at_close.cold_disk_bytes);

    // Reads no longer see the cold tier; writes go to memory and work as before.
    auto v = cache->get<int>(std::string("k1"));
    ASSERT_TRUE(v.ok());
    EXPECT_FALSE(v->has_value());
    EXPECT_FALSE(cache->contains(std::string("k1")));
    EXPECT_TRUE(cache->clear().ok());  // memory only: the directory is no longer this cache's
    ASSERT_TRUE(cache->put(std::string("k1"), -1).ok());
    ASSERT_TRUE(cache->put(std::string("late"), 7).ok());
    ASSERT_TRUE(cache->close().ok());  // still nothing: "late" stays in memory
    auto late = cache->get<int>(std::string("late"));
    ASSERT_TRUE(late.ok() && late->has_value());
    EXPECT_EQ(**late, 7);
    v = cache->get<int>(std::string("k1"));
    ASSERT_TRUE(v.ok() && v->has_value());
    EXPECT_EQ(**v, -1);
    auto removed = cache->remove(std::string("late"));
    ASSERT_TRUE(removed.ok() && *removed);
    ASSERT_TRUE(cache->put(std::string("kept"), 8).ok());
    // A removal after close is not written to disk, and the value there does not come back.
    removed = cache->remove(std::string("k2"));
    ASSERT_TRUE(removed.ok());
    EXPECT_FALSE(*removed) << "k2 was only on disk, which the cache no longer reads";
    v = cache->get<int>(std::string("k2"));
    ASSERT_TRUE(v.ok());
    EXPECT_FALSE(v->has_value()) << "a removed key came back from the closed cold tier";
    // Evictions now have nowhere to go: refused and counted, and k1's new value, if evicted, is a
    // miss, never the older value on disk.
    for (int i = 0; i < 2000; ++i) ASSERT_TRUE(cache->put("x" + std::to_string(i), i).ok());
    const auto after = cache->stats();
    EXPECT_EQ(after.cold_demotions, at_close.cold_demotions);
    EXPECT_GE(after.cold_refused, at_close.cold_refused + 1000);
    EXPECT_EQ(after.cold_disk_bytes, at_close.cold_disk_bytes);
    v = cache->get<int>(std::string("k1"));
    ASSERT_TRUE(v.ok());
    if (v->has_value()) {
      EXPECT_EQ(**v, -1) << "an older cold value resurfaced after close";
    }
  }  // the destructor writes nothing: "kept", x1999 are still in memory here
  auto reopened = build_cache(dir.path());
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_EQ(reopened->stats().cold_size, 1000u);
  for (int i = 0; i < 1000; ++i) {
    auto v = reopened->get<int>("k" + std::to_string(i));
    ASSERT_TRUE(v.ok() && v->has_value()) << i;
    EXPECT_EQ(**v, i) << "k1 and k2 are as close() wrote them";
  }
  for (const std::string key : {"late", "kept", "x1999", "x0"}) {
    auto v = reopened->get<int>(key);
    ASSERT_TRUE(v.ok());
    EXPECT_FALSE(v->has_value()) << key << " was written after close";
  }
}

// A close whose final sync fails (the directory's fsync, as in ASyncThatFailsIsReturnedAndCounted)
// returns the error naming the directory and counts it; the directory is released all the same.
TEST(ColdCache, ACloseWhoseSyncFailsReturnsTheErrorAndCountsIt) {
  temp_dir dir;
  ::chmod(dir.path().c_str(), 0777);
  const std::string cold = dir.path() + "/cold";
  const int code = goldylox_test::in_child([&] {
    if (!goldylox_test::drop_root()) return 10;
    const auto build = [&] {
      return goldylox::typed_cache<int, std::string>::builder()
          .hot_tier_max_entries(16)
          .warm_tier_max_entries(0)
          .cold_tier_storage_path(cold)
          .cold_tier_segment_bytes(64 << 10)
          .cold_tier_max_bytes(16 << 20)
          .cold_tier_durability(goldylox::cold_durability::on_close)
          .build();
    };
    auto made = build();
    if (!made.ok()) return 11;
    // Enough evictions to start new segments, which close must make durable in the directory.
    for (int i = 0; i < 2000; ++i) {
      if (!made->put(i, std::string(100, 'v')).ok()) return 12;
    }
    if (made->stats().cold_demotions == 0) return 13;
    if (made->stats().cold_sync_errors != 0) return 14;
    ::chmod(cold.c_str(), 0300);  // write and search, no read: open(O_RDONLY) fails, EACCES
    const absl::Status failed = made->close();
    ::chmod(cold.c_str(), 0700);
    if (!absl::IsPermissionDenied(failed)) return 15;
    if (failed.message().find(cold) == std::string::npos) return 16;
    if (made->stats().cold_sync_errors != 1) return 17;
    if (made->stats().cold_refused != 0) return 18;  // every entry was written
    if (!made->close().ok()) return 19;              // the second does nothing
    if (made->stats().cold_sync_errors != 1) return 20;
    auto again = build();  // the failed close released the directory too
    if (!again.ok()) return 21;
    for (int i = 0; i < 2000; ++i) {
      if (again->get(i) != std::string(100, 'v')) return 22;
    }
    return 0;
  });
  EXPECT_EQ(code, 0);
}

// Entries the cold tier refuses while close() writes memory out (a value larger than a segment,
// one of a type that cannot be serialized) make close() fail with their number; the rest are on
// disk.
TEST(ColdCache, EntriesTheFlushCannotWriteMakeCloseFail) {
  temp_dir dir;
  const auto build = [&] {
    return goldylox::typed_cache<int, std::string>::builder()
        .hot_tier_max_entries(64)
        .warm_tier_max_entries(0)
        .cold_tier_storage_path(dir.path())
        .cold_tier_segment_bytes(64 << 10)
        .cold_tier_max_bytes(16 << 20)
        .enable_telemetry(true)
        .build();
  };
  {
    auto made = build();
    ASSERT_TRUE(made.ok()) << made.status();
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(made->put(i, "small " + std::to_string(i)).ok());
    ASSERT_TRUE(made->put(100, std::string(100 << 10, 'b')).ok());  // > a 64 KiB segment
    ASSERT_EQ(made->stats().hot_size, 11u);
    ASSERT_EQ(made->stats().cold_refused, 0u);
    const absl::Status closed = made->close();
    EXPECT_TRUE(absl::IsDataLoss(closed)) << closed;
    EXPECT_NE(closed.message().find("1 entry could not be written"), std::string::npos) << closed;
    EXPECT_NE(closed.message().find(dir.path()), std::string::npos) << closed;
    EXPECT_EQ(made->stats().cold_refused, 1u);
    EXPECT_EQ(made->stats().cold_demotions, 10u);
    EXPECT_TRUE(made->close().ok());
  }
  auto made = build();
  ASSERT_TRUE(made.ok()) << made.status();
  for (int i = 0; i < 10; ++i) EXPECT_EQ(made->get(i), "small " + std::to_string(i));
  EXPECT_FALSE(made->get(100).has_value());

  // cache<K>: values of a type that cannot go to disk are lost at close too.
  temp_dir other;
  auto cache = goldylox::cache<std::string>::builder()
                   .hot_tier_max_entries(64)
                   .cold_tier_storage_path(other.path())
                   .build();
  ASSERT_TRUE(cache.ok()) << cache.status();
  ASSERT_TRUE(cache->put(std::string("a"), opaque{1}).ok());
  ASSERT_TRUE(cache->put(std::string("b"), opaque{2}).ok());
  ASSERT_TRUE(cache->put(std::string("c"), 3).ok());
  const absl::Status closed = cache->close();
  EXPECT_TRUE(absl::IsDataLoss(closed)) << closed;
  EXPECT_NE(closed.message().find("2 entries could not be written"), std::string::npos) << closed;
}

// Without a cold tier there is nothing to close; the cache goes on working.
TEST(ColdCache, CloseWithoutAColdTierIsOk) {
  auto made = goldylox::typed_cache<int, int>::builder().hot_tier_max_entries(8).build();
  ASSERT_TRUE(made.ok());
  ASSERT_TRUE(made->put(1, 1).ok());
  EXPECT_TRUE(made->close().ok());
  EXPECT_TRUE(made->close().ok());
  EXPECT_EQ(made->get(1), 1);
  ASSERT_TRUE(made->put(2, 2).ok());
  EXPECT_EQ(made->get(2), 2);
}

// ---- the demotion write-back on the background pool ----------------------------------------

// Holds the only worker of a one-thread pool with a job of its own until release(): a cache's
// demotion job cannot run meanwhile, so what the cache hands to it stays queued, and each test
// below knows exactly what is queued.
class pool_blocker {
 public:
  explicit pool_blocker(const goldylox::background_pool& pool) {
    job_ = goldylox::detail::background_pool_access::pool(pool)->add(
        [this](std::stop_token) {
          std::unique_lock lock(mu_);
          running_ = true;
          cv_.notify_all();
          cv_.wait(lock, [&] { return released_; });
        },
        std::chrono::nanoseconds(0));
    job_->notify();
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return running_; });
  }
  pool_blocker(const pool_blocker&) = delete;
  pool_blocker& operator=(const pool_blocker&) = delete;
  ~pool_blocker() {
    release();
    job_.reset();
  }
  void release() {
    std::lock_guard lock(mu_);
    released_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool running_ = false, released_ = false;
  std::unique_ptr<goldylox::detail::job_handle> job_;
};

// One hot entry and no warm tier: every put of a new key pushes the previous one out, into the
// demotion queue (bound 64 for a capacity of 1).
absl::StatusOr<goldylox::typed_cache<int, std::string>> one_entry_cache(
    const std::string& dir, const goldylox::background_pool& pool) {
  return goldylox::typed_cache<int, std::string>::builder()
      .hot_tier_max_entries(1)
      .warm_tier_max_entries(0)
      .cold_tier_storage_path(dir)
      .cold_tier_segment_bytes(64 << 10)
      .cold_tier_max_bytes(16 << 20)
      .cold_tier_durability(goldylox::cold_durability::none)
      .enable_telemetry(true)
      .background_pool(pool)
      .build();
}

std::string v(int i) {
  return "v" + std::to_string(i);
}

// Waits (up to 10 s) until the pool has written everything handed to it.
template <class Cache>
bool queue_empties(const Cache& cache) {
  for (int i = 0; i < 5000 && cache.stats().cold_demotion_queue != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return cache.stats().cold_demotion_queue == 0;
}

TEST(ColdCachePool, TheQueueBoundIsASixteenthOfTheMemoryTiersWithinLimits) {
  using queue = goldylox::detail::demotion_queue<int, std::string, goldylox::default_hash<int>,
                                                 std::equal_to<int>>;
  EXPECT_EQ(queue::default_bound(1), 64u);
  EXPECT_EQ(queue::default_bound(1024), 64u);
  EXPECT_EQ(queue::default_bound(1600), 100u);
  EXPECT_EQ(queue::default_bound(65'536), 4096u);
  EXPECT_EQ(queue::default_bound(100'000'000), 4096u);
}

// Evictions wait for the pool, off the caller's thread; meanwhile reads, contains and
// conditional writes see their values (neither memory nor the disk holds them), and writes
// supersede them. Once the pool runs, it writes the rest, and the directory has every value.
TEST(ColdCachePool, EvictionsWaitForThePoolAndStayVisible) {
  temp_dir dir;
  goldylox::background_pool pool(1);
  {
    auto blocker = std::make_unique<pool_blocker>(pool);
    auto made = one_entry_cache(dir.path(), pool);
    ASSERT_TRUE(made.ok()) << made.status();
    auto& cache = *made;
    for (int i = 0; i <= 40; ++i) ASSERT_TRUE(cache.put(i, v(i)).ok());
    goldylox::cache_stats st = cache.stats();
    EXPECT_EQ(st.cold_demotion_queue, 40u);  // keys 0..39; 40 is in memory
    EXPECT_EQ(st.cold_demotion_queue_peak, 40u);
    EXPECT_EQ(st.cold_demotions, 0u) << "the caller wrote an eviction itself";
    EXPECT_EQ(st.cold_size, 0u);
    for (int i = 0; i <= 40; ++i) {
      EXPECT_EQ(cache.get(i), v(i)) << i;
      EXPECT_TRUE(cache.contains(i)) << i;
    }
    EXPECT_EQ(cache.stats().cold_hits, 40u);  // served below memory
    EXPECT_EQ(cache.stats().cold_demotion_queue, 40u) << "a read from the queue moved nothing";
    // A conditional write decides on the queued value, as on one in memory or on disk.
    const auto present = cache.put_if_absent(0, "other");
    ASSERT_TRUE(present.ok()) << present.status();
    EXPECT_EQ(*present, v(0));
    const auto replaced = cache.replace(1, "new");  // into memory: pushes 40 out
    ASSERT_TRUE(replaced.ok()) << replaced.status();
    EXPECT_EQ(*replaced, v(1));
    const auto removed = cache.remove(2);
    ASSERT_TRUE(removed.ok()) << removed.status();
    EXPECT_TRUE(*removed);
    EXPECT_EQ(cache.get(1), "new");
    EXPECT_FALSE(cache.get(2).has_value());
    EXPECT_EQ(cache.stats().cold_demotion_queue, 41u);
    blocker.reset();  // the pool runs the cache's job now
    ASSERT_TRUE(queue_empties(cache));
    st = cache.stats();
    // 0 and 3..40: 1's queued value found the key in memory again (a newer value, demoted in
    // its turn), 2's was superseded by the remove; neither counts as an eviction.
    EXPECT_EQ(st.cold_demotions, 39u);
    EXPECT_EQ(st.cold_background_demotions, 39u);
    EXPECT_EQ(st.cold_backpressure_demotions, 0u);
    EXPECT_EQ(st.cold_superseded, 2u);
    EXPECT_EQ(st.evictions, 0u);
    EXPECT_EQ(st.cold_size, 39u);
    EXPECT_EQ(st.cold_demotion_queue_peak, 41u);
    EXPECT_FALSE(cache.get(2).has_value());
  }
  auto made = one_entry_cache(dir.path(), pool);
  ASSERT_TRUE(made.ok()) << made.status();
  for (int i = 0; i <= 40; ++i) {
    if (i == 2) {
      EXPECT_FALSE(made->get(i).has_value()) << "the removed key came back";
    } else {
      EXPECT_EQ(made->get(i), i == 1 ? "new" : v(i)) << i;
    }
  }
}

// The job is woken by a drain only once 32 evictions wait (demotion_queue::wake_batch); fewer
// are written by its periodic run, without a sync or more evictions.
TEST(ColdCachePool, AFewEvictionsReachTheDiskWithoutMoreComing) {
  temp_dir dir;
  goldylox::background_pool pool(1);
  auto made = one_entry_cache(dir.path(), pool);
  ASSERT_TRUE(made.ok()) << made.status();
  for (int i = 0; i <= 3; ++i) ASSERT_TRUE(made->put(i, v(i)).ok());
  ASSERT_TRUE(queue_empties(*made));
  const goldylox::cache_stats st = made->stats();
  EXPECT_EQ(st.cold_demotions, 3u);
  EXPECT_EQ(st.cold_background_demotions, 3u);
  EXPECT_EQ(st.cold_size, 3u);
}

// A full queue is backpressure: the evicting thread writes its own evictions, so the queue (and
// the memory it holds) stays at its bound however far the callers outrun the pool, and nothing
// is dropped.
TEST(ColdCachePool, AFullQueueMakesTheEvictingThreadWriteItself) {
  temp_dir dir;
  goldylox::background_pool pool(1);
  pool_blocker blocker(pool);
  auto made = one_entry_cache(dir.path(), pool);
  ASSERT_TRUE(made.ok()) << made.status();
  auto& cache = *made;
  for (int i = 0; i <= 100; ++i) ASSERT_TRUE(cache.put(i, v(i)).ok());
  const goldylox::cache_stats st = cache.stats();
  EXPECT_EQ(st.cold_demotion_queue, 64u);
  EXPECT_EQ(st.cold_demotion_queue_peak, 64u);
  EXPECT_EQ(st.cold_backpressure_demotions, 36u);  // evictions 65..100 found the queue full
  EXPECT_EQ(st.cold_demotions, 36u);
  EXPECT_EQ(st.cold_background_demotions, 0u);
  for (int i = 0; i <= 100; ++i) EXPECT_EQ(cache.get(i), v(i)) << i;
}

// sync() writes what waits for the pool (here: a pool that cannot run) before it syncs, so a
// returned sync covers every eviction of the calls that returned before it.
TEST(ColdCachePool, SyncWritesWhatWaitsForThePool) {
  temp_dir dir;
  goldylox::background_pool pool(1);
  pool_blocker blocker(pool);
  auto made = one_entry_cache(dir.path(), pool);
  ASSERT_TRUE(made.ok()) << made.status();
  auto& cache = *made;
  for (int i = 0; i <= 30; ++i) ASSERT_TRUE(cache.put(i, v(i)).ok());
  ASSERT_EQ(cache.stats().cold_demotion_queue, 30u);
  ASSERT_TRUE(cache.sync().ok());
  const goldylox::cache_stats st = cache.stats();
  EXPECT_EQ(st.cold_demotion_queue, 0u);
  EXPECT_EQ(st.cold_demotions, 30u);
  EXPECT_EQ(st.cold_background_demotions, 0u);  // the syncing thread wrote them
  EXPECT_EQ(st.cold_size, 30u);
}

// run_pending_tasks() does the pool's queued work on the calling thread, the write-back included.
TEST(ColdCachePool, RunPendingTasksWritesWhatWaitsForThePool) {
  temp_dir dir;
  goldylox::background_pool pool(1);
  pool_blocker blocker(pool);
  auto made = one_entry_cache(dir.path(), pool);
  ASSERT_TRUE(made.ok()) << made.status();
  for (int i = 0; i <= 20; ++i) ASSERT_TRUE(made->put(i, v(i)).ok());
  ASSERT_EQ(made->stats().cold_demotion_queue, 20u);
  made->run_pending_tasks();
  const goldylox::cache_stats st = made->stats();
  EXPECT_EQ(st.cold_demotion_queue, 0u);
  EXPECT_EQ(st.cold_demotions, 20u);
  EXPECT_EQ(st.cold_background_demotions, 0u);
  EXPECT_EQ(st.cold_size, 20u);
}

// clear() drops what waits for the pool: a value queued before it must not land after it.
TEST(ColdCachePool, ClearDropsWhatWaitsForThePool) {
  temp_dir dir;
  goldylox::background_pool pool(1);
  auto blocker = std::make_unique<pool_blocker>(pool);
  auto made = one_entry_cache(dir.path(), pool);
  ASSERT_TRUE(made.ok()) << made.status();
  auto& cache = *made;
  for (int i = 0; i <= 20; ++i) ASSERT_TRUE(cache.put(i, v(i)).ok());
  ASSERT_EQ(cache.stats().cold_demotion_queue, 20u);
  ASSERT_TRUE(cache.clear().ok());
  EXPECT_EQ(cache.stats().cold_demotion_queue, 0u);
  blocker.reset();
  ASSERT_TRUE(cache.sync().ok());
  for (int i = 0; i <= 20; ++i) EXPECT_FALSE(cache.get(i).has_value()) << i;
  EXPECT_EQ(cache.stats().cold_size, 0u);
  EXPECT_EQ(cache.stats().cold_demotions, 0u);
}

// Closing (or destroying) a cache whose pool has not written its queue yet writes the queue
// itself: the directory has every value, and the cache's job is gone from the pool.
TEST(ColdCachePool, CloseAndDestructionWriteWhatWaitsForThePool) {
  goldylox::background_pool pool(1);
  const auto& workers = goldylox::detail::background_pool_access::pool(pool);
  for (const bool explicit_close : {true, false}) {
    SCOPED_TRACE(explicit_close ? "close()" : "destructor");
    temp_dir dir;
    {
      pool_blocker blocker(pool);
      auto made = one_entry_cache(dir.path(), pool);
      ASSERT_TRUE(made.ok()) << made.status();
      // The blocker, the cache's promotion manager and its demotion write-back.
      EXPECT_EQ(workers->stats().jobs, 3u);
      for (int i = 0; i <= 50; ++i) ASSERT_TRUE(made->put(i, v(i)).ok());
      ASSERT_EQ(made->stats().cold_demotion_queue, 50u);
      if (explicit_close) {
        ASSERT_TRUE(made->close().ok());
        EXPECT_EQ(made->stats().cold_demotion_queue, 0u);
        EXPECT_EQ(made->stats().cold_demotions, 51u);  // the queue, then memory's one entry
        EXPECT_EQ(workers->stats().jobs, 2u) << "close() left the demotion job registered";
      }
    }
    EXPECT_EQ(workers->stats().jobs, 0u);
    auto made = one_entry_cache(dir.path(), pool);
    ASSERT_TRUE(made.ok()) << made.status();
    for (int i = 0; i <= 50; ++i) EXPECT_EQ(made->get(i), v(i)) << i;
  }
}

// Without background workers every call writes the evictions it caused before it returns: the
// deterministic mode the tests above the pool's (and unit tests of applications) rely on.
TEST(ColdCachePool, WithoutBackgroundWorkersEachCallWritesItsOwnEvictions) {
  temp_dir dir;
  auto made = goldylox::typed_cache<int, std::string>::builder()
                  .hot_tier_max_entries(1)
                  .warm_tier_max_entries(0)
                  .cold_tier_storage_path(dir.path())
                  .cold_tier_segment_bytes(64 << 10)
                  .cold_tier_max_bytes(16 << 20)
                  .cold_tier_durability(goldylox::cold_durability::none)
                  .enable_background_workers(false)
                  .build();
  ASSERT_TRUE(made.ok()) << made.status();
  EXPECT_FALSE(made->config().background_pool.has_value());
  for (int i = 0; i <= 100; ++i) {
    ASSERT_TRUE(made->put(i, v(i)).ok());
    const goldylox::cache_stats st = made->stats();
    ASSERT_EQ(st.cold_demotions, static_cast<std::uint64_t>(i)) << i;
    ASSERT_EQ(st.cold_size, static_cast<std::size_t>(i)) << i;
    ASSERT_EQ(st.cold_demotion_queue, 0u);
  }
  const goldylox::cache_stats st = made->stats();
  EXPECT_EQ(st.cold_background_demotions, 0u);
  EXPECT_EQ(st.cold_backpressure_demotions, 0u);
  EXPECT_EQ(st.cold_demotion_queue_peak, 0u);
}

}  // namespace

// ---- issue 23: nothing is lost or resurrected by nesting, key types or a failing disk ----------

// The in-flight registry (coherence.hpp) tells keys apart by equality, not by hash: with every
// key hashing alike, a write of one key supersedes only that key's demotion in flight, and a later
// departure of a key supersedes its earlier one. (The generation table it replaced could not tell
// keys of one hash slot apart: a write of key 2 dropped key 1's demotion.)
TEST(ColdCoherence, OnlyTheSameKeySupersedesADemotionInFlight) {
  struct one_hash {
    std::size_t operator()(std::uint64_t) const { return 42; }
  };
  using K = std::uint64_t;
  using tiers = goldylox::detail::tier_stack<K, std::string, one_hash, std::equal_to<>>;
  temp_dir dir;
  goldylox::cache_config config;
  {
    auto made = goldylox::typed_cache<K, std::string>::builder()
                    .hot_tier_max_entries(16)
                    .cold_tier_storage_path(dir.path())
                    .cold_tier_segment_bytes(64 << 10)
                    .cold_tier_max_bytes(16 << 20)
                    .build();
    ASSERT_TRUE(made.ok()) << made.status();
    config = made->config();
  }
  auto store = tiers::open_cold(config);
  ASSERT_TRUE(store.ok()) << store.status();
  tiers t(config, {}, *std::move(store));
  goldylox::detail::cold_coherence<K, std::string, one_hash, std::equal_to<>> coherence(t);
  goldylox::detail::inflight_demotion<K, std::string> first_of_1(1), of_2(2), second_of_1(1);
  coherence.enter(first_of_1);
  coherence.enter(of_2);
  EXPECT_FALSE(coherence.supersede(3, /*locked=*/false));    // same hash, another key
  const absl::StatusOr<bool> retired = coherence.retire(2);  // a write of key 2
  ASSERT_TRUE(retired.ok()) << retired.status();
  EXPECT_TRUE(*retired);         // its demotion was in flight
  coherence.enter(second_of_1);  // key 1 leaves memory again, with a value at least as new
  EXPECT_TRUE(coherence.leave(first_of_1));
  EXPECT_TRUE(coherence.leave(of_2));
  EXPECT_FALSE(coherence.leave(second_of_1));             // not superseded: this one is written
  EXPECT_FALSE(coherence.supersede(1, /*locked=*/true));  // nothing in flight any more
  EXPECT_FALSE(coherence.leave(second_of_1));             // leaving twice is harmless
}

// Calls into a second cache of the same type from inside a callback of the first, on a worker
// thread that then exits: each cache's outermost call drains its own demotions. (When the queue
// and its depth were shared by every engine of the type, b's scope ended inside a's, a's drain
// took only a's entries, and b's evictions died with the thread: 1 of 5 puts survived.) Inline,
// and with the drains handing their entries to a background pool.
TEST(ColdCache, CallsIntoAnotherCacheFromACallbackKeepTheirWrites) {
  for (const bool background : {false, true}) {
    SCOPED_TRACE(background ? "background pool" : "inline");
    temp_dir dir_a, dir_b;
    goldylox::background_pool pool(1);
    const auto build = [&](const std::string& dir, std::size_t warm) {
      auto b = goldylox::typed_cache<int, std::string>::builder();
      b.hot_tier_max_entries(1)
          .warm_tier_max_entries(warm)
          .cold_tier_storage_path(dir)
          .cold_tier_segment_bytes(64 << 10)
          .cold_tier_max_bytes(16 << 20)
          .cold_tier_durability(goldylox::cold_durability::none);
      if (background) {
        b.background_pool(pool);
      } else {
        b.enable_background_workers(false);
      }
      return b.build();
    };
    auto a = build(dir_a.path(), 16);
    auto b = build(dir_b.path(), 0);
    ASSERT_TRUE(a.ok() && b.ok());
    ASSERT_TRUE(a->put(1, "x").ok());
    ASSERT_TRUE(a->put(2, "y").ok());  // 1 moves to a's warm tier
    std::vector<absl::Status> puts;
    bool hit = false;
    std::thread worker([&] {
      hit = a->visit(1, [&](const std::string&) {  // a warm hit: inside a's demotion scope
        for (int i = 0; i < 5; ++i) puts.push_back(b->put(100 + i, "b" + std::to_string(i)));
      });
    });
    worker.join();
    ASSERT_TRUE(hit);
    ASSERT_EQ(puts.size(), 5u);
    for (int i = 0; i < 5; ++i) {
      EXPECT_TRUE(puts[i].ok()) << puts[i];
      EXPECT_EQ(b->get(100 + i), "b" + std::to_string(i)) << i;
    }
    // The other way round: a's writes from inside b's call (b's get of a cold key promotes it,
    // under b's scope) on another exiting thread.
    std::thread other([&] {
      (void)b->visit(100, [&](const std::string&) {
        for (int i = 0; i < 5; ++i) ASSERT_TRUE(a->put(200 + i, "a" + std::to_string(i)).ok());
      });
    });
    other.join();
    for (int i = 0; i < 5; ++i) EXPECT_EQ(a->get(200 + i), "a" + std::to_string(i)) << i;
    // Everything the threads left behind reaches the disk: a sync writes what waits for the
    // pool first, and a reopened directory has it.
    ASSERT_TRUE(a->sync().ok());
    ASSERT_TRUE(b->sync().ok());
    EXPECT_EQ(a->stats().cold_refused + b->stats().cold_refused, 0u);
    EXPECT_EQ(a->stats().cold_demotion_queue + b->stats().cold_demotion_queue, 0u);
    ASSERT_TRUE(a->close().ok());
    ASSERT_TRUE(b->close().ok());
    auto reopened_a = build(dir_a.path(), 16);
    auto reopened_b = build(dir_b.path(), 0);
    ASSERT_TRUE(reopened_a.ok() && reopened_b.ok());
    for (int i = 0; i < 5; ++i) {
      EXPECT_EQ(reopened_b->get(100 + i), "b" + std::to_string(i)) << i;
      EXPECT_EQ(reopened_a->get(200 + i), "a" + std::to_string(i)) << i;
    }
  }
}

// A key type with a transparent lookup type that cannot make a key: remove(id) must reach the
// cold record through the key the memory tiers store.
struct named_key {
  int id = 0;
  std::string name;
  bool operator==(const named_key&) const = default;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(id, name);
  }
};
struct key_id {
  int id = 0;
};
struct named_key_hash {
  using is_transparent = void;
  std::size_t operator()(const named_key& k) const { return std::hash<int>{}(k.id); }
  std::size_t operator()(const key_id& q) const { return std::hash<int>{}(q.id); }
};
struct named_key_eq {
  using is_transparent = void;
  bool operator()(const named_key& a, const named_key& b) const { return a == b; }
  bool operator()(const named_key& a, const key_id& b) const { return a.id == b.id; }
  bool operator()(const key_id& a, const named_key& b) const { return a.id == b.id; }
};

TEST(ColdCache, TransparentRemoveErasesTheColdRecordToo) {
  static_assert(!std::is_constructible_v<named_key, const key_id&>);
  for (const std::size_t warm : {std::size_t{0}, std::size_t{8}}) {
    SCOPED_TRACE(warm);
    temp_dir dir;
    const auto build = [&] {
      return goldylox::typed_cache<named_key, std::string, named_key_hash, named_key_eq>::builder()
          .hot_tier_max_entries(4)
          .warm_tier_max_entries(warm)
          .cold_tier_storage_path(dir.path())
          .cold_tier_segment_bytes(64 << 10)
          .cold_tier_max_bytes(16 << 20)
          .cold_tier_durability(goldylox::cold_durability::none)
          .enable_telemetry(true)
          .build();
    };
    const named_key one{1, "one"}, two{2, "two"};
    {
      auto cache = build();
      ASSERT_TRUE(cache.ok()) << cache.status();
      ASSERT_TRUE(cache->put(one, "v1").ok());
      ASSERT_TRUE(cache->put(two, "v2").ok());
      for (int i = 100; i < 140; ++i) ASSERT_TRUE(cache->put(named_key{i, "f"}, "filler").ok());
      // The evictions on disk (a sync writes those still waiting for the background pool).
      ASSERT_TRUE(cache->sync().ok());
      ASSERT_GT(cache->stats().cold_size, 2u);
      // A cold hit is promoted (by the background pool: run_pending_tasks makes it now) and
      // keeps its cold record: the key is in memory and on disk.
      ASSERT_EQ(cache->get(one), "v1");
      cache->run_pending_tasks();
      const auto removed = cache->remove(key_id{1});
      ASSERT_TRUE(removed.ok()) << removed.status();
      EXPECT_TRUE(*removed);
      EXPECT_FALSE(cache->get(one).has_value());
      EXPECT_FALSE(cache->contains(one));
      // Only on disk (the hot tier's CLOCK has let it go; a warm policy may keep it): a
      // transparent key cannot find it, so nothing is removed (documented).
      if (warm == 0) {
        const auto cold_only = cache->remove(key_id{2});
        ASSERT_TRUE(cold_only.ok()) << cold_only.status();
        EXPECT_FALSE(*cold_only);
      }
      EXPECT_EQ(cache->get(two), "v2");
      ASSERT_TRUE(cache->close().ok());
    }
    auto cache = build();
    ASSERT_TRUE(cache.ok()) << cache.status();
    EXPECT_FALSE(cache->get(one).has_value()) << "the removed key came back after a restart";
    EXPECT_EQ(cache->get(two), "v2");
  }
}

// A write that cannot retire the key's older cold record fails and changes nothing, so the older
// value can never come back in place of an acknowledged one. Simulated: RLIMIT_FSIZE below the
// active segment's append offset (in a child process, SIGXFSZ ignored) makes every append fail
// with EFBIG, as on a full disk; with every_write durability the same failure stands in for an
// I/O error of the write itself. The limit is then raised, and a restart shows the old values.
int full_disk_sequence(const std::string& dir, goldylox::cold_durability durability) {
  ::signal(SIGXFSZ, SIG_IGN);
  const auto build = [&] {
    return goldylox::typed_cache<int, std::string>::builder()
        .hot_tier_max_entries(1)
        .warm_tier_max_entries(0)
        .cold_tier_storage_path(dir)
        .cold_tier_segment_bytes(64 << 10)
        .cold_tier_max_bytes(16 << 20)
        .cold_tier_codec("none")
        .cold_tier_durability(durability)
        // Inline demotions: the sequence counts and limits what each eviction wrote.
        .enable_background_workers(false)
        .build();
  };
  {
    auto made = build();
    if (!made.ok()) return 10;
    auto& cache = *made;
    if (!cache.put(1, "OLD").ok() || !cache.put(2, "R").ok()) return 11;
    // 40 KiB of records: the next append lands past 32 KiB, in the same 64 KiB segment.
    for (int i = 0; i < 40; ++i) {
      if (!cache.put(1000 + i, std::string(1024, static_cast<char>('a' + i % 26))).ok()) return 12;
    }
    if (cache.stats().cold_demotions != 41 || cache.stats().cold_refused != 0) return 13;
    rlimit lim{32 << 10, RLIM_INFINITY};
    if (::setrlimit(RLIMIT_FSIZE, &lim) != 0) return 14;
    if (cache.put(1, "NEW").ok()) return 20;  // its tombstone could not be written
    if (cache.get(1) != "OLD") return 21;
    const absl::StatusOr<bool> removed = cache.remove(2);
    if (removed.ok()) return 22;
    if (!cache.contains(2) || cache.get(2) != "R") return 23;
    if (cache.replace(1, "NEW").ok()) return 24;
    if (cache.compare_and_swap(1, "OLD", "NEW").ok()) return 25;
    if (cache.get(1) != "OLD") return 26;
    lim.rlim_cur = RLIM_INFINITY;
    if (::setrlimit(RLIMIT_FSIZE, &lim) != 0) return 27;
    if (!cache.close().ok()) return 28;
  }
  auto made = build();
  if (!made.ok()) return 30;
  if (made->get(1) != "OLD") return 31;
  if (made->get(2) != "R") return 32;
  return 0;
}

TEST(ColdCache, AWriteWhoseTombstoneFailsReturnsTheErrorAndChangesNothing) {
  for (const auto mode :
       {goldylox::cold_durability::none, goldylox::cold_durability::every_write}) {
    temp_dir dir;
    EXPECT_EQ(goldylox_test::in_child([&] { return full_disk_sequence(dir.path(), mode); }), 0)
        << goldylox::to_string(mode);
  }
}

// The same through a read-only directory: the active segment fills up, so the next append needs
// a new segment, which cannot be created. Removes of keys on disk then fail (and keep the key)
// once their tombstones no longer fit; a put of a key on disk fails too.
TEST(ColdCache, AWriteWhoseTombstoneNeedsASegmentThatCannotBeMadeFails) {
  temp_dir dir;
  ::chmod(dir.path().c_str(), 0777);
  const std::string cold = dir.path() + "/cold";
  const int code = goldylox_test::in_child([&] {
    if (!goldylox_test::drop_root()) return 10;
    auto made = goldylox::typed_cache<int, std::string>::builder()
                    .hot_tier_max_entries(1)
                    .warm_tier_max_entries(0)
                    .cold_tier_storage_path(cold)
                    .cold_tier_segment_bytes(64 << 10)
                    .cold_tier_max_bytes(16 << 20)
                    .cold_tier_codec("none")
                    .cold_tier_durability(goldylox::cold_durability::none)
                    // Inline demotions: the loop below stops at the first refused one.
                    .enable_background_workers(false)
                    .build();
    if (!made.ok()) return 11;
    auto& cache = *made;
    if (!cache.put(1, "OLD").ok() || !cache.put(2, "R").ok()) return 12;
    ::chmod(cold.c_str(), 0555);
    // Fill the active segment until a demotion is refused: it needed a new segment.
    int next = 1000;
    while (cache.stats().cold_refused == 0) {
      if (next == 2000) return 13;
      if (!cache.put(next++, std::string(200, 'f')).ok()) return 14;
    }
    // Tombstones are smaller than those records: remove keys on disk until one does not fit.
    int failed_at = -1;
    for (int k = 1000; k < next - 2 && failed_at < 0; ++k) {
      const absl::StatusOr<bool> removed = cache.remove(k);
      if (!removed.ok()) {
        failed_at = k;
      } else if (!*removed) {
        return 15;  // was on disk
      }
    }
    if (failed_at < 0) return 16;
    if (!cache.contains(failed_at) || cache.get(failed_at) != std::string(200, 'f')) return 17;
    if (cache.put(1, "NEW").ok()) return 18;
    if (cache.get(1) != "OLD") return 19;
    ::chmod(cold.c_str(), 0755);
    return 0;
  });
  EXPECT_EQ(code, 0);
}

// A segment deleted between runs: the default open counts it where users alert
// (cold_missing_segments), a strict open refuses the directory naming the file.
TEST(ColdCache, ALostSegmentIsCountedAndAStrictOpenRefusesIt) {
  temp_dir dir;
  const auto build = [&](bool strict) {
    return goldylox::cache<std::string>::builder()
        .hot_tier_max_entries(16)
        .warm_tier_max_entries(16)
        .cold_tier_storage_path(dir.path())
        .cold_tier_max_bytes(64 << 20)
        .cold_tier_segment_bytes(64 << 10)
        .cold_tier_codec("none")
        .cold_tier_strict_open(strict)
        .build();
  };
  {
    auto cache = build(false);
    ASSERT_TRUE(cache.ok()) << cache.status();
    for (int i = 0; i < 2000; ++i) {
      ASSERT_TRUE(cache->put("user:" + std::to_string(i), std::string(200, 'a' + i % 26)).ok());
    }
  }
  std::vector<fs::path> segments;
  for (const auto& e : fs::directory_iterator(dir.path())) {
    if (e.path().extension() == ".glx") segments.push_back(e.path());
  }
  std::sort(segments.begin(), segments.end());
  ASSERT_GE(segments.size(), 3u);
  fs::remove(segments[1]);
  auto strict = build(true);
  ASSERT_TRUE(absl::IsDataLoss(strict.status())) << strict.status();
  EXPECT_NE(strict.status().message().find(segments[1].filename().string()), std::string::npos);
  auto cache = build(false);
  ASSERT_TRUE(cache.ok()) << cache.status();
  EXPECT_EQ(cache->stats().cold_missing_segments, 1u);
  EXPECT_EQ(cache->stats().cold_damaged_manifests, 0u);
}

// ---- kill -9 between clean closes (issue 23) --------------------------------------------------

namespace {

// What the child process logs, one fixed-size record per event, appended with O_APPEND so that
// every record written before the SIGKILL is in the file (the page cache outlives the process).
struct kill_log_record {
  std::int64_t kind;     // 0: a write is about to start, 1: it returned OK, 2: close() returned OK
  std::int64_t key;      // -1 for a close
  std::int64_t version;  // > 0 a put of that version, < 0 a remove
};

std::string kill_value(std::int64_t key, std::int64_t version) {
  std::string v = std::to_string(key) + ":" + std::to_string(version) + ":";
  v.resize(16 + static_cast<std::size_t>((key * 31 + version) % 600), 'x');
  return v;
}

// The child: two writers (disjoint keys) put and remove through the public API; between epochs of
// 40-300 operations the cache is closed cleanly and reopened. Runs until the parent kills it.
[[noreturn]] void kill_child(const std::string& dir, const std::string& log_path,
                             goldylox::cold_durability durability, std::uint64_t seed) {
  const int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log < 0) std::_Exit(10);
  const auto note = [&](std::int64_t kind, std::int64_t key, std::int64_t version) {
    const kill_log_record r{kind, key, version};
    if (::write(log, &r, sizeof r) != static_cast<ssize_t>(sizeof r)) std::_Exit(11);
  };
  // A pool of its own, made in the child (the shared default one would also do: a forked child's
  // pools start workers of their own, WorkerPool.AForkedChildGetsWorkersOfItsOwn).
  goldylox::background_pool pool(1);
  // Versions grow across children too: each child starts above any earlier one's.
  std::atomic<std::int64_t> next_version{static_cast<std::int64_t>(seed) * 100'000'000 + 1};
  for (std::uint64_t epoch = 0;; ++epoch) {
    auto made = goldylox::typed_cache<std::uint64_t, std::string>::builder()
                    .hot_tier_max_entries(32)
                    .warm_tier_max_entries(32)
                    .cold_tier_storage_path(dir)
                    .cold_tier_segment_bytes(1 << 20)
                    .cold_tier_max_bytes(std::size_t{256} << 20)
                    .cold_tier_codec("lz4")
                    .cold_tier_durability(durability)
                    .background_pool(pool)
                    .build();
    if (!made.ok()) std::_Exit(12);
    auto& cache = *made;
    std::vector<std::thread> writers;
    for (std::uint64_t w = 0; w < 2; ++w) {
      writers.emplace_back([&, w] {
        std::uint64_t x = seed * 0x9E3779B97F4A7C15ULL + epoch * 7919 + w + 1;
        for (int i = 0; i < 40 + static_cast<int>((seed + epoch) % 260); ++i) {
          x ^= x << 13, x ^= x >> 7, x ^= x << 17;
          const auto key = static_cast<std::int64_t>((x % 500) * 2 + w);
          const std::int64_t version = next_version.fetch_add(1);
          if (x % 5 == 0) {
            note(0, key, -version);
            if (!cache.remove(static_cast<std::uint64_t>(key)).ok()) std::_Exit(13);
            note(1, key, -version);
          } else {
            note(0, key, version);
            if (!cache.put(static_cast<std::uint64_t>(key), kill_value(key, version)).ok()) {
              std::_Exit(14);
            }
            note(1, key, version);
          }
        }
      });
    }
    for (auto& t : writers) t.join();
    if (!cache.close().ok()) std::_Exit(15);
    note(2, -1, 0);
  }
}

}  // namespace

// A child process writes and removes through the public API, closing cleanly now and then, and is
// killed with SIGKILL at a random moment; the parent reopens the directory and checks every key:
//  - a key whose last write returned before the last completed close has exactly that state (its
//    value, or nothing after a remove) unless a later write of it started: nothing acknowledged
//    and closed is lost;
//  - whatever is read is a value some put of that key wrote (never foreign or torn), and never one
//    older than the last completed close knew, nor one a remove before that close removed.
// Writes after the last close may or may not be there (write-back: they were in memory).
class ColdCacheKill : public ::testing::TestWithParam<goldylox::cold_durability> {};

TEST_P(ColdCacheKill, KeepsWhatTheLastCompletedCloseCovered) {
  const goldylox::cold_durability durability = GetParam();
  temp_dir dir("goldylox-kill");
  const std::string cache_dir = dir.path() + "/cache";
  const std::string log_path = dir.path() + "/log";
  int closes_checked = 0;
  // Each key's state as the parent last read and closed it (the next child starts from it): a
  // version, or 0 for absent.
  std::map<std::int64_t, std::int64_t> baseline;
  for (std::uint64_t cycle = 0; cycle < 12; ++cycle) {
    ::unlink(log_path.c_str());
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) kill_child(cache_dir, log_path, durability, cycle + 1);
    // Killed at a varying moment after its first completed close (waited for, so a slow disk or
    // a busy machine cannot leave a cycle with no close to check): 0 to 222 ms later.
    const auto has_closed = [&] {
      std::ifstream in(log_path, std::ios::binary);
      kill_log_record r{};
      while (in.read(reinterpret_cast<char*>(&r), sizeof r)) {
        if (r.kind == 2) return true;
      }
      return false;
    };
    for (int i = 0; i < 3000 && !has_closed(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(37 * (cycle % 7)));
    ::kill(child, SIGKILL);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the child exited on its own with " << WEXITSTATUS(status);

    // What the log says: the state each key had at the last completed close, and which keys were
    // written (or being written) after it.
    std::vector<kill_log_record> records;
    {
      std::ifstream in(log_path, std::ios::binary);
      kill_log_record r{};
      while (in.read(reinterpret_cast<char*>(&r), sizeof r)) records.push_back(r);
    }
    std::size_t last_close = 0;
    for (std::size_t i = 0; i < records.size(); ++i) {
      if (records[i].kind == 2) last_close = i + 1;
    }
    std::map<std::int64_t, std::int64_t> at_close = baseline;  // key -> version (< 0: removed)
    std::set<std::int64_t> touched_after;  // keys with a write started after the close
    for (std::size_t i = 0; i < records.size(); ++i) {
      const kill_log_record& r = records[i];
      if (i < last_close && r.kind == 1) at_close[r.key] = r.version;
      if (i >= last_close && r.kind == 0) touched_after.insert(r.key);
    }
    if (last_close != 0) ++closes_checked;

    auto made = goldylox::typed_cache<std::uint64_t, std::string>::builder()
                    .hot_tier_max_entries(32)
                    .warm_tier_max_entries(32)
                    .cold_tier_storage_path(cache_dir)
                    .cold_tier_segment_bytes(1 << 20)
                    .cold_tier_max_bytes(std::size_t{256} << 20)
                    .cold_tier_codec("lz4")
                    .cold_tier_durability(goldylox::cold_durability::none)
                    .build();
    ASSERT_TRUE(made.ok()) << made.status();
    for (std::int64_t key = 0; key < 1000; ++key) {
      const auto known = at_close.find(key);
      const std::int64_t closed = known == at_close.end() ? 0 : known->second;
      const bool later = touched_after.count(key) != 0;
      const std::optional<std::string> got = made->get(static_cast<std::uint64_t>(key));
      if (!got) {
        EXPECT_FALSE(closed > 0 && !later)
            << "cycle " << cycle << ": key " << key << " lost version " << closed;
        continue;
      }
      const std::size_t a = got->find(':');
      const std::size_t b = got->find(':', a + 1);
      ASSERT_NE(b, std::string::npos) << "cycle " << cycle << ": key " << key << " torn";
      const std::int64_t version = std::stoll(got->substr(a + 1, b - a - 1));
      ASSERT_EQ(*got, kill_value(key, version)) << "cycle " << cycle << ": key " << key;
      EXPECT_GE(version, closed < 0 ? -closed + 1 : closed)
          << "cycle " << cycle << ": key " << key << " older than the last close knew";
      if (!later) {
        EXPECT_EQ(version, closed) << "cycle " << cycle << ": key " << key << " changed";
      }
    }
    baseline.clear();
    for (std::int64_t key = 0; key < 1000; ++key) {
      if (const std::optional<std::string> got = made->get(static_cast<std::uint64_t>(key))) {
        const std::size_t a = got->find(':');
        baseline[key] = std::stoll(got->substr(a + 1, got->find(':', a + 1) - a - 1));
      }
    }
    ASSERT_TRUE(made->close().ok());
  }
  EXPECT_EQ(closes_checked, 12) << "every cycle must reach a completed close before the kill";
}

INSTANTIATE_TEST_SUITE_P(Durability, ColdCacheKill,
                         ::testing::Values(goldylox::cold_durability::periodic,
                                           goldylox::cold_durability::every_write),
                         [](const auto& info) {
                           return info.param == goldylox::cold_durability::periodic
                                      ? std::string("periodic")
                                      : std::string("every_write");
                         });

// Write-through (cold_tier_write_through): a child process opens a directory holding keys 0..99
// ("old-<i>"), then, with every_write durability, overwrites 0..49 through each storing call,
// removes 50..74, stores 100..299 anew, and is killed with SIGKILL before close(). Returns how
// many of those acknowledged writes the reopened directory does not show (0 is the promise).
// every_write syncs each cold write before it returns (the store's durable_version reaches its
// last version: cold_store_test), so what a kill -9 cannot lose here a power loss cannot either.
int lost_after_kill9(const std::string& dir, bool write_through) {
  const auto builder = [&] {
    auto b = goldylox::typed_cache<int, std::string>::builder();
    b.hot_tier_max_entries(256)  // memory holds everything: nothing is evicted to disk
        .warm_tier_max_entries(1024)
        .cold_tier_storage_path(dir)
        .cold_tier_max_bytes(16 << 20)
        .cold_tier_segment_bytes(256 << 10)
        .cold_tier_durability(goldylox::cold_durability::every_write);
    return b;
  };
  {
    // No pool in the parent: the child below makes the process-wide default pool itself. Made
    // here, its worker could hold the pool's mutex at the fork, and the child would wait for it
    // forever (docs/configuration.md: a child builds its caches with a pool of its own).
    auto made = builder().enable_background_workers(false).build();
    if (!made.ok()) return -1;
    for (int i = 0; i < 100; ++i) {
      if (!made->put(i, "old-" + std::to_string(i)).ok()) return -2;
    }
    if (!made->close().ok()) return -3;
  }
  const int code = goldylox_test::in_child([&] {
    auto made = builder().cold_tier_write_through(write_through).build();
    if (!made.ok()) return 10;
    auto& cache = *made;
    for (int i = 0; i < 50; ++i) {
      const std::string old = "old-" + std::to_string(i), now = "new-" + std::to_string(i);
      switch (i % 3) {
        case 0:
          if (!cache.put(i, now).ok()) return 11;
          break;
        case 1: {
          const auto r = cache.replace(i, now);
          if (!r.ok() || *r != old) return 12;
          break;
        }
        default: {
          const auto r = cache.compare_and_swap(i, old, now);
          if (!r.ok() || !*r) return 13;
        }
      }
    }
    for (int i = 50; i < 75; ++i) {
      const auto r = cache.remove(i);
      if (!r.ok() || !*r) return 14;
    }
    for (int i = 100; i < 300; ++i) {
      const std::string now = "fresh-" + std::to_string(i);
      if (i % 2 == 0) {
        const auto r = cache.put_if_absent(i, now);
        if (!r.ok() || r->has_value()) return 15;
      } else {
        const auto r = cache.get_or_insert(i, [&] { return now; });
        if (!r.ok() || *r != now) return 16;
      }
    }
    if (cache.stats().cold_demotions != 0) return 17;  // nothing reached the disk by eviction
    ::raise(SIGKILL);
    return 18;
  });
  if (code != 128 + SIGKILL) return -10 - code;
  auto made = builder().build();
  if (!made.ok()) return -4;
  int lost = 0;
  for (int i = 0; i < 300; ++i) {
    const std::optional<std::string> v = made->get(i);
    const std::optional<std::string> want =
        i < 50    ? std::optional<std::string>("new-" + std::to_string(i))
        : i < 75  ? std::nullopt
        : i < 100 ? std::optional<std::string>("old-" + std::to_string(i))
                  : std::optional<std::string>("fresh-" + std::to_string(i));
    lost += v != want;
  }
  return lost;
}

TEST(ColdCache, WriteThroughKeepsEveryReturnedWriteAcrossKill9) {
  temp_dir through;
  EXPECT_EQ(lost_after_kill9(through.path(), true), 0);
  // The control: write-back keeps the new values in memory, and the kill takes them (the
  // overwritten keys' old records were retired, so those keys are gone too; removes survive).
  temp_dir back;
  EXPECT_EQ(lost_after_kill9(back.path(), false), 250);
}

// A write the cold tier refuses (RLIMIT_FSIZE below the active segment's append offset, as in
// full_disk_sequence) returns the error and changes nothing: memory keeps serving the previous
// value, a new key stays absent, and after a restart the disk has the previous values.
int write_through_full_disk_sequence(const std::string& dir, goldylox::cold_durability durability) {
  ::signal(SIGXFSZ, SIG_IGN);
  const auto build = [&] {
    return goldylox::typed_cache<int, std::string>::builder()
        .hot_tier_max_entries(64)
        .warm_tier_max_entries(64)
        .cold_tier_storage_path(dir)
        .cold_tier_segment_bytes(64 << 10)
        .cold_tier_max_bytes(16 << 20)
        .cold_tier_codec("none")
        .cold_tier_durability(durability)
        .cold_tier_write_through(true)
        .enable_telemetry(true)
        .build();
  };
  {
    auto made = build();
    if (!made.ok()) return 10;
    auto& cache = *made;
    if (!cache.put(1, "OLD").ok() || !cache.put(2, "R").ok()) return 11;
    // 40 KiB of records written through: the next append lands past 32 KiB.
    for (int i = 0; i < 40; ++i) {
      if (!cache.put(1000 + i, std::string(1024, static_cast<char>('a' + i % 26))).ok()) return 12;
    }
    if (cache.stats().cold_size != 42) return 13;
    rlimit lim{32 << 10, RLIM_INFINITY};
    if (::setrlimit(RLIMIT_FSIZE, &lim) != 0) return 14;
    const std::uint64_t cold_hits = cache.stats().cold_hits;
    if (cache.put(1, "NEW").ok()) return 20;
    if (cache.get(1) != "OLD") return 21;
    if (cache.put(3000, "NEW").ok()) return 22;  // a key memory does not hold fails too
    if (cache.contains(3000)) return 23;
    if (cache.remove(2).ok()) return 24;
    if (cache.get(2) != "R") return 25;
    if (cache.replace(1, "NEW").ok()) return 26;
    if (cache.compare_and_swap(1, "OLD", "NEW").ok()) return 27;
    if (cache.put_if_absent(3001, "NEW").ok()) return 28;
    if (cache.get_or_insert(3002, [] { return std::string("NEW"); }).ok()) return 29;
    if (cache.contains(3001) || cache.contains(3002)) return 30;
    if (cache.get(1) != "OLD") return 31;
    if (cache.stats().cold_hits != cold_hits) return 32;  // memory served them, unchanged
    lim.rlim_cur = RLIM_INFINITY;
    if (::setrlimit(RLIMIT_FSIZE, &lim) != 0) return 33;
    if (!cache.close().ok()) return 34;
  }
  auto made = build();
  if (!made.ok()) return 40;
  if (made->get(1) != "OLD") return 41;
  if (made->get(2) != "R") return 42;
  if (made->contains(3000) || made->contains(3001) || made->contains(3002)) return 43;
  return 0;
}

TEST(ColdCache, AWriteThroughTheColdTierRefusesFailsAndChangesNothing) {
  for (const auto mode :
       {goldylox::cold_durability::none, goldylox::cold_durability::every_write}) {
    temp_dir dir;
    EXPECT_EQ(
        goldylox_test::in_child([&] { return write_through_full_disk_sequence(dir.path(), mode); }),
        0)
        << goldylox::to_string(mode);
  }
}

// With write-through the cold tier holds every value memory holds, so evictions write nothing
// (cold_already_stored counts them) and every key is still served, before and after a restart.
TEST(ColdCache, WriteThroughEvictionsAreNotRewritten) {
  temp_dir dir;
  const auto build = [&] {
    return goldylox::typed_cache<int, std::string>::builder()
        .hot_tier_max_entries(16)
        .warm_tier_max_entries(16)
        .cold_tier_storage_path(dir.path())
        .cold_tier_max_bytes(16 << 20)
        .cold_tier_segment_bytes(256 << 10)
        .cold_tier_durability(goldylox::cold_durability::none)
        .cold_tier_write_through(true)
        .build();
  };
  {
    auto cache = build();
    ASSERT_TRUE(cache.ok()) << cache.status();
    for (int i = 0; i < 500; ++i) ASSERT_TRUE(cache->put(i, "v" + std::to_string(i)).ok());
    for (int i = 0; i < 500; ++i) EXPECT_EQ(cache->get(i), "v" + std::to_string(i)) << i;
    cache->run_pending_tasks();  // the moves and write-backs waiting for the pool are decided
    const goldylox::cache_stats st = cache->stats();
    EXPECT_EQ(st.cold_size, 500u);
    EXPECT_EQ(st.cold_demotions, 0u);
    EXPECT_GE(st.cold_already_stored, 500u - 32u);
    EXPECT_EQ(st.cold_refused, 0u);
    ASSERT_TRUE(cache->close().ok());
  }
  auto cache = build();
  ASSERT_TRUE(cache.ok()) << cache.status();
  for (int i = 0; i < 500; ++i) EXPECT_EQ(cache->get(i), "v" + std::to_string(i)) << i;
}
