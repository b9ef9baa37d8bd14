// LoopGroup: one EventLoop per thread, normally one per core. Connections are pinned to one
// loop (a shard) for life; nothing on the data path is shared between loops.
#pragma once

#include <cstddef>
#include <memory>
#include <thread>
#include <vector>

#include "io/event_loop.h"

namespace slip::io {

class LoopGroup {
 public:
  // threads == 0 means one per core.
  LoopGroup(std::size_t threads, LoopOptions options);
  ~LoopGroup();  // stops and joins
  LoopGroup(const LoopGroup&) = delete;
  LoopGroup& operator=(const LoopGroup&) = delete;

  // Starts one thread per loop.
  void start();
  // Stops every loop and joins the threads. Idempotent.
  void stop();

  std::size_t size() const { return loops_.size(); }
  EventLoop& loop(std::size_t i) { return *loops_[i]; }
  // Round-robin choice for a new connection.
  EventLoop& next_loop() { return *loops_[next_++ % loops_.size()]; }

 private:
  std::vector<std::unique_ptr<EventLoop>> loops_;
  std::vector<std::thread> threads_;
  std::size_t next_ = 0;
};

}  // namespace slip::io
