// Reliable-UDP payload frames: round trips, wire layout, and the malformed payloads the decoder
// must reject (truncated, flipped, lengthened, lying lengths).
#include "transport/udp/frames.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/varint.h"

namespace slip::transport::udp {
namespace {

std::vector<Frame> decode_all(ByteView payload, Status* error = nullptr, const FrameLimits& limits = {}) {
  FrameReader r(payload, limits);
  std::vector<Frame> out;
  for (;;) {
    Frame f;
    Result<bool> more = r.next(f);
    if (!more.is_ok()) {
      if (error) *error = more.status();
      return out;
    }
    if (!*more) return out;
    out.push_back(f);
  }
}

std::string encode(const std::vector<Frame>& frames) {
  std::vector<std::uint8_t> buf(1 << 16);
  FrameWriter w(buf.data(), buf.size());
  for (const Frame& f : frames) EXPECT_TRUE(w.add(f)) << describe(f);
  return std::string(reinterpret_cast<const char*>(buf.data()), w.size());
}

AckFrame ack(std::uint64_t delay, std::vector<AckRange> ranges) {
  AckFrame a;
  a.ack_delay_us = delay;
  a.ranges = std::move(ranges);
  return a;
}

std::vector<Frame> sample_frames() {
  static const std::string data = "hello, stream";
  static const std::string dgram = "datagram!";
  return {
      PingFrame{},
      ack(25000, {{90, 100}, {50, 80}, {10, 10}, {0, 3}}),
      StreamFrame{4, 0, ByteView(data), false},
      StreamFrame{kMaxVarintValue - 1, kMaxVarintValue - data.size(), ByteView(data), true},
      StreamFrame{7, 1234567, ByteView(), true},
      DatagramFrame{ByteView(dgram)},
      DatagramFrame{ByteView()},
      MaxDataFrame{1 << 20},
      MaxDataFrame{kMaxVarintValue},
      MaxStreamDataFrame{3, 65536},
      CloseFrame{3, "bad frame"},
      CloseFrame{0, ""},
      PaddingFrame{5},
  };
}

TEST(UdpFramesTest, EveryFrameTypeRoundTrips) {
  const std::vector<Frame> in = sample_frames();
  const std::string bytes = encode(in);
  Status err;
  const std::vector<Frame> out = decode_all(ByteView(bytes), &err);
  ASSERT_TRUE(err.is_ok()) << err.to_string();
  ASSERT_EQ(out.size(), in.size());
  for (std::size_t i = 0; i < in.size(); ++i) EXPECT_EQ(describe(out[i]), describe(in[i]));
  // The decoded views point at the right bytes.
  EXPECT_EQ(std::get<StreamFrame>(out[2]).data.as_string_view(), "hello, stream");
  EXPECT_EQ(std::get<DatagramFrame>(out[5]).data.as_string_view(), "datagram!");
  EXPECT_EQ(std::get<CloseFrame>(out[10]).reason, "bad frame");
  EXPECT_EQ(std::get<AckFrame>(out[1]).ranges, (std::vector<AckRange>{{90, 100}, {50, 80}, {10, 10}, {0, 3}}));
}

TEST(UdpFramesTest, WireLayoutOfAckAndStream) {
  std::uint8_t buf[64];
  FrameWriter w(buf, sizeof buf);
  const AckRange ranges[] = {{8, 10}, {2, 5}};
  ASSERT_TRUE(w.add_ack(300, ranges, 2));
  // type, largest 10, delay 300 (0xAC 0x02), 1 more range, first range 2, gap 8-5-2=1, length 3
  EXPECT_EQ(std::vector<std::uint8_t>(buf, buf + w.size()),
            (std::vector<std::uint8_t>{0x02, 10, 0xAC, 0x02, 1, 2, 1, 3}));
  FrameWriter s(buf, sizeof buf);
  ASSERT_TRUE(s.add_stream(5, 200, ByteView("ab"), true));
  EXPECT_EQ(std::vector<std::uint8_t>(buf, buf + s.size()),
            (std::vector<std::uint8_t>{0x13, 5, 0xC8, 0x01, 2, 'a', 'b'}));
  FrameWriter last(buf, sizeof buf);
  ASSERT_TRUE(last.add_stream(5, 0, ByteView("ab"), false, /*last=*/true));
  EXPECT_EQ(std::vector<std::uint8_t>(buf, buf + last.size()), (std::vector<std::uint8_t>{0x10, 5, 0, 'a', 'b'}));
}

TEST(UdpFramesTest, StreamAndDatagramWithoutLengthRunToTheEnd) {
  std::uint8_t buf[64];
  FrameWriter w(buf, sizeof buf);
  ASSERT_TRUE(w.add_ping());
  ASSERT_TRUE(w.add_datagram(ByteView("xyz"), /*last=*/true));
  const std::vector<Frame> out = decode_all(ByteView(buf, w.size()));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(std::get<DatagramFrame>(out[1]).data.as_string_view(), "xyz");
}

TEST(UdpFramesTest, WriterRefusesWhatDoesNotFitAndWritesNothing) {
  std::uint8_t buf[10];
  FrameWriter w(buf, sizeof buf);
  EXPECT_FALSE(w.add_stream(1, 0, ByteView("0123456789"), false));
  EXPECT_EQ(w.size(), 0u);
  EXPECT_FALSE(w.add_close(1, "a long reason"));
  EXPECT_EQ(w.size(), 0u);
  EXPECT_TRUE(w.add_stream(1, 0, ByteView("01234"), false));
  EXPECT_EQ(w.size(), 9u);
  EXPECT_FALSE(w.add_max_data(1000));
  EXPECT_TRUE(w.add_ping());
  EXPECT_FALSE(w.add_ping());
}

TEST(UdpFramesTest, AckWriterFitsAsManyRangesAsTheRoomAllows) {
  std::vector<AckRange> ranges;
  for (std::uint64_t i = 0; i < 100; ++i) ranges.push_back({1000 - i * 10 - 5, 1000 - i * 10});
  std::uint8_t buf[40];
  FrameWriter w(buf, sizeof buf);
  ASSERT_TRUE(w.add_ack(0, ranges.data(), ranges.size()));
  EXPECT_LE(w.size(), sizeof buf);
  const std::vector<Frame> out = decode_all(ByteView(buf, w.size()));
  ASSERT_EQ(out.size(), 1u);
  const AckFrame& a = std::get<AckFrame>(out[0]);
  ASSERT_GT(a.ranges.size(), 5u);
  ASSERT_LT(a.ranges.size(), 100u);
  for (std::size_t i = 0; i < a.ranges.size(); ++i) EXPECT_EQ(a.ranges[i], ranges[i]);
}

void expect_rejected(const std::vector<std::uint8_t>& bytes, std::string_view fragment, const FrameLimits& limits = {}) {
  Status err;
  decode_all(ByteView(bytes.data(), bytes.size()), &err, limits);
  EXPECT_EQ(err.code(), StatusCode::kInvalidArgument) << err.to_string();
  EXPECT_NE(err.message().find(fragment), std::string_view::npos) << err.to_string();
}

TEST(UdpFramesTest, RejectsLyingLengthsAndImpossibleValues) {
  expect_rejected({0x02, 5, 0, 0, 6}, "below packet number 0");                 // first range > largest
  expect_rejected({0x02, 5, 0, 1, 1, 3, 0}, "gap goes below");                  // 4 - 3 - 2 < 0
  expect_rejected({0x02, 10, 0, 1, 1, 0, 9}, "range goes below");               // [?, 7] of length 9
  expect_rejected({0x02, 10, 0, 65, 0}, "ranges, limit 64");
  expect_rejected({0x12, 1, 0, 10, 'a'}, "exceeds the payload");                // STREAM length 10, 1 byte
  expect_rejected({0x21, 3, 'a'}, "exceeds the payload");                       // DATAGRAM
  expect_rejected({0x06, 0, 5, 'a'}, "CLOSE reason exceeds");
  expect_rejected({0x06, 0, 0x81, 0x10}, "limit 1024");                         // 2049-byte reason
  expect_rejected({0x03}, "unknown frame type 3");
  expect_rejected({0xFF}, "unknown frame type 255");
  expect_rejected({0x04}, "truncated varint");
  expect_rejected({0x04, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, "overlong varint");
  // 2^62: one above the largest value the protocol allows.
  expect_rejected({0x04, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40}, "above 2^62-1");
  // STREAM offset 2^62-1 with one byte of data ends past 2^62-1.
  expect_rejected({0x12, 1, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x3F, 1, 'a'}, "offset + length");
  FrameLimits small;
  small.max_ack_ranges = 1;
  expect_rejected({0x02, 20, 0, 2, 0, 0, 0, 0, 0}, "limit 1", small);
}

TEST(UdpFramesTest, ErrorsAreSticky) {
  const std::vector<std::uint8_t> bytes = {0x01, 0x03, 0x01};
  FrameReader r(ByteView(bytes.data(), bytes.size()));
  Frame f;
  ASSERT_TRUE(r.next(f).is_ok());
  Result<bool> bad = r.next(f);
  ASSERT_FALSE(bad.is_ok());
  Result<bool> again = r.next(f);
  ASSERT_FALSE(again.is_ok());
  EXPECT_EQ(again.status(), bad.status());
}

// Every truncation of a valid payload either decodes a prefix of its frames and stops cleanly
// at a frame boundary, or fails; it never invents a frame.
TEST(UdpFramesTest, TruncationsNeverInventFrames) {
  const std::string bytes = encode(sample_frames());
  const std::vector<Frame> full = decode_all(ByteView(bytes));
  for (std::size_t cut = 0; cut < bytes.size(); ++cut) {
    Status err;
    const std::vector<Frame> got = decode_all(ByteView(bytes.data(), cut), &err);
    ASSERT_LE(got.size(), full.size());
    for (std::size_t i = 0; i < got.size(); ++i) {
      // The last frame may be padding cut short.
      if (i + 1 == got.size() && std::holds_alternative<PaddingFrame>(got[i])) continue;
      EXPECT_EQ(describe(got[i]), describe(full[i])) << "cut at " << cut;
    }
  }
}

// Flipping any bit of a payload and appending any byte leaves the decoder safe: frames decoded
// stay within the payload and errors are INVALID_ARGUMENT.
TEST(UdpFramesTest, FlippedAndLengthenedPayloadsAreHandled) {
  const std::string bytes = encode(sample_frames());
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string m = bytes;
      m[i] = static_cast<char>(m[i] ^ (1 << bit));
      Status err;
      const std::vector<Frame> got = decode_all(ByteView(m), &err);
      if (!err.is_ok()) {
        EXPECT_EQ(err.code(), StatusCode::kInvalidArgument);
      }
      for (const Frame& f : got) {
        if (const auto* s = std::get_if<StreamFrame>(&f)) {
          EXPECT_GE(s->data.data(), reinterpret_cast<const std::uint8_t*>(m.data()));
          EXPECT_LE(s->data.end(), reinterpret_cast<const std::uint8_t*>(m.data() + m.size()));
        }
      }
    }
  }
  for (int extra = 0; extra < 256; ++extra) {
    std::string m = bytes;
    m.push_back(static_cast<char>(extra));
    Status err;
    const std::vector<Frame> got = decode_all(ByteView(m), &err);
    EXPECT_GE(got.size(), sample_frames().size() - 1);  // PADDING may absorb a zero
    // PING, PADDING and an empty DATAGRAM running to the end need no body; all else does.
    if (extra == frame_type::kPing || extra == frame_type::kPadding || extra == frame_type::kDatagram) {
      EXPECT_TRUE(err.is_ok()) << extra;
    } else {
      EXPECT_FALSE(err.is_ok()) << extra;
    }
  }
}

TEST(UdpFramesTest, AckElicitingFrames) {
  EXPECT_TRUE(is_ack_eliciting(PingFrame{}));
  EXPECT_TRUE(is_ack_eliciting(StreamFrame{}));
  EXPECT_TRUE(is_ack_eliciting(DatagramFrame{}));
  EXPECT_TRUE(is_ack_eliciting(MaxDataFrame{}));
  EXPECT_FALSE(is_ack_eliciting(AckFrame{}));
  EXPECT_FALSE(is_ack_eliciting(PaddingFrame{}));
  EXPECT_FALSE(is_ack_eliciting(CloseFrame{}));
}

}  // namespace
}  // namespace slip::transport::udp
