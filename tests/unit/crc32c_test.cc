#include "core/crc32c.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace slip {
namespace {

ByteView view(const std::vector<std::uint8_t>& v) { return ByteView(v.data(), v.size()); }

// RFC 3720, appendix B.4.
TEST(Crc32cTest, MatchesRfc3720ZeroVector) {
  std::vector<std::uint8_t> b(32, 0x00);
  EXPECT_EQ(crc32c(view(b)), 0x8A9136AAu);
}

TEST(Crc32cTest, MatchesRfc3720OnesVector) {
  std::vector<std::uint8_t> b(32, 0xFF);
  EXPECT_EQ(crc32c(view(b)), 0x62A8AB43u);
}

TEST(Crc32cTest, MatchesRfc3720AscendingVector) {
  std::vector<std::uint8_t> b(32);
  for (std::size_t i = 0; i < b.size(); ++i) b[i] = static_cast<std::uint8_t>(i);
  EXPECT_EQ(crc32c(view(b)), 0x46DD794Eu);
}

TEST(Crc32cTest, MatchesRfc3720DescendingVector) {
  std::vector<std::uint8_t> b(32);
  for (std::size_t i = 0; i < b.size(); ++i) b[i] = static_cast<std::uint8_t>(31 - i);
  EXPECT_EQ(crc32c(view(b)), 0x113FDB5Cu);
}

TEST(Crc32cTest, MatchesCheckValue) { EXPECT_EQ(crc32c(ByteView("123456789")), 0xE3069283u); }

TEST(Crc32cTest, EmptyInputIsZero) {
  EXPECT_EQ(crc32c(ByteView()), 0u);
  EXPECT_EQ(crc32c_extend(0x12345678u, ByteView()), 0x12345678u);
}

TEST(Crc32cTest, ExtendEqualsCrcOfConcatenationAtEverySplit) {
  std::string data;
  for (int i = 0; i < 300; ++i) data.push_back(static_cast<char>((i * 37 + 11) & 0xFF));
  const std::uint32_t whole = crc32c(ByteView(data));
  for (std::size_t split = 0; split <= data.size(); ++split) {
    ByteView all(data);
    std::uint32_t c = crc32c_extend(crc32c(all.sub(0, split)), all.sub(split));
    ASSERT_EQ(c, whole) << split;
  }
}

TEST(Crc32cTest, ExtendInThreePieces) {
  std::string a = "1234", b = "56", c = "789";
  std::uint32_t crc = crc32c(ByteView(a));
  crc = crc32c_extend(crc, ByteView(b));
  crc = crc32c_extend(crc, ByteView(c));
  EXPECT_EQ(crc, 0xE3069283u);
}

TEST(Crc32cTest, DetectsASingleBitFlip) {
  std::vector<std::uint8_t> b(64, 0x5A);
  const std::uint32_t good = crc32c(view(b));
  for (std::size_t i = 0; i < b.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      b[i] ^= static_cast<std::uint8_t>(1u << bit);
      EXPECT_NE(crc32c(view(b)), good);
      b[i] ^= static_cast<std::uint8_t>(1u << bit);
    }
  }
}

TEST(Crc32cTest, UnalignedLargeInputMatchesPiecewise) {
  // Exercise the vector paths with an odd start and a length not a multiple of any block.
  std::vector<std::uint8_t> b(100003);
  std::uint32_t x = 1;
  for (auto& v : b) {
    x = x * 1664525u + 1013904223u;
    v = static_cast<std::uint8_t>(x >> 24);
  }
  ByteView all = view(b).sub(1);
  std::uint32_t piecewise = 0;
  for (std::size_t pos = 0; pos < all.size(); pos += 997) {
    std::size_t n = std::min<std::size_t>(997, all.size() - pos);
    piecewise = crc32c_extend(piecewise, all.sub(pos, n));
  }
  EXPECT_EQ(crc32c(all), piecewise);
}

}  // namespace
}  // namespace slip
