// slipd's TOML configuration: settings, users, and the errors for everything else.
#include "config.h"

#include <gtest/gtest.h>

#include <set>

namespace slip::slipd {
namespace {

void expect_error(const Result<ConfigFile>& r, std::string_view fragment) {
  ASSERT_FALSE(r.is_ok()) << "expected an error containing: " << fragment;
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find(fragment), std::string_view::npos) << r.status().message();
}

TEST(ConfigTest, SettingsBecomeFlagValuesInFileOrder) {
  auto r = parse_config(R"(
listen = "0.0.0.0:7420"
threads = 4
tls_require_client_cert = true
max_connections_per_ip = 16
)", "t.toml");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ(r->settings.size(), 4u);
  EXPECT_EQ(r->settings[0].key, "listen");
  EXPECT_EQ(r->settings[0].value, "0.0.0.0:7420");
  EXPECT_EQ(r->settings[0].line, 2);
  EXPECT_EQ(r->settings[1].value, "4");
  EXPECT_EQ(r->settings[2].value, "true");
  EXPECT_EQ(r->settings[3].key, "max_connections_per_ip");
  EXPECT_TRUE(r->users.empty());
}

TEST(ConfigTest, UsersWithTokensPasswordHashesAndPermissions) {
  auto r = parse_config(R"(
[[users]]
name = "svc"
token = "t0k"
publish = { allow = ["svc.>"], deny = ["svc.admin"] }

[[users]]
name = "bob"
password_hash = "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$aGFzaA"
allow_responses = false
[users.subscribe]
allow = ["orders.>", "_INBOX.>"]
deny = ["orders.secret"]
)", "t.toml");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ(r->users.size(), 2u);
  EXPECT_EQ(r->users[0].name, "svc");
  EXPECT_EQ(r->users[0].token, "t0k");
  EXPECT_EQ(r->users[0].permissions.publish.allow, std::vector<std::string>{"svc.>"});
  EXPECT_EQ(r->users[0].permissions.publish.deny, std::vector<std::string>{"svc.admin"});
  EXPECT_TRUE(r->users[0].permissions.allow_responses);
  EXPECT_EQ(r->users[1].name, "bob");
  EXPECT_FALSE(r->users[1].permissions.allow_responses);
  EXPECT_EQ(r->users[1].permissions.subscribe.allow, (std::vector<std::string>{"orders.>", "_INBOX.>"}));
  EXPECT_EQ(r->users[1].permissions.subscribe.deny, std::vector<std::string>{"orders.secret"});
  EXPECT_TRUE(r->users[1].permissions.publish.allow.empty());
}

TEST(ConfigTest, ErrorsNameTheKeyAndLine) {
  expect_error(parse_config("listen = \"a:1\"\ntreads = 4\n", "t.toml"), "t.toml:2: unknown key 'treads'");
  expect_error(parse_config("threads = \"4\"\n", "t.toml"), "t.toml:1: 'threads' must be an integer, not a string");
  expect_error(parse_config("\n\nlisten = 7420\n", "t.toml"), "t.toml:3: 'listen' must be a string, not an integer");
  expect_error(parse_config("tls_require_client_cert = 1\n", "t.toml"), "'tls_require_client_cert' must be true or false");
  expect_error(parse_config("threads = -1\n", "t.toml"), "t.toml:1: 'threads' must not be negative");
  expect_error(parse_config("max_payload = 1.5\n", "t.toml"), "not a float");
  expect_error(parse_config("listen = \n", "t.toml"), "t.toml:1:");  // TOML syntax error
  expect_error(parse_config("[tls]\ncert = \"x\"\n", "t.toml"), "unknown key 'tls'");
}

TEST(ConfigTest, UserErrorsNameTheEntry) {
  expect_error(parse_config("[[users]]\ntoken = \"t\"\n", "t.toml"), "users[0]: 'name' is required");
  expect_error(parse_config("[[users]]\nname = \"a\"\n", "t.toml"), "needs exactly one of 'token' and 'password_hash'");
  expect_error(parse_config("[[users]]\nname = \"a\"\ntoken = \"t\"\npassword_hash = \"h\"\n", "t.toml"),
               "needs exactly one of 'token' and 'password_hash'");
  expect_error(parse_config("[[users]]\nname = \"a\"\ntoken = \"t\"\npassword = \"p\"\n", "t.toml"),
               "t.toml:4: unknown key 'users[0].password'");
  expect_error(parse_config("[[users]]\nname = \"a\"\ntoken = \"t\"\npublish = { allow = \"x\" }\n", "t.toml"),
               "'users[0].publish.allow' must be an array of subject patterns, not a string");
  expect_error(parse_config("[[users]]\nname = \"a\"\ntoken = \"t\"\npublish = { allow = [1] }\n", "t.toml"),
               "'users[0].publish.allow entry' must be a string");
  expect_error(parse_config("[[users]]\nname = \"a\"\ntoken = \"t\"\nsubscribe = { permit = [] }\n", "t.toml"),
               "unknown key 'users[0].subscribe.permit' (expected allow or deny)");
  expect_error(parse_config("[[users]]\nname = \"a\"\ntoken = \"t\"\nsubscribe = { allow = [\"a..b\"] }\n", "t.toml"),
               "subscribe.allow");
  expect_error(parse_config("[[users]]\nname = \"a\"\ntoken = \"t\"\n[[users]]\nname = \"a\"\ntoken = \"u\"\n", "t.toml"),
               "user \"a\" appears twice");
  expect_error(parse_config("users = 3\n", "t.toml"), "'users' must be an array of tables");
}

TEST(ConfigTest, EveryKeyIsDistinct) {
  std::set<std::string_view> seen;
  for (const SettingSpec& s : setting_specs()) EXPECT_TRUE(seen.insert(s.key).second) << s.key;
  EXPECT_FALSE(seen.count("users"));
}

TEST(ConfigTest, MissingFileIsNotFound) {
  auto r = load_config("/nonexistent/slipd.toml");
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace slip::slipd
