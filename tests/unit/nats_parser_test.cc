#include "gateway/nats/parser.h"
#include "gateway/nats/headers.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace slip::gateway::nats {
namespace {

// Records every operation as one line of text.
struct Recorder : ParserSink {
  std::vector<std::string> ops;
  std::vector<Slice> payloads;
  bool on_op(const Op& op) override {
    std::string s;
    switch (op.kind) {
      case OpKind::kConnect: s = "CONNECT " + std::string(op.args); break;
      case OpKind::kInfo: s = "INFO " + std::string(op.args); break;
      case OpKind::kErr: s = "-ERR " + std::string(op.args); break;
      case OpKind::kOk: s = "+OK"; break;
      case OpKind::kPing: s = "PING"; break;
      case OpKind::kPong: s = "PONG"; break;
      case OpKind::kPub:
        s = "PUB " + std::string(op.subject) + " [" + std::string(op.reply) + "] " + op.payload.to_string();
        break;
      case OpKind::kHpub:
        s = "HPUB " + std::string(op.subject) + " [" + std::string(op.reply) + "] " + std::to_string(op.header_size) +
            " " + op.payload.to_string();
        break;
      case OpKind::kSub:
        s = "SUB " + std::string(op.subject) + " [" + std::string(op.queue) + "] " + std::string(op.sid);
        break;
      case OpKind::kUnsub: s = "UNSUB " + std::string(op.sid) + " " + std::to_string(op.max_msgs); break;
    }
    ops.push_back(std::move(s));
    if (op.kind == OpKind::kPub || op.kind == OpKind::kHpub) payloads.push_back(op.payload);
    return true;
  }
};

const std::string kStream =
    "CONNECT {\"verbose\":false,\"headers\":true}\r\n"
    "PING\r\n"
    "pong\r\n"
    "SUB foo.* 1\r\n"
    "SUB\tfoo.>  workers\t 2\r\n"
    "PUB foo.bar 5\r\nhello\r\n"
    "PUB foo.bar _INBOX.x 4\r\na\r\nb\r\n"
    "PUB empty 0\r\n\r\n"
    "HPUB foo.h 18 23\r\nNATS/1.0\r\nK: V\r\n\r\nhello\r\n"
    "HPUB foo.h rep 12 12\r\nNATS/1.0\r\n\r\n\r\n"
    "UNSUB 1\r\n"
    "UNSUB 2 10\r\n"
    "+OK\r\n"
    "-ERR 'x'\r\n"
    "INFO {}\r\n";

const std::vector<std::string> kExpected = {
    "CONNECT {\"verbose\":false,\"headers\":true}",
    "PING",
    "PONG",
    "SUB foo.* [] 1",
    "SUB foo.> [workers] 2",
    "PUB foo.bar [] hello",
    "PUB foo.bar [_INBOX.x] a\r\nb",
    "PUB empty [] ",
    "HPUB foo.h [] 18 NATS/1.0\r\nK: V\r\n\r\nhello",
    "HPUB foo.h [rep] 12 NATS/1.0\r\n\r\n",
    "UNSUB 1 0",
    "UNSUB 2 10",
    "+OK",
    "-ERR 'x'",
    "INFO {}",
};

std::vector<std::string> parse_all(const std::vector<std::string>& chunks, ParseError* err = nullptr,
                                   ParserLimits limits = {}) {
  Parser p(limits);
  Recorder r;
  ParseError e = ParseError::kNone;
  for (const auto& c : chunks) {
    e = p.feed(Slice::copy_of(c), r);
    if (e != ParseError::kNone) break;
  }
  if (err) *err = e;
  return r.ops;
}

TEST(NatsParser, ParsesEveryOperation) {
  ParseError e;
  EXPECT_EQ(parse_all({kStream}, &e), kExpected);
  EXPECT_EQ(e, ParseError::kNone);
}

TEST(NatsParser, SameOperationsWhenSplitAtEveryByte) {
  for (std::size_t i = 0; i <= kStream.size(); ++i) {
    ParseError e;
    EXPECT_EQ(parse_all({kStream.substr(0, i), kStream.substr(i)}, &e), kExpected) << "split at " << i;
    EXPECT_EQ(e, ParseError::kNone);
  }
}

TEST(NatsParser, SameOperationsWhenSplitAtEveryPairOfBytes) {
  for (std::size_t i = 0; i <= kStream.size(); i += 3) {
    for (std::size_t j = i; j <= kStream.size(); ++j) {
      EXPECT_EQ(parse_all({kStream.substr(0, i), kStream.substr(i, j - i), kStream.substr(j)}), kExpected)
          << "split at " << i << " and " << j;
    }
  }
}

TEST(NatsParser, SameOperationsFedOneByteAtATime) {
  std::vector<std::string> bytes;
  for (char c : kStream) bytes.emplace_back(1, c);
  EXPECT_EQ(parse_all(bytes), kExpected);
}

TEST(NatsParser, PayloadInOneReadIsNotCopied) {
  Parser p;
  Recorder r;
  Slice in = Slice::copy_of("PUB a 3\r\nabc\r\n");
  ASSERT_EQ(p.feed(in, r), ParseError::kNone);
  ASSERT_EQ(r.payloads.size(), 1u);
  EXPECT_TRUE(r.payloads[0].shares_block_with(in));
  EXPECT_EQ(p.buffered(), 0u);
}

// A publisher repeats its PUB line; a repeated line reuses the fields read the first time, so
// lines of the same length with other subjects, replies or sizes, the general forms in between
// and lines split across reads must each still be read for themselves.
TEST(NatsParser, RepeatedAndAlmostRepeatedPubLines) {
  const std::string stream =
      "PUB a.b 3\r\nabc\r\n"
      "PUB a.b 3\r\nxyz\r\n"
      "PUB a.c 3\r\nuvw\r\n"
      "PUB a.b 4\r\nabcd\r\n"
      "PUB a b 3\r\nrep\r\n"
      "PUB a.b  3\r\ntwo\r\n"
      "PUB\ta.b 3\r\ntab\r\n"
      "PUB a.b 3\r\nend\r\n"
      "PUB a b 3\r\nagn\r\n";
  const std::vector<std::string> want = {"PUB a.b [] abc", "PUB a.b [] xyz", "PUB a.c [] uvw",
                                         "PUB a.b [] abcd", "PUB a [b] rep", "PUB a.b [] two",
                                         "PUB a.b [] tab", "PUB a.b [] end", "PUB a [b] agn"};
  EXPECT_EQ(parse_all({stream}), want);
  for (std::size_t i = 0; i <= stream.size(); ++i) {
    EXPECT_EQ(parse_all({stream.substr(0, i), stream.substr(i)}), want) << "split at " << i;
  }
  ParseError e;
  parse_all({"PUB a.b 3\r\nabc\r\nPUB a.b 3\r\nabcd\r\n"}, &e);
  EXPECT_EQ(e, ParseError::kParser);
  parse_all({"PUB a.b 3\r\nabc\r\nPUB a.b 9\r\n"}, &e, ParserLimits{4096, 8});
  EXPECT_EQ(e, ParseError::kMaxPayload);
}

TEST(NatsParser, AcceptsBareNewlines) {
  EXPECT_EQ(parse_all({"PING\nPUB a 1\nx\r\n"}), (std::vector<std::string>{"PING", "PUB a [] x"}));
}

TEST(NatsParser, RejectsUnknownOperation) {
  ParseError e;
  auto ops = parse_all({"PING\r\nFOO bar\r\nPING\r\n"}, &e);
  EXPECT_EQ(e, ParseError::kUnknownOperation);
  EXPECT_EQ(ops, std::vector<std::string>{"PING"});
  EXPECT_EQ(parse_error_text(e), "Unknown Protocol Operation");
  parse_all({"\r\n"}, &e);
  EXPECT_EQ(e, ParseError::kUnknownOperation);
  parse_all({"PINGX\r\n"}, &e);
  EXPECT_EQ(e, ParseError::kUnknownOperation);
}

TEST(NatsParser, RejectsControlLineOverLimit) {
  ParserLimits l;
  l.max_control_line = 16;
  ParseError e;
  // Exactly at the limit passes, with or without CR.
  EXPECT_EQ(parse_all({"SUB aaaaaaaaaa 1\r\n"}, &e, l).size(), 1u);
  EXPECT_EQ(parse_all({"SUB aaaaaaaaaa 1\n"}, &e, l).size(), 1u);
  parse_all({"SUB aaaaaaaaaaa 1\r\n"}, &e, l);
  EXPECT_EQ(e, ParseError::kControlLine);
  // No newline at all: refused as soon as the line is too long, not kept growing.
  Parser p(l);
  Recorder r;
  EXPECT_EQ(p.feed(Slice::copy_of("SUB aaaa"), r), ParseError::kNone);
  EXPECT_EQ(p.feed(Slice::copy_of("aaaaaaaaaaaaaaaa"), r), ParseError::kControlLine);
  EXPECT_EQ(p.buffered(), 0u);
}

TEST(NatsParser, RejectsPayloadOverMax) {
  ParserLimits l;
  l.max_payload = 10;
  ParseError e;
  EXPECT_EQ(parse_all({"PUB a 10\r\n0123456789\r\n"}, &e, l).size(), 1u);
  parse_all({"PUB a 11\r\n"}, &e, l);
  EXPECT_EQ(e, ParseError::kMaxPayload);
  parse_all({"HPUB a 4 11\r\n"}, &e, l);
  EXPECT_EQ(e, ParseError::kMaxPayload);
  parse_all({"PUB a 99999999999999999999\r\n"}, &e, l);
  EXPECT_EQ(e, ParseError::kParser);
}

TEST(NatsParser, RejectsMalformedLines) {
  for (const char* bad : {"PUB\r\n", "PUB a\r\n", "PUB a b c 1\r\n", "PUB a x\r\n", "PUB a -1\r\n", "PUB a 1\r\nxy\r\n",
                          "PUB a 1\r\nx\n\n", "HPUB a 5 4\r\n", "HPUB a 4\r\n", "SUB a\r\n", "SUB a b c d\r\n",
                          "UNSUB\r\n", "UNSUB 1 x\r\n", "UNSUB 1 2 3\r\n", "PING x\r\n", "CONNECT\r\n"}) {
    ParseError e;
    parse_all({bad}, &e);
    EXPECT_EQ(e, ParseError::kParser) << bad;
  }
}

TEST(NatsParser, ErrorIsStickyAndDeliversNothingMore) {
  Parser p;
  Recorder r;
  EXPECT_EQ(p.feed(Slice::copy_of("NOPE\r\n"), r), ParseError::kUnknownOperation);
  EXPECT_EQ(p.feed(Slice::copy_of("PING\r\n"), r), ParseError::kUnknownOperation);
  EXPECT_TRUE(r.ops.empty());
}

TEST(NatsParser, OperationNamesAreCaseInsensitive) {
  EXPECT_EQ(parse_all({"ping\r\nPiNg\r\nsub a 1\r\npub a 1\r\nx\r\n"}),
            (std::vector<std::string>{"PING", "PING", "SUB a [] 1", "PUB a [] x"}));
}

TEST(NatsParser, SinkCanStopParsing) {
  struct Stopper : ParserSink {
    int n = 0;
    bool on_op(const Op&) override { return ++n < 2; }
  } s;
  Parser p;
  EXPECT_EQ(p.feed(Slice::copy_of("PING\r\nPING\r\nPING\r\n"), s), ParseError::kNone);
  EXPECT_EQ(s.n, 2);
}

TEST(NatsConnect, ReadsTheFieldsAServerUses) {
  auto o = parse_connect(
      R"({"verbose":true,"pedantic":true,"tls_required":false,"name":"n\"1\u00e9","lang":"c","version":"3.4.1",)"
      R"("protocol":1,"echo":false,"headers":true,"no_responders":true,"auth_token":"tok","user":"u","pass":"p",)"
      R"("sig":null,"nested":{"a":[1,2,{"b":"c"}]},"n":-1.5e3})");
  ASSERT_TRUE(o.is_ok()) << o.status().to_string();
  EXPECT_TRUE(o->verbose);
  EXPECT_TRUE(o->pedantic);
  EXPECT_FALSE(o->echo);
  EXPECT_TRUE(o->headers);
  EXPECT_TRUE(o->no_responders);
  EXPECT_EQ(o->protocol, 1);
  EXPECT_EQ(o->name, "n\"1\xc3\xa9");
  EXPECT_EQ(o->auth_token, "tok");
  EXPECT_EQ(o->user, "u");
  EXPECT_EQ(o->pass, "p");
}

TEST(NatsConnect, DefaultsForAnEmptyObject) {
  auto o = parse_connect("{}");
  ASSERT_TRUE(o.is_ok());
  EXPECT_FALSE(o->verbose);
  EXPECT_TRUE(o->echo);
  EXPECT_FALSE(o->headers);
}

TEST(NatsConnect, RejectsWhatIsNotAnObject) {
  for (const char* bad : {"", "[]", "{", "{\"verbose\":1}", "{\"name\":5}", "{\"a\" 1}", "{\"a\":tru}", "{} x",
                          "{\"a\":\"\\q\"}", "{\"a\":\"unterminated}", "{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
                          "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}"}) {
    EXPECT_FALSE(parse_connect(bad).is_ok()) << bad;
  }
}

TEST(NatsHeaders, StatusLineAndFieldsRoundTrip) {
  wire::Metadata h;
  ASSERT_TRUE(parse_header_block("NATS/1.0 503 No Responders\r\nA: 1\r\nB:  two words \r\nA: 3\r\n\r\n", h));
  ASSERT_EQ(h.size(), 5u);
  EXPECT_EQ(h[0], (std::pair<std::string_view, std::string_view>(":status", "503")));
  EXPECT_EQ(h[1], (std::pair<std::string_view, std::string_view>(":description", "No Responders")));
  EXPECT_EQ(h[3], (std::pair<std::string_view, std::string_view>("B", "two words")));
  std::string out;
  append_header_block(out, h);
  EXPECT_EQ(out, "NATS/1.0 503 No Responders\r\nA: 1\r\nB: two words\r\nA: 3\r\n\r\n");
}

TEST(NatsHeaders, NoRespondersBecomesTheBareStatusLine) {
  std::string out;
  append_header_block(out, wire::Metadata{{":status", "503"}});
  EXPECT_EQ(out, "NATS/1.0 503\r\n\r\n");
}

TEST(NatsHeaders, HeadersThatWouldBreakLinesAreNotSent) {
  std::string out;
  append_header_block(out, wire::Metadata{{"ok", "v"}, {"bad", "a\r\nX: injected"}, {"b\nad", "v"}, {"a b", "v"}});
  EXPECT_EQ(out, "NATS/1.0\r\nok: v\r\n\r\n");
}

TEST(NatsHeaders, RejectsWhatIsNotAHeaderBlock) {
  wire::Metadata h;
  for (const char* bad : {"", "HTTP/1.1\r\n\r\n", "NATS/1.0\r\n", "NATS/1.0\r\nnocolon\r\n\r\n",
                          "NATS/1.0\r\n: v\r\n\r\n", "NATS/1.0\r\nK: V\r\n\r\nextra"}) {
    EXPECT_FALSE(parse_header_block(bad, h)) << bad;
  }
}

}  // namespace
}  // namespace slip::gateway::nats
