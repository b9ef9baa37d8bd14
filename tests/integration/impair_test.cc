// slip-impair as a real process on 127.0.0.1: a UDP echo through it at 0% loss gets every
// datagram back, at 100% none, and at 50% with a fixed seed exactly the count its model predicts,
// in the proxy's own counters too. TCP through nftables loss, and through slip-nfq-impair behind
// a netfilter queue rule. Counts only, no timing.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "eventually.h"
#include "impair.h"

extern char** environ;

namespace {

using slip::test::eventually;

int udp_socket() {
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  const int size = 4 << 20;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) != 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  return fd;
}

std::uint16_t port_of(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

// Echoes every datagram to its sender, counting them, until stopped.
class EchoServer {
 public:
  EchoServer() : fd_(udp_socket()), thread_([this] { loop(); }) {}
  ~EchoServer() {
    stop_ = true;
    thread_.join();
    close(fd_);
  }
  std::uint16_t port() const { return port_of(fd_); }
  std::uint64_t received() const { return received_.load(); }

 private:
  void loop() {
    char buf[2048];
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 10) <= 0) continue;
      sockaddr_in from{};
      socklen_t len = sizeof from;
      const ssize_t r = recvfrom(fd_, buf, sizeof buf, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&from), &len);
      if (r < 0) continue;
      ++received_;
      sendto(fd_, buf, static_cast<std::size_t>(r), 0, reinterpret_cast<sockaddr*>(&from), len);
    }
  }
  int fd_;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> received_{0};
  std::thread thread_;
};

// slip-impair started with `args`; its first stdout line names the port it listens on.
class ImpairProcess {
 public:
  explicit ImpairProcess(std::vector<std::string> args, const char* path = SLIP_IMPAIR_PATH) {
    int out[2];
    if (pipe2(out, O_CLOEXEC) != 0) return;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    args.insert(args.begin(), path);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (posix_spawn(&pid_, path, &fa, nullptr, argv.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    out_ = fdopen(out[0], "r");
    char line[512];
    if (pid_ > 0 && std::fgets(line, sizeof line, out_)) {
      first_line_ = line;
      const auto colon = first_line_.find("127.0.0.1:");
      if (colon != std::string::npos) port_ = static_cast<std::uint16_t>(std::stoi(first_line_.substr(colon + 10)));
    }
  }
  ~ImpairProcess() {
    if (pid_ > 0) stop();
    if (out_) std::fclose(out_);
  }
  std::uint16_t port() const { return port_; }
  const std::string& first_line() const { return first_line_; }

  // SIGTERM, then everything it printed after the first line, and its exit status.
  std::string stop(int* status = nullptr) {
    kill(pid_, SIGTERM);
    std::string rest;
    char line[512];
    while (std::fgets(line, sizeof line, out_)) rest += line;
    int st = 0;
    waitpid(pid_, &st, 0);
    pid_ = -1;
    if (status) *status = st;
    return rest;
  }

 private:
  pid_t pid_ = -1;
  FILE* out_ = nullptr;
  std::string first_line_;
  std::uint16_t port_ = 0;
};

// "forward: received 1 sent 2 ..." -> {"received": 1, ...} for the line starting with `direction`.
std::map<std::string, std::uint64_t> counters(const std::string& output, const std::string& direction) {
  std::map<std::string, std::uint64_t> m;
  std::istringstream in(output);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(direction + ":", 0) != 0) continue;
    std::istringstream words(line.substr(direction.size() + 1));
    std::string key;
    std::uint64_t value;
    while (words >> key >> value) m[key] = value;
  }
  return m;
}

struct EchoRun {
  std::uint64_t echoed = 0;   // datagrams the echo server saw
  std::uint64_t replies = 0;  // replies back at the client
  std::string output;
  int status = 0;
};

// Sends `count` datagrams through a proxy to an echo server. `expect_replies` is how many replies
// come back; once they have (and the echo saw `expect_echoed`), the proxy is stopped.
EchoRun echo_through(const std::vector<std::string>& impair_args, int count, std::uint64_t expect_echoed,
                     std::uint64_t expect_replies) {
  EchoServer echo;
  std::vector<std::string> args = {"--listen", "127.0.0.1:0", "--target",
                                   "127.0.0.1:" + std::to_string(echo.port())};
  args.insert(args.end(), impair_args.begin(), impair_args.end());
  ImpairProcess proxy(args);
  EchoRun run;
  EXPECT_NE(proxy.port(), 0) << "slip-impair did not start";
  if (proxy.port() == 0) return run;
  const int fd = udp_socket();
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  to.sin_port = htons(proxy.port());
  for (int i = 0; i < count; ++i) {
    char msg[64];
    std::snprintf(msg, sizeof msg, "datagram %06d", i);
    sendto(fd, msg, sizeof msg, 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
  }
  auto drain = [&] {
    char buf[2048];
    while (recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0) ++run.replies;
  };
  EXPECT_TRUE(eventually([&] {
    drain();
    return echo.received() == expect_echoed && run.replies == expect_replies;
  })) << "echoed " << echo.received() << " replies " << run.replies;
  run.output = proxy.stop(&run.status);
  drain();
  run.echoed = echo.received();
  close(fd);
  return run;
}

constexpr int kCount = 300;

TEST(ImpairTest, NoLossDeliversEverythingBothWays) {
  EchoRun r = echo_through({"--loss", "0"}, kCount, kCount, kCount);
  EXPECT_EQ(r.echoed, static_cast<std::uint64_t>(kCount));
  EXPECT_EQ(r.replies, static_cast<std::uint64_t>(kCount));
  EXPECT_TRUE(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0) << r.status;
  auto f = counters(r.output, "forward");
  auto b = counters(r.output, "reverse");
  EXPECT_EQ(f["received"], static_cast<std::uint64_t>(kCount)) << r.output;
  EXPECT_EQ(f["sent"], static_cast<std::uint64_t>(kCount));
  EXPECT_EQ(b["sent"], static_cast<std::uint64_t>(kCount));
  EXPECT_EQ(f["lost"], 0u);
}

TEST(ImpairTest, FullLossDeliversNothing) {
  // The proxy reads every queued datagram before it prints its counters, so "received 300,
  // lost 300" proves all of them reached it and none went on.
  EchoRun r = echo_through({"--loss", "100"}, kCount, 0, 0);
  auto f = counters(r.output, "forward");
  EXPECT_EQ(f["received"], static_cast<std::uint64_t>(kCount)) << r.output;
  EXPECT_EQ(f["lost"], static_cast<std::uint64_t>(kCount));
  EXPECT_EQ(f["sent"], 0u);
  EXPECT_EQ(r.echoed, 0u);
  EXPECT_EQ(r.replies, 0u);
}

TEST(ImpairTest, HalfLossWithASeedLosesExactlyWhatTheModelPredicts) {
  const std::uint64_t seed = 42;
  slip::impair::ImpairOptions o;
  o.loss = 0.5;
  slip::impair::Impairer fwd(o, seed * 2 + 1);
  slip::impair::Impairer rev(o, seed * 2 + 2);
  const auto t = slip::impair::Clock::now();
  std::uint64_t forwarded = 0, returned = 0;
  for (int i = 0; i < kCount; ++i) forwarded += fwd.on_datagram(t, 64).size();
  for (std::uint64_t i = 0; i < forwarded; ++i) returned += rev.on_datagram(t, 64).size();
  ASSERT_GT(forwarded, 100u);
  ASSERT_LT(forwarded, 200u);

  EchoRun r = echo_through({"--loss", "50", "--seed", std::to_string(seed)}, kCount, forwarded, returned);
  EXPECT_EQ(r.echoed, forwarded);
  EXPECT_EQ(r.replies, returned);
  auto f = counters(r.output, "forward");
  auto b = counters(r.output, "reverse");
  EXPECT_EQ(f["received"], static_cast<std::uint64_t>(kCount)) << r.output;
  EXPECT_EQ(f["lost"], kCount - forwarded);
  EXPECT_EQ(b["received"], forwarded);
  EXPECT_EQ(b["lost"], forwarded - returned);
}

TEST(ImpairTest, DuplicationAndDelayKeepCountsExact) {
  // 100% duplication on the way there only: the echo sees every datagram twice.
  EchoRun r = echo_through({"--duplicate", "100", "--delay", "1ms", "--jitter", "2ms", "--direction", "forward"},
                           100, 200, 200);
  EXPECT_EQ(r.echoed, 200u);
  auto f = counters(r.output, "forward");
  EXPECT_EQ(f["duplicated"], 100u) << r.output;
}

TEST(ImpairTest, RejectsBadArguments) {
  ImpairProcess p({"--listen", "127.0.0.1:0", "--target", "127.0.0.1:9", "--loss", "150"});
  EXPECT_EQ(p.port(), 0);
  int status = 0;
  p.stop(&status);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 0) << status;
}

// A TCP socket listening on 127.0.0.1 on a port of the kernel's choice, or -1.
int listen_loopback_tcp() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(fd, 1) != 0) {
    if (fd >= 0) close(fd);
    return -1;
  }
  return fd;
}

// An echo over TCP through the listening socket `lfd` on `port`: `rounds` round trips of one
// 100-byte message each, so every message is its own segment. Returns the intact ones.
int tcp_echo(int lfd, std::uint16_t port, int rounds) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::thread server([&] {
    const int c = accept(lfd, nullptr, nullptr);
    char buf[100];
    for (int i = 0; i < rounds; ++i) {
      std::size_t got = 0;
      while (got < sizeof buf) {
        const ssize_t r = recv(c, buf + got, sizeof buf - got, 0);
        if (r <= 0) break;
        got += static_cast<std::size_t>(r);
      }
      if (send(c, buf, got, MSG_NOSIGNAL) != static_cast<ssize_t>(got)) break;
    }
    close(c);
  });
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  a.sin_port = htons(port);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    shutdown(lfd, SHUT_RDWR);
    server.join();
    return 0;
  }
  int ok = 0;
  for (int i = 0; i < rounds; ++i) {
    char msg[100];
    std::memset(msg, 'a' + i % 26, sizeof msg);
    if (send(fd, msg, sizeof msg, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof msg)) break;
    char back[100];
    std::size_t got = 0;
    while (got < sizeof back) {
      const ssize_t r = recv(fd, back + got, sizeof back - got, 0);
      if (r <= 0) break;
      got += static_cast<std::size_t>(r);
    }
    if (got == sizeof back && std::memcmp(msg, back, sizeof msg) == 0) ++ok;
  }
  close(fd);
  server.join();
  return ok;
}

// scripts/impair-tcp.sh: with 10% of the packets to and from a TCP port dropped on lo, the
// kernel's TCP still delivers every byte (it retransmits), and the rule's counters show drops.
// Needs nftables and CAP_NET_ADMIN; skipped without them.
TEST(ImpairTcpTest, NftablesRuleDropsTcpPacketsAndTcpRecovers) {
  const std::string script = std::string(SLIP_SOURCE_DIR) + "/scripts/impair-tcp.sh";
  const std::string env = "SLIP_IMPAIR_TABLE=slip_impair_test_" + std::to_string(getpid()) + " ";
  const int lfd = listen_loopback_tcp();
  ASSERT_GE(lfd, 0) << std::strerror(errno);
  const std::uint16_t port = port_of(lfd);
  if (std::system((env + script + " add " + std::to_string(port) + " 10 >/dev/null 2>&1").c_str()) != 0) {
    close(lfd);
    GTEST_SKIP() << "nftables or CAP_NET_ADMIN not available";
  }
  struct Remove {
    std::string cmd;
    ~Remove() { (void)std::system(cmd.c_str()); }
  } remove{env + script + " remove >/dev/null 2>&1"};

  constexpr int kRounds = 200;
  const int ok = tcp_echo(lfd, port, kRounds);
  close(lfd);
  EXPECT_EQ(ok, kRounds);

  // "counter packets N bytes M drop", one per rule: the drops TCP recovered from.
  std::string status;
  if (FILE* p = popen((env + script + " status").c_str(), "r")) {
    char line[512];
    while (std::fgets(line, sizeof line, p)) status += line;
    pclose(p);
  }
  std::uint64_t dropped = 0;
  for (std::size_t at = status.find("packets "); at != std::string::npos; at = status.find("packets ", at + 1)) {
    dropped += std::stoull(status.substr(at + 8));
  }
  std::printf("tcp echo, %d round trips of 100 bytes through a 10%% nftables loss rule: %d intact, %llu packets "
              "dropped\n",
              kRounds, ok, static_cast<unsigned long long>(dropped));
  // About 10% of 800-odd packets; none at all would mean the rule did nothing.
  EXPECT_GT(dropped, 0u) << status;
}

#ifdef SLIP_NFQ_IMPAIR_PATH
// slip-nfq-impair as a real process behind a netfilter queue rule (scripts/impair-tcp.sh queue):
// a TCP echo through 10% loss and 2 ms of delay delivers every byte, and the program's counters
// show that it saw the packets, dropped some and accepted the rest. Skipped without
// CAP_NET_ADMIN or a netfilter queue.
TEST(ImpairTcpTest, NfqueueProgramDropsAndDelaysTcpPacketsAndTcpRecovers) {
  const std::string script = std::string(SLIP_SOURCE_DIR) + "/scripts/impair-tcp.sh";
  const std::string env = "SLIP_IMPAIR_TABLE=slip_nfq_test_" + std::to_string(getpid()) + " ";
  const std::string queue = std::to_string(10000 + getpid() % 50000);
  ImpairProcess nfq({"--queue", queue, "--loss", "10", "--delay", "2ms", "--seed", "9"}, SLIP_NFQ_IMPAIR_PATH);
  if (nfq.first_line().find("ready") == std::string::npos) {
    nfq.stop();
    GTEST_SKIP() << "slip-nfq-impair cannot bind a queue here (needs CAP_NET_ADMIN)";
  }
  const int lfd = listen_loopback_tcp();
  ASSERT_GE(lfd, 0) << std::strerror(errno);
  const std::uint16_t port = port_of(lfd);
  struct Remove {
    std::string cmd;
    ~Remove() { (void)std::system(cmd.c_str()); }
  } remove{env + script + " remove >/dev/null 2>&1"};
  if (std::system((env + script + " queue " + std::to_string(port) + " " + queue + " >/dev/null 2>&1").c_str()) != 0) {
    close(lfd);
    GTEST_SKIP() << "no netfilter queue rule possible here (nft or iptables, CAP_NET_ADMIN)";
  }

  constexpr int kRounds = 200;
  const int ok = tcp_echo(lfd, port, kRounds);
  close(lfd);
  EXPECT_EQ(ok, kRounds);
  // The rule first, then the program (it lets through what it still holds).
  (void)std::system(remove.cmd.c_str());
  int status = 0;
  const std::string out = nfq.stop(&status);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
  // "queued N accepted N lost N held N verdict_errors N"
  std::map<std::string, std::uint64_t> c;
  std::istringstream in(out);
  std::string key;
  std::uint64_t value = 0;
  while (in >> key >> value) c[key] = value;
  std::printf("tcp echo, %d round trips of 100 bytes through slip-nfq-impair (10%% loss, 2 ms): %d intact; %s", kRounds,
              ok, out.c_str());
  // Each round trip is at least two segments and their ACKs: 400 or more packets queued.
  EXPECT_GE(c["queued"], 2u * kRounds) << out;
  EXPECT_GT(c["lost"], 0u) << out;
  EXPECT_EQ(c["queued"], c["accepted"] + c["lost"]) << out;
  EXPECT_EQ(c["verdict_errors"], 0u) << out;
}
#endif

TEST(ImpairModelTest, ParsesRatesSizesAndDurations) {
  std::uint64_t bps = 0;
  EXPECT_TRUE(slip::impair::parse_rate("10mbit", bps));
  EXPECT_EQ(bps, 10000000u);
  EXPECT_TRUE(slip::impair::parse_rate("800kbit", bps));
  EXPECT_EQ(bps, 800000u);
  EXPECT_FALSE(slip::impair::parse_rate("fast", bps));
  EXPECT_FALSE(slip::impair::parse_rate("10furlongs", bps));
  std::size_t bytes = 0;
  EXPECT_TRUE(slip::impair::parse_bytes("64k", bytes));
  EXPECT_EQ(bytes, 65536u);
  slip::impair::Duration d{};
  EXPECT_TRUE(slip::impair::parse_duration("1.5ms", d));
  EXPECT_EQ(d, std::chrono::microseconds(1500));
  EXPECT_TRUE(slip::impair::parse_duration("250us", d));
  EXPECT_EQ(d, std::chrono::microseconds(250));
  EXPECT_FALSE(slip::impair::parse_duration("-3ms", d));
}

TEST(ImpairModelTest, BandwidthLimitQueuesThenDrops) {
  slip::impair::ImpairOptions o;
  o.rate_bps = 8000;  // 1000 bytes per second
  o.queue_bytes = 3500;
  slip::impair::Impairer imp(o, 1);
  const auto t = slip::impair::Clock::now();
  std::vector<slip::impair::Clock::time_point> at;
  for (int i = 0; i < 4; ++i) {
    auto v = imp.on_datagram(t, 1000);
    at.insert(at.end(), v.begin(), v.end());
  }
  // Each takes a second on the bottleneck; three fit in the queue, the fourth overflows it.
  ASSERT_EQ(at.size(), 3u);
  EXPECT_EQ(at[0], t + std::chrono::seconds(1));
  EXPECT_EQ(at[2], t + std::chrono::seconds(3));
  EXPECT_EQ(imp.counters().queue_dropped, 1u);
}

}  // namespace
