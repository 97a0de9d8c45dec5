// goldylox-inspect: checks, summarises and lists a cold tier directory (docs/cold-tier.md)
// without opening it as a cache.
//
//   goldylox-inspect verify <dir>                       every segment header, record and value
//   goldylox-inspect stats <dir>                        live ratio, codecs, space on disk
//   goldylox-inspect dump <dir> [--values] [--limit N]  one line per record
// Segments are opened read-only and the LOCK file is never taken, so a directory held by a
// running cache can be inspected; what it appends meanwhile may show up as a torn tail.
// Exit status: 0 when all is well; 1 when verify finds damage or a segment cannot be read
// (stats and dump report damage but exit 0 unless a segment was unreadable); 2 on a usage
// error or a directory that cannot be listed.
#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cinttypes>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <goldylox/detail/codec/codec.hpp>
#include <goldylox/detail/cold/file_io.hpp>
#include <goldylox/detail/cold/manifest.hpp>
#include <goldylox/detail/cold/record.hpp>
#include <goldylox/detail/cold/segment.hpp>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace {

namespace gd = goldylox::detail;

constexpr int exit_ok = 0;
constexpr int exit_damage = 1;
constexpr int exit_usage = 2;

constexpr std::string_view usage_text =
    "usage: goldylox-inspect <command> <dir> [options]\n"
    "\n"
    "Inspects a goldylox cold tier directory read-only (it may be in use by a running cache).\n"
    "\n"
    "commands:\n"
    "  verify <dir>    check the manifest, every segment header, record checksum and\n"
    "                  compressed value; exit 1 if a listed segment is missing or replaced,\n"
    "                  or anything is corrupt or truncated\n"
    "  stats <dir>     segments, records, live entries and live ratio, per-codec sizes\n"
    "  dump <dir>      one line per record, in the order recovery replays them\n"
    "      --values    also print each value (decompressed, at most 64 bytes)\n"
    "      --limit N   stop after N records\n"
    "  --help          print this help\n"
    "\n"
    "exit status: 0 fine, 1 damage found or a segment unreadable, 2 usage error or the\n"
    "directory cannot be listed\n";

std::string message_of(const absl::Status& st) {
  return std::string(st.message());
}

unsigned long long ull(std::uint64_t v) {
  return static_cast<unsigned long long>(v);
}

double ratio(std::uint64_t num, std::uint64_t den) {
  return den == 0 ? 0.0 : static_cast<double>(num) / static_cast<double>(den);
}

std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

// Same rule as recovery and reads: an expiry at or before now is gone.
bool expired(const gd::record_meta& m, std::uint64_t now) {
  return m.expiry_ns != 0 && m.expiry_ns <= now;
}

std::string_view codec_name(goldylox::codec_id c) {
  switch (c) {
    case goldylox::codec_id::none:
      return gd::none_codec::name;
    case goldylox::codec_id::lz4:
      return gd::lz4_codec::name;
    case goldylox::codec_id::zstd:
      return gd::zstd_codec::name;
    case goldylox::codec_id::brotli:
      return gd::brotli_codec::name;
  }
  return "unknown";
}

// Quoted text when every byte is printable (tab, newline and CR escaped), else hex; at most
// `limit` bytes of the input either way, so a 1 MiB value stays one readable line.
std::string printable(std::span<const std::byte> bytes, std::size_t limit = 64) {
  const bool text = std::all_of(bytes.begin(), bytes.end(), [](std::byte b) {
    const auto c = static_cast<unsigned char>(b);
    return (c >= 0x20 && c < 0x7f) || c == '\t' || c == '\n' || c == '\r';
  });
  const std::size_t shown = std::min(bytes.size(), limit);
  std::string out;
  if (text) {
    out += '"';
    for (std::size_t i = 0; i < shown; ++i) {
      const char c = static_cast<char>(bytes[i]);
      switch (c) {
        case '"':
          out += "\\\"";
          break;
        case '\\':
          out += "\\\\";
          break;
        case '\t':
          out += "\\t";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        default:
          out += c;
      }
    }
    out += '"';
  } else {
    static constexpr char digits[] = "0123456789abcdef";
    out += "0x";
    // Two hex digits a byte: half as many bytes keep the line as short as the text form.
    const std::size_t hex_shown = std::min(bytes.size(), limit / 2);
    for (std::size_t i = 0; i < hex_shown; ++i) {
      const auto c = static_cast<unsigned char>(bytes[i]);
      out += digits[c >> 4];
      out += digits[c & 15];
    }
    if (hex_shown < bytes.size()) out += "...(" + std::to_string(bytes.size()) + " bytes)";
    return out;
  }
  if (shown < bytes.size()) out += "...(" + std::to_string(bytes.size()) + " bytes)";
  return out;
}

// --- the directory and its segments ---------------------------------------------------------

struct segment_file {
  std::uint64_t id = 0;
  std::string name;
};

struct directory_listing {
  std::vector<segment_file> segments;  // by id: the order recovery replays them in
  std::vector<std::string> foreign;
};

struct dir_closer {
  void operator()(DIR* d) const noexcept { ::closedir(d); }
};

absl::StatusOr<directory_listing> list_directory(const std::string& dir) {
  std::unique_ptr<DIR, dir_closer> d(::opendir(dir.c_str()));
  if (!d) return gd::errno_status(errno, "cannot list directory " + dir);
  directory_listing out;
  for (;;) {
    errno = 0;
    const dirent* e = ::readdir(d.get());
    if (e == nullptr) {
      if (errno != 0) return gd::errno_status(errno, "cannot list directory " + dir);
      break;
    }
    const std::string_view name = e->d_name;
    if (name == "." || name == ".." || name == "LOCK" || name == gd::manifest_file_name) continue;
    if (const auto id = gd::parse_segment_file_name(name)) {
      out.segments.push_back({*id, std::string(name)});
    } else {
      out.foreign.emplace_back(name);
    }
  }
  std::sort(out.segments.begin(), out.segments.end(),
            [](const segment_file& a, const segment_file& b) { return a.id < b.id; });
  std::sort(out.foreign.begin(), out.foreign.end());
  return out;
}

struct open_segment {
  gd::unique_fd fd;
  gd::mapping map;
  gd::segment_header header;
  std::uint64_t file_size = 0;

  std::span<const std::byte> bytes() const { return {map.data(), map.size()}; }
  bool truncated() const { return file_size < header.size; }
  // Segments are created at full size and never grow: extra bytes were put there by something
  // else (recovery ignores them).
  std::uint64_t extra_bytes() const {
    return file_size > header.size ? file_size - header.size : 0;
  }
  // No record of a well-formed segment holds more than this: the store refuses larger values.
  std::uint64_t max_value_size() const { return header.size - gd::segment_header_size; }
};

// Opens a segment as recovery judges it, but read-only (detail::segment::open wants O_RDWR,
// which a read-only directory or another user's files refuse). kNotFound: the file vanished
// since the listing (a running cache reclaimed it); kDataLoss: not a valid segment.
absl::StatusOr<open_segment> open_read_only(const std::string& dir, const segment_file& f) {
  const std::string path = dir + "/" + f.name;
  open_segment s;
  // O_NONBLOCK: a FIFO under a segment's name must not hang the tool (S_ISREG rejects it next);
  // regular files ignore the flag.
  s.fd = gd::unique_fd(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  if (!s.fd) return gd::errno_status(errno, "open " + path);
  struct stat st {};
  if (::fstat(s.fd.get(), &st) != 0) return gd::errno_status(errno, "stat " + path);
  if (!S_ISREG(st.st_mode)) return absl::DataLossError(path + ": not a regular file");
  s.file_size = static_cast<std::uint64_t>(st.st_size);

  std::byte header[gd::segment_header_size] = {};
  const std::size_t want = std::min<std::uint64_t>(s.file_size, sizeof header);
  std::size_t got = 0;
  while (got < want) {
    const ssize_t n = ::pread(s.fd.get(), header + got, want - got, static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return gd::errno_status(errno, "read " + path);
    if (n == 0) break;  // shrank since fstat: decoding the short header reports it
    got += static_cast<std::size_t>(n);
  }
  auto h = gd::decode_segment_header(std::span<const std::byte>(header, got));
  if (!h.ok()) return absl::DataLossError(path + ": " + message_of(h.status()));
  if (h->id != f.id) {
    return absl::DataLossError(path + ": header names segment " + std::to_string(h->id));
  }
  s.header = *h;
  auto m = gd::mapping::map(s.fd.get(), std::min<std::uint64_t>(s.file_size, h->size), path);
  if (!m.ok()) return m.status();
  s.map = *std::move(m);
  return s;
}

// Fills `out` with the record's value as its codec decodes it.
absl::Status decode_value(const gd::record_view& r, std::uint64_t max_value_size,
                          std::vector<std::byte>& out) {
  // A checksummed size can still be absurd (a bug in a writer): refuse before allocating it.
  if (r.value_size > max_value_size) {
    return absl::DataLossError("value size " + std::to_string(r.value_size) +
                               " is larger than its segment");
  }
  out.resize(r.value_size);
  switch (r.meta.codec) {
    case goldylox::codec_id::none:
      return gd::none_codec().decompress(r.stored_value, out);
    case goldylox::codec_id::lz4:
      return gd::lz4_codec().decompress(r.stored_value, out);
    case goldylox::codec_id::zstd:
      return gd::zstd_codec().decompress(r.stored_value, out);
    case goldylox::codec_id::brotli:
      return gd::brotli_codec().decompress(r.stored_value, out);
  }
  return absl::DataLossError("unknown codec");
}

// --- replay: which record of each key is the one a restarted cache would serve ----------------

struct winner {
  std::uint64_t version = 0;
  std::uint64_t segment = 0;
  std::size_t offset = 0;
  std::size_t record_bytes = 0;
  std::uint64_t logical_bytes = 0;  // key + value before compression
  bool dead = false;                // a tombstone or expired: the key is gone
};

struct codec_totals {
  std::uint64_t records = 0, value_bytes = 0, stored_bytes = 0;
};

struct replay_state {
  absl::flat_hash_map<std::string, winner> keys;
  // Totals over what was read, gathered in the same pass so that they agree with `keys` even
  // while a running cache reclaims segments.
  std::uint64_t segments = 0, disk_bytes = 0, records = 0, record_bytes = 0, tombstones = 0;
  std::uint64_t expired_records = 0, corrupt_regions = 0, corrupt_bytes = 0;
  std::uint64_t bad_segments = 0, unreadable = 0;
  codec_totals per_codec[4];

  bool is_winner(const gd::record_view& r, std::uint64_t segment, std::size_t offset) const {
    const auto it =
        keys.find(std::string(reinterpret_cast<const char*>(r.key.data()), r.key.size()));
    return it != keys.end() && it->second.segment == segment && it->second.offset == offset;
  }
};

// Segments in id order, records in offset order, the highest version per key winning and a
// later record winning a tie, as recovery does (a re-inserted copy keeps its version).
replay_state replay(const std::string& dir, const directory_listing& listing, std::uint64_t now) {
  replay_state state;
  for (const segment_file& f : listing.segments) {
    auto s = open_read_only(dir, f);
    if (!s.ok()) {
      if (absl::IsNotFound(s.status())) {
        std::fprintf(stderr, "goldylox-inspect: %s vanished since the listing (reclaimed?)\n",
                     f.name.c_str());
        continue;
      }
      std::fprintf(stderr, "goldylox-inspect: skipped: %s\n", message_of(s.status()).c_str());
      ++(absl::IsDataLoss(s.status()) ? state.bad_segments : state.unreadable);
      continue;
    }
    ++state.segments;
    state.disk_bytes += s->file_size;
    const auto scan = gd::scan_records(s->bytes(), [&](const gd::record_view& r, std::size_t off) {
      ++state.records;
      state.record_bytes += r.size;
      const bool is_expired = !r.meta.tombstone && expired(r.meta, now);
      if (r.meta.tombstone) {
        ++state.tombstones;
      } else {
        if (is_expired) ++state.expired_records;
        codec_totals& c = state.per_codec[static_cast<std::size_t>(r.meta.codec)];
        ++c.records;
        c.value_bytes += r.value_size;
        c.stored_bytes += r.stored_value.size();
      }
      auto [it, fresh] = state.keys.try_emplace(
          std::string(reinterpret_cast<const char*>(r.key.data()), r.key.size()));
      if (!fresh && r.meta.version < it->second.version) return;
      it->second = winner{r.meta.version,
                          f.id,
                          off,
                          r.size,
                          r.key.size() + std::uint64_t{r.value_size},
                          r.meta.tombstone || is_expired};
    });
    state.corrupt_regions += scan.corrupt_regions;
    state.corrupt_bytes += scan.corrupt_bytes;
  }
  return state;
}

// --- verify ---------------------------------------------------------------------------------

// What the manifest says of the segments listed: which are missing or not the file it listed.
// The manifest is read before and after the listing: a running cache deletes a reclaimed
// segment only after writing a manifest without it, so a segment both copies list and the
// listing lacks was lost, not reclaimed meanwhile.
struct manifest_check {
  std::uint64_t missing = 0, replaced = 0, stale = 0;
  bool damaged = false;  // no valid manifest beside segments
  const gd::manifest_state* state = nullptr;
};

manifest_check check_manifest(const std::string& dir, const gd::manifest_read& before,
                              const gd::manifest_read& after, const directory_listing& listing) {
  manifest_check c;
  if (!before.exists || before.damaged || !after.exists || after.damaged) {
    c.damaged = !listing.segments.empty() || before.damaged || after.damaged;
    if (c.damaged) {
      std::printf("MANIFEST %s: the segments cannot be checked against a list\n",
                  before.exists ? "DAMAGED" : "MISSING");
    }
    return c;
  }
  c.state = &after.state;
  const auto present = [&](std::uint64_t id) {
    return std::any_of(listing.segments.begin(), listing.segments.end(),
                       [&](const segment_file& f) { return f.id == id; });
  };
  for (const gd::manifest_entry& e : before.state.segments) {
    const bool still_listed =
        std::any_of(after.state.segments.begin(), after.state.segments.end(),
                    [&](const gd::manifest_entry& a) { return a.id == e.id; });
    if (still_listed && !present(e.id)) {
      ++c.missing;
      std::printf("MISSING SEGMENT: %s is listed in the manifest and not in %s\n",
                  gd::segment_file_name(e.id).c_str(), dir.c_str());
    }
  }
  for (const segment_file& f : listing.segments) {
    const auto& segs = after.state.segments;
    const bool listed = std::any_of(segs.begin(), segs.end(),
                                    [&](const gd::manifest_entry& e) { return e.id == f.id; });
    if (!listed && f.id < after.state.next_id) {
      ++c.stale;
      std::printf("stale segment: %s was reclaimed (the next open deletes it)\n", f.name.c_str());
    }
  }
  return c;
}

int run_verify(const std::string& dir) {
  auto before = gd::read_manifest(dir);
  auto listing = list_directory(dir);
  if (!listing.ok()) {
    std::fprintf(stderr, "goldylox-inspect: %s\n", message_of(listing.status()).c_str());
    return exit_usage;
  }
  auto after = gd::read_manifest(dir);
  if (!before.ok() || !after.ok()) {
    std::fprintf(stderr, "goldylox-inspect: %s\n",
                 message_of(before.ok() ? after.status() : before.status()).c_str());
    return exit_damage;
  }
  manifest_check manifest = check_manifest(dir, *before, *after, *listing);
  std::uint64_t disk_bytes = 0, good = 0, regions = 0, corrupt_bytes = 0, bad_values = 0;
  std::uint64_t bad_segments = 0, truncated = 0, oversized = 0, unreadable = 0, segments = 0;
  std::vector<std::byte> value;
  constexpr std::size_t max_details = 10;  // per segment: enough to locate damage, not a flood

  std::printf("%-20s %12s %9s %15s %13s %10s %9s\n", "id", "bytes", "records", "corrupt_regions",
              "corrupt_bytes", "bad_values", "truncated");
  for (const segment_file& f : listing->segments) {
    auto s = open_read_only(dir, f);
    if (!s.ok()) {
      if (absl::IsNotFound(s.status())) {
        std::printf("%-20" PRIu64 " vanished since the listing (reclaimed by a running cache?)\n",
                    f.id);
      } else if (absl::IsDataLoss(s.status())) {
        ++bad_segments;
        std::printf("%-20" PRIu64 " CORRUPT SEGMENT: %s\n", f.id, message_of(s.status()).c_str());
      } else {
        ++unreadable;
        std::printf("%-20" PRIu64 " UNREADABLE: %s\n", f.id, message_of(s.status()).c_str());
      }
      continue;
    }
    ++segments;
    disk_bytes += s->file_size;
    std::vector<std::string> details;
    std::size_t seg_bad_values = 0, gap_bytes = 0, expected = gd::segment_header_size;
    const auto scan = gd::scan_records(s->bytes(), [&](const gd::record_view& r, std::size_t off) {
      // Between two records that decode, scan_records has skipped exactly one corrupt region.
      if (off > expected) {
        gap_bytes += off - expected;
        if (details.size() < max_details) {
          details.push_back("corrupt region at offset " + std::to_string(expected) + ", " +
                            std::to_string(off - expected) + " bytes");
        }
      }
      expected = off + r.size;
      if (r.meta.tombstone) return;
      if (auto st = decode_value(r, s->max_value_size(), value); !st.ok()) {
        ++seg_bad_values;
        if (details.size() < max_details) {
          details.push_back("record at offset " + std::to_string(off) +
                            ": value does not decode: " + message_of(st));
        }
      }
    });
    if (scan.corrupt_bytes > gap_bytes && details.size() < max_details) {
      details.push_back("corrupt region at offset " + std::to_string(scan.end) + ", " +
                        std::to_string(scan.corrupt_bytes - gap_bytes) +
                        " bytes (after the last record)");
    }
    if (s->extra_bytes() != 0) {
      ++oversized;
      details.push_back(std::to_string(s->extra_bytes()) + " bytes past the " +
                        std::to_string(s->header.size) + " the header gives");
    }
    if (s->truncated()) ++truncated;
    if (manifest.state != nullptr) {
      for (const gd::manifest_entry& e : manifest.state->segments) {
        if (e.id == f.id && (e.size != s->header.size || e.created_ns != s->header.created_ns)) {
          ++manifest.replaced;
          details.push_back("REPLACED: not the file the manifest lists under this id");
        }
      }
    }
    good += scan.records - seg_bad_values;
    regions += scan.corrupt_regions;
    corrupt_bytes += scan.corrupt_bytes;
    bad_values += seg_bad_values;
    std::printf("%-20" PRIu64 " %12llu %9zu %15zu %13zu %10zu %9s\n", f.id, ull(s->file_size),
                scan.records, scan.corrupt_regions, scan.corrupt_bytes, seg_bad_values,
                s->truncated() ? "yes" : "no");
    for (const std::string& d : details) std::printf("    %s\n", d.c_str());
  }
  for (const std::string& name : listing->foreign) {
    std::printf("foreign file: %s\n", name.c_str());
  }

  const bool damaged = regions + bad_values + bad_segments + truncated + oversized + unreadable +
                           manifest.missing + manifest.replaced + (manifest.damaged ? 1 : 0) !=
                       0;
  std::printf("\nsegments:             %llu (%llu bytes)\n", ull(segments), ull(disk_bytes));
  std::printf("good records:         %llu\n", ull(good));
  std::printf("corrupt records:      %llu regions (%llu bytes)\n", ull(regions),
              ull(corrupt_bytes));
  std::printf("undecodable values:   %llu\n", ull(bad_values));
  std::printf("corrupt segments:     %llu (bad header)\n", ull(bad_segments));
  std::printf("truncated segments:   %llu\n", ull(truncated));
  std::printf("missing segments:     %llu\n", ull(manifest.missing));
  if (manifest.replaced != 0) std::printf("replaced segments:    %llu\n", ull(manifest.replaced));
  if (manifest.stale != 0) std::printf("stale segments:       %llu\n", ull(manifest.stale));
  std::printf("manifest:             %s\n", manifest.damaged ? "DAMAGED or missing" : "ok");
  if (oversized != 0) std::printf("oversized segments:   %llu\n", ull(oversized));
  if (unreadable != 0) std::printf("unreadable segments:  %llu\n", ull(unreadable));
  std::printf("foreign files:        %zu\n", listing->foreign.size());
  std::printf("verdict:              %s\n", damaged ? "DAMAGED" : "ok");
  return damaged ? exit_damage : exit_ok;
}

// --- stats ----------------------------------------------------------------------------------

int run_stats(const std::string& dir) {
  auto listing = list_directory(dir);
  if (!listing.ok()) {
    std::fprintf(stderr, "goldylox-inspect: %s\n", message_of(listing.status()).c_str());
    return exit_usage;
  }
  const replay_state st = replay(dir, *listing, now_ns());
  std::uint64_t live = 0, live_bytes = 0, logical = 0;
  for (const auto& [key, w] : st.keys) {
    if (w.dead) continue;
    ++live;
    live_bytes += w.record_bytes;
    logical += w.logical_bytes;
  }

  std::printf("directory:       %s\n", dir.c_str());
  std::printf("segments:        %llu (%llu bytes on disk)\n", ull(st.segments), ull(st.disk_bytes));
  std::printf("records:         %llu (%llu bytes, %.1f%% of the disk)\n", ull(st.records),
              ull(st.record_bytes), 100.0 * ratio(st.record_bytes, st.disk_bytes));
  std::printf("tombstones:      %llu\n", ull(st.tombstones));
  std::printf("expired records: %llu\n", ull(st.expired_records));
  std::printf("distinct keys:   %zu\n", st.keys.size());
  std::printf("live entries:    %llu\n", ull(live));
  std::printf("live bytes:      %llu of %llu record bytes, live ratio %.3f\n", ull(live_bytes),
              ull(st.record_bytes), ratio(live_bytes, st.record_bytes));
  std::printf("logical bytes:   %llu (keys + uncompressed values of live entries)\n", ull(logical));
  std::printf("disk / logical:  %.3f\n", ratio(st.disk_bytes, logical));
  if (st.records != st.tombstones) {
    std::printf("\n%-8s %10s %14s %14s %7s\n", "codec", "records", "value_bytes", "stored_bytes",
                "ratio");
  }
  for (std::size_t i = 0; i < 4; ++i) {
    const codec_totals& c = st.per_codec[i];
    if (c.records == 0) continue;
    const std::string name(codec_name(static_cast<goldylox::codec_id>(i)));
    std::printf("%-8s %10llu %14llu %14llu %7.3f\n", name.c_str(), ull(c.records),
                ull(c.value_bytes), ull(c.stored_bytes), ratio(c.stored_bytes, c.value_bytes));
  }
  if (st.corrupt_regions + st.bad_segments != 0 || !listing->foreign.empty()) {
    std::printf(
        "\ndamage:          %llu corrupt regions (%llu bytes), %llu corrupt segments, %zu "
        "foreign files (goldylox-inspect verify for details)\n",
        ull(st.corrupt_regions), ull(st.corrupt_bytes), ull(st.bad_segments),
        listing->foreign.size());
  }
  return st.unreadable != 0 ? exit_damage : exit_ok;
}

// --- dump -----------------------------------------------------------------------------------

int run_dump(const std::string& dir, bool values, std::uint64_t limit) {
  auto listing = list_directory(dir);
  if (!listing.ok()) {
    std::fprintf(stderr, "goldylox-inspect: %s\n", message_of(listing.status()).c_str());
    return exit_usage;
  }
  const std::uint64_t now = now_ns();
  const replay_state state = replay(dir, *listing, now);
  std::uint64_t printed = 0;
  std::size_t unreadable = 0;
  std::vector<std::byte> value;
  for (const segment_file& f : listing->segments) {
    if (printed >= limit) break;
    auto s = open_read_only(dir, f);
    if (!s.ok()) {
      // replay() has already told stderr about it.
      if (!absl::IsNotFound(s.status()) && !absl::IsDataLoss(s.status())) ++unreadable;
      continue;
    }
    std::size_t expected = gd::segment_header_size, gap_bytes = 0;
    // scan_records cannot stop early; past the limit the callback only follows the gaps.
    const auto scan = gd::scan_records(s->bytes(), [&](const gd::record_view& r, std::size_t off) {
      const std::size_t gap = off - expected;
      gap_bytes += gap;
      expected = off + r.size;
      if (printed >= limit) return;
      if (gap != 0) {
        std::printf("seg=%" PRIu64 " off=%zu corrupt bytes=%zu\n", f.id, off - gap, gap);
      }
      const char* state_name = "stale";
      if (state.is_winner(r, f.id, off)) {
        state_name = r.meta.tombstone ? "erased" : expired(r.meta, now) ? "expired" : "live";
      }
      const std::string key = printable(r.key);
      const std::string codec(codec_name(r.meta.codec));
      std::string expiry = "never";
      if (r.meta.expiry_ns != 0) expiry = std::to_string(r.meta.expiry_ns);
      std::printf(
          "seg=%" PRIu64 " off=%zu key=%s ver=%" PRIu64 " codec=%s stored=%zu value=%" PRIu32
          " tomb=%d tag=0x%016" PRIx64 " expiry=%s %s",
          f.id, off, key.c_str(), r.meta.version, codec.c_str(), r.stored_value.size(),
          r.value_size, r.meta.tombstone ? 1 : 0, r.meta.type_tag, expiry.c_str(), state_name);
      if (values && !r.meta.tombstone) {
        if (auto st = decode_value(r, s->max_value_size(), value); st.ok()) {
          std::printf(" data=%s", printable(value).c_str());
        } else {
          std::printf(" data=<undecodable: %s>", message_of(st).c_str());
        }
      }
      std::printf("\n");
      ++printed;
    });
    if (printed < limit && scan.corrupt_bytes > gap_bytes) {
      std::printf("seg=%" PRIu64 " off=%zu corrupt bytes=%zu (after the last record)\n", f.id,
                  scan.end, scan.corrupt_bytes - gap_bytes);
    }
  }
  return unreadable + state.unreadable != 0 ? exit_damage : exit_ok;
}

// --- command line ---------------------------------------------------------------------------

int usage_error(const std::string& what) {
  std::fprintf(stderr, "goldylox-inspect: %s\n\n%.*s", what.c_str(),
               static_cast<int>(usage_text.size()), usage_text.data());
  return exit_usage;
}

int run(int argc, char** argv) {
  std::vector<std::string_view> args(argv + 1, argv + argc);
  if (std::find(args.begin(), args.end(), "--help") != args.end() ||
      std::find(args.begin(), args.end(), "-h") != args.end()) {
    std::printf("%.*s", static_cast<int>(usage_text.size()), usage_text.data());
    return exit_ok;
  }
  if (args.empty()) return usage_error("no command");
  const std::string_view command = args[0];
  if (command != "verify" && command != "stats" && command != "dump") {
    return usage_error("unknown command '" + std::string(command) + "'");
  }
  const bool is_dump = command == "dump";
  bool values = false;
  std::uint64_t limit = UINT64_MAX;
  std::vector<std::string_view> positional;
  bool options_done = false;
  for (std::size_t i = 1; i < args.size(); ++i) {
    const std::string_view a = args[i];
    if (options_done || a.empty() || a[0] != '-') {
      positional.push_back(a);
    } else if (a == "--") {
      options_done = true;
    } else if (is_dump && a == "--values") {
      values = true;
    } else if (is_dump && (a == "--limit" || a.starts_with("--limit="))) {
      std::string_view n;
      if (a == "--limit") {
        if (i + 1 == args.size()) return usage_error("--limit needs a number");
        n = args[++i];
      } else {
        n = a.substr(8);
      }
      const auto [end, ec] = std::from_chars(n.data(), n.data() + n.size(), limit);
      if (ec != std::errc() || end != n.data() + n.size() || n.empty()) {
        return usage_error("bad --limit '" + std::string(n) + "'");
      }
    } else {
      return usage_error("unknown option '" + std::string(a) + "' for " + std::string(command));
    }
  }
  if (positional.size() != 1) {
    return usage_error(positional.empty() ? "no directory given" : "more than one directory");
  }
  const std::string dir(positional[0]);
  if (command == "verify") return run_verify(dir);
  if (command == "stats") return run_stats(dir);
  return run_dump(dir, values, limit);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    // bad_alloc on a huge directory, or a codec's own failure: report it, never abort.
    std::fprintf(stderr, "goldylox-inspect: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "goldylox-inspect: unexpected error\n");
  }
  return exit_damage;
}
