// Child processes for the end-to-end benchmarks: each side of a connection runs in its own
// forked process (its own loop, its own address space, as in production), and reports back to
// the parent through a pipe, one text line at a time.
//
// The parent must not have started any thread when it forks: the benchmark's parent only
// orchestrates, and every loop lives in a child.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace slip::bench {

class ChildProcess {
 public:
  // Forks; the child runs body(report_fd) and exits with its return value. The child dies when
  // the parent dies, and after `limit` in any case (SIGALRM).
  static ChildProcess spawn(const std::function<int(int report_fd)>& body, std::chrono::seconds limit);
  // Forks and execs `argv` with stdout and stderr going to the report pipe (or to /dev/null).
  static ChildProcess exec(const std::vector<std::string>& argv, bool capture_output, std::chrono::seconds limit);

  ChildProcess(ChildProcess&& o) noexcept;
  ChildProcess& operator=(ChildProcess&&) = delete;
  ChildProcess(const ChildProcess&) = delete;
  ~ChildProcess();  // kills and reaps a child still running

  pid_t pid() const { return pid_; }
  // The next line the child reported, or nullopt at EOF or after `timeout`.
  std::optional<std::string> read_line(std::chrono::milliseconds timeout);
  // Everything the child reports until it closes the pipe (or `timeout`).
  std::string read_all(std::chrono::milliseconds timeout);
  // Waits for the child to exit; kills it after `timeout`. Returns the exit code, or 128 + signal.
  int wait(std::chrono::milliseconds timeout);
  // SIGTERM, then SIGKILL if it does not go; reaps it.
  void stop();

 private:
  ChildProcess(pid_t pid, int fd) : pid_(pid), fd_(fd) {}

  pid_t pid_ = -1;
  int fd_ = -1;
  std::string buffered_;
  std::optional<int> status_;
};

// Writes one line ("key=value key=value ...") to a report pipe.
void report(int fd, const std::string& line);

// Parses "key=value" words; words without '=' are ignored.
std::map<std::string, double> parse_report(const std::string& line);

// Who else used the CPUs: busy time of the whole machine (/proc/stat) minus the CPU time of
// this process's reaped children, between two samples.
struct CpuSample {
  double machine_busy_s = 0;
  double children_s = 0;
  double wall_s = 0;
};
CpuSample sample_cpu();
// CPUs' worth of work done by other processes between a and b (0.5: half a core, on average).
double foreign_cpus(const CpuSample& a, const CpuSample& b);

}  // namespace slip::bench
