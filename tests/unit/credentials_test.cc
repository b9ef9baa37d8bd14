// "Bearer <token>" parsing: what RFC 6750 allows, and refusals that never echo the token.
#include "rpc/credentials.h"

#include <gtest/gtest.h>

namespace slip::rpc {
namespace {

TEST(ParseBearer, AcceptsTheSchemeInAnyCaseAndToken68) {
  auto t = parse_bearer("Bearer abc");
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  EXPECT_EQ(*t, "abc");
  EXPECT_EQ(*parse_bearer("bearer   abc=="), "abc==");
  EXPECT_EQ(*parse_bearer("BEARER a-b.c_d~e+f/g="), "a-b.c_d~e+f/g=");
}

TEST(ParseBearer, RefusesMalformedValuesAsUnauthenticated) {
  for (const char* bad : {"", "Bearer", "Bearer ", "Bearer    ", "Basic abc", "Bearerabc", "Bearer a b",
                          "Bearer =abc", "Bearer abc=d", "Bearer abc\n", "Bearer\tabc", " Bearer abc",
                          "Bearer ab\xff"}) {
    auto t = parse_bearer(bad);
    ASSERT_FALSE(t.is_ok()) << bad;
    EXPECT_EQ(t.status().code(), StatusCode::kUnauthenticated) << bad;
  }
}

TEST(ParseBearer, RefusesTokensOverTheLimitAndNeverEchoesTheToken) {
  std::string value = "Bearer ";
  value.append(65, 'z');
  auto t = parse_bearer(value, 64);
  ASSERT_FALSE(t.is_ok());
  EXPECT_EQ(t.status().message().find("zzz"), std::string_view::npos);
  EXPECT_TRUE(parse_bearer(value, 65).is_ok());
  auto bad = parse_bearer("Bearer secret!");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().message().find("secret"), std::string_view::npos);
}

}  // namespace
}  // namespace slip::rpc
