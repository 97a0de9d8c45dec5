// An index from 64-bit keys (key hashes, or trace ids) to slots, for the lookups the policies make
// for themselves: ghost lists (LIRS, ARC, S3-FIFO), the keys of a simulated cache, the adaptive
// policy's sampled resident keys. It answers exactly as the absl::flat_hash_map<uint64_t, slot>
// it replaced (find, insert or overwrite, erase by key), so no policy decision changes; it is
// cheaper in these uses because its cells are 8 bytes, a lookup rarely leaves one cache line,
// and erasing leaves no tombstone behind, so a table churned by an insert and an erase per miss
// never rehashes once it has reached its largest size.
//
// Layout: open addressing with linear probing over cells {tag, slot}, at most half full (a
// missing key, the common case for ghosts, probes 2.5 cells on average). The key is not stored:
// every owner already keeps each slot's key (a hash or id array), so a cell holds the low 32
// bits of the key's mix (the tag) and the slot, and a lookup confirms a tag match with the
// owner's key_of(slot). The home cell is the mix's low bits, so while the table has at most
// 2^32 cells the tag alone gives a cell's home for rehashing and for the backward shift that
// erase does instead of a tombstone (Knuth's Algorithm R); larger tables ask key_of.
//
// The owner's invariant: while a cell maps key k to slot v, key_of(v) == k. Every owner keeps it
// by erasing a key before its slot is reused or given another key (a slot's key changes only
// when the slot is taken from a free list, after the erase that freed it).
//
// Not thread-safe: used under its policy's owner, as the policies are.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "goldylox/detail/common/platform.hpp"
#include "goldylox/version.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

// key_of for owners that keep their keys in an array indexed by slot.
struct keys_by_slot {
  const std::uint64_t* keys;
  std::uint64_t operator()(std::uint32_t s) const noexcept { return keys[s]; }
};

class slot_index {
 public:
  using slot = std::uint32_t;
  static constexpr slot none = 0xffffffffU;

  // Room for `expected` keys without growing.
  explicit slot_index(std::size_t expected = 0)
      : cells_(cells_for(expected), cell{0, none}), mask_(cells_.size() - 1) {}

  std::size_t size() const noexcept { return size_; }

  // The slot of `key`, or none.
  template <class KeyOf>
  slot find(std::uint64_t key, KeyOf&& key_of) const noexcept {
    const std::uint64_t m = mix(key);
    const auto tag = static_cast<std::uint32_t>(m);
    for (std::size_t i = m & mask_;; i = (i + 1) & mask_) {
      const cell c = cells_[i];
      if (c.value == none) return none;
      if (c.tag == tag && key_of(c.value) == key) return c.value;
    }
  }
  template <class KeyOf>
  bool contains(std::uint64_t key, KeyOf&& key_of) const noexcept {
    return find(key, key_of) != none;
  }

  // Maps `key` to `s`, replacing the slot it mapped to if any (map[key] = s). `s` must not be
  // none, and key_of(s) must already be `key`.
  template <class KeyOf>
  void assign(std::uint64_t key, slot s, KeyOf&& key_of) {
    const std::uint64_t m = mix(key);
    const auto tag = static_cast<std::uint32_t>(m);
    std::size_t i = m & mask_;
    for (;; i = (i + 1) & mask_) {
      cell& c = cells_[i];
      if (c.value == none) break;
      if (c.tag == tag && key_of(c.value) == key) {
        c.value = s;
        return;
      }
    }
    if (2 * (size_ + 1) > cells_.size()) {
      grow(key_of);
      i = m & mask_;
      while (cells_[i].value != none) i = (i + 1) & mask_;
    }
    cells_[i] = {tag, s};
    ++size_;
  }

  // Removes `key` if present; true if it was.
  template <class KeyOf>
  bool erase(std::uint64_t key, KeyOf&& key_of) noexcept {
    const std::uint64_t m = mix(key);
    const auto tag = static_cast<std::uint32_t>(m);
    std::size_t i = m & mask_;
    for (;; i = (i + 1) & mask_) {
      const cell c = cells_[i];
      if (c.value == none) return false;
      if (c.tag == tag && key_of(c.value) == key) break;
    }
    // Algorithm R: a later cell of the run moves into the hole unless its home lies cyclically
    // in (hole, its position], where the hole would cut it off from its home.
    std::size_t hole = i;
    for (std::size_t j = (i + 1) & mask_; cells_[j].value != none; j = (j + 1) & mask_) {
      const std::size_t home = home_of(cells_[j], key_of);
      const bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
      if (!stays) {
        cells_[hole] = cells_[j];
        hole = j;
      }
    }
    cells_[hole] = {0, none};
    --size_;
    return true;
  }

  // The key's mix: its low 32 bits are the tag, its low bits the home cell (public for the
  // tests). A multiplier other than mix_hash's: the adaptive policy samples keys by
  // mix_hash(key), and the index must spread a sample as well as a whole key space.
  static std::uint64_t mix(std::uint64_t key) noexcept {
    return fold_multiply(key, 0xbf58476d1ce4e5b9ULL);
  }

  // Bytes per key at the largest load before growing and at the smallest after (for the
  // policies' bytes_per_entry()).
  static constexpr std::size_t bytes_per_key() noexcept { return 2 * sizeof(cell); }

 private:
  struct cell {
    std::uint32_t tag;
    slot value;  // none: empty
  };

  static std::size_t cells_for(std::size_t keys) noexcept {
    return std::bit_ceil(keys < 8 ? std::size_t{16} : 2 * keys);
  }

  template <class KeyOf>
  std::size_t home_of(cell c, KeyOf& key_of) const noexcept {
    if (mask_ <= 0xffffffffU) return c.tag & mask_;
    return mix(key_of(c.value)) & mask_;
  }

  template <class KeyOf>
  void grow(KeyOf& key_of) {
    std::vector<cell> old(2 * cells_.size(), cell{0, none});
    old.swap(cells_);
    mask_ = cells_.size() - 1;
    for (const cell c : old) {
      if (c.value == none) continue;
      std::size_t i = home_of(c, key_of);
      while (cells_[i].value != none) i = (i + 1) & mask_;
      cells_[i] = c;
    }
  }

  std::vector<cell> cells_;
  std::size_t mask_ = 0;
  std::size_t size_ = 0;
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
