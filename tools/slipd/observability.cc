#include "observability.h"

#include <algorithm>
#include <future>

#include "assets.h"
#include "core/logging.h"
#include "obs/json.h"
#include "obs/prometheus.h"

namespace slip::slipd {

namespace {

struct Totals {
  std::uint64_t msgs_in = 0;
  std::uint64_t msgs_out = 0;
  std::uint64_t bytes_in = 0;
  std::uint64_t bytes_out = 0;
};

Totals read_totals(const broker::BrokerStats& s) {
  return Totals{s.messages_in.load(std::memory_order_relaxed), s.messages_out.load(std::memory_order_relaxed),
                s.bytes_in.load(std::memory_order_relaxed), s.bytes_out.load(std::memory_order_relaxed)};
}

double per_second(std::uint64_t now, std::uint64_t before, double seconds) {
  return seconds > 0 && now >= before ? static_cast<double>(now - before) / seconds : 0.0;
}

void write_latency(obs::JsonWriter& w, const HistogramSnapshot& h) {
  w.begin_object()
      .field("count", h.count())
      .field("p50_ns", h.quantile(0.50))
      .field("p90_ns", h.quantile(0.90))
      .field("p99_ns", h.quantile(0.99))
      .field("p999_ns", h.quantile(0.999))
      .field("max_ns", h.max())
      .end_object();
}

constexpr std::string_view kJson = "application/json";

}  // namespace

// Rates and the last second's latencies, computed by tick() on the HTTP thread.
struct Observability::Window {
  Totals last;
  std::chrono::steady_clock::time_point at = std::chrono::steady_clock::now();
  double msgs_in_rate = 0;
  double msgs_out_rate = 0;
  double bytes_in_rate = 0;
  double bytes_out_rate = 0;
  HistogramSnapshot latency_total;  // cumulative, as of the last tick
  HistogramSnapshot latency_recent;  // recorded during the last tick's second
};

Observability::Observability(Server& server) : server_(server), window_(std::make_unique<Window>()) {
  register_collectors();
}

Observability::~Observability() { stop(); }

void Observability::register_collectors() {
  registry_.add_collector([this](std::vector<obs::Family>& out) {
    auto info = obs::gauge("slip_info", "Build information; the value is always 1");
    info.add(1, {{"version", SLIP_VERSION}});
    out.push_back(std::move(info));
    const double up = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    out.push_back(std::move(obs::gauge("slip_uptime_seconds", "Seconds since slipd started").add(up)));
    out.push_back(std::move(obs::gauge("slip_event_loops", "Event loops (shards)").add(static_cast<double>(server_.loop_count()))));
    out.push_back(std::move(obs::gauge("slip_draining", "1 while shutting down").add(server_.draining() ? 1 : 0)));
  });
  registry_.add_collector([this](std::vector<obs::Family>& out) {
    auto open = obs::gauge("slip_connections_open", "Client connections open, by protocol");
    auto total = obs::counter("slip_connections_total", "Client connections accepted, by protocol");
    auto hs = obs::counter("slip_handshake_failures_total", "Connections closed before their handshake completed");
    auto auth = obs::counter("slip_auth_failures_total", "Connections refused for their credentials");
    for (const ProtocolStats* p : server_.protocol_stats()) {
      obs::Labels l = {{"protocol", p->protocol}};
      open.add(static_cast<double>(p->open.load(std::memory_order_relaxed)), l);
      total.add(static_cast<double>(p->total.load(std::memory_order_relaxed)), l);
      hs.add(static_cast<double>(p->handshake_failures.load(std::memory_order_relaxed)), l);
      auth.add(static_cast<double>(p->auth_failures.load(std::memory_order_relaxed)), l);
    }
    out.push_back(std::move(open));
    out.push_back(std::move(total));
    out.push_back(std::move(hs));
    out.push_back(std::move(auth));
    const broker::AuthPoolStats& a = server_.auth_pool().stats();
    auto v = [](const std::atomic<std::uint64_t>& x) { return static_cast<double>(x.load(std::memory_order_relaxed)); };
    out.push_back(std::move(obs::gauge("slip_auth_queued", "Password logins waiting for a verification worker").add(v(a.queued))));
    out.push_back(std::move(obs::gauge("slip_auth_verifying", "Password verifications running now").add(v(a.verifying))));
    out.push_back(std::move(obs::counter("slip_auth_verifications_total", "Password verifications finished, either verdict")
                                .add(v(a.verified))));
    out.push_back(std::move(obs::counter("slip_auth_busy_total", "Logins refused because the verification queue was full")
                                .add(v(a.busy))));
    out.push_back(std::move(obs::counter("slip_auth_abandoned_total",
                                         "Password verifications whose connection closed first")
                                .add(v(a.abandoned))));
  });
  registry_.add_collector([this](std::vector<obs::Family>& out) {
    const broker::Broker& b = server_.broker();
    const broker::BrokerStats& s = b.stats();
    auto c = [&](const char* name, const char* help, const std::atomic<std::uint64_t>& v) {
      out.push_back(std::move(obs::counter(name, help).add(static_cast<double>(v.load(std::memory_order_relaxed)))));
    };
    out.push_back(std::move(obs::gauge("slip_subscriptions", "Subscriptions held by all clients")
                                .add(static_cast<double>(b.subscriptions()))));
    c("slip_messages_in_total", "Messages published by clients", s.messages_in);
    c("slip_messages_out_total", "Messages delivered to subscribers", s.messages_out);
    c("slip_bytes_in_total", "Payload bytes published by clients", s.bytes_in);
    c("slip_bytes_out_total", "Payload bytes delivered to subscribers", s.bytes_out);
    c("slip_slow_consumers_total", "Times a client went over its pending-bytes bound", s.slow_consumers);
    c("slip_dropped_messages_total", "Messages dropped: slow consumers and vanished queue groups", s.dropped);
    c("slip_no_responders_total", "Requests answered at once with no responders", s.no_responders);
    auto h = obs::latency_histogram(
        "slip_publish_route_seconds",
        "Time to route one PUB inside the broker (match, queue to local receivers, hand over to other loops); "
        "sampled one PUB in " + std::to_string(broker::kPublishSampleEvery) + " per client, merged over loops");
    h.histograms.push_back(obs::HistogramSample{{}, b.publish_latency()});
    out.push_back(std::move(h));
  });
}

Status Observability::start_http(const std::string& listen) {
  SLIP_ASSIGN_OR_RETURN(transport::HostPort hp, transport::parse_host_port(listen));
  http_ = std::make_unique<gateway::http::HttpServer>();
  add_routes();
  http_->event_stream("/api/events");
  http_->every(std::chrono::milliseconds(1000), [this] { tick(); });
  return http_->start(hp);
}

std::string Observability::http_address() const { return http_ ? http_->local_address() : std::string(); }

void Observability::stop() {
  if (http_) http_->stop();
}

void Observability::add_routes() {
  using gateway::http::Request;
  using gateway::http::Response;
  http_->route("/metrics", [this](const Request&) {
    Response r;
    r.content_type = std::string(obs::kPrometheusContentType);
    r.body = obs::render_prometheus(registry_.collect());
    return r;
  });
  http_->route("/healthz", [this](const Request&) {
    Response r;
    if (server_.draining()) {
      r.status = 503;
      r.body = "draining\n";
    } else {
      r.body = "ok\n";
    }
    return r;
  });
  http_->route("/api/server", [this](const Request&) {
    Response r;
    r.content_type = std::string(kJson);
    r.body = server_json();
    return r;
  });
  http_->route("/api/connections", [this](const Request&) {
    Response r;
    r.content_type = std::string(kJson);
    r.body = connections_json(false, 0);
    return r;
  });
  http_->route("/api/subscriptions", [this](const Request&) {
    Response r;
    r.content_type = std::string(kJson);
    obs::JsonWriter w;
    w.begin_array();
    for (const ConnectionInfo& c : gather_connections(true)) {
      for (const auto& s : c.subs) {
        w.begin_object()
            .field("connection", c.id)
            .field("client", c.name)
            .field("sid", s.sid)
            .field("subject", s.subject)
            .field("queue", s.queue)
            .field("delivered", s.delivered)
            .end_object();
      }
    }
    w.end_array();
    r.body = w.take();
    return r;
  });
  for (const assets::Asset* a = assets::begin(); a != assets::end(); ++a) {
    Response r;
    r.content_type = std::string(a->content_type);
    r.body = std::string(a->bytes);
    r.headers.emplace_back("Cache-Control", "no-cache");
    http_->route(std::string(a->path), [r](const Request&) { return r; });
    if (a->path == "/index.html") http_->route("/", [r](const Request&) { return r; });
  }
  if (assets::begin() == assets::end()) {
    http_->route("/", [](const Request&) {
      Response r;
      r.body = "slipd was built without the dashboard (npm was missing). See /metrics and /api/server.\n";
      return r;
    });
  }
}

std::vector<ConnectionInfo> Observability::gather_connections(bool with_subscriptions) const {
  auto done = std::make_shared<std::promise<std::vector<ConnectionInfo>>>();
  auto future = done->get_future();
  server_.collect_connections(with_subscriptions,
                              [done](std::vector<ConnectionInfo> all) { done->set_value(std::move(all)); });
  // Loops answer within a turn; after shutdown they may not answer at all.
  if (future.wait_for(std::chrono::seconds(1)) != std::future_status::ready) return {};
  auto all = future.get();
  std::sort(all.begin(), all.end(), [](const ConnectionInfo& a, const ConnectionInfo& b) { return a.id < b.id; });
  return all;
}

std::string Observability::connections_json(bool with_subscriptions, std::size_t limit) const {
  auto all = gather_connections(with_subscriptions);
  if (limit != 0 && all.size() > limit) {
    // The busiest first.
    std::partial_sort(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(limit), all.end(),
                      [](const ConnectionInfo& a, const ConnectionInfo& b) {
                        return a.traffic.msgs_in + a.traffic.msgs_out > b.traffic.msgs_in + b.traffic.msgs_out;
                      });
    all.resize(limit);
  }
  obs::JsonWriter w;
  w.begin_array();
  for (const ConnectionInfo& c : all) {
    w.begin_object()
        .field("id", c.id)
        .field("protocol", c.protocol)
        .field("peer", c.peer)
        .field("name", c.name)
        .field("subscriptions", c.subscriptions)
        .field("msgs_in", c.traffic.msgs_in)
        .field("msgs_out", c.traffic.msgs_out)
        .field("bytes_in", c.traffic.bytes_in)
        .field("bytes_out", c.traffic.bytes_out)
        .field("dropped", c.dropped)
        .field("pending_bytes", c.pending_bytes)
        .end_object();
  }
  w.end_array();
  return w.take();
}

std::string Observability::server_json() const {
  const broker::Broker& b = server_.broker();
  const broker::BrokerStats& s = b.stats();
  const Totals t = read_totals(s);
  obs::JsonWriter w;
  w.begin_object();
  w.field("server", "slipd").field("version", SLIP_VERSION);
  w.field("uptime_s", std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count());
  w.field("event_loops", static_cast<std::uint64_t>(server_.loop_count()));
  w.field("draining", server_.draining());
  w.key("listeners").begin_array();
  for (const auto& [proto, addr] : server_.listening()) {
    w.begin_object().field("protocol", proto).field("address", addr).end_object();
  }
  if (http_) w.begin_object().field("protocol", "http").field("address", http_->local_address()).end_object();
  w.end_array();
  std::uint64_t open = 0, total = 0, hs = 0, auth = 0;
  w.key("protocols").begin_array();
  for (const ProtocolStats* p : server_.protocol_stats()) {
    const auto o = p->open.load(std::memory_order_relaxed), n = p->total.load(std::memory_order_relaxed);
    const auto h = p->handshake_failures.load(std::memory_order_relaxed), a = p->auth_failures.load(std::memory_order_relaxed);
    open += o;
    total += n;
    hs += h;
    auth += a;
    w.begin_object()
        .field("protocol", p->protocol)
        .field("connections_open", o)
        .field("connections_total", n)
        .field("handshake_failures", h)
        .field("auth_failures", a)
        .end_object();
  }
  w.end_array();
  w.field("connections", open).field("subscriptions", static_cast<std::uint64_t>(b.subscriptions()));
  w.key("totals")
      .begin_object()
      .field("msgs_in", t.msgs_in)
      .field("msgs_out", t.msgs_out)
      .field("bytes_in", t.bytes_in)
      .field("bytes_out", t.bytes_out)
      .field("connections", total)
      .field("slow_consumers", s.slow_consumers.load(std::memory_order_relaxed))
      .field("dropped", s.dropped.load(std::memory_order_relaxed))
      .field("no_responders", s.no_responders.load(std::memory_order_relaxed))
      .field("handshake_failures", hs)
      .field("auth_failures", auth)
      .end_object();
  w.key("rates")
      .begin_object()
      .field("msgs_in_per_s", window_->msgs_in_rate)
      .field("msgs_out_per_s", window_->msgs_out_rate)
      .field("bytes_in_per_s", window_->bytes_in_rate)
      .field("bytes_out_per_s", window_->bytes_out_rate)
      .end_object();
  w.key("publish_route_latency").begin_object();
  w.key("last_second");
  write_latency(w, window_->latency_recent);
  w.key("since_start");
  write_latency(w, b.publish_latency());
  w.end_object();
  w.end_object();
  return w.take();
}

void Observability::tick() {
  Window& win = *window_;
  const auto now = std::chrono::steady_clock::now();
  const Totals t = read_totals(server_.broker().stats());
  const double secs = std::chrono::duration<double>(now - win.at).count();
  win.msgs_in_rate = per_second(t.msgs_in, win.last.msgs_in, secs);
  win.msgs_out_rate = per_second(t.msgs_out, win.last.msgs_out, secs);
  win.bytes_in_rate = per_second(t.bytes_in, win.last.bytes_in, secs);
  win.bytes_out_rate = per_second(t.bytes_out, win.last.bytes_out, secs);
  win.last = t;
  win.at = now;
  HistogramSnapshot latency = server_.broker().publish_latency();
  win.latency_recent = latency.since(win.latency_total);
  win.latency_total = std::move(latency);

  // The dashboard's snapshot: the server figures and the busiest connections.
  std::string event = "{\"server\":" + server_json() + ",\"connections\":" + connections_json(false, 50) + "}";
  http_->broadcast("/api/events", event);
}

}  // namespace slip::slipd
