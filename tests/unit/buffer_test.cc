#include "slipstream/buffer.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace slip {
namespace {

Slice slice_of(std::string_view s) { return Slice::copy_of(ByteView(s)); }

TEST(ByteViewTest, ComparesByContent) {
  std::string a = "hello";
  std::string b = "hello";
  EXPECT_TRUE(ByteView(a) == ByteView(b));
  EXPECT_FALSE(ByteView(a) == ByteView("hellp"));
  EXPECT_FALSE(ByteView(a) == ByteView("hell"));
  EXPECT_TRUE(ByteView() == ByteView(""));
}

TEST(ByteViewTest, SubViewsPointIntoTheSameMemory) {
  std::string s = "abcdef";
  ByteView v(s);
  EXPECT_EQ(v.sub(2, 3).data(), v.data() + 2);
  EXPECT_EQ(v.sub(2, 3).as_string_view(), "cde");
  EXPECT_EQ(v.sub(4).to_string(), "ef");
  EXPECT_EQ(v[1], 'b');
}

TEST(BufferTest, AllocateGivesAnEmptyWritableBlock) {
  Buffer b = Buffer::allocate(100);
  ASSERT_TRUE(static_cast<bool>(b));
  EXPECT_GE(b.capacity(), 100u);
  EXPECT_EQ(b.size(), 0u);
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.tailroom(), b.capacity());
  EXPECT_TRUE(b.unique());
  EXPECT_FALSE(static_cast<bool>(Buffer()));
}

TEST(BufferTest, AppendAndCommitFillFromTheFront) {
  Buffer b = Buffer::allocate(16);
  b.append(ByteView("abc"));
  std::memcpy(b.tail(), "de", 2);
  b.commit(2);
  EXPECT_EQ(b.size(), 5u);
  EXPECT_EQ(b.tailroom(), b.capacity() - 5);
  EXPECT_EQ(b.slice().to_string(), "abcde");
  EXPECT_EQ(b.slice(1, 3).to_string(), "bcd");
}

TEST(BufferTest, SlicesShareTheBlockAndCountReferences) {
  Buffer b = Buffer::allocate(32);
  b.append(ByteView("0123456789"));
  EXPECT_TRUE(b.unique());
  {
    Slice s1 = b.slice();
    EXPECT_FALSE(b.unique());
    EXPECT_EQ(s1.block_use_count(), 2u);
    EXPECT_EQ(s1.data(), b.data());
    {
      Slice s2 = s1;  // copy adds a reference
      EXPECT_EQ(s1.block_use_count(), 3u);
      EXPECT_TRUE(s2.shares_block_with(s1));
      Slice s3 = std::move(s2);  // move does not
      EXPECT_EQ(s1.block_use_count(), 3u);
    }
    EXPECT_EQ(s1.block_use_count(), 2u);
  }
  EXPECT_TRUE(b.unique());
  b.reset();
  EXPECT_EQ(b.size(), 0u);
}

TEST(BufferTest, SliceOutlivesItsBuffer) {
  Slice s;
  {
    Buffer b = Buffer::allocate(8);
    b.append(ByteView("payload"));
    s = b.slice();
    EXPECT_EQ(s.block_use_count(), 2u);
  }
  EXPECT_EQ(s.block_use_count(), 1u);
  EXPECT_EQ(s.to_string(), "payload");
}

TEST(BufferTest, WritingPastSizeDoesNotDisturbSlices) {
  Buffer b = Buffer::allocate(16);
  b.append(ByteView("abcd"));
  Slice s = b.slice();
  b.append(ByteView("efgh"));
  EXPECT_EQ(s.to_string(), "abcd");
  EXPECT_EQ(b.slice().to_string(), "abcdefgh");
}

TEST(SliceTest, SubSlicesAreZeroCopy) {
  Slice s = slice_of("hello world");
  Slice w = s.sub(6, 5);
  EXPECT_EQ(w.data(), s.data() + 6);
  EXPECT_EQ(w.to_string(), "world");
  EXPECT_TRUE(w.shares_block_with(s));
  EXPECT_EQ(s.block_use_count(), 2u);
  Slice tail = s.sub(6);
  EXPECT_EQ(tail.data(), w.data());
  EXPECT_EQ(tail.size(), 5u);
  EXPECT_EQ(s.block_use_count(), 3u);
}

TEST(SliceTest, RemovePrefixMovesTheWindow) {
  Slice s = slice_of("abcdef");
  const std::uint8_t* start = s.data();
  s.remove_prefix(2);
  EXPECT_EQ(s.data(), start + 2);
  EXPECT_EQ(s.as_string_view(), "cdef");
  s.remove_prefix(4);
  EXPECT_TRUE(s.empty());
}

TEST(SliceTest, CopyOfCopiesIntoANewBlock) {
  std::string src = "copy me";
  Slice s = Slice::copy_of(ByteView(src));
  EXPECT_NE(static_cast<const void*>(s.data()), static_cast<const void*>(src.data()));
  src[0] = 'X';
  EXPECT_EQ(s.to_string(), "copy me");
  EXPECT_EQ(s.block_use_count(), 1u);
  EXPECT_TRUE(Slice::copy_of(ByteView()).empty());
}

TEST(SliceTest, FromStringAdoptsTheStringsBufferWithoutACopy) {
  std::string src(1024, 'a');
  src[0] = 'b';
  src[1023] = 'z';
  const void* buffer = src.data();
  Slice s = Slice::from_string(std::move(src));
  EXPECT_EQ(static_cast<const void*>(s.data()), buffer);
  EXPECT_EQ(s.size(), 1024u);
  EXPECT_EQ(s.block_use_count(), 1u);
  EXPECT_EQ(s.data()[0], 'b');
  EXPECT_EQ(s.data()[1023], 'z');
}

TEST(SliceTest, FromStringBytesOutliveTheStringObject) {
  Slice s;
  const void* buffer = nullptr;
  {
    auto src = std::make_unique<std::string>(4000, 'q');
    (*src)[17] = '!';
    buffer = src->data();
    s = Slice::from_string(std::move(*src));
    src->assign(4000, 'x');  // the moved-from object is reused: the Slice must not see it
  }  // ... and destroyed
  EXPECT_EQ(static_cast<const void*>(s.data()), buffer);
  ASSERT_EQ(s.size(), 4000u);
  EXPECT_EQ(s.as_string_view().substr(15, 4), "qq!q");
  EXPECT_EQ(s.as_string_view().find('x'), std::string_view::npos);
}

TEST(SliceTest, FromStringSubSlicesShareTheAdoptedString) {
  Slice s = Slice::from_string(std::string("0123456789abcdefghijklmnopqrstuvwxyz"));
  Slice mid = s.sub(10, 6);
  EXPECT_EQ(mid.to_string(), "abcdef");
  EXPECT_EQ(mid.data(), s.data() + 10);
  EXPECT_TRUE(mid.shares_block_with(s));
  EXPECT_EQ(s.block_use_count(), 2u);
  s = Slice();
  EXPECT_EQ(mid.block_use_count(), 1u);
  EXPECT_EQ(mid.to_string(), "abcdef");  // the string lives while a sub-slice does
}

TEST(SliceTest, FromStringShortStringsAndEmpty) {
  Slice s = Slice::from_string(std::string("hi"));  // short: kept inline in the block
  EXPECT_EQ(s.to_string(), "hi");
  EXPECT_EQ(s.block_use_count(), 1u);
  EXPECT_TRUE(Slice::from_string(std::string()).empty());
}

TEST(SliceTest, FromStringInAChainTakeFrontAndConsume) {
  std::string big(3000, 'm');
  big.replace(0, 5, "hello");
  const std::uint8_t* buffer = reinterpret_cast<const std::uint8_t*>(big.data());
  Chain c(Slice::from_string(std::move(big)));
  c.append(Slice::from_string(std::string(100, 't')));
  EXPECT_EQ(c.size(), 3100u);
  Slice head = c.take_front(5);  // within the first slice: no copy
  EXPECT_EQ(head.data(), buffer);
  EXPECT_EQ(head.to_string(), "hello");
  c.consume(2990);
  EXPECT_EQ(c.size(), 105u);
  Slice rest = c.take_front(10);  // spans both strings: gathered
  EXPECT_EQ(rest.to_string(), "mmmmmttttt");
  EXPECT_EQ(c.to_string(), std::string(95, 't'));
  c.clear();
  EXPECT_EQ(head.to_string(), "hello");
}

TEST(SliceTest, FromStringReleasedOnAnotherThread) {
  Slice s = Slice::from_string(std::string(2048, 'r'));
  Slice copy = s;
  s = Slice();
  std::thread t([c = std::move(copy)]() mutable {
    EXPECT_EQ(c.as_string_view(), std::string(2048, 'r'));
    c = Slice();  // the last reference goes on this thread
  });
  t.join();
}

TEST(SliceTest, StaticSlicesReferenceNoBlock) {
  static constexpr char kText[] = "static";
  Slice s = Slice::from_static(ByteView(kText, 6));
  EXPECT_EQ(static_cast<const void*>(s.data()), static_cast<const void*>(kText));
  EXPECT_EQ(s.block_use_count(), 0u);
  Slice t = s.sub(1, 2);
  EXPECT_EQ(t.to_string(), "ta");
  EXPECT_FALSE(t.shares_block_with(s));  // no block to share
}

TEST(SliceTest, ConvertsToByteView) {
  Slice s = slice_of("xyz");
  ByteView v = s;
  EXPECT_EQ(v.data(), s.data());
  EXPECT_EQ(v.size(), 3u);
}

// A chain of three slices "abc" "defg" "hi" from separate blocks.
Chain three_slices() {
  Chain c;
  c.append(slice_of("abc"));
  c.append(slice_of("defg"));
  c.append(slice_of("hi"));
  return c;
}

TEST(ChainTest, AppendSkipsEmptySlicesAndCountsBytes) {
  Chain c;
  EXPECT_TRUE(c.empty());
  c.append(Slice());
  c.append(slice_of("ab"));
  c.append(Slice::copy_of(ByteView()));
  c.append(slice_of("cde"));
  EXPECT_EQ(c.slice_count(), 2u);
  EXPECT_EQ(c.size(), 5u);
  EXPECT_EQ(c.to_string(), "abcde");
}

TEST(ChainTest, PrependPutsASliceInFront) {
  Chain c(slice_of("body"));
  c.prepend(slice_of("hdr:"));
  c.prepend(Slice());
  EXPECT_EQ(c.slice_count(), 2u);
  EXPECT_EQ(c.to_string(), "hdr:body");
}

TEST(ChainTest, AppendingAChainSharesItsSlices) {
  Chain a = three_slices();
  Chain b(slice_of(">"));
  b.append(a);
  EXPECT_EQ(b.to_string(), ">abcdefghi");
  EXPECT_EQ(a.slice(0).block_use_count(), 2u);
  EXPECT_EQ(b.slice(1).data(), a.slice(0).data());

  Chain c;
  c.append(std::move(a));
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): append(Chain&&) clears
  EXPECT_EQ(a.slice_count(), 0u);
  EXPECT_EQ(c.to_string(), "abcdefghi");
  EXPECT_EQ(c.slice(0).block_use_count(), 2u);  // c and b
}

TEST(ChainTest, ManySlicesSpillPastTheInlineStorage) {
  Chain c;
  std::string expect;
  for (int i = 0; i < 20; ++i) {
    std::string piece(static_cast<std::size_t>(i + 1), static_cast<char>('a' + i));
    c.append(slice_of(piece));
    expect += piece;
  }
  EXPECT_EQ(c.slice_count(), 20u);
  EXPECT_EQ(c.size(), expect.size());
  EXPECT_EQ(c.to_string(), expect);
}

TEST(ChainTest, ToIovecsPointsAtTheSlices) {
  Chain c = three_slices();
  iovec iov[8];
  ASSERT_EQ(c.to_iovecs(iov, 8), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(iov[i].iov_base, static_cast<const void*>(c.slice(i).data()));
    EXPECT_EQ(iov[i].iov_len, c.slice(i).size());
  }
  ASSERT_EQ(c.to_iovecs(iov, 2), 2u);  // bounded by max
  EXPECT_EQ(iov[1].iov_len, 4u);
  EXPECT_EQ(Chain().to_iovecs(iov, 8), 0u);
}

TEST(ChainTest, ConsumeWithinTheFirstSlice) {
  Chain c = three_slices();
  const std::uint8_t* first = c.slice(0).data();
  c.consume(1);
  EXPECT_EQ(c.size(), 8u);
  EXPECT_EQ(c.slice_count(), 3u);
  EXPECT_EQ(c.slice(0).data(), first + 1);
  EXPECT_EQ(c.to_string(), "bcdefghi");
}

TEST(ChainTest, ConsumeExactlyOneSliceDropsIt) {
  Chain c = three_slices();
  Slice keep = c.slice(0);
  EXPECT_EQ(keep.block_use_count(), 2u);
  c.consume(3);
  EXPECT_EQ(c.slice_count(), 2u);
  EXPECT_EQ(c.to_string(), "defghi");
  EXPECT_EQ(keep.block_use_count(), 1u);  // the chain let go of the block
}

TEST(ChainTest, ConsumeAcrossSliceBoundaries) {
  Chain c = three_slices();
  const std::uint8_t* third = c.slice(2).data();
  c.consume(8);  // "abc" + "defg" + "h"
  EXPECT_EQ(c.size(), 1u);
  ASSERT_EQ(c.slice_count(), 1u);
  EXPECT_EQ(c.slice(0).data(), third + 1);
  EXPECT_EQ(c.to_string(), "i");
}

TEST(ChainTest, ConsumeEverythingEmptiesTheChain) {
  Chain c = three_slices();
  c.consume(c.size());
  EXPECT_TRUE(c.empty());
  EXPECT_EQ(c.slice_count(), 0u);
  c.consume(0);
  EXPECT_TRUE(c.empty());
}

TEST(ChainTest, ConsumeAfterPartialWritevAtEveryOffset) {
  const std::string all = "abcdefghi";
  for (std::size_t n = 0; n <= all.size(); ++n) {
    Chain c = three_slices();
    c.consume(n);
    EXPECT_EQ(c.size(), all.size() - n);
    EXPECT_EQ(c.to_string(), all.substr(n)) << n;
  }
}

TEST(ChainTest, CopyToCopiesAPrefixAcrossSlices) {
  Chain c = three_slices();
  std::uint8_t out[16] = {};
  EXPECT_EQ(c.copy_to(out, 5), 5u);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(out), 5), "abcde");
  EXPECT_EQ(c.copy_to(out, 16), 9u);  // at most size()
  EXPECT_EQ(std::string(reinterpret_cast<char*>(out), 9), "abcdefghi");
  EXPECT_EQ(c.copy_to(out, 0), 0u);
}

TEST(ChainTest, FlattenOfOneSliceDoesNotCopy) {
  Slice s = slice_of("single");
  Chain c(s);
  Slice f = c.flatten();
  EXPECT_EQ(f.data(), s.data());
  EXPECT_TRUE(f.shares_block_with(s));
  EXPECT_EQ(s.block_use_count(), 3u);
}

TEST(ChainTest, FlattenOfManySlicesCopiesIntoOneBlock) {
  Chain c = three_slices();
  Slice f = c.flatten();
  EXPECT_EQ(f.to_string(), "abcdefghi");
  for (const Slice& s : c) EXPECT_FALSE(f.shares_block_with(s));
  EXPECT_EQ(f.block_use_count(), 1u);
  EXPECT_TRUE(Chain().flatten().empty());
}

TEST(ChainTest, ClearDropsReferences) {
  Slice s = slice_of("x");
  Chain c;
  c.append(s);
  c.append(s);
  EXPECT_EQ(s.block_use_count(), 3u);
  EXPECT_EQ(c.size(), 2u);
  c.clear();
  EXPECT_EQ(s.block_use_count(), 1u);
  EXPECT_TRUE(c.empty());
}

TEST(ChainTest, FanOutSharesOnePayload) {
  Slice payload = slice_of(std::string(4096, 'p'));
  std::vector<Chain> subscribers(10);
  for (Chain& c : subscribers) {
    c.append(slice_of("hdr"));
    c.append(payload);
  }
  EXPECT_EQ(payload.block_use_count(), 11u);
  for (const Chain& c : subscribers) EXPECT_EQ(c.slice(1).data(), payload.data());
  subscribers.clear();
  EXPECT_EQ(payload.block_use_count(), 1u);
}

TEST(BufferPoolTest, ReusesReleasedBlocks) {
  BufferPool pool(256, 4);
  EXPECT_EQ(pool.block_size(), 256u);
  const std::uint8_t* first;
  {
    Buffer b = pool.get();
    EXPECT_EQ(b.capacity(), 256u);
    EXPECT_EQ(b.size(), 0u);
    b.append(ByteView("dirty"));
    first = b.data();
  }
  BufferPoolStats s = pool.stats();
  EXPECT_EQ(s.misses, 1u);
  EXPECT_EQ(s.hits, 0u);
  EXPECT_EQ(s.returned, 1u);
  EXPECT_EQ(s.cached, 1u);

  Buffer again = pool.get();
  EXPECT_EQ(again.data(), first);
  EXPECT_EQ(again.size(), 0u);  // a recycled block starts empty
  EXPECT_TRUE(again.unique());
  s = pool.stats();
  EXPECT_EQ(s.hits, 1u);
  EXPECT_EQ(s.misses, 1u);
  EXPECT_EQ(s.cached, 0u);
}

TEST(BufferPoolTest, BlockReturnsWhenItsLastSliceGoes) {
  BufferPool pool(64, 4);
  Slice s;
  {
    Buffer b = pool.get();
    b.append(ByteView("abc"));
    s = b.slice();
  }
  EXPECT_EQ(pool.stats().returned, 0u);  // the slice still holds the block
  EXPECT_EQ(s.to_string(), "abc");
  s = Slice();
  EXPECT_EQ(pool.stats().returned, 1u);
  EXPECT_EQ(pool.stats().cached, 1u);
}

TEST(BufferPoolTest, FreeListIsBounded) {
  BufferPool pool(64, 2);
  {
    std::vector<Buffer> out;
    for (int i = 0; i < 5; ++i) out.push_back(pool.get());
    EXPECT_EQ(pool.stats().misses, 5u);
  }
  BufferPoolStats s = pool.stats();
  EXPECT_EQ(s.returned, 2u);
  EXPECT_EQ(s.freed, 3u);
  EXPECT_EQ(s.cached, 2u);
}

TEST(BufferPoolTest, BlockReleasedOnAnotherThreadIsFreedNotPooled) {
  BufferPool pool(128, 4);
  Buffer b = pool.get();
  b.append(ByteView("cross-shard"));
  Slice s = b.slice();
  b = Buffer();  // only the slice holds the block now
  EXPECT_EQ(s.block_use_count(), 1u);

  std::string seen;
  std::thread t([moved = std::move(s), &seen]() mutable {
    seen = moved.to_string();
    moved = Slice();  // last reference dropped on a foreign thread
  });
  t.join();

  EXPECT_EQ(seen, "cross-shard");
  BufferPoolStats st = pool.stats();
  EXPECT_EQ(st.returned, 0u);
  EXPECT_EQ(st.cached, 0u);
  EXPECT_EQ(st.freed, 1u);
  Buffer next = pool.get();
  EXPECT_EQ(pool.stats().misses, 2u);  // nothing to reuse
  EXPECT_EQ(pool.stats().hits, 0u);
}

TEST(BufferPoolTest, PoolMayDieWhileBlocksAreOut) {
  // Under ASan this also checks that neither the blocks nor the pool state leak.
  Slice survivor;
  Buffer held;
  {
    BufferPool pool(64, 4);
    Buffer b = pool.get();
    b.append(ByteView("outlives the pool"));
    survivor = b.slice();
    held = pool.get();
    Buffer cached = pool.get();  // returned to the free list before the pool dies
  }
  EXPECT_EQ(survivor.to_string(), "outlives the pool");
  held.append(ByteView("still writable"));
  EXPECT_EQ(held.slice().to_string(), "still writable");
  survivor = Slice();
  held = Buffer();
}

TEST(BufferPoolTest, PoolBlockReleasedOnAnotherThreadAfterThePoolDied) {
  Slice s;
  {
    BufferPool pool(64, 4);
    Buffer b = pool.get();
    b.append(ByteView("late"));
    s = b.slice();
  }
  // Under ASan a leak or use-after-free of the pool state is reported here.
  std::string seen;
  std::thread t([moved = std::move(s), &seen]() mutable {
    seen = moved.to_string();
    moved = Slice();
  });
  t.join();
  EXPECT_EQ(seen, "late");
}

}  // namespace
}  // namespace slip
