// Calls into both translation units of the ODR check and crosses caches between them.
#include <cstdio>

#include "odr.hpp"

int main() {
  using namespace goldylox_odr;

  const layout a = layout_a();
  const layout b = layout_b();
  if (a.typed_cache_size != b.typed_cache_size || a.typed_cache_align != b.typed_cache_align ||
      a.cache_size != b.cache_size || a.cache_align != b.cache_align) {
    std::fprintf(stderr,
                 "layout differs between translation units: typed_cache %zu/%zu vs %zu/%zu, "
                 "cache %zu/%zu vs %zu/%zu\n",
                 a.typed_cache_size, a.typed_cache_align, b.typed_cache_size, b.typed_cache_align,
                 a.cache_size, a.cache_align, b.cache_size, b.cache_align);
    return 1;
  }

  struct step {
    const char* name;
    int rc;
  };
  const step steps[] = {
      {"exercise_a", exercise_a()},
      {"exercise_b", exercise_b()},
      {"built in a, used in b", hand_over_from_a(&use_in_b)},
      {"built in b, used in a", hand_over_from_b(&use_in_a)},
  };
  int failures = 0;
  for (const step& s : steps) {
    if (s.rc != 0) {
      std::fprintf(stderr, "%s failed with code %d\n", s.name, s.rc);
      ++failures;
    }
  }
  if (failures == 0) std::puts("goldylox ODR check passed");
  return failures == 0 ? 0 : 1;
}
