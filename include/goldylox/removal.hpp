// goldylox::removal_cause and goldylox::value_view — what a removal listener receives (builder
// removal_listener; docs/api.md, "Removal listener").
//
// A listener hears of every entry that leaves the cache, with its key, its value and why:
//
//   auto made = goldylox::typed_cache<std::string, Session>::builder()
//                   .max_entries(100'000)
//                   .expire_after_access(std::chrono::minutes(30))
//                   .removal_listener([](const std::string& id, const Session& s,
//                                        goldylox::removal_cause why) {
//                     if (goldylox::was_evicted(why)) audit.log_out(id, s);
//                   })
//                   .build();
//
// Moves between the cache's tiers are not removals. A cache<K>'s listener receives the value as
// a value_view, which names its type and gives it out as the type it holds.
#pragma once

#include <cstdint>
#include <string_view>

#include "goldylox/detail/common/any_value.hpp"
#include "goldylox/version.hpp"

GOLDYLOX_BEGIN_NAMESPACE

enum class removal_cause : std::uint8_t {
  erased,    // remove(), erase_all(), clear(), or a compute that removed it
  replaced,  // a put (or a compute, a replace, a CAS) wrote another value over it
  expired,   // its deadline passed (expire_after_write, expire_after_access, a put's ttl)
  evicted,   // it made room: the entry or weight bound (or a move into a lower tier failed)
};

// Whether the cache removed the entry itself (expired or evicted) rather than a write asking
// for it, as Caffeine's RemovalCause.wasEvicted.
constexpr bool was_evicted(removal_cause cause) noexcept {
  return cause == removal_cause::expired || cause == removal_cause::evicted;
}

// The cause's name, for logs and metrics labels.
constexpr std::string_view to_string(removal_cause cause) noexcept {
  switch (cause) {
    case removal_cause::erased:
      return "erased";
    case removal_cause::replaced:
      return "replaced";
    case removal_cause::expired:
      return "expired";
    case removal_cause::evicted:
      return "evicted";
  }
  return "unknown";
}

// A removed value of a cache<K>, valid during the listener's call: the object itself, not a
// copy, so keep what you need of it rather than the view.
class value_view {
 public:
  explicit value_view(const detail::any_value& value) noexcept : value_(&value) {}

  // Whether the value is a V.
  template <class V>
  bool holds() const noexcept {
    return value_->holds<V>();
  }
  // The value as a V, or nullptr if it holds another type.
  template <class V>
  const V* get_if() const noexcept {
    return holds<V>() ? &value_->get<V>() : nullptr;
  }
  // The name of the value's type, as a type mismatch error gives it.
  std::string_view type_name() const noexcept { return value_->type().name; }

 private:
  const detail::any_value* value_;
};

GOLDYLOX_END_NAMESPACE
