// JSON-like values for the cold-tier benchmarks (goldylox_bench_codecs, goldylox_bench_cold):
// each value is a few records of one synthetic user table, so values resemble each other in
// shape (as the rows of one table do) but never repeat.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace goldylox_bench {

inline constexpr std::size_t json_value_size = 1024;

// A value of exactly `size` bytes: a JSON array of user objects with varying ids, names, numbers
// and flags, cut at `size`. `draw()` returns uniformly random 64-bit numbers; the value depends
// only on the numbers it returns, one per object.
template <class Draw>
std::string json_value(Draw&& draw, std::size_t size = json_value_size) {
  static const char* const cities[] = {"Lisbon", "Osaka", "Quito", "Tromso", "Accra", "Perth"};
  std::string s = "[";
  while (s.size() < size) {
    const std::uint64_t r = draw();
    s += R"({"id":)" + std::to_string(r % 10'000'000) + R"(,"name":"user_)" +
         std::to_string(r % 5003) + R"(","email":"user_)" + std::to_string(r % 5003) +
         R"(@example.org","city":")" + cities[r % 6] + R"(","age":)" + std::to_string(18 + r % 70) +
         R"(,"active":)" + ((r >> 20) % 2 ? "true" : "false") + R"(,"balance":)" +
         std::to_string((r >> 8) % 100000) + "." + std::to_string((r >> 40) % 100) + "},";
  }
  s.resize(size);
  return s;
}

}  // namespace goldylox_bench
