#include "streams.h"

#include <charconv>
#include <cstdio>

namespace slip::cli {

void print_error(std::string_view what, const Status& s) {
  std::fprintf(stderr, "slip %.*s: %s\n", static_cast<int>(what.size()), what.data(), s.to_string().c_str());
}

std::string field(const broker::StreamFields& f, std::string_view key) {
  for (const auto& [k, v] : f) {
    if (k == key) return v;
  }
  return {};
}

namespace {


void print_stream_info(const broker::StreamFields& f) {
  std::printf("stream %s\n", field(f, "name").c_str());
  std::printf("  subjects:   %s\n", field(f, "subjects").c_str());
  std::printf("  messages:   %s\n", field(f, "messages").c_str());
  std::printf("  bytes:      %s\n", field(f, "bytes").c_str());
  std::printf("  first seq:  %s\n", field(f, "first_seq").c_str());
  std::printf("  last seq:   %s\n", field(f, "last_seq").c_str());
  std::printf("  consumers:  %s\n", field(f, "consumers").c_str());
  std::printf("  limits:     max_msgs %s, max_bytes %s, max_age_ms %s, discard %s\n", field(f, "max_msgs").c_str(),
              field(f, "max_bytes").c_str(), field(f, "max_age_ms").c_str(), field(f, "discard").c_str());
  std::printf("  fsync:      %s\n", field(f, "fsync").c_str());
  std::printf("  dedup:      %s ms\n", field(f, "dedup_window_ms").c_str());
}

}  // namespace

int run_stream_request(const Common& c, const PubSubRunner& run, std::string_view what, wire::StreamOp op,
                       broker::StreamFields args, std::function<void(const broker::StreamFields&)> print,
                       broker::StoredMessageHandler on_msg) {
  return run(c, what, false, [&, args](broker::PubSubClient& client, std::function<void(int)> finish) {
    Status st = client.stream_request(op, args, [&, finish](Result<broker::StreamFields> r) {
      if (!r.is_ok()) {
        print_error(what, r.status());
        finish(1);
        return;
      }
      print(*r);
      finish(0);
    }, on_msg);
    if (!st.is_ok()) {
      print_error(what, st);
      finish(1);
    }
  });
}

Result<std::uint64_t> parse_duration_ms(std::string_view text) {
  std::uint64_t n = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  const std::string_view unit = text.substr(static_cast<std::size_t>(p - text.data()));
  std::uint64_t mult = 0;
  if (unit == "ms") mult = 1;
  if (unit == "s") mult = 1000;
  if (unit == "m") mult = 60'000;
  if (unit == "h") mult = 3'600'000;
  if (unit == "d") mult = 86'400'000;
  if (ec != std::errc() || p == text.data() || mult == 0 || n > UINT64_MAX / mult / 1'000'000) {
    std::string m = "\"";
    m.append(text).append("\" is not a duration such as 500ms, 90s, 10m, 24h or 7d");
    return invalid_argument(m);
  }
  return n * mult;
}

CLI::App* add_stream_commands(CLI::App& app, StreamCliOptions& o) {
  auto* stream = app.add_subcommand("stream", "Persistent streams: add, ls, info, rm, read");
  stream->require_subcommand(1);
  o.add = stream->add_subcommand("add", "Create a stream that stores the messages published on its subjects");
  o.add->add_option("name", o.name, "Stream name (letters, digits, '_', '-')")->required();
  o.add->add_option("--subjects", o.subjects, "Subject patterns to capture, e.g. 'orders.>'")
      ->required()
      ->delimiter(',');
  o.add->add_option("--max-msgs", o.max_msgs, "Keep at most this many messages (0: no limit)");
  o.add->add_option("--max-bytes", o.max_bytes, "Keep at most this many bytes (0: no limit)");
  o.add->add_option("--max-age", o.max_age, "Drop messages older than this, e.g. 24h (default: keep)");
  o.add->add_option("--discard", o.discard, "Over a limit: drop old messages, or refuse new ones")
      ->check(CLI::IsMember({"old", "new"}))
      ->capture_default_str();
  o.add->add_option("--fsync", o.fsync, "always (ack after fsync), an interval such as 100ms, or never")
      ->capture_default_str();
  o.add->add_option("--dedup-window", o.dedup_window,
                    "How long a Slip-Msg-Id header de-duplicates publishes, e.g. 2m (0ms: off)");
  o.ls = stream->add_subcommand("ls", "List the streams");
  o.info = stream->add_subcommand("info", "Show a stream's configuration and figures");
  o.info->add_option("name", o.name, "Stream name")->required();
  o.rm = stream->add_subcommand("rm", "Delete a stream and every message in it");
  o.rm->add_option("name", o.name, "Stream name")->required();
  o.read = stream->add_subcommand("read", "Print a stream's stored messages");
  o.read->add_option("name", o.name, "Stream name")->required();
  o.read->add_option("--from-seq", o.from_seq, "First sequence to print")->capture_default_str();
  o.read->add_option("-n,--count", o.count, "Print at most this many (0: up to the end)")->capture_default_str();
  return stream;
}

int run_stream(const Common& c, const StreamCliOptions& o, const PubSubRunner& run) {
  if (o.add->parsed()) {
    broker::StreamFields args = {{"name", o.name}, {"discard", o.discard}, {"fsync", o.fsync}};
    std::string subjects;
    for (const auto& s : o.subjects) {
      if (!subjects.empty()) subjects += ',';
      subjects += s;
    }
    args.emplace_back("subjects", subjects);
    args.emplace_back("max_msgs", std::to_string(o.max_msgs));
    args.emplace_back("max_bytes", std::to_string(o.max_bytes));
    if (!o.max_age.empty()) {
      auto ms = parse_duration_ms(o.max_age);
      if (!ms.is_ok()) {
        print_error("stream add", ms.status().with_context("--max-age"));
        return 2;
      }
      args.emplace_back("max_age_ms", std::to_string(*ms));
    }
    if (!o.dedup_window.empty()) {
      auto ms = parse_duration_ms(o.dedup_window);
      if (!ms.is_ok()) {
        print_error("stream add", ms.status().with_context("--dedup-window"));
        return 2;
      }
      args.emplace_back("dedup_window_ms", std::to_string(*ms));
    }
    return run_stream_request(c, run, "stream add", wire::StreamOp::kAdd, args, [](const broker::StreamFields& f) {
      std::printf("created ");
      print_stream_info(f);
    });
  }
  if (o.ls->parsed()) {
    return run_stream_request(c, run, "stream ls", wire::StreamOp::kList, {}, [](const broker::StreamFields& f) {
      const std::string names = field(f, "names");
      if (names.empty()) {
        std::printf("no streams\n");
        return;
      }
      std::size_t start = 0;
      while (start <= names.size()) {
        const std::size_t comma = names.find(',', start);
        std::printf("%s\n",
                    names.substr(start, comma == std::string::npos ? std::string::npos : comma - start).c_str());
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
    });
  }
  if (o.info->parsed()) {
    return run_stream_request(c, run, "stream info", wire::StreamOp::kInfo, {{"name", o.name}}, print_stream_info);
  }
  if (o.rm->parsed()) {
    return run_stream_request(c, run, "stream rm", wire::StreamOp::kDelete, {{"name", o.name}},
                              [&](const broker::StreamFields&) { std::printf("deleted stream %s\n", o.name.c_str()); });
  }
  // read: one request per batch until the end of the stream or the count. run() returns only
  // when the command is done, so the state lives in this frame.
  unsigned printed_count = 0;
  unsigned* printed = &printed_count;
  std::function<void(std::uint64_t)> next_batch;
  std::function<void(std::uint64_t)>* next = &next_batch;
  return run(c, "stream read", false, [&](broker::PubSubClient& client, std::function<void(int)> finish) {
    *next = [&, printed, next, finish](std::uint64_t from) {
      broker::StreamFields args = {{"name", o.name}, {"from_seq", std::to_string(from)}};
      Status st = client.stream_request(
          wire::StreamOp::kRead, args,
          [&, printed, next, finish, from](Result<broker::StreamFields> r) {
            if (!r.is_ok()) {
              print_error("stream read", r.status());
              finish(1);
              return;
            }
            const std::uint64_t next_seq = std::stoull("0" + field(*r, "next_seq"));
            const std::uint64_t last = std::stoull("0" + field(*r, "last_seq"));
            if ((o.count != 0 && *printed >= o.count) || next_seq > last || next_seq <= from) {
              finish(0);
              return;
            }
            (*next)(next_seq);
          },
          [&, printed](const broker::StoredMessage& m) {
            if (o.count != 0 && *printed >= o.count) return;
            ++*printed;
            std::printf("[%llu] %.*s: %.*s\n", static_cast<unsigned long long>(m.sequence),
                        static_cast<int>(m.subject.size()), m.subject.data(), static_cast<int>(m.payload.size()),
                        reinterpret_cast<const char*>(m.payload.data()));
          });
      if (!st.is_ok()) {
        print_error("stream read", st);
        finish(1);
      }
    };
    (*next)(o.from_seq);
  });
}

int run_publish_acked(const Common& c, const std::string& subject, const std::string& data, unsigned count,
                      const std::string& msg_id, const PubSubRunner& run) {
  return run(c, "pub", false, [&](broker::PubSubClient& client, std::function<void(int)> finish) {
    auto left = std::make_shared<unsigned>(count);
    auto failed = std::make_shared<bool>(false);
    for (unsigned i = 0; i < count; ++i) {
      const std::string id = count == 1 ? msg_id : msg_id + "-" + std::to_string(i + 1);
      const wire::Metadata headers = {{"Slip-Msg-Id", id}};
      Status st = client.publish_acked(subject, Slice::copy_of(data), msg_id.empty() ? nullptr : &headers,
                                       [left, failed, finish, &subject](Result<std::uint64_t> r) {
                                         if (!r.is_ok()) {
                                           print_error("pub", r.status());
                                           *failed = true;
                                         } else {
                                           std::printf("stored on %s at sequence %llu\n", subject.c_str(),
                                                       static_cast<unsigned long long>(*r));
                                         }
                                         if (--*left == 0) finish(*failed ? 1 : 0);
                                       });
      if (!st.is_ok()) {
        print_error("pub", st);
        finish(1);
        return;
      }
    }
  });
}

}  // namespace slip::cli
