// The connection handshake, as two small state machines that never touch a socket.
//
//   client: preface, HELLO   ->
//                            <-  server: preface, WELCOME   (or ERROR, then close)
//
// The server picks the highest common version, the codecs both support, and the smaller of the
// two max frame sizes; it refuses a client that requires encryption on a plain link and a
// client that its authenticate hook rejects. Frames that follow HELLO in the same read stay
// in the decoder for the session.
//
// Credentials may be checked asynchronously (ServerHandshakeConfig::authenticate_async): the
// handshake then stops after HELLO's other checks, keeps whatever the client pipelines, and
// resumes with finish_authentication() once the verdict is known.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
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

// The verdict on a client's credentials: OK with the identity it is known by, or why not.
// kOverloaded reaches the client as RESOURCE_EXHAUSTED (the server is too busy to check; retry
// later); every other failure as UNAUTHENTICATED. The message must not contain secrets.
struct AuthVerdict {
  Status status;
  std::string identity;
};
// Receives a verdict; may be called from any thread.
using AuthDone = std::function<void(AuthVerdict)>;
// Checks HELLO's credentials without blocking the caller: returns the verdict at once when it is
// cheap to reach, or nullopt after keeping `done`, which it then calls exactly once later, from
// any thread. It may drop `done` uncalled once `alive` has expired (the connection is gone) or
// when the server stops. `hello`'s views are valid only during the call.
using AsyncAuthenticate =
    std::function<std::optional<AuthVerdict>(const Hello& hello, std::weak_ptr<const void> alive, AuthDone done)>;

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
  // Used instead of `authenticate` when set: feed() stops at the credentials and
  // authenticating() turns true; the owner calls the hook with pending_hello() and passes its
  // verdict to finish_authentication() (session::Session does all of this).
  AsyncAuthenticate authenticate_async;
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
  // While authenticating(): holds what the client pipelined so far (buffered() says how much).
  FrameDecoder& decoder() { return decoder_; }
  const ServerHandshakeConfig& config() const { return config_; }

  // With authenticate_async: true from when HELLO passed every check but the credentials until
  // finish_authentication(). feed() meanwhile only keeps the bytes and returns false.
  bool authenticating() const { return authenticating_; }
  // The HELLO whose credentials are being checked; valid while authenticating().
  const Hello& pending_hello() const { return hello_; }
  // Completes the handshake with authenticate_async's verdict: true when it succeeded
  // (take_output() holds the preface and WELCOME), a failure when refused (take_output() holds
  // the preface and ERROR: send it, then close). kFailedPrecondition when not authenticating().
  Result<bool> finish_authentication(AuthVerdict verdict);

 private:
  Status refuse(Status s);
  // The checks after the credentials, then WELCOME.
  Result<bool> accept(const Hello& h);

  const ServerHandshakeConfig& config_;
  std::uint64_t connection_id_;
  std::uint32_t max_frame_size_;
  FrameDecoder decoder_;
  FrameEncoder out_;
  Negotiated negotiated_;
  bool done_ = false;
  bool authenticating_ = false;
  Frame hello_frame_;  // keeps the bytes hello_'s views point into
  Hello hello_;
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
