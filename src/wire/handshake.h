// The connection handshake, as two small state machines that never touch a socket.
//
//   client: preface, HELLO   ->
//                            <-  server: preface, WELCOME   (or ERROR, then close)
//
// The server picks the highest common version, the codecs both support, and the smaller of the
// two max frame sizes; it refuses a client that requires encryption on a plain link and a
// client that its authenticate hook rejects. Frames that follow HELLO in the same read stay
// in the decoder for the session.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "slipstream/buffer.h"
#include "slipstream/status.h"
#include "wire/decoder.h"
#include "wire/encoder.h"
#include "wire/frames.h"

namespace slip::wire {

// Codecs this build supports (1 << Codec bits).
inline constexpr std::uint32_t kSupportedCodecs = (1u << static_cast<int>(Codec::kLz4)) |
                                                 (1u << static_cast<int>(Codec::kZstd));
// What a peer that does not state MAX_FRAME_SIZE or INITIAL_CREDIT accepts.
inline constexpr std::uint32_t kDefaultMaxFrameSize = 1u << 20;
inline constexpr std::uint32_t kDefaultInitialCredit = 256 * 1024;
inline constexpr std::uint32_t kDefaultConnectionCredit = 4u << 20;
// A stated MAX_FRAME_SIZE below this is refused: every control frame must fit.
inline constexpr std::uint32_t kMinMaxFrameSize = 1024;
// HELLO and WELCOME may not exceed this, whatever the limits say.
inline constexpr std::uint32_t kMaxHandshakeFrameSize = 16 * 1024;

// What both sides agreed on.
struct Negotiated {
  std::uint8_t version = kProtocolVersion;
  std::uint32_t codecs = 0;
  std::uint32_t peer_max_frame_size = 0;  // the largest frame body we may send
  std::uint32_t heartbeat_ms = 0;
  std::uint32_t peer_initial_credit = 0;     // the window the peer grants each of our streams
  std::uint32_t peer_connection_credit = 0;  // the window the peer grants all our streams together
  std::uint32_t initial_credit = 0;          // the window we grant each of the peer's streams
  std::uint32_t connection_credit = 0;       // the window we grant all of the peer's streams
  std::string peer_name;
  std::string server_id;
  std::uint64_t connection_id = 0;
  // Credentials as the client sent them (server side only).
  std::string auth_user;
  // Who the authenticate hook said the client is (server side only; empty without a hook).
  std::string identity;
};

struct ServerHandshakeConfig {
  std::uint32_t codecs = kSupportedCodecs;
  std::uint32_t max_frame_size = kDefaultMaxFrameSize;  // the largest frame we accept
  std::uint32_t heartbeat_ms = 5000;
  std::uint32_t initial_credit = kDefaultInitialCredit;
  std::uint32_t connection_credit = kDefaultConnectionCredit;
  std::string server_name = "slipd";
  std::string server_id;
  bool link_encrypted = false;  // true on a TLS listener
  // Decides whether the client's credentials are good and, when they are, may set `identity`
  // (kept in Negotiated::identity, e.g. the user name permissions are looked up by). A failure
  // refuses the client with UNAUTHENTICATED and the Status's message, so the message must not
  // contain secrets. Empty accepts everyone.
  std::function<Status(const Hello& hello, std::string& identity)> authenticate;
};

class ServerHandshake {
 public:
  // `config` must outlive the handshake.
  ServerHandshake(const ServerHandshakeConfig& config, std::uint64_t connection_id, WireLimits limits = {});

  // Feeds bytes from the client. Returns true when the handshake succeeded (take_output() then
  // holds the preface and WELCOME), false when more bytes are needed. On failure, take_output()
  // holds the preface and an ERROR frame for the client: send it, then close.
  Result<bool> feed(Slice bytes);

  Chain take_output() { return out_.take(); }
  const Negotiated& negotiated() const { return negotiated_; }
  // After success: holds the frames the client sent after HELLO; limits set to the agreement.
  FrameDecoder& decoder() { return decoder_; }

 private:
  Status refuse(Status s);

  const ServerHandshakeConfig& config_;
  std::uint64_t connection_id_;
  std::uint32_t max_frame_size_;
  FrameDecoder decoder_;
  FrameEncoder out_;
  Negotiated negotiated_;
  bool done_ = false;
  Status error_;
};

struct ClientHandshakeConfig {
  std::uint32_t codecs = kSupportedCodecs;
  std::uint32_t max_frame_size = kDefaultMaxFrameSize;
  std::uint32_t heartbeat_ms = 5000;
  std::uint32_t initial_credit = kDefaultInitialCredit;
  std::uint32_t connection_credit = kDefaultConnectionCredit;
  bool require_encryption = false;
  std::string client_name;
  std::string auth_token;
  std::string auth_user;
  std::string auth_password;
};

class ClientHandshake {
 public:
  // `config` must outlive the handshake.
  explicit ClientHandshake(const ClientHandshakeConfig& config, WireLimits limits = {});

  // The preface and HELLO to send first.
  Chain take_output() { return out_.take(); }

  // Feeds bytes from the server. True once WELCOME arrived. An ERROR from the server becomes
  // a Status with the server's code and message.
  Result<bool> feed(Slice bytes);

  const Negotiated& negotiated() const { return negotiated_; }
  FrameDecoder& decoder() { return decoder_; }

 private:
  const ClientHandshakeConfig& config_;
  std::uint32_t max_frame_size_;
  FrameDecoder decoder_;
  FrameEncoder out_;
  Negotiated negotiated_;
  bool done_ = false;
  Status error_;
};

}  // namespace slip::wire
