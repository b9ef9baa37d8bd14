// Typed methods and stubs over the byte-string RPC core, for any message type with
// `bool ParseFromString(const std::string&)` and `bool SerializeToString(std::string*) const`
// (protobuf messages; what protoc-gen-slipstream generates code for). The core never sees the
// codec: a request that does not parse ends the call with INVALID_ARGUMENT.
#pragma once

#include <concepts>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <utility>

#include "rpc/blocking.h"
#include "rpc/server.h"

namespace slip::rpc {

namespace detail {
template <typename M>
std::string serialize(const M& m) {
  std::string s;
  m.SerializeToString(&s);
  return s;
}

// Parses received bytes in place when the type can (protobuf's ParseFromArray), else through a
// std::string.
template <typename M>
bool parse_bytes(M& m, ByteView bytes) {
  if constexpr (requires(M& x, const void* p, int n) { { x.ParseFromArray(p, n) } -> std::convertible_to<bool>; }) {
    if (bytes.size() <= static_cast<std::size_t>(std::numeric_limits<int>::max())) {
      return m.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
    }
  }
  return m.ParseFromString(std::string(bytes.as_string_view()));
}
}  // namespace detail

// ---- Server side ----------------------------------------------------------------------------

// Writes typed responses of a server-streaming call.
template <typename Resp>
class ServerWriter {
 public:
  explicit ServerWriter(ServerCall& call) : call_(call) {}
  // False once the call ended or was cancelled. In a blocking method (on a worker thread) it
  // waits until the message fits the call's window, so the handler goes at its reader's pace
  // (ServerCall::write_wait); on the loop it cannot wait and writes at once (ServerCall::write).
  bool write(const Resp& m) { return call_.write_wait(detail::serialize(m)); }
  // Whether a write of `bytes` now stays within the call's window; on_writable(fn, bytes) runs fn
  // on the loop when it does again (or the call ended): ServerCall::when_writable. For handlers
  // that keep the call and finish it later.
  bool can_write(std::size_t bytes = 1) const { return call_.can_write(bytes); }
  void on_writable(std::function<void()> fn, std::size_t bytes = 1) { call_.when_writable(std::move(fn), bytes); }
  ServerCall& call() { return call_; }

 private:
  ServerCall& call_;
};

// A client-streaming or bidirectional call on the server: read requests with on_read, write
// responses, end with finish. Callbacks run on the connection's loop.
template <typename Req, typename Resp>
class ServerStream {
 public:
  explicit ServerStream(ServerCallPtr call) : call_(std::move(call)) {}
  // fn gets each request; on_done runs when the client ended its side. A request that does not
  // parse ends the call with INVALID_ARGUMENT.
  void on_read(std::function<void(const Req&)> fn, std::function<void()> on_done) {
    call_->on_read(
        [c = call_, fn = std::move(fn)](std::string bytes) {
          Req m;
          if (!m.ParseFromString(bytes)) {
            c->finish(invalid_argument("request message does not parse"));
            return;
          }
          fn(m);
        },
        std::move(on_done));
  }
  bool write(const Resp& m) { return call_->write_wait(detail::serialize(m)); }
  // Flow control, as ServerWriter.
  bool can_write(std::size_t bytes = 1) const { return call_->can_write(bytes); }
  void on_writable(std::function<void()> fn, std::size_t bytes = 1) { call_->when_writable(std::move(fn), bytes); }
  void finish(const Status& s) { call_->finish(s); }
  void finish(const Status& s, const Resp& last) { call_->finish(s, detail::serialize(last)); }
  ServerCall& call() { return *call_; }
  const ServerCallPtr& call_ptr() const { return call_; }

 private:
  ServerCallPtr call_;
};

// fn: Status(ServerCall&, const Req&, Resp*).
template <typename Req, typename Resp, typename Fn>
void add_unary_method(Service& service, std::string name, Fn fn, MethodOptions options = {}) {
  Method m;
  m.name = std::move(name);
  m.kind = MethodKind::kUnary;
  m.options = options;
  m.on_request_bytes = [fn = std::move(fn)](const ServerCallPtr& call, Slice bytes) {
    Req req;
    if (!detail::parse_bytes(req, bytes)) {
      call->finish(invalid_argument("request message does not parse"));
      return;
    }
    Resp resp;
    Status s = fn(*call, req, &resp);
    if (s.is_ok()) {
      call->finish(s, detail::serialize(resp));
    } else {
      call->finish(s);
    }
  };
  service.add_method(std::move(m));
}

// fn: Status(ServerCall&, const Req&, ServerWriter<Resp>&).
template <typename Req, typename Resp, typename Fn>
void add_server_streaming_method(Service& service, std::string name, Fn fn, MethodOptions options = {}) {
  Method m;
  m.name = std::move(name);
  m.kind = MethodKind::kServerStreaming;
  m.options = options;
  m.on_request_bytes = [fn = std::move(fn)](const ServerCallPtr& call, Slice bytes) {
    Req req;
    if (!detail::parse_bytes(req, bytes)) {
      call->finish(invalid_argument("request message does not parse"));
      return;
    }
    ServerWriter<Resp> w(*call);
    call->finish(fn(*call, req, w));
  };
  service.add_method(std::move(m));
}

// fn: void(std::shared_ptr<ServerStream<Req, Resp>>); kind: client-streaming or bidirectional.
template <typename Req, typename Resp, typename Fn>
void add_streaming_method(Service& service, std::string name, MethodKind kind, Fn fn, MethodOptions options = {}) {
  Method m;
  m.name = std::move(name);
  m.kind = kind;
  m.options = options;
  m.on_streaming = [fn = std::move(fn)](const ServerCallPtr& call) {
    fn(std::make_shared<ServerStream<Req, Resp>>(call));
  };
  service.add_method(std::move(m));
}

// ---- Client side ----------------------------------------------------------------------------

template <typename Req, typename Resp>
Status unary_call(ChannelInterface& channel, std::string method, const Req& req, Resp* resp,
                  const CallOptions& options = {}, Metadata* trailers = nullptr) {
  Result<std::string> r = call_unary(channel, std::move(method), detail::serialize(req), options, trailers);
  if (!r.is_ok()) return r.status();
  if (!resp->ParseFromString(*r)) return Status(StatusCode::kInternal, "response message does not parse");
  return Status();
}

// Reads typed responses of a server-streaming or bidirectional call.
template <typename Resp>
class ClientReader {
 public:
  explicit ClientReader(std::unique_ptr<BlockingCall> call) : call_(std::move(call)) {}
  // The next response; false at the end (then call finish()).
  bool read(Resp* m) {
    std::string bytes;
    while (call_->read(&bytes)) {
      if (m->ParseFromString(bytes)) return true;
      bad_ = true;
      call_->cancel();
    }
    return false;
  }
  Status finish() {
    Status s = call_->finish();
    if (bad_) return Status(StatusCode::kInternal, "response message does not parse");
    return s;
  }
  void cancel() { call_->cancel(); }
  BlockingCall& raw() { return *call_; }

 private:
  std::unique_ptr<BlockingCall> call_;
  bool bad_ = false;
};

// Writes typed requests of a client-streaming call; finish() returns the one response.
template <typename Req, typename Resp>
class ClientWriter {
 public:
  explicit ClientWriter(std::unique_ptr<BlockingCall> call) : call_(std::move(call)) {}
  bool write(const Req& m) { return call_->write(detail::serialize(m)); }
  // Ends the requests and waits for the response.
  Status finish(Resp* resp) {
    call_->writes_done();
    std::string bytes;
    const bool got = call_->read(&bytes);
    Status s = call_->finish();
    if (!s.is_ok()) return s;
    if (!got) return Status(StatusCode::kInternal, "the server finished without a response");
    if (!resp->ParseFromString(bytes)) return Status(StatusCode::kInternal, "response message does not parse");
    return s;
  }
  void cancel() { call_->cancel(); }
  BlockingCall& raw() { return *call_; }

 private:
  std::unique_ptr<BlockingCall> call_;
};

// A bidirectional call: write and read in any order from one thread, or write from one thread
// and read from another.
template <typename Req, typename Resp>
class ClientReaderWriter {
 public:
  explicit ClientReaderWriter(std::unique_ptr<BlockingCall> call) : call_(std::move(call)) {}
  bool write(const Req& m) { return call_->write(detail::serialize(m)); }
  void writes_done() { call_->writes_done(); }
  bool read(Resp* m) {
    std::string bytes;
    if (!call_->read(&bytes)) return false;
    if (m->ParseFromString(bytes)) return true;
    bad_ = true;
    call_->cancel();
    return false;
  }
  Status finish() {
    Status s = call_->finish();
    if (bad_) return Status(StatusCode::kInternal, "response message does not parse");
    return s;
  }
  void cancel() { call_->cancel(); }
  BlockingCall& raw() { return *call_; }

 private:
  std::unique_ptr<BlockingCall> call_;
  bool bad_ = false;
};

template <typename Req, typename Resp>
std::unique_ptr<ClientReader<Resp>> server_streaming_call(ChannelInterface& channel, std::string method,
                                                          const Req& req, const CallOptions& options = {}) {
  std::vector<std::string> reqs;
  reqs.push_back(detail::serialize(req));
  return std::make_unique<ClientReader<Resp>>(
      std::make_unique<BlockingCall>(channel, std::move(method), options, std::move(reqs), true));
}

template <typename Req, typename Resp>
std::unique_ptr<ClientWriter<Req, Resp>> client_streaming_call(ChannelInterface& channel,
                                                               std::string method,
                                                               const CallOptions& options = {}) {
  return std::make_unique<ClientWriter<Req, Resp>>(std::make_unique<BlockingCall>(channel, std::move(method), options));
}

template <typename Req, typename Resp>
std::unique_ptr<ClientReaderWriter<Req, Resp>> bidi_streaming_call(ChannelInterface& channel,
                                                                   std::string method,
                                                                   const CallOptions& options = {}) {
  return std::make_unique<ClientReaderWriter<Req, Resp>>(
      std::make_unique<BlockingCall>(channel, std::move(method), options));
}

}  // namespace slip::rpc
