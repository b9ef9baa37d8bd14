// What every `slip` command shares: where the server is and how to reach it.
#pragma once

#include <string>

#include "session/client.h"
#include "transport/address.h"
#include "transport/tls/tls.h"

namespace slip::cli {

struct Common {
  std::string server = "127.0.0.1:7420";
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

// Dials the server, by TCP or TLS as the flags say.
session::Dialer make_dialer(const Common& c, const transport::HostPort& hp);

}  // namespace slip::cli
