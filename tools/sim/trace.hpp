// Cache traces for replay (goldylox-sim and the policy tests).
//
// Formats:
//   * oracleGeneral (libCacheSim): packed little-endian 24-byte records {uint32 timestamp,
//     uint64 object id, uint32 object size, int64 next access}, where next access is the 1-based
//     index of the next request to the same object, or -1. Plain, or zstd-compressed (read
//     through libzstd's streaming API, so a trace never has to fit in memory compressed and
//     decompressed at once). Records of size 0 are skipped, as libCacheSim does.
//   * text: one object id per line (decimal; any other token is hashed). Blank lines and lines
//     starting with '#' are skipped.
//   * csv: the id is column `id_column` (0-based) of each comma-separated line; a first line whose
//     id field is not a number is taken as a header.
// For text and csv the next-access indices are computed with one backward pass, so Belady works
// on every format.
//
// Errors name the file and the byte offset (oracleGeneral) or line (text, csv) where reading
// stopped: a truncated record, a corrupt zstd frame, an unreadable file. Nothing is silently
// dropped.
#pragma once

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <zstd.h>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "goldylox/detail/common/platform.hpp"
#include "goldylox/version.hpp"

GOLDYLOX_BEGIN_NAMESPACE
namespace detail {

struct trace_request {
  std::uint64_t id;
  std::int64_t next_access;  // 1-based index of the next request for id; -1: never again
};

enum class trace_format { automatic, oracle_general, text, csv };

class trace_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Feeds the decompressed (or raw) bytes of a file to `sink(const char*, size_t)` in chunks.
template <class Sink>
void read_bytes(const std::string& path, bool zstd_compressed, Sink&& sink) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) throw trace_error(path + ": cannot open: " + std::strerror(errno));
  std::vector<char> in(1 << 20);
  if (!zstd_compressed) {
    for (;;) {
      const std::size_t n = std::fread(in.data(), 1, in.size(), f.get());
      if (n > 0) sink(in.data(), n);
      if (n < in.size()) {
        if (std::ferror(f.get())) throw trace_error(path + ": read error");
        return;
      }
    }
  }
  std::unique_ptr<ZSTD_DCtx, std::size_t (*)(ZSTD_DCtx*)> ctx(ZSTD_createDCtx(), &ZSTD_freeDCtx);
  if (!ctx) throw trace_error(path + ": out of memory for a zstd context");
  std::vector<char> out(ZSTD_DStreamOutSize());
  std::uint64_t consumed = 0;
  std::size_t last = 0;  // ZSTD_decompressStream's last hint: 0 means a frame just ended
  for (;;) {
    const std::size_t n = std::fread(in.data(), 1, in.size(), f.get());
    if (n == 0) {
      if (std::ferror(f.get())) throw trace_error(path + ": read error");
      break;
    }
    ZSTD_inBuffer input{in.data(), n, 0};
    while (input.pos < input.size) {
      ZSTD_outBuffer output{out.data(), out.size(), 0};
      last = ZSTD_decompressStream(ctx.get(), &output, &input);
      if (ZSTD_isError(last)) {
        throw trace_error(path + ": corrupt zstd data near compressed offset " +
                          std::to_string(consumed + input.pos) + ": " + ZSTD_getErrorName(last));
      }
      if (output.pos > 0) sink(out.data(), output.pos);
    }
    consumed += n;
  }
  if (last != 0) {
    throw trace_error(path + ": truncated zstd stream (it ends inside a frame, after " +
                      std::to_string(consumed) + " compressed bytes)");
  }
}

inline bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

inline trace_format guess_format(const std::string& path) {
  std::string_view p = path;
  if (ends_with(p, ".zst")) p.remove_suffix(4);
  if (p.find("oracleGeneral") != std::string_view::npos || ends_with(p, ".bin")) {
    return trace_format::oracle_general;
  }
  if (ends_with(p, ".csv")) return trace_format::csv;
  return trace_format::text;
}

inline void fill_next_access(std::vector<trace_request>& reqs) {
  absl::flat_hash_map<std::uint64_t, std::int64_t> next;
  for (std::size_t i = reqs.size(); i-- > 0;) {
    auto [it, inserted] = next.try_emplace(reqs[i].id, -1);
    reqs[i].next_access = it->second;
    it->second = static_cast<std::int64_t>(i) + 1;
  }
}

inline std::vector<trace_request> read_oracle_general(const std::string& path, bool zstd) {
  constexpr std::size_t record = 24;
  std::vector<trace_request> out;
  char partial[record];
  std::size_t have = 0;
  std::uint64_t offset = 0;  // decompressed bytes seen
  std::uint64_t skipped = 0;
  const auto take = [&](const char* r) {
    const auto id = load_le<std::uint64_t>(r + 4);
    const auto size = load_le<std::uint32_t>(r + 12);
    const auto next = load_le<std::int64_t>(r + 16);
    if (size == 0) {
      ++skipped;
      return;
    }
    out.push_back({id, next});
  };
  read_bytes(path, zstd, [&](const char* data, std::size_t n) {
    offset += n;
    while (n > 0) {
      if (have == 0 && n >= record) {
        take(data);
        data += record;
        n -= record;
        continue;
      }
      const std::size_t k = std::min(record - have, n);
      std::memcpy(partial + have, data, k);
      have += k;
      data += k;
      n -= k;
      if (have == record) {
        take(partial);
        have = 0;
      }
    }
  });
  if (have != 0) {
    throw trace_error(path + ": truncated oracleGeneral trace: the record at byte offset " +
                      std::to_string(offset - have) + " has " + std::to_string(have) +
                      " of its 24 bytes");
  }
  // The stored next-access values count the skipped records too; renumber.
  if (skipped != 0) {
    fill_next_access(out);
    return out;
  }
  // Next-access values written by a libCacheSim conversion of a different slice of a trace could
  // point backwards or past the end; Belady would then be wrong, so check them here.
  const auto n = static_cast<std::int64_t>(out.size());
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t next = out[static_cast<std::size_t>(i)].next_access;
    if (next != -1 && (next <= i + 1 || next > n)) {
      throw trace_error(path + ": malformed oracleGeneral record " + std::to_string(i) +
                        " (byte offset " + std::to_string(i * 24) + "): next access " +
                        std::to_string(next) + " is not a later request of this trace");
    }
  }
  return out;
}

// Object ids from text: decimal numbers as they are, anything else hashed.
inline std::uint64_t parse_id(std::string_view token) {
  std::uint64_t v = 0;
  bool numeric = !token.empty() && token.size() <= 19;
  for (const char c : token) {
    if (c < '0' || c > '9') {
      numeric = false;
      break;
    }
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return numeric ? v : absl::Hash<std::string_view>{}(token);
}

inline std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

inline std::vector<trace_request> read_lines(const std::string& path, bool zstd, bool csv,
                                             unsigned id_column) {
  std::vector<trace_request> out;
  std::string pending;
  std::uint64_t line_no = 0;
  const auto line = [&](std::string_view l) {
    ++line_no;
    l = trim(l);
    if (l.empty() || l.front() == '#') return;
    std::string_view field = l;
    if (csv) {
      for (unsigned c = 0; c < id_column; ++c) {
        const std::size_t comma = field.find(',');
        if (comma == std::string_view::npos) {
          throw trace_error(path + ": line " + std::to_string(line_no) + " has no column " +
                            std::to_string(id_column));
        }
        field.remove_prefix(comma + 1);
      }
      field = trim(field.substr(0, field.find(',')));
      if (line_no == 1 && !field.empty() && (field.front() < '0' || field.front() > '9')) {
        return;  // a header
      }
    } else {
      field = field.substr(0, field.find_first_of(" \t"));
    }
    if (field.empty()) {
      throw trace_error(path + ": line " + std::to_string(line_no) + " has an empty id");
    }
    out.push_back({parse_id(field), -1});
  };
  read_bytes(path, zstd, [&](const char* data, std::size_t n) {
    std::string_view chunk(data, n);
    for (std::size_t nl; (nl = chunk.find('\n')) != std::string_view::npos;) {
      if (pending.empty()) {
        line(chunk.substr(0, nl));
      } else {
        pending.append(chunk.substr(0, nl));
        line(pending);
        pending.clear();
      }
      chunk.remove_prefix(nl + 1);
    }
    pending.append(chunk);
  });
  if (!pending.empty()) line(pending);
  fill_next_access(out);
  return out;
}

inline std::vector<trace_request> read_trace(const std::string& path,
                                             trace_format format = trace_format::automatic,
                                             unsigned csv_id_column = 0) {
  const bool zstd = ends_with(path, ".zst");
  if (format == trace_format::automatic) format = guess_format(path);
  switch (format) {
    case trace_format::oracle_general:
      return read_oracle_general(path, zstd);
    case trace_format::csv:
      return read_lines(path, zstd, true, csv_id_column);
    default:
      return read_lines(path, zstd, false, 0);
  }
}

}  // namespace detail
GOLDYLOX_END_NAMESPACE
