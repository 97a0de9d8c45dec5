// The cold tier's store: the compact index against a model, segment scanning on damaged bytes,
// and the store itself: round trips through every codec, restarts, tombstones, expiry,
// reclamation, the lock file, bad configuration, and damaged, truncated, foreign and unreadable
// files, full disks and read-only directories (the last two in child processes, so their limits
// and identities stay out of the test binary).
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cold/cold_test_support.hpp"
#include "goldylox/detail/cold/store.hpp"
#include "test_support.hpp"

namespace {

namespace gd = goldylox::detail;
namespace fs = std::filesystem;
using goldylox::codec_id;
using goldylox::cold_durability;
using namespace goldylox_test::cold;
using goldylox_test::in_child;
using goldylox_test::process_threads;
using goldylox_test::temp_dir;

// --- the index ---------------------------------------------------------------------------------

TEST(ColdIndex, MatchesAModelThroughInsertsRelocationsAndErases) {
  gd::cold_index index;
  std::unordered_map<std::uint64_t, std::uint64_t> model;  // hash -> location
  std::mt19937_64 rng(7);
  // Few distinct 24-bit tags within a shard, so probes run through long clusters of equal tags.
  const auto make_hash = [&](std::uint64_t i) {
    return (i % 3) << 56 | ((i * 0x9E3779B97F4A7C15ULL >> 44) % 4096) << 32 | i;
  };
  std::uint64_t next_loc = 8;
  for (int step = 0; step < 200000; ++step) {
    const std::uint64_t h = make_hash(rng() % 5000);
    auto& shard = index.shard_for(h);
    std::unique_lock lock(shard.mutex());
    auto it = model.find(h);
    auto* slot =
        shard.find(h, [&](std::uint64_t loc) { return it != model.end() && loc == it->second; });
    ASSERT_EQ(slot != nullptr, it != model.end()) << "step " << step;
    const int op = static_cast<int>(rng() % 3);
    if (it == model.end()) {
      ASSERT_TRUE(shard.insert(h, next_loc));
      model[h] = next_loc++;
    } else if (op == 0) {
      shard.erase(slot);
      model.erase(it);
    } else {
      gd::cold_index::shard::relocate(slot, next_loc);
      it->second = next_loc++;
    }
  }
  EXPECT_EQ(index.size(), model.size());
  for (const auto& [h, loc] : model) {
    auto& shard = index.shard_for(h);
    EXPECT_NE(shard.find_location(h, loc), nullptr);
  }
  // for_each may erase while walking: erase every other location, keep the rest.
  std::size_t kept = 0;
  for (std::size_t i = 0; i < gd::cold_index::shard_count; ++i) {
    auto& shard = index.shard_at(i);
    std::unique_lock lock(shard.mutex());
    shard.for_each([&](std::atomic<std::uint64_t>* slot) {
      const bool drop = (slot->load() & gd::cold_index::location_mask) % 2 == 0;
      kept += !drop;
      return drop;
    });
  }
  EXPECT_EQ(index.size(), kept);
  for (const auto& [h, loc] : model) {
    auto& shard = index.shard_for(h);
    EXPECT_EQ(shard.find_location(h, loc) != nullptr, loc % 2 == 1);
  }
}

TEST(ColdIndex, StaysUnderSixteenBytesPerEntry) {
  gd::cold_index index;
  std::mt19937_64 rng(3);
  for (std::size_t n = 1; n <= 1'000'000; ++n) {
    const std::uint64_t h = rng();
    auto& shard = index.shard_for(h);
    std::unique_lock lock(shard.mutex());
    ASSERT_TRUE(shard.insert(h, n));
    if (n >= 100'000 && n % 50'000 == 0) {
      lock.unlock();
      const double per_entry = static_cast<double>(index.memory_bytes()) / static_cast<double>(n);
      EXPECT_LE(per_entry, 16.0) << n << " entries";
    }
  }
}

// --- segment scanning --------------------------------------------------------------------------

std::vector<std::byte> build_segment(int records, std::vector<std::size_t>* offsets) {
  std::vector<std::byte> seg(64 * 1024);
  gd::encode_segment_header(seg.data(), {7, seg.size(), 1});
  std::size_t off = gd::segment_header_size;
  for (int i = 0; i < records; ++i) {
    const std::string k = key_for(i), v = value_for(i, 1);
    const std::size_t n = gd::encode_record(std::span(seg).subspan(off),
                                            {codec_id::none, false, 5, std::uint64_t(i + 1), 0},
                                            as_bytes(k), as_bytes(v), v.size());
    if (offsets) offsets->push_back(off);
    off += n;
  }
  return seg;
}

TEST(SegmentScan, CleanTornAndResynchronised) {
  std::vector<std::size_t> offsets;
  auto seg = build_segment(20, &offsets);
  const auto count = [](std::span<const std::byte> b) {
    int n = 0;
    auto r = gd::scan_records(b, [&](const gd::record_view&, std::size_t) { ++n; });
    return std::pair(n, r);
  };
  auto [n, r] = count(seg);
  EXPECT_EQ(n, 20);
  EXPECT_TRUE(r.clean);
  EXPECT_EQ(r.corrupt_regions, 0u);

  // A torn tail: the last record's second half never reached the disk.
  auto torn = seg;
  const std::size_t last = offsets.back();
  std::fill(torn.begin() + static_cast<long>(last + 100), torn.end(), std::byte{0});
  std::tie(n, r) = count(torn);
  EXPECT_EQ(n, 19);
  EXPECT_FALSE(r.clean);
  EXPECT_EQ(r.corrupt_regions, 1u);
  EXPECT_EQ(r.end, last);

  // A flipped byte in record 5: that record is skipped, the scan picks up at record 6.
  auto flipped = seg;
  flipped[offsets[5] + 60] ^= std::byte{0x40};
  std::tie(n, r) = count(flipped);
  EXPECT_EQ(n, 19);
  EXPECT_EQ(r.corrupt_regions, 1u);
  EXPECT_EQ(r.corrupt_bytes, offsets[6] - offsets[5]);

  // Garbage after the last record.
  auto garbage = seg;
  std::mt19937 rng(1);
  const std::size_t end = offsets.back() + (offsets[1] - offsets[0]);
  for (std::size_t i = end; i < end + 500; ++i) garbage[i] = static_cast<std::byte>(rng());
  std::tie(n, r) = count(garbage);
  EXPECT_EQ(n, 20);
  EXPECT_EQ(r.corrupt_regions, 1u);
  EXPECT_FALSE(r.clean);
}

// --- the store ---------------------------------------------------------------------------------

class ColdStoreCodecs : public ::testing::TestWithParam<std::pair<codec_id, int>> {};

TEST_P(ColdStoreCodecs, RoundTripsAndSurvivesReopen) {
  temp_dir dir;
  auto o = small_options(dir.path());
  o.codec = GetParam().first;
  o.codec_level = GetParam().second;
  {
    auto s = open_ok(o);
    for (std::uint64_t k = 0; k < 2000; ++k) {
      ASSERT_TRUE(s->put(as_bytes(key_for(k)), as_bytes(value_for(k, 1)), 100 + k).ok());
    }
    ASSERT_TRUE(s->put(as_bytes("empty"), {}, 9).ok());
    for (std::uint64_t k = 0; k < 2000; k += 7) {
      std::uint64_t tag = 0;
      auto v = get(*s, key_for(k), &tag);
      ASSERT_TRUE(v.ok()) << v.status();
      EXPECT_EQ(*v, value_for(k, 1));
      EXPECT_EQ(tag, 100 + k);
    }
    const auto st = s->stats();
    EXPECT_EQ(st.entries, 2001u);
    if (o.codec != codec_id::none) {
      EXPECT_LT(st.stored_bytes_written, st.value_bytes_written * 6 / 10) << "codec did not pay";
    }
  }
  auto s = open_ok(o);
  EXPECT_EQ(s->stats().entries, 2001u);
  EXPECT_EQ(s->stats().corrupt_records, 0u);
  for (std::uint64_t k = 0; k < 2000; ++k) {
    auto v = get(*s, key_for(k));
    ASSERT_TRUE(v.ok()) << key_for(k) << ": " << v.status();
    EXPECT_EQ(*v, value_for(k, 1));
  }
  auto e = get(*s, "empty");
  ASSERT_TRUE(e.ok());
  EXPECT_TRUE(e->empty());
  EXPECT_TRUE(absl::IsNotFound(get(*s, "absent").status()));
}

// prepare() + put_prepared() (the demotion writer's put: compression outside its lock) stores
// exactly what put() stores, with the same codec choice and the same errors, and a prepared value
// can be stored under several keys and its buffer reused.
TEST_P(ColdStoreCodecs, APreparedPutStoresWhatPutStores) {
  temp_dir dir;
  auto o = small_options(dir.path());
  o.codec = GetParam().first;
  o.codec_level = GetParam().second;
  temp_dir dir2;
  auto o2 = o;
  o2.path = dir2.path();
  auto direct = open_ok(o);
  auto prepared = open_ok(o2);
  gd::cold_store::prepared_value p;
  std::mt19937_64 rng(9);
  std::string noise(1500, '\0');
  for (auto& c : noise) c = static_cast<char>(rng());
  for (std::uint64_t k = 0; k < 300; ++k) {
    const std::string v = k % 5 == 4 ? noise : value_for(k, 2);
    ASSERT_TRUE(direct->put(as_bytes(key_for(k)), as_bytes(v), 7 + k).ok());
    prepared->prepare(as_bytes(v), 7 + k, p);
    EXPECT_EQ(p.size(), v.size());
    ASSERT_TRUE(prepared->put_prepared(as_bytes(key_for(k)), p).ok());
    if (k == 0) {
      ASSERT_TRUE(prepared->put_prepared(as_bytes("again"), p).ok());
    }
  }
  for (std::uint64_t k = 0; k < 300; ++k) {
    std::uint64_t tag = 0;
    auto v = get(*prepared, key_for(k), &tag);
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ(*v, k % 5 == 4 ? noise : value_for(k, 2));
    EXPECT_EQ(tag, 7 + k);
  }
  EXPECT_EQ(*get(*prepared, "again"), value_for(0, 2));
  const auto a = direct->stats(), b = prepared->stats();
  EXPECT_EQ(a.value_bytes_written + value_for(0, 2).size(), b.value_bytes_written);
  // The same codec choices: the prepared store has one record more ("again"), of key 0's codec.
  std::uint64_t extra = 0;
  for (std::size_t c = 0; c < std::size(a.records_by_codec); ++c) {
    ASSERT_GE(b.records_by_codec[c], a.records_by_codec[c]);
    extra += b.records_by_codec[c] - a.records_by_codec[c];
  }
  EXPECT_EQ(extra, 1u);
  const std::string huge(70 * 1024, 'x');
  prepared->prepare(as_bytes(huge), 1, p);
  EXPECT_TRUE(absl::IsInvalidArgument(prepared->put_prepared(as_bytes("huge"), p)));
  ASSERT_TRUE(prepared->close().ok());
  prepared->prepare(as_bytes(std::string("late")), 1, p);
  EXPECT_TRUE(absl::IsFailedPrecondition(prepared->put_prepared(as_bytes("late"), p)));
}

INSTANTIATE_TEST_SUITE_P(
    , ColdStoreCodecs,
    ::testing::Values(std::pair(codec_id::none, 0), std::pair(codec_id::lz4, 0),
                      std::pair(codec_id::zstd, 3), std::pair(codec_id::brotli, 5)),
    [](const auto& info) {
      return std::string(
          std::array{"none", "lz4", "zstd", "brotli"}[static_cast<int>(info.param.first)]);
    });

TEST(ColdStore, IncompressibleValuesAreStoredRaw) {
  temp_dir dir;
  auto s = open_ok(small_options(dir.path()));
  std::mt19937_64 rng(5);
  std::string noise(2000, '\0');
  for (auto& c : noise) c = static_cast<char>(rng());
  ASSERT_TRUE(s->put(as_bytes("noise"), as_bytes(noise), 1).ok());
  EXPECT_EQ(s->stats().stored_bytes_written, noise.size());
  EXPECT_EQ(*get(*s, "noise"), noise);
}

// The adaptive codec decides per value type: JSON-like values compress far better with zstd than
// with LZ4 (0.32 against 0.44 of their size), random bytes with neither.
TEST(ColdStore, TheAdaptiveCodecPicksPerValueType) {
  temp_dir dir;
  auto o = small_options(dir.path());
  o.adaptive = true;
  o.codec = codec_id::brotli;  // ignored when adaptive
  auto s = open_ok(o);
  std::mt19937_64 rng(9);
  std::vector<std::string> noise(300);
  for (auto& n : noise) {
    n.resize(700);
    for (auto& c : n) c = static_cast<char>(rng());
  }
  for (std::uint64_t k = 0; k < 300; ++k) {
    ASSERT_TRUE(s->put(as_bytes(key_for(k)), as_bytes(value_for(k, 1, 1000)), 1).ok());
    ASSERT_TRUE(s->put(as_bytes("noise" + std::to_string(k)), as_bytes(noise[k]), 2).ok());
  }
  const auto st = s->stats();
  const auto by = [&](codec_id c) { return st.records_by_codec[static_cast<int>(c)]; };
  EXPECT_EQ(by(codec_id::brotli), 0u);
  EXPECT_GE(by(codec_id::none), 300u);  // every random value, stored raw
  EXPECT_GT(by(codec_id::zstd) + by(codec_id::lz4), 290u);
  for (std::uint64_t k = 0; k < 300; k += 17) {
    EXPECT_EQ(*get(*s, key_for(k)), value_for(k, 1, 1000));
    EXPECT_EQ(*get(*s, "noise" + std::to_string(k)), noise[k]);
  }
}

TEST(ColdStore, OverwritesAndErasesPersistWithTheNewestVersion) {
  temp_dir dir;
  const auto o = small_options(dir.path());
  {
    auto s = open_ok(o);
    for (std::uint64_t round = 1; round <= 5; ++round) {
      for (std::uint64_t k = 0; k < 500; ++k) {
        ASSERT_TRUE(s->put(as_bytes(key_for(k)), as_bytes(value_for(k, round)), 1).ok());
      }
    }
    for (std::uint64_t k = 0; k < 500; k += 2) {
      auto erased = s->erase(as_bytes(key_for(k)));
      ASSERT_TRUE(erased.ok() && *erased);
    }
    auto again = s->erase(as_bytes(key_for(0)));
    ASSERT_TRUE(again.ok());
    EXPECT_FALSE(*again);
    EXPECT_EQ(s->stats().entries, 250u);
  }
  auto s = open_ok(o);
  EXPECT_EQ(s->stats().entries, 250u);
  for (std::uint64_t k = 0; k < 500; ++k) {
    auto v = get(*s, key_for(k));
    if (k % 2 == 0) {
      EXPECT_TRUE(absl::IsNotFound(v.status())) << key_for(k);
    } else {
      ASSERT_TRUE(v.ok());
      EXPECT_EQ(*v, value_for(k, 5));
    }
  }
  // Writes after a reopen continue the version sequence: they win over what was recovered.
  ASSERT_TRUE(s->put(as_bytes(key_for(1)), as_bytes(value_for(1, 6)), 1).ok());
  ASSERT_TRUE(s->put(as_bytes(key_for(0)), as_bytes(value_for(0, 6)), 1).ok());
  s.reset();
  s = open_ok(o);
  EXPECT_EQ(*get(*s, key_for(1)), value_for(1, 6));
  EXPECT_EQ(*get(*s, key_for(0)), value_for(0, 6));
}

TEST(ColdStore, ExpiredEntriesAreNotServedBeforeOrAfterAReopen) {
  temp_dir dir;
  const auto o = small_options(dir.path());
  const std::uint64_t now = gd::wall_clock_ns();
  {
    auto s = open_ok(o);
    ASSERT_TRUE(s->put(as_bytes("old"), as_bytes(std::string("v1")), 1).ok());
    ASSERT_TRUE(s->put(as_bytes("old"), as_bytes(std::string("v2")), 1, now - 1).ok());
    ASSERT_TRUE(
        s->put(as_bytes("fresh"), as_bytes(std::string("f")), 1, now + 3'600'000'000'000).ok());
    EXPECT_TRUE(absl::IsNotFound(get(*s, "old").status()));
    EXPECT_EQ(*get(*s, "fresh"), "f");
  }
  auto s = open_ok(o);
  // The expired v2 supersedes v1: v1 must not come back.
  EXPECT_TRUE(absl::IsNotFound(get(*s, "old").status()));
  EXPECT_EQ(*get(*s, "fresh"), "f");
}

TEST(ColdStore, ReclaimsOldestSegmentsAndKeepsRecentlyReadEntries) {
  temp_dir dir;
  auto o = small_options(dir.path());
  o.max_bytes = 8 * o.segment_bytes;  // 512 KiB, about 1400 records of 300 bytes
  o.codec = codec_id::none;
  auto s = open_ok(o);
  // Keys 0..49 (about 18 KiB of records, within the re-insertion budget of half a segment) are
  // read after every batch; the rest are written once and never read.
  constexpr std::uint64_t hot = 50;
  for (std::uint64_t k = 0; k < hot; ++k) {
    ASSERT_TRUE(s->put(as_bytes(key_for(k)), as_bytes(value_for(k, 1)), 1).ok());
  }
  for (std::uint64_t k = hot; k < 20000; ++k) {
    ASSERT_TRUE(s->put(as_bytes(key_for(k)), as_bytes(value_for(k, 1)), 1).ok());
    if (k % 200 == 0) {
      for (std::uint64_t h = 0; h < hot; ++h) ASSERT_TRUE(get(*s, key_for(h)).ok()) << h;
    }
    ASSERT_LE(segment_files(dir.path()).size(), 8u);
  }
  const auto st = s->stats();
  EXPECT_GT(st.reclaimed_segments, 20u);
  EXPECT_GT(st.reinserted, 0u);
  EXPECT_GT(st.evicted, 10000u);
  EXPECT_LE(st.disk_bytes, o.max_bytes);
  for (std::uint64_t h = 0; h < hot; ++h) EXPECT_EQ(*get(*s, key_for(h)), value_for(h, 1));
  EXPECT_TRUE(absl::IsNotFound(get(*s, key_for(150)).status()));  // never read: evicted
  // The newest writes are all there.
  for (std::uint64_t k = 19900; k < 20000; ++k) EXPECT_TRUE(get(*s, key_for(k)).ok());
  // The index and the live byte count agree with a fresh recovery of the same files.
  const auto entries = st.entries;
  s.reset();
  s = open_ok(o);
  EXPECT_EQ(s->stats().entries, entries);
  EXPECT_EQ(s->stats().corrupt_records, 0u);
}

TEST(ColdStore, ASecondOpenOfTheDirectoryIsRefused) {
  temp_dir dir;
  auto first = open_ok(small_options(dir.path()));
  auto second = gd::cold_store::open(small_options(dir.path()));
  ASSERT_FALSE(second.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(second.status())) << second.status();
  EXPECT_NE(second.status().message().find("in use"), std::string::npos);
  first.reset();  // the lock goes with the store
  EXPECT_TRUE(gd::cold_store::open(small_options(dir.path())).ok());
}

TEST(ColdStore, RejectsBadConfigurationAndOversizedValues) {
  temp_dir dir;
  const auto bad = [&](auto change) {
    auto o = small_options(dir.path());
    change(o);
    auto s = gd::cold_store::open(o);
    EXPECT_TRUE(absl::IsInvalidArgument(s.status())) << s.status();
  };
  bad([](auto& o) { o.path.clear(); });
  bad([](auto& o) { o.segment_bytes = 100000; });  // not a power of two
  bad([](auto& o) { o.segment_bytes = 1024; });
  bad([](auto& o) { o.max_bytes = o.segment_bytes; });
  bad([](auto& o) { o.max_bytes = std::uint64_t{1} << 50; });
  bad([](auto& o) { o.codec_level = 99; });
  bad([](auto& o) { o.reinsert_share = 1.5; });
  auto s = open_ok(small_options(dir.path()));
  const std::string huge(70 * 1024, 'x');
  auto st = s->put(as_bytes("huge"), as_bytes(huge), 1);
  EXPECT_TRUE(absl::IsInvalidArgument(st)) << st;
  EXPECT_EQ(s->stats().entries, 0u);
  ASSERT_TRUE(s->put(as_bytes("small"), as_bytes(std::string("ok")), 1).ok());
  EXPECT_EQ(*get(*s, "small"), "ok");
}

TEST(ColdStore, DurabilityModesAdvanceTheDurableVersionAsPromised) {
  for (const auto mode : {cold_durability::none, cold_durability::periodic,
                          cold_durability::on_close, cold_durability::every_write}) {
    temp_dir dir;
    auto o = small_options(dir.path());
    o.durability = mode;
    o.sync_interval = std::chrono::milliseconds(20);
    auto s = open_ok(o);
    for (std::uint64_t k = 0; k < 300; ++k) {
      ASSERT_TRUE(s->put(as_bytes(key_for(k)), as_bytes(value_for(k, 1)), 1).ok());
      if (mode == cold_durability::every_write) {
        ASSERT_EQ(s->stats().durable_version, s->stats().last_version);
      }
    }
    const auto last = s->stats().last_version;
    if (mode == cold_durability::periodic) {
      for (int i = 0; i < 500 && s->stats().durable_version < last; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      EXPECT_EQ(s->stats().durable_version, last);
    } else if (mode != cold_durability::every_write) {
      std::this_thread::sleep_for(std::chrono::milliseconds(60));
      EXPECT_EQ(s->stats().durable_version, 0u) << "nothing syncs before close in this mode";
    }
    ASSERT_TRUE(s->close().ok());
    if (mode == cold_durability::none) {
      EXPECT_EQ(s->stats().durable_version, 0u);
      ASSERT_TRUE(s->sync().ok());  // an explicit sync works in any mode
    }
    EXPECT_EQ(s->stats().durable_version, last);
    EXPECT_TRUE(
        absl::IsFailedPrecondition(s->put(as_bytes("late"), as_bytes(std::string("x")), 1)));
    EXPECT_TRUE(get(*s, key_for(1)).ok());  // reads outlive close()
  }
}

// With a worker pool in the options, periodic durability is a job on it: stores sharing the pool
// add no thread of their own and still advance durable_version; close() unregisters the job.
TEST(ColdStore, PeriodicSyncRunsOnASharedPoolWithoutAThreadOfItsOwn) {
  auto pool = std::make_shared<gd::worker_pool>(1);
  const std::size_t threads_before = process_threads();
  temp_dir dirs[3];
  std::vector<std::unique_ptr<gd::cold_store>> stores;
  for (auto& dir : dirs) {
    auto o = small_options(dir.path());
    o.durability = cold_durability::periodic;
    o.sync_interval = std::chrono::milliseconds(20);
    o.pool = pool;
    stores.push_back(open_ok(o));
    ASSERT_TRUE(stores.back());
  }
  EXPECT_EQ(process_threads(), threads_before) << "a store started a syncer thread of its own";
  EXPECT_EQ(pool->stats().jobs, 3u);
  for (auto& s : stores) {
    for (std::uint64_t k = 0; k < 300; ++k) {
      ASSERT_TRUE(s->put(as_bytes(key_for(k)), as_bytes(value_for(k, 1)), 1).ok());
    }
  }
  for (auto& s : stores) {
    const auto last = s->stats().last_version;
    for (int i = 0; i < 500 && s->stats().durable_version < last; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_EQ(s->stats().durable_version, last) << "the pool's sync job did not run";
    EXPECT_GT(s->stats().syncs, 0u);
  }
  EXPECT_GT(pool->stats().runs, 0u);
  for (auto& s : stores) ASSERT_TRUE(s->close().ok());
  EXPECT_EQ(pool->stats().jobs, 0u) << "close() left the sync job registered";
  stores.clear();

  // The count above would have seen a private syncer: without a pool, a store starts one.
  auto o = small_options(dirs[0].path());
  o.durability = cold_durability::periodic;
  auto alone = open_ok(o);
  ASSERT_TRUE(alone);
  EXPECT_EQ(process_threads(), threads_before + 1);
  alone.reset();
  EXPECT_EQ(process_threads(), threads_before);
}

// Damage on disk: every value served must be the right one, damaged records are counted, and
// nothing crashes (AddressSanitizer in CI).
TEST(ColdStore, RecoversFromFlippedBytesTruncationGarbageAndForeignFiles) {
  temp_dir dir;
  auto o = small_options(dir.path());
  o.codec = codec_id::lz4;
  constexpr std::uint64_t n = 3000;
  {
    auto s = open_ok(o);
    for (std::uint64_t k = 0; k < n; ++k) {
      ASSERT_TRUE(s->put(as_bytes(key_for(k)), as_bytes(value_for(k, 1)), 1).ok());
    }
  }
  auto files = segment_files(dir.path());
  ASSERT_GE(files.size(), 6u);
  std::mt19937_64 rng(11);
  // Flip 40 random bytes across the record areas of the first three segments.
  for (int f = 0; f < 3; ++f) {
    std::fstream io(files[f], std::ios::in | std::ios::out | std::ios::binary);
    for (int i = 0; i < 40; ++i) {
      const auto at = static_cast<std::streamoff>(gd::segment_header_size + rng() % 60000);
      io.seekg(at);
      char c = 0;
      io.get(c);
      io.seekp(at);
      io.put(static_cast<char>(c ^ (1 << (rng() % 8))));
    }
  }
  fs::resize_file(files[3], 20000);  // truncated
  fs::resize_file(files[4], 10);     // truncated inside its header
  {
    std::ofstream tail(files.back(), std::ios::binary | std::ios::app);  // garbage appended
    for (int i = 0; i < 3000; ++i) tail.put(static_cast<char>(rng()));
  }
  std::ofstream(dir.path() + "/notes.txt") << "not a segment";
  std::ofstream(dir.path() + "/seg-zzzzzzzzzzzzzzzz.glx") << "a foreign file with our suffix";

  auto s = open_ok(o);
  const auto st = s->stats();
  EXPECT_GT(st.corrupt_records, 3u);
  EXPECT_EQ(st.corrupt_segments, 1u);  // the file cut inside its header
  EXPECT_EQ(st.foreign_files, 2u);
  std::size_t served = 0;
  for (std::uint64_t k = 0; k < n; ++k) {
    auto v = get(*s, key_for(k));
    if (v.ok()) {
      ++served;
      ASSERT_EQ(*v, value_for(k, 1)) << "served a wrong value for " << key_for(k);
    } else {
      ASSERT_TRUE(absl::IsNotFound(v.status()) || absl::IsDataLoss(v.status())) << v.status();
    }
  }
  EXPECT_GT(served, n / 2);
  EXPECT_LT(served, n);
  EXPECT_EQ(served, s->stats().entries);
  // The store keeps working on top of the damage, and a new segment is used for new writes.
  ASSERT_TRUE(s->put(as_bytes("after"), as_bytes(std::string("damage")), 1).ok());
  EXPECT_EQ(*get(*s, "after"), "damage");
}

// Damage that appears while the store is open (bit rot, another program): the checksum catches
// it on the read, the record is unindexed and counted, never served.
TEST(ColdStore, ARecordDamagedWhileOpenIsNotServed) {
  temp_dir dir;
  auto o = small_options(dir.path());
  o.codec = codec_id::none;
  auto s = open_ok(o);
  ASSERT_TRUE(s->put(as_bytes("k"), as_bytes(std::string(200, 'v')), 1).ok());
  const auto files = segment_files(dir.path());
  ASSERT_EQ(files.size(), 1u);
  {
    std::fstream io(files[0], std::ios::in | std::ios::out | std::ios::binary);
    io.seekp(static_cast<std::streamoff>(gd::segment_header_size + 48 + 1 + 100));
    io.put('X');
  }
  auto v = get(*s, "k");
  EXPECT_TRUE(absl::IsDataLoss(v.status())) << v.status();
  EXPECT_EQ(s->stats().corrupt_records, 1u);
  EXPECT_TRUE(absl::IsNotFound(get(*s, "k").status()));
  EXPECT_EQ(s->stats().entries, 0u);
}

// A full disk, made real for one child process with RLIMIT_FSIZE (files may not grow past 1 MiB:
// fallocate and write fail with EFBIG, as they fail with ENOSPC on a full file system).
TEST(ColdStore, AFullDiskRefusesWritesAndKeepsServing) {
  temp_dir dir;
  const int code = in_child([&] {
    ::signal(SIGXFSZ, SIG_IGN);
    rlimit lim{1 << 20, 1 << 20};
    if (::setrlimit(RLIMIT_FSIZE, &lim) != 0) return 10;
    auto o = small_options(dir.path());
    o.segment_bytes = 2 << 20;  // larger than the limit: no segment can be created
    o.max_bytes = 64 << 20;
    auto s = gd::cold_store::open(o);
    if (!s.ok()) return 11;
    auto st = (*s)->put(as_bytes("k"), as_bytes(std::string("v")), 1);
    if (!absl::IsResourceExhausted(st)) return 12;
    if ((*s)->stats().write_errors != 1 || (*s)->stats().entries != 0) return 13;
    if (!absl::IsNotFound(get(**s, "k").status())) return 14;
    return segment_files(dir.path()).empty() ? 0 : 15;  // the partial file was removed
  });
  EXPECT_EQ(code, 0);
}

// A small tmpfs fills up for real (needs mount privileges; skipped without them). Once the disk
// is full the store sheds its oldest segment to go on, as a full cache would.
TEST(ColdStore, ASmallTmpfsFillsUpAndTheStoreGoesOn) {
  temp_dir dir;
  const std::string mnt = dir.path() + "/mnt";
  fs::create_directory(mnt);
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=1m") != 0) {
    GTEST_SKIP() << "cannot mount a tmpfs here: " << std::strerror(errno);
  }
  {
    auto o = small_options(mnt);
    o.max_bytes = 4 << 20;  // more than the 1 MiB file system holds
    o.codec = codec_id::none;
    auto s = open_ok(o);
    std::size_t refused = 0;
    for (std::uint64_t k = 0; k < 20000; ++k) {
      auto st = s->put(as_bytes(key_for(k)), as_bytes(value_for(k, 1)), 1);
      if (!st.ok()) {
        EXPECT_TRUE(absl::IsResourceExhausted(st)) << st;
        ++refused;
      }
    }
    const auto st = s->stats();
    EXPECT_GT(st.reclaimed_segments, 0u);
    EXPECT_LE(st.disk_bytes, 1u << 20);
    EXPECT_EQ(refused, st.write_errors);
    EXPECT_EQ(*get(*s, key_for(19999)), value_for(19999, 1));
  }
  ::umount(mnt.c_str());
}

TEST(ColdStore, AReadOnlyDirectoryFailsToOpenWithAClearError) {
  temp_dir dir;
  const std::string ro = goldylox_test::read_only_dir(dir);
  const int code = in_child([&] {
    if (!goldylox_test::drop_root()) return 10;
    auto s = gd::cold_store::open(small_options(ro));
    if (s.ok()) return 11;
    if (!absl::IsPermissionDenied(s.status())) return 12;
    if (s.status().message().find(ro) == std::string::npos) return 13;
    // So does a directory to be created inside it.
    auto missing = gd::cold_store::open(small_options(ro + "/a/b"));
    return absl::IsNotFound(missing.status()) || absl::IsPermissionDenied(missing.status()) ? 0
                                                                                            : 14;
  });
  EXPECT_EQ(code, 0);
}

// ---- failures that must not cost data (issue 24) ----------------------------------------------

// Closes every descriptor above stderr (in a child process: copies of the parent's), so that
// the lowest free descriptor numbers are 3, 4, ... and RLIMIT_NOFILE, which bounds numbers,
// bounds how many files can be opened.
void close_inherited_descriptors() {
  std::vector<int> fds;
  for (const auto& e : fs::directory_iterator("/proc/self/fd")) {
    fds.push_back(std::stoi(e.path().filename().string()));
  }
  for (const int fd : fds) {
    if (fd > 2) ::close(fd);
  }
}

// A segment that cannot be opened for a passing reason (here: no descriptors left) is not
// damage. Skipped as corrupt, its records would vanish until the next open, and the versions
// handed out meanwhile could be lower than theirs, so an older value would come back later.
// The open fails instead, naming the file, and a later open with descriptors to spare finds
// everything.
TEST(ColdStore, ASegmentThatCannotBeOpenedFailsTheOpenInsteadOfBeingSkipped) {
  temp_dir dir;
  ::chmod(dir.path().c_str(), 0777);
  const std::string path = dir.path() + "/cold";
  auto o = small_options(path);
  o.codec = codec_id::none;
  const int filled = in_child([&] {
    if (!goldylox_test::drop_root()) return 10;
    fill(o, 2000);
    return 0;
  });
  ASSERT_EQ(filled, 0);
  const auto files = segment_files(path);
  const std::size_t segments = files.size();
  ASSERT_GE(segments, 8u);
  ::chmod(files[5].c_str(), 0);  // unreadable for now: not proven damaged
  const int code = in_child([&] {
    if (!goldylox_test::drop_root()) return 10;
    auto s = gd::cold_store::open(o);
    if (s.ok()) return 11;  // opened with a segment missing
    if (absl::IsDataLoss(s.status())) return 12;
    const std::string message(s.status().message());
    if (message.find(files[5].filename().string()) == std::string::npos) return 13;
    if (message.find(std::strerror(EACCES)) == std::string::npos) return 14;
    // Descriptors do not grow with the segment count: with room for a handful, the store
    // opens (every other segment is readable).
    ::chmod(files[5].c_str(), 0644);
    close_inherited_descriptors();
    const rlim_t limit = 3 + 6;
    rlimit lim{limit, limit};
    if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) return 15;
    auto again = gd::cold_store::open(o);
    return again.ok() ? 0 : 16;
  });
  EXPECT_EQ(code, 0);
  auto s = open_ok(o);
  EXPECT_EQ(s->stats().corrupt_segments, 0u);
  EXPECT_EQ(segment_files(path).size(), segments);
  for (std::uint64_t k = 0; k < 2000; ++k) EXPECT_EQ(*get(*s, key_for(k)), value_for(k, 1)) << k;
}

// A file size limit (RLIMIT_FSIZE: EFBIG, the same kResourceExhausted as a full disk) refuses
// new segments, but deleting old ones cannot lift it: nothing is deleted and every stored key
// stays readable. (On a disk that is really full, ASmallTmpfsFillsUpAndTheStoreGoesOn, the
// oldest segment is still shed.)
TEST(ColdStore, AFileSizeLimitRefusesWritesWithoutDeletingSegments) {
  temp_dir dir;
  auto o = small_options(dir.path());
  o.codec = codec_id::none;
  fill(o, 700);
  const std::size_t segments = segment_files(dir.path()).size();
  ASSERT_GE(segments, 3u);
  const int code = in_child([&] {
    ::signal(SIGXFSZ, SIG_IGN);
    rlimit lim{32 << 10, 32 << 10};  // below the 64 KiB a segment is created at
    if (::setrlimit(RLIMIT_FSIZE, &lim) != 0) return 10;
    auto s = gd::cold_store::open(o);
    if (!s.ok()) return 11;
    std::size_t refused = 0;
    for (std::uint64_t k = 1000; k < 1040; ++k) {
      auto st = (*s)->put(as_bytes(key_for(k)), as_bytes(value_for(k, 1)), 1);
      if (!st.ok()) {
        if (!absl::IsResourceExhausted(st)) return 12;
        ++refused;
      }
    }
    if (refused == 0) return 13;
    if (segment_files(dir.path()).size() != segments) return 14;  // a segment was deleted
    for (std::uint64_t k = 0; k < 700; ++k) {
      auto v = get(**s, key_for(k));
      if (!v.ok() || *v != value_for(k, 1)) return 15;
    }
    return 0;
  });
  EXPECT_EQ(code, 0);
  auto s = open_ok(o);
  for (std::uint64_t k = 0; k < 700; ++k) EXPECT_EQ(*get(*s, key_for(k)), value_for(k, 1)) << k;
}

// Rolling to a new segment re-inserts recently read entries of the reclaimed one, but never so
// many that the record which asked for the roll no longer fits: with 30 read 1 KiB entries in
// the oldest segment (half a segment's worth), a 40 KiB value is still stored.
TEST(ColdStore, ReinsertedEntriesNeverCrowdOutTheRecordThatRolled) {
  temp_dir dir;
  auto o = small_options(dir.path());
  o.codec = codec_id::none;
  o.max_bytes = 2 * o.segment_bytes;
  auto s = open_ok(o);
  const auto value_of = [](std::uint64_t k) { return value_for(k, 1, 1024); };
  for (std::uint64_t k = 0; k < 30; ++k) {
    ASSERT_TRUE(s->put(as_bytes(key_for(k)), as_bytes(value_of(k)), 1).ok());
  }
  for (std::uint64_t k = 0; k < 30; ++k) ASSERT_TRUE(get(*s, key_for(k)).ok());
  // Fill the first segment with entries nobody reads, then 27 KiB of the second.
  std::uint64_t k = 100;
  while (s->stats().segments < 2) {
    ASSERT_TRUE(s->put(as_bytes(key_for(k)), as_bytes(value_of(k)), 1).ok());
    ++k;
  }
  for (int i = 0; i < 25; ++i, ++k) {
    ASSERT_TRUE(s->put(as_bytes(key_for(k)), as_bytes(value_of(k)), 1).ok());
  }
  ASSERT_EQ(s->stats().reclaimed_segments, 0u);
  const std::string big(40 << 10, 'x');
  ASSERT_TRUE(s->put(as_bytes("big"), as_bytes(big), 1).ok());
  EXPECT_EQ(*get(*s, "big"), big);
  const auto st = s->stats();
  EXPECT_EQ(st.reclaimed_segments, 1u);
  EXPECT_GT(st.reinserted, 0u);   // re-insertion still ran ...
  EXPECT_LT(st.reinserted, 30u);  // ... within what the big record left
}

// Validation accepts exactly what recovery can address: the largest capacity accepted for a
// segment size opens, one segment more is refused at validation, not at open.
TEST(ColdStore, EveryAcceptedCapacityOpens) {
  for (const std::uint64_t seg : {std::uint64_t{256} << 20, std::uint64_t{4} << 30}) {
    SCOPED_TRACE(seg);
    temp_dir dir;
    auto o = small_options(dir.path());
    o.segment_bytes = seg;
    int bits = 0;
    while ((std::uint64_t{1} << (bits + 3)) < seg) ++bits;
    const std::uint64_t slots = std::uint64_t{1} << (gd::cold_index::location_bits - bits);
    // The budget's segments and those a roll adds for a moment.
    o.max_bytes = (slots - gd::cold_store::slot_count_for(0)) * seg;
    ASSERT_TRUE(gd::cold_store::validate(o).ok()) << gd::cold_store::validate(o);
    EXPECT_TRUE(gd::cold_store::open(o).ok());
    o.max_bytes += seg;
    EXPECT_TRUE(absl::IsInvalidArgument(gd::cold_store::validate(o)));
    EXPECT_TRUE(absl::IsInvalidArgument(gd::cold_store::open(o).status()));
  }
  // The 4 TiB the documentation names is refused with small segments too, at validation.
  gd::cold_store_options o;
  o.path = "/nonexistent";
  o.segment_bytes = 64 << 10;
  o.max_bytes = std::uint64_t{1} << 42;
  EXPECT_TRUE(absl::IsInvalidArgument(gd::cold_store::validate(o)));
}

std::uint64_t bytes_on_disk(const std::string& dir) {
  std::uint64_t n = 0;
  for (const auto& f : segment_files(dir)) n += fs::file_size(f);
  return n;
}

// The disk budget is bytes, not a segment count: reopening with another segment size keeps
// every entry that fits the budget, and the files never exceed it by more than one segment.
TEST(ColdStore, TheDiskBudgetIsInBytesWhateverSegmentSizeEarlierRunsUsed) {
  {  // small segments, reopened with large ones: nothing that fits is evicted
    temp_dir dir;
    auto o = small_options(dir.path());
    o.codec = codec_id::none;
    o.max_bytes = 8 << 20;
    fill(o, 5000);
    o.segment_bytes = 4 << 20;
    auto s = open_ok(o);
    EXPECT_EQ(s->stats().entries, 5000u);
    EXPECT_EQ(s->stats().evicted, 0u);
    for (std::uint64_t k = 0; k < 5000; ++k) EXPECT_EQ(*get(*s, key_for(k)), value_for(k, 1)) << k;
    for (std::uint64_t k = 5000; k < 35000; ++k) {
      ASSERT_TRUE(s->put(as_bytes(key_for(k)), as_bytes(value_for(k, 1)), 1).ok());
      if (k % 500 == 0) {
        ASSERT_LE(bytes_on_disk(dir.path()), o.max_bytes + o.segment_bytes) << k;
        ASSERT_LE(s->stats().disk_bytes, o.max_bytes + o.segment_bytes) << k;
      }
    }
    EXPECT_EQ(*get(*s, key_for(34999)), value_for(34999, 1));
  }
  {  // large segments, reopened with small ones: the budget still holds
    temp_dir dir;
    auto o = small_options(dir.path());
    o.codec = codec_id::none;
    o.segment_bytes = 4 << 20;
    o.max_bytes = 8 << 20;
    fill(o, 25000);
    o.segment_bytes = 64 << 10;
    auto s = open_ok(o);
    // The 4 MiB segments span 64 slots each of this run's addressing: every record in them,
    // far past the first 64 KiB, reads back.
    const std::uint64_t kept = s->stats().entries;
    EXPECT_GT(kept, 10000u);
    std::uint64_t found = 0;
    for (std::uint64_t k = 0; k < 25000; ++k) {
      auto v = get(*s, key_for(k));
      if (absl::IsNotFound(v.status())) continue;
      ASSERT_TRUE(v.ok()) << k << ": " << v.status();
      EXPECT_EQ(*v, value_for(k, 1)) << k;
      ++found;
    }
    EXPECT_EQ(found, kept);
    for (std::uint64_t k = 30000; k < 60000; ++k) {
      ASSERT_TRUE(s->put(as_bytes(key_for(k)), as_bytes(value_for(k, 1)), 1).ok());
      if (k % 500 == 0) {
        ASSERT_LE(bytes_on_disk(dir.path()), o.max_bytes + o.segment_bytes) << k;
        ASSERT_EQ(s->stats().disk_bytes, bytes_on_disk(dir.path())) << k;
      }
    }
    EXPECT_EQ(*get(*s, key_for(59999)), value_for(59999, 1));
    const auto entries = s->stats().entries;
    s.reset();
    EXPECT_EQ(open_ok(o)->stats().entries, entries);
  }
}

// A capacity of many small segments opens over a directory an earlier run wrote with one segment
// as large as a quarter of it (1 GiB in 64 KiB segments over one 256 MiB segment): the large
// segment is addressed as 4,096 consecutive slots, not refused for lack of location bits.
TEST(ColdStore, ManySmallSegmentsOpenOverOneLargeSegmentOfAnEarlierRun) {
  temp_dir dir;
  auto o = small_options(dir.path());
  o.codec = codec_id::none;
  o.segment_bytes = std::uint64_t{256} << 20;
  o.max_bytes = std::uint64_t{512} << 20;
  fill(o, 2000);  // 600 KB: records up to ten 64 KiB slots into the segment
  o.segment_bytes = 64 << 10;
  o.max_bytes = std::uint64_t{1} << 30;
  auto s = open_ok(o);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->stats().entries, 2000u);
  for (std::uint64_t k = 0; k < 2000; ++k) EXPECT_EQ(*get(*s, key_for(k)), value_for(k, 1)) << k;
  // Updates and removals of keys in the large segment, then new segments beside it.
  for (std::uint64_t k = 0; k < 2000; k += 2) {
    ASSERT_TRUE(s->put(as_bytes(key_for(k)), as_bytes(value_for(k, 2)), 1).ok());
  }
  for (std::uint64_t k = 1; k < 2000; k += 10) ASSERT_TRUE(s->erase(as_bytes(key_for(k))).ok());
  const auto check = [&](gd::cold_store& c) {
    for (std::uint64_t k = 0; k < 2000; ++k) {
      auto v = get(c, key_for(k));
      if (k % 10 == 1) {
        EXPECT_TRUE(absl::IsNotFound(v.status())) << k;
      } else {
        ASSERT_TRUE(v.ok()) << k << ": " << v.status();
        EXPECT_EQ(*v, value_for(k, k % 2 == 0 ? 2 : 1)) << k;
      }
    }
  };
  check(*s);
  s.reset();
  s = open_ok(o);
  ASSERT_TRUE(s);
  check(*s);
}

}  // namespace

// Reclamation weighs live bytes: while at most half the budget is live data, every live entry of
// a reclaimed segment is re-appended (compacted), read or not. 100 entries nobody reads and two
// keys updated 1,200 times through a 1 MiB budget (the disk ~90 % dead records): none of the 100
// is dropped, before or after a reopen. Then, with the disk mostly live, FIFO eviction resumes.
TEST(ColdStore, ReclamationKeepsLiveEntriesWhileTheDiskIsMostlyDead) {
  temp_dir dir;
  auto o = small_options(dir.path());
  o.codec = codec_id::none;
  o.max_bytes = 1 << 20;
  {
    auto s = open_ok(o);
    for (std::uint64_t k = 0; k < 100; ++k) {
      ASSERT_TRUE(s->put(as_bytes(key_for(k)), as_bytes(value_for(k, 1, 1000)), 1).ok());
    }
    for (std::uint64_t u = 0; u < 1200; ++u) {
      const std::uint64_t k = 1000 + u % 2;
      ASSERT_TRUE(s->put(as_bytes(key_for(k)), as_bytes(value_for(k, u, 1000)), 1).ok());
    }
    const auto st = s->stats();
    EXPECT_GT(st.reclaimed_segments, 2u);
    EXPECT_EQ(st.evicted, 0u);
    EXPECT_LE(st.disk_bytes, o.max_bytes);
    for (std::uint64_t k = 0; k < 100; ++k) {
      ASSERT_EQ(*get(*s, key_for(k)), value_for(k, 1, 1000)) << k;
    }
  }
  auto s = open_ok(o);
  EXPECT_EQ(s->stats().entries, 102u);
  for (std::uint64_t k = 0; k < 100; ++k) ASSERT_EQ(*get(*s, key_for(k)), value_for(k, 1, 1000));
  EXPECT_EQ(*get(*s, key_for(1001)), value_for(1001, 1199, 1000));
  // Distinct keys now: the disk fills with live data and the oldest unread entries go.
  for (std::uint64_t k = 2000; k < 4000; ++k) {
    ASSERT_TRUE(s->put(as_bytes(key_for(k)), as_bytes(value_for(k, 1, 1000)), 1).ok());
  }
  EXPECT_GT(s->stats().evicted, 0u);
  EXPECT_LE(s->stats().disk_bytes, o.max_bytes);
  EXPECT_EQ(*get(*s, key_for(3999)), value_for(3999, 1, 1000));
}

// every_write: a write whose sync fails returns the error and is neither indexed nor served; the
// key keeps its previous value, a failed erase leaves the key in place, and writes succeed again
// once syncing does. The sync is made to fail by making the segment file unreadable (it is
// opened by name to be synced), in a child process without root.
TEST(ColdStore, AnEveryWriteWriteWhoseSyncFailsIsNotServed) {
  temp_dir dir;
  ::chmod(dir.path().c_str(), 0777);
  const std::string path = dir.path() + "/cold";
  const int code = in_child([&] {
    if (!goldylox_test::drop_root()) return 10;
    auto o = small_options(path);
    o.durability = cold_durability::every_write;
    auto opened = gd::cold_store::open(o);
    if (!opened.ok()) return 11;
    auto& s = **opened;
    if (!s.put(as_bytes("K"), as_bytes(std::string("OLD")), 1).ok()) return 12;
    if (!s.put(as_bytes("R"), as_bytes(std::string("kept")), 1).ok()) return 13;
    const auto files = segment_files(path);
    if (files.size() != 1) return 14;
    ::chmod(files[0].c_str(), 0200);
    const absl::Status failed = s.put(as_bytes("K"), as_bytes(std::string("NEW")), 1);
    if (!absl::IsPermissionDenied(failed)) return 15;
    if (get(s, "K").value_or("") != "OLD") return 16;  // the failed write is not served
    if (s.put(as_bytes("N"), as_bytes(std::string("never")), 1).ok()) return 17;
    if (s.contains(as_bytes("N"))) return 18;
    auto erased = s.erase(as_bytes("R"));
    if (erased.ok()) return 19;
    if (!s.contains(as_bytes("R")) || get(s, "R").value_or("") != "kept") return 20;
    if (s.stats().sync_errors < 3) return 21;
    ::chmod(files[0].c_str(), 0600);
    if (!s.put(as_bytes("K"), as_bytes(std::string("NEW2")), 1).ok()) return 22;
    if (get(s, "K").value_or("") != "NEW2") return 23;
    auto again = s.erase(as_bytes("R"));
    if (!again.ok() || !*again || s.contains(as_bytes("R"))) return 24;
    return 0;
  });
  EXPECT_EQ(code, 0);
}

// The scan recovery and goldylox-inspect make reads a segment through guarded reads too: a file
// cut short after it was opened and mapped (another program truncating it while the store opens)
// ends the scan at the cut, counted as one corrupt region, with the records before it reported.
TEST(SegmentScan, AFileCutShortWhileItIsScannedEndsTheScanInsteadOfKillingTheProcess) {
  temp_dir dir;
  auto o = small_options(dir.path());
  o.codec = codec_id::none;
  fill(o, 150);  // one segment, about 50 KB of records
  const auto files = segment_files(dir.path());
  ASSERT_EQ(files.size(), 1u);
  auto seg = gd::segment::open(files[0].string());
  ASSERT_TRUE(seg.ok()) << seg.status();
  std::size_t whole = 0;
  gd::scan_records(seg->bytes(), [&](const gd::record_view&, std::size_t) { ++whole; });
  ASSERT_EQ(whole, 150u);
  fs::resize_file(files[0], 16 << 10);  // the mapping still spans 64 KiB
  std::size_t before_cut = 0;
  const auto r = gd::scan_records(seg->bytes(), [&](const gd::record_view& rec, std::size_t off) {
    EXPECT_LE(off + rec.size, std::size_t{16} << 10);
    ++before_cut;
  });
  EXPECT_TRUE(r.cut);
  EXPECT_FALSE(r.clean);
  EXPECT_EQ(r.corrupt_regions, 1u);
  EXPECT_GT(before_cut, 30u);
  EXPECT_LT(before_cut, 150u);
  // Cut below the header's page: nothing to report, no crash.
  fs::resize_file(files[0], 0);
  EXPECT_TRUE(gd::scan_records(seg->bytes(), [](const gd::record_view&, std::size_t) {}).cut);
}

// A segment file cut short by another program while the store has it mapped: reads of records
// past the cut report kDataLoss and count it instead of dying of SIGBUS; records before the cut
// are still served, and a new write of a key whose record was cut is served.
TEST(ColdStore, ASegmentTruncatedUnderneathIsDetectedNotFatal) {
  temp_dir dir;
  auto o = small_options(dir.path());
  o.codec = codec_id::none;
  auto s = open_ok(o);
  for (std::uint64_t k = 0; k < 150; ++k) {
    ASSERT_TRUE(s->put(as_bytes(key_for(k)), as_bytes(value_for(k, 1)), 1).ok());
  }
  const auto files = segment_files(dir.path());
  ASSERT_EQ(files.size(), 1u);
  fs::resize_file(files[0], 16 << 10);
  std::size_t served = 0, lost = 0;
  for (std::uint64_t k = 0; k < 150; ++k) {
    auto v = get(*s, key_for(k));
    if (v.ok()) {
      ASSERT_EQ(*v, value_for(k, 1));
      ++served;
    } else {
      ASSERT_TRUE(absl::IsDataLoss(v.status())) << v.status();
      ++lost;
    }
    (void)s->contains(as_bytes(key_for(k)));
    (void)s->version_of(as_bytes(key_for(k)));
  }
  EXPECT_GT(served, 30u);
  EXPECT_GT(lost, 50u);
  EXPECT_GE(s->stats().corrupt_records, lost);
  ASSERT_TRUE(s->put(as_bytes(key_for(149)), as_bytes(std::string("again")), 1).ok());
  EXPECT_EQ(*get(*s, key_for(149)), "again");
}

// One mapping per segment: a budget whose segments would need more than half of
// vm.max_map_count is refused by validation, naming the limit (2 TiB of 64 KiB segments
// accepted by the index alone used to open and take 1.45 GB for its slot table).
TEST(ColdStore, ABudgetNeedingTooManyMappingsIsRefused) {
  const std::uint64_t limit = gd::cold_store::mapping_limit();
  if (limit == std::numeric_limits<std::uint64_t>::max()) GTEST_SKIP() << "no vm.max_map_count";
  gd::cold_store_options o;
  o.path = "/nonexistent";
  o.segment_bytes = 64 << 10;
  o.max_bytes = std::uint64_t{2} << 40;
  const absl::Status refused = gd::cold_store::validate(o);
  EXPECT_TRUE(absl::IsInvalidArgument(refused)) << refused;
  EXPECT_NE(refused.message().find("vm.max_map_count"), std::string::npos) << refused;
  o.max_bytes = (limit - gd::cold_store::slot_count_for(0)) * o.segment_bytes;
  EXPECT_TRUE(gd::cold_store::validate(o).ok()) << gd::cold_store::validate(o);
  o.max_bytes += o.segment_bytes;
  EXPECT_TRUE(absl::IsInvalidArgument(gd::cold_store::validate(o)));
}
