#include "transport/udp/socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/udp.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#ifndef UDP_GRO
#define UDP_GRO 104
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

namespace slip::transport::udp {

namespace {

// The kernel's limit on segments in one GSO send (UDP_MAX_SEGMENTS) and on a UDP payload.
constexpr std::size_t kMaxGsoSegments = 64;
constexpr std::size_t kMaxGsoBytes = 65000;
// A coalesced (GRO) message is at most one IP packet's worth of UDP payload.
constexpr std::size_t kGroSlotSize = 65536;
constexpr std::size_t kGroControlSize = CMSG_SPACE(sizeof(int));

}  // namespace

// ---- SocketAddress ----

std::string SocketAddress::to_string() const {
  char host[INET6_ADDRSTRLEN] = {0};
  if (family() == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&storage);
    inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
    return HostPort{host, ntohs(a->sin_port)}.to_string();
  }
  if (family() == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&storage);
    inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
    return HostPort{host, ntohs(a->sin6_port)}.to_string();
  }
  return "?";
}

PeerAddress SocketAddress::peer() const {
  Result<PeerAddress> p = PeerAddress::from_sockaddr(sa(), len);
  return p.is_ok() ? *p : PeerAddress{};
}

bool SocketAddress::operator==(const SocketAddress& o) const {
  if (family() != o.family()) return false;
  if (family() == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&storage);
    const auto* b = reinterpret_cast<const sockaddr_in*>(&o.storage);
    return a->sin_port == b->sin_port && a->sin_addr.s_addr == b->sin_addr.s_addr;
  }
  if (family() == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&storage);
    const auto* b = reinterpret_cast<const sockaddr_in6*>(&o.storage);
    return a->sin6_port == b->sin6_port && std::memcmp(&a->sin6_addr, &b->sin6_addr, sizeof(in6_addr)) == 0;
  }
  return false;
}

Result<SocketAddress> SocketAddress::from_host_port(const HostPort& hp) {
  SocketAddress out;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out.storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out.storage);
  std::string host = hp.host;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(hp.port);
    out.len = sizeof(sockaddr_in);
    return out;
  }
  if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(hp.port);
    out.len = sizeof(sockaddr_in6);
    return out;
  }
  return invalid_argument("'" + hp.host + "' is not a numeric IP address");
}

// ---- batches ----

ReceiveBatch::ReceiveBatch(const SocketOptions& options)
    : slots_(std::max<std::size_t>(1, options.batch)),
      slot_size_(std::max<std::size_t>(64, options.max_datagram)),
      max_datagram_(slot_size_),
      buf_(new std::uint8_t[slots_ * slot_size_]),
      from_(slots_),
      msgs_(slots_),
      iov_(slots_),
      control_(slots_ * kGroControlSize) {
  datagrams_.reserve(slots_);
}

void ReceiveBatch::grow_slots(std::size_t size) {
  if (slot_size_ >= size) return;
  buf_.reset(new std::uint8_t[slots_ * size]);
  slot_size_ = size;
}

ReceiveBatch::~ReceiveBatch() = default;

SendBatch::SendBatch(const SocketOptions& options, std::size_t max_datagram)
    : slots_(std::max<std::size_t>(1, options.batch)),
      slot_size_(max_datagram),
      buf_(slots_ * slot_size_),
      to_(slots_),
      lens_(slots_),
      msgs_(slots_),
      iov_(slots_),
      control_(slots_ * CMSG_SPACE(sizeof(std::uint16_t))) {
  runs_.reserve(slots_);
}

SendBatch::~SendBatch() = default;

void SendBatch::commit(std::size_t len, const SocketAddress& to) {
  lens_[count_] = len;
  to_[count_] = to;
  ++count_;
}

void SendBatch::push(ByteView datagram, const SocketAddress& to) {
  std::span<std::uint8_t> s = slot();
  std::memcpy(s.data(), datagram.data(), datagram.size());
  commit(datagram.size(), to);
}

void SendBatch::drop_front(std::size_t n) {
  n = std::min(n, count_);
  if (n == 0) return;
  const std::size_t rest = count_ - n;
  for (std::size_t i = 0; i < rest; ++i) {
    std::memmove(buf_.data() + i * slot_size_, buf_.data() + (n + i) * slot_size_, lens_[n + i]);
    lens_[i] = lens_[n + i];
    to_[i] = to_[n + i];
  }
  count_ = rest;
}

// ---- UdpSocket ----

UdpSocket::~UdpSocket() { close(); }

UdpSocket::UdpSocket(UdpSocket&& o) noexcept : fd_(o.fd_), gso_(o.gso_), gro_(o.gro_), counters_(o.counters_) {
  o.fd_ = -1;
}

UdpSocket& UdpSocket::operator=(UdpSocket&& o) noexcept {
  if (this != &o) {
    close();
    fd_ = o.fd_;
    gso_ = o.gso_;
    gro_ = o.gro_;
    counters_ = o.counters_;
    o.fd_ = -1;
  }
  return *this;
}

void UdpSocket::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Result<std::size_t> route_mtu(const SocketAddress& peer) {
  const int fd = ::socket(peer.family(), SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_UDP);
  if (fd < 0) return not_found(std::string("udp route mtu: socket: ") + std::strerror(errno));
  // Connecting a UDP socket only looks the route up; no packet leaves.
  int mtu = 0;
  socklen_t len = sizeof(mtu);
  const bool ok = ::connect(fd, peer.sa(), peer.len) == 0 &&
                  (peer.family() == AF_INET6 ? ::getsockopt(fd, IPPROTO_IPV6, IPV6_MTU, &mtu, &len)
                                             : ::getsockopt(fd, IPPROTO_IP, IP_MTU, &mtu, &len)) == 0;
  const int err = errno;
  ::close(fd);
  if (!ok) return not_found("udp route mtu to " + peer.to_string() + ": " + std::strerror(err));
  if (mtu <= 0) return not_found("udp route mtu to " + peer.to_string() + ": the kernel gave none");
  return static_cast<std::size_t>(mtu);
}

Result<UdpSocket> UdpSocket::bind(const HostPort& address, const SocketOptions& options) {
  SLIP_ASSIGN_OR_RETURN(SocketAddress local, SocketAddress::from_host_port(address));
  UdpSocket s;
  s.fd_ = ::socket(local.family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP);
  if (s.fd_ < 0) return disconnected(std::string("udp socket: ") + std::strerror(errno));
  if (options.send_buffer > 0) {
    (void)setsockopt(s.fd_, SOL_SOCKET, SO_SNDBUF, &options.send_buffer, sizeof(int));
  }
  if (options.receive_buffer > 0) {
    (void)setsockopt(s.fd_, SOL_SOCKET, SO_RCVBUF, &options.receive_buffer, sizeof(int));
  }
  if (options.dont_fragment) {
    const int probe = IP_PMTUDISC_PROBE;
    if (local.family() == AF_INET6) {
      const int probe6 = IPV6_PMTUDISC_PROBE;
      (void)setsockopt(s.fd_, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &probe6, sizeof(probe6));
    }
    // Also on an IPv6 socket: its IPv4-mapped peers use the IPv4 setting.
    (void)setsockopt(s.fd_, IPPROTO_IP, IP_MTU_DISCOVER, &probe, sizeof(probe));
  }
  if (::bind(s.fd_, local.sa(), local.len) != 0) {
    return disconnected("cannot bind udp " + address.to_string() + ": " + std::strerror(errno));
  }
  if (options.gso) {
    // Probing with a segment size of 0 (off) tells whether the kernel knows the option at all.
    int zero = 0;
    s.gso_ = setsockopt(s.fd_, SOL_UDP, UDP_SEGMENT, &zero, sizeof(zero)) == 0;
  }
  if (options.gro) {
    // Refused by kernels before 5.0: datagrams then arrive one per message, as without it.
    const int one = 1;
    s.gro_ = setsockopt(s.fd_, SOL_UDP, UDP_GRO, &one, sizeof(one)) == 0;
  }
  return s;
}

std::string UdpSocket::local_address() const {
  SocketAddress a;
  a.len = sizeof(a.storage);
  if (getsockname(fd_, reinterpret_cast<sockaddr*>(&a.storage), &a.len) != 0) return "?";
  return a.to_string();
}

Result<std::size_t> UdpSocket::receive(ReceiveBatch& b) {
  b.datagrams_.clear();
  b.messages_ = 0;
  // With GRO a message may hold a whole run: a smaller slot would truncate it (and lose the run).
  if (gro_) b.grow_slots(kGroSlotSize);
  for (std::size_t i = 0; i < b.slots_; ++i) {
    b.iov_[i].iov_base = b.buf_.get() + i * b.slot_size_;
    b.iov_[i].iov_len = b.slot_size_;
    mmsghdr& m = b.msgs_[i];
    std::memset(&m, 0, sizeof(m));
    m.msg_hdr.msg_iov = &b.iov_[i];
    m.msg_hdr.msg_iovlen = 1;
    m.msg_hdr.msg_name = &b.from_[i].storage;
    m.msg_hdr.msg_namelen = sizeof(sockaddr_storage);
    if (gro_) {
      m.msg_hdr.msg_control = b.control_.data() + i * kGroControlSize;
      m.msg_hdr.msg_controllen = kGroControlSize;
    }
  }
  int n;
  do {
    n = ::recvmmsg(fd_, b.msgs_.data(), static_cast<unsigned>(b.slots_), MSG_DONTWAIT, nullptr);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return std::size_t{0};
    return disconnected(std::string("udp receive: ") + std::strerror(errno));
  }
  ++counters_.receive_calls;
  b.messages_ = static_cast<std::size_t>(n);
  for (std::size_t i = 0; i < b.messages_; ++i) {
    mmsghdr& m = b.msgs_[i];
    b.from_[i].len = m.msg_hdr.msg_namelen;
    const std::size_t len = m.msg_len;
    // The size of each coalesced datagram (all but the last, which may be shorter); the whole
    // message when the kernel did not coalesce.
    std::size_t segment = len;
    if (gro_ && !(m.msg_hdr.msg_flags & MSG_CTRUNC)) {
      for (cmsghdr* c = CMSG_FIRSTHDR(&m.msg_hdr); c != nullptr; c = CMSG_NXTHDR(&m.msg_hdr, c)) {
        if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
          int gso_size = 0;
          std::memcpy(&gso_size, CMSG_DATA(c), sizeof(int));
          if (gso_size > 0) segment = std::min(len, static_cast<std::size_t>(gso_size));
        }
      }
    }
    const std::size_t parts = segment == 0 ? 1 : (len + segment - 1) / segment;
    if (m.msg_hdr.msg_flags & MSG_TRUNC) {
      // Longer than the slot: cut off, so dropped (every datagram of it).
      counters_.truncated += parts;
      continue;
    }
    if (parts > 1) ++counters_.gro_messages;
    const std::size_t base = i * b.slot_size_;
    if (len == 0) {
      b.datagrams_.push_back({base, 0, i});
      continue;
    }
    for (std::size_t off = 0; off < len; off += segment) {
      const std::size_t part = std::min(segment, len - off);
      // Longer than the caller accepts: dropped as the kernel would have cut it off.
      if (part > b.max_datagram_) {
        ++counters_.truncated;
        continue;
      }
      b.datagrams_.push_back({base + off, part, i});
    }
  }
  counters_.datagrams_received += b.datagrams_.size();
  return b.datagrams_.size();
}

bool UdpSocket::send(SendBatch& b) {
  while (!b.empty()) {
    // Build messages: with GSO, a run of datagrams to one address, all of one size but the last
    // (which may be shorter), becomes one message the kernel cuts up.
    std::size_t nmsg = 0;
    std::size_t i = 0;
    std::vector<std::size_t>& per_msg = b.runs_;
    per_msg.clear();
    while (i < b.count_) {
      std::size_t run = 1;
      if (gso_) {
        std::size_t bytes = b.lens_[i];
        while (i + run < b.count_ && run < kMaxGsoSegments && b.to_[i + run] == b.to_[i] &&
               b.lens_[i + run - 1] == b.lens_[i] && b.lens_[i + run] <= b.lens_[i] &&
               bytes + b.lens_[i + run] <= kMaxGsoBytes) {
          bytes += b.lens_[i + run];
          ++run;
        }
      }
      mmsghdr& m = b.msgs_[nmsg];
      std::memset(&m, 0, sizeof(m));
      for (std::size_t k = 0; k < run; ++k) {
        b.iov_[i + k].iov_base = b.buf_.data() + (i + k) * b.slot_size_;
        b.iov_[i + k].iov_len = b.lens_[i + k];
      }
      m.msg_hdr.msg_iov = &b.iov_[i];
      m.msg_hdr.msg_iovlen = run;
      m.msg_hdr.msg_name = const_cast<sockaddr*>(b.to_[i].sa());
      m.msg_hdr.msg_namelen = b.to_[i].len;
      if (run > 1) {
        std::uint8_t* ctl = b.control_.data() + nmsg * CMSG_SPACE(sizeof(std::uint16_t));
        std::memset(ctl, 0, CMSG_SPACE(sizeof(std::uint16_t)));
        m.msg_hdr.msg_control = ctl;
        m.msg_hdr.msg_controllen = CMSG_SPACE(sizeof(std::uint16_t));
        cmsghdr* c = CMSG_FIRSTHDR(&m.msg_hdr);
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(std::uint16_t));
        const auto seg = static_cast<std::uint16_t>(b.lens_[i]);
        std::memcpy(CMSG_DATA(c), &seg, sizeof(seg));
      }
      per_msg.push_back(run);
      ++nmsg;
      i += run;
    }
    int n;
    do {
      n = ::sendmmsg(fd_, b.msgs_.data(), static_cast<unsigned>(nmsg), MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    ++counters_.send_calls;
    if (n < 0) {
      const int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) {
        ++counters_.would_block;
        return false;
      }
      if (per_msg[0] > 1 && (err == EIO || err == EINVAL || err == EOPNOTSUPP)) {
        // The device or the kernel refused segmentation: send datagram by datagram from now on.
        gso_ = false;
        continue;
      }
      // The first message failed for good (unreachable, too big): drop its datagrams.
      counters_.send_errors += per_msg[0];
      b.drop_front(per_msg[0]);
      continue;
    }
    std::size_t sent = 0;
    for (int k = 0; k < n; ++k) {
      sent += per_msg[static_cast<std::size_t>(k)];
      if (per_msg[static_cast<std::size_t>(k)] > 1) ++counters_.gso_runs;
    }
    counters_.messages_sent += static_cast<std::uint64_t>(n);
    counters_.datagrams_sent += sent;
    b.drop_front(sent);
  }
  return true;
}

}  // namespace slip::transport::udp
