// Byte buffers: the currency of every layer.
//
//   ByteView  a non-owning view, for parameters.
//   Buffer    a refcounted block that its owner fills from the front; `size()` bytes are filled.
//   Slice     an immutable window into a block, holding a reference to it.
//   Chain     a list of Slices: a header and its payload travel together without a copy and
//             leave through one writev().
//
// Invariant that makes the zero-copy read path work: bytes below a Buffer's size() never
// change again once a Slice covers them; the owner only writes past size(). So a connection
// reads into one large Buffer, hands out Slices of the frames it parsed, and keeps reading
// into the tail of the same block.
//
// Thread safety: a block's reference count is atomic, because payloads fan out to subscribers
// on other shards. Everything else is single-threaded: one Buffer, Slice or Chain object is
// used by one thread at a time.
#pragma once

#include <sys/uio.h>

#include <atomic>
#include <boost/container/small_vector.hpp>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace slip {

class ByteView {
 public:
  constexpr ByteView() = default;
  constexpr ByteView(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  ByteView(const void* data, std::size_t size) : data_(static_cast<const std::uint8_t*>(data)), size_(size) {}
  ByteView(std::string_view s) : ByteView(s.data(), s.size()) {}  // NOLINT: implicit by design
  ByteView(const std::string& s) : ByteView(s.data(), s.size()) {}  // NOLINT
  ByteView(const char* s) : ByteView(std::string_view(s)) {}  // NOLINT
  constexpr ByteView(std::span<const std::uint8_t> s) : data_(s.data()), size_(s.size()) {}  // NOLINT

  constexpr const std::uint8_t* data() const { return data_; }
  constexpr std::size_t size() const { return size_; }
  constexpr bool empty() const { return size_ == 0; }
  constexpr std::uint8_t operator[](std::size_t i) const { return data_[i]; }
  constexpr const std::uint8_t* begin() const { return data_; }
  constexpr const std::uint8_t* end() const { return data_ + size_; }

  // Precondition: pos + len <= size().
  constexpr ByteView sub(std::size_t pos, std::size_t len) const { return ByteView(data_ + pos, len); }
  constexpr ByteView sub(std::size_t pos) const { return ByteView(data_ + pos, size_ - pos); }
  std::string_view as_string_view() const { return {reinterpret_cast<const char*>(data_), size_}; }
  std::string to_string() const { return std::string(as_string_view()); }

  friend bool operator==(ByteView a, ByteView b) {
    return a.size_ == b.size_ && (a.size_ == 0 || std::memcmp(a.data_, b.data_, a.size_) == 0);
  }

 private:
  const std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
};

class BufferPool;
class Slice;

namespace detail {

struct PoolState;

// Lives in front of the bytes of every block, in the same allocation.
struct BlockHeader {
  std::atomic<std::uint32_t> refs;
  std::uint32_t capacity;
  PoolState* pool;  // null for blocks that do not return to a pool

  std::uint8_t* bytes() { return reinterpret_cast<std::uint8_t*>(this + 1); }
};
static_assert(sizeof(BlockHeader) == 16);

BlockHeader* allocate_block(std::size_t capacity, PoolState* pool);
void release_block(BlockHeader* block);
// Marks a block that holds a std::string object instead of raw bytes (Slice::from_string):
// released by destroying the string. Never a real pool.
extern PoolState* const kStringBlock;

inline void add_ref(BlockHeader* block) {
  if (block) block->refs.fetch_add(1, std::memory_order_relaxed);
}
inline void drop_ref(BlockHeader* block) {
  if (block && block->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) release_block(block);
}

// An owning pointer to a block: copies add a reference.
class BlockRef {
 public:
  BlockRef() = default;
  explicit BlockRef(BlockHeader* adopted) : b_(adopted) {}
  BlockRef(const BlockRef& o) : b_(o.b_) { add_ref(b_); }
  BlockRef(BlockRef&& o) noexcept : b_(o.b_) { o.b_ = nullptr; }
  BlockRef& operator=(const BlockRef& o) {
    add_ref(o.b_);
    drop_ref(b_);
    b_ = o.b_;
    return *this;
  }
  BlockRef& operator=(BlockRef&& o) noexcept {
    if (this != &o) {
      drop_ref(b_);
      b_ = o.b_;
      o.b_ = nullptr;
    }
    return *this;
  }
  ~BlockRef() { drop_ref(b_); }

  BlockHeader* get() const { return b_; }
  explicit operator bool() const { return b_ != nullptr; }
  std::uint32_t use_count() const { return b_ ? b_->refs.load(std::memory_order_acquire) : 0; }

 private:
  BlockHeader* b_ = nullptr;
};

}  // namespace detail

// A block that its owner fills from the front. Movable, not copyable: Slices share it.
class Buffer {
 public:
  Buffer() = default;
  // A heap block of at least `capacity` bytes that is freed when its last reference goes.
  static Buffer allocate(std::size_t capacity);

  std::uint8_t* data() { return block_ ? block_.get()->bytes() : nullptr; }
  const std::uint8_t* data() const { return block_ ? block_.get()->bytes() : nullptr; }
  std::size_t capacity() const { return block_ ? block_.get()->capacity : 0; }
  std::size_t size() const { return size_; }
  std::size_t tailroom() const { return capacity() - size_; }
  bool empty() const { return size_ == 0; }
  explicit operator bool() const { return static_cast<bool>(block_); }

  // The writable region past size(); after writing n bytes there, call commit(n).
  std::uint8_t* tail() { return data() + size_; }
  // Precondition: n <= tailroom().
  void commit(std::size_t n) { size_ += n; }
  // Copies bytes into the tail. Precondition: bytes.size() <= tailroom().
  void append(ByteView bytes);

  // An immutable Slice of filled bytes [pos, pos+len). Precondition: pos + len <= size().
  Slice slice(std::size_t pos, std::size_t len) const;
  // All filled bytes.
  Slice slice() const;

  // True when no Slice references the block: bytes below size() may then be rewritten.
  bool unique() const { return block_.use_count() == 1; }
  // Forgets the filled bytes. Precondition: unique().
  void reset() { size_ = 0; }

 private:
  friend class BufferPool;
  explicit Buffer(detail::BlockRef block) : block_(std::move(block)) {}

  detail::BlockRef block_;
  std::size_t size_ = 0;
};

// An immutable byte window holding a reference to its block (or to static memory).
class Slice {
 public:
  Slice() = default;
  // Copies bytes into a new heap block.
  static Slice copy_of(ByteView bytes);
  // Refers to memory that outlives every use of the Slice (string literals, tables).
  static Slice from_static(ByteView bytes) { return Slice(detail::BlockRef(), bytes.data(), bytes.size()); }
  // Takes over the string's bytes without copying them: the string object moves into a small
  // block of its own (one allocation of a few dozen bytes, whatever the string's size), which
  // frees it with its last reference. Slices of a heap-allocated string point into the string's
  // own buffer; a short (inline) one is kept inside the block. The whole capacity of the string
  // is held while any Slice of it lives: trim an oversized one (shrink_to_fit) first.
  static Slice from_string(std::string&& s);

  const std::uint8_t* data() const { return data_; }
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  ByteView view() const { return ByteView(data_, size_); }
  operator ByteView() const { return view(); }  // NOLINT: implicit by design
  std::string_view as_string_view() const { return view().as_string_view(); }
  std::string to_string() const { return view().to_string(); }

  // A window into the same block; no copy. Precondition: pos + len <= size().
  Slice sub(std::size_t pos, std::size_t len) const { return Slice(block_, data_ + pos, len); }
  Slice sub(std::size_t pos) const { return Slice(block_, data_ + pos, size_ - pos); }
  // Drops the first n bytes in place. Precondition: n <= size().
  void remove_prefix(std::size_t n) {
    data_ += n;
    size_ -= n;
  }

  // How many references the block has (0 for static memory).
  std::uint32_t block_use_count() const { return block_.use_count(); }
  bool shares_block_with(const Slice& o) const { return block_ && block_.get() == o.block_.get(); }

 private:
  friend class Buffer;
  Slice(detail::BlockRef block, const std::uint8_t* data, std::size_t size)
      : block_(std::move(block)), data_(data), size_(size) {}

  detail::BlockRef block_;
  const std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
};

// A sequence of Slices read or written as one byte string.
class Chain {
 public:
  static constexpr std::size_t kInlineSlices = 4;

  Chain() = default;
  explicit Chain(Slice s) { append(std::move(s)); }

  // Empty slices are skipped.
  void append(Slice s);
  void append(const Chain& other);
  void append(Chain&& other);
  void prepend(Slice s);

  std::size_t size() const { return bytes_; }
  bool empty() const { return bytes_ == 0; }
  std::size_t slice_count() const { return slices_.size(); }
  const Slice& slice(std::size_t i) const { return slices_[i]; }
  auto begin() const { return slices_.begin(); }
  auto end() const { return slices_.end(); }
  void clear() {
    slices_.clear();
    bytes_ = 0;
  }

  // Fills up to `max` iovecs from the front; returns how many it filled.
  std::size_t to_iovecs(struct iovec* out, std::size_t max) const;
  // Drops the first n bytes (after a partial writev). Precondition: n <= size().
  void consume(std::size_t n);
  // Copies the first min(n, size()) bytes to `out`; returns how many it copied.
  std::size_t copy_to(std::uint8_t* out, std::size_t n) const;
  // Removes the first n bytes and returns them as one Slice: no copy when they lie in the
  // first slice, else gathered into a new block. Precondition: n <= size().
  Slice take_front(std::size_t n);
  // One contiguous Slice: no copy when the chain holds one slice.
  Slice flatten() const;
  std::string to_string() const;

 private:
  boost::container::small_vector<Slice, kInlineSlices> slices_;
  std::size_t bytes_ = 0;
};

struct BufferPoolStats {
  std::uint64_t hits = 0;       // get() served from the free list
  std::uint64_t misses = 0;     // get() allocated a new block
  std::uint64_t returned = 0;   // blocks put back on the free list
  std::uint64_t freed = 0;      // blocks freed because the list was full or the release was foreign
  std::size_t cached = 0;       // blocks on the free list now
};

// Recycles blocks of one size for one thread. Blocks may be released on any thread: those
// released on the owner thread go back on the bounded free list, others are freed. The pool
// may be destroyed while blocks are still out; they are freed when released.
class BufferPool {
 public:
  // Owned by the calling thread.
  BufferPool(std::size_t block_size, std::size_t max_cached);
  ~BufferPool();
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  // A Buffer of block_size() bytes capacity, empty. Call on the owner thread.
  Buffer get();
  std::size_t block_size() const;
  BufferPoolStats stats() const;

 private:
  detail::PoolState* state_;
};

}  // namespace slip
