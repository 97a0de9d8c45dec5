// index_lists and keyed_index_lists, the policies' intrusive lists: random list operations
// against a std::list model, and a keyed entry's key kept through every move.
#include "goldylox/detail/warm/policy/index_lists.hpp"

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <list>
#include <random>
#include <type_traits>
#include <vector>

#include <gtest/gtest.h>

namespace {

namespace gd = goldylox::detail;

template <class Lists>
void check_against_model(std::uint64_t seed) {
  constexpr std::size_t entries = 40;
  constexpr unsigned lists = 3;
  Lists l(entries, lists);
  std::vector<std::list<std::uint32_t>> model(lists);  // front = most recent
  std::vector<int> on(entries, -1);                    // the list each entry is on
  std::vector<std::uint64_t> keys(entries, 0);
  std::mt19937_64 rng(seed);
  const auto find = [&](std::uint32_t i) {
    auto& m = model[static_cast<std::size_t>(on[i])];
    return std::find(m.begin(), m.end(), i);
  };
  for (int step = 0; step < 20000; ++step) {
    const auto i = static_cast<std::uint32_t>(rng() % entries);
    const auto to = static_cast<unsigned>(rng() % lists);
    if constexpr (std::is_same_v<Lists, gd::keyed_index_lists>) {
      if (rng() % 4 == 0) {
        keys[i] = rng();
        l.set_key(i, keys[i]);
      }
    }
    if (on[i] < 0) {
      switch (rng() % 3) {
        case 0:
          l.push_front(to, i);
          model[to].push_front(i);
          break;
        case 1:
          l.push_back(to, i);
          model[to].push_back(i);
          break;
        default:
          if (model[to].empty()) {
            l.push_front(to, i);
            model[to].push_front(i);
          } else {  // right behind a random entry of the list
            auto at = model[to].begin();
            std::advance(at, static_cast<long>(rng() % model[to].size()));
            l.insert_behind(to, *at, i);
            model[to].insert(std::next(at), i);
          }
      }
      on[i] = static_cast<int>(to);
    } else if (rng() % 2 == 0) {
      l.move_to_front(static_cast<unsigned>(on[i]), to, i);
      model[static_cast<std::size_t>(on[i])].erase(find(i));
      model[to].push_front(i);
      on[i] = static_cast<int>(to);
    } else if (rng() % 2 == 0) {
      l.unlink(static_cast<unsigned>(on[i]), i);
      model[static_cast<std::size_t>(on[i])].erase(find(i));
      on[i] = -1;
    } else {
      const auto from = static_cast<unsigned>(on[i]);
      const std::uint32_t popped = rng() % 2 == 0 ? l.pop_back(from) : l.pop_front(from);
      const bool back = popped == model[from].back();
      ASSERT_TRUE(back || popped == model[from].front()) << "step " << step;
      if (back) {
        model[from].pop_back();
      } else {
        model[from].pop_front();
      }
      on[popped] = -1;
    }
    for (unsigned k = 0; k < lists; ++k) {
      ASSERT_EQ(l.size(k), model[k].size());
      ASSERT_EQ(l.empty(k), model[k].empty());
      ASSERT_EQ(l.front(k), model[k].empty() ? Lists::none : model[k].front());
      ASSERT_EQ(l.back(k), model[k].empty() ? Lists::none : model[k].back());
    }
    if (step % 97 == 0) {  // walk every list front to back
      for (unsigned k = 0; k < lists; ++k) {
        std::vector<std::uint32_t> walked;
        for (auto e = l.front(k); e != Lists::none; e = l.next_older(e)) walked.push_back(e);
        ASSERT_EQ(walked, std::vector<std::uint32_t>(model[k].begin(), model[k].end()));
      }
    }
    if constexpr (std::is_same_v<Lists, gd::keyed_index_lists>) {
      const auto reader = l.keys();
      for (std::uint32_t e = 0; e < entries; ++e) {
        ASSERT_EQ(l.key(e), keys[e]) << "entry " << e << " step " << step;
        ASSERT_EQ(reader(e), keys[e]);
      }
    }
  }
}

TEST(IndexLists, MatchesAListModel) {
  for (std::uint64_t seed = 1; seed <= 3; ++seed) check_against_model<gd::index_lists>(seed);
}

// The keys stay with their entries whatever the lists do (a move must not reset them).
TEST(IndexLists, KeyedListsKeepEachEntrysKey) {
  for (std::uint64_t seed = 1; seed <= 3; ++seed) check_against_model<gd::keyed_index_lists>(seed);
  EXPECT_EQ(gd::index_lists::bytes_per_entry(), 8u);
  EXPECT_EQ(gd::keyed_index_lists::bytes_per_entry(), 16u);
}

}  // namespace
