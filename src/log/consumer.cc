#include "log/consumer.h"

#include <algorithm>
#include <charconv>
#include <cstring>

#include "broker/subject.h"
#include "core/crc32c.h"
#include "core/varint.h"
#include "log/meta_file.h"

namespace slip::log {

namespace {

constexpr std::string_view kStateMagic = "SLCS";
constexpr std::uint8_t kStateVersion = 1;

std::string_view deliver_text(DeliverPolicy p) {
  switch (p) {
    case DeliverPolicy::kAll: return "all";
    case DeliverPolicy::kLast: return "last";
    case DeliverPolicy::kNew: return "new";
    case DeliverPolicy::kBySequence: return "seq";
    case DeliverPolicy::kByTime: return "time";
  }
  return "all";
}

void put_varint(std::string& out, std::uint64_t v) {
  std::uint8_t buf[kMaxVarint64Bytes];
  const std::uint8_t* end = encode_varint(buf, v);
  out.append(reinterpret_cast<const char*>(buf), static_cast<std::size_t>(end - buf));
}

}  // namespace

// ---- configuration -------------------------------------------------------------------------

std::vector<std::pair<std::string, std::string>> consumer_config_fields(const ConsumerConfig& c) {
  std::vector<std::pair<std::string, std::string>> f;
  f.emplace_back("name", c.name);
  f.emplace_back("durable", c.durable ? "true" : "false");
  f.emplace_back("deliver", std::string(deliver_text(c.deliver)));
  if (c.deliver == DeliverPolicy::kBySequence) f.emplace_back("start_seq", std::to_string(c.start_seq));
  if (c.deliver == DeliverPolicy::kByTime) f.emplace_back("start_time_ns", std::to_string(c.start_time_ns));
  f.emplace_back("filter", c.filter);
  f.emplace_back("ack", c.ack == AckPolicy::kExplicit ? "explicit" : "none");
  f.emplace_back("ack_wait_ms", std::to_string(c.ack_wait_ms));
  f.emplace_back("max_deliver", std::to_string(c.max_deliver));
  f.emplace_back("max_ack_pending", std::to_string(c.max_ack_pending));
  f.emplace_back("inactive_threshold_ms", std::to_string(c.inactive_threshold_ms));
  return f;
}

Status apply_consumer_config_field(ConsumerConfig& c, std::string_view key, std::string_view v) {
  if (key == "name") {
    c.name = std::string(v);
    return Status();
  }
  if (key == "durable") {
    if (v != "true" && v != "false") return invalid_argument("durable: must be true or false");
    c.durable = v == "true";
    return Status();
  }
  if (key == "deliver") {
    if (v == "all") {
      c.deliver = DeliverPolicy::kAll;
    } else if (v == "last") {
      c.deliver = DeliverPolicy::kLast;
    } else if (v == "new") {
      c.deliver = DeliverPolicy::kNew;
    } else if (v == "seq") {
      c.deliver = DeliverPolicy::kBySequence;
    } else if (v == "time") {
      c.deliver = DeliverPolicy::kByTime;
    } else {
      std::string m = "deliver: \"";
      m.append(v.substr(0, 64)).append("\" is not all, last, new, seq or time");
      return invalid_argument(m);
    }
    return Status();
  }
  if (key == "start_seq") {
    SLIP_ASSIGN_OR_RETURN(c.start_seq, parse_u64_field(key, v));
    return Status();
  }
  if (key == "start_time_ns") {
    SLIP_ASSIGN_OR_RETURN(std::uint64_t t, parse_u64_field(key, v));
    if (t > static_cast<std::uint64_t>(INT64_MAX)) return invalid_argument("start_time_ns: too large");
    c.start_time_ns = static_cast<std::int64_t>(t);
    return Status();
  }
  if (key == "filter") {
    c.filter = std::string(v);
    return Status();
  }
  if (key == "ack") {
    if (v == "explicit") {
      c.ack = AckPolicy::kExplicit;
    } else if (v == "none") {
      c.ack = AckPolicy::kNone;
    } else {
      std::string m = "ack: \"";
      m.append(v.substr(0, 64)).append("\" is not explicit or none");
      return invalid_argument(m);
    }
    return Status();
  }
  if (key == "ack_wait_ms") {
    SLIP_ASSIGN_OR_RETURN(c.ack_wait_ms, parse_ms_field(key, v));
    return Status();
  }
  if (key == "max_deliver") {
    SLIP_ASSIGN_OR_RETURN(c.max_deliver, parse_u64_field(key, v));
    return Status();
  }
  if (key == "max_ack_pending") {
    SLIP_ASSIGN_OR_RETURN(c.max_ack_pending, parse_u64_field(key, v));
    return Status();
  }
  if (key == "inactive_threshold_ms") {
    SLIP_ASSIGN_OR_RETURN(c.inactive_threshold_ms, parse_ms_field(key, v));
    return Status();
  }
  std::string m = "unknown consumer option \"";
  m.append(key.substr(0, 64)).append("\"");
  return invalid_argument(m);
}

Status validate_consumer_config(const ConsumerConfig& c) {
  if (c.name.empty() || c.name.size() > kMaxNameBytes) return invalid_argument("name: 1 to 64 bytes");
  for (char ch : c.name) {
    const bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
                    ch == '-';
    if (!ok) return invalid_argument("name: only letters, digits, '_' and '-'");
  }
  if (!c.filter.empty()) {
    if (Status s = broker::validate_subscription_subject(c.filter); !s.is_ok()) {
      return invalid_argument("filter: " + std::string(s.message()));
    }
  }
  if (c.deliver == DeliverPolicy::kBySequence && c.start_seq == 0) {
    return invalid_argument("start_seq: deliver seq needs a start sequence >= 1");
  }
  if (c.deliver != DeliverPolicy::kBySequence && c.start_seq != 0) {
    return invalid_argument("start_seq: only with deliver seq");
  }
  if (c.deliver != DeliverPolicy::kByTime && c.start_time_ns != 0) {
    return invalid_argument("start_time_ns: only with deliver time");
  }
  if (c.ack == AckPolicy::kExplicit && c.ack_wait_ms == 0) return invalid_argument("ack_wait_ms: must be > 0");
  if (c.max_ack_pending == 0) return invalid_argument("max_ack_pending: must be > 0");
  if (c.max_ack_pending > (1u << 20)) return invalid_argument("max_ack_pending: at most 1048576");
  if (!c.durable && c.inactive_threshold_ms == 0) return invalid_argument("inactive_threshold_ms: must be > 0");
  return Status();
}

Result<ConsumerConfig> parse_consumer_conf(std::string_view text) {
  ConsumerConfig c;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(start, end - start);
    start = end + 1;
    if (line.empty()) continue;
    const std::size_t eq = line.find('=');
    if (eq == std::string_view::npos) return corruption("consumer.conf: a line without '='");
    if (Status s = apply_consumer_config_field(c, line.substr(0, eq), line.substr(eq + 1)); !s.is_ok()) {
      return corruption("consumer.conf: " + std::string(s.message()));
    }
  }
  if (Status s = validate_consumer_config(c); !s.is_ok()) return corruption("consumer.conf: " + std::string(s.message()));
  return c;
}

std::string consumer_conf_text(const ConsumerConfig& c) {
  std::string text;
  for (const auto& [k, v] : consumer_config_fields(c)) text.append(k).append("=").append(v).append("\n");
  return text;
}

// ---- persisted state -----------------------------------------------------------------------

std::string encode_consumer_state(const ConsumerState& s) {
  std::string out(kStateMagic);
  out.push_back(static_cast<char>(kStateVersion));
  put_varint(out, s.next_seq);
  put_varint(out, s.delivered_seq);
  put_varint(out, s.deliveries);
  put_varint(out, s.redeliveries);
  put_varint(out, s.num_max_delivered);
  put_varint(out, s.num_terminated);
  put_varint(out, s.pending.size());
  std::uint64_t prev = 0;
  for (const auto& [seq, n] : s.pending) {
    put_varint(out, seq - prev);  // ascending: deltas stay small
    put_varint(out, n);
    prev = seq;
  }
  const std::uint32_t crc = crc32c(ByteView(reinterpret_cast<const std::uint8_t*>(out.data()), out.size()));
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((crc >> (8 * i)) & 0xff));
  return out;
}

Result<ConsumerState> decode_consumer_state(ByteView bytes, std::size_t max_pending) {
  const std::size_t header = kStateMagic.size() + 1;
  if (bytes.size() < header + 4) return corruption("consumer state: too short");
  if (std::memcmp(bytes.data(), kStateMagic.data(), kStateMagic.size()) != 0) {
    return corruption("consumer state: bad magic");
  }
  if (bytes.data()[kStateMagic.size()] != kStateVersion) return corruption("consumer state: unknown version");
  const std::size_t body_end = bytes.size() - 4;
  std::uint32_t stored = 0;
  for (int i = 0; i < 4; ++i) stored |= static_cast<std::uint32_t>(bytes.data()[body_end + i]) << (8 * i);
  if (crc32c(ByteView(bytes.data(), body_end)) != stored) return corruption("consumer state: checksum mismatch");

  const std::uint8_t* p = bytes.data() + header;
  std::size_t left = body_end - header;
  auto next = [&](std::uint64_t& v) -> Status {
    VarintResult r = decode_varint(p, left);
    if (r.error != VarintError::kOk) return corruption("consumer state: bad varint");
    // One encoding only: a varint with a redundant trailing zero byte is not ours.
    if (r.length > 1 && p[r.length - 1] == 0) return corruption("consumer state: overlong varint");
    v = r.value;
    p += r.length;
    left -= r.length;
    return Status();
  };
  ConsumerState s;
  std::uint64_t count = 0;
  SLIP_TRY(next(s.next_seq));
  SLIP_TRY(next(s.delivered_seq));
  SLIP_TRY(next(s.deliveries));
  SLIP_TRY(next(s.redeliveries));
  SLIP_TRY(next(s.num_max_delivered));
  SLIP_TRY(next(s.num_terminated));
  SLIP_TRY(next(count));
  if (s.next_seq == 0) return corruption("consumer state: next sequence 0");
  if (count > max_pending || count > left / 2) return corruption("consumer state: too many pending entries");
  std::uint64_t prev = 0;
  for (std::uint64_t i = 0; i < count; ++i) {
    std::uint64_t delta = 0, n = 0;
    SLIP_TRY(next(delta));
    SLIP_TRY(next(n));
    if (delta == 0 || delta > UINT64_MAX - prev) return corruption("consumer state: pending sequences out of order");
    prev += delta;
    if (prev >= s.next_seq) return corruption("consumer state: pending sequence not yet delivered");
    if (n == 0) return corruption("consumer state: pending message with no delivery");
    s.pending.emplace_back(prev, n);
  }
  if (left != 0) return corruption("consumer state: trailing bytes");
  return s;
}

// ---- the state machine ---------------------------------------------------------------------

Consumer::Consumer(ConsumerConfig config, std::uint64_t next_seq)
    : config_(std::move(config)), next_seq_(next_seq == 0 ? 1 : next_seq) {}

Consumer::Consumer(ConsumerConfig config, const ConsumerState& state)
    : config_(std::move(config)),
      next_seq_(state.next_seq),
      delivered_seq_(state.delivered_seq),
      deliveries_(state.deliveries),
      redeliveries_(state.redeliveries),
      max_delivered_(state.num_max_delivered),
      terminated_(state.num_terminated) {
  for (const auto& [seq, n] : state.pending) {
    Pending p;
    p.deliveries = n;
    p.due = true;
    pending_.emplace(seq, p);
    due_.insert(seq);
  }
}

bool Consumer::matches(std::string_view subject) const {
  return config_.filter.empty() || broker::subject_matches(config_.filter, subject);
}

void Consumer::skip_to(std::uint64_t next) { next_seq_ = std::max(next_seq_, next); }

bool Consumer::has_room() const {
  return config_.ack == AckPolicy::kNone || pending_.size() < config_.max_ack_pending;
}

std::uint64_t Consumer::deliver_new(std::uint64_t seq, std::int64_t now) {
  next_seq_ = std::max(next_seq_, seq + 1);
  delivered_seq_ = std::max(delivered_seq_, seq);
  ++deliveries_;
  if (config_.ack == AckPolicy::kExplicit) {
    Pending p;
    p.deliveries = 1;
    p.deadline = now + ack_wait_ns();
    pending_[seq] = p;
    deadlines_.emplace(p.deadline, seq);
  }
  return 1;
}

std::optional<std::uint64_t> Consumer::next_redelivery() const {
  if (due_.empty()) return std::nullopt;
  return *due_.begin();
}

std::uint64_t Consumer::redeliver(std::uint64_t seq, std::int64_t now) {
  auto it = pending_.find(seq);
  if (it == pending_.end() || !it->second.due) return 0;
  Pending& p = it->second;
  due_.erase(seq);
  p.due = false;
  ++p.deliveries;
  p.deadline = now + ack_wait_ns();
  deadlines_.emplace(p.deadline, seq);
  ++deliveries_;
  ++redeliveries_;
  return p.deliveries;
}

void Consumer::drop(std::uint64_t seq) {
  auto it = pending_.find(seq);
  if (it == pending_.end()) return;
  if (it->second.due) {
    due_.erase(seq);
  } else {
    deadlines_.erase({it->second.deadline, seq});
  }
  pending_.erase(it);
}

void Consumer::make_due(std::uint64_t seq, Pending& p) {
  if (config_.max_deliver != 0 && p.deliveries >= config_.max_deliver) {
    ++max_delivered_;
    pending_.erase(seq);
    return;
  }
  p.due = true;
  due_.insert(seq);
}

bool Consumer::ack(std::uint64_t seq, AckKind kind, std::int64_t /*now*/) {
  auto it = pending_.find(seq);
  if (it == pending_.end()) return false;
  switch (kind) {
    case AckKind::kAck:
      drop(seq);
      break;
    case AckKind::kTerm:
      drop(seq);
      ++terminated_;
      break;
    case AckKind::kNak:
      if (it->second.due) break;  // already waiting for redelivery
      deadlines_.erase({it->second.deadline, seq});
      make_due(seq, it->second);
      break;
  }
  return true;
}

std::size_t Consumer::expire(std::int64_t now) {
  std::size_t n = 0;
  while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
    const std::uint64_t seq = deadlines_.begin()->second;
    deadlines_.erase(deadlines_.begin());
    auto it = pending_.find(seq);
    if (it == pending_.end()) continue;
    make_due(seq, it->second);
    ++n;
  }
  return n;
}

std::optional<std::int64_t> Consumer::next_deadline() const {
  if (deadlines_.empty()) return std::nullopt;
  return deadlines_.begin()->first;
}

ConsumerStats Consumer::stats() const {
  ConsumerStats s;
  s.delivered_seq = delivered_seq_;
  s.ack_floor = pending_.empty() ? next_seq_ - 1 : pending_.begin()->first - 1;
  s.num_ack_pending = pending_.size();
  for (const auto& [seq, p] : pending_) {
    if (p.deliveries > 1) ++s.num_redelivered;
  }
  s.num_waiting_redelivery = due_.size();
  s.deliveries = deliveries_;
  s.redeliveries = redeliveries_;
  s.num_max_delivered = max_delivered_;
  s.num_terminated = terminated_;
  return s;
}

ConsumerState Consumer::state() const {
  ConsumerState s;
  s.next_seq = next_seq_;
  s.delivered_seq = delivered_seq_;
  s.deliveries = deliveries_;
  s.redeliveries = redeliveries_;
  s.num_max_delivered = max_delivered_;
  s.num_terminated = terminated_;
  s.pending.reserve(pending_.size());
  for (const auto& [seq, p] : pending_) s.pending.emplace_back(seq, p.deliveries);
  return s;
}

}  // namespace slip::log
