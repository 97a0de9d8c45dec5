// goldylox-sim: replays cache traces through goldylox's eviction policies and Belady's optimum,
// single-threaded and deterministic, and reports miss and hit ratios per trace, policy and size.
//
//   goldylox-sim [--policies LIST] [--sizes LIST] [--format F] [--csv|--json] [--svg FILE] TRACE...
// (--help lists the options; docs/eviction.md shows them in use). Sizes are objects, or below 1
// fractions of the trace's distinct objects. With several traces, --svg writes one plot per trace,
// the trace name inserted before ".svg".
// Exit status: 0 on success, 1 when a trace cannot be read (the message names the file and the
// offset or line), 2 on a usage error (an unknown policy lists the valid ones).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <sim/replay.hpp>
#include <sim/trace.hpp>

#include <goldylox/policies.hpp>
#include <goldylox/typed_cache.hpp>

namespace {

namespace gd = goldylox::detail;

struct policy_entry {
  std::string_view name;
  std::function<gd::replay_result(const std::vector<gd::trace_request>&, std::size_t)> run;
};

const std::vector<policy_entry>& all_policies() {
  static const std::vector<policy_entry> policies = [] {
    std::vector<policy_entry> out;
    goldylox::policy::for_each_named([&]<class P>(std::type_identity<P>, std::string_view name) {
      out.push_back({name, [](const std::vector<gd::trace_request>& t, std::size_t c) {
                       return gd::replay<P>(t, c);
                     }});
    });
    out.push_back({"belady", [](const std::vector<gd::trace_request>& t, std::size_t c) {
                     return gd::replay_belady(t, c);
                   }});
    return out;
  }();
  return policies;
}

std::string valid_policy_names() {
  std::string s;
  for (const auto& p : all_policies()) s += (s.empty() ? "" : ", ") + std::string(p.name);
  return s;
}

[[noreturn]] void usage_error(const std::string& msg) {
  std::fprintf(stderr, "goldylox-sim: %s\n(run with --help for usage)\n", msg.c_str());
  std::exit(2);
}

std::vector<std::string> split(std::string_view s) {
  std::vector<std::string> out;
  while (!s.empty()) {
    const std::size_t c = s.find(',');
    out.emplace_back(s.substr(0, c));
    if (c == std::string_view::npos) break;
    s.remove_prefix(c + 1);
  }
  return out;
}

struct options {
  std::vector<const policy_entry*> policies;
  std::vector<double> sizes{0.001, 0.003, 0.01, 0.03, 0.1, 0.3};
  gd::trace_format format = gd::trace_format::automatic;
  unsigned id_column = 0;
  enum class output { table, csv, json, markdown } out = output::table;
  bool sizes_given = false;
  std::string score;                            // a policy to rank against the others
  std::string reference;                        // a reference_miss_ratios.tsv
  std::vector<std::string> reference_policies;  // empty: all in the file
  std::string svg;
  bool quiet = false;
  double tiered = 0;  // > 0: replay through the whole cache, this share of it in the hot tier
  std::uint32_t promotion_hits = 2;
  bool promotion_hits_given = false;
  bool two_tables = false;  // --two-tables: the tiered replay with memory_layout::two_tables
  std::vector<std::string> traces;
};

// absl::Hash is seeded per process (the address of a global), so a cache keyed through it places
// and evicts differently on every run; the replay hashes with a fixed function instead.
struct fixed_hash {
  using is_avalanching = void;
  std::size_t operator()(std::uint64_t id) const noexcept { return gd::splitmix_mix(id); }
};

// A replay through goldylox::typed_cache itself: a hot tier of `hot_share` of the size and a warm
// tier running `policy`, read-through (get; on a miss, put). The same on every run on one machine
// (the policy's shard count follows the machine's core count, so results can differ slightly
// between machines). No background pool: with one table (the default layout) the policy hears of
// every hit before each eviction, as when it runs alone; with two tables each move between tiers
// is made by the read that asked for it (the promotion manager's decisions without the timing of
// a pool thread).
gd::replay_result replay_tiered(const std::vector<gd::trace_request>& trace, std::size_t size,
                                std::string_view policy, double hot_share,
                                std::uint32_t promotion_hits, bool two_tables) {
  const std::size_t hot = std::clamp<std::size_t>(
      static_cast<std::size_t>(std::llround(static_cast<double>(size) * hot_share)), 1,
      std::max<std::size_t>(1, size - 1));
  auto builder = goldylox::typed_cache<std::uint64_t, std::uint64_t, fixed_hash>::builder();
  builder.hot_tier_max_entries(hot).warm_tier_max_entries(size > hot ? size - hot : 0);
  builder.enable_background_workers(false);
  builder.memory_layout(two_tables ? goldylox::memory_layout::two_tables
                                   : goldylox::memory_layout::one_table);
  if (size > hot) builder.warm_tier_policy(policy);
  if (size > hot && two_tables) builder.warm_tier_promotion_hits(promotion_hits);
  auto cache = builder.build();
  if (!cache.ok()) {
    std::fprintf(stderr, "goldylox-sim: %s\n", std::string(cache.status().message()).c_str());
    std::exit(2);
  }
  gd::replay_result r;
  for (const gd::trace_request& q : trace) {
    ++r.requests;
    if (!cache->get(q.id)) {
      ++r.misses;
      (void)cache->put(q.id, q.id);
    }
  }
  return r;
}

void print_help() {
  std::printf(
      "usage: goldylox-sim [options] TRACE...\n"
      "  --policies LIST   comma-separated, any of: %s (default: all)\n"
      "  --sizes LIST      sizes in objects, or fractions (< 1) of the distinct objects\n"
      "                    (default 0.001,0.003,0.01,0.03,0.1,0.3)\n"
      "  --format F        auto | oracle | text | csv (default auto: by file name)\n"
      "  --id-column N     csv: 0-based column of the object id (default 0)\n"
      "  --csv | --json    machine-readable output instead of the table\n"
      "  --markdown        one table per trace: sizes down, policies across (hit ratio %%)\n"
      "  --reference TSV   libCacheSim reference miss ratios (trace, policy, cache_size,\n"
      "                    requests, miss_ratio): its sizes for each trace unless --sizes is\n"
      "                    given, and its policies' results as extra rows named ref:POLICY\n"
      "  --reference-policies LIST  only these of the reference file's policies\n"
      "  --score POLICY    after the output, rank POLICY at each trace and size against the\n"
      "                    best of every other column except belady (and lru, belady)\n"
      "  --svg FILE        write a hit-ratio plot per trace\n"
      "  --tiered SHARE    also replay each policy through the whole cache (typed_cache,\n"
      "                    read-through): a hot tier of SHARE (0..1) of the size and a warm\n"
      "                    tier running the policy, in rows named tiered-POLICY\n"
      "  --two-tables      with --tiered: memory_layout::two_tables (a CLOCK hot table over\n"
      "                    a separate warm tier) instead of the default one table\n"
      "  --promotion-hits N  with --two-tables: warm hits that promote an entry (default 2)\n"
      "  --quiet           no progress on stderr\n"
      "Options with a value also take the form --option=value.\n",
      valid_policy_names().c_str());
}

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    const std::size_t eq = a.find('=');
    const std::string_view key = a.substr(0, eq);
    std::string val = eq == std::string_view::npos ? "" : std::string(a.substr(eq + 1));
    // Options with a value take it as --opt=value or as the next argument.
    static constexpr std::string_view with_value[] = {
        "--policies", "--sizes",         "--format", "--id-column",
        "--svg",      "--reference",     "--score",  "--reference-policies",
        "--tiered",   "--promotion-hits"};
    if (eq == std::string_view::npos &&
        std::find(std::begin(with_value), std::end(with_value), key) != std::end(with_value)) {
      if (i + 1 >= argc) usage_error(std::string(key) + " needs a value");
      val = argv[++i];
    }
    if (a == "--help" || a == "-h") {
      print_help();
      std::exit(0);
    } else if (key == "--policies") {
      for (const std::string& name : split(val)) {
        const auto& all = all_policies();
        const auto it = std::find_if(all.begin(), all.end(),
                                     [&](const policy_entry& p) { return p.name == name; });
        if (it == all.end()) {
          usage_error("unknown policy '" + name + "'; valid policies: " + valid_policy_names());
        }
        o.policies.push_back(&*it);
      }
    } else if (key == "--sizes") {
      o.sizes.clear();
      o.sizes_given = true;
      for (const std::string& v : split(val)) {
        char* end = nullptr;
        const double d = std::strtod(v.c_str(), &end);
        if (end == v.c_str() || *end != '\0' || !(d > 0) || (d >= 1 && d != std::floor(d))) {
          usage_error("bad size '" + v + "': give whole objects (>= 1) or a fraction in (0, 1)");
        }
        o.sizes.push_back(d);
      }
    } else if (key == "--format") {
      if (val == "auto") {
        o.format = gd::trace_format::automatic;
      } else if (val == "oracle") {
        o.format = gd::trace_format::oracle_general;
      } else if (val == "text") {
        o.format = gd::trace_format::text;
      } else if (val == "csv") {
        o.format = gd::trace_format::csv;
      } else {
        usage_error("unknown format '" + val + "'; valid formats: auto, oracle, text, csv");
      }
    } else if (key == "--id-column") {
      char* end = nullptr;
      const unsigned long column = std::strtoul(val.c_str(), &end, 10);
      if (val.empty() || *end != '\0' || column > 4096) {
        usage_error("bad --id-column '" + val + "': give a 0-based column number");
      }
      o.id_column = static_cast<unsigned>(column);
    } else if (a == "--csv") {
      o.out = options::output::csv;
    } else if (a == "--json") {
      o.out = options::output::json;
    } else if (a == "--markdown") {
      o.out = options::output::markdown;
    } else if (key == "--reference") {
      o.reference = val;
    } else if (key == "--score") {
      o.score = val;
    } else if (key == "--reference-policies") {
      o.reference_policies = split(val);
    } else if (key == "--svg") {
      o.svg = val;
    } else if (key == "--tiered") {
      char* end = nullptr;
      o.tiered = std::strtod(val.c_str(), &end);
      if (val.empty() || *end != '\0' || !(o.tiered > 0) || !(o.tiered < 1)) {
        usage_error("bad --tiered '" + val + "': give the hot tier's share, between 0 and 1");
      }
    } else if (key == "--promotion-hits") {
      char* end = nullptr;
      const unsigned long n = std::strtoul(val.c_str(), &end, 10);
      if (val.empty() || *end != '\0' || n == 0 || n > 1'000'000) {
        usage_error("bad --promotion-hits '" + val + "': give a count >= 1");
      }
      o.promotion_hits = static_cast<std::uint32_t>(n);
      o.promotion_hits_given = true;
    } else if (a == "--two-tables") {
      o.two_tables = true;
    } else if (a == "--quiet") {
      o.quiet = true;
    } else if (a.starts_with("--")) {
      usage_error("unknown option " + std::string(a));
    } else {
      o.traces.emplace_back(a);
    }
  }
  if (o.traces.empty()) usage_error("no trace given");
  if (o.two_tables && o.tiered == 0) usage_error("--two-tables needs --tiered");
  if (o.promotion_hits_given && !o.two_tables) usage_error("--promotion-hits needs --two-tables");
  if (o.policies.empty()) {
    for (const auto& p : all_policies()) o.policies.push_back(&p);
  }
  if (o.tiered > 0) {
    // Each chosen policy (Belady has no online form) also runs as the warm tier of a whole cache.
    static std::deque<std::string> names;
    static std::deque<policy_entry> entries;
    std::vector<const policy_entry*> tiered;
    for (const policy_entry* p : o.policies) {
      if (p->name == "belady") continue;
      names.push_back("tiered-" + std::string(p->name));
      entries.push_back({names.back(), [policy = p->name, share = o.tiered, n = o.promotion_hits,
                                        two = o.two_tables](const std::vector<gd::trace_request>& t,
                                                            std::size_t c) {
                           return replay_tiered(t, c, policy, share, n, two);
                         }});
      tiered.push_back(&entries.back());
    }
    o.policies.insert(o.policies.end(), tiered.begin(), tiered.end());
  }
  return o;
}

struct row {
  std::string trace;
  std::string policy;
  std::size_t size;
  gd::replay_result result;
};

std::string trace_name(const std::string& path) {
  std::string name = path.substr(path.find_last_of('/') + 1);
  for (const char* suffix : {".zst", ".oracleGeneral", ".bin", ".csv", ".txt"}) {
    if (gd::ends_with(name, suffix)) name.resize(name.size() - std::strlen(suffix));
  }
  return name;
}

// A self-contained SVG line chart: x = cache size (log scale), y = hit ratio.
void write_svg(const std::string& file, const std::string& title, const std::vector<row>& rows) {
  constexpr double w = 720, h = 440, left = 70, right = 150, top = 40, bottom = 60;
  std::map<std::string, std::vector<std::pair<double, double>>> lines;
  double xmin = 1e300, xmax = 0;
  for (const row& r : rows) {
    const double x = static_cast<double>(r.size);
    lines[r.policy].emplace_back(x, 1.0 - r.result.miss_ratio());
    xmin = std::min(xmin, x);
    xmax = std::max(xmax, x);
  }
  const double lx0 = std::log10(xmin), lx1 = std::max(std::log10(xmax), lx0 + 1e-9);
  const auto px = [&](double x) {
    return left + (std::log10(x) - lx0) / (lx1 - lx0) * (w - left - right);
  };
  const auto py = [&](double y) { return top + (1.0 - y) * (h - top - bottom); };
  std::ofstream out(file);
  if (!out) {
    std::fprintf(stderr, "goldylox-sim: cannot write %s\n", file.c_str());
    std::exit(1);
  }
  out << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << w << "\" height=\"" << h
      << "\" font-family=\"sans-serif\" font-size=\"12\">\n"
      << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      << "<text x=\"" << left << "\" y=\"24\" font-size=\"15\">" << title
      << ": hit ratio by cache size</text>\n";
  for (int i = 0; i <= 10; ++i) {  // y grid every 10 %
    const double y = py(i / 10.0);
    out << "<line x1=\"" << left << "\" y1=\"" << y << "\" x2=\"" << w - right << "\" y2=\"" << y
        << "\" stroke=\"#ddd\"/><text x=\"" << left - 8 << "\" y=\"" << y + 4
        << "\" text-anchor=\"end\">" << i * 10 << "%</text>\n";
  }
  std::set<double> xs;
  for (const auto& [name, pts] : lines) {
    for (const auto& p : pts) xs.insert(p.first);
  }
  for (const double x : xs) {
    out << "<line x1=\"" << px(x) << "\" y1=\"" << top << "\" x2=\"" << px(x) << "\" y2=\""
        << h - bottom << "\" stroke=\"#eee\"/><text x=\"" << px(x) << "\" y=\"" << h - bottom + 16
        << "\" text-anchor=\"middle\">" << static_cast<std::uint64_t>(x) << "</text>\n";
  }
  out << "<text x=\"" << (left + w - right) / 2 << "\" y=\"" << h - 16
      << "\" text-anchor=\"middle\">cache size (objects, log scale)</text>\n";
  static const char* colors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                 "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
  int k = 0;
  for (auto& [name, pts] : lines) {
    std::sort(pts.begin(), pts.end());
    const char* color = colors[k % 10];
    out << "<polyline fill=\"none\" stroke=\"" << color << "\" stroke-width=\"2\" points=\"";
    for (const auto& [x, y] : pts) out << px(x) << ',' << py(y) << ' ';
    out << "\"/>\n";
    for (const auto& [x, y] : pts) {
      out << "<circle cx=\"" << px(x) << "\" cy=\"" << py(y) << "\" r=\"3\" fill=\"" << color
          << "\"/>\n";
    }
    const double ly = top + 18.0 * k;
    out << "<line x1=\"" << w - right + 12 << "\" y1=\"" << ly << "\" x2=\"" << w - right + 32
        << "\" y2=\"" << ly << "\" stroke=\"" << color << "\" stroke-width=\"3\"/><text x=\""
        << w - right + 38 << "\" y=\"" << ly + 4 << "\">" << name << "</text>\n";
    ++k;
  }
  out << "</svg>\n";
}

struct reference_entry {
  std::string trace, policy;
  std::size_t size;
  std::uint64_t requests;
  double miss_ratio;
};

std::vector<reference_entry> read_reference(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    std::fprintf(stderr, "goldylox-sim: %s: cannot open the reference file\n", path.c_str());
    std::exit(1);
  }
  std::vector<reference_entry> out;
  std::string line;
  for (std::size_t line_no = 1; std::getline(in, line); ++line_no) {
    if (line_no == 1 && line.starts_with("trace")) continue;  // the header
    if (line.empty()) continue;
    std::vector<std::string> f;
    for (std::string_view rest = line;;) {
      const std::size_t tab = rest.find('\t');
      f.emplace_back(rest.substr(0, tab));
      if (tab == std::string_view::npos) break;
      rest.remove_prefix(tab + 1);
    }
    char* end1 = nullptr;
    char* end2 = nullptr;
    char* end3 = nullptr;
    reference_entry e;
    if (f.size() == 5) {
      e.size = std::strtoull(f[2].c_str(), &end1, 10);
      e.requests = std::strtoull(f[3].c_str(), &end2, 10);
      e.miss_ratio = std::strtod(f[4].c_str(), &end3);
    }
    if (f.size() != 5 || *end1 != '\0' || *end2 != '\0' || *end3 != '\0' || e.size == 0 ||
        !(e.miss_ratio >= 0 && e.miss_ratio <= 1)) {
      std::fprintf(stderr,
                   "goldylox-sim: %s: line %zu is not 'trace<TAB>policy<TAB>cache_size<TAB>"
                   "requests<TAB>miss_ratio'\n",
                   path.c_str(), line_no);
      std::exit(1);
    }
    e.trace = f[0];
    e.policy = f[1];
    out.push_back(std::move(e));
  }
  return out;
}

std::string json_escaped(std::string_view s) {
  std::string out;
  for (const char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

// Markdown: a table per trace, one row per size, one column per policy, hit ratios in percent.
void print_markdown(const std::vector<row>& rows) {
  std::vector<std::string> traces;
  for (const row& r : rows) {
    if (std::find(traces.begin(), traces.end(), r.trace) == traces.end()) traces.push_back(r.trace);
  }
  for (const std::string& t : traces) {
    std::vector<std::string> policies;
    std::map<std::pair<std::size_t, std::string>, double> hit;
    std::set<std::size_t> sizes;
    std::uint64_t requests = 0;
    for (const row& r : rows) {
      if (r.trace != t) continue;
      if (std::find(policies.begin(), policies.end(), r.policy) == policies.end()) {
        policies.push_back(r.policy);
      }
      hit[{r.size, r.policy}] = 100 * (1 - r.result.miss_ratio());
      sizes.insert(r.size);
      requests = std::max(requests, r.result.requests);
    }
    std::printf("\n#### %s (%llu requests; hit ratio %%)\n\n| size |", t.c_str(),
                static_cast<unsigned long long>(requests));
    for (const std::string& p : policies) std::printf(" %s |", p.c_str());
    std::printf("\n|---:|");
    for (std::size_t i = 0; i < policies.size(); ++i) std::printf("---:|");
    std::printf("\n");
    for (const std::size_t size : sizes) {
      std::printf("| %zu |", size);
      for (const std::string& p : policies) {
        const auto it = hit.find({size, p});
        if (it == hit.end()) {
          std::printf("  |");
        } else {
          std::printf(" %.2f |", it->second);
        }
      }
      std::printf("\n");
    }
  }
}

// How `name` compares with the best of every other policy (Belady aside) at each trace and size:
// the points within one point of hit ratio, the points more than one point below LRU, and the
// mean distance to Belady.
void print_score(const std::vector<row>& rows, const std::string& name) {
  std::map<std::pair<std::string, std::size_t>, std::map<std::string, double>> hit;
  for (const row& r : rows) hit[{r.trace, r.size}][r.policy] = 100 * (1 - r.result.miss_ratio());
  int points = 0, within = 0, below_lru = 0, with_opt = 0;
  double to_opt = 0;
  std::printf("\n%s against the best of the other policies (hit ratio %%):\n", name.c_str());
  for (const auto& [at, by] : hit) {
    const auto me = by.find(name);
    if (me == by.end()) continue;
    double best = -1;
    std::string best_name;
    for (const auto& [p, h] : by) {
      if (p != name && p != "belady" && h > best) {
        best = h;
        best_name = p;
      }
    }
    if (best < 0) continue;
    ++points;
    const bool ok = me->second >= best - 1.0;
    within += ok ? 1 : 0;
    if (const auto lru = by.find("lru"); lru != by.end() && me->second < lru->second - 1.0) {
      ++below_lru;
    }
    if (const auto opt = by.find("belady"); opt != by.end()) {
      to_opt += opt->second - me->second;
      ++with_opt;
    }
    std::printf("  %-16s %8zu  %s %6.2f  best %6.2f (%s)  %+6.2f%s\n", at.first.c_str(), at.second,
                name.c_str(), me->second, best, best_name.c_str(), me->second - best,
                ok ? "" : "  <- more than 1 point below");
  }
  std::printf(
      "%s: within 1 point of the best at %d of %d points (%.1f %%); more than 1 point "
      "below lru at %d; mean gap to belady %.2f points\n",
      name.c_str(), within, points, points ? 100.0 * within / points : 0.0, below_lru,
      with_opt ? to_opt / with_opt : 0.0);
}

}  // namespace

int main(int argc, char** argv) {
  const options o = parse(argc, argv);
  const std::vector<reference_entry> reference =
      o.reference.empty() ? std::vector<reference_entry>{} : read_reference(o.reference);
  std::vector<row> rows;
  for (const std::string& path : o.traces) {
    std::vector<gd::trace_request> trace;
    try {
      trace = gd::read_trace(path, o.format, o.id_column);
    } catch (const gd::trace_error& e) {
      std::fprintf(stderr, "goldylox-sim: %s\n", e.what());
      return 1;
    }
    absl::flat_hash_map<std::uint64_t, char> distinct;
    for (const auto& q : trace) distinct.try_emplace(q.id, 0);
    const std::string name = trace_name(path);
    if (!o.quiet) {
      std::fprintf(stderr, "%s: %zu requests, %zu objects\n", name.c_str(), trace.size(),
                   distinct.size());
    }
    std::vector<std::size_t> sizes;
    std::vector<row> listed;  // the reference file's results for this trace
    for (const reference_entry& e : reference) {
      if (e.trace != name) continue;
      if (!o.sizes_given && std::find(sizes.begin(), sizes.end(), e.size) == sizes.end()) {
        sizes.push_back(e.size);
      }
      if (o.reference_policies.empty() ||
          std::find(o.reference_policies.begin(), o.reference_policies.end(), e.policy) !=
              o.reference_policies.end()) {
        const auto misses = static_cast<std::uint64_t>(
            std::llround(e.miss_ratio * static_cast<double>(e.requests)));
        listed.push_back({name, "ref:" + e.policy, e.size, {e.requests, misses}});
      }
    }
    if (!reference.empty() && sizes.empty() && !o.sizes_given) {
      std::fprintf(stderr, "goldylox-sim: %s: the reference file lists no sizes for '%s'\n",
                   o.reference.c_str(), name.c_str());
      return 1;
    }
    for (const double s : (o.sizes_given || reference.empty()) ? o.sizes : std::vector<double>{}) {
      const auto n = static_cast<std::size_t>(s < 1 ? s * static_cast<double>(distinct.size()) : s);
      if (n >= 1 && std::find(sizes.begin(), sizes.end(), n) == sizes.end()) sizes.push_back(n);
    }
    std::vector<row> mine;
    for (const policy_entry* p : o.policies) {
      for (const std::size_t size : sizes) {
        const auto t0 = std::chrono::steady_clock::now();
        mine.push_back({name, std::string(p->name), size, p->run(trace, size)});
        if (!o.quiet) {
          std::fprintf(
              stderr, "  %-8s %8zu  miss %.4f  (%.2f s)\n", std::string(p->name).c_str(), size,
              mine.back().result.miss_ratio(),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        }
      }
    }
    std::sort(sizes.begin(), sizes.end());
    for (const row& r : listed) {
      if (std::find(sizes.begin(), sizes.end(), r.size) != sizes.end()) mine.push_back(r);
    }
    if (!o.svg.empty()) {
      std::string file = o.svg;
      if (o.traces.size() > 1) {
        const std::size_t dot = file.rfind(".svg");
        file.insert(dot == std::string::npos ? file.size() : dot, "." + name);
      }
      write_svg(file, name, mine);
    }
    rows.insert(rows.end(), mine.begin(), mine.end());
  }
  switch (o.out) {
    case options::output::csv:
      std::puts("trace,policy,cache_size,requests,misses,miss_ratio,hit_ratio");
      for (const row& r : rows) {
        std::printf("%s,%s,%zu,%llu,%llu,%.6f,%.6f\n", r.trace.c_str(), r.policy.c_str(), r.size,
                    static_cast<unsigned long long>(r.result.requests),
                    static_cast<unsigned long long>(r.result.misses), r.result.miss_ratio(),
                    1 - r.result.miss_ratio());
      }
      break;
    case options::output::json:
      std::puts("[");
      for (std::size_t i = 0; i < rows.size(); ++i) {
        const row& r = rows[i];
        std::printf(
            "  {\"trace\": \"%s\", \"policy\": \"%s\", \"cache_size\": %zu, \"requests\": %llu, "
            "\"misses\": %llu, \"miss_ratio\": %.6f}%s\n",
            json_escaped(r.trace).c_str(), json_escaped(r.policy).c_str(), r.size,
            static_cast<unsigned long long>(r.result.requests),
            static_cast<unsigned long long>(r.result.misses), r.result.miss_ratio(),
            i + 1 < rows.size() ? "," : "");
      }
      std::puts("]");
      break;
    case options::output::markdown:
      print_markdown(rows);
      break;
    case options::output::table:
      std::printf("%-16s %-16s %10s %10s %10s %9s\n", "trace", "policy", "size", "requests",
                  "misses", "hit ratio");
      for (const row& r : rows) {
        std::printf("%-16s %-16s %10zu %10llu %10llu %8.2f%%\n", r.trace.c_str(), r.policy.c_str(),
                    r.size, static_cast<unsigned long long>(r.result.requests),
                    static_cast<unsigned long long>(r.result.misses),
                    100 * (1 - r.result.miss_ratio()));
      }
      break;
  }
  if (!o.score.empty()) print_score(rows, o.score);
  return 0;
}
