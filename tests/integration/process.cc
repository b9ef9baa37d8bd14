#include "process.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "wire/encoder.h"
#include "wire/handshake.h"

namespace slip::test {

namespace {

constexpr auto kLiveness = std::chrono::seconds(10);

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

pid_t spawn(const std::vector<std::string>& argv, const std::string& output_path) {
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open(output_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  return pid;
}

}  // namespace

SlipdProcess::SlipdProcess(std::vector<std::string> extra_args) {
  char tmpl[] = "/tmp/slipd-test-XXXXXX";
  dir_ = mkdtemp(tmpl);
  std::vector<std::string> argv = {SLIPD_PATH, "--listen", "127.0.0.1:0", "--ready-file", dir_ + "/ready",
                                   "--log-level", "debug"};
  // Two loops unless the test picks its own number.
  if (std::find(extra_args.begin(), extra_args.end(), "--threads") == extra_args.end()) {
    argv.insert(argv.end(), {"--threads", "2"});
  }
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  pid_ = spawn(argv, dir_ + "/log");
  const auto deadline = std::chrono::steady_clock::now() + kLiveness;
  while (std::chrono::steady_clock::now() < deadline) {
    std::string ready = read_file(dir_ + "/ready");
    auto pos = ready.find("native");
    auto end = ready.find('\n', pos);
    if (pos != std::string::npos && end != std::string::npos) {
      auto space = ready.find(' ', pos);
      address_ = ready.substr(space + 1, end - space - 1);
      // The file is written whole (renamed into place): every line is there.
      if (auto n = ready.find("nats "); n != std::string::npos) {
        nats_address_ = ready.substr(n + 5, ready.find('\n', n) - n - 5);
      }
      ready_ = ready;
      return;
    }
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

SlipdProcess::~SlipdProcess() {
  if (pid_ > 0) stop(SIGTERM);
  std::string cmd = "rm -rf " + dir_;
  (void)std::system(cmd.c_str());
}

std::string SlipdProcess::listener(const std::string& protocol) const {
  std::istringstream in(ready_);
  std::string proto, addr;
  while (in >> proto >> addr) {
    if (proto == protocol) return addr;
  }
  return {};
}

std::uint16_t SlipdProcess::port() const {
  return static_cast<std::uint16_t>(std::stoi(address_.substr(address_.rfind(':') + 1)));
}

std::uint16_t SlipdProcess::nats_port() const {
  return static_cast<std::uint16_t>(std::stoi(nats_address_.substr(nats_address_.rfind(':') + 1)));
}

int SlipdProcess::stop(int sig) {
  if (pid_ <= 0) return -1;
  kill(pid_, sig);
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + kLiveness;
  while (std::chrono::steady_clock::now() < deadline) {
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return status;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill(pid_, SIGKILL);
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return status;
}

std::string SlipdProcess::log() const { return read_file(dir_ + "/log"); }

int run_program(const std::vector<std::string>& argv, std::string* output) {
  char tmpl[] = "/tmp/slip-run-XXXXXX";
  int fd = mkstemp(tmpl);
  close(fd);
  pid_t pid = spawn(argv, tmpl);
  int status = 0;
  waitpid(pid, &status, 0);
  if (output) *output = read_file(tmpl);
  unlink(tmpl);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

RawClient::RawClient(std::uint16_t port) {
  fd_ = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd_);
    fd_ = -1;
    return;
  }
  int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

RawClient::~RawClient() {
  if (fd_ >= 0) close(fd_);
}

void RawClient::send_bytes(ByteView bytes) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n <= 0) return;
    done += static_cast<std::size_t>(n);
  }
}

void RawClient::send_chain(const Chain& c) {
  for (const Slice& s : c) send_bytes(s.view());
}

Result<wire::Frame> RawClient::read_frame() {
  const auto deadline = std::chrono::steady_clock::now() + kLiveness;
  while (true) {
    wire::Frame f;
    SLIP_ASSIGN_OR_RETURN(bool got, decoder_.next(f));
    if (got) return f;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return timed_out("no frame within the liveness timeout");
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    Buffer b = Buffer::allocate(64 * 1024);
    ssize_t n = ::recv(fd_, b.tail(), b.tailroom(), 0);
    if (n <= 0) return disconnected("connection closed");
    b.commit(static_cast<std::size_t>(n));
    decoder_.feed(b.slice());
  }
}

bool RawClient::wait_closed() {
  const auto deadline = std::chrono::steady_clock::now() + kLiveness;
  char buf[4096];
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
    if (n <= 0) return true;
  }
  return false;
}

Status RawClient::handshake() {
  wire::ClientHandshakeConfig cfg;
  cfg.client_name = "raw-test";
  wire::ClientHandshake hs(cfg);
  send_chain(hs.take_output());
  const auto deadline = std::chrono::steady_clock::now() + kLiveness;
  char buf[4096];
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
    if (n <= 0) return disconnected("closed during handshake");
    SLIP_ASSIGN_OR_RETURN(bool done, hs.feed(Slice::copy_of(ByteView(buf, static_cast<std::size_t>(n)))));
    if (done) {
      decoder_ = std::move(hs.decoder());
      return Status();
    }
  }
  return timed_out("handshake");
}

}  // namespace slip::test
