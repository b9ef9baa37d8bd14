// Path MTU discovery (MtuOptions, docs/udp.md "Path MTU") on the deterministic simulator: links
// that carry datagrams up to a path MTU and drop larger ones. The connection ends at the size the
// path carries, stays at the base on a path of exactly the base, falls back when the path MTU
// drops mid-connection (and searches again later), and delivers every message exactly once and
// in order throughout; lost probes never shrink the congestion window.
//
// Every test runs in virtual time. Seeds per setting: SLIP_SIM_SEEDS (default 20); the first
// seed with SLIP_SIM_SEED_BASE (default 1).
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "net_sim.h"
#include "seeds.h"
#include "transport/udp/connection.h"
#include "transport/udp/protector.h"

namespace slip::transport::udp {
namespace {

using namespace std::chrono_literals;
using sim::seed_base;
using sim::seed_count;
using sim::LinkOptions;
using sim::Network;
using sim::Rng;

// One direction's messages on one stream: u32 length, u32 sequence, then bytes derived from the
// seed; the receiver checks each arrives once, in order, intact.
class Flow {
 public:
  Flow(Connection& from, Connection& to, std::uint64_t seed, std::uint32_t count)
      : from_(from), to_(to), seed_(seed), count_(count), rng_(seed * 31 + 3) {
    Result<std::uint64_t> id = from_.open_stream(Priority::kStream);
    EXPECT_TRUE(id.is_ok());
    id_ = id.is_ok() ? *id : 0;
  }

  void step() {
    while (pending_.size() < 64 * 1024 && next_send_ < count_) {
      const std::size_t len = 1 + rng_.below(3000);
      append_u32(pending_, static_cast<std::uint32_t>(len));
      append_u32(pending_, next_send_);
      for (std::size_t i = 0; i < len; ++i) pending_.push_back(byte(next_send_, i));
      ++next_send_;
    }
    if (!pending_.empty() && from_.state() == ConnectionState::kOpen) {
      const std::size_t n = std::min(pending_.size(), from_.send_capacity(id_));
      if (n > 0 && from_.send(id_, ByteView(pending_.data(), n)).is_ok()) pending_.erase(0, n);
    }
    std::vector<std::uint8_t> buf(64 * 1024);
    for (;;) {
      bool fin = false;
      Result<std::size_t> r = to_.read(id_, buf, fin);
      if (!r.is_ok() || *r == 0) break;
      inbox_.append(reinterpret_cast<const char*>(buf.data()), *r);
    }
    while (inbox_.size() >= 8) {
      const std::uint32_t len = get_u32(0);
      const std::uint32_t seq = get_u32(4);
      if (inbox_.size() < 8 + len) break;
      if (seq != next_recv_) {
        ADD_FAILURE() << "message " << seq << " where " << next_recv_ << " was due (lost, duplicated or reordered)";
        ok_ = false;
      }
      for (std::size_t i = 0; i < len && ok_; ++i) {
        if (inbox_[8 + i] != byte(seq, i)) {
          ADD_FAILURE() << "message " << seq << " corrupted at byte " << i;
          ok_ = false;
        }
      }
      ++next_recv_;
      inbox_.erase(0, 8 + len);
    }
  }

  bool done() const { return next_recv_ == count_; }
  bool ok() const { return ok_; }
  std::uint32_t received() const { return next_recv_; }
  std::uint32_t sent() const { return next_send_; }

 private:
  static void append_u32(std::string& s, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>(v >> (8 * i)));
  }
  std::uint32_t get_u32(std::size_t at) const {
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= static_cast<std::uint32_t>(static_cast<std::uint8_t>(inbox_[at + i])) << (8 * i);
    return v;
  }
  char byte(std::uint32_t seq, std::size_t i) const {
    return static_cast<char>((seed_ * 131) ^ (seq * 7) ^ (i * 13) ^ (i >> 8));
  }

  Connection& from_;
  Connection& to_;
  std::uint64_t seed_;
  std::uint32_t count_;
  Rng rng_;
  std::uint64_t id_ = 0;
  std::string pending_;
  std::string inbox_;
  std::uint32_t next_send_ = 0;
  std::uint32_t next_recv_ = 0;
  bool ok_ = true;
};

ConnectionOptions probing(Role role, std::size_t max = 1472) {
  ConnectionOptions o;
  o.role = role;
  o.mtu.enabled = true;
  o.mtu.max_packet_size = max;
  return o;
}

LinkOptions path(std::size_t mtu, double loss = 0) {
  LinkOptions l;
  l.delay = 15ms;
  l.loss = loss;
  l.max_datagram = mtu;
  return l;
}

// Both ends, messages both ways.
struct MtuRun {
  MtuRun(const LinkOptions& link, std::uint64_t seed, std::uint32_t messages, ConnectionOptions co = probing(Role::kClient),
      ConnectionOptions so = probing(Role::kServer))
      : net(link, link, seed),
        client(co, &cp, net.now()),
        server(so, &sp, net.now()),
        up(client, server, seed, messages),
        down(server, client, seed + 1000, messages) {
    net.attach(&client, &server);
  }
  Network::Hook hook() {
    return [this] {
      while (client.poll_event()) {
      }
      while (server.poll_event()) {
      }
      up.step();
      down.step();
      const ConnectionStats c = client.stats();
      max_seen = std::max(max_seen, c.max_packet_size);
      min_cwnd = std::min(min_cwnd, c.cwnd);
    };
  }
  bool delivered() const { return up.done() && down.done() && up.ok() && down.ok(); }

  Network net;
  ChecksumProtector cp;
  ChecksumProtector sp;
  Connection client;
  Connection server;
  Flow up;
  Flow down;
  std::uint64_t max_seen = 0;
  std::uint64_t min_cwnd = UINT64_MAX;
};

// A 1500-byte MTU path carries 1472-byte UDP payloads: both ends end there after one probe each,
// and every message arrives once, in order, intact, with some loss on the path too.
TEST(UdpMtuSimTest, OnA1500MtuPathBothEndsReach1472AndEverythingArrivesOnceInOrder) {
  for (std::uint64_t seed = seed_base(); seed < seed_base() + seed_count(); ++seed) {
    MtuRun r(path(1472, seed % 2 ? 0.01 : 0.0), seed, 300);
    ASSERT_TRUE(r.net.run_until([&] { return r.delivered(); }, 600s, r.hook())) << "seed " << seed;
    for (Connection* c : {&r.client, &r.server}) {
      const ConnectionStats s = c->stats();
      EXPECT_EQ(s.max_packet_size, 1472u) << "seed " << seed;
      EXPECT_EQ(c->current_max_packet_size(), 1472u);
      EXPECT_GE(s.mtu_probes_acked, 1u) << "seed " << seed;
      EXPECT_EQ(s.mtu_black_holes, 0u) << "seed " << seed;
    }
    EXPECT_EQ(r.net.a_to_b().stats().too_big, 0u) << "seed " << seed;
    // Data went out at the raised size: a larger datagram could carry more than 1200 bytes.
    EXPECT_GT(r.client.max_datagram_size(), 1200u);
  }
}

// A path between the base and the maximum: the binary search ends within its granularity below
// the path's MTU, never above it.
TEST(UdpMtuSimTest, OnA1400BytePathTheSearchEndsJustBelowIt) {
  for (std::uint64_t seed = seed_base(); seed < seed_base() + seed_count(); ++seed) {
    MtuRun r(path(1400), seed, 200);
    ASSERT_TRUE(r.net.run_until([&] { return r.delivered(); }, 600s, r.hook())) << "seed " << seed;
    // The last probes may still be on their way once the messages are in: let the search end.
    r.net.run_for(30s, r.hook());
    for (Connection* c : {&r.client, &r.server}) {
      const ConnectionStats s = c->stats();
      EXPECT_LE(s.max_packet_size, 1400u) << "seed " << seed;
      EXPECT_GT(s.max_packet_size, 1400u - 16u) << "seed " << seed;
      EXPECT_GE(s.mtu_probes_lost, 3u) << "seed " << seed;  // 1472 was tried three times
      EXPECT_EQ(s.mtu_black_holes, 0u);
    }
    EXPECT_LE(r.max_seen, 1400u);
  }
}

// A path of exactly the base size: every probe is lost, the connection stays at 1200, no data
// is lost, and the lost probes neither count as lost packets nor shrink the window.
TEST(UdpMtuSimTest, OnAPathOfExactly1200ItStaysAt1200AndLosesNothing) {
  for (std::uint64_t seed = seed_base(); seed < seed_base() + seed_count(); ++seed) {
    MtuRun r(path(1200), seed, 200);
    ASSERT_TRUE(r.net.run_until([&] { return r.delivered(); }, 600s, r.hook())) << "seed " << seed;
    r.net.run_for(60s, r.hook());
    for (Connection* c : {&r.client, &r.server}) {
      const ConnectionStats s = c->stats();
      EXPECT_EQ(s.max_packet_size, 1200u) << "seed " << seed;
      // 1472, then halves down to within 16 bytes of 1200: 1336, 1268, 1234, 1217, 1208.
      EXPECT_EQ(s.mtu_probes_sent, 18u) << "seed " << seed;
      EXPECT_EQ(s.mtu_probes_lost, 18u) << "seed " << seed;
      EXPECT_EQ(s.mtu_probes_acked, 0u) << "seed " << seed;
      EXPECT_EQ(s.packets_lost, 0u) << "seed " << seed;
      EXPECT_EQ(s.congestion_events, 0u) << "seed " << seed;
      EXPECT_EQ(s.packets_retransmitted, 0u) << "seed " << seed;
    }
    EXPECT_EQ(r.max_seen, 1200u);
    EXPECT_EQ(r.net.a_to_b().stats().too_big, 18u) << "seed " << seed;
  }
}

// Probes lost on an otherwise idle connection: the window is what it was before any probe, the
// slow-start threshold untouched, and no congestion event was counted.
TEST(UdpMtuSimTest, LostProbesDoNotReduceTheCongestionWindow) {
  Network net(path(1200), path(1200), 7);
  ChecksumProtector cp, sp;
  Connection client(probing(Role::kClient), &cp, net.now());
  Connection server(probing(Role::kServer), &sp, net.now());
  net.attach(&client, &server);
  const std::uint64_t cwnd0 = client.congestion().window();
  ASSERT_TRUE(client.send_datagram(ByteView()).is_ok());  // something for the peer to acknowledge
  std::uint64_t min_cwnd = cwnd0;
  auto hook = [&] {
    min_cwnd = std::min(min_cwnd, client.congestion().window());
    while (client.poll_event()) {
    }
    while (server.poll_event()) {
    }
  };
  net.run_for(120s, hook);
  const ConnectionStats s = client.stats();
  ASSERT_EQ(s.mtu_probes_lost, 18u);
  EXPECT_EQ(s.congestion_events, 0u);
  EXPECT_EQ(s.persistent_congestion_events, 0u);
  EXPECT_EQ(client.congestion().window(), cwnd0);
  EXPECT_EQ(min_cwnd, cwnd0);
  EXPECT_EQ(client.congestion().ssthresh(), UINT64_MAX);
  EXPECT_EQ(s.packets_lost, 0u);
  EXPECT_EQ(client.state(), ConnectionState::kOpen);
}

// The path MTU drops from 1500 to 1300 mid-transfer: the packets at 1472 vanish (a black hole),
// the connection falls back to 1200 and delivers everything; after the re-probe interval it
// searches again and settles just below 1300.
TEST(UdpMtuSimTest, WhenThePathMtuDropsMidConnectionItFallsBackDeliversEverythingAndReprobes) {
  for (std::uint64_t seed = seed_base(); seed < seed_base() + seed_count(); ++seed) {
    ConnectionOptions co = probing(Role::kClient);
    ConnectionOptions so = probing(Role::kServer);
    co.mtu.reprobe_interval = so.mtu.reprobe_interval = 60s;
    MtuRun r(path(1472), seed, 600, co, so);
    bool dropped = false;
    auto base = r.hook();
    auto hook = [&] {
      base();
      // Once a third of the messages went out at 1472, the path shrinks under them.
      if (!dropped && r.up.sent() >= 200 && r.client.current_max_packet_size() == 1472 &&
          r.server.current_max_packet_size() == 1472) {
        dropped = true;
        r.net.a_to_b().set_options(path(1300));
        r.net.b_to_a().set_options(path(1300));
      }
    };
    ASSERT_TRUE(r.net.run_until([&] { return r.delivered(); }, 600s, hook)) << "seed " << seed;
    ASSERT_TRUE(dropped) << "seed " << seed;
    EXPECT_GT(r.net.a_to_b().stats().too_big, 0u) << "seed " << seed;
    const ConnectionStats after = r.client.stats();
    EXPECT_GE(after.mtu_black_holes, 1u) << "seed " << seed;
    EXPECT_EQ(r.client.state(), ConnectionState::kOpen);
    // The re-probe: a new search finds what the smaller path carries.
    r.net.run_for(120s, r.hook());
    for (Connection* c : {&r.client, &r.server}) {
      const ConnectionStats s = c->stats();
      EXPECT_LE(s.max_packet_size, 1300u) << "seed " << seed;
      EXPECT_GT(s.max_packet_size, 1300u - 16u) << "seed " << seed;
    }
    EXPECT_EQ(r.client.state(), ConnectionState::kOpen);
  }
}

// With probing off, nothing is probed and the size stays at the base on any path.
TEST(UdpMtuSimTest, WithProbingOffTheSizeStaysAtTheBase) {
  ConnectionOptions co = probing(Role::kClient);
  ConnectionOptions so = probing(Role::kServer);
  co.mtu.enabled = so.mtu.enabled = false;
  MtuRun r(path(1472), 3, 100, co, so);
  ASSERT_TRUE(r.net.run_until([&] { return r.delivered(); }, 600s, r.hook()));
  EXPECT_EQ(r.client.stats().mtu_probes_sent, 0u);
  EXPECT_EQ(r.client.stats().max_packet_size, 1200u);
  EXPECT_EQ(r.max_seen, 1200u);
}

}  // namespace
}  // namespace slip::transport::udp
