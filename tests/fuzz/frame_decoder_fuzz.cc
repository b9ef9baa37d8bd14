// libFuzzer target: FrameDecoder + parse_frame + FrameEncoder.
//
// Input layout:
//   byte 0   options: bit 0 expect the preface; bits 1-2 pick a WireLimits profile;
//            bits 3-7 mix into the split seed
//   byte 1   split seed: 0 feeds the stream in one piece, otherwise piece lengths come from a
//            small PRNG seeded with it
//   rest     the byte stream
//
// Checks, beyond "no crash, no sanitizer report":
//   - every error is a Status with a code the wire layer uses and a message;
//   - decoder errors are sticky;
//   - a parsed frame re-encodes to bytes that decode and parse again, to the same type, and
//     encoding that second parse gives the same bytes (the encoding is a fixed point);
//   - the typed decoders agree with parse_frame.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "wire/decoder.h"
#include "wire/encoder.h"
#include "wire/frame.h"
#include "wire/frames.h"

namespace {

using namespace slip;
using namespace slip::wire;

[[noreturn]] void fail(const char* what, const std::string& detail = {}) {
  std::fprintf(stderr, "frame_decoder_fuzz: %s %s\n", what, detail.c_str());
  std::abort();
}

void check_error(const Status& s, const char* where) {
  if (s.is_ok()) fail("expected an error", where);
  const StatusCode c = s.code();
  if (c != StatusCode::kInvalidArgument && c != StatusCode::kOverloaded && c != StatusCode::kUnimplemented) {
    fail("unexpected status code", std::string(where) + ": " + s.to_string());
  }
  if (s.message().empty()) fail("error without a message", where);
}

WireLimits limits_for(std::uint8_t profile) {
  WireLimits l;
  switch (profile & 3) {
    case 0:  // defaults
      break;
    case 1:  // small, so that limit checks fire often
      l.max_frame_size = 256;
      l.max_name_size = 16;
      l.max_metadata_entries = 4;
      l.max_metadata_bytes = 64;
      break;
    case 2:  // tiny
      l.max_frame_size = 12;
      l.max_name_size = 2;
      l.max_metadata_entries = 1;
      l.max_metadata_bytes = 3;
      break;
    case 3:  // everything the types allow: only honest lengths stop the parser
      l.max_frame_size = kHardMaxFrameSize;
      l.max_name_size = 0xFFFFFFFFu;
      l.max_metadata_entries = 0xFFFFFFFFu;
      l.max_metadata_bytes = 0xFFFFFFFFu;
      break;
  }
  return l;
}

std::string bytes_of(const Chain& c) { return c.to_string(); }

// Encodes a parsed frame, decodes and parses the result, and checks it is a fixed point.
void check_reencoding(const AnyFrame& parsed, const WireLimits& limits) {
  FrameEncoder enc(64);  // small blocks: exercises block changes in the encoder too
  enc.add(parsed);
  const std::string first = bytes_of(enc.take());

  WireLimits relaxed = limits;
  relaxed.max_frame_size = kHardMaxFrameSize;
  FrameDecoder dec(relaxed);
  dec.feed(Slice::copy_of(ByteView(first)));
  Frame f;
  Result<bool> got = dec.next(f);
  if (!got.is_ok()) fail("re-encoding does not decode", got.status().to_string());
  if (!*got) fail("re-encoding is incomplete");
  if (dec.buffered() != 0) fail("re-encoding has extra bytes");
  if (f.type != type_of(parsed)) fail("re-encoding changed the frame type");

  Result<AnyFrame> again = parse_frame(f, limits);
  if (!again.is_ok()) fail("re-encoding does not parse", again.status().to_string());
  if (again->index() != parsed.index()) fail("re-encoding parsed to another type");

  FrameEncoder enc2;
  enc2.add(*again);
  if (bytes_of(enc2.take()) != first) fail("encoding is not a fixed point", std::string(frame_type_name(f.type)));
}

// The typed decoders must reach the same verdict as parse_frame.
void check_typed_decoders(const Frame& f, const WireLimits& limits, bool parsed_ok) {
  bool ok = parsed_ok;
  switch (f.type) {
    case FrameType::kHello: ok = decode_hello(f, limits).is_ok(); break;
    case FrameType::kWelcome: ok = decode_welcome(f, limits).is_ok(); break;
    case FrameType::kData: ok = decode_data(f).is_ok(); break;
    case FrameType::kPub: ok = decode_pub(f, limits).is_ok(); break;
    case FrameType::kMsg: ok = decode_msg(f, limits).is_ok(); break;
    case FrameType::kPing: ok = decode_ping(f).is_ok(); break;
    default: break;
  }
  if (ok != parsed_ok) fail("typed decoder disagrees with parse_frame", std::string(frame_type_name(f.type)));
}

void handle_frame(const Frame& f, const WireLimits& limits) {
  if (f.body.size() > limits.max_frame_size) fail("frame over max_frame_size was delivered");
  const auto type = static_cast<std::uint8_t>(f.type);
  if (!is_known_frame_type(type) && !is_extension_frame_type(type)) fail("reserved frame type was delivered");

  Result<AnyFrame> parsed = parse_frame(f, limits);
  check_typed_decoders(f, limits, parsed.is_ok());
  if (!parsed.is_ok()) {
    check_error(parsed.status(), "parse_frame");
    if (is_extension_frame_type(type) && parsed.status().code() != StatusCode::kUnimplemented) {
      fail("extension frame not reported as UNIMPLEMENTED", parsed.status().to_string());
    }
    return;
  }
  if (type_of(*parsed) != f.type) fail("parse_frame returned another type");
  check_reencoding(*parsed, limits);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::uint8_t options = data[0];
  const std::uint8_t seed = data[1];
  const bool preface = options & 1;
  const WireLimits limits = limits_for(static_cast<std::uint8_t>(options >> 1));
  const ByteView stream(data + 2, size - 2);

  FrameDecoder dec(limits, preface);
  std::uint32_t rng = (static_cast<std::uint32_t>(options >> 3) << 8 | seed) * 2654435761u + 1;
  std::size_t pos = 0;
  Status error;
  do {
    std::size_t n = stream.size() - pos;
    if (seed != 0 && n > 0) {
      rng ^= rng << 13;
      rng ^= rng >> 17;
      rng ^= rng << 5;
      n = std::min<std::size_t>(n, 1 + rng % (1 + seed % 61u));
    }
    dec.feed(Slice::copy_of(stream.sub(pos, n)));
    pos += n;
    for (;;) {
      Frame f;
      Result<bool> r = dec.next(f);
      if (!r.is_ok()) {
        if (error.is_ok()) {
          check_error(r.status(), "decoder");
          error = r.status();
        } else if (!(r.status() == error)) {
          fail("decoder error is not sticky", r.status().to_string() + " vs " + error.to_string());
        }
        break;
      }
      if (!*r) break;
      if (!error.is_ok()) fail("decoder produced a frame after an error");
      handle_frame(f, limits);
    }
  } while (pos < stream.size());
  if (!error.is_ok()) {
    if (dec.buffered() != 0) fail("decoder holds bytes after an error");
    Frame f;
    Result<bool> again = dec.next(f);
    if (again.is_ok() || !(again.status() == error)) fail("decoder error is not sticky at the end");
  }
  return 0;
}
