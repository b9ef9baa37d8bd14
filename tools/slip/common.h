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
};

// Dials the server, by TCP or TLS as the flags say.
session::Dialer make_dialer(const Common& c, const transport::HostPort& hp);

}  // namespace slip::cli
