#include "transport/udp/udp.h"

#include <atomic>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstring>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <unordered_map>

#include "core/clock.h"
#include "core/logging.h"
#include "core/varint.h"
#include "transport/udp/aead_protector.h"
#include "transport/udp/fec_filter.h"
#include "transport/udp/frames.h"
#include "transport/udp/keys.h"

namespace slip::transport::udp {

namespace asio = boost::asio;

namespace {

Instant clock_now() { return std::chrono::time_point_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now()); }
std::int64_t to_ns(Instant t) { return t.time_since_epoch().count(); }

struct CidHash {
  std::size_t operator()(const ConnectionId& c) const {
    std::uint64_t v;
    std::memcpy(&v, c.data(), sizeof(v));
    return static_cast<std::size_t>(v);
  }
};

// Receive batches per readiness wake-up before other work gets a turn.
constexpr int kReceiveRounds = 8;
// Stream bytes moved into the reliability core per send() call on it.
constexpr std::size_t kPushChunk = 64 * 1024;
// The session's bytes travel on the client's first stream.
constexpr std::uint64_t kSessionStream = 0;
// Initial retransmissions back off up to this interval.
constexpr auto kMaxInitialResend = std::chrono::milliseconds(1000);

std::string url_of(const std::string& address) {
  std::string s = "udp://";
  s.append(address);
  return s;
}

// The largest packet MTU probing may try with these options (0 when it is off).
std::size_t probe_ceiling(const UdpOptions& o) {
  if (!o.connection.mtu.enabled) return 0;
  const std::size_t max = o.connection.mtu.max_packet_size;
  return max == 0 ? kJumboUdpPayloadIpv4 : std::min<std::size_t>(max, 65527);
}

}  // namespace

std::size_t default_max_datagram(const SocketAddress& peer) {
  const bool v6 = peer.family() == AF_INET6;
  const std::size_t headers = v6 ? 40 + 8 : 20 + 8;
  const Result<std::size_t> mtu = route_mtu(peer);
  if (!mtu.is_ok() || *mtu <= headers) return v6 ? kEthernetUdpPayloadIpv6 : kEthernetUdpPayloadIpv4;
  return std::min(*mtu - headers, v6 ? kJumboUdpPayloadIpv6 : kJumboUdpPayloadIpv4);
}

namespace {

// With MTU probing on, the socket holds the largest probe whole and never fragments it.
UdpOptions with_mtu_socket(const UdpOptions& given) {
  UdpOptions o = given;
  if (const std::size_t ceiling = probe_ceiling(o); ceiling > 0) {
    o.socket.max_datagram = std::max(o.socket.max_datagram, ceiling);
    o.socket.dont_fragment = true;
  }
  return o;
}

}  // namespace

class Endpoint;

// ---- one peer ----

class UdpConn final : public transport::Connection, public std::enable_shared_from_this<UdpConn> {
 public:
  enum class State : std::uint8_t { kHandshake, kOpen, kClosing, kClosed };

  UdpConn(std::shared_ptr<Endpoint> ep, std::shared_ptr<const UdpOptions> options, Role role,
          const SocketAddress& peer)
      : ep_(std::move(ep)), options_(std::move(options)), role_(role), peer_(peer) {}

  // --- transport::Connection ---
  void start(ConnectionHandler* handler) override;
  void send(Chain bytes) override;
  std::size_t queued_bytes() const override { return out_.size(); }
  void pause_reading() override { paused_ = true; }
  void resume_reading() override;
  void close() override;
  void abort(Status reason) override;
  io::EventLoop& loop() override;
  std::string peer_address() const override { return peer_.to_string(); }
  bool secure() const override { return true; }

  // --- the endpoint's side ---
  const ConnectionId& local_cid() const { return local_cid_; }
  // Client: starts the handshake (sends the first Initial).
  void begin_client(ClientHandshakeConfig hs, ConnectHandler done, Instant now);
  // Server: the handshake passed; `response` is resent to repeated Initials until confirmed.
  void begin_server(const ServerHandshake::Accepted& a, Instant now);
  void on_handshake_packet(Instant now, ByteView datagram);
  // `datagram` is the endpoint's receive slot: opened in place, then no longer needed.
  void on_datagram(Instant now, std::span<std::uint8_t> datagram, const SocketAddress& from);
  void on_timer(Instant now);
  // Delivers events, moves bytes, transmits; returns false when the socket is blocked and
  // the connection still has packets to send.
  bool service(Instant now);
  bool confirmed() const { return confirmed_; }
  bool done() const { return state_ == State::kClosed && (!core_ || core_->is_closed()) && !connecting(); }
  const udp::Connection* core() const { return core_.get(); }
  bool connecting() const { return static_cast<bool>(connect_done_); }
  const std::vector<std::uint8_t>& response() const { return response_; }
  const SocketAddress& peer() const { return peer_; }
  Instant unconfirmed_deadline() const { return unconfirmed_deadline_; }
  void expire() {
    state_ = State::kClosed;
    core_.reset();
  }
  // The loop is going away: forget everything, call nothing.
  void drop() {
    handler_ = nullptr;
    connect_done_ = nullptr;
    filter_.reset();
    core_.reset();
    state_ = State::kClosed;
  }

  // Endpoint bookkeeping.
  Instant timer_at = kNever;
  bool dirty = false;
  ConnectionId client_cid{};  // server: the client's id (its Initials' scid)

 private:
  class CoreSink;
  class WireSink;
  void make_core(const HandshakeResult& keys, const ConnectionId& peer_cid, ByteView peer_params, Instant now);
  void fail_connect(Status why);
  void finish(Status reason);
  void deliver_reads(bool ignore_pause);
  void push_out();
  bool transmit(Instant now);
  void send_initial();
  Instant next_deadline() const;

  std::shared_ptr<Endpoint> ep_;
  std::shared_ptr<const UdpOptions> options_;
  Role role_;
  SocketAddress peer_;
  ConnectionId local_cid_{};
  State state_ = State::kHandshake;
  ConnectionHandler* handler_ = nullptr;

  // Handshake (client).
  std::unique_ptr<ClientHandshake> client_hs_;
  ConnectHandler connect_done_;
  Instant connect_deadline_ = kNever;
  Instant resend_at_ = kNever;
  std::chrono::milliseconds resend_interval_{0};
  // Handshake (server).
  std::vector<std::uint8_t> response_;
  Instant unconfirmed_deadline_ = kNever;
  bool confirmed_ = false;

  std::unique_ptr<AeadProtector> protector_;
  std::unique_ptr<udp::Connection> core_;
  std::unique_ptr<DatagramFilter> filter_;

  Chain out_;
  Buffer read_buf_;
  bool paused_ = false;
  bool readable_ = false;
  bool fin_sent_ = false;
  bool core_closed_ = false;
  Status core_status_;
  bool drained_pending_ = false;  // out_ held bytes: tell the handler when it empties
  Instant linger_deadline_ = kNever;
};

// ---- the socket and its connections ----

class Endpoint final : public std::enable_shared_from_this<Endpoint> {
 public:
  Endpoint(io::EventLoop& loop, UdpSocket socket, std::shared_ptr<const UdpOptions> options, bool server,
           AcceptHandler on_accept)
      : loop_(loop),
        socket_(std::move(socket)),
        options_(std::move(options)),
        server_(server),
        on_accept_(std::move(on_accept)),
        desc_(loop.context()),
        timer_(loop.context()),
        rx_(options_->socket),
        tx_(options_->socket, std::max<std::size_t>({options_->connection.max_packet_size, probe_ceiling(*options_),
                                                     1500})) {
    local_ = socket_.local_address();
    if (server_) {
      ServerHandshakeConfig hs;
      hs.static_key = options_->static_key;
      hs.cookies = options_->cookies;
      hs.load_threshold = options_->cookie_load_threshold;
      server_hs_.emplace(std::move(hs), to_ns(clock_now()));
    }
    scratch_.resize(tx_.max_datagram());
  }

  ~Endpoint() {
    boost::system::error_code ec;
    desc_.release();  // the UdpSocket closes the descriptor
    (void)ec;
  }

  void start() {
    desc_.assign(socket_.fd());
    wait_readable();
  }

  io::EventLoop& loop() { return loop_; }
  const std::shared_ptr<const UdpOptions>& options() const { return options_; }
  const std::string& local_address() const { return local_; }
  int fd() const { return socket_.fd(); }
  bool server() const { return server_; }

  void add(const std::shared_ptr<UdpConn>& c) { conns_[c->local_cid()] = c; }

  // Marks a connection as having work; the pass runs after the handlers already queued.
  void touch(UdpConn* c) {
    if (closed_) return;
    if (!c->dirty) {
      c->dirty = true;
      dirty_.push_back(c->shared_from_this());
    }
    if (!pass_posted_ && !in_pass_) {
      pass_posted_ = true;
      loop_.post([self = shared_from_this()] {
        self->pass_posted_ = false;
        self->run_pass();
      });
    }
  }

  // Runs after every pass of a connection: a moved deadline re-keys its node (no allocation).
  void set_timer(UdpConn* c, Instant when) {
    if (c->timer_at == when) return;
    auto node = c->timer_at != kNever ? timers_.extract({c->timer_at, c}) : decltype(timers_)::node_type();
    c->timer_at = when;
    if (when == kNever) return;
    if (node) {
      node.value() = {when, c};
      timers_.insert(std::move(node));
    } else {
      timers_.insert({when, c});
    }
  }

  // Sends one datagram (copied); dropped, as UDP may, when the socket is blocked and the
  // batch is full.
  void send_datagram(ByteView d, const SocketAddress& to) {
    if (closed_ || d.size() > tx_.max_datagram()) return;
    if (tx_.full() && !flush()) {
      ++dropped_full_;
      return;
    }
    tx_.push(d, to);
  }
  // A slot for the next datagram, or an empty span when the socket is blocked.
  std::span<std::uint8_t> slot() {
    if (tx_.full() && !flush()) return {};
    return tx_.slot();
  }
  void commit(std::size_t len, const SocketAddress& to) { tx_.commit(len, to); }
  std::span<std::uint8_t> scratch() { return {scratch_.data(), scratch_.size()}; }
  // The largest datagram this endpoint's socket can send (and MTU probing may try).
  std::size_t max_send_datagram() const { return tx_.max_datagram(); }
  // The largest datagram its socket receives whole.
  std::size_t max_receive_datagram() const { return options_->socket.max_datagram; }
  bool blocked() const { return write_waiting_; }
  void wait_for_write(UdpConn* c) { write_waiters_.push_back(c->shared_from_this()); }

  FecFilterStats* fec_totals() { return &fec_totals_; }

  void stop_accepting() { accepting_ = false; }
  void listener_gone() {
    listener_alive_ = false;
    accepting_ = false;
    maybe_close();
  }

  UdpEndpointStats stats() const {
    UdpEndpointStats s = stats_;
    s.traffic = gone_traffic_;
    for (const auto& [cid, c] : conns_) {
      if (const udp::Connection* core = c->core()) {
        const ConnectionStats cs = core->stats();
        s.traffic.add(cs);
        if (core->state() != ConnectionState::kOpen) continue;
        s.max_packet_size_min = s.max_packet_size_min == 0 ? cs.max_packet_size
                                                           : std::min(s.max_packet_size_min, cs.max_packet_size);
        s.max_packet_size_max = std::max(s.max_packet_size_max, cs.max_packet_size);
      }
    }
    s.connections = conns_.size();
    s.unconfirmed = by_client_cid_.size();
    s.socket = socket_.counters();
    s.fec = fec_totals_;
    if (server_hs_) s.retries_sent = server_hs_->counters().retries_sent;
    return s;
  }

  // Client registry: one shared socket per loop and address family.
  static std::shared_ptr<Endpoint> shared_client(io::EventLoop& loop, int family,
                                                 std::shared_ptr<const UdpOptions> options, Status& error);

 private:
  // The read wait is always pending while the endpoint is open. When the loop is destroyed
  // with it still pending, its handler is destroyed without running: the sentinel then drops
  // every connection, which breaks the endpoint <-> connection reference cycle.
  struct ShutdownSentinel {
    std::shared_ptr<Endpoint> ep;
    explicit ShutdownSentinel(std::shared_ptr<Endpoint> e) : ep(std::move(e)) {}
    ShutdownSentinel(ShutdownSentinel&& o) noexcept : ep(std::move(o.ep)) {}
    ShutdownSentinel(const ShutdownSentinel&) = delete;
    ~ShutdownSentinel() {
      if (ep) ep->drop_all();
    }
  };

  void wait_readable() {
    desc_.async_wait(asio::posix::stream_descriptor::wait_read,
                     [s = ShutdownSentinel(shared_from_this())](const boost::system::error_code& ec) mutable {
                       std::shared_ptr<Endpoint> self = std::move(s.ep);
                       if (ec || self->closed_) return;
                       self->on_readable();
                     });
  }

  void drop_all() {
    closed_ = true;
    auto conns = std::move(conns_);
    conns_.clear();
    by_client_cid_.clear();
    timers_.clear();
    dirty_.clear();
    write_waiters_.clear();
    for (auto& [cid, c] : conns) c->drop();
  }

  void on_readable() {
    const Instant now = clock_now();
    for (int round = 0; round < kReceiveRounds; ++round) {
      Result<std::size_t> n = socket_.receive(rx_);
      if (!n.is_ok()) continue;  // an ICMP error surfaced: the socket goes on
      if (*n == 0) break;
      for (std::size_t i = 0; i < *n; ++i) dispatch(now, rx_.data(i), rx_.from(i));
      if (rx_.messages() < rx_.capacity()) break;
    }
    run_pass();
    if (!closed_) wait_readable();
  }

  void dispatch(Instant now, std::span<std::uint8_t> d, const SocketAddress& from) {
    if (d.empty() || !(d[0] & kFixedBit)) {
      ++stats_.dropped_malformed;
      return;
    }
    if (d[0] & kLongHeaderBit) {
      const auto type = static_cast<LongType>(d[0] & kLongTypeMask);
      if (server_ && type == LongType::kInitial) {
        on_initial(now, ByteView(d.data(), d.size()), from);
        return;
      }
      if (!server_ && type != LongType::kInitial && d.size() >= 5 + kConnectionIdLen) {
        ConnectionId dcid;
        std::memcpy(dcid.data(), d.data() + 5, kConnectionIdLen);
        auto it = conns_.find(dcid);
        if (it != conns_.end()) {
          it->second->on_handshake_packet(now, ByteView(d.data(), d.size()));
          mark(it->second);
          return;
        }
      }
      ++stats_.dropped_malformed;
      return;
    }
    if (d.size() < 1 + kConnectionIdLen) {
      ++stats_.dropped_malformed;
      return;
    }
    ConnectionId dcid;
    std::memcpy(dcid.data(), d.data() + 1, kConnectionIdLen);
    auto it = conns_.find(dcid);
    if (it == conns_.end()) {
      ++stats_.dropped_unknown;
      return;
    }
    std::shared_ptr<UdpConn> c = it->second;
    const bool was_confirmed = c->confirmed();
    c->on_datagram(now, d, from);
    mark(c);
    if (server_ && !was_confirmed && c->confirmed()) {
      by_client_cid_.erase(c->client_cid);
      ++stats_.accepted;
      if (on_accept_) on_accept_(c);
    }
  }

  void on_initial(Instant now, ByteView d, const SocketAddress& from) {
    ++stats_.initials;
    if (!accepting_) return;
    Result<InitialPacket> parsed = parse_initial(d);
    if (parsed.is_ok()) {
      auto known = by_client_cid_.find(parsed->scid);
      if (known != by_client_cid_.end()) {
        // A repeated Initial: the Response was lost. Same bytes again, no new state.
        if (known->second->peer() == from) send_datagram(ByteView(known->second->response()), from);
        return;
      }
    }
    ServerHandshake::Decision dec = server_hs_->on_initial(d, from.peer(), by_client_cid_.size(), to_ns(now));
    switch (dec.action) {
      case ServerHandshake::Decision::Action::kDrop:
        ++stats_.dropped_malformed;
        return;
      case ServerHandshake::Decision::Action::kRetry:
        send_datagram(ByteView(dec.retry), from);
        return;
      case ServerHandshake::Decision::Action::kAccept:
        break;
    }
    ConnectionId cid;
    do {
      cid = random_connection_id();
    } while (conns_.count(cid) > 0);
    TransportParams ours;
    const ConnectionOptions& co = options_->connection;
    ours.stream_receive_window = co.stream_receive_window;
    ours.connection_receive_window = co.connection_receive_window;
    ours.max_ack_delay_us = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(co.ack.max_ack_delay).count());
    ours.idle_timeout_ms = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(co.idle_timeout).count());
    ours.fec = options_->fec.enabled && !options_->filter;
    const std::vector<std::uint8_t> params = encode_transport_params(ours);
    Result<ServerHandshake::Accepted> acc = server_hs_->respond(dec.initial, cid, ByteView(params));
    if (!acc.is_ok()) {
      ++stats_.handshakes_refused;
      SLIP_LOG_DEBUG("udp handshake from {} refused: {}", from.to_string(), acc.status().to_string());
      std::vector<std::uint8_t> refused;
      encode_refused(RefusedPacket{kUdpVersion, dec.initial.scid, static_cast<std::uint8_t>(RefusedReason::kHandshakeFailed)},
                     refused);
      send_datagram(ByteView(refused), from);
      return;
    }
    if (acc->client_cid != dec.initial.scid) return;  // cannot happen: the handshake echoes it
    auto c = std::make_shared<UdpConn>(shared_from_this(), options_, Role::kServer, from);
    c->client_cid = acc->client_cid;
    c->begin_server(*acc, now);
    if (c->done()) return;  // bad transport parameters
    add(c);
    by_client_cid_[acc->client_cid] = c.get();
    send_datagram(ByteView(acc->response), from);
    mark(c);
  }

  void mark(const std::shared_ptr<UdpConn>& c) {
    if (!c->dirty) {
      c->dirty = true;
      dirty_.push_back(c);
    }
  }

 public:
  // Services every connection with work, sends, re-arms the timer.
  void run_pass() {
    if (closed_) return;
    in_pass_ = true;
    const Instant now = clock_now();
    std::vector<std::shared_ptr<UdpConn>> list;
    list.swap(dirty_);
    for (auto& c : list) {
      c->dirty = false;
      if (!c->service(now)) wait_for_write(c.get());
      if (c->done()) remove(*c);
    }
    in_pass_ = false;
    flush();
    if (!dirty_.empty() && !pass_posted_) {
      pass_posted_ = true;
      loop_.post([self = shared_from_this()] {
        self->pass_posted_ = false;
        self->run_pass();
      });
    }
    arm_timer();
    maybe_close();
  }

  void remove(UdpConn& c) {
    set_timer(&c, kNever);
    if (by_client_cid_.erase(c.client_cid) > 0 && !c.confirmed()) ++stats_.expired_unconfirmed;
    if (conns_.erase(c.local_cid()) > 0 && c.core() != nullptr) gone_traffic_.add(c.core()->stats());
  }

  void expire_unconfirmed(UdpConn& c) {
    c.expire();
    remove(c);
  }

 private:
  // Returns false when the socket is full (a writability wait is armed).
  bool flush() {
    if (tx_.empty()) return true;
    if (write_waiting_) return false;
    if (socket_.send(tx_)) return true;
    write_waiting_ = true;
    desc_.async_wait(asio::posix::stream_descriptor::wait_write,
                     [self = shared_from_this()](const boost::system::error_code& ec) {
                       self->write_waiting_ = false;
                       if (ec || self->closed_) return;
                       if (!self->flush()) return;
                       std::vector<std::shared_ptr<UdpConn>> waiters;
                       waiters.swap(self->write_waiters_);
                       for (auto& c : waiters) self->mark(c);
                       self->run_pass();
                     });
    return false;
  }

  void arm_timer() {
    if (closed_ || timers_.empty()) return;
    const Instant first = timers_.begin()->first;
    if (first == armed_at_) return;
    armed_at_ = first;
    timer_.expires_at(std::chrono::steady_clock::time_point(
        std::chrono::duration_cast<std::chrono::steady_clock::duration>(first.time_since_epoch())));
    timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (ec || self->closed_) return;
      self->armed_at_ = kNever;
      self->on_timer();
    });
  }

  void on_timer() {
    const Instant now = clock_now();
    while (!timers_.empty() && timers_.begin()->first <= now) {
      UdpConn* c = timers_.begin()->second;
      timers_.erase(timers_.begin());
      c->timer_at = kNever;
      auto it = conns_.find(c->local_cid());
      if (it == conns_.end()) continue;
      std::shared_ptr<UdpConn> keep = it->second;
      if (server_ && !keep->confirmed() && now >= keep->unconfirmed_deadline()) {
        expire_unconfirmed(*keep);
        continue;
      }
      keep->on_timer(now);
      mark(keep);
    }
    run_pass();
  }

  void maybe_close();

  io::EventLoop& loop_;
  UdpSocket socket_;
  std::shared_ptr<const UdpOptions> options_;
  bool server_;
  AcceptHandler on_accept_;
  asio::posix::stream_descriptor desc_;
  asio::steady_timer timer_;
  Instant armed_at_ = kNever;
  ReceiveBatch rx_;
  SendBatch tx_;
  std::vector<std::uint8_t> scratch_;
  std::string local_;
  std::optional<ServerHandshake> server_hs_;

  std::unordered_map<ConnectionId, std::shared_ptr<UdpConn>, CidHash> conns_;
  std::unordered_map<ConnectionId, UdpConn*, CidHash> by_client_cid_;  // server: unconfirmed
  std::set<std::pair<Instant, UdpConn*>> timers_;
  std::vector<std::shared_ptr<UdpConn>> dirty_;
  std::vector<std::shared_ptr<UdpConn>> write_waiters_;
  bool pass_posted_ = false;
  bool in_pass_ = false;
  bool write_waiting_ = false;
  bool accepting_ = true;
  bool listener_alive_ = true;
  bool closed_ = false;
  std::uint64_t dropped_full_ = 0;
  UdpEndpointStats stats_;
  UdpTraffic gone_traffic_;  // connections removed
  FecFilterStats fec_totals_;

 public:
  // Client registry key, for removal.
  std::pair<io::EventLoop*, int> registry_key{nullptr, 0};
};

namespace {
std::mutex g_registry_mu;
std::map<std::pair<io::EventLoop*, int>, std::weak_ptr<Endpoint>> g_registry;
}  // namespace

std::shared_ptr<Endpoint> Endpoint::shared_client(io::EventLoop& loop, int family,
                                                  std::shared_ptr<const UdpOptions> options, Status& error) {
  const auto key = std::make_pair(&loop, family);
  if (options->share_client_socket) {
    std::lock_guard<std::mutex> g(g_registry_mu);
    auto it = g_registry.find(key);
    if (it != g_registry.end()) {
      if (auto ep = it->second.lock(); ep && !ep->closed_) return ep;
    }
  }
  const HostPort any{family == AF_INET6 ? "::" : "0.0.0.0", 0};
  Result<UdpSocket> s = UdpSocket::bind(any, options->socket);
  if (!s.is_ok()) {
    error = s.status();
    return nullptr;
  }
  auto ep = std::make_shared<Endpoint>(loop, std::move(s).value(), options, false, nullptr);
  ep->listener_alive_ = false;
  ep->start();
  if (options->share_client_socket) {
    ep->registry_key = key;
    std::lock_guard<std::mutex> g(g_registry_mu);
    g_registry[key] = ep;
  }
  return ep;
}

void Endpoint::maybe_close() {
  if (closed_ || listener_alive_ || !conns_.empty()) return;
  closed_ = true;
  boost::system::error_code ec;
  desc_.cancel(ec);
  timer_.cancel();
  dirty_.clear();
  write_waiters_.clear();
  if (registry_key.first != nullptr) {
    std::lock_guard<std::mutex> g(g_registry_mu);
    auto it = g_registry.find(registry_key);
    if (it != g_registry.end() && it->second.lock().get() == this) g_registry.erase(it);
  }
}

void UdpTraffic::add(const ConnectionStats& s) {
  packets_sent += s.packets_sent;
  packets_received += s.packets_received;
  packets_lost += s.packets_lost;
  packets_retransmitted += s.packets_retransmitted;
  packets_rejected += s.packets_rejected;
  packets_duplicate += s.packets_duplicate;
  probes_sent += s.probes_sent;
  mtu_probes_sent += s.mtu_probes_sent;
  mtu_probes_acked += s.mtu_probes_acked;
  mtu_probes_lost += s.mtu_probes_lost;
  mtu_black_holes += s.mtu_black_holes;
  bytes_sent += s.bytes_sent;
  bytes_received += s.bytes_received;
}

// ---- UdpConn ----

class UdpConn::CoreSink final : public DatagramSink {
 public:
  CoreSink(UdpConn& c, Instant now) : c_(c), now_(now) {}
  void deliver(ByteView d) override {
    if (c_.core_) c_.core_->on_datagram(now_, d);
  }

 private:
  UdpConn& c_;
  Instant now_;
};

class UdpConn::WireSink final : public DatagramSink {
 public:
  explicit WireSink(UdpConn& c) : c_(c) {}
  void deliver(ByteView d) override { c_.ep_->send_datagram(d, c_.peer_); }

 private:
  UdpConn& c_;
};

io::EventLoop& UdpConn::loop() { return ep_->loop(); }

void UdpConn::start(ConnectionHandler* handler) {
  handler_ = handler;
  ep_->touch(this);
}

void UdpConn::send(Chain bytes) {
  if (state_ != State::kOpen || bytes.empty()) return;
  out_.append(std::move(bytes));
  ep_->touch(this);
}

void UdpConn::resume_reading() {
  if (!paused_) return;
  paused_ = false;
  ep_->touch(this);
}

void UdpConn::close() {
  if (state_ != State::kOpen) return;
  state_ = State::kClosing;
  linger_deadline_ = clock_now() + options_->close_linger;
  ep_->touch(this);
}

void UdpConn::abort(Status reason) {
  if (state_ == State::kClosed) return;
  out_.clear();
  if (core_ && core_->state() == ConnectionState::kOpen) {
    core_->close(clock_now(), reason.is_ok() ? cancelled("connection aborted") : reason);
  }
  finish(std::move(reason));
  ep_->touch(this);
}

void UdpConn::begin_client(ClientHandshakeConfig hs, ConnectHandler done, Instant now) {
  client_hs_ = std::make_unique<ClientHandshake>(std::move(hs));
  local_cid_ = client_hs_->local_cid();
  connect_done_ = std::move(done);
  connect_deadline_ = now + options_->connect_timeout;
  resend_interval_ = options_->initial_resend;
  send_initial();
  resend_at_ = now + resend_interval_;
}

void UdpConn::send_initial() {
  Result<std::vector<std::uint8_t>> d = client_hs_->initial_datagram();
  if (!d.is_ok()) {
    fail_connect(d.status().with_context("udp handshake"));
    return;
  }
  ep_->send_datagram(ByteView(*d), peer_);
}

void UdpConn::fail_connect(Status why) {
  if (!connect_done_) return;
  ConnectHandler done = std::move(connect_done_);
  connect_done_ = nullptr;
  state_ = State::kClosed;
  client_hs_.reset();
  done(std::move(why));
}

void UdpConn::on_handshake_packet(Instant now, ByteView d) {
  if (!client_hs_ || !connect_done_) return;
  Result<ClientHandshake::Event> ev = client_hs_->on_datagram(d);
  if (!ev.is_ok()) return;  // forged, damaged or stray: keep waiting
  switch (*ev) {
    case ClientHandshake::Event::kResend:
      send_initial();
      return;
    case ClientHandshake::Event::kRefused:
      fail_connect(unauthenticated(url_of(peer_.to_string()) +
                                   " refused the handshake: the server does not hold the pinned key " +
                                   format_public_key(options_->server_key) +
                                   " (compare --server-key with `slip udp-key public` on the server)"));
      return;
    case ClientHandshake::Event::kComplete:
      break;
  }
  const ClientHandshakeResult& r = client_hs_->result();
  make_core(r.keys, r.server_cid, ByteView(r.server_params), now);
  client_hs_.reset();
  if (state_ == State::kClosed) {
    fail_connect(invalid_argument("udp handshake: bad transport parameters from the server"));
    return;
  }
  confirmed_ = true;
  // An empty datagram confirms the handshake to the server at once, whatever the application
  // sends first.
  (void)core_->send_datagram(ByteView());
  ConnectHandler done = std::move(connect_done_);
  connect_done_ = nullptr;
  resend_at_ = kNever;
  connect_deadline_ = kNever;
  done(ConnectionPtr(shared_from_this()));
}

void UdpConn::begin_server(const ServerHandshake::Accepted& a, Instant now) {
  local_cid_ = a.local_cid;
  response_ = a.response;
  unconfirmed_deadline_ = now + options_->unconfirmed_timeout;
  make_core(a.keys, a.client_cid, ByteView(a.client_params), now);
}

void UdpConn::make_core(const HandshakeResult& keys, const ConnectionId& peer_cid, ByteView peer_params,
                        Instant now) {
  Result<TransportParams> tp = decode_transport_params(peer_params);
  if (!tp.is_ok()) {
    state_ = State::kClosed;
    return;
  }
  ConnectionOptions co = options_->connection;
  co.role = role_;
  co.local_cid = local_cid_;
  co.peer_cid = peer_cid;
  co.peer_stream_receive_window = tp->stream_receive_window;
  co.peer_connection_receive_window = tp->connection_receive_window;
  co.recovery.peer_max_ack_delay = std::chrono::microseconds(std::min<std::uint64_t>(tp->max_ack_delay_us, 1u << 24));
  if (co.mtu.enabled) {
    // The probed maximum: the configured one, or what the route to the peer allows, within what
    // our socket sends and receives whole.
    std::size_t max = co.mtu.max_packet_size;
    if (max == 0) max = default_max_datagram(peer_);
    co.mtu.max_packet_size = std::min({max, ep_->max_send_datagram(), ep_->max_receive_datagram()});
  }
  const bool fec = !options_->filter && fec_negotiated(options_->fec, tp->fec);
  if (fec) fec_adjust_connection(options_->fec, co);
  protector_ = std::make_unique<AeadProtector>(keys.send.key(), keys.receive.key());
  core_ = std::make_unique<udp::Connection>(co, protector_.get(), now);
  if (role_ == Role::kClient) (void)core_->open_stream(Priority::kStream);
  if (options_->filter) {
    filter_ = options_->filter(role_);
  } else if (fec) {
    // The filter wraps packets up to the probed size (fec_adjust_connection left room for it).
    FecOptions fo = options_->fec;
    fo.decoder.max_datagram_size = std::max(fo.decoder.max_datagram_size, co.mtu.max_packet_size);
    filter_ = std::make_unique<FecFilter>(
        fo, [] { return clock_now(); },
        [this]() -> std::pair<std::uint64_t, std::uint64_t> {
          if (!core_) return {0, 0};
          const ConnectionStats st = core_->stats();
          return {st.packets_sent, st.packets_lost};
        },
        ep_->fec_totals());
  }
  state_ = State::kOpen;
}

void UdpConn::on_datagram(Instant now, std::span<std::uint8_t> d, const SocketAddress& from) {
  if (!core_) return;
  const std::uint64_t before = core_->packets_received();
  if (filter_) {
    CoreSink sink(*this, now);
    filter_->incoming(ByteView(d.data(), d.size()), sink);
  } else {
    core_->on_datagram_in_place(now, d);
  }
  if (core_->packets_received() == before) return;
  // Authentic: the peer is there (and may have moved).
  if (!(from == peer_)) peer_ = from;
  if (!confirmed_) {
    confirmed_ = true;
    response_.clear();
    response_.shrink_to_fit();
    unconfirmed_deadline_ = kNever;
  }
}

void UdpConn::on_timer(Instant now) {
  if (connect_done_) {
    if (now >= connect_deadline_) {
      fail_connect(timed_out("no answer from " + url_of(peer_.to_string()) + " within " +
                             std::to_string(options_->connect_timeout.count()) +
                             " ms (is slipd listening for udp there?)"));
      return;
    }
    if (now >= resend_at_) {
      send_initial();
      resend_interval_ = std::min(resend_interval_ * 2, std::chrono::milliseconds(kMaxInitialResend));
      resend_at_ = now + resend_interval_;
    }
    return;
  }
  if (state_ == State::kClosing && now >= linger_deadline_) {
    const Status why = timed_out("close: the peer did not acknowledge the last " + std::to_string(out_.size()) +
                                 " bytes within the linger time");
    if (core_) core_->close(now, why);
    finish(why);
  }
  if (filter_ && filter_->next_timeout() <= now) {
    WireSink sink(*this);
    filter_->on_timeout(now, sink);
  }
  if (core_ && core_->next_timeout() <= now) core_->on_timeout(now);
}

Instant UdpConn::next_deadline() const {
  Instant t = kNever;
  if (connect_done_) return std::min(connect_deadline_, resend_at_);
  if (core_) t = std::min(t, core_->next_timeout());
  if (filter_) t = std::min(t, filter_->next_timeout());
  if (state_ == State::kClosing) t = std::min(t, linger_deadline_);
  if (!confirmed_) t = std::min(t, unconfirmed_deadline_);
  return t;
}

void UdpConn::finish(Status reason) {
  if (state_ == State::kClosed) return;
  state_ = State::kClosed;
  out_.clear();
  if (handler_ != nullptr) {
    // Delivered on a later turn: never from inside a call the handler made.
    ep_->loop().post([self = shared_from_this(), reason = std::move(reason)]() mutable {
      if (self->handler_) self->handler_->on_closed(std::move(reason));
    });
  }
}

void UdpConn::deliver_reads(bool ignore_pause) {
  while (core_ && handler_ != nullptr && state_ != State::kClosed && (ignore_pause || !paused_)) {
    Buffer& b = read_buf_;
    if (b && b.unique()) b.reset();
    if (!b || b.tailroom() < 4096) b = ep_->loop().read_pool().get();
    bool fin = false;
    Result<std::size_t> n = core_->read(kSessionStream, std::span<std::uint8_t>(b.tail(), b.tailroom()), fin);
    if (!n.is_ok()) {
      readable_ = false;
      return;
    }
    if (*n > 0) {
      b.commit(*n);
      handler_->on_bytes(b.slice(b.size() - *n, *n));
    }
    if (fin) {
      readable_ = false;
      if (core_->state() == ConnectionState::kOpen) core_->close(clock_now());
      finish(disconnected("connection closed by peer"));
      return;
    }
    if (*n == 0) {
      readable_ = false;
      return;
    }
  }
}

void UdpConn::push_out() {
  const bool had = !out_.empty();
  while (!out_.empty() && core_ && core_->state() == ConnectionState::kOpen) {
    const std::size_t room = core_->send_capacity(kSessionStream);
    if (room == 0) break;
    // Copied once, from the queued slices straight into the stream's send buffer.
    const std::size_t n = std::min({room, out_.size(), kPushChunk});
    if (!core_->send(kSessionStream, out_, n).is_ok()) break;
    out_.consume(n);
  }
  if (had && out_.empty()) drained_pending_ = true;
}

bool UdpConn::transmit(Instant now) {
  if (!core_) return true;
  for (;;) {
    if (filter_) {
      std::span<std::uint8_t> buf = ep_->scratch();
      const std::size_t n = core_->poll_transmit_into(now, buf);
      if (n == 0) return true;
      WireSink sink(*this);
      filter_->outgoing(ByteView(buf.data(), n), sink);
      if (ep_->blocked()) return false;
      continue;
    }
    std::span<std::uint8_t> slot = ep_->slot();
    if (slot.empty()) return false;
    const std::size_t n = core_->poll_transmit_into(now, slot);
    if (n == 0) return true;
    ep_->commit(n, peer_);
  }
}

bool UdpConn::service(Instant now) {
  if (connect_done_ || !core_) {
    ep_->set_timer(this, next_deadline());
    return true;
  }
  while (std::optional<Event> ev = core_->poll_event()) {
    switch (ev->type) {
      case EventType::kStreamReadable:
        if (ev->stream_id == kSessionStream) readable_ = true;
        break;
      case EventType::kDatagramsReadable:
        while (core_->read_datagram()) {
        }
        break;
      case EventType::kClosed:
        core_closed_ = true;
        core_status_ = ev->status;
        break;
      default:
        break;
    }
  }
  if (readable_ && confirmed_) deliver_reads(false);
  if (core_closed_ && state_ != State::kClosed) {
    // What arrived before the peer's CLOSE still reaches the session.
    deliver_reads(true);
    Status why = core_status_;
    if (state_ == State::kClosing && fin_sent_) {
      why = Status();  // we were closing and the peer, having read everything, closed too
    } else if (why.is_ok() || why.code() == StatusCode::kDisconnected) {
      why = disconnected("connection closed by peer");
    }
    finish(std::move(why));
  }
  if (state_ == State::kOpen || state_ == State::kClosing) push_out();
  if (state_ == State::kClosing && out_.empty() && core_->state() == ConnectionState::kOpen) {
    if (!fin_sent_ && core_->send(kSessionStream, ByteView(), true).is_ok()) fin_sent_ = true;
    if (fin_sent_ && core_->is_quiescent()) {
      core_->close(now);
      finish(Status());
    }
  }
  const bool sent_all = transmit(now);
  if (drained_pending_ && state_ == State::kOpen && handler_ != nullptr) {
    drained_pending_ = false;
    handler_->on_send_drained();
  }
  ep_->set_timer(this, next_deadline());
  return sent_all;
}

// ---- listener ----

namespace {

class UdpListenerImpl final : public UdpListener {
 public:
  UdpListenerImpl(std::shared_ptr<Endpoint> ep, std::string key)
      : ep_(std::move(ep)), local_(ep_->local_address()), key_(std::move(key)), fd_(ep_->fd()) {}
  ~UdpListenerImpl() override {
    stop();
    ep_->loop().post([ep = ep_] { ep->listener_gone(); });
  }
  void stop() override {
    if (stopped_.exchange(true)) return;
    ep_->loop().post([ep = ep_] { ep->stop_accepting(); });
  }
  std::string local_address() const override { return local_; }
  std::string public_key() const override { return key_; }
  int socket_fd() const override { return fd_; }
  UdpEndpointStats stats() const override {
    std::promise<UdpEndpointStats> p;
    auto f = p.get_future();
    ep_->loop().post([&p, ep = ep_] { p.set_value(ep->stats()); });
    return f.get();
  }
  void stats_async(std::function<void(UdpEndpointStats)> done) const override {
    ep_->loop().post([done = std::move(done), ep = ep_] { done(ep->stats()); });
  }

 private:
  std::shared_ptr<Endpoint> ep_;
  std::string local_;
  std::string key_;
  int fd_;
  std::atomic<bool> stopped_{false};
};

}  // namespace

Result<std::unique_ptr<UdpListener>> udp_listen(io::LoopGroup& loops, const HostPort& address,
                                                const UdpOptions& given, AcceptHandler on_accept) {
  const UdpOptions options = with_mtu_socket(given);
  if (options.loop_index >= loops.size()) return invalid_argument("udp listener: no such loop");
  if (options.static_key.public_key == PublicKey{}) return invalid_argument("udp listener: no server key");
  if (options.fec.enabled) {
    if (Status st = validate_fec_options(options.fec); !st.is_ok()) return st.with_context("udp listener");
  }
  Result<UdpSocket> s = UdpSocket::bind(address, options.socket);
  if (!s.is_ok()) return s.status();
  auto opts = std::make_shared<const UdpOptions>(options);
  io::EventLoop& loop = loops.loop(options.loop_index);
  auto ep = std::make_shared<Endpoint>(loop, std::move(s).value(), opts, true, std::move(on_accept));
  loop.post([ep] { ep->start(); });
  return std::unique_ptr<UdpListener>(
      std::make_unique<UdpListenerImpl>(ep, format_public_key(options.static_key.public_key)));
}

// ---- connect ----

namespace {

void connect_resolved(io::EventLoop& loop, const SocketAddress& to, std::shared_ptr<const UdpOptions> opts,
                      ConnectHandler done) {
  Status error;
  std::shared_ptr<Endpoint> ep = Endpoint::shared_client(loop, to.family(), opts, error);
  if (!ep) {
    done(error);
    return;
  }
  auto c = std::make_shared<UdpConn>(ep, opts, Role::kClient, to);
  ClientHandshakeConfig hs;
  hs.static_key = KeyPair::generate();
  hs.server_key = opts->server_key;
  TransportParams ours;
  ours.stream_receive_window = opts->connection.stream_receive_window;
  ours.connection_receive_window = opts->connection.connection_receive_window;
  ours.max_ack_delay_us = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(opts->connection.ack.max_ack_delay).count());
  ours.idle_timeout_ms = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(opts->connection.idle_timeout).count());
  ours.fec = opts->fec.enabled && !opts->filter;
  hs.transport_params = encode_transport_params(ours);
  c->begin_client(std::move(hs), std::move(done), clock_now());
  ep->add(c);
  ep->touch(c.get());
}

}  // namespace

void udp_connect(io::EventLoop& loop, const HostPort& address, const UdpOptions& options, ConnectHandler done) {
  auto opts = std::make_shared<const UdpOptions>(with_mtu_socket(options));
  if (opts->server_key == PublicKey{}) {
    loop.post([done = std::move(done)] {
      done(invalid_argument("udp connect: no server key pinned (--server-key, as `slip udp-key public` prints it)"));
    });
    return;
  }
  if (opts->fec.enabled) {
    if (Status st = validate_fec_options(opts->fec); !st.is_ok()) {
      loop.post([done = std::move(done), st = st.with_context("udp connect")] { done(st); });
      return;
    }
  }
  Result<SocketAddress> numeric = SocketAddress::from_host_port(address);
  if (numeric.is_ok()) {
    loop.post([&loop, to = *numeric, opts, done = std::move(done)]() mutable {
      connect_resolved(loop, to, opts, std::move(done));
    });
    return;
  }
  auto resolver = std::make_shared<asio::ip::udp::resolver>(loop.context());
  resolver->async_resolve(
      address.host, std::to_string(address.port),
      [&loop, resolver, opts, address, done = std::move(done)](const boost::system::error_code& ec,
                                                               asio::ip::udp::resolver::results_type results) mutable {
        if (ec || results.empty()) {
          done(not_found("cannot resolve " + address.host + ": " + ec.message()));
          return;
        }
        const asio::ip::udp::endpoint ep = results.begin()->endpoint();
        SocketAddress to;
        std::memcpy(&to.storage, ep.data(), ep.size());
        to.len = static_cast<socklen_t>(ep.size());
        connect_resolved(loop, to, opts, std::move(done));
      });
}

// ---- transport parameters, URLs ----

std::vector<std::uint8_t> encode_transport_params(const TransportParams& p) {
  std::vector<std::uint8_t> out(5 * kMaxVarint64Bytes);
  std::uint8_t* w = out.data();
  const std::uint64_t flags = p.fec ? 1 : 0;
  for (std::uint64_t v :
       {p.stream_receive_window, p.connection_receive_window, p.max_ack_delay_us, p.idle_timeout_ms, flags}) {
    w = encode_varint(w, std::min(v, kMaxVarintValue));
  }
  out.resize(static_cast<std::size_t>(w - out.data()));
  return out;
}

Result<TransportParams> decode_transport_params(ByteView bytes) {
  std::uint64_t v[4];
  std::size_t pos = 0;
  for (auto& x : v) {
    VarintResult r = decode_varint(bytes.data() + pos, bytes.size() - pos);
    if (r.error != VarintError::kOk || r.value > kMaxVarintValue) {
      return invalid_argument("udp transport parameters: truncated or bad varint");
    }
    x = r.value;
    pos += r.length;
  }
  if (v[0] == 0 || v[1] == 0) return invalid_argument("udp transport parameters: zero receive window");
  TransportParams p{v[0], v[1], v[2], v[3]};
  if (pos < bytes.size()) {
    // The flags (absent from older peers' parameters).
    VarintResult r = decode_varint(bytes.data() + pos, bytes.size() - pos);
    if (r.error != VarintError::kOk || r.value > kMaxVarintValue) {
      return invalid_argument("udp transport parameters: truncated or bad flags varint");
    }
    p.fec = (r.value & 1) != 0;
  }
  return p;
}

std::optional<std::string> udp_url_address(std::string_view url) {
  constexpr std::string_view kScheme = "udp://";
  if (url.size() <= kScheme.size() || url.substr(0, kScheme.size()) != kScheme) return std::nullopt;
  std::string_view rest = url.substr(kScheme.size());
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  return std::string(rest);
}

}  // namespace slip::transport::udp
