// The common building blocks (detail/common/): epoch-based reclamation, any_value, type names,
// hashing, striped counters, group_lock, and the concepts. Split from the old
// tests/unit/internals_test.cpp: its tag matching tests are in hot/tag_group_test.cpp, its
// single_flight test in engine/single_flight_test.cpp, and its {anonymous}::Twin helper for
// cache_test.cpp in facade/internals_test.cpp.
#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include <goldylox/goldylox.hpp>

namespace internals_test {

namespace detail = goldylox::detail;

struct Widget {
  int id = 0;
  friend bool operator==(const Widget&, const Widget&) = default;
};

// ---- epoch-based reclamation
// ------------------------------------------------------------------------

struct Counted {
  static inline std::atomic<long> live{0};
  static inline std::atomic<long> destroyed_twice{0};
  bool alive = true;
  Counted() { ++live; }
  Counted(const Counted&) { ++live; }
  ~Counted() {
    if (!alive) ++destroyed_twice;
    alive = false;
    --live;
  }
};

detail::epoch_domain& domain() {
  return detail::epoch_domain::global();
}
void collect_all() {
  for (int i = 0; i < 4; ++i) domain().collect(detail::this_thread_epoch_record());
}
void retire_one() {
  detail::epoch_guard guard(domain());
  guard.retire(new Counted);
}

// A thread that pins (optionally twice, nested) and stays pinned until released.
class PinnedThread {
 public:
  explicit PinnedThread(bool nested) {
    thread_ = std::thread([this, nested] {
      detail::epoch_guard outer(domain());
      std::optional<detail::epoch_guard> inner;
      if (nested) {
        inner.emplace(domain());
        inner.reset();  // still pinned by `outer`
      }
      pinned_.store(true);
      pinned_.notify_all();
      release_.wait(false);
    });
    pinned_.wait(false);
  }
  void release() {
    release_.store(true);
    release_.notify_all();
    thread_.join();
  }

 private:
  std::atomic<bool> pinned_{false};
  std::atomic<bool> release_{false};
  std::thread thread_;
};

TEST(Epoch, RetiredObjectOutlivesAPinnedReader) {
  for (const bool nested : {false, true}) {
    SCOPED_TRACE(nested ? "nested pin" : "single pin");
    collect_all();
    const long baseline = Counted::live.load();
    PinnedThread reader(nested);
    const std::uint64_t pinned_at = domain().epoch();
    retire_one();
    for (int i = 0; i < 20; ++i) collect_all();
    EXPECT_EQ(Counted::live.load(), baseline + 1) << "freed while a reader was pinned";
    // The global epoch cannot move more than one step past a pinned reader.
    EXPECT_LE(domain().epoch(), pinned_at + 1);
    reader.release();
    collect_all();
    EXPECT_EQ(Counted::live.load(), baseline) << "not freed once nobody was pinned";
  }
  EXPECT_EQ(Counted::destroyed_twice.load(), 0);
}

TEST(Epoch, CollectFreesWhenNobodyIsPinned) {
  collect_all();
  const long baseline = Counted::live.load();
  for (int i = 0; i < 10; ++i) retire_one();
  EXPECT_EQ(Counted::live.load(), baseline + 10);  // fewer than the scan interval: still pending
  const std::uint64_t before = domain().epoch();
  collect_all();
  EXPECT_GE(domain().epoch(), before + 2);
  EXPECT_EQ(Counted::live.load(), baseline);
  EXPECT_EQ(Counted::destroyed_twice.load(), 0);
}

TEST(Epoch, RetiringManyObjectsReclaimsWithoutExplicitCollect) {
  collect_all();
  const long baseline = Counted::live.load();
  constexpr unsigned n = 4 * detail::epoch_domain::scan_interval;
  for (unsigned i = 0; i < n; ++i) retire_one();
  EXPECT_LT(Counted::live.load() - baseline, static_cast<long>(n))
      << "periodic scans freed nothing";
  collect_all();
  EXPECT_EQ(Counted::live.load(), baseline);
}

TEST(Epoch, GarbageOfAnExitedThreadIsReclaimedByOthers) {
  collect_all();
  const long baseline = Counted::live.load();
  std::thread([] {
    for (int i = 0; i < 5; ++i) retire_one();
  }).join();
  EXPECT_EQ(Counted::live.load(), baseline + 5);
  collect_all();
  EXPECT_EQ(Counted::live.load(), baseline);
  EXPECT_EQ(Counted::destroyed_twice.load(), 0);
}

TEST(Epoch, ThreadRecordsAreRecycled) {
  // Records are never freed, but a new thread reuses the record of an exited one.
  std::set<const void*> records;
  for (int i = 0; i < 20; ++i) {
    std::thread([&] { records.insert(&detail::this_thread_epoch_record()); }).join();
  }
  EXPECT_LE(records.size(), 2u);
}

// ---- any_value
// --------------------------------------------------------------------------------------

template <std::size_t Bytes>
struct Sized {
  static inline std::atomic<long> live{0};
  std::array<unsigned char, Bytes> payload{};
  explicit Sized(unsigned char fill) {
    payload.fill(fill);
    ++live;
  }
  Sized(const Sized& o) : payload(o.payload) { ++live; }
  Sized(Sized&& o) noexcept : payload(o.payload) { ++live; }
  ~Sized() { --live; }
};
using InlineSized = Sized<16>;
using HeapSized = Sized<100>;
static_assert(detail::any_stores_inline<InlineSized>);
static_assert(!detail::any_stores_inline<HeapSized>);

struct ThrowingMove {  // small, but a throwing move forces heap storage
  int v = 0;
  ThrowingMove() = default;
  ThrowingMove(const ThrowingMove&) = default;
  ThrowingMove(ThrowingMove&&) noexcept(false) {}
};
struct alignas(16) OverAligned {
  int v = 0;
};
static_assert(!detail::any_stores_inline<ThrowingMove>);
static_assert(!detail::any_stores_inline<OverAligned>);
static_assert(detail::any_stores_inline<int>);
static_assert(detail::any_stores_inline<std::array<char, 24>>);
static_assert(!detail::any_stores_inline<std::array<char, 25>>);

template <class S>
void check_any_value_lifetimes(bool expect_inline) {
  const long baseline = S::live.load();
  {
    detail::any_value a(std::in_place_type<S>, static_cast<unsigned char>(7));
    EXPECT_EQ(a.type().stored_inline, expect_inline);
    EXPECT_EQ(a.heap_bytes(), expect_inline ? 0u : sizeof(S));
    EXPECT_TRUE(a.holds<S>());
    EXPECT_FALSE(a.holds<int>());
    EXPECT_EQ(S::live.load(), baseline + 1);

    detail::any_value copy(a);
    EXPECT_EQ(S::live.load(), baseline + 2);
    EXPECT_EQ(copy.get<S>().payload[0], 7);
    EXPECT_NE(&copy.get<S>(), &a.get<S>());  // a deep copy

    const S* before_move = &a.get<S>();
    detail::any_value moved(std::move(a));
    EXPECT_EQ(S::live.load(), baseline + 2);  // the moved-from object is gone or handed over
    EXPECT_EQ(moved.get<S>().payload[0], 7);
    if (!expect_inline) {
      EXPECT_EQ(&moved.get<S>(), before_move);  // heap: pointer stolen
    }
  }
  EXPECT_EQ(S::live.load(), baseline);
}

TEST(AnyValue, InlineCopyMoveDestroy) {
  check_any_value_lifetimes<InlineSized>(true);
}
TEST(AnyValue, HeapCopyMoveDestroy) {
  check_any_value_lifetimes<HeapSized>(false);
}

TEST(AnyValue, ScalarsStringsAndNames) {
  detail::any_value i(std::in_place_type<int>, 5);
  EXPECT_EQ(i.get<int>(), 5);
  EXPECT_EQ(i.type().name, "int");
  EXPECT_EQ(i.type().size, sizeof(int));
  EXPECT_FALSE(i.holds<unsigned>());
  EXPECT_FALSE(i.holds<long>());
  EXPECT_FALSE(i.holds<std::string>());

  detail::any_value s(std::in_place_type<std::string>, 300, 'z');
  EXPECT_EQ(s.get<std::string>(), std::string(300, 'z'));
  EXPECT_EQ(s.type().name, "std::string");
  detail::any_value s2(s);
  EXPECT_EQ(s2.get<std::string>(), std::string(300, 'z'));

  detail::any_value w(std::in_place_type<Widget>, Widget{3});
  EXPECT_EQ(w.get<Widget>(), Widget{3});
  EXPECT_EQ(w.type().name, "internals_test::Widget");
}

TEST(AnyValue, SameTypeIsDescriptorIdentity) {
  EXPECT_TRUE(detail::same_type(&detail::descriptor_of<int>, &detail::descriptor_of<int>));
  EXPECT_FALSE(detail::same_type(&detail::descriptor_of<int>, &detail::descriptor_of<long>));
  EXPECT_FALSE(detail::same_type(&detail::descriptor_of<Widget>, &detail::descriptor_of<int>));
  // A duplicated descriptor (as with a type used across shared libraries built with hidden
  // visibility) fails safe: it is not taken for the original, whatever its name says.
  const detail::type_descriptor copy_of_int = detail::descriptor_of<int>;
  EXPECT_FALSE(detail::same_type(&copy_of_int, &detail::descriptor_of<int>));
}

// Two distinct types whose spelled names are identical: two closures defined in the same
// function (both "...::<lambda()>" to GCC). The layouts are compatible on purpose, so a failure
// shows up as a failed expectation rather than a crash.
TEST(AnyValue, DistinctTypesWithTheSameNameAreNotConfused) {
  const auto first = [v = 1] { return v; };
  const auto second = [v = 2] { return v * 100; };
  using First = std::remove_const_t<decltype(first)>;
  using Second = std::remove_const_t<decltype(second)>;
  static_assert(!std::is_same_v<First, Second>);
  detail::any_value a(std::in_place_type<First>, first);
  EXPECT_TRUE(a.holds<First>());
  EXPECT_FALSE(a.holds<Second>()) << "'" << goldylox::value_type_name<First>::value << "' vs '"
                                  << goldylox::value_type_name<Second>::value << "'";
}

// ---- type names
// -------------------------------------------------------------------------------------

TEST(TypeName, BuiltinsStandardAndUserTypes) {
  EXPECT_EQ(goldylox::value_type_name<int>::value, "int");
  EXPECT_EQ(goldylox::value_type_name<double>::value, "double");
  EXPECT_EQ(goldylox::value_type_name<unsigned long>::value, "long unsigned int");
  EXPECT_EQ(goldylox::value_type_name<std::string>::value, "std::string");
  EXPECT_EQ(goldylox::value_type_name<Widget>::value, "internals_test::Widget");
  const std::string_view vec = goldylox::value_type_name<std::vector<int>>::value;
  EXPECT_NE(vec.find("vector"), std::string_view::npos) << vec;
  EXPECT_NE(vec.find("int"), std::string_view::npos) << vec;
  // Names are compile-time constants.
  static_assert(goldylox::value_type_name<int>::value == "int");
  static_assert(goldylox::value_type_name<std::string>::value == "std::string");
}

// The on-disk type tag is FNV-1a of the name: pinned here against values computed independently
// (Python), so a change to the tag function, which would orphan every stored value, fails.
TEST(TypeName, OnDiskTagsAreStableHashesOfTheName) {
  static_assert(goldylox::value_type_tag<int> == 0x2b9fff192bd4c83eULL);
  static_assert(goldylox::value_type_tag<std::string> == 0x2767bd747119cc57ULL);
  EXPECT_NE(goldylox::value_type_tag<Widget>, goldylox::value_type_tag<int>);
  EXPECT_EQ(goldylox::value_type_tag<Widget>, goldylox::detail::fnv1a_64("internals_test::Widget"));
}

// ---- hashing
// ----------------------------------------------------------------------------------------

TEST(Hash, StringHashIsTransparent) {
  const goldylox::default_hash<std::string> h;
  const std::string s = "transparent";
  EXPECT_EQ(h(s), h(std::string_view(s)));
  EXPECT_EQ(h(s), h(s.c_str()));
  EXPECT_EQ(h(s), h("transparent"));
  EXPECT_NE(h(s), h(std::string_view(s).substr(1)));
}

TEST(Hash, MixerAndFnv) {
  std::set<std::uint64_t> seen;
  for (std::uint64_t i = 0; i < 10000; ++i) seen.insert(detail::mix_hash(i));
  EXPECT_EQ(seen.size(), 10000u);  // no collisions on these distinct inputs
  EXPECT_NE(detail::mix_hash(1) & 0xff, detail::mix_hash(2) & 0xff);
}

// ---- striped counters, group_lock
// ------------------------------------------------------

TEST(StripedCounters, TotalsAreExactForFewThreads) {
  detail::striped_counters counters;
  counters.add(detail::counter::lookups);
  counters.add(detail::counter::lookups, 4);
  counters.add(detail::counter::evictions, 2);
  EXPECT_EQ(counters.total(detail::counter::lookups), 5u);
  EXPECT_EQ(counters.total(detail::counter::evictions), 2u);
  EXPECT_EQ(counters.total(detail::counter::misses), 0u);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) counters.add(detail::counter::misses);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(counters.total(detail::counter::misses), 40000u);
  EXPECT_GT(counters.memory_bytes(), 0u);
}

TEST(GroupLock, MutualExclusion) {
  detail::group_lock lock;
  EXPECT_TRUE(lock.try_lock());
  EXPECT_FALSE(lock.try_lock());
  lock.unlock();
  EXPECT_TRUE(lock.try_lock());
  lock.unlock();

  long counter = 0;  // deliberately not atomic: the lock must protect it
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20000; ++i) {
        std::lock_guard<detail::group_lock> guard(lock);
        ++counter;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(counter, 80000);
}

// ---- concepts
// ---------------------------------------------------------------------------------------

static_assert(goldylox::cache_key<std::string>);
static_assert(goldylox::cache_key<std::uint64_t>);
static_assert(!goldylox::cache_key<const int>);
static_assert(!goldylox::cache_key<int&>);
static_assert(goldylox::cache_value<std::string>);
static_assert(goldylox::cache_value<Widget>);
static_assert(!goldylox::cache_value<const int>);
static_assert(!goldylox::cache_value<int[3]>);
static_assert(!goldylox::cache_value<int&>);
struct MoveOnly {
  MoveOnly() = default;
  MoveOnly(MoveOnly&&) = default;
};
static_assert(!goldylox::cache_value<MoveOnly>);
struct NotHashable {
  friend bool operator==(const NotHashable&, const NotHashable&) = default;
};
static_assert(!goldylox::hasher_for<goldylox::default_hash<std::string>, NotHashable>);
static_assert(
    goldylox::hot_tier<
        detail::hot_table<std::string, int, goldylox::default_hash<std::string>, std::equal_to<>>>);
static_assert(detail::transparent_lookup<std::string_view, std::string,
                                         goldylox::default_hash<std::string>, std::equal_to<>>);
static_assert(!detail::transparent_lookup<int, std::uint64_t, goldylox::default_hash<std::uint64_t>,
                                          std::equal_to<>>);

}  // namespace internals_test
