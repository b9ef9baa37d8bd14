// TCP transport: Nagle off, tunable socket buffers, SO_REUSEPORT listeners with one acceptor
// per loop (the kernel spreads connections over the loops), and a write path that gathers
// everything queued in one loop turn into a single writev().
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

#include "io/loop_group.h"
#include "transport/address.h"
#include "transport/transport.h"

namespace slip::transport {

struct TcpOptions {
  bool no_delay = true;
  int send_buffer = 0;     // SO_SNDBUF bytes; 0 keeps the kernel's default
  int receive_buffer = 0;  // SO_RCVBUF bytes; 0 keeps the kernel's default
  bool reuse_port = true;  // one listening socket per loop
  std::size_t min_read = 4096;  // start a new read block when less than this is left
  // TCP_NOTSENT_LOWAT bytes: the kernel takes more only while it holds fewer bytes than this
  // not yet sent, so the rest waits above the socket where later, more urgent bytes can still
  // overtake it. 0 keeps the kernel's default (net.ipv4.tcp_notsent_lowat).
  int notsent_lowat = 0;
  // close() waits at most this long for queued bytes to leave (a peer that does not read
  // would otherwise hold the connection forever), then drops them.
  std::chrono::milliseconds close_linger{5000};
};

// Listens on `address`, one acceptor per loop of `loops`. `on_accept` runs on the loop that
// owns the new connection. `loops` must outlive the listener.
Result<std::unique_ptr<Listener>> tcp_listen(io::LoopGroup& loops, const HostPort& address, const TcpOptions& options,
                                             AcceptHandler on_accept);

// Connects to `address` from `loop`; `done` runs on that loop.
void tcp_connect(io::EventLoop& loop, const HostPort& address, const TcpOptions& options, ConnectHandler done);

}  // namespace slip::transport
