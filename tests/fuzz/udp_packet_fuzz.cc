// libFuzzer target: the reliable UDP transport's packet layer (src/transport/udp/crypto.h,
// handshake.h packet parsers, replay.h).
//
// Input layout: byte 0 selects the mode (low 2 bits), the rest is the mode's input.
//   0  a raw datagram: classified, parsed by every parser, opened by a PacketProtection.
//      Checks: a packet that parses re-encodes to the same bytes; nothing opens (no one can
//      forge a tag without the key).
//   1  a genuine protected packet, then mutated: [pn u64][ack gap u32][mutations][payload].
//      Checks: unmutated, it opens to the payload and then is a duplicate; mutated, it never
//      opens.
//   2  packet number truncation: [pn u64][ack gap u32][received gap u32][expected u64]
//      [truncated u32][bits u8]. Checks: what the sender truncates, the receiver recovers;
//      any decode keeps the truncated bits and stays within half a window of the expectation.
//   3  replay window against a set model: [size u8] then steps of [kind u8][delta u16].
#include <algorithm>
#include <cstring>
#include <optional>
#include <set>
#include <string>

#include "transport/udp/crypto.h"
#include "transport/udp/handshake.h"
#include "transport/udp/replay.h"
#include "udp_fuzz_input.h"

namespace {

using namespace slip;
using namespace slip::transport::udp;
using fuzz::fail;
using fuzz::Input;

constexpr const char* kName = "udp_packet_fuzz";

CipherKey key_of(std::uint8_t b) {
  CipherKey k;
  k.fill(b);
  return k;
}

void raw(ByteView d) {
  (void)classify_packet(d);
  if (Result<InitialPacket> p = parse_initial(d); p.is_ok()) {
    std::vector<std::uint8_t> again;
    encode_initial(*p, d.size(), again);
    if (ByteView(again.data(), again.size()) != d) fail(kName, "initial does not re-encode to itself");
  }
  if (Result<ResponsePacket> p = parse_response(d); p.is_ok()) {
    std::vector<std::uint8_t> again;
    encode_response(*p, again);
    if (ByteView(again.data(), again.size()) != d) fail(kName, "response does not re-encode to itself");
  }
  if (Result<RetryPacket> p = parse_retry(d); p.is_ok()) {
    if (p->tagged.size() + kRetryTagLen != d.size()) fail(kName, "retry tag is not the last 16 bytes");
    (void)verify_retry_tag(*p, PublicKey{}, ByteView());
  }
  if (Result<ShortHeader> h = parse_short_header(d); h.is_ok()) {
    if (h->header_len + kTagLen > d.size()) fail(kName, "short header accepted without room for the tag");
  }
  PacketProtection p(key_of(1), key_of(2));
  std::vector<std::uint8_t> out(d.size());
  if (p.open_packet(d, out).is_ok()) fail(kName, "a raw datagram opened");
}

void sealed_then_mutated(Input& in) {
  const std::uint64_t pn = in.u64() % (kMaxPacketNumber + 1);
  const std::uint64_t gap = 1 + in.u32() % (1u << 30);
  const std::optional<std::uint64_t> acked = pn >= gap ? std::optional<std::uint64_t>(pn - gap) : std::nullopt;
  Input mi(in.bytes(1 + 8 * 3 + 1));
  const ByteView payload = in.rest();

  PacketProtection a(key_of(1), key_of(2)), b(key_of(2), key_of(1));
  const ConnectionId cid = {1, 2, 3, 4, 5, 6, 7, 8};
  std::vector<std::uint8_t> buf(payload.size() + kMaxShortHeaderLen + kTagLen);
  // The receiver has authenticated `acked`, what the sender's truncation assumes.
  if (acked) b.mark_received_for_test(*acked);
  Result<std::size_t> n = a.seal_packet(cid, pn, acked, payload, buf);
  if (!n.is_ok()) return;  // too many unacknowledged to truncate: refused, fine
  std::vector<std::uint8_t> pkt(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(*n));
  const bool changed = fuzz::mutate(mi, pkt);
  std::vector<std::uint8_t> out(pkt.size());
  Result<OpenedPacket> r = b.open_packet(ByteView(pkt.data(), pkt.size()), out);
  if (changed) {
    if (r.is_ok()) fail(kName, "a mutated packet opened");
    return;
  }
  if (!r.is_ok()) fail(kName, "a genuine packet did not open", r.status().to_string());
  if (r->pn != pn) fail(kName, "recovered another packet number");
  if (ByteView(out.data(), r->payload_len) != payload) fail(kName, "payload changed");
  Result<OpenedPacket> again = b.open_packet(ByteView(pkt.data(), pkt.size()), out);
  if (again.is_ok() || again.status().code() != StatusCode::kAlreadyExists) fail(kName, "replay not refused");
}

void packet_numbers(Input& in) {
  const std::uint64_t pn = in.u64() % (kMaxPacketNumber + 1);
  const std::uint64_t gap = 1 + static_cast<std::uint64_t>(in.u32());
  const std::uint64_t recv_gap = in.u32();
  if (pn >= gap) {
    const std::uint64_t acked = pn - gap;
    const std::size_t len = packet_number_length(pn, acked);
    if (len != 0) {
      const std::uint64_t received = acked + recv_gap % gap;  // in [acked, pn - 1]
      const auto bits = static_cast<unsigned>(8 * len);
      const std::uint64_t got = decode_packet_number(received + 1, pn & ((1ull << bits) - 1), bits);
      if (got != pn) fail(kName, "truncated packet number not recovered", std::to_string(pn));
    }
  }
  const std::uint64_t expected = in.u64() % (kMaxPacketNumber + 2);
  const std::uint32_t truncated = in.u32();
  const unsigned bits = 8u * (1u + in.u8() % 4u);
  const std::uint64_t mask = (1ull << bits) - 1;
  const std::uint64_t got = decode_packet_number(expected, truncated, bits);
  if ((got & mask) != (truncated & mask)) fail(kName, "decode changed the truncated bits");
  const std::uint64_t hwin = 1ull << (bits - 1);
  const std::uint64_t win = 1ull << bits;
  // Away from 0 and 2^62 the result is the one candidate within half a window.
  if (expected >= win && expected + win < (1ull << 62)) {
    if (got + hwin < expected || got > expected + hwin) fail(kName, "decode outside half a window");
  }
}

void replay(Input& in) {
  const std::size_t size = 64 * (1 + in.u8() % 4);
  ReplayWindow w(size);
  std::set<std::uint64_t> seen;
  std::uint64_t top = 0;
  for (int step = 0; step < 4096; ++step) {
    const std::uint8_t kind = in.u8();
    const std::uint16_t delta = in.u16();
    if (kind == 0 && delta == 0 && step > 0) break;  // input exhausted
    std::uint64_t pn;
    switch (kind % 4) {
      case 0: pn = top + delta % 8; break;
      case 1: pn = top - std::min<std::uint64_t>(top, delta % (size + 70)); break;
      case 2: pn = top + delta; break;
      default: pn = top + (static_cast<std::uint64_t>(delta) << 16); break;
    }
    ReplayVerdict want = ReplayVerdict::kFresh;
    if (!seen.empty()) {
      const std::uint64_t t = *seen.rbegin();
      if (pn <= t && t - pn >= size) {
        want = ReplayVerdict::kTooOld;
      } else if (seen.count(pn)) {
        want = ReplayVerdict::kDuplicate;
      }
    }
    const ReplayVerdict got = w.check_and_mark(pn);
    if (got != want) fail(kName, "replay window disagrees with the model", std::to_string(pn));
    if (got == ReplayVerdict::kFresh) {
      seen.insert(pn);
      top = std::max(top, pn);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  Input in(ByteView(data + 1, size - 1));
  switch (data[0] & 3) {
    case 0: raw(ByteView(data + 1, size - 1)); break;
    case 1: sealed_then_mutated(in); break;
    case 2: packet_numbers(in); break;
    case 3: replay(in); break;
  }
  return 0;
}
