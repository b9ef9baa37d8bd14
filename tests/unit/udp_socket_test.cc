// The UDP socket layer on 127.0.0.1: recvmmsg/sendmmsg batches, UDP GSO runs and the fallback
// without them, truncated datagrams, addresses. Real sockets; waits are bounded retries, never
// timing thresholds.
#include "transport/udp/socket.h"

#include <gtest/gtest.h>
#include <poll.h>

#include <string>
#include <vector>

namespace slip::transport::udp {
namespace {

struct Got {
  std::string bytes;
  std::string from;
};

// Receives until `want` datagrams arrived or the socket stayed empty for 10 s of polls.
std::vector<Got> receive_n(UdpSocket& s, ReceiveBatch& b, std::size_t want) {
  std::vector<Got> out;
  for (int idle = 0; out.size() < want && idle < 100;) {
    pollfd p{s.fd(), POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) {
      ++idle;
      continue;
    }
    Result<std::size_t> n = s.receive(b);
    if (!n.is_ok()) continue;
    for (std::size_t i = 0; i < *n; ++i) {
      std::span<std::uint8_t> d = b.data(i);
      out.push_back({std::string(reinterpret_cast<const char*>(d.data()), d.size()), b.from(i).to_string()});
    }
  }
  return out;
}

std::string payload(std::size_t i, std::size_t len) {
  std::string s(len, static_cast<char>('a' + i % 26));
  s.replace(0, std::min(len, std::to_string(i).size()), std::to_string(i).substr(0, len));
  return s;
}

class UdpSocketTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto a = UdpSocket::bind(HostPort{"127.0.0.1", 0}, opts_);
    auto b = UdpSocket::bind(HostPort{"127.0.0.1", 0}, opts_);
    ASSERT_TRUE(a.is_ok() && b.is_ok());
    a_ = std::move(a).value();
    b_ = std::move(b).value();
    b_addr_ = *SocketAddress::from_host_port(*parse_host_port(b_.local_address()));
  }

  SocketOptions opts_;
  UdpSocket a_, b_;
  SocketAddress b_addr_;
};

TEST_F(UdpSocketTest, BindReportsTheRealPortAndAnEmptySocketReceivesNothing) {
  EXPECT_EQ(a_.local_address().rfind("127.0.0.1:", 0), 0u);
  EXPECT_NE(a_.local_address(), "127.0.0.1:0");
  ReceiveBatch rb(opts_);
  Result<std::size_t> n = a_.receive(rb);
  ASSERT_TRUE(n.is_ok());
  EXPECT_EQ(*n, 0u);
}

TEST_F(UdpSocketTest, ABatchArrivesWholeInOrderWithTheSendersAddress) {
  SendBatch sb(opts_);
  constexpr std::size_t kCount = 20;
  for (std::size_t i = 0; i < kCount; ++i) sb.push(ByteView(payload(i, 10 + i * 37)), b_addr_);
  ASSERT_TRUE(a_.send(sb));
  EXPECT_TRUE(sb.empty());
  EXPECT_EQ(a_.counters().datagrams_sent, kCount);
  ReceiveBatch rb(opts_);
  std::vector<Got> got = receive_n(b_, rb, kCount);
  ASSERT_EQ(got.size(), kCount);
  for (std::size_t i = 0; i < kCount; ++i) {
    EXPECT_EQ(got[i].bytes, payload(i, 10 + i * 37)) << i;
    EXPECT_EQ(got[i].from, a_.local_address());
  }
  // recvmmsg took several datagrams per call.
  EXPECT_LT(b_.counters().receive_calls, kCount);
}

TEST_F(UdpSocketTest, RunsToOnePeerGoOutAsGsoMessagesAndArriveAsSeparateDatagrams) {
  if (!a_.gso_enabled()) GTEST_SKIP() << "the kernel has no UDP_SEGMENT";
  SendBatch sb(opts_);
  constexpr std::size_t kFull = 12;
  for (std::size_t i = 0; i < kFull; ++i) sb.push(ByteView(payload(i, 1200)), b_addr_);
  sb.push(ByteView(payload(kFull, 300)), b_addr_);  // a shorter last one may join the run
  ASSERT_TRUE(a_.send(sb));
  ReceiveBatch rb(opts_);
  std::vector<Got> got = receive_n(b_, rb, kFull + 1);
  if (!a_.gso_enabled()) GTEST_SKIP() << "the device refused segmentation; the fallback sent them";
  ASSERT_EQ(got.size(), kFull + 1);
  for (std::size_t i = 0; i < kFull; ++i) EXPECT_EQ(got[i].bytes, payload(i, 1200)) << i;
  EXPECT_EQ(got[kFull].bytes, payload(kFull, 300));
  EXPECT_GE(a_.counters().gso_runs, 1u);
  EXPECT_LT(a_.counters().messages_sent, a_.counters().datagrams_sent);
}

// With UDP_GRO on the receiving socket the kernel may hand a whole run over as one message;
// the batch cuts it back at the segment size: the same datagrams, in order, from the sender.
TEST_F(UdpSocketTest, CoalescedRunsAreCutBackIntoTheirDatagrams) {
  if (!b_.gro_enabled()) GTEST_SKIP() << "the kernel has no UDP_GRO";
  SendBatch sb(opts_);
  constexpr std::size_t kFull = 24;  // + 4 more: within one SendBatch (32 slots)
  for (std::size_t i = 0; i < kFull; ++i) sb.push(ByteView(payload(i, 1400)), b_addr_);
  sb.push(ByteView(payload(kFull, 77)), b_addr_);
  for (std::size_t i = kFull + 1; i < kFull + 4; ++i) sb.push(ByteView(payload(i, 500)), b_addr_);
  ASSERT_TRUE(a_.send(sb));
  ReceiveBatch rb(opts_);
  std::vector<Got> got = receive_n(b_, rb, kFull + 4);
  ASSERT_EQ(got.size(), kFull + 4);
  for (std::size_t i = 0; i < kFull; ++i) EXPECT_EQ(got[i].bytes, payload(i, 1400)) << i;
  EXPECT_EQ(got[kFull].bytes, payload(kFull, 77));
  for (std::size_t i = kFull + 1; i < kFull + 4; ++i) EXPECT_EQ(got[i].bytes, payload(i, 500)) << i;
  for (const Got& g : got) EXPECT_EQ(g.from, a_.local_address());
  EXPECT_EQ(b_.counters().datagrams_received, kFull + 4);
  EXPECT_EQ(b_.counters().truncated, 0u);
  // A GSO message stays one buffer on its way through loopback to a GRO socket.
  if (a_.gso_enabled()) {
    EXPECT_GE(b_.counters().gro_messages, 1u);
  }
}

// A kernel without UDP_GRO (or a socket told not to use it) gets one datagram per message.
TEST_F(UdpSocketTest, WithoutGroEveryDatagramArrivesInAMessageOfItsOwn) {
  SocketOptions no_gro = opts_;
  no_gro.gro = false;
  auto c = UdpSocket::bind(HostPort{"127.0.0.1", 0}, no_gro);
  ASSERT_TRUE(c.is_ok());
  EXPECT_FALSE(c->gro_enabled());
  SocketAddress c_addr = *SocketAddress::from_host_port(*parse_host_port(c->local_address()));
  SendBatch sb(opts_);
  for (std::size_t i = 0; i < 10; ++i) sb.push(ByteView(payload(i, 1400)), c_addr);
  ASSERT_TRUE(a_.send(sb));
  ReceiveBatch rb(no_gro);
  std::vector<Got> got = receive_n(*c, rb, 10);
  ASSERT_EQ(got.size(), 10u);
  for (std::size_t i = 0; i < 10; ++i) EXPECT_EQ(got[i].bytes, payload(i, 1400)) << i;
  EXPECT_EQ(c->counters().gro_messages, 0u);
}

// Datagrams of a coalesced run longer than the batch accepts are dropped and counted one by
// one, as separate ones would be; a shorter last one of the run still arrives.
TEST_F(UdpSocketTest, ACoalescedRunOfTooLongDatagramsIsDroppedAndCounted) {
  SocketOptions small = opts_;
  small.max_datagram = 1000;
  SendBatch sb(opts_);
  for (std::size_t i = 0; i < 5; ++i) sb.push(ByteView(payload(i, 1400)), b_addr_);
  sb.push(ByteView(payload(5, 900)), b_addr_);
  ASSERT_TRUE(a_.send(sb));
  SendBatch sb2(opts_);
  sb2.push(ByteView(payload(9, 800)), b_addr_);
  ASSERT_TRUE(a_.send(sb2));
  ReceiveBatch rb(small);
  std::vector<Got> got = receive_n(b_, rb, 2);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].bytes, payload(5, 900));
  EXPECT_EQ(got[1].bytes, payload(9, 800));
  EXPECT_EQ(b_.counters().truncated, 5u);
}

TEST_F(UdpSocketTest, WithoutGsoEveryDatagramIsItsOwnMessage) {
  a_.disable_gso();
  SendBatch sb(opts_);
  for (std::size_t i = 0; i < 8; ++i) sb.push(ByteView(payload(i, 1200)), b_addr_);
  ASSERT_TRUE(a_.send(sb));
  EXPECT_EQ(a_.counters().messages_sent, 8u);
  EXPECT_EQ(a_.counters().gso_runs, 0u);
  ReceiveBatch rb(opts_);
  EXPECT_EQ(receive_n(b_, rb, 8).size(), 8u);
}

TEST_F(UdpSocketTest, RunsBreakAtAnotherAddressAndEveryPeerGetsItsOwn) {
  auto c = UdpSocket::bind(HostPort{"127.0.0.1", 0}, opts_);
  ASSERT_TRUE(c.is_ok());
  SocketAddress c_addr = *SocketAddress::from_host_port(*parse_host_port(c->local_address()));
  SendBatch sb(opts_);
  for (std::size_t i = 0; i < 9; ++i) sb.push(ByteView(payload(i, 1000)), i % 3 == 2 ? c_addr : b_addr_);
  ASSERT_TRUE(a_.send(sb));
  ReceiveBatch rb(opts_);
  std::vector<Got> at_b = receive_n(b_, rb, 6);
  std::vector<Got> at_c = receive_n(*c, rb, 3);
  ASSERT_EQ(at_b.size(), 6u);
  ASSERT_EQ(at_c.size(), 3u);
  EXPECT_EQ(at_b[0].bytes, payload(0, 1000));
  EXPECT_EQ(at_b[2].bytes, payload(3, 1000));
  EXPECT_EQ(at_c[1].bytes, payload(5, 1000));
}

TEST_F(UdpSocketTest, DatagramsLongerThanTheSlotAreDroppedAndCounted) {
  SocketOptions small = opts_;
  small.max_datagram = 256;
  SendBatch sb(opts_);
  sb.push(ByteView(payload(1, 1000)), b_addr_);
  sb.push(ByteView(payload(2, 100)), b_addr_);
  ASSERT_TRUE(a_.send(sb));
  ReceiveBatch rb(small);
  std::vector<Got> got = receive_n(b_, rb, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].bytes, payload(2, 100));
  EXPECT_EQ(b_.counters().truncated, 1u);
}

TEST_F(UdpSocketTest, AnUnreachableDestinationDropsOnlyItsDatagrams) {
  SendBatch sb(opts_);
  SocketAddress v6 = *SocketAddress::from_host_port(HostPort{"::1", 9});  // wrong family for this socket
  sb.push(ByteView(payload(1, 50)), v6);
  sb.push(ByteView(payload(2, 50)), b_addr_);
  ASSERT_TRUE(a_.send(sb));
  EXPECT_EQ(a_.counters().send_errors, 1u);
  ReceiveBatch rb(opts_);
  std::vector<Got> got = receive_n(b_, rb, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].bytes, payload(2, 50));
}

TEST(UdpSocketAddress, ParsesNumericHostsOnlyAndComparesByAddressAndPort) {
  EXPECT_TRUE(SocketAddress::from_host_port(HostPort{"127.0.0.1", 1}).is_ok());
  EXPECT_TRUE(SocketAddress::from_host_port(HostPort{"::1", 1}).is_ok());
  EXPECT_TRUE(SocketAddress::from_host_port(HostPort{"[::1]", 1}).is_ok());
  EXPECT_FALSE(SocketAddress::from_host_port(HostPort{"localhost", 1}).is_ok());
  auto a = *SocketAddress::from_host_port(HostPort{"10.0.0.1", 5});
  auto b = *SocketAddress::from_host_port(HostPort{"10.0.0.1", 5});
  auto c = *SocketAddress::from_host_port(HostPort{"10.0.0.1", 6});
  EXPECT_TRUE(a == b);
  EXPECT_FALSE(a == c);
  EXPECT_EQ(a.to_string(), "10.0.0.1:5");
  EXPECT_EQ(SocketAddress::from_host_port(HostPort{"::1", 7})->to_string(), "[::1]:7");
  EXPECT_FALSE(UdpSocket::bind(HostPort{"not-an-ip", 0}, SocketOptions{}).is_ok());
}

}  // namespace
}  // namespace slip::transport::udp
