#include "io/loop_group.h"

#include <pthread.h>

#include <string>

namespace slip::io {

LoopGroup::LoopGroup(std::size_t threads, LoopOptions options) {
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  for (std::size_t i = 0; i < threads; ++i) loops_.push_back(std::make_unique<EventLoop>(options));
}

LoopGroup::~LoopGroup() { stop(); }

void LoopGroup::start() {
  for (std::size_t i = 0; i < loops_.size(); ++i) {
    threads_.emplace_back([this, i] {
      std::string name = "slip-loop-" + std::to_string(i);
      pthread_setname_np(pthread_self(), name.c_str());
      loops_[i]->run();
    });
  }
}

void LoopGroup::stop() {
  for (auto& l : loops_) l->stop();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

}  // namespace slip::io
