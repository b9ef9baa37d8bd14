// What the TCP and TLS transports share below their connections: socket options, acceptors on
// every loop, and dialing. Internal to transport/.
#pragma once

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "io/loop_group.h"
#include "transport/tcp/tcp.h"

namespace slip::transport::detail {

using boost::asio::ip::tcp;

// TCP_NODELAY, buffer sizes, TCP_NOTSENT_LOWAT, non-blocking mode.
void apply_socket_options(tcp::socket& s, const TcpOptions& o);
// "127.0.0.1:4300", "[::1]:4300".
std::string endpoint_string(const tcp::endpoint& ep);

// Called on the loop that owns the new socket, with the options already applied.
using SocketHandler = std::function<void(io::EventLoop& loop, tcp::socket socket)>;

// One acceptor per loop on the same port (SO_REUSEPORT; one in all without it). Completion
// handlers hold a reference, so one that runs after the owner let go finds it stopped.
class SocketAcceptors final : public std::enable_shared_from_this<SocketAcceptors> {
 public:
  SocketAcceptors(io::LoopGroup& loops, const TcpOptions& options, SocketHandler on_socket);

  // Binds and starts accepting. Returns kInvalidArgument for a bad host, kDisconnected when
  // the address cannot be bound.
  Status open(const HostPort& address);
  // Stops accepting. Safe from any thread; idempotent.
  void stop();
  bool stopped() const { return stopped_.load(std::memory_order_acquire); }
  const std::string& local_address() const { return local_; }

 private:
  struct Acceptor {
    io::EventLoop& loop;
    tcp::acceptor acceptor;
  };
  void accept(Acceptor& acc);

  io::LoopGroup& loops_;
  TcpOptions options_;
  SocketHandler on_socket_;
  std::vector<std::unique_ptr<Acceptor>> acceptors_;
  std::string local_;
  std::atomic<bool> stopped_{false};
};

// A Listener over SocketAcceptors: stopping it, or dropping it, stops them.
class AcceptorsListener final : public Listener {
 public:
  explicit AcceptorsListener(std::shared_ptr<SocketAcceptors> acceptors) : acceptors_(std::move(acceptors)) {}
  ~AcceptorsListener() override { stop(); }
  void stop() override { acceptors_->stop(); }
  std::string local_address() const override { return acceptors_->local_address(); }

 private:
  std::shared_ptr<SocketAcceptors> acceptors_;
};

// Opens acceptors and wraps them in a Listener (stopped again if opening fails).
Result<std::unique_ptr<Listener>> listen_sockets(io::LoopGroup& loops, const HostPort& address,
                                                 const TcpOptions& options, SocketHandler on_socket);

// Resolves and connects from `loop`; `done` runs there with the connected socket (options
// applied) or kNotFound (cannot resolve) / kDisconnected (cannot connect).
void dial(io::EventLoop& loop, const HostPort& address, const TcpOptions& options,
          std::function<void(Result<std::shared_ptr<tcp::socket>>)> done);

}  // namespace slip::transport::detail
