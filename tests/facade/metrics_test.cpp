// The Prometheus and JSON exports of cache_stats (goldylox/metrics.hpp), checked by parsing what
// they emit: the Prometheus text format 0.0.4 by the grammar below, JSON with RapidJSON (which
// cereal's JSON archive brings).
#include <cstdint>
#include <cstring>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <goldylox/metrics.hpp>
#include <goldylox/typed_cache.hpp>

namespace {

using goldylox::cache_stats;

// Every field set to a distinct value (1, 2, 3, ... in declaration order): a field exported from
// the wrong member shows as a wrong number.
cache_stats distinct_stats(std::uint64_t base) {
  cache_stats s;
  auto* words = reinterpret_cast<unsigned char*>(&s);
  for (std::size_t i = 0; i < sizeof(s) / sizeof(std::uint64_t); ++i) {
    const std::uint64_t v = base + i;
    std::memcpy(words + i * sizeof(v), &v, sizeof(v));
  }
  return s;
}

struct sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

struct exposition {
  std::map<std::string, std::string> type;  // family -> counter | gauge
  std::map<std::string, std::string> help;
  std::vector<sample> samples;
};

bool valid_metric_name(std::string_view n) {
  if (n.empty()) return false;
  for (std::size_t i = 0; i < n.size(); ++i) {
    const char c = n[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

// Parses the text format; any departure from it fails the calling test.
exposition parse_prometheus(const std::string& text) {
  exposition e;
  std::set<std::string> families_seen;  // families whose samples started
  std::string current;                  // the family of the previous sample
  std::istringstream in(text);
  std::string line;
  EXPECT_TRUE(!text.empty() && text.back() == '\n') << "the last line must end with a newline";
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    if (line.rfind("# ", 0) == 0) {
      std::istringstream words(line.substr(2));
      std::string keyword, name;
      words >> keyword >> name;
      EXPECT_TRUE(valid_metric_name(name)) << line;
      std::string rest;
      std::getline(words, rest);
      if (keyword == "TYPE") {
        EXPECT_EQ(e.type.count(name), 0U) << "a second TYPE line for " << name;
        EXPECT_EQ(families_seen.count(name), 0U) << "TYPE after the samples of " << name;
        EXPECT_TRUE(rest == " counter" || rest == " gauge") << line;
        e.type[name] = rest.substr(1);
      } else if (keyword == "HELP") {
        EXPECT_EQ(e.help.count(name), 0U) << "a second HELP line for " << name;
        e.help[name] = rest.empty() ? "" : rest.substr(1);
      }
      continue;
    }
    sample s;
    std::size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    s.name = line.substr(0, i);
    EXPECT_TRUE(valid_metric_name(s.name)) << line;
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        const std::size_t eq = line.find('=', i);
        EXPECT_NE(eq, std::string::npos) << line;
        if (eq == std::string::npos) return e;
        const std::string label = line.substr(i, eq - i);
        EXPECT_TRUE(valid_metric_name(label)) << line;
        EXPECT_EQ(line[eq + 1], '"') << line;
        std::string value;
        std::size_t j = eq + 2;
        for (; j < line.size() && line[j] != '"'; ++j) {
          if (line[j] == '\\') {
            ++j;
            EXPECT_TRUE(line[j] == '\\' || line[j] == '"' || line[j] == 'n') << line;
            value += line[j] == 'n' ? '\n' : line[j];
          } else {
            value += line[j];
          }
        }
        EXPECT_LT(j, line.size()) << "unterminated label value: " << line;
        s.labels[label] = value;
        i = j + 1;
        if (i < line.size() && line[i] == ',') ++i;
      }
      ++i;  // '}'
    }
    EXPECT_EQ(line[i], ' ') << line;
    const std::string number = line.substr(i + 1);
    std::size_t used = 0;
    s.value = std::stod(number, &used);
    EXPECT_EQ(used, number.size()) << "a value with trailing text (or a timestamp): " << line;
    EXPECT_EQ(e.type.count(s.name), 1U) << "a sample before its TYPE line: " << line;
    if (s.name != current) {  // a family's samples are contiguous: one never comes back
      EXPECT_EQ(families_seen.count(s.name), 0U) << "the samples of " << s.name << " are split";
      current = s.name;
    }
    families_seen.insert(s.name);
    e.samples.push_back(std::move(s));
  }
  return e;
}

TEST(Metrics, PrometheusTextParsesAndCarriesEveryFieldOfEveryCache) {
  const cache_stats a = distinct_stats(1000);
  const cache_stats b = distinct_stats(5000);
  const std::string text = goldylox::to_prometheus({{"sessions", a}, {"users", b}});
  const exposition e = parse_prometheus(text);

  EXPECT_EQ(e.type.size(), goldylox::detail::stats_fields.size());
  EXPECT_EQ(e.samples.size(), 2 * goldylox::detail::stats_fields.size());
  for (const auto& [family, kind] : e.type) {
    EXPECT_EQ(family.rfind("goldylox_", 0), 0U) << family;
    const bool total = family.size() > 6 && family.substr(family.size() - 6) == "_total";
    EXPECT_EQ(kind == "counter", total) << family << ": counters, and only they, end in _total";
    EXPECT_FALSE(e.help.at(family).empty()) << family;
  }
  std::map<std::pair<std::string, std::string>, double> by_cache;
  for (const sample& s : e.samples) {
    ASSERT_EQ(s.labels.size(), 1U);
    by_cache[{s.name, s.labels.at("cache")}] = s.value;
  }
  EXPECT_EQ(by_cache.at({"goldylox_hits_total", "sessions"}), static_cast<double>(a.hits));
  EXPECT_EQ(by_cache.at({"goldylox_hits_total", "users"}), static_cast<double>(b.hits));
  EXPECT_EQ(by_cache.at({"goldylox_misses_total", "users"}), static_cast<double>(b.misses));
  EXPECT_EQ(by_cache.at({"goldylox_cold_sync_errors_total", "sessions"}),
            static_cast<double>(a.cold_sync_errors));
  EXPECT_EQ(by_cache.at({"goldylox_size", "sessions"}), static_cast<double>(a.size));
  EXPECT_EQ(by_cache.at({"goldylox_memory_bytes", "users"}), static_cast<double>(b.memory_bytes));
  EXPECT_EQ(e.type.at("goldylox_pending_moves"), "gauge");
  // Every exported value is distinct: no field is read twice, none is left at zero.
  std::set<double> values;
  for (const sample& s : e.samples) values.insert(s.value);
  EXPECT_EQ(values.size(), e.samples.size());
}

TEST(Metrics, PrometheusLabelValuesAreEscaped) {
  const std::string name = "a \"quoted\" back\\slash\nand newline";
  const exposition e = parse_prometheus(goldylox::to_prometheus(cache_stats{}, name));
  ASSERT_FALSE(e.samples.empty());
  for (const sample& s : e.samples) EXPECT_EQ(s.labels.at("cache"), name);
}

TEST(Metrics, PrometheusOfNoCacheIsEmptyFamiliesOnly) {
  const exposition e = parse_prometheus(goldylox::to_prometheus(cache_stats{}));
  EXPECT_EQ(e.samples.size(), goldylox::detail::stats_fields.size());
  for (const sample& s : e.samples) EXPECT_EQ(s.labels.at("cache"), "default");
}

TEST(Metrics, JsonParsesAndCarriesEveryField) {
  cache_stats s = distinct_stats(7);
  s.hits = 3;
  s.misses = 1;
  const std::string text = goldylox::to_json(s);
  rapidjson::Document doc;
  doc.Parse(text.c_str(), text.size());
  ASSERT_FALSE(doc.HasParseError()) << text;
  ASSERT_TRUE(doc.IsObject());
  EXPECT_EQ(doc.MemberCount(), goldylox::detail::stats_fields.size() + 1);
  for (const auto& f : goldylox::detail::stats_fields) {
    const std::string field(f.name);
    ASSERT_TRUE(doc.HasMember(field.c_str())) << field;
    ASSERT_TRUE(doc[field.c_str()].IsUint64()) << field;
    EXPECT_EQ(doc[field.c_str()].GetUint64(), f.read(s)) << field;
  }
  EXPECT_EQ(doc["hits"].GetUint64(), 3U);
  EXPECT_EQ(doc["cold_disk_bytes"].GetUint64(), s.cold_disk_bytes);
  ASSERT_TRUE(doc["hit_ratio"].IsDouble());
  EXPECT_DOUBLE_EQ(doc["hit_ratio"].GetDouble(), 0.75);
}

TEST(Metrics, JsonOfALiveCacheMatchesItsStats) {
  auto made = goldylox::typed_cache<int, int>::builder()
                  .max_entries(64)
                  .enable_telemetry(true)
                  .enable_background_workers(false)
                  .build();
  ASSERT_TRUE(made.ok()) << made.status();
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(made->put(i, i).ok());
  (void)made->get(99);
  (void)made->get(-1);
  const cache_stats st = made->stats();
  rapidjson::Document doc;
  const std::string text = goldylox::to_json(st);
  doc.Parse(text.c_str(), text.size());
  ASSERT_FALSE(doc.HasParseError()) << text;
  EXPECT_EQ(doc["inserts"].GetUint64(), 100U);
  EXPECT_EQ(doc["hits"].GetUint64(), 1U);
  EXPECT_EQ(doc["misses"].GetUint64(), 1U);
  EXPECT_EQ(doc["size"].GetUint64(), st.size);
  EXPECT_EQ(doc["evictions"].GetUint64(), 100U - st.size);
  EXPECT_EQ(doc["capacity"].GetUint64(), 64U);
}

// ---- latencies ----------------------------------------------------------------------------------

namespace gd = goldylox::detail;

TEST(LatencyHistogram, BucketsAreLogLinearWithinAnEighth) {
  using H = gd::latency_histogram;
  // Every value lies in its bucket, buckets are in order, and a bucket's width is at most an
  // eighth of its lowest value (one nanosecond below 16).
  std::uint64_t prev_edge = 0;
  for (std::size_t b = 0; b + 1 < H::bucket_count; ++b) {
    const std::uint64_t hi = H::upper_edge(b);
    const std::uint64_t lo = b == 0 ? 0 : H::upper_edge(b - 1) + 1;
    ASSERT_LE(lo, hi) << b;
    if (b > 0) {
      ASSERT_GT(hi, prev_edge) << b;
    }
    prev_edge = hi;
    EXPECT_EQ(H::bucket_of(lo), b);
    EXPECT_EQ(H::bucket_of(hi), b);
    if (lo >= 16) {
      EXPECT_LE(hi - lo + 1, lo / 8) << b;
    }
  }
  EXPECT_EQ(H::bucket_of(~std::uint64_t{0}), H::bucket_count - 1);
  EXPECT_EQ(H::bucket_of(std::uint64_t{1} << 50), H::bucket_count - 1);
}

TEST(LatencyHistogram, PercentilesAreAtMostAnEighthHighAndNeverLow) {
  gd::latency_histogram h;
  EXPECT_EQ(h.summary().samples, 0U);
  EXPECT_EQ(h.summary().p99_ns, 0U);
  for (std::uint64_t v = 1; v <= 100'000; ++v) h.record(v * 10);  // 10 ns .. 1 ms, uniform
  const gd::latency_summary s = h.summary();
  EXPECT_EQ(s.samples, 100'000U);
  const auto within = [](std::uint64_t got, std::uint64_t exact) {
    return got >= exact && got <= exact + exact / 8;
  };
  EXPECT_TRUE(within(s.p50_ns, 500'000)) << s.p50_ns;
  EXPECT_TRUE(within(s.p99_ns, 990'000)) << s.p99_ns;
  EXPECT_TRUE(within(s.p999_ns, 999'000)) << s.p999_ns;
  gd::latency_histogram one;
  one.record(7);
  EXPECT_EQ(one.summary().p50_ns, 7U);  // below 16 ns, exact
  EXPECT_EQ(one.summary().p999_ns, 7U);
}

// Through the cache: one get in 256 of a thread's lookups on the cache is timed (the first
// included), one put in 256 of a thread's puts, every load; nothing without telemetry; and the
// figures reach both exports.
TEST(LatencyHistogram, TheCacheTimesSampledGetsAndPutsAndEveryLoad) {
  auto build = [](bool telemetry) {
    return goldylox::typed_cache<int, int>::builder()
        .max_entries(1000)
        .enable_telemetry(telemetry)
        .enable_background_workers(false)
        .build();
  };
  auto on = build(true);
  auto off = build(false);
  ASSERT_TRUE(on.ok() && off.ok());
  std::thread([&] {  // a fresh thread: its put countdown starts at its first put
    for (int i = 0; i < 600; ++i) ASSERT_TRUE(on->put(i, i).ok());  // puts 1-600
    for (int i = 0; i < 640; ++i) (void)on->get(i % 400);           // lookups 0-639
    for (int i = 1000; i < 1003; ++i) {  // each looks the key up first: lookups 640-642
      (void)on->get_or_insert(i, [] {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        return 1;
      });
    }
    for (int i = 0; i < 100; ++i) {  // telemetry off: no sample
      ASSERT_TRUE(off->put(i, i).ok());
      (void)off->get(i);
    }
  })
      .join();
  const cache_stats s = on->stats();
  // Puts 1, 257 and 513 are timed, and lookups 0, 256 and 512.
  EXPECT_EQ(s.put_latency_samples, 3U);
  EXPECT_EQ(s.get_latency_samples, 3U);
  EXPECT_EQ(off->stats().put_latency_samples, 0U);
  EXPECT_EQ(off->stats().get_latency_samples, 0U);
  EXPECT_EQ(off->stats().get_p99_ns, 0U);
  EXPECT_GT(s.get_p50_ns, 0U);
  EXPECT_LE(s.get_p50_ns, s.get_p99_ns);
  EXPECT_LE(s.get_p99_ns, s.get_p999_ns);
  EXPECT_EQ(s.loads, 3U);
  EXPECT_GE(s.load_p50_ns, 2'000'000U);  // the factory slept 2 ms
  EXPECT_LE(s.load_p50_ns, s.load_p999_ns);
  const std::string json = goldylox::to_json(s);
  EXPECT_NE(json.find("\"load_p50_ns\":" + std::to_string(s.load_p50_ns)), std::string::npos);
  const std::string prom = goldylox::to_prometheus(s, "sessions");
  EXPECT_NE(prom.find("goldylox_loads_total{cache=\"sessions\"} 3\n"), std::string::npos) << prom;
}

}  // namespace
