// The UDP socket under the reliable UDP transport: one non-blocking socket, datagrams received
// in batches with recvmmsg() and sent in batches with sendmmsg(), and runs of same-sized
// datagrams to one peer handed to the kernel as one UDP GSO super-datagram (UDP_SEGMENT) where
// the kernel supports it (Linux 4.18+), with a fallback to one datagram per message when it
// does not, or when the device refuses segmentation offload (EIO). On receive, UDP GRO
// (UDP_GRO, Linux 5.0+) lets the kernel hand over a run of same-sized datagrams from one sender
// as one buffer, which the receive batch cuts back into datagrams; without it, one per message.
//
// Sans-loop: nothing here waits. The transport (udp.cc) waits for readiness on io::EventLoop and
// calls receive()/send() until they would block.
//
// Thread safety: none; a socket and its batches belong to one loop.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "slipstream/buffer.h"
#include "slipstream/status.h"
#include "transport/address.h"
#include "transport/udp/cookie.h"

namespace slip::transport::udp {

// A peer's socket address as the kernel gives and takes it.
struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t len = 0;

  const sockaddr* sa() const { return reinterpret_cast<const sockaddr*>(&storage); }
  int family() const { return storage.ss_family; }
  // "127.0.0.1:4300", "[::1]:4300".
  std::string to_string() const;
  // The canonical form (IPv4 mapped into IPv6) that cookies bind to.
  PeerAddress peer() const;
  bool operator==(const SocketAddress& o) const;

  // A numeric host ("127.0.0.1", "::1") and port; kInvalidArgument otherwise.
  static Result<SocketAddress> from_host_port(const HostPort& hp);
};

struct SocketOptions {
  int send_buffer = 0;     // SO_SNDBUF bytes; 0 keeps the kernel's default
  int receive_buffer = 0;  // SO_RCVBUF bytes; 0 keeps the kernel's default
  bool gso = true;         // coalesce runs to one peer with UDP_SEGMENT when the kernel can
  // Receive coalesced runs (UDP_GRO) when the kernel can: each recvmmsg() slot then takes up to
  // 64 KiB (batch x 64 KiB of address space per socket, touched only as far as runs fill it).
  bool gro = true;
  std::size_t batch = 32;  // datagrams per recvmmsg() and sendmmsg()
  // Largest datagram received; a longer one is truncated by the kernel and dropped here.
  std::size_t max_datagram = 2048;
  // Sets the don't-fragment bit on every datagram and never fragments locally, whatever the
  // kernel believes the path MTU to be (IP_MTU_DISCOVER / IPV6_MTU_DISCOVER = *_PMTUDISC_PROBE):
  // path MTU probing needs a too-big datagram dropped, not fragmented. A datagram larger than
  // the interface's MTU is refused by the kernel (counted in send_errors).
  bool dont_fragment = false;
};

// Received datagrams: `batch` messages of `max_datagram` bytes (64 KiB each on a socket with
// GRO), filled by UdpSocket::receive(), which cuts coalesced messages into their datagrams.
class ReceiveBatch {
 public:
  explicit ReceiveBatch(const SocketOptions& options);
  ~ReceiveBatch();
  ReceiveBatch(const ReceiveBatch&) = delete;
  ReceiveBatch& operator=(const ReceiveBatch&) = delete;

  // Datagrams of the last receive().
  std::size_t size() const { return datagrams_.size(); }
  // Messages one receive() takes at most, and how many the last one took: fewer than capacity()
  // means the socket was drained.
  std::size_t capacity() const { return slots_; }
  std::size_t messages() const { return messages_; }
  // Datagram i of the last receive(); the view is valid until the next receive(). Mutable: the
  // transport opens packets in place.
  std::span<std::uint8_t> data(std::size_t i) {
    return {buf_.get() + datagrams_[i].offset, datagrams_[i].len};
  }
  const SocketAddress& from(std::size_t i) const { return from_[datagrams_[i].message]; }

 private:
  friend class UdpSocket;
  struct Datagram {
    std::size_t offset;   // in buf_
    std::size_t len;
    std::size_t message;  // index into from_
  };
  // Gives every slot at least `size` bytes (a socket with GRO needs 64 KiB).
  void grow_slots(std::size_t size);

  std::size_t slots_;
  std::size_t slot_size_;
  std::size_t max_datagram_;
  // Not value-initialised: pages a receive never reaches are never touched.
  std::unique_ptr<std::uint8_t[]> buf_;
  std::vector<SocketAddress> from_;
  std::vector<Datagram> datagrams_;
  std::vector<mmsghdr> msgs_;
  std::vector<struct iovec> iov_;
  std::vector<std::uint8_t> control_;
  std::size_t messages_ = 0;
};

// Datagrams waiting to be sent: built in place with slot() + commit(), sent by UdpSocket::send(),
// which removes what the kernel took.
class SendBatch {
 public:
  explicit SendBatch(const SocketOptions& options, std::size_t max_datagram = 1500);
  ~SendBatch();
  SendBatch(const SendBatch&) = delete;
  SendBatch& operator=(const SendBatch&) = delete;

  bool full() const { return count_ == slots_; }
  bool empty() const { return count_ == 0; }
  std::size_t size() const { return count_; }
  std::size_t max_datagram() const { return slot_size_; }
  // Where the next datagram goes (max_datagram() bytes). Precondition: !full().
  std::span<std::uint8_t> slot() { return {buf_.data() + count_ * slot_size_, slot_size_}; }
  // The next datagram is `len` bytes of slot(), for `to`.
  void commit(std::size_t len, const SocketAddress& to);
  // Copies a finished datagram in. Precondition: !full() and size <= max_datagram().
  void push(ByteView datagram, const SocketAddress& to);
  ByteView datagram(std::size_t i) const { return {buf_.data() + i * slot_size_, lens_[i]}; }
  const SocketAddress& to(std::size_t i) const { return to_[i]; }
  // Drops the first n datagrams (sent).
  void drop_front(std::size_t n);

 private:
  friend class UdpSocket;
  std::size_t slots_;
  std::size_t slot_size_;
  std::vector<std::uint8_t> buf_;
  std::vector<SocketAddress> to_;
  std::vector<std::size_t> lens_;
  std::size_t count_ = 0;
  // sendmmsg scratch
  std::vector<mmsghdr> msgs_;
  std::vector<struct iovec> iov_;
  std::vector<std::uint8_t> control_;
  std::vector<std::size_t> runs_;  // datagrams per message
};

struct SocketCounters {
  std::uint64_t receive_calls = 0;    // recvmmsg() calls that returned datagrams
  std::uint64_t datagrams_received = 0;
  std::uint64_t truncated = 0;        // longer than max_datagram: dropped
  std::uint64_t gro_messages = 0;     // messages that carried more than one datagram (GRO)
  std::uint64_t send_calls = 0;       // sendmmsg() calls
  std::uint64_t messages_sent = 0;    // messages the kernel took (a GSO run is one)
  std::uint64_t datagrams_sent = 0;
  std::uint64_t gso_runs = 0;         // messages that carried more than one datagram
  std::uint64_t send_errors = 0;      // datagrams dropped for an error other than EAGAIN
  std::uint64_t would_block = 0;      // send() stopped at a full socket buffer
};

// The MTU the kernel's routing table gives for the path to `peer` (IP_MTU / IPV6_MTU of a UDP
// socket connected to it, then closed; nothing is sent): the outgoing interface's MTU, or a
// smaller one the kernel learned for that destination. 65536 for loopback, 1500 for most
// Ethernet. kNotFound when there is no route or the kernel does not say.
Result<std::size_t> route_mtu(const SocketAddress& peer);

class UdpSocket {
 public:
  UdpSocket() = default;
  ~UdpSocket();
  UdpSocket(UdpSocket&& o) noexcept;
  UdpSocket& operator=(UdpSocket&& o) noexcept;
  UdpSocket(const UdpSocket&) = delete;
  UdpSocket& operator=(const UdpSocket&) = delete;

  // A non-blocking socket bound to `address` (port 0: any free port). kInvalidArgument for a
  // host that is not a numeric address, kDisconnected when it cannot be bound.
  static Result<UdpSocket> bind(const HostPort& address, const SocketOptions& options);

  int fd() const { return fd_; }
  bool is_open() const { return fd_ >= 0; }
  // "127.0.0.1:4300"
  std::string local_address() const;
  // Whether sends coalesce with UDP_SEGMENT (the kernel has it and no send refused it).
  bool gso_enabled() const { return gso_; }
  // Whether the kernel may hand over coalesced runs (it accepted UDP_GRO).
  bool gro_enabled() const { return gro_; }

  // Fills `batch` with what is waiting (up to its capacity); 0 when nothing is (would block).
  // Errors other than EAGAIN/EINTR (e.g. ICMP errors reported on the socket) are returned once
  // and the socket stays usable.
  Result<std::size_t> receive(ReceiveBatch& batch);
  // Sends the batch's datagrams in order and drops what the kernel took. Returns true when the
  // batch is empty, false when the socket buffer is full (wait for writability, call again).
  // A datagram the kernel refuses for another reason (unreachable, too big) is dropped and
  // counted: UDP may lose any datagram, and the reliability layer above recovers.
  bool send(SendBatch& batch);

  const SocketCounters& counters() const { return counters_; }
  // Turns coalescing off (tests of the fallback; done by itself when the kernel refuses it).
  void disable_gso() { gso_ = false; }

 private:
  void close();

  int fd_ = -1;
  bool gso_ = false;
  bool gro_ = false;
  SocketCounters counters_;
};

}  // namespace slip::transport::udp
