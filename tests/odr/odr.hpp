// Shared declarations for the ODR check: odr_a.cpp and odr_b.cpp both include the whole library
// and instantiate the same cache types; when the build machine runs AVX2, odr_b.cpp is compiled
// with -mavx2 and odr_a.cpp is not (see tests/CMakeLists.txt). Each translation unit reports the
// sizes it sees and uses caches built by the other one, so a layout that depends on per-TU
// compiler flags fails here instead of corrupting memory in a user's program.
#pragma once

#include <cstddef>
#include <string>

#include <goldylox/goldylox.hpp>

namespace goldylox_odr {

using int_cache = goldylox::typed_cache<int, int>;
using any_cache = goldylox::cache<std::string>;

struct layout {
  std::size_t typed_cache_size;
  std::size_t typed_cache_align;
  std::size_t cache_size;
  std::size_t cache_align;
};

// Builds both caches, round-trips a value through each; returns 0 or a distinct failure code.
int exercise_a();
int exercise_b();

// sizeof/alignof as seen by each translation unit.
layout layout_a();
layout layout_b();

// The caches built in one translation unit are read and written by the other one.
int use_in_a(int_cache& typed, any_cache& any);
int use_in_b(int_cache& typed, any_cache& any);
int hand_over_from_a(int (*use)(int_cache&, any_cache&));
int hand_over_from_b(int (*use)(int_cache&, any_cache&));

}  // namespace goldylox_odr
