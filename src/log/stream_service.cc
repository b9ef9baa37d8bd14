#include "log/stream_service.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <future>

#include "core/clock.h"
#include "core/logging.h"
#include "log/request_args.h"

namespace slip::log {

void send_stream_response(session::Session& s, std::uint64_t request_id, const Status& st,
                          const ResponseFields& fields) {
  wire::StreamResponse r;
  r.request_id = request_id;
  r.code = st.code();
  r.message = st.message();
  for (const auto& [k, v] : fields) r.fields.emplace_back(k, v);
  s.send_frame(r);
}

namespace {

// Posts a response to the session's loop (from another loop), if the session still exists.
void post_response(io::EventLoop& loop, std::weak_ptr<session::Session> ws, std::uint64_t request_id, Status st,
                   ResponseFields fields = {}) {
  loop.post([ws = std::move(ws), request_id, st = std::move(st), fields = std::move(fields)] {
    if (auto s = ws.lock()) send_stream_response(*s, request_id, st, fields);
  });
}

void respond_stopped(const ConsumerRequester& from) {
  post_response(*from.loop, from.session, from.request_id, disconnected("the server is stopping"));
}

Result<std::shared_ptr<Stream>> named_stream(StreamManager& m, const wire::Metadata& args) {
  const std::string_view* name = find_arg(args, "name");
  if (name == nullptr) return invalid_argument("missing argument \"name\"");
  auto s = m.find(*name);
  if (!s) return not_found("no stream \"" + std::string(name->substr(0, 64)) + "\"");
  return s;
}

ResponseFields info_fields(const StreamInfo& i) {
  ResponseFields f = stream_config_fields(i.config);
  f.emplace_back("messages", std::to_string(i.stats.messages));
  f.emplace_back("bytes", std::to_string(i.stats.bytes));
  f.emplace_back("first_seq", std::to_string(i.stats.first_sequence));
  f.emplace_back("last_seq", std::to_string(i.stats.last_sequence));
  f.emplace_back("consumers", std::to_string(i.consumers));
  f.emplace_back("duplicates", std::to_string(i.stats.duplicates));
  f.emplace_back("write_errors", std::to_string(i.stats.write_errors));
  f.emplace_back("capture_errors", std::to_string(i.capture_errors));
  return f;
}

}  // namespace

// The capture client's connection: every message routed to it is appended to the stream its
// subscription belongs to. Nothing is ever queued for it, so it is never a slow consumer.
class StreamService::CaptureConnection final : public broker::ClientConnection {
 public:
  CaptureConnection(StreamService& service, io::EventLoop& loop) : service_(service), loop_(loop) {}
  io::EventLoop& loop() override { return loop_; }
  std::string peer_address() const override { return "streams"; }
  bool closed() const override { return false; }
  std::size_t pending_out_bytes() const override { return 0; }
  void send_msg(std::uint64_t sid, std::string_view subject, std::string_view, bool has_headers,
                const wire::Metadata& headers, const Slice& payload) override {
    service_.capture(sid, subject, has_headers, headers, payload);
  }
  void fail(const Status& reason) override { SLIP_LOG_ERROR("stream capture failed: {}", reason.to_string()); }

 private:
  StreamService& service_;
  io::EventLoop& loop_;
};

// LOG_ACKs on their way from log writer threads to one session loop: the sink of every
// LOG_PUBLISH append made on that loop. appended() runs on a writer thread with the results of
// a run of appends (usually one publisher's share of a group commit), records the stream's
// figures, queues the acks under one lock and posts a drain to the loop only when none is
// pending; the drain sends everything queued so far. Acks keep the order in which they were
// added, so one publisher's acks still arrive in sequence order.
//
// An append's tag: owner = the session (weakly), context = the stream's StreamMetrics, id = the
// LOG_PUBLISH request id, stamp = its arrival (mono_now_ns) or 0 when acks are not timed.
class StreamService::AckOutbox final : public AppendSink, public std::enable_shared_from_this<AckOutbox> {
 public:
  explicit AckOutbox(io::EventLoop& loop) : loop_(loop) {}

  // A writer thread: the stream's only recorder of acks.
  void appended(std::span<AppendOutcome> outcomes) override {
    std::int64_t now = 0;
    for (AppendOutcome& o : outcomes) {
      auto* metrics = static_cast<StreamMetrics*>(o.tag.context);
      if (o.result.is_ok()) {
        metrics->note_acked();
        if (o.tag.stamp != 0) {
          // Every ack of a run is given at once: one clock read for all of them.
          if (now == 0) now = mono_now_ns();
          metrics->ack_latency_ns.record(static_cast<std::uint64_t>(std::max<std::int64_t>(now - o.tag.stamp, 0)));
        }
      } else {
        metrics->note_error(o.result.error().code());
      }
    }
    bool post = false;
    {
      std::lock_guard lk(mu_);
      for (AppendOutcome& o : outcomes) {
        acks_.push_back(Ack{std::move(o.tag.owner), o.tag.id, std::move(o.result)});
      }
      post = !drain_posted_;
      drain_posted_ = true;
    }
    if (post) loop_.post([self = shared_from_this()] { self->drain(); });
  }

  // Loop thread: the stream that captured the last subject published on this loop, while no
  // stream was added or removed since (StreamManager::generation()).
  struct SubjectCache {
    std::uint64_t generation = 0;
    std::string subject;
    std::shared_ptr<Stream> stream;  // null: no stream captures `subject`
  };
  SubjectCache& subject_cache() { return cache_; }

 private:
  struct Ack {
    std::weak_ptr<void> session;
    std::uint64_t request_id;
    Result<AppendAck> result;
  };

  // Loop thread.
  void drain() {
    {
      std::lock_guard lk(mu_);
      draining_.swap(acks_);
      drain_posted_ = false;
    }
    // Consecutive acks mostly go to the same session: lock its weak pointer once for them.
    std::shared_ptr<void> s;
    const std::weak_ptr<void>* locked = nullptr;
    for (Ack& a : draining_) {
      if (locked == nullptr || a.session.owner_before(*locked) || locked->owner_before(a.session)) {
        s = a.session.lock();
        locked = &a.session;
      }
      if (!s) continue;
      auto* session = static_cast<session::Session*>(s.get());
      wire::LogAck f;
      f.request_id = a.request_id;
      if (a.result.is_ok()) {
        f.sequence = a.result->sequence;
      } else {
        // The frame points at the message until it is encoded, within this statement's scope.
        const Status& failure = a.result.error();
        f.code = failure.code();
        f.message = failure.message();
      }
      session->send_frame(f);
    }
    draining_.clear();  // keeps its capacity for the next swap
  }

  io::EventLoop& loop_;
  std::mutex mu_;
  std::vector<Ack> acks_;     // guarded by mu_
  bool drain_posted_ = false;  // guarded by mu_
  std::vector<Ack> draining_;  // loop thread only
  SubjectCache cache_;         // loop thread only
};

namespace {
// The outbox of the loop this thread runs, for the service that made it: found without the
// lock after the first publish on a loop. Services are told apart by a serial number, not by
// their address (a new service may take a destroyed one's).
std::atomic<std::uint64_t> next_service_serial{1};
struct OutboxCache {
  std::uint64_t serial = 0;
  const io::EventLoop* loop = nullptr;
  void* outbox = nullptr;
};
thread_local OutboxCache outbox_cache;
}  // namespace

StreamService::AckOutbox& StreamService::outbox_for(io::EventLoop& loop) {
  if (outbox_cache.serial == serial_ && outbox_cache.loop == &loop) return *static_cast<AckOutbox*>(outbox_cache.outbox);
  AckOutbox& box = find_outbox(loop);
  if (loop.in_loop_thread()) outbox_cache = OutboxCache{serial_, &loop, &box};
  return box;
}

StreamService::AckOutbox& StreamService::find_outbox(io::EventLoop& loop) {
  std::lock_guard lk(outboxes_mu_);
  for (const auto& [l, box] : outboxes_) {
    if (l == &loop) return *box;
  }
  outboxes_.emplace_back(&loop, std::make_shared<AckOutbox>(loop));
  return *outboxes_.back().second;
}

StreamService::StreamService(broker::Broker& broker, io::EventLoop& capture_loop,
                             std::unique_ptr<StreamManager> streams, StreamServiceOptions options)
    : broker_(broker),
      capture_loop_(capture_loop),
      streams_(std::move(streams)),
      options_(options),
      serial_(next_service_serial.fetch_add(1, std::memory_order_relaxed)) {}

StreamService::~StreamService() { stop(); }

Status StreamService::start() {
  if (!streams_) return Status();
  std::promise<Status> done;
  capture_loop_.post([&] {
    capture_conn_ = std::make_unique<CaptureConnection>(*this, capture_loop_);
    capture_ = std::make_unique<broker::BrokerClient>(broker_, *capture_conn_, "streams");
    consumers_ = std::make_shared<ConsumerService>(capture_loop_, *streams_, options_.consumers);
    Status st = consumers_->load();
    if (!st.is_ok()) {
      done.set_value(st);
      return;
    }
    for (const auto& s : streams_->list()) {
      st = subscribe_stream(s);
      if (!st.is_ok()) break;
    }
    done.set_value(st);
  });
  return done.get_future().get();
}

void StreamService::collect_consumers(std::function<void(std::vector<ConsumerFigures>)> done) {
  capture_loop_.post([this, done = std::move(done)] {
    done(consumers_ ? consumers_->figures() : std::vector<ConsumerFigures>{});
  });
}

void StreamService::stop() {
  if (stopped_ || !streams_) return;
  stopped_ = true;
  auto end_capture = [this] {
    consumers_.reset();
    capture_.reset();
    capture_sids_.clear();
  };
  if (capture_loop_.running() && !capture_loop_.in_loop_thread()) {
    std::promise<void> done;
    capture_loop_.post([&] {
      end_capture();
      done.set_value();
    });
    done.get_future().wait();
  } else {
    end_capture();
  }
  streams_->close();
}

Status StreamService::subscribe_stream(const std::shared_ptr<Stream>& s) {
  std::vector<std::uint64_t>& sids = sids_of_[s->config().name];
  for (const auto& subject : s->config().subjects) {
    const std::uint64_t sid = next_sid_++;
    SLIP_TRY(capture_->subscribe(sid, subject, ""));
    capture_sids_[sid] = s;
    sids.push_back(sid);
  }
  return Status();
}

void StreamService::unsubscribe_stream(const std::string& name) {
  auto it = sids_of_.find(name);
  if (it == sids_of_.end()) return;
  for (std::uint64_t sid : it->second) {
    (void)capture_->unsubscribe(sid, 0);
    capture_sids_.erase(sid);
  }
  sids_of_.erase(it);
}

void StreamService::capture(std::uint64_t sid, std::string_view subject, bool has_headers,
                            const wire::Metadata& headers, const Slice& payload) {
  auto it = capture_sids_.find(sid);
  if (it == capture_sids_.end()) return;
  std::shared_ptr<Stream> s = it->second.lock();
  if (!s) return;
  // A weak pointer: the callback runs on the writer thread, which must never drop the last
  // reference to the stream (that would close the log from its own thread).
  std::weak_ptr<Stream> ws = s;
  Status st = s->append(subject, has_headers, headers, payload, [ws](Result<AppendAck> r) {
    if (r.is_ok()) return;
    if (auto s = ws.lock()) s->note_capture_error();
  });
  if (!st.is_ok()) {
    s->note_capture_error();
    SLIP_LOG_DEBUG("stream {}: captured message on {} not stored: {}", s->config().name, subject, st.to_string());
  }
}

Status StreamService::on_frame(session::Session& s, broker::BrokerClient& client, const wire::Frame& f,
                               const wire::WireLimits& limits) {
  auto off = [] { return failed_precondition("persistent streams are off: slipd runs without --data-dir"); };
  switch (f.type) {
    case wire::FrameType::kLogPublish: {
      SLIP_ASSIGN_OR_RETURN(wire::LogPublish p, wire::decode_log_publish(f, limits));
      if (!streams_) {
        const Status st = off();
        s.send_frame(wire::LogAck{p.request_id, st.code(), 0, st.message()});
        return Status();
      }
      on_publish(s, client, f, p);
      return Status();
    }
    case wire::FrameType::kStreamRequest: {
      SLIP_ASSIGN_OR_RETURN(wire::AnyFrame any, wire::parse_frame(f, limits));
      const auto& q = std::get<wire::StreamRequest>(any);
      if (!streams_) {
        send_stream_response(s, q.request_id, off());
        return Status();
      }
      on_request(s, q, limits);
      return Status();
    }
    default:
      return unimplemented(std::string(wire::frame_type_name(f.type)) + " frames are not served here");
  }
}

void StreamService::on_publish(session::Session& s, broker::BrokerClient& client, const wire::Frame& f,
                               const wire::LogPublish& p) {
  auto refuse = [&](const Status& st) {
    wire::LogAck a;
    a.request_id = p.request_id;
    a.code = st.code();
    a.message = st.message();
    s.send_frame(a);
  };
  AckOutbox& outbox = outbox_for(s.connection().loop());
  // Publishers mostly repeat a subject: the outbox remembers the last one's stream until the
  // set of streams changes. The cache holds the stream for the rest of this call.
  AckOutbox::SubjectCache& cache = outbox.subject_cache();
  const std::uint64_t generation = streams_->generation();
  if (cache.generation != generation || cache.subject != p.subject) {
    cache.stream = streams_->for_subject(p.subject);
    cache.subject.assign(p.subject);
    cache.generation = generation;
  }
  Stream* stream = cache.stream.get();
  if (stream == nullptr) {
    refuse(not_found("no stream for subject \"" + std::string(p.subject.substr(0, 128)) + "\""));
    return;
  }
  // The stream outlives its log's sinks (Stream::metrics).
  StreamMetrics* metrics = &stream->metrics();
  // Ordinary subscribers first, with the publisher's permissions: a refused publish is stored
  // nowhere.
  if (Status st = client.publish(p.subject, "", p.has_headers, p.headers, p.payload, capture_.get()); !st.is_ok()) {
    metrics->note_error(st.code());
    refuse(st);
    return;
  }
  AppendTag tag;
  tag.owner = s.weak_from_this();
  tag.context = metrics;
  tag.id = p.request_id;
  tag.stamp = options_.time_acks ? mono_now_ns() : 0;
  // The subject is stored from the frame's own bytes, like the payload: no copy.
  const Slice subject = f.body.sub(static_cast<std::size_t>(reinterpret_cast<const std::uint8_t*>(p.subject.data()) -
                                                            f.body.data()),
                                   p.subject.size());
  Status st = stream->append(subject, p.has_headers, p.headers, p.payload, outbox, std::move(tag));
  if (!st.is_ok()) {
    metrics->note_error(st.code());
    refuse(st.with_context("stream " + stream->config().name));
  }
}

void StreamService::on_request(session::Session& s, const wire::StreamRequest& q, const wire::WireLimits& limits) {
  const std::uint64_t id = q.request_id;
  auto fail = [&](const Status& st) { send_stream_response(s, id, st); };
  switch (q.op) {
    case wire::StreamOp::kAdd: {
      StreamConfig c;
      for (const auto& [k, v] : q.args) {
        if (Status st = apply_stream_config_field(c, k, v); !st.is_ok()) return fail(st);
      }
      auto added = streams_->add(std::move(c));
      if (!added.is_ok()) return fail(added.status());
      // The answer waits for the capture subscription, so that a PUB sent after it is stored.
      std::weak_ptr<session::Session> ws = s.weak_from_this();
      io::EventLoop* loop = &s.connection().loop();
      std::shared_ptr<Stream> stream = *added;
      capture_loop_.post([this, ws, loop, id, stream] {
        Status st;
        if (capture_ && !sids_of_.count(stream->config().name)) st = subscribe_stream(stream);
        ResponseFields fields = st.is_ok() ? info_fields(streams_->info(*stream)) : ResponseFields{};
        post_response(*loop, ws, id, st, std::move(fields));
      });
      return;
    }
    case wire::StreamOp::kInfo: {
      if (Status st = only_keys(q.args, {"name"}); !st.is_ok()) return fail(st);
      auto stream = named_stream(*streams_, q.args);
      if (!stream.is_ok()) return fail(stream.status());
      send_stream_response(s, id, Status(), info_fields(streams_->info(**stream)));
      return;
    }
    case wire::StreamOp::kList: {
      if (Status st = only_keys(q.args, {}); !st.is_ok()) return fail(st);
      std::string names;
      for (const auto& stream : streams_->list()) {
        if (!names.empty()) names += ',';
        names += stream->config().name;
      }
      send_stream_response(s, id, Status(), {{"names", names}});
      return;
    }
    case wire::StreamOp::kDelete: {
      if (Status st = only_keys(q.args, {"name"}); !st.is_ok()) return fail(st);
      const std::string_view* name = find_arg(q.args, "name");
      if (name == nullptr) return fail(invalid_argument("missing argument \"name\""));
      if (Status st = streams_->remove(*name); !st.is_ok()) return fail(st);
      std::weak_ptr<session::Session> ws = s.weak_from_this();
      io::EventLoop* loop = &s.connection().loop();
      capture_loop_.post([this, ws, loop, id, n = std::string(*name)] {
        if (capture_) unsubscribe_stream(n);
        if (consumers_) consumers_->stream_removed(n);
        post_response(*loop, ws, id, Status());
      });
      return;
    }
    case wire::StreamOp::kRead: {
      if (Status st = only_keys(q.args, {"name", "from_seq", "max_msgs"}); !st.is_ok()) return fail(st);
      auto stream = named_stream(*streams_, q.args);
      if (!stream.is_ok()) return fail(stream.status());
      auto from = u64_arg(q.args, "from_seq", 1);
      if (!from.is_ok()) return fail(from.status());
      auto max = u64_arg(q.args, "max_msgs", options_.max_read_msgs);
      if (!max.is_ok()) return fail(max.status());
      ReadOptions ro;
      ro.max_records = static_cast<std::size_t>(std::clamp<std::uint64_t>(*max, 1, options_.max_read_msgs));
      ro.max_bytes = options_.max_read_bytes;
      auto r = (*stream)->log().read(*from, ro);
      if (!r.is_ok()) return fail(r.status());
      for (const StoredRecord& rec : r->records) {
        wire::StreamMsg m;
        m.request_id = id;
        m.sequence = rec.sequence;
        m.timestamp_ns = static_cast<std::uint64_t>(rec.timestamp_ns);
        if (rec.subject) m.subject = std::string_view(reinterpret_cast<const char*>(rec.subject->data()), rec.subject->size());
        if (rec.headers) {
          std::string_view h(reinterpret_cast<const char*>(rec.headers->data()), rec.headers->size());
          if (Status hs = decode_headers(h, limits, m.headers); !hs.is_ok()) return fail(hs);
          m.has_headers = true;
        }
        m.payload = rec.payload;
        s.send_frame(m);
      }
      const LogStats st = (*stream)->log().stats();
      send_stream_response(s, id, Status(),
                    {{"next_seq", std::to_string(r->next_sequence)},
                     {"first_seq", std::to_string(st.first_sequence)},
                     {"last_seq", std::to_string(st.last_sequence)},
                     {"skipped", std::to_string(r->skipped.size())}});
      return;
    }
    case wire::StreamOp::kConsumerAdd:
    case wire::StreamOp::kConsumerFetch:
    case wire::StreamOp::kConsumerAck:
    case wire::StreamOp::kConsumerDelete:
    case wire::StreamOp::kConsumerInfo:
    case wire::StreamOp::kConsumerList:
    case wire::StreamOp::kConsumerSubscribe:
    case wire::StreamOp::kConsumerUnsubscribe: {
      OwnedFields args;
      args.reserve(q.args.size());
      for (const auto& [k, v] : q.args) {
        for (const auto& [k2, v2] : args) {
          if (k2 == k) return fail(invalid_argument("argument \"" + std::string(k.substr(0, 64)) + "\" appears twice"));
        }
        args.emplace_back(std::string(k), std::string(v));
      }
      ConsumerRequester from;
      from.session = s.weak_from_this();
      from.loop = &s.connection().loop();
      from.request_id = id;
      from.limits = limits;
      from.key = &s;
      capture_loop_.post([this, op = q.op, args = std::move(args), from = std::move(from)]() mutable {
        if (!consumers_) return respond_stopped(from);
        consumers_->handle(op, std::move(args), std::move(from));
      });
      return;
    }
    default:
      return fail(unimplemented("stream operation " + std::to_string(static_cast<unsigned>(q.op)) +
                                " is not served by this server"));
  }
}

void StreamService::on_session_closed(session::Session& s) {
  if (!streams_) return;
  const void* key = &s;
  capture_loop_.post([this, key] {
    if (consumers_) consumers_->session_closed(key);
  });
}

}  // namespace slip::log
