// Helpers the cold store's tests share: options for small segments, opening, keys and values
// that are functions of their key, and reads as strings.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "goldylox/detail/cold/store.hpp"

namespace goldylox_test::cold {

namespace gd = goldylox::detail;
namespace fs = std::filesystem;

inline std::span<const std::byte> as_bytes(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

inline gd::cold_store_options small_options(const std::string& path) {
  gd::cold_store_options o;
  o.path = path;
  o.segment_bytes = 64 * 1024;
  o.max_bytes = 64 * 1024 * 1024;
  o.durability = goldylox::cold_durability::none;
  return o;
}

inline std::unique_ptr<gd::cold_store> open_ok(const gd::cold_store_options& o) {
  auto s = gd::cold_store::open(o);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *std::move(s) : nullptr;
}

// A value that is a function of its key and a version, JSON-like so the codecs have work.
inline std::string value_for(std::uint64_t key, std::uint64_t version, std::size_t size = 300) {
  std::string v = "{\"key\":" + std::to_string(key) + ",\"version\":" + std::to_string(version) +
                  ",\"name\":\"user-" + std::to_string(key * 7919 % 1000) + "\",\"pad\":\"";
  while (v.size() + 2 < size) v += static_cast<char>('a' + (key + v.size()) % 26);
  return v + "\"}";
}

inline std::string key_for(std::uint64_t k) {
  return "key:" + std::to_string(k);
}

// The value stored under key, or the status that came instead.
inline absl::StatusOr<std::string> get(gd::cold_store& s, const std::string& key,
                                       std::uint64_t* tag = nullptr) {
  std::string out;
  auto st = s.read(as_bytes(key), [&](const gd::record_meta& m, std::span<const std::byte> v) {
    out.assign(reinterpret_cast<const char*>(v.data()), v.size());
    if (tag) *tag = m.type_tag;
  });
  if (!st.ok()) return st;
  return out;
}

inline std::vector<fs::path> segment_files(const std::string& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (gd::parse_segment_file_name(e.path().filename().string())) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Writes `count` keys of 300-byte values (about 200 to a 64 KiB segment) and closes the store.
inline void fill(const gd::cold_store_options& o, std::uint64_t count) {
  auto s = open_ok(o);
  ASSERT_TRUE(s);
  for (std::uint64_t k = 0; k < count; ++k) {
    ASSERT_TRUE(s->put(as_bytes(key_for(k)), as_bytes(value_for(k, 1)), 1).ok()) << k;
  }
}

}  // namespace goldylox_test::cold
