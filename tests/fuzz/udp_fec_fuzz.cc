// libFuzzer target: the forward error correction decoder (src/transport/udp/fec.h).
//
// Input layout: byte 0 selects the mode (low bit), the rest is the mode's input.
//   0  raw datagrams into a decoder with small limits: [max_blocks u8][max_bytes u16] then
//      records [time step u8][length u16][bytes]. Checks: the block and byte limits hold after
//      every call; a handed-on datagram is the input itself (not FEC) or lies inside it; rebuilt
//      datagrams are never longer than the limit; expiry empties the decoder.
//   1  a genuine block, then damaged: [k u8][m u8][loss mask u64][mutation count u8]
//      [(packet u8, offset u16, xor u8) * count] then the sources as [length u16][bytes].
//      Checks: undamaged with at most m losses, every source arrives exactly once, byte-exact;
//      undamaged with more, only sources that arrived, each once.
//   2  (byte 0 == 2) the connection's FEC filter (fec_filter.h): [k u8][m u8] then records
//      [kind/time u8][length u16][bytes]; kind bit 7 set: a datagram the connection sends (its
//      first byte forced to a protected packet's), else one from the socket. Checks: what reaches
//      the connection is non-empty and within the size limit; everything sent to the wire keeps
//      the routing bytes (fixed bit set, long-header bit clear, the peer's connection id).
#include <algorithm>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "transport/udp/fec.h"
#include "transport/udp/fec_filter.h"
#include "udp_fuzz_input.h"

namespace {

using namespace slip;
using namespace slip::transport::udp;
using fuzz::fail;
using fuzz::Input;

constexpr const char* kName = "udp_fec_fuzz";
constexpr Instant kT0 = Instant(std::chrono::hours(1000));

void raw_datagrams(Input& in) {
  FecDecoderOptions o;
  o.max_blocks = 1 + in.u8() % 16;
  o.max_buffered_bytes = 1 + in.u16() * 4;
  o.block_lifetime = std::chrono::milliseconds(100);
  FecDecoder dec(o);
  Instant now = kT0;
  const ByteView records = in.rest();
  std::size_t pos = 0;
  while (pos + 3 <= records.size()) {
    now += std::chrono::milliseconds(records[pos]);
    const std::size_t want = (records[pos + 1] | static_cast<std::size_t>(records[pos + 2]) << 8) % 1600;
    pos += 3;
    const std::size_t n = std::min(want, records.size() - pos);
    // A copy, so reads past the datagram are caught by the sanitizer.
    const std::vector<std::uint8_t> copy(records.data() + pos, records.data() + pos + n);
    pos += n;
    const ByteView d(copy.data(), copy.size());
    if (dec.next_timeout() <= now) dec.on_timeout(now);
    const ByteView out = dec.on_datagram(now, d);
    if (!out.empty() && !(out.data() >= d.data() && out.data() + out.size() <= d.data() + d.size())) {
      fail(kName, "handed-on datagram outside the input");
    }
    if (!d.empty() && d[0] != kFecSourceType && d[0] != kFecRepairType && !(out == d)) {
      fail(kName, "a non-FEC datagram was changed");
    }
    while (auto r = dec.poll_recovered()) {
      if (r->empty() || r->size() > o.max_datagram_size) fail(kName, "rebuilt datagram of a bad size");
    }
    if (dec.blocks() > o.max_blocks) fail(kName, "block limit exceeded");
    if (dec.buffered_bytes() > o.max_buffered_bytes) fail(kName, "byte limit exceeded");
  }
  dec.on_timeout(now + std::chrono::hours(1));
  if (dec.blocks() != 0 || dec.buffered_bytes() != 0) fail(kName, "expiry left state behind");
}

void genuine_block(Input& in) {
  const auto k = static_cast<std::uint8_t>(1 + in.u8() % kFecMaxSources);
  const auto m = static_cast<std::uint8_t>(1 + in.u8() % kFecMaxRepairs);
  const std::uint64_t lost = in.u64();
  struct Mutation {
    std::size_t packet, offset;
    std::uint8_t x;
  };
  std::vector<Mutation> mutations(in.u8() % 8);
  for (auto& mu : mutations) mu = {in.u8(), in.u16(), in.u8()};
  std::vector<std::string> src;
  for (std::size_t i = 0; i < k; ++i) {
    const ByteView b = in.bytes(in.u16() % 1501);
    std::string s = b.to_string();
    if (s.empty()) s = std::string(1 + i % 7, static_cast<char>(i));
    src.push_back(std::move(s));
  }
  FecEncoderOptions eo;
  eo.enabled = true;
  eo.adaptive = false;
  eo.ratio = {k, m};
  FecEncoder enc(eo);
  std::vector<std::string> packets;
  for (const auto& s : src) {
    enc.push(kT0, ByteView(s));
    while (auto p = enc.poll_transmit()) packets.push_back(p->to_string());
  }
  if (packets.size() != static_cast<std::size_t>(k + m)) fail(kName, "block of the wrong size");
  bool damaged = false;
  for (const auto& mu : mutations) {
    std::string& p = packets[mu.packet % packets.size()];
    if (mu.x != 0) {
      p[mu.offset % p.size()] = static_cast<char>(p[mu.offset % p.size()] ^ mu.x);
      damaged = true;
    }
  }
  FecDecoder dec;
  std::map<std::string, int> got;
  std::size_t lost_count = 0, lost_sources = 0;
  for (std::size_t i = 0; i < packets.size(); ++i) {
    if (lost & (std::uint64_t{1} << i)) {
      ++lost_count;
      if (i < k) ++lost_sources;
      continue;
    }
    const ByteView out = dec.on_datagram(kT0, ByteView(packets[i]));
    if (!out.empty()) ++got[out.to_string()];
    while (auto r = dec.poll_recovered()) ++got[r->to_string()];
  }
  if (damaged) return;
  std::map<std::string, int> want;
  for (std::size_t i = 0; i < k; ++i) {
    if (lost_count <= m || !(lost & (std::uint64_t{1} << i))) ++want[src[i]];
  }
  if (got != want) fail(kName, "delivered sources differ", std::to_string(lost_count));
}

}  // namespace

struct CheckedConnection final : DatagramSink {
  std::size_t limit = 0;
  void deliver(ByteView d) override {
    if (d.empty() || d.size() > limit) fail(kName, "filter handed the connection a datagram of a bad size");
  }
};

struct CheckedWire final : DatagramSink {
  const std::uint8_t* cid = nullptr;  // the peer's connection id, once known
  void deliver(ByteView d) override {
    if (d.size() < 1 + kConnectionIdLen || (d[0] & 0xC0) != 0x40) fail(kName, "wire datagram without routing bytes");
    if (cid != nullptr && !std::equal(cid, cid + kConnectionIdLen, d.data() + 1)) {
      fail(kName, "wire datagram for another connection id");
    }
  }
};

void filter_records(Input& in) {
  FecOptions o;
  const std::uint8_t k = in.u8();
  const std::uint8_t m = in.u8();
  if (k % 4 == 0) {
    o.enabled = true;  // adaptive
  } else {
    o.enabled = true;
    o.adaptive = false;
    o.ratio = {static_cast<std::uint8_t>(1 + k % kFecMaxSources), static_cast<std::uint8_t>(1 + m % kFecMaxRepairs)};
  }
  o.decoder.max_blocks = 1 + m % 8;
  o.decoder.max_buffered_bytes = 64 * 1024;
  Instant now = kT0;
  std::uint64_t sent = 0, lost = 0;
  FecFilter f(o, [&now] { return now; }, [&] { return std::pair<std::uint64_t, std::uint64_t>(sent, lost); });
  CheckedConnection conn;
  conn.limit = o.decoder.max_datagram_size;
  CheckedWire wire;
  std::uint8_t cid[kConnectionIdLen] = {};
  const ByteView records = in.rest();
  std::size_t pos = 0;
  while (pos + 3 <= records.size()) {
    const std::uint8_t kind = records[pos];
    now += std::chrono::milliseconds(kind & 0x3f);
    const std::size_t want = (records[pos + 1] | static_cast<std::size_t>(records[pos + 2]) << 8) % 1600;
    pos += 3;
    const std::size_t n = std::min(want, records.size() - pos);
    std::vector<std::uint8_t> copy(records.data() + pos, records.data() + pos + n);
    pos += n;
    if (f.next_timeout() <= now) f.on_timeout(now, wire);
    if (kind & 0x80) {
      if (copy.size() < 1 + kConnectionIdLen + 4) continue;
      copy[0] = static_cast<std::uint8_t>(0x40 | (copy[0] & 0x07));
      std::memcpy(cid, copy.data() + 1, kConnectionIdLen);
      wire.cid = cid;
      sent += 1;
      lost += kind & 1;
      f.outgoing(ByteView(copy.data(), copy.size()), wire);
    } else if (copy.size() <= conn.limit) {  // as the socket does: longer datagrams never arrive
      f.incoming(ByteView(copy.data(), copy.size()), conn);
    }
    if (f.decoder().blocks() > o.decoder.max_blocks) fail(kName, "filter: block limit exceeded");
    if (f.ratio().m > kFecMaxRepairs || f.ratio().k > kFecMaxSources) fail(kName, "filter: ratio out of range");
  }
  now += std::chrono::seconds(5);
  f.on_timeout(now, wire);
  f.on_timeout(now + std::chrono::seconds(5), wire);
  if (f.decoder().blocks() != 0) fail(kName, "filter: blocks left after expiry");
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Input in(ByteView(data, size));
  const std::uint8_t mode = in.u8();
  if (mode == 2) {
    filter_records(in);
  } else if ((mode & 1) == 0) {
    raw_datagrams(in);
  } else {
    genuine_block(in);
  }
  return 0;
}
