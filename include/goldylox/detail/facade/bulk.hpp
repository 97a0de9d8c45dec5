// Component facade/: the bulk writes both facades offer (put_all, remove_all).
//
// A bulk write is a sequence of single-key writes, each with the guarantees of the single call
// (atomic per key, never across keys, as Caffeine's putAll and invalidateAll). A failed key
// (with a cold tier: a full disk, an I/O error) leaves that key unchanged and does not stop the
// others, so one bad key never costs the rest of the batch; the caller learns how many failed and
// the first error, with its status code kept so it can still branch on it.
#pragma once

#include <cstddef>
#include <ranges>
#include <tuple>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "goldylox/detail/common/platform.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

// A range of (key, value) pairs: a map, a vector of pairs or tuples.
template <class R, class K>
concept key_value_range =
    std::ranges::input_range<R> && requires(std::ranges::range_reference_t<R> e) {
      { std::get<0>(e) } -> std::convertible_to<const K&>;
      std::get<1>(e);
    };

// The value type of a key_value_range's pairs.
template <class R>
using pair_value_t =
    std::remove_cvref_t<decltype(std::get<1>(std::declval<std::ranges::range_reference_t<R>>()))>;

// Collects the outcome of the single-key writes of one bulk call.
class bulk_outcome {
 public:
  explicit bulk_outcome(const char* call) noexcept : call_(call) {}

  void add(const absl::Status& st) {
    ++tried_;
    if (st.ok()) return;
    if (failed_++ == 0) first_ = st;
  }

  // OK if every write succeeded; else the first failure's code, its message prefixed by how many
  // of the writes failed.
  absl::Status status() const {
    if (failed_ == 0) return absl::OkStatus();
    return absl::Status(first_.code(),
                        absl::StrCat("goldylox: ", call_, ": ", failed_, " of ", tried_,
                                     " keys failed, the first with: ", first_.message()));
  }

 private:
  const char* call_;
  std::size_t tried_ = 0;
  std::size_t failed_ = 0;
  absl::Status first_;
};

// put_all over `entries` with `put` (the facade's put(key, value) -> Status): each pair's key and
// value are moved out of a range passed as an rvalue, copied otherwise.
template <class R, class Put>
absl::Status put_each(R&& entries, Put&& put) {
  bulk_outcome outcome("put_all");
  for (auto&& e : entries) {
    if constexpr (std::is_lvalue_reference_v<R>) {
      outcome.add(put(std::get<0>(e), std::get<1>(e)));
    } else {
      outcome.add(put(std::move(std::get<0>(e)), std::move(std::get<1>(e))));
    }
  }
  return outcome.status();
}

// remove_all over `keys` with `remove` (the facade's remove(key) -> StatusOr<bool>): how many
// keys were present, or the aggregated error (the keys that could be removed are removed).
template <class Range, class Remove>
absl::StatusOr<std::size_t> remove_each(const Range& keys, Remove&& remove) {
  bulk_outcome outcome("remove_all");
  std::size_t removed = 0;
  for (const auto& key : keys) {
    const absl::StatusOr<bool> r = remove(key);
    outcome.add(r.status());
    if (r.ok() && *r) ++removed;
  }
  if (absl::Status st = outcome.status(); !st.ok()) return st;
  return removed;
}

}  // namespace detail
GOLDYLOX_END_NAMESPACE
