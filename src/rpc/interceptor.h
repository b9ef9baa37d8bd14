// Server interceptors: code that sees every call of a server (or of one service) before its
// handler, may refuse it, and learns how it ended (docs/rpc.md, "Interceptors").
//
// A server's chain is its own interceptors in registration order, then the service's. For each
// call the server asks on_call_start of each in turn; the first non-OK Status ends the call with
// that status, the handler never runs and the interceptors after it are not asked. Every
// interceptor whose on_call_start ran is then told of the end by on_call_end, in reverse order,
// whoever ended the call (handler, interceptor, deadline, cancellation, lost connection).
//
// Both run on the call's connection loop, one call at a time per loop: state an interceptor
// keeps per shard (on_attach tells it how many) needs no lock. They must not block. A server
// with no interceptor pays nothing for the feature (no clock read, no virtual call).
//
// Calls to unknown methods are answered UNIMPLEMENTED before the chain (so client-chosen names
// never become metric labels); they are counted in ServerStats::unimplemented.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include "slipstream/status.h"

namespace slip::rpc {

class ServerCall;

// What a server tells its interceptors once, at start(), before any call.
struct ServerLayout {
  // Event loops; ServerCall::shard() is below this.
  std::size_t shards = 1;
  // Every method the server serves, by ServerCall::method_index(): "/pkg.Service/Method".
  std::vector<std::string> methods;
};

class ServerInterceptor {
 public:
  virtual ~ServerInterceptor() = default;

  // Once per server, from start() (before any call). An interceptor instance serves one server.
  virtual void on_attach(const ServerLayout& layout) { (void)layout; }

  // Before the handler (and before the method's concurrency limit and response cache). A non-OK
  // Status ends the call with it. May add headers and trailers to the call; must not write or
  // finish it.
  virtual Status on_call_start(ServerCall& call) {
    (void)call;
    return Status();
  }

  // The call ended with `status` (what the caller was sent, or would have been sent had it
  // still listened) after `elapsed` since its CALL frame arrived.
  virtual void on_call_end(const ServerCall& call, const Status& status, std::chrono::nanoseconds elapsed) {
    (void)call;
    (void)status;
    (void)elapsed;
  }
};

}  // namespace slip::rpc
