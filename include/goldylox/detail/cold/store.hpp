// The cold tier's store: keys and values as bytes, in segment files on disk (segment.hpp), found
// through a compact in-RAM index (index.hpp), surviving restarts and crashes.
//
// Writes. A put compresses the value outside any lock (keeping it raw when compression does not
// shrink it), then, under the writer mutex, takes the next entry version, encodes the record,
// appends it to the active segment with pwrite and points the index at it. Versions grow in the
// order records are indexed, so the newest write always wins, and recovery, which replays
// segments oldest first and keeps the highest version per key, rebuilds the same answer. An
// erase appends a tombstone (so it survives a restart) and unindexes the key.
//
// Reads. A get hashes the key, probes its index shard under the shared lock, verifies the full
// key and the record's checksum through the segment's mapping and decompresses (or copies) the
// value from the mapping into a per-thread buffer, still under the shared lock that keeps the
// segment mapped; the caller's function runs after it is released. No system call, no exclusive
// lock. A record that fails its checksum or does not decompress is never returned; it is
// unindexed and counted.
//
// Space. The segments' sizes add up to at most max_bytes, whatever segment sizes earlier runs
// used (one segment more while the oldest is reclaimed; a single segment larger than the whole
// budget, left by an earlier run, stays alone until the next roll). When the active segment fills
// it is sealed and a new one created; if that exceeds the budget, the oldest segment is reclaimed:
// each entry still indexed there is either re-appended to the new segment, if it was read since it
// was written or last re-appended and fits the re-insertion budget, or dropped (counted as an
// eviction); then the file is deleted. Overwritten records and tombstones vanish with their
// segment. Reclaiming oldest first keeps tombstones correct: when a tombstone's segment goes, every
// older record of its key is gone.
//
// Durability (docs/cold-tier.md has the exact promises): `none` never syncs; `periodic` syncs
// every segment written since the last sync every sync_interval, as a periodic job on the
// options' worker pool (background/pool.hpp), or on a thread of its own without one;
// `on_close` syncs everything at close; `every_write` syncs before put and erase return (writers
// that wait at the same time share one round of syncs). sync() forces it in any mode.
//
// Lock order: writer mutex, then index shard locks. Readers hold one shard lock at a time.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <span>
#include <stop_token>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include <dirent.h>
#include <unistd.h>
#include <xxhash.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "goldylox/detail/background/pool.hpp"
#include "goldylox/detail/codec/adaptive.hpp"
#include "goldylox/detail/codec/codec.hpp"
#include "goldylox/detail/cold/durability.hpp"
#include "goldylox/detail/cold/file_io.hpp"
#include "goldylox/detail/cold/guarded_read.hpp"
#include "goldylox/detail/cold/index.hpp"
#include "goldylox/detail/cold/manifest.hpp"
#include "goldylox/detail/cold/record.hpp"
#include "goldylox/detail/cold/segment.hpp"

GOLDYLOX_BEGIN_NAMESPACE

namespace detail {

inline std::uint64_t wall_clock_ns() noexcept {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

struct cold_store_options {
  std::string path;
  std::uint64_t max_bytes = std::uint64_t{1} << 30;
  std::uint64_t segment_bytes = 0;  // 0: max_bytes / 16, a power of two in [1 MiB, 64 MiB]
  cold_durability durability = cold_durability::periodic;
  std::chrono::milliseconds sync_interval{1000};
  codec_id codec = codec_id::zstd;
  std::optional<int> codec_level;  // unset: the codec's own default (zstd 3, lz4 0, brotli 5)
  // Choose per value type and record between none, LZ4 and zstd at codec_level
  // (codec/adaptive.hpp); `codec` is then ignored.
  bool adaptive = false;
  // Share of a fresh segment that reclamation may fill with re-inserted entries.
  double reinsert_share = 0.5;
  // Refuse to open (kDataLoss) when anything the directory should hold is missing or damaged: a
  // listed segment absent, unreadable or replaced, a damaged record (a tombstone among them),
  // a damaged or missing manifest. Without it the store opens with what is intact and counts
  // the rest.
  bool strict_open = false;
  // periodic: the pool the sync runs on, as a periodic job; null: a thread of the store's own.
  std::shared_ptr<worker_pool> pool;
};

struct cold_store_stats {
  std::size_t entries = 0;
  std::size_t segments = 0;
  std::uint64_t disk_bytes = 0;  // segment files' sizes
  std::uint64_t live_bytes = 0;  // bytes of records the index points to
  std::size_t index_bytes = 0;
  std::uint64_t puts = 0, hits = 0, misses = 0, erases = 0, expired = 0;
  std::uint64_t value_bytes_written = 0, stored_bytes_written = 0;  // before and after codecs
  std::uint64_t records_by_codec[4] = {};  // records written, by codec_id (none, lz4, zstd, brotli)
  std::uint64_t reclaimed_segments = 0, reinserted = 0, evicted = 0;
  std::uint64_t spilled_segments = 0;  // segments compaction started for re-inserted entries
  std::uint64_t write_errors = 0, sync_errors = 0, syncs = 0;
  // every_write: records appended to put a key back as it was after a write whose sync failed
  std::uint64_t restored = 0;
  // Found on open, or on a read: skipped, never served.
  std::uint64_t corrupt_records = 0, corrupt_bytes = 0, corrupt_segments = 0, foreign_files = 0;
  // Found on open: segments the manifest lists that are not there; whether the manifest itself
  // was missing (beside segments) or damaged; segment files a manifest no longer listed (their
  // reclamation's deletion had not happened), deleted.
  std::uint64_t missing_segments = 0, damaged_manifests = 0, stale_segments = 0;
  std::uint64_t recovered_records = 0;
  std::uint64_t recovery_ns = 0;
  std::uint64_t durable_version = 0;  // every write up to this entry version is synced
  std::uint64_t last_version = 0;
};

class cold_store {
 public:
  static constexpr std::uint64_t max_total_bytes = std::uint64_t{1} << 42;  // 39 bits of 8 bytes
  // Versions the store may hand out beyond the last manifest's limit before writing another
  // (every roll writes one too): one manifest write per this many writes at most.
  static constexpr std::uint64_t version_lease = std::uint64_t{1} << 20;

  static absl::Status validate(const cold_store_options& o) {
    const auto bad = [](auto&&... what) {
      return absl::InvalidArgumentError(absl::StrCat("goldylox cold tier: ", what...));
    };
    if (o.path.empty()) return bad("the storage path is empty");
    const std::uint64_t seg = effective_segment_bytes(o);
    if (seg < (std::uint64_t{1} << 16) || seg > (std::uint64_t{1} << 32) || (seg & (seg - 1))) {
      return bad("segment size ", seg, " is not a power of two from 64 KiB to 4 GiB");
    }
    if (o.max_bytes < 2 * seg) {
      return bad("capacity ", o.max_bytes, " bytes holds fewer than two segments of ", seg);
    }
    if (o.max_bytes > max_total_bytes) {
      return bad("capacity ", o.max_bytes, " bytes is above the 4 TiB the index can address");
    }
    // What recovery will ask of the index and of the process, checked now, so that every
    // accepted configuration opens (on a directory its own runs wrote).
    const std::uint64_t slots = slot_count_for(o.max_bytes / seg);
    if (auto st = check_addressable(slots, seg); !st.ok()) return st;
    if (const std::uint64_t limit = mapping_limit(); slots > limit) {
      return bad(o.max_bytes / seg, " segments of ", seg, " bytes need up to ", slots,
                 " memory mappings (one per segment); vm.max_map_count allows this process ",
                 2 * limit,
                 ", half of which the cold tier may take; use larger segments or a "
                 "smaller capacity");
    }
    if (o.sync_interval.count() <= 0 && o.durability == cold_durability::periodic) {
      return bad("sync interval must be positive");
    }
    if (!(o.reinsert_share >= 0.0 && o.reinsert_share <= 1.0)) {
      return bad("reinsert share ", o.reinsert_share, " is outside 0..1");
    }
    try {
      (void)make_compressor(o.codec, o.codec_level);
    } catch (const std::exception& e) {
      return bad(e.what());
    }
    return absl::OkStatus();
  }

  // Segments a store of `max_segments` (the budget's) may hold at once: one more being created
  // while the oldest is reclaimed, the oldest itself, and two that compaction may start.
  static std::uint64_t slot_count_for(std::uint64_t max_segments) noexcept {
    return max_segments + 4;
  }

  // Memory mappings the cold tier may take: half of vm.max_map_count (the process needs the
  // rest: its heap, libraries, thread stacks, other caches). No limit if it cannot be read.
  static std::uint64_t mapping_limit() noexcept {
    std::FILE* f = std::fopen("/proc/sys/vm/max_map_count", "re");
    if (f == nullptr) return std::numeric_limits<std::uint64_t>::max();
    unsigned long long n = 0;
    const bool read = std::fscanf(f, "%llu", &n) == 1;
    std::fclose(f);
    return read && n > 0 ? n / 2 : std::numeric_limits<std::uint64_t>::max();
  }

  // Index locations hold a slot above the record's offset / 8: offsets within a segment of
  // `segment_bytes` take this many bits.
  static int offset_bits_for(std::uint64_t segment_bytes) noexcept {
    int bits = 0;
    while ((std::uint64_t{1} << (bits + 3)) < segment_bytes) ++bits;
    return bits;
  }

  // Whether `slots` slots of `segment_bytes` each (the budget's segments, plus the active one and
  // one being reclaimed, or what recovery found) fit the index's location bits: 4 TiB in all.
  static absl::Status check_addressable(std::uint64_t slots, std::uint64_t segment_bytes) {
    const int bits = offset_bits_for(segment_bytes);
    if (bits >= cold_index::location_bits ||
        slots > (std::uint64_t{1} << (cold_index::location_bits - bits))) {
      return absl::InvalidArgumentError(absl::StrCat(
          "goldylox cold tier: ", slots, " segment slots of ", segment_bytes,
          " bytes are more than the index can address (4 TiB); use a smaller capacity"));
    }
    return absl::OkStatus();
  }

  static std::uint64_t effective_segment_bytes(const cold_store_options& o) noexcept {
    if (o.segment_bytes != 0) return o.segment_bytes;
    std::uint64_t s = std::uint64_t{1} << 20;
    while (s < (std::uint64_t{1} << 26) && s * 2 * 16 <= o.max_bytes) s *= 2;
    return s;
  }

  // Opens (creating if needed) the store in o.path and rebuilds its index from the segments.
  static absl::StatusOr<std::unique_ptr<cold_store>> open(cold_store_options o) {
    if (o.adaptive) o.codec = codec_id::zstd;  // the level is zstd's
    if (auto st = validate(o); !st.ok()) return st;
    if (auto st = ensure_directory(o.path); !st.ok()) return st;
    auto lock = directory_lock::acquire(o.path);
    if (!lock.ok()) return lock.status();
    std::unique_ptr<cold_store> s(new cold_store(std::move(o), *std::move(lock)));
    if (auto st = s->recover(); !st.ok()) return st;
    s->start_syncer();
    return s;
  }

  cold_store(const cold_store&) = delete;
  cold_store& operator=(const cold_store&) = delete;
  ~cold_store() { (void)close(); }

  // Stores value under key. kInvalidArgument if the record cannot fit a segment;
  // kResourceExhausted if the disk is full; kFailedPrecondition after close(). On any error the
  // store is unchanged for this key and keeps serving.
  absl::Status put(std::span<const std::byte> key, std::span<const std::byte> value,
                   std::uint64_t type_tag, std::uint64_t expiry_ns = 0) {
    if (auto st = check_fits(key.size(), value.size()); !st.ok()) return st;
    auto& buf = scratch();
    const compressed c = compress(value, type_tag, buf.compressed);
    return append_value(key, c, value.size(), type_tag, expiry_ns, buf);
  }

  // A value compressed (or kept raw) ahead of its put_prepared(): the part of a put that needs no
  // lock, for a caller that must hold a lock of its own while it stores (the cache's demotion
  // writer holds the key's home lock) and should hold it only for the append.
  class prepared_value {
   public:
    std::size_t size() const noexcept { return value_size_; }

   private:
    friend class cold_store;
    std::vector<std::byte> bytes_;  // exactly what the record stores: compressed, or the raw value
    codec_id codec_ = codec_id::none;
    std::size_t value_size_ = 0;
    std::uint64_t type_tag_ = 0;
    std::uint64_t expiry_ns_ = 0;
  };

  // Compresses value into `out` as put() would (the same codec choice), reusing out's buffers.
  // Needs no lock and changes nothing in the store.
  void prepare(std::span<const std::byte> value, std::uint64_t type_tag, prepared_value& out,
               std::uint64_t expiry_ns = 0) {
    const compressed c = compress(value, type_tag, out.bytes_);
    out.codec_ = c.codec;
    if (c.codec == codec_id::none) {
      out.bytes_.assign(value.begin(), value.end());
    } else {
      out.bytes_.resize(c.bytes.size());  // the compressed bytes lead the buffer: keeps them
    }
    out.value_size_ = value.size();
    out.type_tag_ = type_tag;
    out.expiry_ns_ = expiry_ns;
  }

  // put() of a prepared value: the same checks, outcomes and guarantees.
  absl::Status put_prepared(std::span<const std::byte> key, const prepared_value& p) {
    if (auto st = check_fits(key.size(), p.value_size_); !st.ok()) return st;
    const compressed c{std::span<const std::byte>(p.bytes_), p.codec_};
    return append_value(key, c, p.value_size_, p.type_tag_, p.expiry_ns_, scratch());
  }

  // Calls fn(const record_meta&, std::span<const std::byte> value) with the value stored under
  // key. kNotFound if absent or expired; kDataLoss if the record failed its checksum (it is then
  // unindexed). fn runs with no lock held.
  template <class Fn>
  absl::Status read(std::span<const std::byte> key, Fn&& fn) {
    auto& buf = scratch();
    record_meta meta;
    const std::uint64_t h = hash_key(key);
    auto& shard = index_.shard_for(h);
    read_counters& counts = read_stripes_[(h >> 52) % read_stripe_count];
    std::uint64_t loc = 0;
    absl::Status damage;
    std::span<const std::byte> value;
    {
      // The record is copied out of the mapping (a guarded read: the file may have been cut
      // underneath) under the shared lock that keeps the segment mapped; a raw value is handed
      // to fn from that copy, a compressed one is decompressed from it into this thread's buffer.
      std::shared_lock lock(shard.mutex());
      mapping_fault_flag() = false;
      auto* slot = find_key(shard, h, key);
      if (slot == nullptr) {
        if (mapping_fault_flag()) {
          runtime_corrupt_.fetch_add(1, std::memory_order_relaxed);
          return truncated_error();
        }
        counts.misses.fetch_add(1, std::memory_order_relaxed);
        return absl::NotFoundError("not in the cold tier");
      }
      loc = slot->load(std::memory_order_relaxed) & cold_index::location_mask;
      if (!copy_record(loc, buf.copy)) {
        damage = truncated_error();  // counted by drop_corrupt
      } else if (auto rec = decode_record(buf.copy); !rec.ok()) {
        damage = absl::DataLossError("goldylox cold tier: a record failed its checksum");
      } else if (rec->meta.expiry_ns != 0 && wall_clock_ns() >= rec->meta.expiry_ns) {
        counts.expired.fetch_add(1, std::memory_order_relaxed);
        return absl::NotFoundError("expired");
      } else if (rec->value_size > segment_bytes_) {  // no value of this store is that large
        damage = absl::DataLossError("goldylox cold tier: a record claims an impossible size");
      } else if (rec->meta.codec == codec_id::none) {
        if (rec->stored_value.size() != rec->value_size) {
          damage = absl::DataLossError("goldylox cold tier: raw record of the wrong size");
        } else {
          value = rec->stored_value;
          meta = rec->meta;
        }
      } else {
        buf.value.resize(rec->value_size);
        damage = decompress(rec->meta.codec, rec->stored_value, buf.value);
        value = buf.value;
        meta = rec->meta;
      }
      if (damage.ok()) cold_index::shard::mark_accessed(slot);
    }
    if (!damage.ok()) {
      drop_corrupt(h, loc);
      return damage;
    }
    counts.hits.fetch_add(1, std::memory_order_relaxed);
    fn(static_cast<const record_meta&>(meta), value);
    return absl::OkStatus();
  }

  // Removes key; false if it was not stored. The removal is durable like a put.
  absl::StatusOr<bool> erase(std::span<const std::byte> key) {
    if (key.size() > segment_bytes_) return false;
    std::uint64_t version;
    write_outcome outcome;
    {
      std::lock_guard lock(writer_mu_);
      if (closed_) return absl::FailedPreconditionError("goldylox cold tier: store is closed");
      const std::uint64_t h = hash_key(key);
      auto& shard = index_.shard_for(h);
      {
        std::shared_lock probe(shard.mutex());
        if (find_key(shard, h, key) == nullptr) return false;
      }
      auto next = next_version_locked();
      if (!next.ok()) return next.status();
      version = *next;
      auto& buf = scratch();
      buf.record.resize(record_size(key.size(), 0));
      encode_record(buf.record, record_meta{codec_id::none, true, 0, version, 0}, key, {}, 0);
      auto loc = append_locked(buf.record);  // may reclaim, which may drop the key: look again
      if (!loc.ok()) return loc.status();
      version_ = version;
      table_[segment_slot_of(*loc)].live_bytes -=
          buf.record.size();  // tombstones are not live data
      if (!sync_each_write()) {
        unindex_locked(h, key);
        ++counters_.erases;
        return true;
      }
      pending_.push_back(pending_write{
          version, true, h, std::string(reinterpret_cast<const char*>(key.data()), key.size()),
          *loc, 0, 0, pending_write::waiting, &outcome});
    }
    const write_outcome& done = await_publication(version, outcome);
    if (!done.status.ok()) return done.status;
    return done.existed;
  }

  // Whether key is stored (an index probe and a key compare; the record's checksum is checked
  // by read()).
  bool contains(std::span<const std::byte> key) const {
    const std::uint64_t h = hash_key(key);
    auto& shard = index_.shard_for(h);
    std::shared_lock lock(shard.mutex());
    return find_key(shard, h, key) != nullptr;
  }

  // The entry version of key's current record, or 0 if it has none: whether the record a reader
  // saw is still the one stored.
  std::uint64_t version_of(std::span<const std::byte> key) const {
    const std::uint64_t h = hash_key(key);
    auto& shard = index_.shard_for(h);
    std::shared_lock lock(shard.mutex());
    const auto* slot = find_key(shard, h, key);
    if (slot == nullptr) return 0;
    const auto bytes =
        record_bytes(slot->load(std::memory_order_relaxed) & cold_index::location_mask);
    std::byte version[8];
    if (!guarded_copy(version, bytes.data() + 32, sizeof version)) return 0;
    return load_le<std::uint64_t>(version);
  }

  // Removes every entry by deleting every segment (no tombstones needed: the records go too).
  void clear() {
    std::lock_guard lock(writer_mu_);
    const std::uint64_t evicted = counters_.evicted;
    active_.reset();
    while (!order_.empty()) reclaim_oldest_locked(false, 0, 0);
    counters_.evicted = evicted;
    (void)commit_layout_locked();  // counted; the files stay, unlisted, for the next open
  }

  // Makes every write so far durable (fdatasync of the unsynced segments and the directory).
  absl::Status sync() { return sync_pending(); }

  // Syncs as the durability mode asks, stops the background thread, refuses further writes and
  // releases the directory's lock, so that another store may open the directory (even if the
  // sync failed). Reads keep working until the store is destroyed.
  absl::Status close() {
    {
      std::lock_guard lock(writer_mu_);
      if (closed_) return absl::OkStatus();
      closed_ = true;
    }
    sync_job_.reset();  // waits for a sync in progress
    if (syncer_.joinable()) {
      syncer_.request_stop();
      syncer_.join();
    }
    absl::Status st;
    if (options_.durability != cold_durability::none) st = sync_pending();
    lock_ = directory_lock();  // only the first close() gets here
    return st;
  }

  cold_store_stats stats() const {
    cold_store_stats s;
    {
      std::lock_guard lock(writer_mu_);
      s = counters_;
      s.segments = order_.size();
      s.disk_bytes = disk_bytes_;
      for (const std::uint32_t slot : order_) s.live_bytes += table_[slot].live_bytes;
      s.last_version = version_;
    }
    for (const read_counters& c : read_stripes_) {
      s.hits += c.hits.load(std::memory_order_relaxed);
      s.misses += c.misses.load(std::memory_order_relaxed);
      s.expired += c.expired.load(std::memory_order_relaxed);
    }
    s.corrupt_records += runtime_corrupt_.load(std::memory_order_relaxed);
    s.durable_version = durable_version_.load(std::memory_order_acquire);
    s.entries = index_.size();
    s.index_bytes = index_.memory_bytes();
    return s;
  }

  // Entries indexed now (what stats().entries reports, without the rest of stats()).
  std::size_t size() const { return index_.size(); }

  const cold_store_options& options() const noexcept { return options_; }
  std::uint64_t segment_bytes() const noexcept { return segment_bytes_; }

  static std::uint64_t hash_key(std::span<const std::byte> key) noexcept {
    return XXH3_64bits(key.data(), key.size());
  }

 private:
  using compressor_t = std::variant<none_codec, lz4_codec, zstd_codec, brotli_codec>;

  struct table_entry {
    std::shared_ptr<segment> seg;
    std::uint64_t live_bytes = 0;
    bool synced = true;
  };

  // What a published every_write write did, for the writer waiting on it.
  struct write_outcome {
    bool done = false;
    bool existed = false;  // an erase found the key
    absl::Status status;
  };

  struct pending_write {
    std::uint64_t version;
    bool tombstone;
    std::uint64_t hash;
    std::string key;
    std::uint64_t location;
    std::uint64_t segment_id;  // the segment the value went to (puts)
    std::size_t size;          // the record's bytes (puts)
    enum { waiting, synced, failed } state;
    write_outcome* outcome;  // on the writer's stack; it waits until `done`
  };

  struct scratch_buffers {
    std::vector<std::byte> compressed, record, value;
    std::vector<std::byte> copy;  // a record copied out of a mapping (reads, reclamation)
  };

  cold_store(cold_store_options o, directory_lock lock)
      : options_(std::move(o)),
        lock_(std::move(lock)),
        segment_bytes_(effective_segment_bytes(options_)),
        max_segments_(options_.max_bytes / segment_bytes_),
        compressor_(make_compressor(options_.codec, options_.codec_level)),
        adaptive_(options_.adaptive
                      ? std::make_unique<adaptive_codec>(options_.codec_level.value_or(3))
                      : nullptr) {}

  static compressor_t make_compressor(codec_id id, std::optional<int> level) {
    switch (id) {
      case codec_id::lz4:
        return level ? lz4_codec(*level) : lz4_codec();
      case codec_id::zstd:
        return level ? zstd_codec(*level) : zstd_codec();
      case codec_id::brotli:
        return level ? brotli_codec(*level) : brotli_codec();
      case codec_id::none:
        break;
    }
    return none_codec{};
  }

  // Codec objects hold only their level and are documented as single-threaded: each thread
  // works on its own copy.
  compressor_t& compressor() {
    thread_local std::uint64_t owner = 0;
    thread_local compressor_t mine;
    if (owner != instance_) {
      mine = compressor_;
      owner = instance_;
    }
    return mine;
  }

  static std::uint64_t next_instance() noexcept {
    static std::atomic<std::uint64_t> n{0};
    return n.fetch_add(1, std::memory_order_relaxed) + 1;
  }

  static scratch_buffers& scratch() {
    thread_local scratch_buffers b;
    return b;
  }

  static absl::Status decompress(codec_id id, std::span<const std::byte> in,
                                 std::span<std::byte> out) {
    switch (id) {
      case codec_id::lz4:
        return lz4_codec().decompress(in, out);
      case codec_id::zstd:
        return zstd_codec().decompress(in, out);
      case codec_id::brotli:
        return brotli_codec().decompress(in, out);
      case codec_id::none:
        break;
    }
    return none_codec().decompress(in, out);
  }

  // A value as a record stores it: compressed bytes (in the buffer passed to compress()) or the
  // raw value itself, and the codec that says which.
  struct compressed {
    std::span<const std::byte> bytes;
    codec_id codec = codec_id::none;
  };

  // The configured codec's (or the adaptive choice's) output in `buffer`, or the raw value when
  // compression does not shrink it.
  compressed compress(std::span<const std::byte> value, std::uint64_t type_tag,
                      std::vector<std::byte>& buffer) {
    if (adaptive_) {
      const adaptive_codec::choice c = adaptive_->compress(type_tag, value, buffer);
      if (c.codec != codec_id::none)
        return {std::span<const std::byte>(buffer.data(), c.size), c.codec};
    } else if (options_.codec != codec_id::none && !value.empty()) {
      buffer.resize(std::visit([&](auto& c) { return c.bound(value.size()); }, compressor()));
      auto n = std::visit([&](auto& c) { return c.compress(value, buffer); }, compressor());
      if (n.ok() && *n < value.size()) {  // raw when compression does not pay
        return {std::span<const std::byte>(buffer.data(), *n), options_.codec};
      }
    }
    return {value, codec_id::none};
  }

  // The locked part of a put: a version, the record, its append and its index entry (and with
  // every_write, the wait for its sync).
  absl::Status append_value(std::span<const std::byte> key, const compressed& stored,
                            std::size_t value_size, std::uint64_t type_tag, std::uint64_t expiry_ns,
                            scratch_buffers& buf) {
    record_meta meta{stored.codec, false, type_tag, 0, expiry_ns};
    write_outcome outcome;
    {
      std::lock_guard lock(writer_mu_);
      if (closed_) return absl::FailedPreconditionError("goldylox cold tier: store is closed");
      auto version = next_version_locked();
      if (!version.ok()) return version.status();
      meta.version = *version;
      buf.record.resize(record_size(key.size(), stored.bytes.size()));
      encode_record(buf.record, meta, key, stored.bytes, value_size);
      auto loc = append_locked(buf.record);
      if (!loc.ok()) return loc.status();
      version_ = meta.version;
      ++counters_.records_by_codec[static_cast<int>(stored.codec)];
      counters_.value_bytes_written += value_size;
      counters_.stored_bytes_written += stored.bytes.size();
      if (!sync_each_write()) return index_put_locked(hash_key(key), key, *loc, buf.record.size());
      pending_.push_back(
          pending_write{meta.version, false, hash_key(key),
                        std::string(reinterpret_cast<const char*>(key.data()), key.size()), *loc,
                        table_[segment_slot_of(*loc)].seg->id(), buf.record.size(),
                        pending_write::waiting, &outcome});
    }
    return await_publication(meta.version, outcome).status;
  }

  absl::Status check_fits(std::size_t key_size, std::size_t value_size) const {
    const std::size_t room = segment_bytes_ - segment_header_size;
    // A value that compression does not shrink is stored raw: its raw size must fit.
    if (key_size > room || value_size > room || record_size(key_size, value_size) > room) {
      return absl::InvalidArgumentError(
          absl::StrCat("goldylox cold tier: a ", key_size, "-byte key with a ", value_size,
                       "-byte value does not fit a segment of ", segment_bytes_, " bytes"));
    }
    return absl::OkStatus();
  }

  // Location encoding: the record's offset / 8 added to the segment's first slot shifted above
  // offset_bits_ (the bits of one segment_bytes_ segment). Slots are segment_bytes_ of address
  // space each: a segment an earlier run made larger spans consecutive slots, so an offset past
  // its first slot's range carries into the next one and still names it (segment_slot_of).
  std::uint64_t make_location(std::uint32_t slot, std::size_t offset) const noexcept {
    return (std::uint64_t{slot} << offset_bits_) + (offset >> 3);
  }
  // The slot holding the table entry of the segment that `loc` points into.
  std::uint32_t segment_slot_of(std::uint64_t loc) const noexcept {
    return first_slot_[loc >> offset_bits_];
  }
  // The bytes from a location to the end of its segment. Callers hold the location's shard lock.
  std::span<const std::byte> record_bytes(std::uint64_t loc) const noexcept {
    const std::uint64_t first = segment_slot_of(loc);
    const segment* seg = readable_[first].load(std::memory_order_acquire);
    return seg->bytes().subspan(static_cast<std::size_t>(loc - (first << offset_bits_)) << 3);
  }

  // Segment files are read through their mappings with guarded reads (guarded_read.hpp): a file
  // truncated underneath (by another program) makes the read report a fault instead of the
  // process dying of SIGBUS. A fault counts as a corrupt record; find_key then matches nothing
  // and leaves a flag for the caller, which reports kDataLoss. Recovery's scan reads the same way
  // (scan_records): a file cut while the store opens loses the records past the cut, counted.
  static bool& mapping_fault_flag() noexcept {
    thread_local bool fault = false;
    return fault;
  }
  static bool note_mapping_fault() noexcept {
    mapping_fault_flag() = true;
    return false;
  }

  static absl::Status truncated_error() {
    return absl::DataLossError(
        "goldylox cold tier: a segment file was cut short underneath the cache (a record "
        "could not be read)");
  }

  // Copies the record at loc out of its mapping into `out`; false if the mapping faulted. What
  // is copied is a whole record only if the bytes decode (decode_record decides): the sizes in
  // its header are bounded by what is left of the segment.
  bool copy_record(std::uint64_t loc, std::vector<std::byte>& out) const {
    return copy_mapped_record(record_bytes(loc), out) || note_mapping_fault();
  }

  // The slot whose record holds exactly this key (shard lock held in any mode).
  std::atomic<std::uint64_t>* find_key(const cold_index::shard& shard, std::uint64_t h,
                                       std::span<const std::byte> key) const {
    return shard.find(h, [&](std::uint64_t loc) {
      const auto bytes = record_bytes(loc);
      if (bytes.size() < record_header_size + key.size()) return false;
      std::byte head[16];
      if (!guarded_copy(head, bytes.data(), sizeof head)) return note_mapping_fault();
      if (load_le<std::uint32_t>(head + 8) != key.size()) return false;
      const guarded_result same =
          guarded_compare(bytes.data() + record_header_size, key.data(), key.size());
      if (same == guarded_result::fault) return note_mapping_fault();
      return same == guarded_result::equal;
    });
  }

  // Points key's index entry at a record just appended (writer mutex held). The index shard
  // cannot grow past 2^24 slots: the record is then dead on arrival and the put refused.
  absl::Status index_put_locked(std::uint64_t h, std::span<const std::byte> key, std::uint64_t loc,
                                std::size_t size) {
    auto& shard = index_.shard_for(h);
    std::unique_lock shard_lock(shard.mutex());
    if (auto* slot = find_key(shard, h, key)) {
      forget_locked(slot->load(std::memory_order_relaxed) & cold_index::location_mask);
      cold_index::shard::relocate(slot, loc);
    } else if (!shard.insert(h, loc)) {
      table_[segment_slot_of(loc)].live_bytes -= size;
      return absl::ResourceExhaustedError("goldylox cold tier: index shard is full");
    }
    ++counters_.puts;
    return absl::OkStatus();
  }

  // Removes key's index entry; whether there was one (writer mutex held).
  bool unindex_locked(std::uint64_t h, std::span<const std::byte> key) {
    auto& shard = index_.shard_for(h);
    std::unique_lock shard_lock(shard.mutex());
    auto* slot = find_key(shard, h, key);
    if (slot == nullptr) return false;
    forget_locked(slot->load(std::memory_order_relaxed) & cold_index::location_mask);
    shard.erase(slot);
    return true;
  }

  bool sync_each_write() const noexcept {
    return options_.durability == cold_durability::every_write;
  }

  // every_write: a write is indexed (served) only once its sync succeeded, and writes are
  // indexed in version order, so a later write of a key is never undone by an earlier one that
  // finished last. Each writer appends under the writer mutex, joins a round of syncs (writers
  // waiting together share one), records its round's result and publishes every write at the
  // front of the queue whose result is known; a failed write is dropped there, unindexed, and
  // the key keeps what it had. Returns once this write is published or dropped.
  const write_outcome& await_publication(std::uint64_t version, write_outcome& outcome) {
    const absl::Status synced = sync_pending();
    std::unique_lock lock(writer_mu_);
    for (pending_write& w : pending_) {
      if (w.version == version) {
        w.state = synced.ok() ? pending_write::synced : pending_write::failed;
        if (!synced.ok()) outcome.status = synced;
        break;
      }
    }
    bool published = false;
    while (!pending_.empty() && pending_.front().state != pending_write::waiting) {
      publish_locked(pending_.front());
      pending_.pop_front();
      published = true;
    }
    if (published) publish_cv_.notify_all();
    publish_cv_.wait(lock, [&] { return outcome.done; });
    return outcome;
  }

  void publish_locked(const pending_write& w) {
    write_outcome& out = *w.outcome;
    const auto key =
        std::span<const std::byte>(reinterpret_cast<const std::byte*>(w.key.data()), w.key.size());
    const std::uint32_t slot = segment_slot_of(w.location);
    const bool segment_kept = !w.tombstone && slot < table_.size() && table_[slot].seg &&
                              table_[slot].seg->id() == w.segment_id;
    if (w.state == pending_write::failed) {
      if (segment_kept) table_[slot].live_bytes -= w.size;
      // Only the sync failed: the record is in the file, and an open that finds it (after a
      // clean restart, the page cache had it all along) would apply a write the caller was told
      // failed. A newer record restoring what the key has now keeps that from happening, unless
      // a later write of the key is queued, which supersedes both anyway.
      const bool superseded =
          std::count_if(pending_.begin(), pending_.end(), [&](const pending_write& p) {
            return p.hash == w.hash && p.version > w.version && p.key == w.key;
          }) != 0;
      if (!superseded) restore_locked(w.hash, key);
    } else if (w.tombstone) {
      out.existed = unindex_locked(w.hash, key);
      ++counters_.erases;
    } else if (segment_kept) {
      out.status = index_put_locked(w.hash, key, w.location, w.size);
    } else {
      // Reclaimed while its sync ran (a whole budget written meanwhile): the write was stored
      // and then evicted, and the key's older record must not stay in its place.
      unindex_locked(w.hash, key);
      ++counters_.puts;
      ++counters_.evicted;
    }
    out.done = true;
  }

  // Appends a record that puts back key's current state with a new version: a copy of its
  // indexed record, or a tombstone if it has none, and points the index at the copy. Best
  // effort (writer mutex held): if it cannot be written (the disk that failed the sync may fail
  // this too) it is counted as a write error, and the key's state after a restart is whichever
  // of the two records an open finds (docs/cold-tier.md, every_write).
  void restore_locked(std::uint64_t h, std::span<const std::byte> key) {
    try {
      std::optional<std::uint64_t> current;
      {
        auto& shard = index_.shard_for(h);
        std::shared_lock probe(shard.mutex());
        if (auto* slot = find_key(shard, h, key)) {
          current = slot->load(std::memory_order_relaxed) & cold_index::location_mask;
        }
      }
      auto version = next_version_locked();
      if (!version.ok()) {
        ++counters_.write_errors;
        return;
      }
      std::vector<std::byte> copy, record;
      if (current) {
        if (!copy_record(*current, copy)) return;  // cut off underneath: nothing to restore
        auto old = decode_record(copy);
        if (!old.ok()) return;
        record_meta meta = old->meta;
        meta.version = *version;
        record.resize(record_size(key.size(), old->stored_value.size()));
        encode_record(record, meta, key, old->stored_value, old->value_size);
      } else {
        record.resize(record_size(key.size(), 0));
        encode_record(record, record_meta{codec_id::none, true, 0, *version, 0}, key, {}, 0);
      }
      auto loc = append_locked(record);
      if (!loc.ok()) return;  // counted by append_locked
      version_ = *version;
      ++counters_.restored;
      if (current) {  // the key cannot have changed: the writer mutex is held
        auto& shard = index_.shard_for(h);
        std::unique_lock shard_lock(shard.mutex());
        if (auto* slot = find_key(shard, h, key)) {
          forget_locked(*current);
          cold_index::shard::relocate(slot, *loc);
        }
      } else {
        table_[segment_slot_of(*loc)].live_bytes -= record.size();  // a tombstone is not live
      }
    } catch (...) {  // an allocation failure: as a write error
      ++counters_.write_errors;
    }
  }

  // Whether a write of this key hash waits to be published: its older record must not be
  // re-inserted past the pending tombstone or value (writer mutex held).
  bool write_pending_locked(std::uint64_t h) const noexcept {
    return std::any_of(pending_.begin(), pending_.end(),
                       [&](const pending_write& w) { return w.hash == h; });
  }

  // The record at loc stops being live (writer mutex held).
  void forget_locked(std::uint64_t loc) {
    std::byte head[16];
    if (!guarded_copy(head, record_bytes(loc).data(), sizeof head)) return;  // cut off: unknown
    const std::size_t size =
        record_size(load_le<std::uint32_t>(head + 8), load_le<std::uint32_t>(head + 12));
    table_[segment_slot_of(loc)].live_bytes -=
        std::min<std::uint64_t>(size, table_[segment_slot_of(loc)].live_bytes);
  }

  // Unindexes the entry if it still points at loc.
  void drop_corrupt(std::uint64_t h, std::uint64_t loc) {
    runtime_corrupt_.fetch_add(1, std::memory_order_relaxed);
    std::lock_guard lock(writer_mu_);
    auto& shard = index_.shard_for(h);
    std::unique_lock shard_lock(shard.mutex());
    if (auto* slot = shard.find_location(h, loc)) {
      forget_locked(loc);
      shard.erase(slot);
    }
  }

  // Appends an encoded record to the active segment, rolling to a new one when it is full; the
  // record then counts as live in that segment. Writer mutex held.
  absl::StatusOr<std::uint64_t> append_locked(std::span<const std::byte> record) {
    if (!active_ || active_->room() < record.size()) {
      if (auto st = roll_locked(record.size()); !st.ok()) {
        ++counters_.write_errors;
        return st;
      }
    }
    auto off = active_->append(record);
    if (!off.ok()) {
      ++counters_.write_errors;
      return off.status();
    }
    table_[active_slot_].synced = false;
    table_[active_slot_].live_bytes += record.size();
    return make_location(active_slot_, *off);
  }

  // Seals the active segment and starts a new one, reclaiming the oldest segments beyond the
  // capacity; `reserve` bytes of the new segment are kept for the record that asked for the roll,
  // so re-inserted entries never crowd it out. When the file system is out of space, drops the
  // oldest segment and tries once more; any other failure (a file size limit, permissions, an
  // I/O error) deletes nothing, since deleting could not help. Writer mutex held.
  absl::Status roll_locked(std::size_t reserve) {
    if (active_) {
      active_->seal();
      active_.reset();
    }
    auto created = segment::create(options_.path, next_id_, segment_bytes_);
    if (!created.ok() && is_out_of_space(created.status()) && order_.size() >= 2) {
      // The disk filled before the capacity did: shed the oldest segment, as a full cache
      // would, and try once more. Each failing roll sheds at most one segment. The manifest is
      // rewritten in place (its space was allocated with it), so this needs no free space.
      reclaim_oldest_locked(false, 0, 0);
      if (auto st = commit_layout_locked(); !st.ok()) return st;
      created = segment::create(options_.path, next_id_, segment_bytes_);
    }
    if (!created.ok()) return created.status();
    // Slots are sized for the larger of the budget's segment count and the count found at open;
    // segments of mixed sizes (an earlier run's) could still use them all. Then the oldest goes
    // first, as it would a moment later for the budget.
    if (!has_free_slot()) reclaim_oldest_locked(false, 0, 0);
    const std::uint64_t first_new = next_id_;
    add_active_locked(*std::move(created));
    while (over_budget_locked()) {
      reclaim_oldest_locked(options_.reinsert_share > 0, reserve, first_new);
    }
    // The new segment is usable whether or not this write succeeds: unlisted, it is newer than
    // the manifest and kept by the next open; the reclaimed files stay until a write succeeds.
    (void)commit_layout_locked();
    return absl::OkStatus();
  }

  // Makes a just-created segment the active one (a free slot exists). Writer mutex held.
  void add_active_locked(segment created) {
    ++next_id_;
    const std::uint32_t slot = take_free_slot();
    first_slot_[slot] = slot;
    table_[slot] = table_entry{std::make_shared<segment>(std::move(created)), 0, false};
    readable_[slot].store(table_[slot].seg.get(), std::memory_order_release);
    order_.push_back(slot);
    disk_bytes_ += table_[slot].seg->size();
    active_ = table_[slot].seg;
    active_slot_ = slot;
    directory_dirty_ = true;
  }

  // The budget is in bytes, whatever segment sizes earlier runs used: over it while the
  // segments' sizes add up to more than max_bytes and there is an older segment than the
  // active one to reclaim (so one segment larger than the whole budget stays, alone).
  bool over_budget_locked() const noexcept {
    return order_.size() > 1 && !(active_ && order_.front() == active_slot_) &&
           disk_bytes_ > options_.max_bytes;
  }

  // The slots a segment spans: one, or more for a segment larger than segment_bytes_ (only an
  // earlier run's, placed by recovery on consecutive slots).
  std::uint32_t slot_span(const segment& seg) const noexcept {
    return static_cast<std::uint32_t>(std::max<std::uint64_t>(1, seg.size() / segment_bytes_));
  }

  // Slots are made as segments need them, up to slot_limit_: memory follows the segments on
  // disk, not the budget.
  bool has_free_slot() const noexcept {
    return !free_slots_.empty() || table_.size() < slot_limit_;
  }
  std::uint32_t take_free_slot() {
    if (free_slots_.empty()) {
      table_.emplace_back();
      return static_cast<std::uint32_t>(table_.size() - 1);
    }
    const std::uint32_t slot = free_slots_.back();
    free_slots_.pop_back();
    return slot;
  }

  std::uint64_t live_bytes_locked() const noexcept {
    std::uint64_t live = 0;
    for (const std::uint32_t slot : order_) live += table_[slot].live_bytes;
    return live;
  }

  // Removes the oldest segment: unindexes or re-appends its live entries, then deletes the file
  // (once the manifest no longer lists it). Which entries are re-appended (with `reinsert`):
  //  - while at most half of max_bytes is live data (the rest overwritten, removed or expired
  //    records), every live entry: dropping any would evict data for lack of space the dead
  //    records hold, and re-appending a segment that is mostly dead costs little. A re-appended
  //    entry that does not fit the active segment starts another (a spill), but only while
  //    reclaiming segments older than `first_new` (the roll's own), so a roll ends;
  //  - otherwise the entries read since they were written or last re-appended, within
  //    reinsert_share of the active segment's room (FIFO with re-insertion, as CacheLib's and
  //    foyer's region caches): the disk is mostly live, and the coldest entries leave.
  // Either way `reserve` bytes of the active segment stay free for the record that rolled.
  // Writer mutex held.
  void reclaim_oldest_locked(bool reinsert, std::size_t reserve, std::uint64_t first_new) {
    const std::uint32_t victim = order_.front();
    const bool compact = reinsert && live_bytes_locked() <= options_.max_bytes / 2 &&
                         table_[victim].seg->id() < first_new;
    order_.pop_front();
    std::size_t budget = 0;
    if (reinsert && active_ && active_slot_ != victim) {
      const std::size_t room = active_->room();
      budget = compact ? std::numeric_limits<std::size_t>::max()
                       : std::min(static_cast<std::size_t>(static_cast<double>(room) *
                                                           options_.reinsert_share),
                                  room > reserve ? room - reserve : 0);
    }
    const std::uint64_t now = wall_clock_ns();
    for (std::size_t i = 0; i < cold_index::shard_count; ++i) {
      auto& shard = index_.shard_at(i);
      std::unique_lock lock(shard.mutex());
      shard.for_each([&](std::atomic<std::uint64_t>* slot) {
        const std::uint64_t word = slot->load(std::memory_order_relaxed);
        const std::uint64_t loc = word & cold_index::location_mask;
        if (segment_slot_of(loc) != victim) return false;
        std::vector<std::byte>& copy = scratch().copy;
        auto rec = copy_record(loc, copy)
                       ? decode_record(copy)
                       : absl::StatusOr<record_view>(absl::DataLossError("truncated"));
        const bool keep = rec.ok() && (compact || (word & cold_index::accessed_bit) != 0) &&
                          (pending_.empty() || !write_pending_locked(hash_key(rec->key))) &&
                          rec->size <= budget &&
                          (rec->meta.expiry_ns == 0 || rec->meta.expiry_ns > now);
        if (keep && compact && active_->room() < rec->size + reserve) spill_locked();
        if (keep && active_ && active_->room() >= rec->size + reserve) {
          auto off = active_->append(std::span<const std::byte>(copy).first(rec->size));
          if (off.ok()) {
            budget -= rec->size;
            table_[active_slot_].live_bytes += rec->size;
            table_[active_slot_].synced = false;
            cold_index::shard::relocate(slot, make_location(active_slot_, *off));
            ++counters_.reinserted;
            return false;
          }
          ++counters_.write_errors;
        }
        ++counters_.evicted;
        return true;
      });
    }
    // No index entry points into the victim now, and every reader that found one has released
    // its shard lock, which the loop above took exclusively: the mapping can go.
    readable_[victim].store(nullptr, std::memory_order_release);
    const std::string path = table_[victim].seg->path();
    disk_bytes_ -= table_[victim].seg->size();
    const std::uint32_t span = slot_span(*table_[victim].seg);
    table_[victim] = table_entry{};
    for (std::uint32_t s = victim; s < victim + span; ++s) {
      first_slot_[s] = s;
      free_slots_.push_back(s);  // a new segment takes one slot: a run need not stay whole
    }
    doomed_.push_back(path);  // deleted once a manifest without it is written
    ++counters_.reclaimed_segments;
  }

  // Compaction filled the active segment: seal it and start another for the rest of the victim's
  // live entries. If no segment can be made (no slot, a full disk) the active one stays and the
  // entries that do not fit are evicted. Writer mutex held.
  void spill_locked() {
    if (!has_free_slot()) return;
    auto created = segment::create(options_.path, next_id_, segment_bytes_);
    if (!created.ok()) {
      ++counters_.write_errors;
      return;
    }
    active_->seal();
    add_active_locked(*std::move(created));
    ++counters_.spilled_segments;
  }

  // Syncs every segment written since its last sync, then the directory, and advances
  // durable_version to the last version written before the syncs began.
  absl::Status sync_pending() {
    // One round at a time: a round that finds a segment marked synced must know that the round
    // which marked it has finished its fdatasync.
    std::lock_guard round(sync_mu_);
    std::vector<std::pair<std::uint32_t, std::shared_ptr<segment>>> unsynced;
    std::uint64_t version;
    bool dir;
    {
      std::lock_guard lock(writer_mu_);
      version = version_;
      for (const std::uint32_t slot : order_) {
        if (!table_[slot].synced) {
          unsynced.emplace_back(slot, table_[slot].seg);
          table_[slot].synced = true;  // a write after this point marks it again
        }
      }
      dir = std::exchange(directory_dirty_, false);
    }
    absl::Status result;
    for (auto& [slot, seg] : unsynced) {
      if (auto st = seg->sync(); !st.ok()) {
        result.Update(st);
        std::lock_guard lock(writer_mu_);
        if (table_[slot].seg == seg) table_[slot].synced = false;
      }
    }
    if (dir) {
      if (auto st = sync_directory(options_.path); !st.ok()) {
        result.Update(st);
        std::lock_guard lock(writer_mu_);
        directory_dirty_ = true;
      }
    }
    std::lock_guard lock(writer_mu_);
    if (!result.ok()) {
      ++counters_.sync_errors;
      return result;
    }
    ++counters_.syncs;
    std::uint64_t cur = durable_version_.load(std::memory_order_relaxed);
    while (cur < version &&
           !durable_version_.compare_exchange_weak(cur, version, std::memory_order_release)) {
    }
    return result;
  }

  void start_syncer() {
    if (options_.durability != cold_durability::periodic) return;
    if (options_.pool != nullptr) {
      sync_job_ = options_.pool->add([this](std::stop_token) { (void)sync_pending(); },
                                     options_.sync_interval);
      return;
    }
    syncer_ = std::jthread([this](std::stop_token stop) {
      std::mutex m;
      std::condition_variable_any cv;
      std::unique_lock lock(m);
      while (!stop.stop_requested()) {
        cv.wait_for(lock, stop, options_.sync_interval, [] { return false; });
        if (stop.stop_requested()) break;
        (void)sync_pending();
      }
    });
  }

  // Rebuilds the index from the directory's segments, oldest first, checking them against the
  // manifest (manifest.hpp): a listed segment that is absent, unreadable or replaced is counted
  // as lost; an unlisted one newer than the manifest (a crash in the middle of a roll) is kept;
  // an unlisted older one was reclaimed and is deleted. Versions continue above both the
  // highest replayed and the manifest's limit.
  absl::Status recover() {
    const auto start = std::chrono::steady_clock::now();
    auto found = read_manifest(options_.path);
    if (!found.ok()) return found.status();
    std::vector<std::uint64_t> ids;
    {
      DIR* d = ::opendir(options_.path.c_str());
      if (d == nullptr) return errno_status(errno, absl::StrCat("list ", options_.path));
      while (const dirent* e = ::readdir(d)) {
        const std::string_view name = e->d_name;
        if (name == "." || name == ".." || name == "LOCK" || name == manifest_file_name) continue;
        if (name == absl::StrCat(manifest_file_name, ".tmp")) {  // an interrupted rewrite
          ::unlink((options_.path + "/" + std::string(name)).c_str());
        } else if (auto id = parse_segment_file_name(name)) {
          ids.push_back(*id);
          next_id_ = std::max(next_id_, *id + 1);
        } else {
          ++counters_.foreign_files;
        }
      }
      ::closedir(d);
    }
    std::sort(ids.begin(), ids.end());
    const bool listed = found->exists && !found->damaged;
    if (found->damaged || (!found->exists && !ids.empty())) ++counters_.damaged_manifests;
    std::vector<std::string> lost;  // what a strict open names
    std::vector<std::uint64_t> accepted;
    std::vector<const manifest_entry*> expected;
    if (listed) {
      next_id_ = std::max(next_id_, found->state.next_id);
      for (const manifest_entry& e : found->state.segments) {
        if (std::binary_search(ids.begin(), ids.end(), e.id)) {
          accepted.push_back(e.id);
          expected.push_back(&e);
        } else {
          ++counters_.missing_segments;
          lost.push_back(absl::StrCat(segment_file_name(e.id), " is missing"));
        }
      }
      std::vector<std::string> stale;
      for (const std::uint64_t id : ids) {
        const auto& segs = found->state.segments;
        const bool in_list = std::any_of(segs.begin(), segs.end(),
                                         [&](const manifest_entry& e) { return e.id == id; });
        if (in_list) continue;
        if (id >= found->state.next_id) {
          accepted.push_back(id);  // created after the manifest was written
          expected.push_back(nullptr);
        } else {
          stale.push_back(absl::StrCat(options_.path, "/", segment_file_name(id)));
        }
      }
      // Reclaimed: the manifest written before its deletion no longer lists it.
      if (!options_.strict_open || lost.empty()) {
        for (const std::string& path : stale) {
          if (::unlink(path.c_str()) == 0) ++counters_.stale_segments;
        }
      }
    } else {
      accepted = ids;
      expected.assign(ids.size(), nullptr);
      if (counters_.damaged_manifests != 0) {
        lost.push_back(found->exists ? "the manifest is damaged" : "the manifest is missing");
      }
    }
    std::vector<std::shared_ptr<segment>> segs;
    std::uint64_t spans = 0;  // the slots the segments found take
    for (std::size_t i = 0; i < accepted.size(); ++i) {
      const std::uint64_t id = accepted[i];
      auto s = segment::open(options_.path + "/" + segment_file_name(id));
      if (!s.ok() && !absl::IsDataLoss(s.status())) {
        // Not proven damaged, only unreadable now (descriptors or mappings exhausted,
        // permissions, an I/O error): skipping it would hide its records, and the versions this
        // process then hands out could fall below theirs, so a later open would serve them over
        // newer writes. Refuse to open instead; the error names the file.
        return absl::Status(s.status().code(),
                            absl::StrCat("goldylox cold tier: cannot open a segment (the store "
                                         "opens only with all of them): ",
                                         s.status().message()));
      }
      const manifest_entry* e = expected[i];
      if (!s.ok() || s->id() != id ||
          (e != nullptr && (s->size() != e->size || s->created_ns() != e->created_ns))) {
        // A damaged header, another segment's file, or not the file the manifest listed.
        ++counters_.corrupt_segments;
        lost.push_back(absl::StrCat(segment_file_name(id), " is damaged or replaced"));
        continue;
      }
      spans += slot_span(*s);
      if (i + 1 < accepted.size()) s->seal();  // only the newest may be appended to
      segs.push_back(std::make_shared<segment>(*std::move(s)));
    }
    // Whatever segment sizes earlier runs used, a location's offset takes the bits of this run's
    // segment size, and a larger segment spans several slots. A crash in the middle of a roll
    // (the new file made, the oldest not yet deleted) leaves one more file than the budget's,
    // which needs no extra slot: it is reclaimed below before anything rolls.
    offset_bits_ = offset_bits_for(segment_bytes_);
    const std::size_t slots = std::max<std::size_t>(slot_count_for(max_segments_), spans + 1);
    if (auto st = check_addressable(slots, segment_bytes_); !st.ok()) {
      return absl::Status(
          st.code(), absl::StrCat(st.message(), " (", options_.path, " holds ", segs.size(),
                                  " segments totalling ", spans, " of this run's segment size)"));
    }
    slot_limit_ = slots;
    readable_ = std::make_unique<std::atomic<const segment*>[]>(slots);
    first_slot_ = std::make_unique<std::uint32_t[]>(slots);
    for (std::size_t i = 0; i < slots; ++i) {
      readable_[i].store(nullptr, std::memory_order_relaxed);
      first_slot_[i] = static_cast<std::uint32_t>(i);
    }
    table_.reserve(segs.size() + 2);
    std::lock_guard lock(writer_mu_);
    scan_result last_scan;
    for (auto& seg : segs) {
      // Consecutive slots: nothing has been freed yet, so each is taken from the table's end.
      const std::uint32_t slot = take_free_slot();
      for (std::uint32_t extra = 1; extra < slot_span(*seg); ++extra) {
        first_slot_[take_free_slot()] = slot;
      }
      table_[slot] = table_entry{seg, 0, false};  // the last process may not have synced it
      readable_[slot].store(seg.get(), std::memory_order_release);
      order_.push_back(slot);
      disk_bytes_ += seg->size();
      last_scan = scan_records(seg->bytes(), [&](const record_view& r, std::size_t off) {
        replay_locked(r, make_location(slot, off));
      });
      counters_.corrupt_records += last_scan.corrupt_regions;
      counters_.corrupt_bytes += last_scan.corrupt_bytes;
      counters_.recovered_records += last_scan.records;
      if (last_scan.corrupt_regions != 0) {
        lost.push_back(absl::StrCat(seg->path(), " holds ", last_scan.corrupt_regions,
                                    " damaged records (", last_scan.corrupt_bytes, " bytes)",
                                    last_scan.cut ? ", cut short while it was read" : ""));
      }
    }
    if (options_.strict_open && !lost.empty()) {
      std::string what;
      for (const std::string& l : lost) absl::StrAppend(&what, what.empty() ? "" : "; ", l);
      return absl::DataLossError(absl::StrCat("goldylox cold tier: ", options_.path,
                                              " has lost data (strict open): ", what));
    }
    // No record in the directory, present or lost, has a version above the manifest's limit.
    version_ = std::max(version_, found->state.version_limit);
    manifest_sequence_ = found->state.sequence;
    auto manifest = manifest_file::open(options_.path, *found, slots,
                                        options_.durability != cold_durability::none);
    if (!manifest.ok()) return manifest.status();
    manifest_ = *std::move(manifest);
    if (!segs.empty() && last_scan.clean && segs.back()->size() == segment_bytes_) {
      segs.back()->resume_at(last_scan.end);
      if (segs.back()->appendable()) {
        active_ = segs.back();
        active_slot_ = order_.back();
      }
    }
    for (auto& seg : segs) {
      if (seg != active_) seg->seal();  // only the active segment keeps its descriptor
    }
    while (over_budget_locked()) reclaim_oldest_locked(false, 0, 0);
    if (auto st = commit_layout_locked(); !st.ok()) return st;
    counters_.recovery_ns =
        static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                       std::chrono::steady_clock::now() - start)
                                       .count());
    return absl::OkStatus();
  }

  // Writes the manifest for the segments in order_, with a version limit above version_, then
  // deletes the files of the segments reclaimed since the last write (doomed_): only now is no
  // manifest listing them. If the write fails they stay on disk (unlisted, so the next open
  // deletes them) and the error is counted and returned. Writer mutex held.
  absl::Status commit_layout_locked() {
    manifest_state m;
    m.sequence = ++manifest_sequence_;
    m.version_limit = version_ + version_lease;
    m.next_id = next_id_;
    m.segments.reserve(order_.size());
    for (const std::uint32_t slot : order_) {
      const segment& seg = *table_[slot].seg;
      m.segments.push_back({seg.id(), seg.size(), seg.created_ns()});
    }
    if (auto st = manifest_.write(m, options_.durability != cold_durability::none); !st.ok()) {
      ++counters_.write_errors;
      return st;
    }
    version_limit_ = m.version_limit;
    for (const std::string& path : doomed_) ::unlink(path.c_str());
    if (!doomed_.empty()) directory_dirty_ = true;
    doomed_.clear();
    return absl::OkStatus();
  }

  // The next entry version, first raising the manifest's limit if it would pass it.
  absl::StatusOr<std::uint64_t> next_version_locked() {
    if (version_ + 1 > version_limit_) {
      if (auto st = commit_layout_locked(); !st.ok()) return st;
    }
    return version_ + 1;
  }

  // Applies one record found by recovery: the highest version of a key wins; a tombstone or an
  // expired record removes what it supersedes.
  void replay_locked(const record_view& r, std::uint64_t loc) {
    version_ = std::max(version_, r.meta.version);
    const std::uint64_t h = hash_key(r.key);
    auto& shard = index_.shard_for(h);
    std::unique_lock lock(shard.mutex());
    const bool dead =
        r.meta.tombstone || (r.meta.expiry_ns != 0 && r.meta.expiry_ns <= wall_clock_ns());
    if (auto* slot = find_key(shard, h, r.key)) {
      const std::uint64_t old = slot->load(std::memory_order_relaxed) & cold_index::location_mask;
      // The version of the record already indexed (unreadable: cut off underneath, so it loses).
      std::byte version[8];
      if (guarded_copy(version, record_bytes(old).data() + 32, sizeof version) &&
          load_le<std::uint64_t>(version) > r.meta.version) {
        return;
      }
      forget_locked(old);
      if (dead) {
        shard.erase(slot);
        return;
      }
      cold_index::shard::relocate(slot, loc);
    } else if (dead || !shard.insert(h, loc)) {
      return;
    }
    table_[segment_slot_of(loc)].live_bytes += r.size;
  }

  cold_store_options options_;
  directory_lock lock_;
  const std::uint64_t segment_bytes_;
  const std::uint64_t max_segments_;
  const compressor_t compressor_;
  const std::unique_ptr<adaptive_codec> adaptive_;
  const std::uint64_t instance_ = next_instance();
  int offset_bits_ = 0;

  cold_index index_;
  std::unique_ptr<std::atomic<const segment*>[]> readable_;  // first slot -> segment, for readers
  // Slot -> the first slot of the segment spanning it (itself but for a larger segment's later
  // slots). Written before the index points into a slot, under writer_mu_ and shard locks.
  std::unique_ptr<std::uint32_t[]> first_slot_;

  std::mutex sync_mu_;
  mutable std::mutex writer_mu_;  // guards everything below
  std::vector<table_entry> table_;
  std::vector<std::uint32_t> free_slots_;  // slots below table_.size() no segment uses
  std::size_t slot_limit_ = 0;
  std::deque<std::uint32_t> order_;  // slots, oldest segment first
  std::shared_ptr<segment> active_;
  std::uint32_t active_slot_ = 0;
  std::uint64_t next_id_ = 1;
  std::uint64_t disk_bytes_ = 0;  // the sizes of the segments in order_
  std::uint64_t version_ = 0;
  std::uint64_t version_limit_ = 0;  // the manifest's: versions above it need a new manifest
  std::uint64_t manifest_sequence_ = 0;
  manifest_file manifest_;
  std::vector<std::string> doomed_;  // reclaimed segments' files, deleted after the next manifest
  bool directory_dirty_ = false;
  bool closed_ = false;
  std::deque<pending_write> pending_;  // every_write: appended, not yet published; by version
  std::condition_variable publish_cv_;
  cold_store_stats counters_;

  // Read counters, striped by key hash so concurrent readers rarely write one cache line.
  struct alignas(cache_line) read_counters {
    std::atomic<std::uint64_t> hits{0}, misses{0}, expired{0};
  };
  static constexpr std::size_t read_stripe_count = 16;
  read_counters read_stripes_[read_stripe_count];
  mutable std::atomic<std::uint64_t> runtime_corrupt_{0};
  std::atomic<std::uint64_t> durable_version_{0};
  // One of them with periodic durability. After options_, which keeps the pool alive.
  std::unique_ptr<job_handle> sync_job_;
  std::jthread syncer_;
};

}  // namespace detail
GOLDYLOX_END_NAMESPACE
