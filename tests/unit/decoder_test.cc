// FrameDecoder: incremental framing, zero-copy bodies, limits, sticky errors, and robustness
// against streams that were split, flipped, truncated or lengthened anywhere.
#include "wire/decoder.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "wire/encoder.h"
#include "wire/frames.h"
#include "wire_test_util.h"
#include "expect_status.h"

namespace slip::wire {
namespace {

using test::Bytes;
using test::Decoded;
using test::describe;
using test::describe_raw;

// Preface, then one frame of every type, then an extension frame and a frame with an empty
// body, as one byte string.
std::string every_frame_stream() {
  FrameEncoder enc;
  enc.add_preface();
  for (const AnyFrame& f : test::every_frame_type()) enc.add(f);
  enc.add_raw(0xF5, 0x00, ByteView("extension"));
  Data empty;
  empty.stream_id = 1;
  empty.flags = data_flags::kEndStream;
  enc.add(empty);
  return enc.take().to_string();
}

// Raw description and, for known types, the parsed description of each frame.
std::vector<std::string> describe_all(const Decoded& d) {
  std::vector<std::string> out;
  for (const Frame& f : d.frames) {
    std::string s = describe_raw(f);
    Result<AnyFrame> p = parse_frame(f, {});
    s += " => " + (p.is_ok() ? describe(*p) : p.status().to_string());
    out.push_back(std::move(s));
  }
  return out;
}

using ::slip::test::expect_error;

Status first_error(ByteView bytes, WireLimits limits = {}, bool preface = false) {
  return test::decode_all(bytes, limits, preface).error;
}

TEST(DecoderTest, DecodesEveryFrameTypeFromOneRead) {
  const std::string stream = every_frame_stream();
  Decoded d = test::decode_all(ByteView(stream), {}, /*preface=*/true);
  ASSERT_TRUE(d.error.is_ok()) << d.error.to_string();
  EXPECT_EQ(d.left, 0u);
  std::vector<AnyFrame> all = test::every_frame_type();
  ASSERT_EQ(d.frames.size(), all.size() + 2);
  for (std::size_t i = 0; i < all.size(); ++i) {
    Result<AnyFrame> p = parse_frame(d.frames[i], {});
    ASSERT_TRUE(p.is_ok()) << p.status().to_string();
    EXPECT_EQ(describe(*p), describe(all[i]));
  }
  EXPECT_EQ(static_cast<std::uint8_t>(d.frames[all.size()].type), 0xF5);
  EXPECT_EQ(d.frames[all.size()].body.to_string(), "extension");
}

TEST(DecoderTest, SplitAtEveryByteMatchesTheUnsplitDecode) {
  const std::string stream = every_frame_stream();
  const std::vector<std::string> expect = describe_all(test::decode_all(ByteView(stream), {}, true));
  ASSERT_EQ(expect.size(), std::variant_size_v<AnyFrame> + 2);
  for (std::size_t split = 0; split <= stream.size(); ++split) {
    Decoded d = test::decode_pieces(ByteView(stream), {split}, {}, true);
    ASSERT_TRUE(d.error.is_ok()) << "split " << split << ": " << d.error.to_string();
    ASSERT_EQ(d.left, 0u) << split;
    ASSERT_EQ(describe_all(d), expect) << "split " << split;
  }
}

TEST(DecoderTest, SplitAtEveryPairOfPointsMatchesTheUnsplitDecode) {
  // Three pieces, on a shorter stream so that the quadratic loop stays quick.
  FrameEncoder enc;
  enc.add_preface();
  std::vector<AnyFrame> all = test::every_frame_type();
  for (const AnyFrame& f : all) {
    if (!std::holds_alternative<Data>(f)) enc.add(f);  // skip the 700-byte payload
  }
  const std::string stream = enc.take().to_string();
  const std::vector<std::string> expect = describe_all(test::decode_all(ByteView(stream), {}, true));
  for (std::size_t a = 0; a <= stream.size(); a += 3) {
    for (std::size_t b = a; b <= stream.size(); b += 5) {
      Decoded d = test::decode_pieces(ByteView(stream), {a, b}, {}, true);
      ASSERT_TRUE(d.error.is_ok()) << a << "," << b;
      ASSERT_EQ(describe_all(d), expect) << a << "," << b;
    }
  }
}

TEST(DecoderTest, OneByteAtATimeMatchesTheUnsplitDecode) {
  const std::string stream = every_frame_stream();
  const std::vector<std::string> expect = describe_all(test::decode_all(ByteView(stream), {}, true));
  std::vector<std::size_t> every;
  for (std::size_t i = 1; i < stream.size(); ++i) every.push_back(i);
  Decoded d = test::decode_pieces(ByteView(stream), every, {}, true);
  ASSERT_TRUE(d.error.is_ok()) << d.error.to_string();
  EXPECT_EQ(d.left, 0u);
  EXPECT_EQ(describe_all(d), expect);
}

TEST(DecoderTest, NeedsMoreBytesUntilAFrameIsComplete) {
  const std::string ping = encode_frame(Ping{42}).to_string();
  FrameDecoder dec;
  Frame f;
  for (std::size_t i = 0; i < ping.size(); ++i) {
    Result<bool> r = dec.next(f);
    ASSERT_TRUE(r.is_ok());
    EXPECT_FALSE(*r) << i;
    EXPECT_EQ(dec.buffered(), i);
    dec.feed(Slice::copy_of(ByteView(ping).sub(i, 1)));
  }
  Result<bool> r = dec.next(f);
  ASSERT_TRUE(r.is_ok());
  ASSERT_TRUE(*r);
  EXPECT_EQ(f.type, FrameType::kPing);
  EXPECT_EQ(dec.buffered(), 0u);
  r = dec.next(f);
  ASSERT_TRUE(r.is_ok());
  EXPECT_FALSE(*r);
}

TEST(DecoderTest, FramesInsideOneReadShareItsBlock) {
  FrameEncoder enc;
  enc.add(Ping{1});
  enc.add(Credit{1, 2});
  Slice read = enc.take().flatten();
  FrameDecoder dec;
  dec.feed(read);
  Frame a, b;
  ASSERT_TRUE(*dec.next(a));
  ASSERT_TRUE(*dec.next(b));
  EXPECT_TRUE(a.body.shares_block_with(read));
  EXPECT_TRUE(b.body.shares_block_with(read));
  EXPECT_EQ(a.body.data(), read.data() + 3);
  EXPECT_EQ(b.body.data(), read.data() + 11 + 3);
}

TEST(DecoderTest, FrameSplitAcrossReadsIsGatheredIntoItsOwnBlock) {
  const std::string bytes = encode_frame(Ping{7}).to_string();
  Slice first = Slice::copy_of(ByteView(bytes).sub(0, 6));
  Slice second = Slice::copy_of(ByteView(bytes).sub(6));
  FrameDecoder dec;
  dec.feed(first);
  dec.feed(second);
  Frame f;
  ASSERT_TRUE(*dec.next(f));
  EXPECT_FALSE(f.body.shares_block_with(first));
  EXPECT_FALSE(f.body.shares_block_with(second));
  EXPECT_EQ(f.body.size(), 8u);
  EXPECT_EQ(std::get<Ping>(*parse_frame(f, {})).opaque, 7u);
  EXPECT_EQ(first.block_use_count(), 1u);  // the decoder let go of both reads
  EXPECT_EQ(second.block_use_count(), 1u);
}

TEST(DecoderTest, HeaderSplitAcrossReadsWithBodyInOneRead) {
  Data d;
  d.stream_id = 3;
  d.payload = test::pattern_payload(300);  // two-byte length varint
  const std::string bytes = encode_frame(d).to_string();
  Decoded out = test::decode_pieces(ByteView(bytes), {3});  // cut inside the length varint
  ASSERT_TRUE(out.error.is_ok());
  ASSERT_EQ(out.frames.size(), 1u);
  EXPECT_EQ(describe(*parse_frame(out.frames[0], {})), describe(AnyFrame(d)));
}

TEST(DecoderTest, EmptyReadsAreHarmless) {
  FrameDecoder dec;
  dec.feed(Slice());
  Frame f;
  EXPECT_FALSE(*dec.next(f));
  dec.feed(encode_frame(Pong{3}));
  dec.feed(Slice());
  ASSERT_TRUE(*dec.next(f));
  EXPECT_EQ(f.type, FrameType::kPong);
}

TEST(DecoderTest, EmptyBodyFrameDecodes) {
  Bytes b;
  b.frame(0xF0, 0, Bytes());
  Decoded d = test::decode_all(b.view());
  ASSERT_TRUE(d.error.is_ok());
  ASSERT_EQ(d.frames.size(), 1u);
  EXPECT_TRUE(d.frames[0].body.empty());
}

TEST(DecoderTest, RejectsBadPreface) {
  Bytes b;
  b.raw("SLIQ");
  b.frame(0x03, 0, Bytes().raw("12345678"));
  expect_error(first_error(b.view(), {}, true), StatusCode::kInvalidArgument, "bad preface");
}

TEST(DecoderTest, RejectsWrongFirstPrefaceByteAtOnce) {
  // A TLS ClientHello or an HTTP request is refused before four bytes arrive.
  FrameDecoder dec({}, true);
  dec.feed(Slice::copy_of(ByteView("G")));
  Frame f;
  Result<bool> r = dec.next(f);
  ASSERT_FALSE(r.is_ok());
  expect_error(r.status(), StatusCode::kInvalidArgument, "bad preface");
}

TEST(DecoderTest, WaitsForTheRestOfAGoodPrefacePrefix) {
  FrameDecoder dec({}, true);
  dec.feed(Slice::copy_of(ByteView("SL")));
  Frame f;
  Result<bool> r = dec.next(f);
  ASSERT_TRUE(r.is_ok());
  EXPECT_FALSE(*r);
  dec.feed(Slice::copy_of(ByteView("IP")));
  dec.feed(encode_frame(Ping{5}));
  r = dec.next(f);
  ASSERT_TRUE(r.is_ok());
  EXPECT_TRUE(*r);
  EXPECT_EQ(f.type, FrameType::kPing);
}

TEST(DecoderTest, PrefaceIsNotExpectedUnlessAsked) {
  // "SLIP" read as a frame: 'S' (0x53) is a reserved type.
  expect_error(first_error(ByteView("SLIP")), StatusCode::kUnimplemented, "unknown frame type 0x53");
}

TEST(DecoderTest, RejectsUnknownFrameType) {
  for (std::uint8_t t : {0x00, 0x08, 0x0F, 0x12, 0x25, 0x34, 0x45, 0x4F, 0x50, 0xEF}) {
    Bytes b;
    b.frame(t, 0, Bytes().raw("x"));
    char hex[8];
    std::snprintf(hex, sizeof(hex), "0x%02x", static_cast<unsigned>(t));
    expect_error(first_error(b.view()), StatusCode::kUnimplemented, std::string("unknown frame type ") + hex);
  }
}

TEST(DecoderTest, RejectsUnknownTypeFromItsFirstByte) {
  FrameDecoder dec;
  dec.feed(Slice::copy_of(ByteView("\x60", 1)));
  Frame f;
  Result<bool> r = dec.next(f);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnimplemented);
}

TEST(DecoderTest, ExtensionFramesDecodeAndCanBeSkipped) {
  for (int t = 0xF0; t <= 0xFF; ++t) {
    Bytes b;
    b.frame(static_cast<std::uint8_t>(t), 0xAB, Bytes().raw("ignored by old peers"));
    b.frame(0x03, 0, Bytes().raw("12345678"));
    Decoded d = test::decode_all(b.view());
    ASSERT_TRUE(d.error.is_ok()) << t;
    ASSERT_EQ(d.frames.size(), 2u);
    EXPECT_EQ(static_cast<int>(d.frames[0].type), t);
    EXPECT_EQ(d.frames[0].flags, 0xAB);
    EXPECT_EQ(d.frames[0].body.to_string(), "ignored by old peers");
    EXPECT_EQ(parse_frame(d.frames[0], {}).status().code(), StatusCode::kUnimplemented);
    EXPECT_EQ(d.frames[1].type, FrameType::kPing);
  }
}

TEST(DecoderTest, RejectsFrameOverMaxLength) {
  WireLimits lim;
  lim.max_frame_size = 100;
  Bytes ok;
  ok.frame(0xF0, 0, Bytes().raw(std::string(100, 'x')));
  EXPECT_TRUE(first_error(ok.view(), lim).is_ok());
  Bytes big;
  big.frame(0xF0, 0, Bytes().raw(std::string(101, 'x')));
  expect_error(first_error(big.view(), lim), StatusCode::kOverloaded, "frame length 101 exceeds max_frame_size 100");
}

TEST(DecoderTest, RejectsOversizedLengthBeforeTheBodyArrives) {
  // Only the header is sent: the limit is enforced without buffering the body.
  WireLimits lim;
  lim.max_frame_size = 1000;
  Bytes hdr;
  hdr.u8(0x10).u8(0).varint(1u << 27);
  Status s = first_error(hdr.view(), lim);
  expect_error(s, StatusCode::kOverloaded, "frame length 134217728 exceeds max_frame_size 1000");
}

TEST(DecoderTest, RejectsLengthVarintLongerThanFourBytes) {
  Bytes b;
  b.u8(0x10).u8(0).raw("\x80\x80\x80\x80\x01");  // 2^28 in five bytes
  expect_error(first_error(b.view()), StatusCode::kInvalidArgument, "varint longer than 4 bytes");
  Bytes padded;  // even a small value padded to five bytes
  padded.u8(0x10).u8(0).raw("\x81\x80\x80\x80\x00");
  expect_error(first_error(padded.view()), StatusCode::kInvalidArgument, "varint longer than 4 bytes");
}

TEST(DecoderTest, AcceptsFourByteLengthUpToTheHardMaximum) {
  WireLimits lim;
  lim.max_frame_size = kHardMaxFrameSize;
  Bytes b;
  b.u8(0xF0).u8(0).raw("\xff\xff\xff\x7f");  // 2^28 - 1: legal, just not here yet
  FrameDecoder dec(lim);
  dec.feed(b.slice());
  Frame f;
  Result<bool> r = dec.next(f);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_FALSE(*r);
}

TEST(DecoderTest, MaxFrameSizeIsCappedAtTheHardMaximum) {
  WireLimits lim;
  lim.max_frame_size = 0xFFFFFFFFu;
  FrameDecoder dec(lim);
  EXPECT_EQ(dec.limits().max_frame_size, kHardMaxFrameSize);
  dec.set_max_frame_size(0xFFFFFFFFu);
  EXPECT_EQ(dec.limits().max_frame_size, kHardMaxFrameSize);
  dec.set_max_frame_size(10);
  EXPECT_EQ(dec.limits().max_frame_size, 10u);
}

TEST(DecoderTest, LoweredMaxFrameSizeAppliesToTheNextFrame) {
  FrameDecoder dec;
  dec.feed(encode_frame(Ping{1}));
  dec.feed(encode_frame(Ping{2}));
  Frame f;
  ASSERT_TRUE(*dec.next(f));
  dec.set_max_frame_size(4);
  Result<bool> r = dec.next(f);
  ASSERT_FALSE(r.is_ok());
  expect_error(r.status(), StatusCode::kOverloaded, "frame length 8 exceeds max_frame_size 4");
}

TEST(DecoderTest, ErrorsAreSticky) {
  FrameDecoder dec;
  dec.feed(Slice::copy_of(ByteView("\x55\x00\x00", 3)));
  Frame f;
  Result<bool> first = dec.next(f);
  ASSERT_FALSE(first.is_ok());
  EXPECT_EQ(dec.buffered(), 0u);  // nothing more is held for a dead stream
  dec.feed(encode_frame(Ping{1}));  // valid bytes after the error are ignored
  EXPECT_EQ(dec.buffered(), 0u);
  for (int i = 0; i < 3; ++i) {
    Result<bool> again = dec.next(f);
    ASSERT_FALSE(again.is_ok());
    EXPECT_EQ(again.status(), first.status());
  }
}

TEST(DecoderTest, FramesBeforeAnErrorAreDelivered) {
  Bytes b;
  b.frame(0x03, 0, Bytes().raw("12345678"));
  b.frame(0x66, 0, Bytes());
  Decoded d = test::decode_all(b.view());
  EXPECT_EQ(d.frames.size(), 1u);
  EXPECT_EQ(d.error.code(), StatusCode::kUnimplemented);
}

// ---- Robustness: single-byte damage anywhere in a valid stream. ----

// Decodes and parses everything, checking that every failure is a well-formed Status. Crashes
// and sanitizer reports are what this really looks for.
void decode_and_parse_damaged(const std::string& bytes, WireLimits lim) {
  Decoded d = test::decode_all(ByteView(bytes), lim, /*preface=*/true);
  for (const Frame& f : d.frames) {
    Result<AnyFrame> p = parse_frame(f, lim);
    if (p.is_ok()) {
      // Whatever parsed must encode again without tripping an assertion.
      FrameEncoder enc;
      enc.add(*p);
      EXPECT_GT(enc.take().size(), 1u);
    } else {
      StatusCode c = p.status().code();
      EXPECT_TRUE(c == StatusCode::kInvalidArgument || c == StatusCode::kOverloaded ||
                  c == StatusCode::kUnimplemented)
          << p.status().to_string();
      EXPECT_FALSE(p.status().message().empty());
    }
  }
  if (!d.error.is_ok()) {
    StatusCode c = d.error.code();
    EXPECT_TRUE(c == StatusCode::kInvalidArgument || c == StatusCode::kOverloaded ||
                c == StatusCode::kUnimplemented)
        << d.error.to_string();
    EXPECT_FALSE(d.error.message().empty());
  }
}

WireLimits small_limits() {
  WireLimits lim;
  lim.max_frame_size = 4096;
  lim.max_name_size = 64;
  lim.max_metadata_entries = 4;
  lim.max_metadata_bytes = 256;
  return lim;
}

TEST(DecoderRobustnessTest, SurvivesEverySingleByteFlip) {
  const std::string stream = every_frame_stream();
  for (std::size_t i = 0; i < stream.size(); ++i) {
    for (std::uint8_t mask : {0x01, 0x02, 0x10, 0x40, 0x80, 0xFF}) {
      std::string damaged = stream;
      damaged[i] = static_cast<char>(damaged[i] ^ mask);
      SCOPED_TRACE("byte " + std::to_string(i) + " ^ " + std::to_string(mask));
      decode_and_parse_damaged(damaged, {});
      decode_and_parse_damaged(damaged, small_limits());
    }
  }
}

TEST(DecoderRobustnessTest, SurvivesEveryByteSetToExtremes) {
  const std::string stream = every_frame_stream();
  for (std::size_t i = 0; i < stream.size(); ++i) {
    for (char v : {'\x00', '\x7f', '\x80', '\xff'}) {
      std::string damaged = stream;
      damaged[i] = v;
      SCOPED_TRACE("byte " + std::to_string(i));
      decode_and_parse_damaged(damaged, small_limits());
    }
  }
}

TEST(DecoderRobustnessTest, TruncationYieldsAPrefixOfTheFramesAndNoError) {
  const std::string stream = every_frame_stream();
  const std::vector<std::string> full = describe_all(test::decode_all(ByteView(stream), {}, true));
  for (std::size_t n = 0; n < stream.size(); ++n) {
    Decoded d = test::decode_all(ByteView(stream).sub(0, n), {}, true);
    ASSERT_TRUE(d.error.is_ok()) << n;
    std::vector<std::string> got = describe_all(d);
    ASSERT_LT(got.size(), full.size()) << n;
    for (std::size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], full[i]) << n;
  }
}

TEST(DecoderRobustnessTest, TruncatedBodiesFailCleanly) {
  // Cutting a frame's body short (with its length fixed up) gives a clean Status. Frames whose
  // last field is mandatory must fail at every cut; frames that end in a message, a payload or
  // a TLV list may legitimately parse when cut at a field boundary.
  for (const AnyFrame& f : test::every_frame_type()) {
    const Slice encoded = encode_frame(f);
    test::Decoded d = test::decode_all(encoded.view());
    ASSERT_EQ(d.frames.size(), 1u);
    const std::string body = d.frames[0].body.to_string();
    const FrameType t = type_of(f);
    const bool strict = t == FrameType::kPing || t == FrameType::kPong || t == FrameType::kCredit ||
                        t == FrameType::kSub || t == FrameType::kUnsub || t == FrameType::kCall ||
                        t == FrameType::kResponse || t == FrameType::kTrailers || t == FrameType::kCancel;
    for (std::size_t n = 0; n < body.size(); ++n) {
      Frame cut{t, encoded.data()[1], Slice::copy_of(ByteView(body).sub(0, n))};
      Result<AnyFrame> p = parse_frame(cut, {});
      if (strict) {
        EXPECT_FALSE(p.is_ok()) << frame_type_name(t) << " cut at " << n;
      }
      if (!p.is_ok()) {
        EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument) << p.status().to_string();
        EXPECT_NE(p.status().message().find(frame_type_name(t)), std::string_view::npos) << p.status().to_string();
      }
    }
  }
}

TEST(DecoderRobustnessTest, SurvivesAByteInsertedAnywhere) {
  const std::string stream = every_frame_stream();
  for (std::size_t i = 0; i <= stream.size(); ++i) {
    for (char v : {'\x00', '\x01', '\x80', '\xff'}) {
      std::string damaged = stream;
      damaged.insert(damaged.begin() + static_cast<std::ptrdiff_t>(i), v);
      SCOPED_TRACE("insert at " + std::to_string(i));
      decode_and_parse_damaged(damaged, small_limits());
    }
  }
}

TEST(DecoderRobustnessTest, SurvivesAByteDeletedAnywhere) {
  const std::string stream = every_frame_stream();
  for (std::size_t i = 0; i < stream.size(); ++i) {
    std::string damaged = stream;
    damaged.erase(i, 1);
    SCOPED_TRACE("delete at " + std::to_string(i));
    decode_and_parse_damaged(damaged, small_limits());
  }
}

TEST(DecoderRobustnessTest, LengthenedFrameSwallowsTheNextHeaderWithoutCrashing) {
  // Growing one frame's length by k makes the following bytes part of its body.
  FrameEncoder enc;
  enc.add(Credit{1, 5});
  enc.add(Ping{9});
  std::string bytes = enc.take().to_string();
  ASSERT_EQ(static_cast<std::uint8_t>(bytes[2]), 2u);
  for (int extra = 1; extra <= 11; ++extra) {
    std::string grown = bytes;
    grown[2] = static_cast<char>(2 + extra);
    Decoded d = test::decode_all(ByteView(grown));  // what is left of PING may be garbage
    ASSERT_EQ(d.frames.size(), 1u) << extra;
    Result<AnyFrame> p = parse_frame(d.frames[0], {});
    ASSERT_FALSE(p.is_ok());
    EXPECT_NE(p.status().message().find("trailing bytes"), std::string_view::npos) << p.status().to_string();
  }
}

}  // namespace
}  // namespace slip::wire
