#include "gateway/http/http_server.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <deque>
#include <future>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "core/logging.h"

namespace slip::gateway::http {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;

namespace {

class Conn;

}  // namespace

struct HttpServer::Impl {
  explicit Impl(HttpOptions o) : options(o) {}

  HttpOptions options;
  net::io_context ctx;
  std::optional<tcp::acceptor> acceptor;
  std::thread thread;
  std::map<std::string, Handler> routes;
  std::map<std::string, Handler> prefix_routes;
  // The exact route for `path`, else the longest prefix route matching it, else null.
  const Handler* find_route(const std::string& path) const {
    if (auto it = routes.find(path); it != routes.end()) return &it->second;
    const Handler* best = nullptr;
    std::size_t best_len = 0;
    for (const auto& [prefix, h] : prefix_routes) {
      if (prefix.size() >= best_len && path.size() > prefix.size() && path.compare(0, prefix.size(), prefix) == 0) {
        best = &h;
        best_len = prefix.size();
      }
    }
    return best;
  }
  struct Stream {
    std::string last;  // the last event, framed
    std::set<std::shared_ptr<Conn>> readers;
  };
  std::map<std::string, Stream> streams;
  struct Periodic {
    std::chrono::milliseconds period;
    std::function<void()> fn;
    std::unique_ptr<net::steady_timer> timer;
  };
  std::vector<std::unique_ptr<Periodic>> periodic;
  std::set<std::shared_ptr<Conn>> conns;
  std::string local;
  bool started = false;
  bool stopping = false;

  void accept();
  void arm(Periodic& p);
};

namespace {

std::string frame_event(const std::string& data) {
  // One "data:" line per line of the payload, then a blank line.
  std::string out;
  std::size_t start = 0;
  while (true) {
    const std::size_t nl = data.find('\n', start);
    out += "data: ";
    out.append(data, start, nl == std::string::npos ? std::string::npos : nl - start);
    out += '\n';
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  out += '\n';
  return out;
}

class Conn : public std::enable_shared_from_this<Conn> {
 public:
  Conn(HttpServer::Impl& impl, tcp::socket s) : impl_(impl), stream_(std::move(s)) {}

  void start() { read(); }

  void close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.socket().close(ec);
  }

  // Event streams: queue one framed event; a reader that falls too far behind is dropped.
  void push_event(const std::string& framed) {
    if (out_.size() >= impl_.options.max_queued_events) {
      SLIP_LOG_DEBUG("http: event-stream reader too slow, closing");
      finish();
      return;
    }
    write(framed, true);
  }

 private:
  void read() {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(impl_.options.max_header_bytes));
    parser_->body_limit(impl_.options.max_body_bytes);
    stream_.expires_after(impl_.options.idle_timeout);
    bhttp::async_read(stream_, buffer_, *parser_,
                      [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (ec == bhttp::error::header_limit) {
      respond_error(431, "request header too large\n");
      return;
    }
    if (ec == bhttp::error::body_limit) {
      respond_error(413, "request body too large\n");
      return;
    }
    if (ec) {
      finish();
      return;
    }
    handle(parser_->get());
  }

  void respond_error(int status, std::string text) {
    bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(status), 11};
    res.set(bhttp::field::content_type, "text/plain; charset=utf-8");
    res.set(bhttp::field::connection, "close");
    res.body() = std::move(text);
    res.prepare_payload();
    std::ostringstream os;
    os << res;
    write(os.str(), false);
  }

  void handle(const bhttp::request<bhttp::string_body>& req) {
    const std::string target(req.target());
    const std::size_t q = target.find('?');
    Request r;
    r.method = std::string(req.method_string());
    r.path = target.substr(0, q);
    if (q != std::string::npos) r.query = target.substr(q + 1);
    const bool head = req.method() == bhttp::verb::head;
    const bool get = req.method() == bhttp::verb::get;

    const Handler* route = impl_.find_route(r.path);
    auto stream = impl_.streams.find(r.path);
    const bool known = route != nullptr || stream != impl_.streams.end();
    Response out;
    if (!known) {
      out.status = 404;
      out.body = "not found: " + r.path + "\n";
    } else if (!get && !head) {
      out.status = 405;
      out.body = "method " + r.method + " not allowed on " + r.path + "\n";
      out.headers.emplace_back("Allow", "GET, HEAD");
    } else if (stream != impl_.streams.end() && get) {
      start_event_stream(stream->second);
      return;
    } else if (route != nullptr) {
      out = (*route)(r);
    } else {
      out.content_type = "text/event-stream";
    }

    bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(out.status), req.version()};
    res.set(bhttp::field::server, "slipd");
    res.set(bhttp::field::content_type, out.content_type);
    for (const auto& [k, v] : out.headers) res.set(k, v);
    res.keep_alive(req.keep_alive());
    res.body() = std::move(out.body);
    res.prepare_payload();
    if (head) res.body().clear();  // Content-Length stays that of the GET
    std::ostringstream os;
    if (head) {
      os << res.base();
    } else {
      os << res;
    }
    write(os.str(), req.keep_alive());
  }

  void start_event_stream(HttpServer::Impl::Stream& s) {
    streaming_ = true;
    stream_.expires_never();
    write(
        "HTTP/1.1 200 OK\r\nServer: slipd\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
        "Connection: close\r\nX-Accel-Buffering: no\r\n\r\n",
        true);
    if (!s.last.empty()) write(s.last, true);
    stream_ptr_ = &s;
    s.readers.insert(shared_from_this());
    // Read (and discard) until the reader goes away, to notice it.
    auto self = shared_from_this();
    stream_.async_read_some(net::buffer(sink_), [self](beast::error_code ec, std::size_t) { self->on_sink(ec); });
  }

  void on_sink(beast::error_code ec) {
    if (ec) {
      finish();
      return;
    }
    auto self = shared_from_this();
    stream_.async_read_some(net::buffer(sink_), [self](beast::error_code e, std::size_t) { self->on_sink(e); });
  }

  void write(std::string data, bool keep_alive) {
    out_.push_back(std::move(data));
    keep_alive_ = keep_alive;
    if (writing_) return;
    write_next();
  }

  void write_next() {
    writing_ = true;
    net::async_write(stream_.socket(), net::buffer(out_.front()),
                     [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_written(ec); });
  }

  void on_written(beast::error_code ec) {
    out_.pop_front();
    writing_ = false;
    if (ec) {
      finish();
      return;
    }
    if (!out_.empty()) {
      write_next();
      return;
    }
    if (streaming_) return;
    if (!keep_alive_) {
      finish();
      return;
    }
    read();
  }

  void finish() {
    if (finished_) return;
    finished_ = true;
    close();
    auto self = shared_from_this();
    if (stream_ptr_ != nullptr) stream_ptr_->readers.erase(self);
    impl_.conns.erase(self);
  }

  HttpServer::Impl& impl_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::deque<std::string> out_;
  bool writing_ = false;
  bool keep_alive_ = true;
  bool streaming_ = false;
  bool finished_ = false;
  HttpServer::Impl::Stream* stream_ptr_ = nullptr;
  char sink_[256];
};

}  // namespace

void HttpServer::Impl::accept() {
  acceptor->async_accept([this](beast::error_code ec, tcp::socket s) {
    if (ec) {
      if (!stopping && ec != net::error::operation_aborted) accept();
      return;
    }
    if (conns.size() >= options.max_connections) {
      beast::error_code ignored;
      s.close(ignored);
    } else {
      auto c = std::make_shared<Conn>(*this, std::move(s));
      conns.insert(c);
      c->start();
    }
    accept();
  });
}

void HttpServer::Impl::arm(Periodic& p) {
  p.timer->expires_after(p.period);
  p.timer->async_wait([this, &p](beast::error_code ec) {
    if (ec || stopping) return;
    p.fn();
    arm(p);
  });
}

HttpServer::HttpServer(HttpOptions options) : impl_(std::make_unique<Impl>(options)) {}

HttpServer::~HttpServer() { stop(); }

void HttpServer::route(std::string path, Handler handler) { impl_->routes[std::move(path)] = std::move(handler); }

void HttpServer::route_prefix(std::string prefix, Handler handler) {
  impl_->prefix_routes[std::move(prefix)] = std::move(handler);
}

void HttpServer::event_stream(std::string path) { impl_->streams[std::move(path)]; }

void HttpServer::every(std::chrono::milliseconds period, std::function<void()> fn) {
  auto p = std::make_unique<Impl::Periodic>();
  p->period = period;
  p->fn = std::move(fn);
  p->timer = std::make_unique<net::steady_timer>(impl_->ctx);
  impl_->periodic.push_back(std::move(p));
}

Status HttpServer::start(const transport::HostPort& at) {
  Impl& im = *impl_;
  beast::error_code ec;
  auto addr = net::ip::make_address(at.host.empty() ? "0.0.0.0" : at.host, ec);
  if (ec) {
    tcp::resolver resolver(im.ctx);
    auto results = resolver.resolve(at.host, std::to_string(at.port), ec);
    if (ec || results.empty()) return invalid_argument("http: cannot resolve " + at.host + ": " + ec.message());
    addr = results.begin()->endpoint().address();
  }
  tcp::endpoint ep(addr, at.port);
  im.acceptor.emplace(im.ctx);
  im.acceptor->open(ep.protocol(), ec);
  if (!ec) im.acceptor->set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) im.acceptor->bind(ep, ec);
  if (!ec) im.acceptor->listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    im.acceptor.reset();
    return failed_precondition("http: cannot listen on " + at.host + ":" + std::to_string(at.port) + ": " + ec.message());
  }
  const auto local = im.acceptor->local_endpoint();
  im.local = (local.address().is_v6() ? "[" + local.address().to_string() + "]" : local.address().to_string()) + ":" +
             std::to_string(local.port());
  im.accept();
  for (auto& p : im.periodic) im.arm(*p);
  im.started = true;
  im.thread = std::thread([&im] { im.ctx.run(); });
  return Status();
}

void HttpServer::stop() {
  Impl& im = *impl_;
  if (!im.started) return;
  im.started = false;
  std::promise<void> closed;
  net::post(im.ctx, [&im, &closed] {
    im.stopping = true;
    beast::error_code ec;
    if (im.acceptor) im.acceptor->close(ec);
    for (auto& p : im.periodic) p->timer->cancel();
    for (const auto& c : im.conns) c->close();
    closed.set_value();
  });
  closed.get_future().wait();
  im.ctx.stop();
  im.thread.join();
  im.conns.clear();
  for (auto& [path, s] : im.streams) s.readers.clear();
}

std::string HttpServer::local_address() const { return impl_->local; }

void HttpServer::broadcast(const std::string& path, const std::string& data) {
  auto it = impl_->streams.find(path);
  if (it == impl_->streams.end()) return;
  it->second.last = frame_event(data);
  // Copy: a slow reader removes itself while we iterate.
  std::vector<std::shared_ptr<Conn>> readers(it->second.readers.begin(), it->second.readers.end());
  for (auto& r : readers) r->push_event(it->second.last);
}

}  // namespace slip::gateway::http
