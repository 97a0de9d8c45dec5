// any_value: the type-erased value that cache<K> stores in its tiers.
//
// Layout: a pointer to a per-type descriptor plus 24 bytes of storage. Types up to 24 bytes with
// alignment <= 8 and a non-throwing move live inline (int, double, small structs, std::string on
// libstdc++ is 32 bytes and goes to the heap); larger ones are heap-allocated. Reading a value back
// as V costs one descriptor compare and, inline, no extra indirection.
//
// Type identity: descriptors are inline variables, so within one program each type has one
// descriptor and a pointer compare decides (see same_type).
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <string_view>
#include <type_traits>
#include <utility>

#include "goldylox/detail/hash.hpp"
#include "goldylox/detail/type_name.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

inline constexpr std::size_t any_inline_size = 24;

template <class V>
inline constexpr bool any_stores_inline =
    sizeof(V) <= any_inline_size && alignof(V) <= alignof(std::max_align_t) && alignof(V) <= 8 &&
    std::is_nothrow_move_constructible_v<V>;

struct type_descriptor {
  std::string_view name;
  std::size_t size;
  bool stored_inline;
  void (*copy)(const void* src, void* dst_storage);  // constructs into storage (heap if needed)
  void (*move)(void* src, void* dst_storage) noexcept;
  void (*destroy)(void* storage) noexcept;
};

template <class V>
struct descriptor_ops {
  static V* object(void* storage) noexcept {
    if constexpr (any_stores_inline<V>) {
      return std::launder(reinterpret_cast<V*>(storage));
    } else {
      return *static_cast<V**>(storage);
    }
  }
  static void copy(const void* src, void* dst) {
    const V& from = *object(const_cast<void*>(src));
    if constexpr (any_stores_inline<V>) {
      ::new (dst) V(from);
    } else {
      *static_cast<V**>(dst) = new V(from);
    }
  }
  static void move(void* src, void* dst) noexcept {
    if constexpr (any_stores_inline<V>) {
      ::new (dst) V(std::move(*object(src)));
      object(src)->~V();
    } else {
      *static_cast<V**>(dst) = *static_cast<V**>(src);
      *static_cast<V**>(src) = nullptr;
    }
  }
  static void destroy(void* storage) noexcept {
    if constexpr (any_stores_inline<V>) {
      object(storage)->~V();
    } else {
      delete *static_cast<V**>(storage);
    }
  }
};

template <class V>
inline constexpr type_descriptor descriptor_of{
    value_type_name<V>::value, sizeof(V),
    any_stores_inline<V>,      &descriptor_ops<V>::copy,
    &descriptor_ops<V>::move,  &descriptor_ops<V>::destroy};

// Identity is the descriptor's address. Names are not enough: distinct types can share a
// spelling (two lambdas in one scope, anonymous-namespace types of two files). Where a descriptor
// is duplicated (a type used across shared libraries built with hidden visibility), the compare
// fails safe: the reader gets kFailedPrecondition, never a misinterpreted object.
inline bool same_type(const type_descriptor* a, const type_descriptor* b) noexcept {
  return a == b;
}

class any_value {
 public:
  template <class V, class... Args>
  explicit any_value(std::in_place_type_t<V>, Args&&... args) : type_(&descriptor_of<V>) {
    if constexpr (any_stores_inline<V>) {
      ::new (static_cast<void*>(storage_)) V(std::forward<Args>(args)...);
    } else {
      *reinterpret_cast<V**>(storage_) = new V(std::forward<Args>(args)...);
    }
  }

  any_value(const any_value& other) : type_(other.type_) { type_->copy(other.storage_, storage_); }
  any_value(any_value&& other) noexcept : type_(other.type_) {
    type_->move(other.storage_, storage_);
    other.type_ = nullptr;
  }
  any_value& operator=(const any_value&) = delete;
  any_value& operator=(any_value&&) = delete;
  ~any_value() {
    if (type_ != nullptr) type_->destroy(storage_);
  }

  template <class V>
  bool holds() const noexcept {
    return same_type(type_, &descriptor_of<V>);
  }

  // Precondition: holds<V>().
  template <class V>
  const V& get() const noexcept {
    return *descriptor_ops<V>::object(const_cast<unsigned char*>(storage_));
  }

  const type_descriptor& type() const noexcept { return *type_; }

  // Bytes this value occupies outside the node that holds it.
  std::size_t heap_bytes() const noexcept { return type_->stored_inline ? 0 : type_->size; }

 private:
  const type_descriptor* type_;
  alignas(8) unsigned char storage_[any_inline_size];
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
