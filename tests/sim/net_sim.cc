#include "net_sim.h"

#include <algorithm>

namespace slip::transport::udp::sim {

void Link::schedule(Instant at, std::string bytes) { q_.push(InFlight{at, seq_++, std::move(bytes)}); }

void Link::send(Instant now, ByteView packet) {
  ++stats_.sent;
  if (options_.max_datagram > 0 && packet.size() > options_.max_datagram) {
    ++stats_.too_big;
    return;
  }
  Instant depart = now;
  if (options_.bandwidth_bps > 0) {
    // The bottleneck serializes packets; what waits for it is the queue.
    const Instant start = std::max(now, busy_until_);
    const double backlog_bytes =
        std::chrono::duration<double>(start - now).count() * static_cast<double>(options_.bandwidth_bps) / 8;
    if (backlog_bytes + static_cast<double>(packet.size()) > static_cast<double>(options_.queue_bytes)) {
      ++stats_.queue_dropped;
      return;
    }
    const auto tx = Duration(static_cast<std::int64_t>(static_cast<double>(packet.size()) * 8e9 /
                                                       static_cast<double>(options_.bandwidth_bps)));
    busy_until_ = start + tx;
    depart = busy_until_;
  }
  if (rng_.chance(options_.loss)) {
    ++stats_.lost;
    return;
  }
  const int copies = rng_.chance(options_.duplicate) ? 2 : 1;
  if (copies == 2) ++stats_.duplicated;
  for (int i = 0; i < copies; ++i) {
    Instant at = depart + options_.delay;
    if (options_.jitter > Duration::zero()) {
      at += Duration(static_cast<std::int64_t>(rng_.below(static_cast<std::uint64_t>(options_.jitter.count()))));
    }
    if (rng_.chance(options_.reorder)) {
      at += options_.reorder_delay;
      ++stats_.reordered;
    }
    std::string bytes(packet.as_string_view());
    if (!bytes.empty() && rng_.chance(options_.corrupt)) {
      const int flips = 1 + static_cast<int>(rng_.below(3));
      for (int f = 0; f < flips; ++f) {
        const std::uint64_t bit = rng_.below(bytes.size() * 8);
        bytes[bit / 8] = static_cast<char>(bytes[bit / 8] ^ (1 << (bit % 8)));
      }
      ++stats_.corrupted;
    }
    schedule(at, std::move(bytes));
  }
}

std::optional<Instant> Link::next_delivery() const {
  if (q_.empty()) return std::nullopt;
  return q_.top().at;
}

bool Link::pop_due(Instant now, std::string& out) {
  if (q_.empty() || q_.top().at > now) return false;
  out = std::move(const_cast<InFlight&>(q_.top()).bytes);
  q_.pop();
  ++stats_.delivered;
  stats_.bytes_delivered += out.size();
  return true;
}

Network::Network(const LinkOptions& a_to_b, const LinkOptions& b_to_a, std::uint64_t seed)
    : ab_(a_to_b, seed * 2 + 1), ba_(b_to_a, seed * 2 + 2), now_(kSimStart) {}

Instant Network::next_event() const {
  Instant t = std::min(a_->next_timeout(), b_->next_timeout());
  if (auto d = ab_.next_delivery()) t = std::min(t, *d);
  if (auto d = ba_.next_delivery()) t = std::min(t, *d);
  return t;
}

void Network::step(const Hook& hook) {
  ++steps_;
  std::string packet;
  while (ab_.pop_due(now_, packet)) b_->on_datagram(now_, ByteView(packet));
  while (ba_.pop_due(now_, packet)) a_->on_datagram(now_, ByteView(packet));
  if (a_->next_timeout() <= now_) a_->on_timeout(now_);
  if (b_->next_timeout() <= now_) b_->on_timeout(now_);
  if (hook) hook();
  // A connection that never stops offering packets is a bug; the bound turns it into a
  // failed test instead of a hang.
  for (int i = 0; i < 100000; ++i) {
    auto p = a_->poll_transmit(now_);
    if (!p) break;
    ab_.send(now_, *p);
  }
  for (int i = 0; i < 100000; ++i) {
    auto p = b_->poll_transmit(now_);
    if (!p) break;
    ba_.send(now_, *p);
  }
}

bool Network::run_until(const std::function<bool()>& done, Duration limit, const Hook& hook) {
  const Instant end = now_ + limit;
  for (;;) {
    step(hook);
    if (done()) return true;
    Instant t = next_event();
    // Timers that are due now but did nothing (a pacing release a hair away) must not stall
    // the clock: time always moves forward by at least a microsecond.
    t = std::max(t, now_ + std::chrono::microseconds(1));
    if (t > end) {
      now_ = end;
      return done();
    }
    now_ = t;
  }
}

void Network::run_for(Duration d, const Hook& hook) {
  run_until([] { return false; }, d, hook);
}

bool Network::run_until_idle(Duration limit, const Hook& hook) {
  return run_until([&] { return ab_.empty() && ba_.empty() && a_->is_quiescent() && b_->is_quiescent(); }, limit,
                   hook);
}

}  // namespace slip::transport::udp::sim
