// slip-nfq-impair: loss and delay for kernel packets (TCP on loopback, say) through an nftables
// queue, where tc netem is unavailable and a proxy would hide the loss from the kernel's TCP.
//
//   slip-nfq-impair --queue 7421 --loss 10 --delay 5ms --seed 1
//   nft add rule inet t out oifname lo tcp dport 7420 queue num 7421   (scripts/impair-tcp.sh queue)
//
// Each packet the kernel queues to queue number N is lost with probability --loss (verdict DROP
// at once) or held for --delay plus a uniform [0, --jitter) and then accepted (verdict ACCEPT,
// given later and by packet id, so many packets wait at once). The decisions come from
// slip-impair's model (impair.h) with one random sequence from --seed, so the n-th packet queued
// meets the same fate in every run. Only the kernel's packet metadata is copied to user space
// (NFQNL_COPY_META): no packet bytes are read.
//
// Prints "queue N ready" once bound (add the nftables rule after that: without a program on the
// queue, the kernel drops what the rule queues). On SIGINT or SIGTERM it accepts every packet it
// still holds, prints one line of counters and exits 0.
#include <arpa/inet.h>
#include <linux/netfilter.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <queue>
#include <string>
#include <vector>

extern "C" {
#include <libnetfilter_queue/libnetfilter_queue.h>
}

#include "impair.h"

namespace {

using slip::impair::Clock;
using slip::impair::Duration;
using slip::impair::ImpairOptions;
using slip::impair::Impairer;

struct Held {
  Clock::time_point at;
  std::uint64_t seq;
  std::uint32_t id;  // the kernel's packet id
  bool operator>(const Held& o) const { return at != o.at ? at > o.at : seq > o.seq; }
};

class Queue {
 public:
  Queue(const ImpairOptions& options, std::uint64_t seed) : impairer_(options, seed) {}
  ~Queue() {
    if (qh_) nfq_destroy_queue(qh_);
    if (h_) nfq_close(h_);
  }

  bool open(std::uint16_t num, std::uint32_t max_len, std::string& error) {
    h_ = nfq_open();
    if (!h_) {
      error = std::string("nfq_open: ") + std::strerror(errno) + " (needs CAP_NET_ADMIN and nfnetlink_queue)";
      return false;
    }
    qh_ = nfq_create_queue(h_, num, &Queue::callback, this);
    if (!qh_) {
      error = "cannot bind queue " + std::to_string(num) + ": " + std::strerror(errno) +
              " (another program on it, or no CAP_NET_ADMIN)";
      return false;
    }
    if (nfq_set_mode(qh_, NFQNL_COPY_META, 0) < 0) {
      error = std::string("nfq_set_mode: ") + std::strerror(errno);
      return false;
    }
    if (nfq_set_queue_maxlen(qh_, max_len) < 0) {
      error = std::string("nfq_set_queue_maxlen: ") + std::strerror(errno);
      return false;
    }
    fd_ = nfq_fd(h_);
    // A full socket buffer loses verdict requests (the kernel drops the packets): make it large,
    // and let recv() go on after an overrun instead of failing with ENOBUFS.
    const int size = 8 << 20;
    if (setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) != 0) {
      setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    }
    const int one = 1;
    setsockopt(fd_, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof one);
    return true;
  }

  int run(int signal_fd) {
    std::vector<char> buf(1 << 16);
    for (;;) {
      pollfd fds[2] = {{signal_fd, POLLIN, 0}, {fd_, POLLIN, 0}};
      timespec ts{};
      timespec* timeout = nullptr;
      if (!held_.empty()) {
        const auto wait = std::max(Duration::zero(), held_.top().at - Clock::now());
        const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(wait).count();
        ts.tv_sec = static_cast<time_t>(ns / 1000000000);
        ts.tv_nsec = static_cast<long>(ns % 1000000000);
        timeout = &ts;
      }
      const int n = ppoll(fds, 2, timeout, nullptr);
      if (n < 0 && errno != EINTR) {
        std::perror("slip-nfq-impair: poll");
        return 1;
      }
      if (n > 0 && (fds[0].revents & POLLIN)) {
        // Stopping: whatever is held goes through now rather than being dropped with the queue.
        while (!held_.empty()) {
          verdict(held_.top().id, NF_ACCEPT);
          held_.pop();
        }
        return 0;
      }
      if (n > 0 && (fds[1].revents & POLLIN)) {
        for (;;) {
          const ssize_t r = recv(fd_, buf.data(), buf.size(), MSG_DONTWAIT);
          if (r < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS) {
              std::perror("slip-nfq-impair: recv");
              return 1;
            }
            break;
          }
          nfq_handle_packet(h_, buf.data(), static_cast<int>(r));
        }
      }
      const auto now = Clock::now();
      while (!held_.empty() && held_.top().at <= now) {
        verdict(held_.top().id, NF_ACCEPT);
        held_.pop();
      }
    }
  }

  void print_counters() const {
    const auto& c = impairer_.counters();
    std::printf("queued %llu accepted %llu lost %llu held %zu verdict_errors %llu\n",
                static_cast<unsigned long long>(c.received), static_cast<unsigned long long>(accepted_),
                static_cast<unsigned long long>(c.lost), held_.size(),
                static_cast<unsigned long long>(verdict_errors_));
    std::fflush(stdout);
  }

 private:
  static int callback(nfq_q_handle*, nfgenmsg*, nfq_data* nfa, void* self) {
    static_cast<Queue*>(self)->on_packet(nfa);
    return 0;
  }

  void on_packet(nfq_data* nfa) {
    const nfqnl_msg_packet_hdr* ph = nfq_get_msg_packet_hdr(nfa);
    if (!ph) return;
    const std::uint32_t id = ntohl(ph->packet_id);
    // The model's size only matters under a rate limit, which this tool does not offer.
    const std::vector<Clock::time_point> times = impairer_.on_datagram(Clock::now(), 0);
    if (times.empty()) {
      verdict(id, NF_DROP);
      return;
    }
    // A packet has one verdict: duplicates are not offered, so there is one time.
    held_.push(Held{times.front(), seq_++, id});
  }

  void verdict(std::uint32_t id, std::uint32_t v) {
    if (nfq_set_verdict(qh_, id, v, 0, nullptr) < 0) {
      ++verdict_errors_;
    } else if (v == NF_ACCEPT) {
      ++accepted_;
    }
  }

  Impairer impairer_;
  nfq_handle* h_ = nullptr;
  nfq_q_handle* qh_ = nullptr;
  int fd_ = -1;
  std::priority_queue<Held, std::vector<Held>, std::greater<>> held_;
  std::uint64_t seq_ = 0;
  std::uint64_t accepted_ = 0;
  std::uint64_t verdict_errors_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Loss and delay for packets an nftables rule queues (docs/udp.md, \"Testing on real sockets\")"};
  unsigned queue_num = 0;
  double loss_pct = 0;
  std::string delay_text = "0ms", jitter_text = "0ms";
  std::uint64_t seed = 1;
  std::uint32_t max_len = 65536;
  app.add_option("--queue", queue_num, "nftables queue number to serve")->required()->check(CLI::Range(0u, 65535u));
  app.add_option("--loss", loss_pct, "Percent of packets dropped")->capture_default_str()->check(CLI::Range(0.0, 100.0));
  app.add_option("--delay", delay_text, "Added to every packet kept (20ms, 500us, 1s)")->capture_default_str();
  app.add_option("--jitter", jitter_text, "Uniform extra delay in [0, jitter)")->capture_default_str();
  app.add_option("--seed", seed, "The random choices")->capture_default_str();
  app.add_option("--max-queue", max_len, "Packets the kernel holds for this queue at most")
      ->capture_default_str()
      ->check(CLI::Range(1u, 1u << 20));
  CLI11_PARSE(app, argc, argv);

  ImpairOptions o;
  o.loss = loss_pct / 100.0;
  if (!slip::impair::parse_duration(delay_text, o.delay) || !slip::impair::parse_duration(jitter_text, o.jitter)) {
    std::fprintf(stderr, "slip-nfq-impair: bad duration (use e.g. 20ms, 500us, 1s)\n");
    return 2;
  }

  const int sfd = slip::impair::stop_signal_fd();
  if (sfd < 0) {
    std::perror("slip-nfq-impair: signalfd");
    return 1;
  }
  Queue q(o, seed);
  std::string error;
  if (!q.open(static_cast<std::uint16_t>(queue_num), max_len, error)) {
    std::fprintf(stderr, "slip-nfq-impair: %s\n", error.c_str());
    return 1;
  }
  std::printf("queue %u ready\n", queue_num);
  std::fflush(stdout);
  const int rc = q.run(sfd);
  q.print_counters();
  return rc;
}
