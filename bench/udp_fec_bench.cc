// Forward error correction (src/transport/udp/fec.h) at 1400-byte datagrams: encoding (wrap
// each source, accumulate parity, emit the repairs) and decoding with nothing lost, one source
// lost per block, and m sources lost per block (the most a block repairs), per source datagram.
// Baselines in the same run: memcpy of the datagram and sealing it with ChaCha20-Poly1305 (what
// the connection already pays per packet).
//
// Items are source datagrams: the time per item is the cost FEC adds to one datagram sent or
// received (repair packets included in it).
#include <benchmark/benchmark.h>
#include <sodium.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "transport/udp/fec.h"

namespace {

using namespace slip;
using namespace slip::transport::udp;

constexpr std::size_t kSize = 1400;
constexpr Instant kT0 = Instant(std::chrono::hours(1000));

std::vector<std::uint8_t> datagram(std::size_t i) {
  std::vector<std::uint8_t> d(kSize);
  for (std::size_t b = 0; b < kSize; ++b) d[b] = static_cast<std::uint8_t>(i * 31 + b * 7);
  return d;
}

FecEncoderOptions fixed(std::int64_t k, std::int64_t m) {
  FecEncoderOptions o;
  o.enabled = true;
  o.adaptive = false;
  o.ratio = {static_cast<std::uint8_t>(k), static_cast<std::uint8_t>(m)};
  return o;
}

void BM_FecEncode(benchmark::State& state) {
  FecEncoder enc(fixed(state.range(0), state.range(1)));
  const std::vector<std::uint8_t> d = datagram(1);
  std::size_t bytes = 0;
  for (auto _ : state) {
    enc.push(kT0, ByteView(d.data(), d.size()));
    while (auto p = enc.poll_transmit()) bytes += p->size();
  }
  benchmark::DoNotOptimize(bytes);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.counters["wire_bytes_per_source"] =
      benchmark::Counter(static_cast<double>(bytes) / static_cast<double>(state.iterations()));
}
BENCHMARK(BM_FecEncode)->Args({16, 2})->Args({8, 4})->Args({6, 6});

// 256 encoded blocks, replayed into a fresh decoder each time round; `lost` sources of every
// block (the first ones) are not delivered.
void decode(benchmark::State& state, std::size_t lost) {
  const auto k = static_cast<std::size_t>(state.range(0));
  const auto m = static_cast<std::size_t>(state.range(1));
  FecEncoder enc(fixed(state.range(0), state.range(1)));
  std::vector<std::vector<std::uint8_t>> packets;
  for (std::size_t i = 0; i < 256 * k; ++i) {
    const std::vector<std::uint8_t> d = datagram(i);
    enc.push(kT0, ByteView(d.data(), d.size()));
    while (auto p = enc.poll_transmit()) {
      const bool is_source = (*p)[0] == kFecSourceType;
      const std::size_t in_block = is_source ? (*p)[5] : 0;
      if (!(is_source && in_block < lost)) packets.emplace_back(p->begin(), p->end());
    }
  }
  auto dec = std::make_unique<FecDecoder>();
  std::size_t next = 0, delivered = 0;
  const std::size_t per_block = k + m - lost;
  for (auto _ : state) {
    if (next == packets.size()) {
      state.PauseTiming();
      dec = std::make_unique<FecDecoder>();
      next = 0;
      state.ResumeTiming();
    }
    // One block per iteration.
    for (std::size_t i = 0; i < per_block; ++i, ++next) {
      const ByteView out = dec->on_datagram(kT0, ByteView(packets[next].data(), packets[next].size()));
      if (!out.empty()) ++delivered;
      while (auto r = dec->poll_recovered()) ++delivered;
    }
  }
  benchmark::DoNotOptimize(delivered);
  if (delivered != state.iterations() * k) state.SkipWithError("a source was not delivered");
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * k));
}

void BM_FecDecodeNoLoss(benchmark::State& state) { decode(state, 0); }
BENCHMARK(BM_FecDecodeNoLoss)->Args({16, 2})->Args({8, 4})->Args({6, 6});

void BM_FecDecodeOneLost(benchmark::State& state) { decode(state, 1); }
BENCHMARK(BM_FecDecodeOneLost)->Args({16, 2})->Args({8, 4})->Args({6, 6});

void BM_FecDecodeMLost(benchmark::State& state) { decode(state, static_cast<std::size_t>(state.range(1))); }
BENCHMARK(BM_FecDecodeMLost)->Args({16, 2})->Args({8, 4})->Args({6, 6});

void BM_MemcpyBaseline(benchmark::State& state) {
  const std::vector<std::uint8_t> d = datagram(1);
  std::vector<std::uint8_t> out(kSize);
  for (auto _ : state) {
    std::memcpy(out.data(), d.data(), kSize);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_MemcpyBaseline);

void BM_AeadSealBaseline(benchmark::State& state) {
  if (sodium_init() < 0) state.SkipWithError("sodium_init");
  const std::vector<std::uint8_t> d = datagram(1);
  std::vector<std::uint8_t> out(kSize + crypto_aead_chacha20poly1305_ietf_ABYTES);
  std::uint8_t key[crypto_aead_chacha20poly1305_ietf_KEYBYTES] = {1};
  std::uint8_t nonce[crypto_aead_chacha20poly1305_ietf_NPUBBYTES] = {};
  std::uint64_t n = 0;
  for (auto _ : state) {
    std::memcpy(nonce + 4, &n, 8);
    unsigned long long len = 0;
    crypto_aead_chacha20poly1305_ietf_encrypt(out.data(), &len, d.data(), kSize, nonce, 9, nullptr, nonce, key);
    benchmark::DoNotOptimize(out.data());
    ++n;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_AeadSealBaseline);

}  // namespace

BENCHMARK_MAIN();
