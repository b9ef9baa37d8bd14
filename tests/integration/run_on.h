// Running a piece of a test on an event loop's thread and waiting for it.
#pragma once

#include <future>

#include "io/event_loop.h"

namespace slip::test {

// Runs fn on `loop` and waits for it to finish.
template <typename Fn>
void run_on(io::EventLoop& loop, Fn fn) {
  std::promise<void> done;
  loop.post([&] {
    fn();
    done.set_value();
  });
  done.get_future().wait();
}

}  // namespace slip::test
