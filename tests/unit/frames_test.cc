// Typed frames: every type through FrameEncoder -> FrameDecoder -> parse_frame, wire layout,
// and the malformed bodies parse_frame must reject.
#include "wire/frames.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "wire/encoder.h"
#include "wire/decoder.h"
#include "wire_test_util.h"
#include "expect_status.h"

namespace slip::wire {
namespace {

using test::Bytes;
using test::describe;
using test::hex_bytes;
using test::raw_frame;

// A parsed frame and the frame it was parsed from: its string fields point into `frame.body`.
struct Parsed {
  Frame frame;
  AnyFrame value;
};

// Encodes one frame, decodes it from a single contiguous read and parses it.
Parsed round_trip(const AnyFrame& in, const WireLimits& limits = {}) {
  FrameEncoder enc;
  enc.add(in);
  const std::string bytes = enc.take().to_string();
  test::Decoded d = test::decode_all(ByteView(bytes), limits);
  EXPECT_TRUE(d.error.is_ok()) << d.error.to_string();
  EXPECT_EQ(d.frames.size(), 1u);
  EXPECT_EQ(d.left, 0u);
  if (d.frames.size() != 1) return {Frame{}, in};
  EXPECT_EQ(d.frames[0].type, type_of(in));
  Result<AnyFrame> parsed = parse_frame(d.frames[0], limits);
  EXPECT_TRUE(parsed.is_ok()) << parsed.status().to_string();
  if (!parsed.is_ok()) return {Frame{}, in};
  return {d.frames[0], std::move(parsed).value()};
}

void expect_round_trip(const AnyFrame& in) {
  Parsed out = round_trip(in);
  EXPECT_EQ(out.value.index(), in.index());
  EXPECT_EQ(describe(out.value), describe(in));
}

Status parse_error(const Frame& f, const WireLimits& limits = {}) {
  Result<AnyFrame> r = parse_frame(f, limits);
  return r.is_ok() ? Status() : r.status();
}

// Asserts that `s` failed with `code` and that its message contains `fragment`.
using ::slip::test::expect_error;

TEST(FramesTest, EveryFrameTypeRoundTripsWithAllFields) {
  std::vector<AnyFrame> all = test::every_frame_type();
  ASSERT_EQ(all.size(), std::variant_size_v<AnyFrame>);
  for (std::size_t i = 0; i < all.size(); ++i) {
    SCOPED_TRACE(describe(all[i]));
    EXPECT_EQ(all[i].index(), i);
    expect_round_trip(all[i]);
  }
}

TEST(FramesTest, HelloRoundTripsCredentialsAndCapabilities) {
  Parsed out = round_trip(test::every_frame_type()[0]);
  const Hello& h = std::get<Hello>(out.value);
  EXPECT_EQ(h.min_version, 1);
  EXPECT_EQ(h.max_version, 3);
  EXPECT_EQ(h.codecs, 6u);
  EXPECT_TRUE(h.require_encryption);
  EXPECT_EQ(h.max_frame_size, 1u << 20);
  EXPECT_EQ(h.auth_token, std::string_view("tok\0en", 6));
  EXPECT_EQ(h.auth_user, "alice");
  EXPECT_EQ(h.auth_password, "s3cret");
  EXPECT_EQ(h.client_name, "unit-test");
  EXPECT_EQ(h.heartbeat_ms, 2500u);
  EXPECT_EQ(h.initial_credit, 65536u);
  EXPECT_EQ(h.features, 0x8000000000000001ull);
}

TEST(FramesTest, HelloWithDefaultsRoundTrips) {
  Parsed out = round_trip(Hello{});
  const Hello& h = std::get<Hello>(out.value);
  EXPECT_EQ(h.min_version, kProtocolVersion);
  EXPECT_EQ(h.max_version, kProtocolVersion);
  EXPECT_EQ(h.codecs, 0u);
  EXPECT_FALSE(h.require_encryption);
  EXPECT_TRUE(h.client_name.empty());
  // Unset fields are not sent: the body is just the two version bytes.
  EXPECT_EQ(encode_frame(Hello{}).size(), 2u + 1u + 2u);
}

TEST(FramesTest, WelcomeRoundTripsAllFields) {
  Parsed out = round_trip(test::every_frame_type()[1]);
  const Welcome& w = std::get<Welcome>(out.value);
  EXPECT_EQ(w.version, 1);
  EXPECT_EQ(w.codecs, 4u);
  EXPECT_EQ(w.max_frame_size, 300000u);
  EXPECT_EQ(w.heartbeat_ms, 1000u);
  EXPECT_EQ(w.initial_credit, 1u << 18);
  EXPECT_EQ(w.server_name, "slipd");
  EXPECT_EQ(w.server_id, "srv-7");
  EXPECT_EQ(w.connection_id, 0x123456789ull);
  EXPECT_EQ(w.features, 5u);
}

TEST(FramesTest, DataRoundTripsFlagsPriorityAndCodec) {
  for (std::uint8_t prio = 0; prio < 4; ++prio) {
    for (std::uint8_t codec = 0; codec <= kMaxCodec; ++codec) {
      for (std::uint8_t low = 0; low < 8; ++low) {  // end-stream, more, open
        Data d;
        d.stream_id = 5;
        d.flags = static_cast<std::uint8_t>(low | (prio << data_flags::kPriorityShift) |
                                            (codec << data_flags::kCodecShift));
        d.payload = Slice::copy_of(ByteView("abc"));
        Parsed out = round_trip(d);
        const Data& got = std::get<Data>(out.value);
        EXPECT_EQ(got.flags, d.flags);
        EXPECT_EQ(got.end_stream(), (low & data_flags::kEndStream) != 0);
        EXPECT_EQ(got.more(), (low & data_flags::kMore) != 0);
        EXPECT_EQ(got.open(), (low & data_flags::kOpen) != 0);
        EXPECT_EQ(got.priority(), static_cast<Priority>(prio));
        EXPECT_EQ(got.codec(), static_cast<Codec>(codec));
        EXPECT_EQ(got.payload.to_string(), "abc");
      }
    }
  }
}

TEST(FramesTest, DataWithSixtyFourBytePayloadCostsFourHeaderBytes) {
  Data d;
  d.stream_id = 5;
  d.payload = test::pattern_payload(64);
  Slice s = encode_frame(d);
  ASSERT_EQ(s.size(), 68u);
  EXPECT_EQ(s.data()[0], static_cast<std::uint8_t>(FrameType::kData));
  EXPECT_EQ(s.data()[1], 0);   // flags
  EXPECT_EQ(s.data()[2], 65);  // body: stream id + payload
  EXPECT_EQ(s.data()[3], 5);   // stream id
  EXPECT_TRUE(s.sub(4) == d.payload.view());
}

// docs/protocol.md, section 11: the encoder writes exactly the documented bytes, and the
// documented bytes parse back to the same frame.
TEST(FramesTest, EncodingMatchesTheProtocolDocExamples) {
  auto check = [](const AnyFrame& f, std::string_view hex) {
    SCOPED_TRACE(describe(f));
    const std::string want = hex_bytes(hex);
    EXPECT_EQ(test::quoted(encode_frame(f).to_string()), test::quoted(want));
    test::Decoded d = test::decode_all(ByteView(want));
    ASSERT_TRUE(d.error.is_ok()) << d.error.to_string();
    ASSERT_EQ(d.frames.size(), 1u);
    Result<AnyFrame> p = parse_frame(d.frames[0], {});
    ASSERT_TRUE(p.is_ok()) << p.status().to_string();
    EXPECT_EQ(describe(*p), describe(f));
  };
  const std::string payload64(64, 'x');
  Data d5;
  d5.stream_id = 5;
  d5.payload = Slice::copy_of(ByteView(payload64));
  std::string d5_hex = "10 00 41 05";
  for (std::size_t i = 0; i < payload64.size(); ++i) d5_hex += " 78";
  check(d5, d5_hex);
  EXPECT_EQ(encode_frame(d5).size(), 68u);
  Data open5 = d5;
  open5.flags = data_flags::kOpen | data_flags::kEndStream |
                static_cast<std::uint8_t>(static_cast<int>(Priority::kInteractive) << data_flags::kPriorityShift);
  EXPECT_EQ(encode_frame(open5).sub(0, 4).to_string(), hex_bytes("10 15 41 05"));
  Data chunk;
  chunk.stream_id = 300;
  chunk.flags = data_flags::kMore | static_cast<std::uint8_t>(static_cast<int>(Codec::kZstd) << data_flags::kCodecShift);
  chunk.payload = test::pattern_payload(200);
  EXPECT_EQ(encode_frame(chunk).sub(0, 6).to_string(), hex_bytes("10 82 CA 01 AC 02"));
  EXPECT_EQ(encode_frame(chunk).size(), 206u);

  Hello hello;
  hello.codecs = 6;
  hello.max_frame_size = 1048576;
  hello.client_name = "demo";
  hello.heartbeat_ms = 5000;
  hello.initial_credit = 262144;
  check(hello, "01 00 19  01 01  01 01 06  03 03 80 80 40  07 04 64 65 6D 6F  08 02 88 27  09 03 80 80 10");
  Welcome welcome;
  welcome.codecs = 6;
  welcome.max_frame_size = 1048576;
  welcome.server_name = "slipd";
  welcome.heartbeat_ms = 5000;
  welcome.initial_credit = 262144;
  welcome.server_id = "s1";
  welcome.connection_id = 7;
  check(welcome, "02 00 20  01  01 01 06  03 03 80 80 40  07 05 73 6C 69 70 64  08 02 88 27  09 03 80 80 10  "
                 "0B 02 73 31  0C 01 07");
  check(Ping{0x0102030405060708ull}, "03 00 08 01 02 03 04 05 06 07 08");
  check(Pong{0x0102030405060708ull}, "04 00 08 01 02 03 04 05 06 07 08");
  check(ErrorFrame{0, StatusCode::kUnauthenticated, "bad token"}, "06 00 0B 00 10 62 61 64 20 74 6F 6B 65 6E");

  Pub pub;
  pub.subject = "a.b";
  pub.reply = "r";
  pub.has_headers = true;
  pub.headers = {{"k", "v"}};
  pub.payload = Slice::copy_of(ByteView("hi"));
  check(pub, "22 03 0D  03 61 2E 62  01 72  01 01 6B 01 76  68 69");

  check(Sub{1, "orders.*", "workers"}, "20 00 12  01  08 6F 72 64 65 72 73 2E 2A  07 77 6F 72 6B 65 72 73");
  check(Sub{2, "t", "", true, 10, 1024}, "20 01 07  02  01 74  00  0A  80 08");
  Msg msg;
  msg.sid = 1;
  msg.subject = "orders.new";
  msg.payload = Slice::copy_of(ByteView("hi"));
  check(msg, "23 00 0E  01  0A 6F 72 64 65 72 73 2E 6E 65 77  68 69");

  Call call;
  call.stream_id = 1;
  call.method = "/p.S/M";
  call.timeout_us = 1000000;
  check(call, "30 00 0C  01  06 2F 70 2E 53 2F 4D  C0 84 3D  00");
  check(Trailers{1, StatusCode::kOk, "", {}}, "32 00 04  01  00  00  00");
  check(Credit{0, 65536}, "07 00 04 00 80 80 04");
  check(GoAway{7, StatusCode::kOk, "bye"}, "05 00 05 07 00 62 79 65");
  LogPublish lp;
  lp.request_id = 9;
  lp.subject = "log";
  lp.payload = Slice::copy_of(ByteView("abc"));
  check(lp, "40 00 08  09  03 6C 6F 67  61 62 63");
  check(LogAck{9, StatusCode::kOk, 1000, ""}, "41 00 04  09  00  E8 07");
  check(PubSubError{FrameType::kPub, 0, StatusCode::kPermissionDenied, "x.y", "denied"},
        "24 00 0D  22  00  07  03 78 2E 79  64 65 6E 69 65 64");
  check(PubSubError{FrameType::kSub, 2, StatusCode::kPermissionDenied, ">", "no"}, "24 00 07  20  02  07  01 3E  6E 6F");
  StreamRequest sq;
  sq.request_id = 5;
  sq.op = StreamOp::kInfo;
  sq.args = {{"name", "S"}};
  check(sq, "42 00 0A  05  02  01 04 6E 61 6D 65 01 53");
  check(StreamResponse{5, StatusCode::kNotFound, "no", {}}, "43 00 06  05  05  02 6E 6F  00");
  StreamMsg sm;
  sm.request_id = 5;
  sm.sequence = 300;
  sm.timestamp_ns = 1;
  sm.subject = "a";
  sm.payload = Slice::copy_of(ByteView("xy"));
  check(sm, "44 00 09  05  AC 02  01  00  01 61  78 79");
  // A consumer fetch (op 7) and a redelivery (deliveries 2) answering it.
  StreamRequest fetch;
  fetch.request_id = 6;
  fetch.op = StreamOp::kConsumerFetch;
  fetch.args = {{"stream", "S"}, {"name", "C"}, {"batch", "10"}};
  check(fetch, "42 00 1C  06  07  03  06 73 74 72 65 61 6D 01 53  04 6E 61 6D 65 01 43  05 62 61 74 63 68 02 31 30");
  StreamMsg redelivery;
  redelivery.request_id = 6;
  redelivery.sequence = 3;
  redelivery.timestamp_ns = 1;
  redelivery.deliveries = 2;
  redelivery.subject = "a";
  redelivery.payload = Slice::copy_of(ByteView("x"));
  check(redelivery, "44 00 07  06  03  01  02  01 61  78");
  check(StreamResponse{6, StatusCode::kOk, "", {{"delivered", "1"}}},
        "43 00 10  06  00  00  01 09 64 65 6C 69 76 65 72 65 64 01 31");
}

TEST(FramesTest, StreamRequestCarriesEveryConsumerOp) {
  const WireLimits limits;
  for (std::uint8_t op = static_cast<std::uint8_t>(StreamOp::kConsumerAdd); op <= kMaxStreamOp; ++op) {
    const std::uint8_t body[] = {0x01, op, 0x00};
    Frame f{FrameType::kStreamRequest, 0, Slice::copy_of(ByteView(body, sizeof(body)))};
    auto r = parse_frame(f, limits);
    ASSERT_TRUE(r.is_ok()) << "op " << int(op) << ": " << r.status().to_string();
    EXPECT_EQ(static_cast<std::uint8_t>(std::get<StreamRequest>(*r).op), op);
  }
  EXPECT_EQ(kMaxStreamOp, static_cast<std::uint8_t>(StreamOp::kConsumerUnsubscribe));
}

TEST(FramesTest, StreamRequestRejectsUnknownOpAndTrailingBytes) {
  const WireLimits limits;
  for (std::uint8_t op : {std::uint8_t{0}, std::uint8_t{kMaxStreamOp + 1}, std::uint8_t{0xFF}}) {
    const std::uint8_t body[] = {0x01, op, 0x00};
    Frame f{FrameType::kStreamRequest, 0, Slice::copy_of(ByteView(body, sizeof(body)))};
    auto r = parse_frame(f, limits);
    ASSERT_FALSE(r.is_ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("op"), std::string::npos) << r.status().to_string();
  }
  const std::uint8_t extra[] = {0x01, 0x02, 0x00, 0x00};
  Frame f{FrameType::kStreamRequest, 0, Slice::copy_of(ByteView(extra, sizeof(extra)))};
  EXPECT_FALSE(parse_frame(f, limits).is_ok());
  // STREAM_MSG takes HAS_HEADERS only.
  const std::uint8_t msg[] = {0x01, 0x01, 0x01, 0x00, 0x01, 0x61};
  Frame m{FrameType::kStreamMsg, msg_flags::kHasReply, Slice::copy_of(ByteView(msg, sizeof(msg)))};
  EXPECT_FALSE(parse_frame(m, limits).is_ok());
  m.flags = 0;
  EXPECT_TRUE(parse_frame(m, limits).is_ok());
}

TEST(FramesTest, PingOpaqueIsBigEndianOnTheWire) {
  Slice s = encode_frame(Ping{0x0102030405060708ull});
  ASSERT_EQ(s.size(), 11u);
  EXPECT_EQ(s.sub(0, 3).to_string(), std::string("\x03\x00\x08", 3));
  EXPECT_EQ(s.sub(3).to_string(), std::string("\x01\x02\x03\x04\x05\x06\x07\x08", 8));
}

TEST(FramesTest, LargePayloadIsReferencedNotCopied) {
  Data d;
  d.stream_id = 1;
  d.payload = test::pattern_payload(FrameEncoder::kDefaultInlinePayloadMax);
  const std::uint32_t refs_before = d.payload.block_use_count();
  FrameEncoder enc;
  enc.add(d);
  Chain c = enc.take();
  ASSERT_EQ(c.slice_count(), 2u);  // header, then the caller's payload
  EXPECT_EQ(c.slice(0).size(), 2u + 2u + 1u);
  EXPECT_EQ(c.slice(1).data(), d.payload.data());
  EXPECT_TRUE(c.slice(1).shares_block_with(d.payload));
  EXPECT_EQ(d.payload.block_use_count(), refs_before + 1);

  Parsed out = round_trip(d);
  EXPECT_EQ(describe(out.value), describe(AnyFrame(d)));
}

TEST(FramesTest, PayloadBelowInlineLimitIsCopied) {
  Pub p;
  p.subject = "s";
  p.payload = test::pattern_payload(FrameEncoder::kDefaultInlinePayloadMax - 1);
  FrameEncoder enc;
  enc.add(p);
  Chain c = enc.take();
  ASSERT_EQ(c.slice_count(), 1u);
  EXPECT_FALSE(c.slice(0).shares_block_with(p.payload));
  EXPECT_EQ(p.payload.block_use_count(), 1u);
}

TEST(FramesTest, LargePayloadsOfEveryMessageTypeAreReferenced) {
  Slice big = test::pattern_payload(4096, 3);
  Pub p;
  p.subject = "a";
  p.payload = big;
  Msg m;
  m.sid = 1;
  m.subject = "a";
  m.payload = big;
  LogPublish lp;
  lp.subject = "a";
  lp.payload = big;
  FrameEncoder enc;
  enc.add(p);
  enc.add(m);
  enc.add(lp);
  Chain c = enc.take();
  int referenced = 0;
  for (const Slice& s : c) referenced += s.data() == big.data() ? 1 : 0;
  EXPECT_EQ(referenced, 3);
  EXPECT_EQ(describe(round_trip(p).value), describe(AnyFrame(p)));
  EXPECT_EQ(describe(round_trip(m).value), describe(AnyFrame(m)));
  EXPECT_EQ(describe(round_trip(lp).value), describe(AnyFrame(lp)));
}

TEST(FramesTest, EncoderWithZeroInlineLimitReferencesEveryPayload) {
  FrameEncoder enc(1024, 0);
  Data d;
  d.stream_id = 2;
  d.payload = Slice::copy_of(ByteView("tiny"));
  enc.add(d);
  enc.add(Ping{1});  // a frame without a payload must still encode
  Chain c = enc.take();
  bool referenced = false;
  for (const Slice& s : c) referenced |= s.data() == d.payload.data();
  EXPECT_TRUE(referenced);
  test::Decoded out = test::decode_all(ByteView(c.to_string()));
  ASSERT_TRUE(out.error.is_ok());
  ASSERT_EQ(out.frames.size(), 2u);
  EXPECT_EQ(out.frames[0].body.sub(1).to_string(), "tiny");
  EXPECT_EQ(out.frames[1].type, FrameType::kPing);
}

TEST(FramesTest, EmptyPayloadsRoundTrip) {
  Data d;
  d.stream_id = 1;
  d.flags = data_flags::kEndStream;
  Parsed out = round_trip(d);
  EXPECT_TRUE(std::get<Data>(out.value).payload.empty());
  EXPECT_TRUE(std::get<Data>(out.value).end_stream());

  Pub p;
  p.subject = "x";
  EXPECT_TRUE(std::get<Pub>(round_trip(p).value).payload.empty());
  Msg m;
  m.subject = "x";
  EXPECT_TRUE(std::get<Msg>(round_trip(m).value).payload.empty());
  LogPublish lp;
  lp.subject = "x";
  EXPECT_TRUE(std::get<LogPublish>(round_trip(lp).value).payload.empty());
}

TEST(FramesTest, PubWithoutReplyOrHeadersSetsNoFlags) {
  Pub p;
  p.subject = "plain";
  p.payload = Slice::copy_of(ByteView("x"));
  Slice s = encode_frame(p);
  EXPECT_EQ(s.data()[1], 0);
  Parsed out = round_trip(p);
  const Pub& got = std::get<Pub>(out.value);
  EXPECT_TRUE(got.reply.empty());
  EXPECT_FALSE(got.has_headers);
  EXPECT_TRUE(got.headers.empty());
}

TEST(FramesTest, HasHeadersWithNoEntriesIsKept) {
  Msg m;
  m.sid = 1;
  m.subject = "s";
  m.has_headers = true;
  Slice s = encode_frame(m);
  EXPECT_EQ(s.data()[1], msg_flags::kHasHeaders);
  Parsed out = round_trip(m);
  EXPECT_TRUE(std::get<Msg>(out.value).has_headers);
  EXPECT_TRUE(std::get<Msg>(out.value).headers.empty());
}

TEST(FramesTest, ReplyAndHeadersSetTheirFlags) {
  Pub p;
  p.subject = "s";
  p.reply = "r";
  p.has_headers = true;
  p.headers = {{"h", "v"}};
  EXPECT_EQ(encode_frame(p).data()[1], msg_flags::kHasReply | msg_flags::kHasHeaders);
  Parsed out = round_trip(p);
  const Pub& got = std::get<Pub>(out.value);
  EXPECT_EQ(got.reply, "r");
  ASSERT_EQ(got.headers.size(), 1u);
  EXPECT_EQ(got.headers[0].first, "h");
  EXPECT_EQ(got.headers[0].second, "v");
}

TEST(FramesTest, DecodedStringsPointIntoTheFrameBody) {
  Bytes body;
  body.varint(1).str("subj").str("queue");
  Frame f = raw_frame(FrameType::kSub, 0, body);
  Result<AnyFrame> r = parse_frame(f, {});
  ASSERT_TRUE(r.is_ok());
  const Sub& s = std::get<Sub>(*r);
  EXPECT_EQ(reinterpret_cast<const std::uint8_t*>(s.subject.data()), f.body.data() + 2);
  EXPECT_EQ(s.queue, "queue");
}

TEST(FramesTest, SubFlagsOtherThanDropOldestAreRejected) {
  Bytes body;
  body.varint(1).str("subj").str("");
  EXPECT_FALSE(parse_frame(raw_frame(FrameType::kSub, 0x02, body), {}).is_ok());
  // DROP_OLDEST without its two bounds is truncated.
  EXPECT_FALSE(parse_frame(raw_frame(FrameType::kSub, 0x01, body), {}).is_ok());
  body.varint(5).varint(0);
  Result<AnyFrame> r = parse_frame(raw_frame(FrameType::kSub, 0x01, body), {});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const Sub& s = std::get<Sub>(*r);
  EXPECT_TRUE(s.drop_oldest);
  EXPECT_EQ(s.backlog_msgs, 5u);
  EXPECT_EQ(s.backlog_bytes, 0u);
  // Encoded and decoded again, every field survives.
  expect_round_trip(Sub{43, "ticks.>", "q", true, 100, 1u << 20});
}

TEST(FramesTest, DecodedPayloadSharesTheFrameBlock) {
  Bytes body;
  body.varint(9).raw("payload bytes");
  Frame f = raw_frame(FrameType::kData, 0, body);
  Result<Data> d = decode_data(f);
  ASSERT_TRUE(d.is_ok());
  EXPECT_TRUE(d->payload.shares_block_with(f.body));
  EXPECT_EQ(d->payload.data(), f.body.data() + 1);
  EXPECT_EQ(d->payload.to_string(), "payload bytes");
}

TEST(FramesTest, StatusCodesTravelAndUnknownWireCodesBecomeUnknown) {
  for (std::uint8_t c = 1; c <= kMaxStatusCode; ++c) {
    ErrorFrame e{0, static_cast<StatusCode>(c), "m"};
    EXPECT_EQ(std::get<ErrorFrame>(round_trip(e).value).code, static_cast<StatusCode>(c));
  }
  // ERROR, RESET and CANCEL report failures: OK on the wire is read as UNKNOWN.
  EXPECT_EQ(std::get<ErrorFrame>(round_trip(ErrorFrame{0, StatusCode::kOk, "m"}).value).code, StatusCode::kUnknown);
  EXPECT_EQ(std::get<Reset>(round_trip(Reset{3, StatusCode::kOk, "m"}).value).code, StatusCode::kUnknown);
  EXPECT_EQ(std::get<Cancel>(round_trip(Cancel{3, StatusCode::kOk}).value).code, StatusCode::kUnknown);
  Bytes body;
  body.varint(0).varint(99).raw("future code");
  Frame f = raw_frame(FrameType::kGoAway, 0, body);
  Result<AnyFrame> r = parse_frame(f, {});
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(std::get<GoAway>(*r).code, StatusCode::kUnknown);
  EXPECT_EQ(std::get<GoAway>(*r).message, "future code");
}

TEST(FramesTest, TypedDecodersAgreeWithParseFrame) {
  std::vector<AnyFrame> all = test::every_frame_type();
  FrameEncoder enc;
  for (const AnyFrame& f : all) enc.add(f);
  test::Decoded d = test::decode_all(ByteView(enc.take().to_string()));
  ASSERT_TRUE(d.error.is_ok());
  ASSERT_EQ(d.frames.size(), all.size());
  WireLimits lim;
  for (const Frame& f : d.frames) {
    std::string via_parse = describe(*parse_frame(f, lim));
    switch (f.type) {
      case FrameType::kHello: EXPECT_EQ(describe(*decode_hello(f, lim)), via_parse); break;
      case FrameType::kWelcome: EXPECT_EQ(describe(*decode_welcome(f, lim)), via_parse); break;
      case FrameType::kData: EXPECT_EQ(describe(*decode_data(f)), via_parse); break;
      case FrameType::kPub: EXPECT_EQ(describe(*decode_pub(f, lim)), via_parse); break;
      case FrameType::kMsg: EXPECT_EQ(describe(*decode_msg(f, lim)), via_parse); break;
      case FrameType::kPing: EXPECT_EQ(describe(*decode_ping(f)), via_parse); break;
      default: break;
    }
  }
}

TEST(FramesTest, TypeOfMapsEveryAlternative) {
  const FrameType expected[] = {
      FrameType::kHello, FrameType::kWelcome,  FrameType::kPing,     FrameType::kPong,       FrameType::kGoAway,
      FrameType::kError, FrameType::kCredit,   FrameType::kData,     FrameType::kReset,      FrameType::kSub,
      FrameType::kUnsub, FrameType::kPub,      FrameType::kMsg,      FrameType::kCall,       FrameType::kResponse,
      FrameType::kTrailers, FrameType::kCancel, FrameType::kLogPublish, FrameType::kLogAck, FrameType::kPubSubError,
      FrameType::kStreamRequest, FrameType::kStreamResponse, FrameType::kStreamMsg,
  };
  std::vector<AnyFrame> all = test::every_frame_type();
  for (std::size_t i = 0; i < all.size(); ++i) EXPECT_EQ(type_of(all[i]), expected[i]);
}

TEST(FramesTest, KnownTypesAreExactlyTheListedOnes) {
  int known = 0;
  for (int t = 0; t < 256; ++t) {
    auto b = static_cast<std::uint8_t>(t);
    if (is_known_frame_type(b)) {
      ++known;
      EXPECT_NE(frame_type_name(static_cast<FrameType>(b)), "UNKNOWN");
      EXPECT_NE(frame_type_name(static_cast<FrameType>(b)), "EXTENSION");
    }
    EXPECT_EQ(is_extension_frame_type(b), t >= 0xF0);
  }
  EXPECT_EQ(known, 23);
  EXPECT_FALSE(is_known_frame_type(0x00));
  EXPECT_FALSE(is_known_frame_type(0x08));
  EXPECT_FALSE(is_known_frame_type(0x50));
  EXPECT_EQ(frame_type_name(static_cast<FrameType>(0x50)), "UNKNOWN");
  EXPECT_EQ(frame_type_name(static_cast<FrameType>(0xF3)), "EXTENSION");
  EXPECT_EQ(frame_type_name(FrameType::kLogPublish), "LOG_PUBLISH");
}

TEST(FramesTest, PubSubErrorRejectsMalformedBodies) {
  // op other than SUB or PUB.
  Bytes bad_op;
  bad_op.u8(0x21).varint(1).varint(7).str("a").raw("m");
  expect_error(parse_error(raw_frame(FrameType::kPubSubError, 0, bad_op)), StatusCode::kInvalidArgument,
               "PUBSUB_ERROR frame: op: must be 0x20 (SUB) or 0x22 (PUB)");
  // Truncated at every byte of a valid body: each prefix fails, naming the missing field.
  const std::string good = encode_frame(PubSubError{FrameType::kSub, 300, StatusCode::kPermissionDenied, "a.b", ""})
                               .to_string()
                               .substr(3);
  for (std::size_t n = 0; n < good.size(); ++n) {
    Bytes b;
    b.raw(good.substr(0, n));
    EXPECT_EQ(parse_error(raw_frame(FrameType::kPubSubError, 0, b)).code(), StatusCode::kInvalidArgument) << n;
  }
  // Reserved flag bits.
  Bytes ok;
  ok.raw(good);
  expect_error(parse_error(raw_frame(FrameType::kPubSubError, 0x01, ok)), StatusCode::kInvalidArgument, "flags");
  // Subject over the name limit.
  Bytes longer;
  longer.u8(0x22).varint(0).varint(7).str(std::string(1025, 'a'));
  expect_error(parse_error(raw_frame(FrameType::kPubSubError, 0, longer)), StatusCode::kOverloaded,
               "subject: length 1025 exceeds limit 1024");
  // OK as the code reads as UNKNOWN; the message is the rest of the body.
  Bytes okcode;
  okcode.u8(0x22).varint(0).varint(0).str("s").raw("why");
  const Frame okframe = raw_frame(FrameType::kPubSubError, 0, okcode);  // the parsed views point into it
  Result<AnyFrame> r = parse_frame(okframe, {});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(std::get<PubSubError>(*r).code, StatusCode::kUnknown);
  EXPECT_EQ(std::get<PubSubError>(*r).message, "why");
}

TEST(FramesTest, HelloSkipsUnknownFields) {
  Bytes body;
  body.u8(1).u8(1).tlv_str(63, "future").tlv_varint(hs_key::kCodecs, 2).tlv_str(1000, "far future");
  body.tlv_str(hs_key::kName, "n");
  Frame f = raw_frame(FrameType::kHello, 0, body);
  Result<Hello> h = decode_hello(f, {});
  ASSERT_TRUE(h.is_ok()) << h.status().to_string();
  EXPECT_EQ(h->codecs, 2u);
  EXPECT_EQ(h->client_name, "n");
}

TEST(FramesTest, HelloKeepsOnlyTheCompressingCodecBits) {
  // Bits past the known codecs are dropped, and so is NONE (bit 0), which is always implied.
  Bytes body;
  body.u8(1).u8(1).tlv_varint(hs_key::kCodecs, 0xFF);
  Result<Hello> h = decode_hello(raw_frame(FrameType::kHello, 0, body), {});
  ASSERT_TRUE(h.is_ok());
  EXPECT_EQ(h->codecs, 0x6u);
  Bytes welcome;
  welcome.u8(1).tlv_varint(hs_key::kCodecs, 0x9);
  Result<Welcome> w = decode_welcome(raw_frame(FrameType::kWelcome, 0, welcome), {});
  ASSERT_TRUE(w.is_ok());
  EXPECT_EQ(w->codecs, 0u);
}

// ---- Malformed bodies: each class is rejected with its own code and message. ----

TEST(FramesTest, RejectsTruncatedField) {
  Bytes body;
  body.varint(5);  // CREDIT: stream id, increment missing
  expect_error(parse_error(raw_frame(FrameType::kCredit, 0, body)), StatusCode::kInvalidArgument,
               "CREDIT frame: increment: truncated");
}

TEST(FramesTest, RejectsTruncatedString) {
  Bytes body;
  body.varint(1).varint(10).raw("short");  // SUB subject claims 10 bytes
  expect_error(parse_error(raw_frame(FrameType::kSub, 0, body)), StatusCode::kInvalidArgument,
               "SUB frame: subject: truncated");
}

TEST(FramesTest, RejectsTruncatedFixed64) {
  Bytes body;
  body.raw("1234567");
  expect_error(parse_error(raw_frame(FrameType::kPing, 0, body)), StatusCode::kInvalidArgument,
               "PING frame: opaque: truncated");
  expect_error(parse_error(raw_frame(FrameType::kPong, 0, body)), StatusCode::kInvalidArgument,
               "PONG frame: opaque: truncated");
}

TEST(FramesTest, RejectsTrailingBytes) {
  Bytes body;
  body.varint(5).varint(100).raw("xy");
  expect_error(parse_error(raw_frame(FrameType::kCredit, 0, body)), StatusCode::kInvalidArgument,
               "2 unexpected trailing bytes");
  Bytes ping;
  ping.raw("123456789");
  expect_error(parse_error(raw_frame(FrameType::kPing, 0, ping)), StatusCode::kInvalidArgument, "trailing bytes");
}

TEST(FramesTest, RejectsReservedFlagBits) {
  Bytes credit;
  credit.varint(5).varint(100);
  expect_error(parse_error(raw_frame(FrameType::kCredit, 0x01, credit)), StatusCode::kInvalidArgument,
               "CREDIT frame: flags: reserved bits 0x01 set");

  Bytes data;
  data.varint(1).raw("x");
  expect_error(parse_error(raw_frame(FrameType::kData, data_flags::kReserved, data)),
               StatusCode::kInvalidArgument, "reserved bits 0x08");

  Bytes pub;
  pub.str("s");
  expect_error(parse_error(raw_frame(FrameType::kPub, 0x04, pub)), StatusCode::kInvalidArgument,
               "reserved bits 0x04");

  // LOG_PUBLISH has no reply: its reply bit is reserved.
  Bytes lp;
  lp.varint(1).str("s");
  expect_error(parse_error(raw_frame(FrameType::kLogPublish, msg_flags::kHasReply, lp)),
               StatusCode::kInvalidArgument, "reserved bits 0x01");

  Bytes hello;
  hello.u8(1).u8(1);
  expect_error(parse_error(raw_frame(FrameType::kHello, 0x80, hello)), StatusCode::kInvalidArgument,
               "reserved bits 0x80");
}

TEST(FramesTest, RejectsStreamIdZero) {
  Bytes data;
  data.varint(0).raw("x");
  expect_error(parse_error(raw_frame(FrameType::kData, 0, data)), StatusCode::kInvalidArgument,
               "DATA frame: stream id: must not be 0");
  Bytes call;
  call.varint(0).str("/m").varint(0).varint(0);
  expect_error(parse_error(raw_frame(FrameType::kCall, 0, call)), StatusCode::kInvalidArgument,
               "CALL frame: stream id: must not be 0");
  Bytes cancel;
  cancel.varint(0).varint(1);
  expect_error(parse_error(raw_frame(FrameType::kCancel, 0, cancel)), StatusCode::kInvalidArgument,
               "stream id: must not be 0");
}

TEST(FramesTest, AllowsStreamZeroForConnectionLevelFrames) {
  Bytes credit;
  credit.varint(0).varint(1);
  EXPECT_TRUE(parse_frame(raw_frame(FrameType::kCredit, 0, credit), {}).is_ok());
  Bytes error;
  error.varint(0).varint(13).raw("bug");
  EXPECT_TRUE(parse_frame(raw_frame(FrameType::kError, 0, error), {}).is_ok());
}

TEST(FramesTest, RejectsNameOverMaxNameSize) {
  WireLimits lim;
  lim.max_name_size = 8;
  Bytes ok;
  ok.varint(1).str("12345678").str("");
  EXPECT_TRUE(parse_frame(raw_frame(FrameType::kSub, 0, ok), lim).is_ok());
  Bytes body;
  body.varint(1).str("123456789").str("");
  expect_error(parse_error(raw_frame(FrameType::kSub, 0, body), lim), StatusCode::kOverloaded,
               "SUB frame: subject: length 9 exceeds limit 8");
  Bytes method;
  method.varint(1).str(std::string(9, 'm')).varint(0).varint(0);
  expect_error(parse_error(raw_frame(FrameType::kCall, 0, method), lim), StatusCode::kOverloaded,
               "CALL frame: method: length 9");
}

TEST(FramesTest, RejectsTooManyMetadataEntries) {
  WireLimits lim;
  lim.max_metadata_entries = 2;
  Bytes body;
  body.varint(1).str("/m").varint(0).varint(3);
  for (int i = 0; i < 3; ++i) body.str("k").str("v");
  expect_error(parse_error(raw_frame(FrameType::kCall, 0, body), lim), StatusCode::kOverloaded,
               "3 entries exceed limit 2");
}

TEST(FramesTest, RejectsMetadataBytesOverLimit) {
  WireLimits lim;
  lim.max_metadata_bytes = 10;
  Bytes ok;
  ok.varint(1).varint(2).str("abc").str("de").str("fgh").str("ij");  // 10 bytes
  EXPECT_TRUE(parse_frame(raw_frame(FrameType::kResponse, 0, ok), lim).is_ok());
  Bytes body;
  body.varint(1).varint(2).str("abc").str("de").str("fgh").str("ijk");  // 11 bytes
  expect_error(parse_error(raw_frame(FrameType::kResponse, 0, body), lim), StatusCode::kOverloaded,
               "RESPONSE frame: metadata: total size exceeds limit 10");
  Bytes one;
  one.varint(1).varint(1).str(std::string(11, 'k')).str("");
  expect_error(parse_error(raw_frame(FrameType::kResponse, 0, one), lim), StatusCode::kOverloaded,
               "exceeds limit 10");
}

TEST(FramesTest, HugeMetadataCountIsRejectedWithoutAllocating) {
  // With the entry limit out of the way, the claimed count must still not size an allocation:
  // under ASan a reserve() of 2^32 entries aborts, in release it throws.
  WireLimits lim;
  lim.max_metadata_entries = 0xFFFFFFFFu;
  Bytes body;
  body.varint(1).varint(0xFFFFFFFFu).str("k").str("v");
  expect_error(parse_error(raw_frame(FrameType::kResponse, 0, body), lim), StatusCode::kInvalidArgument,
               "metadata: truncated");
}

TEST(FramesTest, RejectsCreditIncrementZero) {
  Bytes body;
  body.varint(3).varint(0);
  expect_error(parse_error(raw_frame(FrameType::kCredit, 0, body)), StatusCode::kInvalidArgument,
               "CREDIT frame: increment: must not be 0");
}

TEST(FramesTest, RejectsEmptySubject) {
  Bytes pub;
  pub.str("").raw("payload");
  expect_error(parse_error(raw_frame(FrameType::kPub, 0, pub)), StatusCode::kInvalidArgument,
               "PUB frame: subject: empty");
  Bytes sub;
  sub.varint(1).str("").str("");
  expect_error(parse_error(raw_frame(FrameType::kSub, 0, sub)), StatusCode::kInvalidArgument,
               "SUB frame: subject: empty");
  Bytes msg;
  msg.varint(1).str("");
  expect_error(parse_error(raw_frame(FrameType::kMsg, 0, msg)), StatusCode::kInvalidArgument,
               "MSG frame: subject: empty");
}

TEST(FramesTest, RejectsEmptyReplyWhenFlagged) {
  Bytes pub;
  pub.str("s").str("");
  expect_error(parse_error(raw_frame(FrameType::kPub, msg_flags::kHasReply, pub)), StatusCode::kInvalidArgument,
               "PUB frame: reply: empty");
}

TEST(FramesTest, RejectsEmptyMethod) {
  Bytes call;
  call.varint(1).str("").varint(0).varint(0);
  expect_error(parse_error(raw_frame(FrameType::kCall, 0, call)), StatusCode::kInvalidArgument,
               "CALL frame: method: empty");
}

TEST(FramesTest, RejectsBadHelloVersionRange) {
  Bytes inverted;
  inverted.u8(3).u8(2);
  expect_error(parse_error(raw_frame(FrameType::kHello, 0, inverted)), StatusCode::kInvalidArgument,
               "version range 3..2");
  Bytes zero;
  zero.u8(0).u8(1);
  expect_error(parse_error(raw_frame(FrameType::kHello, 0, zero)), StatusCode::kInvalidArgument,
               "starts at 0");
  Bytes missing;
  missing.u8(1);
  expect_error(parse_error(raw_frame(FrameType::kHello, 0, missing)), StatusCode::kInvalidArgument,
               "HELLO frame: max version: truncated");
}

TEST(FramesTest, RejectsWelcomeVersionZero) {
  Bytes body;
  body.u8(0);
  expect_error(parse_error(raw_frame(FrameType::kWelcome, 0, body)), StatusCode::kInvalidArgument,
               "WELCOME frame: version 0");
}

TEST(FramesTest, RejectsDuplicateHelloField) {
  Bytes body;
  body.u8(1).u8(1).tlv_str(hs_key::kName, "a").tlv_str(hs_key::kName, "b");
  expect_error(parse_error(raw_frame(FrameType::kHello, 0, body)), StatusCode::kInvalidArgument,
               "HELLO frame: field 7 appears twice");
  Bytes unknown;  // unknown keys may not repeat either
  unknown.u8(1).u8(1).tlv_str(40, "a").tlv_str(40, "b");
  expect_error(parse_error(raw_frame(FrameType::kHello, 0, unknown)), StatusCode::kInvalidArgument,
               "field 40 appears twice");
  Bytes welcome;
  welcome.u8(1).tlv_varint(hs_key::kConnectionId, 1).tlv_varint(hs_key::kConnectionId, 2);
  expect_error(parse_error(raw_frame(FrameType::kWelcome, 0, welcome)), StatusCode::kInvalidArgument,
               "WELCOME frame: field 12 appears twice");
}

TEST(FramesTest, RejectsMalformedHelloFieldValues) {
  Bytes padded;  // a varint field with a byte after the varint
  padded.u8(1).u8(1).varint(hs_key::kCodecs).varint(2).u8(0x02).u8(0x00);
  expect_error(parse_error(raw_frame(FrameType::kHello, 0, padded)), StatusCode::kInvalidArgument,
               "field 1: malformed varint");
  Bytes flag;  // require_encryption must be 0 or 1
  flag.u8(1).u8(1).tlv_varint(hs_key::kRequireEncryption, 2);
  expect_error(parse_error(raw_frame(FrameType::kHello, 0, flag)), StatusCode::kInvalidArgument,
               "field 2: value 2 out of range");
  Bytes wide;  // 32-bit fields
  wide.u8(1).u8(1).tlv_varint(hs_key::kMaxFrameSize, 1ull << 32);
  expect_error(parse_error(raw_frame(FrameType::kHello, 0, wide)), StatusCode::kInvalidArgument,
               "field 3: value 4294967296 out of range");
  Bytes huge;  // values are bounded
  huge.u8(1).u8(1).tlv_str(hs_key::kAuthToken, std::string(4097, 't'));
  expect_error(parse_error(raw_frame(FrameType::kHello, 0, huge)), StatusCode::kOverloaded,
               "field value: length 4097 exceeds limit 4096");
}

TEST(FramesTest, RejectsDataWithUnknownCodec) {
  Bytes body;
  body.varint(1).raw("x");
  expect_error(parse_error(raw_frame(FrameType::kData, 0xC0, body)), StatusCode::kInvalidArgument,
               "DATA frame: flags: unknown codec 3");
}

TEST(FramesTest, RejectsMalformedFieldVarint) {
  Bytes body;
  body.raw(std::string(10, '\xff')).u8(0x7F);
  expect_error(parse_error(raw_frame(FrameType::kUnsub, 0, body)), StatusCode::kInvalidArgument,
               "UNSUB frame: sid: malformed varint");
}

TEST(FramesTest, ExtensionFramesHaveNoTypedForm) {
  Bytes body;
  body.raw("opaque extension body");
  expect_error(parse_error(raw_frame(static_cast<FrameType>(0xF7), 0x5A, body)), StatusCode::kUnimplemented,
               "frame type 0xf7 has no typed form");
}

TEST(FramesTest, TrailersMessageIsBoundedByMaxFrameSize) {
  WireLimits lim;
  lim.max_frame_size = 16;
  Bytes body;
  body.varint(1).varint(0).str(std::string(17, 'm')).varint(0);
  expect_error(parse_error(raw_frame(FrameType::kTrailers, 0, body), lim), StatusCode::kOverloaded,
               "TRAILERS frame: message: length 17 exceeds limit 16");
}

TEST(FramesTest, EncoderSpansBlocksWithoutCorruptingFrames) {
  // A tiny block size forces a fresh block for nearly every frame.
  std::vector<AnyFrame> all = test::every_frame_type();
  FrameEncoder enc(16);
  for (const AnyFrame& f : all) enc.add(f);
  EXPECT_GT(enc.pending_bytes(), 0u);
  Chain c = enc.take();
  EXPECT_EQ(enc.pending_bytes(), 0u);
  EXPECT_GT(c.slice_count(), 2u);
  test::Decoded d = test::decode_all(ByteView(c.to_string()));
  ASSERT_TRUE(d.error.is_ok()) << d.error.to_string();
  ASSERT_EQ(d.frames.size(), all.size());
  for (std::size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(describe(*parse_frame(d.frames[i], {})), describe(all[i]));
  }
}

TEST(FramesTest, TakeReturnsOnlyBytesSinceTheLastTake) {
  FrameEncoder enc;
  enc.add(Ping{1});
  Chain first = enc.take();
  Slice kept = first.flatten();
  enc.add(Pong{2});
  Chain second = enc.take();
  EXPECT_EQ(first.size(), 11u);
  EXPECT_EQ(second.size(), 11u);
  EXPECT_EQ(second.slice(0).data()[0], static_cast<std::uint8_t>(FrameType::kPong));
  // Writing the second frame must not disturb bytes handed out by the first take().
  EXPECT_EQ(kept.data()[0], static_cast<std::uint8_t>(FrameType::kPing));
  EXPECT_EQ(first.to_string(), encode_frame(Ping{1}).to_string());
  EXPECT_TRUE(enc.take().empty());
}

TEST(FramesTest, PendingBytesCountsEncodedBytes) {
  FrameEncoder enc;
  EXPECT_EQ(enc.pending_bytes(), 0u);
  enc.add_preface();
  EXPECT_EQ(enc.pending_bytes(), kPrefaceSize);
  enc.add(Ping{0});
  EXPECT_EQ(enc.pending_bytes(), kPrefaceSize + 11);
  Data d;
  d.stream_id = 1;
  d.payload = test::pattern_payload(1000);
  enc.add(d);
  EXPECT_EQ(enc.pending_bytes(), kPrefaceSize + 11 + 2 + 2 + 1 + 1000);
  EXPECT_EQ(enc.take().size(), kPrefaceSize + 11 + 2 + 2 + 1 + 1000);
}

TEST(FramesTest, AddRawWritesTheGivenHeaderAndBody) {
  FrameEncoder enc;
  enc.add_raw(0xF1, 0x33, ByteView("ext"));
  EXPECT_EQ(enc.take().to_string(), std::string("\xF1\x33\x03" "ext", 6));
}

}  // namespace
}  // namespace slip::wire
