// The other translation unit of CacheTest.AnonymousNamespaceTypesFromTwoFilesAreDistinct
// (cache_test.cpp): a type spelled like cache_test.cpp's {anonymous}::Twin but distinct from it.
// It keeps the name of the file it came from (the old tests/unit/internals_test.cpp), which the
// test's failure message names; the rest of that file moved to common/, hot/ and engine/.
#include <string>

#include <gtest/gtest.h>

#include <goldylox/goldylox.hpp>

// Stores this file's {anonymous}::Twin under `key`; cache_test.cpp has its own, unrelated Twin.
namespace {
struct Twin {
  int v = 0;
};
}  // namespace
namespace internals_test {
void put_internals_twin(goldylox::cache<std::string>& cache, const std::string& key, int v) {
  ASSERT_TRUE(cache.put(key, Twin{v}).ok());
}

}  // namespace internals_test
