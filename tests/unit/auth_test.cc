// Authentication and permissions: the rules table by table, then the Authenticator.
#include "broker/auth.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "broker/auth_pool.h"

namespace slip::broker {
namespace {

struct CoverCase {
  const char* outer;
  const char* inner;
  bool covers;
};

TEST(PermissionsTest, PatternCoversFollowsTheWildcardRules) {
  const CoverCase cases[] = {
      {"orders.>", "orders.*", true},
      {"orders.>", "orders.eu.>", true},
      {"orders.>", "orders.eu.created", true},
      {"orders.>", "orders.*.created", true},
      {"orders.>", ">", false},
      {"orders.>", "orders", false},
      {"orders.>", "orders.>", true},
      {"orders.*", "orders.eu", true},
      {"orders.*", "orders.*", true},
      {"orders.*", "orders.>", false},
      {"orders.*", "orders.eu.created", false},
      {"orders.*", "*.eu", false},
      {"*.eu", "orders.eu", true},
      {">", ">", true},
      {">", "a", true},
      {">", "*.b.>", true},
      {"a.b", "a.b", true},
      {"a.b", "a.c", false},
      {"a.b", "a.*", false},
      {"a.b", "a", false},
      {"a", "a.b", false},
      {"*", ">", false},
      {"*.*", "*.>", false},
      {"_INBOX.>", "_INBOX.abc.>", true},
  };
  for (const CoverCase& c : cases) {
    EXPECT_EQ(pattern_covers(c.outer, c.inner), c.covers) << c.outer << " covers " << c.inner;
  }
}

struct Rule {
  const char* op;  // "pub" or "sub"
  const char* subject;
  bool allowed;
};

struct PermCase {
  const char* name;
  Permissions perms;
  std::vector<Rule> rules;
};

TEST(PermissionsTest, AllowAndDenyListsTableDriven) {
  std::vector<PermCase> cases;
  cases.push_back({"empty lists allow everything", {}, {{"pub", "a.b", true}, {"sub", ">", true}, {"sub", "x.*", true}}});
  {
    Permissions p;
    p.publish.allow = {"orders.>"};
    p.subscribe.allow = {"orders.>", "_INBOX.>"};
    cases.push_back({"allow orders.>", p,
                     {{"pub", "orders.eu", true},
                      {"pub", "orders.eu.created", true},
                      {"pub", "orders", false},
                      {"pub", "payments.x", false},
                      {"sub", "orders.*", true},
                      {"sub", "orders.>", true},
                      {"sub", "orders.eu.created", true},
                      {"sub", ">", false},
                      {"sub", "*.eu", false},
                      {"sub", "_INBOX.abc.>", true}}});
  }
  {
    Permissions p;
    p.publish.deny = {"admin.>"};
    p.subscribe.deny = {"secret", "admin.>"};
    cases.push_back({"deny only", p,
                     {{"pub", "admin.reset", false},
                      {"pub", "admin", true},
                      {"pub", "orders.x", true},
                      {"sub", "secret", false},
                      {"sub", "admin.*", false},
                      {"sub", "admin.>", false},
                      {"sub", ">", true},  // overlaps a deny: allowed, denied subjects filtered
                      {"sub", "secrets", true}}});
  }
  {
    Permissions p;
    p.publish.allow = {"orders.>"};
    p.publish.deny = {"orders.internal.>"};
    p.subscribe.allow = {"orders.>"};
    p.subscribe.deny = {"orders.internal.*"};
    cases.push_back({"deny wins over allow", p,
                     {{"pub", "orders.eu", true},
                      {"pub", "orders.internal.audit", false},
                      {"sub", "orders.internal.audit", false},
                      {"sub", "orders.internal.*", false},
                      {"sub", "orders.internal.>", true},  // partly overlapping: filtered on delivery
                      {"sub", "orders.*", true}}});
  }
  {
    Permissions p;
    p.publish.allow = {"a.*.c"};
    p.subscribe.allow = {"a.*.c"};
    cases.push_back({"single-token wildcard allow", p,
                     {{"pub", "a.b.c", true},
                      {"pub", "a.b.d", false},
                      {"pub", "a.b.c.d", false},
                      {"sub", "a.*.c", true},
                      {"sub", "a.x.c", true},
                      {"sub", "a.>", false},
                      {"sub", "a.*.*", false}}});
  }
  for (const PermCase& c : cases) {
    SCOPED_TRACE(c.name);
    for (const Rule& r : c.rules) {
      const bool got = std::string(r.op) == "pub" ? c.perms.may_publish(r.subject) : c.perms.may_subscribe(r.subject);
      EXPECT_EQ(got, r.allowed) << r.op << " " << r.subject;
    }
  }
}

TEST(PermissionsTest, DeliveryIsFilteredBySubscribeDeny) {
  Permissions p;
  p.subscribe.deny = {"orders.secret", "audit.>"};
  EXPECT_TRUE(p.may_receive("orders.public"));
  EXPECT_FALSE(p.may_receive("orders.secret"));
  EXPECT_FALSE(p.may_receive("audit.log.x"));
}

TEST(PermissionsTest, ValidateNamesTheBadPattern) {
  Permissions p;
  p.subscribe.deny = {"ok", "a..b"};
  Status s = p.validate();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("subscribe.deny"), std::string_view::npos) << s.message();
  EXPECT_NE(s.message().find("a..b"), std::string_view::npos) << s.message();
}

// One password hash for the whole suite: Argon2id is deliberately slow.
const std::string& test_hash() {
  static const std::string h = *hash_password("s3cret");
  return h;
}

std::vector<UserConfig> sample_users() {
  UserConfig tok;
  tok.name = "svc";
  tok.token = "tok-123";
  tok.permissions.publish.allow = {"svc.>"};
  UserConfig bob;
  bob.name = "bob";
  bob.password_hash = test_hash();
  bob.permissions.subscribe.allow = {"orders.>"};
  return {tok, bob};
}

TEST(AuthenticatorTest, NoUsersMeansNoAuthenticationAndNoRestrictions) {
  Authenticator a;
  EXPECT_FALSE(a.required());
  Result<Identity> id = a.authenticate({});
  ASSERT_TRUE(id.is_ok());
  EXPECT_EQ(id->permissions, nullptr);
  EXPECT_TRUE(a.lookup("anyone").has_value());
}

TEST(AuthenticatorTest, HashIsAnArgon2idStringThatIsNeverThePassword) {
  const std::string& h = test_hash();
  EXPECT_EQ(h.rfind("$argon2id$", 0), 0u) << h;
  EXPECT_EQ(h.find("s3cret"), std::string::npos);
  EXPECT_NE(*hash_password("s3cret"), h);  // salted
}

TEST(AuthenticatorTest, TokensAndPasswordsAuthenticateTheirUser) {
  Authenticator a;
  ASSERT_TRUE(a.reload(sample_users()).is_ok());
  EXPECT_TRUE(a.required());
  EXPECT_EQ(a.user_count(), 2u);

  Result<Identity> t = a.authenticate({"tok-123", "", ""});
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  EXPECT_EQ(t->user, "svc");
  ASSERT_NE(t->permissions, nullptr);
  EXPECT_TRUE(t->permissions->may_publish("svc.x"));
  EXPECT_FALSE(t->permissions->may_publish("other"));

  Result<Identity> b = a.authenticate({"", "bob", "s3cret"});
  ASSERT_TRUE(b.is_ok()) << b.status().to_string();
  EXPECT_EQ(b->user, "bob");
  // The second time is answered from the remembered digest; same answer.
  Result<Identity> again = a.authenticate({"", "bob", "s3cret"});
  ASSERT_TRUE(again.is_ok());
  EXPECT_EQ(again->user, "bob");
}

TEST(AuthenticatorTest, WrongOrMissingCredentialsAreUnauthenticatedWithoutSecretsInTheMessage) {
  Authenticator a;
  ASSERT_TRUE(a.reload(sample_users()).is_ok());
  struct Case {
    Credentials c;
    const char* secret;
  };
  const Case cases[] = {
      {{"", "", ""}, nullptr},
      {{"tok-999", "", ""}, "tok-999"},
      {{"tok-12", "", ""}, "tok-12"},
      {{"", "bob", "wrong-pass"}, "wrong-pass"},
      {{"", "bob", ""}, nullptr},
      {{"", "nobody", "s3cret"}, "s3cret"},
      {{"", "svc", "tok-123"}, "tok-123"},  // a token user has no password
  };
  for (const Case& c : cases) {
    Result<Identity> r = a.authenticate(c.c);
    ASSERT_FALSE(r.is_ok()) << c.c.user << "/" << c.c.token;
    EXPECT_EQ(r.status().code(), StatusCode::kUnauthenticated);
    if (c.secret) {
      EXPECT_EQ(r.status().message().find(c.secret), std::string_view::npos) << r.status().message();
    }
  }
  // A success remembered for bob does not let a wrong password through afterwards.
  ASSERT_TRUE(a.authenticate({"", "bob", "s3cret"}).is_ok());
  EXPECT_FALSE(a.authenticate({"", "bob", "s3cret2"}).is_ok());
}

TEST(AuthenticatorTest, ReloadRejectsBadTablesAndKeepsTheOldOne) {
  Authenticator a;
  ASSERT_TRUE(a.reload(sample_users()).is_ok());
  const std::uint64_t gen = a.generation();
  auto expect_rejected = [&](std::vector<UserConfig> users, std::string_view fragment) {
    Status s = a.reload(std::move(users));
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find(fragment), std::string_view::npos) << s.message();
  };
  std::vector<UserConfig> dup = sample_users();
  dup[1].name = "svc";
  expect_rejected(dup, "used twice");
  std::vector<UserConfig> both = sample_users();
  both[0].password_hash = test_hash();
  expect_rejected(both, "exactly one of token and password_hash");
  std::vector<UserConfig> plain = sample_users();
  plain[1].password_hash = "s3cret";
  expect_rejected(plain, "not a libsodium password hash");
  std::vector<UserConfig> nameless = sample_users();
  nameless[0].name = "";
  expect_rejected(nameless, "no name");
  std::vector<UserConfig> badpat = sample_users();
  badpat[0].permissions.publish.allow = {"a.>.b"};
  expect_rejected(badpat, "publish.allow");
  EXPECT_EQ(a.generation(), gen);
  EXPECT_TRUE(a.authenticate({"tok-123", "", ""}).is_ok());
}

TEST(AuthenticatorTest, LookupSeesTheReloadedTable) {
  Authenticator a;
  ASSERT_TRUE(a.reload(sample_users()).is_ok());
  ASSERT_TRUE(a.lookup("bob").has_value());
  EXPECT_FALSE(a.lookup("bob")->permissions->may_subscribe(">"));
  std::vector<UserConfig> users = sample_users();
  users[1].permissions.subscribe.allow.clear();
  users.erase(users.begin());
  ASSERT_TRUE(a.reload(users).is_ok());
  EXPECT_FALSE(a.lookup("svc").has_value());
  EXPECT_FALSE(a.authenticate({"tok-123", "", ""}).is_ok());
  EXPECT_TRUE(a.lookup("bob")->permissions->may_subscribe(">"));
  EXPECT_FALSE(a.lookup("").has_value());  // anonymous clients are out once users exist
}

// ---- AuthPool --------------------------------------------------------------------------------

// Polls until pred holds; a generous bound so a broken test fails instead of hanging.
template <typename Pred>
bool eventually(Pred pred) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return false;
}

// A hold file that exists until release() (or the end of the test).
class HoldFile {
 public:
  HoldFile() {
    char tmpl[] = "/tmp/slip-auth-hold-XXXXXX";
    const int fd = mkstemp(tmpl);
    if (fd >= 0) close(fd);
    path_ = tmpl;
  }
  ~HoldFile() { release(); }
  void release() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(AuthPoolTest, TokensAreAnsweredAtOnceAndPasswordsOnAWorker) {
  Authenticator a;
  ASSERT_TRUE(a.reload(sample_users()).is_ok());
  AuthPool pool(a, AuthPoolOptions{});
  pool.start();
  auto alive = std::make_shared<int>(0);
  bool called = false;
  std::optional<Result<Identity>> t = pool.authenticate({"tok-123", "", ""}, alive, [&](Result<Identity>) { called = true; });
  ASSERT_TRUE(t.has_value());
  ASSERT_TRUE(t->is_ok());
  EXPECT_EQ((*t)->user, "svc");

  std::promise<Result<Identity>> got;
  std::optional<Result<Identity>> p =
      pool.authenticate({"", "bob", "s3cret"}, alive, [&](Result<Identity> r) { got.set_value(std::move(r)); });
  EXPECT_FALSE(p.has_value());
  Result<Identity> r = got.get_future().get();
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->user, "bob");
  EXPECT_EQ(pool.stats().verified.load(), 1u);
  EXPECT_FALSE(called);

  std::promise<Result<Identity>> wrong;
  EXPECT_FALSE(pool.authenticate({"", "bob", "nope"}, alive, [&](Result<Identity> x) { wrong.set_value(std::move(x)); })
                   .has_value());
  Result<Identity> w = wrong.get_future().get();
  EXPECT_EQ(w.status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(w.status().message(), "authentication failed for user \"bob\"");
}

TEST(AuthPoolTest, AFullQueueIsRefusedAsBusyAndAbandonedJobsAreSkipped) {
  Authenticator a;
  ASSERT_TRUE(a.reload(sample_users()).is_ok());
  HoldFile hold;
  AuthPoolOptions o;
  o.threads = 1;
  o.max_queued = 1;
  o.hold_file_for_test = hold.path();
  AuthPool pool(a, o);
  pool.start();
  std::atomic<int> done{0};
  auto count = [&](Result<Identity>) { done.fetch_add(1); };
  auto first = std::make_shared<int>(0);
  EXPECT_FALSE(pool.authenticate({"", "bob", "s3cret"}, first, count).has_value());
  ASSERT_TRUE(eventually([&] { return pool.stats().verifying.load() == 1; }));  // held on the worker
  auto second = std::make_shared<int>(0);
  EXPECT_FALSE(pool.authenticate({"", "bob", "s3cret"}, second, count).has_value());
  EXPECT_EQ(pool.stats().queued.load(), 1u);
  std::optional<Result<Identity>> busy = pool.authenticate({"", "bob", "s3cret"}, first, count);
  ASSERT_TRUE(busy.has_value());
  EXPECT_EQ(busy->status().code(), StatusCode::kOverloaded);
  EXPECT_NE(busy->status().message().find("authentication busy"), std::string_view::npos);
  EXPECT_EQ(pool.stats().busy.load(), 1u);
  // The second connection goes away while queued: its job is skipped and `done` never runs.
  second.reset();
  hold.release();
  ASSERT_TRUE(eventually([&] { return pool.stats().abandoned.load() == 1 && pool.stats().queued.load() == 0; }));
  ASSERT_TRUE(eventually([&] { return done.load() == 1; }));
  pool.stop();
  EXPECT_EQ(done.load(), 1);
  EXPECT_EQ(pool.stats().verified.load(), 1u);
}

TEST(AuthPoolTest, StopDropsQueuedJobsWithoutCallingThem) {
  Authenticator a;
  ASSERT_TRUE(a.reload(sample_users()).is_ok());
  HoldFile hold;
  AuthPoolOptions o;
  o.hold_file_for_test = hold.path();
  auto pool = std::make_unique<AuthPool>(a, o);
  pool->start();
  std::atomic<int> done{0};
  auto alive = std::make_shared<int>(0);
  for (int i = 0; i < 3; ++i) {
    EXPECT_FALSE(pool->authenticate({"", "bob", "s3cret"}, alive, [&](Result<Identity>) { done.fetch_add(1); })
                     .has_value());
  }
  ASSERT_TRUE(eventually([&] { return pool->stats().verifying.load() == 1; }));
  pool->stop();  // ends the hold; the running one finishes, the two queued are dropped
  EXPECT_LE(done.load(), 1);
  EXPECT_EQ(pool->stats().queued.load(), 0u);
  pool.reset();
}

}  // namespace
}  // namespace slip::broker
