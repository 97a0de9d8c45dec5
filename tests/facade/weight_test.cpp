// Byte budgets through the facades: max_weight, typed_cache's weigher(), the default weights
// (goldylox::weight_of), refused values and bad options.
#include <cstddef>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <cereal/types/string.hpp>
#include <gtest/gtest.h>

#include <goldylox/goldylox.hpp>

#include "test_support.hpp"

namespace {

struct profile {  // serializable, so its default weight counts what it holds
  std::string name;
  std::uint32_t age = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(name, age);
  }
};

struct opaque {  // neither contiguous nor serializable: its size alone
  std::string secret;
  bool operator==(const opaque&) const = default;
};

struct image {
  std::vector<unsigned char> pixels;
};

}  // namespace

template <>
struct goldylox::weight_of<image> {
  std::size_t operator()(const image& i) const { return 1000 + i.pixels.size(); }
};

namespace {

TEST(DefaultWeight, CountsWhatAValueOwns) {
  EXPECT_EQ(goldylox::weight_of<std::uint64_t>{}(42), 8u);
  // A short string sits in its own small-string buffer: nothing more.
  EXPECT_EQ(goldylox::weight_of<std::string>{}(std::string("short")), sizeof(std::string));
  const std::string long_text(1000, 'x');
  EXPECT_EQ(goldylox::weight_of<std::string>{}(long_text),
            sizeof(std::string) + long_text.capacity() + 1);
  std::vector<std::uint32_t> numbers(100);
  EXPECT_EQ(goldylox::weight_of<std::vector<std::uint32_t>>{}(numbers),
            sizeof(numbers) + numbers.capacity() * 4);
  const std::vector<std::string> texts{long_text, "a"};
  EXPECT_EQ(goldylox::weight_of<std::vector<std::string>>{}(texts),
            sizeof(texts) + texts.capacity() * sizeof(std::string) + long_text.capacity() + 1);
  // A serializable type: its size plus its serialized size, which grows with what it holds.
  const std::size_t small = goldylox::weight_of<profile>{}(profile{"ann", 30});
  const std::size_t big = goldylox::weight_of<profile>{}(profile{long_text, 30});
  EXPECT_GT(small, sizeof(profile));
  EXPECT_GE(big, small + 997);
  EXPECT_EQ(goldylox::weight_of<opaque>{}(opaque{long_text}), sizeof(opaque));
  EXPECT_EQ(goldylox::weight_of<image>{}(image{std::vector<unsigned char>(24)}), 1024u);
}

// The memory tiers' total weight stays within max_weight while ten times the budget is written,
// in each memory layout, with the weight (not the entry count) binding.
TEST(ByteBudget, HoldsUnderTenfoldOverloadInEveryLayout) {
  struct layout {
    const char* name;
    goldylox::memory_layout memory;
    std::size_t warm;
  };
  for (const layout l : {layout{"one table", goldylox::memory_layout::one_table, 7'500},
                         layout{"two tables", goldylox::memory_layout::two_tables, 7'500},
                         layout{"hot only", goldylox::memory_layout::one_table, 0}}) {
    SCOPED_TRACE(l.name);
    constexpr std::size_t budget = 1 << 20;
    auto made = goldylox::typed_cache<std::uint64_t, std::string>::builder()
                    .hot_tier_max_entries(2'500)
                    .warm_tier_max_entries(l.warm)
                    .memory_layout(l.memory)
                    .max_weight(budget)
                    .build();
    ASSERT_TRUE(made.ok()) << made.status();
    auto& cache = *made;
    EXPECT_EQ(cache.stats().max_weight, budget);
    std::mt19937_64 rng(11);
    std::size_t written = 0;
    for (std::uint64_t k = 0; written < 10 * budget; ++k) {
      std::string v(16 + rng() % 1000, 'v');
      written += v.size();
      ASSERT_TRUE(cache.put(k, std::move(v)).ok());
      if (k % 64 == 0) {
        ASSERT_LE(cache.stats().weight, budget) << "after " << k << " puts";
      }
      if (k % 7 == 0) (void)cache.get(k / 2);  // reads, so promotions move entries too
    }
    const goldylox::cache_stats s = cache.stats();
    EXPECT_LE(s.weight, budget);
    EXPECT_GT(s.weight, budget / 2);  // the budget is used, not just respected
    EXPECT_LT(s.size, s.capacity);    // the weight bound, not the entry bound, is binding
    EXPECT_GT(s.evictions, 0u);
  }
}

// A user's weigher: the reported weight is exactly the sum over the entries held.
TEST(ByteBudget, UsesTheWeigherGiven) {
  auto made =
      goldylox::typed_cache<std::string, std::string>::builder()
          .max_entries(1'000)
          .max_weight(5'000)
          .weigher([](const std::string& k, const std::string& v) { return k.size() + v.size(); })
          .build();
  ASSERT_TRUE(made.ok()) << made.status();
  auto& cache = *made;
  for (int i = 0; i < 2'000; ++i) {
    ASSERT_TRUE(cache.put("key" + std::to_string(i), std::string(i % 50, 'x')).ok());
  }
  std::size_t held = 0;
  for (int i = 0; i < 2'000; ++i) {
    const std::string k = "key" + std::to_string(i);
    if (auto v = cache.get(k)) held += k.size() + v->size();
  }
  EXPECT_EQ(cache.stats().weight, held);
  EXPECT_LE(held, 5'000u);
  EXPECT_GT(held, 4'000u);
}

// A value heavier than its share of the budget is kInvalidArgument and changes nothing; zero
// weights are allowed; a throwing weigher reaches the caller, and the cache keeps serving.
TEST(ByteBudget, BadWeightsAreRefusedAndTheCacheKeepsServing) {
  auto made = goldylox::typed_cache<std::uint64_t, std::string>::builder()
                  .max_entries(100)
                  .max_weight(1'000)
                  .weigher([](const std::uint64_t&, const std::string& v) -> std::size_t {
                    if (v == "throw") throw std::runtime_error("weigher failed");
                    return v == "free" ? 0 : v.size();
                  })
                  .build();
  ASSERT_TRUE(made.ok()) << made.status();
  auto& cache = *made;
  ASSERT_TRUE(cache.put(1, "one").ok());
  const absl::Status heavy = cache.put(1, std::string(1'001, 'h'));
  EXPECT_EQ(heavy.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(heavy.message().find("weighing 1001"), std::string::npos) << heavy.message();
  EXPECT_EQ(cache.put(2, std::string(1'001, 'h')).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(cache.get(1), "one");
  EXPECT_FALSE(cache.get(2).has_value());
  EXPECT_THROW((void)cache.put(1, "throw"), std::runtime_error);
  EXPECT_EQ(cache.get(1), "one");
  for (std::uint64_t k = 10; k < 400; ++k) ASSERT_TRUE(cache.put(k, "free").ok());
  EXPECT_EQ(cache.size(), 100u);  // zero weights: the entry bound alone applies
  // Only "one" (read three times, so the policy may keep it) can weigh anything.
  EXPECT_EQ(cache.stats().weight, cache.get(1).has_value() ? 3u : 0u);
  ASSERT_TRUE(cache.put(500, std::string(1'000, 'f')).ok());  // exactly the budget fits
  EXPECT_EQ(cache.get(500)->size(), 1'000u);
}

TEST(ByteBudget, BadOptionsFailTheBuild) {
  using typed = goldylox::typed_cache<std::uint64_t, std::string>;
  auto code = [](const auto& made) { return made.status().code(); };
  EXPECT_EQ(code(typed::builder().max_weight(0).build()), absl::StatusCode::kInvalidArgument);
  const auto no_budget =
      typed::builder().weigher([](const std::uint64_t&, const std::string&) { return 1; }).build();
  EXPECT_EQ(code(no_budget), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(no_budget.status().message().find("needs max_weight"), std::string::npos);
  EXPECT_EQ(
      code(typed::builder()
               .max_weight(100)
               .weigher(std::function<std::size_t(const std::uint64_t&, const std::string&)>())
               .build()),
      absl::StatusCode::kInvalidArgument);
  // Two tables: too small to split between them.
  EXPECT_EQ(code(typed::builder()
                     .memory_layout(goldylox::memory_layout::two_tables)
                     .max_weight(1)
                     .build()),
            absl::StatusCode::kInvalidArgument);
  // A budget smaller than the shards it is shared between (a large one-table cache has several).
  const auto split = typed::builder().max_entries(1'000'000).max_weight(1).build();
  if (goldylox::detail::slot_governor<goldylox::detail::hot_table<
          std::uint64_t, std::string, goldylox::default_hash<std::uint64_t>,
          std::equal_to<>>>::shard_count(1'000'000) > 1) {
    EXPECT_EQ(code(split), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(split.status().message().find("shard count"), std::string::npos)
        << split.status().message();
  }
}

// cache<K> weighs each value by its own type's weight_of (a specialisation included).
TEST(ByteBudget, MixedTypeCacheWeighsEachValueByItsType) {
  auto made =
      goldylox::cache<std::string>::builder().max_entries(10'000).max_weight(64 << 10).build();
  ASSERT_TRUE(made.ok()) << made.status();
  auto& cache = *made;
  ASSERT_TRUE(cache.put("img", image{std::vector<unsigned char>(24)}).ok());
  const std::size_t after_image = cache.stats().weight;
  // The key, the any_value holding it, and the image's own weight of 1024.
  EXPECT_GE(after_image, 1024u);
  EXPECT_LE(after_image, 1024u + 200u);
  for (int i = 0; i < 10'000; ++i) {
    ASSERT_TRUE(cache.put("s" + std::to_string(i), std::string(100 + i % 400, 'x')).ok());
    ASSERT_TRUE(cache.put("n" + std::to_string(i), i).ok());
  }
  const goldylox::cache_stats s = cache.stats();
  EXPECT_LE(s.weight, std::size_t{64} << 10);
  EXPECT_GT(s.weight, std::size_t{32} << 10);
  EXPECT_LT(s.size, 10'000u);
}

// With a cold tier, a refused value never reaches the disk: with write-through a put writes the
// cold record before memory, so the weight is checked first; after a reopen the old value is
// what the key has.
TEST(ByteBudget, ARefusedValueNeverReachesTheColdTier) {
  for (const bool through : {false, true}) {
    SCOPED_TRACE(through ? "write-through" : "write-back");
    goldylox_test::temp_dir dir;
    auto open = [&] {
      return goldylox::typed_cache<std::uint64_t, std::string>::builder()
          .max_entries(100)
          .max_weight(4'096)
          .cold_tier_storage_path(dir.path())
          .cold_tier_write_through(through)
          .build();
    };
    {
      auto made = open();
      ASSERT_TRUE(made.ok()) << made.status();
      ASSERT_TRUE(made->put(1, "old").ok());
      EXPECT_EQ(made->put(1, std::string(5'000, 'h')).code(), absl::StatusCode::kInvalidArgument);
      EXPECT_EQ(made->put(2, std::string(5'000, 'h')).code(), absl::StatusCode::kInvalidArgument);
      EXPECT_EQ(made->get(1), "old");
      EXPECT_FALSE(made->get(2).has_value());
    }
    auto reopened = open();
    ASSERT_TRUE(reopened.ok()) << reopened.status();
    EXPECT_EQ(reopened->get(1), "old");
    EXPECT_FALSE(reopened->get(2).has_value());
  }
}

}  // namespace
