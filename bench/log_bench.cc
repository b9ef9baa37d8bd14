// log_bench: append throughput of the persistent stream log (src/log/log.h) with 128-byte
// records, per fsync policy (never, every 5 ms, always), one append at a time (each waits for
// its acknowledgement) and with a window of outstanding appends. Prints msgs/s, MB/s of
// payload, appends per fsync and the acknowledgement latency (p50/p99) measured from each
// append call.
//
//   build/release/bench/log_bench [--seconds 2] [--dir /var/tmp] [--window 256] [--size 128]
//
// The directory must be on a real disk (not tmpfs) for fsync to mean anything.
#include <CLI/CLI.hpp>
#include <stdlib.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/histogram.h"
#include "log/log.h"

namespace {

using namespace slip;
using namespace slip::log;

struct Case {
  const char* name;
  FsyncPolicy policy;
  std::int64_t interval_ns;
  bool windowed;
};

struct Outcome {
  std::uint64_t acked = 0;
  double seconds = 0;
  std::uint64_t fsyncs = 0;
  std::uint64_t batches = 0;
  std::uint64_t p50_ns = 0;
  std::uint64_t p99_ns = 0;
};

Outcome run(const std::string& root, const Case& c, double seconds, std::size_t window, std::size_t size) {
  std::string tmpl = root + "/slip-log-bench-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    std::perror("mkdtemp");
    std::exit(1);
  }
  Outcome out;
  {
    LogOptions o;
    o.fsync = c.policy;
    if (c.interval_ns > 0) o.fsync_interval_ns = c.interval_ns;
    o.dedup_window_ns = 0;
    auto opened = Log::open(tmpl, o);
    if (!opened.is_ok()) {
      std::fprintf(stderr, "open: %s\n", opened.status().to_string().c_str());
      std::exit(1);
    }
    std::unique_ptr<Log> log = std::move(opened).value();
    const Slice payload = Slice::copy_of(ByteView(std::string(size, 'p')));
    const std::size_t limit = c.windowed ? window : 1;

    std::mutex mu;
    std::condition_variable cv;
    std::size_t in_flight = 0;
    std::uint64_t acked = 0;
    bool failed = false;
    HistogramSnapshot latency;  // recorded on the writer thread only

    const std::int64_t start = mono_now_ns();
    const std::int64_t stop = start + static_cast<std::int64_t>(seconds * 1e9);
    while (mono_now_ns() < stop) {
      {
        std::unique_lock lk(mu);
        cv.wait(lk, [&] { return in_flight < limit; });
        if (failed) break;
        ++in_flight;
      }
      AppendRecord r;
      r.payload = payload;
      const std::int64_t t0 = mono_now_ns();
      Status s = log->append(std::move(r), [&, t0](Result<AppendAck> a) {
        latency.record(static_cast<std::uint64_t>(mono_now_ns() - t0));
        std::lock_guard lk(mu);
        --in_flight;
        if (a.is_ok()) {
          ++acked;
        } else {
          failed = true;
        }
        cv.notify_one();
      });
      if (!s.is_ok()) {
        std::lock_guard lk(mu);
        --in_flight;  // queue full: try again
      }
    }
    {
      std::unique_lock lk(mu);
      cv.wait(lk, [&] { return in_flight == 0; });
    }
    out.seconds = static_cast<double>(mono_now_ns() - start) / 1e9;
    out.acked = acked;
    const LogStats st = log->stats();
    out.fsyncs = st.fsyncs;
    out.batches = st.batches_written;
    out.p50_ns = latency.quantile(0.5);
    out.p99_ns = latency.quantile(0.99);
    if (failed) std::fprintf(stderr, "%s: an append failed\n", c.name);
  }
  std::error_code ec;
  std::filesystem::remove_all(tmpl, ec);
  return out;
}

std::string fs_type(const std::string& dir) {
  struct statfs s {};
  if (::statfs(dir.c_str(), &s) != 0) return "?";
  switch (static_cast<unsigned long>(s.f_type)) {
    case 0x01021994: return "tmpfs (fsync is free: figures are not durable ones)";
    case 0xEF53: return "ext4";
    case 0x58465342: return "xfs";
    case 0x9123683E: return "btrfs";
    case 0x794c7630: return "overlayfs";
    default: return "other";
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Append throughput of the persistent stream log"};
  double seconds = 2;
  std::string dir = std::filesystem::temp_directory_path().string();
  std::size_t window = 256;
  std::size_t size = 128;
  app.add_option("--seconds", seconds, "time per case");
  app.add_option("--dir", dir, "where the logs are created (a real disk)");
  app.add_option("--window", window, "outstanding appends in the windowed cases");
  app.add_option("--size", size, "payload bytes");
  CLI11_PARSE(app, argc, argv);

  std::printf("log_bench: %zu-byte payloads, %.1f s per case, window %zu, %u cores, dir %s (%s)\n", size, seconds,
              window, std::thread::hardware_concurrency(), dir.c_str(), fs_type(dir).c_str());
  std::printf("%-28s %12s %9s %10s %11s %10s %10s\n", "case", "msgs/s", "MB/s", "fsyncs", "appends/fsync",
              "p50 us", "p99 us");
  const std::vector<Case> cases = {
      {"never, one at a time", FsyncPolicy::kNever, 0, false},
      {"never, window", FsyncPolicy::kNever, 0, true},
      {"every 5 ms, one at a time", FsyncPolicy::kInterval, 5'000'000, false},
      {"every 5 ms, window", FsyncPolicy::kInterval, 5'000'000, true},
      {"always, one at a time", FsyncPolicy::kAlways, 0, false},
      {"always, window", FsyncPolicy::kAlways, 0, true},
  };
  for (const Case& c : cases) {
    const Outcome o = run(dir, c, seconds, window, size);
    const double rate = static_cast<double>(o.acked) / o.seconds;
    std::printf("%-28s %12.0f %9.2f %10llu %11.1f %10.1f %10.1f\n", c.name, rate, rate * static_cast<double>(size) / 1e6,
                static_cast<unsigned long long>(o.fsyncs),
                o.fsyncs ? static_cast<double>(o.acked) / static_cast<double>(o.fsyncs) : 0.0,
                static_cast<double>(o.p50_ns) / 1e3, static_cast<double>(o.p99_ns) / 1e3);
    std::fflush(stdout);
  }
  return 0;
}
