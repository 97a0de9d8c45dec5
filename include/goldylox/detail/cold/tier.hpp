// Component cold/ (main header: this one). The persistent third tier: store.hpp (writes, reads,
// reclamation, durability, recovery), index.hpp (the in-RAM index), segment.hpp (segment files),
// record.hpp (the on-disk record: the format lives there alone), file_io.hpp (POSIX calls as
// absl::Status), durability.hpp (the durability modes). Invariants: a record is returned only
// after its checksum and full key verify; recovery keeps the highest version of each key. May
// call common/ and codec/; never another tier (the engine moves values in and out).
//
// The cold tier as the engine sees it: typed keys and values over the byte-level cold_store.
//
// Keys are serialized with cereal (serialization.hpp); the store hashes those bytes with XXH3,
// so the index is the same in every process. Values: for typed_cache<K, V> (S = V), V's cereal
// bytes under value_type_tag<V>; for cache<K> (S = any_value), the stored type's bytes and tag,
// read back through the type registry (any_value.hpp). A value that cannot go to disk (not
// serializable, or a type name two types share) is refused by put() and stays in memory as long
// as the memory tiers keep it; the engine counts it.
//
// Reads that fail (a checksum, bytes that do not decode as the tagged type, for typed_cache a
// record of another type) are misses, counted by the store or here; never a wrong value.
//
// close() detaches the tier: afterwards it is empty to the engine (reads miss, erase finds
// nothing, clear does nothing) and puts are refused, so writes made after close() stay in memory
// and cannot leave a stale record behind or touch a directory that another cache may have opened
// by then. The store's statistics still describe what it wrote.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "goldylox/detail/cold/store.hpp"
#include "goldylox/detail/common/any_value.hpp"
#include "goldylox/detail/common/serialization.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

// K must be cold_serializable for a cold tier to be built (facade_builder checks).
template <class K, class S>
class cold_tier {
 public:
  explicit cold_tier(std::unique_ptr<cold_store> store) : store_(std::move(store)) {}

  // Stores key -> value. kInvalidArgument if the value's type cannot go to disk; the store's
  // status otherwise (kResourceExhausted for a full disk, kInvalidArgument for an oversized value);
  // kFailedPrecondition after close().
  absl::Status put(const K& key, const S& value) {
    if (closed()) return absl::FailedPreconditionError("goldylox cold tier: closed");
    auto& b = buffers();
    const absl::StatusOr<std::uint64_t> tag = serialize_value(value, b.value);
    if (!tag.ok()) return tag.status();
    return store_->put(key_bytes(key), as_span(b.value), *tag);
  }

  // put() in two steps, so that serializing and compressing happen before the caller takes a
  // lock it must hold while the value is stored (the demotion writer holds the key's home lock):
  // prepare() fills `out` and stores nothing (kInvalidArgument if the value's type cannot go to
  // disk), put_prepared() stores it under key with put()'s other outcomes.
  using prepared = cold_store::prepared_value;
  absl::Status prepare(const S& value, prepared& out) {
    auto& b = buffers();
    const absl::StatusOr<std::uint64_t> tag = serialize_value(value, b.value);
    if (!tag.ok()) return tag.status();
    store_->prepare(as_span(b.value), *tag, out);
    return absl::OkStatus();
  }
  absl::Status put_prepared(const K& key, const prepared& p) {
    if (closed()) return absl::FailedPreconditionError("goldylox cold tier: closed");
    return store_->put_prepared(key_bytes(key), p);
  }

  // The value of key, if the cold tier has a readable one; *version, if given, receives its
  // record's entry version (see version_of).
  std::optional<S> get(const K& key, std::uint64_t* version = nullptr) {
    std::optional<S> out;
    if (closed()) return out;
    const absl::Status st =
        store_->read(key_bytes(key), [&](const record_meta& meta, std::span<const std::byte> v) {
          if (version != nullptr) *version = meta.version;
          if constexpr (std::is_same_v<S, any_value>) {
            auto decoded = any_value::deserialize(meta.type_tag, v);
            if (decoded.ok()) out.emplace(*std::move(decoded));
          } else if constexpr (cold_serializable<S>) {
            if (meta.type_tag != value_type_tag<S>) return;
            S value;
            if (deserialize_from(v, value).ok()) out.emplace(std::move(value));
          }
        });
    if (st.ok() && !out) undecodable_.fetch_add(1, std::memory_order_relaxed);
    return out;
  }

  // Removes key; true if it was there. A failed tombstone write (a full disk) still unindexes
  // nothing, so it reports the key as kept: the caller counts the error.
  absl::StatusOr<bool> erase(const K& key) {
    if (closed()) return false;
    return store_->erase(key_bytes(key));
  }

  bool contains(const K& key) { return !closed() && store_->contains(key_bytes(key)); }
  // The entry version of key's record now, 0 if none.
  std::uint64_t version_of(const K& key) {
    return closed() ? 0 : store_->version_of(key_bytes(key));
  }
  void clear() {
    if (!closed()) store_->clear();
  }
  absl::Status sync() { return store_->sync(); }
  // Detaches the tier (above) and closes the store: its final sync's error, counted in
  // sync_errors. OK if already closed.
  absl::Status close() {
    closed_.store(true, std::memory_order_release);
    return store_->close();
  }
  bool closed() const noexcept { return closed_.load(std::memory_order_acquire); }
  cold_store_stats stats() const { return store_->stats(); }
  std::size_t size() const { return store_->size(); }
  std::uint64_t undecodable() const noexcept {
    return undecodable_.load(std::memory_order_relaxed);
  }
  cold_store& store() noexcept { return *store_; }

 private:
  struct scratch {
    std::string key, value;
  };
  static scratch& buffers() {
    thread_local scratch b;
    return b;
  }
  static std::span<const std::byte> as_span(const std::string& s) noexcept {
    return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
  }
  // value's bytes into `out` and the type tag the record stores, or kInvalidArgument.
  static absl::StatusOr<std::uint64_t> serialize_value(const S& value, std::string& out) {
    out.clear();
    if constexpr (std::is_same_v<S, any_value>) {
      if (value.serialize(out)) return value.type().tag;
    } else if constexpr (cold_serializable<S>) {
      serialize_to(value, out);
      return value_type_tag<S>;
    }
    return absl::InvalidArgumentError(
        "goldylox: the value's type cannot be serialized for the cold tier");
  }
  // The key's bytes, in a per-thread buffer valid until the next call on this thread.
  static std::span<const std::byte> key_bytes(const K& key) {
    auto& b = buffers();
    b.key.clear();
    // The engine constructs a cold tier only for serializable keys; other key types still
    // instantiate the class (as an unused member), never this path.
    if constexpr (cold_serializable<K>) serialize_to(key, b.key);
    return as_span(b.key);
  }

  std::unique_ptr<cold_store> store_;
  std::atomic<std::uint64_t> undecodable_{0};
  std::atomic<bool> closed_{false};
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
