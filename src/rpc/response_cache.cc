#include "rpc/response_cache.h"

namespace slip::rpc {

namespace {

void append_length_prefixed(std::string& out, std::string_view bytes) {
  std::uint64_t n = bytes.size();
  for (int i = 0; i < 8; ++i) {
    out.push_back(static_cast<char>(n & 0xff));
    n >>= 8;
  }
  out.append(bytes);
}

void bump(std::atomic<std::uint64_t>& c) { c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed); }

}  // namespace

std::string cache_key(std::string_view request, const Metadata& metadata, const std::vector<std::string>& vary) {
  std::string key;
  if (vary.empty()) {
    key.assign(request);
    return key;
  }
  std::size_t n = request.size() + 8;
  for (const auto& k : vary) n += find_metadata(metadata, k).size() + 8;
  key.reserve(n);
  append_length_prefixed(key, request);
  for (const auto& k : vary) append_length_prefixed(key, find_metadata(metadata, k));
  return key;
}

ResponseCache::ResponseCache(CacheOptions options) : options_(std::move(options)) {}

std::size_t ResponseCache::entry_bytes(std::string_view key, const CachedResponse& value) {
  std::size_t n = kEntryOverhead + key.size() + value.message.size();
  for (const auto& [k, v] : value.headers) n += k.size() + v.size();
  for (const auto& [k, v] : value.trailers) n += k.size() + v.size();
  return n;
}

void ResponseCache::erase(List::iterator it) {
  bytes_ -= it->bytes;
  index_.erase(std::string_view(it->key));
  lru_.erase(it);
}

bool ResponseCache::over_bounds(std::size_t extra_bytes, std::size_t extra_entries) const {
  if (options_.max_bytes > 0 && bytes_ + extra_bytes > options_.max_bytes) return true;
  return options_.max_entries > 0 && lru_.size() + extra_entries > options_.max_entries;
}

std::shared_ptr<const CachedResponse> ResponseCache::lookup(std::string_view key, std::int64_t now_ns) {
  std::lock_guard lock(mu_);
  auto it = index_.find(key);
  if (it == index_.end()) {
    bump(misses_);
    return nullptr;
  }
  List::iterator e = it->second;
  if (now_ns >= e->expires_ns) {
    erase(e);
    bump(expirations_);
    bump(misses_);
    entries_now_.store(lru_.size(), std::memory_order_relaxed);
    bytes_now_.store(bytes_, std::memory_order_relaxed);
    return nullptr;
  }
  lru_.splice(lru_.begin(), lru_, e);
  bump(hits_);
  return e->value;
}

bool ResponseCache::insert(std::string key, std::shared_ptr<const CachedResponse> value, std::int64_t now_ns) {
  const std::size_t bytes = entry_bytes(key, *value);
  const std::int64_t expires = now_ns + options_.ttl.count();
  std::lock_guard lock(mu_);
  if (auto it = index_.find(key); it != index_.end()) {
    erase(it->second);
    bump(replaced_);
  }
  if (options_.max_bytes > 0 && bytes > options_.max_bytes) {
    bump(too_large_);
    entries_now_.store(lru_.size(), std::memory_order_relaxed);
    bytes_now_.store(bytes_, std::memory_order_relaxed);
    return false;
  }
  while (!lru_.empty() && over_bounds(bytes, 1)) {
    auto victim = std::prev(lru_.end());
    bump(now_ns >= victim->expires_ns ? expirations_ : evictions_);
    erase(victim);
  }
  lru_.push_front(Entry{std::move(key), std::move(value), expires, bytes});
  index_.emplace(std::string_view(lru_.front().key), lru_.begin());
  bytes_ += bytes;
  bump(insertions_);
  entries_now_.store(lru_.size(), std::memory_order_relaxed);
  bytes_now_.store(bytes_, std::memory_order_relaxed);
  return true;
}

void ResponseCache::clear() {
  std::lock_guard lock(mu_);
  index_.clear();
  lru_.clear();
  bytes_ = 0;
  entries_now_.store(0, std::memory_order_relaxed);
  bytes_now_.store(0, std::memory_order_relaxed);
}

CacheStats ResponseCache::stats() const {
  CacheStats s;
  s.hits = hits_.load(std::memory_order_relaxed);
  s.misses = misses_.load(std::memory_order_relaxed);
  s.insertions = insertions_.load(std::memory_order_relaxed);
  s.evictions = evictions_.load(std::memory_order_relaxed);
  s.expirations = expirations_.load(std::memory_order_relaxed);
  s.too_large = too_large_.load(std::memory_order_relaxed);
  s.replaced = replaced_.load(std::memory_order_relaxed);
  s.entries = entries_now_.load(std::memory_order_relaxed);
  s.bytes = bytes_now_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace slip::rpc
