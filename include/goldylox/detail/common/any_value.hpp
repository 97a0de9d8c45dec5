// any_value: the type-erased value that cache<K> stores in its tiers.
//
// Layout: a pointer to a per-type descriptor plus 24 bytes of storage. Types up to 24 bytes with
// alignment <= 8 and a non-throwing move live inline (int, double, small structs, std::string on
// libstdc++ is 32 bytes and goes to the heap); larger ones are heap-allocated. Reading a value back
// as V costs one descriptor compare and, inline, no extra indirection.
//
// Type identity: descriptors are inline variables, so within one program each type has one
// descriptor and a pointer compare decides (see same_type).
//
// On disk (the cold tier) a value is its type tag (value_type_tag<V>, a hash of the type's name,
// stable across processes) and its cereal bytes. Reading one back needs the descriptor for a tag:
// every type a program stores in or reads from a cache<K> registers its descriptor in
// type_registry (during static initialisation, from the templates that name the type), so after
// a restart get<User> finds User's bytes and get<int> on them still reports the type mismatch.
// A tag two distinct types share (same name: lambdas, anonymous namespaces) is ambiguous and
// such values never go to disk; a tag no type of this program registered reads back as an
// unknown_cold_type, which only ever reports a mismatch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <new>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "goldylox/detail/common/hash.hpp"
#include "goldylox/detail/common/serialization.hpp"
#include "goldylox/detail/common/type_name.hpp"
#include "goldylox/detail/common/weight.hpp"

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
  std::uint64_t tag;  // value_type_tag<V>
  // Both null unless V is cold_serializable. deserialize constructs into empty storage.
  void (*serialize)(const void* storage, std::string& out);
  absl::Status (*deserialize)(std::span<const std::byte> in, void* storage);
  // goldylox::weight_of<V> of the stored value (weight.hpp).
  std::size_t (*weight)(const void* storage);
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
  static std::size_t weight(const void* storage) {
    return weight_of<V>{}(*object(const_cast<void*>(storage)));
  }
  static void serialize(const void* storage, std::string& out) {
    serialize_to(*object(const_cast<void*>(storage)), out);
  }
  static absl::Status deserialize(std::span<const std::byte> in, void* storage) {
    V v;
    if (absl::Status st = deserialize_from(in, v); !st.ok()) return st;
    if constexpr (any_stores_inline<V>) {
      ::new (storage) V(std::move(v));
    } else {
      *static_cast<V**>(storage) = new V(std::move(v));
    }
    return absl::OkStatus();
  }
};

// The on-disk hooks, instantiated only for types that can go to disk.
template <class V>
constexpr auto serialize_hook() noexcept {
  using fn = void (*)(const void*, std::string&);
  if constexpr (cold_serializable<V>) {
    return static_cast<fn>(&descriptor_ops<V>::serialize);
  } else {
    return static_cast<fn>(nullptr);
  }
}
template <class V>
constexpr auto deserialize_hook() noexcept {
  using fn = absl::Status (*)(std::span<const std::byte>, void*);
  if constexpr (cold_serializable<V>) {
    return static_cast<fn>(&descriptor_ops<V>::deserialize);
  } else {
    return static_cast<fn>(nullptr);
  }
}

template <class V>
inline constexpr type_descriptor descriptor_of{
    value_type_name<V>::value, sizeof(V),
    any_stores_inline<V>,      &descriptor_ops<V>::copy,
    &descriptor_ops<V>::move,  &descriptor_ops<V>::destroy,
    value_type_tag<V>,         serialize_hook<V>(),
    deserialize_hook<V>(),     &descriptor_ops<V>::weight};

// Tag -> descriptor for the types this program stores in or reads from a cache<K>.
class type_registry {
 public:
  static type_registry& instance() {
    static type_registry* r = new type_registry;  // leaked: used from static destructors
    return *r;
  }
  void add(const type_descriptor* d) {
    std::unique_lock lock(mu_);
    auto [it, fresh] = by_tag_.try_emplace(d->tag, d);
    if (!fresh && it->second != d) it->second = nullptr;  // two types, one name: ambiguous
  }
  // The descriptor registered for `tag`; nullptr if none or ambiguous.
  const type_descriptor* find(std::uint64_t tag) const {
    std::shared_lock lock(mu_);
    auto it = by_tag_.find(tag);
    return it == by_tag_.end() ? nullptr : it->second;
  }

 private:
  type_registry() = default;
  mutable std::shared_mutex mu_;
  absl::flat_hash_map<std::uint64_t, const type_descriptor*> by_tag_;
};

// Naming registered_type<V> in a function that handles V registers V before main runs.
template <class V>
inline const bool registered_type = (type_registry::instance().add(&descriptor_of<V>), true);

// What a cold-tier value whose tag no type of this program registered reads back as.
struct unknown_cold_type {};
template <>
inline constexpr type_descriptor descriptor_of<unknown_cold_type>{
    "a type this program does not use (a cold-tier value written by another program)",
    sizeof(unknown_cold_type),
    true,
    &descriptor_ops<unknown_cold_type>::copy,
    &descriptor_ops<unknown_cold_type>::move,
    &descriptor_ops<unknown_cold_type>::destroy,
    0,
    nullptr,
    nullptr,
    &descriptor_ops<unknown_cold_type>::weight};

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
    (void)registered_type<V>;
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

  // The value's cereal bytes, appended to `out`; false (nothing appended) if its type cannot go
  // to disk: not serializable, or sharing its name with another type.
  bool serialize(std::string& out) const {
    if (type_->serialize == nullptr || type_registry::instance().find(type_->tag) != type_) {
      return false;
    }
    type_->serialize(storage_, out);
    return true;
  }

  // The value of type `tag` serialized in `in`: kDataLoss if the bytes do not decode; an
  // unknown_cold_type if no type of this program has that tag.
  static absl::StatusOr<any_value> deserialize(std::uint64_t tag, std::span<const std::byte> in) {
    const type_descriptor* d = type_registry::instance().find(tag);
    if (d == nullptr || d->deserialize == nullptr) {
      return any_value(std::in_place_type<unknown_cold_type>);
    }
    any_value v(d);
    if (absl::Status st = d->deserialize(in, v.storage_); !st.ok()) {
      v.type_ = nullptr;  // nothing was constructed
      return st;
    }
    return v;
  }

  // Bytes this value occupies outside the node that holds it.
  std::size_t heap_bytes() const noexcept { return type_->stored_inline ? 0 : type_->size; }

  // The default weight of this any_value (weight.hpp): its own size, plus its value's weight
  // (weight_of<V>) when the value lives on the heap, or what the value owns beyond its own size
  // when it lives inline.
  std::size_t weight() const {
    const std::size_t w = type_->weight(storage_);
    if (!type_->stored_inline) return sizeof(any_value) + w;
    return sizeof(any_value) + (w > type_->size ? w - type_->size : 0);
  }

 private:
  explicit any_value(const type_descriptor* d) noexcept : type_(d) {}

  const type_descriptor* type_;
  alignas(8) unsigned char storage_[any_inline_size];
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
