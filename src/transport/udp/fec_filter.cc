#include "transport/udp/fec_filter.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

namespace slip::transport::udp {
namespace {

// The connection's loss is sampled once this many packets were sent since the last sample.
constexpr std::uint64_t kMinLossSample = 8;
constexpr double kOwnLossWeight = 0.5;

bool is_coded(std::uint8_t b) { return b == kFecSourceType || b == kFecRepairType; }

}  // namespace

void FecFilterStats::add(const FecFilterStats& o) {
  connections += o.connections;
  source_packets += o.source_packets;
  repair_sent += o.repair_sent;
  repair_received += o.repair_received;
  recovered += o.recovered;
  unrecoverable_blocks += o.unrecoverable_blocks;
  malformed += o.malformed;
  feedback_sent += o.feedback_sent;
  feedback_received += o.feedback_received;
}

FecEncoderOptions fec_encoder_options(const FecOptions& fec) {
  FecEncoderOptions eo;
  eo.enabled = fec.enabled;
  eo.adaptive = fec.adaptive;
  eo.ratio = fec.ratio;
  eo.policy = fec.policy;
  for (FecLevel& l : eo.policy.levels) {
    const double cap = std::floor(static_cast<double>(l.k) * fec.max_repair_ratio + 1e-9);
    if (static_cast<double>(l.m) > cap) l.m = static_cast<std::uint8_t>(std::max(1.0, cap));
  }
  eo.flush_delay = fec.flush_delay;
  eo.max_repair_ratio = fec.max_repair_ratio;
  eo.max_datagram_size = std::max<std::size_t>(fec.decoder.max_datagram_size, 1500);
  return eo;
}

Status validate_fec_options(const FecOptions& fec) {
  if (!(fec.max_repair_ratio > 0 && fec.max_repair_ratio <= kFecMaxRepairs)) {
    return invalid_argument("FEC max repair ratio must be above 0 and at most 16");
  }
  if (!fec.adaptive && (fec.ratio.k < 1 || fec.ratio.k > kFecMaxSources || fec.ratio.m < 1 ||
                        fec.ratio.m > kFecMaxRepairs)) {
    return invalid_argument("FEC ratio K,M needs K in 1..48 and M in 1..16");
  }
  if (fec.flush_delay <= Duration::zero()) return invalid_argument("FEC flush delay must be positive");
  if (fec.feedback_interval <= Duration::zero()) return invalid_argument("FEC feedback interval must be positive");
  if (!(fec.congestion_loss_reduction >= 0.5 && fec.congestion_loss_reduction < 1)) {
    return invalid_argument("FEC congestion loss reduction must be at least 0.5 and below 1");
  }
  return FecPolicy::validate(fec.policy);
}

Status parse_fec_mode(std::string_view text, FecOptions& out) {
  if (text == "off") {
    out.enabled = false;
    return Status();
  }
  if (text == "adaptive" || text == "on") {
    out.enabled = true;
    out.adaptive = true;
    return Status();
  }
  const std::size_t comma = text.find(',');
  auto number = [](std::string_view s, unsigned& v) {
    if (s.empty() || s.size() > 3) return false;
    v = 0;
    for (char c : s) {
      if (c < '0' || c > '9') return false;
      v = v * 10 + static_cast<unsigned>(c - '0');
    }
    return true;
  };
  unsigned k = 0, m = 0;
  if (comma == std::string_view::npos || !number(text.substr(0, comma), k) || !number(text.substr(comma + 1), m)) {
    std::string msg = "FEC mode must be off, adaptive or K,M (e.g. 8,2), not '";
    msg.append(text).append("'");
    return invalid_argument(msg);
  }
  if (k < 1 || k > kFecMaxSources || m < 1 || m > kFecMaxRepairs) {
    return invalid_argument("FEC ratio K,M needs K in 1..48 and M in 1..16");
  }
  out.enabled = true;
  out.adaptive = false;
  out.ratio = {static_cast<std::uint8_t>(k), static_cast<std::uint8_t>(m)};
  return Status();
}

bool fec_negotiated(const FecOptions& ours, bool peer_offers) { return ours.enabled && peer_offers; }

void fec_adjust_connection(const FecOptions& fec, ConnectionOptions& co) {
  // Room for the filter's headers within the same UDP payload size. Loss detection keeps its
  // thresholds: a packet FEC rebuilds after the time threshold is retransmitted once too (and
  // counted as a spurious loss), which costs bandwidth, not latency.
  if (co.max_packet_size > kFecFilterOverhead + 200) co.max_packet_size -= kFecFilterOverhead;
  // The same for the sizes MTU probing tries: a probe, wrapped, is the size it stands for.
  if (co.mtu.max_packet_size > kFecFilterOverhead + 200) co.mtu.max_packet_size -= kFecFilterOverhead;
  // The losses a connection under FEC still sees are mostly the path's random loss that FEC
  // could not repair in time, not a full queue: a gentler reduction keeps a halving per loss
  // from starving a steady flow (docs/udp.md, "FEC and loss detection").
  co.congestion.loss_reduction = fec.congestion_loss_reduction;
}

FecFilter::FecFilter(const FecOptions& options, Clock clock, LossCounters own_loss, FecFilterStats* totals)
    : options_(options),
      clock_(std::move(clock)),
      own_counters_(std::move(own_loss)),
      totals_(totals),
      encoder_(fec_encoder_options(options)),
      decoder_(options.decoder) {
  stats_.connections = 1;
  publish();
}

FecFilter::~FecFilter() = default;

void FecFilter::publish() {
  const FecEncoderStats& e = encoder_.stats();
  const FecDecoderStats& d = decoder_.stats();
  stats_.source_packets = e.source_packets;
  stats_.repair_sent = e.repair_packets;
  stats_.repair_received = d.repair_packets;
  stats_.recovered = d.recovered;
  stats_.unrecoverable_blocks = d.blocks_unrecovered;
  if (totals_ == nullptr) return;
  FecFilterStats delta;
  delta.connections = stats_.connections - published_.connections;
  delta.source_packets = stats_.source_packets - published_.source_packets;
  delta.repair_sent = stats_.repair_sent - published_.repair_sent;
  delta.repair_received = stats_.repair_received - published_.repair_received;
  delta.recovered = stats_.recovered - published_.recovered;
  delta.unrecoverable_blocks = stats_.unrecoverable_blocks - published_.unrecoverable_blocks;
  delta.malformed = stats_.malformed - published_.malformed;
  delta.feedback_sent = stats_.feedback_sent - published_.feedback_sent;
  delta.feedback_received = stats_.feedback_received - published_.feedback_received;
  totals_->add(delta);
  published_ = stats_;
}

void FecFilter::drain(DatagramSink& wire) {
  while (std::optional<ByteView> q = encoder_.poll_transmit()) {
    if (q->empty() || !is_coded((*q)[0])) {
      wire.deliver(*q);
      continue;
    }
    // fec.h's packet with the receiver's connection id after its type byte.
    buf_.resize(q->size() + kConnectionIdLen);
    buf_[0] = (*q)[0];
    std::memcpy(buf_.data() + 1, peer_cid_.data(), kConnectionIdLen);
    std::memcpy(buf_.data() + 1 + kConnectionIdLen, q->data() + 1, q->size() - 1);
    wire.deliver(ByteView(buf_.data(), buf_.size()));
  }
}

void FecFilter::arm(Instant now) {
  activity_ = true;
  if (tick_at_ == kNever) tick_at_ = now + options_.feedback_interval;
}

void FecFilter::outgoing(ByteView datagram, DatagramSink& wire) {
  const Instant now = clock_();
  if (datagram.size() >= 1 + kConnectionIdLen) {
    std::memcpy(peer_cid_.data(), datagram.data() + 1, kConnectionIdLen);
    have_cid_ = true;
  }
  if (!have_cid_) {
    wire.deliver(datagram);
    return;
  }
  encoder_.push(now, datagram);
  drain(wire);
  arm(now);
  publish();
}

void FecFilter::incoming(ByteView d, DatagramSink& connection) {
  if (d.empty()) return;
  if (d[0] == kFecFeedbackType) {
    if (d.size() != kFecFeedbackSize) {
      ++stats_.malformed;
    } else {
      const unsigned v = (static_cast<unsigned>(d[1 + kConnectionIdLen]) << 8) | d[2 + kConnectionIdLen];
      peer_loss_ = static_cast<double>(v) / 65535.0;
      ++stats_.feedback_received;
      update_loss();
    }
    publish();
    return;
  }
  if (!is_coded(d[0])) {
    connection.deliver(d);
    return;
  }
  const Instant now = clock_();
  arm(now);
  if (d.size() <= 1 + kConnectionIdLen) {
    ++stats_.malformed;
    publish();
    return;
  }
  const std::uint64_t malformed_before = decoder_.stats().malformed;
  buf_.resize(d.size() - kConnectionIdLen);
  buf_[0] = d[0];
  std::memcpy(buf_.data() + 1, d.data() + 1 + kConnectionIdLen, d.size() - 1 - kConnectionIdLen);
  const ByteView inner = decoder_.on_datagram(now, ByteView(buf_.data(), buf_.size()));
  if (!inner.empty()) connection.deliver(inner);
  while (std::optional<ByteView> r = decoder_.poll_recovered()) connection.deliver(*r);
  stats_.malformed += decoder_.stats().malformed - malformed_before;
  publish();
}

Instant FecFilter::next_timeout() const {
  return std::min({encoder_.next_timeout(), decoder_.next_timeout(), tick_at_});
}

void FecFilter::update_loss() { encoder_.set_loss_estimate(std::max(own_loss_, peer_loss_)); }

void FecFilter::tick(Instant now, DatagramSink& wire) {
  if (own_counters_) {
    const auto [sent, lost] = own_counters_();
    if (sent >= sent_seen_ + kMinLossSample) {
      const double ds = static_cast<double>(sent - sent_seen_);
      const double dl = static_cast<double>(lost >= lost_seen_ ? lost - lost_seen_ : 0);
      own_loss_ += kOwnLossWeight * (std::min(1.0, dl / ds) - own_loss_);
      sent_seen_ = sent;
      lost_seen_ = lost;
    }
  }
  update_loss();
  const FecDecoderStats& d = decoder_.stats();
  const std::uint64_t fec_in = d.source_packets + d.repair_packets;
  if (fec_in != fec_in_seen_ && have_cid_) {
    fec_in_seen_ = fec_in;
    std::uint8_t fb[kFecFeedbackSize];
    fb[0] = kFecFeedbackType;
    std::memcpy(fb + 1, peer_cid_.data(), kConnectionIdLen);
    const auto v = static_cast<unsigned>(std::lround(std::clamp(decoder_.loss_estimate(), 0.0, 1.0) * 65535.0));
    fb[1 + kConnectionIdLen] = static_cast<std::uint8_t>(v >> 8);
    fb[2 + kConnectionIdLen] = static_cast<std::uint8_t>(v);
    wire.deliver(ByteView(fb, sizeof fb));
    ++stats_.feedback_sent;
  }
  tick_at_ = activity_ ? now + options_.feedback_interval : kNever;
  activity_ = false;
}

void FecFilter::on_timeout(Instant now, DatagramSink& wire) {
  if (decoder_.next_timeout() <= now) decoder_.on_timeout(now);
  if (encoder_.next_timeout() <= now) encoder_.on_timeout(now);
  if (tick_at_ <= now) tick(now, wire);
  drain(wire);
  publish();
}

}  // namespace slip::transport::udp
