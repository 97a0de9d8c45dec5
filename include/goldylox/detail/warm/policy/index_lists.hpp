// Intrusive doubly-linked lists over dense entry indices, the building block of the eviction
// policies.
//
// Layout: one array of {prev, next} links for `entries` indices followed by one sentinel per list,
// so every list is circular through its own sentinel and no operation branches on an empty list.
// An entry is on at most one list at a time. Front is the most recent end (the head), back the
// oldest (the tail); the policies evict from the back. Indices are 32-bit: a policy instance
// (one warm-tier shard, or one simulated cache) never holds more than 2^32 - lists entries, and
// the links cost 8 bytes per entry instead of 16 for pointers.
//
// keyed_index_lists: the same lists with a 64-bit key (the entry's hash) stored beside each
// entry's links, 16 bytes per entry. Policies that read an entry's hash whenever they move or
// evict it (W-TinyLFU's sketch on every hit, the ghost-keeping policies on every eviction) then
// touch one cache line where a separate hash array cost a second one, for the same memory.
//
// The list operations are always inlined: each is a few loads and stores, and the callers that
// are largest (the adaptive policy's events, with a live expert and six miniature caches inlined)
// otherwise ran out of inlining budget and called them.
//
// Not thread-safe: a policy is owned by one shard and used under its lock.
#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "goldylox/detail/common/platform.hpp"
#include "goldylox/version.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

// What an entry carries besides its links: nothing (index_lists) or a key (keyed_index_lists).
struct no_key {};

template <class Key>
class basic_index_lists {
 public:
  using index = std::uint32_t;
  static constexpr index none = 0xffffffffU;

  basic_index_lists(std::size_t entries, std::size_t lists)
      : entries_(static_cast<index>(entries)), links_(entries + lists), sizes_(lists, 0) {
    for (std::size_t l = 0; l < lists; ++l) {
      const index s = sentinel(static_cast<unsigned>(l));
      links_[s].prev = s;
      links_[s].next = s;
    }
  }

  std::size_t size(unsigned list) const noexcept { return sizes_[list]; }
  bool empty(unsigned list) const noexcept { return sizes_[list] == 0; }
  std::size_t entries() const noexcept { return entries_; }

  // The most recent / oldest entry of a list; `none` if it is empty.
  GOLDYLOX_ALWAYS_INLINE index front(unsigned list) const noexcept {
    return real(links_[sentinel(list)].next);
  }
  GOLDYLOX_ALWAYS_INLINE index back(unsigned list) const noexcept {
    return real(links_[sentinel(list)].prev);
  }
  // The entry after i towards the back, or `none` at the back.
  GOLDYLOX_ALWAYS_INLINE index next_older(index i) const noexcept { return real(links_[i].next); }

  GOLDYLOX_ALWAYS_INLINE void push_front(unsigned list, index i) noexcept {
    insert_after(sentinel(list), i, list);
  }
  GOLDYLOX_ALWAYS_INLINE void push_back(unsigned list, index i) noexcept {
    insert_after(links_[sentinel(list)].prev, i, list);
  }
  // Inserts i right after entry `at` (on `list`), i.e. one step towards the back.
  GOLDYLOX_ALWAYS_INLINE void insert_behind(unsigned list, index at, index i) noexcept {
    insert_after(at, i, list);
  }
  GOLDYLOX_ALWAYS_INLINE void unlink(unsigned list, index i) noexcept {
    assert(sizes_[list] > 0);
    const link l = links_[i];
    links_[l.prev].next = l.next;
    links_[l.next].prev = l.prev;
    --sizes_[list];
  }
  GOLDYLOX_ALWAYS_INLINE void move_to_front(unsigned from, unsigned to, index i) noexcept {
    unlink(from, i);
    push_front(to, i);
  }
  GOLDYLOX_ALWAYS_INLINE index pop_back(unsigned list) noexcept {
    const index i = back(list);
    if (i != none) unlink(list, i);
    return i;
  }
  GOLDYLOX_ALWAYS_INLINE index pop_front(unsigned list) noexcept {
    const index i = front(list);
    if (i != none) unlink(list, i);
    return i;
  }

  // The entry's key (keyed_index_lists): kept while the entry moves between lists or leaves
  // them, until the owner sets another.
  std::uint64_t key(index i) const noexcept
    requires(!std::is_same_v<Key, no_key>)
  {
    return links_[i].key;
  }
  void set_key(index i, std::uint64_t k) noexcept
    requires(!std::is_same_v<Key, no_key>)
  {
    links_[i].key = k;
  }
  // key_of for a slot_index over these keys.
  struct key_reader;
  key_reader keys() const noexcept
    requires(!std::is_same_v<Key, no_key>)
  {
    return {links_.data()};
  }

  static constexpr std::size_t bytes_per_entry() noexcept { return sizeof(link); }

 private:
  struct link {
    index prev;
    index next;
    [[no_unique_address]] Key key;
  };

  GOLDYLOX_ALWAYS_INLINE index sentinel(unsigned list) const noexcept { return entries_ + list; }
  GOLDYLOX_ALWAYS_INLINE index real(index i) const noexcept { return i >= entries_ ? none : i; }
  GOLDYLOX_ALWAYS_INLINE void insert_after(index at, index i, unsigned list) noexcept {
    const index after = links_[at].next;
    links_[i].prev = at;  // the key stays
    links_[i].next = after;
    links_[at].next = i;
    links_[after].prev = i;
    ++sizes_[list];
  }

  index entries_;
  std::vector<link> links_;
  std::vector<std::size_t> sizes_;
};

template <class Key>
struct basic_index_lists<Key>::key_reader {
  const link* links;
  std::uint64_t operator()(index i) const noexcept { return links[i].key; }
};

using index_lists = basic_index_lists<no_key>;
using keyed_index_lists = basic_index_lists<std::uint64_t>;
static_assert(index_lists::bytes_per_entry() == 8 && keyed_index_lists::bytes_per_entry() == 16);

}  // namespace detail
GOLDYLOX_END_NAMESPACE
