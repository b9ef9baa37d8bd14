// allow_responses permits: how long a reply subject may be answered (ResponsePermits), and the
// broker using them with an injected clock.
#include "broker/responses.h"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "broker/auth.h"
#include "broker/broker.h"
#include "core/clock.h"
#include "io/event_loop.h"
#include "recording_connection.h"

namespace slip::broker {
namespace {

using namespace std::chrono_literals;
using test::RecordingConnection;

constexpr std::int64_t kSecond = 1000000000;

TEST(ResponsePermitsTest, APermitIsGoodForOnePublishBeforeItExpires) {
  ResponsePermits p(16, 120s);
  p.grant("_INBOX.a", 0);
  EXPECT_FALSE(p.take("_INBOX.b", 1));
  EXPECT_TRUE(p.take("_INBOX.a", 119 * kSecond));
  EXPECT_FALSE(p.take("_INBOX.a", 119 * kSecond));  // used up
  EXPECT_EQ(p.size(), 0u);
}

TEST(ResponsePermitsTest, APermitExpiresTtlAfterItsGrant) {
  ResponsePermits p(16, 120s);
  p.grant("_INBOX.a", 10 * kSecond);
  p.grant("_INBOX.b", 20 * kSecond);
  EXPECT_FALSE(p.take("_INBOX.a", 130 * kSecond));  // granted at 10 s: gone at 130 s
  EXPECT_EQ(p.size(), 1u);                            // and swept
  EXPECT_TRUE(p.take("_INBOX.b", 130 * kSecond));   // granted at 20 s: good until 140 s
}

TEST(ResponsePermitsTest, ExpiredPermitsAreSweptWhenNewOnesAreGranted) {
  ResponsePermits p(16, 1s);
  for (int i = 0; i < 10; ++i) p.grant("_INBOX." + std::to_string(i), i);
  EXPECT_EQ(p.size(), 10u);
  p.grant("_INBOX.late", 5 * kSecond);
  EXPECT_EQ(p.size(), 1u);
}

TEST(ResponsePermitsTest, ZeroTtlNeverExpires) {
  ResponsePermits p(16, 0s);
  p.grant("_INBOX.a", 0);
  EXPECT_TRUE(p.take("_INBOX.a", 1000000 * kSecond));
}

TEST(ResponsePermitsTest, PastTheCapacityTheOldestIsForgotten) {
  ResponsePermits p(3, 120s);
  for (int i = 0; i < 4; ++i) p.grant("_INBOX." + std::to_string(i), 0);
  EXPECT_EQ(p.size(), 3u);
  EXPECT_FALSE(p.take("_INBOX.0", 1));
  EXPECT_TRUE(p.take("_INBOX.1", 1));
  EXPECT_TRUE(p.take("_INBOX.3", 1));
}

TEST(ResponsePermitsTest, TheSameReplyGrantedTwiceMayBeAnsweredTwice) {
  ResponsePermits p(16, 120s);
  p.grant("_INBOX.a", 0);
  p.grant("_INBOX.a", 0);
  EXPECT_TRUE(p.take("_INBOX.a", 1));
  EXPECT_TRUE(p.take("_INBOX.a", 1));
  EXPECT_FALSE(p.take("_INBOX.a", 1));
}

// A requester and a responder whose publish permissions cover neither inbox, on one loop (the
// broker delivers on the publisher's loop at once, so nothing needs to run it).
struct RequestReply {
  explicit RequestReply(std::chrono::milliseconds ttl)
      : broker(options(ttl, clock)), req_conn(loop), resp_conn(loop), req(broker, req_conn, "req"),
        resp(broker, resp_conn, "resp") {
    auto perms = std::make_shared<Permissions>();
    perms->publish.allow = {"status.>"};
    resp.set_identity(Identity{"responder", perms});
    EXPECT_TRUE(resp.subscribe(1, "svc.echo", "").is_ok());
    EXPECT_TRUE(req.subscribe(1, "_INBOX.>", "").is_ok());
  }
  static BrokerOptions options(std::chrono::milliseconds ttl, ManualClock& clock) {
    BrokerOptions o;
    o.response_ttl = ttl;
    o.clock = [&clock] { return clock.now_ns(); };
    return o;
  }
  void request(const std::string& inbox) {
    ASSERT_TRUE(req.publish("svc.echo", inbox, false, {}, Slice::copy_of("q")).is_ok());
    ASSERT_FALSE(resp_conn.got.empty());
    EXPECT_EQ(resp_conn.got.back(), "svc.echo|" + inbox + "|q");
  }
  Status answer(const std::string& inbox) { return resp.publish(inbox, {}, false, {}, Slice::copy_of("a")); }

  ManualClock clock;
  io::EventLoop loop;
  Broker broker;
  RecordingConnection req_conn, resp_conn;
  BrokerClient req, resp;
};

TEST(ResponsePermitsTest, TheBrokerLetsAResponderAnswerWithinTheTtlOnly) {
  RequestReply rr(120000ms);
  rr.request("_INBOX.1");
  rr.clock.advance(119s);
  EXPECT_TRUE(rr.answer("_INBOX.1").is_ok());
  EXPECT_EQ(rr.req_conn.got, std::vector<std::string>{"_INBOX.1||a"});
  EXPECT_EQ(rr.answer("_INBOX.1").code(), StatusCode::kPermissionDenied);  // once only

  rr.request("_INBOX.2");
  rr.clock.advance(120s);
  Status late = rr.answer("_INBOX.2");
  EXPECT_EQ(late.code(), StatusCode::kPermissionDenied) << late.to_string();
  EXPECT_NE(late.message().find("_INBOX.2"), std::string::npos) << late.to_string();
  EXPECT_EQ(rr.req_conn.got.size(), 1u);  // the late answer reached nobody
}

TEST(ResponsePermitsTest, TheBrokerKeepsPermitsWithoutATtlUntilUsed) {
  RequestReply rr(0ms);
  rr.request("_INBOX.1");
  rr.clock.advance(24h);
  EXPECT_TRUE(rr.answer("_INBOX.1").is_ok());
  EXPECT_EQ(rr.req_conn.got, std::vector<std::string>{"_INBOX.1||a"});
}

}  // namespace
}  // namespace slip::broker
