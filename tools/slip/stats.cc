#include "stats.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <boost/json/src.hpp>  // header-only Boost.JSON, compiled into slip once, here
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <thread>

#include "slipstream/status.h"
#include "transport/address.h"

namespace slip::cli {

namespace net = boost::asio;
namespace bhttp = boost::beast::http;
namespace json = boost::json;

namespace {

// One GET with a bounded wait; the parsed JSON body, or why not.
Result<json::value> fetch(const transport::HostPort& hp, const std::string& path) {
  net::io_context ctx;
  boost::beast::tcp_stream stream(ctx);
  boost::system::error_code ec;
  net::ip::tcp::resolver resolver(ctx);
  auto endpoints = resolver.resolve(hp.host, std::to_string(hp.port), ec);
  if (ec) return invalid_argument("cannot resolve " + hp.host + ": " + ec.message());
  stream.expires_after(std::chrono::seconds(5));
  bool done = false;
  Status failure;
  json::value result;
  bhttp::request<bhttp::empty_body> req{bhttp::verb::get, path, 11};
  req.set(bhttp::field::host, hp.host);
  req.set(bhttp::field::user_agent, "slip stats");
  boost::beast::flat_buffer buf;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(64u << 20);
  // Asynchronous so that the stream's timeout applies to every step.
  stream.async_connect(endpoints, [&](boost::system::error_code e, const net::ip::tcp::endpoint&) {
    if (e) {
      failure = disconnected("cannot connect to " + hp.host + ":" + std::to_string(hp.port) + ": " + e.message());
      return;
    }
    bhttp::async_write(stream, req, [&](boost::system::error_code e2, std::size_t) {
      if (e2) {
        failure = disconnected("sending the request: " + e2.message());
        return;
      }
      bhttp::async_read(stream, buf, parser, [&](boost::system::error_code e3, std::size_t) {
        if (e3) {
          failure = disconnected("reading the reply: " + e3.message());
          return;
        }
        done = true;
      });
    });
  });
  ctx.run();
  if (!done) return failure.is_ok() ? timed_out("no reply") : failure;
  const auto& res = parser.get();
  if (res.result_int() != 200) {
    return failed_precondition("GET " + path + ": HTTP " + std::to_string(res.result_int()));
  }
  result = json::parse(res.body(), ec);
  if (ec) return corruption("GET " + path + ": not JSON: " + ec.message());
  return result;
}

std::uint64_t u(const json::value& v) {
  if (v.is_uint64()) return v.as_uint64();
  if (v.is_int64()) return static_cast<std::uint64_t>(std::max<std::int64_t>(0, v.as_int64()));
  if (v.is_double()) return static_cast<std::uint64_t>(std::max(0.0, v.as_double()));
  return 0;
}
double d(const json::value& v) {
  if (v.is_double()) return v.as_double();
  if (v.is_uint64()) return static_cast<double>(v.as_uint64());
  if (v.is_int64()) return static_cast<double>(v.as_int64());
  return 0;
}

std::string count(double v) {
  char b[32];
  if (v >= 1e9) {
    std::snprintf(b, sizeof b, "%.2fG", v / 1e9);
  } else if (v >= 1e6) {
    std::snprintf(b, sizeof b, "%.2fM", v / 1e6);
  } else if (v >= 1e4) {
    std::snprintf(b, sizeof b, "%.1fk", v / 1e3);
  } else {
    std::snprintf(b, sizeof b, "%.0f", v);
  }
  return b;
}
std::string bytes(double v) {
  char b[32];
  if (v >= 1024.0 * 1024 * 1024) {
    std::snprintf(b, sizeof b, "%.2f GiB", v / (1024.0 * 1024 * 1024));
  } else if (v >= 1024.0 * 1024) {
    std::snprintf(b, sizeof b, "%.2f MiB", v / (1024.0 * 1024));
  } else if (v >= 1024.0) {
    std::snprintf(b, sizeof b, "%.1f KiB", v / 1024.0);
  } else {
    std::snprintf(b, sizeof b, "%.0f B", v);
  }
  return b;
}
std::string ns(std::uint64_t v) {
  char b[32];
  if (v >= 1'000'000) {
    std::snprintf(b, sizeof b, "%.2fms", static_cast<double>(v) / 1e6);
  } else if (v >= 1000) {
    std::snprintf(b, sizeof b, "%.1fus", static_cast<double>(v) / 1e3);
  } else {
    std::snprintf(b, sizeof b, "%lluns", static_cast<unsigned long long>(v));
  }
  return b;
}
std::string duration(double s) {
  const auto t = static_cast<std::uint64_t>(s);
  char b[48];
  std::snprintf(b, sizeof b, "%llud %02llu:%02llu:%02llu", static_cast<unsigned long long>(t / 86400),
                static_cast<unsigned long long>(t % 86400 / 3600), static_cast<unsigned long long>(t % 3600 / 60),
                static_cast<unsigned long long>(t % 60));
  return b;
}

struct Rates {
  double msgs_in = 0, msgs_out = 0, bytes_in = 0, bytes_out = 0;
};

// Totals of the previous read, for rates between our own two reads.
struct Previous {
  bool have = false;
  double secs = 0;  // since that read
  std::map<std::string, std::pair<double, double>> streams;  // name -> (messages stored, acked)
  std::map<std::string, double> methods;                     // method -> calls
  std::map<std::pair<std::string, std::string>, double> consumers;  // (stream, consumer) -> deliveries
  bool have_udp = false;
  std::map<std::string, double> udp;  // UDP totals by key (packets_sent, ...)
};

std::string str(const json::value& v) { return v.is_string() ? std::string(v.as_string()) : std::string(); }

// A last-second percentile, or "-" when nothing was recorded in that second.
std::string recent(const json::value& latency, const char* key) {
  const auto& h = latency.at("last_second");
  return u(h.at("count")) == 0 ? std::string("-") : ns(u(h.at(key)));
}

double rate_of(const Previous& prev, bool known, double before, double now, double slipd_rate) {
  if (!prev.have || !known) return slipd_rate;  // slipd's own figure for its last second
  return prev.secs > 0 && now >= before ? (now - before) / prev.secs : 0.0;
}

void print_streams(const json::array& streams, const Previous& prev) {
  std::printf("\n%-16s %-20s %10s %11s %10s %9s %9s %7s %9s %9s\n", "STREAM", "SUBJECTS", "MESSAGES", "BYTES",
              "LAST SEQ", "STORED/S", "ACKED/S", "ERRORS", "ACK P50", "ACK P99");
  if (streams.empty()) std::printf("(no streams: create one with slip stream add; slipd needs --data-dir)\n");
  for (const auto& v : streams) {
    const auto& st = v.as_object();
    std::string subjects;
    for (const auto& subject : st.at("subjects").as_array()) {
      if (!subjects.empty()) subjects += ',';
      subjects += str(subject);
    }
    const std::string name = str(st.at("name"));
    auto it = prev.streams.find(name);
    const bool known = it != prev.streams.end();
    const double stored = rate_of(prev, known, known ? it->second.first : 0, d(st.at("messages_stored")),
                                  d(st.at("rates").at("stored_per_s")));
    const double acked = rate_of(prev, known, known ? it->second.second : 0, d(st.at("acked_publishes")),
                                 d(st.at("rates").at("acked_per_s")));
    std::printf("%-16.16s %-20.20s %10llu %11s %10llu %9s %9s %7llu %9s %9s\n", name.c_str(), subjects.c_str(),
                static_cast<unsigned long long>(u(st.at("messages"))), bytes(d(st.at("bytes"))).c_str(),
                static_cast<unsigned long long>(u(st.at("last_seq"))), count(stored).c_str(), count(acked).c_str(),
                static_cast<unsigned long long>(u(st.at("publish_errors"))),
                recent(st.at("ack_latency"), "p50_ns").c_str(), recent(st.at("ack_latency"), "p99_ns").c_str());
  }
}

// A number field of an object, 0 when absent (a server that does not send it).
double num(const json::object& o, const char* key) {
  const json::value* v = o.if_contains(key);
  return v != nullptr ? d(*v) : 0.0;
}
unsigned long long whole(const json::object& o, const char* key) {
  const json::value* v = o.if_contains(key);
  return v != nullptr ? static_cast<unsigned long long>(u(*v)) : 0ull;
}
const json::object& sub_object(const json::object& o, const char* key) {
  static const json::object empty;
  const json::value* v = o.if_contains(key);
  return v != nullptr && v->is_object() ? v->as_object() : empty;
}

void print_consumers(const json::array& streams, const Previous& prev) {
  std::printf("\n%-16s %-16s %-8s %9s %9s %9s %7s %10s %10s %11s %10s %8s\n", "STREAM", "CONSUMER", "ACK", "PENDING",
              "ACK PEND", "REDELIV'D", "WAITING", "DELIV SEQ", "ACK FLOOR", "DELIVERED/S", "DELIVERED", "REDELIV");
  std::size_t shown = 0;
  bool ephemeral = false;
  for (const auto& sv : streams) {
    const auto& st = sv.as_object();
    const json::value* list = st.if_contains("consumers");
    if (list == nullptr || !list->is_array()) continue;
    const std::string stream = str(st.at("name"));
    for (const auto& cv : list->as_array()) {
      const auto& c = cv.as_object();
      const std::string name = str(c.at("name"));
      auto it = prev.consumers.find({stream, name});
      const bool known = it != prev.consumers.end();
      const double delivered = rate_of(prev, known, known ? it->second : 0, num(c, "deliveries"),
                                       num(sub_object(c, "rates"), "deliveries_per_s"));
      std::string ack = str(c.at("ack_policy"));
      if (c.at("durable").is_bool() && !c.at("durable").as_bool()) {
        ack += "*";
        ephemeral = true;
      }
      std::printf("%-16.16s %-16.16s %-8.8s %9llu %9llu %9llu %7llu %10llu %10llu %11s %10llu %8llu\n", stream.c_str(),
                  name.c_str(), ack.c_str(), whole(c, "num_pending"), whole(c, "num_ack_pending"),
                  whole(c, "num_redelivered"), whole(c, "num_waiting"), whole(c, "delivered_seq"),
                  whole(c, "ack_floor"), count(delivered).c_str(), whole(c, "deliveries"), whole(c, "redeliveries"));
      ++shown;
    }
  }
  if (shown == 0) {
    std::printf(streams.empty() ? "(no consumers: there are no streams)\n"
                                : "(no consumers: add one with slip consumer add STREAM NAME, or read with slip consume)\n");
  } else if (ephemeral) {
    std::printf("(ACK with *: an ephemeral consumer)\n");
  }
}

// The UDP listener's figures (/api/udp), or a note that slipd has none.
void print_udp(const json::object& udp, const Previous& prev) {
  const json::value* enabled = udp.if_contains("enabled");
  if (enabled == nullptr || !enabled->is_bool() || !enabled->as_bool()) {
    std::printf("\nUDP: not enabled (slipd --udp-listen HOST:PORT)\n");
    return;
  }
  const json::object& rates = sub_object(udp, "rates");
  auto rate = [&](const char* total, const char* per_s) {
    auto it = prev.udp.find(total);
    return rate_of(prev, prev.have_udp && it != prev.udp.end(), it != prev.udp.end() ? it->second : 0, num(udp, total),
                   num(rates, per_s));
  };
  const json::value* address = udp.if_contains("address");
  std::printf("\nUDP %s   sessions %llu   unconfirmed %llu   accepted %llu   refused %llu\n",
              address != nullptr ? str(*address).c_str() : "", whole(udp, "sessions"), whole(udp, "unconfirmed"),
              whole(udp, "accepted"), whole(udp, "handshakes_refused"));
  std::printf("  packets/s in %9s   out %9s   bytes/s in %11s   out %11s   lost/s %7s   retransmitted/s %7s\n",
              count(rate("packets_received", "packets_received_per_s")).c_str(),
              count(rate("packets_sent", "packets_sent_per_s")).c_str(),
              bytes(rate("bytes_received", "bytes_received_per_s")).c_str(),
              bytes(rate("bytes_sent", "bytes_sent_per_s")).c_str(),
              count(rate("packets_lost", "packets_lost_per_s")).c_str(),
              count(rate("packets_retransmitted", "packets_retransmitted_per_s")).c_str());
  std::printf("  packets in %llu   out %llu   bytes in %llu   out %llu   lost %llu   retransmitted %llu   rejected %llu   "
              "duplicate %llu   probes %llu\n",
              whole(udp, "packets_received"), whole(udp, "packets_sent"), whole(udp, "bytes_received"),
              whole(udp, "bytes_sent"), whole(udp, "packets_lost"), whole(udp, "packets_retransmitted"),
              whole(udp, "packets_rejected"), whole(udp, "packets_duplicate"), whole(udp, "probes_sent"));
  const json::object& fec = sub_object(udp, "fec");
  const json::object& dropped = sub_object(udp, "dropped");
  std::printf("  fec connections %llu   repairs sent %llu   repairs received %llu   recovered %llu   unrecoverable "
              "blocks %llu   dropped datagrams %llu\n",
              whole(fec, "connections"), whole(fec, "repair_sent"), whole(fec, "repair_received"),
              whole(fec, "recovered"), whole(fec, "unrecoverable_blocks"),
              whole(dropped, "unknown_connection") + whole(dropped, "malformed") + whole(dropped, "truncated"));
}

void print_rpc(const json::array& methods, const Previous& prev) {
  std::printf("\n%-40s %9s %10s %8s %9s %9s %9s\n", "RPC METHOD", "CALLS/S", "CALLS", "ERRORS", "P50", "P99", "P99.9");
  if (methods.empty()) std::printf("(no RPC methods served by this process)\n");
  for (const auto& v : methods) {
    const auto& m = v.as_object();
    const std::string name = str(m.at("method"));
    auto it = prev.methods.find(name);
    const bool known = it != prev.methods.end();
    const double calls = rate_of(prev, known, known ? it->second : 0, d(m.at("calls")), d(m.at("rates").at("calls_per_s")));
    std::printf("%-40.40s %9s %10llu %8llu %9s %9s %9s\n", name.c_str(), count(calls).c_str(),
                static_cast<unsigned long long>(u(m.at("calls"))), static_cast<unsigned long long>(u(m.at("errors"))),
                recent(m.at("latency"), "p50_ns").c_str(), recent(m.at("latency"), "p99_ns").c_str(),
                recent(m.at("latency"), "p999_ns").c_str());
  }
}

void print(const std::string& where, const json::object& s, const json::array& conns, const Rates& r, unsigned top,
           const json::array* streams, const json::array* methods, const json::object* udp, const Previous& prev) {
  const auto& totals = s.at("totals");
  std::printf("slipd %s at %s   up %s   loops %llu%s\n", json::value_to<std::string>(s.at("version")).c_str(),
              where.c_str(), duration(d(s.at("uptime_s"))).c_str(), static_cast<unsigned long long>(u(s.at("event_loops"))),
              s.at("draining").as_bool() ? "   DRAINING" : "");
  std::printf("msgs/s in %10s   msgs/s out %10s   bytes/s in %11s   bytes/s out %11s\n", count(r.msgs_in).c_str(),
              count(r.msgs_out).c_str(), bytes(r.bytes_in).c_str(), bytes(r.bytes_out).c_str());
  std::printf("connections %llu (%llu since start)   subscriptions %llu   slow consumers %llu   dropped %llu   "
              "no responders %llu\n",
              static_cast<unsigned long long>(u(s.at("connections"))),
              static_cast<unsigned long long>(u(totals.at("connections"))),
              static_cast<unsigned long long>(u(s.at("subscriptions"))),
              static_cast<unsigned long long>(u(totals.at("slow_consumers"))),
              static_cast<unsigned long long>(u(totals.at("dropped"))),
              static_cast<unsigned long long>(u(totals.at("no_responders"))));
  std::printf("totals: msgs in %llu   msgs out %llu   bytes in %llu   bytes out %llu   handshake failures %llu   "
              "auth failures %llu\n",
              static_cast<unsigned long long>(u(totals.at("msgs_in"))),
              static_cast<unsigned long long>(u(totals.at("msgs_out"))),
              static_cast<unsigned long long>(u(totals.at("bytes_in"))),
              static_cast<unsigned long long>(u(totals.at("bytes_out"))),
              static_cast<unsigned long long>(u(totals.at("handshake_failures"))),
              static_cast<unsigned long long>(u(totals.at("auth_failures"))));
  std::printf("publish routing latency (sampled)     count        p50        p90        p99      p99.9        max\n");
  for (const char* which : {"last_second", "since_start"}) {
    const auto& h = s.at("publish_route_latency").at(which);
    std::printf("  %-34s %7s %10s %10s %10s %10s %10s\n", which, count(d(h.at("count"))).c_str(),
                ns(u(h.at("p50_ns"))).c_str(), ns(u(h.at("p90_ns"))).c_str(), ns(u(h.at("p99_ns"))).c_str(),
                ns(u(h.at("p999_ns"))).c_str(), ns(u(h.at("max_ns"))).c_str());
  }
  // Older servers lack these endpoints: their sections are left out.
  if (streams != nullptr) print_streams(*streams, prev);
  if (streams != nullptr) print_consumers(*streams, prev);
  if (udp != nullptr) print_udp(*udp, prev);
  if (methods != nullptr) print_rpc(*methods, prev);
  std::vector<const json::object*> list;
  for (const auto& c : conns) list.push_back(&c.as_object());
  std::sort(list.begin(), list.end(), [](const json::object* a, const json::object* b) {
    return u(a->at("msgs_in")) + u(a->at("msgs_out")) > u(b->at("msgs_in")) + u(b->at("msgs_out"));
  });
  std::printf("\n%-6s %-8s %-20s %-21s %5s %10s %10s %11s %11s %8s %10s\n", "ID", "PROTO", "NAME", "PEER", "SUBS",
              "MSGS IN", "MSGS OUT", "BYTES IN", "BYTES OUT", "DROPPED", "PENDING");
  std::size_t shown = 0;
  for (const json::object* c : list) {
    if (shown++ == top) break;
    std::printf("%-6llu %-8s %-20.20s %-21.21s %5llu %10llu %10llu %11s %11s %8llu %10s\n",
                static_cast<unsigned long long>(u(c->at("id"))), json::value_to<std::string>(c->at("protocol")).c_str(),
                json::value_to<std::string>(c->at("name")).c_str(), json::value_to<std::string>(c->at("peer")).c_str(),
                static_cast<unsigned long long>(u(c->at("subscriptions"))),
                static_cast<unsigned long long>(u(c->at("msgs_in"))), static_cast<unsigned long long>(u(c->at("msgs_out"))),
                bytes(d(c->at("bytes_in"))).c_str(), bytes(d(c->at("bytes_out"))).c_str(),
                static_cast<unsigned long long>(u(c->at("dropped"))), bytes(d(c->at("pending_bytes"))).c_str());
  }
  if (list.size() > top) std::printf("... and %zu more\n", list.size() - top);
  std::fflush(stdout);
}

}  // namespace

int run_stats(const StatsOptions& o) {
  auto hp = transport::parse_host_port(o.server_http);
  if (!hp.is_ok()) {
    std::fprintf(stderr, "slip stats: %s\n", hp.status().to_string().c_str());
    return 2;
  }
  if (hp->host.empty() || hp->host == "0.0.0.0") hp->host = "127.0.0.1";
  bool have_previous = false;
  json::value previous;
  Previous prev;
  auto previous_at = std::chrono::steady_clock::now();
  for (;;) {
    auto server = fetch(*hp, "/api/server");
    auto conns = server.is_ok() ? fetch(*hp, "/api/connections") : Result<json::value>(server.status());
    if (!server.is_ok() || !conns.is_ok()) {
      const Status& why = server.is_ok() ? conns.status() : server.status();
      if (o.once) {
        std::fprintf(stderr, "slip stats: %s\n", why.to_string().c_str());
        return 1;
      }
      std::printf("\033[H\033[2Jslip stats: %s (retrying)\n", why.to_string().c_str());
      std::fflush(stdout);
      std::this_thread::sleep_for(std::chrono::milliseconds(o.interval_ms));
      continue;
    }
    const auto now = std::chrono::steady_clock::now();
    const auto& s = server->as_object();
    Rates r;
    const auto& rates = s.at("rates");
    if (have_previous) {
      // Between our own two reads: exact for the refresh interval.
      const double secs = std::chrono::duration<double>(now - previous_at).count();
      auto rate = [&](const char* k) {
        const double a = d(previous.at("totals").at(k)), b = d(s.at("totals").at(k));
        return secs > 0 && b >= a ? (b - a) / secs : 0.0;
      };
      r = Rates{rate("msgs_in"), rate("msgs_out"), rate("bytes_in"), rate("bytes_out")};
    } else {
      // slipd's own figure for its last second.
      r = Rates{d(rates.at("msgs_in_per_s")), d(rates.at("msgs_out_per_s")), d(rates.at("bytes_in_per_s")),
                d(rates.at("bytes_out_per_s"))};
    }
    auto streams = fetch(*hp, "/api/streams");
    auto methods = fetch(*hp, "/api/rpc");
    auto udp = fetch(*hp, "/api/udp");
    const json::array* stream_list = streams.is_ok() && streams->is_array() ? &streams->as_array() : nullptr;
    const json::array* method_list = methods.is_ok() && methods->is_array() ? &methods->as_array() : nullptr;
    const json::object* udp_figures = udp.is_ok() && udp->is_object() ? &udp->as_object() : nullptr;
    prev.secs = std::chrono::duration<double>(now - previous_at).count();
    if (!o.once) std::printf("\033[H\033[2J");
    print(o.server_http, s, conns->as_array(), r, o.top, stream_list, method_list, udp_figures, prev);
    if (o.once) return 0;
    prev.have = true;
    prev.streams.clear();
    prev.methods.clear();
    prev.consumers.clear();
    if (stream_list != nullptr) {
      for (const auto& v : *stream_list) {
        const auto& st = v.as_object();
        const std::string name = str(st.at("name"));
        prev.streams[name] = {d(st.at("messages_stored")), d(st.at("acked_publishes"))};
        if (const json::value* list = st.if_contains("consumers"); list != nullptr && list->is_array()) {
          for (const auto& c : list->as_array()) {
            prev.consumers[{name, str(c.at("name"))}] = num(c.as_object(), "deliveries");
          }
        }
      }
    }
    prev.udp.clear();
    prev.have_udp = udp_figures != nullptr;
    if (udp_figures != nullptr) {
      for (const char* k : {"packets_sent", "packets_received", "bytes_sent", "bytes_received", "packets_lost",
                            "packets_retransmitted"}) {
        prev.udp[k] = num(*udp_figures, k);
      }
    }
    if (method_list != nullptr) {
      for (const auto& v : *method_list) prev.methods[str(v.at("method"))] = d(v.at("calls"));
    }
    previous = std::move(*server);
    previous_at = now;
    have_previous = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(o.interval_ms));
  }
}

}  // namespace slip::cli
