// The cold tier's manifest: which segments the store holds, and a floor for entry versions.
//
// Why. Segments alone cannot tell a segment that was reclaimed from one that was lost (deleted by
// hand, replaced, unreadable), and the highest version found in them is not the highest version
// ever handed out when a segment is missing, so a new write could get a version below an older
// one and lose to it after the next open. The manifest states both: the live segments (id, size,
// creation time, oldest first) and a version limit that no record in the directory exceeds.
//
// Layout. One file, MANIFEST, of two equal halves; each write goes to the half not holding the
// newest copy, so a write torn by a crash leaves the other intact, and a half is written in
// place into space allocated when the file was made, so writing it needs no free disk space
// (it is what lets a full disk shed segments). A half, little-endian:
//   offset  size  field
//        0     4  magic "GLXM"
//        4     4  format version (1)
//        8     8  sequence: the newer half has the higher one
//       16     8  version limit: every record in the directory has an entry version at most this
//       24     8  next segment id: every segment with a lower id was created by this directory's
//                 stores; one not listed was reclaimed (its deletion may not have happened)
//       32     4  segment count n
//       36     4  reserved, 0
//       40  24*n  segments, oldest first: id, size in bytes, creation time (ns since the epoch)
//   40+24n     8  XXH3-64 of bytes 0 .. 40+24n
// The rest of the half is unused. Recovery takes the valid half with the higher sequence.
//
// Ordering (store.hpp keeps it). A segment is created before the manifest lists it, so a crash
// in between leaves a file with an id at or above next_id: newer than the manifest, kept. A
// reclaimed segment's file is deleted only after a manifest without it is written (and, unless
// durability is none, synced), so a listed segment that is absent was lost, never reclaimed.
// The store writes a manifest with a higher version limit before it hands out a version above
// the current one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "goldylox/detail/cold/file_io.hpp"
#include "goldylox/detail/cold/record.hpp"
#include "goldylox/detail/common/platform.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

inline constexpr std::uint32_t manifest_magic = 0x4d584c47;  // "GLXM" read little-endian
inline constexpr std::uint32_t manifest_format_version = 1;
inline constexpr std::size_t manifest_header_size = 40;
inline constexpr std::size_t manifest_entry_size = 24;
inline constexpr char manifest_file_name[] = "MANIFEST";

struct manifest_entry {
  std::uint64_t id = 0;
  std::uint64_t size = 0;
  std::uint64_t created_ns = 0;
  friend bool operator==(const manifest_entry&, const manifest_entry&) = default;
};

struct manifest_state {
  std::uint64_t sequence = 0;
  std::uint64_t version_limit = 0;
  std::uint64_t next_id = 1;
  std::vector<manifest_entry> segments;  // oldest first
};

// Bytes one half needs for `count` segments.
inline std::size_t manifest_bytes_for(std::size_t count) noexcept {
  return manifest_header_size + manifest_entry_size * count + 8;
}

inline void encode_manifest(std::vector<std::byte>& out, const manifest_state& m) {
  const std::size_t n = m.segments.size();
  out.assign(manifest_bytes_for(n), std::byte{0});
  std::byte* p = out.data();
  store_le<std::uint32_t>(p, manifest_magic);
  store_le<std::uint32_t>(p + 4, manifest_format_version);
  store_le<std::uint64_t>(p + 8, m.sequence);
  store_le<std::uint64_t>(p + 16, m.version_limit);
  store_le<std::uint64_t>(p + 24, m.next_id);
  store_le<std::uint32_t>(p + 32, static_cast<std::uint32_t>(n));
  for (std::size_t i = 0; i < n; ++i) {
    std::byte* e = p + manifest_header_size + i * manifest_entry_size;
    store_le<std::uint64_t>(e, m.segments[i].id);
    store_le<std::uint64_t>(e + 8, m.segments[i].size);
    store_le<std::uint64_t>(e + 16, m.segments[i].created_ns);
  }
  const std::size_t body = manifest_header_size + manifest_entry_size * n;
  store_le<std::uint64_t>(p + body, XXH3_64bits(p, body));
}

// One half; kDataLoss if it is not a whole, valid manifest.
inline absl::StatusOr<manifest_state> decode_manifest(std::span<const std::byte> in) {
  const auto loss = [](auto&&... what) {
    return absl::DataLossError(absl::StrCat("manifest: ", what...));
  };
  if (in.size() < manifest_bytes_for(0)) return loss("shorter than a header");
  const std::byte* p = in.data();
  if (load_le<std::uint32_t>(p) != manifest_magic) return loss("bad magic");
  const std::uint64_t n = load_le<std::uint32_t>(p + 32);
  if (n > (in.size() - manifest_bytes_for(0)) / manifest_entry_size) {
    return loss("a segment count of ", n, " does not fit");
  }
  const std::size_t body = manifest_header_size + manifest_entry_size * n;
  if (XXH3_64bits(p, body) != load_le<std::uint64_t>(p + body)) return loss("checksum mismatch");
  if (load_le<std::uint32_t>(p + 4) != manifest_format_version) {
    return loss("format version ", load_le<std::uint32_t>(p + 4));
  }
  manifest_state m;
  m.sequence = load_le<std::uint64_t>(p + 8);
  m.version_limit = load_le<std::uint64_t>(p + 16);
  m.next_id = load_le<std::uint64_t>(p + 24);
  m.segments.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::byte* e = p + manifest_header_size + i * manifest_entry_size;
    m.segments[i] = {load_le<std::uint64_t>(e), load_le<std::uint64_t>(e + 8),
                     load_le<std::uint64_t>(e + 16)};
  }
  return m;
}

// What reading a directory's manifest found.
struct manifest_read {
  bool exists = false;     // a MANIFEST file is there
  bool damaged = false;    // it is, but neither half is valid
  std::size_t half = 0;    // bytes per half (0 if none)
  std::size_t newest = 0;  // which half holds `state`
  manifest_state state;    // the newest valid half (default when none)
};

inline absl::StatusOr<manifest_read> read_manifest(const std::string& dir) {
  const std::string path = absl::StrCat(dir, "/", manifest_file_name);
  manifest_read r;
  unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) return r;
    return errno_status(errno, absl::StrCat("open ", path));
  }
  r.exists = true;
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return errno_status(errno, absl::StrCat("stat ", path));
  std::vector<std::byte> bytes(static_cast<std::size_t>(st.st_size));
  std::size_t got = 0;
  while (got < bytes.size()) {
    const ssize_t n =
        ::pread(fd.get(), bytes.data() + got, bytes.size() - got, static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_status(errno, absl::StrCat("read ", path));
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  bytes.resize(got);
  r.half = bytes.size() / 2;
  bool found = false;
  for (std::size_t h = 0; h < 2 && r.half != 0; ++h) {
    auto m = decode_manifest(std::span<const std::byte>(bytes).subspan(h * r.half, r.half));
    if (m.ok() && (!found || m->sequence > r.state.sequence)) {
      r.state = *std::move(m);
      r.newest = h;
      found = true;
    }
  }
  r.damaged = !found;
  return r;
}

// The open manifest file of a store: writes the next state into the older half.
class manifest_file {
 public:
  // Opens `dir`/MANIFEST for writing, making it anew (through a temporary file and a rename) if
  // it is missing, damaged or too small for `capacity` segments. `found` is what read_manifest
  // returned; `sync` whether creating it must be made durable (fdatasync, directory fsync).
  static absl::StatusOr<manifest_file> open(const std::string& dir, const manifest_read& found,
                                            std::size_t capacity, bool sync) {
    manifest_file f;
    f.path_ = absl::StrCat(dir, "/", manifest_file_name);
    const std::size_t need = round_up(manifest_bytes_for(capacity), 4096);
    if (found.exists && !found.damaged && found.half >= need) {
      f.fd_ = unique_fd(::open(f.path_.c_str(), O_RDWR | O_CLOEXEC));
      if (!f.fd_) return errno_status(errno, absl::StrCat("open ", f.path_));
      f.half_ = found.half;
      f.next_half_ = 1 - found.newest;
      return f;
    }
    const std::string tmp = f.path_ + ".tmp";
    unique_fd fd(::open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd) return errno_status(errno, absl::StrCat("create ", tmp));
    const auto fail = [&](absl::Status st) {
      ::unlink(tmp.c_str());
      return st;
    };
    if (const int err = ::posix_fallocate(fd.get(), 0, static_cast<off_t>(2 * need)); err != 0) {
      return fail(errno_status(err, absl::StrCat("allocate ", tmp)));
    }
    // The newest state found (if any) goes into both halves, so the file is valid from the
    // moment it is renamed into place.
    std::vector<std::byte> bytes;
    encode_manifest(bytes, found.state);
    for (std::size_t h = 0; h < 2; ++h) {
      if (auto st =
              pwrite_all(fd.get(), bytes.data(), bytes.size(), static_cast<off_t>(h * need), tmp);
          !st.ok()) {
        return fail(st);
      }
    }
    if (sync) {
      if (auto st = sync_data(fd.get(), tmp); !st.ok()) return fail(st);
    }
    if (::rename(tmp.c_str(), f.path_.c_str()) != 0) {
      return fail(errno_status(errno, absl::StrCat("rename ", tmp)));
    }
    if (sync) {
      if (auto st = sync_directory(dir); !st.ok()) return st;
    }
    f.fd_ = std::move(fd);
    f.half_ = need;
    f.next_half_ = 0;
    return f;
  }

  // Segments one half can list.
  std::size_t capacity() const noexcept {
    return (half_ - manifest_bytes_for(0)) / manifest_entry_size;
  }

  // Writes `m` (its sequence must be above every earlier one) into the older half; with `sync`,
  // returns only once it is durable.
  absl::Status write(const manifest_state& m, bool sync) {
    if (m.segments.size() > capacity()) {
      return absl::ResourceExhaustedError(absl::StrCat("goldylox cold tier: the manifest holds ",
                                                       capacity(), " segments; the store has ",
                                                       m.segments.size()));
    }
    encode_manifest(buffer_, m);
    if (auto st = pwrite_all(fd_.get(), buffer_.data(), buffer_.size(),
                             static_cast<off_t>(next_half_ * half_), path_);
        !st.ok()) {
      return st;
    }
    if (sync) {
      if (auto st = sync_data(fd_.get(), path_); !st.ok()) return st;
    }
    next_half_ = 1 - next_half_;
    return absl::OkStatus();
  }

 private:
  static std::size_t round_up(std::size_t n, std::size_t to) noexcept {
    return (n + to - 1) / to * to;
  }

  std::string path_;
  unique_fd fd_;
  std::size_t half_ = 0;
  std::size_t next_half_ = 0;
  std::vector<std::byte> buffer_;
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
