#include "plain_tcp_peer.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "core/clock.h"

namespace slip::bench {

namespace {

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

int fail(std::string* error, const char* what, int fd = -1) {
  *error = std::string(what) + ": " + std::strerror(errno);
  if (fd >= 0) ::close(fd);
  return -1;
}

}  // namespace

int listen_loopback(std::uint16_t* port, std::string* error) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(error, "socket");
  sockaddr_in a = loopback(0);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return fail(error, "bind", fd);
  if (::listen(fd, 16) != 0) return fail(error, "listen", fd);
  socklen_t len = sizeof a;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return fail(error, "getsockname", fd);
  *port = ntohs(a.sin_port);
  return fd;
}

int connect_loopback(std::uint16_t port, std::string* error) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(error, "socket");
  sockaddr_in a = loopback(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return fail(error, "connect", fd);
  const int one = 1;
  if (::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) return fail(error, "TCP_NODELAY", fd);
  return fd;
}

ReceiveTimes receive_bytes(int listen_fd, std::uint64_t total, std::string* error) {
  ReceiveTimes t;
  const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
  if (fd < 0) {
    fail(error, "accept");
    return t;
  }
  std::vector<char> buf(1 << 20);
  while (t.bytes < total) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n < 0) fail(error, "read");
      break;
    }
    const std::int64_t now = mono_now_ns();
    if (t.bytes == 0) t.first_ns = now;
    t.bytes += static_cast<std::uint64_t>(n);
    t.last_ns = now;
  }
  ::close(fd);
  return t;
}

bool send_messages(int fd, std::size_t size, std::uint64_t count, std::size_t per_write, std::string* error) {
  std::vector<char> batch(size * per_write, 'm');
  std::uint64_t sent = 0;
  while (sent < count) {
    const std::uint64_t k = std::min<std::uint64_t>(per_write, count - sent);
    const char* p = batch.data();
    std::size_t left = static_cast<std::size_t>(k) * size;
    while (left > 0) {
      const ssize_t n = ::write(fd, p, left);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        fail(error, "write");
        return false;
      }
      p += n;
      left -= static_cast<std::size_t>(n);
    }
    sent += k;
  }
  return true;
}

namespace {

// Reads exactly n bytes (or fewer at EOF); -1 on error.
ssize_t read_full(int fd, char* p, std::size_t n, bool busy) {
  std::size_t got = 0;
  while (got < n) {
    const ssize_t r = ::recv(fd, p + got, n - got, busy ? MSG_DONTWAIT : 0);
    if (r < 0) {
      if (errno == EINTR || (busy && (errno == EAGAIN || errno == EWOULDBLOCK))) continue;
      return -1;
    }
    if (r == 0) break;
    got += static_cast<std::size_t>(r);
  }
  return static_cast<ssize_t>(got);
}

bool write_full(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return false;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

}  // namespace

bool echo_bytes(int listen_fd, bool busy, std::string* error) {
  const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
  if (fd < 0) {
      fail(error, "accept");
      return false;
    }
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  std::vector<char> buf(64 * 1024);
  for (;;) {
    const ssize_t n = ::recv(fd, buf.data(), buf.size(), busy ? MSG_DONTWAIT : 0);
    if (n < 0) {
      if (errno == EINTR || (busy && (errno == EAGAIN || errno == EWOULDBLOCK))) continue;
      {
      fail(error, "recv", fd);
      return false;
    }
    }
    if (n == 0) break;
    if (!write_full(fd, buf.data(), static_cast<std::size_t>(n))) {
      fail(error, "write", fd);
      return false;
    }
  }
  ::close(fd);
  return true;
}

bool ping_pong(int fd, std::size_t size, std::uint64_t warmup, std::uint64_t count, bool busy,
               std::vector<std::int64_t>* samples, std::string* error) {
  std::vector<char> out(size, 'p'), in(size);
  for (std::uint64_t i = 0; i < warmup + count; ++i) {
    const std::int64_t t0 = mono_now_ns();
    if (!write_full(fd, out.data(), size)) {
      fail(error, "write");
      return false;
    }
    const ssize_t got = read_full(fd, in.data(), size, busy);
    if (got != static_cast<ssize_t>(size)) {
      if (got >= 0) errno = ECONNRESET;
      {
      fail(error, "read");
      return false;
    }
    }
    if (i >= warmup) samples->push_back(mono_now_ns() - t0);
  }
  return true;
}

}  // namespace slip::bench
