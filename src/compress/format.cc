#include "compress/format.h"

namespace slip::compress {

std::string_view codec_name(Codec codec) {
  switch (codec) {
    case Codec::kNone: return "none";
    case Codec::kLz4: return "lz4";
    case Codec::kZstd: return "zstd";
  }
  return "unknown";
}

}  // namespace slip::compress
