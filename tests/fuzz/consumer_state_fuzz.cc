// libFuzzer target: a consumer's files (src/log/consumer.h): the persisted state record and the
// consumer.conf text.
//
// Input: the bytes of a state file, also read as the text of a consumer.conf.
//
// Checks, beyond "no crash, no sanitizer report":
//   - every rejection is kCorruption;
//   - an accepted state re-encodes to exactly the input (the format has one encoding), its
//     pending sequences ascend below next_seq, and a Consumer restored from it reports them all
//     as pending and due;
//   - an accepted configuration is valid and survives a write and read unchanged.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "log/consumer.h"

namespace {

using namespace slip;
using namespace slip::log;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "consumer_state_fuzz: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const ByteView in(data, size);
  Result<ConsumerState> st = decode_consumer_state(in, 4096);
  if (!st.is_ok()) {
    if (st.status().code() != StatusCode::kCorruption) fail("state rejection is not kCorruption");
  } else {
    const std::string again = encode_consumer_state(*st);
    if (again.size() != size || (size > 0 && std::string_view(again) != std::string_view(reinterpret_cast<const char*>(data), size))) {
      fail("state does not re-encode to its input");
    }
    std::uint64_t prev = 0;
    for (const auto& [seq, n] : st->pending) {
      if (seq <= prev || seq >= st->next_seq || n == 0) fail("pending entries out of order or range");
      prev = seq;
    }
    ConsumerConfig c;
    c.name = "F";
    Consumer consumer(c, *st);
    const ConsumerStats s = consumer.stats();
    if (s.num_ack_pending != st->pending.size() || s.num_waiting_redelivery != st->pending.size()) {
      fail("restored consumer does not hold the pending entries");
    }
    if (!st->pending.empty() && (!consumer.next_redelivery() || *consumer.next_redelivery() != st->pending[0].first)) {
      fail("restored consumer does not redeliver the lowest pending sequence first");
    }
  }

  Result<ConsumerConfig> conf = parse_consumer_conf(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!conf.is_ok()) {
    if (conf.status().code() != StatusCode::kCorruption) fail("configuration rejection is not kCorruption");
  } else {
    if (!validate_consumer_config(*conf).is_ok()) fail("accepted configuration is not valid");
    Result<ConsumerConfig> back = parse_consumer_conf(consumer_conf_text(*conf));
    if (!back.is_ok() || !(*back == *conf)) fail("configuration does not survive a write and read");
  }
  return 0;
}
