// One of two translation units that instantiate the same goldylox types; see odr.hpp.
#include <optional>
#include <string>

#include <goldylox/goldylox.hpp>

#include "odr.hpp"

namespace goldylox_odr {

int exercise_b() {
  auto typed = int_cache::builder().hot_tier_max_entries(128).build();
  if (!typed.ok()) return 20 + 1;
  if (!typed->put(1, 42).ok()) return 20 + 2;
  auto typed_value = typed->get(1);
  if (!typed_value || *typed_value != 42) return 20 + 3;

  auto any = any_cache::builder().hot_tier_max_entries(64).build();
  if (!any.ok()) return 20 + 4;
  if (!any->put("k", 7).ok()) return 20 + 5;
  auto any_value = any->get<int>("k");
  if (!any_value.ok() || !any_value->has_value() || **any_value != 7) return 20 + 6;
  return 0;
}

layout layout_b() {
  return layout{sizeof(int_cache), alignof(int_cache), sizeof(any_cache), alignof(any_cache)};
}

int use_in_b(int_cache& typed, any_cache& any) {
  // Values written by the other translation unit must be readable here, and vice versa.
  auto typed_value = typed.get(1);
  if (!typed_value || *typed_value != 42) return 20 + 7;
  auto any_value = any.get<int>("k");
  if (!any_value.ok() || !any_value->has_value() || **any_value != 7) return 20 + 8;
  if (!typed.put(2, 84).ok()) return 20 + 9;
  if (!any.put("j", 14).ok()) return 20 + 9;
  return 0;
}

int hand_over_from_b(int (*use)(int_cache&, any_cache&)) {
  auto typed = int_cache::builder().hot_tier_max_entries(128).build();
  auto any = any_cache::builder().hot_tier_max_entries(64).build();
  if (!typed.ok() || !any.ok()) return 20 + 1;
  if (!typed->put(1, 42).ok() || !any->put("k", 7).ok()) return 20 + 2;
  if (int rc = use(*typed, *any); rc != 0) return rc;
  auto typed_value = typed->get(2);
  if (!typed_value || *typed_value != 84) return 20 + 3;
  auto any_value = any->get<int>("j");
  if (!any_value.ok() || !any_value->has_value() || **any_value != 14) return 20 + 6;
  return 0;
}

}  // namespace goldylox_odr
