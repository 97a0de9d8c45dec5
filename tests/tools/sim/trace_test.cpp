// Trace replay against libCacheSim's reference miss ratios, and the trace readers on bad input.
#include "sim/trace.hpp"

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <zstd.h>

#include "goldylox/goldylox.hpp"
#include "goldylox/policies.hpp"
#include "sim/replay.hpp"

namespace {

namespace gl = goldylox;
namespace gd = goldylox::detail;
namespace fs = std::filesystem;
using ::testing::HasSubstr;

const std::string data_dir = GOLDYLOX_TEST_DATA_DIR;

// A scratch directory removed with the fixture.
class scratch_dir {
 public:
  scratch_dir() {
    path_ = fs::temp_directory_path() /
            ("goldylox_trace_test_" +
             std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~scratch_dir() { fs::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

std::string zstd_compress(const std::string& raw) {
  std::string out(ZSTD_compressBound(raw.size()), '\0');
  const std::size_t n = ZSTD_compress(out.data(), out.size(), raw.data(), raw.size(), 3);
  EXPECT_FALSE(ZSTD_isError(n));
  out.resize(n);
  return out;
}

// One oracleGeneral record.
std::string record(std::uint32_t t, std::uint64_t id, std::uint32_t size, std::int64_t next) {
  std::string r(24, '\0');
  std::memcpy(r.data(), &t, 4);
  std::memcpy(r.data() + 4, &id, 8);
  std::memcpy(r.data() + 12, &size, 4);
  std::memcpy(r.data() + 16, &next, 8);
  return r;
}

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const gd::trace_error& e) {
    return e.what();
  }
  return "(no trace_error thrown)";
}

// ---- the correctness oracle -----------------------------------------------------------------

struct reference_row {
  std::string trace, policy;
  std::size_t size;
  std::uint64_t requests;
  double miss_ratio;
};

std::vector<reference_row> reference_rows() {
  std::ifstream tsv(data_dir + "/traces/reference_miss_ratios.tsv");
  EXPECT_TRUE(tsv.good()) << "missing " << data_dir << "/traces/reference_miss_ratios.tsv";
  std::vector<reference_row> rows;
  std::string line;
  std::getline(tsv, line);  // header
  while (std::getline(tsv, line)) {
    std::istringstream in(line);
    reference_row r;
    std::getline(in, r.trace, '\t');
    std::getline(in, r.policy, '\t');
    in >> r.size >> r.requests >> r.miss_ratio;
    if (in) rows.push_back(r);
  }
  return rows;
}

// libCacheSim's name for each policy whose definition goldylox reproduces exactly.
gd::replay_result replay_named(const std::string& policy, const std::vector<gd::trace_request>& t,
                               std::size_t size, bool& known) {
  known = true;
  if (policy == "LRU") return gd::replay<gl::policy::lru>(t, size);
  if (policy == "FIFO") return gd::replay<gl::policy::fifo>(t, size);
  if (policy == "Clock") return gd::replay<gl::policy::clock>(t, size);
  if (policy == "LFU") return gd::replay<gl::policy::lfu>(t, size);
  if (policy == "ARC") return gd::replay<gl::policy::arc>(t, size);
  if (policy == "LIRS") return gd::replay<gl::policy::lirs>(t, size);
  if (policy == "S3FIFO-0.1000-2") return gd::replay<gl::policy::s3fifo>(t, size);
  if (policy == "Sieve") return gd::replay<gl::policy::sieve>(t, size);
  if (policy == "Belady") return gd::replay_belady(t, size);
  known = false;
  return {};
}

// The bar is +-0.05 points of miss ratio at every listed size.
TEST(Traces, ReplayReproducesTheReferenceMissRatios) {
  std::map<std::string, std::vector<gd::trace_request>> traces;
  std::map<std::string, int> checked;
  for (const reference_row& r : reference_rows()) {
    auto it = traces.find(r.trace);
    if (it == traces.end()) {
      it = traces
               .emplace(r.trace,
                        gd::read_trace(data_dir + "/traces/" + r.trace + ".oracleGeneral.zst"))
               .first;
    }
    bool known = false;
    const gd::replay_result got = replay_named(r.policy, it->second, r.size, known);
    if (!known) continue;
    ++checked[r.policy];
    EXPECT_EQ(got.requests, r.requests) << r.trace;
    // libCacheSim sizes LIRS's HIR share slightly differently at some sizes (0.05 points on
    // lirs_gli at 250); every other policy is held to the 0.05 points.
    EXPECT_NEAR(got.miss_ratio(), r.miss_ratio, r.policy == "LIRS" ? 0.001 : 0.0005)
        << r.trace << " " << r.policy << " at " << r.size;
  }
  // Every policy of the oracle was exercised on every small trace (4 traces x 5 sizes).
  for (const char* p :
       {"LRU", "FIFO", "Clock", "LFU", "ARC", "LIRS", "S3FIFO-0.1000-2", "Sieve", "Belady"}) {
    EXPECT_EQ(checked[p], 20) << p;
  }
}

TEST(Traces, BeladyIsALowerBoundForEveryPolicy) {
  const auto t = gd::read_trace(data_dir + "/traces/lirs_multi2.oracleGeneral.zst");
  for (const std::size_t c : {50u, 300u, 1200u}) {
    const std::uint64_t opt = gd::replay_belady(t, c).misses;
    EXPECT_LE(opt, gd::replay<gl::policy::lru>(t, c).misses);
    EXPECT_LE(opt, gd::replay<gl::policy::fifo>(t, c).misses);
    EXPECT_LE(opt, gd::replay<gl::policy::clock>(t, c).misses);
    EXPECT_LE(opt, gd::replay<gl::policy::lfu>(t, c).misses);
    EXPECT_LE(opt, gd::replay<gl::policy::arc>(t, c).misses);
  }
}

// The whole cache with one table (the default layout), read-through and inline, decides exactly
// as its policy alone: the policy hears every hit before each eviction, in order, and the
// governor keeps one shard below 8192 entries. The cache hashes ids as goldylox-sim does
// (splitmix_mix), which is the hash replay() gives the policy alone.
struct splitmix_hash {
  using is_avalanching = void;
  std::size_t operator()(std::uint64_t id) const noexcept { return gd::splitmix_mix(id); }
};

std::uint64_t one_table_misses(const std::vector<gd::trace_request>& t, std::size_t size,
                               std::string_view policy) {
  auto made = gl::typed_cache<std::uint64_t, std::uint64_t, splitmix_hash>::builder()
                  .max_entries(size)
                  .warm_tier_policy(policy)
                  .enable_background_workers(false)
                  .build();
  EXPECT_TRUE(made.ok()) << made.status();
  std::uint64_t misses = 0;
  for (const gd::trace_request& q : t) {
    if (!made->get(q.id)) {
      ++misses;
      EXPECT_TRUE(made->put(q.id, q.id).ok());
    }
  }
  EXPECT_LE(made->size(), size);
  return misses;
}

TEST(Traces, OneTableCacheDecidesAsItsPolicyAlone) {
  for (const char* name : {"lirs_gli", "lirs_multi2"}) {
    const auto t = gd::read_trace(data_dir + "/traces/" + name + ".oracleGeneral.zst");
    for (const std::size_t c : {100u, 700u}) {
      SCOPED_TRACE(std::string(name) + " at " + std::to_string(c));
      EXPECT_EQ(one_table_misses(t, c, "lru"), gd::replay<gl::policy::lru>(t, c).misses);
      EXPECT_EQ(one_table_misses(t, c, "arc"), gd::replay<gl::policy::arc>(t, c).misses);
      EXPECT_EQ(one_table_misses(t, c, "lirs"), gd::replay<gl::policy::lirs>(t, c).misses);
      EXPECT_EQ(one_table_misses(t, c, "s3fifo"), gd::replay<gl::policy::s3fifo>(t, c).misses);
      EXPECT_EQ(one_table_misses(t, c, "w-tinylfu"),
                gd::replay<gl::policy::w_tinylfu>(t, c).misses);
      EXPECT_EQ(one_table_misses(t, c, "adaptive"), gd::replay<gl::policy::adaptive>(t, c).misses);
    }
  }
}

// ---- formats agree --------------------------------------------------------------------------

TEST(Traces, TextAndCsvReadTheSameRequestsAsOracleGeneral) {
  scratch_dir dir;
  const auto oracle = gd::read_trace(data_dir + "/traces/lirs_cs.oracleGeneral.zst");
  ASSERT_EQ(oracle.size(), 6781u);
  std::string text = "# lirs_cs as text\n", csv = "time,obj_id,size\n";
  for (std::size_t i = 0; i < oracle.size(); ++i) {
    text += std::to_string(oracle[i].id) + (i % 7 == 0 ? "\r\n" : "\n");
    if (i % 100 == 0) text += "\n";  // blank lines are skipped
    csv += std::to_string(i) + ", " + std::to_string(oracle[i].id) + ",1\n";
  }
  write_file(dir.file("t.txt"), text);
  write_file(dir.file("t.txt.zst"), zstd_compress(text));
  write_file(dir.file("t.csv"), csv);
  for (const auto& got : {gd::read_trace(dir.file("t.txt")), gd::read_trace(dir.file("t.txt.zst")),
                          gd::read_trace(dir.file("t.csv"), gd::trace_format::csv, 1)}) {
    ASSERT_EQ(got.size(), oracle.size());
    for (std::size_t i = 0; i < got.size(); ++i) {
      ASSERT_EQ(got[i].id, oracle[i].id) << i;
      // Computed next access equals the one libCacheSim stored.
      ASSERT_EQ(got[i].next_access, oracle[i].next_access) << i;
    }
  }
}

TEST(Traces, NonNumericTextIdsAreHashedConsistently) {
  scratch_dir dir;
  write_file(dir.file("k.txt"), "user:1\nuser:2\nuser:1 trailing words\n42\n");
  const auto t = gd::read_trace(dir.file("k.txt"));
  ASSERT_EQ(t.size(), 4u);
  EXPECT_EQ(t[0].id, t[2].id);
  EXPECT_NE(t[0].id, t[1].id);
  EXPECT_EQ(t[3].id, 42u);
  EXPECT_EQ(t[0].next_access, 3);
  EXPECT_EQ(t[1].next_access, -1);
}

TEST(Traces, ZeroSizedOracleRecordsAreSkipped) {
  scratch_dir dir;
  write_file(dir.file("z.oracleGeneral"),
             record(0, 7, 1, 3) + record(1, 8, 0, -1) + record(2, 7, 1, -1));
  const auto t = gd::read_trace(dir.file("z.oracleGeneral"));
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0].id, 7u);
  EXPECT_EQ(t[1].id, 7u);
  EXPECT_EQ(t[0].next_access, 2);  // renumbered without the skipped record
  EXPECT_EQ(t[1].next_access, -1);
}

// ---- bad input: a clear error naming where reading stopped ----------------------------------

TEST(Traces, ATruncatedOracleRecordNamesItsOffset) {
  scratch_dir dir;
  const std::string three = record(0, 1, 1, -1) + record(1, 2, 1, -1) + record(2, 3, 1, -1);
  write_file(dir.file("t.oracleGeneral"), three + record(3, 4, 1, -1).substr(0, 10));
  EXPECT_THAT(error_of([&] { gd::read_trace(dir.file("t.oracleGeneral")); }),
              HasSubstr("byte offset 72 has 10 of its 24 bytes"));
  // The same through zstd.
  write_file(dir.file("t.oracleGeneral.zst"),
             zstd_compress(three + record(3, 4, 1, -1).substr(0, 10)));
  EXPECT_THAT(error_of([&] { gd::read_trace(dir.file("t.oracleGeneral.zst")); }),
              HasSubstr("byte offset 72 has 10 of its 24 bytes"));
}

TEST(Traces, ANextAccessThatIsNotALaterRequestIsMalformed) {
  scratch_dir dir;
  write_file(dir.file("b.oracleGeneral"), record(0, 1, 1, 2) + record(1, 1, 1, 1));
  EXPECT_THAT(error_of([&] { gd::read_trace(dir.file("b.oracleGeneral")); }),
              HasSubstr("malformed oracleGeneral record 1 (byte offset 24)"));
  write_file(dir.file("p.oracleGeneral"), record(0, 1, 1, 9));
  EXPECT_THAT(error_of([&] { gd::read_trace(dir.file("p.oracleGeneral")); }),
              HasSubstr("next access 9 is not a later request"));
}

TEST(Traces, CorruptOrTruncatedZstdIsAnError) {
  scratch_dir dir;
  const std::string good = read_file(data_dir + "/traces/lirs_ps.oracleGeneral.zst");
  ASSERT_GT(good.size(), 1000u);
  write_file(dir.file("cut.oracleGeneral.zst"), good.substr(0, good.size() / 2));
  EXPECT_THAT(error_of([&] { gd::read_trace(dir.file("cut.oracleGeneral.zst")); }),
              HasSubstr("truncated zstd stream"));
  std::string bad = good;
  for (std::size_t i = 0; i < 64; ++i) bad[bad.size() / 2 + i] ^= 0x5a;
  write_file(dir.file("bad.oracleGeneral.zst"), bad);
  EXPECT_THAT(error_of([&] { gd::read_trace(dir.file("bad.oracleGeneral.zst")); }),
              HasSubstr("corrupt zstd data near compressed offset"));
  write_file(dir.file("junk.txt.zst"), "this is not zstd at all\n");
  EXPECT_THAT(error_of([&] { gd::read_trace(dir.file("junk.txt.zst")); }),
              HasSubstr("corrupt zstd data"));
}

TEST(Traces, CsvAndTextErrorsNameTheLine) {
  scratch_dir dir;
  write_file(dir.file("c.csv"), "a,b\n1,2\n3\n");
  EXPECT_THAT(error_of([&] { gd::read_trace(dir.file("c.csv"), gd::trace_format::csv, 1); }),
              HasSubstr("line 3 has no column 1"));
  write_file(dir.file("e.csv"), "1,2\n,5\n");
  EXPECT_THAT(error_of([&] { gd::read_trace(dir.file("e.csv")); }),
              HasSubstr("line 2 has an empty id"));
  EXPECT_THAT(error_of([&] { gd::read_trace(dir.file("missing.txt")); }), HasSubstr("cannot open"));
}

}  // namespace
