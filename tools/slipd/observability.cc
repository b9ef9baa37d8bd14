#include "observability.h"

#include <algorithm>
#include <charconv>
#include <future>
#include <map>

#include "assets.h"
#include "core/logging.h"
#include "obs/json.h"
#include "obs/prometheus.h"
#include "obs/rpc_metrics.h"

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

gateway::http::Response json_response(std::string body, int status = 200) {
  gateway::http::Response r;
  r.status = status;
  r.content_type = std::string(kJson);
  r.body = std::move(body);
  return r;
}

gateway::http::Response json_not_found(const std::string& what) {
  obs::JsonWriter w;
  w.begin_object().field("error", what).end_object();
  return json_response(w.take(), 404);
}

// The last-second and since-start percentiles of one histogram.
void write_latencies(obs::JsonWriter& w, const HistogramSnapshot& recent, const HistogramSnapshot& total) {
  w.begin_object();
  w.key("last_second");
  write_latency(w, recent);
  w.key("since_start");
  write_latency(w, total);
  w.end_object();
}

void write_by_code(obs::JsonWriter& w, const std::uint64_t* counts, std::size_t n) {
  w.begin_object();
  for (std::size_t code = 0; code < n; ++code) {
    if (counts[code] != 0) w.field(status_code_name(static_cast<StatusCode>(code)), counts[code]);
  }
  w.end_object();
}

// Asks the listener's loop for its figures and waits for the answer, at most 1 s (the loop answers
// within a turn; after shutdown it may not answer at all).
std::optional<transport::udp::UdpEndpointStats> ask_udp(const transport::udp::UdpListener& udp) {
  auto done = std::make_shared<std::promise<transport::udp::UdpEndpointStats>>();
  auto future = done->get_future();
  udp.stats_async([done](transport::udp::UdpEndpointStats s) { done->set_value(std::move(s)); });
  if (future.wait_for(std::chrono::seconds(1)) != std::future_status::ready) return std::nullopt;
  return future.get();
}

// A consumer's key in the rate windows: stream and name (neither holds a NUL).
std::string consumer_key(const log::ConsumerFigures& c) {
  std::string k = c.stream;
  k.push_back('\0');
  k.append(c.name);
  return k;
}

const char* fsync_policy_name(log::FsyncPolicy p) {
  switch (p) {
    case log::FsyncPolicy::kAlways:
      return "always";
    case log::FsyncPolicy::kInterval:
      return "interval";
    case log::FsyncPolicy::kNever:
      return "never";
  }
  return "unknown";
}

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

  // Per stream and per RPC method: the totals at the last tick, the rates over its second and
  // the latencies recorded during it. Names that disappear are dropped at the next tick.
  struct Stream {
    std::uint64_t stored = 0;
    std::uint64_t acked = 0;
    double stored_rate = 0;
    double acked_rate = 0;
    HistogramSnapshot ack_total;
    HistogramSnapshot ack_recent;
  };
  std::map<std::string, Stream, std::less<>> streams;
  struct Method {
    std::uint64_t calls = 0;
    std::uint64_t errors = 0;
    double calls_rate = 0;
    double errors_rate = 0;
    HistogramSnapshot latency_total;
    HistogramSnapshot latency_recent;
  };
  std::map<std::string, Method, std::less<>> methods;
  // Per consumer (consumer_key()): deliveries at the last tick and the rates over its second.
  struct Consumer {
    std::uint64_t deliveries = 0;
    std::uint64_t redeliveries = 0;
    double deliveries_rate = 0;
    double redeliveries_rate = 0;
  };
  std::map<std::string, Consumer, std::less<>> consumers;
  // The UDP listener: its figures at the last read and the rates over the last tick's second.
  std::optional<transport::udp::UdpEndpointStats> udp_last;
  transport::udp::UdpTraffic udp_at_tick;
  std::uint64_t udp_recovered_at_tick = 0;
  bool udp_ticked = false;
  double udp_packets_sent_rate = 0;
  double udp_packets_received_rate = 0;
  double udp_bytes_sent_rate = 0;
  double udp_bytes_received_rate = 0;
  double udp_lost_rate = 0;
  double udp_retransmitted_rate = 0;
  double udp_recovered_rate = 0;
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
  registry_.add_collector([this](std::vector<obs::Family>& out) {
    obs::collect_stream_metrics(read_streams(), out);
    if (server_.streams() != nullptr) obs::collect_consumer_metrics(read_consumers(), out);
  });
  registry_.add_collector([this](std::vector<obs::Family>& out) {
    if (!rpc_.empty()) obs::collect_rpc_server_metrics(read_rpc_methods(), out);
  });
  registry_.add_collector([this](std::vector<obs::Family>& out) {
    const transport::udp::UdpListener* udp = server_.udp_listener();
    if (udp == nullptr) return;
    const std::optional<transport::udp::UdpEndpointStats> answer = ask_udp(*udp);
    if (!answer) return;
    const transport::udp::UdpEndpointStats& s = *answer;
    auto g = [&](const char* name, const char* help, std::uint64_t v) {
      out.push_back(std::move(obs::gauge(name, help).add(static_cast<double>(v))));
    };
    auto c = [&](const char* name, const char* help, std::uint64_t v) {
      out.push_back(std::move(obs::counter(name, help).add(static_cast<double>(v))));
    };
    g("slip_udp_sessions", "UDP connection states held: open, closing, and handshakes not yet confirmed", s.connections);
    g("slip_udp_unconfirmed", "UDP handshakes answered and not yet confirmed by the client", s.unconfirmed);
    c("slip_udp_accepted_total", "UDP connections whose handshake completed", s.accepted);
    c("slip_udp_initials_total", "UDP Initial (first handshake) packets received", s.initials);
    c("slip_udp_retries_sent_total", "Stateless retry cookies sent to unproven client addresses", s.retries_sent);
    c("slip_udp_handshakes_refused_total", "UDP handshakes refused: the client pinned another server key",
      s.handshakes_refused);
    c("slip_udp_expired_unconfirmed_total", "UDP handshakes forgotten unconfirmed", s.expired_unconfirmed);
    obs::Family dropped = obs::counter("slip_udp_dropped_datagrams_total",
                                  "Datagrams dropped before any connection took them, by reason");
    dropped.add(static_cast<double>(s.dropped_unknown), {{"reason", "unknown_connection"}});
    dropped.add(static_cast<double>(s.dropped_malformed), {{"reason", "malformed"}});
    dropped.add(static_cast<double>(s.socket.truncated), {{"reason", "truncated"}});
    out.push_back(std::move(dropped));
    const transport::udp::UdpTraffic& t = s.traffic;
    c("slip_udp_packets_sent_total", "UDP packets sent by every connection, those gone included", t.packets_sent);
    c("slip_udp_packets_received_total", "UDP packets accepted: authentic, new and well formed", t.packets_received);
    c("slip_udp_packets_lost_total", "UDP packets declared lost (their stream data is sent again)", t.packets_lost);
    c("slip_udp_packets_retransmitted_total", "UDP packets that carried stream data sent before",
      t.packets_retransmitted);
    c("slip_udp_packets_rejected_total", "UDP packets that failed header or packet protection (AEAD)",
      t.packets_rejected);
    c("slip_udp_packets_duplicate_total", "UDP packets dropped as replays or duplicates", t.packets_duplicate);
    c("slip_udp_probes_sent_total", "UDP probe-timeout packets", t.probes_sent);
    obs::Family mtu_probes = obs::counter("slip_udp_mtu_probes_total",
                                          "UDP path MTU probes, by what became of them (sent, acked, lost)");
    mtu_probes.add(static_cast<double>(t.mtu_probes_sent), {{"result", "sent"}});
    mtu_probes.add(static_cast<double>(t.mtu_probes_acked), {{"result", "acked"}});
    mtu_probes.add(static_cast<double>(t.mtu_probes_lost), {{"result", "lost"}});
    out.push_back(std::move(mtu_probes));
    c("slip_udp_mtu_black_holes_total",
      "UDP connections that fell back to 1200-byte datagrams when larger ones stopped getting through",
      t.mtu_black_holes);
    obs::Family packet_size = obs::gauge("slip_udp_max_packet_size_bytes",
                                         "Datagram size (UDP payload) in use by open UDP connections: smallest and "
                                         "largest, as path MTU discovery left them (0: none open)");
    packet_size.add(static_cast<double>(s.max_packet_size_min), {{"stat", "min"}});
    packet_size.add(static_cast<double>(s.max_packet_size_max), {{"stat", "max"}});
    out.push_back(std::move(packet_size));
    c("slip_udp_bytes_sent_total", "UDP payload bytes sent", t.bytes_sent);
    c("slip_udp_bytes_received_total", "UDP payload bytes received in accepted packets", t.bytes_received);
    const transport::udp::FecFilterStats& f = s.fec;
    c("slip_udp_fec_connections_total", "UDP connections that negotiated forward error correction", f.connections);
    c("slip_udp_fec_repair_sent_total", "FEC repair packets sent", f.repair_sent);
    c("slip_udp_fec_repair_received_total", "FEC repair packets received", f.repair_received);
    c("slip_udp_fec_recovered_total", "Packets rebuilt from FEC repairs instead of waiting for a retransmission",
      f.recovered);
    c("slip_udp_fec_unrecoverable_blocks_total", "FEC blocks given up with packets still missing",
      f.unrecoverable_blocks);
    c("slip_udp_fec_malformed_total", "FEC packets refused: damaged or forged repairs and loss reports", f.malformed);
    c("slip_udp_socket_datagrams_sent_total", "Datagrams the listener's socket sent", s.socket.datagrams_sent);
    c("slip_udp_socket_datagrams_received_total", "Datagrams the listener's socket received", s.socket.datagrams_received);
    c("slip_udp_socket_send_calls_total", "sendmmsg calls of the listener's socket", s.socket.send_calls);
    c("slip_udp_socket_receive_calls_total", "recvmmsg calls of the listener's socket that returned datagrams",
      s.socket.receive_calls);
  });
}

void Observability::add_rpc_metrics(std::shared_ptr<const rpc::MetricsInterceptor> metrics) {
  rpc_.push_back(std::move(metrics));
}

std::vector<obs::StreamFigures> Observability::read_streams() const {
  log::StreamService* service = server_.streams();
  if (service == nullptr || service->streams() == nullptr) return {};
  return obs::read_stream_figures(*service->streams());
}

std::vector<log::ConsumerFigures> Observability::read_consumers() const {
  log::StreamService* service = server_.streams();
  if (service == nullptr || service->streams() == nullptr) return {};
  auto done = std::make_shared<std::promise<std::vector<log::ConsumerFigures>>>();
  auto future = done->get_future();
  service->collect_consumers([done](std::vector<log::ConsumerFigures> all) { done->set_value(std::move(all)); });
  // The capture loop answers within a turn; after shutdown it may not answer at all.
  if (future.wait_for(std::chrono::seconds(1)) != std::future_status::ready) return {};
  return future.get();
}

std::vector<rpc::MethodCallStats> Observability::read_rpc_methods() const {
  std::vector<rpc::MethodCallStats> all;
  for (const auto& m : rpc_) {
    for (auto& s : m->snapshot(true)) all.push_back(std::move(s));
  }
  return all;
}

void Observability::write_stream_json(obs::JsonWriter& w, const obs::StreamFigures& s, bool details,
                                      const std::vector<log::ConsumerFigures>& consumers) const {
  const Window::Stream* win = nullptr;
  if (auto it = window_->streams.find(s.config.name); it != window_->streams.end()) win = &it->second;
  const log::LogStats& l = s.log;
  w.begin_object();
  w.field("name", s.config.name);
  w.key("subjects").begin_array();
  for (const auto& subject : s.config.subjects) w.value(subject);
  w.end_array();
  w.field("messages", l.messages)
      .field("bytes", l.bytes)
      .field("first_seq", l.first_sequence)
      .field("last_seq", l.last_sequence)
      .field("messages_stored", l.appends)
      .field("acked_publishes", s.acked_publishes)
      .field("publish_errors", s.publish_errors_total)
      .field("duplicates", l.duplicates)
      .field("fsyncs", l.fsyncs)
      .field("write_errors", l.write_errors)
      .field("capture_errors", s.capture_errors);
  w.key("rates")
      .begin_object()
      .field("stored_per_s", win ? win->stored_rate : 0.0)
      .field("acked_per_s", win ? win->acked_rate : 0.0)
      .end_object();
  w.key("ack_latency");
  write_latencies(w, win ? win->ack_recent : HistogramSnapshot(), s.ack_latency_ns);
  if (details) {
    const log::StreamConfig& c = s.config;
    w.key("config")
        .begin_object()
        .field("max_msgs", c.max_msgs)
        .field("max_bytes", c.max_bytes)
        .field("max_age_ms", c.max_age_ms)
        .field("discard", c.discard == log::DiscardPolicy::kOld ? "old" : "new")
        .field("fsync", log::fsync_text(c.fsync, c.fsync_interval_ms))
        .field("fsync_policy", fsync_policy_name(c.fsync))
        .field("fsync_interval_ms", c.fsync_interval_ms)
        .field("dedup_window_ms", c.dedup_window_ms)
        .end_object();
    w.key("publish_errors_by_code");
    write_by_code(w, s.publish_errors.data(), s.publish_errors.size());
    w.key("log")
        .begin_object()
        .field("segments", l.segments)
        .field("batches_written", l.batches_written)
        .field("refused_full", l.refused_full)
        .field("torn_tails", l.torn_tails)
        .field("truncated_bytes", l.truncated_bytes)
        .field("damaged_batches", l.damaged_batches)
        .field("index_rebuilds", l.index_rebuilds)
        .field("segments_deleted", l.segments_deleted)
        .end_object();
  }
  {
    w.key("consumers").begin_array();
    for (const log::ConsumerFigures& c : consumers) {
      if (c.stream != s.config.name) continue;
      w.begin_object()
          .field("name", c.name)
          .field("durable", c.durable)
          .field("ack_policy", c.ack_policy)
          .field("push_bound", c.push_bound)
          .field("num_pending", c.num_pending)
          .field("num_ack_pending", c.stats.num_ack_pending)
          .field("num_redelivered", c.stats.num_redelivered)
          .field("num_waiting", c.num_waiting)
          .field("delivered_seq", c.stats.delivered_seq)
          .field("ack_floor", c.stats.ack_floor)
          .field("deliveries", c.stats.deliveries)
          .field("redeliveries", c.stats.redeliveries)
          .field("num_max_delivered", c.stats.num_max_delivered)
          .field("num_terminated", c.stats.num_terminated);
      const Window::Consumer* cw = nullptr;
      if (auto it = window_->consumers.find(consumer_key(c)); it != window_->consumers.end()) cw = &it->second;
      w.key("rates")
          .begin_object()
          .field("deliveries_per_s", cw ? cw->deliveries_rate : 0.0)
          .field("redeliveries_per_s", cw ? cw->redeliveries_rate : 0.0)
          .end_object();
      w.end_object();
    }
    w.end_array();
  }
  w.end_object();
}

std::string Observability::streams_json(const std::vector<obs::StreamFigures>& streams,
                                        const std::vector<log::ConsumerFigures>& consumers) const {
  obs::JsonWriter w;
  w.begin_array();
  for (const auto& s : streams) write_stream_json(w, s, false, consumers);
  w.end_array();
  return w.take();
}

std::string Observability::rpc_json(const std::vector<rpc::MethodCallStats>& methods) const {
  obs::JsonWriter w;
  w.begin_array();
  for (const auto& m : methods) {
    const Window::Method* win = nullptr;
    if (auto it = window_->methods.find(m.method); it != window_->methods.end()) win = &it->second;
    w.begin_object().field("method", m.method).field("calls", m.calls).field("errors", m.errors);
    w.key("by_code");
    write_by_code(w, m.by_code.data(), m.by_code.size());
    w.key("rates")
        .begin_object()
        .field("calls_per_s", win ? win->calls_rate : 0.0)
        .field("errors_per_s", win ? win->errors_rate : 0.0)
        .end_object();
    w.key("latency");
    write_latencies(w, win ? win->latency_recent : HistogramSnapshot(), m.latency_ns);
    w.end_object();
  }
  w.end_array();
  return w.take();
}

std::optional<transport::udp::UdpEndpointStats> Observability::read_udp() const {
  const transport::udp::UdpListener* udp = server_.udp_listener();
  if (udp == nullptr) return std::nullopt;
  if (auto s = ask_udp(*udp)) window_->udp_last = std::move(s);
  return window_->udp_last ? window_->udp_last : transport::udp::UdpEndpointStats{};
}

std::string Observability::udp_json(const std::optional<transport::udp::UdpEndpointStats>& udp) const {
  obs::JsonWriter w;
  w.begin_object();
  const transport::udp::UdpListener* listener = server_.udp_listener();
  if (listener == nullptr || !udp) {
    w.field("enabled", false).end_object();
    return w.take();
  }
  const transport::udp::UdpEndpointStats& s = *udp;
  const transport::udp::UdpTraffic& t = s.traffic;
  const transport::udp::FecFilterStats& f = s.fec;
  const Window& win = *window_;
  w.field("enabled", true)
      .field("address", listener->local_address())
      .field("sessions", s.connections)
      .field("unconfirmed", s.unconfirmed)
      .field("accepted", s.accepted)
      .field("initials", s.initials)
      .field("retries_sent", s.retries_sent)
      .field("handshakes_refused", s.handshakes_refused)
      .field("expired_unconfirmed", s.expired_unconfirmed);
  w.key("dropped")
      .begin_object()
      .field("unknown_connection", s.dropped_unknown)
      .field("malformed", s.dropped_malformed)
      .field("truncated", s.socket.truncated)
      .end_object();
  w.field("packets_sent", t.packets_sent)
      .field("packets_received", t.packets_received)
      .field("packets_lost", t.packets_lost)
      .field("packets_retransmitted", t.packets_retransmitted)
      .field("packets_rejected", t.packets_rejected)
      .field("packets_duplicate", t.packets_duplicate)
      .field("probes_sent", t.probes_sent)
      .field("bytes_sent", t.bytes_sent)
      .field("bytes_received", t.bytes_received);
  w.key("fec")
      .begin_object()
      .field("connections", f.connections)
      .field("source_packets", f.source_packets)
      .field("repair_sent", f.repair_sent)
      .field("repair_received", f.repair_received)
      .field("recovered", f.recovered)
      .field("unrecoverable_blocks", f.unrecoverable_blocks)
      .field("malformed", f.malformed)
      .end_object();
  w.key("socket")
      .begin_object()
      .field("datagrams_sent", s.socket.datagrams_sent)
      .field("datagrams_received", s.socket.datagrams_received)
      .field("send_calls", s.socket.send_calls)
      .field("receive_calls", s.socket.receive_calls)
      .end_object();
  w.key("rates")
      .begin_object()
      .field("packets_sent_per_s", win.udp_packets_sent_rate)
      .field("packets_received_per_s", win.udp_packets_received_rate)
      .field("bytes_sent_per_s", win.udp_bytes_sent_rate)
      .field("bytes_received_per_s", win.udp_bytes_received_rate)
      .field("packets_lost_per_s", win.udp_lost_rate)
      .field("packets_retransmitted_per_s", win.udp_retransmitted_rate)
      .field("fec_recovered_per_s", win.udp_recovered_rate)
      .end_object();
  w.end_object();
  return w.take();
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
  http_->route("/api/streams", [this](const Request&) { return json_response(streams_json(read_streams(), read_consumers())); });
  http_->route_prefix("/api/streams/", [this](const Request& req) {
    const std::string name = req.path.substr(std::string_view("/api/streams/").size(), 256);
    log::StreamService* service = server_.streams();
    log::StreamManager* manager = service ? service->streams() : nullptr;
    if (manager == nullptr) return json_not_found("no stream \"" + name + "\": streams are off (no --data-dir)");
    auto stream = manager->find(name);
    if (!stream) return json_not_found("no stream \"" + name + "\"");
    obs::JsonWriter w;
    write_stream_json(w, obs::read_stream_figures(*manager, *stream), true, read_consumers());
    return json_response(w.take());
  });
  http_->route("/api/rpc", [this](const Request&) { return json_response(rpc_json(read_rpc_methods())); });
  http_->route("/api/udp", [this](const Request&) { return json_response(udp_json(read_udp())); });
  http_->route_prefix("/api/connections/", [this](const Request& req) {
    const std::string id_text = req.path.substr(std::string_view("/api/connections/").size(), 64);
    std::uint64_t id = 0;
    auto [end, ec] = std::from_chars(id_text.data(), id_text.data() + id_text.size(), id);
    if (ec != std::errc() || end != id_text.data() + id_text.size()) {
      return json_not_found("no connection \"" + id_text + "\"");
    }
    for (const ConnectionInfo& c : gather_connections(true)) {
      if (c.id != id) continue;
      obs::JsonWriter w;
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
          .field("pending_bytes", c.pending_bytes);
      w.key("subs").begin_array();
      for (const auto& sub : c.subs) {
        w.begin_object()
            .field("sid", sub.sid)
            .field("subject", sub.subject)
            .field("queue", sub.queue)
            .field("delivered", sub.delivered)
            .end_object();
      }
      w.end_array().end_object();
      return json_response(w.take());
    }
    return json_not_found("no connection " + id_text);
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

  // Streams and RPC methods: rates and the last second's latencies.
  const std::vector<obs::StreamFigures> streams = read_streams();
  std::map<std::string, Window::Stream, std::less<>> stream_windows;
  for (const obs::StreamFigures& f : streams) {
    Window::Stream sw;
    if (auto it = win.streams.find(f.config.name); it != win.streams.end()) sw = std::move(it->second);
    sw.stored_rate = per_second(f.log.appends, sw.stored, secs);
    sw.acked_rate = per_second(f.acked_publishes, sw.acked, secs);
    sw.stored = f.log.appends;
    sw.acked = f.acked_publishes;
    sw.ack_recent = f.ack_latency_ns.since(sw.ack_total);
    sw.ack_total = f.ack_latency_ns;
    stream_windows.emplace(f.config.name, std::move(sw));
  }
  win.streams = std::move(stream_windows);
  const std::vector<rpc::MethodCallStats> methods = read_rpc_methods();
  std::map<std::string, Window::Method, std::less<>> method_windows;
  for (const rpc::MethodCallStats& m : methods) {
    Window::Method mw;
    if (auto it = win.methods.find(m.method); it != win.methods.end()) mw = std::move(it->second);
    mw.calls_rate = per_second(m.calls, mw.calls, secs);
    mw.errors_rate = per_second(m.errors, mw.errors, secs);
    mw.calls = m.calls;
    mw.errors = m.errors;
    mw.latency_recent = m.latency_ns.since(mw.latency_total);
    mw.latency_total = m.latency_ns;
    method_windows.emplace(m.method, std::move(mw));
  }
  win.methods = std::move(method_windows);

  // Consumers: deliveries per second. Asked only when there are streams to have consumers.
  const std::vector<log::ConsumerFigures> consumers =
      streams.empty() ? std::vector<log::ConsumerFigures>{} : read_consumers();
  std::map<std::string, Window::Consumer, std::less<>> consumer_windows;
  for (const log::ConsumerFigures& c : consumers) {
    std::string key = consumer_key(c);
    Window::Consumer cw;
    const bool known = win.consumers.count(key) != 0;
    if (known) cw = win.consumers[key];
    // A consumer seen for the first time has no second behind it yet.
    cw.deliveries_rate = known ? per_second(c.stats.deliveries, cw.deliveries, secs) : 0.0;
    cw.redeliveries_rate = known ? per_second(c.stats.redeliveries, cw.redeliveries, secs) : 0.0;
    cw.deliveries = c.stats.deliveries;
    cw.redeliveries = c.stats.redeliveries;
    consumer_windows.emplace(std::move(key), cw);
  }
  win.consumers = std::move(consumer_windows);

  // UDP: packets and bytes per second, losses, retransmissions and FEC rebuilds per second.
  const std::optional<transport::udp::UdpEndpointStats> udp = read_udp();
  if (udp) {
    const transport::udp::UdpTraffic& t = udp->traffic;
    const transport::udp::UdpTraffic& b = win.udp_at_tick;
    if (win.udp_ticked) {
      win.udp_packets_sent_rate = per_second(t.packets_sent, b.packets_sent, secs);
      win.udp_packets_received_rate = per_second(t.packets_received, b.packets_received, secs);
      win.udp_bytes_sent_rate = per_second(t.bytes_sent, b.bytes_sent, secs);
      win.udp_bytes_received_rate = per_second(t.bytes_received, b.bytes_received, secs);
      win.udp_lost_rate = per_second(t.packets_lost, b.packets_lost, secs);
      win.udp_retransmitted_rate = per_second(t.packets_retransmitted, b.packets_retransmitted, secs);
      win.udp_recovered_rate = per_second(udp->fec.recovered, win.udp_recovered_at_tick, secs);
    }
    win.udp_at_tick = t;
    win.udp_recovered_at_tick = udp->fec.recovered;
    win.udp_ticked = true;
  }

  // The dashboard's snapshot: the server figures, the busiest connections, streams and methods.
  std::string event = "{\"server\":";
  event.append(server_json())
      .append(",\"connections\":")
      .append(connections_json(false, 50))
      .append(",\"streams\":")
      .append(streams_json(streams, consumers))
      .append(",\"rpc\":")
      .append(rpc_json(methods))
      .append(",\"udp\":")
      .append(udp_json(udp))
      .append("}");
  http_->broadcast("/api/events", event);
}

}  // namespace slip::slipd
