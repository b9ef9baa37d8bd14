#include "log/consumer_service.h"

#include <algorithm>
#include <boost/asio/steady_timer.hpp>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "core/clock.h"
#include "core/logging.h"
#include "log/request_args.h"

namespace slip::log {

namespace {

namespace fs = std::filesystem;

constexpr std::string_view kConsumersDir = "consumers";
constexpr std::string_view kConfFile = "consumer.conf";
constexpr std::string_view kStateFile = "state";
constexpr std::size_t kMaxAckSeqs = 4096;          // sequences in one ACK
constexpr std::size_t kMaxScanPerCollect = 4096;   // records looked at per collect
constexpr std::size_t kMaxPendingScan = 1'000'000;  // num_pending of a filtered consumer counts this far

void respond(const ConsumerRequester& to, Status st, OwnedFields fields = {}) {
  to.loop->post([ws = to.session, id = to.request_id, st = std::move(st), fields = std::move(fields)] {
    if (auto s = ws.lock()) send_stream_response(*s, id, st, fields);
  });
}

bool record_matches(const Consumer& c, const StoredRecord& rec) {
  if (c.config().filter.empty()) return true;
  if (!rec.subject) return false;
  return c.matches(std::string_view(reinterpret_cast<const char*>(rec.subject->data()), rec.subject->size()));
}

Result<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found("no " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string consumers_dir(const Stream& s) {
  std::string d = s.dir();
  d.append("/").append(kConsumersDir);
  return d;
}

// One STREAM_MSG per delivery (Delivery: a StoredRecord `record` and its delivery count).
template <typename D>
void send_msgs(session::Session& s, std::uint64_t id, const wire::WireLimits& limits, const std::vector<D>& batch) {
  for (const D& d : batch) {
    wire::StreamMsg m;
    m.request_id = id;
    m.sequence = d.record.sequence;
    m.timestamp_ns = static_cast<std::uint64_t>(d.record.timestamp_ns);
    m.deliveries = d.deliveries;
    if (d.record.subject) {
      m.subject = std::string_view(reinterpret_cast<const char*>(d.record.subject->data()), d.record.subject->size());
    }
    if (d.record.headers) {
      std::string_view h(reinterpret_cast<const char*>(d.record.headers->data()), d.record.headers->size());
      m.has_headers = decode_headers(h, limits, m.headers).is_ok();
      if (!m.has_headers) m.headers.clear();
    }
    m.payload = d.record.payload;
    s.send_frame(m);
  }
}

}  // namespace

// ---- the writer thread ---------------------------------------------------------------------

// Runs file jobs in order on its own thread, so that no loop waits for a disk.
class ConsumerService::Writer {
 public:
  Writer() : thread_([this] { run(); }) {}
  ~Writer() { stop(); }
  void submit(std::function<void()> job) {
    {
      std::lock_guard lk(mu_);
      jobs_.push_back(std::move(job));
    }
    wake_.notify_one();
  }
  // Runs every queued job, then joins.
  void stop() {
    {
      std::lock_guard lk(mu_);
      if (stopping_) return;
      stopping_ = true;
    }
    wake_.notify_one();
    thread_.join();
  }

 private:
  void run() {
    std::unique_lock lk(mu_);
    while (true) {
      wake_.wait(lk, [&] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) return;
      auto job = std::move(jobs_.front());
      jobs_.pop_front();
      lk.unlock();
      job();
      lk.lock();
    }
  }
  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> jobs_;  // guarded by mu_
  bool stopping_ = false;                   // guarded by mu_
  std::thread thread_;
};

// ---- per-consumer runtime ------------------------------------------------------------------

struct ConsumerService::Fetch {
  ConsumerRequester from;
  std::size_t max_msgs = 1;
  std::size_t max_bytes = 0;
  std::uint64_t id = 0;
  std::unique_ptr<boost::asio::steady_timer> timer;
};

struct ConsumerService::Delivery {
  StoredRecord record;
  std::uint64_t deliveries = 0;
};

struct ConsumerService::Runtime {
  Runtime(io::EventLoop& loop, std::shared_ptr<Stream> s, Consumer c)
      : stream(std::move(s)), consumer(std::move(c)), ack_timer(loop.context()), idle_timer(loop.context()) {}
  std::shared_ptr<Stream> stream;
  Consumer consumer;
  std::string dir;  // durable only
  bool removed = false;
  bool read_failed = false;  // the last collect could not read the log

  boost::asio::steady_timer ack_timer;
  std::optional<std::int64_t> ack_timer_at;
  boost::asio::steady_timer idle_timer;  // ephemeral only
  std::int64_t last_active = 0;
  const void* owner = nullptr;  // ephemeral: the creating session

  std::deque<Fetch> fetches;
  std::uint64_t next_fetch_id = 1;

  struct Push {
    ConsumerRequester to;
    std::uint64_t id = 0;
    bool in_transit = false;
  };
  std::optional<Push> push;

  // Durable state writes.
  std::uint64_t version = 0;          // changes made
  bool writing = false;
  std::vector<std::pair<std::uint64_t, std::function<void(Status)>>> waiters;
};

ConsumerService::ConsumerService(io::EventLoop& loop, StreamManager& streams, ConsumerServiceOptions options)
    : loop_(loop), streams_(streams), options_(std::move(options)), writer_(std::make_unique<Writer>()) {
  if (!options_.clock) options_.clock = [] { return mono_now_ns(); };
}

ConsumerService::~ConsumerService() {
  shutdown();
  for (auto& [stream, by_name] : consumers_) {
    for (auto& [name, r] : by_name) {
      r->removed = true;
      r->ack_timer.cancel();
      r->idle_timer.cancel();
      for (auto& f : r->fetches) f.timer->cancel();
    }
  }
}

void ConsumerService::shutdown() {
  if (writer_) writer_->stop();
}

ConsumerService::RuntimePtr ConsumerService::find(const std::string& stream, const std::string& name) const {
  auto s = consumers_.find(stream);
  if (s == consumers_.end()) return nullptr;
  auto c = s->second.find(name);
  return c == s->second.end() ? nullptr : c->second;
}

void ConsumerService::attach(const RuntimePtr& r) {
  auto& by_name = consumers_[r->stream->config().name];
  const bool first = by_name.empty();
  by_name[r->consumer.config().name] = r;
  r->stream->set_consumer_count(by_name.size());
  if (first) {
    std::weak_ptr<ConsumerService> ws = weak_from_this();
    io::EventLoop* loop = &loop_;
    r->stream->set_append_listener([ws, loop, name = r->stream->config().name] {
      loop->post([ws, name] {
        if (auto self = ws.lock()) self->on_appended(name);
      });
    });
  }
}

void ConsumerService::detach(Runtime& r) {
  r.removed = true;
  r.ack_timer.cancel();
  r.idle_timer.cancel();
  const Status gone = not_found("consumer \"" + r.consumer.config().name + "\" was deleted");
  for (auto& f : r.fetches) {
    f.timer->cancel();
    respond(f.from, gone);
  }
  r.fetches.clear();
  if (r.push) {
    respond(r.push->to, gone);
    r.push.reset();
  }
  // The caller holds a reference: erasing the map's does not end `r`.
  auto s = consumers_.find(r.stream->config().name);
  if (s == consumers_.end()) return;
  auto c = s->second.find(r.consumer.config().name);
  if (c == s->second.end() || c->second.get() != &r) return;
  s->second.erase(c);
  r.stream->set_consumer_count(s->second.size());
  if (s->second.empty()) consumers_.erase(s);
}

// ---- loading -------------------------------------------------------------------------------

Status ConsumerService::load() {
  for (const auto& stream : streams_.list()) {
    const std::string base = consumers_dir(*stream);
    std::error_code ec;
    if (!fs::is_directory(base, ec)) continue;
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(base, ec)) {
      if (e.is_directory()) names.push_back(e.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    for (const auto& name : names) {
      const std::string dir = base + "/" + name;
      auto conf = read_file(dir + "/" + std::string(kConfFile));
      if (!conf.is_ok()) {
        SLIP_LOG_WARN("stream {}: consumer directory {} has no configuration (creation cut short): removed",
                      stream->config().name, dir);
        fs::remove_all(dir, ec);
        continue;
      }
      auto config = parse_consumer_conf(*conf);
      if (!config.is_ok()) return config.status().with_context(dir);
      if (config->name != name) return corruption(dir + ": the configuration names consumer \"" + config->name + "\"");
      auto bytes = read_file(dir + "/" + std::string(kStateFile));
      if (!bytes.is_ok()) return corruption(dir + ": no state file");
      auto state = decode_consumer_state(
          ByteView(reinterpret_cast<const std::uint8_t*>(bytes->data()), bytes->size()));
      if (!state.is_ok()) return state.status().with_context(dir);
      auto r = std::make_shared<Runtime>(loop_, stream, Consumer(*config, *state));
      r->dir = dir;
      attach(r);
      SLIP_LOG_INFO("stream {}: consumer {} loaded ({} pending)", stream->config().name, name, state->pending.size());
    }
  }
  return Status();
}

// ---- requests ------------------------------------------------------------------------------

void ConsumerService::handle(wire::StreamOp op, OwnedFields args, ConsumerRequester from) {
  if (op == wire::StreamOp::kConsumerAdd) return add(args, from);
  const std::string* stream = find_arg(args, "stream");
  if (stream == nullptr) return respond(from, invalid_argument("missing argument \"stream\""));
  if (op == wire::StreamOp::kConsumerList) {
    if (Status st = only_keys(args, {"stream"}); !st.is_ok()) return respond(from, st);
    if (!streams_.find(*stream)) return respond(from, not_found("no stream \"" + stream->substr(0, 64) + "\""));
    std::string names;
    auto it = consumers_.find(*stream);
    if (it != consumers_.end()) {
      for (const auto& [name, r] : it->second) {
        if (!names.empty()) names += ',';
        names += name;
      }
    }
    return respond(from, Status(), {{"names", names}});
  }
  const std::string* name = find_arg(args, "name");
  if (name == nullptr) return respond(from, invalid_argument("missing argument \"name\""));
  RuntimePtr r = find(*stream, *name);
  if (!r) {
    if (!streams_.find(*stream)) return respond(from, not_found("no stream \"" + stream->substr(0, 64) + "\""));
    std::string m = "no consumer \"";
    m.append(name->substr(0, 64)).append("\" on stream \"").append(stream->substr(0, 64)).append("\"");
    return respond(from, not_found(m));
  }
  // Fetches, acks and push subscriptions keep an ephemeral consumer alive; looking at it does not.
  if (op == wire::StreamOp::kConsumerFetch || op == wire::StreamOp::kConsumerAck ||
      op == wire::StreamOp::kConsumerSubscribe) {
    r->last_active = now();
  }
  switch (op) {
    case wire::StreamOp::kConsumerFetch: return fetch(r, args, from);
    case wire::StreamOp::kConsumerAck: return ack(r, args, from);
    case wire::StreamOp::kConsumerDelete:
      if (Status st = only_keys(args, {"stream", "name"}); !st.is_ok()) return respond(from, st);
      return remove(r, &from);
    case wire::StreamOp::kConsumerInfo:
      if (Status st = only_keys(args, {"stream", "name"}); !st.is_ok()) return respond(from, st);
      return respond(from, Status(), info_fields(*r));
    case wire::StreamOp::kConsumerSubscribe:
      if (Status st = only_keys(args, {"stream", "name"}); !st.is_ok()) return respond(from, st);
      return subscribe(r, from);
    case wire::StreamOp::kConsumerUnsubscribe:
      if (Status st = only_keys(args, {"stream", "name"}); !st.is_ok()) return respond(from, st);
      return unsubscribe(r, from);
    default:
      return respond(from, unimplemented("stream operation " + std::to_string(static_cast<unsigned>(op)) +
                                         " is not a consumer operation"));
  }
}

Result<std::uint64_t> ConsumerService::start_sequence(Stream& s, const ConsumerConfig& c) const {
  const Log& log = s.log();
  const std::uint64_t first = log.first_sequence();
  const std::uint64_t last = log.last_sequence();
  switch (c.deliver) {
    case DeliverPolicy::kAll: return first;
    case DeliverPolicy::kNew: return last + 1;
    case DeliverPolicy::kBySequence: return c.start_seq;
    case DeliverPolicy::kByTime: {
      auto seq = log.find_by_time(c.start_time_ns);
      if (seq.is_ok()) return *seq;
      if (seq.status().code() == StatusCode::kNotFound) return last + 1;
      return seq.status();
    }
    case DeliverPolicy::kLast: {
      if (last < first) return first;  // empty: the next message is the last one
      if (c.filter.empty()) return last;
      // The last matching message: read backwards a chunk at a time.
      const Consumer probe(c, 1);
      constexpr std::uint64_t kChunk = 256;
      std::uint64_t hi = last;
      std::uint64_t scanned = 0;
      while (hi >= first && scanned < kMaxPendingScan) {
        const std::uint64_t lo = hi - first + 1 > kChunk ? hi - kChunk + 1 : first;
        ReadOptions ro;
        ro.max_records = static_cast<std::size_t>(hi - lo + 1);
        ro.max_bytes = SIZE_MAX;
        SLIP_ASSIGN_OR_RETURN(ReadResult rr, log.read(lo, ro));
        for (auto it = rr.records.rbegin(); it != rr.records.rend(); ++it) {
          if (it->sequence <= hi && record_matches(probe, *it)) return it->sequence;
        }
        scanned += hi - lo + 1;
        if (lo == first) break;
        hi = lo - 1;
      }
      return last + 1;  // nothing matches yet
    }
  }
  return first;
}

void ConsumerService::add(const OwnedFields& args, const ConsumerRequester& from) {
  const std::string* stream_name = find_arg(args, "stream");
  if (stream_name == nullptr) return respond(from, invalid_argument("missing argument \"stream\""));
  ConsumerConfig c;
  for (const auto& [k, v] : args) {
    if (k == "stream") continue;
    if (Status st = apply_consumer_config_field(c, k, v); !st.is_ok()) return respond(from, st);
  }
  if (c.name.empty()) {
    if (c.durable) return respond(from, invalid_argument("name: a durable consumer needs a name"));
    std::random_device rd;
    char buf[32];
    std::snprintf(buf, sizeof buf, "eph-%08x%04llx", rd(), static_cast<unsigned long long>(next_ephemeral_++ & 0xffff));
    c.name = buf;
  }
  if (Status st = validate_consumer_config(c); !st.is_ok()) return respond(from, st);
  std::shared_ptr<Stream> stream = streams_.find(*stream_name);
  if (!stream) return respond(from, not_found("no stream \"" + stream_name->substr(0, 64) + "\""));
  if (!c.filter.empty()) {
    bool inside = false;
    for (const auto& subject : stream->config().subjects) inside = inside || patterns_overlap(c.filter, subject);
    if (!inside) {
      std::string m = "filter: \"";
      m.append(c.filter).append("\" matches none of stream \"").append(*stream_name).append("\"'s subjects");
      return respond(from, invalid_argument(m));
    }
  }
  if (RuntimePtr existing = find(*stream_name, c.name)) {
    if (existing->consumer.config() == c) return respond(from, Status(), info_fields(*existing));
    return respond(from, Status(StatusCode::kAlreadyExists, "consumer \"" + c.name + "\" exists with another configuration"));
  }
  auto it = consumers_.find(*stream_name);
  if (it != consumers_.end() && it->second.size() >= options_.max_consumers_per_stream) {
    return respond(from, overloaded("stream \"" + *stream_name + "\" has " + std::to_string(it->second.size()) +
                                        " consumers, the limit"));
  }
  auto start = start_sequence(*stream, c);
  if (!start.is_ok()) return respond(from, start.status());
  auto r = std::make_shared<Runtime>(loop_, stream, Consumer(c, *start));
  r->last_active = now();
  attach(r);
  if (!c.durable) {
    r->owner = from.key;
    arm_inactivity_timer(r);
    respond(from, Status(), info_fields(*r));
    return;
  }
  // Durable: the files go to disk first (state, then the configuration that commits them), and
  // the answer waits for them.
  r->dir = consumers_dir(*stream) + "/" + c.name;
  r->writing = true;
  std::weak_ptr<ConsumerService> ws = weak_from_this();
  std::weak_ptr<Runtime> wr = r;
  io::EventLoop* loop = &loop_;
  writer_->submit([ws, wr, loop, from, dir = r->dir, parent = consumers_dir(*stream), conf = consumer_conf_text(c),
                   state = encode_consumer_state(r->consumer.state())] {
    std::error_code ec;
    fs::create_directories(dir, ec);
    Status st = ec ? failed_precondition("cannot create " + dir + ": " + ec.message()) : Status();
    if (st.is_ok()) st = fsync_dir(parent);
    if (st.is_ok()) st = write_file_atomic(dir, kStateFile, state);
    if (st.is_ok()) st = write_file_atomic(dir, kConfFile, conf);
    loop->post([ws, wr, from, st] {
      auto self = ws.lock();
      auto r = wr.lock();
      if (!self || !r || r->removed) return respond(from, st.is_ok() ? not_found("consumer deleted") : st);
      r->writing = false;
      if (!st.is_ok()) {
        self->detach(*r);
        return respond(from, st);
      }
      respond(from, Status(), self->info_fields(*r));
      if (!r->waiters.empty() || r->version > 0) self->write_state(r);
    });
  });
}

ConsumerFigures ConsumerService::figures_of(const Runtime& r) const {
  ConsumerFigures f;
  f.stream = r.stream->config().name;
  f.name = r.consumer.config().name;
  f.durable = r.consumer.config().durable;
  f.push_bound = r.push.has_value();
  f.stats = r.consumer.stats();
  f.num_waiting = r.fetches.size();
  f.ack_policy = r.consumer.config().ack == AckPolicy::kExplicit ? "explicit" : "none";
  const Log& log = r.stream->log();
  const std::uint64_t last = log.last_sequence();
  const std::uint64_t from = std::max(r.consumer.next_sequence(), log.first_sequence());
  if (from <= last) {
    if (r.consumer.config().filter.empty()) {
      f.num_pending = last - from + 1;
    } else {
      std::uint64_t seq = from;
      std::uint64_t scanned = 0;
      while (seq <= last && scanned < kMaxPendingScan) {
        ReadOptions ro;
        ro.max_records = 1024;
        ro.max_bytes = 8u << 20;
        auto rr = log.read(seq, ro);
        if (!rr.is_ok() || rr->next_sequence <= seq) break;
        for (const auto& rec : rr->records) f.num_pending += record_matches(r.consumer, rec) ? 1 : 0;
        scanned += rr->next_sequence - seq;
        seq = rr->next_sequence;
      }
    }
  }
  return f;
}

std::vector<ConsumerFigures> ConsumerService::figures() const {
  std::vector<ConsumerFigures> all;
  for (const auto& [stream, by_name] : consumers_) {
    for (const auto& [name, r] : by_name) {
      if (!r->removed) all.push_back(figures_of(*r));
    }
  }
  return all;
}

OwnedFields ConsumerService::info_fields(const Runtime& r) const {
  OwnedFields f = consumer_config_fields(r.consumer.config());
  f.emplace_back("stream", r.stream->config().name);
  const ConsumerFigures fig = figures_of(r);
  const ConsumerStats& st = fig.stats;
  f.emplace_back("delivered_seq", std::to_string(st.delivered_seq));
  f.emplace_back("ack_floor", std::to_string(st.ack_floor));
  f.emplace_back("num_pending", std::to_string(fig.num_pending));
  f.emplace_back("num_ack_pending", std::to_string(st.num_ack_pending));
  f.emplace_back("num_redelivered", std::to_string(st.num_redelivered));
  f.emplace_back("num_waiting", std::to_string(fig.num_waiting));
  f.emplace_back("num_max_delivered", std::to_string(st.num_max_delivered));
  f.emplace_back("num_terminated", std::to_string(st.num_terminated));
  f.emplace_back("deliveries", std::to_string(st.deliveries));
  f.emplace_back("redeliveries", std::to_string(st.redeliveries));
  f.emplace_back("push_bound", fig.push_bound ? "true" : "false");
  return f;
}

void ConsumerService::fetch(const RuntimePtr& r, const OwnedFields& args, const ConsumerRequester& from) {
  if (Status st = only_keys(args, {"stream", "name", "batch", "max_bytes", "expires_ms"}); !st.is_ok()) {
    return respond(from, st);
  }
  auto batch = u64_arg(args, "batch", 1);
  if (!batch.is_ok()) return respond(from, batch.status());
  auto max_bytes = u64_arg(args, "max_bytes", options_.max_fetch_bytes);
  if (!max_bytes.is_ok()) return respond(from, max_bytes.status());
  auto expires = u64_arg(args, "expires_ms", 0);
  if (!expires.is_ok()) return respond(from, expires.status());
  if (*batch == 0) return respond(from, invalid_argument("batch: must be > 0"));
  if (*expires > static_cast<std::uint64_t>(options_.max_fetch_expiry_ms)) {
    return respond(from, invalid_argument("expires_ms: at most " + std::to_string(options_.max_fetch_expiry_ms)));
  }
  Fetch f;
  f.from = from;
  f.max_msgs = static_cast<std::size_t>(std::min<std::uint64_t>(*batch, options_.max_fetch_msgs));
  f.max_bytes = static_cast<std::size_t>(std::clamp<std::uint64_t>(*max_bytes, 1, options_.max_fetch_bytes));
  // Earlier fetches are served first; only when none waits can this one be answered at once.
  if (!r->fetches.empty() && *expires == 0) return respond(from, Status(), {{"delivered", "0"}});
  if (r->fetches.empty()) {
    bool more = false;
    std::vector<Delivery> got = collect(*r, f.max_msgs, f.max_bytes, more);
    if (!got.empty() || *expires == 0) {
      const std::size_t n = got.size();
      answer_fetch(from, std::move(got));
      if (n > 0) persist(r);
      arm_ack_timer(r);
      if (more) loop_.post([ws = weak_from_this(), wr = std::weak_ptr<Runtime>(r)] {
        auto self = ws.lock();
        auto rt = wr.lock();
        if (self && rt && !rt->removed) self->pump(rt);
      });
      return;
    }
  }
  if (r->fetches.size() >= options_.max_waiting_fetches) {
    return respond(from, overloaded("consumer \"" + r->consumer.config().name + "\" has " +
                                    std::to_string(r->fetches.size()) + " fetches waiting, the limit"));
  }
  f.id = r->next_fetch_id++;
  f.timer = std::make_unique<boost::asio::steady_timer>(loop_.context());
  const std::uint64_t expiry_ms = *expires == 0 ? static_cast<std::uint64_t>(options_.max_fetch_expiry_ms) : *expires;
  f.timer->expires_after(std::chrono::milliseconds(expiry_ms));
  f.timer->async_wait([ws = weak_from_this(), wr = std::weak_ptr<Runtime>(r), id = f.id](const boost::system::error_code& ec) {
    if (ec) return;
    auto self = ws.lock();
    auto rt = wr.lock();
    if (!self || !rt || rt->removed) return;
    for (auto it = rt->fetches.begin(); it != rt->fetches.end(); ++it) {
      if (it->id != id) continue;
      respond(it->from, Status(), {{"delivered", "0"}});
      rt->fetches.erase(it);
      return;
    }
  });
  r->fetches.push_back(std::move(f));
  pump(r);
}

void ConsumerService::ack(const RuntimePtr& r, const OwnedFields& args, const ConsumerRequester& from) {
  if (Status st = only_keys(args, {"stream", "name", "seqs", "kind"}); !st.is_ok()) return respond(from, st);
  AckKind kind = AckKind::kAck;
  if (const std::string* k = find_arg(args, "kind")) {
    if (*k == "ack") {
      kind = AckKind::kAck;
    } else if (*k == "nak") {
      kind = AckKind::kNak;
    } else if (*k == "term") {
      kind = AckKind::kTerm;
    } else {
      return respond(from, invalid_argument("kind: \"" + k->substr(0, 64) + "\" is not ack, nak or term"));
    }
  }
  const std::string* seqs = find_arg(args, "seqs");
  if (seqs == nullptr || seqs->empty()) return respond(from, invalid_argument("missing argument \"seqs\""));
  std::vector<std::uint64_t> list;
  std::size_t start = 0;
  while (start <= seqs->size()) {
    std::size_t comma = seqs->find(',', start);
    if (comma == std::string::npos) comma = seqs->size();
    std::uint64_t v = 0;
    auto [p, ec] = std::from_chars(seqs->data() + start, seqs->data() + comma, v);
    if (comma == start || ec != std::errc() || p != seqs->data() + comma || v == 0) {
      return respond(from, invalid_argument("seqs: \"" + seqs->substr(0, 64) + "\" is not a list of sequences"));
    }
    list.push_back(v);
    if (list.size() > kMaxAckSeqs) {
      return respond(from, invalid_argument("seqs: more than " + std::to_string(kMaxAckSeqs) + " sequences"));
    }
    start = comma + 1;
  }
  const std::int64_t t = now();
  std::uint64_t applied = 0;
  for (std::uint64_t seq : list) applied += r->consumer.ack(seq, kind, t) ? 1 : 0;
  OwnedFields fields = {{"acked", std::to_string(applied)}};
  if (applied > 0) {
    pump(r);  // room for new deliveries, or a nak'd message to redeliver
    persist(r, [from, fields](Status st) { respond(from, st, st.is_ok() ? fields : OwnedFields{}); });
    return;
  }
  respond(from, Status(), fields);
}

void ConsumerService::remove(const RuntimePtr& r, const ConsumerRequester* from) {
  detach(*r);
  if (r->dir.empty()) {
    if (from != nullptr) respond(*from, Status());
    return;
  }
  std::optional<ConsumerRequester> to;
  if (from != nullptr) to = *from;
  const std::string parent = consumers_dir(*r->stream);
  writer_->submit([dir = r->dir, parent, to] {
    std::error_code ec;
    // The configuration first: a crash in the middle leaves a directory the next start removes.
    fs::remove(dir + "/" + std::string(kConfFile), ec);
    Status st = ec ? failed_precondition("cannot remove " + dir + ": " + ec.message()) : Status();
    if (st.is_ok()) (void)fsync_dir(dir);
    fs::remove_all(dir, ec);
    if (st.is_ok()) (void)fsync_dir(parent);
    if (to) respond(*to, st);
  });
}

void ConsumerService::subscribe(const RuntimePtr& r, const ConsumerRequester& from) {
  if (r->push) {
    if (!r->push->to.session.expired()) {
      return respond(from, failed_precondition("consumer \"" + r->consumer.config().name +
                                               "\" already has a push subscriber"));
    }
    r->push.reset();
  }
  Runtime::Push p;
  p.to = from;
  p.id = next_push_id_++;
  r->push = std::move(p);
  pump(r);
}

void ConsumerService::unsubscribe(const RuntimePtr& r, const ConsumerRequester& from) {
  if (!r->push || r->push->to.key != from.key) {
    return respond(from, failed_precondition("this connection has no push subscription to consumer \"" +
                                             r->consumer.config().name + "\""));
  }
  respond(r->push->to, Status(), {{"ended", "unsubscribed"}});
  r->push.reset();
  respond(from, Status());
}

void ConsumerService::session_closed(const void* key) {
  std::vector<RuntimePtr> owned;
  for (auto& [stream, by_name] : consumers_) {
    for (auto& [name, r] : by_name) {
      if (r->owner == key && !r->consumer.config().durable) {
        owned.push_back(r);
        continue;
      }
      for (auto it = r->fetches.begin(); it != r->fetches.end();) {
        if (it->from.key == key) {
          it->timer->cancel();
          it = r->fetches.erase(it);
        } else {
          ++it;
        }
      }
      if (r->push && r->push->to.key == key) r->push.reset();
    }
  }
  for (auto& r : owned) {
    SLIP_LOG_DEBUG("stream {}: ephemeral consumer {} removed: its connection closed", r->stream->config().name,
                   r->consumer.config().name);
    remove(r, nullptr);
  }
}

void ConsumerService::stream_removed(const std::string& stream) {
  auto it = consumers_.find(stream);
  if (it == consumers_.end()) return;
  std::vector<RuntimePtr> all;
  for (auto& [name, r] : it->second) all.push_back(r);
  for (auto& r : all) detach(*r);  // the stream's directory, with the consumers', is gone already
}

// ---- delivery ------------------------------------------------------------------------------

std::vector<ConsumerService::Delivery> ConsumerService::collect(Runtime& r, std::size_t max_msgs,
                                                                std::size_t max_bytes, bool& more) {
  more = false;
  r.read_failed = false;
  std::vector<Delivery> out;
  std::size_t bytes = 0;
  std::size_t scanned = 0;
  const std::int64_t t = now();
  Consumer& c = r.consumer;
  const Log& log = r.stream->log();
  auto fits = [&](const StoredRecord& rec) { return out.empty() || bytes + rec.payload.size() <= max_bytes; };
  // Redeliveries first, oldest sequence first.
  while (out.size() < max_msgs) {
    std::optional<std::uint64_t> seq = c.next_redelivery();
    if (!seq) break;
    ReadOptions ro;
    ro.max_records = 1;
    auto rr = log.read(*seq, ro);
    if (!rr.is_ok() || rr->records.empty() || rr->records.front().sequence != *seq) {
      c.drop(*seq);  // gone from the stream (retention) or damaged
      continue;
    }
    if (!fits(rr->records.front())) return out;
    bytes += rr->records.front().payload.size();
    Delivery d;
    d.deliveries = c.redeliver(*seq, t);
    d.record = std::move(rr->records.front());
    out.push_back(std::move(d));
  }
  // Then new messages, while there is room under max_ack_pending.
  while (out.size() < max_msgs && c.has_room()) {
    const std::uint64_t from = c.next_sequence();
    if (from > log.last_sequence()) break;
    if (scanned >= kMaxScanPerCollect) {
      more = true;
      break;
    }
    ReadOptions ro;
    ro.max_records = std::min<std::size_t>(max_msgs - out.size(), 256);
    if (!c.config().filter.empty()) ro.max_records = 256;
    ro.max_bytes = max_bytes;
    auto rr = log.read(from, ro);
    if (!rr.is_ok()) {
      SLIP_LOG_WARN("stream {}: consumer {} cannot read at {}: {}", r.stream->config().name, c.config().name, from,
                    rr.status().to_string());
      r.read_failed = true;
      break;
    }
    if (rr->next_sequence <= from) break;
    bool stopped = false;
    for (StoredRecord& rec : rr->records) {
      ++scanned;
      if (!record_matches(c, rec)) {
        c.skip_to(rec.sequence + 1);
        continue;
      }
      if (out.size() >= max_msgs || !c.has_room() || !fits(rec)) {
        stopped = true;
        break;
      }
      bytes += rec.payload.size();
      Delivery d;
      d.deliveries = c.deliver_new(rec.sequence, t);
      d.record = std::move(rec);
      out.push_back(std::move(d));
    }
    if (stopped) break;
    c.skip_to(rr->next_sequence);  // damaged or retention-removed sequences are passed over
  }
  return out;
}

void ConsumerService::pump(const RuntimePtr& r) {
  if (r->removed) return;
  bool delivered = false;
  bool more = false;
  // Waiting fetches, oldest first.
  while (!r->fetches.empty()) {
    Fetch& f = r->fetches.front();
    if (f.from.session.expired()) {
      f.timer->cancel();
      r->fetches.pop_front();
      continue;
    }
    std::vector<Delivery> got = collect(*r, f.max_msgs, f.max_bytes, more);
    if (got.empty()) break;
    delivered = true;
    f.timer->cancel();
    answer_fetch(f.from, std::move(got));
    r->fetches.pop_front();
  }
  // The push subscriber: one batch on its way to the session's loop at a time.
  if (r->push && !r->push->in_transit) {
    if (r->push->to.session.expired()) {
      r->push.reset();
    } else {
      std::vector<Delivery> got = collect(*r, options_.push_batch_msgs, options_.push_batch_bytes, more);
      if (!got.empty()) {
        delivered = true;
        send_push(r, std::move(got));
      }
    }
  }
  if (delivered) persist(r);
  arm_ack_timer(r);
  const bool waiting = !r->fetches.empty() || (r->push && !r->push->in_transit);
  if (more) {
    loop_.post([ws = weak_from_this(), wr = std::weak_ptr<Runtime>(r)] {
      auto self = ws.lock();
      auto rt = wr.lock();
      if (self && rt && !rt->removed) self->pump(rt);
    });
  } else if (waiting && r->consumer.has_room()) {
    r->stream->arm_append_listener();
    // A message stored between the last read and the arm would not call the listener. (After a
    // failed read, only the next stored message tries again: no loop of failing reads.)
    if (!r->read_failed && r->stream->log().last_sequence() >= r->consumer.next_sequence()) {
      loop_.post([ws = weak_from_this(), name = r->stream->config().name] {
        if (auto self = ws.lock()) self->on_appended(name);
      });
    }
  }
}

void ConsumerService::answer_fetch(const ConsumerRequester& to, std::vector<Delivery> got) {
  to.loop->post([ws = to.session, id = to.request_id, limits = to.limits, got = std::move(got)] {
    auto s = ws.lock();
    if (!s) return;
    send_msgs(*s, id, limits, got);
    send_stream_response(*s, id, Status(), {{"delivered", std::to_string(got.size())}});
  });
}

void ConsumerService::send_push(const RuntimePtr& r, std::vector<Delivery> batch) {
  Runtime::Push& p = *r->push;
  p.in_transit = true;
  io::EventLoop* home = &loop_;
  p.to.loop->post([ws = p.to.session, id = p.to.request_id, limits = p.to.limits, batch = std::move(batch), home,
                   self = weak_from_this(), wr = std::weak_ptr<Runtime>(r), push_id = p.id] {
    if (auto s = ws.lock()) send_msgs(*s, id, limits, batch);
    home->post([self, wr, push_id] {
      auto svc = self.lock();
      auto rt = wr.lock();
      if (!svc || !rt || rt->removed || !rt->push || rt->push->id != push_id) return;
      rt->push->in_transit = false;
      svc->pump(rt);
    });
  });
}

void ConsumerService::on_appended(const std::string& stream) {
  auto it = consumers_.find(stream);
  if (it == consumers_.end()) return;
  std::vector<RuntimePtr> all;
  for (auto& [name, r] : it->second) {
    if (!r->fetches.empty() || (r->push && !r->push->in_transit)) all.push_back(r);
  }
  for (auto& r : all) pump(r);
}

void ConsumerService::arm_ack_timer(const RuntimePtr& r) {
  std::optional<std::int64_t> d = r->consumer.next_deadline();
  if (!d) return;  // a timer already armed fires and finds nothing: harmless
  if (r->ack_timer_at && *r->ack_timer_at <= *d) return;
  r->ack_timer_at = *d;
  r->ack_timer.expires_after(std::chrono::nanoseconds(std::max<std::int64_t>(*d - now(), 0)));
  r->ack_timer.async_wait([ws = weak_from_this(), wr = std::weak_ptr<Runtime>(r)](const boost::system::error_code& ec) {
    if (ec) return;
    auto self = ws.lock();
    auto rt = wr.lock();
    if (!self || !rt || rt->removed) return;
    rt->ack_timer_at.reset();
    if (rt->consumer.expire(self->now()) > 0) self->persist(rt);
    self->pump(rt);
  });
}

void ConsumerService::arm_inactivity_timer(const RuntimePtr& r) {
  const std::int64_t threshold = r->consumer.config().inactive_threshold_ms * 1'000'000;
  const std::int64_t at = r->last_active + threshold;
  r->idle_timer.expires_after(std::chrono::nanoseconds(std::max<std::int64_t>(at - now(), 0)));
  r->idle_timer.async_wait([ws = weak_from_this(), wr = std::weak_ptr<Runtime>(r)](const boost::system::error_code& ec) {
    if (ec) return;
    auto self = ws.lock();
    auto rt = wr.lock();
    if (!self || !rt || rt->removed) return;
    const bool in_use = !rt->fetches.empty() || rt->push.has_value();
    const std::int64_t threshold = rt->consumer.config().inactive_threshold_ms * 1'000'000;
    if (in_use) rt->last_active = self->now();
    if (!in_use && self->now() - rt->last_active >= threshold) {
      SLIP_LOG_DEBUG("stream {}: ephemeral consumer {} removed after {} ms unused", rt->stream->config().name,
                     rt->consumer.config().name, rt->consumer.config().inactive_threshold_ms);
      self->remove(rt, nullptr);
      return;
    }
    self->arm_inactivity_timer(rt);
  });
}

// ---- durable state -------------------------------------------------------------------------

void ConsumerService::persist(const RuntimePtr& r, std::function<void(Status)> done) {
  if (r->dir.empty()) {  // ephemeral
    if (done) done(Status());
    return;
  }
  ++r->version;
  if (done) r->waiters.emplace_back(r->version, std::move(done));
  if (!r->writing) write_state(r);
}

void ConsumerService::write_state(const RuntimePtr& r) {
  r->writing = true;
  const std::uint64_t version = r->version;
  std::weak_ptr<ConsumerService> ws = weak_from_this();
  std::weak_ptr<Runtime> wr = r;
  io::EventLoop* loop = &loop_;
  writer_->submit([ws, wr, loop, version, dir = r->dir, state = encode_consumer_state(r->consumer.state())] {
    Status st = write_file_atomic(dir, kStateFile, state);
    if (!st.is_ok()) SLIP_LOG_ERROR("consumer state not written: {}", st.to_string());
    loop->post([ws, wr, version, st] {
      auto self = ws.lock();
      auto r = wr.lock();
      if (!self || !r) return;
      r->writing = false;
      // Answer every change this write covered.
      std::vector<std::function<void(Status)>> ready;
      auto it = r->waiters.begin();
      while (it != r->waiters.end() && it->first <= version) {
        ready.push_back(std::move(it->second));
        ++it;
      }
      r->waiters.erase(r->waiters.begin(), it);
      for (auto& done : ready) done(st);
      if (!r->removed && r->version > version) self->write_state(r);
    });
  });
}

}  // namespace slip::log
