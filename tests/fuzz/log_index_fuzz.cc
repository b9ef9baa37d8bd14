// libFuzzer target: the log's index file readers (src/log/index.h).
//
// Input: the bytes of an index file, tried both as an offset index and as a time index.
//
// Checks, beyond "no crash, no sanitizer report":
//   - every rejection is kCorruption;
//   - an accepted index re-encodes to exactly the input (the format has one encoding);
//   - the decoded invariants hold (entries in order and in range), and index_lookup /
//     time_lookup agree with a linear scan for sequences and timestamps around every entry.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "log/index.h"

namespace {

using namespace slip;
using namespace slip::log;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "log_index_fuzz: %s\n", what);
  std::abort();
}

IndexEntry linear_lookup(const std::vector<IndexEntry>& e, std::uint64_t base, std::uint64_t seq) {
  IndexEntry out{base, 0};
  for (const IndexEntry& x : e) {
    if (x.sequence <= seq) out = x;
  }
  return out;
}

std::uint64_t linear_time(const std::vector<TimeEntry>& e, std::uint64_t base, std::int64_t ts) {
  std::uint64_t out = base;
  for (const TimeEntry& x : e) {
    if (x.max_timestamp_before_ns < ts) out = x.sequence;
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const ByteView in(data, size);

  Result<OffsetIndex> oi = decode_offset_index(in);
  if (!oi.is_ok()) {
    if (oi.status().code() != StatusCode::kCorruption) fail("offset index rejection is not kCorruption");
  } else {
    const std::vector<std::uint8_t> again = encode_offset_index(*oi);
    if (!(ByteView(again.data(), again.size()) == in)) fail("offset index does not re-encode to its input");
    const auto& e = oi->entries;
    for (std::size_t i = 0; i < e.size(); ++i) {
      if (e[i].sequence < oi->base_sequence || e[i].sequence >= oi->next_sequence ||
          e[i].position >= oi->segment_bytes) {
        fail("offset entry out of range");
      }
      if (i > 0 && (e[i].sequence <= e[i - 1].sequence || e[i].position <= e[i - 1].position)) {
        fail("offset entries out of order");
      }
      for (std::uint64_t d : {std::uint64_t{0}, std::uint64_t{1}}) {
        for (std::uint64_t s : {e[i].sequence - d, e[i].sequence + d}) {
          if (!(index_lookup(e, oi->base_sequence, s) == linear_lookup(e, oi->base_sequence, s))) {
            fail("index_lookup disagrees with a linear scan");
          }
        }
      }
    }
  }

  Result<TimeIndex> ti = decode_time_index(in);
  if (!ti.is_ok()) {
    if (ti.status().code() != StatusCode::kCorruption) fail("time index rejection is not kCorruption");
  } else {
    const std::vector<std::uint8_t> again = encode_time_index(*ti);
    if (!(ByteView(again.data(), again.size()) == in)) fail("time index does not re-encode to its input");
    const auto& e = ti->entries;
    for (std::size_t i = 0; i < e.size(); ++i) {
      if (i > 0 && (e[i].sequence <= e[i - 1].sequence ||
                    e[i].max_timestamp_before_ns < e[i - 1].max_timestamp_before_ns)) {
        fail("time entries out of order");
      }
      const std::int64_t t = e[i].max_timestamp_before_ns;
      for (std::int64_t q : {t, t == INT64_MAX ? t : t + 1, t == INT64_MIN ? t : t - 1}) {
        if (time_lookup(e, ti->base_sequence, q) != linear_time(e, ti->base_sequence, q)) {
          fail("time_lookup disagrees with a linear scan");
        }
      }
    }
  }
  return 0;
}
