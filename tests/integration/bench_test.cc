// `slip bench` against a real slipd: it reports what was received, and fails loudly when it
// cannot connect or loses its connection. Behaviour only: no assertion looks at a rate or a
// latency.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <future>
#include <thread>

#include "process.h"

namespace slip {
namespace {

std::string bench(const std::vector<std::string>& args, int* code) {
  std::vector<std::string> argv = {SLIP_PATH, "bench"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string out;
  *code = test::run_program(argv, &out);
  return out;
}

// A loopback port nothing listens on (bound once, then released).
std::uint16_t unused_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

TEST(SlipBench, PubSubFanOutDeliversEveryMessageToEverySubscriber) {
  test::SlipdProcess slipd;
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  int code = -1;
  const std::string out =
      bench({"pubsub", "-s", slipd.address(), "--count", "2000", "--sub", "2", "--no-progress", "--json"}, &code);
  EXPECT_EQ(code, 0) << out << slipd.log();
  EXPECT_NE(out.find("\"publishers\": 1, \"subscribers\": 2"), std::string::npos) << out;
  EXPECT_NE(out.find("\"pub\": {\"msgs\": 2000,"), std::string::npos) << out;
  EXPECT_NE(out.find("\"sub\": {\"msgs\": 4000, \"expected\": 4000, \"missing\": 0,"), std::string::npos) << out;
  EXPECT_NE(out.find("\"latency_us\": {\"count\": 4000,"), std::string::npos) << out;
  EXPECT_NE(out.find("\"ok\": true, \"errors\": []"), std::string::npos) << out;
}

TEST(SlipBench, QueueGroupGetsEachMessageOnce) {
  test::SlipdProcess slipd;
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  int code = -1;
  const std::string out = bench(
      {"queue", "-s", slipd.address(), "--count", "1000", "--pub", "2", "--sub", "3", "--no-progress", "--json"}, &code);
  EXPECT_EQ(code, 0) << out << slipd.log();
  EXPECT_NE(out.find("\"pub\": {\"msgs\": 2000,"), std::string::npos) << out;
  EXPECT_NE(out.find("\"sub\": {\"msgs\": 2000, \"expected\": 2000, \"missing\": 0,"), std::string::npos) << out;
}

TEST(SlipBench, ReqRepAnswersEveryRequestAndPrintsATable) {
  test::SlipdProcess slipd;
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  int code = -1;
  const std::string out = bench({"reqrep", "-s", slipd.address(), "--count", "200", "--no-progress"}, &code);
  EXPECT_EQ(code, 0) << out << slipd.log();
  EXPECT_NE(out.find("p99.9 us"), std::string::npos) << out;
  EXPECT_NE(out.find("req            200 "), std::string::npos) << out;
  EXPECT_NE(out.find("200 of 200 requests answered"), std::string::npos) << out;
}

TEST(SlipBench, UnreachableServerExitsNonZeroWithAnError) {
  int code = 0;
  const std::string out =
      bench({"pubsub", "-s", "127.0.0.1:" + std::to_string(unused_port()), "--count", "10", "--no-progress"}, &code);
  EXPECT_EQ(code, 1) << out;
  EXPECT_NE(out.find("slip bench: "), std::string::npos) << out;
  EXPECT_NE(out.find("cannot connect"), std::string::npos) << out;
}

TEST(SlipBench, ServerDyingMidRunExitsNonZero) {
  test::SlipdProcess slipd;
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  auto run = std::async(std::launch::async, [&] {
    int code = 0;
    std::string out =
        bench({"pubsub", "-s", slipd.address(), "--duration", "60", "--rate", "1000", "--no-progress"}, &code);
    return std::make_pair(code, out);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  slipd.stop(SIGKILL);
  ASSERT_EQ(run.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  auto [code, out] = run.get();
  EXPECT_EQ(code, 1) << out;
  EXPECT_NE(out.find("slip bench: "), std::string::npos) << out;
}

TEST(SlipBench, PayloadTooSmallForTheTimestampIsRefused) {
  int code = 0;
  const std::string out = bench({"pubsub", "--size", "4"}, &code);
  EXPECT_EQ(code, 2) << out;
  EXPECT_NE(out.find("--size 4 is too small"), std::string::npos) << out;
}

}  // namespace
}  // namespace slip
