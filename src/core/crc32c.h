// CRC32C (Castagnoli), the checksum of log batches and anything else we store or verify.
// Computed by ISA-L, which picks the fastest path for the CPU (SSE4.2 crc32 / PCLMUL) at run
// time. Values follow the usual convention: crc32c("123456789") == 0xE3069283.
#pragma once

#include <cstdint>

#include "slipstream/buffer.h"

namespace slip {

// CRC32C of bytes.
std::uint32_t crc32c(ByteView bytes);

// Continues a CRC32C: crc32c_extend(crc32c(a), b) == crc32c(a + b).
std::uint32_t crc32c_extend(std::uint32_t crc, ByteView bytes);

}  // namespace slip
