#include "broker/subject.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace slip::broker {
namespace {

using namespace std::string_literals;

// A subject either kind of validation accepts.
const std::vector<std::string> kValidSubjects = {
    "a",
    "orders",
    "orders.eu.created",
    "Orders.EU.Created",
    "a*b",        // '*' inside a token is a literal character
    "a.b*",       //
    "**",         // so is a token of two stars
    ">x",         // and '>' with anything else
    "a.>>",       //
    "x>.y",       //
    "_INBOX.Kx93mQp7vR2.42",
    "$SYS.REQ.SERVER.PING",
    "a-b_c:d/e+f=g@h!i#j%k",
    "\xc3\xa9t\xc3\xa9.\xe2\x82\xac",  // UTF-8 "été.€": bytes >= 0x80 pass
    "1.2.3.4.5.6.7.8.9.10",
    std::string(1024, 'x'),                        // exactly the byte limit
};

// Patterns only validate_subscription_subject accepts, with the message the publish check gives.
struct WildcardCase {
  std::string subject;
  std::string publish_error;
};
const std::vector<WildcardCase> kWildcardSubjects = {
    {"*", "subject '*': wildcard '*' at position 1 is not allowed in a publish subject"},
    {">", "subject '>': wildcard '>' at position 1 is not allowed in a publish subject"},
    {"*.b.c", "subject '*.b.c': wildcard '*' at position 1 is not allowed in a publish subject"},
    {"a.*.c", "subject 'a.*.c': wildcard '*' at position 2 is not allowed in a publish subject"},
    {"a.b.*", "subject 'a.b.*': wildcard '*' at position 3 is not allowed in a publish subject"},
    {"a.>", "subject 'a.>': wildcard '>' at position 2 is not allowed in a publish subject"},
    {"*.*.>", "subject '*.*.>': wildcard '*' at position 1 is not allowed in a publish subject"},
    {"a.*.>", "subject 'a.*.>': wildcard '*' at position 2 is not allowed in a publish subject"},
};

// Rejected by both checks, with the same message.
struct InvalidCase {
  std::string subject;
  std::string error;
};
const std::vector<InvalidCase> kInvalidSubjects = {
    {"", "subject is empty"},
    {".", "subject '.': empty token at position 1 (leading '.')"},
    {".a", "subject '.a': empty token at position 1 (leading '.')"},
    {"a.", "subject 'a.': empty token at position 2 (trailing '.')"},
    {"a..b", "subject 'a..b': empty token at position 2"},
    {"a.b..", "subject 'a.b..': empty token at position 3"},
    {"a b", "subject 'a b': invalid character 0x20 (space) at offset 1, in the token at position 1"},
    {" a", "subject ' a': invalid character 0x20 (space) at offset 0, in the token at position 1"},
    {"a. ", "subject 'a. ': invalid character 0x20 (space) at offset 2, in the token at position 2"},
    {"a\tb", "subject 'a\\x09b': invalid character 0x09 (tab) at offset 1, in the token at position 1"},
    {"a.b\r\n", "subject 'a.b\\x0d\\x0a': invalid character 0x0d (carriage return) at offset 3, in the token at position 2"},
    {"a.\nb", "subject 'a.\\x0ab': invalid character 0x0a (line feed) at offset 2, in the token at position 2"},
    {"a\0b"s, "subject 'a\\x00b': invalid character 0x00 (NUL) at offset 1, in the token at position 1"},
    {"a.b\x7f", "subject 'a.b\\x7f': invalid character 0x7f (control character) at offset 3, in the token at position 2"},
    {"a.\x1b[31m", "subject 'a.\\x1b[31m': invalid character 0x1b (control character) at offset 2, in the token at position 2"},
    {"a.* ", "subject 'a.* ': invalid character 0x20 (space) at offset 3, in the token at position 2"},
    {std::string(1025, 'x'), "subject '" + std::string(64, 'x') + "...': 1025 bytes, over the limit of 1024"},
};

// Only validate_subscription_subject sees these problems (a publish check stops at the first
// wildcard).
const std::vector<InvalidCase> kInvalidPatterns = {
    {">.a", "subject '>.a': '>' at position 1 is not the last token"},
    {"a.>.b", "subject 'a.>.b': '>' at position 2 is not the last token"},
    {"a.>.>", "subject 'a.>.>': '>' at position 2 is not the last token"},
    {"a.*..", "subject 'a.*..': empty token at position 3"},
    {"*.", "subject '*.': empty token at position 2 (trailing '.')"},
};

TEST(SubjectTest, AcceptsValidSubjectsForPublishAndSubscribe) {
  for (const std::string& s : kValidSubjects) {
    EXPECT_TRUE(validate_publish_subject(s).is_ok()) << s << ": " << validate_publish_subject(s).to_string();
    EXPECT_TRUE(validate_subscription_subject(s).is_ok()) << s;
    EXPECT_TRUE(is_literal_subject(s)) << s;
  }
}

TEST(SubjectTest, AcceptsWholeTokenWildcardsOnlyInPatterns) {
  for (const WildcardCase& c : kWildcardSubjects) {
    EXPECT_TRUE(validate_subscription_subject(c.subject).is_ok()) << c.subject;
    EXPECT_FALSE(is_literal_subject(c.subject)) << c.subject;
    Status s = validate_publish_subject(c.subject);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << c.subject;
    EXPECT_EQ(s.message(), c.publish_error);
  }
}

TEST(SubjectTest, RejectsMalformedSubjectsWithSpecificMessages) {
  for (const InvalidCase& c : kInvalidSubjects) {
    for (Status s : {validate_publish_subject(c.subject), validate_subscription_subject(c.subject)}) {
      EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << c.subject;
      EXPECT_EQ(s.message(), c.error);
    }
  }
}

TEST(SubjectTest, RejectsFullWildcardThatIsNotLast) {
  for (const InvalidCase& c : kInvalidPatterns) {
    Status s = validate_subscription_subject(c.subject);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << c.subject;
    EXPECT_EQ(s.message(), c.error);
    EXPECT_FALSE(validate_publish_subject(c.subject).is_ok()) << c.subject;
  }
}

TEST(SubjectTest, RejectsSubjectOverByteLimit) {
  SubjectLimits limits;
  limits.max_bytes = 8;
  EXPECT_TRUE(validate_publish_subject("abcd.efg", limits).is_ok());
  Status s = validate_publish_subject("abcd.efgh", limits);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "subject 'abcd.efgh': 9 bytes, over the limit of 8");
  EXPECT_EQ(validate_subscription_subject("abcd.efg>", limits).message(),
            "subject 'abcd.efg>': 9 bytes, over the limit of 8");
}

TEST(SubjectTest, RejectsSubjectOverTokenLimit) {
  std::string s64 = "t";
  for (int i = 1; i < 64; ++i) s64 += ".t";
  EXPECT_TRUE(validate_publish_subject(s64).is_ok());
  EXPECT_TRUE(validate_subscription_subject(s64 + "").is_ok());
  const std::string s65 = s64 + ".t";
  Status s = validate_publish_subject(s65);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "subject '" + s65.substr(0, 64) + "...': more than 64 tokens (token 65 starts at offset 128)");
  EXPECT_EQ(validate_subscription_subject(s64.substr(0, s64.size() - 1) + "*.>").message(),
            "subject '" + s64.substr(0, 64) + "...': more than 64 tokens (token 65 starts at offset 128)");

  SubjectLimits limits;
  limits.max_tokens = 3;
  EXPECT_TRUE(validate_subscription_subject("a.*.>", limits).is_ok());
  EXPECT_EQ(validate_subscription_subject("a.*.b.>", limits).message(),
            "subject 'a.*.b.>': more than 3 tokens (token 4 starts at offset 6)");
}

TEST(SubjectTest, ReportsTheFirstProblemFromTheLeft) {
  EXPECT_EQ(validate_publish_subject("a..b c").message(), "subject 'a..b c': empty token at position 2");
  EXPECT_EQ(validate_publish_subject("a b..c").message(),
            "subject 'a b..c': invalid character 0x20 (space) at offset 1, in the token at position 1");
  EXPECT_EQ(validate_subscription_subject("a.>.b..").message(), "subject 'a.>.b..': '>' at position 2 is not the last token");
}

TEST(SubjectTest, QuotesBackslashesEscaped) {
  EXPECT_EQ(validate_publish_subject("a\\b..c").message(), "subject 'a\\x5cb..c': empty token at position 2");
}

TEST(SubjectTest, ValidatesQueueGroupNames) {
  for (std::string_view ok : {"workers", "workers.v1", "a*b", "*", ">", "q-1_x"}) {
    EXPECT_TRUE(validate_queue_group(ok).is_ok()) << ok;
  }
  struct Case {
    std::string name;
    std::string error;
  };
  const std::vector<Case> bad = {
      {"", "queue group name is empty"},
      {"my workers", "queue group 'my workers': invalid character 0x20 (space) at offset 2"},
      {"w\n", "queue group 'w\\x0a': invalid character 0x0a (line feed) at offset 1"},
      {"\tw", "queue group '\\x09w': invalid character 0x09 (tab) at offset 0"},
      {std::string(257, 'q'), "queue group '" + std::string(64, 'q') + "...': 257 bytes, over the limit of 256"},
  };
  for (const Case& c : bad) {
    Status s = validate_queue_group(c.name);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << c.name;
    EXPECT_EQ(s.message(), c.error);
  }
  EXPECT_TRUE(validate_queue_group(std::string(256, 'q')).is_ok());
}

struct MatchCase {
  std::string_view pattern;
  std::string_view subject;
  bool matches;
};

const MatchCase kMatchCases[] = {
    // Literals: token by token, case-sensitive, same count.
    {"a", "a", true},
    {"a", "b", false},
    {"a.b.c", "a.b.c", true},
    {"a.b.c", "a.b", false},
    {"a.b", "a.b.c", false},
    {"a.b.c", "a.b.d", false},
    {"orders", "Orders", false},
    {"Orders.EU", "Orders.EU", true},
    {"Orders.EU", "Orders.eu", false},
    {"ab.c", "a.bc", false},
    {"ab", "abc", false},
    {"abc", "ab", false},
    // '*' in each position: exactly one token.
    {"*", "a", true},
    {"*", "a.b", false},
    {"*.b.c", "a.b.c", true},
    {"*.b.c", "x.b.c", true},
    {"*.b.c", "b.c", false},
    {"*.b.c", "a.x.c", false},
    {"a.*.c", "a.b.c", true},
    {"a.*.c", "a.c", false},
    {"a.*.c", "a.b.b.c", false},
    {"a.b.*", "a.b.c", true},
    {"a.b.*", "a.b", false},
    {"a.b.*", "a.b.c.d", false},
    {"*.*", "a.b", true},
    {"*.*", "a", false},
    {"*.*.*", "a.b.c", true},
    {"*.*.*", "a.b.c.d", false},
    // '>' at the end: one or more tokens.
    {">", "a", true},
    {">", "a.b.c", true},
    {"a.>", "a.b", true},
    {"a.>", "a.b.c.d", true},
    {"a.>", "a", false},
    {"a.>", "b.c", false},
    {"a.b.>", "a.b", false},
    {"*.>", "a", false},
    {"*.>", "a.b", true},
    {"*.b.>", "a.b.c", true},
    {"*.b.>", "a.c.c", false},
    {"a.*.>", "a.b.c.d", true},
    {"a.*.>", "a.b", false},
    // '*' and '>' inside a token are literal characters.
    {"a*b", "a*b", true},
    {"a*b", "axb", false},
    {"a.b*", "a.bc", false},
    {"a.b*", "a.b*", true},
    {"**", "ab", false},
    {"a.>x", "a.b", false},
    {"a.>x", "a.>x", true},
    {"x>", "x.y", false},
    // A wildcard-looking token in the subject only matches '*' or itself.
    {"a.*", "a.*", true},
    {"a.b", "a.*", false},
    // Long subjects.
    {"a.>", "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t.u.v.w.x.y.z", true},
    {"a.*.c.*.e.*.g.*.i.>", "a.b.c.d.e.f.g.h.i.j.k.l", true},
    {"a.*.c.*.e.*.g.*.i.>", "a.b.c.d.e.f.g.h.x.j.k.l", false},
};

TEST(SubjectMatchTest, MatchesTable) {
  for (const MatchCase& c : kMatchCases) {
    ASSERT_TRUE(validate_subscription_subject(c.pattern).is_ok()) << c.pattern;
    EXPECT_EQ(subject_matches(c.pattern, c.subject), c.matches) << c.pattern << " vs " << c.subject;
  }
}

TEST(SubjectMatchTest, EverySubjectMatchesItselfAndFullWildcard) {
  for (const std::string& s : kValidSubjects) {
    EXPECT_TRUE(subject_matches(s, s)) << s;
    EXPECT_TRUE(subject_matches(">", s)) << s;
  }
}

TEST(SubjectMatchTest, MatchesLongSubjectsTokenByToken) {
  std::string subject, star_pattern;
  for (int i = 0; i < 64; ++i) {
    if (i) {
      subject += '.';
      star_pattern += '.';
    }
    subject += "tok" + std::to_string(i);
    star_pattern += i % 2 ? "*" : "tok" + std::to_string(i);
  }
  ASSERT_TRUE(validate_publish_subject(subject).is_ok());
  EXPECT_TRUE(subject_matches(subject, subject));
  EXPECT_TRUE(subject_matches(star_pattern, subject));
  std::string other = subject;
  other.back() = 'X';
  EXPECT_FALSE(subject_matches(subject, other));
  EXPECT_TRUE(subject_matches(star_pattern, other));  // the last token is a '*'
  EXPECT_FALSE(subject_matches(star_pattern, subject + ".more"));

  const std::string big(1024, 'x');
  EXPECT_TRUE(subject_matches(big, big));
  EXPECT_TRUE(subject_matches("*", big));
  EXPECT_FALSE(subject_matches(big.substr(1), big));
}

TEST(SubjectMatchTest, SplitsMalformedSubjectsAtEveryDot) {
  // Defined for any subject string, so that Sublist::match can agree with it on bad input.
  EXPECT_TRUE(subject_matches("*", ""));
  EXPECT_TRUE(subject_matches(">", ""));
  EXPECT_TRUE(subject_matches("a.*", "a."));
  EXPECT_TRUE(subject_matches("a.>", "a."));
  EXPECT_FALSE(subject_matches("a", "a."));
  EXPECT_TRUE(subject_matches("*.*.*", ".."));
  EXPECT_FALSE(subject_matches("*.*", ".."));
}

}  // namespace
}  // namespace slip::broker
