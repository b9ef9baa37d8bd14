// The udp:// transport: sessions over encrypted, reliable UDP (docs/udp.md, "Sockets and slipd").
//
// One UDP socket per listener carries every peer: datagrams are demultiplexed by connection id,
// so connections cost memory, not descriptors. Each connection joins the Noise IK handshake
// (handshake.h), packet protection (crypto.h, aead_protector.h) and the reliability core
// (connection.h), and offers sessions the byte pipe of transport.h on one reliable stream.
//
// Threading: a listener's socket, and every connection on it, live on one event loop (the
// first of the group by default); a client's connections share one socket per loop. Calls on
// a connection and its callbacks happen on that loop, as transport.h requires.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "io/loop_group.h"
#include "transport/address.h"
#include "transport/transport.h"
#include "transport/udp/connection.h"
#include "transport/udp/fec.h"
#include "transport/udp/handshake.h"
#include "transport/udp/socket.h"

namespace slip::transport::udp {

// ---- the datagram filter seam ----

// Receives datagrams from a DatagramFilter.
class DatagramSink {
 public:
  virtual ~DatagramSink() = default;
  virtual void deliver(ByteView datagram) = 0;
};

// Sits between one connection and the socket and sees every protected (short-header) datagram
// of that connection, whole: what the connection sends on its way to the socket, what the socket
// received for it on its way in. Handshake packets do not pass through it. A filter may drop,
// delay, add (forward error correction's repair datagrams) or rebuild datagrams. Whatever it
// emits towards the socket must keep the routing bytes of a protected packet: byte 0 with the
// long-header bit (0x80) clear and the fixed bit (0x40) set, bytes 1-8 the receiver's
// connection id; the receiving endpoint routes on them before the peer's filter sees the
// datagram. Runs on the connection's loop; never called re-entrantly.
class DatagramFilter {
 public:
  virtual ~DatagramFilter() = default;
  // A datagram the connection built: pass zero or more datagrams to `wire`.
  virtual void outgoing(ByteView datagram, DatagramSink& wire) = 0;
  // A datagram from the socket for this connection: pass zero or more to `connection`.
  virtual void incoming(ByteView datagram, DatagramSink& connection) = 0;
  // For filters that emit on their own clock (a repair datagram when a group times out): when
  // on_timeout() is due, kNever for none. Asked again after every call into the filter.
  virtual Instant next_timeout() const { return kNever; }
  virtual void on_timeout(Instant /*now*/, DatagramSink& /*wire*/) {}
};

// Makes the filter of a new connection (client or server side); may return null for none.
using DatagramFilterFactory = std::function<std::unique_ptr<DatagramFilter>(Role role)>;

// ---- options ----

struct UdpOptions {
  // Reliability core options. role, connection ids and the peer's windows are filled in per
  // connection. max_packet_size is the UDP payload size every connection starts at: 1200 fits
  // every path IPv6 allows. Path MTU discovery (connection.mtu, MtuOptions) is on: each
  // connection probes for larger packets up to mtu.max_packet_size, where 0 (the default) means
  // the largest UDP payload the MTU of the route to the peer allows, at most a 9000-byte jumbo
  // frame's (default_max_datagram(): 1472 over IPv4 Ethernet, 1452 over IPv6 Ethernet, 8972 over
  // loopback). The probed maximum is capped by the socket's datagram buffers, which grow
  // to hold it, and the socket then sets the don't-fragment bit (IP_PMTUDISC_PROBE), so that a
  // probe too big for the path is dropped instead of fragmented.
  ConnectionOptions connection = [] {
    ConnectionOptions c;
    c.stream_send_buffer = 256 * 1024;
    c.mtu.enabled = true;
    c.mtu.max_packet_size = 0;
    return c;
  }();
  // 4 MiB socket buffers (the kernel caps them at net.core.rmem_max / wmem_max): one socket
  // carries every peer's traffic.
  SocketOptions socket = [] {
    SocketOptions s;
    s.send_buffer = 4 << 20;
    s.receive_buffer = 4 << 20;
    return s;
  }();
  // A custom filter for every connection; when set, FEC (below) is not offered.
  DatagramFilterFactory filter;
  // Forward error correction (fec.h, FecOptions): offered in the handshake when enabled, used
  // when the peer offers it too.
  FecOptions fec;

  // close() waits at most this long for queued bytes to be acknowledged, then drops them.
  std::chrono::milliseconds close_linger{5000};

  // Client: the server's pinned public key (`slip udp-key public` prints it), how long to try,
  // and the first Initial retransmission interval (doubling up to 1 s).
  PublicKey server_key{};
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds initial_resend{200};
  // Client: one socket per loop shared by every connection made from that loop (true), or one
  // socket per connection.
  bool share_client_socket = true;

  // Server: the static key pair, when retry cookies are demanded (CookiePolicy; kUnderLoad
  // counts handshakes not yet confirmed by a client packet), and how long a connection may stay
  // unconfirmed before it is forgotten.
  KeyPair static_key;
  CookiePolicy cookies = CookiePolicy::kUnderLoad;
  std::size_t cookie_load_threshold = 256;
  std::chrono::milliseconds unconfirmed_timeout{10000};
  // Which loop of the group owns the listener's socket and connections.
  std::size_t loop_index = 0;
};

// Packet figures summed over an endpoint's connections: those it holds now and those gone.
struct UdpTraffic {
  std::uint64_t packets_sent = 0;
  std::uint64_t packets_received = 0;      // authentic, new, well formed
  std::uint64_t packets_lost = 0;          // declared lost (their data is sent again)
  std::uint64_t packets_retransmitted = 0;  // carried stream data sent before
  std::uint64_t packets_rejected = 0;      // failed the header or packet protection (AEAD)
  std::uint64_t packets_duplicate = 0;     // replayed or duplicated packet numbers, dropped
  std::uint64_t probes_sent = 0;           // probe-timeout packets
  std::uint64_t mtu_probes_sent = 0;       // path MTU probes
  std::uint64_t mtu_probes_acked = 0;
  std::uint64_t mtu_probes_lost = 0;
  std::uint64_t mtu_black_holes = 0;       // fallbacks to the base packet size
  std::uint64_t bytes_sent = 0;            // UDP payload bytes
  std::uint64_t bytes_received = 0;
  void add(const ConnectionStats& s);
};

// What a listener's endpoint has seen. Read with UdpListener::stats() (any thread; the figures
// are collected on the loop).
struct UdpEndpointStats {
  std::uint64_t connections = 0;       // connection states held now (open, closing, unconfirmed)
  std::uint64_t unconfirmed = 0;       // handshakes answered, not yet confirmed by the client
  std::uint64_t accepted = 0;          // connections handed to the accept handler
  std::uint64_t initials = 0;          // Initial packets received
  std::uint64_t retries_sent = 0;
  std::uint64_t handshakes_refused = 0;  // message 1 did not authenticate (wrong pinned key)
  std::uint64_t dropped_unknown = 0;   // protected packets for no known connection
  std::uint64_t dropped_malformed = 0;
  std::uint64_t expired_unconfirmed = 0;
  SocketCounters socket;
  UdpTraffic traffic;
  // The packet size (UDP payload) in use by the open connections held now: the smallest and the
  // largest (0 when there are none), as path MTU discovery left them.
  std::uint64_t max_packet_size_min = 0;
  std::uint64_t max_packet_size_max = 0;
  FecFilterStats fec;  // summed over the connections that used FEC (connections: how many)
};

class UdpListener : public Listener {
 public:
  // The server's public key as clients pin it (64 hex digits).
  virtual std::string public_key() const = 0;
  // The socket's descriptor (one for all peers).
  virtual int socket_fd() const = 0;
  // Collected on the listener's loop; blocks the caller until it is (do not call on that loop).
  virtual UdpEndpointStats stats() const = 0;
  // Collected on the listener's loop, where `done` runs (it may never run once the loop stops).
  virtual void stats_async(std::function<void(UdpEndpointStats)> done) const = 0;
};

// The largest UDP payload of a 1500-byte Ethernet MTU: less 20 + 8 header bytes over IPv4, 40 + 8
// over IPv6.
inline constexpr std::size_t kEthernetUdpPayloadIpv4 = 1472;
inline constexpr std::size_t kEthernetUdpPayloadIpv6 = 1452;
// The same for a 9000-byte jumbo-frame MTU.
inline constexpr std::size_t kJumboUdpPayloadIpv4 = 8972;
inline constexpr std::size_t kJumboUdpPayloadIpv6 = 8952;

// What MtuOptions::max_packet_size 0 stands for on a connection to `peer`: the largest UDP
// payload of the MTU the kernel's route to the peer has (route_mtu(): the outgoing interface's,
// 1500 on most Ethernet, 65536 on loopback), at most a jumbo frame's (kJumboUdpPayload*), and a
// 1500-byte Ethernet MTU's when the kernel does not say. Probing still confirms each size.
std::size_t default_max_datagram(const SocketAddress& peer);

// Listens on `address` (a numeric IP: "0.0.0.0:7421", "[::]:7421", "127.0.0.1:0").
// options.static_key must hold the server's key pair. `on_accept` runs on the listener's loop
// when a handshake completes. `loops` must outlive the listener.
Result<std::unique_ptr<UdpListener>> udp_listen(io::LoopGroup& loops, const HostPort& address,
                                                const UdpOptions& options, AcceptHandler on_accept);

// Connects to `address` (a numeric IP, or a host name resolved first) from `loop`, pinning
// options.server_key. `done` runs on that loop with the connection, or kTimeout ("no answer
// from udp://ADDR within N ms"), kUnauthenticated (the server does not hold the pinned key),
// kNotFound (cannot resolve), kDisconnected (the network refused: e.g. ICMP port unreachable).
void udp_connect(io::EventLoop& loop, const HostPort& address, const UdpOptions& options, ConnectHandler done);

// ---- transport parameters (the handshake's opaque payloads) ----

struct TransportParams {
  std::uint64_t stream_receive_window = 0;
  std::uint64_t connection_receive_window = 0;
  std::uint64_t max_ack_delay_us = 0;
  std::uint64_t idle_timeout_ms = 0;
  bool fec = false;  // this end offers forward error correction
};
// Five varints in this order: the four numbers, then flags (bit 0: FEC offered). Decoders
// ignore bytes after them (later versions append); a peer that sends only the first four (an
// older version) offers nothing.
std::vector<std::uint8_t> encode_transport_params(const TransportParams& p);
// kInvalidArgument for a truncated or out-of-range varint, or a zero window.
Result<TransportParams> decode_transport_params(ByteView bytes);

// ---- URLs ----

// "udp://HOST:PORT" -> the HOST:PORT part; nullopt for any other text.
std::optional<std::string> udp_url_address(std::string_view url);

}  // namespace slip::transport::udp
