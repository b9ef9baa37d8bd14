#include "compress/arena.h"

#include <utility>

namespace slip::compress::detail {

std::uint8_t* OutputArena::reserve(std::size_t n) {
  if (n > block_size_ / 4) {
    reserved_own_ = true;
    own_ = Buffer::allocate(n);
    return own_.data();
  }
  reserved_own_ = false;
  own_ = Buffer();  // a failed large attempt does not hold its memory until the next one
  // Every Slice of the block is gone: rewrite it from the front, where it is still in cache.
  if (shared_ && shared_.unique()) shared_.reset();
  if (!shared_ || shared_.tailroom() < n) shared_ = Buffer::allocate(block_size_);
  return shared_.tail();
}

Slice OutputArena::commit(std::size_t n) {
  if (reserved_own_) {
    reserved_own_ = false;
    own_.commit(n);
    Slice out = own_.slice();
    own_ = Buffer();
    return out;
  }
  std::size_t start = shared_.size();
  shared_.commit(n);
  return shared_.slice(start, n);
}

}  // namespace slip::compress::detail
