#include "transport/tcp/tcp.h"

#include <sys/uio.h>

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/socket_base.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <cstring>
#include <vector>

#include "core/logging.h"

namespace slip::transport {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

using ReusePort = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

// iovecs per writev: enough to gather a loop turn's worth of frames, small enough for the stack.
constexpr std::size_t kMaxIov = 64;

Status from_error_code(const boost::system::error_code& ec, std::string_view what) {
  if (ec == asio::error::eof || ec == asio::error::connection_reset || ec == asio::error::broken_pipe) {
    return disconnected(std::string(what) + ": connection closed by peer");
  }
  if (ec == asio::error::operation_aborted) return cancelled(std::string(what) + ": cancelled");
  return disconnected(std::string(what) + ": " + ec.message());
}

std::string endpoint_string(const tcp::endpoint& ep) {
  HostPort hp{ep.address().to_string(), ep.port()};
  return hp.to_string();
}

void apply_socket_options(tcp::socket& s, const TcpOptions& o) {
  boost::system::error_code ec;
  s.set_option(tcp::no_delay(o.no_delay), ec);
  if (o.send_buffer > 0) s.set_option(asio::socket_base::send_buffer_size(o.send_buffer), ec);
  if (o.receive_buffer > 0) s.set_option(asio::socket_base::receive_buffer_size(o.receive_buffer), ec);
  s.non_blocking(true, ec);
}

class TcpConnection final : public Connection, public std::enable_shared_from_this<TcpConnection> {
 public:
  TcpConnection(io::EventLoop& loop, tcp::socket socket, const TcpOptions& options)
      : loop_(loop), socket_(std::move(socket)), options_(options), linger_(loop.context()) {
    boost::system::error_code ec;
    auto ep = socket_.remote_endpoint(ec);
    peer_ = ec ? std::string("?") : endpoint_string(ep);
  }

  void start(ConnectionHandler* handler) override {
    handler_ = handler;
    read();
  }

  void send(Chain bytes) override {
    if (state_ != State::kOpen || bytes.empty()) return;
    out_.append(std::move(bytes));
    schedule_flush();
  }

  std::size_t queued_bytes() const override { return out_.size(); }

  void pause_reading() override { paused_ = true; }

  void resume_reading() override {
    if (!paused_) return;
    paused_ = false;
    if (!reading_ && state_ == State::kOpen) read();
  }

  void close() override {
    if (state_ != State::kOpen) return;
    state_ = State::kClosing;
    if (out_.empty() && !write_waiting_ && !flush_scheduled_) {
      finish(Status());
      return;
    }
    linger_.expires_after(options_.close_linger);
    linger_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (ec || self->state_ != State::kClosing) return;
      self->finish(timed_out("close: the peer did not take the last " + std::to_string(self->out_.size()) +
                             " bytes within the linger time"));
    });
  }

  void abort(Status reason) override {
    if (state_ == State::kClosed) return;
    out_.clear();
    finish(std::move(reason));
  }

  io::EventLoop& loop() override { return loop_; }
  std::string peer_address() const override { return peer_; }
  bool secure() const override { return false; }

 private:
  enum class State { kOpen, kClosing, kClosed };

  void read() {
    Buffer& b = read_buf_;
    if (b && b.unique()) b.reset();  // every Slice of it is gone: reuse from the start
    if (!b || b.tailroom() < options_.min_read) b = loop_.read_pool().get();
    reading_ = true;
    socket_.async_read_some(asio::buffer(b.tail(), b.tailroom()),
                            [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
                              self->on_read(ec, n);
                            });
  }

  void on_read(const boost::system::error_code& ec, std::size_t n) {
    reading_ = false;
    if (state_ == State::kClosed) return;
    if (ec) {
      finish(from_error_code(ec, "read"));
      return;
    }
    read_buf_.commit(n);
    handler_->on_bytes(read_buf_.slice(read_buf_.size() - n, n));
    if (state_ != State::kClosed && !paused_) read();
  }

  void schedule_flush() {
    if (flush_scheduled_ || write_waiting_) return;
    flush_scheduled_ = true;
    // Runs after the handlers already queued in this loop turn, so their sends coalesce.
    loop_.post([self = shared_from_this()] {
      self->flush_scheduled_ = false;
      self->flush();
    });
  }

  void flush() {
    if (state_ == State::kClosed) return;
    const int fd = socket_.native_handle();
    while (!out_.empty()) {
      struct iovec iov[kMaxIov];
      const std::size_t n = out_.to_iovecs(iov, kMaxIov);
      const ssize_t w = ::writev(fd, iov, static_cast<int>(n));
      if (w < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          wait_writable();
          return;
        }
        finish(disconnected(std::string("write: ") + std::strerror(errno)));
        return;
      }
      out_.consume(static_cast<std::size_t>(w));
    }
    if (state_ == State::kClosing) {
      finish(Status());
      return;
    }
    if (handler_) handler_->on_send_drained();
  }

  void wait_writable() {
    write_waiting_ = true;
    socket_.async_wait(tcp::socket::wait_write, [self = shared_from_this()](const boost::system::error_code& ec) {
      self->write_waiting_ = false;
      if (self->state_ == State::kClosed) return;
      if (ec) {
        self->finish(from_error_code(ec, "write"));
        return;
      }
      self->flush();
    });
  }

  void finish(Status reason) {
    if (state_ == State::kClosed) return;
    const bool graceful = state_ == State::kClosing && reason.is_ok();
    state_ = State::kClosed;
    linger_.cancel();
    boost::system::error_code ec;
    if (graceful) socket_.shutdown(tcp::socket::shutdown_send, ec);
    socket_.close(ec);
    out_.clear();
    // Delivered on a later turn: never from inside a call the handler made.
    loop_.post([self = shared_from_this(), reason = std::move(reason)]() mutable {
      if (self->handler_) self->handler_->on_closed(std::move(reason));
    });
  }

  io::EventLoop& loop_;
  tcp::socket socket_;
  TcpOptions options_;
  boost::asio::steady_timer linger_;
  ConnectionHandler* handler_ = nullptr;
  std::string peer_;
  Buffer read_buf_;
  Chain out_;
  State state_ = State::kOpen;
  bool paused_ = false;
  bool reading_ = false;
  bool flush_scheduled_ = false;
  bool write_waiting_ = false;
};

// The acceptors and what they share. Completion handlers hold a reference, so a handler that
// runs after the Listener is gone finds the state alive and stopped.
class TcpAcceptors final : public std::enable_shared_from_this<TcpAcceptors> {
 public:
  TcpAcceptors(io::LoopGroup& loops, const TcpOptions& options, AcceptHandler on_accept)
      : loops_(loops), options_(options), on_accept_(std::move(on_accept)) {}

  Status open(const HostPort& address) {
    boost::system::error_code ec;
    auto addr = asio::ip::make_address(address.host, ec);
    if (ec) return invalid_argument("bad listen host '" + address.host + "': " + ec.message());
    tcp::endpoint ep(addr, address.port);
    const std::size_t n = options_.reuse_port ? loops_.size() : 1;
    for (std::size_t i = 0; i < n; ++i) {
      auto& loop = loops_.loop(i);
      auto acc = std::make_unique<Acceptor>(Acceptor{loop, tcp::acceptor(loop.context())});
      acc->acceptor.open(ep.protocol(), ec);
      if (!ec) acc->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
      if (!ec && options_.reuse_port) acc->acceptor.set_option(ReusePort(true), ec);
      if (!ec) acc->acceptor.bind(ep, ec);
      if (!ec) acc->acceptor.listen(asio::socket_base::max_listen_connections, ec);
      if (ec) return disconnected("cannot listen on " + address.to_string() + ": " + ec.message());
      if (i == 0) {
        ep = acc->acceptor.local_endpoint(ec);  // the real port when 0 was asked for
        local_ = endpoint_string(ep);
      }
      acceptors_.push_back(std::move(acc));
    }
    for (auto& a : acceptors_) {
      Acceptor* acc = a.get();
      acc->loop.post([self = shared_from_this(), acc] { self->accept(*acc); });
    }
    return Status();
  }

  void stop() {
    if (stopped_.exchange(true)) return;
    for (auto& a : acceptors_) {
      Acceptor* acc = a.get();
      // An acceptor belongs to its loop's thread: close it there when that loop is running.
      if (acc->loop.in_loop_thread() || !acc->loop.running()) {
        boost::system::error_code ec;
        acc->acceptor.close(ec);
        continue;
      }
      auto done = std::make_shared<std::atomic<bool>>(false);
      acc->loop.post([self = shared_from_this(), acc, done] {
        boost::system::error_code ec;
        acc->acceptor.close(ec);
        done->store(true, std::memory_order_release);
      });
      while (!done->load(std::memory_order_acquire) && acc->loop.running()) std::this_thread::yield();
    }
  }

  const std::string& local_address() const { return local_; }

 private:
  struct Acceptor {
    io::EventLoop& loop;
    tcp::acceptor acceptor;
  };

  void accept(Acceptor& acc) {
    if (stopped_.load(std::memory_order_acquire)) return;
    acc.acceptor.async_accept(
        acc.loop.context(), [self = shared_from_this(), &acc](const boost::system::error_code& ec, tcp::socket s) {
          if (ec == asio::error::operation_aborted || self->stopped_.load(std::memory_order_acquire)) return;
          if (ec) {
            SLIP_LOG_WARN("accept on {} failed: {}", self->local_, ec.message());
          } else {
            apply_socket_options(s, self->options_);
            self->on_accept_(std::make_shared<TcpConnection>(acc.loop, std::move(s), self->options_));
          }
          self->accept(acc);
        });
  }

  io::LoopGroup& loops_;
  TcpOptions options_;
  AcceptHandler on_accept_;
  std::vector<std::unique_ptr<Acceptor>> acceptors_;
  std::string local_;
  std::atomic<bool> stopped_{false};
};

class TcpListener final : public Listener {
 public:
  explicit TcpListener(std::shared_ptr<TcpAcceptors> acceptors) : acceptors_(std::move(acceptors)) {}
  ~TcpListener() override { stop(); }
  void stop() override { acceptors_->stop(); }
  std::string local_address() const override { return acceptors_->local_address(); }

 private:
  std::shared_ptr<TcpAcceptors> acceptors_;
};

}  // namespace

Result<std::unique_ptr<Listener>> tcp_listen(io::LoopGroup& loops, const HostPort& address, const TcpOptions& options,
                                             AcceptHandler on_accept) {
  auto acceptors = std::make_shared<TcpAcceptors>(loops, options, std::move(on_accept));
  Status s = acceptors->open(address);
  if (!s.is_ok()) {
    acceptors->stop();
    return s;
  }
  return std::unique_ptr<Listener>(std::make_unique<TcpListener>(std::move(acceptors)));
}

void tcp_connect(io::EventLoop& loop, const HostPort& address, const TcpOptions& options, ConnectHandler done) {
  auto resolver = std::make_shared<tcp::resolver>(loop.context());
  resolver->async_resolve(
      address.host, std::to_string(address.port),
      [&loop, resolver, options, done = std::move(done), address](const boost::system::error_code& ec,
                                                                     tcp::resolver::results_type results) mutable {
        if (ec) {
          done(not_found("cannot resolve " + address.host + ": " + ec.message()));
          return;
        }
        auto socket = std::make_shared<tcp::socket>(loop.context());
        asio::async_connect(*socket, results,
                            [&loop, socket, options, done = std::move(done), address](
                                const boost::system::error_code& ec2, const tcp::endpoint&) mutable {
                              if (ec2) {
                                done(disconnected("cannot connect to " + address.to_string() + ": " + ec2.message()));
                                return;
                              }
                              apply_socket_options(*socket, options);
                              done(ConnectionPtr(std::make_shared<TcpConnection>(loop, std::move(*socket), options)));
                            });
      });
}

}  // namespace slip::transport
