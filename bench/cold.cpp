// goldylox_bench_cold: the cold tier (detail::cold_store) on disk beside LMDB and RocksDB, in one
// process and one run.
//
// Data: --keys keys "user:<n>" (n = 0..keys-1) with 1 KiB JSON-like values
// (common/json_values.hpp; value n comes from a generator seeded with n), generated in RAM before
// any store is touched, so generating them is never timed.
//
// Stores, each in its own directory under --dir (deleted first, and at the end unless --keep):
//   goldylox        cold_store, zstd level 3 (the default codec), durability none while loading
//   goldylox_lz4    the same with LZ4 (fast mode, level 0)
//   lmdb            LMDB, default flags plus MDB_NOTLS (read transactions owned by the reader
//                   objects, not by threads); MDB_NOSYNC while loading
//   rocksdb         RocksDB, default Options (create_if_missing only): default 8 MiB block
//                   cache, no filter, default compression (printed)
//   rocksdb_tuned   the same plus a 2 GiB LRU block cache (holds every block uncompressed) and
//                   a 10 bits/key Bloom filter (whole-key, full filter)
//
// Per store, one after the other:
//   1. load: every key once, in key order, one write per key (goldylox put; RocksDB Put with the
//      WAL on, unsynced; LMDB mdb_put, --lmdb-batch puts per write transaction, since a
//      transaction per put is LMDB's slow path), then one sync of everything (goldylox sync(),
//      RocksDB Flush, LMDB mdb_env_sync(force)): `load s` covers both. RocksDB is then compacted
//      to its best read layout (CompactRange over all keys), timed separately (`compact s`);
//   2. close; disk size = `du` of the directory (allocated blocks), logical size = keys + values;
//   3. reopen --reopens times (wall time of the open; for goldylox also stats().recovery_ns, the
//      index rebuild from the segments) and report best and median;
//   4. warm: read every key once, checking that each value is exactly the one stored (this
//      brings the files into the page cache and fills RocksDB's block cache).
// Then gets, each of which copies the whole value (decompressed) into the caller's buffer:
// goldylox read() with a memcpy in the callback; RocksDB Get into a PinnableSlice, then memcpy;
// LMDB mdb_txn_renew, mdb_get, memcpy, mdb_txn_reset on one read transaction per thread.
// Keys are drawn from pre-generated per-thread streams of key indices (zipf 0.99 with shuffled
// ranks, or uniform; common/workload.hpp), the same streams for every store. For each round, each
// distribution and each thread count, every store is run in turn (goldylox, goldylox_lz4, lmdb,
// rocksdb, rocksdb_tuned): --warmup seconds unmeasured, then --duration seconds measured.
// Threads are pinned to CPUs 0, 1, ... (modulo the CPU count) unless --no-pin.
// Each thread measures its CPU time (CLOCK_THREAD_CPUTIME_ID) and its involuntary context
// switches (getrusage): a run in which some thread had its CPU less than --min-cpu-share of its
// wall time (it was preempted by another process, or waited for a lock or I/O) is redone, up to
// --retries times, keeping the attempt with the highest share; both are reported per cell.
// Throughput: the sum over threads of gets / the thread's own elapsed time. Latency: every
// --sample-every'th get (default 8) is timed on its own with two steady_clock::now() calls, the
// samples of all threads pooled per run; p50 and p99 of those. Reported: the best throughput of
// the rounds and the median over rounds of each latency percentile, and ratios to goldylox.
//
//   ./build/release/bench/goldylox_bench_cold                  # 1M keys, 3 rounds
//   ./build/release/bench/goldylox_bench_cold --quick          # 100k keys, 1 round
//   ./build/release/bench/goldylox_bench_cold --help
#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cinttypes>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "common/json_values.hpp"
#include "common/workload.hpp"
#include "goldylox/detail/cold/store.hpp"

#ifdef GOLDYLOX_BENCH_HAVE_LMDB
#include <lmdb.h>
#endif
#ifdef GOLDYLOX_BENCH_HAVE_ROCKSDB
#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#endif

namespace gb = goldylox_bench;
namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;
using u64 = std::uint64_t;

namespace {

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "goldylox_bench_cold: %s\n", what.c_str());
  std::exit(1);
}

double seconds_since(clock_type::time_point t) {
  return std::chrono::duration<double>(clock_type::now() - t).count();
}

// ---- options --------------------------------------------------------------------------------

struct options {
  std::size_t keys = 1'000'000;
  int rounds = 3;
  double duration = 1.0;  // seconds per measured run
  double warmup = 0.2;    // seconds of the unmeasured run before it
  std::vector<int> threads = {1, 2};
  std::vector<gb::distribution> dists = {gb::distribution::zipf, gb::distribution::uniform};
  double theta = 0.99;
  unsigned sample_every = 8;  // a power of two
  int reopens = 5;
  double min_cpu_share = 0.9;  // redo a run in which some thread had its CPU less than this
  int retries = 3;
  std::size_t lmdb_batch = 1000;
  std::string dir = "/tmp/goldylox-bench-cold";
  std::vector<std::string> stores;  // empty: all available
  bool pin = true;
  bool keep = false;
  u64 seed = 42;
};

void usage(const char* argv0) {
  std::printf(
      "usage: %s [options]\n"
      "  --keys=N           keys stored (default 1000000; k/M suffixes accepted)\n"
      "  --quick            smoke test: 100k keys, 1 round, 0.3 s runs, 2 reopens\n"
      "  --rounds=N         interleaved rounds of gets (default 3)\n"
      "  --duration=S       seconds per measured run (default 1.0)\n"
      "  --warmup=S         unmeasured seconds before each run (default 0.2)\n"
      "  --threads=1,2      thread counts\n"
      "  --dist=zipf,uniform key distributions\n"
      "  --theta=X          zipf exponent (default 0.99)\n"
      "  --sample-every=N   time every N-th get for latency, a power of two (default 8)\n"
      "  --reopens=N        reopens timed per store (default 5)\n"
      "  --lmdb-batch=N     LMDB puts per write transaction while loading (default 1000)\n"
      "  --min-cpu-share=X  redo a run if a thread had its CPU less than X of the time (0.9)\n"
      "  --retries=N        at most N redos per run (default 3)\n"
      "  --stores=a,b       of goldylox,goldylox_lz4,lmdb,rocksdb,rocksdb_tuned (default all)\n"
      "  --dir=PATH         parent of the store directories (default /tmp/goldylox-bench-cold)\n"
      "  --no-pin           do not pin threads to CPUs\n"
      "  --keep             keep the store directories\n"
      "  --seed=N           workload seed (default 42)\n",
      argv0);
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= s.size()) {
    const std::size_t comma = s.find(',', start);
    const std::size_t end = comma == std::string::npos ? s.size() : comma;
    if (end > start) out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

std::size_t parse_count(const std::string& s) {
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  double mult = 1;
  if (*end == 'k' || *end == 'K') mult = 1e3;
  if (*end == 'm' || *end == 'M') mult = 1e6;
  if (end == s.c_str() || !(v > 0)) die("not a count: " + s);
  return static_cast<std::size_t>(v * mult);
}

bool parse_args(int argc, char** argv, options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const std::size_t eq = a.find('=');
    const std::string name = a.substr(0, eq);
    const std::string val = eq == std::string::npos ? "" : a.substr(eq + 1);
    if (name == "--help" || name == "-h") {
      usage(argv[0]);
      return false;
    } else if (name == "--quick") {
      o.keys = 100'000;
      o.rounds = 1;
      o.duration = 0.3;
      o.warmup = 0.1;
      o.reopens = 2;
    } else if (name == "--keys") {
      o.keys = parse_count(val);
    } else if (name == "--rounds") {
      o.rounds = static_cast<int>(parse_count(val));
    } else if (name == "--duration") {
      o.duration = std::atof(val.c_str());
    } else if (name == "--warmup") {
      o.warmup = std::atof(val.c_str());
    } else if (name == "--threads") {
      o.threads.clear();
      for (const auto& t : split(val)) o.threads.push_back(static_cast<int>(parse_count(t)));
    } else if (name == "--dist") {
      o.dists.clear();
      for (const auto& d : split(val)) {
        if (d == "zipf") {
          o.dists.push_back(gb::distribution::zipf);
        } else if (d == "uniform") {
          o.dists.push_back(gb::distribution::uniform);
        } else {
          die("unknown distribution " + d);
        }
      }
    } else if (name == "--theta") {
      o.theta = std::atof(val.c_str());
    } else if (name == "--sample-every") {
      o.sample_every = static_cast<unsigned>(parse_count(val));
      if (!std::has_single_bit(o.sample_every)) die("--sample-every must be a power of two");
    } else if (name == "--reopens") {
      o.reopens = static_cast<int>(parse_count(val));
    } else if (name == "--min-cpu-share") {
      o.min_cpu_share = std::atof(val.c_str());
    } else if (name == "--retries") {
      o.retries = std::atoi(val.c_str());
    } else if (name == "--lmdb-batch") {
      o.lmdb_batch = parse_count(val);
    } else if (name == "--stores") {
      o.stores = split(val);
    } else if (name == "--dir") {
      o.dir = val;
    } else if (name == "--no-pin") {
      o.pin = false;
    } else if (name == "--keep") {
      o.keep = true;
    } else if (name == "--seed") {
      o.seed = std::strtoull(val.c_str(), nullptr, 10);
    } else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      usage(argv[0]);
      return false;
    }
  }
  if (o.keys == 0 || o.rounds < 1 || o.reopens < 1 || o.threads.empty() || o.dists.empty() ||
      !(o.duration > 0)) {
    die("nothing to measure");
  }
  if (o.keys > 0xffffffffULL) die("at most 2^32 keys");
  return true;
}

// ---- data -----------------------------------------------------------------------------------

struct dataset {
  std::vector<std::string> keys;  // "user:<n>"
  std::vector<char> values;       // value n at n * json_value_size
  std::size_t key_bytes = 0;

  std::string_view value(std::size_t i) const {
    return {values.data() + i * gb::json_value_size, gb::json_value_size};
  }
  std::size_t size() const { return keys.size(); }
  u64 logical_bytes() const { return key_bytes + values.size(); }
};

dataset make_dataset(std::size_t n) {
  dataset d;
  d.keys.resize(n);
  d.values.resize(n * gb::json_value_size);
  const unsigned workers = std::max(1U, std::min(4U, std::thread::hardware_concurrency()));
  std::vector<std::thread> pool;
  for (unsigned w = 0; w < workers; ++w) {
    pool.emplace_back([&d, n, w, workers] {
      for (std::size_t i = w; i < n; i += workers) {
        d.keys[i] = "user:" + std::to_string(i);
        gb::rng r(gb::splitmix64(i));
        const std::string v = gb::json_value([&] { return r.next(); });
        std::memcpy(d.values.data() + i * gb::json_value_size, v.data(), v.size());
      }
    });
  }
  for (auto& t : pool) t.join();
  for (const auto& k : d.keys) d.key_bytes += k.size();
  return d;
}

// Allocated bytes of every file under `dir`, as du counts them.
u64 disk_usage(const std::string& dir) {
  u64 total = 0;
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator(dir, ec)) {
    struct stat st {};
    if (::lstat(e.path().c_str(), &st) == 0) total += static_cast<u64>(st.st_blocks) * 512;
  }
  return total;
}

// ---- stores ---------------------------------------------------------------------------------

// What a thread uses to read: get() copies the whole value of `key` into `out` and returns its
// size, or returns SIZE_MAX when the key is absent or the read failed.
class reader {
 public:
  virtual ~reader() = default;
  virtual std::size_t get(std::string_view key, std::span<char> out) = 0;
};

class store {
 public:
  virtual ~store() = default;
  virtual std::string name() const = 0;
  virtual std::string describe() const = 0;
  // Opens the store; `loading` when it is about to be filled (the directory is empty).
  virtual void open(bool loading) = 0;
  virtual void put(std::string_view key, std::string_view value) = 0;
  // Makes every put durable (part of the timed load).
  virtual void finish_load() = 0;
  // Post-load work that is not part of loading (RocksDB: full compaction); seconds, or < 0.
  virtual double settle() { return -1; }
  virtual void close() = 0;
  virtual std::unique_ptr<reader> make_reader() = 0;
  // Anything store-specific worth printing after the warm pass.
  virtual std::string notes() { return ""; }
};

template <class T>
std::span<const std::byte> bytes_of(const T& s) {
  return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

class goldylox_store final : public store {
 public:
  goldylox_store(std::string name, std::string path, goldylox::codec_id codec, int level,
                 std::size_t keys)
      : name_(std::move(name)) {
    o_.path = std::move(path);
    // Room for every record uncompressed, twice over: nothing is ever reclaimed.
    o_.max_bytes = std::max<u64>(u64{64} << 20, std::bit_ceil(u64{keys} * 2048));
    o_.durability = goldylox::cold_durability::none;
    o_.codec = codec;
    o_.codec_level = level;
  }
  std::string name() const override { return name_; }
  std::string describe() const override {
    const char* codec = o_.codec == goldylox::codec_id::zstd  ? "zstd"
                        : o_.codec == goldylox::codec_id::lz4 ? "lz4"
                                                              : "other";
    return std::string("detail::cold_store, codec ") + codec + " level " +
           (o_.codec_level ? std::to_string(*o_.codec_level) : std::string("default")) +
           ", max_bytes " + std::to_string(o_.max_bytes >> 20) + " MiB, segments of " +
           std::to_string(goldylox::detail::cold_store::effective_segment_bytes(o_) >> 20) +
           " MiB, durability none + sync() after loading";
  }
  void open(bool) override {
    auto s = goldylox::detail::cold_store::open(o_);
    if (!s.ok()) die(name_ + ": open: " + std::string(s.status().message()));
    s_ = *std::move(s);
  }
  void put(std::string_view key, std::string_view value) override {
    if (auto st = s_->put(bytes_of(key), bytes_of(value), 1); !st.ok()) {
      die(name_ + ": put: " + std::string(st.message()));
    }
  }
  void finish_load() override {
    if (auto st = s_->sync(); !st.ok()) die(name_ + ": sync: " + std::string(st.message()));
  }
  void close() override { s_.reset(); }
  goldylox::detail::cold_store_stats stats() const { return s_->stats(); }

  std::unique_ptr<reader> make_reader() override {
    struct r final : reader {
      goldylox::detail::cold_store* s;
      explicit r(goldylox::detail::cold_store* st) : s(st) {}
      std::size_t get(std::string_view key, std::span<char> out) override {
        std::size_t n = SIZE_MAX;
        const auto st = s->read(
            bytes_of(key), [&](const goldylox::detail::record_meta&, std::span<const std::byte> v) {
              if (v.size() <= out.size()) {
                std::memcpy(out.data(), v.data(), v.size());
                n = v.size();
              }
            });
        return st.ok() ? n : SIZE_MAX;
      }
    };
    return std::make_unique<r>(s_.get());
  }

 private:
  std::string name_;
  goldylox::detail::cold_store_options o_;
  std::unique_ptr<goldylox::detail::cold_store> s_;
};

#ifdef GOLDYLOX_BENCH_HAVE_LMDB
void lmdb_check(int rc, const char* what) {
  if (rc != MDB_SUCCESS) die(std::string("lmdb: ") + what + ": " + mdb_strerror(rc));
}

class lmdb_store final : public store {
 public:
  lmdb_store(std::string path, std::size_t keys, std::size_t batch)
      : path_(std::move(path)), batch_(std::max<std::size_t>(1, batch)) {
    // Virtual address space only: the file grows with the pages written.
    map_bytes_ = std::max<u64>(u64{256} << 20, u64{keys} * 4096);
  }
  ~lmdb_store() override { close(); }
  std::string name() const override { return "lmdb"; }
  std::string describe() const override {
    return "LMDB " + std::to_string(MDB_VERSION_MAJOR) + "." + std::to_string(MDB_VERSION_MINOR) +
           "." + std::to_string(MDB_VERSION_PATCH) + ", map " + std::to_string(map_bytes_ >> 20) +
           " MiB, MDB_NOTLS, " + std::to_string(batch_) +
           " puts per write txn + MDB_NOSYNC + mdb_env_sync(1) while loading";
  }
  void open(bool loading) override {
    fs::create_directories(path_);
    lmdb_check(mdb_env_create(&env_), "env_create");
    lmdb_check(mdb_env_set_mapsize(env_, map_bytes_), "set_mapsize");
    lmdb_check(mdb_env_set_maxreaders(env_, 64), "set_maxreaders");
    const unsigned flags = MDB_NOTLS | (loading ? MDB_NOSYNC : 0U);
    lmdb_check(mdb_env_open(env_, path_.c_str(), flags, 0644), "env_open");
    MDB_txn* txn = nullptr;
    lmdb_check(mdb_txn_begin(env_, nullptr, 0, &txn), "txn_begin");
    lmdb_check(mdb_dbi_open(txn, nullptr, 0, &dbi_), "dbi_open");
    lmdb_check(mdb_txn_commit(txn), "txn_commit");
  }
  void put(std::string_view key, std::string_view value) override {
    if (wtxn_ == nullptr) lmdb_check(mdb_txn_begin(env_, nullptr, 0, &wtxn_), "txn_begin");
    MDB_val k{key.size(), const_cast<char*>(key.data())};
    MDB_val v{value.size(), const_cast<char*>(value.data())};
    lmdb_check(mdb_put(wtxn_, dbi_, &k, &v, 0), "put");
    if (++pending_ == batch_) commit();
  }
  void finish_load() override {
    commit();
    lmdb_check(mdb_env_sync(env_, 1), "env_sync");
  }
  void close() override {
    commit();
    if (env_ != nullptr) mdb_env_close(env_);
    env_ = nullptr;
  }
  std::string notes() override {
    MDB_stat st;
    MDB_txn* txn = nullptr;
    lmdb_check(mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn), "txn_begin(rdonly)");
    lmdb_check(mdb_stat(txn, dbi_, &st), "stat");
    mdb_txn_abort(txn);
    return "page " + std::to_string(st.ms_psize) + " B, depth " + std::to_string(st.ms_depth) +
           ", branch pages " + std::to_string(st.ms_branch_pages) + ", leaf pages " +
           std::to_string(st.ms_leaf_pages) + ", overflow pages " +
           std::to_string(st.ms_overflow_pages) + ", entries " + std::to_string(st.ms_entries);
  }
  std::unique_ptr<reader> make_reader() override {
    struct r final : reader {
      MDB_txn* txn = nullptr;
      MDB_dbi dbi;
      r(MDB_env* env, MDB_dbi d) : dbi(d) {
        lmdb_check(mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn), "txn_begin(rdonly)");
        mdb_txn_reset(txn);
      }
      ~r() override { mdb_txn_abort(txn); }
      std::size_t get(std::string_view key, std::span<char> out) override {
        if (mdb_txn_renew(txn) != MDB_SUCCESS) return SIZE_MAX;
        MDB_val k{key.size(), const_cast<char*>(key.data())};
        MDB_val v;
        std::size_t n = SIZE_MAX;
        if (mdb_get(txn, dbi, &k, &v) == MDB_SUCCESS && v.mv_size <= out.size()) {
          std::memcpy(out.data(), v.mv_data, v.mv_size);
          n = v.mv_size;
        }
        mdb_txn_reset(txn);
        return n;
      }
    };
    return std::make_unique<r>(env_, dbi_);
  }

 private:
  void commit() {
    if (wtxn_ == nullptr) return;
    lmdb_check(mdb_txn_commit(wtxn_), "txn_commit");
    wtxn_ = nullptr;
    pending_ = 0;
  }

  std::string path_;
  std::size_t batch_;
  u64 map_bytes_;
  MDB_env* env_ = nullptr;
  MDB_dbi dbi_ = 0;
  MDB_txn* wtxn_ = nullptr;
  std::size_t pending_ = 0;
};
#endif

#ifdef GOLDYLOX_BENCH_HAVE_ROCKSDB
void rocks_check(const rocksdb::Status& st, const char* what) {
  if (!st.ok()) die(std::string("rocksdb: ") + what + ": " + st.ToString());
}

const char* compression_name(rocksdb::CompressionType c) {
  switch (c) {
    case rocksdb::kNoCompression:
      return "none";
    case rocksdb::kSnappyCompression:
      return "snappy";
    case rocksdb::kZlibCompression:
      return "zlib";
    case rocksdb::kLZ4Compression:
      return "lz4";
    case rocksdb::kZSTD:
      return "zstd";
    default:
      return "other";
  }
}

class rocksdb_store final : public store {
 public:
  static constexpr std::size_t tuned_cache_bytes = std::size_t{2} << 30;

  rocksdb_store(std::string path, bool tuned) : path_(std::move(path)), tuned_(tuned) {}
  ~rocksdb_store() override { close(); }
  std::string name() const override { return tuned_ ? "rocksdb_tuned" : "rocksdb"; }
  std::string describe() const override {
    const rocksdb::Options o = make_options();
    std::string s = "RocksDB " + std::to_string(ROCKSDB_MAJOR) + "." +
                    std::to_string(ROCKSDB_MINOR) + "." + std::to_string(ROCKSDB_PATCH) +
                    ", compression " + compression_name(o.compression);
    if (tuned_) {
      s += ", LRU block cache 2 GiB, Bloom filter 10 bits/key";
    } else {
      s += ", default Options (8 MiB block cache, no filter)";
    }
    return s + "; Put with WAL unsynced, Flush, then CompactRange";
  }
  void open(bool) override {
    rocksdb::DB* db = nullptr;
    rocks_check(rocksdb::DB::Open(make_options(), path_, &db), "open");
    db_.reset(db);
  }
  void put(std::string_view key, std::string_view value) override {
    rocks_check(db_->Put(rocksdb::WriteOptions(), rocksdb::Slice(key.data(), key.size()),
                         rocksdb::Slice(value.data(), value.size())),
                "put");
  }
  void finish_load() override { rocks_check(db_->Flush(rocksdb::FlushOptions()), "flush"); }
  double settle() override {
    const auto t = clock_type::now();
    rocksdb::CompactRangeOptions c;
    c.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
    rocks_check(db_->CompactRange(c, nullptr, nullptr), "compact");
    return seconds_since(t);
  }
  void close() override {
    if (db_) rocks_check(db_->Close(), "close");
    db_.reset();
  }
  std::string notes() override {
    std::string files;
    db_->GetProperty("rocksdb.num-files-at-level0", &files);
    std::string l1;
    db_->GetProperty("rocksdb.num-files-at-level1", &l1);
    std::string cache;
    db_->GetProperty("rocksdb.block-cache-usage", &cache);
    return "files L0 " + files + ", L1 " + l1 + "; block cache in use " +
           std::to_string(std::strtoull(cache.c_str(), nullptr, 10) >> 20) + " MiB";
  }
  std::unique_ptr<reader> make_reader() override {
    struct r final : reader {
      rocksdb::DB* db;
      rocksdb::ReadOptions ro;
      rocksdb::PinnableSlice v;
      explicit r(rocksdb::DB* d) : db(d) {}
      std::size_t get(std::string_view key, std::span<char> out) override {
        v.Reset();
        const auto st =
            db->Get(ro, db->DefaultColumnFamily(), rocksdb::Slice(key.data(), key.size()), &v);
        if (!st.ok() || v.size() > out.size()) return SIZE_MAX;
        std::memcpy(out.data(), v.data(), v.size());
        return v.size();
      }
    };
    return std::make_unique<r>(db_.get());
  }

 private:
  rocksdb::Options make_options() const {
    rocksdb::Options o;
    o.create_if_missing = true;
    if (tuned_) {
      rocksdb::BlockBasedTableOptions t;
      t.block_cache = rocksdb::NewLRUCache(tuned_cache_bytes);  // fresh per open
      t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
      o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
    }
    return o;
  }

  std::string path_;
  bool tuned_;
  std::unique_ptr<rocksdb::DB> db_;
};
#endif

// ---- measuring gets -------------------------------------------------------------------------

void pin_to(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  (void)pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

struct run_result {
  double mops = 0;
  double p50_us = 0, p99_us = 0;
  double cpu_share = 1;  // the least, over threads, of CPU time / elapsed time
  double preempted = 0;  // the most, over threads, of involuntary context switches per second
  u64 gets = 0, failures = 0;
};

long involuntary_switches() {
  rusage u{};
  ::getrusage(RUSAGE_THREAD, &u);
  return u.ru_nivcsw;
}

double thread_cpu_seconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

constexpr std::size_t stream_length = std::size_t{1} << 20;  // key indices per thread

// `threads` threads, thread t reading keys[streams[t][i]] for i = 0, 1, ... (wrapping) until the
// main thread raises the stop flag after `seconds`.
run_result run_gets(store& s, const dataset& d,
                    const std::vector<std::vector<std::uint32_t>>& streams, int threads,
                    double seconds, const options& o) {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false}, stop{false};
  struct per_thread {
    u64 gets = 0, failures = 0;
    double elapsed = 0, cpu = 0;
    long preempted = 0;
    std::vector<std::uint32_t> lat_ns;
  };
  std::vector<per_thread> out(static_cast<std::size_t>(threads));
  const unsigned cpus = std::max(1U, std::thread::hardware_concurrency());
  const u64 mask = o.sample_every - 1;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      if (o.pin) pin_to(t % static_cast<int>(cpus));
      auto rd = s.make_reader();
      per_thread& me = out[static_cast<std::size_t>(t)];
      me.lat_ns.reserve(static_cast<std::size_t>(seconds * 4e6 / o.sample_every) + 1024);
      const std::vector<std::uint32_t>& stream = streams[static_cast<std::size_t>(t)];
      std::vector<char> buf(gb::json_value_size);
      const std::span<char> b(buf);
      ready.fetch_add(1);
      while (!go.load(std::memory_order_acquire)) {
      }
      u64 i = 0, failures = 0;
      const double cpu0 = thread_cpu_seconds();
      const long switches0 = involuntary_switches();
      const auto start = clock_type::now();
      while (!stop.load(std::memory_order_relaxed)) {
        const std::string& key = d.keys[stream[i & (stream_length - 1)]];
        std::size_t n;
        if ((i & mask) == 0) {
          const auto t0 = clock_type::now();
          n = rd->get(key, b);
          const auto t1 = clock_type::now();
          me.lat_ns.push_back(
              static_cast<std::uint32_t>(std::min<std::int64_t>(UINT32_MAX, (t1 - t0).count())));
        } else {
          n = rd->get(key, b);
        }
        failures += n != gb::json_value_size;
        ++i;
      }
      me.elapsed = seconds_since(start);
      me.cpu = thread_cpu_seconds() - cpu0;
      me.preempted = involuntary_switches() - switches0;
      me.gets = i;
      me.failures = failures;
    });
  }
  while (ready.load() != threads) std::this_thread::yield();
  go.store(true, std::memory_order_release);
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop.store(true, std::memory_order_relaxed);
  for (auto& t : pool) t.join();

  run_result r;
  std::vector<std::uint32_t> lat;
  for (const auto& p : out) {
    r.mops += static_cast<double>(p.gets) / p.elapsed / 1e6;
    r.gets += p.gets;
    r.failures += p.failures;
    r.cpu_share = std::min(r.cpu_share, p.cpu / p.elapsed);
    r.preempted = std::max(r.preempted, static_cast<double>(p.preempted) / p.elapsed);
    lat.insert(lat.end(), p.lat_ns.begin(), p.lat_ns.end());
  }
  const auto pct = [&](double q) {
    if (lat.empty()) return 0.0;
    const auto k = static_cast<std::size_t>(q * static_cast<double>(lat.size() - 1));
    std::nth_element(lat.begin(), lat.begin() + static_cast<std::ptrdiff_t>(k), lat.end());
    return lat[k] / 1e3;
  };
  r.p50_us = pct(0.50);
  r.p99_us = pct(0.99);
  return r;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// ---- the run --------------------------------------------------------------------------------

struct store_report {
  std::unique_ptr<store> s;
  double load_s = 0, settle_s = -1, warm_s = 0;
  u64 disk = 0;
  std::vector<double> open_ms, recovery_ms;
  double index_bytes_per_entry = 0;
  u64 entries = 0;
  double stored_ratio = 0;
  std::string notes;
};

std::vector<std::unique_ptr<store>> make_stores(const options& o) {
  std::vector<std::unique_ptr<store>> all;
  const auto dir = [&](const char* name) { return (fs::path(o.dir) / name).string(); };
  all.push_back(std::make_unique<goldylox_store>("goldylox", dir("goldylox"),
                                                 goldylox::codec_id::zstd, 3, o.keys));
  all.push_back(std::make_unique<goldylox_store>("goldylox_lz4", dir("goldylox_lz4"),
                                                 goldylox::codec_id::lz4, 0, o.keys));
#ifdef GOLDYLOX_BENCH_HAVE_LMDB
  all.push_back(std::make_unique<lmdb_store>(dir("lmdb"), o.keys, o.lmdb_batch));
#else
  std::printf("(LMDB not compiled in: apt-get install liblmdb-dev and reconfigure)\n");
#endif
#ifdef GOLDYLOX_BENCH_HAVE_ROCKSDB
  all.push_back(std::make_unique<rocksdb_store>(dir("rocksdb"), false));
  all.push_back(std::make_unique<rocksdb_store>(dir("rocksdb_tuned"), true));
#else
  std::printf("(RocksDB not compiled in: apt-get install librocksdb-dev and reconfigure)\n");
#endif
  if (o.stores.empty()) return all;
  std::vector<std::unique_ptr<store>> picked;
  for (const auto& want : o.stores) {
    auto it = std::find_if(all.begin(), all.end(), [&](auto& s) { return s && s->name() == want; });
    if (it == all.end()) die("unknown or unavailable store " + want);
    picked.push_back(std::move(*it));
  }
  return picked;
}

void prepare(store_report& rep, const dataset& d, const options& o) {
  store& s = *rep.s;
  const std::string path = (fs::path(o.dir) / s.name()).string();
  fs::remove_all(path);
  fs::create_directories(path);
  std::printf("  %-14s loading...", s.name().c_str());
  std::fflush(stdout);

  s.open(true);
  auto t = clock_type::now();
  for (std::size_t i = 0; i < d.size(); ++i) s.put(d.keys[i], d.value(i));
  s.finish_load();
  rep.load_s = seconds_since(t);
  rep.settle_s = s.settle();
  s.close();
  rep.disk = disk_usage(path);

  for (int i = 0; i < o.reopens; ++i) {
    if (i > 0) s.close();
    t = clock_type::now();
    s.open(false);
    rep.open_ms.push_back(seconds_since(t) * 1e3);
    if (auto* g = dynamic_cast<goldylox_store*>(&s)) {
      rep.recovery_ms.push_back(static_cast<double>(g->stats().recovery_ns) / 1e6);
    }
  }

  // Warm pass: every key once, every value checked.
  t = clock_type::now();
  auto rd = s.make_reader();
  std::vector<char> buf(gb::json_value_size);
  for (std::size_t i = 0; i < d.size(); ++i) {
    const std::size_t n = rd->get(d.keys[i], buf);
    if (n != gb::json_value_size || std::memcmp(buf.data(), d.value(i).data(), n) != 0) {
      die(s.name() + ": wrong value for " + d.keys[i]);
    }
  }
  rep.warm_s = seconds_since(t);
  if (auto* g = dynamic_cast<goldylox_store*>(&s)) {
    const auto st = g->stats();
    rep.entries = st.entries;
    rep.index_bytes_per_entry =
        st.entries ? static_cast<double>(st.index_bytes) / static_cast<double>(st.entries) : 0;
    rep.notes = "entries " + std::to_string(st.entries) + ", segments " +
                std::to_string(st.segments) + ", segment files " +
                std::to_string(st.disk_bytes >> 20) + " MiB, live records " +
                std::to_string(st.live_bytes >> 20) + " MiB, index " +
                std::to_string(st.index_bytes >> 10) + " KiB";
  } else {
    rep.notes = s.notes();
  }
  std::printf(" load %.2f s, warm pass %.2f s\n", rep.load_s, rep.warm_s);
}

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  if (!parse_args(argc, argv, o)) return 2;
  const unsigned cpus = std::thread::hardware_concurrency();
  std::printf(
      "goldylox_bench_cold: %zu keys x %zu-byte values, %d round(s), %.2f s runs "
      "(+%.2f s warm-up), latency sampled every %u gets, %u CPUs%s, dir %s\n",
      o.keys, gb::json_value_size, o.rounds, o.duration, o.warmup, o.sample_every, cpus,
      o.pin ? " (threads pinned)" : "", o.dir.c_str());

  auto t = clock_type::now();
  const dataset d = make_dataset(o.keys);
  std::printf("data: %.2f s to generate, %.1f MiB logical (%.1f MiB keys + %.1f MiB values)\n",
              seconds_since(t), static_cast<double>(d.logical_bytes()) / (1 << 20),
              static_cast<double>(d.key_bytes) / (1 << 20),
              static_cast<double>(d.values.size()) / (1 << 20));

  std::vector<store_report> reps;
  for (auto& s : make_stores(o)) {
    store_report r;
    r.s = std::move(s);
    reps.push_back(std::move(r));
  }
  std::printf("\nstores:\n");
  for (const auto& r : reps)
    std::printf("  %-14s %s\n", r.s->name().c_str(), r.s->describe().c_str());

  std::printf("\nload, reopen, warm:\n");
  for (auto& r : reps) prepare(r, d, o);

  std::printf(
      "\n| store | load s | load MB/s | compact s | disk MiB | disk / logical | "
      "reopen ms best | reopen ms median | recovery ms best | recovery ms median | "
      "index B/entry |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
  for (const auto& r : reps) {
    const double logical = static_cast<double>(d.logical_bytes());
    std::printf(
        "| %s | %.2f | %.0f | %s | %.1f | %.3f | %.2f | %.2f | %s | %s | %s |\n",
        r.s->name().c_str(), r.load_s, logical / r.load_s / 1e6,
        r.settle_s >= 0 ? fmt("%.2f", r.settle_s).c_str() : "-",
        static_cast<double>(r.disk) / (1 << 20), static_cast<double>(r.disk) / logical,
        *std::min_element(r.open_ms.begin(), r.open_ms.end()), median(r.open_ms),
        r.recovery_ms.empty()
            ? "-"
            : fmt("%.1f", *std::min_element(r.recovery_ms.begin(), r.recovery_ms.end())).c_str(),
        r.recovery_ms.empty() ? "-" : fmt("%.1f", median(r.recovery_ms)).c_str(),
        r.entries ? fmt("%.2f", r.index_bytes_per_entry).c_str() : "-");
  }
  std::printf("\n");
  for (const auto& r : reps) std::printf("  %-14s %s\n", r.s->name().c_str(), r.notes.c_str());

  // Per-thread key streams, the same for every store.
  std::vector<std::vector<std::vector<std::uint32_t>>> streams;  // [dist][thread][i]
  const int max_threads = *std::max_element(o.threads.begin(), o.threads.end());
  for (const auto dist : o.dists) {
    const gb::index_source src(dist, d.size(), o.theta, o.seed);
    std::vector<std::vector<std::uint32_t>> per;
    for (int th = 0; th < max_threads; ++th) {
      gb::rng r(o.seed * 1000 + static_cast<u64>(th) + 1);
      std::vector<std::uint32_t> s(stream_length);
      for (auto& x : s) x = static_cast<std::uint32_t>(src(r));
      per.push_back(std::move(s));
    }
    streams.push_back(std::move(per));
  }

  // results[dist][threads][store] -> one run_result per round
  const std::size_t nd = o.dists.size(), nt = o.threads.size(), ns = reps.size();
  std::vector<std::vector<run_result>> results(nd * nt * ns);
  std::printf("\ngets:\n");
  for (int round = 0; round < o.rounds; ++round) {
    for (std::size_t di = 0; di < nd; ++di) {
      for (std::size_t ti = 0; ti < nt; ++ti) {
        std::printf("  round %d %-7s %d thread(s):", round + 1, gb::to_string(o.dists[di]),
                    o.threads[ti]);
        for (std::size_t si = 0; si < ns; ++si) {
          store& s = *reps[si].s;
          if (o.warmup > 0) (void)run_gets(s, d, streams[di], o.threads[ti], o.warmup, o);
          run_result r = run_gets(s, d, streams[di], o.threads[ti], o.duration, o);
          for (int retry = 0; retry < o.retries && r.cpu_share < o.min_cpu_share; ++retry) {
            run_result again = run_gets(s, d, streams[di], o.threads[ti], o.duration, o);
            if (again.cpu_share > r.cpu_share) r = again;  // keep the least disturbed run
          }
          if (r.failures != 0) {
            die(s.name() + ": " + std::to_string(r.failures) + " gets failed or were short");
          }
          results[(di * nt + ti) * ns + si].push_back(r);
          std::printf(" %s %.3f", s.name().c_str(), r.mops);
          if (r.cpu_share < o.min_cpu_share) std::printf(" (cpu share %.2f)", r.cpu_share);
          std::fflush(stdout);
        }
        std::printf("\n");
      }
    }
  }

  std::printf(
      "\nGets: Mops/s is the best of %d round(s); p50 and p99 (us) are medians over the rounds "
      "of each run's percentile over its sampled gets (every %u-th get, timed alone).\n"
      "x/glx: this store's value divided by goldylox's (zstd) in the same cell: throughput "
      "above 1, or latency below 1, means the store beats goldylox. cpu share: the least, over "
      "rounds and threads, of a thread's CPU time / its wall time (below 1: the thread waited "
      "or was preempted; a run below %.2f was redone up to %d times, keeping the attempt with "
      "the highest share); preempt/s: the most, over rounds and threads, of involuntary "
      "context switches per second.\n\n",
      o.rounds, o.sample_every, o.min_cpu_share, o.retries);
  std::printf(
      "| dist | threads | store | Mops/s | x/glx | p50 us | x/glx | p99 us | x/glx | cpu share | "
      "preempt/s |\n|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|\n");
  for (std::size_t di = 0; di < nd; ++di) {
    for (std::size_t ti = 0; ti < nt; ++ti) {
      struct summary {
        double mops, p50, p99, share, preempted;
      };
      std::vector<summary> sum;
      for (std::size_t si = 0; si < ns; ++si) {
        const auto& rs = results[(di * nt + ti) * ns + si];
        summary x{0, 0, 0, 1, 0};
        std::vector<double> p50, p99;
        for (const auto& r : rs) {
          x.mops = std::max(x.mops, r.mops);
          x.share = std::min(x.share, r.cpu_share);
          x.preempted = std::max(x.preempted, r.preempted);
          p50.push_back(r.p50_us);
          p99.push_back(r.p99_us);
        }
        x.p50 = median(p50);
        x.p99 = median(p99);
        sum.push_back(x);
      }
      // The reference is the store named "goldylox" when it ran, else the first one.
      std::size_t ref = 0;
      for (std::size_t si = 0; si < ns; ++si) {
        if (reps[si].s->name() == "goldylox") ref = si;
      }
      for (std::size_t si = 0; si < ns; ++si) {
        const summary& x = sum[si];
        const summary& g = sum[ref];
        std::printf("| %s | %d | %s | %.3f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.0f |\n",
                    gb::to_string(o.dists[di]), o.threads[ti], reps[si].s->name().c_str(), x.mops,
                    x.mops / g.mops, x.p50, x.p50 / g.p50, x.p99, x.p99 / g.p99, x.share,
                    x.preempted);
      }
    }
  }

  for (auto& r : reps) r.s->close();
  if (!o.keep) {
    for (auto& r : reps) fs::remove_all(fs::path(o.dir) / r.s->name());
    std::error_code ec;
    fs::remove(o.dir, ec);  // only if now empty
  }
  return 0;
}
