// RPC server figures as metric families (docs/rpc.md, "Metrics"; docs/observability.md):
//   slip_rpc_server_calls_total{method,code}          counter
//   slip_rpc_server_latency_seconds{method}           histogram
//   slip_rpc_server_cache_{hits,misses,evictions,expirations}_total{method}   counters
//   slip_rpc_server_cache_entries{method}, slip_rpc_server_cache_bytes{method} gauges
// Feed them snapshots (MetricsInterceptor::snapshot(), Server::cache_stats()) from a Registry
// collector; obs::render_prometheus() writes the text.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "obs/metrics.h"
#include "rpc/metrics_interceptor.h"
#include "rpc/response_cache.h"

namespace slip::obs {

void collect_rpc_server_metrics(const std::vector<rpc::MethodCallStats>& stats, std::vector<Family>& out);
void collect_rpc_cache_metrics(const std::vector<std::pair<std::string, rpc::CacheStats>>& stats,
                               std::vector<Family>& out);

}  // namespace slip::obs
