#include "slipstream/buffer.h"

#include <algorithm>
#include <memory>
#include <new>

namespace slip {
namespace detail {

// The pool's shared state. Every block allocated for the pool holds one reference, and the
// BufferPool object holds one, so the state outlives whichever goes last.
struct PoolState {
  std::atomic<std::uint64_t> refs{1};
  std::thread::id owner = std::this_thread::get_id();
  bool closed = false;  // the BufferPool is gone; touched on the owner thread only
  std::size_t block_size = 0;
  std::size_t max_cached = 0;
  std::vector<BlockHeader*> free;
  BufferPoolStats stats;
  std::atomic<std::uint64_t> foreign_freed{0};  // blocks released and freed on other threads
};

namespace {
PoolState string_block_tag;
}  // namespace
PoolState* const kStringBlock = &string_block_tag;

namespace {
// Blocks that hold reads and batches (16 KiB and more) start on a cache line. Smaller blocks (a
// message copied out, a frame header, a 1 KiB request) come from plain operator new: its 16-byte
// alignment is enough for them, and glibc's aligned path (memalign) costs several times a plain
// allocation, which a block allocated once per message cannot amortize.
constexpr std::align_val_t kBlockAlign{64};
constexpr std::size_t kSmallBlock = 8 * 1024;

bool is_small(std::size_t capacity) { return sizeof(BlockHeader) + capacity <= kSmallBlock; }

// Blocks just past what glibc's per-thread cache (tcache) serves, 1,032 bytes: a 1 KiB message
// with its block header and a few bytes of framing lands there, in malloc's large-request path,
// which also consolidates the fast bins on every such request (~5 times a tcache hit in
// instructions). Each thread keeps a few free ones of one size, kMediumBlock bytes with the
// header, whichever thread allocated them. Blocks of a pool keep their exact size (one of exactly
// kMediumCapacity is the same allocation, and joins the cache when freed).
constexpr std::size_t kMediumBlock = 2048;
constexpr std::size_t kMediumCapacity = kMediumBlock - sizeof(BlockHeader);
constexpr std::size_t kMediumMin = 1032;  // header included: up to this, tcache serves them
constexpr std::size_t kMediumCached = 64;

bool is_medium(std::size_t capacity) {
  return sizeof(BlockHeader) + capacity > kMediumMin && capacity <= kMediumCapacity;
}

struct MediumCache {
  void* blocks[kMediumCached];
  std::size_t count = 0;
  ~MediumCache();
};
// Set once this thread's cache is destroyed (thread exit): later releases on it free directly.
// Trivially destructible, so it stays readable after the cache is gone.
thread_local bool medium_cache_gone = false;
thread_local MediumCache medium_cache;

MediumCache::~MediumCache() {
  medium_cache_gone = true;
  while (count > 0) ::operator delete(blocks[--count]);
}

void* allocate_medium() {
  if (!medium_cache_gone && medium_cache.count > 0) return medium_cache.blocks[--medium_cache.count];
  return ::operator new(kMediumBlock);
}

void free_medium(void* mem) {
  if (!medium_cache_gone && medium_cache.count < kMediumCached) {
    medium_cache.blocks[medium_cache.count++] = mem;
    return;
  }
  ::operator delete(mem);
}

void unref_pool(PoolState* p) {
  if (p->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete p;
}

void free_block(BlockHeader* b) {
  const std::size_t capacity = b->capacity;
  b->~BlockHeader();
  if (capacity == kMediumCapacity) {
    free_medium(static_cast<void*>(b));
  } else if (is_small(capacity)) {
    ::operator delete(static_cast<void*>(b));
  } else {
    ::operator delete(static_cast<void*>(b), kBlockAlign);
  }
}
}  // namespace

BlockHeader* allocate_block(std::size_t capacity, PoolState* pool) {
  void* mem;
  if (pool == nullptr && is_medium(capacity)) {
    // Callers ask for at least `capacity` bytes: the block has kMediumCapacity.
    mem = allocate_medium();
    capacity = kMediumCapacity;
  } else {
    mem = is_small(capacity) ? ::operator new(sizeof(BlockHeader) + capacity)
                             : ::operator new(sizeof(BlockHeader) + capacity, kBlockAlign);
  }
  auto* b = new (mem) BlockHeader{{1}, static_cast<std::uint32_t>(capacity), pool};
  if (pool) pool->refs.fetch_add(1, std::memory_order_relaxed);
  return b;
}

void release_block(BlockHeader* b) {
  PoolState* pool = b->pool;
  if (pool == nullptr) {
    free_block(b);
    return;
  }
  if (pool == kStringBlock) {
    std::destroy_at(reinterpret_cast<std::string*>(b->bytes()));
    b->~BlockHeader();
    ::operator delete(static_cast<void*>(b));
    return;
  }
  if (std::this_thread::get_id() == pool->owner && !pool->closed && pool->free.size() < pool->max_cached) {
    b->refs.store(1, std::memory_order_relaxed);
    pool->free.push_back(b);
    pool->stats.returned++;
    return;
  }
  if (std::this_thread::get_id() == pool->owner) {
    pool->stats.freed++;
  } else {
    pool->foreign_freed.fetch_add(1, std::memory_order_relaxed);
  }
  free_block(b);
  unref_pool(pool);
}

}  // namespace detail

Buffer Buffer::allocate(std::size_t capacity) {
  return Buffer(detail::BlockRef(detail::allocate_block(capacity, nullptr)));
}

void Buffer::append(ByteView bytes) {
  if (bytes.empty()) return;
  std::memcpy(tail(), bytes.data(), bytes.size());
  size_ += bytes.size();
}

Slice Buffer::slice(std::size_t pos, std::size_t len) const { return Slice(block_, data() + pos, len); }

Slice Buffer::slice() const { return slice(0, size_); }

Slice Slice::copy_of(ByteView bytes) {
  if (bytes.empty()) return Slice();
  Buffer b = Buffer::allocate(bytes.size());
  b.append(bytes);
  return b.slice();
}

Slice Slice::from_string(std::string&& s) {
  if (s.empty()) return Slice();
  static_assert(alignof(std::string) <= alignof(detail::BlockHeader));
  void* mem = ::operator new(sizeof(detail::BlockHeader) + sizeof(std::string));
  auto* b = new (mem) detail::BlockHeader{{1}, 0, detail::kStringBlock};
  auto* owned = new (b->bytes()) std::string(std::move(s));
  return Slice(detail::BlockRef(b), reinterpret_cast<const std::uint8_t*>(owned->data()), owned->size());
}

void Chain::append(Slice s) {
  if (s.empty()) return;
  bytes_ += s.size();
  slices_.push_back(std::move(s));
}

void Chain::append(const Chain& other) {
  for (const Slice& s : other.slices_) append(s);
}

void Chain::append(Chain&& other) {
  for (Slice& s : other.slices_) append(std::move(s));
  other.clear();
}

void Chain::prepend(Slice s) {
  if (s.empty()) return;
  bytes_ += s.size();
  slices_.insert(slices_.begin(), std::move(s));
}

std::size_t Chain::to_iovecs(struct iovec* out, std::size_t max) const {
  std::size_t n = std::min(max, slices_.size());
  for (std::size_t i = 0; i < n; ++i) {
    out[i].iov_base = const_cast<std::uint8_t*>(slices_[i].data());
    out[i].iov_len = slices_[i].size();
  }
  return n;
}

void Chain::consume(std::size_t n) {
  bytes_ -= n;
  std::size_t whole = 0;
  while (whole < slices_.size() && n >= slices_[whole].size()) {
    n -= slices_[whole].size();
    ++whole;
  }
  slices_.erase(slices_.begin(), slices_.begin() + static_cast<std::ptrdiff_t>(whole));
  if (n > 0) slices_.front().remove_prefix(n);
}

std::size_t Chain::copy_to(std::uint8_t* out, std::size_t n) const {
  std::size_t done = 0;
  for (const Slice& s : slices_) {
    if (done == n) break;
    std::size_t k = std::min(n - done, s.size());
    std::memcpy(out + done, s.data(), k);
    done += k;
  }
  return done;
}

Slice Chain::take_front(std::size_t n) {
  if (n == 0) return Slice();
  if (slices_.front().size() >= n) {
    Slice s = slices_.front().sub(0, n);
    consume(n);
    return s;
  }
  Buffer b = Buffer::allocate(n);
  b.commit(copy_to(b.data(), n));
  consume(n);
  return b.slice();
}

Slice Chain::flatten() const {
  if (slices_.empty()) return Slice();
  if (slices_.size() == 1) return slices_.front();
  Buffer b = Buffer::allocate(bytes_);
  b.commit(copy_to(b.data(), bytes_));
  return b.slice();
}

std::string Chain::to_string() const {
  if (slices_.size() == 1) return slices_.front().to_string();  // one copy, no zero-fill first
  std::string s;
  s.reserve(bytes_);
  for (const Slice& piece : slices_) s.append(piece.as_string_view());
  return s;
}

BufferPool::BufferPool(std::size_t block_size, std::size_t max_cached) : state_(new detail::PoolState) {
  state_->block_size = block_size;
  state_->max_cached = max_cached;
  state_->free.reserve(max_cached);
}

BufferPool::~BufferPool() {
  state_->closed = true;
  std::vector<detail::BlockHeader*> cached;
  cached.swap(state_->free);
  for (detail::BlockHeader* b : cached) {
    b->refs.store(0, std::memory_order_relaxed);
    detail::release_block(b);  // closed: frees the block and drops its pool reference
  }
  detail::unref_pool(state_);
}

Buffer BufferPool::get() {
  if (!state_->free.empty()) {
    detail::BlockHeader* b = state_->free.back();
    state_->free.pop_back();
    state_->stats.hits++;
    return Buffer(detail::BlockRef(b));
  }
  state_->stats.misses++;
  return Buffer(detail::BlockRef(detail::allocate_block(state_->block_size, state_)));
}

std::size_t BufferPool::block_size() const { return state_->block_size; }

BufferPoolStats BufferPool::stats() const {
  BufferPoolStats s = state_->stats;
  s.freed += state_->foreign_freed.load(std::memory_order_relaxed);
  s.cached = state_->free.size();
  return s;
}

}  // namespace slip
