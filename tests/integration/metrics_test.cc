// Observability end to end: slipd as a real process with --http-listen, traffic through the
// native client, then /metrics (checked against the text-format rules), the JSON API, the event
// stream, /healthz and `slip stats --once`.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <future>
#include <thread>

#include "broker/broker.h"
#include "broker/client.h"
#include "eventually.h"
#include "http_client.h"
#include "io/loop_group.h"
#include "peer.h"
#include "process.h"
#include "observability.h"
#include "prometheus_check.h"
#include "rpc/blocking.h"
#include "rpc/channel.h"
#include "rpc/metrics_interceptor.h"
#include "rpc/server.h"
#include "transport/udp/keys.h"
#include "transport/udp/udp.h"
#include "wire/encoder.h"

namespace slip::broker {
namespace {

// A test client that counts what it receives and keeps the last traceparent header.
class Peer : public test::PubSubPeer {
 public:
  Peer(const std::string& address, std::string name) : PubSubPeer(address, std::move(name)) {}
  ~Peer() { stop(); }  // before received_ goes: deliveries write to it
  void subscribe(const std::string& subject) {
    run([&] {
      (void)client_->subscribe(subject, "", [this](const Message& m) {
        ++received_;
        if (m.headers == nullptr) return;
        for (const auto& [k, v] : *m.headers) {
          if (k == "traceparent") traceparent_ = std::string(v);
        }
      });
    });
    sync();
  }
  std::string traceparent() {
    std::string t;
    run([&] { t = traceparent_; });
    return t;
  }
  bool wait_received(std::size_t n) {
    return wait_for([&] { return received_ == n; });
  }

 private:
  std::size_t received_ = 0;
  std::string traceparent_;  // the last one received
};

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& e : v) s += e + "\n";
  return s;
}

test::PromScrape scrape(const std::string& http) {
  auto r = test::http_get(http, "/metrics");
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  if (!r.is_ok()) return {};
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->header("Content-Type").find("text/plain; version=0.0.4"), std::string::npos);
  auto s = test::check_prometheus_text(r->body);
  EXPECT_TRUE(s.errors.empty()) << joined(s.errors) << r->body;
  return s;
}

double metric(const test::PromScrape& s, const std::string& name, const std::map<std::string, std::string>& labels = {}) {
  auto v = s.value(name, labels);
  EXPECT_TRUE(v.has_value()) << "no sample " << name;
  return v.value_or(-1);
}

boost::json::value get_json(const std::string& http, const std::string& path) {
  auto r = test::http_get(http, path);
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  if (!r.is_ok()) return {};
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->header("Content-Type"), "application/json");
  boost::system::error_code ec;
  auto v = boost::json::parse(r->body, ec);
  EXPECT_FALSE(ec) << ec.message() << ": " << r->body;
  return v;
}

std::uint64_t u64(const boost::json::value& v) { return boost::json::value_to<std::uint64_t>(v); }

// a + b without operator+ chains (g++ 12 -O3 warns falsely about them: -Wrestrict).
std::string cat(std::string a, std::string_view b) {
  a.append(b);
  return a;
}

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/slip-metrics-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  ~TempDir() { (void)std::system(cat("rm -rf ", dir_).c_str()); }
  const std::string& path() const { return dir_; }

 private:
  std::string dir_;
};

// A client with blocking stream calls: admin requests and acknowledged publishes.
class StreamPeer : public test::PubSubPeer {
 public:
  using PubSubPeer::PubSubPeer;
  ~StreamPeer() { stop(); }

  Status add_stream(const std::string& name, const std::string& subjects, StreamFields extra = {}) {
    StreamFields args = {{"name", name}, {"subjects", subjects}};
    for (auto& kv : extra) args.push_back(kv);
    std::promise<Result<StreamFields>> p;
    auto f = p.get_future();
    run([&] {
      Status st = client().stream_request(wire::StreamOp::kAdd, args,
                                          [&p](Result<StreamFields> r) { p.set_value(std::move(r)); });
      if (!st.is_ok()) p.set_value(st);
    });
    if (f.wait_for(kLiveness) != std::future_status::ready) return timed_out("no STREAM_RESPONSE");
    return f.get().status();
  }

  Result<std::uint64_t> publish(const std::string& subject, const std::string& payload, const std::string& msg_id) {
    std::promise<Result<std::uint64_t>> p;
    auto f = p.get_future();
    run([&] {
      const wire::Metadata h = {{"Slip-Msg-Id", msg_id}};
      Status st = client().publish_acked(subject, Slice::copy_of(ByteView(payload)), &h,
                                         [&p](Result<std::uint64_t> r) { p.set_value(std::move(r)); });
      if (!st.is_ok()) p.set_value(st);
    });
    if (f.wait_for(kLiveness) != std::future_status::ready) return timed_out("no LOG_ACK");
    return f.get();
  }
};

TEST(Metrics, TrafficMovesCountersHistogramAndJson) {
  test::SlipdProcess slipd({"--http-listen", "127.0.0.1:0"});
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  const std::string http = slipd.listener("http");
  ASSERT_FALSE(http.empty()) << "no 'http' line in the ready file";
  Peer sub(slipd.address(), "metrics-sub"), pub(slipd.address(), "metrics-pub");
  ASSERT_TRUE(sub.wait_ready() && pub.wait_ready());
  sub.subscribe("load.>");
  pub.sync();

  const auto before = scrape(http);
  EXPECT_EQ(metric(before, "slip_connections_open", {{"protocol", "native"}}), 2);
  EXPECT_GE(metric(before, "slip_connections_total", {{"protocol", "native"}}), 2);
  EXPECT_GE(metric(before, "slip_subscriptions"), 1);
  EXPECT_EQ(before.types.at("slip_publish_route_seconds"), "histogram");
  EXPECT_EQ(before.types.at("slip_messages_in_total"), "counter");
  EXPECT_EQ(before.types.at("slip_connections_open"), "gauge");

  constexpr int kMessages = 1000;
  const std::string payload(100, 'x');
  pub.run([&] {
    for (int i = 0; i < kMessages; ++i) ASSERT_TRUE(pub.client().publish("load.a", Slice::copy_of(payload)).is_ok());
  });
  // One more PUB in, and its no-responders answer: routed through the broker too, so counted
  // once in and once out.
  pub.sync();
  ASSERT_TRUE(sub.wait_received(kMessages));

  const auto after = scrape(http);
  auto delta = [&](const std::string& name) { return metric(after, name) - metric(before, name); };
  EXPECT_EQ(delta("slip_messages_in_total"), kMessages + 2);
  EXPECT_EQ(delta("slip_messages_out_total"), kMessages + 1);
  EXPECT_EQ(delta("slip_bytes_in_total"), kMessages * 100.0);
  EXPECT_EQ(delta("slip_bytes_out_total"), kMessages * 100.0);
  EXPECT_EQ(delta("slip_no_responders_total"), 1);
  EXPECT_EQ(delta("slip_slow_consumers_total"), 0);
  EXPECT_EQ(delta("slip_dropped_messages_total"), 0);
  // One PUB in kPublishSampleEvery per client is timed.
  EXPECT_GE(metric(after, "slip_publish_route_seconds_count") - metric(before, "slip_publish_route_seconds_count"),
            kMessages / kPublishSampleEvery);
  EXPECT_GT(metric(after, "slip_publish_route_seconds_sum"), 0);
  EXPECT_EQ(metric(after, "slip_publish_route_seconds_bucket", {{"le", "+Inf"}}),
            metric(after, "slip_publish_route_seconds_count"));

  // /api/server: the same totals.
  auto server = get_json(http, "/api/server").as_object();
  EXPECT_EQ(server.at("server").as_string(), "slipd");
  EXPECT_EQ(u64(server.at("connections")), 2u);
  EXPECT_EQ(u64(server.at("totals").at("msgs_in")), static_cast<std::uint64_t>(metric(after, "slip_messages_in_total")));
  EXPECT_EQ(u64(server.at("totals").at("bytes_out")), static_cast<std::uint64_t>(metric(after, "slip_bytes_out_total")));
  EXPECT_GE(u64(server.at("publish_route_latency").at("since_start").at("count")), kMessages / kPublishSampleEvery);
  bool has_http = false;
  for (const auto& l : server.at("listeners").as_array()) {
    if (l.at("protocol").as_string() == "http") has_http = l.at("address").as_string() == http;
  }
  EXPECT_TRUE(has_http);

  // /api/connections: each client with its own traffic.
  auto conns = get_json(http, "/api/connections").as_array();
  ASSERT_EQ(conns.size(), 2u);
  for (const auto& c : conns) {
    EXPECT_EQ(c.at("protocol").as_string(), "native");
    EXPECT_FALSE(c.at("peer").as_string().empty());
    if (c.at("name").as_string() == "metrics-pub") {
      EXPECT_GE(u64(c.at("msgs_in")), static_cast<std::uint64_t>(kMessages));
      EXPECT_GE(u64(c.at("bytes_in")), kMessages * 100u);
    } else {
      EXPECT_EQ(c.at("name").as_string(), "metrics-sub");
      EXPECT_GE(u64(c.at("msgs_out")), static_cast<std::uint64_t>(kMessages));
      EXPECT_GE(u64(c.at("subscriptions")), 1u);
    }
  }

  // /api/subscriptions: the subscriber's subject is listed.
  bool found = false;
  const auto subs = get_json(http, "/api/subscriptions");
  for (const auto& s : subs.as_array()) {
    if (s.at("subject").as_string() == "load.>") found = u64(s.at("delivered")) == static_cast<std::uint64_t>(kMessages);
  }
  EXPECT_TRUE(found);
}

TEST(Metrics, MetricsOffKeepsCountersButTimesNothing) {
  test::SlipdProcess slipd({"--http-listen", "127.0.0.1:0", "--metrics", "off"});
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  const std::string http = slipd.listener("http");
  Peer pub(slipd.address(), "p");
  ASSERT_TRUE(pub.wait_ready());
  pub.run([&] {
    for (int i = 0; i < 100; ++i) ASSERT_TRUE(pub.client().publish("x", Slice::copy_of("y")).is_ok());
  });
  pub.sync();
  const auto s = scrape(http);
  EXPECT_EQ(metric(s, "slip_messages_in_total"), 102);  // and the sync's request and answer
  EXPECT_EQ(metric(s, "slip_publish_route_seconds_count"), 0);
}

TEST(Metrics, EventStreamPushesJsonSnapshots) {
  test::SlipdProcess slipd({"--http-listen", "127.0.0.1:0"});
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  auto event = test::first_event(slipd.listener("http"), "/api/events");
  ASSERT_TRUE(event.is_ok()) << event.status().to_string();
  boost::system::error_code ec;
  auto v = boost::json::parse(*event, ec);
  ASSERT_FALSE(ec) << *event;
  EXPECT_TRUE(v.as_object().contains("server"));
  EXPECT_TRUE(v.as_object().at("connections").is_array());
  EXPECT_TRUE(v.at("server").at("rates").as_object().contains("msgs_in_per_s"));
  // Without --udp-listen the snapshot says UDP is off, as /api/udp does.
  EXPECT_FALSE(v.at("udp").at("enabled").as_bool()) << *event;
  auto udp = get_json(slipd.listener("http"), "/api/udp").as_object();
  EXPECT_FALSE(udp.at("enabled").as_bool());
  EXPECT_EQ(udp.size(), 1u) << boost::json::serialize(udp);
}

TEST(Http, HealthzIsOkWhileServingAnd503WhileDraining) {
  // Small socket buffers, and no slow-consumer cut-off: what a non-reading client is sent stays
  // queued in slipd, and closing its connection then lingers (up to close_linger, 5 s).
  test::SlipdProcess slipd({"--http-listen", "127.0.0.1:0", "--drain-ms", "20000", "--so-sndbuf", "65536",
                            "--max-pending-bytes", "1073741824"});
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  const std::string http = slipd.listener("http");
  auto ok = test::http_get(http, "/healthz");
  ASSERT_TRUE(ok.is_ok());
  EXPECT_EQ(ok->status, 200);
  EXPECT_EQ(ok->body, "ok\n");
  // A client that subscribes to what it publishes and never reads: slipd holds megabytes for
  // it, so its connection outlives SIGTERM by the linger time and slipd stays draining. It
  // writes from its own thread (its writes may stall once slipd's buffers fill); the thread
  // ends when slipd closes the connection.
  test::RawClient stubborn(slipd.port());
  ASSERT_TRUE(stubborn.handshake().is_ok());
  std::thread writer([&] {
    wire::FrameEncoder e;
    e.add(wire::Sub{1, "fill", ""});
    stubborn.send_chain(e.take());
    const Slice chunk = Slice::copy_of(std::string(64 * 1024, 'f'));
    for (int i = 0; i < 512; ++i) {
      wire::Pub p;
      p.subject = "fill";
      p.payload = chunk;
      e.add(p);
      stubborn.send_chain(e.take());
    }
  });
  // Wait until slipd holds bytes for it (bounded), then ask it to stop.
  const auto filled = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < filled) {
    auto m = test::http_get(http, "/api/connections");
    if (m.is_ok() && m->body.find("\"pending_bytes\":0") == std::string::npos &&
        m->body.find("pending_bytes") != std::string::npos) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(::kill(slipd.pid(), SIGTERM), 0);
  int status = 0;
  std::string last;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    auto r = test::http_get(http, "/healthz");
    if (r.is_ok()) status = r->status;
    last = r.is_ok() ? std::to_string(r->status) + " " + r->body : r.status().to_string();
    if (status == 503) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(status, 503) << "last /healthz: " << last << "\nslipd's log:\n" << slipd.log();
  slipd.stop(SIGTERM);  // waits for the exit; the connection is then closed and the writer ends
  writer.join();
}

TEST(Http, UnknownPathIs404AndOtherMethodsAre405) {
  test::SlipdProcess slipd({"--http-listen", "127.0.0.1:0"});
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  const std::string http = slipd.listener("http");
  auto missing = test::http_get(http, "/nope");
  ASSERT_TRUE(missing.is_ok());
  EXPECT_EQ(missing->status, 404);
  auto post = test::http_request(http, "POST", "/metrics", "Content-Length: 0\r\n");
  ASSERT_TRUE(post.is_ok());
  EXPECT_EQ(post->status, 405);
  EXPECT_EQ(post->header("Allow"), "GET, HEAD");
  auto head = test::http_request(http, "HEAD", "/healthz");
  ASSERT_TRUE(head.is_ok());
  EXPECT_EQ(head->status, 200);
  EXPECT_TRUE(head->body.empty());
  auto huge = test::http_request(http, "GET", "/metrics", "X-Big: " + std::string(20000, 'a') + "\r\n");
  ASSERT_TRUE(huge.is_ok());
  EXPECT_EQ(huge->status, 431);
}

TEST(Http, ServesTheDashboardItself) {
  test::SlipdProcess slipd({"--http-listen", "127.0.0.1:0"});
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  const std::string http = slipd.listener("http");
  auto page = test::http_get(http, "/");
  ASSERT_TRUE(page.is_ok());
  EXPECT_EQ(page->status, 200);
  EXPECT_NE(page->header("Content-Type").find("text/html"), std::string::npos);
  EXPECT_NE(page->body.find("<title>slipd</title>"), std::string::npos);
  auto app = test::http_get(http, "/app.js");
  ASSERT_TRUE(app.is_ok());
  EXPECT_EQ(app->status, 200);
  EXPECT_NE(app->body.find("EventSource"), std::string::npos);
#ifdef SLIP_DASHBOARD_CHARTS
  auto uplot = test::http_get(http, "/uPlot.iife.min.js");
  ASSERT_TRUE(uplot.is_ok());
  EXPECT_EQ(uplot->status, 200);
  EXPECT_GT(uplot->body.size(), 10000u);
#endif
}

TEST(Metrics, AckedPublishesMoveTheStreamFigures) {
  TempDir data;
  test::SlipdProcess slipd({"--http-listen", "127.0.0.1:0", "--data-dir", data.path()});
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  const std::string http = slipd.listener("http");
  StreamPeer peer(slipd.address(), "stream-pub");
  ASSERT_TRUE(peer.wait_ready());
  ASSERT_TRUE(peer.add_stream("orders", "orders.>").is_ok());
  ASSERT_TRUE(peer.add_stream("small", "small.*", {{"max_msgs", "2"}, {"discard", "new"}}).is_ok());
  const std::map<std::string, std::string> orders = {{"stream", "orders"}};

  const auto before = scrape(http);
  EXPECT_EQ(metric(before, "slip_streams"), 2);
  EXPECT_EQ(metric(before, "slip_stream_messages", orders), 0);
  EXPECT_EQ(metric(before, "slip_stream_acked_publishes_total", orders), 0);
  EXPECT_EQ(metric(before, "slip_stream_ack_latency_seconds_count", orders), 0);
  EXPECT_EQ(before.types.at("slip_stream_ack_latency_seconds"), "histogram");
  EXPECT_EQ(before.types.at("slip_stream_messages"), "gauge");
  EXPECT_EQ(before.types.at("slip_stream_acked_publishes_total"), "counter");
  EXPECT_EQ(before.types.at("slip_stream_publish_errors_total"), "counter");

  constexpr int kMessages = 40;
  for (int i = 0; i < kMessages; ++i) {
    auto seq = peer.publish("orders.new", cat("order ", std::to_string(i)), cat("id-", std::to_string(i)));
    ASSERT_TRUE(seq.is_ok()) << seq.status().to_string();
    ASSERT_EQ(*seq, static_cast<std::uint64_t>(i + 1));
  }
  test::PromScrape after;
  ASSERT_TRUE(test::eventually([&] {
    after = scrape(http);
    return after.value("slip_stream_ack_latency_seconds_count", orders) == kMessages;
  })) << "ack latency count stays at " << metric(after, "slip_stream_ack_latency_seconds_count", orders);
  EXPECT_EQ(metric(after, "slip_stream_messages", orders), kMessages);
  EXPECT_EQ(metric(after, "slip_stream_acked_publishes_total", orders), kMessages);
  EXPECT_EQ(metric(after, "slip_stream_messages_stored_total", orders), kMessages);
  EXPECT_EQ(metric(after, "slip_stream_first_seq", orders), 1);
  EXPECT_EQ(metric(after, "slip_stream_last_seq", orders), kMessages);
  EXPECT_GT(metric(after, "slip_stream_bytes", orders), kMessages * 8.0);
  EXPECT_EQ(metric(after, "slip_stream_duplicates_total", orders), 0);
  // fsync=always by default, and each publish waited for its ack: one fsync at least for each.
  EXPECT_GE(metric(after, "slip_stream_fsyncs_total", orders), kMessages);
  EXPECT_GT(metric(after, "slip_stream_ack_latency_seconds_sum", orders), 0);
  EXPECT_EQ(metric(after, "slip_stream_ack_latency_seconds_bucket", {{"stream", "orders"}, {"le", "+Inf"}}), kMessages);
  EXPECT_EQ(metric(after, "slip_stream_messages", {{"stream", "small"}}), 0);

  // A retry with the same Slip-Msg-Id is acknowledged with the original sequence, stored once.
  auto retry = peer.publish("orders.new", "order 39", "id-39");
  ASSERT_TRUE(retry.is_ok()) << retry.status().to_string();
  EXPECT_EQ(*retry, static_cast<std::uint64_t>(kMessages));
  // A stream that refuses new messages when full: two stored, the third is a counted error.
  for (const char* id : {"a", "b"}) ASSERT_TRUE(peer.publish("small.x", "s", id).is_ok());
  auto refused = peer.publish("small.x", "s", "c");
  ASSERT_FALSE(refused.is_ok());
  const std::string code(status_code_name(refused.status().code()));
  ASSERT_TRUE(test::eventually([&] {
    after = scrape(http);
    return after.value("slip_stream_acked_publishes_total", orders) == kMessages + 1 &&
           after.value("slip_stream_publish_errors_total", {{"stream", "small"}, {"code", code}}) == 1;
  })) << code;
  EXPECT_EQ(metric(after, "slip_stream_messages", orders), kMessages);
  EXPECT_EQ(metric(after, "slip_stream_duplicates_total", orders), 1);
  EXPECT_EQ(metric(after, "slip_stream_ack_latency_seconds_count", orders), kMessages + 1);
  EXPECT_EQ(metric(after, "slip_stream_messages", {{"stream", "small"}}), 2);
  EXPECT_EQ(metric(after, "slip_stream_acked_publishes_total", {{"stream", "small"}}), 2);
  EXPECT_FALSE(after.value("slip_stream_publish_errors_total", {{"stream", "orders"}, {"code", code}}).has_value());

  // /api/streams: the same figures, by name, with an empty consumer list.
  auto list = get_json(http, "/api/streams").as_array();
  ASSERT_EQ(list.size(), 2u);
  const auto& o = list[0].as_object();
  EXPECT_EQ(o.at("name").as_string(), "orders");
  ASSERT_EQ(o.at("subjects").as_array().size(), 1u);
  EXPECT_EQ(o.at("subjects").as_array()[0].as_string(), "orders.>");
  EXPECT_EQ(u64(o.at("messages")), static_cast<std::uint64_t>(kMessages));
  EXPECT_EQ(u64(o.at("last_seq")), static_cast<std::uint64_t>(kMessages));
  EXPECT_EQ(u64(o.at("acked_publishes")), static_cast<std::uint64_t>(kMessages + 1));
  EXPECT_EQ(u64(o.at("messages_stored")), static_cast<std::uint64_t>(kMessages));
  EXPECT_EQ(u64(o.at("duplicates")), 1u);
  EXPECT_EQ(u64(o.at("ack_latency").at("since_start").at("count")), static_cast<std::uint64_t>(kMessages + 1));
  EXPECT_GT(u64(o.at("ack_latency").at("since_start").at("p99_ns")), 0u);
  EXPECT_TRUE(o.at("consumers").as_array().empty());
  EXPECT_EQ(list[1].at("name").as_string(), "small");
  EXPECT_EQ(u64(list[1].at("publish_errors")), 1u);

  // /api/streams/NAME: configuration, limits and fsync policy besides the figures.
  auto small = get_json(http, "/api/streams/small").as_object();
  EXPECT_EQ(small.at("name").as_string(), "small");
  EXPECT_EQ(u64(small.at("config").at("max_msgs")), 2u);
  EXPECT_EQ(small.at("config").at("discard").as_string(), "new");
  EXPECT_EQ(small.at("config").at("fsync").as_string(), "always");
  EXPECT_EQ(u64(small.at("publish_errors_by_code").at(code)), 1u);
  EXPECT_EQ(u64(small.at("log").at("segments")), 1u);
  EXPECT_TRUE(small.at("consumers").as_array().empty());
  auto missing = test::http_get(http, "/api/streams/nope");
  ASSERT_TRUE(missing.is_ok());
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(missing->header("Content-Type"), "application/json");
  EXPECT_NE(missing->body.find("\"error\":\"no stream \\\"nope\\\"\""), std::string::npos) << missing->body;

  // slipd serves no RPC methods itself: the list is there, and empty.
  EXPECT_TRUE(get_json(http, "/api/rpc").as_array().empty());

  // The terminal view shows the stream table.
  std::string out;
  ASSERT_EQ(test::run_program({SLIP_PATH, "stats", "--once", "--server-http", http}, &out), 0) << out;
  for (const char* want : {"STREAM", "orders", "orders.>", "small.*", "RPC METHOD", "no RPC methods"}) {
    EXPECT_NE(out.find(want), std::string::npos) << "missing '" << want << "' in:\n" << out;
  }
}

TEST(Metrics, ConsumersMoveTheirFigures) {
  TempDir data;
  test::SlipdProcess slipd({"--http-listen", "127.0.0.1:0", "--data-dir", data.path()});
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  const std::string http = slipd.listener("http");
  const std::string s = slipd.address();
  StreamPeer peer(s, "stream-pub");
  ASSERT_TRUE(peer.wait_ready());
  ASSERT_TRUE(peer.add_stream("orders", "orders.>").is_ok());
  constexpr int kMessages = 10;
  for (int i = 0; i < kMessages; ++i) {
    ASSERT_TRUE(peer.publish("orders.new", cat("order ", std::to_string(i)), cat("id-", std::to_string(i))).is_ok());
  }
  // Streams but no consumer yet: the count is there, the per-consumer families are not.
  auto none = scrape(http);
  EXPECT_EQ(metric(none, "slip_consumers"), 0);
  EXPECT_FALSE(none.value("slip_consumer_pending_messages", {{"stream", "orders"}, {"consumer", "READER"}}).has_value());

  std::string out;
  ASSERT_EQ(test::run_program({SLIP_PATH, "-s", s, "consumer", "add", "orders", "READER", "--ack-wait", "1m"}, &out), 0)
      << out;
  const std::map<std::string, std::string> reader = {{"stream", "orders"}, {"consumer", "READER"}};
  auto fresh = scrape(http);
  EXPECT_EQ(metric(fresh, "slip_consumers"), 1);
  EXPECT_EQ(metric(fresh, "slip_consumer_pending_messages", reader), kMessages);
  EXPECT_EQ(metric(fresh, "slip_consumer_deliveries_total", reader), 0);
  EXPECT_EQ(metric(fresh, "slip_consumer_ack_floor", reader), 0);
  EXPECT_EQ(fresh.types.at("slip_consumer_pending_messages"), "gauge");
  EXPECT_EQ(fresh.types.at("slip_consumer_ack_pending_messages"), "gauge");
  EXPECT_EQ(fresh.types.at("slip_consumer_deliveries_total"), "counter");
  EXPECT_EQ(fresh.types.at("slip_consumer_redeliveries_total"), "counter");

  // Four read and acknowledged (slip consume acknowledges each message it prints).
  ASSERT_EQ(test::run_program({SLIP_PATH, "-s", s, "consume", "orders", "--durable", "READER", "--count", "4"}, &out),
            0)
      << out;
  test::PromScrape after;
  ASSERT_TRUE(test::eventually([&] {
    after = scrape(http);
    return after.value("slip_consumer_ack_floor", reader) == 4;
  })) << "ack floor stays at " << metric(after, "slip_consumer_ack_floor", reader);
  EXPECT_EQ(metric(after, "slip_consumer_pending_messages", reader), kMessages - 4);
  EXPECT_EQ(metric(after, "slip_consumer_delivered_seq", reader), 4);
  EXPECT_EQ(metric(after, "slip_consumer_deliveries_total", reader), 4);
  EXPECT_EQ(metric(after, "slip_consumer_ack_pending_messages", reader), 0);
  EXPECT_EQ(metric(after, "slip_consumer_redeliveries_total", reader), 0);
  EXPECT_EQ(metric(after, "slip_consumer_waiting_pulls", reader), 0);

  // The same figures in the stream's JSON, in the list and by name.
  for (const char* path : {"/api/streams/orders", "/api/streams"}) {
    auto v = get_json(http, path);
    const auto& o = v.is_array() ? v.as_array().at(0).as_object() : v.as_object();
    const auto& consumers = o.at("consumers").as_array();
    ASSERT_EQ(consumers.size(), 1u) << path;
    const auto& c = consumers[0].as_object();
    EXPECT_EQ(c.at("name").as_string(), "READER");
    EXPECT_TRUE(c.at("durable").as_bool());
    EXPECT_EQ(c.at("ack_policy").as_string(), "explicit");
    EXPECT_EQ(u64(c.at("num_pending")), static_cast<std::uint64_t>(kMessages - 4));
    EXPECT_EQ(u64(c.at("ack_floor")), 4u);
    EXPECT_EQ(u64(c.at("deliveries")), 4u);
    EXPECT_GE(c.at("rates").at("deliveries_per_s").to_number<double>(), 0.0);
    EXPECT_GE(c.at("rates").at("redeliveries_per_s").to_number<double>(), 0.0);
  }

  // Removed: gone from both.
  ASSERT_EQ(test::run_program({SLIP_PATH, "-s", s, "consumer", "rm", "orders", "READER"}, &out), 0) << out;
  auto gone = scrape(http);
  EXPECT_EQ(metric(gone, "slip_consumers"), 0);
  EXPECT_TRUE(get_json(http, "/api/streams/orders").at("consumers").as_array().empty());
}

TEST(Metrics, StreamAckTimingOffKeepsTheCounters) {
  TempDir data;
  test::SlipdProcess slipd({"--http-listen", "127.0.0.1:0", "--data-dir", data.path(), "--metrics", "off"});
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  const std::string http = slipd.listener("http");
  StreamPeer peer(slipd.address(), "stream-pub");
  ASSERT_TRUE(peer.wait_ready());
  ASSERT_TRUE(peer.add_stream("s", "s.>").is_ok());
  for (const char* id : {"1", "2", "3"}) ASSERT_TRUE(peer.publish("s.x", "v", id).is_ok());
  test::PromScrape after;
  ASSERT_TRUE(test::eventually([&] {
    after = scrape(http);
    return after.value("slip_stream_acked_publishes_total", {{"stream", "s"}}) == 3;
  }));
  EXPECT_EQ(metric(after, "slip_stream_ack_latency_seconds_count", {{"stream", "s"}}), 0);
}

TEST(Http, ConnectionDetailsAndUnknownIds) {
  test::SlipdProcess slipd({"--http-listen", "127.0.0.1:0"});
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  const std::string http = slipd.listener("http");
  Peer sub(slipd.address(), "detail-sub");
  ASSERT_TRUE(sub.wait_ready());
  sub.subscribe("detail.>");
  auto conns = get_json(http, "/api/connections").as_array();
  ASSERT_EQ(conns.size(), 1u);
  const std::uint64_t id = u64(conns[0].at("id"));
  auto c = get_json(http, cat("/api/connections/", std::to_string(id))).as_object();
  EXPECT_EQ(u64(c.at("id")), id);
  EXPECT_EQ(c.at("name").as_string(), "detail-sub");
  EXPECT_EQ(u64(c.at("subscriptions")), c.at("subs").as_array().size());
  const auto& subs = c.at("subs").as_array();
  EXPECT_TRUE(std::any_of(subs.begin(), subs.end(), [](const auto& sub) { return sub.at("subject") == "detail.>"; }))
      << boost::json::serialize(c);
  for (const char* bad : {"/api/connections/999999", "/api/connections/x1", "/api/streams/any"}) {
    auto r = test::http_get(http, bad);
    ASSERT_TRUE(r.is_ok());
    EXPECT_EQ(r->status, 404) << bad;
    EXPECT_EQ(r->header("Content-Type"), "application/json") << bad;
    EXPECT_NE(r->body.find("\"error\""), std::string::npos) << r->body;
  }
}

// slipd serves no RPC methods, so the method table is driven in this process: an RPC server with
// a MetricsInterceptor, and slipd's own observability (the same code as the daemon's) serving it.
TEST(Metrics, RpcMethodTableServedFromAnRpcServersInterceptor) {
  auto metrics = std::make_shared<rpc::MetricsInterceptor>();
  rpc::Service svc("test.Svc");
  svc.add_method({"Echo", rpc::MethodKind::kUnary,
                  [](const rpc::ServerCallPtr& c, std::string req) { c->finish(Status(), std::move(req)); }, {}, {}});
  svc.add_method({"Fail", rpc::MethodKind::kUnary,
                  [](const rpc::ServerCallPtr& c, std::string) { c->finish(not_found("no such key")); }, {}, {}});
  rpc::Server rpc_server(rpc::ServerOptions{});
  rpc_server.add_service(svc);
  rpc_server.add_interceptor(metrics);
  ASSERT_TRUE(rpc_server.start().is_ok());
  {
    rpc::Channel channel(rpc_server.address());
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(rpc::call_unary(channel, "/test.Svc/Echo", "x").is_ok());
    EXPECT_EQ(rpc::call_unary(channel, "/test.Svc/Fail", "x").status().code(), StatusCode::kNotFound);
  }

  slipd::ServerOptions so;
  so.listen = "127.0.0.1:0";
  so.threads = 1;
  slipd::Server server(so);
  ASSERT_TRUE(server.start().is_ok());
  slipd::Observability observability(server);
  observability.add_rpc_metrics(metrics);
  ASSERT_TRUE(observability.start_http("127.0.0.1:0").is_ok());
  const std::string http = observability.http_address();

  boost::json::array methods;
  ASSERT_TRUE(test::eventually([&] {
    methods = get_json(http, "/api/rpc").as_array();
    std::uint64_t calls = 0;
    for (const auto& m : methods) calls += u64(m.at("calls"));
    return calls == 4;
  }));
  ASSERT_EQ(methods.size(), 2u);
  EXPECT_EQ(methods[0].at("method").as_string(), "/test.Svc/Echo");
  EXPECT_EQ(u64(methods[0].at("calls")), 3u);
  EXPECT_EQ(u64(methods[0].at("errors")), 0u);
  EXPECT_EQ(u64(methods[0].at("by_code").at("OK")), 3u);
  EXPECT_EQ(u64(methods[0].at("latency").at("since_start").at("count")), 3u);
  EXPECT_EQ(methods[1].at("method").as_string(), "/test.Svc/Fail");
  EXPECT_EQ(u64(methods[1].at("errors")), 1u);
  EXPECT_EQ(u64(methods[1].at("by_code").at("NOT_FOUND")), 1u);
  const auto scraped = scrape(http);
  EXPECT_EQ(metric(scraped, "slip_rpc_server_calls_total", {{"method", "/test.Svc/Echo"}, {"code", "OK"}}), 3);
  EXPECT_EQ(metric(scraped, "slip_rpc_server_latency_seconds_count", {{"method", "/test.Svc/Fail"}}), 1);
  // The dashboard's snapshot carries the same table.
  std::string event;
  ASSERT_TRUE(test::eventually([&] {
    auto e = test::first_event(http, "/api/events");
    if (e.is_ok()) event = *e;
    return e.is_ok() && event.find("\"method\":\"/test.Svc/Fail\"") != std::string::npos;
  })) << event;
  observability.stop();
  server.shutdown();
  rpc_server.shutdown();
}

TEST(SlipStats, OncePrintsTheFigures) {
  test::SlipdProcess slipd({"--http-listen", "127.0.0.1:0"});
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  const std::string http = slipd.listener("http");
  Peer pub(slipd.address(), "stats-pub");
  ASSERT_TRUE(pub.wait_ready());
  pub.run([&] {
    for (int i = 0; i < 250; ++i) ASSERT_TRUE(pub.client().publish("s", Slice::copy_of("z")).is_ok());
  });
  pub.sync();
  std::string out;
  const int rc = test::run_program({SLIP_PATH, "stats", "--once", "--server-http", http}, &out);
  EXPECT_EQ(rc, 0) << out;
  for (const char* want : {"msgs/s in", "msgs/s out", "connections", "subscriptions", "slow consumers", "p50", "p99",
                           "stats-pub", "251" /* its PUBs: 250 and the sync request */,
                           "(no consumers: there are no streams)", "UDP: not enabled"}) {
    EXPECT_NE(out.find(want), std::string::npos) << "missing '" << want << "' in:\n" << out;
  }
  std::string bad;
  EXPECT_NE(test::run_program({SLIP_PATH, "stats", "--once", "--server-http", "127.0.0.1:1"}, &bad), 0) << bad;
}

TEST(Trace, SlipPubTraceSendsATraceparentThatReachesSubscribersUnchanged) {
  test::SlipdProcess slipd;
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  Peer sub(slipd.address(), "trace-sub");
  ASSERT_TRUE(sub.wait_ready());
  sub.subscribe("traced.>");
  std::string out;
  ASSERT_EQ(test::run_program({SLIP_PATH, "--server", slipd.address(), "pub", "--trace", "traced.x", "hi"}, &out), 0) << out;
  const auto at = out.find("traceparent ");
  ASSERT_NE(at, std::string::npos) << out;
  const std::string sent = out.substr(at + 12, 55);
  ASSERT_TRUE(sub.wait_received(1));
  EXPECT_EQ(sub.traceparent(), sent);
}

// --trace-file: one span per sampled traced message, as a JSON line naming the publisher's span
// as its parent; untraced messages write nothing.
TEST(Trace, TraceFileGetsASpanPerTracedMessage) {
  char dir_tmpl[] = "/tmp/slip-spans-XXXXXX";
  ASSERT_NE(mkdtemp(dir_tmpl), nullptr);
  const std::string path = std::string(dir_tmpl) + "/spans.jsonl";
  {
    test::SlipdProcess slipd({"--trace-file", path});
    ASSERT_TRUE(slipd.ok()) << slipd.log();
    std::string out;
    ASSERT_EQ(test::run_program({SLIP_PATH, "--server", slipd.address(), "pub", "plain.x", "hi"}, &out), 0) << out;
    ASSERT_EQ(test::run_program({SLIP_PATH, "--server", slipd.address(), "pub", "--trace", "traced.x", "hi"}, &out), 0)
        << out;
    const auto at = out.find("traceparent 00-");
    ASSERT_NE(at, std::string::npos) << out;
    const std::string trace_id = out.substr(at + 15, 32);
    const std::string parent_id = out.substr(at + 48, 16);
    std::string text;
    for (int i = 0; i < 3000 && text.find('\n') == std::string::npos; ++i) {
      std::ifstream f(path);
      text.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
      if (text.find('\n') == std::string::npos) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;
    boost::json::object span = boost::json::parse(text).as_object();
    EXPECT_EQ(span["trace_id"].as_string(), trace_id) << text;
    EXPECT_EQ(span["parent_span_id"].as_string(), parent_id) << text;
    EXPECT_NE(span["span_id"].as_string(), parent_id) << text;
    EXPECT_EQ(span["span_id"].as_string().size(), 16u);
    EXPECT_EQ(span["name"].as_string(), "publish traced.x");
    EXPECT_EQ(span["kind"].as_string(), "broker");
    EXPECT_GE(span["duration_ns"].as_int64(), 0);
    EXPECT_EQ(span["attributes"].as_object()["subject"].as_string(), "traced.x");
  }
  std::filesystem::remove_all(dir_tmpl);
}

TEST(Metrics, UdpSessionsAndPacketsAreCounted) {
  TempDir data;
  test::SlipdProcess slipd(
      {"--http-listen", "127.0.0.1:0", "--udp-listen", "127.0.0.1:0", "--data-dir", data.path()});
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  const std::string http = slipd.listener("http");
  auto before = scrape(http);
  EXPECT_EQ(metric(before, "slip_udp_sessions"), 0);
  EXPECT_EQ(metric(before, "slip_udp_accepted_total"), 0);
  EXPECT_EQ(metric(before, "slip_udp_packets_received_total"), 0);
  for (const char* name : {"slip_udp_packets_sent_total", "slip_udp_packets_received_total", "slip_udp_packets_lost_total",
                           "slip_udp_packets_retransmitted_total", "slip_udp_packets_rejected_total",
                           "slip_udp_packets_duplicate_total", "slip_udp_bytes_received_total"}) {
    EXPECT_EQ(before.types.at(name), "counter") << name;
  }
  EXPECT_EQ(before.types.at("slip_udp_sessions"), "gauge");

  const std::string url = "udp://" + slipd.listener("udp");
  const std::string key = slipd.listener("udp-key");
  auto dial = [url, key](session::ClientOptions& o) {
    transport::udp::UdpOptions u;
    u.server_key = *transport::udp::parse_public_key(key);
    o.dial = *session::dialer_for(url, {}, u);
  };
  constexpr int kMessages = 200;
  const std::string payload(100, 'u');
  double received_then = 0;
  {
    StreamPeer sub(url, "udp-sub", dial);
    StreamPeer pub(url, "udp-pub", dial);
    ASSERT_TRUE(sub.wait_ready());
    ASSERT_TRUE(pub.wait_ready());
    std::atomic<int> got{0};
    sub.run([&] { (void)sub.client().subscribe("udp.x", "", [&](const Message&) { ++got; }); });
    sub.sync();
    pub.run([&] {
      for (int i = 0; i < kMessages; ++i) ASSERT_TRUE(pub.client().publish("udp.x", Slice::copy_of(payload)).is_ok());
    });
    ASSERT_TRUE(test::eventually([&] { return got.load() == kMessages; })) << got.load();
    auto during = scrape(http);
    EXPECT_EQ(metric(during, "slip_udp_sessions"), 2);
    EXPECT_EQ(metric(during, "slip_udp_accepted_total"), 2);
    EXPECT_GT(metric(during, "slip_udp_packets_received_total"), 0);
    EXPECT_GT(metric(during, "slip_udp_packets_sent_total"), 0);
    // Every message crossed the server twice, sealed: in from the publisher, out to the subscriber.
    EXPECT_GE(metric(during, "slip_udp_bytes_received_total"), kMessages * 100.0);
    EXPECT_GE(metric(during, "slip_udp_bytes_sent_total"), kMessages * 100.0);
    EXPECT_EQ(metric(during, "slip_udp_packets_rejected_total"), 0);
    EXPECT_GT(metric(during, "slip_udp_socket_datagrams_received_total"), 0);
    // Loopback loses nothing: FEC (offered by slipd, not by these clients) never engaged.
    EXPECT_EQ(metric(during, "slip_udp_fec_connections_total"), 0);
    EXPECT_EQ(metric(during, "slip_udp_fec_recovered_total"), 0);
    // Path MTU discovery raises both sessions above 1200 bytes: to 8972, the default ceiling on
    // loopback (a 9000-byte MTU's UDP payload; loopback's own MTU is 64 KiB).
    EXPECT_TRUE(test::eventually([&] {
      auto s = scrape(http);
      return s.value("slip_udp_max_packet_size_bytes", {{"stat", "min"}}) == 8972.0 &&
             s.value("slip_udp_mtu_probes_total", {{"result", "acked"}}) >= 2.0;
    }));
    auto probed = scrape(http);
    EXPECT_EQ(metric(probed, "slip_udp_max_packet_size_bytes", {{"stat", "max"}}), 8972);
    EXPECT_GE(metric(probed, "slip_udp_mtu_probes_total", {{"result", "sent"}}), 2);
    EXPECT_EQ(metric(probed, "slip_udp_mtu_probes_total", {{"result", "lost"}}), 0);
    EXPECT_EQ(metric(probed, "slip_udp_mtu_black_holes_total"), 0);
    EXPECT_EQ(probed.types.at("slip_udp_max_packet_size_bytes"), "gauge");
    received_then = metric(during, "slip_udp_packets_received_total");
  }
  // The sessions end; what they counted stays in the totals.
  test::PromScrape after;
  ASSERT_TRUE(test::eventually([&] {
    after = scrape(http);
    return after.value("slip_udp_sessions") == 0;
  }));
  EXPECT_GE(metric(after, "slip_udp_packets_received_total"), received_then);
  EXPECT_EQ(metric(after, "slip_udp_accepted_total"), 2);

  // /api/udp: the same figures as JSON (nothing moves once the sessions are gone).
  const auto udp = get_json(http, "/api/udp").as_object();
  EXPECT_TRUE(udp.at("enabled").as_bool());
  EXPECT_EQ(udp.at("address").as_string(), slipd.listener("udp"));
  EXPECT_EQ(u64(udp.at("sessions")), 0u);
  EXPECT_EQ(u64(udp.at("accepted")), 2u);
  const auto again = scrape(http);
  EXPECT_EQ(static_cast<double>(u64(udp.at("packets_received"))), metric(again, "slip_udp_packets_received_total"));
  EXPECT_EQ(static_cast<double>(u64(udp.at("packets_sent"))), metric(again, "slip_udp_packets_sent_total"));
  EXPECT_EQ(static_cast<double>(u64(udp.at("bytes_received"))), metric(again, "slip_udp_bytes_received_total"));
  EXPECT_EQ(static_cast<double>(u64(udp.at("bytes_sent"))), metric(again, "slip_udp_bytes_sent_total"));
  EXPECT_EQ(static_cast<double>(u64(udp.at("packets_lost"))), metric(again, "slip_udp_packets_lost_total"));
  EXPECT_EQ(u64(udp.at("packets_rejected")), 0u);
  EXPECT_GE(u64(udp.at("bytes_received")), kMessages * 100u);
  EXPECT_EQ(u64(udp.at("fec").at("connections")), 0u);
  EXPECT_EQ(u64(udp.at("dropped").at("malformed")), 0u);
  EXPECT_GT(u64(udp.at("socket").at("datagrams_received")), 0u);
  for (const char* rate : {"packets_sent_per_s", "packets_received_per_s", "bytes_sent_per_s", "bytes_received_per_s",
                           "packets_lost_per_s", "packets_retransmitted_per_s", "fec_recovered_per_s"}) {
    EXPECT_GE(udp.at("rates").at(rate).to_number<double>(), 0.0) << rate;
  }
  // The dashboard's snapshot carries the same block.
  auto event = test::first_event(http, "/api/events");
  ASSERT_TRUE(event.is_ok()) << event.status().to_string();
  auto snapshot = boost::json::parse(*event);
  EXPECT_TRUE(snapshot.at("udp").at("enabled").as_bool()) << *event;
  EXPECT_EQ(u64(snapshot.at("udp").at("accepted")), 2u);
}

// A number printed after `label` in `text` ("packets in 123": label "packets in "), or -1.
long long figure_after(const std::string& text, const std::string& label) {
  const auto at = text.find(label);
  if (at == std::string::npos) return -1;
  const char* p = text.c_str() + at + label.size();
  if (*p < '0' || *p > '9') return -1;
  return std::strtoll(p, nullptr, 10);
}

// The whitespace-separated fields of the first line of `text` whose first two are `a` and `b`.
std::vector<std::string> line_fields(const std::string& text, const std::string& a, const std::string& b) {
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream words(line);
    std::vector<std::string> fields;
    for (std::string w; words >> w;) fields.push_back(w);
    if (fields.size() >= 2 && fields[0] == a && fields[1] == b) return fields;
  }
  return {};
}

// slipd as a real process with a stream, a durable consumer and a UDP listener (FEC on), all
// driven by separate `slip` processes over udp://; then `slip stats --once` shows the consumer's
// figures and the UDP section, moved by that traffic.
TEST(SlipStats, OnceShowsConsumersAndUdp) {
  TempDir data;
  test::SlipdProcess slipd({"--http-listen", "127.0.0.1:0", "--data-dir", data.path(), "--udp-listen", "127.0.0.1:0",
                            "--udp-fec", "4,2"});
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  const std::string http = slipd.listener("http");
  const std::vector<std::string> over_udp = {SLIP_PATH, "-s", cat("udp://", slipd.listener("udp")), "--server-key",
                                             slipd.listener("udp-key"), "--udp-fec", "4,2"};
  auto slip = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = over_udp;
    argv.insert(argv.end(), args.begin(), args.end());
    std::string out;
    const int rc = test::run_program(argv, &out);
    EXPECT_EQ(rc, 0) << args[0] << ": " << out;
    return rc == 0;
  };
  constexpr int kMessages = 20;
  ASSERT_TRUE(slip({"stream", "add", "orders", "--subjects", "orders.>"}));
  ASSERT_TRUE(slip({"pub", "--ack", "orders.new", "order", "-n", std::to_string(kMessages)}));
  ASSERT_TRUE(slip({"consumer", "add", "orders", "READER", "--ack-wait", "1m"}));
  ASSERT_TRUE(slip({"consume", "orders", "--durable", "READER", "--count", "5"}));
  ASSERT_TRUE(test::eventually([&] {
    auto consumers = get_json(http, "/api/streams/orders").at("consumers").as_array();
    return consumers.size() == 1 && u64(consumers[0].at("ack_floor")) == 5;
  }));

  std::string out;
  ASSERT_EQ(test::run_program({SLIP_PATH, "stats", "--once", "--server-http", http}, &out), 0) << out;
  // STREAM CONSUMER ACK PENDING ACK-PEND REDELIV'D WAITING DELIV-SEQ ACK-FLOOR DELIVERED/S DELIVERED REDELIV
  EXPECT_NE(out.find("CONSUMER"), std::string::npos) << out;
  const auto row = line_fields(out, "orders", "READER");
  ASSERT_EQ(row.size(), 12u) << out;
  EXPECT_EQ(row[2], "explicit") << out;
  EXPECT_EQ(row[3], std::to_string(kMessages - 5)) << "pending:\n" << out;
  EXPECT_EQ(row[4], "0") << "ack pending:\n" << out;
  EXPECT_EQ(row[5], "0") << "redelivered:\n" << out;
  EXPECT_EQ(row[6], "0") << "waiting pulls:\n" << out;
  EXPECT_EQ(row[7], "5") << "delivered seq:\n" << out;
  EXPECT_EQ(row[8], "5") << "ack floor:\n" << out;
  EXPECT_EQ(row[10], "5") << "deliveries:\n" << out;
  EXPECT_EQ(row[11], "0") << "redeliveries:\n" << out;

  // UDP: four slip processes, each one session with FEC on both ends.
  EXPECT_NE(out.find(cat("UDP ", slipd.listener("udp"))), std::string::npos) << out;
  EXPECT_EQ(out.find("UDP: not enabled"), std::string::npos) << out;
  EXPECT_EQ(figure_after(out, "accepted "), 4) << out;
  ASSERT_NE(out.find("  packets in "), std::string::npos) << out;
  const std::string packets_line = out.substr(out.find("  packets in "));
  EXPECT_GT(figure_after(packets_line, "packets in "), 0) << out;
  EXPECT_GT(figure_after(packets_line, "out "), 0) << out;
  // At least the published payloads came in (sealed, with headers: more).
  EXPECT_GT(figure_after(packets_line, "bytes in "), kMessages * 5) << out;
  EXPECT_EQ(figure_after(out, "rejected "), 0) << out;
  EXPECT_EQ(figure_after(out, "fec connections "), 4) << out;
  EXPECT_GT(figure_after(out, "repairs sent "), 0) << out;
  EXPECT_GT(figure_after(out, "repairs received "), 0) << out;
}

}  // namespace
}  // namespace slip::broker
