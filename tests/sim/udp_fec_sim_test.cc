// Forward error correction between two reliable-UDP connections on the deterministic simulator:
// each side's datagrams go through a FecEncoder before the link and a FecDecoder after it (the
// adapter a socket layer would be), and the same seeds run with FEC off and on.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "net_sim.h"
#include "transport/udp/connection.h"
#include "transport/udp/fec.h"
#include "transport/udp/protector.h"

namespace slip::transport::udp {
namespace {

using namespace std::chrono_literals;
using sim::Link;
using sim::LinkOptions;
using sim::Rng;

std::uint64_t env_or(const char* name, std::uint64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 10) : fallback;
}
// Seeds per setting: SLIP_SIM_SEEDS (default 20), from SLIP_SIM_SEED_BASE (default 1).
std::uint64_t seed_count() { return env_or("SLIP_SIM_SEEDS", 20); }
std::uint64_t seed_base() { return env_or("SLIP_SIM_SEED_BASE", 1); }

// A connection with FEC filters on its datagrams.
struct Endpoint {
  Endpoint(const ConnectionOptions& co, const FecEncoderOptions& eo, Instant now)
      : conn(co, &protector, now), enc(eo) {}
  ChecksumProtector protector;
  Connection conn;
  FecEncoder enc;
  FecDecoder dec;
};

// Like sim::Network, with the FEC filters between each connection and its links.
class FecNetwork {
 public:
  FecNetwork(const LinkOptions& link, std::uint64_t seed, Endpoint& a, Endpoint& b)
      : ab_(link, seed * 2 + 1), ba_(link, seed * 2 + 2), a_(a), b_(b) {}

  Instant now() const { return now_; }
  const Link& a_to_b() const { return ab_; }

  bool run_until(const std::function<bool()>& done, Duration limit, const std::function<void()>& hook) {
    const Instant end = now_ + limit;
    for (;;) {
      step(hook);
      if (done()) return true;
      Instant t = std::max(next_event(), now_ + 1us);
      if (t > end) return false;
      now_ = t;
    }
  }

 private:
  static Instant timeout(const Endpoint& e) {
    return std::min({e.conn.next_timeout(), e.enc.next_timeout(), e.dec.next_timeout()});
  }
  Instant next_event() const {
    Instant t = std::min(timeout(a_), timeout(b_));
    if (auto d = ab_.next_delivery()) t = std::min(t, *d);
    if (auto d = ba_.next_delivery()) t = std::min(t, *d);
    return t;
  }
  void receive(Link& link, Endpoint& e) {
    std::string packet;
    while (link.pop_due(now_, packet)) {
      ByteView inner = e.dec.on_datagram(now_, ByteView(packet));
      if (!inner.empty()) e.conn.on_datagram(now_, inner);
      while (auto r = e.dec.poll_recovered()) e.conn.on_datagram(now_, *r);
    }
  }
  void timers(Endpoint& e) {
    if (e.conn.next_timeout() <= now_) e.conn.on_timeout(now_);
    if (e.dec.next_timeout() <= now_) e.dec.on_timeout(now_);
    if (e.enc.next_timeout() <= now_) e.enc.on_timeout(now_);
  }
  // The loss estimate a sender's encoder follows: the larger of its own connection's loss rate
  // and what the peer's decoder measured (which a real peer would report back).
  static void feedback(Endpoint& e, const Endpoint& peer) {
    const ConnectionStats s = e.conn.stats();
    const double own = s.packets_sent ? static_cast<double>(s.packets_lost) / static_cast<double>(s.packets_sent) : 0;
    e.enc.set_loss_estimate(std::max(own, peer.dec.loss_estimate()));
  }
  void transmit(Endpoint& e, Link& link) {
    for (int i = 0; i < 100000; ++i) {
      auto p = e.conn.poll_transmit(now_);
      if (!p) break;
      e.enc.push(now_, *p);
    }
    while (auto q = e.enc.poll_transmit()) link.send(now_, *q);
  }
  void step(const std::function<void()>& hook) {
    receive(ab_, b_);
    receive(ba_, a_);
    timers(a_);
    timers(b_);
    hook();
    feedback(a_, b_);
    feedback(b_, a_);
    transmit(a_, ab_);
    transmit(b_, ba_);
  }

  Link ab_;
  Link ba_;
  Endpoint& a_;
  Endpoint& b_;
  Instant now_ = sim::kSimStart;
};

struct RunResult {
  bool delivered = false;
  bool in_order = true;
  std::uint64_t retransmitted = 0;  // the sender's packets that carried retransmitted data
  std::uint64_t lost = 0;
  std::uint64_t recovered = 0;
  std::uint64_t wire_bytes = 0;     // sender's bytes on the link (FEC repairs included)
  double seconds = 0;
};

std::string message(std::uint64_t seed, std::uint32_t seq, std::size_t len) {
  std::string m(len, '\0');
  for (std::size_t i = 0; i < len; ++i) {
    m[i] = static_cast<char>((seed * 131) ^ (seq * 7) ^ (i * 13) ^ (i >> 8));
  }
  return m;
}

// `count` messages of 1 to 2000 bytes, each framed as u32 length + u32 sequence, from a to b
// on one stream, written as fast as the send buffer takes them.
RunResult run(std::uint64_t seed, bool fec, double loss, std::uint32_t count) {
  LinkOptions link;
  link.loss = loss;
  link.delay = 20ms;
  ConnectionOptions co;
  co.max_packet_size = 1200 - kFecMaxOverhead;  // the same packets with and without FEC
  FecEncoderOptions eo;
  eo.enabled = fec;
  eo.flush_delay = 3ms;  // under an eighth of the 40 ms RTT
  if (fec) co.recovery.packet_threshold = FecPolicy(eo.policy).max_block_packets();
  co.role = Role::kClient;
  Endpoint a(co, eo, sim::kSimStart);
  co.role = Role::kServer;
  Endpoint b(co, eo, sim::kSimStart);
  FecNetwork net(link, seed, a, b);

  Rng rng(seed * 1000 + 7);
  std::vector<std::size_t> sizes;
  for (std::uint32_t i = 0; i < count; ++i) sizes.push_back(1 + rng.below(2000));
  Result<std::uint64_t> sid = a.conn.open_stream(Priority::kStream);
  EXPECT_TRUE(sid.is_ok());
  std::uint32_t next_send = 0;
  std::string pending;  // framed bytes not yet accepted by the stream
  std::string inbox;
  std::uint32_t next_recv = 0;
  RunResult result;
  std::vector<std::uint8_t> buf(64 * 1024);

  auto hook = [&] {
    while (pending.size() < 64 * 1024 && next_send < count) {
      const std::string body = message(seed, next_send, sizes[next_send]);
      std::uint8_t hdr[8];
      for (int i = 0; i < 4; ++i) hdr[i] = static_cast<std::uint8_t>(body.size() >> (8 * i));
      for (int i = 0; i < 4; ++i) hdr[4 + i] = static_cast<std::uint8_t>(next_send >> (8 * i));
      pending.append(reinterpret_cast<const char*>(hdr), 8);
      pending.append(body);
      ++next_send;
    }
    if (!pending.empty()) {
      const std::size_t n = std::min(pending.size(), a.conn.send_capacity(*sid));
      if (n > 0 && a.conn.send(*sid, ByteView(pending.data(), n), false).is_ok()) pending.erase(0, n);
    }
    while (a.conn.poll_event()) {
    }
    while (b.conn.poll_event()) {
    }
    for (;;) {
      bool fin = false;
      Result<std::size_t> r = b.conn.read(0, buf, fin);
      if (!r.is_ok() || *r == 0) break;
      inbox.append(reinterpret_cast<const char*>(buf.data()), *r);
    }
    while (inbox.size() >= 8) {
      std::uint32_t len = 0, seq = 0;
      for (int i = 0; i < 4; ++i) len |= static_cast<std::uint32_t>(static_cast<std::uint8_t>(inbox[i])) << (8 * i);
      for (int i = 0; i < 4; ++i) seq |= static_cast<std::uint32_t>(static_cast<std::uint8_t>(inbox[4 + i])) << (8 * i);
      if (inbox.size() < 8 + len) break;
      if (seq != next_recv || inbox.compare(8, len, message(seed, seq, len)) != 0) result.in_order = false;
      ++next_recv;
      inbox.erase(0, 8 + len);
    }
  };
  result.delivered = net.run_until([&] { return next_recv == count; }, 600s, hook);
  const ConnectionStats s = a.conn.stats();
  result.retransmitted = s.packets_retransmitted;
  result.lost = s.packets_lost;
  result.recovered = b.dec.stats().recovered;
  result.wire_bytes = a.enc.stats().bytes_out;
  result.seconds = std::chrono::duration<double>(net.now() - sim::kSimStart).count();
  EXPECT_EQ(next_recv, count);
  return result;
}

TEST(UdpFecSimTest, FecHalvesRetransmissionsAtTenPercentLossAndDeliversEverythingOnceInOrder) {
  const std::uint64_t seeds = seed_count();
  RunResult plain_sum, fec_sum;
  for (std::uint64_t seed = seed_base(); seed < seed_base() + seeds; ++seed) {
    RunResult plain = run(seed, false, 0.10, 300);
    RunResult fec = run(seed, true, 0.10, 300);
    ASSERT_TRUE(plain.delivered && plain.in_order) << "seed " << seed;
    ASSERT_TRUE(fec.delivered && fec.in_order) << "seed " << seed;
    EXPECT_GT(fec.recovered, 0u) << "seed " << seed;
    plain_sum.retransmitted += plain.retransmitted;
    fec_sum.retransmitted += fec.retransmitted;
    plain_sum.lost += plain.lost;
    fec_sum.lost += fec.lost;
    fec_sum.recovered += fec.recovered;
    plain_sum.wire_bytes += plain.wire_bytes;
    fec_sum.wire_bytes += fec.wire_bytes;
    plain_sum.seconds += plain.seconds;
    fec_sum.seconds += fec.seconds;
  }
  std::printf("10%% loss both ways, 40 ms RTT, 300 messages, %llu seeds: retransmitted packets %llu without FEC, %llu "
              "with (%.1f%%); declared lost %llu vs %llu; rebuilt by FEC %llu; sender bytes x%.2f; virtual time "
              "%.2f s vs %.2f s\n",
              static_cast<unsigned long long>(seeds), static_cast<unsigned long long>(plain_sum.retransmitted),
              static_cast<unsigned long long>(fec_sum.retransmitted),
              100.0 * static_cast<double>(fec_sum.retransmitted) / static_cast<double>(plain_sum.retransmitted),
              static_cast<unsigned long long>(plain_sum.lost), static_cast<unsigned long long>(fec_sum.lost),
              static_cast<unsigned long long>(fec_sum.recovered),
              static_cast<double>(fec_sum.wire_bytes) / static_cast<double>(plain_sum.wire_bytes), plain_sum.seconds,
              fec_sum.seconds);
  EXPECT_GT(plain_sum.retransmitted, 0u);
  EXPECT_LT(fec_sum.retransmitted * 2, plain_sum.retransmitted);
}

TEST(UdpFecSimTest, WithoutLossFecStaysOffAndChangesNothing) {
  RunResult plain = run(3, false, 0.0, 200);
  RunResult fec = run(3, true, 0.0, 200);
  ASSERT_TRUE(plain.delivered && plain.in_order);
  ASSERT_TRUE(fec.delivered && fec.in_order);
  EXPECT_EQ(fec.wire_bytes, plain.wire_bytes);  // the policy never turned FEC on
  EXPECT_EQ(fec.retransmitted, 0u);
}

}  // namespace
}  // namespace slip::transport::udp
