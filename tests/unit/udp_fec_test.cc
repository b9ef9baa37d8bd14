// Forward error correction (src/transport/udp/fec.h): the wire format against a reference
// encoder, recovery of every loss pattern a block can repair, no wrong delivery beyond that,
// reordering, duplicates, variable sizes, flushing, bounded memory and the adaptive policy.
#include "transport/udp/fec.h"

#include <gtest/gtest.h>
#include <isa-l/erasure_code.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace slip::transport::udp {
namespace {

using namespace std::chrono_literals;

constexpr Instant kT0 = Instant(std::chrono::hours(1000));

std::uint64_t mix(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// A datagram that names itself: 4 bytes of id, then bytes derived from it.
std::string make_datagram(std::uint32_t id, std::size_t len) {
  std::string d(len, '\0');
  for (std::size_t i = 0; i < len; ++i) {
    d[i] = i < 4 ? static_cast<char>(id >> (8 * i)) : static_cast<char>(mix(id * 1315423911ull + i));
  }
  return d;
}

FecEncoderOptions fixed(std::uint8_t k, std::uint8_t m) {
  FecEncoderOptions o;
  o.enabled = true;
  o.adaptive = false;
  o.ratio = {k, m};
  return o;
}

std::vector<std::string> drain(FecEncoder& enc) {
  std::vector<std::string> out;
  while (auto p = enc.poll_transmit()) out.push_back(p->to_string());
  return out;
}

// Feeds packets to a decoder; returns every datagram it hands on, direct or rebuilt.
std::vector<std::string> feed(FecDecoder& dec, const std::vector<std::string>& packets, Instant now = kT0) {
  std::vector<std::string> got;
  for (const std::string& p : packets) {
    ByteView inner = dec.on_datagram(now, ByteView(p));
    if (!inner.empty()) got.push_back(inner.to_string());
    while (auto r = dec.poll_recovered()) got.push_back(r->to_string());
  }
  return got;
}

TEST(FecTest, CoefficientsAreTheDocumentedCauchyMatrix) {
  for (std::size_t r = 0; r < kFecMaxRepairs; ++r) {
    for (std::size_t j = 0; j < kFecMaxSources; ++j) {
      const auto x = static_cast<std::uint8_t>((48 + r) ^ j);
      ASSERT_EQ(fec_coefficient(r, j), gf_inv(x)) << r << "," << j;
      ASSERT_EQ(gf_mul(fec_coefficient(r, j), x), 1);
    }
  }
  // The field's polynomial is 0x11D: x^7 * x = x^4 + x^3 + x^2 + 1.
  EXPECT_EQ(gf_mul(0x80, 0x02), 0x1D);
}

// The wire format byte by byte, computed independently of the encoder with gf_mul.
TEST(FecTest, PacketsMatchAReferenceEncoder) {
  FecEncoder enc(fixed(3, 2));
  const std::vector<std::string> src = {make_datagram(1, 5), make_datagram(2, 300), make_datagram(3, 40)};
  for (const auto& s : src) enc.push(kT0, ByteView(s));
  const std::vector<std::string> out = drain(enc);
  ASSERT_EQ(out.size(), 5u);
  for (std::size_t i = 0; i < 3; ++i) {
    std::string want;
    want.push_back(static_cast<char>(0x60));
    want.append(std::string("\0\0\0\0", 4));
    want.push_back(static_cast<char>(i));
    want.append(src[i]);
    EXPECT_EQ(out[i], want) << i;
  }
  const std::size_t len = 2 + 300;
  for (std::size_t r = 0; r < 2; ++r) {
    std::string want;
    want.push_back(static_cast<char>(0x61));
    want.append(std::string("\0\0\0\0", 4));
    want.push_back(static_cast<char>(r));
    want.push_back(3);
    want.push_back(2);
    std::string parity(len, '\0');
    for (std::size_t j = 0; j < 3; ++j) {
      std::string sym;
      sym.push_back(static_cast<char>(src[j].size() >> 8));
      sym.push_back(static_cast<char>(src[j].size()));
      sym.append(src[j]);
      sym.resize(len, '\0');
      for (std::size_t b = 0; b < len; ++b) {
        parity[b] = static_cast<char>(static_cast<std::uint8_t>(parity[b]) ^
                                      gf_mul(fec_coefficient(r, j), static_cast<std::uint8_t>(sym[b])));
      }
    }
    want.append(parity);
    EXPECT_EQ(out[3 + r], want) << r;
  }
  // The next block has the next id.
  enc.push(kT0, ByteView(src[0]));
  const std::vector<std::string> next = drain(enc);
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(static_cast<std::uint8_t>(next[0][4]), 1);
}

// Every pattern of up to m lost packets (sources or repairs) of a block: every source arrives,
// byte-exact, exactly once.
void check_all_patterns(std::uint8_t k, std::uint8_t m, std::uint64_t seed) {
  std::vector<std::string> src;
  for (std::uint32_t i = 0; i < k; ++i) src.push_back(make_datagram(i, 1 + mix(seed + i) % 1400));
  const std::size_t n = k + m;
  std::size_t patterns = 0;
  for (std::uint64_t mask = 0; mask < (std::uint64_t{1} << n); ++mask) {
    if (std::popcount(mask) > m) continue;
    ++patterns;
    FecEncoder enc(fixed(k, m));
    for (const auto& s : src) enc.push(kT0, ByteView(s));
    std::vector<std::string> packets = drain(enc);
    ASSERT_EQ(packets.size(), n);
    std::vector<std::string> kept;
    for (std::size_t i = 0; i < n; ++i) {
      if (!(mask & (std::uint64_t{1} << i))) kept.push_back(packets[i]);
    }
    FecDecoder dec;
    std::vector<std::string> got = feed(dec, kept);
    std::sort(got.begin(), got.end());
    std::vector<std::string> want = src;
    std::sort(want.begin(), want.end());
    ASSERT_EQ(got, want) << "k " << int(k) << " m " << int(m) << " lost mask " << mask;
    EXPECT_EQ(dec.stats().recovered, static_cast<std::uint64_t>(std::popcount(mask & ((1u << k) - 1))));
  }
  EXPECT_GT(patterns, n);
}

TEST(FecTest, EveryPatternOfUpToMLossesIsRecoveredByteExact) {
  check_all_patterns(1, 1, 1);
  check_all_patterns(4, 2, 2);
  check_all_patterns(6, 3, 3);
  check_all_patterns(8, 4, 4);
  check_all_patterns(10, 3, 5);
}

TEST(FecTest, MoreThanMLossesRecoverNothingWrong) {
  const std::uint8_t k = 6, m = 2;
  std::vector<std::string> src;
  for (std::uint32_t i = 0; i < k; ++i) src.push_back(make_datagram(i, 20 + 97 * i));
  const std::size_t n = k + m;
  std::size_t checked = 0;
  for (std::uint64_t mask = 0; mask < (std::uint64_t{1} << n); ++mask) {
    if (std::popcount(mask) <= m) continue;
    FecEncoder enc(fixed(k, m));
    for (const auto& s : src) enc.push(kT0, ByteView(s));
    std::vector<std::string> packets = drain(enc);
    std::vector<std::string> kept;
    for (std::size_t i = 0; i < n; ++i) {
      if (!(mask & (std::uint64_t{1} << i))) kept.push_back(packets[i]);
    }
    FecDecoder dec;
    std::vector<std::string> got = feed(dec, kept);
    // Exactly the sources that arrived, nothing rebuilt, nothing invented.
    std::vector<std::string> want;
    for (std::size_t i = 0; i < k; ++i) {
      if (!(mask & (std::uint64_t{1} << i))) want.push_back(src[i]);
    }
    std::sort(got.begin(), got.end());
    std::sort(want.begin(), want.end());
    ASSERT_EQ(got, want) << "lost mask " << mask;
    EXPECT_EQ(dec.stats().recovered, 0u);
    dec.on_timeout(kT0 + 1h);
    EXPECT_EQ(dec.blocks(), 0u);
    const bool some_repair_arrived = (mask >> k) != (1u << m) - 1;  // it tells the block's k
    if ((mask & ((1u << k) - 1)) != 0 && some_repair_arrived) {
      EXPECT_EQ(dec.stats().blocks_unrecovered, 1u) << mask;
    }
    ++checked;
  }
  EXPECT_GT(checked, 100u);
}

TEST(FecTest, ReorderedAndDuplicatedPacketsDeliverEachSourceOnce) {
  for (std::uint64_t seed = 1; seed <= 30; ++seed) {
    FecEncoder enc(fixed(5, 2));
    std::vector<std::string> src;
    for (std::uint32_t i = 0; i < 40; ++i) {
      src.push_back(make_datagram(i, 1 + mix(seed * 100 + i) % 1500));
      enc.push(kT0, ByteView(src.back()));
    }
    enc.on_timeout(kT0 + 1s);  // the tail block
    std::vector<std::string> packets = drain(enc);
    // Lose one packet in each block of 7 (positions vary), duplicate some, then shuffle within
    // a window of 12.
    std::vector<std::string> sent;
    for (std::size_t i = 0; i < packets.size(); ++i) {
      if (i % 7 == mix(seed + i / 7) % 7) continue;
      sent.push_back(packets[i]);
      if (mix(seed * 7 + i) % 5 == 0) sent.push_back(packets[i]);
    }
    for (std::size_t i = 0; i + 1 < sent.size(); ++i) {
      const std::size_t j = i + mix(seed * 13 + i) % std::min<std::size_t>(12, sent.size() - i);
      std::swap(sent[i], sent[j]);
    }
    FecDecoder dec;
    std::vector<std::string> got = feed(dec, sent);
    std::map<std::string, int> count;
    for (const auto& g : got) ++count[g];
    ASSERT_EQ(count.size(), src.size()) << "seed " << seed;
    for (const auto& s : src) ASSERT_EQ(count[s], 1) << "seed " << seed;
    EXPECT_GT(dec.stats().duplicates, 0u);
  }
}

TEST(FecTest, SizesFromOneByteToTheLimitShareABlock) {
  const std::vector<std::size_t> sizes = {1, 1500, 2, 31, 32, 33, 64, 1499, 700};
  for (std::size_t lost = 0; lost < sizes.size(); ++lost) {
    FecEncoder enc(fixed(static_cast<std::uint8_t>(sizes.size()), 1));
    std::vector<std::string> src;
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      src.push_back(make_datagram(static_cast<std::uint32_t>(i), sizes[i]));
      enc.push(kT0, ByteView(src.back()));
    }
    std::vector<std::string> packets = drain(enc);
    ASSERT_EQ(packets.size(), sizes.size() + 1);
    EXPECT_EQ(packets.back().size(), kFecRepairHeaderSize + 2 + 1500);
    packets.erase(packets.begin() + static_cast<std::ptrdiff_t>(lost));
    FecDecoder dec;
    std::vector<std::string> got = feed(dec, packets);
    ASSERT_EQ(got.size(), sizes.size());
    EXPECT_EQ(got.back(), src[lost]);
  }
  // Longer than max_datagram_size: sent unprotected.
  FecEncoder enc(fixed(2, 1));
  const std::string big = make_datagram(9, 1501);
  enc.push(kT0, ByteView(big));
  std::vector<std::string> out = drain(enc);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], big);
  EXPECT_EQ(enc.stats().too_long, 1u);
}

TEST(FecTest, APartialBlockIsFlushedAfterTheDelayAndStillRepairs) {
  FecEncoderOptions o = fixed(8, 4);
  o.flush_delay = 3ms;
  FecEncoder enc(o);
  EXPECT_EQ(enc.next_timeout(), kNever);
  std::vector<std::string> src = {make_datagram(1, 100), make_datagram(2, 200), make_datagram(3, 50)};
  enc.push(kT0, ByteView(src[0]));
  enc.push(kT0 + 1ms, ByteView(src[1]));
  enc.push(kT0 + 2ms, ByteView(src[2]));
  EXPECT_EQ(enc.next_timeout(), kT0 + 3ms);
  enc.on_timeout(kT0 + 2ms);  // early: nothing
  EXPECT_EQ(drain(enc).size(), 3u);
  enc.on_timeout(kT0 + 3ms);
  std::vector<std::string> repairs = drain(enc);
  // m x 3 / 8 rounded up: 2 repairs, each saying k = 3.
  ASSERT_EQ(repairs.size(), 2u);
  EXPECT_EQ(repairs[0][6], 3);
  EXPECT_EQ(repairs[0][7], 2);
  EXPECT_EQ(enc.next_timeout(), kNever);
  EXPECT_EQ(enc.stats().blocks_flushed, 1u);

  // Sources 0 and 2 lost: both rebuilt from the two repairs.
  FecEncoder enc2(o);
  for (const auto& s : src) enc2.push(kT0, ByteView(s));
  enc2.on_timeout(kT0 + 3ms);
  std::vector<std::string> all = drain(enc2);
  ASSERT_EQ(all.size(), 5u);
  FecDecoder dec2;
  std::vector<std::string> got = feed(dec2, {all[1], all[3], all[4]});
  std::sort(got.begin(), got.end());
  std::sort(src.begin(), src.end());
  EXPECT_EQ(got, src);
}

TEST(FecTest, DatagramsPassThroughWhenFecIsOff) {
  FecEncoder enc;  // disabled by default
  const std::string d = "\x40 a protected packet";
  enc.push(kT0, ByteView(d));
  std::vector<std::string> out = drain(enc);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], d);
  EXPECT_EQ(enc.next_timeout(), kNever);
  FecDecoder dec;
  ByteView v(d);
  EXPECT_EQ(dec.on_datagram(kT0, v).data(), v.data());  // the same bytes, not a copy
  EXPECT_EQ(dec.stats().passthrough, 1u);
  // Turning FEC off mid-block sends the block's repairs first (ceil(4 x 2 / 4) = 2 for two
  // sources of a (4, 4) block).
  FecEncoder on(fixed(4, 4));
  on.push(kT0, ByteView(d));
  on.push(kT0, ByteView(d));
  on.set_enabled(kT0, false);
  on.push(kT0, ByteView(d));
  out = drain(on);
  ASSERT_EQ(out.size(), 5u);
  EXPECT_EQ(static_cast<std::uint8_t>(out[0][0]), kFecSourceType);
  EXPECT_EQ(static_cast<std::uint8_t>(out[1][0]), kFecSourceType);
  EXPECT_EQ(static_cast<std::uint8_t>(out[2][0]), kFecRepairType);
  EXPECT_EQ(static_cast<std::uint8_t>(out[3][0]), kFecRepairType);
  EXPECT_EQ(out[4], d);
}

TEST(FecTest, MalformedPacketsAreDroppedAndCounted) {
  FecDecoder dec;
  const std::vector<std::string> bad = {
      std::string("\x60", 1),                                   // no header
      std::string("\x60\0\0\0\0\0", 6),                         // no payload
      std::string("\x60\0\0\0\0\x30x", 7),                      // source index 48
      std::string("\x61\0\0\0\0\0\x01\x01", 8),                 // no parity
      std::string("\x61\0\0\0\0\0\x00\x01xyz", 11),             // k = 0
      std::string("\x61\0\0\0\0\0\x31\x01xyz", 11),             // k = 49
      std::string("\x61\0\0\0\0\0\x01\x00xyz", 11),             // m = 0
      std::string("\x61\0\0\0\0\0\x01\x11xyz", 11),             // m = 17
      std::string("\x61\0\0\0\0\x02\x01\x02xyz", 11),           // r >= m
      std::string("\x61\0\0\0\0", 5),
  };
  for (const auto& b : bad) {
    EXPECT_TRUE(dec.on_datagram(kT0, ByteView(b)).empty());
    EXPECT_FALSE(dec.poll_recovered());
  }
  EXPECT_EQ(dec.stats().malformed, bad.size());
  EXPECT_EQ(dec.blocks(), 0u);

  // Repairs that disagree with the first repair of their block are dropped.
  FecEncoder enc(fixed(2, 2));
  enc.push(kT0, ByteView(make_datagram(1, 10)));
  enc.push(kT0, ByteView(make_datagram(2, 20)));
  std::vector<std::string> p = drain(enc);
  std::string longer = p[3] + "z";
  FecDecoder dec2;
  feed(dec2, {p[2], longer});
  EXPECT_EQ(dec2.stats().malformed, 1u);
  // A repair whose bytes were damaged rebuilds garbage at worst, which the connection's AEAD
  // rejects; a length that does not fit is caught here and nothing is delivered.
  std::string damaged = p[2];
  damaged[kFecRepairHeaderSize] = static_cast<char>(damaged[kFecRepairHeaderSize] ^ 0x7F);
  FecDecoder dec3;
  std::vector<std::string> got = feed(dec3, {p[1], damaged});
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], make_datagram(2, 20));
  EXPECT_EQ(dec3.stats().recovered, 0u);
  EXPECT_EQ(dec3.stats().malformed, 1u);
}

TEST(FecTest, BlocksAndBufferedBytesStayWithinTheirLimits) {
  FecDecoderOptions o;
  o.max_blocks = 4;
  o.max_buffered_bytes = 20000;
  o.block_lifetime = 10s;
  FecDecoder dec(o);
  FecEncoder enc(fixed(8, 2));
  std::size_t delivered = 0;
  for (std::uint32_t i = 0; i < 800; ++i) {
    const std::string d = make_datagram(i, 1200);
    enc.push(kT0, ByteView(d));
    while (auto p = enc.poll_transmit()) {
      // Every block loses its first source and both repairs: nothing can ever be rebuilt, so
      // blocks stay open until the limits push them out.
      const std::uint8_t type = (*p)[0];
      if (type == kFecRepairType || (*p)[5] == 0) continue;
      if (!dec.on_datagram(kT0 + std::chrono::milliseconds(i), *p).empty()) ++delivered;
      ASSERT_LE(dec.blocks(), o.max_blocks);
      ASSERT_LE(dec.buffered_bytes(), o.max_buffered_bytes);
    }
  }
  EXPECT_EQ(delivered, 700u);
  EXPECT_GT(dec.stats().blocks_evicted, 50u);
  EXPECT_LE(dec.next_timeout(), kT0 + 799ms + o.block_lifetime);
  dec.on_timeout(kT0 + 1h);
  EXPECT_EQ(dec.blocks(), 0u);
  EXPECT_EQ(dec.buffered_bytes(), 0u);
  EXPECT_EQ(dec.next_timeout(), kNever);
}

TEST(FecTest, VeryOldRepairsCreateNoState) {
  FecEncoder enc(fixed(1, 1));
  std::vector<std::vector<std::string>> blocks;
  for (std::uint32_t i = 0; i < 100; ++i) {
    enc.push(kT0, ByteView(make_datagram(i, 50)));
    blocks.push_back(drain(enc));
  }
  FecDecoder dec;
  for (std::size_t i = 50; i < 100; ++i) feed(dec, {blocks[i][0]});
  const std::size_t before = dec.blocks();
  // Block 0 is 99 ids behind the newest: its repair is refused, its source passes through.
  EXPECT_TRUE(dec.on_datagram(kT0, ByteView(blocks[0][1])).empty());
  EXPECT_EQ(dec.stats().too_old, 1u);
  EXPECT_EQ(dec.on_datagram(kT0, ByteView(blocks[0][0])).to_string(), make_datagram(0, 50));
  EXPECT_EQ(dec.blocks(), before);
}

TEST(FecTest, PolicyFollowsTheLossEstimateWithHysteresis) {
  FecPolicy p;
  EXPECT_FALSE(p.ratio().active());
  p.set_loss_estimate(0.005);
  EXPECT_EQ(p.level(), -1);
  p.set_loss_estimate(0.01);
  EXPECT_EQ(p.ratio(), (FecRatio{16, 2}));
  p.set_loss_estimate(0.10);
  EXPECT_EQ(p.ratio(), (FecRatio{8, 4}));
  // Just below the 7% boundary: stays (hysteresis), until below 0.7 x 7%.
  p.set_loss_estimate(0.06);
  EXPECT_EQ(p.ratio(), (FecRatio{8, 4}));
  p.set_loss_estimate(0.045);
  EXPECT_EQ(p.ratio(), (FecRatio{10, 3}));
  p.set_loss_estimate(0.5);
  EXPECT_EQ(p.ratio(), (FecRatio{4, 8}));
  p.set_loss_estimate(0.22);  // above 0.7 x 30%: stays
  EXPECT_EQ(p.ratio(), (FecRatio{4, 8}));
  p.set_loss_estimate(0.2);
  EXPECT_EQ(p.ratio(), (FecRatio{6, 6}));
  p.set_loss_estimate(0.008);
  EXPECT_EQ(p.ratio(), (FecRatio{16, 2}));
  p.set_loss_estimate(0.006);
  EXPECT_FALSE(p.ratio().active());
  p.set_loss_estimate(std::nan(""));
  EXPECT_FALSE(p.ratio().active());
  p.set_loss_estimate(7.0);  // clamped
  EXPECT_EQ(p.ratio(), (FecRatio{4, 8}));
  EXPECT_EQ(p.max_block_packets(), 18u);

  FecPolicyOptions bad;
  bad.levels = {{0.05, 8, 2}, {0.02, 4, 2}};
  EXPECT_FALSE(FecPolicy::validate(bad).is_ok());
  bad.levels = {{0.05, 49, 2}};
  EXPECT_FALSE(FecPolicy::validate(bad).is_ok());
  bad.levels = {{0.05, 8, 0}};
  EXPECT_FALSE(FecPolicy::validate(bad).is_ok());
  EXPECT_TRUE(FecPolicy::validate(FecPolicyOptions{}).is_ok());
}

TEST(FecTest, AdaptiveEncoderChangesRatioAtABlockBoundary) {
  FecEncoderOptions o;
  o.enabled = true;
  FecEncoder enc(o);
  const std::string d = make_datagram(1, 100);
  enc.push(kT0, ByteView(d));
  EXPECT_EQ(drain(enc), std::vector<std::string>{d});  // no loss measured: off
  enc.set_loss_estimate(0.10);
  EXPECT_EQ(enc.ratio(), (FecRatio{8, 4}));
  for (int i = 0; i < 8; ++i) enc.push(kT0, ByteView(d));
  EXPECT_EQ(drain(enc).size(), 12u);
  for (int i = 0; i < 4; ++i) enc.push(kT0, ByteView(d));
  // The open block of 4 closes early. At 20% loss a full block of (8, 4) is beyond repair with a
  // chance of 7.3%; 4 sources with 2 repairs would be with 9.9%, with 3 repairs 3.3%: 3 repairs
  // (more than the proportional ceil(4 x 4 / 8) = 2).
  enc.set_loss_estimate(0.20);
  enc.push(kT0, ByteView(d));
  std::vector<std::string> out = drain(enc);
  ASSERT_EQ(out.size(), 8u);
  EXPECT_EQ(out[4][6], 4);
  EXPECT_EQ(out[4][7], 3);
  EXPECT_EQ(static_cast<std::uint8_t>(out[7][0]), kFecSourceType);
  EXPECT_EQ(enc.stats().blocks, 2u);
}

TEST(FecTest, AnEarlyClosedBlockGetsNoMoreRepairsPerSourceThanTheCap) {
  FecEncoderOptions o;
  o.enabled = true;
  o.max_repair_ratio = 1.0;
  o.flush_delay = std::chrono::milliseconds(2);
  FecEncoder enc(o);
  enc.set_loss_estimate(0.20);  // (6, 6)
  const std::string d = make_datagram(1, 100);
  enc.push(kT0, ByteView(d));
  enc.on_timeout(kT0 + std::chrono::milliseconds(2));
  std::vector<std::string> out = drain(enc);
  ASSERT_EQ(out.size(), 2u);  // one source, one repair (the loss alone would ask for two)
  EXPECT_EQ(static_cast<std::uint8_t>(out[1][0]), kFecRepairType);
  EXPECT_EQ(out[1][7], 1);
}

// A block closed early sends fewer repairs than it accumulated parity rows for; the rows it did
// not send must not leak into the next block's repairs.
TEST(FecTest, RepairsOfABlockAfterAnEarlyClosedOneRebuildItsSources) {
  FecEncoderOptions o;
  o.enabled = true;
  o.adaptive = false;
  o.ratio = {4, 4};
  o.flush_delay = std::chrono::milliseconds(2);
  FecEncoder enc(o);
  const std::string a = make_datagram(1, 300), b = make_datagram(2, 200), c = make_datagram(3, 250);
  enc.push(kT0, ByteView(a));
  enc.on_timeout(kT0 + std::chrono::milliseconds(2));  // 1 source, 1 repair of 4 rows
  for (int i = 0; i < 4; ++i) enc.push(kT0, ByteView(i % 2 ? b : c));  // a full block, 4 repairs
  std::vector<std::string> out = drain(enc);
  ASSERT_EQ(out.size(), 2u + 8u);
  // Lose the full block's first three sources: repairs 1-3 rebuild them (row 0 would too).
  FecDecoder dec;
  std::vector<std::string> got;
  for (std::size_t i = 2; i < out.size(); ++i) {
    if (i >= 2 && i < 5) continue;
    if (i == 6) continue;  // repair 0
    ByteView v = dec.on_datagram(kT0, ByteView(out[i]));
    if (!v.empty()) got.emplace_back(reinterpret_cast<const char*>(v.data()), v.size());
    while (auto r = dec.poll_recovered()) got.emplace_back(reinterpret_cast<const char*>(r->data()), r->size());
  }
  EXPECT_EQ(dec.stats().malformed, 0u);
  ASSERT_EQ(got.size(), 4u);
  std::sort(got.begin(), got.end());
  std::vector<std::string> want = {c, b, c, b};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(got, want);
}

TEST(FecTest, DecoderMeasuresTheLossOfFecPackets) {
  FecEncoder enc(fixed(8, 2));
  FecDecoder dec;
  const std::string d = make_datagram(1, 100);
  std::size_t i = 0;
  for (int n = 0; n < 8 * 200; ++n) {
    enc.push(kT0, ByteView(d));
    while (auto p = enc.poll_transmit()) {
      if (i++ % 10 == 3) continue;  // every tenth packet
      (void)dec.on_datagram(kT0, *p);
      while (dec.poll_recovered()) {
      }
    }
  }
  EXPECT_NEAR(dec.loss_estimate(), 0.10, 0.02);
  EXPECT_EQ(dec.stats().recovered, 200u);  // source 3 of every block
}

}  // namespace
}  // namespace slip::transport::udp
