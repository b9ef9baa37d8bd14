// kv_server: serves the KeyValue service of kv.proto from memory.
//   kv_server [--listen 127.0.0.1:7430]
#include <csignal>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "kv.slip.h"
#include "rpc/server.h"

namespace {

class Store final : public kv::KeyValue::Service {
 public:
  slip::Status Get(slip::rpc::ServerCall&, const kv::Key& req, kv::Value* resp) override {
    std::lock_guard lock(mu_);
    auto it = data_.find(req.key());
    resp->set_found(it != data_.end());
    if (it != data_.end()) resp->set_value(it->second);
    return slip::Status();
  }
  slip::Status Put(slip::rpc::ServerCall&, const kv::Entry& req, kv::PutSummary* resp) override {
    if (req.key().empty()) return slip::Status(slip::StatusCode::kInvalidArgument, "empty key");
    std::lock_guard lock(mu_);
    data_[req.key()] = req.value();
    resp->set_written(1);
    return slip::Status();
  }
  slip::Status Scan(slip::rpc::ServerCall&, const kv::Prefix& req, slip::rpc::ServerWriter<kv::Entry>& out) override {
    std::lock_guard lock(mu_);
    for (auto it = data_.lower_bound(req.prefix()); it != data_.end() && it->first.starts_with(req.prefix()); ++it) {
      kv::Entry e;
      e.set_key(it->first);
      e.set_value(it->second);
      out.write(e);
    }
    return slip::Status();
  }
  void PutMany(std::shared_ptr<slip::rpc::ServerStream<kv::Entry, kv::PutSummary>> stream) override {
    auto written = std::make_shared<std::uint64_t>(0);
    stream->on_read(
        [this, written](const kv::Entry& e) {
          std::lock_guard lock(mu_);
          data_[e.key()] = e.value();
          ++*written;
        },
        [stream, written] {
          kv::PutSummary s;
          s.set_written(*written);
          stream->finish(slip::Status(), s);
        });
  }
  void GetMany(std::shared_ptr<slip::rpc::ServerStream<kv::Key, kv::Value>> stream) override {
    stream->on_read(
        [this, stream](const kv::Key& k) {
          kv::Value v;
          std::lock_guard lock(mu_);
          auto it = data_.find(k.key());
          v.set_found(it != data_.end());
          if (it != data_.end()) v.set_value(it->second);
          stream->write(v);
        },
        [stream] { stream->finish(slip::Status()); });
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::string> data_;
};

volatile std::sig_atomic_t g_stop = 0;

}  // namespace

int main(int argc, char** argv) {
  slip::rpc::ServerOptions options;
  options.listen = "127.0.0.1:7430";
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
      options.listen = argv[++i];
    } else {
      std::fprintf(stderr, "usage: kv_server [--listen HOST:PORT]\n");
      return 2;
    }
  }
  Store store;
  slip::rpc::Server server(options);
  server.add_service(store);
  if (slip::Status s = server.start(); !s.is_ok()) {
    std::fprintf(stderr, "kv_server: %s\n", s.to_string().c_str());
    return 1;
  }
  std::printf("kv_server listening on %s\n", server.address().c_str());
  std::fflush(stdout);
  std::signal(SIGINT, [](int) { g_stop = 1; });
  std::signal(SIGTERM, [](int) { g_stop = 1; });
  while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  server.shutdown();  // calls in flight finish first
  return 0;
}
