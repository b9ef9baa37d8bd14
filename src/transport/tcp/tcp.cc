#include "transport/tcp/tcp.h"

#include <sys/uio.h>

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/socket_base.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <cstring>
#include <deque>
#include <vector>

#include "core/logging.h"
#include "transport/tcp/sockets.h"

namespace slip::transport {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

// iovecs per writev: enough to gather a loop turn's worth of frames (a message sent by reference
// takes two), small enough for the stack.
constexpr std::size_t kMaxIov = 256;

// Bytes waiting for the socket. A queue, not a Chain: a slow reader can have hundreds of
// thousands of slices waiting (every payload sent by reference is one), and dropping the written
// ones from the front must cost what was written, not what is still waiting (a Chain erases from
// the front of a vector, which made draining such a backlog quadratic).
class SendQueue {
 public:
  void append(Chain&& c) {
    for (const Slice& s : c) q_.push_back(s);
    bytes_ += c.size();
    c.clear();
  }
  std::size_t size() const { return bytes_; }
  bool empty() const { return bytes_ == 0; }
  void clear() {
    q_.clear();
    bytes_ = 0;
  }
  std::size_t to_iovecs(struct iovec* out, std::size_t max) const {
    std::size_t n = 0;
    for (auto it = q_.begin(); it != q_.end() && n < max; ++it, ++n) {
      out[n].iov_base = const_cast<std::uint8_t*>(it->data());
      out[n].iov_len = it->size();
    }
    return n;
  }
  // Drops the first n bytes. Precondition: n <= size().
  void consume(std::size_t n) {
    bytes_ -= n;
    while (n > 0 && n >= q_.front().size()) {
      n -= q_.front().size();
      q_.pop_front();
    }
    if (n > 0) q_.front().remove_prefix(n);
  }

 private:
  std::deque<Slice> q_;
  std::size_t bytes_ = 0;
};

Status from_error_code(const boost::system::error_code& ec, std::string_view what) {
  if (ec == asio::error::eof || ec == asio::error::connection_reset || ec == asio::error::broken_pipe) {
    return disconnected(std::string(what) + ": connection closed by peer");
  }
  if (ec == asio::error::operation_aborted) return cancelled(std::string(what) + ": cancelled");
  return disconnected(std::string(what) + ": " + ec.message());
}

class TcpConnection final : public Connection, public std::enable_shared_from_this<TcpConnection> {
 public:
  TcpConnection(io::EventLoop& loop, tcp::socket socket, const TcpOptions& options)
      : loop_(loop), socket_(std::move(socket)), options_(options), linger_(loop.context()) {
    boost::system::error_code ec;
    auto ep = socket_.remote_endpoint(ec);
    peer_ = ec ? std::string("?") : detail::endpoint_string(ep);
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
  SendQueue out_;
  State state_ = State::kOpen;
  bool paused_ = false;
  bool reading_ = false;
  bool flush_scheduled_ = false;
  bool write_waiting_ = false;
};

}  // namespace

Result<std::unique_ptr<Listener>> tcp_listen(io::LoopGroup& loops, const HostPort& address, const TcpOptions& options,
                                             AcceptHandler on_accept) {
  return detail::listen_sockets(loops, address, options,
                                [options, on_accept = std::move(on_accept)](io::EventLoop& loop, tcp::socket s) {
                                  on_accept(std::make_shared<TcpConnection>(loop, std::move(s), options));
                                });
}

void tcp_connect(io::EventLoop& loop, const HostPort& address, const TcpOptions& options, ConnectHandler done) {
  detail::dial(loop, address, options,
               [&loop, options, done = std::move(done)](Result<std::shared_ptr<tcp::socket>> s) mutable {
                 if (!s.is_ok()) {
                   done(s.status());
                   return;
                 }
                 done(ConnectionPtr(std::make_shared<TcpConnection>(loop, std::move(**s), options)));
               });
}

}  // namespace slip::transport
