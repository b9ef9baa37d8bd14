#include "common.h"

namespace slip::cli {

session::Dialer make_dialer(const Common& c, const transport::HostPort& hp) {
  if (!c.use_tls) return session::tcp_dialer(hp);
  transport::TlsOptions tls = c.tls;
  if (tls.server_name.empty()) tls.server_name = hp.host;
  return [hp, tls](io::EventLoop& loop, transport::ConnectHandler done) {
    transport::tls_connect(loop, hp, {}, tls, std::move(done));
  };
}

}  // namespace slip::cli
