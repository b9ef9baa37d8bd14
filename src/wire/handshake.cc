#include "wire/handshake.h"

#include <algorithm>

namespace slip::wire {

namespace {

WireLimits handshake_limits(WireLimits l) {
  l.max_frame_size = std::min(l.max_frame_size, kMaxHandshakeFrameSize);
  return l;
}

// The largest frame we may send to a peer that stated `theirs` (0: not stated, so the protocol
// default), never more than we could decode ourselves.
std::uint32_t peer_frame_limit(std::uint32_t theirs, std::uint32_t ours) {
  return std::min(theirs == 0 ? kDefaultMaxFrameSize : std::min(theirs, kHardMaxFrameSize), ours);
}

std::uint32_t min_stated(std::uint32_t a, std::uint32_t b) {
  if (a == 0) return b;
  if (b == 0) return a;
  return std::min(a, b);
}

Status check_frame_size(std::string_view frame, std::uint32_t n) {
  if (n != 0 && n < kMinMaxFrameSize) {
    return invalid_argument("handshake: " + std::string(frame) + " states max frame size " + std::to_string(n) +
                            ", below the minimum " + std::to_string(kMinMaxFrameSize));
  }
  return Status();
}

}  // namespace

ServerHandshake::ServerHandshake(const ServerHandshakeConfig& config, std::uint64_t connection_id, WireLimits limits)
    : config_(config),
      connection_id_(connection_id),
      max_frame_size_(std::min({config.max_frame_size, limits.max_frame_size, kHardMaxFrameSize})),
      decoder_(handshake_limits(limits), /*expect_preface=*/true),
      out_(1024) {}

Status ServerHandshake::refuse(Status s) {
  error_ = s;
  out_.add_preface();
  std::string msg(s.message());
  out_.add(ErrorFrame{0, s.code(), msg});
  return s;
}

Result<bool> ServerHandshake::feed(Slice bytes) {
  if (!error_.is_ok()) return error_;
  if (done_) return true;
  decoder_.feed(std::move(bytes));
  if (authenticating_) return false;  // kept for the session, bounded by the caller
  Frame f;
  Result<bool> got = decoder_.next(f);
  if (!got.is_ok()) return refuse(got.status().with_context("handshake"));
  if (!*got) return false;
  if (f.type != FrameType::kHello) {
    return refuse(invalid_argument("handshake: expected HELLO, got " + std::string(frame_type_name(f.type))));
  }
  Result<Hello> hello = decode_hello(f, decoder_.limits());
  if (!hello.is_ok()) return refuse(hello.status());
  const Hello& h = *hello;

  if (h.min_version > kProtocolVersion || h.max_version < kProtocolVersion) {
    return refuse(unimplemented("handshake: no common protocol version (client speaks " +
                                std::to_string(h.min_version) + ".." + std::to_string(h.max_version) +
                                ", server " + std::to_string(kProtocolVersion) + ")"));
  }
  if (h.require_encryption && !config_.link_encrypted) {
    return refuse(failed_precondition("handshake: client requires encryption but this listener is plain-text"));
  }
  if (Status s = check_frame_size("HELLO", h.max_frame_size); !s.is_ok()) return refuse(s);
  if (config_.authenticate_async) {
    hello_frame_ = std::move(f);
    hello_ = h;  // its views point into hello_frame_'s body, which the Slice keeps alive
    authenticating_ = true;
    return false;
  }
  if (config_.authenticate) {
    Status auth = config_.authenticate(h, negotiated_.identity);
    // Whatever the hook says, the client learns only that its credentials were not accepted.
    if (!auth.is_ok()) return refuse(Status(StatusCode::kUnauthenticated, auth.message()));
  }
  return accept(h);
}

Result<bool> ServerHandshake::finish_authentication(AuthVerdict verdict) {
  if (!authenticating_) return failed_precondition("handshake: no authentication in progress");
  authenticating_ = false;
  const Hello h = hello_;
  hello_ = Hello{};
  Frame frame = std::move(hello_frame_);  // keeps h's views valid until we return
  hello_frame_ = Frame{};
  if (!verdict.status.is_ok()) {
    // A busy server says so (the client should back off and retry); any other failure only
    // says that the credentials were not accepted.
    const StatusCode code =
        verdict.status.code() == StatusCode::kOverloaded ? StatusCode::kOverloaded : StatusCode::kUnauthenticated;
    return refuse(Status(code, verdict.status.message()));
  }
  negotiated_.identity = std::move(verdict.identity);
  return accept(h);
}

Result<bool> ServerHandshake::accept(const Hello& h) {
  negotiated_.version = kProtocolVersion;
  negotiated_.codecs = h.codecs & config_.codecs;
  negotiated_.peer_max_frame_size = peer_frame_limit(h.max_frame_size, max_frame_size_);
  negotiated_.heartbeat_ms = min_stated(h.heartbeat_ms, config_.heartbeat_ms);
  negotiated_.peer_initial_credit = h.initial_credit ? h.initial_credit : kDefaultInitialCredit;
  negotiated_.peer_connection_credit = h.connection_credit ? h.connection_credit : kDefaultConnectionCredit;
  negotiated_.initial_credit = config_.initial_credit;
  negotiated_.connection_credit = config_.connection_credit;
  negotiated_.peer_name = std::string(h.client_name);
  negotiated_.server_id = config_.server_id;
  negotiated_.connection_id = connection_id_;
  negotiated_.auth_user = std::string(h.auth_user);

  Welcome w;
  w.version = negotiated_.version;
  w.codecs = negotiated_.codecs;
  w.max_frame_size = max_frame_size_;
  w.heartbeat_ms = negotiated_.heartbeat_ms;
  w.initial_credit = config_.initial_credit;
  w.connection_credit = config_.connection_credit;
  w.server_name = config_.server_name;
  w.server_id = config_.server_id;
  w.connection_id = connection_id_;
  out_.add_preface();
  out_.add(w);
  decoder_.set_max_frame_size(max_frame_size_);
  done_ = true;
  return true;
}

ClientHandshake::ClientHandshake(const ClientHandshakeConfig& config, WireLimits limits)
    : config_(config),
      max_frame_size_(std::min({config.max_frame_size, limits.max_frame_size, kHardMaxFrameSize})),
      decoder_(handshake_limits(limits), /*expect_preface=*/true),
      out_(1024) {
  Hello h;
  h.codecs = config.codecs;
  h.require_encryption = config.require_encryption;
  h.max_frame_size = max_frame_size_;
  h.auth_token = config.auth_token;
  h.auth_user = config.auth_user;
  h.auth_password = config.auth_password;
  h.client_name = config.client_name;
  h.heartbeat_ms = config.heartbeat_ms;
  h.initial_credit = config.initial_credit;
  h.connection_credit = config.connection_credit;
  out_.add_preface();
  out_.add(h);
}

Result<bool> ClientHandshake::feed(Slice bytes) {
  if (!error_.is_ok()) return error_;
  if (done_) return true;
  decoder_.feed(std::move(bytes));
  Frame f;
  Result<bool> got = decoder_.next(f);
  if (!got.is_ok()) return error_ = got.status().with_context("handshake");
  if (!*got) return false;
  if (f.type == FrameType::kError) {
    Result<AnyFrame> e = parse_frame(f, decoder_.limits());
    if (!e.is_ok()) return error_ = e.status().with_context("handshake");
    const auto& ef = std::get<ErrorFrame>(*e);
    return error_ = Status(ef.code == StatusCode::kOk ? StatusCode::kUnknown : ef.code,
                           std::string("server refused: ") + std::string(ef.message));
  }
  if (f.type != FrameType::kWelcome) {
    return error_ = invalid_argument("handshake: expected WELCOME, got " + std::string(frame_type_name(f.type)));
  }
  Result<Welcome> welcome = decode_welcome(f, decoder_.limits());
  if (!welcome.is_ok()) return error_ = welcome.status();
  const Welcome& w = *welcome;
  if (w.version != kProtocolVersion) {
    return error_ = unimplemented("handshake: server chose version " + std::to_string(w.version));
  }
  if ((w.codecs & ~config_.codecs) != 0) {
    return error_ = invalid_argument("handshake: server chose codecs the client did not offer");
  }
  negotiated_.version = w.version;
  negotiated_.codecs = w.codecs;
  if (Status s = check_frame_size("WELCOME", w.max_frame_size); !s.is_ok()) return error_ = s;
  negotiated_.peer_max_frame_size = peer_frame_limit(w.max_frame_size, max_frame_size_);
  negotiated_.heartbeat_ms = w.heartbeat_ms;
  negotiated_.peer_initial_credit = w.initial_credit ? w.initial_credit : kDefaultInitialCredit;
  negotiated_.peer_connection_credit = w.connection_credit ? w.connection_credit : kDefaultConnectionCredit;
  negotiated_.initial_credit = config_.initial_credit;
  negotiated_.connection_credit = config_.connection_credit;
  negotiated_.peer_name = std::string(w.server_name);
  negotiated_.server_id = std::string(w.server_id);
  negotiated_.connection_id = w.connection_id;
  decoder_.set_max_frame_size(max_frame_size_);
  done_ = true;
  return true;
}

}  // namespace slip::wire
