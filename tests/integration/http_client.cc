#include "http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>

namespace slip::test {

namespace {

constexpr auto kHttpLiveness = std::chrono::seconds(10);

Result<int> dial(const std::string& address) {
  const auto colon = address.rfind(':');
  if (colon == std::string::npos) return invalid_argument("no port in " + address);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(std::stoi(address.substr(colon + 1))));
  if (inet_pton(AF_INET, address.substr(0, colon).c_str(), &a.sin_addr) != 1) return invalid_argument("bad host in " + address);
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return disconnected("cannot connect to " + address + ": " + std::strerror(errno));
  }
  return fd;
}

bool send_all(int fd, const std::string& s) {
  std::size_t off = 0;
  while (off < s.size()) {
    const ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<std::size_t>(n);
  }
  return true;
}

// Reads until `done(buffer)` says so, EOF, or the deadline. False on timeout.
template <typename Done>
bool read_until(int fd, std::string& buf, Done done) {
  const auto deadline = std::chrono::steady_clock::now() + kHttpLiveness;
  char chunk[16384];
  while (!done(buf)) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) return true;  // EOF or reset: the reply is what we have
    buf.append(chunk, static_cast<std::size_t>(n));
  }
  return true;
}

}  // namespace

std::string HttpReply::header(const std::string& name) const {
  auto lower = [](std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
  };
  const std::string h = lower(head), key = "\r\n" + lower(name) + ":";
  const auto at = h.find(key);
  if (at == std::string::npos) return {};
  const auto start = at + key.size();
  const auto end = head.find("\r\n", start);
  std::string v = head.substr(start, end - start);
  v.erase(0, v.find_first_not_of(' '));
  return v;
}

Result<HttpReply> http_request(const std::string& address, const std::string& method, const std::string& path,
                               const std::string& extra) {
  SLIP_ASSIGN_OR_RETURN(int fd, dial(address));
  const std::string req = method + " " + path + " HTTP/1.1\r\nHost: " + address + "\r\nConnection: close\r\n" + extra + "\r\n";
  if (!send_all(fd, req)) {
    ::close(fd);
    return disconnected("send failed");
  }
  std::string buf;
  const bool finished = read_until(fd, buf, [](const std::string&) { return false; });
  ::close(fd);
  if (!finished) return timed_out("no complete reply to " + method + " " + path);
  const auto end = buf.find("\r\n\r\n");
  if (end == std::string::npos || buf.size() < 12) return corruption("no HTTP header in reply: " + buf);
  HttpReply r;
  r.head = buf.substr(0, end);
  r.body = buf.substr(end + 4);
  r.status = std::stoi(buf.substr(9, 3));
  return r;
}

Result<std::string> first_event(const std::string& address, const std::string& path) {
  SLIP_ASSIGN_OR_RETURN(int fd, dial(address));
  const std::string req = "GET " + path + " HTTP/1.1\r\nHost: " + address + "\r\nAccept: text/event-stream\r\n\r\n";
  if (!send_all(fd, req)) {
    ::close(fd);
    return disconnected("send failed");
  }
  std::string buf;
  auto has_event = [](const std::string& b) {
    const auto at = b.find("\ndata: ");
    return at != std::string::npos && b.find("\n\n", at) != std::string::npos;
  };
  read_until(fd, buf, has_event);
  ::close(fd);
  if (!has_event(buf)) return timed_out("no event on " + path + "; got: " + buf.substr(0, 300));
  if (buf.find("text/event-stream") == std::string::npos) return corruption("not an event stream: " + buf.substr(0, 300));
  const auto at = buf.find("\ndata: ") + 7;
  return buf.substr(at, buf.find('\n', at) - at);
}

}  // namespace slip::test
