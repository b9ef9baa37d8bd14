// A small HTTP/1.1 server (Boost.Beast) for operational endpoints: fixed routes answered with
// whole responses, and Server-Sent Events streams fed by broadcast().
//
// It runs on its own thread with its own io_context, never on a shard's loop: a slow scrape or
// a dashboard never delays message traffic, and handlers may block briefly (e.g. to collect
// figures from every shard). Requests are GET or HEAD only (others: 405 with Allow), bounded
// (header and body limits; oversized: 431/413 and close), served with keep-alive; unknown paths
// get 404. Connections are bounded; an idle one is closed after idle_timeout.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "slipstream/status.h"
#include "transport/address.h"

namespace slip::gateway::http {

struct Request {
  std::string method;  // "GET" or "HEAD"
  std::string path;    // without the query
  std::string query;   // after '?', undecoded
};

struct Response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

using Handler = std::function<Response(const Request&)>;

struct HttpOptions {
  std::size_t max_header_bytes = 8 * 1024;
  std::size_t max_body_bytes = 4 * 1024;  // GET bodies are ignored but still bounded
  std::size_t max_connections = 256;
  std::chrono::seconds idle_timeout{60};
  // Events queued for one slow event-stream reader before it is disconnected.
  std::size_t max_queued_events = 16;
};

class HttpServer {
 public:
  explicit HttpServer(HttpOptions options = {});
  ~HttpServer();  // stops
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Routes are exact paths, added before start(). Handlers run on the server's thread.
  void route(std::string path, Handler handler);
  // Every path that starts with `prefix` (e.g. "/api/streams/") and has no exact route; the
  // longest matching prefix wins. The handler sees the whole path and answers unknown names
  // itself (404).
  void route_prefix(std::string prefix, Handler handler);
  // An event stream at `path` (text/event-stream). A new reader first gets the last event.
  void event_stream(std::string path);
  // Runs fn on the server's thread every `period`, first after one period.
  void every(std::chrono::milliseconds period, std::function<void()> fn);

  // Binds and starts the thread.
  Status start(const transport::HostPort& at);
  // Closes the listener and every connection, joins the thread. Idempotent.
  void stop();
  std::string local_address() const;

  // Sends `data` (one line of JSON, say) as an event to every reader of the stream `path`.
  // On the server's thread only (from a handler or an every() callback).
  void broadcast(const std::string& path, const std::string& data);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace slip::gateway::http
