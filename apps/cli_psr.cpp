#include "cli_psr.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <map>
#include <memory>
#include <thread>

#include "toolstack/api.h"

namespace vigil::cli {

namespace {

using toolstack::Json;

struct Options {
  std::string domain, type, value;
  unsigned level = 3;
  unsigned interval_ms = 100;
  unsigned window_ms = 2000;
  unsigned iterations = 0;  // psr-top: 0 = until interrupted
  double delay_s = 1.0;
  bool cmt = false, cat = false, mba = false;
  bool json = false;
};

int fail(const std::string& message) {
  std::fprintf(stderr, "vigil: %s\n", message.c_str());
  return 1;
}

Result<Json> call(const std::string& socket, const Json& req) { return toolstack::api_request(socket, req); }

void add_domain(Json& req, const std::string& domain) {
  if (!domain.empty()) req["domain"] = domain;
}

int hwinfo(const Json& h, const Options& o) {
  const bool all = !o.cmt && !o.cat && !o.mba;
  if (all || o.cmt) {
    std::printf("Cache Monitoring Technology (CMT):\n");
    std::printf("%-16s: %s\n", "Enabled", "1");
    std::printf("%-16s: %u\n", "Total RMID", h["cmt"]["total_rmid"].get<unsigned>());
    std::printf("Supported monitor types:\n");
    for (const auto& t : h["cmt"]["types"]) std::printf("%s\n", t.get<std::string>().c_str());
  }
  if (all || o.cat) {
    const auto& c = h["cat"];
    std::printf("Cache Allocation Technology (CAT):\n");
    std::printf("%-16s: %u\n", "Socket ID", c["socket"].get<unsigned>());
    std::printf("%-16s: %lluKB\n", "L3 Cache", static_cast<unsigned long long>(c["l3_cache_kb"].get<uint64_t>()));
    std::printf("%-16s: %s\n", "CDP Status", "Disabled");
    std::printf("%-16s: %u\n", "Maximum COS", c["cos_max"].get<unsigned>());
    std::printf("%-16s: %u\n", "CBM length", c["cbm_len"].get<unsigned>());
    std::printf("%-16s: %#llx\n", "Default CBM", static_cast<unsigned long long>(c["default_cbm"].get<uint64_t>()));
  }
  if (all || o.mba) {
    const auto& b = h["mba"];
    std::printf("Memory Bandwidth Allocation (MBA):\n");
    std::printf("%-16s: %u\n", "Socket ID", b["socket"].get<unsigned>());
    std::printf("%-16s: %s\n", "Linear Mode", "Enabled");
    std::printf("%-16s: %u\n", "Maximum COS", b["cos_max"].get<unsigned>());
    std::printf("%-16s: %u\n", "Maximum Throttling Value", b["thrtl_max"].get<unsigned>());
  }
  if (all) {
    const auto& m = h["model"];
    // Not in xl: what the numbers above describe (a modeled reference cache, README "Noisy neighbours").
    std::printf("Modeled cache: %u ways, %u-byte lines, %llu sets, 1 page in %u sampled; "
                "peak memory bandwidth %llu KB/s, %llu ns of credit per miss\n",
                m["ways"].get<unsigned>(), m["line_bytes"].get<unsigned>(),
                static_cast<unsigned long long>(m["sets"].get<uint64_t>()), m["sampling"].get<unsigned>(),
                static_cast<unsigned long long>(m["peak_bytes_per_s"].get<uint64_t>() / 1024),
                static_cast<unsigned long long>(m["miss_cost_ns"].get<uint64_t>()));
  }
  return 0;
}

int cmt_show(const std::string& socket, const Options& o) {
  enum class Kind { kOccupancy, kTotal, kLocal } kind;
  if (o.type == "cache-occupancy") {
    kind = Kind::kOccupancy;
  } else if (o.type == "total-mem-bandwidth") {
    kind = Kind::kTotal;
  } else if (o.type == "local-mem-bandwidth") {
    kind = Kind::kLocal;
  } else {
    return fail(fmt::format("'{}' is not a monitor type: cache-occupancy, total-mem-bandwidth or local-mem-bandwidth",
                            o.type));
  }
  Json req{{"op", "psr-cmt-show"}};
  add_domain(req, o.domain);
  auto first = call(socket, req);
  if (!first) return fail(first.error().message);
  Json second;
  if (kind != Kind::kOccupancy) {
    // Bandwidth from two samples, as xl does (it waits 10 ms; the model moves in 2 ms slices,
    // so a longer default interval gives steadier figures).
    std::this_thread::sleep_for(std::chrono::milliseconds(o.interval_ms));
    auto s = call(socket, req);
    if (!s) return fail(s.error().message);
    second = *s;
  }
  if (o.json) {
    std::printf("%s\n", (kind == Kind::kOccupancy ? *first : Json{{"first", *first}, {"second", second}}).dump(2).c_str());
    return 0;
  }
  std::printf("Total RMID: %u\n", (*first)["total_rmid"].get<unsigned>());
  std::printf("%-40s %5s%14s %d\n", "Name", "ID", "Socket", 0);
  if (kind == Kind::kOccupancy) {
    std::printf("%-46s%13llu KB\n", "Total L3 Cache Size",
                static_cast<unsigned long long>((*first)["l3_cache_kb"].get<uint64_t>()));
  }
  std::map<uint32_t, Json> before;
  for (const auto& d : (*first)["domains"]) before[d["id"].get<uint32_t>()] = d;
  const Json& rows = kind == Kind::kOccupancy ? (*first)["domains"] : second["domains"];
  const char* counter = kind == Kind::kLocal ? "mbm_local_bytes" : "mbm_total_bytes";
  for (const auto& d : rows) {
    const uint32_t id = d["id"].get<uint32_t>();
    std::printf("%-40s %5u", d["name"].get<std::string>().c_str(), id);
    if (kind == Kind::kOccupancy) {
      std::printf("%13llu KB", static_cast<unsigned long long>(d["occupancy_bytes"].get<uint64_t>() / 1024));
    } else {
      auto b = before.find(id);
      const uint64_t t0 = (*first)["time_ns"].get<uint64_t>(), t1 = second["time_ns"].get<uint64_t>();
      if (b == before.end() || t1 <= t0 || d[counter].get<uint64_t>() < b->second[counter].get<uint64_t>()) {
        std::printf("%16s", "error");  // attached or reset between the samples
      } else {
        const double bytes = static_cast<double>(d[counter].get<uint64_t>() - b->second[counter].get<uint64_t>());
        std::printf("%11llu KB/s", static_cast<unsigned long long>(bytes * 1e9 / static_cast<double>(t1 - t0) / 1024));
      }
    }
    std::printf("\n");
  }
  return 0;
}

std::string human_rate(double bytes_per_s) {
  if (bytes_per_s >= 1e9) return fmt::format("{:.2f} GB/s", bytes_per_s / 1e9);
  if (bytes_per_s >= 1e6) return fmt::format("{:.1f} MB/s", bytes_per_s / 1e6);
  return fmt::format("{:.0f} KB/s", bytes_per_s / 1e3);
}

// `vigil psr-top`: a live table like pqos's, one block per interval, busiest domain first.
int top(const std::string& socket, const Options& o) {
  if (o.delay_s < 0.1 || o.delay_s > 3600) return fail("-d takes 0.1 to 3600 seconds");
  auto prev = call(socket, Json{{"op", "psr-cmt-show"}});
  if (!prev) return fail(prev.error().message);
  for (unsigned i = 0; o.iterations == 0 || i < o.iterations; ++i) {
    std::this_thread::sleep_for(std::chrono::duration<double>(o.delay_s));
    auto now = call(socket, Json{{"op", "psr-cmt-show"}});
    if (!now) return fail(now.error().message);
    const double secs = static_cast<double>((*now)["time_ns"].get<uint64_t>() - (*prev)["time_ns"].get<uint64_t>()) / 1e9;
    std::map<uint32_t, Json> before;
    for (const auto& d : (*prev)["domains"]) before[d["id"].get<uint32_t>()] = d;
    struct Row {
      std::string name;
      uint32_t id;
      uint64_t occ_kb;
      double mbt, misses, miss_rate;
    };
    std::vector<Row> rows;
    for (const auto& d : (*now)["domains"]) {
      const uint32_t id = d["id"].get<uint32_t>();
      auto b = before.find(id);
      auto diff = [&](const char* k) {
        if (b == before.end() || d[k].get<uint64_t>() < b->second[k].get<uint64_t>()) return 0.0;
        return static_cast<double>(d[k].get<uint64_t>() - b->second[k].get<uint64_t>());
      };
      const double acc = diff("accesses");
      rows.push_back({d["name"].get<std::string>(), id, d["occupancy_bytes"].get<uint64_t>() / 1024,
                      secs > 0 ? diff("mbm_total_bytes") / secs / 1e6 : 0, secs > 0 ? diff("misses") / secs : 0,
                      acc > 0 ? diff("misses") / acc : 0});
    }
    std::sort(rows.begin(), rows.end(), [](const Row& x, const Row& y) { return x.mbt > y.mbt; });
    const std::time_t t = std::time(nullptr);
    char when[32];
    std::strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", std::localtime(&t));
    std::printf("TIME %s (modeled L3 %llu KB, interval %.2f s)\n", when,
                static_cast<unsigned long long>((*now)["l3_cache_kb"].get<uint64_t>()), secs);
    std::printf("%-20s %5s %12s %12s %14s %9s\n", "DOMAIN", "ID", "LLC[KB]", "MBT[MB/s]", "MISSES/s", "MISS-RATE");
    for (const Row& r : rows) {
      std::printf("%-20s %5u %12llu %12.1f %14.0f %8.1f%%\n", r.name.c_str(), r.id,
                  static_cast<unsigned long long>(r.occ_kb), r.mbt, r.misses, 100 * r.miss_rate);
    }
    std::printf("\n");
    std::fflush(stdout);
    prev = std::move(now);
  }
  return 0;
}

int noisy(const std::string& socket, const Options& o) {
  auto r = call(socket, Json{{"op", "psr-noisy"}, {"window_ms", o.window_ms}});
  if (!r) return fail(r.error().message);
  const Json& v = *r;
  if (o.json) {
    std::printf("%s\n", v.dump(2).c_str());
    return 0;
  }
  const auto& th = v["thresholds"];
  std::printf("Window %.1f s, %zu monitored domains, modeled memory bandwidth %s of %s peak (%.0f%%%s)\n",
              v["window_s"].get<double>(), v["domains"].size(), human_rate(v["total_bandwidth_bytes_per_s"].get<double>()).c_str(),
              human_rate(v["peak_bytes_per_s"].get<double>()).c_str(),
              100 * v["total_bandwidth_bytes_per_s"].get<double>() / std::max(1.0, v["peak_bytes_per_s"].get<double>()),
              v["saturated"].get<bool>() ? ", saturated" : "");
  std::printf("%-20s %5s %13s %6s %14s %6s %12s %6s %9s\n", "NAME", "ID", "OCCUPANCY", "SHARE", "EVICTED-OTHERS",
              "SHARE", "BANDWIDTH", "SHARE", "MISS-RATE");
  std::map<std::string, Json> rows;
  for (const auto& d : v["domains"]) {
    rows[d["name"].get<std::string>()] = d;
    std::printf("%-20s %5u %10llu KB %5.0f%% %14llu %5.0f%% %12s %5.0f%% %8.1f%%\n", d["name"].get<std::string>().c_str(),
                d["id"].get<unsigned>(), static_cast<unsigned long long>(d["occupancy_bytes"].get<uint64_t>() / 1024),
                100 * d["occupancy_share"].get<double>(),
                static_cast<unsigned long long>(d["evicted_others_lines"].get<uint64_t>()),
                100 * d["eviction_share"].get<double>(), human_rate(d["bandwidth_bytes_per_s"].get<double>()).c_str(),
                100 * d["bandwidth_share"].get<double>(), 100 * d["miss_rate"].get<double>());
  }
  if (v["noisy"].is_null()) {
    std::printf("noisy: none (needs >= %.0f%% of the occupancy and a victim that lost >= %.0f%% of the lines "
                "other domains evicted to it and whose miss rate it raised at least %.1fx)\n",
                100 * th["occupancy_share"].get<double>(), 100 * th["eviction_share"].get<double>(),
                th["miss_rise"].get<double>());
  } else {
    const std::string name = v["noisy"]["name"].get<std::string>();
    const Json& d = rows[name];
    std::printf("noisy: %s (id %u): %.0f%% of the occupancy (threshold %.0f%%), evicted %llu lines of other "
                "domains (%.0f%% of all cross-domain evictions)\n",
                name.c_str(), v["noisy"]["id"].get<unsigned>(), 100 * d["occupancy_share"].get<double>(),
                100 * th["occupancy_share"].get<double>(),
                static_cast<unsigned long long>(d["evicted_others_lines"].get<uint64_t>()),
                100 * d["eviction_share"].get<double>());
    for (const auto& victim : v["victims"]) {
      std::printf("  victim: %s (id %u): miss rate %.1f%%, %.1fx what it would be without %s's evictions "
                  "(threshold %.1fx); %s evicted %.0f%% of its lines other domains evicted (threshold %.0f%%)\n",
                  victim["name"].get<std::string>().c_str(), victim["id"].get<unsigned>(),
                  100 * victim["miss_rate"].get<double>(), victim["rise"].get<double>(), name.c_str(),
                  th["miss_rise"].get<double>(), name.c_str(), 100 * victim["evicted_share"].get<double>(),
                  100 * th["eviction_share"].get<double>());
    }
  }
  if (v["migrate"].is_null()) {
    std::printf("migration candidate: none (the modeled memory system is below %.0f%% of its peak)\n",
                100 * th["saturation"].get<double>());
  } else {
    const std::string name = v["migrate"]["name"].get<std::string>();
    std::printf("migration candidate: %s (id %u): %.0f%% of the memory bandwidth while the memory system is "
                "saturated\n",
                name.c_str(), v["migrate"]["id"].get<unsigned>(), 100 * rows[name]["bandwidth_share"].get<double>());
  }
  return 0;
}

}  // namespace

std::function<std::optional<int>()> add_psr_commands(CLI::App& app, const std::string& socket) {
  auto o = std::make_shared<Options>();
  CLI::App* hw = app.add_subcommand("psr-hwinfo", "Show the modeled cache's monitoring and allocation features (as xl)");
  hw->add_flag("-m,--cmt", o->cmt, "monitoring (CMT) only");
  hw->add_flag("-a,--cat", o->cat, "cache allocation (CAT) only");
  hw->add_flag("-b,--mba", o->mba, "memory bandwidth allocation (MBA) only");
  CLI::App* attach = app.add_subcommand("psr-cmt-attach", "Attach cache monitoring (an RMID) to a domain");
  attach->add_option("domain", o->domain, "domain name or id")->required();
  CLI::App* detach = app.add_subcommand("psr-cmt-detach", "Detach cache monitoring from a domain");
  detach->add_option("domain", o->domain, "domain name or id")->required();
  CLI::App* show = app.add_subcommand("psr-cmt-show", "Show monitored domains' cache occupancy or memory bandwidth");
  show->add_option("type", o->type, "cache-occupancy, total-mem-bandwidth or local-mem-bandwidth")->required();
  show->add_option("domain", o->domain, "domain name or id (default: every monitored domain)");
  show->add_option("--interval", o->interval_ms, "bandwidth: milliseconds between the two samples")->capture_default_str();
  show->add_flag("--json", o->json, "print vigild's JSON answer(s)");
  CLI::App* cat_set = app.add_subcommand("psr-cat-set", "Set a domain's L3 capacity bitmask (CAT)");
  cat_set->add_option("-l,--level", o->level, "cache level (3)")->capture_default_str();
  cat_set->add_option("domain", o->domain, "domain name or id")->required();
  cat_set->add_option("cbm", o->value, "capacity bitmask, e.g. 0xf: contiguous ones within the CBM length")->required();
  CLI::App* cat_show = app.add_subcommand("psr-cat-show", "Show domains' L3 capacity bitmasks");
  cat_show->add_option("-l,--level", o->level, "cache level (3)")->capture_default_str();
  cat_show->add_option("domain", o->domain, "domain name or id (default: all)");
  CLI::App* mba_set = app.add_subcommand("psr-mba-set", "Set a domain's memory bandwidth throttle (MBA, percent)");
  mba_set->add_option("domain", o->domain, "domain name or id")->required();
  mba_set->add_option("thrtl", o->value, "throttle: 0 (none) to 90 percent, in steps of 10")->required();
  CLI::App* mba_show = app.add_subcommand("psr-mba-show", "Show domains' memory bandwidth throttles");
  mba_show->add_option("domain", o->domain, "domain name or id (default: all)");

  CLI::App* noisy_cmd = app.add_subcommand("noisy", "Name a noisy domain with evidence, and a migration candidate");
  noisy_cmd->add_option("--window", o->window_ms, "milliseconds to observe (100-60000)")->capture_default_str();
  noisy_cmd->add_flag("--json", o->json, "print vigild's JSON answer");

  CLI::App* top_cmd = app.add_subcommand("psr-top", "Live table of monitored domains' cache and bandwidth (like pqos)");
  top_cmd->add_option("-n,--iterations", o->iterations, "print this many tables, then exit (default: until interrupted)");
  top_cmd->add_option("-d,--delay", o->delay_s, "seconds between tables")->capture_default_str();

  return [=, &socket]() -> std::optional<int> {
    if (*noisy_cmd) return noisy(socket, *o);
    if (*top_cmd) return top(socket, *o);
    if (*hw) {
      auto h = call(socket, Json{{"op", "psr-hwinfo"}});
      if (!h) return fail(h.error().message);
      return hwinfo(*h, *o);
    }
    if (*attach || *detach) {
      Json req{{"op", *attach ? "psr-cmt-attach" : "psr-cmt-detach"}};
      add_domain(req, o->domain);
      auto r = call(socket, req);
      return r ? 0 : fail(r.error().message);
    }
    if (*show) return cmt_show(socket, *o);
    if ((*cat_set || *cat_show) && o->level != 3) {
      return fail("only the L3 cache (level 3) is modeled; Vigil has no L2 allocation");
    }
    if (*cat_set || *mba_set) {
      Json req{{"op", *cat_set ? "psr-cat-set" : "psr-mba-set"}, {*cat_set ? "cbm" : "thrtl", o->value}};
      add_domain(req, o->domain);
      auto r = call(socket, req);
      if (!r) return fail(r.error().message);
      if (*mba_set && std::to_string((*r)["thrtl"].get<unsigned>()) != o->value) {
        std::printf("throttle set to %u (MBA throttles in steps of 10)\n", (*r)["thrtl"].get<unsigned>());
      }
      return 0;
    }
    if (*cat_show || *mba_show) {
      Json req{{"op", *cat_show ? "psr-cat-show" : "psr-mba-show"}};
      add_domain(req, o->domain);
      auto r = call(socket, req);
      if (!r) return fail(r.error().message);
      std::printf("%-16s: %u\n", "Socket ID", 0u);
      if (*cat_show) {
        std::printf("%-16s: %lluKB\n", "L3 Cache", static_cast<unsigned long long>((*r)["l3_cache_kb"].get<uint64_t>()));
        std::printf("%-16s: %#llx\n", "Default CBM", static_cast<unsigned long long>((*r)["default_cbm"].get<uint64_t>()));
        std::printf("%5s%25s%16s\n", "ID", "NAME", "CBM");
      } else {
        std::printf("%5s%25s%16s\n", "ID", "NAME", "THRTL");
      }
      for (const auto& d : (*r)["domains"]) {
        std::printf("%5u%25s", d["id"].get<unsigned>(), d["name"].get<std::string>().c_str());
        if (*cat_show) {
          std::printf("%#16llx\n", static_cast<unsigned long long>(d["cbm"].get<uint64_t>()));
        } else {
          std::printf("%16u\n", d["thrtl"].get<unsigned>());
        }
      }
      return 0;
    }
    return std::nullopt;
  };
}

}  // namespace vigil::cli
