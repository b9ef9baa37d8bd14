// The plain-socket baseline for the session throughput benchmark: what an application gets from
// the kernel with no framing, no loop and no batching of its own. Blocking sockets, 127.0.0.1.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace slip::bench {

// A listening socket on 127.0.0.1 with a kernel-chosen port; -1 (and `error`) on failure.
int listen_loopback(std::uint16_t* port, std::string* error);

// Connects to 127.0.0.1:port with TCP_NODELAY; -1 (and `error`) on failure.
int connect_loopback(std::uint16_t port, std::string* error);

struct ReceiveTimes {
  std::uint64_t bytes = 0;
  std::int64_t first_ns = 0;  // when the first byte arrived (monotonic)
  std::int64_t last_ns = 0;   // when the last expected byte arrived
};

// Accepts one connection and reads it in 1 MiB buffers until `total` bytes arrived or the peer
// closed. Closes the accepted socket.
ReceiveTimes receive_bytes(int listen_fd, std::uint64_t total, std::string* error);

// Sends `count` messages of `size` bytes, `per_write` messages per write() (1: one write() per
// message, the way a naive sender does it). False (and `error`) on a failed write.
bool send_messages(int fd, std::size_t size, std::uint64_t count, std::size_t per_write, std::string* error);

// Accepts one connection and echoes every byte back until the peer closes. busy: non-blocking
// reads in a loop that never sleeps (a busy-polling server); otherwise blocking reads.
bool echo_bytes(int listen_fd, bool busy, std::string* error);

// warmup + count round trips of `size` bytes on a connected socket (write, then read the echo);
// appends the round-trip times of the last `count`, in nanoseconds, to `samples`. busy: poll
// with non-blocking reads instead of sleeping in read().
bool ping_pong(int fd, std::size_t size, std::uint64_t warmup, std::uint64_t count, bool busy,
               std::vector<std::int64_t>* samples, std::string* error);

}  // namespace slip::bench
