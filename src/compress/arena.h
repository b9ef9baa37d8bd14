// OutputArena: where compressors and decompressors write their output, without a heap
// allocation per message.
//
// Outputs go one after another into a shared block and leave as Slices of it; the block is
// reused from the front once no Slice refers to it any more, and replaced when one still does.
// This is the read path's invariant (slipstream/buffer.h): bytes below the block's size() are
// never rewritten while a Slice covers them. Outputs too large to share a block get a block of
// their own.
//
// Hazard: one long-lived small output (a message parked in a queue) pins its whole block, as a
// frame does on the read path. Not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>

#include "slipstream/buffer.h"

namespace slip::compress::detail {

class OutputArena {
 public:
  static constexpr std::size_t kDefaultBlockSize = 64 * 1024;

  // Outputs above block_size / 4 get their own block.
  explicit OutputArena(std::size_t block_size = kDefaultBlockSize) : block_size_(block_size) {}

  // Room for n bytes, valid until the next reserve(). Follow it with commit() to keep a prefix
  // of it, or with nothing to drop it. Precondition: n < 4 GiB (a Buffer's capacity).
  std::uint8_t* reserve(std::size_t n);

  // The first n bytes of the last reservation, as a Slice. Precondition: n <= its size, and
  // no commit() since that reserve().
  Slice commit(std::size_t n);

 private:
  std::size_t block_size_;
  Buffer shared_;        // the block small outputs share
  Buffer own_;           // the last large reservation, until it is committed or replaced
  bool reserved_own_ = false;
};

}  // namespace slip::compress::detail
