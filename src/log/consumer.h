// Consumers of a persistent stream: the configuration, and the state machine that decides what a
// consumer delivers next, what waits for an acknowledgement and what is redelivered.
//
// A consumer walks its stream's sequences in order. Each message it delivers (one matching its
// filter subject) is either done at once (AckPolicy::kNone) or pending until the client
// acknowledges it (kExplicit): ack (done), nak (redeliver now) or term (never redeliver). A
// pending message not acknowledged within ack_wait is redelivered; one delivered max_deliver
// times is then dropped and counted instead. New deliveries stop while max_ack_pending messages
// are pending; redeliveries do not.
//
// Consumer is pure: no I/O, no clock of its own (every call that needs the time takes `now`, in
// monotonic nanoseconds), no threads. ConsumerService (consumer_service.h) gives it messages,
// timers and a disk. Not thread-safe: one owner.
//
// The persisted state (encode_consumer_state) is a small binary record: see docs/streams.md.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "slipstream/buffer.h"
#include "slipstream/status.h"

namespace slip::log {

enum class DeliverPolicy : std::uint8_t {
  kAll,          // from the first stored message
  kLast,         // from the last stored message (matching the filter)
  kNew,          // only messages stored after the consumer was created
  kBySequence,   // from start_seq
  kByTime,       // from the first message stored at or after start_time_ns
};

enum class AckPolicy : std::uint8_t {
  kExplicit,  // every delivered message waits for ack, nak or term
  kNone,      // delivered is done
};

enum class AckKind : std::uint8_t {
  kAck,   // processed: never delivered again
  kNak,   // redeliver now
  kTerm,  // do not process, never deliver again
};

struct ConsumerConfig {
  std::string name;     // 1-64 bytes of [A-Za-z0-9_-]
  bool durable = false;  // durable: kept on disk across restarts; else ephemeral
  DeliverPolicy deliver = DeliverPolicy::kAll;
  std::uint64_t start_seq = 0;      // kBySequence, >= 1
  std::int64_t start_time_ns = 0;   // kByTime, nanoseconds since the Unix epoch
  std::string filter;               // a subscription pattern; empty: every message
  AckPolicy ack = AckPolicy::kExplicit;
  std::int64_t ack_wait_ms = 30'000;
  std::uint64_t max_deliver = 0;        // 0: no limit
  std::uint64_t max_ack_pending = 1000;
  std::int64_t inactive_threshold_ms = 5'000;  // ephemeral: removed after this long unused
  bool operator==(const ConsumerConfig&) const = default;
};

// (key, value) text pairs: the CONSUMER_ADD arguments, the CONSUMER_INFO fields and the lines of
// consumer.conf use these keys: name, durable (true|false), deliver (all|last|new|seq|time),
// start_seq, start_time_ns, filter, ack (explicit|none), ack_wait_ms, max_deliver,
// max_ack_pending, inactive_threshold_ms.
std::vector<std::pair<std::string, std::string>> consumer_config_fields(const ConsumerConfig& c);
// Sets one field; kInvalidArgument names the key and the problem.
Status apply_consumer_config_field(ConsumerConfig& c, std::string_view key, std::string_view value);
// Checks a whole configuration (name, filter, deliver options, bounds).
Status validate_consumer_config(const ConsumerConfig& c);
// Parses consumer.conf ("key=value" lines); kCorruption when malformed.
Result<ConsumerConfig> parse_consumer_conf(std::string_view text);
std::string consumer_conf_text(const ConsumerConfig& c);

struct ConsumerStats {
  std::uint64_t delivered_seq = 0;     // the highest stream sequence delivered
  std::uint64_t ack_floor = 0;         // every matching message up to here is done
  std::uint64_t num_ack_pending = 0;   // delivered, not yet acknowledged (waiting redeliveries too)
  std::uint64_t num_redelivered = 0;   // pending messages delivered more than once
  std::uint64_t num_waiting_redelivery = 0;
  std::uint64_t deliveries = 0;        // every delivery, redeliveries included
  std::uint64_t redeliveries = 0;
  std::uint64_t num_max_delivered = 0;  // messages dropped after max_deliver deliveries
  std::uint64_t num_terminated = 0;     // messages ended by term
};

// What survives a restart (pending deadlines do not: pending messages are redelivered at once).
struct ConsumerState {
  std::uint64_t next_seq = 1;
  std::uint64_t delivered_seq = 0;
  std::uint64_t deliveries = 0;
  std::uint64_t redeliveries = 0;
  std::uint64_t num_max_delivered = 0;
  std::uint64_t num_terminated = 0;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> pending;  // (sequence, deliveries), ascending
  bool operator==(const ConsumerState&) const = default;
};

// Encodes the state: "SLCS", version 1, varints, CRC32C of everything before it (little endian).
std::string encode_consumer_state(const ConsumerState& s);
// kCorruption for anything but a record encode_consumer_state made; at most `max_pending`
// pending entries are accepted.
Result<ConsumerState> decode_consumer_state(ByteView bytes, std::size_t max_pending = 1u << 20);

class Consumer {
 public:
  // `next_seq`: the first stream sequence this consumer considers (from its deliver policy).
  Consumer(ConsumerConfig config, std::uint64_t next_seq);
  // A consumer restored from its persisted state; every pending message is due for redelivery.
  Consumer(ConsumerConfig config, const ConsumerState& state);

  const ConsumerConfig& config() const { return config_; }
  // Whether a message on `subject` is one this consumer delivers.
  bool matches(std::string_view subject) const;

  // The next stream sequence to look at for a new delivery.
  std::uint64_t next_sequence() const { return next_seq_; }
  // Everything below `next` that was not delivered is passed over (not matching, or gone).
  void skip_to(std::uint64_t next);
  // Whether a new message may be delivered now (max_ack_pending not reached).
  bool has_room() const;
  // Delivers new message `seq` (>= next_sequence()): returns its delivery count, 1.
  std::uint64_t deliver_new(std::uint64_t seq, std::int64_t now);

  // The lowest sequence due for redelivery (nak'd, or its ack wait passed).
  std::optional<std::uint64_t> next_redelivery() const;
  // Redelivers `seq` (from next_redelivery()): returns its delivery count.
  std::uint64_t redeliver(std::uint64_t seq, std::int64_t now);
  // `seq` is gone from the stream (retention): forgotten.
  void drop(std::uint64_t seq);

  // Applies an acknowledgement. Unknown or already finished sequences are ignored (an ack may
  // race a redelivery): returns whether `seq` was pending.
  bool ack(std::uint64_t seq, AckKind kind, std::int64_t now);
  // Makes every pending message whose ack wait ended by `now` due for redelivery (or drops it
  // after max_deliver deliveries). Returns how many became due.
  std::size_t expire(std::int64_t now);
  // The earliest ack-wait deadline of an undue pending message.
  std::optional<std::int64_t> next_deadline() const;

  ConsumerStats stats() const;
  ConsumerState state() const;

 private:
  struct Pending {
    std::uint64_t deliveries = 0;
    std::int64_t deadline = 0;
    bool due = false;
  };
  void make_due(std::uint64_t seq, Pending& p);
  std::int64_t ack_wait_ns() const { return config_.ack_wait_ms * 1'000'000; }

  ConsumerConfig config_;
  std::uint64_t next_seq_ = 1;
  std::uint64_t delivered_seq_ = 0;
  std::map<std::uint64_t, Pending> pending_;
  std::set<std::uint64_t> due_;
  std::set<std::pair<std::int64_t, std::uint64_t>> deadlines_;  // (deadline, seq) of undue pending
  std::uint64_t deliveries_ = 0;
  std::uint64_t redeliveries_ = 0;
  std::uint64_t max_delivered_ = 0;
  std::uint64_t terminated_ = 0;
};

}  // namespace slip::log
