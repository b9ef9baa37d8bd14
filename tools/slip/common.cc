#include "common.h"

#include "transport/udp/fec_filter.h"
#include "transport/udp/keys.h"

namespace slip::cli {

Result<session::Dialer> make_dialer(const Common& c) {
  if (std::optional<std::string> hostport = transport::udp::udp_url_address(c.server)) {
    if (c.use_tls) return invalid_argument("--tls does not apply to udp:// (UDP is always encrypted)");
    if (c.server_key.empty()) {
      return invalid_argument("--server " + c.server +
                              " needs --server-key (the server's public key, as `slip udp-key public` prints it)");
    }
    Result<transport::udp::PublicKey> key = transport::udp::parse_public_key(c.server_key);
    if (!key.is_ok()) return invalid_argument("--server-key: " + std::string(key.status().message()));
    transport::udp::UdpOptions udp;
    udp.server_key = *key;
    udp.connect_timeout = std::chrono::milliseconds(c.timeout_ms);
    if (Status st = transport::udp::parse_fec_mode(c.udp_fec, udp.fec); !st.is_ok()) {
      return invalid_argument("--udp-fec: " + std::string(st.message()));
    }
    if (c.udp_mtu_probe != "on" && c.udp_mtu_probe != "off") {
      return invalid_argument("--udp-mtu-probe: on or off, not " + c.udp_mtu_probe);
    }
    if (c.udp_max_datagram != 0 && (c.udp_max_datagram < 1200 || c.udp_max_datagram > 65527)) {
      return invalid_argument("--udp-max-datagram: 0 or 1200 to 65527, not " + std::to_string(c.udp_max_datagram));
    }
    udp.connection.mtu.enabled = c.udp_mtu_probe == "on";
    udp.connection.mtu.max_packet_size = c.udp_max_datagram;
    SLIP_ASSIGN_OR_RETURN(transport::HostPort hp, transport::parse_host_port(*hostport));
    return session::udp_dialer(std::move(hp), std::move(udp));
  }
  SLIP_ASSIGN_OR_RETURN(transport::HostPort hp, transport::parse_host_port(c.server));
  if (!c.use_tls) return session::tcp_dialer(hp);
  transport::TlsOptions tls = c.tls;
  if (tls.server_name.empty()) tls.server_name = hp.host;
  return session::Dialer([hp, tls](io::EventLoop& loop, transport::ConnectHandler done) {
    transport::tls_connect(loop, hp, {}, tls, std::move(done));
  });
}

}  // namespace slip::cli
