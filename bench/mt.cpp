// goldylox_bench_mt: multi-thread throughput of goldylox beside its peers, in one process.
//
// For each key-set size, every selected implementation is built and prefilled with all keys
// (goldylox sized at the key count, so that in principle it never evicts; the few keys it may
// still drop while being filled are reported). Then, for each workload (distribution x get/put
// mix) and thread count:
//   * every thread has its own pre-generated stream of operations (bit 63 marks a put; Zipf ranks
//     are shuffled over the key set; the same keys are hot for every thread);
//   * threads are pinned (pthread_setaffinity_np, thread i -> --cores[i]), wait at a start
//     barrier, and run until the main thread raises the stop flag (--duration) or until each has
//     done --ops operations;
//   * 1-thread cells are measured once per CPU of --cores, because the CPUs of a shared VM need
//     not be equally fast (on the machine these benchmarks were written on, CPU 0 was at times
//     1.5-2.7x slower than CPU 1); the 1 -> 2 thread scaling is reported against both the mean
//     and the best single CPU;
//   * one warm-up run per (implementation, placement), then --reps measured runs, interleaved
//     round-robin (rotating the order each round) so that a noisy neighbour slows every
//     implementation alike instead of whichever happened to be running;
//   * before each workload the CPU 0 <-> CPU 1 cache-line round trip is measured and printed
//     (and stored with the cells): it decides what every shared write costs, and on a VM it
//     changes when the hypervisor moves the virtual CPUs, by 2x or more;
//   * each thread measures its own CPU time: a run in which some thread was on a CPU for less
//     than --min-cpu-share of its wall time (another process ran there) is redone, up to
//     --retries times, and the least share seen is reported ("cpu share" column). Time the
//     hypervisor steals is invisible to this check; interleaving is the defence against it.
// Reported per (implementation, workload, threads, CPUs): median / min / max Mops/s over the reps
// and the ratio goldylox / implementation in the same placement; per (implementation, workload,
// threads) the mean over placements, its ratio to goldylox and the scaling. Every get is checked:
// it must hit (except keys lost while prefilling) and return a value belonging to its key.
//
// Run with --help for the flags.
#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <pthread.h>
#include <sched.h>
#include <time.h>

#include "common/maps.hpp"
#include "common/workload.hpp"

namespace gb = goldylox_bench;
using u64 = std::uint64_t;
using clock_type = std::chrono::steady_clock;

namespace {

// ---- options --------------------------------------------------------------------------------

struct options {
  double duration = 0.5;  // seconds per measured run
  double warmup = 0.2;    // seconds of the warm-up run
  int reps = 5;
  u64 ops = 0;  // > 0: fixed operation count per thread instead of a fixed duration
  std::vector<int> threads = {1, 2};
  std::vector<gb::distribution> dists = {gb::distribution::zipf, gb::distribution::uniform};
  std::vector<std::size_t> sizes = {std::size_t{1} << 20, std::size_t{1} << 16};
  std::vector<unsigned> get_percents = {90, 100};
  std::vector<std::string> impls;  // empty: all available
  std::vector<int> cores = {0, 1};
  bool one_thread_each_cpu = true;  // measure 1-thread cells on every CPU in `cores`
  double theta = 0.99;
  double gx_capacity_factor = 1.0;
  double min_cpu_share = 0.9;  // retry a run in which a thread got less CPU than this
  int max_retries = 3;         // goldylox hot_tier_max_entries = factor * key count
  u64 seed = 0x601d1011ULL;
  std::size_t stream_len = std::size_t{1} << 22;
  std::string csv;
  std::string json;
};

void usage(const char* argv0) {
  std::printf(
      "usage: %s [flags]\n"
      "  --duration=SEC     measured run length (default 0.5)\n"
      "  --warmup=SEC       warm-up run length per implementation and cell (default 0.2)\n"
      "  --reps=N           measured runs per cell; median/min/max over them (default 5)\n"
      "  --ops=N            fixed op count per thread instead of --duration\n"
      "  --threads=LIST     thread counts (default 1,2)\n"
      "  --cores=LIST       CPU for thread 0,1,... (default 0,1)\n"
      "  --one-thread-cpus=all|first\n"
      "                     1-thread cells on every CPU of --cores (default) or the first only\n"
      "  --dist=LIST        zipf,uniform (default both)\n"
      "  --theta=X          Zipf exponent (default 0.99)\n"
      "  --keys=LIST        key-set sizes; K/M suffixes ok (default 1M,64K)\n"
      "  --mix=LIST         get percentages, rest are puts of stored keys (default 90,100)\n"
      "  --impls=LIST       implementations, default: goldylox absl_flat absl_shard64_mutex\n"
      "                     umap_shared_mutex tbb_chm libcuckoo (those compiled in); also\n"
      "                     goldylox_any (cache<K>::get<V>) and goldylox_swar "
      "(enable_simd(false)),\n"
      "                     goldylox_telemetry (enable_telemetry(true)), and\n"
      "                     floor_array (one load per get, two stores per put, no locking:\n"
      "                     the scaling ceiling of any shared-memory map on this machine)\n"
      "  --gx-capacity=X    goldylox capacity as a multiple of the key count (default 1.0)\n"
      "  --min-cpu-share=X  redo a run (up to --retries times, default 3) when one of its threads\n"
      "                     got less than X of its wall time on a CPU (default 0.9): another\n"
      "                     process ran there; the best attempt is kept and its share reported\n"
      "  --stream=N         operations per pre-generated thread stream (default 4194304)\n"
      "  --seed=N           workload seed\n"
      "  --csv=FILE         also write one CSV row per (impl, workload, threads, cpus)\n"
      "  --json=FILE        also write the results as JSON\n"
      "  --quick            --duration=0.15 --warmup=0.05 --reps=3 (about 1.5 minutes)\n",
      argv0);
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

std::size_t parse_size(const std::string& s) {
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (end != nullptr && (*end == 'K' || *end == 'k')) v *= 1024;
  if (end != nullptr && (*end == 'M' || *end == 'm')) v *= 1024 * 1024;
  return static_cast<std::size_t>(v);
}

std::string size_label(std::size_t n) {
  if (n >= (1u << 20) && n % (1u << 20) == 0) return std::to_string(n >> 20) + "M";
  if (n >= 1024 && n % 1024 == 0) return std::to_string(n >> 10) + "K";
  return std::to_string(n);
}

bool parse_args(int argc, char** argv, options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const std::size_t eq = a.find('=');
    const std::string key = a.substr(0, eq);
    const std::string val = eq == std::string::npos ? "" : a.substr(eq + 1);
    if (key == "--help" || key == "-h") {
      usage(argv[0]);
      std::exit(0);
    } else if (key == "--quick") {
      o.duration = 0.15;
      o.warmup = 0.05;
      o.reps = 3;
    } else if (val.empty()) {
      std::fprintf(stderr, "unknown or incomplete flag '%s' (see --help)\n", a.c_str());
      return false;
    } else if (key == "--duration") {
      o.duration = std::stod(val);
    } else if (key == "--warmup") {
      o.warmup = std::stod(val);
    } else if (key == "--reps") {
      o.reps = std::max(1, std::stoi(val));
    } else if (key == "--ops") {
      o.ops = static_cast<u64>(std::stod(val));
    } else if (key == "--threads") {
      o.threads.clear();
      for (const auto& t : split(val)) o.threads.push_back(std::stoi(t));
    } else if (key == "--cores") {
      o.cores.clear();
      for (const auto& t : split(val)) o.cores.push_back(std::stoi(t));
    } else if (key == "--one-thread-cpus") {
      if (val != "all" && val != "first") {
        std::fprintf(stderr, "--one-thread-cpus takes all or first\n");
        return false;
      }
      o.one_thread_each_cpu = val == "all";
    } else if (key == "--dist") {
      o.dists.clear();
      for (const auto& t : split(val)) {
        if (t == "zipf") {
          o.dists.push_back(gb::distribution::zipf);
        } else if (t == "uniform") {
          o.dists.push_back(gb::distribution::uniform);
        } else {
          std::fprintf(stderr, "unknown distribution '%s'\n", t.c_str());
          return false;
        }
      }
    } else if (key == "--theta") {
      o.theta = std::stod(val);
    } else if (key == "--keys") {
      o.sizes.clear();
      for (const auto& t : split(val)) o.sizes.push_back(parse_size(t));
    } else if (key == "--mix") {
      o.get_percents.clear();
      for (const auto& t : split(val)) {
        o.get_percents.push_back(static_cast<unsigned>(std::min(100, std::max(0, std::stoi(t)))));
      }
    } else if (key == "--impls") {
      o.impls = split(val);
    } else if (key == "--gx-capacity") {
      o.gx_capacity_factor = std::max(1.0, std::stod(val));
    } else if (key == "--min-cpu-share") {
      o.min_cpu_share = std::stod(val);
    } else if (key == "--retries") {
      o.max_retries = std::max(0, std::stoi(val));
    } else if (key == "--stream") {
      o.stream_len = std::bit_ceil(std::max<std::size_t>(1024, parse_size(val)));
    } else if (key == "--seed") {
      o.seed = std::stoull(val, nullptr, 0);
    } else if (key == "--csv") {
      o.csv = val;
    } else if (key == "--json") {
      o.json = val;
    } else {
      std::fprintf(stderr, "unknown flag '%s' (see --help)\n", a.c_str());
      return false;
    }
  }
  if (o.threads.empty() || o.dists.empty() || o.sizes.empty() || o.get_percents.empty() ||
      o.cores.empty()) {
    std::fprintf(stderr, "empty list flag\n");
    return false;
  }
  for (const std::size_t n : o.sizes) {
    if (n == 0 || n > (std::size_t{1} << 31)) {
      std::fprintf(stderr, "key-set size out of range\n");
      return false;
    }
  }
  return true;
}

// ---- running one measurement ----------------------------------------------------------------

// Values stored for key k always carry check_bits(k) in their low 40 bits (the high bits change
// with every put), so a get can tell whether it read a value that belongs to its key.
constexpr u64 low40 = (u64{1} << 40) - 1;
constexpr u64 check_bits(u64 key) noexcept {
  return (key * 0x9e3779b97f4a7c15ULL) & low40;
}

struct thread_result {
  u64 ops = 0;
  u64 gets = 0;
  u64 hits = 0;
  u64 bad_values = 0;
  u64 sink = 0;
  clock_type::time_point start, end;
  double cpu_seconds = 0;  // this thread's CPU time over the run
};

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

struct alignas(64) start_line {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  alignas(64) std::atomic<bool> stop{false};
};

struct run_result {
  double mops = 0;
  double cpu_share = 1;  // the least CPU time any thread got, as a fraction of its wall time
  u64 ops = 0;
  u64 gets = 0;
  u64 hits = 0;
  u64 bad_values = 0;
};

bool pin_to(int core) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(core, &set);
  return pthread_setaffinity_np(pthread_self(), sizeof(set), &set) == 0;
}

std::atomic<bool> g_pin_warned{false};

template <class M>
void worker(M& m, const std::vector<u64>& stream, int core, u64 op_limit, start_line& line,
            thread_result& out) {
  if (!pin_to(core) && !g_pin_warned.exchange(true)) {
    std::fprintf(stderr, "warning: could not pin a thread to CPU %d; running unpinned\n", core);
  }
  const u64* s = stream.data();
  const std::size_t mask = stream.size() - 1;
  line.ready.fetch_add(1, std::memory_order_acq_rel);
  while (!line.go.load(std::memory_order_acquire)) {
  }
  thread_result r;
  const double cpu0 = thread_cpu_seconds();
  r.start = clock_type::now();
  std::size_t i = 0;
  u64 version = 0;
  for (;;) {
    for (int j = 0; j < 256; ++j) {
      const u64 e = s[i];
      i = (i + 1) & mask;
      const u64 key = e & gb::key_mask;
      if (e & gb::put_flag) {
        m.put(key, check_bits(key) | (++version << 40));
      } else {
        u64 v = 0;
        if (m.get(key, v)) {
          ++r.hits;
          r.bad_values += (v & low40) != check_bits(key) ? 1 : 0;
          r.sink += v;
        }
        ++r.gets;
      }
    }
    r.ops += 256;
    if (op_limit != 0 ? r.ops >= op_limit : line.stop.load(std::memory_order_relaxed)) break;
  }
  r.end = clock_type::now();
  r.cpu_seconds = thread_cpu_seconds() - cpu0;
  out = r;
}

// Core-to-core round trip: two threads pinned to `a` and `b` pass a counter back and forth
// through one cache line. Every put that another core then reads pays about half of this, so it
// bounds what any shared write costs on this machine at this moment (on a VM it changes as the
// hypervisor moves the virtual CPUs). Returns the median of 5 rounds, in ns.
double round_trip_ns(int a, int b) {
  struct alignas(64) line_t {
    std::atomic<u64> v{0};
  };
  constexpr u64 trips = 20000;
  std::vector<double> rounds;
  for (int round = 0; round < 5; ++round) {
    line_t line;
    std::thread other([&] {
      (void)pin_to(b);
      for (u64 i = 1; i < 2 * trips; i += 2) {
        while (line.v.load(std::memory_order_acquire) != i) {
        }
        line.v.store(i + 1, std::memory_order_release);
      }
    });
    cpu_set_t saved;
    pthread_getaffinity_np(pthread_self(), sizeof saved, &saved);
    (void)pin_to(a);
    // Wait until the other thread is spinning, then time.
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    const auto t0 = clock_type::now();
    for (u64 i = 0; i < 2 * trips; i += 2) {
      while (line.v.load(std::memory_order_acquire) != i) {
      }
      line.v.store(i + 1, std::memory_order_release);
    }
    while (line.v.load(std::memory_order_acquire) != 2 * trips) {
    }
    const auto t1 = clock_type::now();
    other.join();
    pthread_setaffinity_np(pthread_self(), sizeof saved, &saved);
    rounds.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count() / trips);
  }
  std::sort(rounds.begin(), rounds.end());
  return rounds[rounds.size() / 2];
}

// Type-erased handle on one implementation; the per-operation loop stays a template.
class bench_impl {
 public:
  virtual ~bench_impl() = default;
  virtual const std::string& name() const = 0;
  virtual bool thread_safe() const = 0;
  // Builds and prefills; returns how many keys the table lost while being filled (goldylox may
  // evict inside a full probe window even below capacity).
  virtual u64 build(const std::vector<u64>& keys, double capacity_factor) = 0;
  virtual void release() = 0;
  // Evictions so far (0 for maps that never evict).
  virtual u64 evictions() const = 0;
  virtual run_result run(const std::vector<const std::vector<u64>*>& streams,
                         const std::vector<int>& cores, double seconds, u64 ops) = 0;
};

template <class M>
class bench_impl_of final : public bench_impl {
 public:
  explicit bench_impl_of(std::string name) : name_(std::move(name)) {}
  const std::string& name() const override { return name_; }
  bool thread_safe() const override { return M::thread_safe; }

  u64 build(const std::vector<u64>& keys, double capacity_factor) override {
    std::size_t capacity = keys.size();
    if constexpr (requires { map_->raw().stats(); }) {
      capacity =
          static_cast<std::size_t>(std::ceil(static_cast<double>(keys.size()) * capacity_factor));
    }
    map_ = std::make_unique<M>(capacity);
    for (const u64 k : keys) map_->put(k, check_bits(k));
    u64 lost = 0;
    for (const u64 k : keys) {
      u64 v = 0;
      lost += map_->get(k, v) ? 0 : 1;
    }
    return lost;
  }
  void release() override { map_.reset(); }

  u64 evictions() const override {
    if constexpr (requires { map_->raw().stats(); }) {
      return map_->raw().stats().evictions;
    } else {
      return 0;
    }
  }

  run_result run(const std::vector<const std::vector<u64>*>& streams, const std::vector<int>& cores,
                 double seconds, u64 ops) override {
    const std::size_t t = streams.size();
    start_line line;
    std::vector<thread_result> results(t);
    std::vector<std::thread> threads;
    threads.reserve(t);
    for (std::size_t i = 0; i < t; ++i) {
      threads.emplace_back(worker<M>, std::ref(*map_), std::cref(*streams[i]),
                           cores[i % cores.size()], ops, std::ref(line), std::ref(results[i]));
    }
    while (line.ready.load(std::memory_order_acquire) != static_cast<int>(t)) {
      std::this_thread::yield();
    }
    line.go.store(true, std::memory_order_release);
    if (ops == 0) {
      std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
      line.stop.store(true, std::memory_order_relaxed);
    }
    for (auto& th : threads) th.join();

    run_result r;
    clock_type::time_point first = results[0].start, last = results[0].end;
    u64 sink = 0;
    for (const thread_result& x : results) {
      const double wall = std::chrono::duration<double>(x.end - x.start).count();
      r.cpu_share = std::min(r.cpu_share, wall > 0 ? x.cpu_seconds / wall : 1.0);
      first = std::min(first, x.start);
      last = std::max(last, x.end);
      r.ops += x.ops;
      r.gets += x.gets;
      r.hits += x.hits;
      r.bad_values += x.bad_values;
      sink += x.sink;
    }
    sink_.fetch_add(sink, std::memory_order_relaxed);  // keeps the reads observable
    const double secs = std::chrono::duration<double>(last - first).count();
    r.mops = static_cast<double>(r.ops) / secs / 1e6;
    return r;
  }

 private:
  std::string name_;
  std::unique_ptr<M> map_;
  std::atomic<u64> sink_{0};
};

std::vector<std::unique_ptr<bench_impl>> all_impls() {
  std::vector<std::unique_ptr<bench_impl>> v;
  v.push_back(std::make_unique<bench_impl_of<gb::gx_typed<u64, u64>>>("goldylox"));
  v.push_back(std::make_unique<bench_impl_of<gb::gx_any<u64, u64>>>("goldylox_any"));
  v.push_back(
      std::make_unique<bench_impl_of<gb::gx_typed<u64, u64, gb::gx_tag::swar>>>("goldylox_swar"));
  v.push_back(std::make_unique<bench_impl_of<gb::gx_typed<u64, u64, gb::gx_tag::telemetry>>>(
      "goldylox_telemetry"));
  v.push_back(std::make_unique<bench_impl_of<gb::absl_flat<u64, u64>>>("absl_flat"));
  v.push_back(std::make_unique<bench_impl_of<gb::absl_sharded<u64, u64>>>("absl_shard64_mutex"));
  v.push_back(
      std::make_unique<bench_impl_of<gb::std_shared_mutex_map<u64, u64>>>("umap_shared_mutex"));
#if GOLDYLOX_BENCH_HAVE_TBB
  v.push_back(std::make_unique<bench_impl_of<gb::tbb_map<u64, u64>>>("tbb_chm"));
#endif
#if GOLDYLOX_BENCH_HAVE_LIBCUCKOO
  v.push_back(std::make_unique<bench_impl_of<gb::cuckoo_map<u64, u64>>>("libcuckoo"));
#endif
  v.push_back(std::make_unique<bench_impl_of<gb::floor_array<u64, u64>>>("floor_array"));
  return v;
}

const std::vector<std::string> default_impls = {
    "goldylox", "absl_flat", "absl_shard64_mutex", "umap_shared_mutex", "tbb_chm", "libcuckoo"};

// ---- results --------------------------------------------------------------------------------

struct workload {
  gb::distribution dist;
  std::size_t keys;
  unsigned get_percent;
  bool operator==(const workload&) const = default;
};

// One measured configuration: an implementation, a workload, a thread count and the CPUs the
// threads were pinned to (a 1-thread cell exists once per CPU by default; see --one-thread-cpus).
struct cell {
  std::string impl;
  workload w;
  int threads;
  std::vector<int> cpus;
  std::vector<double> mops;       // one per repetition
  std::vector<double> cpu_share;  // per repetition: the least CPU share of any thread
  int retries = 0;                // runs redone because another process took the CPU
  u64 gets = 0, hits = 0, bad_values = 0;
  u64 lost_in_prefill = 0;  // keys the table dropped while being filled
  u64 evictions = 0;        // evictions the table reported after this cell
  double round_trip = NAN;  // core-to-core round trip (ns) measured before this workload

  // Misses are only acceptable when the table lost keys while being filled (the stream keeps
  // asking for them); a value that does not belong to its key is always an error.
  bool error() const { return bad_values != 0 || (hits != gets && lost_in_prefill == 0); }

  double median() const {
    std::vector<double> v = mops;
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  }
  double min() const { return *std::min_element(mops.begin(), mops.end()); }
  double max() const { return *std::max_element(mops.begin(), mops.end()); }
  double min_cpu_share() const {
    return cpu_share.empty() ? 1.0 : *std::min_element(cpu_share.begin(), cpu_share.end());
  }
};

std::string cpus_label(const std::vector<int>& cpus) {
  std::string s;
  for (std::size_t i = 0; i < cpus.size(); ++i) s += (i ? "," : "") + std::to_string(cpus[i]);
  return s;
}

std::string workload_label(const workload& w, double theta) {
  char buf[128];
  if (w.dist == gb::distribution::zipf) {
    std::snprintf(buf, sizeof buf, "zipf(%.2f) %s keys, %u/%u get/put", theta,
                  size_label(w.keys).c_str(), w.get_percent, 100 - w.get_percent);
  } else {
    std::snprintf(buf, sizeof buf, "uniform %s keys, %u/%u get/put", size_label(w.keys).c_str(),
                  w.get_percent, 100 - w.get_percent);
  }
  return buf;
}

class results {
 public:
  std::vector<cell> cells;

  const cell* find(const std::string& impl, const workload& w, int threads,
                   const std::vector<int>& cpus) const {
    for (const cell& c : cells) {
      if (c.impl == impl && c.w == w && c.threads == threads && c.cpus == cpus) return &c;
    }
    return nullptr;
  }

  // An implementation's throughput at `threads`: the mean over its CPU placements of each
  // placement's median (one placement for multi-thread cells). NaN if not measured.
  double level(const std::string& impl, const workload& w, int threads) const {
    double sum = 0;
    int n = 0;
    for (const cell& c : cells) {
      if (c.impl == impl && c.w == w && c.threads == threads) {
        sum += c.median();
        ++n;
      }
    }
    return n != 0 ? sum / n : NAN;
  }
  // The best placement's median at `threads`.
  double best(const std::string& impl, const workload& w, int threads) const {
    double b = NAN;
    for (const cell& c : cells) {
      if (c.impl == impl && c.w == w && c.threads == threads) {
        b = std::isnan(b) ? c.median() : std::max(b, c.median());
      }
    }
    return b;
  }
  // goldylox / impl in the same placement (> 1: goldylox faster).
  double ratio_same_cpus(const cell& c) const {
    const cell* gx = find("goldylox", c.w, c.threads, c.cpus);
    return gx != nullptr ? gx->median() / c.median() : NAN;
  }
  double ratio_level(const std::string& impl, const workload& w, int threads) const {
    return level("goldylox", w, threads) / level(impl, w, threads);
  }

  std::vector<std::string> impls() const {
    std::vector<std::string> out;
    for (const cell& c : cells) {
      if (std::find(out.begin(), out.end(), c.impl) == out.end()) out.push_back(c.impl);
    }
    return out;
  }
};

std::string fmt_ratio(double r) {
  if (std::isnan(r)) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2fx", r);
  return buf;
}

void print_block(const results& res, const options& o, const workload& w) {
  std::printf("\n== %s ==\n", workload_label(w, o.theta).c_str());
  std::printf("%-20s %3s %-5s %9s  %19s  %13s  %9s  %s\n", "impl", "thr", "cpus", "Mops/s",
              "[min, max]", "goldylox/impl", "cpu share", "checks");
  for (const cell& c : res.cells) {
    if (!(c.w == w)) continue;
    std::string checks = "ok";
    if (c.error()) {
      checks = "ERROR: misses " + std::to_string(c.gets - c.hits) + ", foreign values " +
               std::to_string(c.bad_values);
    } else if (c.lost_in_prefill != 0) {
      char note[160];
      std::snprintf(note, sizeof note, "note: %llu keys evicted in prefill, %.4f%% of gets missed",
                    static_cast<unsigned long long>(c.lost_in_prefill),
                    100.0 * static_cast<double>(c.gets - c.hits) / static_cast<double>(c.gets));
      checks = note;
    }
    char share[32];
    std::snprintf(share, sizeof share, "%.0f%%%s", 100 * c.min_cpu_share(),
                  c.retries != 0 ? ("/" + std::to_string(c.retries) + "r").c_str() : "");
    std::printf("%-20s %3d %-5s %9.2f  [%7.2f, %8.2f]  %13s  %9s  %s\n", c.impl.c_str(), c.threads,
                cpus_label(c.cpus).c_str(), c.median(), c.min(), c.max(),
                c.impl == "goldylox" ? "-" : fmt_ratio(res.ratio_same_cpus(c)).c_str(), share,
                checks.c_str());
  }
  // Per implementation: level per thread count, ratio to goldylox, scaling.
  const int lo = *std::min_element(o.threads.begin(), o.threads.end());
  std::printf("  %-18s", "summary");
  for (const int t : o.threads) {
    std::printf(" %9s %9s", (std::to_string(t) + "T Mops").c_str(),
                (std::to_string(t) + "T gx/i").c_str());
  }
  for (const int t : o.threads) {
    if (t == lo) continue;
    std::printf(" %13s %13s", (std::to_string(t) + "T/" + std::to_string(lo) + "T mean").c_str(),
                (std::to_string(t) + "T/" + std::to_string(lo) + "T best").c_str());
  }
  std::printf("\n");
  for (const std::string& impl : res.impls()) {
    if (std::isnan(res.level(impl, w, lo))) continue;
    std::printf("  %-18s", impl.c_str());
    for (const int t : o.threads) {
      const double l = res.level(impl, w, t);
      if (std::isnan(l)) {
        std::printf(" %9s %9s", "-", "-");
      } else {
        std::printf(" %9.2f %9s", l,
                    impl == "goldylox" ? "-" : fmt_ratio(res.ratio_level(impl, w, t)).c_str());
      }
    }
    for (const int t : o.threads) {
      if (t == lo) continue;
      const double l = res.level(impl, w, t);
      std::printf(" %13s %13s", fmt_ratio(l / res.level(impl, w, lo)).c_str(),
                  fmt_ratio(l / res.best(impl, w, lo)).c_str());
    }
    std::printf("\n");
  }
  std::fflush(stdout);
}

std::vector<workload> workloads_of(const options& o) {
  std::vector<workload> out;
  for (const std::size_t keys : o.sizes) {
    for (const gb::distribution d : o.dists) {
      for (const unsigned pct : o.get_percents) out.push_back({d, keys, pct});
    }
  }
  return out;
}

void print_scaling_table(const results& res, const options& o) {
  if (std::find(o.threads.begin(), o.threads.end(), 1) == o.threads.end() ||
      std::find(o.threads.begin(), o.threads.end(), 2) == o.threads.end()) {
    return;
  }
  std::printf(
      "\n==== 1 -> 2 thread scaling: 2-thread median / 1-thread median, as "
      "(mean over single CPUs) / (best single CPU) ====\n");
  std::vector<std::string> impls;
  for (const std::string& i : res.impls()) {
    if (!std::isnan(res.level(i, workloads_of(o).front(), 2))) impls.push_back(i);
  }
  std::printf("%-38s", "workload");
  for (const auto& i : impls) std::printf(" %18s", i.c_str());
  std::printf("\n");
  for (const workload& w : workloads_of(o)) {
    std::printf("%-38s", workload_label(w, o.theta).c_str());
    for (const auto& i : impls) {
      const double two = res.level(i, w, 2);
      const std::string s =
          fmt_ratio(two / res.level(i, w, 1)) + " / " + fmt_ratio(two / res.best(i, w, 1));
      std::printf(" %18s", s.c_str());
    }
    std::printf("\n");
  }
}

void print_targets(const results& res, const options& o) {
  std::printf("\n==== targets (reported, not asserted) ====\n");
  const auto verdict = [](bool ok) { return ok ? "MET" : "NOT MET"; };
  // 1. 2 threads, Zipf, 90/10: goldylox >= 2.0x tbb and >= 1.4x libcuckoo.
  for (const std::size_t keys : o.sizes) {
    const workload w{gb::distribution::zipf, keys, 90};
    if (std::isnan(res.level("goldylox", w, 2))) continue;
    for (const auto& [peer, goal] : {std::pair<const char*, double>{"tbb_chm", 2.0},
                                     std::pair<const char*, double>{"libcuckoo", 1.4}}) {
      const double r = res.ratio_level(peer, w, 2);
      if (std::isnan(r)) continue;
      std::printf("zipf %s 90/10, 2 threads: goldylox / %-9s = %.2fx (target >= %.1fx)  %s\n",
                  size_label(keys).c_str(), peer, r, goal, verdict(r >= goal));
    }
  }
  // 2. Throughput never drops from 1 to 2 threads: judged against the best single CPU.
  bool any = false;
  bool all_ok = true;
  double worst = INFINITY;
  for (const workload& w : workloads_of(o)) {
    const double two = res.level("goldylox", w, 2);
    const double one = res.best("goldylox", w, 1);
    if (std::isnan(two) || std::isnan(one)) continue;
    any = true;
    worst = std::min(worst, two / one);
    if (two < one) {
      all_ok = false;
      std::printf("goldylox drops from 1 to 2 threads: %s: %.2fx of the best single CPU\n",
                  workload_label(w, o.theta).c_str(), two / one);
    }
  }
  if (any) {
    std::printf("goldylox 2 threads >= best single-CPU 1 thread in every cell (worst %.2fx): %s\n",
                worst, verdict(all_ok));
  }
  // 3. Single thread: goldylox within 1.5x of the unsynchronized absl::flat_hash_map (here as
  //    throughput over a whole op mix; goldylox_bench_micro measures the get alone).
  for (const workload& w : workloads_of(o)) {
    const double gx = res.level("goldylox", w, 1);
    const double floor = res.level("absl_flat", w, 1);
    if (std::isnan(gx) || std::isnan(floor)) continue;
    std::printf("1 thread, %-38s absl_flat / goldylox = %.2fx (target <= 1.5x)  %s\n",
                (workload_label(w, o.theta) + ":").c_str(), floor / gx, verdict(floor / gx <= 1.5));
  }
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const std::size_t colon = line.find(':');
      if (colon != std::string::npos) return line.substr(colon + 2);
    }
  }
  return "unknown";
}

std::string json_escape(const std::string& s) {
  std::string out;
  for (const char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\';
    out += ch;
  }
  return out;
}

std::string num_or(double v, const char* missing) {
  if (std::isnan(v)) return missing;
  std::ostringstream s;
  s << v;
  return s.str();
}

// Scaling of a multi-thread cell against the implementation's 1-thread cells.
std::pair<double, double> cell_scaling(const results& res, const cell& c) {
  if (c.threads == 1) return {NAN, NAN};
  return {c.median() / res.level(c.impl, c.w, 1), c.median() / res.best(c.impl, c.w, 1)};
}

void write_csv(const results& res, const options& o) {
  std::ofstream f(o.csv);
  f << "impl,distribution,theta,keys,get_percent,threads,cpus,reps,median_mops,min_mops,max_mops,"
       "goldylox_over_impl,scaling_vs_mean_1t,scaling_vs_best_1t,gets,misses,bad_values,"
       "lost_in_prefill,evictions,min_cpu_share,retries,round_trip_ns,rep_mops\n";
  for (const cell& c : res.cells) {
    const auto [s_mean, s_best] = cell_scaling(res, c);
    f << c.impl << ',' << gb::to_string(c.w.dist) << ','
      << (c.w.dist == gb::distribution::zipf ? o.theta : 0.0) << ',' << c.w.keys << ','
      << c.w.get_percent << ',' << c.threads << ",\"" << cpus_label(c.cpus) << "\","
      << c.mops.size() << ',' << c.median() << ',' << c.min() << ',' << c.max() << ','
      << num_or(res.ratio_same_cpus(c), "") << ',' << num_or(s_mean, "") << ','
      << num_or(s_best, "") << ',' << c.gets << ',' << (c.gets - c.hits) << ',' << c.bad_values
      << ',' << c.lost_in_prefill << ',' << c.evictions << ',' << c.min_cpu_share() << ','
      << c.retries << ',' << num_or(c.round_trip, "") << ',';
    for (std::size_t i = 0; i < c.mops.size(); ++i) f << (i ? ";" : "") << c.mops[i];
    f << '\n';
  }
  std::printf("wrote %s\n", o.csv.c_str());
}

void write_json(const results& res, const options& o) {
  std::ofstream f(o.json);
  f << "{\n  \"machine\": {\"cpu\": \"" << json_escape(cpu_model())
    << "\", \"hardware_threads\": " << std::thread::hardware_concurrency() << "},\n";
  f << "  \"options\": {\"duration_s\": " << o.duration << ", \"warmup_s\": " << o.warmup
    << ", \"reps\": " << o.reps << ", \"ops_per_thread\": " << o.ops << ", \"theta\": " << o.theta
    << ", \"stream_len\": " << o.stream_len << ", \"seed\": " << o.seed
    << ", \"goldylox_capacity_factor\": " << o.gx_capacity_factor
    << ", \"min_cpu_share\": " << o.min_cpu_share << ", \"retries\": " << o.max_retries << "},\n";
  f << "  \"cells\": [\n";
  for (std::size_t i = 0; i < res.cells.size(); ++i) {
    const cell& c = res.cells[i];
    const auto [s_mean, s_best] = cell_scaling(res, c);
    f << "    {\"impl\": \"" << c.impl << "\", \"distribution\": \"" << gb::to_string(c.w.dist)
      << "\", \"keys\": " << c.w.keys << ", \"get_percent\": " << c.w.get_percent
      << ", \"threads\": " << c.threads << ", \"cpus\": [" << cpus_label(c.cpus)
      << "], \"median_mops\": " << c.median() << ", \"min_mops\": " << c.min()
      << ", \"max_mops\": " << c.max()
      << ", \"goldylox_over_impl\": " << num_or(res.ratio_same_cpus(c), "null")
      << ", \"scaling_vs_mean_1t\": " << num_or(s_mean, "null")
      << ", \"scaling_vs_best_1t\": " << num_or(s_best, "null") << ", \"gets\": " << c.gets
      << ", \"misses\": " << (c.gets - c.hits) << ", \"bad_values\": " << c.bad_values
      << ", \"lost_in_prefill\": " << c.lost_in_prefill << ", \"evictions\": " << c.evictions
      << ", \"min_cpu_share\": " << c.min_cpu_share() << ", \"retries\": " << c.retries
      << ", \"round_trip_ns\": " << num_or(c.round_trip, "null") << ", \"rep_mops\": [";
    for (std::size_t j = 0; j < c.mops.size(); ++j) f << (j ? ", " : "") << c.mops[j];
    f << "]}" << (i + 1 < res.cells.size() ? "," : "") << "\n";
  }
  f << "  ],\n  \"summary\": [\n";
  bool first = true;
  for (const workload& w : workloads_of(o)) {
    for (const std::string& impl : res.impls()) {
      for (const int t : o.threads) {
        const double l = res.level(impl, w, t);
        if (std::isnan(l)) continue;
        f << (first ? "" : ",\n") << "    {\"impl\": \"" << impl << "\", \"distribution\": \""
          << gb::to_string(w.dist) << "\", \"keys\": " << w.keys
          << ", \"get_percent\": " << w.get_percent << ", \"threads\": " << t << ", \"mops\": " << l
          << ", \"goldylox_over_impl\": " << num_or(res.ratio_level(impl, w, t), "null")
          << ", \"scaling_vs_mean_1t\": "
          << num_or(t == 1 ? NAN : l / res.level(impl, w, 1), "null")
          << ", \"scaling_vs_best_1t\": " << num_or(t == 1 ? NAN : l / res.best(impl, w, 1), "null")
          << "}";
        first = false;
      }
    }
  }
  f << "\n  ]\n}\n";
  std::printf("wrote %s\n", o.json.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  if (!parse_args(argc, argv, o)) return 2;

  std::vector<std::unique_ptr<bench_impl>> available = all_impls();
  const std::vector<std::string>& wanted = o.impls.empty() ? default_impls : o.impls;
  std::vector<bench_impl*> impls;
  for (const std::string& w : wanted) {
    const auto it = std::find_if(available.begin(), available.end(),
                                 [&](const auto& p) { return p->name() == w; });
    if (it == available.end()) {
      std::fprintf(stderr, "note: implementation '%s' is not available in this build; skipped\n",
                   w.c_str());
      continue;
    }
    impls.push_back(it->get());
  }
  // goldylox first: the ratios are relative to it.
  std::stable_partition(impls.begin(), impls.end(),
                        [](const bench_impl* p) { return p->name() == "goldylox"; });
  if (impls.empty()) return 2;
  const int max_threads = *std::max_element(o.threads.begin(), o.threads.end());

  std::printf("goldylox_bench_mt  cpu: %s  hardware threads: %u\n", cpu_model().c_str(),
              std::thread::hardware_concurrency());
  if (o.ops != 0) {
    std::printf("%llu ops per thread per run", static_cast<unsigned long long>(o.ops));
  } else {
    std::printf("%.2fs per run", o.duration);
  }
  std::printf(
      ", warm-up %.2fs, %d reps interleaved across implementations; thread i pinned to "
      "CPU --cores[i] =",
      o.warmup, o.reps);
  for (const int c : o.cores) std::printf(" %d", c);
  std::printf("; 1-thread cells on %s\nimplementations:",
              o.one_thread_each_cpu ? "each of those CPUs" : "the first CPU only");
  for (const bench_impl* p : impls) std::printf(" %s", p->name().c_str());
  std::printf("\n");
  if (static_cast<unsigned>(max_threads) > std::thread::hardware_concurrency()) {
    std::printf("warning: more threads than hardware threads; results measure time slicing\n");
  }

  if (o.cores.size() >= 2) {
    std::printf(
        "CPU %d <-> CPU %d cache-line round trip: %.0f ns (a cost every write shared "
        "between the threads pays; on a VM it varies as virtual CPUs move)\n",
        o.cores[0], o.cores[1], round_trip_ns(o.cores[0], o.cores[1]));
  }

  results res;
  const auto t_begin = clock_type::now();
  for (const std::size_t keys : o.sizes) {
    const std::vector<u64> key_set = gb::make_u64_keys(keys, o.seed);
    std::printf("\n---- %s keys: prefilling", size_label(keys).c_str());
    std::map<std::string, u64> lost;
    for (bench_impl* p : impls) {
      const auto t0 = clock_type::now();
      lost[p->name()] = p->build(key_set, o.gx_capacity_factor);
      std::printf(" %s %.2fs;", p->name().c_str(),
                  std::chrono::duration<double>(clock_type::now() - t0).count());
      std::fflush(stdout);
    }
    std::printf("\n");
    for (const auto& [name, n] : lost) {
      if (n != 0) {
        std::printf(
            "note: %s lost %llu of %zu keys while being filled to capacity %.0f (evicted "
            "from full probe windows below capacity); gets of them miss\n",
            name.c_str(), static_cast<unsigned long long>(n), keys,
            std::ceil(static_cast<double>(keys) * o.gx_capacity_factor));
      }
    }
    for (const gb::distribution d : o.dists) {
      const gb::index_source source(d, keys, o.theta, o.seed);
      for (const unsigned pct : o.get_percents) {
        const workload w{d, keys, pct};
        const double round_trip = o.cores.size() >= 2 ? round_trip_ns(o.cores[0], o.cores[1]) : NAN;
        std::vector<std::vector<u64>> streams(static_cast<std::size_t>(max_threads));
        for (int t = 0; t < max_threads; ++t) {
          const u64 stream_seed =
              gb::splitmix64(o.seed ^ (u64(t) << 48) ^ (u64(pct) << 32) ^ (u64(d) << 24) ^ keys);
          streams[static_cast<std::size_t>(t)] =
              gb::make_u64_stream(key_set, source, o.stream_len, 100 - pct, stream_seed);
        }
        for (const int t : o.threads) {
          std::vector<const std::vector<u64>*> mine;
          for (int i = 0; i < t; ++i) mine.push_back(&streams[static_cast<std::size_t>(i)]);
          // The CPU placements measured at this thread count.
          std::vector<std::vector<int>> placements;
          if (t == 1 && o.one_thread_each_cpu) {
            for (const int c : o.cores) placements.push_back({c});
          } else {
            std::vector<int> p;
            for (int i = 0; i < t; ++i)
              p.push_back(o.cores[static_cast<std::size_t>(i) % o.cores.size()]);
            placements.push_back(p);
          }
          // Every (implementation, placement) pair is one cell; reps go round-robin over them.
          std::vector<std::pair<bench_impl*, std::vector<int>>> jobs;
          for (bench_impl* p : impls) {
            if (!p->thread_safe() && t != 1) continue;
            for (const auto& pl : placements) jobs.emplace_back(p, pl);
          }
          std::vector<cell> fresh;
          for (const auto& [p, pl] : jobs) {
            fresh.push_back(
                cell{p->name(), w, t, pl, {}, {}, 0, 0, 0, 0, lost[p->name()], 0, round_trip});
            if (o.warmup > 0) {
              p->run(mine, pl, o.warmup, o.ops != 0 ? std::max<u64>(o.ops / 4, 256) : 0);
            }
          }
          for (int rep = 0; rep < o.reps; ++rep) {
            for (std::size_t k = 0; k < jobs.size(); ++k) {
              const std::size_t j = (k + static_cast<std::size_t>(rep)) % jobs.size();
              run_result r = jobs[j].first->run(mine, jobs[j].second, o.duration, o.ops);
              for (int retry = 0; retry < o.max_retries && r.cpu_share < o.min_cpu_share; ++retry) {
                ++fresh[j].retries;
                const run_result again =
                    jobs[j].first->run(mine, jobs[j].second, o.duration, o.ops);
                if (again.cpu_share > r.cpu_share) {
                  r.mops = again.mops;
                  r.cpu_share = again.cpu_share;
                }
                r.gets += again.gets;
                r.hits += again.hits;
                r.bad_values += again.bad_values;
              }
              fresh[j].mops.push_back(r.mops);
              fresh[j].cpu_share.push_back(r.cpu_share);
              fresh[j].gets += r.gets;
              fresh[j].hits += r.hits;
              fresh[j].bad_values += r.bad_values;
            }
          }
          for (std::size_t j = 0; j < jobs.size(); ++j) {
            fresh[j].evictions = jobs[j].first->evictions();
            res.cells.push_back(std::move(fresh[j]));
          }
        }
        print_block(res, o, w);
        if (!std::isnan(round_trip)) {
          std::printf("  (CPU %d <-> CPU %d cache-line round trip before this workload: %.0f ns)\n",
                      o.cores[0], o.cores[1], round_trip);
        }
      }
    }
    for (bench_impl* p : impls) p->release();
  }

  print_scaling_table(res, o);
  print_targets(res, o);
  std::printf("\ntotal time %.1fs\n",
              std::chrono::duration<double>(clock_type::now() - t_begin).count());
  if (!o.csv.empty()) write_csv(res, o);
  if (!o.json.empty()) write_json(res, o);

  bool clean = true;
  for (const cell& c : res.cells) clean = clean && !c.error();
  if (!clean) {
    std::printf(
        "\nERROR: some runs missed stored keys or read values of other keys; see the "
        "'checks' column\n");
    return 1;
  }
  return 0;
}
