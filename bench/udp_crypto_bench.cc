// The reliable UDP transport's security layer (src/transport/udp/): sealing and opening a
// protected packet against the bare AEAD call and memcpy of the same bytes, in the same run,
// and the cost of a whole handshake (both sides: two messages, four X25519 operations on each
// side plus key generation).
//
// Counters: bytes_per_second is payload throughput of seal + open together (one packet sealed
// and opened per iteration), so Gbit/s of one core doing both ends = bytes_per_second * 8 / 1e9.
#include <benchmark/benchmark.h>
#include <sodium.h>

#include <cstring>
#include <vector>

#include "transport/udp/crypto.h"
#include "transport/udp/handshake.h"
#include "transport/udp/noise.h"

namespace {

using namespace slip;
using namespace slip::transport::udp;

CipherKey key_of(std::uint8_t b) {
  CipherKey k;
  k.fill(b);
  return k;
}

// PacketProtection::seal_packet + open_packet: header, nonce, AEAD both ways, replay window.
void BM_SealOpenPacket(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  PacketProtection a(key_of(1), key_of(2)), b(key_of(2), key_of(1));
  const ConnectionId cid = random_connection_id();
  std::vector<std::uint8_t> payload(size, 0xab), packet(size + kMaxShortHeaderLen + kTagLen), out(packet.size());
  std::uint64_t pn = 0;
  for (auto _ : state) {
    Result<std::size_t> n = a.seal_packet(cid, pn, pn == 0 ? std::nullopt : std::optional<std::uint64_t>(pn - 1),
                                          ByteView(payload.data(), payload.size()), packet);
    Result<OpenedPacket> p = b.open_packet(ByteView(packet.data(), *n), out);
    benchmark::DoNotOptimize(p);
    ++pn;
  }
  if (b.counters().opened != pn) state.SkipWithError("a packet did not open");
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * size));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_SealOpenPacket)->Arg(64)->Arg(256)->Arg(512)->Arg(1400);

// Sealing alone.
void BM_SealPacket(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  PacketProtection a(key_of(1), key_of(2));
  const ConnectionId cid = random_connection_id();
  std::vector<std::uint8_t> payload(size, 0xab), packet(size + kMaxShortHeaderLen + kTagLen);
  std::uint64_t pn = 0;
  for (auto _ : state) {
    Result<std::size_t> n = a.seal_packet(cid, pn, pn == 0 ? std::nullopt : std::optional<std::uint64_t>(pn - 1),
                                          ByteView(payload.data(), payload.size()), packet);
    benchmark::DoNotOptimize(n);
    ++pn;
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * size));
}
BENCHMARK(BM_SealPacket)->Arg(64)->Arg(1400);

// Opening alone: the same sealed packet opened again and again (a fresh output each time, the
// input left intact), so that seal and open can be compared one against the other.
void BM_OpenPacket(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  PacketCipher seal_key(key_of(1)), open_key(key_of(1));
  std::uint8_t ad[12] = {0x41, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
  std::vector<std::uint8_t> payload(size, 0xab), sealed(size + kTagLen), out(size + kTagLen);
  seal_key.seal(7, ByteView(ad, sizeof(ad)), ByteView(payload.data(), size), sealed.data());
  for (auto _ : state) {
    Status s = open_key.open(7, ByteView(ad, sizeof(ad)), ByteView(sealed.data(), sealed.size()), out.data());
    benchmark::DoNotOptimize(s);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * size));
}
BENCHMARK(BM_OpenPacket)->Arg(64)->Arg(1400);

// PacketCipher as the transport calls it: seal in place with a 12-byte header as associated
// data, a new packet number each time.
void BM_CipherSealInPlace(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  PacketCipher c(key_of(1));
  std::uint8_t ad[12] = {0x41, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
  std::vector<std::uint8_t> buf(size + kTagLen, 0xab);
  std::uint64_t pn = 0;
  for (auto _ : state) {
    c.seal(pn++, ByteView(ad, sizeof(ad)), ByteView(buf.data(), size), buf.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * size));
}
BENCHMARK(BM_CipherSealInPlace)->Arg(64)->Arg(1400);

// Baseline: libsodium's ChaCha20-Poly1305 IETF encrypt + decrypt of the same payload with an
// 11-byte associated data, and nothing else: what the transport adds is the difference.
void BM_AeadOnlyBaseline(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  const CipherKey k = key_of(1);
  std::vector<std::uint8_t> payload(size, 0xab), sealed(size + kTagLen), out(size);
  std::uint8_t ad[11] = {};
  std::uint64_t n = 0;
  for (auto _ : state) {
    const auto nonce = noise_nonce(n++);
    crypto_aead_chacha20poly1305_ietf_encrypt(sealed.data(), nullptr, payload.data(), size, ad, sizeof(ad), nullptr,
                                              nonce.data(), k.data());
    const int r = crypto_aead_chacha20poly1305_ietf_decrypt(out.data(), nullptr, nullptr, sealed.data(), sealed.size(),
                                                            ad, sizeof(ad), nonce.data(), k.data());
    benchmark::DoNotOptimize(r);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * size));
}
BENCHMARK(BM_AeadOnlyBaseline)->Arg(64)->Arg(256)->Arg(512)->Arg(1400);

// Floor: copying the payload twice (what a plaintext transport would at least do).
void BM_MemcpyBaseline(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  std::vector<std::uint8_t> payload(size, 0xab), a(size), b(size);
  for (auto _ : state) {
    std::memcpy(a.data(), payload.data(), size);
    benchmark::ClobberMemory();
    std::memcpy(b.data(), a.data(), size);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * size));
}
BENCHMARK(BM_MemcpyBaseline)->Arg(64)->Arg(1400);

// A whole handshake as the transport runs it: client Initial (padded to 1200 bytes), server
// gate and responder, client completes. Fresh ephemeral keys each time; static keys fixed.
void BM_FullHandshake(benchmark::State& state) {
  ClientHandshakeConfig cc;
  cc.static_key = KeyPair::generate();
  ServerHandshakeConfig sc;
  sc.static_key = KeyPair::generate();
  sc.cookies = CookiePolicy::kNever;
  cc.server_key = sc.static_key.public_key;
  cc.transport_params.assign(32, 1);
  ServerHandshake server(sc, 0);
  const PeerAddress from = PeerAddress::ipv4(0x7f000001, 9999);
  const std::vector<std::uint8_t> server_params(32, 2);
  for (auto _ : state) {
    ClientHandshake client(cc);
    Result<std::vector<std::uint8_t>> initial = client.initial_datagram();
    ServerHandshake::Decision d = server.on_initial(ByteView(initial->data(), initial->size()), from, 0, 0);
    Result<ServerHandshake::Accepted> a =
        server.respond(d.initial, random_connection_id(), ByteView(server_params.data(), server_params.size()));
    Result<ClientHandshake::Event> e = client.on_datagram(ByteView(a->response.data(), a->response.size()));
    if (!e.is_ok()) state.SkipWithError("handshake failed");
    benchmark::DoNotOptimize(client.result());
  }
}
BENCHMARK(BM_FullHandshake)->Unit(benchmark::kMicrosecond);

// One X25519 operation, the unit the handshake is made of (each side does 4, plus a key pair).
void BM_X25519(benchmark::State& state) {
  const KeyPair a = KeyPair::generate(), b = KeyPair::generate();
  std::array<std::uint8_t, kDhLen> out;
  for (auto _ : state) {
    Status s = dh(a.private_key, b.public_key, out);
    benchmark::DoNotOptimize(out);
    benchmark::DoNotOptimize(s);
  }
}
BENCHMARK(BM_X25519)->Unit(benchmark::kMicrosecond);

// The server's stateless answer to an Initial under load: parse, mint a cookie, build a Retry.
void BM_RetryUnderLoad(benchmark::State& state) {
  ClientHandshakeConfig cc;
  cc.static_key = KeyPair::generate();
  ServerHandshakeConfig sc;
  sc.static_key = KeyPair::generate();
  sc.cookies = CookiePolicy::kAlways;
  cc.server_key = sc.static_key.public_key;
  ServerHandshake server(sc, 0);
  ClientHandshake client(cc);
  Result<std::vector<std::uint8_t>> initial = client.initial_datagram();
  const PeerAddress from = PeerAddress::ipv4(0x7f000001, 9999);
  for (auto _ : state) {
    ServerHandshake::Decision d = server.on_initial(ByteView(initial->data(), initial->size()), from, 0, 0);
    benchmark::DoNotOptimize(d.retry.data());
  }
}
BENCHMARK(BM_RetryUnderLoad);

}  // namespace

BENCHMARK_MAIN();
