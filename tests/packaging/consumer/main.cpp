#include <goldylox/goldylox.hpp>

int main() {
  auto made = goldylox::typed_cache<int, int>::builder().hot_tier_max_entries(128).build();
  if (!made.ok()) return 1;
  if (!made->put(1, 42).ok()) return 2;
  auto v = made->get(1);
  return (v && *v == 42) ? 0 : 3;
}
