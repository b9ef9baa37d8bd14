// Compressed message formats: what a DATA message's bytes are for each codec. This comment is
// the text for docs/protocol.md, "Compression"; neither changes without the other.
//
// A message is compressed as a whole, before the session splits it into DATA frames; every
// DATA frame of the message carries the same codec in flags bits 6-7 (wire/frame.h,
// data_flags::kCodecMask). The receiver reassembles the frames, then decompresses once.
// Messages are independent: no state, window or dictionary carries over from one to the next.
//
//   codec 0  none  the bytes are the message.
//   codec 1  lz4   +--------------------------------+----------------------------------+
//                  | decompressed size, varint (LEB128, | one LZ4 block (lz4 block format, |
//                  | 1-10 bytes, docs "Varints")        | no frame, no checksum)           |
//                  +--------------------------------+----------------------------------+
//                  The block must decode to exactly the stated size and end exactly at the
//                  end of the message. Size 0 is written as the block {0x00}.
//   codec 2  zstd  exactly one standard zstd frame (RFC 8878) with the Frame_Content_Size
//                  field present. No trailing bytes; skippable and legacy frames are refused.
//                  The content checksum is optional (this implementation does not write it).
//   codec 3        reserved: receiving it is an error.
//
// Receivers check the stated size against their limit before allocating: a size above it is
// refused with OVERLOADED, malformed bytes with DATA_LOSS (kCorruption).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "wire/frame.h"

namespace slip::compress {

using wire::Codec;

// Bit of `codec` in a codec mask: the CODECS capability, CompressOptions::codecs.
constexpr std::uint32_t codec_bit(Codec codec) { return 1u << static_cast<unsigned>(codec); }
inline constexpr std::uint32_t kAllCodecs = codec_bit(Codec::kLz4) | codec_bit(Codec::kZstd);

// The largest message this layer compresses or decompresses (1 GiB). Larger inputs are sent
// raw; larger stated sizes are refused with kOverloaded whatever max_output says.
inline constexpr std::size_t kMaxMessageSize = std::size_t{1} << 30;

// "none", "lz4", "zstd", or "unknown".
std::string_view codec_name(Codec codec);

}  // namespace slip::compress
