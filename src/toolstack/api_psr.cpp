#include "toolstack/api_psr.h"

#include <chrono>
#include <map>
#include <charconv>
#include <thread>

#include "psr/detector.h"

namespace vigil::toolstack {

namespace {


uint64_t now_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

// A mask or throttle: a JSON number, or a string "0x.." / decimal (what a user typed).
Result<uint64_t> number_field(const Json& req, const char* key) {
  auto it = req.find(key);
  if (it == req.end()) return make_error("missing \"{}\"", key);
  if (it->is_number_unsigned()) return it->get<uint64_t>();
  if (!it->is_string()) return make_error("\"{}\" must be a number", key);
  const std::string text = it->get<std::string>();
  const bool hex = text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X');
  const char* begin = text.data() + (hex ? 2 : 0);
  const char* end = text.data() + text.size();
  uint64_t v = 0;
  const auto [p, ec] = std::from_chars(begin, end, v, hex ? 16 : 10);
  if (ec != std::errc() || p != end || begin == end) {
    return make_error("\"{}\" must be a number (0x... or decimal), not '{}'", key, text.substr(0, 40));
  }
  return v;
}

// (id, name) of the domains a show verb covers: one, or all in id order.
std::vector<std::pair<uint32_t, std::string>> covered(hv::DomainManager& m, std::optional<uint32_t> only) {
  std::vector<std::pair<uint32_t, std::string>> out;
  for (const auto& i : m.list()) {
    if (!only || *only == i.id) out.emplace_back(i.id, i.name);
  }
  return out;
}

Json hwinfo(hv::PsrService& psr) {
  const hv::PsrHwInfo h = psr.hwinfo();
  return Json{{"ok", true},
              {"cmt", {{"enabled", true},
                       {"total_rmid", h.total_rmid},
                       {"types", Json::array({"cache-occupancy", "total-mem-bandwidth", "local-mem-bandwidth"})}}},
              {"cat", {{"socket", 0},
                       {"l3_cache_kb", h.geometry.size_bytes / 1024},
                       {"cdp", false},
                       {"cos_max", h.cos_max},
                       {"cbm_len", h.cbm_len},
                       {"default_cbm", h.default_cbm}}},
              {"mba", {{"socket", 0}, {"linear", true}, {"cos_max", h.cos_max}, {"thrtl_max", h.thrtl_max}}},
              {"model", {{"ways", h.geometry.ways},
                         {"line_bytes", h.geometry.line_bytes},
                         {"sets", h.geometry.sets()},
                         {"sampling", h.sampling},
                         {"peak_bytes_per_s", h.peak_bytes_per_s},
                         {"miss_cost_ns", h.miss_cost_ns}}}};
}

Json cmt_show(hv::DomainManager& m, hv::PsrService& psr, std::optional<uint32_t> only) {
  Json doms = Json::array();
  const uint64_t t = now_ns();
  for (const auto& [id, name] : covered(m, only)) {
    auto s = psr.status(id);
    if (!s || s->rmid == 0) continue;  // as xl: unattached domains are not listed
    const auto effect = m.scheduler().memory_effect(id);
    doms.push_back({{"id", id},
                    {"name", name},
                    {"rmid", s->rmid},
                    {"occupancy_bytes", s->counters.occupancy_bytes},
                    // One socket, one memory controller: all traffic is local.
                    {"mbm_total_bytes", s->counters.mbm_total_bytes},
                    {"mbm_local_bytes", s->counters.mbm_total_bytes},
                    {"accesses", s->counters.accesses},
                    {"misses", s->counters.misses},
                    {"miss_credit_seconds", effect.miss_credit_seconds},
                    {"mba_held_periods", effect.mba_held_periods}});
  }
  const hv::PsrHwInfo h = psr.hwinfo();
  return Json{{"ok", true},
              {"total_rmid", h.total_rmid},
              {"l3_cache_kb", h.geometry.size_bytes / 1024},
              {"time_ns", t},
              {"domains", doms}};
}

// Two snapshots `window_ms` apart and the detector's verdict (psr/detector.h), with names.
Json noisy(hv::DomainManager& m, hv::PsrService& psr, const Json& req) {
  uint64_t window_ms = 2000;
  if (auto it = req.find("window_ms"); it != req.end()) {
    if (!it->is_number_unsigned() || it->get<uint64_t>() < 100 || it->get<uint64_t>() > 60000) {
      return error_json("\"window_ms\" must be 100 to 60000 (milliseconds)");
    }
    window_ms = it->get<uint64_t>();
  }
  std::map<uint32_t, std::pair<uint32_t, std::string>> by_rmid;  // rmid -> (id, name)
  for (const auto& [id, name] : covered(m, std::nullopt)) {
    auto s = psr.status(id);
    if (s && s->rmid != 0) by_rmid[s->rmid] = {id, name};
  }
  const psr::Snapshot a = psr.model().snapshot(now_ns());
  std::this_thread::sleep_for(std::chrono::milliseconds(window_ms));
  const psr::Snapshot b = psr.model().snapshot(now_ns());
  // Only domains monitored through the whole window (same RMID before and after).
  std::vector<uint32_t> rmids;
  for (const auto& [id, name] : covered(m, std::nullopt)) {
    auto s = psr.status(id);
    if (s && s->rmid != 0 && by_rmid.count(s->rmid) && by_rmid[s->rmid].first == id) rmids.push_back(s->rmid);
  }
  const psr::Verdict v = psr::detect(a, b, rmids, static_cast<double>(psr.peak_bytes_per_s()));
  auto named = [&](uint32_t rmid) {
    const auto& [id, name] = by_rmid[rmid];
    return Json{{"id", id}, {"name", name}};
  };
  Json doms = Json::array();
  for (const auto& d : v.domains) {
    Json j = named(d.rmid);
    j.update(Json{{"occupancy_bytes", d.occupancy_bytes},
                  {"occupancy_share", d.occupancy_share},
                  {"evicted_others_lines", d.evicted_others_lines},
                  {"eviction_share", d.eviction_share},
                  {"bandwidth_bytes_per_s", d.bandwidth_bytes_per_s},
                  {"bandwidth_share", d.bandwidth_share},
                  {"miss_rate", d.miss_rate},
                  {"accesses", d.accesses}});
    doms.push_back(j);
  }
  Json out{{"ok", true},
           {"window_s", v.window_s},
           {"total_bandwidth_bytes_per_s", v.total_bandwidth_bytes_per_s},
           {"peak_bytes_per_s", v.peak_bytes_per_s},
           {"saturated", v.saturated},
           {"thresholds", {{"occupancy_share", std::max(psr::kMinOccupancyShare, rmids.empty() ? 1.0 : psr::kFairShareFactor / double(rmids.size()))},
                           {"eviction_share", psr::kMinEvictionShare},
                           {"miss_rise", psr::kMinMissRise},
                           {"saturation", psr::kSaturation}}},
           {"domains", doms},
           {"noisy", nullptr},
           {"victims", Json::array()},
           {"migrate", nullptr}};
  if (v.noisy) out["noisy"] = named(*v.noisy);
  for (const auto& victim : v.victims) {
    Json j = named(victim.rmid);
    j.update(Json{{"miss_rate", victim.miss_rate}, {"rise", victim.rise}, {"evicted_share", victim.evicted_share}});
    out["victims"].push_back(j);
  }
  if (v.migrate) out["migrate"] = named(*v.migrate);
  return out;
}

}  // namespace

std::optional<Json> handle_psr_request(hv::DomainManager& m, const std::string& op, const Json& req) {
  if (!op.starts_with("psr-")) return std::nullopt;
  hv::PsrService* psr = m.psr();
  if (psr == nullptr) return error_json("the noisy-neighbour cache model is not available in this vigild");

  if (op == "psr-hwinfo") return hwinfo(*psr);
  if (op == "psr-noisy") return noisy(m, *psr, req);
  if (op == "psr-cmt-attach" || op == "psr-cmt-detach") {
    auto id = request_domain(m, req);
    if (!id) return error_json(id.error().message);
    auto r = op == "psr-cmt-attach" ? m.psr_attach(*id) : psr->detach(*id);
    if (!r) return error_json(r.error().message);
    return Json{{"ok", true}, {"id", *id}};
  }
  if (op == "psr-cmt-show") {
    auto only = request_optional_domain(m, req);
    if (!only) return error_json(only.error().message);
    return cmt_show(m, *psr, *only);
  }
  if (op == "psr-cat-set") {
    auto id = request_domain(m, req);
    if (!id) return error_json(id.error().message);
    if (auto l = req.find("level"); l != req.end() && !(l->is_number_unsigned() && l->get<uint64_t>() == 3)) {
      return error_json("only the L3 cache (level 3) is modeled; Vigil has no L2 allocation");
    }
    auto cbm = number_field(req, "cbm");
    if (!cbm) return error_json(cbm.error().message);
    if (auto r = psr->set_cbm(*id, *cbm); !r) return error_json(r.error().message);
    return Json{{"ok", true}, {"id", *id}, {"cbm", *cbm}};
  }
  if (op == "psr-mba-set") {
    auto id = request_domain(m, req);
    if (!id) return error_json(id.error().message);
    auto thrtl = number_field(req, "thrtl");
    if (!thrtl) return error_json(thrtl.error().message);
    if (*thrtl > 1000) return error_json(fmt::format("The throttle {} is out of range: MBA throttles are 0 (none) to 90 percent.", *thrtl));
    auto applied = psr->set_thrtl(*id, static_cast<unsigned>(*thrtl));
    if (!applied) return error_json(applied.error().message);
    return Json{{"ok", true}, {"id", *id}, {"thrtl", *applied}};
  }
  if (op == "psr-cat-show" || op == "psr-mba-show") {
    auto only = request_optional_domain(m, req);
    if (!only) return error_json(only.error().message);
    const hv::PsrHwInfo h = psr->hwinfo();
    Json doms = Json::array();
    for (const auto& [id, name] : covered(m, *only)) {
      auto s = psr->status(id);
      if (!s) continue;
      if (op == "psr-cat-show") {
        doms.push_back({{"id", id}, {"name", name}, {"cbm", s->cbm}});
      } else {
        doms.push_back({{"id", id}, {"name", name}, {"thrtl", s->thrtl}});
      }
    }
    if (op == "psr-cat-show") {
      return Json{{"ok", true}, {"l3_cache_kb", h.geometry.size_bytes / 1024}, {"default_cbm", h.default_cbm},
                  {"domains", doms}};
    }
    return Json{{"ok", true}, {"thrtl_max", h.thrtl_max}, {"domains", doms}};
  }
  return std::nullopt;
}

}  // namespace vigil::toolstack
