// Compile-time type names, used in type-mismatch errors and, hashed, as stable on-disk type tags.
//
// The name is parsed out of __PRETTY_FUNCTION__, so it depends only on the type's spelling, not on
// the process or build (unlike typeid or std::type_index). goldylox::value_type_name<T> can be
// specialized to pin a name explicitly, e.g. when a type is renamed but its data must stay
// readable.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "goldylox/version.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

template <class T>
constexpr std::string_view raw_type_name() noexcept {
#if defined(__clang__) || defined(__GNUC__)
  return __PRETTY_FUNCTION__;
#else
  return __FUNCSIG__;
#endif
}

template <class T>
constexpr std::string_view parse_type_name() noexcept {
  const std::string_view full = raw_type_name<T>();
#if defined(__clang__) || defined(__GNUC__)
  // GCC: "... raw_type_name() [with T = NAME; std::string_view = ...]"; clang: "[T = NAME]".
  const std::size_t start = full.find("T = ") + 4;
  std::size_t end = full.find(';', start);
  if (end == std::string_view::npos) end = full.rfind(']');
  return full.substr(start, end - start);
#else
  const std::size_t start = full.find("raw_type_name<") + 14;
  return full.substr(start, full.rfind(">(void)") - start);
#endif
}

}  // namespace detail

template <class T>
struct value_type_name {
  static constexpr std::string_view value = detail::parse_type_name<T>();
};

// The standard library's spelling of std::string differs between implementations
// (std::__cxx11::basic_string<char> in libstdc++); pin it so names agree everywhere.
template <>
struct value_type_name<std::string> {
  static constexpr std::string_view value = "std::string";
};

// The tag the cold tier stores with each value (detail/cold/record.hpp): FNV-1a (64-bit) of
// value_type_name<T>::value. It depends on the name alone, so it is the same in every process,
// build and compiler that spells the name alike, and it is computed at compile time. Renaming a
// type changes its tag; specialize value_type_name to keep the old name and its data readable.
namespace detail {
constexpr std::uint64_t fnv1a_64(std::string_view s) noexcept {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (const char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  return h;
}
}  // namespace detail

template <class T>
inline constexpr std::uint64_t value_type_tag = detail::fnv1a_64(value_type_name<T>::value);

GOLDYLOX_END_NAMESPACE
