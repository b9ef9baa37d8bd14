// The transport contract: byte pipes that sessions run over, whatever carries them (TCP, TLS,
// reliable UDP, shared memory, in-process). Sessions never learn which one they have.
//
// Threading: a Connection belongs to one EventLoop. Every call on it and every callback from it
// happens on that loop's thread.
// Re-entrancy: callbacks never re-enter. A call made on the Connection inside a callback does not
// invoke the handler again before it returns; events it causes are delivered later on the loop.
// Ownership: send() takes the Chain; the transport owns those bytes until they are written.
// Blocking: no call blocks. send() queues and the bytes leave on the next loop turn (coalesced
// into one writev with everything else queued in the same turn) or, when the socket is full, as
// soon as it drains; queued_bytes() lets the caller apply backpressure.
// close() vs abort(): close() writes what is queued, then closes; abort() drops it and closes at
// once. Either way on_closed() is the last callback, delivered exactly once.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "io/event_loop.h"
#include "slipstream/buffer.h"
#include "slipstream/status.h"

namespace slip::transport {

class ConnectionHandler {
 public:
  virtual ~ConnectionHandler() = default;
  // Bytes read, in order. The Slice may share a block with earlier and later reads.
  virtual void on_bytes(Slice bytes) = 0;
  // The connection is gone: kDisconnected when the peer closed or the link failed, OK when we
  // closed it. No callback follows.
  virtual void on_closed(Status reason) = 0;
  // Everything queued with send() has been handed to the kernel: a good moment to queue more.
  // Called after a write that emptied the queue, never from inside a call on the Connection.
  virtual void on_send_drained() {}
};

class Connection {
 public:
  virtual ~Connection() = default;

  // Starts delivering events to `handler`, which must stay valid until on_closed().
  virtual void start(ConnectionHandler* handler) = 0;
  // Queues bytes; ignored after close() or abort().
  virtual void send(Chain bytes) = 0;
  // Bytes queued and not yet handed to the kernel.
  virtual std::size_t queued_bytes() const = 0;
  // Stops and restarts delivering on_bytes (the kernel buffer then fills and the peer stalls).
  virtual void pause_reading() = 0;
  virtual void resume_reading() = 0;
  virtual void close() = 0;
  virtual void abort(Status reason) = 0;

  virtual io::EventLoop& loop() = 0;
  // "127.0.0.1:50312"
  virtual std::string peer_address() const = 0;
  // True when the bytes are encrypted on the wire (TLS, encrypted UDP) or never leave the host.
  virtual bool secure() const = 0;
};

using ConnectionPtr = std::shared_ptr<Connection>;

// Called on the new connection's loop thread.
using AcceptHandler = std::function<void(ConnectionPtr)>;
using ConnectHandler = std::function<void(Result<ConnectionPtr>)>;

class Listener {
 public:
  virtual ~Listener() = default;
  // Stops accepting; established connections stay. Safe from any thread. Idempotent.
  virtual void stop() = 0;
  // The bound address, e.g. "127.0.0.1:4300" (useful after binding port 0).
  virtual std::string local_address() const = 0;
};

}  // namespace slip::transport
