// single_flight (detail/engine/single_flight.hpp): the first joiner of a key leads, the others
// follow until it lands. Moved from the old tests/unit/internals_test.cpp.
#include "goldylox/detail/engine/single_flight.hpp"

#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>

#include <gtest/gtest.h>

#include "goldylox/detail/common/hash.hpp"

namespace internals_test {

namespace detail = goldylox::detail;

TEST(SingleFlight, FirstJoinerLeadsUntilLanding) {
  using sf =
      detail::single_flight<std::string, int, goldylox::default_hash<std::string>, std::equal_to<>>;
  sf flights;
  auto [f1, lead1] = flights.join("k");
  EXPECT_TRUE(lead1);
  std::shared_ptr<sf::flight> f2;
  bool lead2 = true;
  std::thread([&] { std::tie(f2, lead2) = flights.join("k"); }).join();  // another thread follows
  auto [g1, lead3] = flights.join("other");
  EXPECT_FALSE(lead2);
  EXPECT_TRUE(lead3);
  EXPECT_EQ(f1, f2);
  EXPECT_NE(f1, g1);
  // The leader asking for its own key again would wait for itself: reported instead.
  EXPECT_THROW((void)flights.join("k"), std::logic_error);
  f1->result.emplace(5);
  flights.land("k", *f1, sf::flight::done);
  EXPECT_EQ(sf::wait(*f2), sf::flight::done);
  EXPECT_EQ(*f2->result, 5);
  auto [f3, lead4] = flights.join("k");  // landed flights are forgotten
  EXPECT_TRUE(lead4);
  EXPECT_NE(f3, f1);
  flights.land("k", *f3, sf::flight::failed);
  EXPECT_EQ(sf::wait(*f3), sf::flight::failed);
  flights.land("other", *g1, sf::flight::failed);
}

}  // namespace internals_test
