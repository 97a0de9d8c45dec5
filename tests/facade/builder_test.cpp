// Unit tests for the builders: presets, defaults, validation and the resolved cache_config.
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <goldylox/goldylox.hpp>

namespace {

// A fresh directory for a cold tier (a cache locks its directory, and tests may run in
// parallel), removed when the test binary exits.
std::string scratch_dir() {
  struct cleanup {
    std::vector<std::string> dirs;
    ~cleanup() {
      std::error_code ec;
      for (const auto& d : dirs) std::filesystem::remove_all(d, ec);
    }
  };
  static cleanup made;
  std::string tmpl = (std::filesystem::temp_directory_path() / "goldylox-builder-XXXXXX").string();
  made.dirs.push_back(::mkdtemp(tmpl.data()));
  return made.dirs.back();
}

using goldylox::preset;
using ::testing::AllOf;
using ::testing::HasSubstr;
using Typed = goldylox::typed_cache<std::uint64_t, std::uint64_t>;
using Nodes = goldylox::typed_cache<std::string, std::string>;
using Any = goldylox::cache<std::string>;

template <class StatusOrT>
void expect_invalid(const StatusOrT& made, const std::string& option) {
  ASSERT_FALSE(made.ok()) << "expected kInvalidArgument mentioning " << option;
  EXPECT_EQ(made.status().code(), absl::StatusCode::kInvalidArgument) << made.status();
  EXPECT_THAT(std::string(made.status().message()), HasSubstr(option));
}

TEST(Builder, DefaultsAreTheBalancedPreset) {
  auto made = Typed::builder().build();
  ASSERT_TRUE(made.ok()) << made.status();
  const goldylox::cache_config& c = made->config();
  EXPECT_EQ(c.profile, preset::balanced);
  EXPECT_EQ(c.hot_tier_max_entries, 100'000u);
  EXPECT_EQ(c.warm_tier_max_entries, 300'000u);
  EXPECT_EQ(c.compression_level, 3);
  EXPECT_EQ(c.cold_tier_storage_path, "");
  EXPECT_TRUE(c.enable_simd);
  EXPECT_TRUE(c.enable_background_workers);
  EXPECT_FALSE(c.enable_telemetry);  // opt-in, as Caffeine's recordStats()
  EXPECT_EQ(c.warm_tier_policy, "adaptive");
  EXPECT_EQ(c.warm_tier_promotion_hits, 2u);
  EXPECT_EQ(made->capacity(), 400'000u);  // hot and warm tiers
  EXPECT_EQ(made->size(), 0u);
}

struct PresetCase {
  preset p;
  const char* name;
  std::size_t hot;
  std::size_t warm;
  int level;
  const char* warm_policy;
};

class PresetTest : public ::testing::TestWithParam<PresetCase> {};

TEST_P(PresetTest, DefaultsAreVisibleInConfig) {
  const PresetCase& pc = GetParam();
  EXPECT_EQ(goldylox::to_string(pc.p), pc.name);
  auto made = Typed::builder().preset(pc.p).build();
  ASSERT_TRUE(made.ok()) << made.status();
  const auto& c = made->config();
  EXPECT_EQ(c.profile, pc.p);
  EXPECT_EQ(c.hot_tier_max_entries, pc.hot);
  EXPECT_EQ(c.warm_tier_max_entries, pc.warm);
  EXPECT_EQ(c.compression_level, pc.level);
  EXPECT_EQ(c.warm_tier_policy, pc.warm_policy);
  EXPECT_EQ(made->capacity(), pc.hot + pc.warm);
  EXPECT_EQ(made->stats().capacity, pc.hot + pc.warm);

  // The same through cache<K>.
  auto any = Any::builder().preset(pc.p).build();
  ASSERT_TRUE(any.ok()) << any.status();
  EXPECT_EQ(any->config().hot_tier_max_entries, pc.hot);
  EXPECT_EQ(any->config().warm_tier_max_entries, pc.warm);
  EXPECT_EQ(any->config().compression_level, pc.level);
}

TEST_P(PresetTest, ExplicitOptionsOverrideThePreset) {
  const PresetCase& pc = GetParam();
  const std::string dir = scratch_dir();
  auto made = Typed::builder()
                  .preset(pc.p)
                  .hot_tier_max_entries(123)
                  .warm_tier_max_entries(0)
                  .cold_tier_storage_path(dir)
                  .compression_level(17)
                  .build();
  ASSERT_TRUE(made.ok()) << made.status();
  const auto& c = made->config();
  EXPECT_EQ(c.profile, pc.p);
  EXPECT_EQ(c.hot_tier_max_entries, 123u);
  EXPECT_EQ(c.warm_tier_max_entries, 0u);
  EXPECT_EQ(c.compression_level, 17);
  EXPECT_EQ(c.cold_tier_storage_path, dir);
  EXPECT_EQ(made->capacity(), 123u);
}

INSTANTIATE_TEST_SUITE_P(
    AllPresets, PresetTest,
    ::testing::Values(
        PresetCase{preset::high_performance, "high_performance", 250'000, 250'000, 1, "adaptive"},
        PresetCase{preset::balanced, "balanced", 100'000, 300'000, 3, "adaptive"},
        PresetCase{preset::high_capacity, "high_capacity", 50'000, 450'000, 9, "adaptive"},
        PresetCase{preset::ml_optimized, "ml_optimized", 100'000, 300'000, 3, "linear-model"}),
    [](const ::testing::TestParamInfo<PresetCase>& info) { return std::string(info.param.name); });

TEST_P(PresetTest, DefaultsAreMaxEntriesOfThePresetsTotal) {
  // The preset's sizes and its ratio agree: max_entries(hot + warm) reproduces the defaults.
  const PresetCase& pc = GetParam();
  auto made = Typed::builder().preset(pc.p).max_entries(pc.hot + pc.warm).build();
  ASSERT_TRUE(made.ok()) << made.status();
  EXPECT_EQ(made->config().hot_tier_max_entries, pc.hot);
  EXPECT_EQ(made->config().warm_tier_max_entries, pc.warm);
}

TEST(Builder, PresetOrderDoesNotMatter) {
  // An explicit size set before the preset still wins, and the preset set after it still gives
  // the ratio the other tier is derived by (high_performance: 1:1).
  auto made = Typed::builder().hot_tier_max_entries(77).preset(preset::high_performance).build();
  ASSERT_TRUE(made.ok()) << made.status();
  EXPECT_EQ(made->config().hot_tier_max_entries, 77u);
  EXPECT_EQ(made->config().warm_tier_max_entries, 77u);
  auto total = Typed::builder().max_entries(1'000).preset(preset::high_capacity).build();
  ASSERT_TRUE(total.ok()) << total.status();
  EXPECT_EQ(total->config().hot_tier_max_entries, 100u);
  EXPECT_EQ(total->config().warm_tier_max_entries, 900u);
  auto reversed = Typed::builder().max_entries(1'000).hot_tier_max_entries(10).build();
  auto forward = Typed::builder().hot_tier_max_entries(10).max_entries(1'000).build();
  ASSERT_TRUE(reversed.ok() && forward.ok());
  EXPECT_EQ(reversed->config().warm_tier_max_entries, 990u);
  EXPECT_EQ(forward->config().warm_tier_max_entries, 990u);
}

// ---- max_entries: one capacity knob, split across the memory tiers --------------------------

struct SplitCase {
  preset p;
  std::size_t hot;
  std::size_t warm;
};

TEST(MaxEntries, AloneSplitsByThePresetsRatio) {
  for (const SplitCase& sc : {SplitCase{preset::balanced, 25'000, 75'000},
                              SplitCase{preset::high_performance, 50'000, 50'000},
                              SplitCase{preset::high_capacity, 10'000, 90'000},
                              SplitCase{preset::ml_optimized, 25'000, 75'000}}) {
    SCOPED_TRACE(goldylox::to_string(sc.p));
    auto made = Typed::builder().preset(sc.p).max_entries(100'000).build();
    ASSERT_TRUE(made.ok()) << made.status();
    EXPECT_EQ(made->config().hot_tier_max_entries, sc.hot);
    EXPECT_EQ(made->config().warm_tier_max_entries, sc.warm);
    EXPECT_EQ(made->capacity(), 100'000u);
    EXPECT_EQ(made->stats().capacity, 100'000u);
  }
}

// README.md's "A short tour": the same builder calls, and the capacity the comments state.
TEST(MaxEntries, TheReadmeTourHasTheCapacityItStates) {
  auto made = Any::builder().max_entries(100'000).enable_simd(true).enable_telemetry(true).build();
  ASSERT_TRUE(made.ok()) << made.status();
  EXPECT_EQ(made->capacity(), 100'000u);
  EXPECT_EQ(made->stats().capacity, 100'000u);
  EXPECT_EQ(made->config().hot_tier_max_entries, 25'000u);
  EXPECT_EQ(made->config().warm_tier_max_entries, 75'000u);

  auto orders =
      goldylox::typed_cache<std::uint64_t, double>::builder().max_entries(1'000'000).build();
  ASSERT_TRUE(orders.ok()) << orders.status();
  EXPECT_EQ(orders->capacity(), 1'000'000u);
  EXPECT_EQ(orders->stats().capacity, 1'000'000u);
}

TEST(MaxEntries, TheCacheHoldsNoMoreThanTheTotal) {
  for (const auto layout :
       {goldylox::memory_layout::one_table, goldylox::memory_layout::two_tables}) {
    auto made = Typed::builder().max_entries(64).memory_layout(layout).build();
    ASSERT_TRUE(made.ok()) << made.status();
    for (std::uint64_t k = 0; k < 2'000; ++k) {
      ASSERT_TRUE(made->put(k, k).ok());
      ASSERT_LE(made->size(), 64u);
    }
    const goldylox::cache_stats s = made->stats();
    if (layout == goldylox::memory_layout::one_table) {
      EXPECT_EQ(s.hot_size, 64u);  // one table: every memory entry, the budget full
      EXPECT_EQ(s.warm_size, 0u);
    } else {
      EXPECT_LE(s.hot_size, 16u);
      EXPECT_LE(s.warm_size, 48u);
      EXPECT_GT(s.warm_size, 16u);  // the warm tier took the larger share
    }
  }
}

TEST(MaxEntries, SmallTotalsGiveTheHotTierAtLeastOneEntry) {
  struct small {
    std::size_t n, hot, warm;
  };
  // Balanced is 1:3; the hot share is rounded down, but never below 1.
  for (const small& c : {small{1, 1, 0}, small{2, 1, 1}, small{3, 1, 2}, small{4, 1, 3},
                         small{8, 2, 6}, small{10, 2, 8}}) {
    SCOPED_TRACE(c.n);
    auto made = Typed::builder().max_entries(c.n).build();
    ASSERT_TRUE(made.ok()) << made.status();
    EXPECT_EQ(made->config().hot_tier_max_entries, c.hot);
    EXPECT_EQ(made->config().warm_tier_max_entries, c.warm);
    EXPECT_EQ(made->capacity(), c.n);
  }
  // max_entries(1) leaves no warm tier, so warm-tier options conflict, and the message says why.
  auto conflict = Typed::builder().max_entries(1).warm_tier_policy("lru").build();
  expect_invalid(conflict, "warm_tier_policy");
  EXPECT_THAT(std::string(conflict.status().message()), HasSubstr("max_entries = 1"));
}

TEST(MaxEntries, ZeroIsInvalid) {
  expect_invalid(Typed::builder().max_entries(0).build(), "max_entries");
  expect_invalid(Any::builder().max_entries(0).hot_tier_max_entries(0).build(), "max_entries");
}

TEST(MaxEntries, WithAHotTierSizeTheWarmTierGetsTheRest) {
  auto made = Typed::builder().max_entries(1'000).hot_tier_max_entries(100).build();
  ASSERT_TRUE(made.ok()) << made.status();
  EXPECT_EQ(made->config().hot_tier_max_entries, 100u);
  EXPECT_EQ(made->config().warm_tier_max_entries, 900u);
  EXPECT_EQ(made->capacity(), 1'000u);

  // All of it in the hot tier: no warm tier.
  auto all_hot = Typed::builder().max_entries(1'000).hot_tier_max_entries(1'000).build();
  ASSERT_TRUE(all_hot.ok()) << all_hot.status();
  EXPECT_EQ(all_hot->config().warm_tier_max_entries, 0u);
  EXPECT_EQ(all_hot->capacity(), 1'000u);

  auto over = Typed::builder().max_entries(1'000).hot_tier_max_entries(1'001).build();
  expect_invalid(over, "hot_tier_max_entries = 1001");
  EXPECT_THAT(std::string(over.status().message()), HasSubstr("max_entries = 1000"));
  expect_invalid(Typed::builder().max_entries(1'000).hot_tier_max_entries(0).build(),
                 "hot_tier_max_entries");
}

TEST(MaxEntries, WithAWarmTierSizeTheHotTierGetsTheRest) {
  auto made = Typed::builder().max_entries(1'000).warm_tier_max_entries(100).build();
  ASSERT_TRUE(made.ok()) << made.status();
  EXPECT_EQ(made->config().hot_tier_max_entries, 900u);
  EXPECT_EQ(made->config().warm_tier_max_entries, 100u);

  auto no_warm = Typed::builder().max_entries(1'000).warm_tier_max_entries(0).build();
  ASSERT_TRUE(no_warm.ok()) << no_warm.status();
  EXPECT_EQ(no_warm->config().hot_tier_max_entries, 1'000u);
  EXPECT_EQ(no_warm->config().warm_tier_max_entries, 0u);

  // The hot tier needs at least one entry.
  for (std::size_t warm : {std::size_t{1'000}, std::size_t{5'000}, SIZE_MAX}) {
    SCOPED_TRACE(warm);
    auto bad = Typed::builder().max_entries(1'000).warm_tier_max_entries(warm).build();
    expect_invalid(bad, "warm_tier_max_entries");
    EXPECT_THAT(std::string(bad.status().message()),
                AllOf(HasSubstr("max_entries = 1000"), HasSubstr("hot tier")));
  }
}

TEST(MaxEntries, WithBothTierSizesTheyMustAddUp) {
  auto made = Typed::builder()
                  .max_entries(1'000)
                  .hot_tier_max_entries(200)
                  .warm_tier_max_entries(800)
                  .build();
  ASSERT_TRUE(made.ok()) << made.status();
  EXPECT_EQ(made->config().hot_tier_max_entries, 200u);
  EXPECT_EQ(made->config().warm_tier_max_entries, 800u);

  auto disagree = Typed::builder()
                      .max_entries(1'000)
                      .hot_tier_max_entries(200)
                      .warm_tier_max_entries(700)
                      .build();
  expect_invalid(disagree, "max_entries = 1000");
  EXPECT_THAT(std::string(disagree.status().message()),
              AllOf(HasSubstr("hot_tier_max_entries = 200"),
                    HasSubstr("warm_tier_max_entries = 700"), HasSubstr("add up")));
  // Sizes whose sum wraps around to the total do not add up either.
  expect_invalid(Typed::builder()
                     .max_entries(1'000)
                     .hot_tier_max_entries(SIZE_MAX)
                     .warm_tier_max_entries(1'001)
                     .build(),
                 "add up");
}

TEST(MaxEntries, HugeTotalsAreRefusedNamingMaxEntries) {
  // The message docs/configuration.md quotes.
  auto huge = Typed::builder().max_entries(SIZE_MAX).build();
  expect_invalid(huge, "hot_tier_max_entries");
  EXPECT_EQ(huge.status().message(),
            "goldylox: hot_tier_max_entries = 4611686018427387903 (from max_entries = "
            "18446744073709551615 split by the balanced preset's hot:warm ratio 1:3) exceeds the "
            "limit of 4294967296 entries");
  // Within the hot tier's limit, but beyond this machine's memory.
  using Engine = goldylox::detail::engine<std::string, std::string,
                                          goldylox::default_hash<std::string>, std::equal_to<>>;
  const std::size_t hot_limit =
      goldylox::detail::physical_memory_bytes() / Engine::hot_tier_type::bytes_per_entry();
  if (hot_limit >= goldylox::max_hot_tier_entries) GTEST_SKIP() << "this machine has too much RAM";
  auto beyond_ram = Nodes::builder().max_entries((hot_limit + 1) * 4).build();
  expect_invalid(beyond_ram, "max_entries");
  EXPECT_THAT(std::string(beyond_ram.status().message()), HasSubstr("memory"));
}

TEST(MaxEntries, ATotalWithinTheLimitsBuilds) {
  // The largest hot tier the ratio allows on a small total is fine; the check is per tier.
  auto made = Typed::builder().max_entries(4 * 1'024).hot_tier_max_entries(4 * 1'024).build();
  ASSERT_TRUE(made.ok()) << made.status();
  EXPECT_EQ(made->capacity(), 4u * 1'024);
}

// ---- one tier's size alone: the other follows the preset's ratio -----------------------------

TEST(TierSizeAlone, AHotTierSizeDerivesTheWarmTier) {
  // Issue 15: hot_tier_max_entries(1000) alone used to give a 300,000-entry warm tier.
  for (const SplitCase& sc : {SplitCase{preset::balanced, 1'000, 3'000},
                              SplitCase{preset::high_performance, 1'000, 1'000},
                              SplitCase{preset::high_capacity, 1'000, 9'000},
                              SplitCase{preset::ml_optimized, 1'000, 3'000}}) {
    SCOPED_TRACE(goldylox::to_string(sc.p));
    auto made = Typed::builder().preset(sc.p).hot_tier_max_entries(sc.hot).build();
    ASSERT_TRUE(made.ok()) << made.status();
    EXPECT_EQ(made->config().hot_tier_max_entries, sc.hot);
    EXPECT_EQ(made->config().warm_tier_max_entries, sc.warm);
    EXPECT_EQ(made->capacity(), sc.hot + sc.warm);
  }
  auto one = Typed::builder().hot_tier_max_entries(1).build();
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(one->config().warm_tier_max_entries, 3u);
}

TEST(TierSizeAlone, AWarmTierSizeDerivesTheHotTier) {
  auto made = Typed::builder().warm_tier_max_entries(3'000).build();
  ASSERT_TRUE(made.ok()) << made.status();
  EXPECT_EQ(made->config().hot_tier_max_entries, 1'000u);
  EXPECT_EQ(made->config().warm_tier_max_entries, 3'000u);
  auto capacity = Typed::builder().preset(preset::high_capacity).warm_tier_max_entries(900).build();
  ASSERT_TRUE(capacity.ok()) << capacity.status();
  EXPECT_EQ(capacity->config().hot_tier_max_entries, 100u);
  // Rounded down, but at least 1.
  auto tiny = Typed::builder().warm_tier_max_entries(2).build();
  ASSERT_TRUE(tiny.ok()) << tiny.status();
  EXPECT_EQ(tiny->config().hot_tier_max_entries, 1u);
}

TEST(TierSizeAlone, NoWarmTierKeepsThePresetsHotTier) {
  auto made = Typed::builder().warm_tier_max_entries(0).build();
  ASSERT_TRUE(made.ok()) << made.status();
  EXPECT_EQ(made->config().hot_tier_max_entries, 100'000u);
  EXPECT_EQ(made->config().warm_tier_max_entries, 0u);
  EXPECT_EQ(made->capacity(), 100'000u);
}

TEST(TierSizeAlone, AnAbsurdSizeIsReportedAsTheOptionGiven) {
  // The warm size is checked before the hot size derived from it.
  auto warm = Typed::builder().warm_tier_max_entries(std::size_t{1} << 40).build();
  expect_invalid(warm, "goldylox: warm_tier_max_entries = 1099511627776 exceeds");
  auto warm_max = Typed::builder().warm_tier_max_entries(SIZE_MAX).build();
  expect_invalid(warm_max, "goldylox: warm_tier_max_entries = 18446744073709551615 exceeds");
  auto hot = Typed::builder().hot_tier_max_entries(SIZE_MAX).build();
  expect_invalid(hot, "goldylox: hot_tier_max_entries = 18446744073709551615 exceeds");
}

// The split itself, on presets the library does not have.
TEST(TierSplit, APresetWithoutAWarmTierPutsEverythingInTheHotTier) {
  const goldylox::preset_defaults hot_only{1'000, 0, 3};
  goldylox::detail::config_request r;
  r.max_entries = 500;
  auto sizes = goldylox::detail::resolve_tier_sizes(r, hot_only);
  ASSERT_TRUE(sizes.ok()) << sizes.status();
  EXPECT_EQ(sizes->hot, 500u);
  EXPECT_EQ(sizes->warm, 0u);

  r.max_entries.reset();
  r.hot_tier_max_entries = 10;
  sizes = goldylox::detail::resolve_tier_sizes(r, hot_only);
  ASSERT_TRUE(sizes.ok()) << sizes.status();
  EXPECT_EQ(sizes->hot, 10u);
  EXPECT_EQ(sizes->warm, 0u);

  r.hot_tier_max_entries.reset();
  r.warm_tier_max_entries = 10;  // no ratio to derive from: the preset's hot size
  sizes = goldylox::detail::resolve_tier_sizes(r, hot_only);
  ASSERT_TRUE(sizes.ok()) << sizes.status();
  EXPECT_EQ(sizes->hot, 1'000u);
  EXPECT_EQ(sizes->warm, 10u);
}

TEST(TierSplit, TheHotShareIsExactWithoutOverflow) {
  using goldylox::detail::hot_share_of;
  EXPECT_EQ(hot_share_of(100'000, 1, 3), 25'000u);
  EXPECT_EQ(hot_share_of(100'000, 100'000, 300'000), 25'000u);
  EXPECT_EQ(hot_share_of(7, 1, 1), 3u);
  // floor(SIZE_MAX * 3 / 4) = 3 * 2^62 - 1, which the naive product would get wrong.
  EXPECT_EQ(hot_share_of(SIZE_MAX, 3, 1), 3 * (std::size_t{1} << 62) - 1);
  EXPECT_EQ(hot_share_of(SIZE_MAX, 50'000, 450'000), SIZE_MAX / 10);
}

TEST(Builder, SwitchesAreRecorded) {
  auto made = Typed::builder()
                  .hot_tier_max_entries(10)
                  .enable_simd(false)
                  .enable_background_workers(false)
                  .enable_telemetry(true)
                  .build();
  ASSERT_TRUE(made.ok()) << made.status();
  EXPECT_FALSE(made->config().enable_simd);
  EXPECT_FALSE(made->config().enable_background_workers);
  EXPECT_TRUE(made->config().enable_telemetry);
}

TEST(Builder, ZeroHotEntriesIsInvalid) {
  expect_invalid(Typed::builder().hot_tier_max_entries(0).build(), "hot_tier_max_entries");
  expect_invalid(Nodes::builder().hot_tier_max_entries(0).build(), "hot_tier_max_entries");
  expect_invalid(Any::builder().hot_tier_max_entries(0).build(), "hot_tier_max_entries");
}

TEST(Builder, AbsurdSizesAreInvalid) {
  expect_invalid(Typed::builder().hot_tier_max_entries(std::size_t{1} << 40).build(),
                 "hot_tier_max_entries");
  expect_invalid(Any::builder().hot_tier_max_entries(SIZE_MAX).build(), "hot_tier_max_entries");
  expect_invalid(Typed::builder().hot_tier_max_entries(goldylox::max_hot_tier_entries + 1).build(),
                 "hot_tier_max_entries");
  expect_invalid(Typed::builder().warm_tier_max_entries(std::size_t{1} << 40).build(),
                 "warm_tier_max_entries");
  expect_invalid(
      Typed::builder().warm_tier_max_entries(goldylox::max_warm_tier_entries + 1).build(),
      "warm_tier_max_entries");
}

TEST(Builder, SizesBeyondPhysicalMemoryAreInvalid) {
  using Engine = goldylox::detail::engine<std::string, std::string,
                                          goldylox::default_hash<std::string>, std::equal_to<>>;
  const std::size_t per_entry = Engine::hot_tier_type::bytes_per_entry();
  ASSERT_GT(per_entry, sizeof(std::string) * 2);  // a node holds a key and a value
  const std::size_t limit = goldylox::detail::physical_memory_bytes() / per_entry;
  if (limit >= goldylox::max_hot_tier_entries) GTEST_SKIP() << "this machine has too much RAM";
  auto made = Nodes::builder().hot_tier_max_entries(limit + 1).build();
  expect_invalid(made, "hot_tier_max_entries");
  EXPECT_THAT(std::string(made.status().message()), HasSubstr("memory"));
}

TEST(Builder, CompressionLevelOutOfRangeIsInvalid) {
  for (int level : {-1, 23, 100, -1000}) {
    SCOPED_TRACE(level);
    expect_invalid(
        Typed::builder().cold_tier_storage_path(scratch_dir()).compression_level(level).build(),
        "compression_level");
  }
  for (int level : {0, 1, 22}) {
    SCOPED_TRACE(level);
    auto made =
        Typed::builder().cold_tier_storage_path(scratch_dir()).compression_level(level).build();
    ASSERT_TRUE(made.ok()) << made.status();
    EXPECT_EQ(made->config().compression_level, level);
  }
}

TEST(Builder, CompressionWithoutColdTierIsAConflict) {
  auto made = Typed::builder().compression_level(5).build();
  expect_invalid(made, "compression_level");
  EXPECT_THAT(std::string(made.status().message()), HasSubstr("cold_tier_storage_path"));
  // Even level 0 is a conflict when given explicitly.
  expect_invalid(Any::builder().compression_level(0).build(), "compression_level");
}

TEST(Builder, ColdTierPathValidation) {
  expect_invalid(Typed::builder().cold_tier_storage_path("").build(), "cold_tier_storage_path");
  expect_invalid(Any::builder().cold_tier_storage_path(std::string("a\0b", 3)).build(),
                 "cold_tier_storage_path");
  const std::string dir = scratch_dir();
  auto made = Typed::builder().cold_tier_storage_path(dir).build();
  ASSERT_TRUE(made.ok()) << made.status();
  EXPECT_EQ(made->config().cold_tier_storage_path, dir);
  EXPECT_EQ(made->config().compression_level, 3);  // from the preset
}

TEST(Builder, ValidCombinationsBuildWorkingCaches) {
  auto made = Any::builder()
                  .preset(preset::high_capacity)
                  .hot_tier_max_entries(1)
                  .warm_tier_max_entries(1)
                  .cold_tier_storage_path(scratch_dir() + "/nested/dir")  // created
                  .compression_level(22)
                  .enable_simd(false)
                  .build();
  ASSERT_TRUE(made.ok()) << made.status();
  ASSERT_TRUE(made->put("k", 1).ok());
  EXPECT_EQ(**made->get<int>("k"), 1);
  EXPECT_EQ(made->capacity(), 2u);
}

TEST(Builder, ABuilderCanBuildSeveralIndependentCaches) {
  auto builder = Typed::builder();
  builder.hot_tier_max_entries(8).warm_tier_max_entries(0).enable_telemetry(true);
  auto a = builder.build();
  auto b = builder.build();
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(a->put(1, 10).ok());
  EXPECT_FALSE(b->contains(1));
  EXPECT_EQ(a->capacity(), 8u);
  EXPECT_EQ(b->capacity(), 8u);
  EXPECT_TRUE(b->config().enable_telemetry);
}

TEST(Builder, ErrorMessagesAreSpecific) {
  auto zero = Typed::builder().hot_tier_max_entries(0).build();
  EXPECT_THAT(std::string(zero.status().message()),
              AllOf(HasSubstr("goldylox"), HasSubstr("hot_tier_max_entries"), HasSubstr("1")));
  auto huge = Typed::builder().hot_tier_max_entries(std::size_t{1} << 40).build();
  EXPECT_THAT(std::string(huge.status().message()), HasSubstr("1099511627776"));
  auto level = Typed::builder().cold_tier_storage_path("/x").compression_level(23).build();
  EXPECT_THAT(std::string(level.status().message()), AllOf(HasSubstr("23"), HasSubstr("22")));
}

}  // namespace
