#include "transport/udp/connection.h"

#include <algorithm>
#include <cstring>
#include <memory>

#include "core/assert.h"
#include "core/varint.h"
#include "transport/udp/packet.h"

namespace slip::transport::udp {

namespace {

// Below this much room a packet counts as full: no useful frame fits.
constexpr std::size_t kMinFrameRoom = 8;
// Datagrams and frames are never built smaller than this.
constexpr std::size_t kMinPacketSize = 128;
// The largest UDP payload (65535 less the UDP header): MTU probing never goes beyond.
constexpr std::size_t kMaxUdpPayload = 65527;

std::size_t class_of(Priority p) { return static_cast<std::size_t>(p) & 3; }

// The most data of `want` bytes that fits in `room` in one STREAM frame, given the overhead
// `ovh` computed for the full length: a shorter length may have a shorter varint, so the
// packet is filled to the byte.
std::size_t fit_stream_len(std::uint64_t id, std::uint64_t offset, std::uint64_t want, std::size_t room,
                           std::size_t ovh) {
  std::size_t len = static_cast<std::size_t>(std::min<std::uint64_t>(want, room - ovh));
  const std::size_t ovh2 = FrameWriter::stream_overhead(id, offset, len);
  const std::size_t len2 = static_cast<std::size_t>(std::min<std::uint64_t>(want, room - ovh2));
  if (len2 > len && FrameWriter::stream_overhead(id, offset, len2) + len2 <= room) len = len2;
  return len;
}

// A stream's send buffer: the bytes written and not yet acknowledged, in a ring. Acknowledged
// bytes leave from the front without moving the rest (a string erased from the front moved
// every byte still buffered); the ring doubles when a write does not fit and keeps its size.
class SendRing {
 public:
  std::size_t size() const { return size_; }
  void append(const std::uint8_t* p, std::size_t n) {
    if (n == 0) return;
    reserve(size_ + n);
    const std::size_t tail = (head_ + size_) & (cap_ - 1);
    const std::size_t first = std::min(n, cap_ - tail);
    std::memcpy(buf_.get() + tail, p, first);
    if (n > first) std::memcpy(buf_.get(), p + first, n - first);
    size_ += n;
  }
  void consume(std::size_t n) {
    n = std::min(n, size_);
    size_ -= n;
    head_ = size_ == 0 ? 0 : (head_ + n) & (cap_ - 1);
  }
  // The bytes from `pos` (0 is the front) on, at most `n`, as far as they lie in one piece
  // (shorter where the ring wraps).
  ByteView view(std::size_t pos, std::size_t n) const {
    if (n == 0) return {};
    const std::size_t at = (head_ + pos) & (cap_ - 1);
    return {buf_.get() + at, std::min(n, cap_ - at)};
  }

 private:
  void reserve(std::size_t need) {
    if (need <= cap_) return;
    std::size_t cap = std::max<std::size_t>(cap_, 4096);
    while (cap < need) cap *= 2;
    std::unique_ptr<std::uint8_t[]> buf(new std::uint8_t[cap]);
    const std::size_t first = std::min(size_, cap_ - head_);
    if (size_ > 0) {
      std::memcpy(buf.get(), buf_.get() + head_, first);
      std::memcpy(buf.get() + first, buf_.get(), size_ - first);
    }
    buf_ = std::move(buf);
    cap_ = cap;
    head_ = 0;
  }

  std::unique_ptr<std::uint8_t[]> buf_;
  std::size_t cap_ = 0;  // a power of two (or 0)
  std::size_t head_ = 0;
  std::size_t size_ = 0;
};

std::string cat_u64(std::string s, std::uint64_t v) {
  s.append(std::to_string(v));
  return s;
}

}  // namespace

struct Connection::Stream {
  std::uint64_t id = 0;
  Priority priority = Priority::kStream;
  bool local = false;
  bool queued = false;  // in sendable_[class]

  // Send side. sbuf holds stream bytes [sbase, send_end()): written, not yet all acked.
  SendRing sbuf;
  std::uint64_t sbase = 0;  // everything below is acknowledged
  std::uint64_t ssent = 0;  // everything below has been sent at least once
  std::uint64_t smax = 0;   // the peer's credit
  RangeSet sacked;          // acknowledged ranges above sbase
  RangeSet slost;           // ranges to retransmit, within [sbase, ssent)
  bool fin = false;
  bool fin_sent = false;
  bool fin_acked = false;
  bool fin_lost = false;
  bool want_writable = false;

  // Receive side. rbuf[rhead..] holds stream bytes from rread on (with holes).
  std::string rbuf;
  std::size_t rhead = 0;
  std::uint64_t rread = 0;
  RangeSet rreceived;     // ranges at or above rread
  std::uint64_t rmax = 0;  // credit advertised
  std::uint64_t rhighest = 0;
  std::optional<std::uint64_t> final_size;
  bool fin_read = false;
  bool readable_signaled = false;
  bool max_update_queued = false;

  std::uint64_t send_end() const { return sbase + sbuf.size(); }
  std::size_t buffered() const { return sbuf.size(); }
  std::uint64_t contiguous() const {
    if (rreceived.empty()) return 0;
    const RangeSet::Range r = rreceived.front();
    return r.start <= rread && r.end > rread ? r.end - rread : 0;
  }
};

// Forwards the loss detector's callbacks.
class Connection::Recovery final : public RecoveryHandler {
 public:
  explicit Recovery(Connection* c) : c_(c) {}
  void on_packet_acked(const SentPacket& p) override { c_->on_packet_acked(p); }
  void on_spurious_loss(const SentPacket& p) override { c_->on_spurious_loss(p); }
  void on_packets_lost(const std::vector<const SentPacket*>& lost, bool persistent) override {
    c_->on_packets_lost(lost, persistent);
  }

 private:
  Connection* c_;
};

Connection::Connection(const ConnectionOptions& options, PacketProtector* protector, Instant now)
    : options_(options),
      protector_(protector),
      acks_(options.ack),
      rtt_(options.initial_rtt),
      loss_(options.recovery),
      cc_([&] {
        CongestionOptions c = options.congestion;
        c.max_datagram_size = std::max(options.max_packet_size, kMinPacketSize);
        return c;
      }()),
      pacer_(std::max(options.max_packet_size, kMinPacketSize), options.pacing_burst_packets),
      recovery_handler_(std::make_unique<Recovery>(this)) {
  SLIP_ASSERT(protector_ != nullptr);
  options_.max_packet_size = std::max(options_.max_packet_size, kMinPacketSize);
  conn_send_max_ = options_.peer_connection_receive_window;
  conn_recv_max_ = options_.connection_receive_window;
  last_received_ = last_sent_ = idle_start_ = now;
  now_ = now;
  mtu_base_ = mtu_current_ = mtu_max_ = options_.max_packet_size;
  if (options_.mtu.enabled && options_.mtu.max_packet_size > mtu_base_) {
    mtu_max_ = std::min(options_.mtu.max_packet_size, kMaxUdpPayload);
  }
  ack_scratch_.resize(options_.frame_limits.max_ack_ranges + 1);
  pacer_.set_rate(cc_.window(), rtt_.smoothed());
}

Connection::~Connection() = default;

// --- streams ---

bool Connection::is_local(std::uint64_t id) const {
  const std::uint64_t ours = options_.role == Role::kServer ? 1 : 0;
  return (id & 1) == ours;
}

Connection::Stream* Connection::find_stream(std::uint64_t id) {
  auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : it->second.get();
}

const Connection::Stream* Connection::find_stream(std::uint64_t id) const {
  auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : it->second.get();
}

Connection::Stream& Connection::add_stream(std::uint64_t id, Priority priority, bool local) {
  auto s = std::make_unique<Stream>();
  s->id = id;
  s->priority = priority;
  s->local = local;
  s->smax = options_.peer_stream_receive_window;
  s->rmax = options_.stream_receive_window;
  Stream& ref = *s;
  streams_.emplace(id, std::move(s));
  if (local) {
    ++live_local_streams_;
  } else {
    ++live_peer_streams_;
  }
  return ref;
}

Result<std::uint64_t> Connection::open_stream(Priority priority) {
  if (state_ != ConnectionState::kOpen) return failed_precondition("udp connection is closed");
  // The peer enforces the same limit on us (the options of both ends agree).
  if (live_local_streams_ >= options_.max_peer_streams) {
    return overloaded(cat_u64("udp connection: open streams at the limit of ", options_.max_peer_streams));
  }
  const std::uint64_t id = next_local_index_ * 2 + (options_.role == Role::kServer ? 1 : 0);
  ++next_local_index_;
  add_stream(id, priority, true);
  return id;
}

Status Connection::set_priority(std::uint64_t stream_id, Priority priority) {
  Stream* s = find_stream(stream_id);
  if (!s) return not_found(cat_u64("udp stream ", stream_id));
  if (s->priority == priority) return Status();
  // A queued stream moves to its new class's queue (the old entry goes stale and is skipped).
  s->priority = priority;
  if (s->queued) {
    s->queued = false;
    mark_sendable(*s);
  }
  return Status();
}

bool Connection::stream_has_work(const Stream& s) const {
  if (!s.slost.empty() || s.fin_lost) return true;
  if (s.fin && !s.fin_sent && s.ssent == s.send_end()) return true;
  return s.ssent < s.send_end() && s.ssent < s.smax && conn_sent_ < conn_send_max_;
}

void Connection::mark_sendable(Stream& s) {
  if (s.queued || !stream_has_work(s)) return;
  s.queued = true;
  sendable_[class_of(s.priority)].push_back(s.id);
}

void Connection::maybe_reap(Stream& s) {
  const bool send_done = s.fin && s.fin_acked && s.sbase == s.send_end();
  if (!send_done || !s.fin_read) return;
  if (s.local) {
    --live_local_streams_;
  } else {
    --live_peer_streams_;
  }
  // Stale ids in sendable_ and max_stream_data_pending_ are skipped when they come up.
  streams_.erase(s.id);
}

Result<Connection::Stream*> Connection::stream_taking(std::uint64_t stream_id, std::size_t n) {
  if (state_ != ConnectionState::kOpen) return failed_precondition("udp connection is closed");
  Stream* s = find_stream(stream_id);
  if (!s) return not_found(cat_u64("udp stream ", stream_id));
  if (s->fin) return failed_precondition(cat_u64("udp stream already finished: ", stream_id));
  if (s->buffered() + n > options_.stream_send_buffer) {
    s->want_writable = true;
    return overloaded(cat_u64("udp stream send buffer full, limit ", options_.stream_send_buffer));
  }
  if (s->send_end() + n > kMaxVarintValue) return out_of_range("udp stream offset above 2^62-1");
  return s;
}

Status Connection::send(std::uint64_t stream_id, ByteView data, bool fin) {
  Result<Stream*> r = stream_taking(stream_id, data.size());
  if (!r.is_ok()) return r.status();
  Stream* s = *r;
  s->sbuf.append(data.data(), data.size());
  if (fin) s->fin = true;
  mark_sendable(*s);
  return Status();
}

Status Connection::send(std::uint64_t stream_id, const Chain& data, std::size_t n) {
  n = std::min(n, data.size());
  Result<Stream*> r = stream_taking(stream_id, n);
  if (!r.is_ok()) return r.status();
  Stream* s = *r;
  std::size_t left = n;
  for (const Slice& piece : data) {
    if (left == 0) break;
    const std::size_t k = std::min(left, piece.size());
    s->sbuf.append(piece.data(), k);
    left -= k;
  }
  mark_sendable(*s);
  return Status();
}

std::size_t Connection::send_capacity(std::uint64_t stream_id) const {
  const Stream* s = find_stream(stream_id);
  if (!s || s->fin) return 0;
  return options_.stream_send_buffer > s->buffered() ? options_.stream_send_buffer - s->buffered() : 0;
}

Result<std::size_t> Connection::read(std::uint64_t stream_id, std::span<std::uint8_t> out, bool& fin) {
  fin = false;
  Stream* s = find_stream(stream_id);
  if (!s) return not_found(cat_u64("udp stream ", stream_id));
  const std::uint64_t avail = s->contiguous();
  const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(out.size(), avail));
  if (n > 0) {
    std::memcpy(out.data(), s->rbuf.data() + s->rhead, n);
    s->rhead += n;
    s->rread += n;
    s->rreceived.erase_below(s->rread);
    conn_consumed_ += n;
    // Compact once the consumed prefix is large or most of the buffer.
    if (s->rhead >= 64 * 1024 || s->rhead * 2 >= s->rbuf.size()) {
      s->rbuf.erase(0, s->rhead);
      s->rhead = 0;
    }
  }
  if (s->final_size && s->rread == *s->final_size) {
    fin = true;
    s->fin_read = true;
  }
  if (s->contiguous() == 0) s->readable_signaled = false;

  // Return credit once half a window has been consumed: one update per half window, not one
  // per read.
  if (!s->final_size && s->rmax - s->rread < options_.stream_receive_window / 2) {
    s->rmax = s->rread + options_.stream_receive_window;
    if (!s->max_update_queued) {
      s->max_update_queued = true;
      max_stream_data_pending_.push_back(s->id);
    }
  }
  if (conn_recv_max_ - conn_consumed_ < options_.connection_receive_window / 2) {
    conn_recv_max_ = conn_consumed_ + options_.connection_receive_window;
    max_data_pending_ = true;
  }
  if (fin) maybe_reap(*s);
  return n;
}

// --- datagrams ---

std::size_t Connection::max_datagram_size() const {
  const std::size_t fixed = kMaxPacketHeaderSize + protector_->overhead() + 1 + varint_size(mtu_current_);
  return mtu_current_ > fixed ? mtu_current_ - fixed : 0;
}

Status Connection::send_datagram(ByteView data) {
  if (state_ != ConnectionState::kOpen) return failed_precondition("udp connection is closed");
  if (data.size() > max_datagram_size()) {
    return invalid_argument(cat_u64("udp datagram larger than a packet allows: max ", max_datagram_size()));
  }
  if (out_datagrams_.size() >= options_.max_outgoing_datagrams) {
    // Real-time data: the newest matters more than the oldest.
    out_datagrams_.pop_front();
    ++stats_.datagrams_dropped_outgoing;
  }
  out_datagrams_.emplace_back(data.as_string_view());
  return Status();
}

std::optional<std::string> Connection::read_datagram() {
  if (in_datagrams_.empty()) {
    datagrams_event_pending_ = false;
    return std::nullopt;
  }
  std::string d = std::move(in_datagrams_.front());
  in_datagrams_.pop_front();
  if (in_datagrams_.empty()) datagrams_event_pending_ = false;
  return d;
}

// --- receiving ---

void Connection::on_datagram(Instant now, ByteView datagram) {
  if (state_ == ConnectionState::kClosed || state_ == ConnectionState::kDraining) {
    now_ = now;
    return;
  }
  if (datagram.size() > options_.max_receive_packet_size) {
    now_ = now;
    ++stats_.packets_rejected;
    return;
  }
  rx_scratch_.assign(datagram.begin(), datagram.end());
  on_datagram_in_place(now, std::span<std::uint8_t>(rx_scratch_.data(), rx_scratch_.size()));
}

void Connection::on_datagram_in_place(Instant now, std::span<std::uint8_t> packet) {
  now_ = now;
  if (state_ == ConnectionState::kClosed || state_ == ConnectionState::kDraining) return;
  if (packet.size() > options_.max_receive_packet_size) {
    ++stats_.packets_rejected;
    return;
  }
  const ByteView datagram(packet.data(), packet.size());
  Result<PacketHeader> header = decode_packet_header(datagram, acks_.any_received() ? acks_.largest() + 1 : 0);
  if (!header.is_ok() || header->dcid != options_.local_cid) {
    ++stats_.packets_rejected;
    return;
  }
  const std::uint64_t pn = header->packet_number;
  // The header (associated data) stays as it is; the payload after it is opened in place.
  const ByteView hdr = datagram.sub(0, header->length);
  const std::size_t sealed = datagram.size() - header->length;
  std::uint8_t* const payload = packet.data() + header->length;
  Result<std::size_t> opened = protector_->open(pn, hdr, payload, sealed);
  if (!opened.is_ok() || *opened > sealed) {
    ++stats_.packets_rejected;
    return;
  }
  // After opening, not before: a damaged packet number must count as damage, and only an
  // authentic packet may claim a number.
  if (acks_.is_duplicate(pn)) {
    ++stats_.packets_duplicate;
    return;
  }
  ++stats_.packets_received;
  stats_.bytes_received += datagram.size();
  last_received_ = now;
  idle_start_ = now;
  eliciting_sent_since_receive_ = false;

  FrameReader reader(ByteView(payload, *opened), options_.frame_limits);
  bool eliciting = false;
  Frame f;
  for (;;) {
    Result<bool> more = reader.next(f);
    if (!more.is_ok()) {
      enter_closing(now, more.status().with_context("udp protocol violation"), true);
      return;
    }
    if (!*more) break;
    if (state_ == ConnectionState::kClosing) {
      // Only the peer's CLOSE matters now; anything else earns another CLOSE from us.
      if (const auto* c = std::get_if<CloseFrame>(&f)) {
        state_ = ConnectionState::kDraining;
        close_pending_ = false;
        (void)c;
        return;
      }
      continue;
    }
    eliciting |= is_ack_eliciting(f);
    Status s = handle_frame(now, f);
    if (!s.is_ok()) {
      enter_closing(now, s.with_context("udp protocol violation"), true);
      return;
    }
    if (state_ != ConnectionState::kOpen) return;
  }
  if (state_ == ConnectionState::kClosing) {
    close_pending_ = true;
    return;
  }
  acks_.on_packet(now, pn, eliciting);
}

Status Connection::handle_frame(Instant now, const Frame& f) {
  if (const auto* a = std::get_if<AckFrame>(&f)) {
    SLIP_TRY(loss_.on_ack(now, *a, rtt_, *recovery_handler_));
    pacer_.set_rate(cc_.window(), rtt_.smoothed());
    // The peer has acknowledged a packet: the path works at the base size; the search begins.
    if (!mtu_started_ && mtu_max_ > mtu_base_ && loss_.largest_acked()) mtu_start_search();
    return Status();
  }
  if (const auto* s = std::get_if<StreamFrame>(&f)) return on_stream_frame(*s);
  if (const auto* d = std::get_if<DatagramFrame>(&f)) {
    ++stats_.datagrams_received;
    if (in_datagrams_.size() >= options_.max_incoming_datagrams) {
      ++stats_.datagrams_dropped_incoming;
      return Status();
    }
    in_datagrams_.emplace_back(d->data.as_string_view());
    if (!datagrams_event_pending_) {
      datagrams_event_pending_ = true;
      push_event(EventType::kDatagramsReadable, 0);
    }
    return Status();
  }
  if (const auto* m = std::get_if<MaxDataFrame>(&f)) {
    if (m->max > conn_send_max_) {
      conn_send_max_ = m->max;
      for (auto& [id, s] : streams_) mark_sendable(*s);
    }
    return Status();
  }
  if (const auto* m = std::get_if<MaxStreamDataFrame>(&f)) {
    if (Stream* s = find_stream(m->stream_id)) {
      if (m->max > s->smax) {
        s->smax = m->max;
        mark_sendable(*s);
      }
    } else if (is_local(m->stream_id) && (m->stream_id >> 1) >= next_local_index_) {
      return invalid_argument(cat_u64("MAX_STREAM_DATA for a stream never opened: ", m->stream_id));
    }
    return Status();
  }
  if (const auto* c = std::get_if<CloseFrame>(&f)) {
    std::string msg = "udp peer closed the connection";
    if (!c->reason.empty()) msg.append(": ").append(c->reason);
    const StatusCode code = status_code_from_wire(c->code);
    Status reason = code == StatusCode::kOk ? disconnected(msg) : Status(code, msg);
    state_ = ConnectionState::kDraining;
    drain_deadline_ = now + pto_duration() * 3;
    cc_.on_packet_discarded(loss_.discard_all());
    close_status_ = reason;
    push_event(EventType::kClosed, 0, std::move(reason));
    return Status();
  }
  return Status();  // PADDING, PING: nothing beyond the ACK they may elicit
}

Result<Connection::Stream*> Connection::stream_for_frame(std::uint64_t id) {
  if (Stream* s = find_stream(id)) return s;
  const std::uint64_t index = id >> 1;
  if (is_local(id)) {
    if (index < next_local_index_) return static_cast<Stream*>(nullptr);  // finished and forgotten
    return invalid_argument(cat_u64("STREAM frame for a stream never opened: ", id));
  }
  if (index < next_peer_index_) return static_cast<Stream*>(nullptr);
  // Opening a stream opens every lower one of the peer's too (their first frames may be late).
  const std::uint64_t count = index - next_peer_index_ + 1;
  if (count > options_.max_peer_streams - std::min(options_.max_peer_streams, live_peer_streams_)) {
    return overloaded(cat_u64("udp peer opened more streams than allowed: ", options_.max_peer_streams));
  }
  const std::uint64_t peer_bit = options_.role == Role::kServer ? 0 : 1;
  Stream* last = nullptr;
  for (std::uint64_t i = next_peer_index_; i <= index; ++i) {
    last = &add_stream(i * 2 + peer_bit, Priority::kStream, false);
    push_event(EventType::kStreamOpened, last->id);
  }
  next_peer_index_ = index + 1;
  return last;
}

Status Connection::on_stream_frame(const StreamFrame& f) {
  SLIP_ASSIGN_OR_RETURN(Stream * s, stream_for_frame(f.stream_id));
  if (!s) return Status();
  const std::uint64_t end = f.offset + f.data.size();
  if (end > s->rmax) {
    std::string m = cat_u64("flow control: stream ", s->id);
    m.append(cat_u64(" data to offset ", end)).append(cat_u64(" beyond its credit ", s->rmax));
    return overloaded(m);
  }
  if (s->final_size) {
    if (end > *s->final_size || (f.fin && end != *s->final_size)) {
      return invalid_argument(cat_u64("STREAM frame changes the final size of stream ", s->id));
    }
  } else if (f.fin && end < s->rhighest) {
    return invalid_argument(cat_u64("STREAM final size below data received on stream ", s->id));
  }
  if (end > s->rhighest) {
    const std::uint64_t delta = end - s->rhighest;
    if (conn_recv_highest_sum_ + delta > conn_recv_max_) {
      return overloaded(cat_u64("flow control: connection data beyond its credit ", conn_recv_max_));
    }
    conn_recv_highest_sum_ += delta;
    s->rhighest = end;
  }
  if (f.fin) s->final_size = end;
  if (s->fin_read) return Status();

  const std::uint64_t start = std::max(f.offset, s->rread);
  if (start < end) {
    const std::size_t pos = s->rhead + static_cast<std::size_t>(start - s->rread);
    const std::size_t len = static_cast<std::size_t>(end - start);
    const std::uint8_t* data = f.data.data() + (start - f.offset);
    if (pos == s->rbuf.size()) {
      s->rbuf.append(reinterpret_cast<const char*>(data), len);  // in order: no zero fill first
    } else {
      if (s->rbuf.size() < pos + len) s->rbuf.resize(pos + len);
      std::memcpy(s->rbuf.data() + pos, data, len);
    }
    s->rreceived.insert(start, end);
  }
  if (!s->readable_signaled && (s->contiguous() > 0 || (s->final_size && s->rread == *s->final_size))) {
    s->readable_signaled = true;
    push_event(EventType::kStreamReadable, s->id);
  }
  return Status();
}

// --- acknowledgement and loss ---

void Connection::on_packet_acked(const SentPacket& p) {
  if (p.in_flight) cc_.on_packet_acked(p.time_sent, p.size);
  // A packet above the base size got through: the losses before it were no black hole.
  if (p.size > mtu_base_) mtu_large_losses_ = 0;
  for (const SentFrame& f : p.frames) {
    switch (f.kind) {
      case SentFrame::Kind::kMtuProbe:
        on_mtu_probe_acked(p.packet_number, static_cast<std::size_t>(f.length));
        break;
      case SentFrame::Kind::kAck:
        acks_.on_ack_acked(f.offset);
        break;
      case SentFrame::Kind::kStream: {
        Stream* s = find_stream(f.stream_id);
        if (!s) break;
        const std::uint64_t old_base = s->sbase;
        if (f.offset <= s->sbase && s->sacked.empty()) {
          // In order (the usual case): the acknowledged prefix grows, no range to remember.
          s->sbase = std::max(s->sbase, f.offset + f.length);
        } else {
          s->sacked.insert(f.offset, f.offset + f.length);
        }
        if (!s->slost.empty()) s->slost.erase(f.offset, f.offset + f.length);
        if (f.fin) {
          s->fin_acked = true;
          s->fin_lost = false;
        }
        while (!s->sacked.empty() && s->sacked.front().start <= s->sbase) {
          s->sbase = std::max(s->sbase, s->sacked.front().end);
          s->sacked.pop_front();
        }
        if (s->sbase != old_base) {
          s->sbuf.consume(static_cast<std::size_t>(s->sbase - old_base));
          s->slost.erase_below(s->sbase);
        }
        if (s->want_writable && s->buffered() <= options_.stream_send_buffer / 2) {
          s->want_writable = false;
          push_event(EventType::kStreamWritable, s->id);
        }
        maybe_reap(*s);
        break;
      }
      default:
        break;
    }
  }
}

void Connection::on_spurious_loss(const SentPacket& p) {
  if (cc_.on_spurious_loss(p.time_lost)) pacer_.set_rate(cc_.window(), rtt_.smoothed());
}

void Connection::on_packets_lost(const std::vector<const SentPacket*>& lost, bool persistent) {
  std::uint64_t bytes = 0;
  std::uint64_t packets = 0;
  Instant newest{};
  for (const SentPacket* p : lost) {
    // An MTU probe (ack-eliciting, never in flight) is counted apart: a lost probe is the
    // search's answer, not a loss of the path (forward error correction reads packets_lost).
    if (p->ack_eliciting && p->in_flight) ++stats_.packets_lost;
    if (p->in_flight) {
      bytes += p->size;
      ++packets;
      newest = std::max(newest, p->time_sent);
      if (p->size > mtu_base_) ++mtu_large_losses_;
    }
    for (const SentFrame& f : p->frames) {
      switch (f.kind) {
        case SentFrame::Kind::kMtuProbe:
          on_mtu_probe_lost(p->packet_number, static_cast<std::size_t>(f.length));
          break;
        case SentFrame::Kind::kStream: {
          Stream* s = find_stream(f.stream_id);
          if (!s) break;
          const std::uint64_t lo = std::max(f.offset, s->sbase);
          const std::uint64_t hi = f.offset + f.length;
          if (lo < hi) {
            s->slost.insert(lo, hi);
            s->slost.erase_all(s->sacked, lo, hi);
          }
          if (f.fin && !s->fin_acked) s->fin_lost = true;
          mark_sendable(*s);
          break;
        }
        case SentFrame::Kind::kMaxData:
          max_data_pending_ = true;
          break;
        case SentFrame::Kind::kMaxStreamData: {
          Stream* s = find_stream(f.stream_id);
          if (s && !s->final_size && !s->max_update_queued) {
            s->max_update_queued = true;
            max_stream_data_pending_.push_back(s->id);
          }
          break;
        }
        case SentFrame::Kind::kDatagram:
          ++stats_.datagrams_lost;
          break;
        default:
          break;
      }
    }
  }
  if (bytes > 0) {
    cc_.on_packets_lost(now_, newest, bytes, persistent, packets);
    if (persistent) ++stats_.persistent_congestion_events;
    pacer_.set_rate(cc_.window(), rtt_.smoothed());
  }
  // Packets above the base lost in a row while a smaller one (what acknowledged the packets
  // after them) got through: the path stopped carrying the raised size.
  if (mtu_current_ > mtu_base_ && mtu_large_losses_ >= std::max<std::uint32_t>(options_.mtu.black_hole_threshold, 1)) {
    mtu_fall_back();
  }
}

// --- path MTU discovery ---

void Connection::set_packet_size(std::size_t size) {
  mtu_current_ = size;
  cc_.set_max_datagram_size(size);
  pacer_.set_max_datagram_size(size);
  pacer_.set_rate(cc_.window(), rtt_.smoothed());
  // Queued datagrams that no longer fit in a packet are dropped, as when the queue overflows.
  const std::size_t max = max_datagram_size();
  const std::size_t before = out_datagrams_.size();
  std::erase_if(out_datagrams_, [max](const std::string& d) { return d.size() > max; });
  stats_.datagrams_dropped_outgoing += before - out_datagrams_.size();
}

void Connection::mtu_start_search() {
  mtu_started_ = true;
  mtu_low_ = mtu_current_;
  mtu_high_ = mtu_max_ + 1;
  mtu_next_search_ = kNever;
  mtu_next_candidate();
}

void Connection::mtu_next_candidate() {
  mtu_tries_ = 0;
  std::size_t candidate = 0;
  if (mtu_high_ == mtu_max_ + 1) {
    // The largest size first: on the common path (a full Ethernet MTU) one probe settles it.
    if (mtu_low_ < mtu_max_) candidate = mtu_max_;
  } else if (mtu_high_ > mtu_low_ + std::max<std::size_t>(options_.mtu.search_granularity, 1)) {
    candidate = mtu_low_ + (mtu_high_ - mtu_low_) / 2;
  }
  mtu_probe_size_ = candidate;
  if (candidate != 0) return;
  // Search over. Below the maximum the path may grow later: search again after a while.
  const Duration every = options_.mtu.reprobe_interval;
  mtu_next_search_ = mtu_current_ < mtu_max_ && every > Duration::zero() ? now_ + every : kNever;
}

void Connection::mtu_fall_back() {
  ++stats_.mtu_black_holes;
  mtu_large_losses_ = 0;
  mtu_probe_size_ = 0;
  mtu_probe_in_flight_ = false;
  mtu_epoch_pn_ = loss_.next_packet_number();
  set_packet_size(mtu_base_);
  const Duration every = options_.mtu.reprobe_interval;
  mtu_next_search_ = every > Duration::zero() ? now_ + every : kNever;
}

void Connection::on_mtu_probe_acked(std::uint64_t pn, std::size_t size) {
  ++stats_.mtu_probes_acked;
  // A probe sent before the last black-hole fallback (declared lost, acknowledged late) says
  // nothing about the path as it is now.
  if (pn < mtu_epoch_pn_) return;
  if (size > mtu_current_ && size <= mtu_max_) set_packet_size(size);
  if (mtu_probe_in_flight_ && pn == mtu_probe_pn_) {
    mtu_probe_in_flight_ = false;
    mtu_low_ = std::max(mtu_low_, size);
    mtu_next_candidate();
  } else if (mtu_probe_size_ != 0 && size > mtu_low_) {
    // A probe declared lost turned out to have arrived: the search learns from it.
    mtu_low_ = size;
    if (mtu_high_ <= mtu_low_) mtu_high_ = mtu_max_ + 1;
  }
}

void Connection::on_mtu_probe_lost(std::uint64_t pn, std::size_t size) {
  ++stats_.mtu_probes_lost;
  if (!mtu_probe_in_flight_ || pn != mtu_probe_pn_) return;
  mtu_probe_in_flight_ = false;
  if (++mtu_tries_ >= std::max<std::uint32_t>(options_.mtu.max_probes, 1)) {
    mtu_high_ = size;
    mtu_next_candidate();
  }
}

bool Connection::mtu_probe_due(Instant /*now*/) const {
  return mtu_probe_size_ != 0 && !mtu_probe_in_flight_ && probes_pending_ == 0 && state_ == ConnectionState::kOpen &&
         cc_.can_send(mtu_probe_size_);
}

std::size_t Connection::build_mtu_probe(Instant now, std::span<std::uint8_t> out) {
  const std::size_t size = mtu_probe_size_;
  const std::size_t overhead = protector_->overhead();
  const std::uint64_t pn = loss_.next_packet_number();
  const std::size_t header_len = encode_packet_header(out.data(), options_.peer_cid, pn, loss_.largest_acked());
  if (header_len == 0 || size < header_len + overhead + kMinFrameRoom) return 0;
  std::uint8_t* payload = out.data() + header_len;
  FrameWriter w(payload, size - header_len - overhead);
  SentPacket sp;
  sp.packet_number = pn;
  bool has_ack = false;
  if (acks_.has_ranges() && acks_.ack_pending()) {
    const std::size_t n = acks_.fill_ranges(ack_scratch_.data(), ack_scratch_.size());
    if (n > 0 && w.add_ack(acks_.ack_delay_us(now), ack_scratch_.data(), n)) {
      has_ack = true;
      sp.frames.push_back({SentFrame::Kind::kAck, false, 0, ack_scratch_[0].largest, 0});
    }
  }
  if (!w.add_ping()) return 0;
  sp.frames.push_back({SentFrame::Kind::kPing, false, 0, 0, 0});
  (void)w.add_padding(w.room());
  sp.frames.push_back({SentFrame::Kind::kMtuProbe, false, 0, 0, size});
  sp.ack_eliciting = true;
  sp.in_flight = false;  // outside congestion control: not counted, not paced
  const std::size_t total = seal_and_record(now, out.data(), header_len, w.size(), std::move(sp), has_ack);
  if (total == 0) return 0;
  mtu_probe_in_flight_ = true;
  mtu_probe_pn_ = pn;
  ++stats_.mtu_probes_sent;
  return total;
}

std::size_t Connection::seal_and_record(Instant now, std::uint8_t* out, std::size_t header_len,
                                        std::size_t payload_len, SentPacket&& sp, bool has_ack) {
  const Status sealed = protector_->seal(sp.packet_number, ByteView(out, header_len), out + header_len, payload_len);
  if (!sealed.is_ok()) {
    enter_closed(sealed.with_context("udp packet protection"));
    return 0;
  }
  const std::size_t total = header_len + payload_len + protector_->overhead();
  sp.time_sent = now;
  sp.size = static_cast<std::uint32_t>(total);
  if (has_ack) {
    acks_.on_ack_sent();
    ++stats_.acks_sent;
  }
  // The idle timer restarts on the first ack-eliciting packet after one was received, so a
  // peer that only receives keeps the connection alive while its data is acknowledged.
  if (sp.ack_eliciting && !eliciting_sent_since_receive_) {
    idle_start_ = now;
    eliciting_sent_since_receive_ = true;
  }
  ++stats_.packets_sent;
  stats_.bytes_sent += total;
  last_sent_ = now;
  loss_.on_packet_sent(std::move(sp));
  return total;
}

bool Connection::requeue_for_probe() {
  const SentPacket* p = loss_.oldest_unacked();
  if (!p) return false;
  bool any = false;
  for (const SentFrame& f : p->frames) {
    if (f.kind != SentFrame::Kind::kStream) continue;
    Stream* s = find_stream(f.stream_id);
    if (!s) continue;
    const std::uint64_t lo = std::max(f.offset, s->sbase);
    const std::uint64_t hi = f.offset + f.length;
    if (lo < hi) {
      s->slost.insert(lo, hi);
      s->slost.erase_all(s->sacked, lo, hi);
    }
    if (f.fin && !s->fin_acked) s->fin_lost = true;
    any |= stream_has_work(*s);
    mark_sendable(*s);
  }
  return any;
}

// --- sending ---

bool Connection::has_ack_eliciting_work() const {
  if (ping_pending_ || max_data_pending_ || !max_stream_data_pending_.empty() || !out_datagrams_.empty()) return true;
  for (const auto& q : sendable_) {
    if (!q.empty()) return true;
  }
  return false;
}

bool Connection::fill_stream(Stream& s, FrameWriter& w, SentPacket& sp, bool& retransmitted) {
  while (stream_has_work(s)) {
    if (w.room() < kMinFrameRoom) return true;
    if (!s.slost.empty()) {
      const RangeSet::Range r = s.slost.front();
      const std::uint64_t a = std::max(r.start, s.sbase);
      if (a >= r.end) {
        s.slost.erase(r.start, r.end);
        continue;
      }
      const std::size_t ovh = FrameWriter::stream_overhead(s.id, a, static_cast<std::size_t>(r.end - a));
      if (w.room() <= ovh) return true;
      // Where the ring wraps, the frame ends; the next one carries the rest.
      const ByteView data = s.sbuf.view(static_cast<std::size_t>(a - s.sbase),
                                        fit_stream_len(s.id, a, r.end - a, w.room(), ovh));
      const std::size_t len = data.size();
      const bool fin = s.fin && a + len == s.send_end();
      if (!w.add_stream(s.id, a, data, fin)) return true;
      sp.frames.push_back({SentFrame::Kind::kStream, fin, s.id, a, len});
      s.slost.erase(a, a + len);
      if (fin) {
        s.fin_sent = true;
        s.fin_lost = false;
      }
      stats_.stream_bytes_retransmitted += len;
      retransmitted = true;
      continue;
    }
    const std::uint64_t end = s.send_end();
    const std::uint64_t credit = std::min(s.smax > s.ssent ? s.smax - s.ssent : 0,
                                          conn_send_max_ > conn_sent_ ? conn_send_max_ - conn_sent_ : 0);
    const std::uint64_t want = std::min(end - s.ssent, credit);
    const std::size_t ovh = FrameWriter::stream_overhead(s.id, s.ssent, static_cast<std::size_t>(want));
    if (w.room() <= ovh) return true;
    // Where the ring wraps, the frame ends; the next one carries the rest.
    const ByteView data = s.sbuf.view(static_cast<std::size_t>(s.ssent - s.sbase),
                                      fit_stream_len(s.id, s.ssent, want, w.room(), ovh));
    const std::size_t len = data.size();
    const bool fin = s.fin && s.ssent + len == end && (!s.fin_sent || s.fin_lost);
    if (len == 0 && !fin) return false;  // only a FIN could have gone and it was not due
    if (!w.add_stream(s.id, s.ssent, data, fin)) return true;
    sp.frames.push_back({SentFrame::Kind::kStream, fin, s.id, s.ssent, len});
    s.ssent += len;
    conn_sent_ += len;
    stats_.stream_bytes_sent += len;
    if (fin) {
      s.fin_sent = true;
      s.fin_lost = false;
    }
  }
  return false;
}

bool Connection::fill_streams(FrameWriter& w, SentPacket& sp, bool& retransmitted) {
  // One turn of class c: the stream at the head of its queue writes what fits. Returns true
  // when the packet is full.
  auto serve = [&](std::size_t c) -> bool {
    while (!sendable_[c].empty()) {
      const std::uint64_t id = sendable_[c].front();
      sendable_[c].pop_front();
      Stream* s = find_stream(id);
      if (!s || !s->queued || class_of(s->priority) != c) continue;  // stale entry
      s->queued = false;
      if (!stream_has_work(*s)) continue;
      const bool full = fill_stream(*s, w, sp, retransmitted);
      if (stream_has_work(*s)) {
        s->queued = true;
        // Cut off by a full packet: it goes first next time, so a large write is not starved.
        if (full) {
          sendable_[c].push_front(id);
        } else {
          sendable_[c].push_back(id);
        }
      }
      return full;
    }
    return false;
  };
  while (!sendable_[0].empty()) {
    if (serve(0) || w.room() < kMinFrameRoom) return true;
  }
  for (;;) {
    if (w.room() < kMinFrameRoom) return true;
    std::size_t pick = 0;
    for (std::size_t c = 1; c < kPriorityClasses; ++c) {
      if (!sendable_[c].empty() && round_[c] > 0) {
        pick = c;
        break;
      }
    }
    if (pick == 0) {
      bool any = false;
      for (std::size_t c = 1; c < kPriorityClasses; ++c) any |= !sendable_[c].empty();
      if (!any) return false;
      for (std::size_t c = 1; c < kPriorityClasses; ++c) round_[c] = std::max<std::uint32_t>(1, options_.weights[c]);
      continue;
    }
    --round_[pick];
    if (serve(pick)) return true;
  }
}

std::optional<ByteView> Connection::poll_transmit(Instant now) {
  if (tx_buffer_.size() < mtu_max_) tx_buffer_.resize(mtu_max_);
  const std::size_t n = poll_transmit_into(now, std::span<std::uint8_t>(tx_buffer_));
  if (n == 0) return std::nullopt;
  return ByteView(tx_buffer_.data(), n);
}

std::size_t Connection::poll_transmit_into(Instant now, std::span<std::uint8_t> out) {
  now_ = now;
  if (state_ == ConnectionState::kClosed || state_ == ConnectionState::kDraining) return 0;
  // A path MTU probe goes first when due (and when the caller's buffer holds it).
  if (state_ == ConnectionState::kOpen && mtu_probe_due(now) && out.size() >= mtu_probe_size_) {
    if (const std::size_t n = build_mtu_probe(now, out); n > 0) return n;
    if (state_ == ConnectionState::kClosed) return 0;
  }
  std::size_t size = std::min(out.size(), mtu_current_);
  // Probe-timeout packets stay at the base size: when the path stopped carrying the raised size
  // (a black hole), they still get through, and their acknowledgement declares the larger
  // packets lost.
  if (probes_pending_ > 0 && state_ == ConnectionState::kOpen) size = std::min(size, mtu_base_);
  const std::size_t overhead = protector_->overhead();
  if (size < kMaxPacketHeaderSize + overhead + kMinFrameRoom) return 0;

  const std::uint64_t pn = loss_.next_packet_number();
  const std::size_t header_len = encode_packet_header(out.data(), options_.peer_cid, pn, loss_.largest_acked());
  if (header_len == 0) {
    // 2^31 packets unacknowledged: the peer is gone in all but name.
    enter_closed(out_of_range("udp: too many packets unacknowledged to number the next one"));
    return 0;
  }
  std::uint8_t* payload = out.data() + header_len;
  FrameWriter w(payload, size - header_len - overhead);
  SentPacket sp;
  sp.packet_number = pn;
  sp.frames = loss_.take_frame_list();
  bool has_ack = false;
  bool probe = false;
  bool retransmitted = false;

  if (state_ == ConnectionState::kClosing) {
    if (!close_pending_) return 0;
    close_pending_ = false;
    const std::size_t room = w.room() - std::min(w.room(), 2 + varint_size(close_code_) + 2);
    const std::string_view reason = std::string_view(close_reason_).substr(0, std::min(room, options_.frame_limits.max_close_reason));
    if (!w.add_close(close_code_, reason)) return 0;
  } else {
    probe = probes_pending_ > 0;
    const bool ack_due = acks_.has_ranges() && acks_.ack_due(now);
    const bool work = has_ack_eliciting_work() || probe;
    const bool cc_ok = probe || cc_.can_send(size);
    const bool pace_ok = probe || !options_.pacing || pacer_.release_time(now, size) <= now;
    const bool send_data = work && cc_ok && pace_ok;
    if (!ack_due && !send_data) return 0;

    if (acks_.has_ranges() && (ack_due || (send_data && acks_.ack_pending()))) {
      const std::size_t n = acks_.fill_ranges(ack_scratch_.data(), ack_scratch_.size());
      if (n > 0 && w.add_ack(acks_.ack_delay_us(now), ack_scratch_.data(), n)) {
        has_ack = true;
        sp.frames.push_back({SentFrame::Kind::kAck, false, 0, ack_scratch_[0].largest, 0});
      }
    }
    if (send_data) {
      if (max_data_pending_ && w.add_max_data(conn_recv_max_)) {
        max_data_pending_ = false;
        sp.frames.push_back({SentFrame::Kind::kMaxData, false, 0, conn_recv_max_, 0});
      }
      while (!max_stream_data_pending_.empty()) {
        const std::uint64_t id = max_stream_data_pending_.back();
        Stream* s = find_stream(id);
        if (s && !s->final_size) {
          if (!w.add_max_stream_data(id, s->rmax)) break;
          sp.frames.push_back({SentFrame::Kind::kMaxStreamData, false, id, s->rmax, 0});
        }
        if (s) s->max_update_queued = false;
        max_stream_data_pending_.pop_back();
      }
      if (ping_pending_ && w.add_ping()) {
        ping_pending_ = false;
        sp.frames.push_back({SentFrame::Kind::kPing, false, 0, 0, 0});
      }
      // Datagrams are real-time data: they go before stream data, and only whole.
      while (!out_datagrams_.empty() && w.add_datagram(ByteView(out_datagrams_.front()))) {
        sp.frames.push_back({SentFrame::Kind::kDatagram, false, 0, 0, out_datagrams_.front().size()});
        out_datagrams_.pop_front();
        ++stats_.datagrams_sent;
      }
      fill_streams(w, sp, retransmitted);
      if (probe) {
        const bool eliciting = std::any_of(sp.frames.begin(), sp.frames.end(),
                                           [](const SentFrame& f) { return f.kind != SentFrame::Kind::kAck; });
        // A probe must elicit an ACK: resend the oldest unacknowledged data, or at least PING.
        if (!eliciting && requeue_for_probe()) fill_streams(w, sp, retransmitted);
        if (std::none_of(sp.frames.begin(), sp.frames.end(),
                         [](const SentFrame& f) { return f.kind != SentFrame::Kind::kAck; }) &&
            w.add_ping()) {
          sp.frames.push_back({SentFrame::Kind::kPing, false, 0, 0, 0});
        }
      }
    }
  }
  if (w.size() == 0) return 0;

  sp.ack_eliciting = std::any_of(sp.frames.begin(), sp.frames.end(), [](const SentFrame& f) {
    return f.kind != SentFrame::Kind::kAck;
  });
  if (state_ == ConnectionState::kClosing) sp.ack_eliciting = false;  // CLOSE is not acknowledged
  sp.in_flight = sp.ack_eliciting;
  const bool in_flight = sp.in_flight;
  const std::size_t total = seal_and_record(now, out.data(), header_len, w.size(), std::move(sp), has_ack);
  if (total == 0) return 0;
  if (in_flight) {
    cc_.on_packet_sent(total);
    if (probe) {
      --probes_pending_;
      ++stats_.probes_sent;
    }
    // Only what the window counts is paced: ACK-only and CLOSE packets neither wait for the
    // pacer nor draw from it. (They once did: a receiver that sends little but ACKs ran its
    // bucket into debt at a rate taken from the initial RTT, and its flow-control updates then
    // waited for the debt to be repaid, stalling the sender for milliseconds at a time.)
    if (options_.pacing) pacer_.on_sent(now, total);
  }
  if (retransmitted) ++stats_.packets_retransmitted;
  return total;
}

// --- timers and lifecycle ---

Duration Connection::pto_duration() const { return rtt_.pto(options_.recovery.peer_max_ack_delay); }

Instant Connection::idle_deadline() const {
  return idle_start_ + std::max(options_.idle_timeout, pto_duration() * 3);
}

Instant Connection::next_timeout() const {
  if (state_ == ConnectionState::kClosed) return kNever;
  if (state_ != ConnectionState::kOpen) return drain_deadline_;
  Instant t = idle_deadline();
  if (auto d = acks_.ack_deadline()) t = std::min(t, *d);
  if (auto l = loss_.timer(rtt_)) t = std::min(t, *l);
  if (options_.keepalive_interval > Duration::zero() && !ping_pending_) {
    t = std::min(t, std::max(last_sent_, last_received_) + options_.keepalive_interval);
  }
  // Pacing release: only when something waits for it and the window would let it go.
  if (options_.pacing && probes_pending_ == 0 && has_ack_eliciting_work() && cc_.can_send(mtu_current_)) {
    t = std::min(t, pacer_.next_release(mtu_current_));
  }
  // The next path MTU search (none while one runs: its probes go out with the traffic).
  if (mtu_probe_size_ == 0) t = std::min(t, mtu_next_search_);
  return t;
}

void Connection::on_timeout(Instant now) {
  now_ = now;
  if (state_ == ConnectionState::kClosed) return;
  if (state_ != ConnectionState::kOpen) {
    if (now >= drain_deadline_) enter_closed(close_status_);
    return;
  }
  if (now >= idle_deadline()) {
    cc_.on_packet_discarded(loss_.discard_all());
    enter_closed(timed_out("udp idle timeout: no packet from the peer"));
    return;
  }
  if (auto l = loss_.timer(rtt_); l && *l <= now) {
    if (loss_.on_timeout(now, rtt_, *recovery_handler_)) probes_pending_ = 2;
  }
  if (mtu_probe_size_ == 0 && now >= mtu_next_search_ && state_ == ConnectionState::kOpen) mtu_start_search();
  if (options_.keepalive_interval > Duration::zero() &&
      now >= std::max(last_sent_, last_received_) + options_.keepalive_interval) {
    ping_pending_ = true;
  }
}

void Connection::close(Instant now, Status reason) {
  now_ = now;
  enter_closing(now, std::move(reason), true);
}

void Connection::enter_closing(Instant now, Status reason, bool send_close) {
  if (state_ != ConnectionState::kOpen) return;
  state_ = send_close ? ConnectionState::kClosing : ConnectionState::kDraining;
  close_code_ = static_cast<std::uint64_t>(reason.code());
  close_reason_ = std::string(reason.message());
  close_pending_ = send_close;
  drain_deadline_ = now + pto_duration() * 3;
  cc_.on_packet_discarded(loss_.discard_all());
  close_status_ = reason;
  push_event(EventType::kClosed, 0, std::move(reason));
}

void Connection::enter_closed(Status reason) {
  state_ = ConnectionState::kClosed;
  close_status_ = reason;
  push_event(EventType::kClosed, 0, std::move(reason));
}

void Connection::push_event(EventType type, std::uint64_t id, Status status) {
  if (type == EventType::kClosed) {
    if (closed_event_sent_) return;
    closed_event_sent_ = true;
  }
  events_.push_back(Event{type, id, std::move(status)});
}

std::optional<Event> Connection::poll_event() {
  if (events_.empty()) return std::nullopt;
  Event e = std::move(events_.front());
  events_.pop_front();
  return e;
}

bool Connection::is_quiescent() const {
  if (acks_.ack_pending() || has_ack_eliciting_work() || probes_pending_ > 0 || close_pending_) return false;
  if (loss_.ack_eliciting_in_flight() > 0) return false;
  for (const auto& [id, s] : streams_) {
    if (s->sbase != s->send_end() || (s->fin && !s->fin_acked)) return false;
  }
  return true;
}

ConnectionStats Connection::stats() const {
  ConnectionStats s = stats_;
  s.congestion_events = cc_.congestion_events();
  s.congestion_events_undone = cc_.congestion_events_undone();
  s.packets_spuriously_lost = loss_.spurious_losses();
  s.cwnd = cc_.window();
  s.ssthresh = cc_.ssthresh();
  s.bytes_in_flight = cc_.bytes_in_flight();
  s.srtt = rtt_.smoothed();
  s.rttvar = rtt_.var();
  s.min_rtt = rtt_.min();
  s.latest_rtt = rtt_.latest();
  s.max_packet_size = mtu_current_;
  return s;
}

std::optional<Connection::ReceiveLimits> Connection::stream_receive_limits_for_test(std::uint64_t stream_id) const {
  const Stream* s = find_stream(stream_id);
  if (!s) return std::nullopt;
  return ReceiveLimits{s->rhighest, s->rmax};
}

}  // namespace slip::transport::udp
