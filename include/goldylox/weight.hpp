// goldylox::weight_of — the default weight of keys and values in a cache with a byte budget
// (builder max_weight; docs/api.md, "Weights").
//
// Without a weigher, an entry weighs weight_of<K>{}(key) + weight_of<V>{}(value): sizeof plus
// what the object owns on the heap (a string's or vector's buffer, a serializable type's
// serialized size). Specialise goldylox::weight_of<T> for a type of your own:
//
//   template <>
//   struct goldylox::weight_of<Image> {
//     std::size_t operator()(const Image& i) const { return sizeof(Image) + i.pixels.size(); }
//   };
//
// A weight must not change while the value is in the cache (the cache weighs each value when
// it is written).
#pragma once

#include "goldylox/detail/common/weight.hpp"
