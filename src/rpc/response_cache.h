// The response cache of cacheable unary methods (MethodOptions::cacheable; docs/rpc.md,
// "Response cache"): OK responses kept by request bytes for a time-to-live, in a least
// recently used list bounded in entries and bytes.
//
// The server keeps one ResponseCache per cacheable method, shared by its loops: lookup and
// insert take one mutex (held for a hash lookup and a list splice; values are shared, never
// copied under it). Time is passed in by the caller, so tests drive it with a fake clock.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "rpc/common.h"

namespace slip::rpc {

struct CacheOptions {
  // How long a response is served after it was stored.
  std::chrono::nanoseconds ttl = std::chrono::seconds(1);
  // Bounds on what the method's cache holds; the least recently used entries go first. 0: no
  // bound of that kind. A response larger than max_bytes on its own is not stored.
  std::size_t max_bytes = std::size_t{8} << 20;
  std::size_t max_entries = 4096;
  // Metadata keys whose values are part of the key besides the request bytes (as HTTP's Vary),
  // for responses that depend on who asks.
  std::vector<std::string> vary_metadata;
  // Monotonic nanoseconds; empty: the time the call arrived (no extra clock read).
  std::function<std::int64_t()> clock;
};

// What a cache hit replays: the one response message, and the headers and trailers the handler
// had added.
struct CachedResponse {
  std::string message;
  Metadata headers;
  Metadata trailers;
};

struct CacheStats {
  std::uint64_t hits = 0;
  std::uint64_t misses = 0;       // lookups that found nothing live (expired ones included)
  std::uint64_t insertions = 0;
  std::uint64_t evictions = 0;    // live entries dropped to stay within the bounds
  std::uint64_t expirations = 0;  // entries dropped because their time-to-live had passed
  std::uint64_t too_large = 0;    // responses not stored: larger than max_bytes alone
  // Entries dropped for a newer response to the same key (concurrent misses of one request
  // each ran the handler). insertions = entries + evictions + expirations + replaced.
  std::uint64_t replaced = 0;
  std::uint64_t entries = 0;      // now
  std::uint64_t bytes = 0;        // now, as counted against max_bytes
};

// The key of a request: its bytes and the values of `vary` keys in `metadata`, each
// length-prefixed so that no two different inputs share a key.
std::string cache_key(std::string_view request, const Metadata& metadata, const std::vector<std::string>& vary);

class ResponseCache {
 public:
  // Bytes counted per entry besides its key and value (list node, index slot, control block).
  static constexpr std::size_t kEntryOverhead = 128;

  explicit ResponseCache(CacheOptions options);
  ResponseCache(const ResponseCache&) = delete;
  ResponseCache& operator=(const ResponseCache&) = delete;

  // The live entry of `key` (made the most recently used), or null. An expired entry is
  // dropped. Any thread.
  std::shared_ptr<const CachedResponse> lookup(std::string_view key, std::int64_t now_ns);
  // Stores (or replaces) the entry of `key`, live until now_ns + ttl, evicting least recently
  // used entries to stay within the bounds. False when the entry alone exceeds max_bytes. Any
  // thread.
  bool insert(std::string key, std::shared_ptr<const CachedResponse> value, std::int64_t now_ns);
  void clear();

  CacheStats stats() const;
  const CacheOptions& options() const { return options_; }
  // What an entry counts against max_bytes.
  static std::size_t entry_bytes(std::string_view key, const CachedResponse& value);

 private:
  struct Entry {
    std::string key;
    std::shared_ptr<const CachedResponse> value;
    std::int64_t expires_ns;
    std::size_t bytes;
  };
  using List = std::list<Entry>;

  void erase(List::iterator it);  // mu_ held
  bool over_bounds(std::size_t extra_bytes, std::size_t extra_entries) const;  // mu_ held

  const CacheOptions options_;
  mutable std::mutex mu_;
  List lru_;  // front: most recently used
  std::unordered_map<std::string_view, List::iterator> index_;  // views of Entry::key
  std::size_t bytes_ = 0;
  // Written under mu_, read by stats() from any thread.
  std::atomic<std::uint64_t> hits_{0}, misses_{0}, insertions_{0}, evictions_{0}, expirations_{0}, too_large_{0},
      replaced_{0};
  std::atomic<std::uint64_t> entries_now_{0}, bytes_now_{0};
};

}  // namespace slip::rpc
