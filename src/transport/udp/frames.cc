#include "transport/udp/frames.h"

#include <cstring>

#include "core/varint.h"

namespace slip::transport::udp {

namespace {

template <typename... F>
struct Overloaded : F... {
  using F::operator()...;
};
template <typename... F>
Overloaded(F...) -> Overloaded<F...>;

void put(std::string& s, const char* v) { s.append(v); }
void put(std::string& s, std::uint64_t v) { s.append(std::to_string(v)); }

// Builds a message by appending (chains of std::string + trip g++ 12's -Wrestrict at -O2).
template <typename... A>
std::string cat(const A&... a) {
  std::string s;
  (put(s, a), ...);
  return s;
}

}  // namespace

std::string_view frame_name(const Frame& f) {
  return std::visit(Overloaded{
                        [](const PaddingFrame&) { return std::string_view("PADDING"); },
                        [](const PingFrame&) { return std::string_view("PING"); },
                        [](const AckFrame&) { return std::string_view("ACK"); },
                        [](const StreamFrame&) { return std::string_view("STREAM"); },
                        [](const DatagramFrame&) { return std::string_view("DATAGRAM"); },
                        [](const MaxDataFrame&) { return std::string_view("MAX_DATA"); },
                        [](const MaxStreamDataFrame&) { return std::string_view("MAX_STREAM_DATA"); },
                        [](const CloseFrame&) { return std::string_view("CLOSE"); },
                    },
                    f);
}

bool is_ack_eliciting(const Frame& f) {
  return !std::holds_alternative<PaddingFrame>(f) && !std::holds_alternative<AckFrame>(f) &&
         !std::holds_alternative<CloseFrame>(f);
}

Status FrameReader::fail(std::string_view what) {
  failed_ = true;
  std::string msg = "udp frame at payload offset ";
  msg.append(std::to_string(pos_)).append(": ").append(what);
  error_ = invalid_argument(msg);
  return error_;
}

Result<bool> FrameReader::next(Frame& out) {
  if (failed_) return error_;
  if (pos_ == p_.size()) return false;

  const std::size_t start = pos_;
  std::size_t at = pos_ + 1;
  const std::uint8_t type = p_[pos_];
  // Reads one varint at `at`; false (and the reader fails) when truncated, overlong or above
  // kMaxVarintValue.
  Status err;
  auto varint = [&](std::uint64_t& v, const char* field) -> bool {
    VarintResult r = decode_varint(p_.data() + at, p_.size() - at);
    if (r.error != VarintError::kOk) {
      std::string m(field);
      m.append(r.error == VarintError::kTruncated ? ": truncated varint" : ": overlong varint");
      err = fail(m);
      return false;
    }
    if (r.value > kMaxVarintValue) {
      err = fail(std::string(field).append(": value above 2^62-1"));
      return false;
    }
    v = r.value;
    at += r.length;
    return true;
  };

  if (type == frame_type::kPadding) {
    while (at < p_.size() && p_[at] == 0) ++at;
    out = PaddingFrame{at - start};
  } else if (type == frame_type::kPing) {
    out = PingFrame{};
  } else if (type == frame_type::kAck) {
    AckFrame a;
    std::uint64_t largest, count, first;
    if (!varint(largest, "ACK largest") || !varint(a.ack_delay_us, "ACK delay") ||
        !varint(count, "ACK range count") || !varint(first, "ACK first range")) {
      return err;
    }
    if (count > limits_.max_ack_ranges) {
      return fail(cat("ACK has ", count, " ranges, limit ", std::uint64_t{limits_.max_ack_ranges}));
    }
    if (first > largest) return fail("ACK first range goes below packet number 0");
    a.ranges.push_back({largest - first, largest});
    for (std::uint64_t i = 0; i < count; ++i) {
      std::uint64_t gap, len;
      if (!varint(gap, "ACK gap") || !varint(len, "ACK range length")) return err;
      const std::uint64_t below = a.ranges.back().smallest;
      if (below < gap + 2) return fail("ACK gap goes below packet number 0");
      const std::uint64_t hi = below - gap - 2;
      if (len > hi) return fail("ACK range goes below packet number 0");
      a.ranges.push_back({hi - len, hi});
    }
    out = std::move(a);
  } else if ((type & ~std::uint8_t{0x03}) == frame_type::kStream) {
    StreamFrame s;
    s.fin = type & frame_type::kStreamFin;
    std::uint64_t len = 0;
    if (!varint(s.stream_id, "STREAM id") || !varint(s.offset, "STREAM offset")) return err;
    if (type & frame_type::kStreamLen) {
      if (!varint(len, "STREAM length")) return err;
      if (len > p_.size() - at) return fail(cat("STREAM length ", len, " exceeds the payload"));
    } else {
      len = p_.size() - at;
    }
    if (len > kMaxVarintValue - s.offset) return fail("STREAM offset + length above 2^62-1");
    s.data = p_.sub(at, static_cast<std::size_t>(len));
    at += static_cast<std::size_t>(len);
    out = s;
  } else if ((type & ~std::uint8_t{0x01}) == frame_type::kDatagram) {
    std::uint64_t len = 0;
    if (type & frame_type::kDatagramLen) {
      if (!varint(len, "DATAGRAM length")) return err;
      if (len > p_.size() - at) return fail(cat("DATAGRAM length ", len, " exceeds the payload"));
    } else {
      len = p_.size() - at;
    }
    out = DatagramFrame{p_.sub(at, static_cast<std::size_t>(len))};
    at += static_cast<std::size_t>(len);
  } else if (type == frame_type::kMaxData) {
    MaxDataFrame m;
    if (!varint(m.max, "MAX_DATA")) return err;
    out = m;
  } else if (type == frame_type::kMaxStreamData) {
    MaxStreamDataFrame m;
    if (!varint(m.stream_id, "MAX_STREAM_DATA id") || !varint(m.max, "MAX_STREAM_DATA max")) return err;
    out = m;
  } else if (type == frame_type::kClose) {
    CloseFrame c;
    std::uint64_t len;
    if (!varint(c.code, "CLOSE code") || !varint(len, "CLOSE reason length")) return err;
    if (len > limits_.max_close_reason) {
      return fail(cat("CLOSE reason of ", len, " bytes, limit ", std::uint64_t{limits_.max_close_reason}));
    }
    if (len > p_.size() - at) return fail("CLOSE reason exceeds the payload");
    c.reason = p_.sub(at, static_cast<std::size_t>(len)).as_string_view();
    at += static_cast<std::size_t>(len);
    out = c;
  } else {
    return fail(cat("unknown frame type ", std::uint64_t{type}));
  }
  pos_ = at;
  return true;
}

void FrameWriter::put_varint(std::uint64_t v) { len_ = static_cast<std::size_t>(encode_varint(out_ + len_, v) - out_); }

bool FrameWriter::add_padding(std::size_t n) {
  if (n > room()) return false;
  std::memset(out_ + len_, 0, n);
  len_ += n;
  return true;
}

bool FrameWriter::add_ping() {
  if (room() < 1) return false;
  out_[len_++] = frame_type::kPing;
  return true;
}

bool FrameWriter::add_ack(std::uint64_t ack_delay_us, const AckRange* ranges, std::size_t count) {
  if (count == 0) return false;
  const AckRange& first = ranges[0];
  const std::size_t head = 1 + varint_size(first.largest) + varint_size(ack_delay_us) +
                           varint_size(first.largest - first.smallest);
  // The range count is written before the ranges: find how many fit, with a count of that size.
  std::size_t fitted = 0;
  std::size_t body = 0;
  for (std::size_t i = 1; i < count; ++i) {
    const std::uint64_t gap = ranges[i - 1].smallest - ranges[i].largest - 2;
    const std::size_t more = varint_size(gap) + varint_size(ranges[i].largest - ranges[i].smallest);
    if (head + varint_size(i) + body + more > room()) break;
    body += more;
    fitted = i;
  }
  if (head + varint_size(fitted) + body > room()) return false;
  out_[len_++] = frame_type::kAck;
  put_varint(first.largest);
  put_varint(ack_delay_us);
  put_varint(fitted);
  put_varint(first.largest - first.smallest);
  for (std::size_t i = 1; i <= fitted; ++i) {
    put_varint(ranges[i - 1].smallest - ranges[i].largest - 2);
    put_varint(ranges[i].largest - ranges[i].smallest);
  }
  return true;
}

std::size_t FrameWriter::stream_overhead(std::uint64_t id, std::uint64_t offset, std::size_t len) {
  return 1 + varint_size(id) + varint_size(offset) + varint_size(len);
}

bool FrameWriter::add_stream(std::uint64_t id, std::uint64_t offset, ByteView data, bool fin, bool last) {
  std::size_t need = 1 + varint_size(id) + varint_size(offset) + data.size();
  if (!last) need += varint_size(data.size());
  if (need > room()) return false;
  std::uint8_t type = frame_type::kStream;
  if (fin) type |= frame_type::kStreamFin;
  if (!last) type |= frame_type::kStreamLen;
  out_[len_++] = type;
  put_varint(id);
  put_varint(offset);
  if (!last) put_varint(data.size());
  if (!data.empty()) std::memcpy(out_ + len_, data.data(), data.size());
  len_ += data.size();
  return true;
}

bool FrameWriter::add_datagram(ByteView data, bool last) {
  std::size_t need = 1 + data.size();
  if (!last) need += varint_size(data.size());
  if (need > room()) return false;
  out_[len_++] = last ? frame_type::kDatagram : (frame_type::kDatagram | frame_type::kDatagramLen);
  if (!last) put_varint(data.size());
  if (!data.empty()) std::memcpy(out_ + len_, data.data(), data.size());
  len_ += data.size();
  return true;
}

bool FrameWriter::add_max_data(std::uint64_t max) {
  if (1 + varint_size(max) > room()) return false;
  out_[len_++] = frame_type::kMaxData;
  put_varint(max);
  return true;
}

bool FrameWriter::add_max_stream_data(std::uint64_t id, std::uint64_t max) {
  if (1 + varint_size(id) + varint_size(max) > room()) return false;
  out_[len_++] = frame_type::kMaxStreamData;
  put_varint(id);
  put_varint(max);
  return true;
}

bool FrameWriter::add_close(std::uint64_t code, std::string_view reason) {
  if (1 + varint_size(code) + varint_size(reason.size()) + reason.size() > room()) return false;
  out_[len_++] = frame_type::kClose;
  put_varint(code);
  put_varint(reason.size());
  if (!reason.empty()) std::memcpy(out_ + len_, reason.data(), reason.size());
  len_ += reason.size();
  return true;
}

bool FrameWriter::add(const Frame& f) {
  return std::visit(Overloaded{
                        [&](const PaddingFrame& p) { return add_padding(p.length); },
                        [&](const PingFrame&) { return add_ping(); },
                        [&](const AckFrame& a) {
                          return add_ack(a.ack_delay_us, a.ranges.data(), a.ranges.size());
                        },
                        [&](const StreamFrame& s) { return add_stream(s.stream_id, s.offset, s.data, s.fin); },
                        [&](const DatagramFrame& d) { return add_datagram(d.data); },
                        [&](const MaxDataFrame& m) { return add_max_data(m.max); },
                        [&](const MaxStreamDataFrame& m) { return add_max_stream_data(m.stream_id, m.max); },
                        [&](const CloseFrame& c) { return add_close(c.code, c.reason); },
                    },
                    f);
}

std::string describe(const Frame& f) {
  std::string s(frame_name(f));
  std::visit(Overloaded{
                 [&](const PaddingFrame& p) { s.append(" len=").append(std::to_string(p.length)); },
                 [&](const PingFrame&) {},
                 [&](const AckFrame& a) {
                   s.append(" delay_us=").append(std::to_string(a.ack_delay_us));
                   for (const AckRange& r : a.ranges) {
                     s.append(" [").append(std::to_string(r.smallest)).append("..").append(std::to_string(r.largest)).append("]");
                   }
                 },
                 [&](const StreamFrame& st) {
                   s.append(" id=").append(std::to_string(st.stream_id));
                   s.append(" off=").append(std::to_string(st.offset));
                   s.append(" len=").append(std::to_string(st.data.size()));
                   if (st.fin) s.append(" fin");
                 },
                 [&](const DatagramFrame& d) { s.append(" len=").append(std::to_string(d.data.size())); },
                 [&](const MaxDataFrame& m) { s.append(" max=").append(std::to_string(m.max)); },
                 [&](const MaxStreamDataFrame& m) {
                   s.append(" id=").append(std::to_string(m.stream_id)).append(" max=").append(std::to_string(m.max));
                 },
                 [&](const CloseFrame& c) {
                   s.append(" code=").append(std::to_string(c.code)).append(" reason=").append(c.reason);
                 },
             },
             f);
  return s;
}

}  // namespace slip::transport::udp
