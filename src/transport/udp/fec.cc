#include "transport/udp/fec.h"

#include <isa-l/erasure_code.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

namespace slip::transport::udp {
namespace {

// The parity rows of ISA-L's Cauchy matrix for 48 sources and 16 repairs, and their
// multiplication tables (ec_init_tables) for incremental encoding. Built once, read-only after.
struct Code {
  std::array<std::uint8_t, kFecMaxRepairs * kFecMaxSources> coef{};
  std::vector<std::uint8_t> tables;
};

const Code& code() {
  static const Code c = [] {
    Code out;
    constexpr std::size_t rows = kFecMaxSources + kFecMaxRepairs;
    std::vector<std::uint8_t> a(rows * kFecMaxSources);
    gf_gen_cauchy1_matrix(a.data(), static_cast<int>(rows), static_cast<int>(kFecMaxSources));
    std::memcpy(out.coef.data(), a.data() + kFecMaxSources * kFecMaxSources, out.coef.size());
    out.tables.resize(32 * kFecMaxSources * kFecMaxRepairs);
    ec_init_tables(static_cast<int>(kFecMaxSources), static_cast<int>(kFecMaxRepairs), out.coef.data(),
                   out.tables.data());
    return out;
  }();
  return c;
}

void put_u32(std::uint8_t* p, std::uint32_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 24);
  p[1] = static_cast<std::uint8_t>(v >> 16);
  p[2] = static_cast<std::uint8_t>(v >> 8);
  p[3] = static_cast<std::uint8_t>(v);
}

std::uint32_t get_u32(const std::uint8_t* p) {
  return (static_cast<std::uint32_t>(p[0]) << 24) | (static_cast<std::uint32_t>(p[1]) << 16) |
         (static_cast<std::uint32_t>(p[2]) << 8) | p[3];
}

// Serial-number order of 32-bit block ids: a before b.
std::int32_t id_diff(std::uint32_t a, std::uint32_t b) { return static_cast<std::int32_t>(a - b); }

constexpr std::size_t kMaxSpareBuffers = 128;

}  // namespace

std::uint8_t fec_coefficient(std::size_t repair_index, std::size_t source_index) {
  return code().coef[repair_index * kFecMaxSources + source_index];
}

// ---------------------------------------------------------------------------------------------
// FecPolicy

FecPolicy::FecPolicy(FecPolicyOptions options) : options_(std::move(options)) {}

Status FecPolicy::validate(const FecPolicyOptions& options) {
  double prev = -1;
  for (const FecLevel& l : options.levels) {
    if (!(l.min_loss > prev) || l.min_loss > 1) return invalid_argument("FEC levels must have increasing min_loss in (0, 1]");
    if (l.k < 1 || l.k > kFecMaxSources) return invalid_argument("FEC level k must be 1 to 48");
    if (l.m < 1 || l.m > kFecMaxRepairs) return invalid_argument("FEC level m must be 1 to 16");
    prev = l.min_loss;
  }
  if (!(options.hysteresis >= 0 && options.hysteresis < 1)) return invalid_argument("FEC hysteresis must be in [0, 1)");
  return Status();
}

void FecPolicy::set_loss_estimate(double loss) {
  if (std::isnan(loss)) return;
  loss_ = std::clamp(loss, 0.0, 1.0);
  const int n = static_cast<int>(options_.levels.size());
  while (level_ + 1 < n && loss_ >= options_.levels[static_cast<std::size_t>(level_ + 1)].min_loss) ++level_;
  while (level_ >= 0 &&
         loss_ < options_.levels[static_cast<std::size_t>(level_)].min_loss * (1 - options_.hysteresis)) {
    --level_;
  }
}

FecRatio FecPolicy::ratio() const {
  if (level_ < 0) return {};
  const FecLevel& l = options_.levels[static_cast<std::size_t>(level_)];
  return {l.k, l.m};
}

std::size_t FecPolicy::max_block_packets() const {
  std::size_t n = 0;
  for (const FecLevel& l : options_.levels) n = std::max<std::size_t>(n, l.k + l.m);
  return n;
}

// ---------------------------------------------------------------------------------------------
// FecEncoder

FecEncoder::FecEncoder(const FecEncoderOptions& options)
    : options_(options),
      policy_(options.policy),
      symbol_capacity_(options.max_datagram_size + kFecLengthPrefix),
      parity_(kFecMaxRepairs * symbol_capacity_, 0),
      symbol_(symbol_capacity_) {
  for (std::size_t r = 0; r < kFecMaxRepairs; ++r) parity_rows_[r] = parity_.data() + r * symbol_capacity_;
  options_.ratio.k = static_cast<std::uint8_t>(std::clamp<std::size_t>(options_.ratio.k, 0, kFecMaxSources));
  options_.ratio.m = static_cast<std::uint8_t>(std::clamp<std::size_t>(options_.ratio.m, 0, kFecMaxRepairs));
  (void)code();
}

void FecEncoder::set_enabled(Instant /*now*/, bool enabled) {
  if (!enabled && count_ > 0) close_block(true);
  options_.enabled = enabled;
}

void FecEncoder::set_loss_estimate(double loss) { policy_.set_loss_estimate(loss); }

FecRatio FecEncoder::ratio() const {
  if (!options_.enabled) return {};
  return options_.adaptive ? policy_.ratio() : options_.ratio;
}

std::vector<std::uint8_t>& FecEncoder::new_output() {
  if (!spare_.empty()) {
    out_.push_back(std::move(spare_.back()));
    spare_.pop_back();
    out_.back().clear();
  } else {
    out_.emplace_back();
  }
  return out_.back();
}

void FecEncoder::push(Instant now, ByteView datagram) {
  const FecRatio r = ratio();
  // A changed ratio takes effect at a block boundary: close the open block with what it has.
  if (count_ > 0 && !(r == block_ratio_)) close_block(true);
  if (!r.active() || datagram.empty() || datagram.size() > options_.max_datagram_size) {
    if (r.active() && datagram.size() > options_.max_datagram_size) ++stats_.too_long;
    ++stats_.passthrough;
    std::vector<std::uint8_t>& o = new_output();
    o.assign(datagram.begin(), datagram.end());
    return;
  }
  if (count_ == 0) {
    block_ratio_ = r;
    block_start_ = now;
  }
  std::vector<std::uint8_t>& o = new_output();
  o.resize(kFecSourceHeaderSize + datagram.size());
  o[0] = kFecSourceType;
  put_u32(o.data() + 1, block_id_);
  o[5] = static_cast<std::uint8_t>(count_);
  std::memcpy(o.data() + kFecSourceHeaderSize, datagram.data(), datagram.size());
  ++stats_.source_packets;

  const std::size_t len = kFecLengthPrefix + datagram.size();
  symbol_[0] = static_cast<std::uint8_t>(datagram.size() >> 8);
  symbol_[1] = static_cast<std::uint8_t>(datagram.size());
  std::memcpy(symbol_.data() + kFecLengthPrefix, datagram.data(), datagram.size());
  // Parity accumulates source by source; bytes past a source's end are zeros and add nothing.
  ec_encode_data_update(static_cast<int>(len), static_cast<int>(kFecMaxSources), block_ratio_.m,
                        static_cast<int>(count_), const_cast<std::uint8_t*>(code().tables.data()), symbol_.data(),
                        parity_rows_.data());
  symbol_len_ = std::max(symbol_len_, len);
  ++count_;
  if (count_ >= block_ratio_.k) close_block(false);
}

namespace {

// The chance that more than m of n packets are lost, each independently with probability p.
double loss_beyond(std::size_t n, std::size_t m, double p) {
  double term = std::pow(1 - p, static_cast<double>(n));  // P(X = 0)
  double at_most = term;
  for (std::size_t i = 1; i <= m && i <= n; ++i) {
    term *= static_cast<double>(n - i + 1) / static_cast<double>(i) * p / (1 - p);
    at_most += term;
  }
  return std::max(0.0, 1 - at_most);
}

}  // namespace

std::size_t FecEncoder::repairs_for_flush() const {
  const std::size_t k = block_ratio_.k, m = block_ratio_.m;
  // Proportional: m x count / k, rounded up.
  std::size_t r = (m * count_ + k - 1) / k;
  const double p = policy_.loss_estimate();
  if (!options_.adaptive || count_ >= k || !(p > 0 && p < 1)) return r;
  const double target = loss_beyond(k + m, m, p);
  const auto cap = static_cast<std::size_t>(
      std::max(1.0, std::floor(static_cast<double>(count_) * options_.max_repair_ratio + 1e-9)));
  const std::size_t most = std::min(m, std::max(r, cap));
  while (r < most && loss_beyond(count_ + r, r, p) > target) ++r;
  return r;
}

void FecEncoder::close_block(bool flushed) {
  if (count_ == 0) return;
  // A block closed early: see FecEncoderOptions::max_repair_ratio.
  const std::size_t m = flushed ? repairs_for_flush() : block_ratio_.m;
  for (std::size_t r = 0; r < m; ++r) {
    std::vector<std::uint8_t>& o = new_output();
    o.resize(kFecRepairHeaderSize + symbol_len_);
    o[0] = kFecRepairType;
    put_u32(o.data() + 1, block_id_);
    o[5] = static_cast<std::uint8_t>(r);
    o[6] = static_cast<std::uint8_t>(count_);
    o[7] = static_cast<std::uint8_t>(m);
    std::memcpy(o.data() + kFecRepairHeaderSize, parity_rows_[r], symbol_len_);
    ++stats_.repair_packets;
  }
  // Every row the block accumulated starts the next block at zero, the unsent ones too (a block
  // closed early sends fewer than block_ratio_.m).
  for (std::size_t r = 0; r < block_ratio_.m; ++r) std::memset(parity_rows_[r], 0, symbol_len_);
  ++stats_.blocks;
  if (flushed) ++stats_.blocks_flushed;
  ++block_id_;
  count_ = 0;
  symbol_len_ = 0;
}

std::optional<ByteView> FecEncoder::poll_transmit() {
  if (out_.empty()) return std::nullopt;
  if (!current_.empty() || current_.capacity() > 0) {
    if (spare_.size() < kMaxSpareBuffers) spare_.push_back(std::move(current_));
  }
  current_ = std::move(out_.front());
  out_.pop_front();
  stats_.bytes_out += current_.size();
  return ByteView(current_.data(), current_.size());
}

Instant FecEncoder::next_timeout() const {
  if (count_ == 0) return kNever;
  return block_start_ + options_.flush_delay;
}

void FecEncoder::on_timeout(Instant now) {
  if (count_ > 0 && now >= block_start_ + options_.flush_delay) close_block(true);
}

// ---------------------------------------------------------------------------------------------
// FecDecoder

FecDecoder::FecDecoder(const FecDecoderOptions& options) : options_(options) {
  options_.max_blocks = std::max<std::size_t>(options_.max_blocks, 1);
  (void)code();
}

std::vector<std::uint8_t> FecDecoder::take_buffer() {
  if (spare_.empty()) return {};
  std::vector<std::uint8_t> v = std::move(spare_.back());
  spare_.pop_back();
  v.clear();
  return v;
}

void FecDecoder::give_buffer(std::vector<std::uint8_t>& v) {
  if (v.capacity() == 0) return;
  if (spare_.size() < kMaxSpareBuffers) {
    spare_.push_back(std::move(v));
  }
  v = {};
}

FecDecoder::Block* FecDecoder::find(std::uint32_t id) {
  for (auto& b : blocks_) {
    if (b->id == id) return b.get();
  }
  return nullptr;
}

void FecDecoder::release(Block& b) {
  for (auto& s : b.src) {
    buffered_ -= s.size();
    give_buffer(s);
  }
  for (auto& s : b.rep) {
    buffered_ -= s.size();
    give_buffer(s);
  }
}

void FecDecoder::sample_loss(Block& b) {
  if (b.sampled || b.k == 0) return;
  b.sampled = true;
  const double expected = b.k + b.m;
  const double got = std::popcount(b.received) + std::popcount(b.repairs);
  const double lost = std::max(0.0, expected - got) / expected;
  loss_ += options_.loss_weight * (lost - loss_);
}

void FecDecoder::forget(std::size_t index, bool evicted) {
  Block& b = *blocks_[index];
  sample_loss(b);
  if (!b.done && b.k > 0 && std::popcount(b.sources) < b.k) ++stats_.blocks_unrecovered;
  if (evicted) ++stats_.blocks_evicted;
  release(b);
  blocks_.erase(blocks_.begin() + static_cast<std::ptrdiff_t>(index));
}

FecDecoder::Block* FecDecoder::open_block(Instant now, std::uint32_t id) {
  if (Block* b = find(id)) return b;
  if (newest_ && id_diff(id, *newest_) <= -static_cast<std::int32_t>(options_.max_blocks)) return nullptr;
  while (blocks_.size() >= options_.max_blocks) forget(0, true);
  auto b = std::make_unique<Block>();
  b->id = id;
  b->created = now;
  blocks_.push_back(std::move(b));
  if (!newest_ || id_diff(id, *newest_) > 0) {
    newest_ = id;
    // Blocks two or more behind the newest have had their chance to arrive: count their loss.
    for (auto& old : blocks_) {
      if (id_diff(id, old->id) >= 2) sample_loss(*old);
    }
  }
  return blocks_.back().get();
}

bool FecDecoder::store(Block& b, std::vector<std::uint8_t>& slot, ByteView prefix, ByteView bytes) {
  const std::size_t n = prefix.size() + bytes.size();
  // Make room by forgetting the oldest other blocks; a block that cannot fit alone is not kept.
  while (buffered_ + n > options_.max_buffered_bytes) {
    std::size_t victim = blocks_.size();
    for (std::size_t i = 0; i < blocks_.size(); ++i) {
      if (blocks_[i].get() != &b) {
        victim = i;
        break;
      }
    }
    if (victim == blocks_.size()) return false;
    forget(victim, true);
  }
  slot = take_buffer();
  slot.reserve(std::max(n, b.symbol_len));
  slot.insert(slot.end(), prefix.begin(), prefix.end());
  slot.insert(slot.end(), bytes.begin(), bytes.end());
  buffered_ += slot.size();
  return true;
}

ByteView FecDecoder::on_datagram(Instant now, ByteView d) {
  if (d.empty() || (d[0] != kFecSourceType && d[0] != kFecRepairType)) {
    ++stats_.passthrough;
    return d;
  }
  if (d[0] == kFecSourceType) {
    if (d.size() <= kFecSourceHeaderSize || d.size() - kFecSourceHeaderSize > options_.max_datagram_size ||
        d[5] >= kFecMaxSources) {
      ++stats_.malformed;
      return {};
    }
    const std::uint32_t id = get_u32(d.data() + 1);
    const std::size_t index = d[5];
    const ByteView inner = d.sub(kFecSourceHeaderSize);
    Block* b = open_block(now, id);
    if (b == nullptr) {
      // Far older than anything tracked: hand it on; the connection drops what it has seen.
      ++stats_.source_packets;
      return inner;
    }
    const std::uint64_t bit = std::uint64_t{1} << index;
    if (b->sources & bit) {
      ++stats_.duplicates;
      return {};
    }
    ++stats_.source_packets;
    b->sources |= bit;
    b->received |= bit;
    if (b->done) return inner;
    if (b->k != 0 && (index >= b->k || kFecLengthPrefix + inner.size() > b->symbol_len)) {
      // Disagrees with the block's repair packets: nothing of this block is rebuilt.
      ++stats_.malformed;
      b->done = true;
      release(*b);
      return inner;
    }
    const std::uint8_t prefix_bytes[2] = {static_cast<std::uint8_t>(inner.size() >> 8),
                                          static_cast<std::uint8_t>(inner.size())};
    if (!store(*b, b->src[index], ByteView(prefix_bytes, 2), inner)) {
      b->done = true;
      release(*b);
      return inner;
    }
    try_recover(*b);
    return inner;
  }

  // Repair packet.
  if (d.size() <= kFecRepairHeaderSize + kFecLengthPrefix ||
      d.size() - kFecRepairHeaderSize > options_.max_datagram_size + kFecLengthPrefix) {
    ++stats_.malformed;
    return {};
  }
  const std::uint32_t id = get_u32(d.data() + 1);
  const std::size_t r = d[5];
  const std::size_t k = d[6];
  const std::size_t m = d[7];
  const std::size_t len = d.size() - kFecRepairHeaderSize;
  if (k < 1 || k > kFecMaxSources || m < 1 || m > kFecMaxRepairs || r >= m) {
    ++stats_.malformed;
    return {};
  }
  Block* b = open_block(now, id);
  if (b == nullptr) {
    ++stats_.too_old;
    return {};
  }
  if (b->k == 0) {
    // The first repair fixes the block's shape; sources stored before must agree with it.
    const std::uint64_t beyond = k >= 64 ? 0 : ~((std::uint64_t{1} << k) - 1);
    bool consistent = (b->received & beyond) == 0;
    for (std::size_t i = 0; i < kFecMaxSources && consistent; ++i) {
      if (b->src[i].size() > len) consistent = false;
    }
    b->k = static_cast<std::uint8_t>(k);
    b->m = static_cast<std::uint8_t>(m);
    b->symbol_len = len;
    if (!consistent && !b->done) {
      ++stats_.malformed;
      b->done = true;
      release(*b);
    }
  } else if (b->k != k || b->m != m || b->symbol_len != len) {
    ++stats_.malformed;
    return {};
  }
  const std::uint32_t bit = std::uint32_t{1} << r;
  if (b->repairs & bit) {
    ++stats_.duplicates;
    return {};
  }
  ++stats_.repair_packets;
  b->repairs |= bit;
  if (std::popcount(b->received) + std::popcount(b->repairs) >= b->k + b->m) sample_loss(*b);
  if (b->done) return {};
  if (!store(*b, b->rep[r], ByteView(), d.sub(kFecRepairHeaderSize))) {
    b->done = true;
    release(*b);
    return {};
  }
  try_recover(*b);
  return {};
}

void FecDecoder::try_recover(Block& b) {
  if (b.done || b.k == 0) return;
  const std::size_t k = b.k;
  const std::uint64_t all = k >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << k) - 1;
  const std::uint64_t missing_mask = all & ~b.sources;
  const std::size_t e = static_cast<std::size_t>(std::popcount(missing_mask));
  if (e == 0) {
    b.done = true;
    release(b);
    return;
  }
  if (static_cast<std::size_t>(std::popcount(b.repairs)) < e) return;

  std::array<std::size_t, kFecMaxRepairs> miss{};
  std::array<std::size_t, kFecMaxRepairs> reps{};
  std::array<std::size_t, kFecMaxSources> known{};
  std::size_t nm = 0, nr = 0, nk = 0;
  for (std::size_t j = 0; j < k; ++j) {
    if (missing_mask & (std::uint64_t{1} << j)) {
      miss[nm++] = j;
    } else {
      known[nk++] = j;
    }
  }
  for (std::size_t r = 0; r < kFecMaxRepairs && nr < e; ++r) {
    if (b.repairs & (std::uint32_t{1} << r)) reps[nr++] = r;
  }
  // A rebuilt source only comes from the packets received, never from a source rebuilt earlier
  // in this block (each block is rebuilt once, when enough packets are in).
  for (std::size_t i = 0; i < nk; ++i) {
    if (b.src[known[i]].empty()) {
      // Delivered but not stored (it arrived after its block was given up): cannot help.
      b.done = true;
      release(b);
      return;
    }
  }

  // A = the repairs' coefficients on the missing sources (e x e, a Cauchy matrix: invertible).
  std::array<std::uint8_t, kFecMaxRepairs * kFecMaxRepairs> a{};
  std::array<std::uint8_t, kFecMaxRepairs * kFecMaxRepairs> inv{};
  for (std::size_t i = 0; i < e; ++i) {
    for (std::size_t j = 0; j < e; ++j) a[i * e + j] = fec_coefficient(reps[i], miss[j]);
  }
  if (gf_invert_matrix(a.data(), inv.data(), static_cast<int>(e)) != 0) {
    ++stats_.malformed;  // cannot happen with this code
    b.done = true;
    release(b);
    return;
  }
  // Missing x = inv * (p - C_known * x_known): one decode matrix over k inputs, the e repairs
  // first and then the k - e known sources.
  std::vector<std::uint8_t> dm(e * k);
  for (std::size_t o = 0; o < e; ++o) {
    for (std::size_t i = 0; i < e; ++i) dm[o * k + i] = inv[o * e + i];
    for (std::size_t s = 0; s < nk; ++s) {
      std::uint8_t c = 0;
      for (std::size_t i = 0; i < e; ++i) c ^= gf_mul(inv[o * e + i], fec_coefficient(reps[i], known[s]));
      dm[o * k + e + s] = c;
    }
  }
  const std::size_t len = b.symbol_len;
  std::array<std::uint8_t*, kFecMaxSources> in{};
  for (std::size_t i = 0; i < e; ++i) in[i] = b.rep[reps[i]].data();
  for (std::size_t s = 0; s < nk; ++s) {
    std::vector<std::uint8_t>& v = b.src[known[s]];
    buffered_ -= v.size();
    v.resize(len, 0);
    buffered_ += v.size();
    in[e + s] = v.data();
  }
  std::array<std::vector<std::uint8_t>, kFecMaxRepairs> outs;
  std::array<std::uint8_t*, kFecMaxRepairs> outp{};
  for (std::size_t o = 0; o < e; ++o) {
    outs[o] = take_buffer();
    outs[o].resize(len);
    outp[o] = outs[o].data();
  }
  tables_.resize(32 * k * e);
  ec_init_tables(static_cast<int>(k), static_cast<int>(e), dm.data(), tables_.data());
  ec_encode_data(static_cast<int>(len), static_cast<int>(k), static_cast<int>(e), tables_.data(), in.data(),
                 outp.data());
  for (std::size_t o = 0; o < e; ++o) {
    std::vector<std::uint8_t>& v = outs[o];
    const std::size_t n = (static_cast<std::size_t>(v[0]) << 8) | v[1];
    if (n == 0 || kFecLengthPrefix + n > len) {
      // Garbage: a damaged or forged packet in the block. Deliver nothing of it.
      ++stats_.malformed;
      give_buffer(v);
      continue;
    }
    v.erase(v.begin(), v.begin() + kFecLengthPrefix);
    v.resize(n);
    b.sources |= std::uint64_t{1} << miss[o];
    ++stats_.recovered;
    recovered_.push_back(std::move(v));
  }
  b.done = true;
  release(b);
}

std::optional<ByteView> FecDecoder::poll_recovered() {
  if (recovered_.empty()) return std::nullopt;
  give_buffer(current_);
  current_ = std::move(recovered_.front());
  recovered_.pop_front();
  return ByteView(current_.data(), current_.size());
}

Instant FecDecoder::next_timeout() const {
  Instant t = kNever;
  for (const auto& b : blocks_) t = std::min(t, b->created + options_.block_lifetime);
  return t;
}

void FecDecoder::on_timeout(Instant now) {
  for (std::size_t i = 0; i < blocks_.size();) {
    if (blocks_[i]->created + options_.block_lifetime <= now) {
      forget(i, false);
    } else {
      ++i;
    }
  }
}

}  // namespace slip::transport::udp
