// AuthPool: password verification away from the event loops.
//
// Argon2id verification takes tens of milliseconds by design; on an event loop it would stall
// every other connection of that loop. An AuthPool answers cheap cases at once (tokens, no
// users, a password remembered from an earlier success: Authenticator::authenticate_quickly)
// and queues the rest for a few worker threads. The queue is bounded: when it is full the
// client is refused at once with kOverloaded ("authentication busy") instead of the queue
// growing, so a burst of logins costs bounded memory and tells clients to back off.
//
// A job carries a weak `alive` token from its connection: a worker skips a job whose
// connection has closed, and never calls its `done`. `done` runs on a worker thread; callers
// post the result back to their loop. Thread safety: every member is safe from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "broker/auth.h"

namespace slip::broker {

struct AuthPoolOptions {
  std::size_t threads = 1;       // worker threads (at least 1)
  std::size_t max_queued = 256;  // verifications waiting for a worker; past it, kOverloaded
  // Tests only: while a file exists at this path, each worker waits before it verifies, so a
  // test can hold a verification in progress without depending on timing.
  std::string hold_file_for_test;
};

// Relaxed atomics, read at scrape time.
struct AuthPoolStats {
  std::atomic<std::uint64_t> queued{0};     // waiting for a worker, now
  std::atomic<std::uint64_t> verifying{0};  // on a worker, now
  std::atomic<std::uint64_t> verified{0};   // verifications finished, either verdict
  std::atomic<std::uint64_t> busy{0};       // refused because the queue was full
  std::atomic<std::uint64_t> abandoned{0};  // skipped: the connection closed first
};

class AuthPool {
 public:
  using Done = std::function<void(Result<Identity>)>;

  // `auth` must outlive the pool.
  AuthPool(const Authenticator& auth, AuthPoolOptions options);
  ~AuthPool();  // stop()
  AuthPool(const AuthPool&) = delete;
  AuthPool& operator=(const AuthPool&) = delete;

  // Starts the workers. Before start(), queued jobs wait.
  void start();
  // Stops the workers after the verifications they are running; jobs still queued are dropped
  // without their `done`. Idempotent.
  void stop();

  // The answer now when it is cheap (see above), or kOverloaded "authentication busy" when the
  // queue is full. Otherwise queues the password verification and returns nullopt: `done` is
  // then called once on a worker thread, unless `alive` expires first or the pool stops.
  std::optional<Result<Identity>> authenticate(const Credentials& c, std::weak_ptr<const void> alive, Done done);

  const AuthPoolStats& stats() const { return stats_; }
  const AuthPoolOptions& options() const { return options_; }

 private:
  struct Job {
    std::string user;
    std::string password;
    std::weak_ptr<const void> alive;
    Done done;
  };
  void run();
  void hold_for_test() const;

  const Authenticator& auth_;
  const AuthPoolOptions options_;
  AuthPoolStats stats_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> queue_;          // guarded by mu_
  std::atomic<bool> stopping_{false};
  std::vector<std::thread> workers_;  // started and joined by the owner's thread
};

}  // namespace slip::broker
