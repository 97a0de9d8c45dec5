// slot_index, the policies' key -> slot index: it must answer exactly as the
// absl::flat_hash_map<uint64_t, uint32_t> it replaced, or the policies' decisions would change.
#include "goldylox/detail/warm/policy/slot_index.hpp"

#include <cstdint>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "absl/container/flat_hash_map.h"

namespace {

namespace gd = goldylox::detail;

// An owner as the policies are: each slot holds its key, slots come from a free list, and a
// key is erased before its slot is reused. The reference map gets the same operations.
struct owner {
  explicit owner(std::size_t slots, std::size_t expected) : index(expected), keys(slots, 0) {
    for (std::size_t s = slots; s-- > 0;) free.push_back(static_cast<std::uint32_t>(s));
  }
  gd::keys_by_slot key_of() const { return {keys.data()}; }

  gd::slot_index index;
  std::vector<std::uint64_t> keys;
  std::vector<std::uint32_t> free;
  absl::flat_hash_map<std::uint64_t, std::uint32_t> reference;
};

// Random inserts, overwrites and erases over a key space about twice the slot count, from
// tables that start too small, so runs wrap around the table's end, erases shift runs back,
// and the table grows. Every answer is compared with the reference map's.
TEST(SlotIndex, AnswersAsAHashMapUnderChurn) {
  for (const std::size_t slots : {1u, 3u, 8u, 50u, 700u}) {
    for (const std::size_t expected : {std::size_t{0}, slots}) {
      owner o(slots, expected);
      std::mt19937_64 rng(slots * 31 + expected);
      const std::uint64_t key_space = 2 * slots + 2;
      for (int step = 0; step < 40000; ++step) {
        // Keys spread over the whole 64-bit range, and small consecutive ones (trace ids).
        const std::uint64_t k =
            (rng() % 2 == 0) ? rng() % key_space : (rng() % key_space) * 0x9e3779b97f4a7c15ULL;
        const auto it = o.reference.find(k);
        const std::uint32_t found = o.index.find(k, o.key_of());
        ASSERT_EQ(found, it == o.reference.end() ? gd::slot_index::none : it->second)
            << "slots " << slots << " step " << step;
        ASSERT_EQ(o.index.contains(k, o.key_of()), it != o.reference.end());
        if (it != o.reference.end()) {
          if (rng() % 3 == 0) {  // the owner moves the key to another slot (map[k] = s2)
            if (o.free.empty()) continue;
            const std::uint32_t s2 = o.free.back();
            o.free.pop_back();
            o.keys[s2] = k;
            o.index.assign(k, s2, o.key_of());
            ASSERT_TRUE(o.index.erase(k, o.key_of()) && !o.index.contains(k, o.key_of()));
            o.index.assign(k, s2, o.key_of());
            o.free.push_back(it->second);
            it->second = s2;
          } else {
            ASSERT_TRUE(o.index.erase(k, o.key_of()));
            o.free.push_back(it->second);
            o.reference.erase(it);
          }
        } else if (!o.free.empty()) {
          const std::uint32_t s = o.free.back();
          o.free.pop_back();
          o.keys[s] = k;
          o.index.assign(k, s, o.key_of());
          o.reference.emplace(k, s);
        } else {
          ASSERT_FALSE(o.index.erase(k, o.key_of()));
        }
        ASSERT_EQ(o.index.size(), o.reference.size());
      }
      // Everything still there is found, and nothing else.
      for (const auto& [k, s] : o.reference) ASSERT_EQ(o.index.find(k, o.key_of()), s);
      for (std::uint64_t k = 0; k < 4 * key_space; ++k) {
        ASSERT_EQ(o.index.contains(k, o.key_of()), o.reference.contains(k));
      }
    }
  }
}

// Two keys whose 32-bit tags are equal (found by a birthday search over the index's own mix):
// the owner's keys tell them apart, whichever is inserted, erased or looked up first.
TEST(SlotIndex, KeysWithTheSameTagStayDistinct) {
  const auto tag = [](std::uint64_t k) {
    return static_cast<std::uint32_t>(gd::slot_index::mix(k));
  };
  absl::flat_hash_map<std::uint32_t, std::uint64_t> seen;
  std::uint64_t a = 0, b = 0;
  for (std::uint64_t k = 1; b == 0; ++k) {
    const auto [it, added] = seen.emplace(tag(k), k);
    if (!added) {
      a = it->second;
      b = k;
    }
  }
  ASSERT_NE(a, b);
  ASSERT_EQ(tag(a), tag(b));

  owner o(4, 0);
  o.keys[0] = a;
  o.keys[1] = b;
  o.index.assign(a, 0, o.key_of());
  EXPECT_EQ(o.index.find(b, o.key_of()), gd::slot_index::none);
  EXPECT_FALSE(o.index.erase(b, o.key_of()));
  o.index.assign(b, 1, o.key_of());
  EXPECT_EQ(o.index.size(), 2u);
  EXPECT_EQ(o.index.find(a, o.key_of()), 0u);
  EXPECT_EQ(o.index.find(b, o.key_of()), 1u);
  EXPECT_TRUE(o.index.erase(a, o.key_of()));
  EXPECT_EQ(o.index.find(a, o.key_of()), gd::slot_index::none);
  EXPECT_EQ(o.index.find(b, o.key_of()), 1u);
  o.index.assign(a, 0, o.key_of());
  EXPECT_TRUE(o.index.erase(b, o.key_of()));
  EXPECT_EQ(o.index.find(a, o.key_of()), 0u);
  EXPECT_EQ(o.index.find(b, o.key_of()), gd::slot_index::none);
  EXPECT_EQ(o.index.size(), 1u);
}

}  // namespace
