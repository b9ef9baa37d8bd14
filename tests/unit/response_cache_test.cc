// The LRU response cache with a fake clock: hits, misses, time-to-live, bounds in entries and
// bytes, and its counters.
#include "rpc/response_cache.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace slip::rpc {
namespace {

constexpr std::int64_t kSecondNs = 1'000'000'000;

std::shared_ptr<const CachedResponse> response(std::string m) {
  auto r = std::make_shared<CachedResponse>();
  r->message = std::move(m);
  return r;
}

std::string key(int i) {
  std::string k = "k";
  k.append(std::to_string(i));
  return k;
}

CacheOptions options(std::size_t max_entries, std::size_t max_bytes = 0, std::chrono::nanoseconds ttl = std::chrono::seconds(10)) {
  CacheOptions o;
  o.max_entries = max_entries;
  o.max_bytes = max_bytes;
  o.ttl = ttl;
  return o;
}

TEST(ResponseCache, MissThenHitAfterInsert) {
  ResponseCache c(options(10));
  EXPECT_EQ(c.lookup("k", 0), nullptr);
  ASSERT_TRUE(c.insert("k", response("v"), 0));
  auto hit = c.lookup("k", 1);
  ASSERT_NE(hit, nullptr);
  EXPECT_EQ(hit->message, "v");
  EXPECT_EQ(c.lookup("other", 1), nullptr);
  CacheStats s = c.stats();
  EXPECT_EQ(s.hits, 1u);
  EXPECT_EQ(s.misses, 2u);
  EXPECT_EQ(s.insertions, 1u);
  EXPECT_EQ(s.entries, 1u);
  EXPECT_EQ(s.bytes, ResponseCache::entry_bytes("k", *hit));
}

TEST(ResponseCache, EntryExpiresWhenItsTtlHasPassed) {
  ResponseCache c(options(10, 0, std::chrono::seconds(10)));
  ASSERT_TRUE(c.insert("k", response("v"), 5 * kSecondNs));
  EXPECT_NE(c.lookup("k", 15 * kSecondNs - 1), nullptr);
  EXPECT_EQ(c.lookup("k", 15 * kSecondNs), nullptr);
  CacheStats s = c.stats();
  EXPECT_EQ(s.expirations, 1u);
  EXPECT_EQ(s.hits, 1u);
  EXPECT_EQ(s.misses, 1u);
  EXPECT_EQ(s.entries, 0u);
  EXPECT_EQ(s.bytes, 0u);
  // Storing it again makes it live again, from the new time.
  ASSERT_TRUE(c.insert("k", response("v2"), 20 * kSecondNs));
  EXPECT_EQ(c.lookup("k", 29 * kSecondNs)->message, "v2");
}

TEST(ResponseCache, EvictsTheLeastRecentlyUsedOverMaxEntries) {
  ResponseCache c(options(2));
  ASSERT_TRUE(c.insert("a", response("1"), 0));
  ASSERT_TRUE(c.insert("b", response("2"), 0));
  ASSERT_NE(c.lookup("a", 0), nullptr);  // "b" is now the least recently used
  ASSERT_TRUE(c.insert("c", response("3"), 0));
  EXPECT_EQ(c.lookup("b", 0), nullptr);
  EXPECT_NE(c.lookup("a", 0), nullptr);
  EXPECT_NE(c.lookup("c", 0), nullptr);
  EXPECT_EQ(c.stats().evictions, 1u);
  EXPECT_EQ(c.stats().entries, 2u);
}

TEST(ResponseCache, StaysWithinMaxBytes) {
  const std::size_t one = ResponseCache::entry_bytes("k0", *response(std::string(100, 'x')));
  ResponseCache c(options(0, 3 * one));
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(c.insert(key(i), response(std::string(100, 'x')), 0));
  CacheStats s = c.stats();
  EXPECT_EQ(s.entries, 3u);
  EXPECT_EQ(s.bytes, 3 * one);
  EXPECT_EQ(s.evictions, 7u);
  EXPECT_NE(c.lookup("k9", 0), nullptr);
  EXPECT_EQ(c.lookup("k6", 0), nullptr);
}

TEST(ResponseCache, RefusesAnEntryLargerThanMaxBytes) {
  ResponseCache c(options(0, 1000));
  ASSERT_TRUE(c.insert("small", response("v"), 0));
  EXPECT_FALSE(c.insert("big", response(std::string(2000, 'x')), 0));
  EXPECT_EQ(c.lookup("big", 0), nullptr);
  EXPECT_NE(c.lookup("small", 0), nullptr);  // nothing was evicted for it
  EXPECT_EQ(c.stats().too_large, 1u);
  EXPECT_EQ(c.stats().evictions, 0u);
}

TEST(ResponseCache, AnExpiredEntryPushedOutCountsAsExpiredNotEvicted) {
  ResponseCache c(options(1, 0, std::chrono::seconds(1)));
  ASSERT_TRUE(c.insert("a", response("1"), 0));
  ASSERT_TRUE(c.insert("b", response("2"), 2 * kSecondNs));
  EXPECT_EQ(c.stats().expirations, 1u);
  EXPECT_EQ(c.stats().evictions, 0u);
}

TEST(ResponseCache, InsertingAKeyAgainReplacesIt) {
  ResponseCache c(options(10));
  ASSERT_TRUE(c.insert("k", response("old"), 0));
  ASSERT_TRUE(c.insert("k", response("new"), 0));
  EXPECT_EQ(c.lookup("k", 0)->message, "new");
  EXPECT_EQ(c.stats().entries, 1u);
  EXPECT_EQ(c.stats().replaced, 1u);
  c.clear();
  EXPECT_EQ(c.lookup("k", 0), nullptr);
  EXPECT_EQ(c.stats().entries, 0u);
}

TEST(ResponseCache, KeyIncludesVaryMetadataWithoutAmbiguity) {
  const std::vector<std::string> vary = {"user"};
  const Metadata alice = {{"user", "alice"}};
  const Metadata bob = {{"user", "bob"}};
  EXPECT_EQ(cache_key("req", {}, {}), "req");
  EXPECT_NE(cache_key("req", alice, vary), cache_key("req", bob, vary));
  EXPECT_EQ(cache_key("req", alice, vary), cache_key("req", Metadata{{"x", "1"}, {"user", "alice"}}, vary));
  // Where the request ends and the metadata begins is part of the key.
  EXPECT_NE(cache_key("a", Metadata{{"user", "bc"}}, vary), cache_key("ab", Metadata{{"user", "c"}}, vary));
  // Absent and empty are the same value.
  EXPECT_EQ(cache_key("r", {}, vary), cache_key("r", Metadata{{"user", ""}}, vary));
}

TEST(ResponseCacheConcurrency, ThreadsLookingUpAndInsertingKeepTheBounds) {
  ResponseCache c(options(16));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&c, t] {
      for (int i = 0; i < 2000; ++i) {
        const std::string k = std::to_string((i * 7 + t) % 40);
        if (c.lookup(k, i) == nullptr) (void)c.insert(k, response(k), i);
      }
    });
  }
  for (auto& t : threads) t.join();
  CacheStats s = c.stats();
  EXPECT_LE(s.entries, 16u);
  EXPECT_EQ(s.hits + s.misses, 8000u);
  EXPECT_EQ(s.insertions, s.misses);
  EXPECT_EQ(s.insertions, s.entries + s.evictions + s.expirations + s.replaced);
}

}  // namespace
}  // namespace slip::rpc
