#include "core/varint.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace slip {
namespace {

std::vector<std::uint8_t> encode(std::uint64_t v) {
  std::vector<std::uint8_t> out(kMaxVarint64Bytes + 2, 0xEE);
  std::uint8_t* end = encode_varint(out.data(), v);
  out.resize(static_cast<std::size_t>(end - out.data()));
  return out;
}

VarintResult decode(const std::vector<std::uint8_t>& b, std::size_t max_bytes = kMaxVarint64Bytes) {
  return decode_varint(b.data(), b.size(), max_bytes);
}

TEST(VarintTest, EncodesEdgeValuesWithExpectedBytes) {
  EXPECT_EQ(encode(0), (std::vector<std::uint8_t>{0x00}));
  EXPECT_EQ(encode(1), (std::vector<std::uint8_t>{0x01}));
  EXPECT_EQ(encode(127), (std::vector<std::uint8_t>{0x7F}));
  EXPECT_EQ(encode(128), (std::vector<std::uint8_t>{0x80, 0x01}));
  EXPECT_EQ(encode(300), (std::vector<std::uint8_t>{0xAC, 0x02}));
  EXPECT_EQ(encode(16383), (std::vector<std::uint8_t>{0xFF, 0x7F}));
  EXPECT_EQ(encode(16384), (std::vector<std::uint8_t>{0x80, 0x80, 0x01}));
  EXPECT_EQ(encode(1ull << 63),
            (std::vector<std::uint8_t>{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}));
  EXPECT_EQ(encode(UINT64_MAX),
            (std::vector<std::uint8_t>{0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}));
}

TEST(VarintTest, SizeMatchesEncodedLength) {
  const std::uint64_t values[] = {0,          1,          127,          128,          16383,
                                  16384,      (1u << 21) - 1, 1u << 21, (1u << 28) - 1, 1u << 28,
                                  1ull << 35, 1ull << 42, 1ull << 49,   1ull << 56,   (1ull << 63) - 1,
                                  1ull << 63, UINT64_MAX};
  for (std::uint64_t v : values) EXPECT_EQ(varint_size(v), encode(v).size()) << v;
  EXPECT_EQ(varint_size(0), 1u);
  EXPECT_EQ(varint_size(127), 1u);
  EXPECT_EQ(varint_size(128), 2u);
  EXPECT_EQ(varint_size(1ull << 63), 10u);
  EXPECT_EQ(varint_size(UINT64_MAX), kMaxVarint64Bytes);
}

TEST(VarintTest, RoundTripsEdgeAndPowerOfTwoValues) {
  std::vector<std::uint64_t> values = {0, 127, 128, 1ull << 63, UINT64_MAX};
  for (int bit = 0; bit < 64; ++bit) {
    values.push_back(1ull << bit);
    values.push_back((1ull << bit) - 1);
    values.push_back((1ull << bit) + 1);
  }
  for (std::uint64_t v : values) {
    std::vector<std::uint8_t> b = encode(v);
    VarintResult r = decode(b);
    ASSERT_EQ(r.error, VarintError::kOk) << v;
    EXPECT_EQ(r.value, v);
    EXPECT_EQ(r.length, b.size());
  }
}

TEST(VarintTest, DecodeStopsAtTheLastByte) {
  std::vector<std::uint8_t> b = {0x80, 0x01, 0xFF, 0xFF};  // 128, then unrelated bytes
  VarintResult r = decode(b);
  ASSERT_EQ(r.error, VarintError::kOk);
  EXPECT_EQ(r.value, 128u);
  EXPECT_EQ(r.length, 2u);
}

TEST(VarintTest, AcceptsNonMinimalEncodings) {
  // 0 written in two bytes: legal LEB128, and the wire format does not forbid it.
  VarintResult r = decode({0x80, 0x00});
  ASSERT_EQ(r.error, VarintError::kOk);
  EXPECT_EQ(r.value, 0u);
  EXPECT_EQ(r.length, 2u);
}

TEST(VarintTest, EmptyInputIsTruncated) {
  EXPECT_EQ(decode_varint(nullptr, 0).error, VarintError::kTruncated);
}

TEST(VarintTest, EveryProperPrefixIsTruncated) {
  std::vector<std::uint8_t> b = encode(UINT64_MAX);
  for (std::size_t n = 0; n < b.size(); ++n) {
    VarintResult r = decode_varint(b.data(), n);
    EXPECT_EQ(r.error, VarintError::kTruncated) << n;
  }
}

TEST(VarintTest, RejectsElevenByteEncodingAsTooLong) {
  std::vector<std::uint8_t> b(10, 0x80);
  b.push_back(0x00);
  EXPECT_EQ(decode(b).error, VarintError::kTooLong);
}

TEST(VarintTest, RejectsTenContinuationBytesAsTooLongNotTruncated) {
  std::vector<std::uint8_t> b = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x81};
  EXPECT_EQ(decode(b).error, VarintError::kTooLong);
}

TEST(VarintTest, RejectsTenthByteAboveOne) {
  std::vector<std::uint8_t> b = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02};
  EXPECT_EQ(decode(b).error, VarintError::kTooLong);
  b[9] = 0x7F;
  EXPECT_EQ(decode(b).error, VarintError::kTooLong);
  b[9] = 0x01;  // exactly UINT64_MAX
  VarintResult r = decode(b);
  ASSERT_EQ(r.error, VarintError::kOk);
  EXPECT_EQ(r.value, UINT64_MAX);
}

TEST(VarintTest, HonoursMaxBytes) {
  std::vector<std::uint8_t> b = encode(1u << 28);  // 5 bytes
  ASSERT_EQ(b.size(), 5u);
  EXPECT_EQ(decode(b, 4).error, VarintError::kTooLong);
  EXPECT_EQ(decode(b, 5).error, VarintError::kOk);

  std::vector<std::uint8_t> fits = encode((1u << 28) - 1);  // 4 bytes
  VarintResult r = decode(fits, 4);
  ASSERT_EQ(r.error, VarintError::kOk);
  EXPECT_EQ(r.value, (1u << 28) - 1);

  EXPECT_EQ(decode({0x80, 0x01}, 1).error, VarintError::kTooLong);
  EXPECT_EQ(decode({0x05}, 1).value, 5u);
}

TEST(VarintTest, TruncatedWinsOverMaxBytesWhenInputEndsFirst) {
  // Three continuation bytes with a limit of four: more input could still complete it.
  EXPECT_EQ(decode({0x80, 0x80, 0x80}, 4).error, VarintError::kTruncated);
  EXPECT_EQ(decode({0x80, 0x80, 0x80, 0x80}, 4).error, VarintError::kTooLong);
}

}  // namespace
}  // namespace slip
