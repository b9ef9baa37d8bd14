#include "obs/traceparent.h"

#include <random>

namespace slip::obs {

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;  // uppercase is not allowed either
}

template <std::size_t N>
Status parse_hex(std::string_view s, std::array<std::uint8_t, N>& out, const char* what) {
  if (s.size() != 2 * N) return invalid_argument(std::string("traceparent: ") + what + " must be " + std::to_string(2 * N) + " hex digits");
  bool zero = true;
  for (std::size_t i = 0; i < N; ++i) {
    const int hi = hex_value(s[2 * i]), lo = hex_value(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return invalid_argument(std::string("traceparent: ") + what + " is not lowercase hex");
    out[i] = static_cast<std::uint8_t>(hi << 4 | lo);
    zero = zero && out[i] == 0;
  }
  if (zero) return invalid_argument(std::string("traceparent: ") + what + " is all zeros");
  return Status();
}

void put_hex(std::string& out, const std::uint8_t* p, std::size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  for (std::size_t i = 0; i < n; ++i) {
    out += kDigits[p[i] >> 4];
    out += kDigits[p[i] & 15];
  }
}

std::mt19937_64& rng() {
  thread_local std::mt19937_64 r{std::random_device{}()};
  return r;
}

template <std::size_t N>
void fill_random(std::array<std::uint8_t, N>& a) {
  do {
    for (auto& b : a) b = static_cast<std::uint8_t>(rng()());
  } while (a == std::array<std::uint8_t, N>{});
}

}  // namespace

Result<TraceContext> parse_traceparent(std::string_view h) {
  // version(2) '-' trace-id(32) '-' parent-id(16) '-' flags(2) = 55
  constexpr std::size_t kLength = 55;
  if (h.size() < kLength) return invalid_argument("traceparent: too short (" + std::to_string(h.size()) + " chars, need 55)");
  if (h[2] != '-' || h[35] != '-' || h[52] != '-') return invalid_argument("traceparent: fields must be separated by '-'");
  const int v_hi = hex_value(h[0]), v_lo = hex_value(h[1]);
  if (v_hi < 0 || v_lo < 0) return invalid_argument("traceparent: version is not lowercase hex");
  const int version = v_hi << 4 | v_lo;
  if (version == 0xff) return invalid_argument("traceparent: version ff is invalid");
  if (version == 0 && h.size() != kLength) return invalid_argument("traceparent: version 00 must be exactly 55 chars");
  if (h.size() > kLength && h[kLength] != '-') return invalid_argument("traceparent: unexpected text after the flags");
  TraceContext t;
  SLIP_TRY(parse_hex(h.substr(3, 32), t.trace_id, "trace id"));
  SLIP_TRY(parse_hex(h.substr(36, 16), t.parent_id, "parent id"));
  const int f_hi = hex_value(h[53]), f_lo = hex_value(h[54]);
  if (f_hi < 0 || f_lo < 0) return invalid_argument("traceparent: flags are not lowercase hex");
  t.flags = static_cast<std::uint8_t>(f_hi << 4 | f_lo);
  return t;
}

std::string format_traceparent(const TraceContext& t) {
  std::string out = "00-";
  out.reserve(55);
  put_hex(out, t.trace_id.data(), t.trace_id.size());
  out += '-';
  put_hex(out, t.parent_id.data(), t.parent_id.size());
  out += '-';
  put_hex(out, &t.flags, 1);
  return out;
}

TraceContext new_trace(bool sampled) {
  TraceContext t;
  fill_random(t.trace_id);
  fill_random(t.parent_id);
  t.flags = sampled ? 1 : 0;
  return t;
}

TraceContext child_of(const TraceContext& parent) {
  TraceContext t = parent;
  fill_random(t.parent_id);
  return t;
}

}  // namespace slip::obs
