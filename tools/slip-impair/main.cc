// slip-impair: a UDP forwarding proxy that loses, delays, jitters, reorders, duplicates and
// rate-limits datagrams, for testing on real loopback sockets where tc netem is unavailable.
//
//   slip-impair --listen 127.0.0.1:9000 --target 127.0.0.1:9001 --loss 10 --delay 20ms --seed 1
//
// Clients send to LISTEN; each client gets its own socket towards TARGET, so replies find their
// way back. Both directions are impaired alike unless --direction says otherwise; each has its
// own random sequence derived from --seed, so a run replays exactly for the same datagrams in
// the same order. Prints one line of counters per direction on SIGINT or SIGTERM (after reading
// every datagram already queued on its sockets).
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <queue>
#include <string>
#include <vector>

#include "impair.h"

namespace {

using slip::impair::Clock;
using slip::impair::Duration;
using slip::impair::ImpairOptions;
using slip::impair::Impairer;

struct Address {
  sockaddr_storage ss{};
  socklen_t len = 0;
  std::string key() const { return std::string(reinterpret_cast<const char*>(&ss), len); }
};

bool resolve(const std::string& text, Address& out, std::string& error) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos) {
    error = "expected HOST:PORT, got '" + text + "'";
    return false;
  }
  std::string host = text.substr(0, colon);
  const std::string port = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host.empty()) host = "0.0.0.0";
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* res = nullptr;
  const int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0 || res == nullptr) {
    error = "cannot resolve '" + text + "': " + gai_strerror(rc);
    return false;
  }
  std::memcpy(&out.ss, res->ai_addr, res->ai_addrlen);
  out.len = static_cast<socklen_t>(res->ai_addrlen);
  freeaddrinfo(res);
  return true;
}

std::string to_string(const Address& a) {
  char host[INET6_ADDRSTRLEN] = "?";
  std::uint16_t port = 0;
  if (a.ss.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&a.ss);
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    port = ntohs(in->sin_port);
    return std::string(host) + ":" + std::to_string(port);
  }
  const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&a.ss);
  inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
  port = ntohs(in6->sin6_port);
  return "[" + std::string(host) + "]:" + std::to_string(port);
}

void big_buffers(int fd) {
  const int size = 8 << 20;
  // SO_RCVBUFFORCE passes the system limit when we may (CAP_NET_ADMIN); else the capped request.
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) != 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  }
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) != 0) {
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  }
}

struct Pending {
  Clock::time_point at;
  std::uint64_t seq;
  int fd;
  bool to_client;      // sendto(client) on the listening socket; else send() on the upstream socket
  Address client;
  std::string bytes;
  bool operator>(const Pending& o) const { return at != o.at ? at > o.at : seq > o.seq; }
};

class Proxy {
 public:
  Proxy(int listen_fd, Address target, const ImpairOptions& fwd, const ImpairOptions& rev, std::uint64_t seed,
        std::size_t max_clients)
      : listen_fd_(listen_fd),
        target_(target),
        forward_(fwd, seed * 2 + 1),
        reverse_(rev, seed * 2 + 2),
        max_clients_(max_clients) {}

  int run(int signal_fd) {
    std::vector<pollfd> fds;
    std::vector<char> buf(65536);
    for (;;) {
      fds.clear();
      fds.push_back({signal_fd, POLLIN, 0});
      fds.push_back({listen_fd_, POLLIN, 0});
      for (const auto& [key, c] : clients_) fds.push_back({c.fd, POLLIN, 0});
      int timeout_ms = -1;
      if (!pending_.empty()) {
        const auto wait = pending_.top().at - Clock::now();
        timeout_ms = wait <= Duration::zero()
                         ? 0
                         : static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(wait).count());
      }
      const int n = poll(fds.data(), fds.size(), timeout_ms);
      if (n < 0 && errno != EINTR) {
        std::perror("slip-impair: poll");
        return 1;
      }
      if (n > 0 && (fds[0].revents & POLLIN)) {
        drain(buf);
        return 0;
      }
      if (n > 0) read_all(buf);
      flush_due(Clock::now());
    }
  }

  void print_counters() const {
    std::printf("%s\n", slip::impair::format_counters("forward", forward_.counters()).c_str());
    std::printf("%s\n", slip::impair::format_counters("reverse", reverse_.counters()).c_str());
    std::printf("pending %zu clients %zu refused_clients %llu\n", pending_.size(), clients_.size(),
                static_cast<unsigned long long>(refused_clients_));
    std::fflush(stdout);
  }

 private:
  struct Client {
    int fd = -1;
    Address addr;
  };

  // Reads what is queued on every socket now, without waiting (also the final drain on exit).
  void read_all(std::vector<char>& buf) {
    for (;;) {
      Address from;
      from.len = sizeof from.ss;
      const ssize_t r = recvfrom(listen_fd_, buf.data(), buf.size(), MSG_DONTWAIT,
                                 reinterpret_cast<sockaddr*>(&from.ss), &from.len);
      if (r < 0) break;
      Client* c = client_for(from);
      if (c == nullptr) continue;
      schedule(forward_, c->fd, false, from, std::string(buf.data(), static_cast<std::size_t>(r)));
    }
    for (auto& [key, c] : clients_) {
      for (;;) {
        const ssize_t r = recv(c.fd, buf.data(), buf.size(), MSG_DONTWAIT);
        if (r < 0) break;
        schedule(reverse_, listen_fd_, true, c.addr, std::string(buf.data(), static_cast<std::size_t>(r)));
      }
    }
  }

  void drain(std::vector<char>& buf) {
    read_all(buf);
    flush_due(Clock::now());
  }

  Client* client_for(const Address& from) {
    auto it = clients_.find(from.key());
    if (it != clients_.end()) return &it->second;
    if (clients_.size() >= max_clients_) {
      ++refused_clients_;
      return nullptr;
    }
    const int fd = socket(target_.ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, reinterpret_cast<const sockaddr*>(&target_.ss), target_.len) != 0) {
      std::perror("slip-impair: upstream socket");
      if (fd >= 0) close(fd);
      return nullptr;
    }
    big_buffers(fd);
    Client c;
    c.fd = fd;
    c.addr = from;
    return &clients_.emplace(from.key(), c).first->second;
  }

  void schedule(Impairer& imp, int fd, bool to_client, const Address& client, std::string bytes) {
    const auto now = Clock::now();
    for (Clock::time_point at : imp.on_datagram(now, bytes.size())) {
      pending_.push(Pending{at, seq_++, fd, to_client, client, bytes});
    }
  }

  void flush_due(Clock::time_point now) {
    while (!pending_.empty() && pending_.top().at <= now) {
      const Pending& p = pending_.top();
      Impairer& imp = p.to_client ? reverse_ : forward_;
      ssize_t r;
      if (p.to_client) {
        r = sendto(p.fd, p.bytes.data(), p.bytes.size(), 0, reinterpret_cast<const sockaddr*>(&p.client.ss),
                   p.client.len);
      } else {
        r = send(p.fd, p.bytes.data(), p.bytes.size(), 0);
      }
      if (r >= 0) imp.count_sent(p.bytes.size());
      pending_.pop();
    }
  }

  int listen_fd_;
  Address target_;
  Impairer forward_;
  Impairer reverse_;
  std::size_t max_clients_;
  std::map<std::string, Client> clients_;
  std::priority_queue<Pending, std::vector<Pending>, std::greater<>> pending_;
  std::uint64_t seq_ = 0;
  std::uint64_t refused_clients_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "slip-impair: a UDP proxy that impairs the datagrams it forwards (loss, delay, jitter, reordering, "
      "duplication, a bandwidth limit), seeded so a run replays. Counters are printed on SIGINT/SIGTERM.\n"
      "For TCP through the same loss, see scripts/impair-tcp.sh (nftables; needs CAP_NET_ADMIN)."};
  std::string listen_text, target_text, delay_text = "0ms", jitter_text = "0ms", reorder_delay_text = "10ms";
  std::string rate_text = "0", queue_text = "256k", direction = "both";
  double loss = 0, duplicate = 0, reorder = 0;
  std::uint64_t seed = 1;
  std::size_t max_clients = 1024;
  app.add_option("--listen", listen_text, "HOST:PORT to receive on (port 0: any; the address is printed)")->required();
  app.add_option("--target", target_text, "HOST:PORT to forward to")->required();
  app.add_option("--loss", loss, "percent of datagrams lost")->check(CLI::Range(0.0, 100.0));
  app.add_option("--delay", delay_text, "one-way delay added to every datagram (e.g. 20ms, 500us)");
  app.add_option("--jitter", jitter_text, "uniform extra delay in [0, JITTER)");
  app.add_option("--reorder", reorder, "percent of datagrams held back by --reorder-delay")
      ->check(CLI::Range(0.0, 100.0));
  app.add_option("--reorder-delay", reorder_delay_text, "how long a reordered datagram is held back");
  app.add_option("--duplicate", duplicate, "percent of datagrams sent twice")->check(CLI::Range(0.0, 100.0));
  app.add_option("--rate", rate_text, "bandwidth limit per direction (e.g. 10mbit, 800kbit; 0: none)");
  app.add_option("--queue", queue_text, "bytes queued behind the bandwidth limit before tail drop (e.g. 64k)");
  app.add_option("--seed", seed, "seed of the random choices");
  app.add_option("--direction", direction, "which direction to impair: both, forward (to TARGET), reverse")
      ->check(CLI::IsMember({"both", "forward", "reverse"}));
  app.add_option("--max-clients", max_clients, "distinct client addresses served (each has its own upstream socket)");
  CLI11_PARSE(app, argc, argv);

  ImpairOptions o;
  o.loss = loss / 100;
  o.duplicate = duplicate / 100;
  o.reorder = reorder / 100;
  if (!slip::impair::parse_duration(delay_text, o.delay) || !slip::impair::parse_duration(jitter_text, o.jitter) ||
      !slip::impair::parse_duration(reorder_delay_text, o.reorder_delay)) {
    std::fprintf(stderr, "slip-impair: bad duration (use e.g. 20ms, 500us, 1s)\n");
    return 2;
  }
  if (!slip::impair::parse_rate(rate_text, o.rate_bps)) {
    std::fprintf(stderr, "slip-impair: bad --rate '%s' (use e.g. 10mbit, 800kbit, 1gbit)\n", rate_text.c_str());
    return 2;
  }
  if (!slip::impair::parse_bytes(queue_text, o.queue_bytes)) {
    std::fprintf(stderr, "slip-impair: bad --queue '%s' (use e.g. 64k, 1m)\n", queue_text.c_str());
    return 2;
  }
  const ImpairOptions none;
  const ImpairOptions& fwd = direction == "reverse" ? none : o;
  const ImpairOptions& rev = direction == "forward" ? none : o;

  Address listen_addr, target;
  std::string error;
  if (!resolve(listen_text, listen_addr, error) || !resolve(target_text, target, error)) {
    std::fprintf(stderr, "slip-impair: %s\n", error.c_str());
    return 2;
  }
  const int fd = socket(listen_addr.ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || bind(fd, reinterpret_cast<const sockaddr*>(&listen_addr.ss), listen_addr.len) != 0) {
    std::fprintf(stderr, "slip-impair: cannot listen on %s: %s\n", listen_text.c_str(), std::strerror(errno));
    return 1;
  }
  big_buffers(fd);
  Address bound;
  bound.len = sizeof bound.ss;
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound.ss), &bound.len);

  const int sfd = slip::impair::stop_signal_fd();
  if (sfd < 0) {
    std::perror("slip-impair: signalfd");
    return 1;
  }
  std::printf("listening on %s, forwarding to %s\n", to_string(bound).c_str(), to_string(target).c_str());
  std::fflush(stdout);

  Proxy proxy(fd, target, fwd, rev, seed, max_clients);
  const int rc = proxy.run(sfd);
  proxy.print_counters();
  return rc;
}
