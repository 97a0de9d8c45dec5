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

TEST(Builder, PresetOrderDoesNotMatter) {
  // An explicit size set before the preset still wins.
  auto made = Typed::builder().hot_tier_max_entries(77).preset(preset::high_performance).build();
  ASSERT_TRUE(made.ok()) << made.status();
  EXPECT_EQ(made->config().hot_tier_max_entries, 77u);
  EXPECT_EQ(made->config().warm_tier_max_entries, 250'000u);
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
