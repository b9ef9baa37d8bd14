#include "broker/responses.h"

#include <limits>

namespace slip::broker {

void ResponsePermits::grant(std::string_view reply, std::int64_t now_ns) {
  if (capacity_ == 0) return;
  sweep(now_ns);
  if (permits_.size() >= capacity_) permits_.pop_front();
  const std::int64_t never = std::numeric_limits<std::int64_t>::max();
  const std::int64_t expires = ttl_ns_ <= 0 || now_ns > never - ttl_ns_ ? never : now_ns + ttl_ns_;
  permits_.push_back(Permit{std::string(reply), expires});
}

bool ResponsePermits::take(std::string_view subject, std::int64_t now_ns) {
  sweep(now_ns);
  for (auto it = permits_.begin(); it != permits_.end(); ++it) {
    if (it->subject == subject) {
      permits_.erase(it);
      return true;
    }
  }
  return false;
}

void ResponsePermits::sweep(std::int64_t now_ns) {
  while (!permits_.empty() && permits_.front().expires_ns <= now_ns) permits_.pop_front();
}

}  // namespace slip::broker
