// Component common/: the default weight of keys and values (goldylox::weight_of), what a cache
// with a byte budget (max_weight) counts when no weigher is given.
//
// The estimate is the bytes a value occupies: sizeof(T), plus what it owns on the heap:
//  * a contiguous container (data(), capacity(), value_type: std::string, std::vector, ...) owns
//    capacity() elements, unless its data sits inside the object itself (a short string in its
//    small-string buffer owns nothing more), plus what its elements own in turn;
//  * any other type cereal can serialize counts its serialized size: what it holds, written out,
//    which follows its contents (a map of strings grows with its strings) though not its node
//    layout. Measured by writing into a counting buffer: one pass over the value, no allocation;
//  * anything else counts sizeof(T) alone.
// Why bytes rather than 1 per entry: a byte budget is what a service sizes a cache by, and the
// entries of one cache can differ in size by orders of magnitude (Caffeine's weigher, CacheLib's
// slab sizes). Specialising goldylox::weight_of<T> replaces the estimate for a type; the nested
// elements of containers use the estimate, not specialisations.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <ostream>
#include <streambuf>
#include <string>
#include <type_traits>

#include "goldylox/detail/common/serialization.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

// A streambuf that only counts what is written to it.
class counting_sink : public std::streambuf {
 public:
  std::size_t count() const noexcept { return count_; }

 protected:
  std::streamsize xsputn(const char*, std::streamsize n) override {
    count_ += static_cast<std::size_t>(n);
    return n;
  }
  int_type overflow(int_type c) override {
    if (!traits_type::eq_int_type(c, traits_type::eof())) ++count_;
    return traits_type::not_eof(c);
  }

 private:
  std::size_t count_ = 0;
};

template <class T>
concept contiguous_owner = requires(const T& v) {
  typename T::value_type;
  { std::to_address(v.data()) } -> std::convertible_to<const void*>;
  { v.capacity() } -> std::convertible_to<std::size_t>;
  v.begin();
  v.end();
};

template <class T>
std::size_t heap_bytes(const T& v);

template <class T>
inline constexpr bool is_basic_string = false;
template <class C, class Traits, class Alloc>
inline constexpr bool is_basic_string<std::basic_string<C, Traits, Alloc>> = true;

template <class T>
std::size_t contiguous_heap_bytes(const T& v) {
  using E = typename T::value_type;
  std::size_t bytes = 0;
  const auto data = reinterpret_cast<std::uintptr_t>(std::to_address(v.data()));
  const auto self = reinterpret_cast<std::uintptr_t>(&v);
  if (data != 0 && (data < self || data >= self + sizeof(T))) {  // not a small-object buffer
    bytes = v.capacity() * sizeof(E);
    if constexpr (is_basic_string<T>) bytes += sizeof(E);  // the terminator, past capacity()
  }
  if constexpr (!std::is_trivially_copyable_v<E>) {
    for (const E& e : v) bytes += heap_bytes(e);
  }
  return bytes;
}

// The bytes v owns beyond sizeof(T) (an estimate; see the header comment).
template <class T>
std::size_t heap_bytes(const T& v) {
  if constexpr (std::is_trivially_copyable_v<T>) {
    return 0;
  } else if constexpr (contiguous_owner<T>) {
    return contiguous_heap_bytes(v);
  } else if constexpr (cold_serializable<T>) {
    counting_sink sink;
    std::ostream os(&sink);
    {
      cereal::BinaryOutputArchive archive(os);
      archive(v);
    }
    return sink.count();
  } else {
    return 0;
  }
}

}  // namespace detail

// The weight a cache with max_weight gives a key or value of type T when no weigher is set: an
// estimate of the bytes it occupies (detail/common/weight.hpp). Specialise it for a type of
// your own to count it differently; it must return the same weight for equal values.
template <class T>
struct weight_of {
  std::size_t operator()(const T& value) const { return sizeof(T) + detail::heap_bytes(value); }
};

GOLDYLOX_END_NAMESPACE
