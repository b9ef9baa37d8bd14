// Servers the broker and stream benchmarks compare (slipd, nats-server) as child processes on
// 127.0.0.1: started with posix_spawnp, output to a log file, stopped by PID.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace slip::bench {

class ServerProcess {
 public:
  // Starts argv[0] (looked up in PATH) with stdout and stderr going to `log_path`. Throws
  // std::runtime_error when it cannot be started.
  ServerProcess(const std::vector<std::string>& argv, const std::string& log_path);
  ~ServerProcess() { stop(); }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  pid_t pid() const { return pid_; }
  // False once it exited (reaped here).
  bool running();
  // SIGTERM, then SIGKILL after 5 s; reaps it.
  void stop();

 private:
  pid_t pid_ = -1;
};

// A TCP port on 127.0.0.1 that nothing listens on right now.
int free_port();
// Something accepts connections on 127.0.0.1:port.
bool can_connect(int port);

}  // namespace slip::bench
