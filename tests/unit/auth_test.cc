// Authentication and permissions: the rules table by table, then the Authenticator.
#include "broker/auth.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

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

}  // namespace
}  // namespace slip::broker
