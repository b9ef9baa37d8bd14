// libFuzzer target: the reliable-UDP payload frame decoder (transport/udp/frames.h).
//
// Input layout:
//   byte 0   limits profile: 0 defaults, 1 small (2 ACK ranges, 8-byte CLOSE reasons), others
//            the largest the types allow
//   rest     one packet payload
//
// Checks, beyond "no crash, no sanitizer report":
//   - errors are INVALID_ARGUMENT with a message, and sticky;
//   - every decoded view lies inside the payload;
//   - every decoded frame re-encodes, and the re-encoding decodes to the same frame.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "transport/udp/frames.h"

namespace {

using namespace slip;
using namespace slip::transport::udp;

[[noreturn]] void fail(const char* what, const std::string& detail = {}) {
  std::fprintf(stderr, "udp_frames_fuzz: %s %s\n", what, detail.c_str());
  std::abort();
}

void check_inside(ByteView v, ByteView payload) {
  if (v.empty()) return;
  if (v.data() < payload.data() || v.data() + v.size() > payload.data() + payload.size()) fail("view outside the payload");
}

void check_round_trip(const Frame& f, const FrameLimits& limits) {
  // Reused: zeroing 128 KiB per frame would dominate the run time.
  static std::vector<std::uint8_t> buf(1 << 17);
  FrameWriter w(buf.data(), buf.size());
  if (!w.add(f)) fail("decoded frame does not re-encode", describe(f));
  FrameReader r(ByteView(buf.data(), w.size()), limits);
  Frame again;
  Result<bool> got = r.next(again);
  if (!got.is_ok()) fail("re-encoding does not decode", got.status().to_string());
  if (!*got) fail("re-encoding is empty");
  if (describe(again) != describe(f)) fail("re-encoding decodes differently", describe(f) + " vs " + describe(again));
  Frame extra;
  Result<bool> end = r.next(extra);
  if (!end.is_ok() || *end) fail("re-encoding has trailing bytes", describe(f));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  FrameLimits limits;
  if (data[0] == 1) {
    limits.max_ack_ranges = 2;
    limits.max_close_reason = 8;
  } else if (data[0] > 1) {
    limits.max_ack_ranges = SIZE_MAX;
    limits.max_close_reason = SIZE_MAX;
  }
  const ByteView payload(data + 1, size - 1);
  FrameReader reader(payload, limits);
  std::size_t frames = 0;
  for (;;) {
    Frame f;
    Result<bool> more = reader.next(f);
    if (!more.is_ok()) {
      if (more.status().code() != StatusCode::kInvalidArgument || more.status().message().empty()) {
        fail("unexpected error", more.status().to_string());
      }
      Result<bool> again = reader.next(f);
      if (again.is_ok() || !(again.status() == more.status())) fail("error is not sticky");
      break;
    }
    if (!*more) break;
    if (++frames > payload.size()) fail("more frames than bytes");
    if (const auto* s = std::get_if<StreamFrame>(&f)) check_inside(s->data, payload);
    if (const auto* d = std::get_if<DatagramFrame>(&f)) check_inside(d->data, payload);
    if (const auto* c = std::get_if<CloseFrame>(&f)) check_inside(ByteView(c->reason), payload);
    if (const auto* a = std::get_if<AckFrame>(&f)) {
      if (a->ranges.empty() || a->ranges.size() - 1 > limits.max_ack_ranges) fail("ACK range count out of bounds");
      for (std::size_t i = 0; i < a->ranges.size(); ++i) {
        if (a->ranges[i].smallest > a->ranges[i].largest) fail("ACK range upside down");
        if (i > 0 && a->ranges[i].largest + 2 > a->ranges[i - 1].smallest) fail("ACK ranges overlap or touch");
      }
    }
    check_round_trip(f, limits);
  }
  return 0;
}
