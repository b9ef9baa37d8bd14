// kv_client: calls a kv_server through the generated stub.
//   kv_client [--server 127.0.0.1:7430] put KEY VALUE | get KEY | scan PREFIX | demo
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "kv.slip.h"

namespace {

int fail(const slip::Status& s) {
  std::fprintf(stderr, "kv_client: %s\n", s.to_string().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string server = "127.0.0.1:7430";
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--server") == 0 && i + 1 < argc) {
      server = argv[++i];
    } else {
      args.emplace_back(argv[i]);
    }
  }
  if (args.empty()) {
    std::fprintf(stderr, "usage: kv_client [--server HOST:PORT] put KEY VALUE | get KEY | scan PREFIX | demo\n");
    return 2;
  }
  slip::rpc::Channel channel(server);
  kv::KeyValue::Stub stub(channel);
  slip::rpc::CallOptions opts;
  opts.timeout = std::chrono::seconds(5);

  if (args[0] == "put" && args.size() == 3) {
    kv::Entry e;
    e.set_key(args[1]);
    e.set_value(args[2]);
    kv::PutSummary s;
    if (auto st = stub.Put(e, &s, opts); !st.is_ok()) return fail(st);
    std::printf("ok\n");
  } else if (args[0] == "get" && args.size() == 2) {
    kv::Key k;
    k.set_key(args[1]);
    kv::Value v;
    if (auto st = stub.Get(k, &v, opts); !st.is_ok()) return fail(st);
    if (!v.found()) {
      std::printf("(not found)\n");
      return 3;
    }
    std::printf("%s\n", v.value().c_str());
  } else if (args[0] == "scan" && args.size() == 2) {
    kv::Prefix p;
    p.set_prefix(args[1]);
    auto reader = stub.Scan(p, opts);
    kv::Entry e;
    while (reader->read(&e)) std::printf("%s=%s\n", e.key().c_str(), e.value().c_str());
    if (auto st = reader->finish(); !st.is_ok()) return fail(st);
  } else if (args[0] == "demo") {
    auto writer = stub.PutMany(opts);
    for (int i = 0; i < 5; ++i) {
      kv::Entry e;
      e.set_key("demo/" + std::to_string(i));
      e.set_value("value " + std::to_string(i));
      writer->write(e);
    }
    kv::PutSummary s;
    if (auto st = writer->finish(&s); !st.is_ok()) return fail(st);
    std::printf("PutMany wrote %llu entries\n", static_cast<unsigned long long>(s.written()));
    auto both = stub.GetMany(opts);
    for (const char* k : {"demo/1", "demo/4", "missing"}) {
      kv::Key key;
      key.set_key(k);
      both->write(key);
      kv::Value v;
      if (!both->read(&v)) break;
      std::printf("GetMany %s -> %s\n", k, v.found() ? v.value().c_str() : "(not found)");
    }
    both->writes_done();
    if (auto st = both->finish(); !st.is_ok()) return fail(st);
  } else {
    std::fprintf(stderr, "kv_client: unknown command\n");
    return 2;
  }
  return 0;
}
