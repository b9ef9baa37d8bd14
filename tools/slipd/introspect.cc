// Server::collect_connections: connection details gathered on each connection's own loop.
#include <mutex>

#include "server.h"

namespace slip::slipd {

void Server::collect_connections(bool with_subscriptions, std::function<void(std::vector<ConnectionInfo>)> done) {
  struct Gather {
    std::mutex mu;
    std::vector<ConnectionInfo> all;  // guarded by mu
    std::size_t remaining = 0;        // guarded by mu
    std::function<void(std::vector<ConnectionInfo>)> done;
  };
  auto g = std::make_shared<Gather>();
  g->remaining = loops_.size();
  g->done = std::move(done);
  for (std::size_t i = 0; i < loops_.size(); ++i) {
    loops_.loop(i).post([this, i, g, with_subscriptions] {
      std::vector<ConnectionInfo> mine;
      for (const auto& [session, nc] : shards_[i].clients) {
        ConnectionInfo c;
        c.id = session->negotiated().connection_id;
        c.protocol = native_stats_.protocol;
        c.peer = session->connection().peer_address();
        c.name = session->negotiated().peer_name;
        c.subscriptions = nc->client.subscriptions();
        c.traffic = nc->client.stats();
        c.dropped = nc->client.dropped();
        c.pending_bytes = session->pending_out_bytes();
        if (with_subscriptions) {
          nc->client.for_each_subscription([&](std::uint64_t sid, const std::string& subject, const std::string& queue,
                                               std::uint64_t delivered) {
            c.subs.push_back(ConnectionInfo::Sub{sid, subject, queue, delivered});
          });
        }
        mine.push_back(std::move(c));
      }
      for (const auto& [ptr, nats] : shards_[i].nats) {
        broker::BrokerClient* bc = nats->broker_client();
        if (bc == nullptr) continue;
        ConnectionInfo c;
        c.id = nats->id();
        c.protocol = nats_stats_.protocol;
        c.peer = nats->peer_address();
        c.name = nats->client_name();
        c.subscriptions = bc->subscriptions();
        c.traffic = bc->stats();
        c.dropped = bc->dropped();
        c.pending_bytes = nats->pending_out_bytes();
        if (with_subscriptions) {
          bc->for_each_subscription([&](std::uint64_t sid, const std::string& subject, const std::string& queue,
                                        std::uint64_t delivered) {
            c.subs.push_back(ConnectionInfo::Sub{sid, subject, queue, delivered});
          });
        }
        mine.push_back(std::move(c));
      }
      std::vector<ConnectionInfo> result;
      {
        std::lock_guard<std::mutex> lock(g->mu);
        for (auto& c : mine) g->all.push_back(std::move(c));
        if (--g->remaining != 0) return;
        result = std::move(g->all);
      }
      g->done(std::move(result));
    });
  }
}

}  // namespace slip::slipd
