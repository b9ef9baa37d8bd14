// Per-method RPC metrics (docs/rpc.md, "Metrics"): calls by status code and a latency
// histogram for each method, kept per shard (each written by its own loop, no lock, no atomic
// read-modify-write) and merged when read. Readable as a table, and as Prometheus families
// through obs/rpc_metrics.h.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/histogram.h"
#include "rpc/interceptor.h"

namespace slip::rpc {

// One method's figures, merged over the shards.
struct MethodCallStats {
  std::string method;  // "/pkg.Service/Method"
  std::array<std::uint64_t, kMaxStatusCode + 1> by_code{};  // by StatusCode value
  std::uint64_t calls = 0;
  std::uint64_t errors = 0;  // calls that did not end OK
  HistogramSnapshot latency_ns;  // from the CALL frame's arrival to the end of the call
};

class MetricsInterceptor final : public ServerInterceptor {
 public:
  MetricsInterceptor() = default;
  ~MetricsInterceptor() override;

  void on_attach(const ServerLayout& layout) override;
  void on_call_end(const ServerCall& call, const Status& status, std::chrono::nanoseconds elapsed) override;

  // Every method (with `include_idle`) or those called at least once, in method order. Any
  // thread, once the server started.
  std::vector<MethodCallStats> snapshot(bool include_idle = false) const;

  // A fixed-width table: method, calls, errors, p50, p99, p99.9.
  static std::string format_table(const std::vector<MethodCallStats>& stats);

 private:
  // One (shard, method) pair. A method's histogram (20 KB) is made on its first call on that
  // shard, so methods never called there cost only their counters.
  struct Slot {
    std::array<std::atomic<std::uint64_t>, kMaxStatusCode + 1> by_code{};
    std::atomic<Histogram*> latency{nullptr};
  };

  std::vector<std::string> methods_;
  std::vector<std::unique_ptr<Slot[]>> shards_;  // [shard][method index]
};

}  // namespace slip::rpc
