// A PubSubClient on its own loop thread, for integration tests: run() executes code on that
// thread and waits for it; wait_for() polls a condition there up to a liveness bound.
#pragma once

#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>

#include "broker/client.h"
#include "io/loop_group.h"
#include "transport/address.h"

namespace slip::test {

class PubSubPeer {
 public:
  static constexpr auto kLiveness = std::chrono::seconds(30);

  // `configure` may change the options (credentials, reconnect). With `start` false the client
  // is made but not started: a derived class sets its callbacks once its own members exist,
  // then calls client().start() through run().
  explicit PubSubPeer(const std::string& address, std::string name = "test",
                      const std::function<void(session::ClientOptions&)>& configure = {}, bool start = true)
      : loops_(1, io::LoopOptions{io::IdleStrategy::kBlock, {}}) {
    loops_.start();
    session::ClientOptions o;
    // udp:// addresses need a pinned key: `configure` sets the dialer for them.
    if (!transport::udp::udp_url_address(address)) o.dial = session::tcp_dialer(*transport::parse_host_port(address));
    o.handshake.client_name = std::move(name);
    if (configure) configure(o);
    run([&] {
      client_ = std::make_unique<broker::PubSubClient>(loop(), o);
      if (start) client_->start();
    });
  }
  ~PubSubPeer() { stop(); }

  // Closes the client and stops its loop; idempotent. A derived class whose members the
  // client's callbacks touch calls it from its own destructor, before those members go.
  void stop() {
    if (stopped_) return;
    stopped_ = true;
    run([&] { client_.reset(); });
    // Callbacks posted by a handler reach the queue after anything posted meanwhile from
    // another thread: two empty turns let the session's close callback run before the stop.
    run([] {});
    run([] {});
    loops_.stop();
  }
  PubSubPeer(const PubSubPeer&) = delete;
  PubSubPeer& operator=(const PubSubPeer&) = delete;

  io::EventLoop& loop() { return loops_.loop(0); }
  broker::PubSubClient& client() { return *client_; }

  template <typename Fn>
  void run(Fn fn) {
    std::promise<void> done;
    loop().post([&] {
      fn();
      done.set_value();
    });
    done.get_future().wait();
  }

  // `pred` runs on the client's loop.
  template <typename Pred>
  bool wait_for(Pred pred) {
    const auto deadline = std::chrono::steady_clock::now() + kLiveness;
    while (std::chrono::steady_clock::now() < deadline) {
      bool ok = false;
      run([&] { ok = pred(); });
      if (ok) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return false;
  }
  bool wait_ready() {
    return wait_for([&] { return client_->ready(); });
  }

  // A round trip through the broker (a request nobody answers): everything this client sent
  // before has been processed.
  void sync() {
    std::promise<void> p;
    auto f = p.get_future();
    run([&] {
      (void)client_->request("_sync.nobody", Slice(), std::chrono::milliseconds(10000),
                             [&p](Result<broker::Message>) { p.set_value(); });
    });
    f.wait_for(kLiveness);
  }

 protected:
  std::unique_ptr<broker::PubSubClient> client_;

 private:
  io::LoopGroup loops_;
  bool stopped_ = false;
};

}  // namespace slip::test
