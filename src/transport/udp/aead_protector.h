// The PacketProtector of the encrypted transport: ChaCha20-Poly1305 under the keys of the Noise
// handshake (crypto.h), the packet number as nonce and the short header as associated data.
// The connection's ACK tracker refuses packet numbers seen before (after opening, so forged
// packets cannot claim them), which is the replay window of docs/udp.md.
#pragma once

#include <cstdint>

#include "transport/udp/crypto.h"
#include "transport/udp/protector.h"

namespace slip::transport::udp {

class AeadProtector final : public PacketProtector {
 public:
  AeadProtector(const CipherKey& send, const CipherKey& receive) : send_(send), receive_(receive) {}

  std::size_t overhead() const override { return kTagLen; }
  Status seal(std::uint64_t packet_number, ByteView header, std::uint8_t* payload, std::size_t len) override {
    send_.seal(packet_number, header, ByteView(payload, len), payload);
    return Status();
  }
  Result<std::size_t> open(std::uint64_t packet_number, ByteView header, std::uint8_t* payload,
                           std::size_t len) override {
    if (len < kTagLen || !receive_.open(packet_number, header, ByteView(payload, len), payload).is_ok()) {
      ++auth_failures_;
      return Status(StatusCode::kCorruption, "packet failed authentication");
    }
    return len - kTagLen;
  }
  // Packets that failed authentication; past PacketProtectionLimits::max_auth_failures the
  // connection must close (RFC 9001, section 6.6).
  std::uint64_t auth_failures() const { return auth_failures_; }

 private:
  PacketCipher send_;
  PacketCipher receive_;
  std::uint64_t auth_failures_ = 0;
};

}  // namespace slip::transport::udp
