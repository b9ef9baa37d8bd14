// Wire protocol v1 micro-benchmarks: frame encode and decode, with the baselines they are read
// against (memcpy of the same payload bytes, CRC32C, one Slice reference) measured in the same
// run.
//
// Every case reports two counters besides Google Benchmark's own:
//   time_per_frame  CPU time per frame (per memcpy, CRC or Slice copy, for the baselines)
//   payload_bytes   payload bytes per CPU second, decimal (bytes_per_second is the same in GiB/s)
// Payload bytes only: headers, subjects and replies are overhead, not throughput.
//
// Run: build/release/bench/frame_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
// and quote medians (docs/benchmarks.md).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <string_view>
#include <vector>

#include "core/crc32c.h"
#include "wire/decoder.h"
#include "wire/encoder.h"
#include "wire/frames.h"

namespace slip::wire {
namespace {

// Frames encoded per take(): what a busy connection gathers in one loop turn before its writev.
constexpr std::size_t kBatch = 64;
// Wire bytes in the buffer the decode cases parse: about what a few large reads bring in.
constexpr std::size_t kDecodeStreamBytes = 1 << 20;
// Read size for the split-read decode cases; frames straddle these boundaries.
constexpr std::size_t kReadSize = 64 * 1024;

constexpr std::uint64_t kStreamId = 5;
// A broker-like subject and inbox reply.
constexpr std::string_view kSubject = "orders.eu.fr.paris";
constexpr std::string_view kReply = "_INBOX.Kx93mQp7vR2.42";

constexpr std::int64_t kSmall = 64;
constexpr std::int64_t kLarge = 16 * 1024;

Slice make_payload(std::size_t n) {
  Buffer b = Buffer::allocate(n);
  for (std::size_t i = 0; i < n; ++i) b.tail()[i] = static_cast<std::uint8_t>(i * 131 + 7);
  b.commit(n);
  return b.slice();
}

Data make_data(std::size_t payload) {
  Data d;
  d.stream_id = kStreamId;
  d.payload = make_payload(payload);
  return d;
}

Pub make_pub(std::size_t payload) {
  Pub p;
  p.subject = kSubject;
  p.reply = kReply;
  p.payload = make_payload(payload);
  return p;
}

// About kDecodeStreamBytes of back-to-back frames, flattened into one block as a large read
// would leave them. `frames` receives how many it holds.
template <typename F>
Slice make_stream(const F& frame, std::size_t& frames) {
  const std::size_t wire = encode_frame(frame).size();
  frames = std::max<std::size_t>(1, kDecodeStreamBytes / wire);
  FrameEncoder enc;
  for (std::size_t i = 0; i < frames; ++i) enc.add(frame);
  return enc.take().flatten();
}

// Sub-slices of `stream` no longer than kReadSize, as consecutive reads into one block.
std::vector<Slice> split_reads(const Slice& stream) {
  std::vector<Slice> reads;
  for (std::size_t pos = 0; pos < stream.size(); pos += kReadSize) {
    reads.push_back(stream.sub(pos, std::min(kReadSize, stream.size() - pos)));
  }
  return reads;
}

void report(benchmark::State& state, std::size_t frames_per_iteration, std::size_t payload) {
  const double frames = static_cast<double>(state.iterations()) * static_cast<double>(frames_per_iteration);
  state.SetItemsProcessed(static_cast<std::int64_t>(frames));
  state.SetBytesProcessed(static_cast<std::int64_t>(frames) * static_cast<std::int64_t>(payload));
  // kIsRate divides by CPU seconds; with kInvert the console shows e.g. "time_per_frame=11.7ns"
  // (the JSON value is in seconds). payload_bytes is decimal: "5.46G/s" is 5.46 GB/s.
  state.counters["time_per_frame"] =
      benchmark::Counter(frames, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["payload_bytes"] =
      benchmark::Counter(frames * static_cast<double>(payload), benchmark::Counter::kIsRate);
}

// Drains every complete frame from `dec`, decoding each with `decode`; returns how many, or
// -1 on any error (the benchmark then fails instead of measuring an error path).
template <typename DecodeFn>
std::int64_t drain(FrameDecoder& dec, DecodeFn&& decode) {
  std::int64_t n = 0;
  Frame f;
  for (;;) {
    Result<bool> more = dec.next(f);
    if (!more.is_ok()) return -1;
    if (!*more) return n;
    auto typed = decode(f);
    if (!typed.is_ok()) return -1;
    benchmark::DoNotOptimize(typed.value());
    ++n;
  }
}

auto decode_data_fn = [](const Frame& f) { return decode_data(f); };
auto decode_pub_fn = [](const Frame& f) { return decode_pub(f, WireLimits{}); };

// ---- Encode ----------------------------------------------------------------------------------

// DATA frames through one FrameEncoder, kBatch per take(). 64 B payloads are copied into the
// encoder's block; 16 KB ones (over inline_payload_max) are referenced, not copied.
void BM_EncodeData(benchmark::State& state) {
  const auto payload = static_cast<std::size_t>(state.range(0));
  const Data d = make_data(payload);
  FrameEncoder enc;
  for (auto _ : state) {
    for (std::size_t i = 0; i < kBatch; ++i) enc.add(d);
    Chain out = enc.take();
    benchmark::DoNotOptimize(out);
  }
  report(state, kBatch, payload);
}
BENCHMARK(BM_EncodeData)->Arg(kSmall)->Arg(kLarge);

// PUB with subject and reply: what every publisher sends the broker.
void BM_EncodePub(benchmark::State& state) {
  const auto payload = static_cast<std::size_t>(state.range(0));
  const Pub p = make_pub(payload);
  FrameEncoder enc;
  for (auto _ : state) {
    for (std::size_t i = 0; i < kBatch; ++i) enc.add(p);
    Chain out = enc.take();
    benchmark::DoNotOptimize(out);
  }
  report(state, kBatch, payload);
}
BENCHMARK(BM_EncodePub)->Arg(kSmall);

// ---- Decode ----------------------------------------------------------------------------------

// ~1 MiB of DATA frames fed as one Slice; next() + decode_data() per frame.
void BM_DecodeData(benchmark::State& state) {
  const auto payload = static_cast<std::size_t>(state.range(0));
  std::size_t frames = 0;
  const Slice stream = make_stream(make_data(payload), frames);
  for (auto _ : state) {
    FrameDecoder dec;
    dec.feed(stream);
    if (drain(dec, decode_data_fn) != static_cast<std::int64_t>(frames)) {
      state.SkipWithError("decode failed or frame count mismatch");
      return;
    }
  }
  report(state, frames, payload);
}
BENCHMARK(BM_DecodeData)->Arg(kSmall)->Arg(kLarge);

// The same bytes fed in 64 KB reads, draining after each: frames that straddle a read boundary
// take the decoder's gather path.
void BM_DecodeDataReads64K(benchmark::State& state) {
  const auto payload = static_cast<std::size_t>(state.range(0));
  std::size_t frames = 0;
  const Slice stream = make_stream(make_data(payload), frames);
  const std::vector<Slice> reads = split_reads(stream);
  for (auto _ : state) {
    FrameDecoder dec;
    std::int64_t n = 0;
    for (const Slice& r : reads) {
      dec.feed(r);
      const std::int64_t got = drain(dec, decode_data_fn);
      if (got < 0) break;
      n += got;
    }
    if (n != static_cast<std::int64_t>(frames) || dec.buffered() != 0) {
      state.SkipWithError("decode failed or frame count mismatch");
      return;
    }
  }
  report(state, frames, payload);
}
BENCHMARK(BM_DecodeDataReads64K)->Arg(kSmall)->Arg(kLarge);

// ~1 MiB of PUB frames (subject + reply) fed as one Slice; next() + decode_pub() per frame.
void BM_DecodePub(benchmark::State& state) {
  const auto payload = static_cast<std::size_t>(state.range(0));
  std::size_t frames = 0;
  const Slice stream = make_stream(make_pub(payload), frames);
  for (auto _ : state) {
    FrameDecoder dec;
    dec.feed(stream);
    if (drain(dec, decode_pub_fn) != static_cast<std::int64_t>(frames)) {
      state.SkipWithError("decode failed or frame count mismatch");
      return;
    }
  }
  report(state, frames, payload);
}
BENCHMARK(BM_DecodePub)->Arg(kSmall);

// Encode kBatch PUBs, hand the taken Chain's slices to a long-lived decoder, decode them all:
// both ends of one hop, as a client-to-broker pair would run them.
void BM_EncodeDecodePub(benchmark::State& state) {
  const auto payload = static_cast<std::size_t>(state.range(0));
  const Pub p = make_pub(payload);
  FrameEncoder enc;
  FrameDecoder dec;
  for (auto _ : state) {
    for (std::size_t i = 0; i < kBatch; ++i) enc.add(p);
    Chain out = enc.take();
    for (const Slice& s : out) dec.feed(s);
    if (drain(dec, decode_pub_fn) != static_cast<std::int64_t>(kBatch)) {
      state.SkipWithError("decode failed or frame count mismatch");
      return;
    }
  }
  report(state, kBatch, payload);
}
BENCHMARK(BM_EncodeDecodePub)->Arg(kSmall);

// ---- Baselines -------------------------------------------------------------------------------

// kBatch copies of one payload into a cache-line-aligned destination of at most 256 KB (so it
// stays in L2 and the result does not depend on where malloc put it): the floor for anything
// that copies each payload once. Ratios in docs/benchmarks.md divide by this.
void BM_Memcpy(benchmark::State& state) {
  constexpr std::size_t kMaxDstBytes = 256 * 1024;
  constexpr std::align_val_t kAlign{64};
  const auto payload = static_cast<std::size_t>(state.range(0));
  const Slice src = make_payload(payload);
  const std::size_t slots = std::clamp<std::size_t>(kMaxDstBytes / payload, 1, kBatch);
  std::unique_ptr<std::uint8_t[], void (*)(std::uint8_t*)> dst(
      static_cast<std::uint8_t*>(::operator new(slots * payload, kAlign)),
      [](std::uint8_t* p) { ::operator delete(p, kAlign); });
  for (auto _ : state) {
    for (std::size_t i = 0; i < kBatch; ++i) std::memcpy(dst.get() + (i % slots) * payload, src.data(), payload);
    benchmark::DoNotOptimize(dst.get());
    benchmark::ClobberMemory();
  }
  report(state, kBatch, payload);
}
BENCHMARK(BM_Memcpy)->Arg(kSmall)->Arg(kLarge);

// CRC32C of one payload (ISA-L): what a checksummed frame or log batch would add.
void BM_Crc32c(benchmark::State& state) {
  const auto payload = static_cast<std::size_t>(state.range(0));
  const Slice src = make_payload(payload);
  for (auto _ : state) {
    std::uint32_t crc = crc32c(src.view());
    benchmark::DoNotOptimize(crc);
  }
  report(state, 1, payload);
}
BENCHMARK(BM_Crc32c)->Arg(kSmall)->Arg(kLarge);

// Copying and dropping one Slice: one atomic increment and one atomic decrement of its block's
// reference count. The unit cost of every zero-copy hand-off above (payload bytes: 0).
void BM_SliceCopy(benchmark::State& state) {
  const Slice src = make_payload(kSmall);
  for (auto _ : state) {
    Slice copy = src;
    benchmark::DoNotOptimize(copy);
  }
  report(state, 1, 0);
}
BENCHMARK(BM_SliceCopy);

}  // namespace
}  // namespace slip::wire

BENCHMARK_MAIN();
