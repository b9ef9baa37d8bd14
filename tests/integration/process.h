// Test helpers: a child process started by path and stopped by PID, and a blocking raw socket
// client with generous liveness timeouts (never speed thresholds).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "slipstream/buffer.h"
#include "slipstream/status.h"
#include "wire/decoder.h"
#include "wire/frames.h"

namespace slip::test {

// A running slipd. The constructor starts it with --listen 127.0.0.1:0 (and --threads 2 unless
// extra_args has --threads) and waits for its
// ready file; the destructor sends SIGTERM and reaps it (SIGKILL if it does not exit).
class SlipdProcess {
 public:
  explicit SlipdProcess(std::vector<std::string> extra_args = {});
  ~SlipdProcess();
  SlipdProcess(const SlipdProcess&) = delete;
  SlipdProcess& operator=(const SlipdProcess&) = delete;

  bool ok() const { return pid_ > 0 && !address_.empty(); }
  pid_t pid() const { return pid_; }
  const std::string& address() const { return address_; }  // native "127.0.0.1:PORT"
  // The NATS port's address, when started with --nats-listen; else empty.
  const std::string& nats_address() const { return nats_address_; }
  std::uint16_t nats_port() const;
  // The address of another listener from the ready file ("http", ...); empty when absent.
  std::string listener(const std::string& protocol) const;
  std::uint16_t port() const;
  // Sends `sig` and waits for the exit; returns the exit status as waitpid() reports it.
  int stop(int sig);
  std::string log() const;  // what slipd wrote to stderr

 private:
  pid_t pid_ = -1;
  std::string dir_;
  std::string address_;
  std::string nats_address_;
  std::string ready_;  // the ready file's lines
};

// Runs a program to completion; returns its exit code and captures stdout+stderr.
int run_program(const std::vector<std::string>& argv, std::string* output);

// A blocking TCP client for raw protocol tests.
class RawClient {
 public:
  explicit RawClient(std::uint16_t port);
  ~RawClient();
  bool connected() const { return fd_ >= 0; }

  void send_bytes(ByteView bytes);
  void send_chain(const Chain& c);
  // Reads until the decoder yields a frame, the peer closes, or 10 s pass. Returns the frame or
  // the reason there is none (kDisconnected on EOF, kTimeout, or a decoding error).
  Result<wire::Frame> read_frame();
  // True when the peer closed the connection (reads EOF) within 10 s.
  bool wait_closed();
  // Preface + HELLO, then expects preface + WELCOME.
  Status handshake();

  wire::FrameDecoder& decoder() { return decoder_; }

 private:
  int fd_ = -1;
  wire::FrameDecoder decoder_;
};

}  // namespace slip::test
