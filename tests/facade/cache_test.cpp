// Unit tests for goldylox::cache<K>: run-time-typed values, type checks and error statuses.
#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <goldylox/goldylox.hpp>

namespace {
// Unrelated to internals_test.cpp's {anonymous}::Twin, although both are spelled the same.
struct Twin {
  int v = 0;
};
}  // namespace

namespace internals_test {
// Defined in internals_test.cpp: stores that file's own {anonymous}::Twin{v} under `key`.
void put_internals_twin(goldylox::cache<std::string>& cache, const std::string& key, int v);
}  // namespace internals_test

namespace cache_test {

struct User {
  int id = 0;
  std::string name;
  friend bool operator==(const User&, const User&) = default;
};

// 64 bytes: stored on the heap by any_value.
struct Big {
  std::array<std::uint64_t, 8> words{};
  friend bool operator==(const Big&, const Big&) = default;
};

// 8 bytes: stored inline.
struct Small {
  std::int32_t a = 0;
  std::int32_t b = 0;
  friend bool operator==(const Small&, const Small&) = default;
};

// A copy constructor that throws on demand; small enough to be stored inline.
struct ThrowOnCopy {
  static inline bool armed = false;
  int v = 0;
  explicit ThrowOnCopy(int value) : v(value) {}
  ThrowOnCopy(const ThrowOnCopy& o) : v(o.v) {
    if (armed) throw std::runtime_error("copy");
  }
  ThrowOnCopy(ThrowOnCopy&&) noexcept = default;
  friend bool operator==(const ThrowOnCopy&, const ThrowOnCopy&) = default;
};

// The same, large enough to be stored on the heap.
struct BigThrowOnCopy {
  static inline bool armed = false;
  std::array<std::uint64_t, 6> words{};
  explicit BigThrowOnCopy(std::uint64_t v) { words.fill(v); }
  BigThrowOnCopy(const BigThrowOnCopy& o) : words(o.words) {
    if (armed) throw std::runtime_error("copy");
  }
  BigThrowOnCopy(BigThrowOnCopy&&) noexcept = default;
  friend bool operator==(const BigThrowOnCopy&, const BigThrowOnCopy&) = default;
};

// Counts live instances; heap-stored (40 bytes).
struct Counted {
  static inline std::atomic<long> live{0};
  std::array<std::uint64_t, 5> words{};
  explicit Counted(std::uint64_t v) {
    words.fill(v);
    ++live;
  }
  Counted(const Counted& o) : words(o.words) { ++live; }
  Counted(Counted&& o) noexcept : words(o.words) { ++live; }
  ~Counted() { --live; }
  friend bool operator==(const Counted& a, const Counted& b) { return a.words == b.words; }
};

namespace detail = goldylox::detail;
static_assert(detail::any_stores_inline<int>);
static_assert(detail::any_stores_inline<double>);
static_assert(detail::any_stores_inline<Small>);
static_assert(detail::any_stores_inline<ThrowOnCopy>);
static_assert(!detail::any_stores_inline<Big>);
static_assert(!detail::any_stores_inline<BigThrowOnCopy>);
static_assert(!detail::any_stores_inline<Counted>);
static_assert(!detail::any_stores_inline<User>);  // 40 bytes with libstdc++'s std::string

using Cache = goldylox::cache<std::string>;
using ::testing::AllOf;
using ::testing::HasSubstr;

Cache make_cache(std::size_t capacity = 1024) {
  // Inline moves: these tests follow the facade read by read (sizes, copies); the background
  // pool's queued moves have their own tests (tests/engine: QueuedMoves, ColdCachePool).
  auto made =
      Cache::builder().hot_tier_max_entries(capacity).enable_background_workers(false).build();
  EXPECT_TRUE(made.ok()) << made.status();
  return std::move(made).value();
}

void collect_garbage() {
  auto& domain = detail::epoch_domain::global();
  for (int i = 0; i < 4; ++i) domain.collect(detail::this_thread_epoch_record());
}

// Expects `s` to be a type mismatch naming both types.
template <class S>
void expect_mismatch(const S& s, std::string_view stored, std::string_view asked) {
  absl::Status status;
  if constexpr (std::is_same_v<S, absl::Status>) {
    status = s;
  } else {
    status = s.status();
  }
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(std::string(status.message()),
              AllOf(HasSubstr(std::string(stored)), HasSubstr(std::string(asked))));
}

class CacheTest : public ::testing::Test {
 protected:
  Cache cache_ = make_cache();
};

TEST_F(CacheTest, ValuesOfSeveralTypesRoundTrip) {
  ASSERT_TRUE(cache_.put("int", 42).ok());
  ASSERT_TRUE(cache_.put("double", 2.5).ok());
  ASSERT_TRUE(cache_.put("string", std::string("hello")).ok());
  ASSERT_TRUE(cache_.put("vector", std::vector<int>{1, 2, 3}).ok());
  ASSERT_TRUE(cache_.put("user", User{7, "Ada"}).ok());
  ASSERT_TRUE(cache_.put("small", Small{1, 2}).ok());
  Big big;
  for (std::size_t i = 0; i < big.words.size(); ++i) big.words[i] = i * i + 1;
  ASSERT_TRUE(cache_.put("big", big).ok());

  EXPECT_EQ(*cache_.get<int>("int"), 42);
  EXPECT_EQ(*cache_.get<double>("double"), 2.5);
  EXPECT_EQ(*cache_.get<std::string>("string"), "hello");
  EXPECT_EQ(*cache_.get<std::vector<int>>("vector"), (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(*cache_.get<User>("user"), (User{7, "Ada"}));
  EXPECT_EQ(*cache_.get<Small>("small"), (Small{1, 2}));
  EXPECT_EQ(*cache_.get<Big>("big"), big);
  EXPECT_EQ(cache_.size(), 7u);
}

TEST_F(CacheTest, GetOfAbsentKeyIsOkNullopt) {
  const absl::StatusOr<std::optional<int>> got = cache_.get<int>("nope");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, std::nullopt);
}

TEST_F(CacheTest, WrongTypeIsFailedPreconditionNamingBothTypes) {
  ASSERT_TRUE(cache_.put("user:1", User{1, "Ada"}).ok());
  const auto wrong = cache_.get<int>("user:1");
  ASSERT_FALSE(wrong.ok());
  expect_mismatch(wrong, "User", "int");
  // The entry is untouched.
  EXPECT_EQ(*cache_.get<User>("user:1"), (User{1, "Ada"}));
  EXPECT_EQ(cache_.size(), 1u);

  ASSERT_TRUE(cache_.put("n", 5).ok());
  expect_mismatch(cache_.get<std::string>("n"), "int", "std::string");
  expect_mismatch(cache_.get<long>("n"), "int", "long");  // no implicit conversions
  expect_mismatch(cache_.get<unsigned>("n"), "int", "unsigned");
  EXPECT_EQ(*cache_.get<int>("n"), 5);
}

TEST_F(CacheTest, PutOfAnotherTypeOverwrites) {
  ASSERT_TRUE(cache_.put("k", 1).ok());
  ASSERT_TRUE(cache_.put("k", std::string("now a string")).ok());
  EXPECT_EQ(*cache_.get<std::string>("k"), "now a string");
  expect_mismatch(cache_.get<int>("k"), "std::string", "int");
  ASSERT_TRUE(cache_.put("k", Big{}).ok());  // inline -> heap
  EXPECT_EQ(*cache_.get<Big>("k"), Big{});
  ASSERT_TRUE(cache_.put("k", 3.0).ok());  // heap -> inline
  EXPECT_EQ(*cache_.get<double>("k"), 3.0);
  EXPECT_EQ(cache_.size(), 1u);
}

TEST_F(CacheTest, StringLiteralIsStoredAsConstCharPointer) {
  // put() deduces V from the argument: a literal is a const char*, not a std::string.
  static const char* const literal = "literal";
  ASSERT_TRUE(cache_.put("p", literal).ok());
  EXPECT_EQ(*cache_.get<const char*>("p"), literal);
  EXPECT_FALSE(cache_.get<std::string>("p").ok());
}

TEST_F(CacheTest, RemoveReturnsStatusOrBool) {
  ASSERT_TRUE(cache_.put("a", 1).ok());
  const absl::StatusOr<bool> first = cache_.remove("a");
  ASSERT_TRUE(first.ok());
  EXPECT_TRUE(*first);
  const absl::StatusOr<bool> second = cache_.remove(std::string_view("a"));
  ASSERT_TRUE(second.ok());
  EXPECT_FALSE(*second);
  EXPECT_FALSE(cache_.contains("a"));
  // Removal does not care about the stored type.
  ASSERT_TRUE(cache_.put("u", User{2, "Bob"}).ok());
  EXPECT_TRUE(*cache_.remove(std::string("u")));
  EXPECT_EQ(cache_.size(), 0u);
}

TEST_F(CacheTest, ContainsAndClear) {
  ASSERT_TRUE(cache_.put("a", 1).ok());
  ASSERT_TRUE(cache_.put("b", std::string("x")).ok());
  EXPECT_TRUE(cache_.contains("a"));
  EXPECT_TRUE(cache_.contains(std::string_view("b")));
  EXPECT_FALSE(cache_.contains("c"));
  ASSERT_TRUE(cache_.clear().ok());
  EXPECT_FALSE(cache_.contains("a"));
  EXPECT_FALSE(cache_.contains("b"));
  EXPECT_EQ(cache_.size(), 0u);
}

TEST_F(CacheTest, PutIfAbsent) {
  const auto inserted = cache_.put_if_absent("k", 1);
  ASSERT_TRUE(inserted.ok());
  EXPECT_EQ(*inserted, std::nullopt);
  EXPECT_EQ(*cache_.get<int>("k"), 1);

  const auto existing = cache_.put_if_absent("k", 2);
  ASSERT_TRUE(existing.ok());
  EXPECT_EQ(*existing, 1);
  EXPECT_EQ(*cache_.get<int>("k"), 1);

  expect_mismatch(cache_.put_if_absent("k", std::string("s")), "int", "std::string");
  EXPECT_EQ(*cache_.get<int>("k"), 1);
  EXPECT_EQ(cache_.size(), 1u);
}

TEST_F(CacheTest, Replace) {
  const auto absent = cache_.replace("k", 1);
  ASSERT_TRUE(absent.ok());
  EXPECT_EQ(*absent, std::nullopt);
  EXPECT_FALSE(cache_.contains("k"));

  ASSERT_TRUE(cache_.put("k", 1).ok());
  const auto previous = cache_.replace("k", 2);
  ASSERT_TRUE(previous.ok());
  EXPECT_EQ(*previous, 1);
  EXPECT_EQ(*cache_.get<int>("k"), 2);

  expect_mismatch(cache_.replace("k", User{3, "C"}), "int", "User");
  EXPECT_EQ(*cache_.get<int>("k"), 2);  // untouched
}

TEST_F(CacheTest, CompareAndSwap) {
  const auto absent = cache_.compare_and_swap("k", 1, 2);
  ASSERT_TRUE(absent.ok());
  EXPECT_FALSE(*absent);
  EXPECT_FALSE(cache_.contains("k"));

  ASSERT_TRUE(cache_.put("k", User{1, "A"}).ok());
  const auto mismatch = cache_.compare_and_swap("k", User{1, "B"}, User{2, "C"});
  ASSERT_TRUE(mismatch.ok());
  EXPECT_FALSE(*mismatch);
  EXPECT_EQ(*cache_.get<User>("k"), (User{1, "A"}));

  const auto swapped = cache_.compare_and_swap("k", User{1, "A"}, User{2, "C"});
  ASSERT_TRUE(swapped.ok());
  EXPECT_TRUE(*swapped);
  EXPECT_EQ(*cache_.get<User>("k"), (User{2, "C"}));

  expect_mismatch(cache_.compare_and_swap("k", 2, 3), "User", "int");
  EXPECT_EQ(*cache_.get<User>("k"), (User{2, "C"}));
}

TEST_F(CacheTest, GetOrInsert) {
  int calls = 0;
  const auto made = cache_.get_or_insert<std::string>("g", [&] {
    ++calls;
    return std::string("hello");
  });
  ASSERT_TRUE(made.ok());
  EXPECT_EQ(*made, "hello");
  const auto again = cache_.get_or_insert<std::string>("g", [&] {
    ++calls;
    return std::string("other");
  });
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, "hello");
  EXPECT_EQ(calls, 1);

  // The factory's result converts to V.
  const auto converted = cache_.get_or_insert<std::string>("c", [] { return "chars"; });
  ASSERT_TRUE(converted.ok());
  EXPECT_EQ(*cache_.get<std::string>("c"), "chars");

  // Wrong type: error, factory not called, entry untouched.
  expect_mismatch(cache_.get_or_insert<int>("g",
                                            [&] {
                                              ++calls;
                                              return 5;
                                            }),
                  "std::string", "int");
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(*cache_.get<std::string>("g"), "hello");
}

TEST_F(CacheTest, GetOrInsertDeducesTheValueTypeFromTheFactory) {
  auto made = cache_.get_or_insert("d", [] { return std::string("x"); });
  static_assert(std::is_same_v<decltype(made), absl::StatusOr<std::string>>);
  ASSERT_TRUE(made.ok());
  EXPECT_EQ(*made, "x");
  EXPECT_EQ(*cache_.get<std::string>("d"), "x");
  // The stored value wins over a second factory; the type is checked against the stored one.
  EXPECT_EQ(*cache_.get_or_insert("d", [] { return std::string("y"); }), "x");
  expect_mismatch(cache_.get_or_insert("d", [] { return User{1, "A"}; }), "std::string", "User");
  // A factory returning a const reference stores the decayed type.
  const User ada{7, "Ada"};
  auto ref = cache_.get_or_insert("u", [&]() -> const User& { return ada; });
  static_assert(std::is_same_v<decltype(ref), absl::StatusOr<User>>);
  EXPECT_EQ(*cache_.get<User>("u"), ada);
}

TEST_F(CacheTest, PutAllAndRemoveAll) {
  const std::map<std::string, int> numbers{{"a", 1}, {"b", 2}, {"c", 3}};
  ASSERT_TRUE(cache_.put_all(numbers).ok());
  EXPECT_EQ(*cache_.get<int>("b"), 2);
  EXPECT_EQ(numbers.size(), 3U);  // an lvalue range is copied from
  ASSERT_TRUE(cache_
                  .put_all(std::vector<std::pair<std::string, User>>{{"b", User{2, "B"}},
                                                                     {"d", User{4, "D"}}})
                  .ok());
  EXPECT_EQ(*cache_.get<User>("b"), (User{2, "B"}));  // the type is the range's value type
  expect_mismatch(cache_.get<int>("d"), "User", "int");

  const absl::StatusOr<std::size_t> removed = cache_.remove_all({"a", "b", "absent"});
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(*removed, 2U);
  EXPECT_FALSE(cache_.contains("a"));
  EXPECT_FALSE(cache_.contains("b"));
  const std::vector<std::string_view> views{"c", "d"};  // transparent keys
  EXPECT_EQ(*cache_.remove_all(views), 2U);
  EXPECT_EQ(cache_.size(), 0U);
}

TEST_F(CacheTest, GetAllReturnsThePresentKeysOfTheAskedType) {
  ASSERT_TRUE(cache_.put<int>("one", 1).ok());
  ASSERT_TRUE(cache_.put<int>("two", 2).ok());
  ASSERT_TRUE(cache_.put("user", User{7, "U"}).ok());
  const auto got = cache_.get_all<int>({"one", "two", "absent", "one"});
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->size(), 2U);
  EXPECT_EQ(got->at("one"), 1);
  EXPECT_EQ(got->at("two"), 2);
  const auto mixed = cache_.get_all<int>(std::vector<std::string>{"one", "user"});
  ASSERT_FALSE(mixed.ok());
  EXPECT_EQ(mixed.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(mixed.status().message()), testing::HasSubstr("key #1"));
  EXPECT_THAT(std::string(mixed.status().message()), testing::HasSubstr("User"));
}

TEST_F(CacheTest, GetOrInsertThrowingFactoryInsertsNothing) {
  int calls = 0;
  EXPECT_THROW((void)cache_.get_or_insert<int>("k",
                                               [&]() -> int {
                                                 ++calls;
                                                 throw std::runtime_error("boom");
                                               }),
               std::runtime_error);
  EXPECT_FALSE(cache_.contains("k"));
  EXPECT_EQ(cache_.size(), 0u);
  const auto ok = cache_.get_or_insert<int>("k", [&] {
    ++calls;
    return 9;
  });
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 9);
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(*cache_.get<int>("k"), 9);
}

TEST_F(CacheTest, RecursiveGetOrInsertOfTheSameKeyThrows) {
  EXPECT_THROW(
      (void)cache_.get_or_insert<int>(
          "r", [&] { return cache_.get_or_insert<int>("r", [] { return 1; }).value_or(-1); }),
      std::logic_error);
  EXPECT_FALSE(cache_.contains("r"));
  EXPECT_EQ(*cache_.get_or_insert<int>("r", [] { return 2; }), 2);
}

TEST_F(CacheTest, Visit) {
  ASSERT_TRUE(cache_.put("u", User{4, "Dee"}).ok());
  int calls = 0;
  const User* first = nullptr;
  const auto hit = cache_.visit<User>("u", [&](const User& u) {
    ++calls;
    first = &u;
    EXPECT_EQ(u, (User{4, "Dee"}));
  });
  ASSERT_TRUE(hit.ok());
  EXPECT_TRUE(*hit);
  const User* second = nullptr;
  ASSERT_TRUE(*cache_.visit<User>(std::string_view("u"), [&](const User& u) { second = &u; }));
  EXPECT_EQ(first, second);  // the stored object, not a copy

  const auto miss = cache_.visit<User>("nope", [&](const User&) { ++calls; });
  ASSERT_TRUE(miss.ok());
  EXPECT_FALSE(*miss);
  EXPECT_EQ(calls, 1);

  expect_mismatch(cache_.visit<int>("u", [&](const int&) { ++calls; }), "User", "int");
  EXPECT_EQ(calls, 1);  // f not called on a mismatch
  EXPECT_EQ(*cache_.get<User>("u"), (User{4, "Dee"}));
}

TEST_F(CacheTest, GetManyReportsPerElementStatuses) {
  ASSERT_TRUE(cache_.put("i", 1).ok());
  ASSERT_TRUE(cache_.put("s", std::string("x")).ok());
  ASSERT_TRUE(cache_.put("j", 2).ok());
  const std::vector<std::string> keys = {"i", "s", "absent", "j"};
  std::vector<absl::StatusOr<std::optional<int>>> out(keys.size());
  cache_.get_many<int>(keys, out);
  ASSERT_TRUE(out[0].ok());
  EXPECT_EQ(*out[0], 1);
  expect_mismatch(out[1], "std::string", "int");
  ASSERT_TRUE(out[2].ok());
  EXPECT_EQ(*out[2], std::nullopt);
  ASSERT_TRUE(out[3].ok());
  EXPECT_EQ(*out[3], 2);

  // Only min(keys, out) elements are written.
  std::vector<absl::StatusOr<std::optional<int>>> shorter(2, absl::InternalError("untouched"));
  cache_.get_many<int>(std::span<const std::string>(keys).subspan(2), shorter);
  ASSERT_TRUE(shorter[0].ok());
  EXPECT_EQ(*shorter[0], std::nullopt);
  EXPECT_EQ(*shorter[1], 2);
  std::vector<absl::StatusOr<std::optional<int>>> longer(3, absl::InternalError("untouched"));
  cache_.get_many<int>(std::span<const std::string>(keys).first(1), longer);
  EXPECT_EQ(*longer[0], 1);
  EXPECT_EQ(longer[1].status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(longer[2].status().code(), absl::StatusCode::kInternal);
}

TEST_F(CacheTest, HeterogeneousLookup) {
  ASSERT_TRUE(cache_.put("alpha", 1).ok());
  const std::string_view sv = "alpha";
  const char* cp = "alpha";
  EXPECT_EQ(*cache_.get<int>(sv), 1);
  EXPECT_EQ(*cache_.get<int>(cp), 1);
  EXPECT_TRUE(cache_.contains(cp));
  int seen = 0;
  EXPECT_TRUE(*cache_.visit<int>(cp, [&](const int& v) { seen = v; }));
  EXPECT_EQ(seen, 1);
  EXPECT_TRUE(*cache_.remove(sv));
  EXPECT_FALSE(*cache_.remove(cp));
}

TEST_F(CacheTest, InlineAndHeapValuesSurviveManyOverwrites) {
  for (int round = 0; round < 20; ++round) {
    for (int k = 0; k < 50; ++k) {
      const std::string key = "k" + std::to_string(k);
      if ((round + k) % 2 == 0) {
        ASSERT_TRUE(cache_.put(key, Small{round, k}).ok());
      } else {
        Big big;
        big.words.fill(static_cast<std::uint64_t>(round * 100 + k));
        ASSERT_TRUE(cache_.put(key, big).ok());
      }
    }
  }
  for (int k = 0; k < 50; ++k) {
    const std::string key = "k" + std::to_string(k);
    if ((19 + k) % 2 == 0) {
      EXPECT_EQ(*cache_.get<Small>(key), (Small{19, k}));
    } else {
      Big big;
      big.words.fill(static_cast<std::uint64_t>(1900 + k));
      EXPECT_EQ(*cache_.get<Big>(key), big);
    }
  }
  EXPECT_EQ(cache_.size(), 50u);
}

TEST_F(CacheTest, ThrowingCopyDoesNotCorruptInlineOrHeapValues) {
  ASSERT_TRUE(cache_.put("small", ThrowOnCopy(1)).ok());
  ASSERT_TRUE(cache_.put("big", BigThrowOnCopy(2)).ok());
  ASSERT_TRUE(cache_.put("other", 3).ok());
  ThrowOnCopy::armed = true;
  BigThrowOnCopy::armed = true;
  EXPECT_THROW((void)cache_.get<ThrowOnCopy>("small"), std::runtime_error);
  EXPECT_THROW((void)cache_.get<BigThrowOnCopy>("big"), std::runtime_error);
  EXPECT_THROW((void)cache_.put_if_absent("small", ThrowOnCopy(9)), std::runtime_error);
  EXPECT_THROW((void)cache_.replace("big", BigThrowOnCopy(9)), std::runtime_error);
  EXPECT_THROW((void)cache_.get_or_insert<ThrowOnCopy>("small", [] { return ThrowOnCopy(9); }),
               std::runtime_error);
  // A fresh get_or_insert copies the made value into the waiters' slot: it throws and must not
  // leave anything behind.
  EXPECT_THROW(
      (void)cache_.get_or_insert<BigThrowOnCopy>("fresh", [] { return BigThrowOnCopy(5); }),
      std::runtime_error);
  EXPECT_FALSE(cache_.contains("fresh"));
  // put only moves: it works while copies throw.
  ASSERT_TRUE(cache_.put("moved", BigThrowOnCopy(4)).ok());
  ThrowOnCopy::armed = false;
  BigThrowOnCopy::armed = false;

  EXPECT_EQ(*cache_.get<ThrowOnCopy>("small"), ThrowOnCopy(1));
  EXPECT_EQ(*cache_.get<BigThrowOnCopy>("big"), BigThrowOnCopy(2));
  EXPECT_EQ(*cache_.get<BigThrowOnCopy>("moved"), BigThrowOnCopy(4));
  EXPECT_EQ(*cache_.get<int>("other"), 3);
  // Settled first: a move the pool makes meanwhile counts its entry in neither tier, or both.
  cache_.run_pending_tasks();
  EXPECT_EQ(cache_.size(), 4u);
  // Every lock was released: writes to the same keys still work.
  EXPECT_EQ(**cache_.replace("small", ThrowOnCopy(10)), ThrowOnCopy(1));
  EXPECT_TRUE(*cache_.compare_and_swap("big", BigThrowOnCopy(2), BigThrowOnCopy(20)));
  EXPECT_EQ(*cache_.get<BigThrowOnCopy>("big"), BigThrowOnCopy(20));
}

// Distinct types that happen to be spelled the same must not pass the type check. (Layouts are
// compatible on purpose, so a failure is a failed expectation rather than a crash.)
TEST_F(CacheTest, SameScopeLambdasAreDistinctTypes) {
  const auto first = [v = 1] { return v; };
  const auto second = [v = 2] { return v * 100; };
  using Second = std::remove_const_t<decltype(second)>;
  ASSERT_TRUE(cache_.put("f", first).ok());
  const auto wrong = cache_.get<Second>("f");
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kFailedPrecondition)
      << "a closure of one type was returned as another type";
}

TEST_F(CacheTest, AnonymousNamespaceTypesFromTwoFilesAreDistinct) {
  internals_test::put_internals_twin(cache_, "twin", 5);
  EXPECT_EQ(cache_.get<Twin>("twin").status().code(), absl::StatusCode::kFailedPrecondition)
      << "internals_test.cpp's {anonymous}::Twin was returned as cache_test.cpp's";
}

TEST(CacheLifetime, StoredValuesAreDestroyedExactlyOnce) {
  collect_garbage();
  const long baseline = Counted::live.load();
  {
    Cache cache = make_cache(64);
    for (std::uint64_t i = 0; i < 40; ++i)
      ASSERT_TRUE(cache.put(std::to_string(i), Counted(i)).ok());
    EXPECT_EQ(Counted::live.load() - baseline, 40);
    for (std::uint64_t i = 0; i < 20; ++i) ASSERT_TRUE(cache.put(std::to_string(i), 7).ok());
    for (std::uint64_t i = 20; i < 30; ++i) ASSERT_TRUE(*cache.remove(std::to_string(i)));
    collect_garbage();
    EXPECT_EQ(Counted::live.load() - baseline, 10);
    EXPECT_EQ(*cache.get<Counted>("35"), Counted(35));
  }
  EXPECT_EQ(Counted::live.load(), baseline);
}

TEST(CacheStats, CountsLikeTypedCache) {
  auto made = Cache::builder()
                  .hot_tier_max_entries(100)
                  .warm_tier_max_entries(0)
                  .enable_telemetry(true)
                  .build();
  ASSERT_TRUE(made.ok()) << made.status();
  Cache& cache = *made;
  ASSERT_TRUE(cache.put("a", 1).ok());
  ASSERT_TRUE(cache.put("a", std::string("s")).ok());
  (void)cache.get<std::string>("a");  // hit
  (void)cache.get<int>("a");          // found, wrong type: still a lookup that found its key
  (void)cache.get<int>("zz");         // miss
  (void)*cache.remove("a");
  const goldylox::cache_stats s = cache.stats();
  EXPECT_EQ(s.inserts, 1u);
  EXPECT_EQ(s.updates, 1u);
  EXPECT_EQ(s.hits, 2u);
  EXPECT_EQ(s.misses, 1u);
  EXPECT_EQ(s.removals, 1u);
  EXPECT_EQ(s.size, 0u);
  EXPECT_EQ(s.capacity, 100u);
  EXPECT_EQ(cache.capacity(), 100u);
}

TEST(CacheEviction, CapacityIsRespected) {
  auto made = Cache::builder().hot_tier_max_entries(50).warm_tier_max_entries(0).build();
  ASSERT_TRUE(made.ok()) << made.status();
  Cache& cache = *made;
  for (int i = 0; i < 500; ++i) {
    ASSERT_TRUE(cache.put("k" + std::to_string(i), i).ok());
    ASSERT_LE(cache.size(), 50u);
  }
  EXPECT_EQ(cache.stats().evictions, 450u);
  int present = 0;
  for (int i = 0; i < 500; ++i) {
    const auto got = cache.get<int>("k" + std::to_string(i));
    ASSERT_TRUE(got.ok());
    if (got->has_value()) {
      ++present;
      EXPECT_EQ(**got, i);
    }
  }
  EXPECT_EQ(present, 50);
}

}  // namespace cache_test
