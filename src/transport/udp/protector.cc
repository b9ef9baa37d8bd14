#include "transport/udp/protector.h"

#include "core/crc32c.h"

namespace slip::transport::udp {

namespace {

std::uint32_t checksum(std::uint64_t pn, ByteView header, const std::uint8_t* payload, std::size_t len) {
  std::uint8_t pn_bytes[8];
  for (int i = 0; i < 8; ++i) pn_bytes[i] = static_cast<std::uint8_t>(pn >> (8 * i));
  std::uint32_t crc = crc32c(ByteView(pn_bytes, sizeof pn_bytes));
  crc = crc32c_extend(crc, header);
  return crc32c_extend(crc, ByteView(payload, len));
}

}  // namespace

Status ChecksumProtector::seal(std::uint64_t pn, ByteView header, std::uint8_t* payload, std::size_t len) {
  const std::uint32_t crc = checksum(pn, header, payload, len);
  for (int i = 0; i < 4; ++i) payload[len + i] = static_cast<std::uint8_t>(crc >> (8 * i));
  return Status();
}

Result<std::size_t> ChecksumProtector::open(std::uint64_t pn, ByteView header, std::uint8_t* payload,
                                            std::size_t len) {
  if (len < 4) return corruption("packet shorter than its checksum");
  const std::size_t body = len - 4;
  std::uint32_t want = 0;
  for (int i = 0; i < 4; ++i) want |= static_cast<std::uint32_t>(payload[body + i]) << (8 * i);
  if (checksum(pn, header, payload, body) != want) return corruption("packet checksum mismatch");
  return body;
}

}  // namespace slip::transport::udp
