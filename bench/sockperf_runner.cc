#include "sockperf_runner.h"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <sstream>
#include <thread>

#include "child_process.h"
#include "plain_tcp_peer.h"

namespace slip::bench {

namespace {

// sockperf colours some lines with ANSI escapes ("\x1b[2;35m").
std::string strip_escapes(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\x1b' && i + 1 < s.size() && s[i + 1] == '[') {
      i += 2;
      while (i < s.size() && !(s[i] >= '@' && s[i] <= '~')) ++i;
      continue;
    }
    out += s[i];
  }
  return out;
}

// The number after the last '=' of a line.
bool value_after_equals(const std::string& line, double* v) {
  const auto eq = line.rfind('=');
  if (eq == std::string::npos) return false;
  char* end = nullptr;
  *v = std::strtod(line.c_str() + eq + 1, &end);
  return end != line.c_str() + eq + 1;
}

}  // namespace

SockperfResult parse_sockperf_output(const std::string& raw) {
  SockperfResult r;
  const std::string text = strip_escapes(raw);
  std::istringstream in(text);
  std::string line;
  int found = 0;
  bool rtt_summary = false, latency_summary = false;
  while (std::getline(in, line)) {
    double v = 0;
    if (line.find("<MIN> observation") != std::string::npos && value_after_equals(line, &v)) {
      r.rtt.min = v;
      found |= 1;
    } else if (line.find("<MAX> observation") != std::string::npos && value_after_equals(line, &v)) {
      r.rtt.max = v;
      found |= 2;
    } else if (line.find("percentile 50.000 ") != std::string::npos && value_after_equals(line, &v)) {
      r.rtt.p50 = v;
      found |= 4;
    } else if (line.find("percentile 99.000 ") != std::string::npos && value_after_equals(line, &v)) {
      r.rtt.p99 = v;
      found |= 8;
    } else if (line.find("percentile 99.900 ") != std::string::npos && value_after_equals(line, &v)) {
      r.rtt.p999 = v;
      found |= 16;
    } else if (line.find("Summary: Round trip is") != std::string::npos) {
      rtt_summary = true;
    } else if (line.find("Summary: Latency is") != std::string::npos) {
      latency_summary = true;
    } else if (auto t = line.find("Total "); t != std::string::npos && line.find("observations") != std::string::npos) {
      r.rtt.n = static_cast<std::size_t>(std::strtoull(line.c_str() + t + 6, nullptr, 10));
    }
  }
  if (found != 31 || (!rtt_summary && !latency_summary)) {
    r.error = "could not find sockperf's percentiles in its output:\n" + text;
    return r;
  }
  if (latency_summary && !rtt_summary) {
    // One-way latency is half the round trip as sockperf measures it: double it back.
    r.halved = true;
    r.rtt.min *= 2;
    r.rtt.p50 *= 2;
    r.rtt.p99 *= 2;
    r.rtt.p999 *= 2;
    r.rtt.max *= 2;
  }
  r.ok = true;
  return r;
}

SockperfResult run_sockperf_pingpong(const std::string& sockperf, int size, int seconds) {
  SockperfResult r;
  std::string error;
  std::uint16_t port = 0;
  const int probe = listen_loopback(&port, &error);
  if (probe < 0) {
    r.error = error;
    return r;
  }
  ::close(probe);  // the port is free again for sockperf's server
  const std::string p = std::to_string(port);
  const auto limit = std::chrono::seconds(seconds + 60);
  ChildProcess server = ChildProcess::exec({sockperf, "server", "--tcp", "-i", "127.0.0.1", "-p", p}, false, limit);
  // Wait until it listens.
  bool up = false;
  for (int i = 0; i < 500 && !up; ++i) {
    const int fd = connect_loopback(port, &error);
    if (fd >= 0) {
      ::close(fd);
      up = true;
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  if (!up) {
    r.error = "sockperf server did not start listening on 127.0.0.1:" + p;
    return r;
  }
  const std::vector<std::string> argv = {sockperf, "ping-pong", "--tcp", "-i", "127.0.0.1", "-p", p,
                                         "-m",     std::to_string(size), "-t", std::to_string(seconds), "--full-rtt"};
  for (const auto& a : argv) r.command += (r.command.empty() ? "" : " ") + a;
  ChildProcess client = ChildProcess::exec(argv, true, limit);
  const std::string out = client.read_all(std::chrono::seconds(seconds + 30));
  const int rc = client.wait(std::chrono::seconds(10));
  server.stop();
  if (rc != 0) {
    r.error = "sockperf ping-pong exited with " + std::to_string(rc) + ":\n" + out;
    return r;
  }
  SockperfResult parsed = parse_sockperf_output(out);
  parsed.command = r.command;
  return parsed;
}

}  // namespace slip::bench
