#include "obs/rpc_metrics.h"

namespace slip::obs {

void collect_rpc_server_metrics(const std::vector<rpc::MethodCallStats>& stats, std::vector<Family>& out) {
  Family calls = counter("slip_rpc_server_calls_total", "RPC calls served, by method and status code.");
  Family latency = latency_histogram("slip_rpc_server_latency_seconds",
                                     "Time from a call's arrival to its end, by method.");
  for (const auto& s : stats) {
    for (std::size_t code = 0; code < s.by_code.size(); ++code) {
      if (s.by_code[code] == 0) continue;
      calls.add(static_cast<double>(s.by_code[code]),
                {{"method", s.method}, {"code", std::string(status_code_name(static_cast<StatusCode>(code)))}});
    }
    latency.histograms.push_back(HistogramSample{{{"method", s.method}}, s.latency_ns});
  }
  out.push_back(std::move(calls));
  out.push_back(std::move(latency));
}

void collect_rpc_cache_metrics(const std::vector<std::pair<std::string, rpc::CacheStats>>& stats,
                               std::vector<Family>& out) {
  Family hits = counter("slip_rpc_server_cache_hits_total", "Calls answered from the response cache.");
  Family misses = counter("slip_rpc_server_cache_misses_total", "Cache lookups that found no live response.");
  Family evictions = counter("slip_rpc_server_cache_evictions_total",
                             "Live responses dropped to keep the cache within its bounds.");
  Family expirations = counter("slip_rpc_server_cache_expirations_total",
                               "Responses dropped because their time-to-live had passed.");
  Family entries = gauge("slip_rpc_server_cache_entries", "Responses in the cache now.");
  Family bytes = gauge("slip_rpc_server_cache_bytes", "Bytes the cache holds now, as counted against its bound.");
  for (const auto& [method, s] : stats) {
    const Labels l{{"method", method}};
    hits.add(static_cast<double>(s.hits), l);
    misses.add(static_cast<double>(s.misses), l);
    evictions.add(static_cast<double>(s.evictions), l);
    expirations.add(static_cast<double>(s.expirations), l);
    entries.add(static_cast<double>(s.entries), l);
    bytes.add(static_cast<double>(s.bytes), l);
  }
  for (Family* f : {&hits, &misses, &evictions, &expirations, &entries, &bytes}) out.push_back(std::move(*f));
}

}  // namespace slip::obs
