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
#include <string>

#include "gateway/http/http_server.h"
#include "obs/metrics.h"
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

 private:
  struct Window;
  void register_collectors();
  void add_routes();
  void tick();  // on the HTTP thread, once a second
  std::string server_json() const;
  std::string connections_json(bool with_subscriptions, std::size_t limit) const;
  std::vector<ConnectionInfo> gather_connections(bool with_subscriptions) const;

  Server& server_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  obs::Registry registry_;
  std::unique_ptr<gateway::http::HttpServer> http_;
  std::unique_ptr<Window> window_;  // touched on the HTTP thread only
};

}  // namespace slip::slipd
