// slipd's observability: the metrics collectors over the server's own figures, and the HTTP
// listener (--http-listen) serving /metrics, /healthz, the JSON API, the event stream and the
// dashboard.
//
// The HTTP server runs on its own thread (see gateway/http/http_server.h), never on a shard's
// loop. Once a second it samples the totals (for rates and the last second's latency
// percentiles), gathers connection details from every loop and pushes one JSON snapshot to
// every /api/events reader.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "gateway/http/http_server.h"
#include "obs/json.h"
#include "obs/metrics.h"
#include "obs/stream_metrics.h"
#include "rpc/metrics_interceptor.h"
#include "server.h"

namespace slip::slipd {

class Observability {
 public:
  // `server` must outlive this object.
  explicit Observability(Server& server);
  ~Observability();

  // Starts the HTTP listener on HOST:PORT (port 0: any free port).
  Status start_http(const std::string& listen);
  // The bound HTTP address, empty when not listening.
  std::string http_address() const;
  void stop();

  // Every metric family as of now (any thread).
  std::vector<obs::Family> collect() const { return registry_.collect(); }

  // An RPC server's per-method figures, for /metrics, /api/rpc and the dashboard's method
  // table. Before start_http(); `metrics` must be attached to a started server.
  void add_rpc_metrics(std::shared_ptr<const rpc::MetricsInterceptor> metrics);

 private:
  struct Window;
  void register_collectors();
  void add_routes();
  void tick();  // on the HTTP thread, once a second
  std::string server_json() const;
  std::string connections_json(bool with_subscriptions, std::size_t limit) const;
  std::vector<ConnectionInfo> gather_connections(bool with_subscriptions) const;
  // Persistent streams (empty without a data directory) and RPC methods, as of now.
  std::vector<obs::StreamFigures> read_streams() const;
  // Every consumer (empty without streams, or when the capture loop does not answer within 1 s).
  std::vector<log::ConsumerFigures> read_consumers() const;
  std::vector<rpc::MethodCallStats> read_rpc_methods() const;
  // The UDP listener's figures (nullopt without --udp-listen). When its loop does not answer
  // within 1 s, the last figures read (counters never go back). On the HTTP thread: it keeps
  // them in window_.
  std::optional<transport::udp::UdpEndpointStats> read_udp() const;
  // {"enabled": false} without a UDP listener; else its figures and the last second's rates.
  std::string udp_json(const std::optional<transport::udp::UdpEndpointStats>& udp) const;
  // JSON for the API and the event stream; rates and last-second latencies from window_.
  // The stream's consumers are taken from `consumers` (the others are skipped).
  void write_stream_json(obs::JsonWriter& w, const obs::StreamFigures& s, bool details,
                         const std::vector<log::ConsumerFigures>& consumers = {}) const;
  std::string streams_json(const std::vector<obs::StreamFigures>& streams,
                           const std::vector<log::ConsumerFigures>& consumers) const;
  std::string rpc_json(const std::vector<rpc::MethodCallStats>& methods) const;

  Server& server_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  obs::Registry registry_;
  std::unique_ptr<gateway::http::HttpServer> http_;
  std::unique_ptr<Window> window_;  // touched on the HTTP thread only
  std::vector<std::shared_ptr<const rpc::MetricsInterceptor>> rpc_;  // set before start_http()
};

}  // namespace slip::slipd
