// TLS transport: TLS 1.3 (OpenSSL) over the TCP socket options of transport/tcp, behind the same
// Connection/Listener contract. OpenSSL only does the record crypto, through an in-memory BIO:
// the sockets, the coalescing (everything queued in one loop turn goes out as a few full
// records in one writev) and the threading are ours, exactly as in the TCP transport.
//
// Handshakes happen inside the transport: a server hands a Connection to on_accept only once
// its handshake is complete, and a client's ConnectHandler sees either an established
// Connection or the reason the handshake failed. A handshake that takes longer than
// TlsOptions::handshake_timeout is abandoned, so a silent peer cannot hold a socket.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "io/loop_group.h"
#include "transport/address.h"
#include "transport/tcp/tcp.h"
#include "transport/transport.h"

namespace slip::transport {

struct TlsOptions {
  // PEM files. A server needs cert_file and key_file; a client sends them as its certificate
  // when both are set. cert_file may hold the chain (leaf first).
  std::string cert_file;
  std::string key_file;
  // PEM bundle of trusted CAs. Client: verifies the server against it (the system store when
  // empty). Server: verifies client certificates against it; when set without
  // require_client_cert, a client certificate is asked for and checked but not required.
  std::string ca_file;
  // Server: refuse clients that present no certificate signed by ca_file (which must be set).
  bool require_client_cert = false;
  // Client: verify the server's certificate chain. Turn off only in tests.
  bool verify_peer = true;
  // Client: SNI and the name (DNS name or IP address) the server's certificate must carry.
  // Empty: no name check (the chain is still verified when verify_peer is set).
  std::string server_name;
  // Both sides: how long a handshake may take, from the TCP connection to the last message.
  std::chrono::milliseconds handshake_timeout{10'000};
};

// Listens on `address`, one acceptor per loop of `loops` (see tcp_listen). Certificate, key and
// CA files are read now: a missing or bad file is kInvalidArgument naming the file and OpenSSL's
// reason. `on_accept` runs on the connection's loop after a successful handshake; failed
// handshakes are logged at info level with the peer address and never reach it. `loops` must
// outlive the listener.
Result<std::unique_ptr<Listener>> tls_listen(io::LoopGroup& loops, const HostPort& address, const TcpOptions& tcp,
                                             const TlsOptions& tls, AcceptHandler on_accept);

// Connects to `address` from `loop` and runs the TLS handshake; `done` runs on that loop, never
// inside this call. Failures: kInvalidArgument (bad files in `tls`), kNotFound (resolution),
// kDisconnected (TCP connect failed, or the peer hung up mid-handshake), kTimeout (handshake
// took longer than tls.handshake_timeout), kUnauthenticated (TLS refused it either way: the
// message carries OpenSSL's reason, e.g. "certificate verify failed: self-signed certificate").
// In TLS 1.3 the server checks a client certificate after the client has finished its
// handshake, so a refused client certificate shows up as the Connection closing with
// kUnauthenticated ("tlsv13 alert certificate required") rather than through `done`.
void tls_connect(io::EventLoop& loop, const HostPort& address, const TcpOptions& tcp, const TlsOptions& tls,
                 ConnectHandler done);

// The peer certificate's subject as an RFC 2253 string ("CN=client,O=Example"), or "" when the
// peer sent none or `connection` is not a TLS connection. The certificate was verified unless
// verification is off (client verify_peer = false; server without ca_file, which asks for none).
// Fixed once the connection is established: safe from any thread.
std::string tls_peer_subject(const Connection& connection);

}  // namespace slip::transport
