// Running a piece of work on an event loop's thread from another thread, and waiting for it:
// what tests, benchmarks and tools do to touch objects a loop owns.
#pragma once

#include <future>

#include "io/event_loop.h"

namespace slip::io {

// Posts fn to `loop` and blocks until it has run. Never call it on `loop`'s own thread (it would
// wait for itself), nor on a loop that is not running.
template <typename Fn>
void run_on(EventLoop& loop, Fn fn) {
  std::promise<void> done;
  loop.post([&] {
    fn();
    done.set_value();
  });
  done.get_future().wait();
}

}  // namespace slip::io
