#include <gtest/gtest.h>
#include <lz4.h>
#include <zstd.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "compress/compressor.h"
#include "compress/decompressor.h"
#include "compress/estimate.h"
#include "core/varint.h"

namespace slip::compress {
namespace {

constexpr std::size_t kNoLimit = std::numeric_limits<std::size_t>::max();

// ---- Inputs -------------------------------------------------------------------------------

// Records like a telemetry or market-data service publishes.
std::string json_like(std::size_t n, std::uint32_t seed = 1) {
  static const char* const kActions[] = {"click", "view", "buy", "scroll", "login"};
  std::mt19937 rng(seed);
  std::string s;
  while (s.size() < n) {
    s += "{\"id\":" + std::to_string(rng() % 1000000) + ",\"user\":\"user_" + std::to_string(rng() % 5000) +
         "\",\"action\":\"" + kActions[rng() % 5] + "\",\"price\":" + std::to_string(rng() % 10000) + "." +
         std::to_string(rng() % 100) + ",\"tags\":[\"eu\",\"mobile\"],\"ts\":" +
         std::to_string(1700000000 + rng() % 100000) + "}\n";
  }
  s.resize(n);
  return s;
}

// Fixed-size little-endian records: an id counting up, a small float, flag bytes.
std::string binary_records(std::size_t n) {
  std::string s;
  for (std::uint32_t i = 0; s.size() < n; ++i) {
    char rec[16] = {};
    std::uint32_t id = 100000 + i;
    float value = static_cast<float>(i % 50) * 0.5f;
    std::memcpy(rec, &id, 4);
    std::memcpy(rec + 4, &value, 4);
    rec[8] = static_cast<char>(i % 3);
    rec[9] = 1;
    s.append(rec, sizeof(rec));
  }
  s.resize(n);
  return s;
}

std::string random_bytes(std::size_t n, std::uint32_t seed = 7) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

// Random base64 characters: 6 bits of entropy per byte and almost no 4-byte repeats, so only
// an entropy coder (zstd) gains.
std::string base64_like(std::size_t n) {
  static const char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::mt19937 rng(3);
  std::string s(n, '\0');
  for (auto& c : s) c = kAlphabet[rng() % 64];
  return s;
}

Slice slice_of(std::string_view s) { return Slice::copy_of(ByteView(s)); }

// Options that always compress with `codec` alone, whatever the size and the result.
CompressOptions forced(Codec codec) {
  CompressOptions o;
  o.codecs = codec_bit(codec);
  o.preferred = codec;
  o.min_size = 0;
  o.max_ratio = std::numeric_limits<double>::infinity();
  o.estimate = false;
  return o;
}

// The bytes of `input` compressed with `codec`.
std::string compressed(Codec codec, std::string_view input) {
  Compressor c(forced(codec));
  Result<CompressedMessage> r = c.compress(slice_of(input));
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->codec, codec);
  return r->bytes.to_string();
}

// Bytes before a zstd frame's first block header (RFC 8878, 3.1.1.1).
std::size_t zstd_frame_header_size(std::string_view frame) {
  const auto descriptor = static_cast<std::uint8_t>(frame[4]);
  const bool single_segment = (descriptor >> 5) & 1;
  const std::size_t fcs_sizes[4] = {single_segment ? 1u : 0u, 2, 4, 8};
  const std::size_t dict_id_sizes[4] = {0, 1, 2, 4};
  return 4 + 1 + (single_segment ? 0 : 1) + dict_id_sizes[descriptor & 3] + fcs_sizes[descriptor >> 6];
}

// ---- Codec-independent behaviour ----------------------------------------------------------

TEST(CompressTest, RandomInputGoesRawWithoutCopy) {
  Slice input = slice_of(random_bytes(64 * 1024));
  Compressor c;  // both codecs, estimate on
  Result<CompressedMessage> r = c.compress(input);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->codec, Codec::kNone);
  ASSERT_EQ(r->bytes.slice_count(), 1u);
  EXPECT_TRUE(r->bytes.slice(0).shares_block_with(input));
  EXPECT_EQ(r->bytes.slice(0).data(), input.data());
  EXPECT_EQ(r->bytes.size(), input.size());
  EXPECT_EQ(c.stats().raw_estimate, 1u);  // decided by the estimate, no compressor ran
  EXPECT_EQ(c.stats().raw_ratio, 0u);
}

TEST(CompressTest, RandomInputGoesRawByRatioWhenTheEstimateIsOff) {
  for (Codec codec : {Codec::kLz4, Codec::kZstd}) {
    SCOPED_TRACE(std::string(codec_name(codec)));
    CompressOptions o;
    o.codecs = codec_bit(codec);
    o.estimate = false;
    Compressor c(o);
    Slice input = slice_of(random_bytes(20000));
    Result<CompressedMessage> r = c.compress(input);
    ASSERT_TRUE(r.is_ok());
    EXPECT_EQ(r->codec, Codec::kNone);
    EXPECT_TRUE(r->bytes.slice(0).shares_block_with(input));
    EXPECT_EQ(c.stats().raw_ratio, 1u);
  }
}

TEST(CompressTest, InputBelowMinSizeGoesRaw) {
  Compressor c;
  Slice input = slice_of(json_like(255));  // compressible, but under the default 256
  Result<CompressedMessage> r = c.compress(input);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->codec, Codec::kNone);
  EXPECT_TRUE(r->bytes.slice(0).shares_block_with(input));
  EXPECT_EQ(c.stats().raw_skipped, 1u);

  Result<CompressedMessage> at_min = c.compress(slice_of(json_like(256)));
  ASSERT_TRUE(at_min.is_ok());
  EXPECT_EQ(at_min->codec, Codec::kLz4);
}

TEST(CompressTest, NoNegotiatedCodecSendsEverythingRaw) {
  CompressOptions o;
  o.codecs = 0;
  Compressor c(o);
  Result<CompressedMessage> r = c.compress(slice_of(json_like(10000)));
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->codec, Codec::kNone);
  EXPECT_EQ(c.stats().raw_skipped, 1u);
}

TEST(CompressTest, ChoosesPreferredCodecForCompressibleInput) {
  std::string text = json_like(8000);
  Compressor lz4_first;  // default preference
  Result<CompressedMessage> a = lz4_first.compress(slice_of(text));
  ASSERT_TRUE(a.is_ok());
  EXPECT_EQ(a->codec, Codec::kLz4);

  CompressOptions o;
  o.preferred = Codec::kZstd;
  Compressor zstd_first(o);
  Result<CompressedMessage> b = zstd_first.compress(slice_of(text));
  ASSERT_TRUE(b.is_ok());
  EXPECT_EQ(b->codec, Codec::kZstd);
  EXPECT_LT(b->bytes.size(), text.size() / 2);
}

TEST(CompressTest, FallsBackToZstdWhenOnlyEntropyCodingPays) {
  // LZ4 preferred, but base64 text has no repeats for it to remove. Small: LZ4 tries and
  // fails; large: the estimate skips LZ4. zstd's Huffman stage saves a quarter either way.
  for (std::size_t n : {std::size_t{4000}, std::size_t{64 * 1024}}) {
    SCOPED_TRACE(n);
    std::string text = base64_like(n);
    Compressor c;
    Result<CompressedMessage> r = c.compress(slice_of(text));
    ASSERT_TRUE(r.is_ok());
    EXPECT_EQ(r->codec, Codec::kZstd);
    EXPECT_LE(r->bytes.size(), text.size() * 9 / 10);
    Result<Slice> out = Decompressor().decompress(r->codec, r->bytes.flatten(), n);
    ASSERT_TRUE(out.is_ok());
    EXPECT_EQ(out->to_string(), text);
  }
}

TEST(CompressTest, LargeIncompressibleInputSkipsLz4WithoutTrying) {
  CompressOptions o;
  o.codecs = codec_bit(Codec::kLz4);
  Compressor c(o);
  Result<CompressedMessage> r = c.compress(slice_of(base64_like(64 * 1024)));
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->codec, Codec::kNone);
  EXPECT_EQ(c.stats().raw_estimate, 1u);
  EXPECT_EQ(c.stats().raw_ratio, 0u);

  // A small one is cheaper to try than to estimate: LZ4 runs and gives up.
  ASSERT_EQ(c.compress(slice_of(base64_like(4000)))->codec, Codec::kNone);
  EXPECT_EQ(c.stats().raw_ratio, 1u);
}

TEST(CompressTest, RawMultiSliceChainKeepsItsSlices) {
  Slice a = slice_of(random_bytes(3000, 1));
  Slice b = slice_of(random_bytes(5000, 2));
  Chain input;
  input.append(a);
  input.append(b);
  Compressor c;
  Result<CompressedMessage> r = c.compress(input);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->codec, Codec::kNone);
  ASSERT_EQ(r->bytes.slice_count(), 2u);
  EXPECT_TRUE(r->bytes.slice(0).shares_block_with(a));
  EXPECT_TRUE(r->bytes.slice(1).shares_block_with(b));
}

TEST(CompressTest, CompressesMultiSliceChainAsOneMessage) {
  std::string text = json_like(30000);
  Chain input;
  input.append(slice_of(std::string_view(text).substr(0, 100)));
  input.append(slice_of(std::string_view(text).substr(100, 20000)));
  input.append(slice_of(std::string_view(text).substr(20100)));
  Compressor c;
  Result<CompressedMessage> r = c.compress(input);
  ASSERT_TRUE(r.is_ok());
  ASSERT_EQ(r->codec, Codec::kLz4);
  Decompressor d;
  Result<Slice> out = d.decompress(r->codec, r->bytes.flatten(), kNoLimit);
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ(out->to_string(), text);
}

TEST(CompressTest, EarlierOutputsStayIntactWhileLaterMessagesReuseTheArena) {
  // Outputs share blocks (arena.h). Hold some, drop others, and check none is overwritten.
  Compressor c;
  Decompressor d;
  std::vector<std::pair<std::string, CompressedMessage>> kept;
  for (std::uint32_t i = 0; i < 300; ++i) {
    std::string text = json_like(300 + (i * 977) % 20000, i);
    Result<CompressedMessage> r = c.compress(slice_of(text));
    ASSERT_TRUE(r.is_ok());
    ASSERT_NE(r->codec, Codec::kNone);
    if (i % 3 == 0) kept.emplace_back(std::move(text), std::move(*r));
  }
  for (auto& [text, msg] : kept) {
    Result<Slice> out = d.decompress(msg.codec, msg.bytes.flatten(), kNoLimit);
    ASSERT_TRUE(out.is_ok()) << out.status().to_string();
    EXPECT_EQ(out->to_string(), text);
  }
}

TEST(CompressTest, StatsCountEveryMessageOnce) {
  Compressor c;
  ASSERT_TRUE(c.compress(slice_of(json_like(100))).is_ok());          // skipped
  ASSERT_TRUE(c.compress(slice_of(random_bytes(40000))).is_ok());     // estimate
  ASSERT_TRUE(c.compress(slice_of(random_bytes(5000))).is_ok());      // LZ4 tried: ratio
  ASSERT_TRUE(c.compress(slice_of(json_like(5000))).is_ok());         // lz4
  ASSERT_TRUE(c.compress(slice_of(base64_like(5000))).is_ok());       // zstd
  const CompressStats& s = c.stats();
  EXPECT_EQ(s.messages, 5u);
  EXPECT_EQ(s.raw_skipped + s.raw_estimate + s.raw_ratio + s.lz4 + s.zstd, 5u);
  EXPECT_EQ(s.raw_skipped, 1u);
  EXPECT_EQ(s.raw_estimate, 1u);
  EXPECT_EQ(s.raw_ratio, 1u);
  EXPECT_EQ(s.lz4, 1u);
  EXPECT_EQ(s.zstd, 1u);
  EXPECT_EQ(s.bytes_in, 55100u);
  EXPECT_LT(s.bytes_out, s.bytes_in);
}

TEST(CompressTest, ClampsOutOfRangeOptions) {
  CompressOptions o;
  o.zstd_level = 1000;
  o.lz4_acceleration = -5;
  o.codecs = 0xFF;
  Compressor c(o);
  EXPECT_EQ(c.options().zstd_level, ZSTD_maxCLevel());
  EXPECT_EQ(c.options().lz4_acceleration, 1);
  EXPECT_EQ(c.options().codecs, kAllCodecs);
}

// ---- Decompressor, codec-independent ------------------------------------------------------

TEST(CompressDecompressorTest, RefusesReservedAndUnnegotiatedCodecs) {
  Decompressor d(codec_bit(Codec::kLz4));
  Result<Slice> reserved = d.decompress(static_cast<Codec>(3), ByteView("abc"), kNoLimit);
  EXPECT_EQ(reserved.status().code(), StatusCode::kInvalidArgument);
  Result<Slice> zstd = d.decompress(Codec::kZstd, ByteView(compressed(Codec::kZstd, "hello")), kNoLimit);
  EXPECT_EQ(zstd.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(zstd.status().message().find("not negotiated"), std::string_view::npos);
}

TEST(CompressDecompressorTest, RawMessageIsSharedAndBounded) {
  Decompressor d;
  Slice input = slice_of("some raw bytes");
  Result<Slice> out = d.decompress(Codec::kNone, input, 100);
  ASSERT_TRUE(out.is_ok());
  EXPECT_TRUE(out->shares_block_with(input));
  EXPECT_EQ(d.decompress(Codec::kNone, input, 5).status().code(), StatusCode::kOverloaded);
  Result<Slice> copied = d.decompress(Codec::kNone, input.view(), 100);
  ASSERT_TRUE(copied.is_ok());
  EXPECT_EQ(copied->to_string(), "some raw bytes");
}

TEST(CompressDecompressorTest, Lz4StatingAHugeSizeIsOverloadedNotAllocated) {
  std::uint8_t msg[16];
  std::uint8_t* p = encode_varint(msg, std::uint64_t{1} << 40);
  *p++ = 0x00;  // an (invalid) empty block: the size check must come first
  Decompressor d;
  Result<Slice> r = d.decompress(Codec::kLz4, ByteView(msg, static_cast<std::size_t>(p - msg)), kNoLimit);
  EXPECT_EQ(r.status().code(), StatusCode::kOverloaded);
}

TEST(CompressDecompressorTest, Lz4EmptyMessageIsSizeZeroAndTheEmptyBlock) {
  EXPECT_EQ(compressed(Codec::kLz4, ""), std::string("\x00\x00", 2));
  Decompressor d;
  Result<Slice> r = d.decompress(Codec::kLz4, ByteView(std::string("\x00\x00", 2)), kNoLimit);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_TRUE(r->empty());
}

TEST(CompressDecompressorTest, Lz4RejectsMalformedSizePrefix) {
  Decompressor d;
  EXPECT_EQ(d.decompress(Codec::kLz4, ByteView(), kNoLimit).status().code(), StatusCode::kCorruption);
  EXPECT_EQ(d.decompress(Codec::kLz4, ByteView(std::string("\x80\x80")), kNoLimit).status().code(),
            StatusCode::kCorruption);
  std::string eleven(11, '\xFF');
  EXPECT_EQ(d.decompress(Codec::kLz4, ByteView(eleven), kNoLimit).status().code(), StatusCode::kCorruption);
}

TEST(CompressDecompressorTest, Lz4BlockShorterThanStatedSizeIsCorruption) {
  std::string text = json_like(5000);
  std::string msg = compressed(Codec::kLz4, text);
  // Restate the size one byte larger: the block still decodes, to one byte less than stated.
  std::string restated(kMaxVarint64Bytes, '\0');
  auto* p = reinterpret_cast<std::uint8_t*>(restated.data());
  restated.resize(static_cast<std::size_t>(encode_varint(p, text.size() + 1) - p));
  restated += msg.substr(varint_size(text.size()));
  Decompressor d;
  Result<Slice> r = d.decompress(Codec::kLz4, ByteView(restated), kNoLimit);
  EXPECT_EQ(r.status().code(), StatusCode::kCorruption);
  EXPECT_NE(r.status().message().find("not the stated"), std::string_view::npos) << r.status().to_string();
}

TEST(CompressDecompressorTest, Lz4MatchAtOffsetZeroDoesNotRevealEarlierMessages) {
  // The LZ4 block format forbids offset 0, but liblz4 1.9.4 accepts it. Output blocks are
  // reused (arena.h), so such a match must not copy what an earlier message left there.
  Decompressor d;
  std::string secret(1000, 'S');
  std::string secret_msg = compressed(Codec::kLz4, secret);
  ASSERT_TRUE(d.decompress(Codec::kLz4, ByteView(secret_msg), kNoLimit).is_ok());  // dropped at once

  // 100 literals, a 40-byte match at offset 0, 20 final literals.
  std::string msg;
  msg.resize(kMaxVarint64Bytes);
  auto* p = reinterpret_cast<std::uint8_t*>(msg.data());
  msg.resize(static_cast<std::size_t>(encode_varint(p, 160) - p));
  msg += std::string("\xFF\x55", 2) + std::string(100, 'a');  // 15 + 85 literals; match 15 + ...
  msg += std::string("\x00\x00\x15", 3);                      // offset 0, match 4 + 15 + 21
  msg += std::string("\xF0\x05", 2) + std::string(20, 'z');    // 15 + 5 final literals
  Result<Slice> r = d.decompress(Codec::kLz4, ByteView(msg), kNoLimit);
  if (r.is_ok()) {
    ASSERT_EQ(r->size(), 160u);
    EXPECT_EQ(r->as_string_view().find('S'), std::string_view::npos);
  } else {
    EXPECT_EQ(r.status().code(), StatusCode::kCorruption);
  }
}

TEST(CompressDecompressorTest, ZstdFrameWithoutContentSizeIsCorruption) {
  std::string text = json_like(4000);
  ZSTD_CStream* cs = ZSTD_createCStream();
  ASSERT_NE(cs, nullptr);
  ZSTD_initCStream(cs, 1);
  std::string out(ZSTD_compressBound(text.size()) + 64, '\0');
  ZSTD_outBuffer ob{out.data(), out.size(), 0};
  ZSTD_inBuffer ib{text.data(), text.size(), 0};
  ASSERT_FALSE(ZSTD_isError(ZSTD_compressStream(cs, &ob, &ib)));  // streamed: size unknown
  ASSERT_EQ(ZSTD_endStream(cs, &ob), 0u);
  ZSTD_freeCStream(cs);
  out.resize(ob.pos);
  ASSERT_EQ(ZSTD_getFrameContentSize(out.data(), out.size()), ZSTD_CONTENTSIZE_UNKNOWN);

  Decompressor d;
  Result<Slice> r = d.decompress(Codec::kZstd, ByteView(out), kNoLimit);
  EXPECT_EQ(r.status().code(), StatusCode::kCorruption);
  EXPECT_NE(r.status().message().find("content size"), std::string_view::npos);
}

TEST(CompressDecompressorTest, ZstdSkippableAndConcatenatedFramesAreCorruption) {
  Decompressor d;
  // Skippable frame: magic 0x184D2A50, 4-byte length, that many bytes.
  const std::string skippable = std::string("\x50\x2A\x4D\x18\x03\x00\x00\x00", 8) + "abc";
  EXPECT_EQ(d.decompress(Codec::kZstd, ByteView(skippable), kNoLimit).status().code(), StatusCode::kCorruption);

  std::string two = compressed(Codec::kZstd, json_like(1000)) + compressed(Codec::kZstd, json_like(1000));
  Result<Slice> r = d.decompress(Codec::kZstd, ByteView(two), kNoLimit);
  EXPECT_EQ(r.status().code(), StatusCode::kCorruption);
  EXPECT_NE(r.status().message().find("after the frame"), std::string_view::npos);
}

// ---- Per codec ------------------------------------------------------------------------------

class CompressCodecTest : public ::testing::TestWithParam<Codec> {
 protected:
  Codec codec() const { return GetParam(); }

  // Compressed bytes of `text`, forced through this test's codec.
  std::string pack(std::string_view text) { return compressed(codec(), text); }

  Result<Slice> unpack(std::string_view msg, std::size_t max_output = kNoLimit) {
    return decompressor_.decompress(codec(), ByteView(msg), max_output);
  }

  Decompressor decompressor_;
};

TEST_P(CompressCodecTest, RoundTripsTextBinaryEmptyOneByteAndLargeInputs) {
  const std::vector<std::pair<std::string, std::string>> inputs = {
      {"json", json_like(4096)},
      {"binary", binary_records(10000)},
      {"random", random_bytes(3000)},
      {"empty", ""},
      {"one byte", "x"},
      {"large", json_like(6 * 1024 * 1024) + binary_records(1024 * 1024)},
  };
  for (const auto& [name, text] : inputs) {
    SCOPED_TRACE(name);
    std::string msg = pack(text);
    Result<Slice> out = unpack(msg);
    ASSERT_TRUE(out.is_ok()) << out.status().to_string();
    EXPECT_TRUE(out->view() == ByteView(text));
  }
}

TEST_P(CompressCodecTest, DefaultOptionsCompressTextAndBinary) {
  CompressOptions o;
  o.codecs = codec_bit(codec());
  Compressor c(o);
  for (const std::string& text : {json_like(1024), json_like(64 * 1024), binary_records(64 * 1024),
                                  json_like(5 * 1024 * 1024)}) {
    SCOPED_TRACE(text.size());
    Result<CompressedMessage> r = c.compress(slice_of(text));
    ASSERT_TRUE(r.is_ok());
    EXPECT_EQ(r->codec, codec());
    EXPECT_LT(r->bytes.size(), text.size() / 2);
    Result<Slice> out = decompressor_.decompress(r->codec, r->bytes.flatten(), text.size());
    ASSERT_TRUE(out.is_ok()) << out.status().to_string();
    EXPECT_EQ(out->to_string(), text);
  }
}

TEST_P(CompressCodecTest, OutputDecodesWithThePlainLibrary) {
  // The format in format.h, checked against the reference decoders alone.
  std::string text = json_like(20000);
  std::string msg = pack(text);
  std::string out(text.size(), '\0');
  if (codec() == Codec::kLz4) {
    VarintResult size = decode_varint(reinterpret_cast<const std::uint8_t*>(msg.data()), msg.size());
    ASSERT_EQ(size.error, VarintError::kOk);
    EXPECT_EQ(size.value, text.size());
    int n = LZ4_decompress_safe(msg.data() + size.length, out.data(), static_cast<int>(msg.size() - size.length),
                                static_cast<int>(out.size()));
    EXPECT_EQ(n, static_cast<int>(text.size()));
  } else {
    EXPECT_EQ(ZSTD_getFrameContentSize(msg.data(), msg.size()), text.size());
    EXPECT_EQ(ZSTD_findFrameCompressedSize(msg.data(), msg.size()), msg.size());
    EXPECT_EQ(ZSTD_decompress(out.data(), out.size(), msg.data(), msg.size()), text.size());
  }
  EXPECT_EQ(out, text);
}

TEST_P(CompressCodecTest, RejectsCorruptPayload) {
  std::string msg = pack(json_like(3000));
  std::vector<std::string> corrupt;
  if (codec() == Codec::kLz4) {
    std::size_t prefix = varint_size(3000);
    std::string garbage = msg.substr(0, prefix) + std::string(msg.size() - prefix, '\xFF');
    corrupt.push_back(garbage);  // literal lengths running far past the end
    std::string bad_offset = msg.substr(0, prefix) + std::string("\x00\xFF\xFF", 3) + msg.substr(prefix + 3);
    corrupt.push_back(bad_offset);  // a first match reaching 65535 bytes before the output
  } else {
    std::string bad_block = msg;
    std::size_t block = zstd_frame_header_size(msg);
    bad_block[block] = static_cast<char>(bad_block[block] | 0x06);  // first block: reserved type 3
    corrupt.push_back(bad_block);
    std::string bad_magic = msg;
    bad_magic[0] ^= 0x01;
    corrupt.push_back(bad_magic);
  }
  for (const std::string& m : corrupt) {
    Result<Slice> r = unpack(m);
    EXPECT_EQ(r.status().code(), StatusCode::kCorruption) << r.status().to_string();
    EXPECT_NE(r.status().message().find(codec_name(codec())), std::string_view::npos) << r.status().to_string();
  }
}

TEST_P(CompressCodecTest, EveryTruncationIsCorruption) {
  std::string msg = pack(json_like(2000));
  for (std::size_t len = 0; len < msg.size(); ++len) {
    Result<Slice> r = unpack(std::string_view(msg).substr(0, len));
    EXPECT_EQ(r.status().code(), StatusCode::kCorruption) << "length " << len;
  }
}

TEST_P(CompressCodecTest, LengthenedPayloadIsCorruption) {
  std::string msg = pack(json_like(2000));
  for (char extra : {'\0', 'x', '\xFF'}) {
    Result<Slice> r = unpack(msg + extra);
    EXPECT_EQ(r.status().code(), StatusCode::kCorruption);
  }
}

TEST_P(CompressCodecTest, EverySingleByteFlipFailsCleanlyOrKeepsTheStatedSize) {
  // Neither format has a checksum here, so some flips (inside literals) decode to different
  // bytes; none may crash, over-read, or yield other than the stated size.
  std::string text = json_like(1500);
  std::string msg = pack(text);
  std::size_t failed = 0;
  for (std::size_t i = 0; i < msg.size(); ++i) {
    for (std::uint8_t mask : {0x01, 0x80, 0xFF}) {
      std::string m = msg;
      m[i] = static_cast<char>(m[i] ^ mask);
      Result<Slice> r = unpack(m, 4096);
      if (r.is_ok()) {
        EXPECT_LE(r->size(), 4096u);
        continue;
      }
      ++failed;
      EXPECT_TRUE(r.status().code() == StatusCode::kCorruption || r.status().code() == StatusCode::kOverloaded)
          << r.status().to_string();
    }
  }
  EXPECT_GT(failed, 0u);
}

TEST_P(CompressCodecTest, StatedSizeAboveMaxOutputIsOverloaded) {
  std::string text = json_like(64 * 1024);
  std::string msg = pack(text);
  Result<Slice> r = unpack(msg, text.size() - 1);
  EXPECT_EQ(r.status().code(), StatusCode::kOverloaded) << r.status().to_string();
  EXPECT_NE(r.status().message().find("exceeds the limit"), std::string_view::npos);
  EXPECT_TRUE(unpack(msg, text.size()).is_ok());
}

TEST_P(CompressCodecTest, BombIsRefusedBeforeDecoding) {
  // 16 MiB of zeros compress to a few hundred bytes (LZ4) or a few dozen (zstd).
  std::string zeros(16 << 20, '\0');
  std::string msg = pack(zeros);
  EXPECT_LT(msg.size(), 100u * 1024);
  Result<Slice> r = unpack(msg, 1 << 20);
  EXPECT_EQ(r.status().code(), StatusCode::kOverloaded);
}

INSTANTIATE_TEST_SUITE_P(Codecs, CompressCodecTest, ::testing::Values(Codec::kLz4, Codec::kZstd),
                         [](const ::testing::TestParamInfo<Codec>& info) {
                           return std::string(codec_name(info.param));
                         });

// ---- Estimate -------------------------------------------------------------------------------

struct Estimate {
  double lz4;
  double entropy;
};

Estimate estimate_of(const std::string& text) {
  std::uint8_t sample[detail::kSampleBytes];
  std::size_t n = detail::gather_sample(Chain(slice_of(text)), sample);
  LZ4_stream_t lz4;
  LZ4_initStream(&lz4, sizeof(lz4));
  return Estimate{detail::lz4_ratio(ByteView(sample, n), &lz4), detail::entropy(ByteView(sample, n))};
}

TEST(CompressEstimateTest, RandomBytesLookIncompressible) {
  for (std::uint32_t seed = 1; seed <= 20; ++seed) {
    for (std::size_t n : {300u, 700u, 2048u, 65536u}) {
      Estimate e = estimate_of(random_bytes(n, seed));
      EXPECT_EQ(e.lz4, 1.0) << n;
      EXPECT_GT(e.entropy, n < 512 ? 7.5 : 7.75) << n;  // sampling noise falls with n
    }
  }
}

TEST(CompressEstimateTest, RandomInputNeverReachesZstd) {
  CompressOptions o;
  o.codecs = codec_bit(Codec::kZstd);
  Compressor c(o);
  for (std::uint32_t seed = 1; seed <= 50; ++seed) {
    for (std::size_t n : {256u, 300u, 1000u, 5000u, 100000u}) {
      ASSERT_EQ(c.compress(slice_of(random_bytes(n, seed)))->codec, Codec::kNone);
    }
  }
  EXPECT_EQ(c.stats().raw_estimate, c.stats().messages);  // zstd never ran
}

TEST(CompressEstimateTest, TextAndRecordsLookCompressible) {
  EXPECT_LT(estimate_of(json_like(65536)).lz4, 0.7);
  EXPECT_LT(estimate_of(binary_records(65536)).lz4, 0.7);
  Estimate b64 = estimate_of(base64_like(65536));
  EXPECT_GT(b64.lz4, 0.95);
  EXPECT_NEAR(b64.entropy, 6.0, 0.1);
  Estimate zeros = estimate_of(std::string(10000, '\0'));
  EXPECT_LT(zeros.lz4, 0.05);
  EXPECT_LT(zeros.entropy, 0.01);
  EXPECT_EQ(detail::entropy(ByteView()), 8.0);
}

TEST(CompressEstimateTest, SampleSpansTheWholeMessage) {
  std::string text = random_bytes(100000);
  std::uint8_t sample[detail::kSampleBytes];
  ASSERT_EQ(detail::gather_sample(Chain(slice_of(text)), sample), detail::kSampleBytes);
  EXPECT_EQ(std::memcmp(sample, text.data(), detail::kSampleChunk), 0);
  EXPECT_EQ(std::memcmp(sample + detail::kSampleBytes - detail::kSampleChunk,
                        text.data() + text.size() - detail::kSampleChunk, detail::kSampleChunk),
            0);

  // The same sample from a chain split at awkward places.
  Chain split;
  split.append(slice_of(std::string_view(text).substr(0, 700)));
  split.append(slice_of(std::string_view(text).substr(700, 33333)));
  split.append(slice_of(std::string_view(text).substr(34033)));
  std::uint8_t again[detail::kSampleBytes];
  ASSERT_EQ(detail::gather_sample(split, again), detail::kSampleBytes);
  EXPECT_EQ(std::memcmp(sample, again, detail::kSampleBytes), 0);

  std::string small = json_like(100);
  EXPECT_EQ(detail::gather_sample(Chain(slice_of(small)), sample), 100u);
}

}  // namespace
}  // namespace slip::compress
