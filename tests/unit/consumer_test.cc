// The consumer state machine (src/log/consumer.h) on a hand-advanced clock: deliveries, acks,
// naks, terms, ack-wait redelivery, max_deliver, max_ack_pending, filters; the configuration
// fields; the persisted state's codec (round trips, and every flipped, cut or lengthened byte
// rejected).
#include "log/consumer.h"

#include <gtest/gtest.h>

#include <chrono>

#include "core/clock.h"

namespace slip::log {
namespace {

using namespace std::chrono_literals;

ConsumerConfig config(std::int64_t ack_wait_ms = 1000) {
  ConsumerConfig c;
  c.name = "C";
  c.ack_wait_ms = ack_wait_ms;
  return c;
}

TEST(Consumer, DeliversInOrderAndAcksMoveTheFloor) {
  ManualClock clock;
  Consumer c(config(), 1);
  EXPECT_EQ(c.deliver_new(1, clock.now_ns()), 1u);
  EXPECT_EQ(c.deliver_new(2, clock.now_ns()), 1u);
  EXPECT_EQ(c.deliver_new(3, clock.now_ns()), 1u);
  EXPECT_EQ(c.next_sequence(), 4u);
  ConsumerStats s = c.stats();
  EXPECT_EQ(s.delivered_seq, 3u);
  EXPECT_EQ(s.ack_floor, 0u);
  EXPECT_EQ(s.num_ack_pending, 3u);
  EXPECT_TRUE(c.ack(2, AckKind::kAck, clock.now_ns()));
  EXPECT_EQ(c.stats().ack_floor, 0u);  // 1 is still pending
  EXPECT_TRUE(c.ack(1, AckKind::kAck, clock.now_ns()));
  EXPECT_EQ(c.stats().ack_floor, 2u);
  EXPECT_TRUE(c.ack(3, AckKind::kAck, clock.now_ns()));
  EXPECT_EQ(c.stats().ack_floor, 3u);
  EXPECT_EQ(c.stats().num_ack_pending, 0u);
  // A second ack of the same message is ignored.
  EXPECT_FALSE(c.ack(3, AckKind::kAck, clock.now_ns()));
  EXPECT_FALSE(c.next_redelivery());
}

TEST(Consumer, UnackedMessageIsRedeliveredAfterAckWait) {
  ManualClock clock;
  Consumer c(config(1000), 1);
  c.deliver_new(1, clock.now_ns());
  c.deliver_new(2, clock.now_ns());
  ASSERT_TRUE(c.next_deadline());
  EXPECT_EQ(*c.next_deadline(), clock.now_ns() + 1'000'000'000);
  clock.advance(999ms);
  EXPECT_EQ(c.expire(clock.now_ns()), 0u);
  EXPECT_FALSE(c.next_redelivery());
  c.ack(2, AckKind::kAck, clock.now_ns());
  clock.advance(1ms);
  EXPECT_EQ(c.expire(clock.now_ns()), 1u);
  ASSERT_TRUE(c.next_redelivery());
  EXPECT_EQ(*c.next_redelivery(), 1u);
  EXPECT_EQ(c.redeliver(1, clock.now_ns()), 2u);
  EXPECT_FALSE(c.next_redelivery());
  ConsumerStats s = c.stats();
  EXPECT_EQ(s.num_redelivered, 1u);
  EXPECT_EQ(s.redeliveries, 1u);
  EXPECT_EQ(s.deliveries, 3u);
  // The new ack wait runs from the redelivery.
  EXPECT_EQ(*c.next_deadline(), clock.now_ns() + 1'000'000'000);
  clock.advance(1000ms);
  EXPECT_EQ(c.expire(clock.now_ns()), 1u);
  EXPECT_EQ(c.redeliver(1, clock.now_ns()), 3u);
}

TEST(Consumer, NakRedeliversNowAndTermNever) {
  ManualClock clock;
  Consumer c(config(60'000), 1);
  c.deliver_new(1, clock.now_ns());
  c.deliver_new(2, clock.now_ns());
  EXPECT_TRUE(c.ack(1, AckKind::kNak, clock.now_ns()));
  ASSERT_TRUE(c.next_redelivery());
  EXPECT_EQ(*c.next_redelivery(), 1u);
  EXPECT_TRUE(c.ack(2, AckKind::kTerm, clock.now_ns()));
  EXPECT_EQ(c.stats().num_terminated, 1u);
  EXPECT_EQ(c.redeliver(1, clock.now_ns()), 2u);
  clock.advance(120s);
  EXPECT_EQ(c.expire(clock.now_ns()), 1u);  // 1 again; 2 never
  EXPECT_EQ(*c.next_redelivery(), 1u);
  EXPECT_EQ(c.stats().num_ack_pending, 1u);
  EXPECT_EQ(c.stats().ack_floor, 0u);
}

TEST(Consumer, MaxDeliverStopsRedeliveryAndCountsIt) {
  ManualClock clock;
  ConsumerConfig cfg = config(100);
  cfg.max_deliver = 2;
  Consumer c(cfg, 1);
  c.deliver_new(1, clock.now_ns());
  clock.advance(100ms);
  c.expire(clock.now_ns());
  EXPECT_EQ(c.redeliver(1, clock.now_ns()), 2u);
  clock.advance(100ms);
  EXPECT_EQ(c.expire(clock.now_ns()), 1u);
  EXPECT_FALSE(c.next_redelivery());
  ConsumerStats s = c.stats();
  EXPECT_EQ(s.num_max_delivered, 1u);
  EXPECT_EQ(s.num_ack_pending, 0u);
  EXPECT_EQ(s.ack_floor, 1u);
  // A nak at the limit ends the message the same way.
  c.deliver_new(2, clock.now_ns());
  c.ack(2, AckKind::kNak, clock.now_ns());
  EXPECT_EQ(c.redeliver(2, clock.now_ns()), 2u);
  c.ack(2, AckKind::kNak, clock.now_ns());
  EXPECT_FALSE(c.next_redelivery());
  EXPECT_EQ(c.stats().num_max_delivered, 2u);
}

TEST(Consumer, MaxAckPendingBoundsNewDeliveriesNotRedeliveries) {
  ManualClock clock;
  ConsumerConfig cfg = config(100);
  cfg.max_ack_pending = 2;
  Consumer c(cfg, 1);
  EXPECT_TRUE(c.has_room());
  c.deliver_new(1, clock.now_ns());
  c.deliver_new(2, clock.now_ns());
  EXPECT_FALSE(c.has_room());
  clock.advance(100ms);
  c.expire(clock.now_ns());
  EXPECT_EQ(*c.next_redelivery(), 1u);  // due though there is no room
  c.ack(1, AckKind::kAck, clock.now_ns());
  EXPECT_TRUE(c.has_room());
  // Without acks there is no bound.
  ConsumerConfig none = cfg;
  none.ack = AckPolicy::kNone;
  Consumer n(none, 1);
  for (std::uint64_t i = 1; i <= 10; ++i) n.deliver_new(i, clock.now_ns());
  EXPECT_TRUE(n.has_room());
  EXPECT_EQ(n.stats().num_ack_pending, 0u);
  EXPECT_EQ(n.stats().ack_floor, 10u);
}

TEST(Consumer, SkippedAndDroppedMessages) {
  ManualClock clock;
  ConsumerConfig cfg = config();
  cfg.filter = "orders.*";
  Consumer c(cfg, 5);
  EXPECT_TRUE(c.matches("orders.eu"));
  EXPECT_FALSE(c.matches("orders.eu.x"));
  EXPECT_FALSE(c.matches("audit"));
  c.skip_to(7);
  EXPECT_EQ(c.next_sequence(), 7u);
  c.skip_to(3);  // never backwards
  EXPECT_EQ(c.next_sequence(), 7u);
  c.deliver_new(7, clock.now_ns());
  c.drop(7);  // gone from the stream
  EXPECT_EQ(c.stats().num_ack_pending, 0u);
  EXPECT_FALSE(c.next_deadline());
}

TEST(Consumer, StateRoundTripsAndRestoredPendingIsDue) {
  ManualClock clock;
  ConsumerConfig cfg = config(100);
  Consumer c(cfg, 1);
  for (std::uint64_t i = 1; i <= 5; ++i) c.deliver_new(i, clock.now_ns());
  c.ack(1, AckKind::kAck, clock.now_ns());
  c.ack(4, AckKind::kTerm, clock.now_ns());
  clock.advance(100ms);
  c.expire(clock.now_ns());
  c.redeliver(2, clock.now_ns());
  const ConsumerState st = c.state();
  ASSERT_EQ(st.pending.size(), 3u);
  const std::string bytes = encode_consumer_state(st);
  auto back = decode_consumer_state(ByteView(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()));
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  EXPECT_EQ(*back, st);
  Consumer r(cfg, *back);
  EXPECT_EQ(r.next_sequence(), 6u);
  EXPECT_EQ(r.stats().num_terminated, 1u);
  EXPECT_EQ(*r.next_redelivery(), 2u);
  EXPECT_EQ(r.redeliver(2, clock.now_ns()), 3u);  // the count survives
  EXPECT_EQ(*r.next_redelivery(), 3u);
}

TEST(Consumer, DamagedStateIsCorruption) {
  ConsumerState st;
  st.next_seq = 300;
  st.delivered_seq = 299;
  st.deliveries = 500;
  st.pending = {{10, 1}, {200, 3}, {299, 1}};
  const std::string good = encode_consumer_state(st);
  auto decode = [](const std::string& b) {
    return decode_consumer_state(ByteView(reinterpret_cast<const std::uint8_t*>(b.data()), b.size()));
  };
  ASSERT_TRUE(decode(good).is_ok());
  for (std::size_t i = 0; i < good.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string bad = good;
      bad[i] = static_cast<char>(bad[i] ^ (1 << bit));
      auto r = decode(bad);
      ASSERT_FALSE(r.is_ok()) << "flip at byte " << i << " bit " << bit;
      EXPECT_EQ(r.status().code(), StatusCode::kCorruption);
    }
    EXPECT_EQ(decode(good.substr(0, i)).status().code(), StatusCode::kCorruption) << "cut at " << i;
  }
  EXPECT_EQ(decode(good + "x").status().code(), StatusCode::kCorruption);
  // A well-formed record with a pending sequence never delivered is refused too.
  ConsumerState ahead = st;
  ahead.pending.back().first = 300;
  EXPECT_EQ(decode(encode_consumer_state(ahead)).status().code(), StatusCode::kCorruption);
}

TEST(ConsumerConfig, FieldsRoundTripAndBadValuesAreNamed) {
  ConsumerConfig c;
  c.name = "orders-eu_1";
  c.durable = true;
  c.deliver = DeliverPolicy::kByTime;
  c.start_time_ns = 1'700'000'000'000'000'000;
  c.filter = "orders.eu.>";
  c.ack = AckPolicy::kNone;
  c.ack_wait_ms = 250;
  c.max_deliver = 5;
  c.max_ack_pending = 64;
  auto back = parse_consumer_conf(consumer_conf_text(c));
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  EXPECT_EQ(*back, c);

  ConsumerConfig x;
  Status s = apply_consumer_config_field(x, "deliver", "sometimes");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("deliver"), std::string_view::npos);
  EXPECT_EQ(apply_consumer_config_field(x, "ack", "maybe").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(apply_consumer_config_field(x, "ack_wait_ms", "-1").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(apply_consumer_config_field(x, "colour", "red").code(), StatusCode::kInvalidArgument);
  x.name = "bad name";
  EXPECT_EQ(validate_consumer_config(x).code(), StatusCode::kInvalidArgument);
  x.name = "ok";
  EXPECT_TRUE(validate_consumer_config(x).is_ok());
  x.filter = "a..b";
  EXPECT_EQ(validate_consumer_config(x).code(), StatusCode::kInvalidArgument);
  x.filter = "";
  x.deliver = DeliverPolicy::kBySequence;
  EXPECT_EQ(validate_consumer_config(x).code(), StatusCode::kInvalidArgument);  // no start_seq
  x.start_seq = 3;
  EXPECT_TRUE(validate_consumer_config(x).is_ok());
  x.max_ack_pending = 0;
  EXPECT_EQ(validate_consumer_config(x).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(parse_consumer_conf("name=x\nno equals sign\n").status().code(), StatusCode::kCorruption);
}

}  // namespace
}  // namespace slip::log
