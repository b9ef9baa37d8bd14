#include "core/recycle.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>
#include <thread>

namespace slip {
namespace {

struct Counted {
  explicit Counted(int v) : value(v) { ++live; }
  ~Counted() { --live; }
  int value;
  std::string name = "a name long enough to live on the heap, not inline";
  char pad[200] = {};
  static inline int live = 0;
};

TEST(RecyclingAllocatorTest, AFreedObjectsBlockIsReusedByTheNextOneOnTheSameThread) {
  const RecyclingAllocator<Counted> alloc;
  auto a = std::allocate_shared<Counted>(alloc, 1);
  const void* first = a.get();
  EXPECT_EQ(Counted::live, 1);
  a.reset();
  EXPECT_EQ(Counted::live, 0);
  auto b = std::allocate_shared<Counted>(alloc, 2);
  EXPECT_EQ(static_cast<const void*>(b.get()), first);
  EXPECT_EQ(b->value, 2);
  EXPECT_EQ(b->name, "a name long enough to live on the heap, not inline");
}

TEST(RecyclingAllocatorTest, ManyLiveObjectsAreDistinctAndIntact) {
  const RecyclingAllocator<Counted> alloc;
  std::vector<std::shared_ptr<Counted>> v;
  for (int i = 0; i < 300; ++i) v.push_back(std::allocate_shared<Counted>(alloc, i));  // past the cache
  for (int i = 0; i < 300; ++i) {
    EXPECT_EQ(v[i]->value, i);
    for (int j = i + 1; j < 300; j += 37) EXPECT_NE(v[i].get(), v[j].get());
  }
  v.clear();
  EXPECT_EQ(Counted::live, 0);
  for (int i = 0; i < 300; ++i) v.push_back(std::allocate_shared<Counted>(alloc, -i));
  for (int i = 0; i < 300; ++i) EXPECT_EQ(v[i]->value, -i);
}

TEST(RecyclingAllocatorTest, ObjectsFreedOnAnotherThreadServeThatThread) {
  const RecyclingAllocator<Counted> alloc;
  auto a = std::allocate_shared<Counted>(alloc, 7);
  const void* made_here = a.get();
  const void* reused_there = nullptr;
  std::thread t([&] {
    a.reset();  // the last reference goes on this thread: its block joins this thread's cache
    auto b = std::allocate_shared<Counted>(alloc, 8);
    reused_there = b.get();
    EXPECT_EQ(b->value, 8);
  });  // the thread's cache is freed when it exits
  t.join();
  EXPECT_EQ(reused_there, made_here);
  EXPECT_EQ(Counted::live, 0);
  auto c = std::allocate_shared<Counted>(alloc, 9);  // this thread's cache does not have it
  EXPECT_EQ(c->value, 9);
}

TEST(RecyclingAllocatorTest, ArraysGoToTheGlobalAllocator) {
  RecyclingAllocator<std::uint64_t> alloc;
  std::uint64_t* p = alloc.allocate(4);
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::uint64_t>(i);
  EXPECT_EQ(p[3], 3u);
  alloc.deallocate(p, 4);
}

}  // namespace
}  // namespace slip
