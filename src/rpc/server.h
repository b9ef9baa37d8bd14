// RPC server: services of methods served on session streams (docs/rpc.md, docs/protocol.md
// "RPC on the wire").
//
// The core is codec-agnostic: a method takes and returns byte strings. Typed services (the
// generated code, rpc/typed.h) parse and serialize on top of it.
//
// Threading: every connection belongs to one loop of the server's LoopGroup. A call's state
// lives on that loop; ServerCall's methods may be called from any thread (they hand the work to
// the loop). Handlers of non-blocking methods run on the connection's loop and must not block;
// handlers of methods declared blocking run on the server's worker pool.
//
// Interceptors (rpc/interceptor.h) see every call of a known method before its handler; a
// cacheable unary method's OK responses are kept and replayed (rpc/response_cache.h).
#pragma once

#include <atomic>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <cstdint>
#include <condition_variable>
#include <deque>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "io/loop_group.h"
#include "rpc/common.h"
#include "rpc/interceptor.h"
#include "rpc/response_cache.h"
#include "session/session.h"
#include "transport/tcp/tcp.h"
#include "transport/udp/udp.h"

namespace slip::rpc {

class Server;
class ServerCall;
using ServerCallPtr = std::shared_ptr<ServerCall>;

// Unary and server-streaming handlers get the one request; the others read with on_read().
// A handler ends the call with finish() (exceptions it throws become INTERNAL).
using RequestHandler = std::function<void(const ServerCallPtr&, std::string request)>;
using StreamingHandler = std::function<void(const ServerCallPtr&)>;
// A unary or server-streaming handler that takes the request as it was received, without the
// copy into a std::string (no copy at all when it arrived in one piece; for blocking methods it
// is copied once, so that a handler on the worker pool never holds a receive buffer). The Slice
// holds a reference to the buffer it lies in: parse it rather than keeping it.
using RequestBytesHandler = std::function<void(const ServerCallPtr&, Slice request)>;

struct MethodOptions {
  // Runs the handler on the worker pool instead of the connection's loop.
  bool blocking = false;
  // Calls of this method running at once; 0: no limit. Over the limit: RESOURCE_EXHAUSTED.
  std::uint32_t max_concurrency = 0;
  // Unary methods only (ignored for the others): OK responses are kept in a response cache by
  // request bytes (and `cache.vary_metadata`), and a repeated request within `cache.ttl` is
  // answered from it without running the handler. Only for methods whose response depends on
  // the request alone (idempotent reads).
  bool cacheable = false;
  CacheOptions cache{};
};

struct Method {
  std::string name;  // "Get"
  MethodKind kind = MethodKind::kUnary;
  RequestHandler on_request;      // kUnary, kServerStreaming
  StreamingHandler on_streaming;  // kClientStreaming, kBidiStreaming
  MethodOptions options;
  // kUnary, kServerStreaming: used instead of on_request when set. Last, with a default, so that
  // Method{name, kind, on_request, on_streaming, options} stays complete.
  RequestBytesHandler on_request_bytes = {};
};

// A named set of methods ("package.Service"). Register methods before Server::start().
class Service {
 public:
  explicit Service(std::string name) : name_(std::move(name)) {}
  virtual ~Service() = default;
  const std::string& name() const { return name_; }

  void add_method(Method m) { methods_[m.name] = std::move(m); }
  // Changes options of a registered method (false: no such method).
  bool set_method_options(const std::string& method, MethodOptions o);
  // Makes a registered unary method cacheable with `cache` (false: no such unary method);
  // its other options stay. For generated services: `impl.set_cacheable("Get", {...})`.
  bool set_cacheable(const std::string& method, CacheOptions cache = {});
  const std::map<std::string, Method>& methods() const { return methods_; }

  // Interceptors for this service's calls only, after the server's own. Before Server::start().
  void add_interceptor(std::shared_ptr<ServerInterceptor> interceptor) {
    interceptors_.push_back(std::move(interceptor));
  }
  const std::vector<std::shared_ptr<ServerInterceptor>>& interceptors() const { return interceptors_; }

 private:
  std::string name_;
  std::map<std::string, Method> methods_;
  std::vector<std::shared_ptr<ServerInterceptor>> interceptors_;
};

namespace detail {
// Who a server connection is: shared by the calls on it, so that they outlive the connection.
struct Peer {
  std::uint64_t connection_id = 0;
  std::string address;  // "127.0.0.1:53012"
};
// A served method: what the server resolves per call (set up by Server::start()).
struct MethodEntry {
  const Method* method = nullptr;
  const Service* service = nullptr;
  std::size_t index = 0;                    // in ServerLayout::methods
  std::vector<ServerInterceptor*> chain;    // server's, then the service's
  std::unique_ptr<ResponseCache> cache;     // cacheable unary methods
  std::atomic<std::uint32_t> running{0};    // calls counted against max_concurrency
};
}  // namespace detail

// One call on the server. Reference-counted: the server holds it until it ends; a handler may
// keep it (e.g. to finish later from another thread).
class ServerCall : public session::StreamHandler, public std::enable_shared_from_this<ServerCall> {
 public:
  ServerCall(io::EventLoop& loop, std::weak_ptr<session::Session> session, std::uint64_t stream, std::string method,
             Metadata metadata, std::chrono::steady_clock::time_point deadline);
  ~ServerCall() override;

  const std::string& method() const { return *method_; }  // "/package.Service/Method"
  const Metadata& metadata() const { return metadata_; }
  // steady_clock::time_point::max() without a deadline.
  std::chrono::steady_clock::time_point deadline() const { return deadline_; }
  // When the CALL frame arrived.
  std::chrono::steady_clock::time_point started() const { return started_; }
  // The caller's address ("127.0.0.1:53012") and the server's number for its connection.
  const std::string& peer() const { return peer_ ? peer_->address : kNoPeer.address; }
  std::uint64_t connection_id() const { return peer_ ? peer_->connection_id : 0; }
  // The loop the call lives on (below ServerLayout::shards) and its method's index in
  // ServerLayout::methods (SIZE_MAX for an unknown method).
  std::size_t shard() const { return shard_; }
  std::size_t method_index() const { return method_index_; }
  // The response came from the method's response cache; the handler did not run.
  bool served_from_cache() const { return from_cache_; }

  // The caller cancelled, the deadline passed or the connection went away. Any thread.
  bool cancelled() const { return cancelled_.load(std::memory_order_acquire); }
  // kCancelled or kTimeout once cancelled().
  StatusCode cancel_code() const { return cancel_code_.load(std::memory_order_acquire); }
  // Runs fn (on the loop) when the call is cancelled; at once if it already is. Any thread.
  void on_cancel(std::function<void()> fn);

  // Response headers (sent with the first message or at finish) and trailers. Before finish().
  void add_header(std::string key, std::string value);
  void add_trailer(std::string key, std::string value);

  // Streaming requests: fn gets each request message, then on_done once the caller ended its
  // side. Messages that arrived before are delivered first. Callbacks run on the loop.
  void on_read(std::function<void(std::string)> fn, std::function<void()> on_done = {});

  // Sends a response message. False once the call ended or was cancelled. Any thread. It never
  // waits: a message past the call's window that the session cannot hold ends the call with
  // RESOURCE_EXHAUSTED (ServerStats::response_overflows). Writers that may outrun their reader
  // use write_wait(), or can_write() and when_writable().
  bool write(std::string message);

  // Flow control of responses. The call's window is the session's max_stream_buffer: response
  // bytes written and not yet sent (held back by the caller's flow-control credit, i.e. a slow
  // reader, or by a full socket). A writer that keeps to it never ends the call with an
  // overflow and the call's memory stays within the window (one message always fits).
  //
  // Waits (this thread) until `message` fits the window, then writes it, as gRPC's synchronous
  // ServerWriter::Write does. False once the call ended or was cancelled (whoever waits is
  // woken). Blocking methods (on a worker) only: on the call's loop it cannot wait and is write().
  bool write_wait(std::string message);
  // Whether a write of `bytes` now stays within the window (one message always fits an empty
  // one). A false may be stale (bytes left since the loop last looked): when_writable() looks
  // again. Any thread.
  bool can_write(std::size_t bytes = 1) const {
    const std::size_t q = queued_bytes();
    return q == 0 || (bytes <= window_ && q <= window_ - bytes);
  }
  // Runs fn once, on the loop, when a write of `bytes` fits the window again and at most half
  // the window is queued (on the next loop turn if that is so now; never inside this call), or
  // once the call has ended (check finished()). For handlers on the loop, which cannot wait:
  // write while can_write(bytes), then continue from here; the callback then finds
  // can_write(bytes) true, unless another thread wrote meanwhile. Any thread.
  void when_writable(std::function<void()> fn, std::size_t bytes = 1);
  // Response bytes queued for the caller (written, not yet sent), as last seen on the loop
  // plus writes on their way to it; and the most there ever were at once. Any thread.
  std::size_t queued_bytes() const {
    return posted_bytes_.load(std::memory_order_acquire) + session_bytes_.load(std::memory_order_acquire);
  }
  std::size_t queued_bytes_max() const { return queued_max_.load(std::memory_order_relaxed); }
  std::size_t write_window() const { return window_; }
  // Ends the call with `status` (and, when given, one last response message first). Later
  // calls are ignored. Any thread.
  void finish(const Status& status);
  void finish(const Status& status, std::string last_message);

  bool finished() const { return finished_.load(std::memory_order_acquire); }

  // session::StreamHandler (on the loop)
  void on_message(session::Session& s, std::uint64_t stream, Chain message) override;
  void on_end(session::Session& s, std::uint64_t stream) override;
  void on_reset(session::Session& s, std::uint64_t stream, const Status& reason) override;
  void on_writable(session::Session& s, std::uint64_t stream) override;

 private:
  friend class Server;
  template <typename Fn>
  void in_loop(Fn fn);
  void start(const Method* method, Server* server);
  // Runs a handler's code: an exception it throws ends the call with INTERNAL.
  template <typename Fn>
  void invoke(Fn&& fn);
  // `posted`: bytes of this message counted in posted_bytes_ by the thread that wrote it.
  void do_write(std::string message, std::size_t posted);
  // Loop: takes the session's count of queued bytes; a writer waiting for `need` bytes of room
  // is woken when they fit, else the session is asked to say when they do.
  void refresh_queued(session::Session* s);
  void check_room(std::size_t need);
  void wake_writers();
  // `last_message` (may be null) is moved into the send buffers.
  void do_finish(const Status& status, std::string* last_message);
  void cancel(StatusCode code);
  void send_headers_if_needed(session::Session& s);
  // `status`: how the call ended, for the interceptors.
  void release(const Status& status);
  // Unary request of a cacheable method: true when answered from the cache.
  bool answer_from_cache(std::string_view request);
  void store_in_cache(const Status& status, const std::string* last_message);

  io::EventLoop& loop_;
  std::weak_ptr<session::Session> session_;
  session::Session* session_raw_ = nullptr;  // the server's key for this call's session
  std::uint64_t stream_;
  // The served method's registered name, or own_method_ for an unknown one (no copy per call).
  std::string own_method_;
  const std::string* method_ = &own_method_;
  Metadata metadata_;
  std::chrono::steady_clock::time_point deadline_;
  std::chrono::steady_clock::time_point started_;
  std::shared_ptr<const detail::Peer> peer_;
  static inline const detail::Peer kNoPeer{};
  std::size_t shard_ = 0;
  std::size_t method_index_ = SIZE_MAX;
  std::optional<boost::asio::steady_timer> deadline_timer_;  // calls with a deadline only
  const Method* handler_ = nullptr;
  detail::MethodEntry* entry_ = nullptr;
  Server* server_ = nullptr;

  std::atomic<bool> cancelled_{false};
  std::atomic<StatusCode> cancel_code_{StatusCode::kOk};
  std::atomic<bool> finished_{false};
  // Loop-only state.
  bool headers_sent_ = false;
  bool request_taken_ = false;
  bool remote_ended_ = false;
  bool released_ = false;
  bool counted_ = false;  // holds a slot of the method's concurrency limit
  std::size_t entered_ = 0;  // interceptors whose on_call_start ran
  // Response cache (cacheable unary methods): the key of this call's request while its response
  // may still be stored, and the one response message written so far.
  bool caching_ = false;
  bool from_cache_ = false;
  std::string cache_key_;
  std::string cached_message_;
  int cached_writes_ = 0;
  std::size_t headers_before_handler_ = 0;   // headers_ and trailers_ entries the interceptors
  std::size_t trailers_before_handler_ = 0;  // added, which a cached answer does not keep
  std::mutex meta_mu_;  // headers_ and trailers_: set from a handler's thread
  Metadata headers_;
  Metadata trailers_;
  // Streaming requests that came before on_read(): unread_[unread_head_..]. (A vector: a deque
  // would allocate for every call, streaming or not.)
  std::vector<std::string> unread_;
  std::size_t unread_head_ = 0;
  std::function<void(std::string)> reader_;
  std::function<void()> read_done_;
  std::vector<std::function<void()>> cancel_fns_;
  // Flow control of responses.
  std::size_t window_ = std::numeric_limits<std::size_t>::max();
  std::atomic<std::size_t> posted_bytes_{0};   // written on another thread, not yet on the loop
  std::atomic<std::size_t> session_bytes_{0};  // the stream's send buffer when the loop last looked
  std::atomic<std::size_t> queued_max_{0};
  std::mutex flow_mu_;  // writers waiting for room
  std::condition_variable flow_cv_;
  std::vector<std::function<void()>> writable_fns_;  // loop only
  // The queued bytes at which writable_fns_ run: the lowest any of them asked for. Loop only.
  std::size_t writable_level_ = std::numeric_limits<std::size_t>::max();
  // The level when_writable(bytes) waits for.
  std::size_t writable_level(std::size_t bytes) const {
    return std::min(window_ / 2, bytes >= window_ ? 0 : window_ - bytes);
  }
};

struct ServerOptions {
  // "HOST:PORT" listens on TCP; "udp://HOST:PORT" on encrypted reliable UDP, with udp.static_key
  // the server's key pair (clients pin its public key).
  std::string listen = "127.0.0.1:0";
  std::size_t threads = 1;  // event loops
  io::LoopOptions loop{};
  std::size_t workers = 2;  // threads for blocking handlers
  transport::TcpOptions tcp;
  transport::udp::UdpOptions udp;
  wire::ServerHandshakeConfig handshake;
  session::SessionOptions session;
  // How long shutdown() lets calls in flight finish.
  std::chrono::milliseconds drain_timeout{5000};
};

struct ServerStats {
  std::atomic<std::uint64_t> calls{0};
  std::atomic<std::uint64_t> unimplemented{0};
  std::atomic<std::uint64_t> handler_exceptions{0};
  std::atomic<std::uint64_t> deadline_exceeded{0};
  std::atomic<std::uint64_t> cancelled{0};
  std::atomic<std::uint64_t> over_concurrency{0};
  std::atomic<std::uint64_t> rejected_by_interceptor{0};
  std::atomic<std::uint64_t> interceptor_exceptions{0};
  std::atomic<std::uint64_t> cache_hits{0};
  // Calls ended with RESOURCE_EXHAUSTED because a response did not fit the stream's send
  // buffer (the caller reads more slowly than the handler writes).
  std::atomic<std::uint64_t> response_overflows{0};
  // Writers that had to wait for room (write_wait() calls that waited, when_writable() callbacks
  // that were deferred), and write_wait() calls waiting now.
  std::atomic<std::uint64_t> write_waits{0};
  std::atomic<std::uint64_t> writers_waiting{0};
  // The most response bytes one call had queued at once (see ServerCall::queued_bytes).
  std::atomic<std::uint64_t> response_queued_max{0};
};

class Server final : public session::SessionHandler {
 public:
  explicit Server(ServerOptions options = {});
  ~Server() override;

  // Services must outlive the server; register before start().
  void add_service(Service& service);
  // Interceptors for every call, in order (before each service's own). Before start().
  void add_interceptor(std::shared_ptr<ServerInterceptor> interceptor);
  Status start();
  // "127.0.0.1:port" once started.
  std::string address() const;
  std::uint16_t port() const;
  // Stops accepting, lets calls in flight finish (up to drain_timeout), then closes. Idempotent.
  void shutdown();

  const ServerStats& stats() const { return stats_; }
  // Methods and loops, as the interceptors were told at start().
  const ServerLayout& layout() const { return layout_; }
  // The response cache of each cacheable method ("/pkg.Service/Method"), once started. Any
  // thread.
  std::vector<std::pair<std::string, CacheStats>> cache_stats() const;
  std::size_t calls_in_flight() const { return in_flight_.load(std::memory_order_acquire); }

  // session::SessionHandler (on a loop)
  Result<session::StreamHandler*> on_call(session::Session& s, const wire::Call& call) override;
  Status on_frame(session::Session& s, const wire::Frame& f) override;
  void on_closed(session::Session& s, const Status& reason) override;

 private:
  friend class ServerCall;
  struct SessionCalls {
    std::shared_ptr<const detail::Peer> peer;
    std::unordered_map<std::uint64_t, ServerCallPtr> by_stream;
  };
  struct Shard {
    std::unordered_map<session::Session*, std::shared_ptr<session::Session>> sessions;
    // Calls in flight per session.
    std::unordered_map<session::Session*, SessionCalls> calls;
  };
  std::size_t shard_index(io::EventLoop& loop);
  Shard& shard_of(io::EventLoop& loop) { return shards_[shard_index(loop)]; }
  void accept(transport::ConnectionPtr conn);
  void setup_methods();
  // Runs the method's interceptors; the first refusal, if any.
  Status run_interceptors(ServerCall& call);
  void call_ended(ServerCall& call, const Status& status);

  ServerOptions options_;
  std::map<std::string, std::unique_ptr<detail::MethodEntry>, std::less<>> methods_;  // "/pkg.Service/Method"
  std::vector<std::shared_ptr<ServerInterceptor>> interceptors_;
  ServerLayout layout_;
  io::LoopGroup loops_;
  std::vector<Shard> shards_;
  std::unique_ptr<transport::Listener> listener_;
  bool udp_ = false;  // listener_ is a udp:// one
  boost::asio::thread_pool workers_;
  std::atomic<std::uint64_t> next_connection_id_{1};
  std::atomic<std::size_t> open_sessions_{0};
  std::atomic<std::size_t> in_flight_{0};
  ServerStats stats_;
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace slip::rpc
