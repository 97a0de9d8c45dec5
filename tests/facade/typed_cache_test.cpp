// Unit tests for goldylox::typed_cache<K, V>: the single-value-type facade.
//
// The generic tests run over four key/value combinations covering both hot-tier slot layouts:
// packed slots (trivially copyable key and value, <= 32 bytes) and node slots (everything else,
// reclaimed through epoch-based reclamation).
#include <atomic>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include <goldylox/goldylox.hpp>

namespace {

using goldylox::typed_cache;
namespace detail = goldylox::detail;

// ---- value types -----------------------------------------------------------------------------

// Trivially copyable, 16 bytes: with a uint64_t key it still fits a packed slot.
struct Point {
  std::int32_t x = 0;
  std::int32_t y = 0;
  double z = 0;
  friend bool operator==(const Point&, const Point&) = default;
};

// A value with a non-trivial destructor that counts live instances and catches double or
// use-after-destruction (the magic word is overwritten by the destructor).
struct Tracked {
  static constexpr std::uint32_t alive = 0x600d600d;
  static constexpr std::uint32_t dead = 0xdeadbeef;
  static inline std::atomic<long> live{0};
  static inline std::atomic<long> bad{0};  // destructions or copies of a non-live object
  static inline std::atomic<long> copies{0};

  std::uint64_t v = 0;
  std::uint32_t magic = alive;

  explicit Tracked(std::uint64_t value = 0) : v(value) { ++live; }
  Tracked(const Tracked& o) : v(o.v) {
    check(o);
    ++live;
    ++copies;
  }
  Tracked(Tracked&& o) noexcept : v(o.v) {
    check(o);
    ++live;
  }
  Tracked& operator=(const Tracked& o) {
    check(o);
    v = o.v;
    return *this;
  }
  ~Tracked() {
    check(*this);
    magic = dead;
    --live;
  }
  static void check(const Tracked& t) {
    if (t.magic != alive) ++bad;
  }
  friend bool operator==(const Tracked& a, const Tracked& b) { return a.v == b.v; }
};

// Frees everything this thread (and exited threads) retired, as far as the epochs allow.
void collect_garbage() {
  auto& domain = detail::epoch_domain::global();
  for (int i = 0; i < 4; ++i) domain.collect(detail::this_thread_epoch_record());
}

template <class C>
C make_cache(std::size_t capacity = 1024,
             goldylox::memory_layout layout = goldylox::memory_layout::one_table) {
  // Inline moves: these tests follow the facade read by read (sizes, copies); the background
  // pool's queued moves have their own tests (tests/engine: QueuedMoves, ColdCachePool).
  auto made = C::builder()
                  .hot_tier_max_entries(capacity)
                  .memory_layout(layout)
                  .enable_background_workers(false)
                  .build();
  EXPECT_TRUE(made.ok()) << made.status();
  return std::move(made).value();
}

// ---- key/value generators for the typed tests -----------------------------------------------

template <class K>
K make_key(std::uint64_t i);
template <>
std::uint64_t make_key<std::uint64_t>(std::uint64_t i) {
  return i * 7919 + 3;
}
template <>
std::string make_key<std::string>(std::uint64_t i) {
  return "key-" + std::to_string(i) + "-with-a-long-enough-suffix-to-defeat-sso";
}

template <class V>
V make_value(std::uint64_t i);
template <>
std::uint64_t make_value<std::uint64_t>(std::uint64_t i) {
  return i * 1000003 + 17;
}
template <>
Point make_value<Point>(std::uint64_t i) {
  return Point{static_cast<std::int32_t>(i), -static_cast<std::int32_t>(i),
               static_cast<double>(i) / 4};
}
template <>
std::string make_value<std::string>(std::uint64_t i) {
  return "value #" + std::to_string(i) + std::string(i % 40, '*');
}
template <>
Tracked make_value<Tracked>(std::uint64_t i) {
  return Tracked(i * 31 + 1);
}

template <class K, class V>
struct Kind {
  using key_type = K;
  using value_type = V;
  using cache_type = typed_cache<K, V>;
  static constexpr bool packed = detail::use_packed_slots<K, V>;
};

using PackedU64 = Kind<std::uint64_t, std::uint64_t>;
using PackedPoint = Kind<std::uint64_t, Point>;
using NodeString = Kind<std::string, std::string>;
using NodeTracked = Kind<std::uint64_t, Tracked>;

// Both slot layouts must really be covered.
static_assert(PackedU64::packed);
static_assert(PackedPoint::packed);
static_assert(!NodeString::packed);
static_assert(!NodeTracked::packed);

template <class KindT>
class TypedCacheTest : public ::testing::Test {
 protected:
  using K = typename KindT::key_type;
  using V = typename KindT::value_type;
  using Cache = typename KindT::cache_type;

  static K key(std::uint64_t i) { return make_key<K>(i); }
  static V value(std::uint64_t i) { return make_value<V>(i); }

  void TearDown() override { EXPECT_EQ(Tracked::bad.load(), 0); }

  Cache cache_ = make_cache<Cache>(1024);
};

using Kinds = ::testing::Types<PackedU64, PackedPoint, NodeString, NodeTracked>;
class KindNames {
 public:
  template <class T>
  static std::string GetName(int) {
    if (std::is_same_v<T, PackedU64>) return "PackedU64";
    if (std::is_same_v<T, PackedPoint>) return "PackedPoint";
    if (std::is_same_v<T, NodeString>) return "NodeString";
    return "NodeTracked";
  }
};
TYPED_TEST_SUITE(TypedCacheTest, Kinds, KindNames);

TYPED_TEST(TypedCacheTest, GetOnEmptyCacheMisses) {
  EXPECT_EQ(this->cache_.get(this->key(1)), std::nullopt);
  EXPECT_FALSE(this->cache_.contains(this->key(1)));
  EXPECT_EQ(this->cache_.size(), 0u);
}

TYPED_TEST(TypedCacheTest, PutThenGetReturnsTheValue) {
  ASSERT_TRUE(this->cache_.put(this->key(1), this->value(1)).ok());
  const auto got = this->cache_.get(this->key(1));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(*got, this->value(1));
  EXPECT_EQ(this->cache_.get(this->key(2)), std::nullopt);
}

TYPED_TEST(TypedCacheTest, PutOverwritesAndKeepsSize) {
  ASSERT_TRUE(this->cache_.put(this->key(1), this->value(1)).ok());
  ASSERT_TRUE(this->cache_.put(this->key(1), this->value(2)).ok());
  EXPECT_EQ(this->cache_.get(this->key(1)), this->value(2));
  EXPECT_EQ(this->cache_.size(), 1u);
}

TYPED_TEST(TypedCacheTest, ManyKeysRoundTrip) {
  for (std::uint64_t i = 0; i < 500; ++i)
    ASSERT_TRUE(this->cache_.put(this->key(i), this->value(i)).ok());
  EXPECT_EQ(this->cache_.size(), 500u);
  for (std::uint64_t i = 0; i < 500; ++i) {
    EXPECT_EQ(this->cache_.get(this->key(i)), this->value(i)) << i;
  }
  for (std::uint64_t i = 500; i < 600; ++i) EXPECT_FALSE(this->cache_.contains(this->key(i)));
}

TYPED_TEST(TypedCacheTest, RemoveReportsPresence) {
  ASSERT_TRUE(this->cache_.put(this->key(1), this->value(1)).ok());
  ASSERT_TRUE(this->cache_.put(this->key(2), this->value(2)).ok());
  EXPECT_TRUE(*this->cache_.remove(this->key(1)));
  EXPECT_FALSE(*this->cache_.remove(this->key(1)));
  EXPECT_FALSE(*this->cache_.remove(this->key(3)));
  EXPECT_FALSE(this->cache_.contains(this->key(1)));
  EXPECT_EQ(this->cache_.get(this->key(1)), std::nullopt);
  EXPECT_EQ(this->cache_.get(this->key(2)), this->value(2));
  EXPECT_EQ(this->cache_.size(), 1u);
}

TYPED_TEST(TypedCacheTest, RemovedKeyCanBeReinserted) {
  for (int round = 0; round < 5; ++round) {
    ASSERT_TRUE(this->cache_.put(this->key(9), this->value(round)).ok());
    EXPECT_EQ(this->cache_.get(this->key(9)), this->value(round));
    EXPECT_TRUE(*this->cache_.remove(this->key(9)));
  }
  EXPECT_EQ(this->cache_.size(), 0u);
}

TYPED_TEST(TypedCacheTest, ContainsTracksPresence) {
  EXPECT_FALSE(this->cache_.contains(this->key(5)));
  ASSERT_TRUE(this->cache_.put(this->key(5), this->value(5)).ok());
  EXPECT_TRUE(this->cache_.contains(this->key(5)));
  EXPECT_FALSE(this->cache_.contains(this->key(6)));
}

TYPED_TEST(TypedCacheTest, ClearRemovesEverything) {
  for (std::uint64_t i = 0; i < 300; ++i)
    ASSERT_TRUE(this->cache_.put(this->key(i), this->value(i)).ok());
  ASSERT_TRUE(this->cache_.clear().ok());
  EXPECT_EQ(this->cache_.size(), 0u);
  for (std::uint64_t i = 0; i < 300; ++i) EXPECT_FALSE(this->cache_.contains(this->key(i))) << i;
  // The cache is fully usable afterwards.
  ASSERT_TRUE(this->cache_.put(this->key(1), this->value(7)).ok());
  EXPECT_EQ(this->cache_.get(this->key(1)), this->value(7));
  EXPECT_EQ(this->cache_.size(), 1u);
}

TYPED_TEST(TypedCacheTest, SizeCountsDistinctKeys) {
  for (std::uint64_t i = 0; i < 100; ++i) {
    ASSERT_TRUE(this->cache_.put(this->key(i % 40), this->value(i)).ok());
  }
  EXPECT_EQ(this->cache_.size(), 40u);
  for (std::uint64_t i = 0; i < 10; ++i) ASSERT_TRUE(*this->cache_.remove(this->key(i)));
  EXPECT_EQ(this->cache_.size(), 30u);
}

TYPED_TEST(TypedCacheTest, PutIfAbsentInsertsOnlyWhenAbsent) {
  EXPECT_EQ(*this->cache_.put_if_absent(this->key(1), this->value(1)), std::nullopt);
  EXPECT_EQ(this->cache_.get(this->key(1)), this->value(1));
  const auto existing = *this->cache_.put_if_absent(this->key(1), this->value(2));
  ASSERT_TRUE(existing.has_value());
  EXPECT_EQ(*existing, this->value(1));
  EXPECT_EQ(this->cache_.get(this->key(1)), this->value(1));  // not overwritten
  EXPECT_EQ(this->cache_.size(), 1u);
}

TYPED_TEST(TypedCacheTest, ReplaceOnlyWhenPresent) {
  EXPECT_EQ(*this->cache_.replace(this->key(1), this->value(1)), std::nullopt);
  EXPECT_FALSE(this->cache_.contains(this->key(1)));  // absent: nothing stored
  EXPECT_EQ(this->cache_.size(), 0u);

  ASSERT_TRUE(this->cache_.put(this->key(1), this->value(1)).ok());
  const auto previous = *this->cache_.replace(this->key(1), this->value(2));
  ASSERT_TRUE(previous.has_value());
  EXPECT_EQ(*previous, this->value(1));
  EXPECT_EQ(this->cache_.get(this->key(1)), this->value(2));
  EXPECT_EQ(this->cache_.size(), 1u);
}

TYPED_TEST(TypedCacheTest, CompareAndSwap) {
  // Absent: no swap, nothing inserted.
  EXPECT_FALSE(*this->cache_.compare_and_swap(this->key(1), this->value(1), this->value(2)));
  EXPECT_FALSE(this->cache_.contains(this->key(1)));

  ASSERT_TRUE(this->cache_.put(this->key(1), this->value(1)).ok());
  // Mismatch: no swap, value unchanged.
  EXPECT_FALSE(*this->cache_.compare_and_swap(this->key(1), this->value(3), this->value(2)));
  EXPECT_EQ(this->cache_.get(this->key(1)), this->value(1));
  // Match: swapped.
  EXPECT_TRUE(*this->cache_.compare_and_swap(this->key(1), this->value(1), this->value(2)));
  EXPECT_EQ(this->cache_.get(this->key(1)), this->value(2));
  // The old expected value no longer matches.
  EXPECT_FALSE(*this->cache_.compare_and_swap(this->key(1), this->value(1), this->value(4)));
  EXPECT_EQ(this->cache_.get(this->key(1)), this->value(2));
  EXPECT_EQ(this->cache_.size(), 1u);
}

TYPED_TEST(TypedCacheTest, GetOrInsertRunsFactoryOnlyWhenAbsent) {
  int calls = 0;
  const auto first = *this->cache_.get_or_insert(this->key(1), [&] {
    ++calls;
    return this->value(1);
  });
  EXPECT_EQ(first, this->value(1));
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(this->cache_.get(this->key(1)), this->value(1));

  const auto second = *this->cache_.get_or_insert(this->key(1), [&] {
    ++calls;
    return this->value(2);
  });
  EXPECT_EQ(second, this->value(1));
  EXPECT_EQ(calls, 1);

  ASSERT_TRUE(this->cache_.put(this->key(2), this->value(5)).ok());
  const auto third = *this->cache_.get_or_insert(this->key(2), [&] {
    ++calls;
    return this->value(6);
  });
  EXPECT_EQ(third, this->value(5));
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(this->cache_.size(), 2u);
}

TYPED_TEST(TypedCacheTest, GetOrInsertThrowingFactoryInsertsNothing) {
  int calls = 0;
  EXPECT_THROW((void)this->cache_.get_or_insert(this->key(1),
                                                [&]() -> typename TestFixture::V {
                                                  ++calls;
                                                  throw std::runtime_error("factory failed");
                                                }),
               std::runtime_error);
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(this->cache_.contains(this->key(1)));
  EXPECT_EQ(this->cache_.size(), 0u);

  // The next call runs the factory again and succeeds.
  const auto v = *this->cache_.get_or_insert(this->key(1), [&] {
    ++calls;
    return this->value(1);
  });
  EXPECT_EQ(v, this->value(1));
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(this->cache_.get(this->key(1)), this->value(1));
}

TYPED_TEST(TypedCacheTest, VisitCallsFunctionOnlyOnHit) {
  ASSERT_TRUE(this->cache_.put(this->key(1), this->value(1)).ok());
  int calls = 0;
  EXPECT_TRUE(this->cache_.visit(this->key(1), [&](const typename TestFixture::V& v) {
    ++calls;
    EXPECT_EQ(v, this->value(1));
  }));
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(this->cache_.visit(this->key(2), [&](const typename TestFixture::V&) { ++calls; }));
  EXPECT_EQ(calls, 1);
}

TYPED_TEST(TypedCacheTest, GetManyMixedHitsAndMisses) {
  using K = typename TestFixture::K;
  using V = typename TestFixture::V;
  for (std::uint64_t i = 0; i < 40; i += 2)
    ASSERT_TRUE(this->cache_.put(this->key(i), this->value(i)).ok());
  std::vector<K> keys;
  for (std::uint64_t i = 0; i < 40; ++i) keys.push_back(this->key(i));  // > one batch of 16

  // Vector overload.
  const std::vector<std::optional<V>> got = this->cache_.get_many(keys);
  ASSERT_EQ(got.size(), keys.size());
  for (std::uint64_t i = 0; i < 40; ++i) {
    if (i % 2 == 0) {
      EXPECT_EQ(got[i], this->value(i)) << i;
    } else {
      EXPECT_EQ(got[i], std::nullopt) << i;
    }
  }

  // Span overload: stale contents of `out` are overwritten, hits and misses alike.
  std::vector<std::optional<V>> out(keys.size(), this->value(999));
  this->cache_.get_many(std::span<const K>(keys), std::span<std::optional<V>>(out));
  EXPECT_EQ(out, got);
}

TYPED_TEST(TypedCacheTest, GetManyOutShorterOrLongerThanKeys) {
  using K = typename TestFixture::K;
  using V = typename TestFixture::V;
  for (std::uint64_t i = 0; i < 5; ++i)
    ASSERT_TRUE(this->cache_.put(this->key(i), this->value(i)).ok());
  const std::vector<K> keys = {this->key(0), this->key(1), this->key(77), this->key(3),
                               this->key(4)};

  // out shorter than keys: only the first out.size() keys are looked up.
  std::vector<std::optional<V>> shorter(3);
  this->cache_.get_many(keys, shorter);
  EXPECT_EQ(shorter[0], this->value(0));
  EXPECT_EQ(shorter[1], this->value(1));
  EXPECT_EQ(shorter[2], std::nullopt);

  // out longer than keys: the extra elements are left alone.
  std::vector<std::optional<V>> longer(7, this->value(42));
  this->cache_.get_many(std::span<const K>(keys.data(), 2), longer);
  EXPECT_EQ(longer[0], this->value(0));
  EXPECT_EQ(longer[1], this->value(1));
  for (std::size_t i = 2; i < longer.size(); ++i) EXPECT_EQ(longer[i], this->value(42)) << i;

  // Empty key list.
  EXPECT_TRUE(this->cache_.get_many(std::span<const K>()).empty());
}

TYPED_TEST(TypedCacheTest, VisitorMayCallBackIntoTheCache) {
  using V = typename TestFixture::V;
  auto& cache = this->cache_;
  ASSERT_TRUE(cache.put(this->key(1), this->value(1)).ok());
  ASSERT_TRUE(cache.put(this->key(2), this->value(2)).ok());
  ASSERT_TRUE(cache.put(this->key(4), this->value(4)).ok());
  EXPECT_TRUE(cache.visit(this->key(1), [&](const V& v) {
    EXPECT_EQ(cache.get(this->key(2)), this->value(2));
    ASSERT_TRUE(cache.put(this->key(3), this->value(3)).ok());
    EXPECT_TRUE(*cache.remove(this->key(4)));
    // Overwriting the visited key itself: the value being visited stays intact until f returns.
    ASSERT_TRUE(cache.put(this->key(1), this->value(10)).ok());
    EXPECT_EQ(v, this->value(1));
  }));
  EXPECT_EQ(cache.get(this->key(1)), this->value(10));
  EXPECT_EQ(cache.get(this->key(3)), this->value(3));
  EXPECT_FALSE(cache.contains(this->key(4)));
  collect_garbage();
}

TYPED_TEST(TypedCacheTest, FactoryMayWriteToTheCache) {
  using V = typename TestFixture::V;
  auto& cache = this->cache_;
  // A factory may fill other keys, including through a nested get_or_insert.
  const V a = *cache.get_or_insert(this->key(1), [&] {
    const V inner = *cache.get_or_insert(this->key(2), [&] { return this->value(2); });
    EXPECT_EQ(inner, this->value(2));
    return this->value(1);
  });
  EXPECT_EQ(a, this->value(1));
  EXPECT_EQ(cache.get(this->key(2)), this->value(2));
  // If the factory (or anyone) puts the key meanwhile, that value wins and is returned.
  const V b = *cache.get_or_insert(this->key(5), [&] {
    EXPECT_TRUE(cache.put(this->key(5), this->value(50)).ok());
    return this->value(51);
  });
  EXPECT_EQ(b, this->value(50));
  EXPECT_EQ(cache.get(this->key(5)), this->value(50));
}

TYPED_TEST(TypedCacheTest, RecursiveGetOrInsertOfTheSameKeyThrows) {
  using V = typename TestFixture::V;
  auto& cache = this->cache_;
  // The inner call would wait for the outer one forever; it is reported as a logic_error, which
  // fails the outer call too, and nothing is inserted.
  EXPECT_THROW(
      (void)cache.get_or_insert(
          this->key(1),
          [&] { return *cache.get_or_insert(this->key(1), [&] { return this->value(2); }); }),
      std::logic_error);
  EXPECT_FALSE(cache.contains(this->key(1)));
  const V v = *cache.get_or_insert(this->key(1), [&] { return this->value(3); });
  EXPECT_EQ(v, this->value(3));
}

TYPED_TEST(TypedCacheTest, MovedCacheKeepsItsContents) {
  ASSERT_TRUE(this->cache_.put(this->key(1), this->value(1)).ok());
  typename TestFixture::Cache moved = std::move(this->cache_);
  EXPECT_EQ(moved.get(this->key(1)), this->value(1));
  EXPECT_EQ(moved.size(), 1u);

  auto other = make_cache<typename TestFixture::Cache>(16);
  ASSERT_TRUE(other.put(this->key(2), this->value(2)).ok());
  other = std::move(moved);
  EXPECT_EQ(other.get(this->key(1)), this->value(1));
  EXPECT_FALSE(other.contains(this->key(2)));
  this->cache_ = make_cache<typename TestFixture::Cache>(16);  // TearDown-safe
}

// ---- heterogeneous (transparent) lookup with std::string keys ---------------------------------

TEST(TypedCacheHeterogeneous, StringViewAndCharPointerLookups) {
  auto cache = make_cache<typed_cache<std::string, int>>();
  ASSERT_TRUE(cache.put("alpha", 1).ok());
  ASSERT_TRUE(cache.put(std::string("beta"), 2).ok());

  const std::string_view sv = "alpha";
  const char* cp = "beta";
  EXPECT_EQ(cache.get(sv), 1);
  EXPECT_EQ(cache.get(cp), 2);
  EXPECT_EQ(cache.get("alpha"), 1);
  EXPECT_EQ(cache.get(std::string_view("gamma")), std::nullopt);

  EXPECT_TRUE(cache.contains(sv));
  EXPECT_TRUE(cache.contains(cp));
  EXPECT_FALSE(cache.contains("gamma"));

  int seen = 0;
  EXPECT_TRUE(cache.visit(sv, [&](const int& v) { seen = v; }));
  EXPECT_EQ(seen, 1);
  EXPECT_TRUE(cache.visit(cp, [&](const int& v) { seen = v; }));
  EXPECT_EQ(seen, 2);
  EXPECT_FALSE(cache.visit("gamma", [&](const int&) { seen = -1; }));
  EXPECT_EQ(seen, 2);

  EXPECT_TRUE(*cache.remove(sv));
  EXPECT_FALSE(*cache.remove(sv));
  EXPECT_TRUE(*cache.remove(cp));
  EXPECT_FALSE(*cache.remove("beta"));
  EXPECT_EQ(cache.size(), 0u);
}

TEST(TypedCacheHeterogeneous, StringViewWithoutTerminatorMatchesExactly) {
  auto cache = make_cache<typed_cache<std::string, int>>();
  ASSERT_TRUE(cache.put("key", 1).ok());
  ASSERT_TRUE(cache.put("keyboard", 2).ok());
  const std::string buffer = "keyboard";
  EXPECT_EQ(cache.get(std::string_view(buffer).substr(0, 3)), 1);
  EXPECT_EQ(cache.get(std::string_view(buffer)), 2);
  EXPECT_EQ(cache.get(std::string_view(buffer).substr(0, 4)), std::nullopt);
  // An embedded NUL is part of the key.
  const std::string with_nul("ke\0y", 4);
  ASSERT_TRUE(cache.put(with_nul, 3).ok());
  EXPECT_EQ(cache.get(std::string_view(with_nul)), 3);
  EXPECT_EQ(cache.get("ke"), std::nullopt);
  EXPECT_EQ(cache.size(), 3u);
}

// A case-insensitive (non-transparent) hasher and equality as template arguments.
struct CaseInsensitiveHash {
  std::size_t operator()(const std::string& s) const {
    std::string lower;
    for (const char c : s) lower += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    return std::hash<std::string>{}(lower);
  }
};
struct CaseInsensitiveEq {
  bool operator()(const std::string& a, const std::string& b) const {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
      const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c; };
      if (lower(a[i]) != lower(b[i])) return false;
    }
    return true;
  }
};

TEST(TypedCacheCustomHash, UsesTheGivenHasherAndEquality) {
  auto cache = make_cache<typed_cache<std::string, int, CaseInsensitiveHash, CaseInsensitiveEq>>();
  ASSERT_TRUE(cache.put("Hello", 1).ok());
  EXPECT_EQ(cache.get("HELLO"), 1);
  EXPECT_TRUE(cache.contains("hello"));
  ASSERT_TRUE(cache.put("hElLo", 2).ok());  // the same key
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.get("Hello"), 2);
  EXPECT_TRUE(*cache.remove("HeLLo"));
  EXPECT_EQ(cache.size(), 0u);
}

// ---- node values: copies and lifetimes ---------------------------------------------------------

TEST(TypedCacheNodes, VisitDoesNotCopyTheValueInOneTable) {
  auto cache = make_cache<typed_cache<std::uint64_t, Tracked>>();
  ASSERT_TRUE(cache.put(1, Tracked(5)).ok());
  const long copies = Tracked::copies.load();
  const Tracked* first = nullptr;
  const Tracked* second = nullptr;
  EXPECT_TRUE(cache.visit(std::uint64_t{1}, [&](const Tracked& t) { first = &t; }));
  EXPECT_TRUE(cache.visit(std::uint64_t{1}, [&](const Tracked& t) { second = &t; }));
  EXPECT_EQ(Tracked::copies.load(), copies);
  EXPECT_EQ(first, second);
  EXPECT_EQ(cache.stats().hot_size, 1u);  // one table holds every memory entry
  EXPECT_EQ(cache.stats().warm_size, 0u);
}

TEST(TypedCacheBulk, PutAllMovesFromAnRvalueRangeAndCopiesFromAnLvalue) {
  auto cache = make_cache<typed_cache<std::uint64_t, Tracked>>();
  std::vector<std::pair<std::uint64_t, Tracked>> entries;
  for (std::uint64_t k = 1; k <= 3; ++k) entries.emplace_back(k, Tracked(k * 10));
  long copies = Tracked::copies.load();
  ASSERT_TRUE(cache.put_all(entries).ok());
  EXPECT_GE(Tracked::copies.load() - copies, 3);  // each value copied out of the lvalue range
  ASSERT_TRUE(cache.put_all(std::vector<std::pair<std::uint64_t, Tracked>>{{4, Tracked(40)}}).ok());
  copies = Tracked::copies.load();
  ASSERT_TRUE(cache.put_all(std::move(entries)).ok());
  EXPECT_EQ(Tracked::copies.load(), copies);  // moved, never copied
  for (std::uint64_t k = 1; k <= 4; ++k) {
    const std::optional<Tracked> v = cache.get(k);
    ASSERT_TRUE(v.has_value()) << k;
    EXPECT_EQ(v->v, k * 10);
  }
  EXPECT_EQ(Tracked::bad.load(), 0);
}

TEST(TypedCacheBulk, RemoveAllCountsThePresentKeys) {
  auto cache = make_cache<typed_cache<std::string, int>>();
  ASSERT_TRUE(cache.put_all(std::map<std::string, int>{{"a", 1}, {"b", 2}, {"c", 3}}).ok());
  EXPECT_EQ(cache.size(), 3U);
  const absl::StatusOr<std::size_t> removed = cache.remove_all({"a", "c", "x"});
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(*removed, 2U);
  EXPECT_EQ(cache.get("b"), 2);
  EXPECT_FALSE(cache.contains("a"));
  const std::vector<std::string_view> views{"b", "b"};  // transparent keys, one repeated
  EXPECT_EQ(*cache.remove_all(views), 1U);
  EXPECT_EQ(*cache.remove_all(std::vector<std::string>{}), 0U);
  EXPECT_EQ(cache.size(), 0U);
}

TEST(TypedCacheNodes, VisitDoesNotCopyTheValue) {
  auto cache =
      make_cache<typed_cache<std::uint64_t, Tracked>>(1024, goldylox::memory_layout::two_tables);
  ASSERT_TRUE(cache.put(1, Tracked(5)).ok());
  // The key enters the warm tier, and its second read moves it into the hot tier (a move
  // between tiers copies the value once); visits from there on are what this test is about.
  EXPECT_TRUE(cache.visit(std::uint64_t{1}, [](const Tracked&) {}));
  EXPECT_TRUE(cache.visit(std::uint64_t{1}, [](const Tracked&) {}));
  cache.run_pending_tasks();  // the move the second read queued for the background pool
  ASSERT_EQ(cache.stats().hot_size, 1u);
  const long copies = Tracked::copies.load();
  const Tracked* first = nullptr;
  const Tracked* second = nullptr;
  EXPECT_TRUE(cache.visit(std::uint64_t{1}, [&](const Tracked& t) {
    EXPECT_EQ(t.v, 5u);
    first = &t;
  }));
  EXPECT_TRUE(cache.visit(std::uint64_t{1}, [&](const Tracked& t) { second = &t; }));
  EXPECT_EQ(Tracked::copies.load(), copies);
  EXPECT_EQ(first, second);  // the stored object itself, not a temporary
  // In the warm tier too: a key read once there stays there (one read asks for no move).
  ASSERT_TRUE(cache.put(2, Tracked(6)).ok());
  const long before_warm = Tracked::copies.load();
  const Tracked* in_warm = nullptr;
  EXPECT_TRUE(cache.visit(std::uint64_t{2}, [&](const Tracked& t) { in_warm = &t; }));
  EXPECT_EQ(Tracked::copies.load(), before_warm);
  EXPECT_EQ(cache.stats().warm_size, 1u);
  // get() does copy.
  EXPECT_EQ(cache.get(1), Tracked(5));
  EXPECT_GT(Tracked::copies.load(), copies);
}

TEST(TypedCacheNodes, DestructorFreesHeldValuesAndRetiredOnesAreReclaimed) {
  collect_garbage();
  const long baseline = Tracked::live.load();
  {
    auto cache = make_cache<typed_cache<std::uint64_t, Tracked>>(256);
    for (std::uint64_t i = 0; i < 200; ++i) ASSERT_TRUE(cache.put(i, Tracked(i)).ok());
    EXPECT_EQ(Tracked::live.load() - baseline, 200);
    // Overwrites and removals retire old nodes: their values may be freed later, never twice.
    for (std::uint64_t i = 0; i < 100; ++i) ASSERT_TRUE(cache.put(i, Tracked(i + 1000)).ok());
    for (std::uint64_t i = 100; i < 150; ++i) ASSERT_TRUE(*cache.remove(i));
    EXPECT_GE(Tracked::live.load() - baseline, 150);  // the 150 held values are alive
    EXPECT_LE(Tracked::live.load() - baseline, 300);  // plus at most the 150 retired ones
    for (std::uint64_t i = 0; i < 100; ++i) EXPECT_EQ(cache.get(i), Tracked(i + 1000));
    collect_garbage();
    EXPECT_EQ(Tracked::live.load() - baseline, 150);  // nobody is pinned: all retired are freed
  }
  // The destructor frees every held value at once; nothing else remains.
  EXPECT_EQ(Tracked::live.load(), baseline);
  collect_garbage();
  EXPECT_EQ(Tracked::live.load(), baseline);
  EXPECT_EQ(Tracked::bad.load(), 0);
}

TEST(TypedCacheNodes, ValuesRetiredByAnExitedThreadAreReclaimed) {
  collect_garbage();
  const long baseline = Tracked::live.load();
  auto cache = make_cache<typed_cache<std::uint64_t, Tracked>>(1024);
  std::thread writer([&] {
    for (std::uint64_t i = 0; i < 50; ++i) ASSERT_TRUE(cache.put(i, Tracked(i)).ok());
    for (std::uint64_t i = 0; i < 50; ++i) ASSERT_TRUE(cache.put(i, Tracked(i + 1)).ok());
    for (std::uint64_t i = 0; i < 10; ++i) ASSERT_TRUE(*cache.remove(i));
  });
  writer.join();  // its limbo list (fewer than the scan interval) becomes an orphan list
  EXPECT_GE(Tracked::live.load() - baseline, 40);
  collect_garbage();
  EXPECT_EQ(Tracked::live.load() - baseline, 40);
  for (std::uint64_t i = 10; i < 50; ++i) EXPECT_EQ(cache.get(i), Tracked(i + 1));
  EXPECT_EQ(Tracked::bad.load(), 0);
}

TEST(TypedCacheNodes, ClearRetiresEveryValue) {
  collect_garbage();
  const long baseline = Tracked::live.load();
  auto cache = make_cache<typed_cache<std::uint64_t, Tracked>>(1024);
  for (std::uint64_t i = 0; i < 300; ++i) ASSERT_TRUE(cache.put(i, Tracked(i)).ok());
  ASSERT_TRUE(cache.clear().ok());
  collect_garbage();
  EXPECT_EQ(Tracked::live.load(), baseline);
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(Tracked::bad.load(), 0);
}

// ---- values whose copy constructor throws -------------------------------------------------------

struct ThrowOnCopy {
  static inline bool armed = false;
  int v = 0;
  explicit ThrowOnCopy(int value) : v(value) {}
  ThrowOnCopy(const ThrowOnCopy& o) : v(o.v) {
    if (armed) throw std::runtime_error("copy");
  }
  ThrowOnCopy(ThrowOnCopy&&) noexcept = default;
  ThrowOnCopy& operator=(const ThrowOnCopy&) = default;
  friend bool operator==(const ThrowOnCopy&, const ThrowOnCopy&) = default;
};

TEST(TypedCacheThrowingValues, ThrowingCopyLeavesTheCacheIntact) {
  auto cache = make_cache<typed_cache<std::string, ThrowOnCopy>>();
  ASSERT_TRUE(cache.put("a", ThrowOnCopy(1)).ok());
  ASSERT_TRUE(cache.put("b", ThrowOnCopy(2)).ok());
  ThrowOnCopy::armed = true;
  EXPECT_THROW((void)cache.get("a"), std::runtime_error);
  EXPECT_THROW((void)cache.put_if_absent("a", ThrowOnCopy(9)), std::runtime_error);
  EXPECT_THROW((void)cache.replace("a", ThrowOnCopy(9)), std::runtime_error);
  EXPECT_THROW((void)cache.get_or_insert("b", [] { return ThrowOnCopy(9); }), std::runtime_error);
  EXPECT_THROW((void)cache.get_many(std::vector<std::string>{"a", "b"}), std::runtime_error);
  ASSERT_TRUE(cache.put("c", ThrowOnCopy(3)).ok());  // moves only: works while armed
  ThrowOnCopy::armed = false;
  EXPECT_EQ(cache.get("a"), ThrowOnCopy(1));
  EXPECT_EQ(cache.get("b"), ThrowOnCopy(2));
  EXPECT_EQ(cache.get("c"), ThrowOnCopy(3));
  EXPECT_EQ(cache.size(), 3u);
  // The locks taken by the throwing operations were released.
  EXPECT_EQ(*cache.replace("a", ThrowOnCopy(10)), ThrowOnCopy(1));
  EXPECT_TRUE(*cache.remove("b"));
  EXPECT_EQ(cache.size(), 2u);
}

}  // namespace
