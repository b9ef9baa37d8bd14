#include "transport/tcp/sockets.h"

#include <netinet/tcp.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/socket_base.hpp>
#include <thread>

#include "core/logging.h"

namespace slip::transport::detail {

namespace asio = boost::asio;

namespace {
using ReusePort = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;
using NotSentLowat = asio::detail::socket_option::integer<IPPROTO_TCP, TCP_NOTSENT_LOWAT>;
}  // namespace

void apply_socket_options(tcp::socket& s, const TcpOptions& o) {
  boost::system::error_code ec;
  s.set_option(tcp::no_delay(o.no_delay), ec);
  if (o.send_buffer > 0) s.set_option(asio::socket_base::send_buffer_size(o.send_buffer), ec);
  if (o.receive_buffer > 0) s.set_option(asio::socket_base::receive_buffer_size(o.receive_buffer), ec);
  if (o.notsent_lowat > 0) s.set_option(NotSentLowat(o.notsent_lowat), ec);
  s.non_blocking(true, ec);
}

std::string endpoint_string(const tcp::endpoint& ep) {
  HostPort hp{ep.address().to_string(), ep.port()};
  return hp.to_string();
}

SocketAcceptors::SocketAcceptors(io::LoopGroup& loops, const TcpOptions& options, SocketHandler on_socket)
    : loops_(loops), options_(options), on_socket_(std::move(on_socket)) {}

Status SocketAcceptors::open(const HostPort& address) {
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

void SocketAcceptors::stop() {
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

void SocketAcceptors::accept(Acceptor& acc) {
  if (stopped()) return;
  acc.acceptor.async_accept(acc.loop.context(),
                            [self = shared_from_this(), &acc](const boost::system::error_code& ec, tcp::socket s) {
                              if (ec == asio::error::operation_aborted || self->stopped()) return;
                              if (ec) {
                                SLIP_LOG_WARN("accept on {} failed: {}", self->local_, ec.message());
                              } else {
                                apply_socket_options(s, self->options_);
                                self->on_socket_(acc.loop, std::move(s));
                              }
                              self->accept(acc);
                            });
}

Result<std::unique_ptr<Listener>> listen_sockets(io::LoopGroup& loops, const HostPort& address,
                                                 const TcpOptions& options, SocketHandler on_socket) {
  auto acceptors = std::make_shared<SocketAcceptors>(loops, options, std::move(on_socket));
  Status s = acceptors->open(address);
  if (!s.is_ok()) {
    acceptors->stop();
    return s;
  }
  return std::unique_ptr<Listener>(std::make_unique<AcceptorsListener>(std::move(acceptors)));
}

void dial(io::EventLoop& loop, const HostPort& address, const TcpOptions& options,
          std::function<void(Result<std::shared_ptr<tcp::socket>>)> done) {
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
                            [socket, options, done = std::move(done), address](const boost::system::error_code& ec2,
                                                                               const tcp::endpoint&) mutable {
                              if (ec2) {
                                done(disconnected("cannot connect to " + address.to_string() + ": " + ec2.message()));
                                return;
                              }
                              apply_socket_options(*socket, options);
                              done(socket);
                            });
      });
}

}  // namespace slip::transport::detail
