// What every `slip` command shares: where the server is and how to reach it.
#pragma once

#include <string>

#include "session/client.h"
#include "transport/address.h"
#include "transport/tls/tls.h"

namespace slip::cli {

struct Common {
  // HOST:PORT (TCP) or udp://HOST:PORT (encrypted reliable UDP, with server_key).
  std::string server = "127.0.0.1:7420";
  // The UDP server's public key to pin (64 hex digits, as `slip udp-key public` prints it).
  std::string server_key;
  // Forward error correction to offer a udp:// server: off, adaptive or K,M.
  std::string udp_fec = "off";
  // Path MTU discovery on a udp:// connection ("on" or "off"), and the largest datagram it tries
  // (0: a 1500-byte MTU's for the address family).
  std::string udp_mtu_probe = "on";
  std::size_t udp_max_datagram = 0;
  transport::TlsOptions tls;
  bool use_tls = false;
  std::string name = "slip";
  unsigned timeout_ms = 5000;
  // Credentials for a server that requires them (--token, or --user and --password).
  std::string token;
  std::string user;
  std::string password;
};

inline void set_credentials(const Common& c, wire::ClientHandshakeConfig& hs) {
  hs.auth_token = c.token;
  hs.auth_user = c.user;
  hs.auth_password = c.password;
}

// Dials the server: TCP, TLS or UDP as --server's scheme and the flags say. kInvalidArgument
// for a malformed --server, or udp:// without a valid --server-key.
Result<session::Dialer> make_dialer(const Common& c);

}  // namespace slip::cli
