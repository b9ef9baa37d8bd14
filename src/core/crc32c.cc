#include "core/crc32c.h"

#include <isa-l/crc.h>

#include <algorithm>
#include <climits>

namespace slip {

std::uint32_t crc32c_extend(std::uint32_t crc, ByteView bytes) {
  // ISA-L's crc32_iscsi takes and returns the register without the final inversion.
  std::uint32_t reg = ~crc;
  const std::uint8_t* p = bytes.data();
  std::size_t n = bytes.size();
  while (n > 0) {
    int k = static_cast<int>(std::min<std::size_t>(n, INT_MAX));
    reg = crc32_iscsi(const_cast<unsigned char*>(p), k, reg);
    p += k;
    n -= static_cast<std::size_t>(k);
  }
  return ~reg;
}

std::uint32_t crc32c(ByteView bytes) { return crc32c_extend(0, bytes); }

}  // namespace slip
