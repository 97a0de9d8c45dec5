// The cold tier's segment files: fixed-size, append-only files of records.
//
// Layout (little-endian; docs/cold-tier.md):
//   offset  size  field
//        0     4  magic "GLXS"
//        4     4  format version (1)
//        8     8  segment id (ids grow with creation, so they order segments by age)
//       16     8  segment size in bytes (the file's length)
//       24     8  creation time, nanoseconds since the Unix epoch
//       32    24  reserved, 0
//       56     8  XXH3-64 of bytes 0..55
//       64        records (record.hpp), each at a multiple of 8, then zeros to the end
//
// A segment is created at its full size with posix_fallocate, so a full disk shows up when a
// segment is created (kResourceExhausted), never halfway through a record, and the unwritten
// tail reads as zeros. Only the segment being appended to keeps a file descriptor: sealing
// closes it (the mapping stays valid without it), and sync() opens the file by name, so a store
// uses a fixed handful of descriptors whatever its segment count. Records are appended with pwrite
// by one writer at a time; readers see them through one read-only MAP_SHARED mapping of the whole
// file, pre-faulted with MAP_POPULATE: the page cache is shared, so a record is visible through the
// mapping as soon as pwrite returns, and a get touches no system call. The writer publishes a
// record's location (in the cold index, under a lock) only after pwrite has returned.
//
// scan_records() walks a segment's bytes as recovery and goldylox-inspect see them: a record that
// decodes is reported; the first zero word where a record should start, followed by nothing but
// zeros, is the clean end; anything else (a torn tail, a flipped bit, garbage) is one corrupt
// region, skipped by stepping 8 bytes at a time until a record decodes again. Every byte is read
// through guarded reads (guarded_read.hpp), like a get's: a file cut short underneath while it is
// scanned ends the scan there (the rest counts as one corrupt region, `cut` is set) instead of
// killing the process with SIGBUS.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
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
#include "goldylox/detail/cold/guarded_read.hpp"
#include "goldylox/detail/cold/record.hpp"
#include "goldylox/detail/common/platform.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

inline constexpr std::uint32_t segment_magic = 0x53584c47;  // "GLXS" read little-endian
inline constexpr std::uint32_t segment_format_version = 1;
inline constexpr std::size_t segment_header_size = 64;

struct segment_header {
  std::uint64_t id = 0;
  std::uint64_t size = 0;
  std::uint64_t created_ns = 0;
};

inline void encode_segment_header(std::byte* out, const segment_header& h) noexcept {
  std::memset(out, 0, segment_header_size);
  store_le<std::uint32_t>(out, segment_magic);
  store_le<std::uint32_t>(out + 4, segment_format_version);
  store_le<std::uint64_t>(out + 8, h.id);
  store_le<std::uint64_t>(out + 16, h.size);
  store_le<std::uint64_t>(out + 24, h.created_ns);
  store_le<std::uint64_t>(out + 56, XXH3_64bits(out, 56));
}

inline absl::StatusOr<segment_header> decode_segment_header(std::span<const std::byte> in) {
  const auto loss = [](auto&&... what) {
    return absl::DataLossError(absl::StrCat("segment header: ", what...));
  };
  if (in.size() < segment_header_size) return loss("file of ", in.size(), " bytes");
  const std::byte* p = in.data();
  if (load_le<std::uint32_t>(p) != segment_magic) return loss("bad magic");
  if (XXH3_64bits(p, 56) != load_le<std::uint64_t>(p + 56)) return loss("checksum mismatch");
  if (load_le<std::uint32_t>(p + 4) != segment_format_version) {
    return loss("format version ", load_le<std::uint32_t>(p + 4));
  }
  segment_header h;
  h.id = load_le<std::uint64_t>(p + 8);
  h.size = load_le<std::uint64_t>(p + 16);
  h.created_ns = load_le<std::uint64_t>(p + 24);
  if (h.size < segment_header_size || h.size % 8 != 0) return loss("bad segment size ", h.size);
  return h;
}

// "seg-<16 hex digits>.glx"; anything else in a cold tier directory is not a segment.
inline std::string segment_file_name(std::uint64_t id) {
  char name[32];
  std::snprintf(name, sizeof name, "seg-%016llx.glx", static_cast<unsigned long long>(id));
  return name;
}

inline std::optional<std::uint64_t> parse_segment_file_name(std::string_view name) {
  if (name.size() != 24 || name.substr(0, 4) != "seg-" || name.substr(20) != ".glx") {
    return std::nullopt;
  }
  std::uint64_t id = 0;
  for (const char c : name.substr(4, 16)) {
    int digit;
    if (c >= '0' && c <= '9') {
      digit = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      digit = c - 'a' + 10;
    } else {
      return std::nullopt;
    }
    id = id << 4 | static_cast<std::uint64_t>(digit);
  }
  return id;
}

struct scan_result {
  std::size_t records = 0;          // records that decoded
  std::size_t corrupt_regions = 0;  // runs of bytes that are neither records nor the zero tail
  std::size_t corrupt_bytes = 0;
  std::size_t end = segment_header_size;  // just past the last record that decoded
  bool clean = true;                      // no corrupt region: appending may resume at `end`
  bool cut = false;                       // a read faulted: the file is shorter than its mapping
};

// Copies the record that starts at `bytes` (a segment's mapping, to the segment's end) into `out`
// with guarded reads; false if the mapping faulted (out's contents are then unspecified). Only
// the header is copied when it cannot start a record (no magic), so stepping through garbage
// copies little; otherwise as many bytes as the header's sizes claim, bounded by what is left of
// the segment, which decode_record then checks.
inline bool copy_mapped_record(std::span<const std::byte> bytes, std::vector<std::byte>& out) {
  const std::size_t head = std::min(bytes.size(), record_header_size);
  out.resize(head);
  if (!guarded_copy(out.data(), bytes.data(), head)) return false;
  if (head < record_header_size || load_le<std::uint32_t>(out.data()) != record_magic) return true;
  const std::size_t size = std::min(
      bytes.size(),
      record_size(load_le<std::uint32_t>(out.data() + 8), load_le<std::uint32_t>(out.data() + 12)));
  out.resize(size);
  return size <= head || guarded_copy(out.data() + head, bytes.data() + head, size - head);
}

inline constexpr std::byte zero_page[4096] = {};

// Where the zeros ending the readable part of `data` begin (no earlier than `from`), read with
// guarded reads from the end down. A page that faults (the file was cut below it) moves the
// readable end, `readable`, below it.
inline std::size_t zero_tail_start(std::span<const std::byte> data, std::size_t from,
                                   std::size_t& readable) {
  readable = data.size();
  std::size_t end = data.size();
  while (end > from) {
    const std::size_t n = std::min(sizeof zero_page, end - from);
    const std::byte* chunk = data.data() + (end - n);
    std::byte copy[sizeof zero_page];
    guarded_result same = guarded_compare(chunk, zero_page, n);
    if (same == guarded_result::different && !guarded_copy(copy, chunk, n)) {
      same = guarded_result::fault;  // cut between the two reads
    }
    if (same == guarded_result::fault) {
      end -= n;
      readable = end;
      continue;
    }
    if (same == guarded_result::different) {
      std::size_t k = n;
      while (k > 0 && copy[k - 1] == std::byte{0}) --k;
      return end - n + k;
    }
    end -= n;
  }
  return end;
}

// Calls on_record(const record_view&, offset) for each record in segment bytes `data` (the whole
// file as mapped, header included). The view points at a copy that lives until on_record returns.
template <class OnRecord>
scan_result scan_records(std::span<const std::byte> data, OnRecord&& on_record) {
  scan_result r;
  std::size_t off = segment_header_size;
  bool in_corrupt = false;
  std::size_t corrupt_start = 0;
  const auto end_corrupt = [&](std::size_t at) {
    if (in_corrupt) {
      r.corrupt_bytes += at - corrupt_start;
      in_corrupt = false;
    }
  };
  // The file was cut below its mapping's end: from `at` on, one corrupt region (what was past
  // the cut cannot be known).
  const auto cut_at = [&](std::size_t at) {
    r.cut = true;
    r.clean = false;
    if (!in_corrupt) {
      ++r.corrupt_regions;
      corrupt_start = at;
      in_corrupt = true;
    }
    end_corrupt(data.size());
    return r;
  };
  // Everything from zero_tail on is zero: where records stop in a segment that was not filled.
  std::size_t readable = 0;
  const std::size_t zero_tail = zero_tail_start(data, off, readable);
  std::vector<std::byte> copy;
  while (off + 8 <= data.size()) {
    if (off >= zero_tail) {
      end_corrupt(off);
      return readable < data.size() ? cut_at(readable) : r;
    }
    if (!copy_mapped_record(data.subspan(off), copy)) return cut_at(off);
    auto rec = decode_record(copy);
    if (rec.ok()) {
      end_corrupt(off);
      on_record(*rec, off);
      ++r.records;
      off += rec->size;
      r.end = off;
      continue;
    }
    if (!in_corrupt) {
      in_corrupt = true;
      corrupt_start = off;
      ++r.corrupt_regions;
      r.clean = false;
    }
    off += 8;
  }
  if (off < data.size() && off < zero_tail) {  // a tail shorter than a word: a cut file
    if (!in_corrupt) {
      ++r.corrupt_regions;
      corrupt_start = off;
      in_corrupt = true;
    }
    off = data.size();
    r.clean = false;
  }
  end_corrupt(std::min(off, data.size()));
  return r;
}

// One open segment file: its descriptor (for appends and syncs) and its read-only mapping.
class segment {
 public:
  // Creates segment `id` of `size` bytes in `dir`. On any failure the partial file is removed.
  static absl::StatusOr<segment> create(const std::string& dir, std::uint64_t id,
                                        std::size_t size) {
    segment s;
    s.path_ = dir + "/" + segment_file_name(id);
    s.fd_ = unique_fd(::open(s.path_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (!s.fd_) return errno_status(errno, absl::StrCat("create segment ", s.path_));
    const auto fail = [&](absl::Status st) {
      s.fd_.reset();
      ::unlink(s.path_.c_str());
      return st;
    };
    if (const int err = ::posix_fallocate(s.fd_.get(), 0, static_cast<off_t>(size)); err != 0) {
      return fail(errno_status(err, absl::StrCat("allocate ", size, " bytes for ", s.path_)));
    }
    s.header_.id = id;
    s.header_.size = size;
    s.header_.created_ns =
        static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                       std::chrono::system_clock::now().time_since_epoch())
                                       .count());
    std::byte header[segment_header_size];
    encode_segment_header(header, s.header_);
    if (auto st = pwrite_all(s.fd_.get(), header, sizeof header, 0, s.path_); !st.ok()) {
      return fail(st);
    }
    auto m = mapping::map(s.fd_.get(), size, s.path_);
    if (!m.ok()) return fail(m.status());
    s.map_ = *std::move(m);
    s.end_ = segment_header_size;
    s.appendable_ = true;
    return s;
  }

  // Opens an existing segment file. A file whose header does not decode is kDataLoss; a file
  // shorter than its header says (truncated) is mapped as far as it goes and never appended to.
  // The descriptor is kept until seal() or resume_at() decides whether appending goes on.
  static absl::StatusOr<segment> open(const std::string& path) {
    segment s;
    s.path_ = path;
    s.fd_ = unique_fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
    if (!s.fd_) return errno_status(errno, absl::StrCat("open segment ", path));
    struct stat st {};
    if (::fstat(s.fd_.get(), &st) != 0) return errno_status(errno, absl::StrCat("stat ", path));
    const auto file_size = static_cast<std::size_t>(st.st_size);
    std::byte header[segment_header_size] = {};
    if (file_size >= segment_header_size) {
      if (::pread(s.fd_.get(), header, sizeof header, 0) != static_cast<ssize_t>(sizeof header)) {
        return errno_status(errno == 0 ? EIO : errno, absl::StrCat("read ", path));
      }
    }
    auto h = decode_segment_header(
        std::span<const std::byte>(header, std::min<std::size_t>(file_size, segment_header_size)));
    if (!h.ok()) return absl::DataLossError(absl::StrCat(path, ": ", h.status().message()));
    s.header_ = *h;
    s.truncated_ = file_size < h->size;
    auto m = mapping::map(s.fd_.get(), std::min<std::size_t>(file_size, h->size), path);
    if (!m.ok()) return m.status();
    s.map_ = *std::move(m);
    s.end_ = s.map_.size();
    return s;
  }

  std::uint64_t id() const noexcept { return header_.id; }
  std::size_t size() const noexcept { return header_.size; }
  std::uint64_t created_ns() const noexcept { return header_.created_ns; }
  const std::string& path() const noexcept { return path_; }
  bool truncated() const noexcept { return truncated_; }
  std::span<const std::byte> bytes() const noexcept { return {map_.data(), map_.size()}; }

  // The append position; only the writer moves it.
  std::size_t end() const noexcept { return end_; }
  std::size_t room() const noexcept { return appendable_ ? header_.size - end_ : 0; }
  bool appendable() const noexcept { return appendable_; }
  // Lets recovery continue appending after the last record of a clean, full-length segment.
  void resume_at(std::size_t end) noexcept {
    end_ = end;
    appendable_ = !truncated_ && map_.size() == header_.size;
    if (!appendable_) fd_.reset();
  }
  // No more appends: the descriptor goes (the writer's thread only, as appends).
  void seal() noexcept {
    appendable_ = false;
    fd_.reset();
  }

  // Appends `record` (a whole encoded record) and returns its offset. A failed write seals the
  // segment: the bytes after end() may hold part of the record, which recovery will count as a
  // corrupt region and skip.
  absl::StatusOr<std::size_t> append(std::span<const std::byte> record) {
    if (record.size() > room()) {
      return absl::ResourceExhaustedError("segment full");  // the caller rolls first
    }
    const std::size_t at = end_;
    if (auto st =
            pwrite_all(fd_.get(), record.data(), record.size(), static_cast<off_t>(at), path_);
        !st.ok()) {
      appendable_ = false;
      return st;
    }
    end_ = at + record.size();
    return at;
  }

  // Makes the appended records durable. Any thread: the file is opened by name (fdatasync acts on
  // the file, whichever descriptor asks), so the writer may seal the segment meanwhile. A file
  // already deleted (the segment was reclaimed) has nothing left to make durable.
  absl::Status sync() const {
    unique_fd fd(::open(path_.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
      if (errno == ENOENT) return absl::OkStatus();
      return errno_status(errno, absl::StrCat("open ", path_, " to sync it"));
    }
    return sync_data(fd.get(), path_);
  }

 private:
  std::string path_;
  unique_fd fd_;
  mapping map_;
  segment_header header_;
  std::size_t end_ = 0;
  bool appendable_ = false;
  bool truncated_ = false;
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
