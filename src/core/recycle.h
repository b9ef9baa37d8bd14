// Memory for objects made and destroyed at a high rate, one per RPC call (std::allocate_shared
// with RecyclingAllocator<T>).
//
// Each thread keeps up to kRecycledBlocks freed blocks of each size it recycles and hands them
// out again, whichever thread allocated them. glibc's per-thread cache keeps only 7 blocks of a
// size: with dozens of calls in flight, a call object of several hundred bytes is otherwise
// allocated and freed through malloc's slower shared bins every time.
#pragma once

#include <cstddef>
#include <memory>
#include <new>

namespace slip {

inline constexpr std::size_t kRecycledBlocks = 128;

namespace detail {

// One thread's free blocks of `Size` bytes.
template <std::size_t Size>
class BlockRecycler {
 public:
  static void* get() {
    if (!gone_ && cache_.count > 0) return cache_.blocks[--cache_.count];
    return ::operator new(Size);
  }
  static void put(void* p) {
    if (!gone_ && cache_.count < kRecycledBlocks) {
      cache_.blocks[cache_.count++] = p;
      return;
    }
    ::operator delete(p);
  }

 private:
  struct Cache {
    void* blocks[kRecycledBlocks];
    std::size_t count = 0;
    ~Cache() {
      gone_ = true;
      while (count > 0) ::operator delete(blocks[--count]);
    }
  };
  // Set once this thread's cache is destroyed (thread exit): later frees on it go straight to
  // the allocator. Trivially destructible, so it stays readable after the cache is gone.
  static inline thread_local bool gone_ = false;
  static inline thread_local Cache cache_;
};

}  // namespace detail

// An allocator for std::allocate_shared: single objects come from the thread's recycled blocks
// of their size; arrays from the global allocator.
template <typename T>
class RecyclingAllocator {
 public:
  using value_type = T;

  RecyclingAllocator() = default;
  template <typename U>
  RecyclingAllocator(const RecyclingAllocator<U>&) noexcept {}  // NOLINT: rebinding

  T* allocate(std::size_t n) {
    static_assert(alignof(T) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__, "over-aligned types are not recycled");
    if (n == 1) return static_cast<T*>(detail::BlockRecycler<sizeof(T)>::get());
    return std::allocator<T>().allocate(n);
  }
  void deallocate(T* p, std::size_t n) noexcept {
    if (n == 1) {
      detail::BlockRecycler<sizeof(T)>::put(p);
      return;
    }
    std::allocator<T>().deallocate(p, n);
  }

  template <typename U>
  bool operator==(const RecyclingAllocator<U>&) const noexcept {
    return true;
  }
};

}  // namespace slip
