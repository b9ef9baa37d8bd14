// ResponsePermits: the reply subjects one client may publish to although its publish
// permissions would deny them (allow_responses, auth.h). Each message delivered to the client
// with a reply subject grants one PUB to that subject, until the permit is used or expires.
//
// Bounded: past `capacity` permits the oldest is forgotten. A permit expires `ttl` after it
// was granted (0: never; the capacity still bounds them). Time is passed in by the caller
// (monotonic nanoseconds), so that tests can drive it.
//
// Not thread-safe: one client's permits live on its connection's loop.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

namespace slip::broker {

class ResponsePermits {
 public:
  ResponsePermits(std::size_t capacity, std::chrono::nanoseconds ttl) : capacity_(capacity), ttl_ns_(ttl.count()) {}

  // One more PUB to `reply` is allowed from now_ns until it expires.
  void grant(std::string_view reply, std::int64_t now_ns);
  // Uses up a live permit for `subject`: true when there was one.
  bool take(std::string_view subject, std::int64_t now_ns);
  // Permits held, expired ones that were not yet swept included.
  std::size_t size() const { return permits_.size(); }
  void clear() { permits_.clear(); }

 private:
  struct Permit {
    std::string subject;
    std::int64_t expires_ns;  // INT64_MAX: never
  };
  // Drops the expired permits at the front (grants come in time order, so they expire in it).
  void sweep(std::int64_t now_ns);

  std::size_t capacity_;
  std::int64_t ttl_ns_;
  std::deque<Permit> permits_;  // oldest first
};

}  // namespace slip::broker
