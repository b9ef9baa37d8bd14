// What a subscriber may ask of the broker for one subscription (client and broker side).
#pragma once

#include <cstdint>

namespace slip::broker {

// How one subscription is served when its client falls behind (wire: SUB's DROP_OLDEST flag).
struct SubOptions {
  // False: the client is disconnected (the default). True: this subscription's messages wait
  // in a bounded backlog of their own and the oldest are dropped once it is full.
  bool drop_oldest = false;
  std::uint64_t backlog_msgs = 0;   // 0: the broker's default (BrokerOptions::backlog_msgs)
  std::uint64_t backlog_bytes = 0;  // 0: the broker's default (BrokerOptions::backlog_bytes)
};

}  // namespace slip::broker
