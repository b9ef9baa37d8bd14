#include "rpc/metrics_interceptor.h"

#include <fmt/format.h>

#include <algorithm>

#include "rpc/server.h"

namespace slip::rpc {

namespace {

// "850ns", "12.3us", "4.05ms", "1.20s".
std::string human_ns(std::uint64_t ns) {
  if (ns < 1000) return fmt::format("{}ns", ns);
  const double v = static_cast<double>(ns);
  if (ns < 1'000'000) return fmt::format("{:.3g}us", v / 1e3);
  if (ns < 1'000'000'000) return fmt::format("{:.3g}ms", v / 1e6);
  return fmt::format("{:.3g}s", v / 1e9);
}

}  // namespace

MetricsInterceptor::~MetricsInterceptor() {
  for (auto& shard : shards_) {
    for (std::size_t i = 0; i < methods_.size(); ++i) delete shard[i].latency.load(std::memory_order_acquire);
  }
}

void MetricsInterceptor::on_attach(const ServerLayout& layout) {
  methods_ = layout.methods;
  shards_.clear();
  for (std::size_t s = 0; s < layout.shards; ++s) shards_.push_back(std::make_unique<Slot[]>(methods_.size()));
}

void MetricsInterceptor::on_call_end(const ServerCall& call, const Status& status, std::chrono::nanoseconds elapsed) {
  if (call.shard() >= shards_.size() || call.method_index() >= methods_.size()) return;
  Slot& slot = shards_[call.shard()][call.method_index()];
  auto& c = slot.by_code[std::min<std::size_t>(static_cast<std::size_t>(status.code()), kMaxStatusCode)];
  // Single writer (this shard's loop): a plain store, readers see before or after.
  c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  Histogram* h = slot.latency.load(std::memory_order_relaxed);
  if (h == nullptr) {
    h = new Histogram();
    slot.latency.store(h, std::memory_order_release);
  }
  h->record(static_cast<std::uint64_t>(std::max<std::int64_t>(0, elapsed.count())));
}

std::vector<MethodCallStats> MetricsInterceptor::snapshot(bool include_idle) const {
  std::vector<MethodCallStats> out;
  for (std::size_t m = 0; m < methods_.size(); ++m) {
    MethodCallStats st;
    st.method = methods_[m];
    for (const auto& shard : shards_) {
      const Slot& slot = shard[m];
      for (std::size_t code = 0; code <= kMaxStatusCode; ++code) {
        st.by_code[code] += slot.by_code[code].load(std::memory_order_relaxed);
      }
      if (const Histogram* h = slot.latency.load(std::memory_order_acquire)) h->merge_into(st.latency_ns);
    }
    for (std::size_t code = 0; code <= kMaxStatusCode; ++code) st.calls += st.by_code[code];
    st.errors = st.calls - st.by_code[0];
    if (st.calls > 0 || include_idle) out.push_back(std::move(st));
  }
  return out;
}

std::string MetricsInterceptor::format_table(const std::vector<MethodCallStats>& stats) {
  std::size_t width = 6;
  for (const auto& s : stats) width = std::max(width, s.method.size());
  std::string out = fmt::format("{:<{}}  {:>10}  {:>8}  {:>9}  {:>9}  {:>9}\n", "method", width, "calls", "errors",
                                "p50", "p99", "p99.9");
  for (const auto& s : stats) {
    out.append(fmt::format("{:<{}}  {:>10}  {:>8}  {:>9}  {:>9}  {:>9}\n", s.method, width, s.calls, s.errors,
                           human_ns(s.latency_ns.quantile(0.50)), human_ns(s.latency_ns.quantile(0.99)),
                           human_ns(s.latency_ns.quantile(0.999))));
  }
  return out;
}

}  // namespace slip::rpc
