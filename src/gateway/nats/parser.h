// Incremental parser for the client side of the NATS client protocol (what a server reads):
// CONNECT, PUB, HPUB, SUB, UNSUB, PING, PONG, and the +OK/-ERR/INFO a client may echo.
//
// A pure function of bytes to operations: feed() takes bytes as they arrive, split anywhere,
// and hands every complete operation to a ParserSink. Nothing is trusted: a control line longer
// than max_control_line, a payload larger than max_payload, a malformed number or line, and an
// unknown operation are each a ParseError, after which the parser accepts nothing more (a NATS
// server closes the connection on all of them).
//
// Allocation: a control line and payload that arrive in one read are parsed in place, and the
// payload reaches the sink as a Slice of the read block (no copy). Only a line split across reads
// is gathered into a reused string, and only a payload split across reads into a fresh block.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "slipstream/buffer.h"
#include "slipstream/status.h"

namespace slip::gateway::nats {

// Every error a server sends for bad input, as the text of -ERR '<text>'.
enum class ParseError : std::uint8_t {
  kNone,
  kUnknownOperation,  // 'Unknown Protocol Operation'
  kControlLine,       // 'Maximum Control Line Exceeded'
  kMaxPayload,        // 'Maximum Payload Violation'
  kParser,            // 'Parser Error'
};
std::string_view parse_error_text(ParseError e);

enum class OpKind : std::uint8_t { kConnect, kPub, kHpub, kSub, kUnsub, kPing, kPong, kOk, kErr, kInfo };

// One operation. The views point into the parser's input or its line buffer and are valid only
// during the sink call; the payload Slice holds its own reference.
struct Op {
  OpKind kind = OpKind::kPing;
  std::string_view subject;
  std::string_view reply;   // PUB/HPUB: may be empty
  std::string_view queue;   // SUB: may be empty
  std::string_view sid;     // SUB/UNSUB: as sent (decimal digits)
  std::uint64_t max_msgs = 0;  // UNSUB: 0 means none given
  std::string_view args;    // CONNECT/INFO: the JSON; -ERR: the text
  std::size_t header_size = 0;  // HPUB: the first header_size bytes of `payload` are headers
  Slice payload;            // PUB/HPUB: headers + body
};

class ParserSink {
 public:
  virtual ~ParserSink() = default;
  // Return false to stop parsing (e.g. the connection is closing); feed() then returns at once.
  virtual bool on_op(const Op& op) = 0;
};

struct ParserLimits {
  std::size_t max_control_line = 4096;  // bytes of one control line, without CRLF
  std::size_t max_payload = 1u << 20;   // bytes of PUB/HPUB payload (headers included)
};

class Parser {
 public:
  explicit Parser(ParserLimits limits = {}) : limits_(limits) {}

  // Parses `bytes`. Returns kNone, or the first error (sticky: later calls return it again and
  // deliver nothing). Operations before the error have been delivered. With `consumed`, sets it
  // to how many bytes were parsed: all of them, unless the sink stopped the parser, in which
  // case the rest (from *consumed on) has not been looked at and may be fed later.
  ParseError feed(const Slice& bytes, ParserSink& sink, std::size_t* consumed = nullptr);
  ParseError error() const { return error_; }
  // For tests: bytes of a partial control line or payload held between calls.
  std::size_t buffered() const { return line_.size() + partial_.size(); }

 private:
  // Parses one control line (no CRLF); sets pending_ for PUB/HPUB, else delivers.
  ParseError on_line(std::string_view line, ParserSink& sink, bool& stop);
  bool fast_pub(std::string_view line);
  // Sets pending_ from `line`, which equals pub_line_.
  void same_pub(std::string_view line);

  ParserLimits limits_;
  ParseError error_ = ParseError::kNone;
  enum class State : std::uint8_t { kLine, kPayload };
  State state_ = State::kLine;
  std::string line_;  // a control line split across reads
  // PUB/HPUB waiting for its payload: the control line's fields are kept in `pending_line_`.
  std::string pending_line_;
  Op pending_;
  std::size_t need_ = 0;  // payload bytes + CRLF still to come
  Buffer partial_;        // a payload split across reads
  // The last line fast_pub() read: a publisher repeats "PUB <subject> <size>" for every message,
  // and the same line again means the same fields (offsets into the line) and size.
  std::string pub_line_;
  std::uint32_t pub_subject_len_ = 0;
  std::uint32_t pub_reply_len_ = 0;  // the reply, if any, follows the subject and a space
  std::uint64_t pub_total_ = 0;
};

// The CONNECT fields a server uses. Unknown fields are ignored.
struct ConnectOptions {
  bool verbose = false;
  bool pedantic = false;
  bool echo = true;
  bool headers = false;
  bool no_responders = false;
  bool tls_required = false;
  int protocol = 0;
  std::string name, lang, version;
  std::string auth_token, user, pass;
};
// Parses CONNECT's JSON object. kInvalidArgument for anything that is not one.
Result<ConnectOptions> parse_connect(std::string_view json);

// Decimal digits only, 1 to 18 of them (so no overflow): sizes, counts and subscription ids.
bool parse_decimal(std::string_view s, std::uint64_t& out);

}  // namespace slip::gateway::nats
