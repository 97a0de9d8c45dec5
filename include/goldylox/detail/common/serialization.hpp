// Keys and values on disk: cereal's portable-enough binary archive, written straight into a
// byte buffer.
//
// A type is serializable when cereal can both save and load it with its binary archives (its
// own serialize/save/load members or free functions, or the standard types whose cereal headers
// are included below) and it is default-constructible (cereal loads into an existing object).
// Types that are not stay in the memory tiers: the cold tier never sees them.
//
// The archive is cereal's BinaryOutputArchive: fixed-width integers in the machine's byte order,
// sizes as 64-bit integers. The byte order makes cold tier files specific to little- or
// big-endian machines; goldylox's other on-disk fields are little-endian everywhere.
//
// Decoding: cereal throws on input that ends early, and a decoded value that leaves bytes unread
// is rejected too; both are kDataLoss. Records are checksummed and tagged with their type's name,
// so the bytes reaching cereal were written by serialize_to for a type of the same name. What
// remains is a type whose layout changed while its name did not: its old bytes may decode to a
// garbage length, which cereal tries to allocate before the read fails. Rename such a type, or
// version it with cereal's class versioning.
#pragma once

#include <cstddef>
#include <cstring>
#include <exception>
#include <istream>
#include <ostream>
#include <span>
#include <streambuf>
#include <string>
#include <type_traits>

#include <cereal/archives/binary.hpp>
#include <cereal/types/array.hpp>
#include <cereal/types/chrono.hpp>
#include <cereal/types/deque.hpp>
#include <cereal/types/list.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/set.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/tuple.hpp>
#include <cereal/types/unordered_map.hpp>
#include <cereal/types/unordered_set.hpp>
#include <cereal/types/utility.hpp>
#include <cereal/types/variant.hpp>
#include <cereal/types/vector.hpp>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "goldylox/version.hpp"

GOLDYLOX_BEGIN_NAMESPACE

// What the cold tier needs to store a key or value type.
// (cereal claims raw pointers, then refuses them with a static_assert: they are excluded here,
// as an address means nothing to another process.)
template <class T>
concept cold_serializable =
    std::default_initializable<T> && !std::is_pointer_v<T> && !std::is_member_pointer_v<T> &&
    cereal::traits::is_output_serializable<T, cereal::BinaryOutputArchive>::value &&
    cereal::traits::is_input_serializable<T, cereal::BinaryInputArchive>::value;

namespace detail {

// A streambuf that appends to a std::string (output) or reads a byte span (input), so archives
// need neither a stringstream's copies nor its allocations.
class string_sink : public std::streambuf {
 public:
  explicit string_sink(std::string& out) : out_(out) {}

 protected:
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    out_.append(s, static_cast<std::size_t>(n));
    return n;
  }
  int_type overflow(int_type c) override {
    if (!traits_type::eq_int_type(c, traits_type::eof()))
      out_.push_back(traits_type::to_char_type(c));
    return traits_type::not_eof(c);
  }

 private:
  std::string& out_;
};

class span_source : public std::streambuf {
 public:
  explicit span_source(std::span<const std::byte> in) {
    char* p = const_cast<char*>(reinterpret_cast<const char*>(in.data()));
    setg(p, p, p + in.size());
  }
  std::size_t remaining() const noexcept { return static_cast<std::size_t>(egptr() - gptr()); }
};

// Appends the serialized form of `value` to `out`.
template <cold_serializable T>
void serialize_to(const T& value, std::string& out) {
  string_sink sink(out);
  std::ostream os(&sink);
  cereal::BinaryOutputArchive archive(os);
  archive(value);
}

// Replaces `value` with the one serialized in `in`; kDataLoss if `in` is not exactly one.
template <cold_serializable T>
absl::Status deserialize_from(std::span<const std::byte> in, T& value) {
  span_source source(in);
  std::istream is(&source);
  try {
    cereal::BinaryInputArchive archive(is);
    archive(value);
  } catch (const std::exception& e) {
    return absl::DataLossError(
        absl::StrCat("goldylox: a stored value does not decode: ", e.what()));
  }
  if (source.remaining() != 0) {
    return absl::DataLossError(
        absl::StrCat("goldylox: a stored value leaves ", source.remaining(), " bytes undecoded"));
  }
  return absl::OkStatus();
}

}  // namespace detail
GOLDYLOX_END_NAMESPACE
