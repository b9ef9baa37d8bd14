#include "broker/auth_pool.h"

#include <unistd.h>

#include <chrono>

namespace slip::broker {

AuthPool::AuthPool(const Authenticator& auth, AuthPoolOptions options) : auth_(auth), options_(std::move(options)) {}

AuthPool::~AuthPool() { stop(); }

void AuthPool::start() {
  if (!workers_.empty()) return;
  stopping_.store(false, std::memory_order_release);
  const std::size_t n = options_.threads == 0 ? 1 : options_.threads;
  for (std::size_t i = 0; i < n; ++i) workers_.emplace_back([this] { run(); });
}

void AuthPool::stop() {
  {
    std::lock_guard<std::mutex> g(mu_);
    stopping_.store(true, std::memory_order_release);
  }
  cv_.notify_all();
  for (std::thread& t : workers_) t.join();
  workers_.clear();
  std::deque<Job> dropped;
  {
    std::lock_guard<std::mutex> g(mu_);
    dropped.swap(queue_);
    stats_.queued.store(0, std::memory_order_relaxed);
  }
}

std::optional<Result<Identity>> AuthPool::authenticate(const Credentials& c, std::weak_ptr<const void> alive,
                                                       Done done) {
  if (std::optional<Result<Identity>> quick = auth_.authenticate_quickly(c)) return quick;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (queue_.size() >= options_.max_queued) {
      stats_.busy.fetch_add(1, std::memory_order_relaxed);
      std::string msg = "authentication busy: the password verification queue is full (";
      msg.append(std::to_string(queue_.size())).append(" waiting, auth_queue); retry later");
      return Result<Identity>(overloaded(msg));
    }
    queue_.push_back(Job{std::string(c.user), std::string(c.password), std::move(alive), std::move(done)});
    stats_.queued.fetch_add(1, std::memory_order_relaxed);
  }
  cv_.notify_one();
  return std::nullopt;
}

void AuthPool::hold_for_test() const {
  if (options_.hold_file_for_test.empty()) return;
  while (!stopping_.load(std::memory_order_acquire) && access(options_.hold_file_for_test.c_str(), F_OK) == 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

void AuthPool::run() {
  while (true) {
    Job job;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [this] { return stopping_.load(std::memory_order_relaxed) || !queue_.empty(); });
      if (stopping_.load(std::memory_order_relaxed)) return;
      job = std::move(queue_.front());
      queue_.pop_front();
      stats_.queued.fetch_sub(1, std::memory_order_relaxed);
      if (job.alive.expired()) {
        stats_.abandoned.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      stats_.verifying.fetch_add(1, std::memory_order_relaxed);
    }
    hold_for_test();
    Result<Identity> r = auth_.verify_password(job.user, job.password);
    stats_.verifying.fetch_sub(1, std::memory_order_relaxed);
    stats_.verified.fetch_add(1, std::memory_order_relaxed);
    if (job.alive.expired()) {
      stats_.abandoned.fetch_add(1, std::memory_order_relaxed);
    } else {
      job.done(std::move(r));
    }
  }
}

}  // namespace slip::broker
