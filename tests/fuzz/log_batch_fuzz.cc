// libFuzzer target: the log's record-batch decoder and the segment scan that recovery and reads
// use to get past damage (src/log/format.h, src/log/segment.h).
//
// Input: the bytes of a segment file (one batch or many, damaged or not).
//
// Checks, beyond "no crash, no sanitizer report, no hang":
//   - decode_batch_header / verify_batch / decode_records on the input as one batch: failures
//     are kCorruption; a batch that decodes is re-encoded by BatchBuilder, and the new batch
//     decodes to the same records;
//   - scan_segment over the input as a file (a memfd): the valid end and every damaged range
//     lie inside the file, in order; every batch it accepted decodes again from the file, and
//     sequences continue from the segment's base; find_next_batch only returns positions after
//     its start whose batch verifies.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "log/format.h"
#include "log/segment.h"

namespace {

using namespace slip;
using namespace slip::log;
namespace ld = slip::log::detail;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "log_batch_fuzz: %s\n", what);
  std::abort();
}

bool same(const std::optional<ByteView>& a, const std::optional<ByteView>& b) {
  return a.has_value() == b.has_value() && (!a || *a == *b);
}

void check_one_batch(ByteView in, const BatchLimits& limits) {
  Result<BatchHeader> h = decode_batch_header(in, limits);
  if (!h.is_ok()) {
    if (h.status().code() != StatusCode::kCorruption) fail("header rejection is not kCorruption");
    return;
  }
  if (h->length > in.size()) return;
  const ByteView batch = in.sub(0, h->length);
  const bool verified = verify_batch(batch, *h).is_ok();
  std::vector<RecordView> recs;
  Status s = decode_records(batch, *h, &recs);
  if (!s.is_ok()) {
    if (s.code() != StatusCode::kCorruption) fail("record rejection is not kCorruption");
    return;
  }
  if (recs.size() != h->record_count) fail("record count differs from the header");
  std::size_t total = kBatchHeaderSize;
  for (const RecordView& r : recs) total += r.encoded_size;
  if (total != h->length) fail("records do not fill the batch");
  (void)verified;

  BatchBuilder b;
  b.reset(h->base_sequence);
  for (const RecordView& r : recs) b.add(r.timestamp_ns, r.subject, r.headers, r.msg_id, r.payload);
  const ByteView again = b.finish();
  BatchLimits big;
  big.max_batch_bytes = again.size() + 1;
  Result<BatchHeader> h2 = decode_batch_header(again, big);
  if (!h2.is_ok() || !verify_batch(again, *h2).is_ok()) fail("re-encoded batch does not verify");
  std::vector<RecordView> recs2;
  if (!decode_records(again, *h2, &recs2).is_ok() || recs2.size() != recs.size()) fail("re-encoded batch differs");
  for (std::size_t i = 0; i < recs.size(); ++i) {
    if (recs[i].sequence != recs2[i].sequence || recs[i].timestamp_ns != recs2[i].timestamp_ns ||
        !same(recs[i].subject, recs2[i].subject) || !same(recs[i].headers, recs2[i].headers) ||
        !same(recs[i].msg_id, recs2[i].msg_id) || !(recs[i].payload == recs2[i].payload)) {
      fail("re-encoded record differs");
    }
  }
}

void check_scan(ByteView in, const BatchLimits& limits) {
  const int fd = ::memfd_create("log_batch_fuzz", MFD_CLOEXEC);
  if (fd < 0) fail("memfd_create");
  std::size_t done = 0;
  while (done < in.size()) {
    const ssize_t n = ::write(fd, in.data() + done, in.size() - done);
    if (n <= 0) fail("write to memfd");
    done += static_cast<std::size_t>(n);
  }
  ld::Segment seg;
  seg.base = 1;
  seg.file = File(fd, "memfd");
  seg.next_sequence = 1;
  Result<ld::ScanResult> r = ld::scan_segment(&seg, in.size(), limits, 64);
  if (!r.is_ok()) fail("scan of a readable file failed");
  if (r->valid_end > in.size()) fail("valid end past the file");
  std::uint64_t prev = 0;
  for (const ld::DamagedRange& d : r->damaged) {
    if (d.position < prev || d.end <= d.position || d.end > r->valid_end) fail("damaged range out of order");
    prev = d.end;
  }
  if (seg.size != r->valid_end && !(seg.size == 0 && r->valid_end == 0)) fail("segment size differs from valid end");
  for (const IndexEntry& e : seg.offsets) {
    Buffer b;
    Result<std::optional<BatchHeader>> h = ld::read_batch(seg.file, e.position, in.size(), limits, &b);
    if (!h.is_ok() || !*h || (*h)->base_sequence != e.sequence) fail("index entry does not point at its batch");
  }
  if (seg.next_sequence < seg.base) fail("sequence went backwards");
  Result<std::optional<ld::FoundBatch>> next = ld::find_next_batch(seg.file, 0, in.size(), 1, limits);
  if (!next.is_ok()) fail("find_next_batch failed");
  if (*next) {
    Buffer b;
    Result<std::optional<BatchHeader>> h = ld::read_batch(seg.file, (*next)->position, in.size(), limits, &b);
    if ((*next)->position == 0 || !h.is_ok() || !*h) fail("find_next_batch returned an invalid batch");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  BatchLimits limits;
  limits.max_batch_bytes = 1 << 16;
  limits.max_records = 1 << 12;
  const ByteView in(data, size);
  check_one_batch(in, limits);
  check_scan(in, limits);
  return 0;
}
