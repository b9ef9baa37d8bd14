#include "rpc/server.h"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <exception>
#include <future>
#include <thread>

#include "core/logging.h"
#include "core/recycle.h"

namespace slip::rpc {

bool Service::set_method_options(const std::string& method, MethodOptions o) {
  auto it = methods_.find(method);
  if (it == methods_.end()) return false;
  it->second.options = o;
  return true;
}

bool Service::set_cacheable(const std::string& method, CacheOptions cache) {
  auto it = methods_.find(method);
  if (it == methods_.end() || it->second.kind != MethodKind::kUnary) return false;
  it->second.options.cacheable = true;
  it->second.options.cache = std::move(cache);
  return true;
}

// ---- ServerCall ----------------------------------------------------------------------------

ServerCall::ServerCall(io::EventLoop& loop, std::weak_ptr<session::Session> session, std::uint64_t stream,
                       std::string method, Metadata metadata, std::chrono::steady_clock::time_point deadline)
    : loop_(loop),
      session_(std::move(session)),
      stream_(stream),
      own_method_(std::move(method)),
      metadata_(std::move(metadata)),
      deadline_(deadline) {}

ServerCall::~ServerCall() = default;

template <typename Fn>
void ServerCall::in_loop(Fn fn) {
  if (loop_.in_loop_thread()) {
    fn();
  } else {
    loop_.post([self = shared_from_this(), fn = std::move(fn)]() mutable { fn(); });
  }
}

template <typename Fn>
void ServerCall::invoke(Fn&& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    if (server_ != nullptr) server_->stats_.handler_exceptions.fetch_add(1, std::memory_order_relaxed);
    SLIP_LOG_WARN("rpc {}: handler threw: {}", method(), e.what());
    finish(internal_error(std::string("handler threw: ") + e.what()));
  } catch (...) {
    if (server_ != nullptr) server_->stats_.handler_exceptions.fetch_add(1, std::memory_order_relaxed);
    finish(internal_error("handler threw a non-standard exception"));
  }
}

void ServerCall::on_cancel(std::function<void()> fn) {
  in_loop([this, fn = std::move(fn)]() mutable {
    if (cancelled()) {
      fn();
    } else if (!released_) {
      cancel_fns_.push_back(std::move(fn));
    }
  });
}

void ServerCall::add_header(std::string key, std::string value) {
  std::lock_guard lock(meta_mu_);
  headers_.emplace_back(std::move(key), std::move(value));
}

void ServerCall::add_trailer(std::string key, std::string value) {
  std::lock_guard lock(meta_mu_);
  trailers_.emplace_back(std::move(key), std::move(value));
}

void ServerCall::on_read(std::function<void(std::string)> fn, std::function<void()> on_done) {
  in_loop([this, fn = std::move(fn), on_done = std::move(on_done)]() mutable {
    auto self = shared_from_this();
    reader_ = std::move(fn);
    read_done_ = std::move(on_done);
    while (unread_head_ < unread_.size() && !finished()) {
      std::string m = std::move(unread_[unread_head_++]);
      invoke([&] { reader_(std::move(m)); });
    }
    if (unread_head_ == unread_.size()) {
      unread_.clear();
      unread_head_ = 0;
    }
    if (remote_ended_ && read_done_ && !finished()) invoke([&] { read_done_(); });
  });
}

bool ServerCall::write(std::string message) {
  if (finished() || cancelled()) return false;
  if (loop_.in_loop_thread()) {
    do_write(std::move(message), 0);
    return true;
  }
  const std::size_t n = message.size();
  posted_bytes_.fetch_add(n, std::memory_order_acq_rel);
  loop_.post([self = shared_from_this(), m = std::move(message), n]() mutable { self->do_write(std::move(m), n); });
  return true;
}

bool ServerCall::write_wait(std::string message) {
  if (loop_.in_loop_thread()) return write(std::move(message));
  const std::size_t n = message.size();
  {
    std::unique_lock lock(flow_mu_);
    bool waited = false;
    while (true) {
      if (finished() || cancelled()) break;
      if (can_write(n)) break;
      if (!waited && server_ != nullptr) {
        server_->stats_.write_waits.fetch_add(1, std::memory_order_relaxed);
        server_->stats_.writers_waiting.fetch_add(1, std::memory_order_relaxed);
      }
      waited = true;
      // The loop looks again (bytes may have left since it last did) and, if there is still
      // no room, has the session say when there is.
      loop_.post([self = shared_from_this(), n] { self->check_room(n); });
      flow_cv_.wait(lock);
    }
    if (waited && server_ != nullptr) server_->stats_.writers_waiting.fetch_sub(1, std::memory_order_relaxed);
    if (finished() || cancelled()) return false;
    // Counted before the lock goes, so that a second writer sees these bytes.
    posted_bytes_.fetch_add(n, std::memory_order_acq_rel);
  }
  loop_.post([self = shared_from_this(), m = std::move(message), n]() mutable { self->do_write(std::move(m), n); });
  return true;
}

void ServerCall::when_writable(std::function<void()> fn, std::size_t bytes) {
  in_loop([this, fn = std::move(fn), bytes]() mutable {
    auto s = session_.lock();
    refresh_queued(s.get());
    const std::size_t level = writable_level(bytes);
    if (finished() || cancelled() || !s || s->closed() || queued_bytes() <= level) {
      // Never from inside when_writable(): a writer that asks again at once (its message still
      // does not fit) would recurse without end; posted, the loop drains the stream meanwhile.
      loop_.post([self = shared_from_this(), fn = std::move(fn)]() mutable { self->invoke(fn); });
      return;
    }
    if (server_ != nullptr) server_->stats_.write_waits.fetch_add(1, std::memory_order_relaxed);
    writable_fns_.push_back(std::move(fn));
    writable_level_ = std::min(writable_level_, level);
    s->watch_writable(stream_, writable_level_);
  });
}

void ServerCall::refresh_queued(session::Session* s) {
  const std::size_t in_session = s != nullptr ? s->stream_buffered(stream_) : 0;
  session_bytes_.store(in_session, std::memory_order_release);
}

void ServerCall::check_room(std::size_t need) {
  auto s = session_.lock();
  refresh_queued(s.get());
  if (finished() || cancelled() || !s || s->closed() || can_write(need)) {
    wake_writers();
    return;
  }
  // Room for `need` bytes once the session holds no more than this (what is still on its way
  // from writers counts too).
  const std::size_t posted = posted_bytes_.load(std::memory_order_acquire);
  const std::size_t room_at = window_ > need + posted ? window_ - need - posted : 0;
  s->watch_writable(stream_, room_at);
}

void ServerCall::wake_writers() {
  { std::lock_guard lock(flow_mu_); }
  flow_cv_.notify_all();
}

void ServerCall::on_writable(session::Session& s, std::uint64_t) {
  auto self = shared_from_this();
  refresh_queued(&s);
  wake_writers();
  if (writable_fns_.empty()) return;
  if (queued_bytes() > writable_level_ && !finished() && !cancelled()) {
    // Woken for another level (a write_wait() writer's), or bytes came back: not yet.
    s.watch_writable(stream_, writable_level_);
    return;
  }
  auto fns = std::move(writable_fns_);
  writable_fns_.clear();
  writable_level_ = std::numeric_limits<std::size_t>::max();
  for (auto& fn : fns) invoke(fn);
}

void ServerCall::finish(const Status& status) {
  in_loop([this, status] { do_finish(status, nullptr); });
}

void ServerCall::finish(const Status& status, std::string last_message) {
  in_loop([this, status, m = std::move(last_message)]() mutable { do_finish(status, &m); });
}

void ServerCall::send_headers_if_needed(session::Session& s) {
  if (headers_sent_) return;
  headers_sent_ = true;
  std::lock_guard lock(meta_mu_);
  if (headers_.empty()) return;
  wire::Response r;
  r.stream_id = stream_;
  r.metadata = to_wire(headers_);
  s.send_frame(r);
}

void ServerCall::do_write(std::string message, std::size_t posted) {
  auto s = session_.lock();
  Status st;
  if (finished() || cancelled() || !s || s->closed()) {
    if (posted > 0) posted_bytes_.fetch_sub(posted, std::memory_order_acq_rel);
    return;
  }
  if (caching_ && ++cached_writes_ == 1) cached_message_ = message;
  send_headers_if_needed(*s);
  // The message's own bytes go out: the send buffers adopt the string instead of copying it.
  st = s->send(stream_, Chain(Slice::from_string(std::move(message))));
  // The session's count first, then the bytes leave posted_bytes_: a writer never sees less
  // than is queued.
  refresh_queued(s.get());
  if (posted > 0) posted_bytes_.fetch_sub(posted, std::memory_order_acq_rel);
  const std::size_t q = queued_bytes();
  if (q > queued_max_.load(std::memory_order_relaxed)) {
    queued_max_.store(q, std::memory_order_relaxed);
    if (server_ != nullptr) {
      auto& max = server_->stats_.response_queued_max;
      std::uint64_t seen = max.load(std::memory_order_relaxed);
      while (q > seen && !max.compare_exchange_weak(seen, q, std::memory_order_relaxed)) {
      }
    }
  }
  if (st.is_ok()) return;
  // A response that cannot be queued is never dropped silently: the call ends, saying why, and
  // the caller knows its stream is incomplete.
  SLIP_LOG_DEBUG("rpc {}: response refused: {}", method(), st.to_string());
  if (server_ != nullptr) server_->stats_.response_overflows.fetch_add(1, std::memory_order_relaxed);
  std::string why = "response stream overflow: the caller reads more slowly than the handler writes (";
  why.append(st.message());
  why += ')';
  do_finish(overloaded(why), nullptr);
}

void ServerCall::do_finish(const Status& status, std::string* last_message) {
  if (finished()) return;
  finished_.store(true, std::memory_order_release);
  auto self = shared_from_this();
  if (caching_) store_in_cache(status, last_message);
  if (!cancelled()) {
    if (auto s = session_.lock(); s && !s->closed()) {
      send_headers_if_needed(*s);
      if (last_message != nullptr && status.is_ok()) {
        (void)s->send(stream_, Chain(Slice::from_string(std::move(*last_message))));
      }
      Metadata trailers;
      {
        std::lock_guard lock(meta_mu_);
        trailers = std::move(trailers_);
      }
      (void)s->send_trailers(stream_, status.code(), std::string(status.message()), std::move(trailers));
    }
  }
  release(status);
}

namespace {
Metadata metadata_from(const Metadata& m, std::size_t first) {
  return Metadata(m.begin() + static_cast<std::ptrdiff_t>(std::min(first, m.size())), m.end());
}

std::int64_t cache_now(const CacheOptions& o, std::chrono::steady_clock::time_point started) {
  if (o.clock) return o.clock();
  return std::chrono::duration_cast<std::chrono::nanoseconds>(started.time_since_epoch()).count();
}
}  // namespace

bool ServerCall::answer_from_cache(std::string_view request) {
  ResponseCache& cache = *entry_->cache;
  std::string key = cache_key(request, metadata_, cache.options().vary_metadata);
  std::shared_ptr<const CachedResponse> hit = cache.lookup(key, cache_now(cache.options(), started_));
  if (!hit) {
    caching_ = true;
    cache_key_ = std::move(key);
    // What interceptors added so far belongs to this call, not to the answer.
    std::lock_guard lock(meta_mu_);
    headers_before_handler_ = headers_.size();
    trailers_before_handler_ = trailers_.size();
    return false;
  }
  from_cache_ = true;
  server_->stats_.cache_hits.fetch_add(1, std::memory_order_relaxed);
  {
    std::lock_guard lock(meta_mu_);
    headers_.insert(headers_.end(), hit->headers.begin(), hit->headers.end());
    trailers_.insert(trailers_.end(), hit->trailers.begin(), hit->trailers.end());
  }
  std::string message = hit->message;  // the cache keeps its copy
  do_finish(Status(), &message);
  return true;
}

void ServerCall::store_in_cache(const Status& status, const std::string* last_message) {
  caching_ = false;
  // Only a complete OK answer of exactly one message is worth replaying.
  if (!status.is_ok() || cancelled()) return;
  if (cached_writes_ + (last_message != nullptr ? 1 : 0) != 1) return;
  auto r = std::make_shared<CachedResponse>();
  r->message = last_message != nullptr ? *last_message : std::move(cached_message_);
  {
    std::lock_guard lock(meta_mu_);
    r->headers = metadata_from(headers_, headers_before_handler_);
    r->trailers = metadata_from(trailers_, trailers_before_handler_);
  }
  ResponseCache& cache = *entry_->cache;
  (void)cache.insert(std::move(cache_key_), std::move(r), cache_now(cache.options(), started_));
}

void ServerCall::cancel(StatusCode code) {
  if (cancelled() || released_) return;
  auto self = shared_from_this();
  cancel_code_.store(code, std::memory_order_release);
  cancelled_.store(true, std::memory_order_release);
  if (server_ != nullptr) {
    (code == StatusCode::kTimeout ? server_->stats_.deadline_exceeded : server_->stats_.cancelled)
        .fetch_add(1, std::memory_order_relaxed);
  }
  auto fns = std::move(cancel_fns_);
  cancel_fns_.clear();
  for (auto& fn : fns) invoke(fn);
  wake_writers();
}

void ServerCall::release(const Status& status) {
  if (released_) return;
  released_ = true;
  if (deadline_timer_) deadline_timer_->cancel();
  cancel_fns_.clear();
  // Writers waiting for room learn that the call ended.
  wake_writers();
  if (!writable_fns_.empty()) {
    auto fns = std::move(writable_fns_);
    writable_fns_.clear();
    writable_level_ = std::numeric_limits<std::size_t>::max();
    for (auto& fn : fns) invoke(fn);
  }
  // The session may still hold the stream (TRAILERS not yet written, or no TRAILERS after a
  // cancel): it must not call this call back once it is gone.
  if (reader_ || read_done_) {
    // The reader may be running now (it may have finished the call): drop it after this turn.
    loop_.post([self = shared_from_this()] {
      if (auto s = self->session_.lock()) s->detach_stream(self->stream_);
      self->reader_ = nullptr;
      self->read_done_ = nullptr;
    });
  } else if (auto s = session_.lock()) {
    // No reader to drop (unary and server-streaming calls): detached at once, without a loop
    // turn per call.
    s->detach_stream(stream_);
  }
  if (server_ != nullptr) server_->call_ended(*this, status);
}

void ServerCall::start(const Method* method, Server* server) {
  handler_ = method;
  server_ = server;
  if (deadline_ != std::chrono::steady_clock::time_point::max()) {
    deadline_timer_.emplace(loop_.context());
    deadline_timer_->expires_at(deadline_);
    deadline_timer_->async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
      auto self = weak.lock();
      if (ec || !self || self->finished()) return;
      // The handler learns of it; the caller gets DEADLINE_EXCEEDED if it still listens.
      self->cancel(StatusCode::kTimeout);
      self->do_finish(timed_out("deadline exceeded on the server"), nullptr);
    });
  }
  if (method == nullptr) return;
  if (method->kind == MethodKind::kClientStreaming || method->kind == MethodKind::kBidiStreaming) {
    auto run = [self = shared_from_this()] { self->invoke([&] { self->handler_->on_streaming(self); }); };
    if (method->options.blocking) {
      boost::asio::post(server->workers_, std::move(run));
    } else {
      loop_.post(std::move(run));
    }
  }
}

void ServerCall::on_message(session::Session&, std::uint64_t, Chain message) {
  if (finished() || handler_ == nullptr) return;
  auto self = shared_from_this();
  if (handler_->kind == MethodKind::kUnary || handler_->kind == MethodKind::kServerStreaming) {
    if (request_taken_) return;  // one request only; later ones are ignored
    request_taken_ = true;
    const bool cached = entry_ != nullptr && entry_->cache != nullptr && handler_->kind == MethodKind::kUnary;
    if (handler_->on_request_bytes) {
      Slice request = message.flatten();
      if (cached && answer_from_cache(request.as_string_view())) return;
      if (handler_->options.blocking) {
        request = Slice::copy_of(request);  // the worker must not hold the receive buffer
        boost::asio::post(server_->workers_, [self, m = std::move(request)]() mutable {
          self->invoke([&] { self->handler_->on_request_bytes(self, std::move(m)); });
        });
      } else {
        invoke([&] { handler_->on_request_bytes(self, std::move(request)); });
      }
      return;
    }
    std::string request = message.to_string();
    if (cached && answer_from_cache(request)) return;
    auto run = [self, m = std::move(request)]() mutable {
      self->invoke([&] { self->handler_->on_request(self, std::move(m)); });
    };
    if (handler_->options.blocking) {
      boost::asio::post(server_->workers_, std::move(run));
    } else {
      run();
    }
    return;
  }
  if (reader_) {
    invoke([&] { reader_(message.to_string()); });
  } else {
    unread_.push_back(message.to_string());
  }
}

void ServerCall::on_end(session::Session&, std::uint64_t) {
  remote_ended_ = true;
  if (finished() || handler_ == nullptr) return;
  auto self = shared_from_this();
  if (handler_->kind == MethodKind::kUnary || handler_->kind == MethodKind::kServerStreaming) {
    if (!request_taken_) do_finish(internal_error("the call ended without its request message"), nullptr);
    return;
  }
  if (reader_ && read_done_ && unread_head_ == unread_.size()) invoke([&] { read_done_(); });
}

void ServerCall::on_reset(session::Session&, std::uint64_t, const Status& reason) {
  auto self = shared_from_this();
  cancel(StatusCode::kCancelled);
  finished_.store(true, std::memory_order_release);
  release(reason.is_ok() ? ::slip::cancelled("the stream was reset") : reason);
}

// ---- Server --------------------------------------------------------------------------------

Server::Server(ServerOptions options)
    : options_(std::move(options)),
      loops_(options_.threads, options_.loop),
      shards_(loops_.size()),
      workers_(std::max<std::size_t>(1, options_.workers)) {}

Server::~Server() {
  shutdown();
  workers_.join();
}

void Server::add_service(Service& service) {
  for (const auto& [name, m] : service.methods()) {
    auto e = std::make_unique<detail::MethodEntry>();
    e->method = &m;
    e->service = &service;
    methods_[full_method_name(service.name(), name)] = std::move(e);
  }
}

void Server::add_interceptor(std::shared_ptr<ServerInterceptor> interceptor) {
  interceptors_.push_back(std::move(interceptor));
}

// Method options and interceptors may change until start(): resolve them once here.
void Server::setup_methods() {
  layout_.shards = loops_.size();
  layout_.methods.clear();
  std::vector<ServerInterceptor*> all;
  auto note = [&all](ServerInterceptor* i) {
    if (std::find(all.begin(), all.end(), i) == all.end()) all.push_back(i);
  };
  for (auto& [name, e] : methods_) {
    e->index = layout_.methods.size();
    layout_.methods.push_back(name);
    e->chain.clear();
    for (const auto& i : interceptors_) e->chain.push_back(i.get());
    for (const auto& i : e->service->interceptors()) e->chain.push_back(i.get());
    for (ServerInterceptor* i : e->chain) note(i);
    const MethodOptions& o = e->method->options;
    e->cache.reset();
    if (o.cacheable && e->method->kind == MethodKind::kUnary) {
      e->cache = std::make_unique<ResponseCache>(o.cache);
    } else if (o.cacheable) {
      SLIP_LOG_WARN("rpc server: {} is not unary: its responses are not cached", name);
    }
  }
  for (ServerInterceptor* i : all) i->on_attach(layout_);
}

std::vector<std::pair<std::string, CacheStats>> Server::cache_stats() const {
  std::vector<std::pair<std::string, CacheStats>> out;
  for (const auto& [name, e] : methods_) {
    if (e->cache) out.emplace_back(name, e->cache->stats());
  }
  return out;
}

Status Server::start() {
  const std::optional<std::string> udp_address = transport::udp::udp_url_address(options_.listen);
  SLIP_ASSIGN_OR_RETURN(transport::HostPort hp, transport::parse_host_port(udp_address ? *udp_address : options_.listen));
  setup_methods();
  loops_.start();
  started_ = true;
  auto open = [&]() -> Result<std::unique_ptr<transport::Listener>> {
    if (!udp_address) return transport::tcp_listen(loops_, hp, options_.tcp, [this](transport::ConnectionPtr c) { accept(c); });
    udp_ = true;
    // Sessions on an encrypted link: the handshake may accept what it refuses in the clear.
    options_.handshake.link_encrypted = true;
    auto u = transport::udp::udp_listen(loops_, hp, options_.udp, [this](transport::ConnectionPtr c) { accept(c); });
    if (!u.is_ok()) return u.status();
    return std::unique_ptr<transport::Listener>(std::move(u).value());
  };
  Result<std::unique_ptr<transport::Listener>> l = open();
  if (!l.is_ok()) {
    loops_.stop();
    started_ = false;
    return l.status();
  }
  listener_ = std::move(l).value();
  return Status();
}

std::string Server::address() const {
  if (!listener_) return std::string();
  if (!udp_) return listener_->local_address();
  std::string a = "udp://";
  a.append(listener_->local_address());
  return a;
}

std::uint16_t Server::port() const {
  const std::string a = address();
  auto hp = transport::parse_host_port(udp_ ? a.substr(6) : a);
  return hp.is_ok() ? hp->port : 0;
}

std::size_t Server::shard_index(io::EventLoop& loop) {
  for (std::size_t i = 0; i < loops_.size(); ++i) {
    if (&loops_.loop(i) == &loop) return i;
  }
  return 0;
}

void Server::accept(transport::ConnectionPtr conn) {
  const std::uint64_t id = next_connection_id_.fetch_add(1, std::memory_order_relaxed);
  auto s = session::Session::server(conn, options_.handshake, id, options_.session, this);
  Shard& shard = shard_of(conn->loop());
  shard.sessions.emplace(s.get(), s);
  shard.calls[s.get()].peer = std::make_shared<const detail::Peer>(detail::Peer{id, conn->peer_address()});
  open_sessions_.fetch_add(1, std::memory_order_relaxed);
  s->start();
}

Result<session::StreamHandler*> Server::on_call(session::Session& s, const wire::Call& call) {
  stats_.calls.fetch_add(1, std::memory_order_relaxed);
  auto it = methods_.find(call.method);
  // The clock is read only for a deadline, for interceptors (they are told the call's duration)
  // or for the response cache (its TTL).
  const bool timed = call.timeout_us != 0 ||
                     (it != methods_.end() && (!it->second->chain.empty() || it->second->cache != nullptr));
  const auto now = timed ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
  const auto deadline = call.timeout_us == 0 ? std::chrono::steady_clock::time_point::max()
                                             : now + std::chrono::microseconds(call.timeout_us);
  // The call object (several hundred bytes, one per call, dozens in flight) is recycled.
  auto c = std::allocate_shared<ServerCall>(RecyclingAllocator<ServerCall>(), s.connection().loop(),
                                            s.weak_from_this(), call.stream_id,
                                            it == methods_.end() ? std::string(call.method) : std::string(),
                                            to_metadata(call.metadata), deadline);
  if (it != methods_.end()) c->method_ = &it->first;
  const std::size_t shard = shard_index(s.connection().loop());
  SessionCalls& on_session = shards_[shard].calls[&s];
  on_session.by_stream[call.stream_id] = c;
  if (!on_session.peer) on_session.peer = std::make_shared<const detail::Peer>();
  c->peer_ = on_session.peer;
  c->shard_ = shard;
  c->started_ = now;
  c->session_raw_ = &s;
  c->window_ = s.options().max_stream_buffer;
  in_flight_.fetch_add(1, std::memory_order_acq_rel);
  if (it == methods_.end()) {
    stats_.unimplemented.fetch_add(1, std::memory_order_relaxed);
    c->start(nullptr, this);
    c->do_finish(unimplemented("unknown method " + c->method()), nullptr);
    return static_cast<session::StreamHandler*>(nullptr);
  }
  detail::MethodEntry& entry = *it->second;
  c->entry_ = &entry;
  c->method_index_ = entry.index;
  if (!entry.chain.empty()) {
    Status refused = run_interceptors(*c);
    if (!refused.is_ok()) {
      stats_.rejected_by_interceptor.fetch_add(1, std::memory_order_relaxed);
      c->start(nullptr, this);
      c->do_finish(refused, nullptr);
      return static_cast<session::StreamHandler*>(nullptr);
    }
  }
  const Method* m = entry.method;
  if (m->options.max_concurrency > 0) {
    auto& running = entry.running;
    if (running.fetch_add(1, std::memory_order_acq_rel) >= m->options.max_concurrency) {
      running.fetch_sub(1, std::memory_order_acq_rel);
      stats_.over_concurrency.fetch_add(1, std::memory_order_relaxed);
      c->start(nullptr, this);
      c->do_finish(overloaded("method " + c->method() + " is at its concurrency limit"), nullptr);
      return static_cast<session::StreamHandler*>(nullptr);
    }
    c->counted_ = true;
  }
  c->start(m, this);
  return static_cast<session::StreamHandler*>(c.get());
}

Status Server::run_interceptors(ServerCall& call) {
  for (ServerInterceptor* i : call.entry_->chain) {
    ++call.entered_;
    try {
      Status s = i->on_call_start(call);
      if (!s.is_ok()) return s;
    } catch (const std::exception& e) {
      stats_.interceptor_exceptions.fetch_add(1, std::memory_order_relaxed);
      SLIP_LOG_WARN("rpc {}: interceptor threw: {}", call.method(), e.what());
      return internal_error(std::string("interceptor threw: ") + e.what());
    } catch (...) {
      stats_.interceptor_exceptions.fetch_add(1, std::memory_order_relaxed);
      return internal_error("interceptor threw a non-standard exception");
    }
  }
  return Status();
}

Status Server::on_frame(session::Session& s, const wire::Frame& f) {
  if (f.type != wire::FrameType::kCancel) {
    return unimplemented(std::string(wire::frame_type_name(f.type)) + " frame is not served by an RPC server");
  }
  SLIP_ASSIGN_OR_RETURN(wire::AnyFrame any, wire::parse_frame(f, s.options().limits));
  const auto& cancel = std::get<wire::Cancel>(any);
  auto& calls = shard_of(s.connection().loop()).calls[&s].by_stream;
  auto it = calls.find(cancel.stream_id);
  if (it == calls.end()) return Status();  // already finished: frames may cross
  ServerCallPtr c = it->second;
  s.close_stream(cancel.stream_id);
  const StatusCode code = cancel.code == StatusCode::kOk ? StatusCode::kUnknown : cancel.code;
  c->cancel(code);
  c->finished_.store(true, std::memory_order_release);
  c->release(Status(code, "cancelled by the caller"));
  return Status();
}

void Server::call_ended(ServerCall& call, const Status& status) {
  if (call.counted_ && call.entry_ != nullptr) {
    call.entry_->running.fetch_sub(1, std::memory_order_acq_rel);
  }
  if (call.entered_ > 0) {
    const auto elapsed = std::chrono::steady_clock::now() - call.started_;
    const auto& chain = call.entry_->chain;
    for (std::size_t i = call.entered_; i-- > 0;) {
      try {
        chain[i]->on_call_end(call, status, elapsed);
      } catch (const std::exception& e) {
        stats_.interceptor_exceptions.fetch_add(1, std::memory_order_relaxed);
        SLIP_LOG_WARN("rpc {}: interceptor threw at the end of the call: {}", call.method(), e.what());
      } catch (...) {
        stats_.interceptor_exceptions.fetch_add(1, std::memory_order_relaxed);
      }
    }
  }
  auto& shard = shards_[call.shard_];
  auto it = shard.calls.find(call.session_raw_);
  if (it != shard.calls.end()) it->second.by_stream.erase(call.stream_);
  in_flight_.fetch_sub(1, std::memory_order_acq_rel);
}

void Server::on_closed(session::Session& s, const Status&) {
  auto& shard = shard_of(s.connection().loop());
  if (auto it = shard.calls.find(&s); it != shard.calls.end()) {
    // Streams were reset before this callback; anything left is cancelled here.
    std::vector<ServerCallPtr> left;
    for (auto& [id, c] : it->second.by_stream) left.push_back(c);
    for (auto& c : left) c->on_reset(s, c->stream_, disconnected("connection closed"));
    shard.calls.erase(&s);
  }
  if (shard.sessions.erase(&s) > 0) open_sessions_.fetch_sub(1, std::memory_order_relaxed);
}

void Server::shutdown() {
  if (!started_ || stopped_) return;
  stopped_ = true;
  if (listener_) listener_->stop();
  for (std::size_t i = 0; i < loops_.size(); ++i) {
    loops_.loop(i).post([this, i] {
      std::vector<std::shared_ptr<session::Session>> all;
      for (auto& [ptr, s] : shards_[i].sessions) all.push_back(s);
      for (auto& s : all) {
        if (s->ready()) {
          s->go_away(Status(StatusCode::kDisconnected, "server shutting down"));
        } else {
          s->abort(disconnected("server shutting down"));
        }
      }
    });
  }
  const auto deadline = std::chrono::steady_clock::now() + options_.drain_timeout;
  while (open_sessions_.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (open_sessions_.load() > 0) {
    SLIP_LOG_WARN("rpc server: {} sessions still open after the drain timeout: closing them", open_sessions_.load());
    for (std::size_t i = 0; i < loops_.size(); ++i) {
      loops_.loop(i).post([this, i] {
        std::vector<std::shared_ptr<session::Session>> all;
        for (auto& [ptr, s] : shards_[i].sessions) all.push_back(s);
        for (auto& s : all) s->abort(disconnected("server shutting down"));
      });
    }
    const auto hard = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (open_sessions_.load() > 0 && std::chrono::steady_clock::now() < hard) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
  // Blocking handlers still running see their calls cancelled; let them return while the loops
  // still run what they post.
  workers_.wait();
  for (std::size_t i = 0; i < loops_.size(); ++i) {
    std::promise<void> done;
    loops_.loop(i).post([this, i, &done] {
      shards_[i].calls.clear();
      shards_[i].sessions.clear();
      done.set_value();
    });
    done.get_future().wait();
  }
  loops_.stop();
  listener_.reset();
}

}  // namespace slip::rpc
