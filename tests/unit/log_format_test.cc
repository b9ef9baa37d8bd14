// The log's on-disk codecs: record batches and index files (docs/storage.md).
#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "log/format.h"
#include "log/index.h"

namespace slip::log {
namespace {

std::vector<std::uint8_t> sample_batch(std::uint64_t base = 7) {
  BatchBuilder b;
  b.reset(base);
  b.add(1000, ByteView("orders.eu"), std::nullopt, std::nullopt, ByteView("first"));
  b.add(990, std::nullopt, ByteView("\x01\x01k\x01v"), ByteView("id-2"), ByteView(""));
  b.add(1500, ByteView(""), ByteView(""), std::nullopt, ByteView(std::string(300, 'x')));
  ByteView v = b.finish();
  return std::vector<std::uint8_t>(v.begin(), v.end());
}

Status decode_all(const std::vector<std::uint8_t>& bytes, std::vector<RecordView>* out) {
  ByteView v(bytes.data(), bytes.size());
  SLIP_ASSIGN_OR_RETURN(BatchHeader h, decode_batch_header(v, BatchLimits{}));
  if (h.length != bytes.size()) return corruption("length");
  SLIP_TRY(verify_batch(v, h));
  return decode_records(v, h, out);
}

TEST(LogBatchTest, RoundTripsEveryField) {
  const auto bytes = sample_batch();
  std::vector<RecordView> recs;
  ASSERT_TRUE(decode_all(bytes, &recs).is_ok());
  auto h = decode_batch_header(ByteView(bytes.data(), bytes.size()), BatchLimits{});
  ASSERT_TRUE(h.is_ok());
  EXPECT_EQ(h->base_sequence, 7u);
  EXPECT_EQ(h->record_count, 3u);
  EXPECT_EQ(h->first_timestamp_ns, 1000);
  EXPECT_EQ(h->max_timestamp_ns, 1500);
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_EQ(recs[0].sequence, 7u);
  EXPECT_EQ(recs[0].timestamp_ns, 1000);
  ASSERT_TRUE(recs[0].subject.has_value());
  EXPECT_EQ(recs[0].subject->as_string_view(), "orders.eu");
  EXPECT_FALSE(recs[0].headers.has_value());
  EXPECT_FALSE(recs[0].msg_id.has_value());
  EXPECT_EQ(recs[0].payload.as_string_view(), "first");
  EXPECT_EQ(recs[1].sequence, 8u);
  EXPECT_EQ(recs[1].timestamp_ns, 990);  // older than the first: a negative delta
  EXPECT_FALSE(recs[1].subject.has_value());
  EXPECT_EQ(recs[1].headers->as_string_view(), "\x01\x01k\x01v");
  EXPECT_EQ(recs[1].msg_id->as_string_view(), "id-2");
  EXPECT_TRUE(recs[1].payload.empty());
  EXPECT_TRUE(recs[2].subject.has_value());
  EXPECT_TRUE(recs[2].subject->empty());  // present but empty differs from absent
  EXPECT_EQ(recs[2].payload.size(), 300u);
  std::size_t total = kBatchHeaderSize;
  for (const auto& r : recs) total += r.encoded_size;
  EXPECT_EQ(total, bytes.size());
}

TEST(LogBatchTest, EverySingleBitFlipIsDetected) {
  const auto good = sample_batch();
  for (std::size_t i = 0; i < good.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      auto bad = good;
      bad[i] ^= static_cast<std::uint8_t>(1u << bit);
      std::vector<RecordView> recs;
      EXPECT_FALSE(decode_all(bad, &recs).is_ok()) << "byte " << i << " bit " << bit;
    }
  }
}

TEST(LogBatchTest, EveryTruncationAndExtensionIsRejected) {
  const auto good = sample_batch();
  for (std::size_t n = 0; n < good.size(); ++n) {
    std::vector<std::uint8_t> cut(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n));
    std::vector<RecordView> recs;
    EXPECT_FALSE(decode_all(cut, &recs).is_ok()) << n;
  }
  auto longer = good;
  longer.push_back(0);
  std::vector<RecordView> recs;
  EXPECT_FALSE(decode_all(longer, &recs).is_ok());
}

TEST(LogBatchTest, HeaderRejectsLengthOverLimitAndZeroRecords) {
  auto bytes = sample_batch();
  BatchLimits small;
  small.max_batch_bytes = bytes.size() - 1;
  auto h = decode_batch_header(ByteView(bytes.data(), bytes.size()), small);
  ASSERT_FALSE(h.is_ok());
  EXPECT_EQ(h.status().code(), StatusCode::kCorruption);
  BatchLimits few;
  few.max_records = 2;
  EXPECT_FALSE(decode_batch_header(ByteView(bytes.data(), bytes.size()), few).is_ok());
  detail::put_u32(bytes.data() + 24, 0);
  EXPECT_FALSE(decode_batch_header(ByteView(bytes.data(), bytes.size()), BatchLimits{}).is_ok());
}

TEST(LogBatchTest, ForgedCountIsCaughtByRecordDecoding) {
  // A lowered count passes the header checks (the CRC is not consulted here); the records do not fit.
  auto bytes = sample_batch();
  detail::put_u32(bytes.data() + 24, 2);
  BatchHeader h = *decode_batch_header(ByteView(bytes.data(), bytes.size()), BatchLimits{});
  std::vector<RecordView> recs;
  EXPECT_EQ(decode_records(ByteView(bytes.data(), bytes.size()), h, &recs).code(), StatusCode::kCorruption);
}

OffsetIndex sample_offsets() {
  OffsetIndex x;
  x.base_sequence = 100;
  x.next_sequence = 200;
  x.segment_bytes = 50000;
  x.record_count = 99;
  x.first_timestamp_ns = 5;
  x.max_timestamp_ns = 900;
  x.entries = {{120, 4100}, {140, 8300}, {181, 12500}};
  return x;
}

TEST(LogIndexTest, OffsetAndTimeIndexesRoundTrip) {
  const OffsetIndex oi = sample_offsets();
  const auto ob = encode_offset_index(oi);
  auto od = decode_offset_index(ByteView(ob.data(), ob.size()));
  ASSERT_TRUE(od.is_ok()) << od.status().to_string();
  EXPECT_EQ(*od, oi);

  TimeIndex ti;
  ti.base_sequence = 100;
  ti.segment_bytes = 50000;
  ti.entries = {{INT64_MIN, 120}, {300, 140}, {300, 181}};
  const auto tb = encode_time_index(ti);
  auto td = decode_time_index(ByteView(tb.data(), tb.size()));
  ASSERT_TRUE(td.is_ok()) << td.status().to_string();
  EXPECT_EQ(*td, ti);
}

TEST(LogIndexTest, EveryFlipAndTruncationIsRejected) {
  const auto good = encode_offset_index(sample_offsets());
  for (std::size_t i = 0; i < good.size(); ++i) {
    auto bad = good;
    bad[i] ^= 0x10;
    EXPECT_FALSE(decode_offset_index(ByteView(bad.data(), bad.size())).is_ok()) << i;
  }
  for (std::size_t n = 0; n < good.size(); ++n) {
    EXPECT_FALSE(decode_offset_index(ByteView(good.data(), n)).is_ok()) << n;
  }
}

TEST(LogIndexTest, RejectsEntriesOutOfOrderEvenWithAValidCrc) {
  OffsetIndex x = sample_offsets();
  x.entries = {{140, 8300}, {120, 9000}};
  const auto b = encode_offset_index(x);
  EXPECT_FALSE(decode_offset_index(ByteView(b.data(), b.size())).is_ok());
  x.entries = {{150, 60000}};  // past the segment
  const auto c = encode_offset_index(x);
  EXPECT_FALSE(decode_offset_index(ByteView(c.data(), c.size())).is_ok());
}

TEST(LogIndexTest, LookupsFindTheLastEntryBefore) {
  const std::vector<IndexEntry> e = {{120, 4100}, {140, 8300}};
  EXPECT_EQ(index_lookup(e, 100, 100), (IndexEntry{100, 0}));
  EXPECT_EQ(index_lookup(e, 100, 119), (IndexEntry{100, 0}));
  EXPECT_EQ(index_lookup(e, 100, 120), (IndexEntry{120, 4100}));
  EXPECT_EQ(index_lookup(e, 100, 139), (IndexEntry{120, 4100}));
  EXPECT_EQ(index_lookup(e, 100, 1000), (IndexEntry{140, 8300}));
  const std::vector<TimeEntry> t = {{50, 120}, {70, 140}};
  EXPECT_EQ(time_lookup(t, 100, 40), 100u);
  EXPECT_EQ(time_lookup(t, 100, 50), 100u);  // a record before 120 may have timestamp 50
  EXPECT_EQ(time_lookup(t, 100, 51), 120u);
  EXPECT_EQ(time_lookup(t, 100, 71), 140u);
}

std::string seed(const std::string& target, const std::string& name) {
  std::ifstream in(std::string(SLIP_SOURCE_DIR "/tests/fuzz/corpus/") + target + "/" + name, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The fuzz seeds are written by tests/fuzz/make_log_corpus.py from docs/storage.md alone: the
// C++ decoders must read them exactly.
TEST(LogFormatSpecTest, SeedsWrittenFromTheSpecDecode) {
  const std::string seg = seed("log_batch_fuzz", "segment");
  ASSERT_FALSE(seg.empty());
  ByteView all(seg);
  std::size_t pos = 0;
  std::vector<RecordView> recs;
  std::vector<std::uint64_t> bases;
  while (pos < all.size()) {
    auto h = decode_batch_header(all.sub(pos), BatchLimits{});
    ASSERT_TRUE(h.is_ok()) << h.status().to_string();
    const ByteView batch = all.sub(pos, h->length);
    ASSERT_TRUE(verify_batch(batch, *h).is_ok());
    ASSERT_TRUE(decode_records(batch, *h, &recs).is_ok());
    bases.push_back(h->base_sequence);
    pos += h->length;
  }
  EXPECT_EQ(bases, (std::vector<std::uint64_t>{1, 2, 4}));
  ASSERT_EQ(recs.size(), 9u);
  EXPECT_EQ(recs[0].subject->as_string_view(), "orders.eu");
  EXPECT_EQ(recs[0].payload.as_string_view(), "hello");
  EXPECT_EQ(recs[1].msg_id->as_string_view(), "id-1");
  EXPECT_EQ(recs[2].timestamp_ns + 2, recs[1].timestamp_ns);  // a negative delta
  EXPECT_EQ(recs[8].sequence, 9u);
  EXPECT_EQ(recs[8].msg_id->as_string_view(), "m5");

  const std::string oi = seed("log_index_fuzz", "offset-two");
  auto o = decode_offset_index(ByteView(oi));
  ASSERT_TRUE(o.is_ok()) << o.status().to_string();
  EXPECT_EQ(o->entries.size(), 2u);
  EXPECT_EQ(o->segment_bytes, seg.size());
  const std::string ti = seed("log_index_fuzz", "time-two");
  auto t = decode_time_index(ByteView(ti));
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  EXPECT_EQ(t->entries.size(), 2u);
}

}  // namespace
}  // namespace slip::log
