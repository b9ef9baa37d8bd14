#include "broker/sublist.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "broker/subject.h"

namespace slip::broker {
namespace {

// A result in a form that compares: sorted plain handles, and sorted members per group name.
struct Flat {
  std::vector<SubscriptionHandle> plain;
  std::map<std::string, std::vector<SubscriptionHandle>> groups;
  bool operator==(const Flat&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Flat& f) {
  os << "plain{";
  for (auto h : f.plain) os << h << ' ';
  os << "} groups{";
  for (const auto& [name, members] : f.groups) {
    os << name << ":[";
    for (auto h : members) os << h << ' ';
    os << "] ";
  }
  return os << '}';
}

Flat flatten(const SublistResult& r) {
  Flat f;
  f.plain.assign(r.plain().begin(), r.plain().end());
  std::sort(f.plain.begin(), f.plain.end());
  for (const QueueGroupMatch& g : r.queue_groups()) {
    EXPECT_FALSE(g.members.empty()) << g.name;
    EXPECT_EQ(f.groups.count(std::string(g.name)), 0u) << "group listed twice: " << g.name;
    auto& m = f.groups[std::string(g.name)];
    m.assign(g.members.begin(), g.members.end());
    std::sort(m.begin(), m.end());
  }
  std::size_t members = 0;
  for (const auto& [name, m] : f.groups) members += m.size();
  EXPECT_EQ(r.handle_count(), f.plain.size() + members);
  EXPECT_EQ(r.empty(), f.plain.empty() && f.groups.empty());
  return f;
}

Flat plain(std::vector<SubscriptionHandle> handles) {
  std::sort(handles.begin(), handles.end());
  return Flat{handles, {}};
}

// The reference: every subscription in a list, matched one by one with subject_matches.
struct Sub {
  std::string pattern;
  std::string queue;
  SubscriptionHandle handle;
  bool operator==(const Sub&) const = default;
};

Flat brute_force(const std::vector<Sub>& subs, std::string_view subject) {
  Flat f;
  for (const Sub& s : subs) {
    if (!subject_matches(s.pattern, subject)) continue;
    if (s.queue.empty()) {
      f.plain.push_back(s.handle);
    } else {
      f.groups[s.queue].push_back(s.handle);
    }
  }
  std::sort(f.plain.begin(), f.plain.end());
  for (auto& [name, m] : f.groups) std::sort(m.begin(), m.end());
  return f;
}

TEST(SublistTest, MatchesLiteralSubscription) {
  Sublist sl;
  ASSERT_TRUE(sl.insert("orders.eu.created", "", 1).is_ok());
  EXPECT_EQ(sl.size(), 1u);
  EXPECT_EQ(flatten(sl.match("orders.eu.created")), plain({1}));
  EXPECT_TRUE(sl.match("orders.eu").empty());
  EXPECT_TRUE(sl.match("orders.eu.created.x").empty());
  EXPECT_TRUE(sl.match("orders.EU.created").empty());
  EXPECT_TRUE(sl.match("orders.us.created").empty());
}

TEST(SublistTest, MatchesOverlappingWildcards) {
  Sublist sl;
  ASSERT_TRUE(sl.insert("a.b.c", "", 1).is_ok());
  ASSERT_TRUE(sl.insert("a.*.c", "", 2).is_ok());
  ASSERT_TRUE(sl.insert("a.>", "", 3).is_ok());
  ASSERT_TRUE(sl.insert("*.b.*", "", 4).is_ok());
  ASSERT_TRUE(sl.insert(">", "", 5).is_ok());
  ASSERT_TRUE(sl.insert("*.*.*", "", 6).is_ok());
  ASSERT_TRUE(sl.insert("a.b", "", 7).is_ok());
  ASSERT_TRUE(sl.insert("*", "", 8).is_ok());
  ASSERT_TRUE(sl.insert("a.b.>", "", 9).is_ok());

  EXPECT_EQ(flatten(sl.match("a.b.c")), plain({1, 2, 3, 4, 5, 6, 9}));
  EXPECT_EQ(flatten(sl.match("a.x.c")), plain({2, 3, 5, 6}));
  EXPECT_EQ(flatten(sl.match("a.b")), plain({3, 5, 7}));
  EXPECT_EQ(flatten(sl.match("a")), plain({5, 8}));
  EXPECT_EQ(flatten(sl.match("z.b.z")), plain({4, 5, 6}));
  EXPECT_EQ(flatten(sl.match("a.b.c.d")), plain({3, 5, 9}));
  EXPECT_EQ(flatten(sl.match("q.r.s.t")), plain({5}));
}

TEST(SublistTest, TreatsWildcardCharactersInsideTokensAsLiterals) {
  Sublist sl;
  ASSERT_TRUE(sl.insert("a.b*", "", 1).is_ok());
  ASSERT_TRUE(sl.insert("a.>x", "", 2).is_ok());
  EXPECT_TRUE(sl.match("a.bc").empty());
  EXPECT_TRUE(sl.match("a.b.c").empty());
  EXPECT_EQ(flatten(sl.match("a.b*")), plain({1}));
  EXPECT_EQ(flatten(sl.match("a.>x")), plain({2}));
}

TEST(SublistTest, GroupsQueueMembersByNameApartFromPlainSubscribers) {
  Sublist sl;
  ASSERT_TRUE(sl.insert("jobs.>", "", 1).is_ok());
  ASSERT_TRUE(sl.insert("jobs.render", "workers", 10).is_ok());
  ASSERT_TRUE(sl.insert("jobs.render", "workers", 11).is_ok());
  ASSERT_TRUE(sl.insert("jobs.*", "workers", 12).is_ok());  // same name, other pattern: one group
  ASSERT_TRUE(sl.insert("jobs.render", "auditors", 20).is_ok());
  ASSERT_TRUE(sl.insert("jobs.render", "", 2).is_ok());
  ASSERT_TRUE(sl.insert("jobs.encode", "workers", 13).is_ok());

  Flat want;
  want.plain = {1, 2};
  want.groups["workers"] = {10, 11, 12};
  want.groups["auditors"] = {20};
  EXPECT_EQ(flatten(sl.match("jobs.render")), want);

  Flat encode;
  encode.plain = {1};
  encode.groups["workers"] = {12, 13};
  EXPECT_EQ(flatten(sl.match("jobs.encode")), encode);

  // The same handle as a plain subscriber and as a group member is two subscriptions.
  ASSERT_TRUE(sl.insert("jobs.render", "", 10).is_ok());
  want.plain = {1, 2, 10};
  EXPECT_EQ(flatten(sl.match("jobs.render")), want);

  ASSERT_TRUE(sl.remove("jobs.render", "auditors", 20));
  want.groups.erase("auditors");
  EXPECT_EQ(flatten(sl.match("jobs.render")), want);
}

TEST(SublistTest, ListsAHandleOncePerMatchingSubscription) {
  Sublist sl;
  ASSERT_TRUE(sl.insert("a.*", "", 7).is_ok());
  ASSERT_TRUE(sl.insert("a.>", "", 7).is_ok());
  EXPECT_EQ(flatten(sl.match("a.b")), plain({7, 7}));
  EXPECT_EQ(flatten(sl.match("a.b.c")), plain({7}));
}

TEST(SublistTest, RefusesDuplicateInsertWithoutChangingAnything) {
  Sublist sl;
  ASSERT_TRUE(sl.insert("a.b", "", 1).is_ok());
  Status dup = sl.insert("a.b", "", 1);
  EXPECT_EQ(dup.code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(dup.message(), "subscription to 'a.b' with handle 1 already exists");
  ASSERT_TRUE(sl.insert("a.b", "q", 1).is_ok());
  Status qdup = sl.insert("a.b", "q", 1);
  EXPECT_EQ(qdup.code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(qdup.message(), "subscription to 'a.b' in queue group 'q' with handle 1 already exists");
  EXPECT_EQ(sl.size(), 2u);
  Flat want = plain({1});
  want.groups["q"] = {1};
  EXPECT_EQ(flatten(sl.match("a.b")), want);

  ASSERT_TRUE(sl.remove("a.b", "", 1));
  EXPECT_FALSE(sl.remove("a.b", "", 1));
  EXPECT_EQ(sl.size(), 1u);
}

TEST(SublistTest, RefusesInvalidPatternsAndQueueGroups) {
  Sublist sl;
  Status s = sl.insert("a..b", "", 1);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "subject 'a..b': empty token at position 2");
  EXPECT_EQ(sl.insert("a.>.b", "", 1).message(), "subject 'a.>.b': '>' at position 2 is not the last token");
  EXPECT_EQ(sl.insert("a.b", "my group", 1).message(),
            "queue group 'my group': invalid character 0x20 (space) at offset 2");
  EXPECT_EQ(sl.size(), 0u);

  SublistOptions small;
  small.limits.max_tokens = 2;
  Sublist limited(small);
  EXPECT_TRUE(limited.insert("a.>", "", 1).is_ok());
  EXPECT_EQ(limited.insert("a.b.c", "", 1).code(), StatusCode::kInvalidArgument);
}

TEST(SublistTest, RemoveOfAbsentSubscriptionReturnsFalse) {
  Sublist sl;
  EXPECT_FALSE(sl.remove("a.b", "", 1));
  ASSERT_TRUE(sl.insert("a.b", "", 1).is_ok());
  ASSERT_TRUE(sl.insert("a.*", "q", 2).is_ok());
  EXPECT_FALSE(sl.remove("a.b", "", 2));       // other handle
  EXPECT_FALSE(sl.remove("a.b", "q", 1));      // plain, not in a group
  EXPECT_FALSE(sl.remove("a.*", "", 2));       // in a group, not plain
  EXPECT_FALSE(sl.remove("a.*", "other", 2));  // other group
  EXPECT_FALSE(sl.remove("a", "", 1));         // prefix of a pattern
  EXPECT_FALSE(sl.remove("a.b.c", "", 1));     // longer
  EXPECT_FALSE(sl.remove("a.>", "", 1));
  EXPECT_FALSE(sl.remove("a..b", "", 1));      // invalid
  EXPECT_FALSE(sl.remove("a.>.b", "", 1));
  EXPECT_FALSE(sl.remove("", "", 1));
  EXPECT_EQ(sl.size(), 2u);
  EXPECT_TRUE(sl.remove("a.b", "", 1));
  EXPECT_TRUE(sl.remove("a.*", "q", 2));
  EXPECT_EQ(sl.size(), 0u);
  EXPECT_TRUE(sl.match("a.b").empty());
}

TEST(SublistTest, PrunesEmptyNodesButKeepsSiblings) {
  Sublist sl;
  ASSERT_TRUE(sl.insert("a.b.c.d", "", 1).is_ok());
  ASSERT_TRUE(sl.insert("a.b", "", 2).is_ok());
  ASSERT_TRUE(sl.insert("a.b.*.d", "", 3).is_ok());
  ASSERT_TRUE(sl.remove("a.b.c.d", "", 1));
  EXPECT_EQ(flatten(sl.match("a.b")), plain({2}));
  EXPECT_EQ(flatten(sl.match("a.b.c.d")), plain({3}));
  ASSERT_TRUE(sl.remove("a.b", "", 2));
  EXPECT_EQ(flatten(sl.match("a.b.x.d")), plain({3}));
  ASSERT_TRUE(sl.remove("a.b.*.d", "", 3));
  EXPECT_TRUE(sl.match("a.b.x.d").empty());
  // Re-inserting after everything was pruned works.
  ASSERT_TRUE(sl.insert("a.b.c.d", "", 1).is_ok());
  EXPECT_EQ(flatten(sl.match("a.b.c.d")), plain({1}));
}

TEST(SublistTest, HandlesManySubscribersOnOneSubjectAndManyChildren) {
  Sublist sl;
  std::vector<SubscriptionHandle> all;
  for (SubscriptionHandle h = 0; h < 5000; ++h) {
    ASSERT_TRUE(sl.insert("fan.out", h % 2 ? "g" : "", h).is_ok());
    ASSERT_TRUE(sl.insert("fan." + std::to_string(h), "", h).is_ok());
    all.push_back(h);
  }
  EXPECT_EQ(sl.insert("fan.out", "", 4998).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(sl.insert("fan.out", "g", 4999).code(), StatusCode::kAlreadyExists);
  Flat f = flatten(sl.match("fan.out"));
  EXPECT_EQ(f.plain.size(), 2500u);
  EXPECT_EQ(f.groups["g"].size(), 2500u);
  EXPECT_EQ(flatten(sl.match("fan.1234")), plain({1234}));
  for (SubscriptionHandle h = 0; h < 5000; h += 3) {
    ASSERT_TRUE(sl.remove("fan.out", h % 2 ? "g" : "", h));
    ASSERT_TRUE(sl.remove("fan." + std::to_string(h), "", h));
  }
  std::vector<Sub> ref;
  for (SubscriptionHandle h = 0; h < 5000; ++h) {
    if (h % 3 == 0) continue;
    ref.push_back({"fan.out", h % 2 ? "g" : "", h});
    ref.push_back({"fan." + std::to_string(h), "", h});
  }
  EXPECT_EQ(flatten(sl.match("fan.out")), brute_force(ref, "fan.out"));
  EXPECT_TRUE(sl.match("fan.1233").empty());
  EXPECT_EQ(flatten(sl.match("fan.1234")), plain({1234}));
  EXPECT_EQ(sl.size(), ref.size());
}

TEST(SublistTest, CountsCacheHitsAndMisses) {
  Sublist sl;
  ASSERT_TRUE(sl.insert("a.*", "", 1).is_ok());
  sl.match("a.b");
  sl.match("a.b");
  sl.match("a.b");
  sl.match("nobody.listens");
  sl.match("nobody.listens");
  SublistStats s = sl.stats();
  EXPECT_EQ(s.subscriptions, 1u);
  EXPECT_EQ(s.matches, 5u);
  EXPECT_EQ(s.cache_misses, 2u);
  EXPECT_EQ(s.cache_hits, 3u);
  EXPECT_EQ(s.cache_entries, 2u);
  EXPECT_EQ(s.cache_handles, 1u);
}

TEST(SublistTest, RepeatedMatchReturnsTheCachedResult) {
  Sublist sl;
  ASSERT_TRUE(sl.insert("a.b", "q", 1).is_ok());
  const SublistResult* first = &sl.match("a.b");
  const SublistResult* second = &sl.match("a.b");
  EXPECT_EQ(first, second);
  EXPECT_EQ(first->queue_groups().size(), 1u);
  EXPECT_EQ(first->queue_groups()[0].name, "q");
}

TEST(SublistTest, InvalidatesOnlyAffectedCacheEntries) {
  Sublist sl;
  ASSERT_TRUE(sl.insert("a.b", "", 1).is_ok());
  sl.match("a.b");
  sl.match("a.c");
  sl.match("x.y");
  ASSERT_EQ(sl.stats().cache_entries, 3u);

  // Literal insert: drops exactly that subject.
  ASSERT_TRUE(sl.insert("a.c", "", 2).is_ok());
  EXPECT_EQ(sl.stats().cache_entries, 2u);
  EXPECT_EQ(sl.stats().cache_invalidations, 1u);
  EXPECT_EQ(flatten(sl.match("a.c")), plain({2}));

  // Wildcard insert: drops what it matches (a.b, a.c), keeps x.y.
  ASSERT_TRUE(sl.insert("a.*", "", 3).is_ok());
  EXPECT_EQ(sl.stats().cache_entries, 1u);
  EXPECT_EQ(sl.stats().cache_invalidations, 3u);
  const std::uint64_t misses = sl.stats().cache_misses;
  EXPECT_TRUE(sl.match("x.y").empty());
  EXPECT_EQ(sl.stats().cache_misses, misses);  // still cached
  EXPECT_EQ(flatten(sl.match("a.b")), plain({1, 3}));
  EXPECT_EQ(flatten(sl.match("a.c")), plain({2, 3}));

  // Remove: the same.
  ASSERT_TRUE(sl.remove("a.*", "", 3));
  EXPECT_EQ(flatten(sl.match("a.b")), plain({1}));
  EXPECT_EQ(flatten(sl.match("a.c")), plain({2}));
  // A failed insert or remove changes nothing, so drops nothing.
  const std::uint64_t inval = sl.stats().cache_invalidations;
  EXPECT_FALSE(sl.insert("a.b", "", 1).is_ok());
  EXPECT_FALSE(sl.remove("a.*", "", 3));
  EXPECT_EQ(sl.stats().cache_invalidations, inval);
}

TEST(SublistTest, EvictsWhenFullAndStaysCorrect) {
  SublistOptions opt;
  opt.cache_max_entries = 8;
  Sublist sl(opt);
  ASSERT_TRUE(sl.insert("s.*", "", 1).is_ok());
  for (int i = 0; i < 100; ++i) {
    const std::string subject = "s." + std::to_string(i % 20);
    EXPECT_EQ(flatten(sl.match(subject)), plain({1})) << subject;
    EXPECT_LE(sl.stats().cache_entries, 8u);
  }
  EXPECT_GT(sl.stats().cache_evictions, 0u);
  EXPECT_EQ(sl.stats().cache_hits + sl.stats().cache_misses, 100u);
}

TEST(SublistTest, BoundsHandlesHeldByTheCache) {
  SublistOptions opt;
  opt.cache_max_handles = 10;
  Sublist sl(opt);
  for (SubscriptionHandle h = 0; h < 4; ++h) ASSERT_TRUE(sl.insert("small.*", "", h).is_ok());
  for (SubscriptionHandle h = 0; h < 20; ++h) ASSERT_TRUE(sl.insert("big", "", h).is_ok());
  // 20 handles: over the budget, so computed every time and never cached.
  EXPECT_EQ(sl.match("big").handle_count(), 20u);
  EXPECT_EQ(sl.match("big").handle_count(), 20u);
  EXPECT_EQ(sl.stats().cache_entries, 0u);
  EXPECT_EQ(sl.stats().cache_misses, 2u);
  // Three results of 4 handles: the third evicts one of the first two.
  sl.match("small.a");
  sl.match("small.b");
  sl.match("small.c");
  EXPECT_EQ(sl.stats().cache_entries, 2u);
  EXPECT_EQ(sl.stats().cache_handles, 8u);
  EXPECT_EQ(sl.stats().cache_evictions, 1u);
}

TEST(SublistTest, WorksWithTheCacheDisabled) {
  SublistOptions opt;
  opt.cache_max_entries = 0;
  Sublist sl(opt);
  ASSERT_TRUE(sl.insert("a.>", "g", 1).is_ok());
  for (int i = 0; i < 3; ++i) EXPECT_EQ(sl.match("a.b").handle_count(), 1u);
  EXPECT_EQ(sl.stats().cache_entries, 0u);
  EXPECT_EQ(sl.stats().cache_hits, 0u);
  EXPECT_EQ(sl.stats().cache_misses, 3u);
}

TEST(SublistTest, MatchesMalformedSubjectsLikeSubjectMatches) {
  Sublist sl;
  ASSERT_TRUE(sl.insert("*", "", 1).is_ok());
  ASSERT_TRUE(sl.insert(">", "", 2).is_ok());
  ASSERT_TRUE(sl.insert("a.*", "", 3).is_ok());
  ASSERT_TRUE(sl.insert("*.*.*", "", 4).is_ok());
  const std::vector<Sub> ref = {{"*", "", 1}, {">", "", 2}, {"a.*", "", 3}, {"*.*.*", "", 4}};
  const std::vector<std::string> subjects = {"", ".", "a.", "..", "a..", "a.*", "a.>", "a b", std::string("a\0", 2)};
  for (const std::string& s : subjects) {
    EXPECT_EQ(flatten(sl.match(s)), brute_force(ref, s)) << '\'' << s << '\'';
  }
}

// Random patterns and subjects over a small alphabet so that they overlap often.
class RandomSubjects {
 public:
  explicit RandomSubjects(std::uint32_t seed) : rng_(seed) {}

  std::string subject() {
    const int n = 1 + pick(4);
    std::string s;
    for (int i = 0; i < n; ++i) {
      if (i) s += '.';
      s += token();
    }
    return s;
  }

  std::string pattern() {
    const int n = 1 + pick(4);
    std::string s;
    for (int i = 0; i < n; ++i) {
      if (i) s += '.';
      const int r = pick(10);
      if (r == 0) {
        s += '*';
      } else if (r == 1 && i == n - 1) {
        s += '>';
      } else {
        s += token();
      }
    }
    return s;
  }

  std::string queue() {
    static const char* kQueues[] = {"", "", "", "q1", "q2"};
    return kQueues[pick(5)];
  }

  int pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }

 private:
  std::string token() {
    static const char* kTokens[] = {"a", "b", "c", "A", "d*", "xyz"};
    return kTokens[pick(6)];
  }

  std::mt19937 rng_;
};

// Sublist::match against a brute-force scan, with inserts and removes interleaved, under a
// small cache (evictions and invalidations all the time), the default cache and no cache.
void run_random_comparison(SublistOptions options, std::uint32_t seed, int steps) {
  Sublist sl(options);
  std::vector<Sub> ref;
  RandomSubjects rnd(seed);
  int matched_nonempty = 0;
  for (int step = 0; step < steps; ++step) {
    const int op = rnd.pick(10);
    if (op < 3) {
      Sub s{rnd.pattern(), rnd.queue(), static_cast<SubscriptionHandle>(rnd.pick(8))};
      const bool dup = std::find(ref.begin(), ref.end(), s) != ref.end();
      Status st = sl.insert(s.pattern, s.queue, s.handle);
      ASSERT_EQ(st.is_ok(), !dup) << s.pattern << " " << st.to_string();
      if (dup) {
        ASSERT_EQ(st.code(), StatusCode::kAlreadyExists);
      } else {
        ref.push_back(s);
      }
    } else if (op < 5) {
      Sub s;
      if (!ref.empty() && rnd.pick(4) != 0) {
        s = ref[static_cast<std::size_t>(rnd.pick(static_cast<int>(ref.size())))];
      } else {
        s = Sub{rnd.pattern(), rnd.queue(), static_cast<SubscriptionHandle>(rnd.pick(8))};
      }
      auto it = std::find(ref.begin(), ref.end(), s);
      ASSERT_EQ(sl.remove(s.pattern, s.queue, s.handle), it != ref.end()) << s.pattern;
      if (it != ref.end()) ref.erase(it);
    } else {
      const std::string subject = rnd.subject();
      Flat got = flatten(sl.match(subject));
      Flat want = brute_force(ref, subject);
      ASSERT_EQ(got, want) << "step " << step << " subject " << subject;
      if (!want.plain.empty() || !want.groups.empty()) ++matched_nonempty;
    }
    ASSERT_EQ(sl.size(), ref.size());
  }
  // The generator must actually produce overlapping patterns and subjects.
  EXPECT_GT(matched_nonempty, steps / 10);
}

TEST(SublistRandomTest, AgreesWithBruteForceUnderTinyCache) {
  SublistOptions opt;
  opt.cache_max_entries = 16;
  opt.cache_max_handles = 64;
  for (std::uint32_t seed = 1; seed <= 4; ++seed) run_random_comparison(opt, seed, 5000);
}

TEST(SublistRandomTest, AgreesWithBruteForceUnderDefaultCache) {
  for (std::uint32_t seed = 11; seed <= 14; ++seed) run_random_comparison(SublistOptions{}, seed, 5000);
}

TEST(SublistRandomTest, AgreesWithBruteForceWithoutCache) {
  SublistOptions opt;
  opt.cache_max_entries = 0;
  run_random_comparison(opt, 21, 5000);
}

}  // namespace
}  // namespace slip::broker
