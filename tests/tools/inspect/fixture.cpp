// Writes a small cold tier directory for the goldylox-inspect tests (tests/CMakeLists.txt).
//
//   goldylox_inspect_fixture <dir> good     ~2000 JSON-like values, overwrites, erases, a binary
//                                           key, a raw (incompressible) value, an expired value
//   goldylox_inspect_fixture <dir> damage   the same, then a few bytes flipped in the first
//                                           segment's records and a foreign file added
//   goldylox_inspect_fixture <dir> lost     the same as good, then the second segment deleted
// Segments and LOCK left by an earlier run are removed first, so every run writes the same
// records (the store would otherwise recover them and append more).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <goldylox/detail/cold/segment.hpp>
#include <goldylox/detail/cold/store.hpp>
#include <goldylox/detail/common/type_name.hpp>

namespace {

namespace gd = goldylox::detail;

std::span<const std::byte> bytes_of(std::string_view s) {
  return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

// Similar in shape, never equal: what a table of users looks like to a codec.
std::string json_value(int id, int generation) {
  std::string v = "{\"id\":" + std::to_string(id) +
                  ",\"generation\":" + std::to_string(generation) + ",\"name\":\"user-" +
                  std::to_string(id) + "\",\"email\":\"user" + std::to_string(id * 7919 % 100003) +
                  "@example.com\",\"active\":" + (id % 3 == 0 ? "false" : "true") +
                  ",\"score\":" + std::to_string((id * 2654435761U) % 10000) + ",\"tags\":[";
  for (int t = 0; t < 1 + id % 5; ++t) {
    v += (t == 0 ? "\"" : ",\"") + std::string("tag") + std::to_string((id + t * 13) % 97) + "\"";
  }
  v += "],\"bio\":\"";
  for (int w = 0; w < 8 + id % 23; ++w) v += "lorem" + std::to_string((id * 31 + w) % 41) + " ";
  v += "\"}";
  return v;
}

std::string key_of(int id) {
  char key[32];
  std::snprintf(key, sizeof key, "user:%05d", id);
  return key;
}

bool clear_directory(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return true;  // the store creates it
  std::vector<std::string> doomed;
  while (const dirent* e = ::readdir(d)) {
    const std::string_view name = e->d_name;
    if (name == "LOCK" || name == "notes.txt" || name == gd::manifest_file_name ||
        gd::parse_segment_file_name(name)) {
      doomed.emplace_back(name);
    }
  }
  ::closedir(d);
  for (const std::string& name : doomed) {
    if (::unlink((dir + "/" + name).c_str()) != 0) {
      std::perror(("unlink " + dir + "/" + name).c_str());
      return false;
    }
  }
  return true;
}

bool check(const absl::Status& st, const char* what) {
  if (st.ok()) return true;
  std::fprintf(stderr, "fixture: %s: %s\n", what, std::string(st.message()).c_str());
  return false;
}

bool write_store(const std::string& dir) {
  gd::cold_store_options o;
  o.path = dir;
  o.segment_bytes = 64 * 1024;
  o.max_bytes = 64 * 1024 * 1024;
  o.durability = goldylox::cold_durability::none;
  o.codec = goldylox::codec_id::lz4;
  o.codec_level = 0;
  auto store = gd::cold_store::open(o);
  if (!check(store.status(), "open")) return false;
  constexpr std::uint64_t tag = goldylox::value_type_tag<std::string>;
  constexpr int count = 2000;
  for (int i = 0; i < count; ++i) {
    if (!check((*store)->put(bytes_of(key_of(i)), bytes_of(json_value(i, 0)), tag), "put")) {
      return false;
    }
  }
  for (int i = 0; i < count; i += 7) {  // overwrites: the first generation goes stale
    if (!check((*store)->put(bytes_of(key_of(i)), bytes_of(json_value(i, 1)), tag), "put")) {
      return false;
    }
  }
  for (int i = 3; i < count; i += 11) {  // erases: tombstones
    if (!check((*store)->erase(bytes_of(key_of(i))).status(), "erase")) return false;
  }
  const std::byte binary_key[] = {std::byte{0x00}, std::byte{0xff}, std::byte{0x10},
                                  std::byte{0x7f}};
  if (!check((*store)->put(binary_key, bytes_of(json_value(count, 0)), tag), "put binary key") ||
      // Two bytes do not compress: stored raw, codec none.
      !check((*store)->put(bytes_of("tiny"), bytes_of("ok"), tag), "put tiny") ||
      // Expired since 1970: not live after a replay.
      !check((*store)->put(bytes_of("expired"), bytes_of(json_value(1, 9)), tag, 1),
             "put expired")) {
    return false;
  }
  return check((*store)->close(), "close");
}

// Flips bytes well inside the first (full) segment's records, far enough apart to land in
// different records, and adds a file that is not a segment.
bool damage(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return false;
  std::uint64_t first = UINT64_MAX;
  while (const dirent* e = ::readdir(d)) {
    if (auto id = gd::parse_segment_file_name(e->d_name)) first = std::min(first, *id);
  }
  ::closedir(d);
  if (first == UINT64_MAX) {
    std::fprintf(stderr, "fixture: no segment to damage in %s\n", dir.c_str());
    return false;
  }
  const std::string path = dir + "/" + gd::segment_file_name(first);
  gd::unique_fd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd) {
    std::perror(("open " + path).c_str());
    return false;
  }
  for (const off_t at : {off_t{64 + 300}, off_t{64 + 9000}, off_t{64 + 30000}}) {
    unsigned char b = 0;
    if (::pread(fd.get(), &b, 1, at) != 1) return false;
    b ^= 0x5a;
    if (::pwrite(fd.get(), &b, 1, at) != 1) return false;
  }
  std::FILE* notes = std::fopen((dir + "/notes.txt").c_str(), "w");
  if (notes == nullptr) return false;
  std::fputs("not a segment\n", notes);
  std::fclose(notes);
  std::printf("fixture: flipped 3 bytes in %s, added notes.txt\n", path.c_str());
  return true;
}

// Deletes the second segment, which the manifest lists.
bool lose(const std::string& dir) {
  std::vector<std::uint64_t> ids;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return false;
  while (const dirent* e = ::readdir(d)) {
    if (auto id = gd::parse_segment_file_name(e->d_name)) ids.push_back(*id);
  }
  ::closedir(d);
  std::sort(ids.begin(), ids.end());
  if (ids.size() < 2) return false;
  const std::string path = dir + "/" + gd::segment_file_name(ids[1]);
  if (::unlink(path.c_str()) != 0) return false;
  std::printf("fixture: deleted %s\n", path.c_str());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string_view mode = argc == 3 ? argv[2] : "";
    if (mode != "good" && mode != "damage" && mode != "lost") {
      std::fprintf(stderr, "usage: goldylox_inspect_fixture <dir> good|damage|lost\n");
      return 2;
    }
    const std::string dir = argv[1];
    if (!clear_directory(dir) || !write_store(dir)) return 1;
    if (mode == "damage" && !damage(dir)) return 1;
    if (mode == "lost" && !lose(dir)) return 1;
    std::printf("fixture: wrote %s\n", dir.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fixture: %s\n", e.what());
    return 1;
  }
}
