// Authentication, permissions, reload and connection limits against a real slipd started with
// a config file, driven by PubSubClient and by the `slip` command line.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include <fstream>
#include <future>
#include <map>
#include <set>

#include "broker/auth.h"
#include "broker/client.h"
#include "config.h"
#include "http_client.h"
#include "io/loop_group.h"
#include "peer.h"
#include "process.h"
#include "prometheus_check.h"
#include "wire/encoder.h"

namespace slip::broker {
namespace {

constexpr auto kLiveness = std::chrono::seconds(30);

template <typename Pred>
bool eventually(Pred pred) {
  const auto deadline = std::chrono::steady_clock::now() + kLiveness;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

// A config file in a fresh directory, removed at the end.
class ConfigFile {
 public:
  explicit ConfigFile(const std::string& text) {
    char tmpl[] = "/tmp/slipd-auth-XXXXXX";
    dir_ = mkdtemp(tmpl);
    write(text);
  }
  ~ConfigFile() { (void)std::system(("rm -rf " + dir_).c_str()); }
  void write(const std::string& text) {
    std::ofstream f(path() + ".tmp");
    f << text;
    f.close();
    std::rename((path() + ".tmp").c_str(), path().c_str());
  }
  std::string path() const { return dir_ + "/slipd.toml"; }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
};

const std::string& bob_hash() {
  static const std::string h = *hash_password("bob-pass");
  return h;
}

// A PubSubClient with credentials on its own loop thread; records messages and refusals.
class Peer : public test::PubSubPeer {
 public:
  Peer(const std::string& address, const std::string& token, const std::string& user = "",
       const std::string& password = "")
      : PubSubPeer(
            address, "auth-test",
            [&](session::ClientOptions& o) {
              o.handshake.auth_token = token;
              o.handshake.auth_user = user;
              o.handshake.auth_password = password;
              o.reconnect.enabled = false;
              o.session.handshake_timeout = std::chrono::minutes(10);  // a login may be held by a test
            },
            /*start=*/false) {
    run([&] {
      client_->set_on_refused([this](const Refusal& r) { refusals_.push_back(r); });
      client_->set_on_closed([this](const Status& s) { closed_.push_back(s); });
      client_->start();
    });
  }
  ~Peer() { stop(); }  // before the members its callbacks write to go

  // `pred` runs on the test's thread: it uses the accessors below, which hop to the loop.
  template <typename Pred>
  bool wait_for(Pred pred) {
    return eventually(pred);
  }

  bool ready() {
    bool ok = false;
    run([&] { ok = client_->ready(); });
    return ok;
  }
  bool wait_ready() {
    return eventually([&] { return ready(); });
  }

  // Everything sent before has been processed by the broker (and refusals reported).
  void sync() {
    std::promise<void> p;
    auto f = p.get_future();
    run([&] { ASSERT_TRUE(client_->flush([&p] { p.set_value(); }).is_ok()); });
    ASSERT_EQ(f.wait_for(kLiveness), std::future_status::ready);
  }

  std::uint64_t subscribe(const std::string& subject) {
    std::uint64_t sid = 0;
    run([&] {
      sid = *client_->subscribe(subject, "", [this, subject](const Message& m) {
        received_[subject].push_back(std::string(m.subject) + "=" + m.payload.to_string());
      });
    });
    sync();
    return sid;
  }

  void publish(const std::string& subject, const std::string& data) {
    run([&] { ASSERT_TRUE(client_->publish(subject, Slice::copy_of(data)).is_ok()); });
  }

  std::vector<std::string> received(const std::string& pattern) {
    std::vector<std::string> v;
    run([&] { v = received_[pattern]; });
    return v;
  }
  std::vector<Refusal> refusals() {
    std::vector<Refusal> v;
    run([&] { v = refusals_; });
    return v;
  }
  std::vector<Status> closed() {
    std::vector<Status> v;
    run([&] { v = closed_; });
    return v;
  }

 private:
  std::map<std::string, std::vector<std::string>> received_;
  std::vector<Refusal> refusals_;
  std::vector<Status> closed_;
};

std::string users_config(const std::string& alice_publish) {
  return R"(
[[users]]
name = "admin"
token = "admin-token"

[[users]]
name = "alice"
token = "alice-token"
publish = { allow = [)" + alice_publish + R"(] }
subscribe = { allow = ["orders.>", "_INBOX.>"] }

[[users]]
name = "bob"
password_hash = ")" + bob_hash() + R"("
)";
}

int slip(const std::vector<std::string>& args, std::string* out) {
  std::vector<std::string> argv = {SLIP_PATH};
  argv.insert(argv.end(), args.begin(), args.end());
  return test::run_program(argv, out);
}

TEST(Auth, TokenIsAcceptedAndAWrongOrMissingTokenIsRefused) {
  ConfigFile cfg(users_config(R"("orders.>")"));
  test::SlipdProcess slipd({"--config", cfg.path()});
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  EXPECT_NE(slipd.log().find("authentication on: 3 users"), std::string::npos) << slipd.log();
  std::string out;
  EXPECT_EQ(slip({"ping", "-s", slipd.address(), "-c", "1", "--token", "alice-token"}, &out), 0) << out;
  EXPECT_NE(slip({"ping", "-s", slipd.address(), "-c", "1", "--token", "wrong-token"}, &out), 0) << out;
  EXPECT_NE(out.find("UNAUTHENTICATED"), std::string::npos) << out;
  EXPECT_NE(slip({"ping", "-s", slipd.address(), "-c", "1"}, &out), 0) << out;
  EXPECT_NE(out.find("UNAUTHENTICATED"), std::string::npos) << out;
  // Refusals are logged with the peer's address, never with the secret.
  ASSERT_TRUE(eventually([&] { return slipd.log().find("refused: UNAUTHENTICATED") != std::string::npos; }));
  EXPECT_NE(slipd.log().find("connection from 127.0.0.1:"), std::string::npos) << slipd.log();
  EXPECT_EQ(slipd.log().find("wrong-token"), std::string::npos) << slipd.log();
}

TEST(Auth, UserAndPasswordAreAcceptedAndAWrongPasswordIsRefused) {
  ConfigFile cfg(users_config(R"("orders.>")"));
  test::SlipdProcess slipd({"--config", cfg.path()});
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  std::string out;
  EXPECT_EQ(slip({"ping", "-s", slipd.address(), "-c", "1", "--user", "bob", "--password", "bob-pass"}, &out), 0) << out;
  EXPECT_NE(slip({"ping", "-s", slipd.address(), "-c", "1", "--user", "bob", "--password", "nope-pass"}, &out), 0);
  EXPECT_NE(out.find("UNAUTHENTICATED"), std::string::npos) << out;
  EXPECT_NE(out.find("authentication failed for user \"bob\""), std::string::npos) << out;
  EXPECT_NE(slip({"ping", "-s", slipd.address(), "-c", "1", "--user", "carol", "--password", "bob-pass"}, &out), 0);
  // The password may come from the environment.
  setenv("SLIP_PASSWORD", "bob-pass", 1);
  EXPECT_EQ(slip({"ping", "-s", slipd.address(), "-c", "1", "--user", "bob"}, &out), 0) << out;
  unsetenv("SLIP_PASSWORD");
  EXPECT_EQ(slipd.log().find("nope-pass"), std::string::npos) << slipd.log();
  Peer bob(slipd.address(), "", "bob", "bob-pass");
  EXPECT_TRUE(bob.wait_ready());
}

TEST(Auth, HashPasswordPrintsAHashThatSlipdAccepts) {
  FILE* p = popen((std::string("echo 'pw-from-stdin' | ") + SLIPD_PATH + " --hash-password").c_str(), "r");
  ASSERT_NE(p, nullptr);
  char buf[512] = {};
  ASSERT_NE(fgets(buf, sizeof(buf), p), nullptr);
  EXPECT_EQ(pclose(p), 0);
  std::string hash(buf);
  while (!hash.empty() && hash.back() == '\n') hash.pop_back();
  ASSERT_EQ(hash.rfind("$argon2id$", 0), 0u) << hash;
  ConfigFile cfg("[[users]]\nname = \"op\"\npassword_hash = \"" + hash + "\"\n");
  test::SlipdProcess slipd({"--config", cfg.path()});
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  std::string out;
  EXPECT_EQ(slip({"ping", "-s", slipd.address(), "-c", "1", "--user", "op", "--password", "pw-from-stdin"}, &out), 0)
      << out;
}

TEST(Auth, DeniedPublishIsReportedReachesNobodyAndTheConnectionStaysUsable) {
  ConfigFile cfg(users_config(R"("orders.>")"));
  test::SlipdProcess slipd({"--config", cfg.path()});
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  Peer admin(slipd.address(), "admin-token"), alice(slipd.address(), "alice-token");
  ASSERT_TRUE(admin.wait_ready() && alice.wait_ready());
  admin.subscribe(">");
  alice.publish("admin.reset", "no");
  alice.sync();
  auto refusals = alice.refusals();
  ASSERT_EQ(refusals.size(), 1u);
  EXPECT_EQ(refusals[0].op, wire::FrameType::kPub);
  EXPECT_EQ(refusals[0].subject, "admin.reset");
  EXPECT_EQ(refusals[0].status.code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(refusals[0].status.message(), "permission denied: publish to \"admin.reset\" for user \"alice\"");
  // Still connected, and an allowed publish goes through.
  alice.publish("orders.1", "yes");
  alice.sync();
  ASSERT_TRUE(admin.wait_for([&] { return admin.received(">").size() >= 1; }));
  admin.sync();
  EXPECT_EQ(admin.received(">"), std::vector<std::string>{"orders.1=yes"});
  EXPECT_TRUE(alice.closed().empty());
  EXPECT_EQ(alice.refusals().size(), 1u);

  // The same through `slip pub`: the error is printed and the exit code is not 0.
  std::string out;
  EXPECT_NE(slip({"pub", "-s", slipd.address(), "--token", "alice-token", "admin.reset", "x"}, &out), 0) << out;
  EXPECT_NE(out.find("permission denied: publish to \"admin.reset\" for user \"alice\""), std::string::npos) << out;
  EXPECT_EQ(slip({"pub", "-s", slipd.address(), "--token", "alice-token", "orders.2", "x"}, &out), 0) << out;
  ASSERT_TRUE(admin.wait_for([&] { return admin.received(">").size() == 2; }));
  admin.sync();
  EXPECT_EQ(admin.received(">").back(), "orders.2=x");
}

TEST(Auth, DeniedSubscribeIsReportedAndReceivesNothing) {
  ConfigFile cfg(users_config(R"("orders.>")"));
  test::SlipdProcess slipd({"--config", cfg.path()});
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  Peer admin(slipd.address(), "admin-token"), alice(slipd.address(), "alice-token");
  ASSERT_TRUE(admin.wait_ready() && alice.wait_ready());
  const std::uint64_t denied = alice.subscribe(">");
  const std::uint64_t narrower = alice.subscribe("orders.*");
  auto refusals = alice.refusals();
  ASSERT_EQ(refusals.size(), 1u);
  EXPECT_EQ(refusals[0].op, wire::FrameType::kSub);
  EXPECT_EQ(refusals[0].sid, denied);
  EXPECT_NE(refusals[0].sid, narrower);
  EXPECT_EQ(refusals[0].status.code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(refusals[0].status.message(), "permission denied: subscribe to \">\" for user \"alice\"");
  admin.publish("admin.reset", "secret");
  admin.publish("orders.7", "ok");
  admin.sync();
  ASSERT_TRUE(alice.wait_for([&] { return alice.received("orders.*").size() == 1; }));
  alice.sync();
  EXPECT_TRUE(alice.received(">").empty());
  EXPECT_EQ(alice.received("orders.*"), std::vector<std::string>{"orders.7=ok"});

  std::string out;
  EXPECT_NE(slip({"sub", "-s", slipd.address(), "--token", "alice-token", "admin.>"}, &out), 0) << out;
  EXPECT_NE(out.find("permission denied: subscribe to \"admin.>\" for user \"alice\""), std::string::npos) << out;
}

TEST(Auth, RequestReplyWorksForRestrictedUsers) {
  ConfigFile cfg(R"(
[[users]]
name = "requester"
token = "req"
publish = { allow = ["svc.>"] }
subscribe = { allow = ["_INBOX.>"] }

[[users]]
name = "responder"
token = "resp"
publish = { allow = ["status.>"] }
subscribe = { allow = ["svc.>"] }
)");
  test::SlipdProcess slipd({"--config", cfg.path()});
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  Peer req(slipd.address(), "req"), resp(slipd.address(), "resp");
  ASSERT_TRUE(req.wait_ready() && resp.wait_ready());
  resp.run([&] {
    (void)resp.client().subscribe("svc.echo", "", [&](const Message& m) {
      (void)resp.client().publish(m.reply, Slice::copy_of("re:" + m.payload.to_string()));
    });
  });
  resp.sync();
  std::promise<Result<std::string>> got;
  req.run([&] {
    ASSERT_TRUE(req.client()
                    .request("svc.echo", Slice::copy_of("hi"), std::chrono::milliseconds(20000),
                             [&](Result<Message> r) {
                               got.set_value(r.is_ok() ? Result<std::string>(r->payload.to_string())
                                                       : Result<std::string>(r.status()));
                             })
                    .is_ok());
  });
  auto f = got.get_future();
  ASSERT_EQ(f.wait_for(kLiveness), std::future_status::ready);
  Result<std::string> r = f.get();
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(*r, "re:hi");
  // The one-time response permission does not open the inbox for anything else.
  resp.publish("_INBOX.other", "x");
  resp.sync();
  EXPECT_EQ(resp.refusals().size(), 1u);
}

TEST(Auth, SighupReloadChangesPermissionsOfOpenConnections) {
  ConfigFile cfg(users_config(R"("orders.>")"));
  test::SlipdProcess slipd({"--config", cfg.path()});
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  Peer admin(slipd.address(), "admin-token"), alice(slipd.address(), "alice-token"),
      bob(slipd.address(), "", "bob", "bob-pass");
  ASSERT_TRUE(admin.wait_ready() && alice.wait_ready() && bob.wait_ready());
  admin.subscribe("news.>");
  alice.publish("news.today", "before");
  alice.sync();
  ASSERT_EQ(alice.refusals().size(), 1u);

  // Allow news.> for alice and remove bob.
  std::string text = users_config(R"("orders.>", "news.>")");
  text = text.substr(0, text.find("[[users]]\nname = \"bob\""));
  cfg.write(text);
  ASSERT_EQ(kill(slipd.pid(), SIGHUP), 0);
  ASSERT_TRUE(eventually([&] { return slipd.log().find("SIGHUP: reloaded 2 users") != std::string::npos; }))
      << slipd.log();
  alice.publish("news.today", "after");  // the same connection, new permissions
  alice.sync();
  ASSERT_TRUE(admin.wait_for([&] { return admin.received("news.>").size() == 1; }));
  admin.sync();
  EXPECT_EQ(admin.received("news.>"), std::vector<std::string>{"news.today=after"});
  EXPECT_EQ(alice.refusals().size(), 1u);
  // bob is gone from the config: his connection is closed, saying why.
  ASSERT_TRUE(bob.wait_for([&] { return !bob.ready(); }));
  ASSERT_TRUE(bob.wait_for([&] { return !bob.closed().empty(); }));
  EXPECT_EQ(bob.closed()[0].code(), StatusCode::kUnauthenticated) << bob.closed()[0].to_string();
  std::string out;
  EXPECT_NE(slip({"ping", "-s", slipd.address(), "-c", "1", "--user", "bob", "--password", "bob-pass"}, &out), 0);

  // A broken file on SIGHUP is logged and the previous users stay.
  cfg.write("[[users]]\nname = \"alice\"\n");
  ASSERT_EQ(kill(slipd.pid(), SIGHUP), 0);
  ASSERT_TRUE(eventually([&] { return slipd.log().find("reload failed") != std::string::npos; })) << slipd.log();
  EXPECT_EQ(slip({"ping", "-s", slipd.address(), "-c", "1", "--token", "alice-token"}, &out), 0) << out;
  alice.publish("news.today", "still");
  alice.sync();
  ASSERT_TRUE(admin.wait_for([&] { return admin.received("news.>").size() == 2; }));
}

TEST(Auth, ReloadRevokesSubscriptionsThatAreNoLongerAllowed) {
  ConfigFile cfg(users_config(R"("orders.>")"));
  test::SlipdProcess slipd({"--config", cfg.path()});
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  Peer admin(slipd.address(), "admin-token"), alice(slipd.address(), "alice-token");
  ASSERT_TRUE(admin.wait_ready() && alice.wait_ready());
  const std::uint64_t sid = alice.subscribe("orders.eu");
  std::string text = users_config(R"("orders.>")");
  const std::string from = R"(subscribe = { allow = ["orders.>", "_INBOX.>"] })";
  text.replace(text.find(from), from.size(), R"(subscribe = { allow = ["orders.us", "_INBOX.>"] })");
  cfg.write(text);
  ASSERT_EQ(kill(slipd.pid(), SIGHUP), 0);
  ASSERT_TRUE(alice.wait_for([&] { return alice.refusals().size() == 1; })) << slipd.log();
  EXPECT_EQ(alice.refusals()[0].sid, sid);
  EXPECT_EQ(alice.refusals()[0].status.code(), StatusCode::kPermissionDenied);
  admin.publish("orders.eu", "late");
  admin.sync();
  alice.sync();
  EXPECT_TRUE(alice.received("orders.eu").empty());
}

// ---- Password verification off the event loop ------------------------------------------------

// A slipd with one event loop (so every connection shares it) whose password verifications wait
// while a hold file exists (SLIPD_HOLD_AUTH_FOR_TEST): a test holds a login in progress for as
// long as it needs, without depending on how long Argon2id takes.
class HeldSlipd {
 public:
  explicit HeldSlipd(std::vector<std::string> extra = {})
      : cfg_(users_config(R"("orders.>")")), hold_(cfg_.dir() + "/hold") {
    std::ofstream(hold_) << "held";
    std::vector<std::string> args = {"--config", cfg_.path(), "--threads", "1", "--http-listen", "127.0.0.1:0",
                                     "--handshake-timeout-ms", "600000"};
    args.insert(args.end(), extra.begin(), extra.end());
    setenv("SLIPD_HOLD_AUTH_FOR_TEST", hold_.c_str(), 1);
    slipd_ = std::make_unique<test::SlipdProcess>(args);
    unsetenv("SLIPD_HOLD_AUTH_FOR_TEST");
  }
  test::SlipdProcess& slipd() { return *slipd_; }
  void release() { std::remove(hold_.c_str()); }
  // A sample from /metrics; nullopt when absent or unreachable.
  std::optional<double> metric(const std::string& name, const std::map<std::string, std::string>& labels = {}) {
    auto r = test::http_get(slipd_->listener("http"), "/metrics");
    if (!r.is_ok() || r->status != 200) return std::nullopt;
    return test::check_prometheus_text(r->body).value(name, labels);
  }
  bool metric_is(const std::string& name, double want, const std::map<std::string, std::string>& labels = {}) {
    return eventually([&] { return metric(name, labels) == want; });
  }

 private:
  ConfigFile cfg_;
  std::string hold_;
  std::unique_ptr<test::SlipdProcess> slipd_;
};

// Preface, HELLO with bob's password, and `pipelined` frames, in one write.
void send_password_hello(test::RawClient& c, const std::string& password, const wire::FrameEncoder* pipelined = nullptr) {
  wire::FrameEncoder e(1024);
  e.add_preface();
  wire::Hello h;
  h.codecs = 0;
  h.auth_user = "bob";
  h.auth_password = password;
  h.client_name = "held-login";
  e.add(h);
  Chain all = e.take();
  if (pipelined != nullptr) all.append(const_cast<wire::FrameEncoder*>(pipelined)->take());
  c.decoder() = wire::FrameDecoder(wire::WireLimits{}, /*expect_preface=*/true);
  c.send_chain(all);
}

TEST(AuthOffLoop, OtherConnectionsAreServedWhileAPasswordIsBeingVerified) {
  HeldSlipd held;
  ASSERT_TRUE(held.slipd().ok()) << held.slipd().log();
  Peer admin(held.slipd().address(), "admin-token");
  ASSERT_TRUE(admin.wait_ready());
  // bob's login reaches a verification worker and is held there.
  Peer bob(held.slipd().address(), "", "bob", "bob-pass");
  ASSERT_TRUE(held.metric_is("slip_auth_verifying", 1)) << held.slipd().log();
  // Meanwhile the connection that shares bob's event loop makes a full publish/subscribe round
  // trip, and a new token client logs in (tokens are checked on the loop).
  admin.subscribe("orders.x");
  admin.publish("orders.x", "while-held");
  ASSERT_TRUE(admin.wait_for([&] { return admin.received("orders.x").size() == 1; }));
  EXPECT_EQ(admin.received("orders.x"), std::vector<std::string>{"orders.x=while-held"});
  Peer alice(held.slipd().address(), "alice-token");
  ASSERT_TRUE(alice.wait_ready());
  alice.publish("orders.x", "from-alice");
  ASSERT_TRUE(admin.wait_for([&] { return admin.received("orders.x").size() == 2; }));
  // bob is still waiting for his verdict.
  EXPECT_FALSE(bob.ready());
  EXPECT_EQ(held.metric("slip_auth_verifying"), 1);
  held.release();
  ASSERT_TRUE(bob.wait_ready()) << held.slipd().log();
  bob.publish("orders.x", "from-bob");
  ASSERT_TRUE(admin.wait_for([&] { return admin.received("orders.x").size() == 3; }));
  EXPECT_EQ(admin.received("orders.x").back(), "orders.x=from-bob");
  EXPECT_TRUE(bob.closed().empty());
  EXPECT_TRUE(held.metric_is("slip_auth_verifications_total", 1));
  EXPECT_EQ(held.metric("slip_auth_failures_total", {{"protocol", "native"}}), 0);
}

TEST(AuthOffLoop, FramesPipelinedBehindHelloWaitForTheVerdictAndRunInOrder) {
  HeldSlipd held;
  ASSERT_TRUE(held.slipd().ok()) << held.slipd().log();
  test::RawClient raw(held.slipd().port());
  ASSERT_TRUE(raw.connected());
  wire::FrameEncoder pipelined(1024);
  wire::Sub sub;
  sub.sid = 7;
  sub.subject = "orders.p";
  pipelined.add(sub);
  pipelined.add(wire::Pub{"orders.p", "", false, {}, Slice::copy_of(std::string("pipelined"))});
  pipelined.add(wire::Ping{42});
  send_password_hello(raw, "bob-pass", &pipelined);
  ASSERT_TRUE(held.metric_is("slip_auth_verifying", 1)) << held.slipd().log();
  held.release();
  auto welcome = raw.read_frame();
  ASSERT_TRUE(welcome.is_ok()) << welcome.status().to_string();
  EXPECT_EQ(welcome->type, wire::FrameType::kWelcome);
  // SUB, then PUB (delivered to that SUB), then PING: processed in the order sent.
  auto msg = raw.read_frame();
  ASSERT_TRUE(msg.is_ok()) << msg.status().to_string();
  ASSERT_EQ(msg->type, wire::FrameType::kMsg);
  auto m = wire::decode_msg(*msg, wire::WireLimits{});
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  EXPECT_EQ(m->sid, 7u);
  EXPECT_EQ(m->payload.to_string(), "pipelined");
  auto pong = raw.read_frame();
  ASSERT_TRUE(pong.is_ok()) << pong.status().to_string();
  EXPECT_EQ(pong->type, wire::FrameType::kPong);
}

TEST(AuthOffLoop, WrongPasswordIsRefusedAsBeforeAndCounted) {
  HeldSlipd held;
  ASSERT_TRUE(held.slipd().ok()) << held.slipd().log();
  held.release();
  std::string out;
  EXPECT_NE(slip({"ping", "-s", held.slipd().address(), "-c", "1", "--user", "bob", "--password", "nope-pass"}, &out), 0);
  EXPECT_NE(out.find("UNAUTHENTICATED"), std::string::npos) << out;
  EXPECT_NE(out.find("authentication failed for user \"bob\""), std::string::npos) << out;
  // An unknown user gets the same answer.
  EXPECT_NE(slip({"ping", "-s", held.slipd().address(), "-c", "1", "--user", "carol", "--password", "x"}, &out), 0);
  EXPECT_NE(out.find("authentication failed for user \"carol\""), std::string::npos) << out;
  EXPECT_NE(slip({"ping", "-s", held.slipd().address(), "-c", "1", "--token", "nope"}, &out), 0);
  EXPECT_TRUE(held.metric_is("slip_auth_failures_total", 3, {{"protocol", "native"}})) << held.metric("slip_auth_failures_total", {{"protocol", "native"}}).value_or(-1);
  EXPECT_EQ(held.metric("slip_auth_verifications_total"), 2);  // the token was checked on the loop
  EXPECT_EQ(slip({"ping", "-s", held.slipd().address(), "-c", "1", "--user", "bob", "--password", "bob-pass"}, &out), 0)
      << out;
  EXPECT_EQ(held.slipd().log().find("nope-pass"), std::string::npos);
}

TEST(AuthOffLoop, AClientThatLeavesDuringVerificationLeavesNoTrace) {
  HeldSlipd held;
  ASSERT_TRUE(held.slipd().ok()) << held.slipd().log();
  {
    test::RawClient raw(held.slipd().port());
    ASSERT_TRUE(raw.connected());
    send_password_hello(raw, "bob-pass");
    ASSERT_TRUE(held.metric_is("slip_auth_verifying", 1)) << held.slipd().log();
    ASSERT_TRUE(held.metric_is("slip_connections_open", 1, {{"protocol", "native"}}));
  }  // closed while its verification is held
  ASSERT_TRUE(held.metric_is("slip_connections_open", 0, {{"protocol", "native"}})) << held.slipd().log();
  held.release();
  ASSERT_TRUE(held.metric_is("slip_auth_abandoned_total", 1)) << held.slipd().log();
  EXPECT_EQ(held.metric("slip_connections_open", {{"protocol", "native"}}), 0);
  EXPECT_EQ(held.metric("slip_auth_failures_total", {{"protocol", "native"}}), 0);
  // The server goes on serving, and exits cleanly (a sanitizer report would fail the exit).
  std::string out;
  EXPECT_EQ(slip({"ping", "-s", held.slipd().address(), "-c", "1", "--user", "bob", "--password", "bob-pass"}, &out), 0)
      << out;
  const int status = held.slipd().stop(SIGTERM);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status << "\n" << held.slipd().log();
}

TEST(AuthOffLoop, AFullVerificationQueueRefusesWithAuthenticationBusy) {
  HeldSlipd held({"--auth-threads", "1", "--auth-queue", "1"});
  ASSERT_TRUE(held.slipd().ok()) << held.slipd().log();
  test::RawClient first(held.slipd().port()), second(held.slipd().port());
  send_password_hello(first, "bob-pass");
  ASSERT_TRUE(held.metric_is("slip_auth_verifying", 1)) << held.slipd().log();  // on the worker
  send_password_hello(second, "bob-pass");
  ASSERT_TRUE(held.metric_is("slip_auth_queued", 1)) << held.slipd().log();  // the queue is full
  std::string out;
  EXPECT_NE(slip({"ping", "-s", held.slipd().address(), "-c", "1", "--user", "bob", "--password", "bob-pass"}, &out), 0);
  EXPECT_NE(out.find("RESOURCE_EXHAUSTED"), std::string::npos) << out;
  EXPECT_NE(out.find("authentication busy"), std::string::npos) << out;
  EXPECT_EQ(held.metric("slip_auth_busy_total"), 1);
  EXPECT_EQ(held.metric("slip_auth_failures_total", {{"protocol", "native"}}), 0);  // busy is not a failure
  // Tokens do not queue: they are still admitted.
  EXPECT_EQ(slip({"ping", "-s", held.slipd().address(), "-c", "1", "--token", "admin-token"}, &out), 0) << out;
  held.release();
  for (test::RawClient* c : {&first, &second}) {
    auto f = c->read_frame();
    ASSERT_TRUE(f.is_ok()) << f.status().to_string();
    EXPECT_EQ(f->type, wire::FrameType::kWelcome);
  }
}

TEST(Limits, PerIpConnectionLimitRefusesTheNextConnection) {
  ConfigFile cfg("max_connections_per_ip = 2\n");
  test::SlipdProcess slipd({"--config", cfg.path()});
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  EXPECT_NE(slipd.log().find("authentication off"), std::string::npos) << slipd.log();
  auto a = std::make_unique<Peer>(slipd.address(), "");
  Peer b(slipd.address(), "");
  ASSERT_TRUE(a->wait_ready() && b.wait_ready());
  std::string out;
  EXPECT_NE(slip({"ping", "-s", slipd.address(), "-c", "1"}, &out), 0) << out;
  EXPECT_NE(out.find("RESOURCE_EXHAUSTED"), std::string::npos) << out;
  EXPECT_NE(out.find("too many connections from 127.0.0.1 (limit 2)"), std::string::npos) << out;
  EXPECT_NE(slipd.log().find("too many connections from 127.0.0.1"), std::string::npos) << slipd.log();
  // A connection that leaves makes room.
  a.reset();
  EXPECT_TRUE(eventually([&] { return slip({"ping", "-s", slipd.address(), "-c", "1"}, &out) == 0; })) << out;
}

TEST(Limits, SubscriptionOverTheLimitIsRefusedAndTheConnectionStaysUsable) {
  ConfigFile cfg("max_subscriptions = 2\n");
  test::SlipdProcess slipd({"--config", cfg.path()});
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  Peer sub(slipd.address(), ""), pub(slipd.address(), "");
  ASSERT_TRUE(sub.wait_ready() && pub.wait_ready());
  sub.subscribe("a");
  sub.subscribe("b");
  const std::uint64_t third = sub.subscribe("c");
  ASSERT_EQ(sub.refusals().size(), 1u);
  EXPECT_EQ(sub.refusals()[0].sid, third);
  EXPECT_EQ(sub.refusals()[0].status.code(), StatusCode::kOverloaded);
  EXPECT_NE(sub.refusals()[0].status.message().find("max_subscriptions 2"), std::string_view::npos);
  pub.publish("b", "1");
  pub.publish("c", "2");
  pub.sync();
  ASSERT_TRUE(sub.wait_for([&] { return sub.received("b").size() == 1; }));
  sub.sync();
  EXPECT_TRUE(sub.received("c").empty());
  EXPECT_TRUE(sub.closed().empty());
}

TEST(Limits, CommandLineFlagsOverrideTheConfigFile) {
  ConfigFile cfg("max_connections_per_ip = 1\nname = \"from-file\"\n");
  test::SlipdProcess slipd({"--config", cfg.path(), "--max-connections-per-ip", "3"});
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  Peer a(slipd.address(), ""), b(slipd.address(), "");
  ASSERT_TRUE(a.wait_ready() && b.wait_ready());
  std::string out;
  EXPECT_EQ(slip({"ping", "-s", slipd.address(), "-c", "1"}, &out), 0) << out;
  EXPECT_NE(out.find("(from-file)"), std::string::npos) << out;  // the file still applies where no flag is given
}

TEST(Config, BadFilesStopSlipdWithTheKeyAndLine) {
  ConfigFile cfg("listen = \"127.0.0.1:0\"\nmax_conections = 5\n");
  std::string out;
  EXPECT_EQ(test::run_program({SLIPD_PATH, "--config", cfg.path()}, &out), 2) << out;
  EXPECT_NE(out.find("slipd.toml:2: unknown key 'max_conections'"), std::string::npos) << out;
  cfg.write("threads = \"two\"\n");
  EXPECT_NE(test::run_program({SLIPD_PATH, "--config", cfg.path()}, &out), 0);
  EXPECT_NE(out.find("slipd.toml:1: 'threads' must be an integer, not a string"), std::string::npos) << out;
  cfg.write("idle = \"sleepy\"\n");
  EXPECT_NE(test::run_program({SLIPD_PATH, "--config", cfg.path()}, &out), 0);
  EXPECT_NE(out.find("slipd.toml:1: 'idle'"), std::string::npos) << out;
  cfg.write("[[users]]\nname = \"x\"\npassword_hash = \"plain-text\"\n");
  EXPECT_NE(test::run_program({SLIPD_PATH, "--config", cfg.path(), "--listen", "127.0.0.1:0"}, &out), 0);
  EXPECT_NE(out.find("not a libsodium password hash"), std::string::npos) << out;
}

TEST(Config, EverySlipdFlagHasAConfigKey) {
  std::string help;
  ASSERT_EQ(test::run_program({SLIPD_PATH, "--help"}, &help), 0) << help;
  std::set<std::string> keys;
  for (const slipd::SettingSpec& s : slipd::setting_specs()) keys.insert(std::string(s.key));
  std::size_t flags = 0;
  for (std::size_t at = help.find("\n  --"); at != std::string::npos; at = help.find("\n  --", at + 1)) {
    std::size_t begin = at + 5;
    std::size_t end = help.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-", begin);
    std::string key = help.substr(begin, end - begin);
    if (key == "help" || key == "config" || key == "hash-password") continue;
    for (char& c : key) c = c == '-' ? '_' : c;
    ++flags;
    EXPECT_TRUE(keys.count(key)) << "slipd --" << key << " has no config key " << key;
  }
  EXPECT_GT(flags, 30u) << help;
}

TEST(Config, TheExampleFileStartsSlipd) {
  test::SlipdProcess slipd({"--config", std::string(SLIP_SOURCE_DIR) + "/docs/slipd.example.toml"});
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  std::string out;
  EXPECT_EQ(slip({"ping", "-s", slipd.address(), "-c", "1", "--token", "change-me-to-a-long-random-token"}, &out), 0)
      << out;
  EXPECT_NE(slip({"ping", "-s", slipd.address(), "-c", "1"}, &out), 0) << out;  // its users apply
}

TEST(Config, DataDirIsCreatedAndLockedAndAFileInTheWayIsAClearError) {
  ConfigFile cfg("");
  const std::string dir = cfg.dir() + "/data/nested";
  {
    test::SlipdProcess slipd({"--data-dir", dir});
    ASSERT_TRUE(slipd.ok()) << slipd.log();
    EXPECT_EQ(access((dir + "/slipd.pid").c_str(), F_OK), 0);
    // A second slipd on the same directory is refused.
    std::string out;
    EXPECT_NE(test::run_program({SLIPD_PATH, "--listen", "127.0.0.1:0", "--data-dir", dir}, &out), 0);
    EXPECT_NE(out.find("in use by another slipd"), std::string::npos) << out;
  }
  std::ofstream(cfg.dir() + "/file") << "x";
  std::string out;
  EXPECT_NE(test::run_program({SLIPD_PATH, "--listen", "127.0.0.1:0", "--data-dir", cfg.dir() + "/file/sub"}, &out), 0);
  EXPECT_NE(out.find("cannot create data directory"), std::string::npos) << out;
}

}  // namespace
}  // namespace slip::broker
