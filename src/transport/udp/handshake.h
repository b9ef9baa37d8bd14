// The reliable UDP transport's handshake: Noise IK (noise.h) carried in three kinds of
// long-header packet, with an optional stateless retry (cookie.h). Wire format: docs/udp.md.
//
//   client                                              server
//   Initial(scid=C, token="", msg1)          ->
//                                            <-  Retry(dcid=C, cookie, tag)    only when the
//   Initial(scid=C, token=cookie, msg1)      ->                                server wants proof
//                                            <-  Response(dcid=C, msg2{S, params})
//   protected packets to S (crypto.h)        <->  protected packets to C
//
// Every long-header packet starts with: flags (1: 1 1 0 0 T T T T), version (4, big-endian).
//   Initial   flags 0xC0 | version | scid (8) | token length (2) | token | msg length (2) | msg1
//             | zero padding up to the datagram's end (a datagram of at least 1200 bytes, so
//             the server's answers, all smaller, amplify nothing)
//   Retry     flags 0xC1 | version | dcid (8) | cookie length (2) | cookie | tag (16)
//   Response  flags 0xC2 | version | dcid (8) | msg length (2) | msg2
//
// The server's connection id travels inside message 2's encrypted payload (its first 8 bytes,
// then the transport parameters), so it is authenticated like the rest of the handshake; the
// client's is authenticated through the prologue.
// The Noise prologue is "slipstream-udp" || version (4, BE) || client connection id (8), so a
// peer speaking another version, or a connection id changed on the way, fails message 1's tags.
// The retry tag is BLAKE2b-128 keyed with BLAKE2b-256("slipstream-udp retry v1" || server
// static key) over the Retry's bytes before the tag and the client's ephemeral key: an
// off-path attacker, who does not see the Initial, knows neither the connection id nor the
// ephemeral key, and cannot make a client accept a Retry.
//
// Transport parameters are opaque here.
//
// Thread safety: none; one object per handshake (client) or per loop (server gate).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "slipstream/buffer.h"
#include "slipstream/status.h"
#include "transport/udp/cookie.h"
#include "transport/udp/crypto.h"
#include "transport/udp/noise.h"

namespace slip::transport::udp {

inline constexpr std::uint32_t kUdpVersion = 1;
inline constexpr std::uint8_t kLongHeaderForm = kLongHeaderBit | kFixedBit;  // 0xC0
inline constexpr std::uint8_t kLongTypeMask = 0x0F;
// The smallest datagram that may carry an Initial (RFC 9000's figure, for the same reason).
inline constexpr std::size_t kMinInitialDatagram = 1200;
inline constexpr std::size_t kRetryTagLen = 16;
// Cookies up to this size are accepted in a Retry (ours are kCookieLen).
inline constexpr std::size_t kMaxTokenLen = 256;

enum class LongType : std::uint8_t {
  kInitial = 0,   // client -> server: Noise message 1
  kRetry = 1,     // server -> client: come back with this cookie
  kResponse = 2,  // server -> client: Noise message 2
  kRefused = 3,   // server -> client: message 1 did not authenticate (wrong pinned key)
};

// What the first byte says a datagram is; kInvalidArgument for a byte that fits no packet.
enum class PacketKind : std::uint8_t { kProtected, kInitial, kRetry, kResponse, kRefused };
Result<PacketKind> classify_packet(ByteView datagram);

struct InitialPacket {
  std::uint32_t version = kUdpVersion;
  ConnectionId scid{};
  ByteView token;
  ByteView message;  // Noise message 1
};
struct RetryPacket {
  std::uint32_t version = kUdpVersion;
  ConnectionId dcid{};
  ByteView token;
  ByteView tag;
  ByteView tagged;  // the bytes the tag covers (all but the tag)
};
struct ResponsePacket {
  std::uint32_t version = kUdpVersion;
  ConnectionId dcid{};
  ByteView message;  // Noise message 2: payload = server connection id (8) || parameters
};

// Parsers: views into `datagram`. kInvalidArgument for a wrong type, a truncated field, a
// length past the datagram, non-zero padding or trailing bytes; kUnimplemented for a version
// other than kUdpVersion (checked after the type, before anything else).
Result<InitialPacket> parse_initial(ByteView datagram);
Result<RetryPacket> parse_retry(ByteView datagram);
Result<ResponsePacket> parse_response(ByteView datagram);

// Refused: flags 0xC3 | version (4) | dcid (8) | reason (1). Sent, unauthenticated, in answer to
// an Initial whose message 1 does not authenticate, so that a client that pinned another key
// learns why instead of timing out. It is 14 bytes (no amplification), names only the client's
// own connection id (an off-path attacker cannot guess it), and tells nothing about the key.
enum class RefusedReason : std::uint8_t { kHandshakeFailed = 1 };
inline constexpr std::size_t kRefusedLen = 1 + 4 + kConnectionIdLen + 1;
struct RefusedPacket {
  std::uint32_t version = kUdpVersion;
  ConnectionId dcid{};
  std::uint8_t reason = 0;  // RefusedReason; unknown values are kept as sent
};
Result<RefusedPacket> parse_refused(ByteView datagram);
void encode_refused(const RefusedPacket& p, std::vector<std::uint8_t>& out);

// Encoders append to `out`. encode_initial pads with zeros to `min_datagram`.
void encode_initial(const InitialPacket& p, std::size_t min_datagram, std::vector<std::uint8_t>& out);
void encode_response(const ResponsePacket& p, std::vector<std::uint8_t>& out);
// Appends a Retry with its tag; `client_ephemeral` is the first 32 bytes of msg1.
void encode_retry(std::uint32_t version, const ConnectionId& dcid, ByteView token, const PublicKey& server_static,
                  ByteView client_ephemeral, std::vector<std::uint8_t>& out);
bool verify_retry_tag(const RetryPacket& p, const PublicKey& server_static, ByteView client_ephemeral);

// "slipstream-udp" || version || client connection id.
std::vector<std::uint8_t> handshake_prologue(std::uint32_t version, const ConnectionId& client_cid);

// ---- client ----

struct ClientHandshakeConfig {
  KeyPair static_key;        // the client's long-term key (KeyPair::generate() for anonymous use)
  PublicKey server_key{};    // pinned
  std::vector<std::uint8_t> transport_params;
  std::size_t min_initial_datagram = kMinInitialDatagram;
};

// What a client handshake leaves: keys for PacketProtection, both connection ids, and the
// server's transport parameters.
struct ClientHandshakeResult {
  HandshakeResult keys;
  ConnectionId local_cid{};   // what the server puts in dcid
  ConnectionId server_cid{};  // what we put in dcid
  std::vector<std::uint8_t> server_params;
};

class ClientHandshake {
 public:
  // `local_cid` defaults to a random one.
  explicit ClientHandshake(ClientHandshakeConfig config, std::optional<ConnectionId> local_cid = std::nullopt);

  // The Initial datagram to send (again, on a retransmission timer, or after a Retry: then it
  // carries the cookie). Message 1 is built once; a resend repeats the same bytes.
  Result<std::vector<std::uint8_t>> initial_datagram();

  enum class Event : std::uint8_t {
    kResend,    // a valid Retry: send initial_datagram() again now
    kComplete,  // message 2 authenticated: take result()
    kRefused,   // the server says message 1 did not authenticate: it holds another key
  };
  // A long-header datagram from the server. An error means the packet is ignored and the
  // handshake goes on waiting (a forged or damaged packet must not end it); the Status says
  // why: kUnauthenticated when message 2 does not verify, which, if it persists, means the
  // server does not hold the pinned key.
  Result<Event> on_datagram(ByteView datagram);

  bool complete() const { return result_.has_value(); }
  // Precondition: complete().
  const ClientHandshakeResult& result() const { return *result_; }
  const ConnectionId& local_cid() const { return local_cid_; }
  // Test hook (fuzzing wants determinism): the ephemeral key pair of message 1. Call before
  // the first initial_datagram().
  void set_ephemeral_for_test(const KeyPair& e) { noise_.set_ephemeral_for_test(e); }
  // Packets refused so far (forged, damaged, wrong key), for metrics.
  std::uint64_t refused() const { return refused_; }

 private:
  Status refuse(Status s);

  ClientHandshakeConfig config_;
  ConnectionId local_cid_{};
  HandshakeState noise_;  // after message 1, before message 2: copied for each attempt
  std::vector<std::uint8_t> msg1_;
  std::vector<std::uint8_t> token_;
  bool retried_ = false;
  std::optional<ClientHandshakeResult> result_;
  std::uint64_t refused_ = 0;
};

// ---- server ----

enum class CookiePolicy : std::uint8_t {
  kNever,      // answer every Initial
  kAlways,     // every Initial must carry a valid cookie
  kUnderLoad,  // only while `load` passed to on_initial reaches load_threshold
};

struct ServerHandshakeConfig {
  KeyPair static_key;
  CookiePolicy cookies = CookiePolicy::kUnderLoad;
  // Handshakes in progress (or any load measure the caller prefers) at which cookies start.
  std::size_t load_threshold = 1024;
  CookieConfig cookie;
  std::size_t min_initial_datagram = kMinInitialDatagram;
};

struct ServerHandshakeCounters {
  std::uint64_t initials = 0;
  std::uint64_t malformed = 0;      // did not parse, too small, wrong version
  std::uint64_t retries_sent = 0;
  std::uint64_t bad_cookies = 0;    // forged, expired, other address
  std::uint64_t accepted = 0;       // passed the gate
  std::uint64_t noise_failures = 0; // message 1 did not verify (wrong pinned key, altered)
  std::uint64_t completed = 0;      // message 2 built
};

// The server's two steps. on_initial() is stateless: it parses, checks size, version and
// cookie, and either drops, answers with a Retry, or passes the Initial on; it allocates
// nothing per peer and runs no DH. respond() then runs the Noise responder; only after it
// succeeds does the caller create connection state.
class ServerHandshake {
 public:
  ServerHandshake(ServerHandshakeConfig config, std::int64_t now_ns);

  struct Decision {
    enum class Action : std::uint8_t { kDrop, kRetry, kAccept } action = Action::kDrop;
    Status reason;                     // why, for kDrop
    std::vector<std::uint8_t> retry;   // the datagram to send back, for kRetry
    InitialPacket initial;             // views into the datagram (keep it until respond()), for kAccept
  };
  Decision on_initial(ByteView datagram, const PeerAddress& from, std::size_t load, std::int64_t now_ns);

  struct Accepted {
    HandshakeResult keys;
    ConnectionId client_cid{};  // dcid of our packets
    ConnectionId local_cid{};   // dcid of theirs
    PublicKey client_static{};  // who the client is
    std::vector<std::uint8_t> client_params;
    std::vector<std::uint8_t> response;  // the datagram to send back
  };
  // Runs Noise for an Initial that on_initial accepted. kUnauthenticated when message 1 does
  // not verify (the client pinned another key, or bytes changed); kInvalidArgument when
  // `transport_params` would make the Response larger than min_initial_datagram.
  Result<Accepted> respond(const InitialPacket& initial, const ConnectionId& local_cid, ByteView transport_params);

  const PublicKey& public_key() const { return config_.static_key.public_key; }
  // Test hooks (fuzzing wants determinism): message 2's ephemeral pair, the cookie secret.
  void set_ephemeral_for_test(const KeyPair& e) { ephemeral_for_test_ = e; }
  void set_cookie_secret_for_test(const std::array<std::uint8_t, 32>& s) { cookies_.set_secret_for_test(s); }
  const ServerHandshakeCounters& counters() const { return counters_; }
  const CookieCounters& cookie_counters() const { return cookies_.counters(); }

 private:
  ServerHandshakeConfig config_;
  CookieValidator cookies_;
  ServerHandshakeCounters counters_;
  std::optional<KeyPair> ephemeral_for_test_;
};

}  // namespace slip::transport::udp
