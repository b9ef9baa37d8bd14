#include "consumers.h"

#include <boost/asio/steady_timer.hpp>
#include <charconv>
#include <cstdio>
#include <ctime>
#include <memory>

namespace slip::cli {

namespace {

// The CONSUMER_ADD arguments for the options; kInvalidArgument names the bad option.
Result<broker::StreamFields> consumer_args(const ConsumerCliOptions& o) {
  broker::StreamFields args;
  args.reserve(16);  // also keeps g++ 12 -O3 from a false -Warray-bounds on the first emplace
  const std::string_view d = o.deliver;
  if (d == "all" || d == "last" || d == "new") {
    args.emplace_back("deliver", o.deliver);
  } else if (d.substr(0, 4) == "seq:") {
    std::uint64_t n = 0;
    const std::string_view v = d.substr(4);
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (v.empty() || ec != std::errc() || p != v.data() + v.size() || n == 0) {
      return invalid_argument("--deliver: \"" + o.deliver + "\": seq:N needs a sequence >= 1");
    }
    args.emplace_back("deliver", "seq");
    args.emplace_back("start_seq", std::to_string(n));
  } else if (d.substr(0, 5) == "time:") {
    auto ns = parse_rfc3339_ns(d.substr(5));
    if (!ns.is_ok()) return ns.status().with_context("--deliver");
    args.emplace_back("deliver", "time");
    args.emplace_back("start_time_ns", std::to_string(*ns));
  } else {
    return invalid_argument("--deliver: \"" + o.deliver + "\" is not all, last, new, seq:N or time:RFC3339");
  }
  if (o.ack != "explicit" && o.ack != "none") {
    return invalid_argument("--ack: \"" + o.ack + "\" is not explicit or none");
  }
  args.emplace_back("ack", o.ack);
  if (!o.filter.empty()) args.emplace_back("filter", o.filter);
  if (!o.ack_wait.empty()) {
    auto ms = parse_duration_ms(o.ack_wait);
    if (!ms.is_ok()) return ms.status().with_context("--ack-wait");
    if (*ms == 0) return invalid_argument("--ack-wait: must be more than 0");
    args.emplace_back("ack_wait_ms", std::to_string(*ms));
  }
  if (o.max_deliver != 0) args.emplace_back("max_deliver", std::to_string(o.max_deliver));
  if (o.max_ack_pending != 0) args.emplace_back("max_ack_pending", std::to_string(o.max_ack_pending));
  return args;
}

void print_consumer_info(const broker::StreamFields& f) {
  std::printf("consumer %s on stream %s (%s)\n", field(f, "name").c_str(), field(f, "stream").c_str(),
              field(f, "durable") == "true" ? "durable" : "ephemeral");
  std::string deliver = field(f, "deliver");
  if (deliver == "seq") deliver.append(" from ").append(field(f, "start_seq"));
  if (deliver == "time") deliver.append(" from ").append(field(f, "start_time_ns")).append(" ns");
  std::printf("  deliver:          %s\n", deliver.c_str());
  const std::string filter = field(f, "filter");
  std::printf("  filter:           %s\n", filter.empty() ? "(all subjects)" : filter.c_str());
  std::printf("  ack:              %s, wait %s ms, max deliver %s, max ack pending %s\n", field(f, "ack").c_str(),
              field(f, "ack_wait_ms").c_str(), field(f, "max_deliver").c_str(), field(f, "max_ack_pending").c_str());
  std::printf("  delivered seq:    %s\n", field(f, "delivered_seq").c_str());
  std::printf("  ack floor:        %s\n", field(f, "ack_floor").c_str());
  std::printf("  num pending:      %s\n", field(f, "num_pending").c_str());
  std::printf("  num ack pending:  %s\n", field(f, "num_ack_pending").c_str());
  std::printf("  num redelivered:  %s\n", field(f, "num_redelivered").c_str());
  std::printf("  max delivered:    %s\n", field(f, "num_max_delivered").c_str());
  std::printf("  terminated:       %s\n", field(f, "num_terminated").c_str());
  std::printf("  waiting fetches:  %s\n", field(f, "num_waiting").c_str());
  std::printf("  push subscriber:  %s\n", field(f, "push_bound") == "true" ? "yes" : "no");
}

void print_message(const broker::StoredMessage& m) {
  std::printf("[%llu] %.*s (delivery %llu): %.*s\n", static_cast<unsigned long long>(m.sequence),
              static_cast<int>(m.subject.size()), m.subject.data(), static_cast<unsigned long long>(m.deliveries),
              static_cast<int>(m.payload.size()), reinterpret_cast<const char*>(m.payload.data()));
  std::fflush(stdout);
}

// The running `slip consume`: lives on the client's loop.
struct Consume {
  broker::PubSubClient* client = nullptr;
  const ConsumerCliOptions* o = nullptr;
  std::function<void(int)> finish;
  std::string consumer;
  bool explicit_ack = true;
  unsigned printed = 0;
  std::uint64_t wait_ms = 0;  // 0: never give up
  std::unique_ptr<boost::asio::steady_timer> idle;  // push with --wait
  bool done = false;
  unsigned acks_in_flight = 0;

  void end(int rc) {
    if (done) return;
    done = true;
    idle.reset();  // bound to the client's loop, which ends with run()
    finish(rc);
  }
  bool enough() const { return o->count != 0 && printed >= o->count; }

  // Prints and acknowledges one message; false once --count is reached.
  void on_message(const broker::StoredMessage& m, std::vector<std::uint64_t>& to_ack) {
    if (done || enough()) return;
    print_message(m);
    ++printed;
    if (explicit_ack) to_ack.push_back(m.sequence);
  }

  void ack_then(std::vector<std::uint64_t> seqs, std::function<void()> next) {
    if (seqs.empty()) return next();
    ++acks_in_flight;
    Status st = client->ack(o->stream, consumer, seqs, broker::AckKind::kAck, [this, next](Status s) {
      --acks_in_flight;
      if (!s.is_ok()) {
        print_error("consume", s.with_context("ack"));
        return end(1);
      }
      next();
    });
    if (!st.is_ok()) {
      print_error("consume", st);
      end(1);
    }
  }

  void pull() {
    if (done) return;
    auto batch = std::make_shared<std::vector<std::uint64_t>>();
    broker::FetchOptions fo;
    fo.batch = o->count == 0 ? o->batch : std::min<unsigned>(o->batch, o->count - printed);
    fo.expires = std::chrono::milliseconds(wait_ms == 0 ? 5000 : wait_ms);
    Status st = client->fetch(
        o->stream, consumer, fo, [this, batch](const broker::StoredMessage& m) { on_message(m, *batch); },
        [this, batch](Result<std::size_t> r) {
          if (done) return;
          if (!r.is_ok()) {
            print_error("consume", r.status());
            return end(1);
          }
          const bool idle_out = *r == 0 && wait_ms != 0;
          ack_then(std::move(*batch), [this, idle_out] {
            if (enough() || idle_out) return end(0);
            pull();
          });
        });
    if (!st.is_ok()) {
      print_error("consume", st);
      end(1);
    }
  }

  void arm_idle() {
    if (wait_ms == 0 || !idle) return;
    idle->expires_after(std::chrono::milliseconds(wait_ms));
    idle->async_wait([this](const boost::system::error_code& ec) {
      if (!ec) end(0);
    });
  }

  void push() {
    if (wait_ms != 0) {
      idle = std::make_unique<boost::asio::steady_timer>(client->loop().context());
      arm_idle();
    }
    Status st = client->subscribe_consumer(
        o->stream, consumer,
        [this](const broker::StoredMessage& m) {
          std::vector<std::uint64_t> seqs;
          on_message(m, seqs);
          arm_idle();
          ack_then(std::move(seqs), [this] {
            if (enough() && acks_in_flight == 0) end(0);
          });
        },
        [this](Result<broker::StreamFields> r) {
          if (done) return;
          if (!r.is_ok()) {
            print_error("consume", r.status());
            return end(1);
          }
          end(0);
        });
    if (!st.is_ok()) {
      print_error("consume", st);
      end(1);
    }
  }
};

}  // namespace

Result<std::int64_t> parse_rfc3339_ns(std::string_view t) {
  auto bad = [&] {
    std::string m = "\"";
    m.append(t.substr(0, 64)).append("\" is not an RFC 3339 time such as 2026-01-02T15:04:05Z");
    return invalid_argument(m);
  };
  auto num = [&](std::size_t pos, std::size_t len, int& out) {
    if (pos + len > t.size()) return false;
    out = 0;
    for (std::size_t i = pos; i < pos + len; ++i) {
      if (t[i] < '0' || t[i] > '9') return false;
      out = out * 10 + (t[i] - '0');
    }
    return true;
  };
  int Y, M, D, h, m, s;
  if (!num(0, 4, Y) || t.size() < 20 || t[4] != '-' || !num(5, 2, M) || t[7] != '-' || !num(8, 2, D) ||
      (t[10] != 'T' && t[10] != 't' && t[10] != ' ') || !num(11, 2, h) || t[13] != ':' || !num(14, 2, m) ||
      t[16] != ':' || !num(17, 2, s)) {
    return bad();
  }
  if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || s > 60 || Y < 1970) return bad();
  std::size_t pos = 19;
  std::int64_t frac_ns = 0;
  if (pos < t.size() && t[pos] == '.') {
    ++pos;
    std::int64_t scale = 100'000'000;
    const std::size_t start = pos;
    while (pos < t.size() && t[pos] >= '0' && t[pos] <= '9') {
      frac_ns += (t[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == start) return bad();
  }
  std::int64_t offset_s = 0;
  if (pos < t.size() && (t[pos] == 'Z' || t[pos] == 'z') && pos + 1 == t.size()) {
    pos = t.size();
  } else if (pos < t.size() && (t[pos] == '+' || t[pos] == '-') && pos + 6 == t.size() && t[pos + 3] == ':') {
    int oh = 0, om = 0;
    if (!num(pos + 1, 2, oh) || !num(pos + 4, 2, om) || oh > 23 || om > 59) return bad();
    offset_s = (oh * 3600 + om * 60) * (t[pos] == '+' ? 1 : -1);
    pos = t.size();
  } else {
    return bad();
  }
  std::tm tm{};
  tm.tm_year = Y - 1900;
  tm.tm_mon = M - 1;
  tm.tm_mday = D;
  tm.tm_hour = h;
  tm.tm_min = m;
  tm.tm_sec = s;
  const std::int64_t secs = static_cast<std::int64_t>(timegm(&tm)) - offset_s;
  if (secs < 0) return bad();
  return secs * 1'000'000'000 + frac_ns;
}

std::pair<CLI::App*, CLI::App*> add_consumer_commands(CLI::App& app, ConsumerCliOptions& o) {
  auto options = [&o](CLI::App* a) {
    a->add_option("--deliver", o.deliver, "Where to start: all, last, new, seq:N or time:RFC3339")
        ->capture_default_str();
    a->add_option("--filter", o.filter, "Only messages on subjects matching this pattern (within the stream's)");
    a->add_option("--ack", o.ack, "explicit (each message is acknowledged) or none")->capture_default_str();
    a->add_option("--ack-wait", o.ack_wait, "Redeliver a message not acknowledged within this long (default 30s)");
    a->add_option("--max-deliver", o.max_deliver, "Deliver a message at most this many times (0: no limit)");
    a->add_option("--max-ack-pending", o.max_ack_pending,
                  "At most this many messages delivered and not yet acknowledged (default 1000)");
  };
  o.consume = app.add_subcommand("consume", "Print a stream's messages through a consumer, acknowledging each");
  o.consume->add_option("stream", o.stream, "Stream name")->required();
  o.consume->add_option("--durable", o.name,
                        "Use (or create) this durable consumer: its position survives restarts (default: an "
                        "ephemeral consumer, gone when this command exits)");
  o.consume->add_flag("--pull", o.pull, "Fetch batches (the default)");
  o.consume->add_flag("--push", o.push, "Let the server push messages as they arrive");
  options(o.consume);
  o.consume->add_option("--batch", o.batch, "Messages per fetch (--pull)")->capture_default_str()->check(
      CLI::Range(1u, 1000u));
  o.consume->add_option("-n,--count", o.count, "Exit after this many messages (0: never)")->capture_default_str();
  o.consume->add_option("--wait", o.wait, "Exit when no message arrives for this long, e.g. 2s (default: never)");

  auto* consumer = app.add_subcommand("consumer", "Stream consumers: add, ls, info, rm");
  consumer->require_subcommand(1);
  o.add = consumer->add_subcommand("add", "Create a durable consumer on a stream");
  o.add->add_option("stream", o.stream, "Stream name")->required();
  o.add->add_option("name", o.name, "Consumer name (letters, digits, '_', '-')")->required();
  options(o.add);
  o.ls = consumer->add_subcommand("ls", "List a stream's consumers");
  o.ls->add_option("stream", o.stream, "Stream name")->required();
  o.info = consumer->add_subcommand("info", "Show a consumer's configuration and position");
  o.info->add_option("stream", o.stream, "Stream name")->required();
  o.info->add_option("name", o.name, "Consumer name")->required();
  o.rm = consumer->add_subcommand("rm", "Delete a consumer");
  o.rm->add_option("stream", o.stream, "Stream name")->required();
  o.rm->add_option("name", o.name, "Consumer name")->required();
  return {o.consume, consumer};
}

int run_consumer(const Common& c, const ConsumerCliOptions& o, const PubSubRunner& run) {
  if (o.add->parsed()) {
    auto args = consumer_args(o);
    if (!args.is_ok()) {
      print_error("consumer add", args.status());
      return 2;
    }
    broker::StreamFields full;
    full.emplace_back("stream", o.stream);
    full.emplace_back("name", o.name);
    full.emplace_back("durable", "true");
    for (auto& kv : *args) full.push_back(std::move(kv));
    return run_stream_request(c, run, "consumer add", wire::StreamOp::kConsumerAdd, full,
                              [](const broker::StreamFields& f) {
                                std::printf("created ");
                                print_consumer_info(f);
                              });
  }
  if (o.ls->parsed()) {
    return run_stream_request(c, run, "consumer ls", wire::StreamOp::kConsumerList, {{"stream", o.stream}},
                              [&](const broker::StreamFields& f) {
                                const std::string names = field(f, "names");
                                if (names.empty()) {
                                  std::printf("no consumers on stream %s\n", o.stream.c_str());
                                  return;
                                }
                                std::size_t start = 0;
                                while (true) {
                                  const std::size_t comma = names.find(',', start);
                                  std::printf("%s\n", names.substr(start, comma - start).c_str());
                                  if (comma == std::string::npos) break;
                                  start = comma + 1;
                                }
                              });
  }
  if (o.info->parsed()) {
    return run_stream_request(c, run, "consumer info", wire::StreamOp::kConsumerInfo,
                              {{"stream", o.stream}, {"name", o.name}}, print_consumer_info);
  }
  return run_stream_request(c, run, "consumer rm", wire::StreamOp::kConsumerDelete,
                            {{"stream", o.stream}, {"name", o.name}}, [&](const broker::StreamFields&) {
                              std::printf("deleted consumer %s of stream %s\n", o.name.c_str(), o.stream.c_str());
                            });
}

int run_consume(const Common& c, const ConsumerCliOptions& o, const PubSubRunner& run) {
  if (o.pull && o.push) {
    print_error("consume", invalid_argument("--pull and --push exclude each other"));
    return 2;
  }
  auto args = consumer_args(o);
  if (!args.is_ok()) {
    print_error("consume", args.status());
    return 2;
  }
  std::uint64_t wait_ms = 0;
  if (!o.wait.empty()) {
    auto ms = parse_duration_ms(o.wait);
    if (!ms.is_ok() || *ms == 0) {
      print_error("consume",
                  ms.is_ok() ? invalid_argument("--wait: must be more than 0") : ms.status().with_context("--wait"));
      return 2;
    }
    wait_ms = *ms;
  }
  if (!o.name.empty()) {
    broker::StreamFields full;
    full.emplace_back("name", o.name);
    full.emplace_back("durable", "true");
    for (auto& kv : *args) full.push_back(std::move(kv));
    *args = std::move(full);
  }
  Consume state;
  state.o = &o;
  state.explicit_ack = o.ack == "explicit";
  state.wait_ms = wait_ms;
  // run() returns only when the command is done: the state and the steps live in this frame.
  std::function<void(const std::string&, bool)> start = [&](const std::string& consumer, bool explicit_ack) {
    state.consumer = consumer;
    state.explicit_ack = explicit_ack;
    if (o.push) {
      state.push();
    } else {
      state.pull();
    }
  };
  std::function<void()> create = [&] {
    Status st = state.client->add_consumer(o.stream, *args, [&](Result<broker::StreamFields> r) {
      if (!r.is_ok()) {
        print_error("consume", r.status());
        return state.end(1);
      }
      start(field(*r, "name"), field(*r, "ack") == "explicit");
    });
    if (!st.is_ok()) {
      print_error("consume", st);
      state.end(1);
    }
  };
  const int rc = run(c, "consume", false, [&](broker::PubSubClient& client, std::function<void(int)> finish) {
    state.client = &client;
    state.finish = finish;
    if (o.name.empty()) return create();
    // A durable consumer that exists is used as it is; otherwise it is created from the options.
    Status st = client.stream_request(
        wire::StreamOp::kConsumerInfo, {{"stream", o.stream}, {"name", o.name}},
        [&](Result<broker::StreamFields> r) {
          if (r.is_ok()) return start(o.name, field(*r, "ack") == "explicit");
          if (r.status().code() == StatusCode::kNotFound &&
              r.status().message().find("no consumer") != std::string_view::npos) {
            return create();
          }
          print_error("consume", r.status());
          state.end(1);
        });
    if (!st.is_ok()) {
      print_error("consume", st);
      state.end(1);
    }
  });
  // The connection closed under a push with --wait: the timer's loop is gone, so the timer must
  // not touch it again.
  if (state.idle) (void)state.idle.release();
  return rc;
}

}  // namespace slip::cli
