#include "obs/spans.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/logging.h"
#include "obs/json.h"

namespace slip::obs {

namespace {

template <std::size_t N>
std::string hex(const std::array<std::uint8_t, N>& bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * N);
  for (std::uint8_t b : bytes) {
    out += kDigits[b >> 4];
    out += kDigits[b & 15];
  }
  return out;
}

bool all_zero(const std::array<std::uint8_t, 8>& id) {
  for (std::uint8_t b : id) {
    if (b != 0) return false;
  }
  return true;
}

}  // namespace

Span span_of_hop(const TraceContext& parent) {
  Span s;
  s.trace_id = parent.trace_id;
  s.parent_span_id = parent.parent_id;
  s.span_id = child_of(parent).parent_id;
  return s;
}

std::string span_json(const Span& s) {
  JsonWriter w;
  w.begin_object()
      .field("trace_id", hex(s.trace_id))
      .field("span_id", hex(s.span_id));
  if (!all_zero(s.parent_span_id)) w.field("parent_span_id", hex(s.parent_span_id));
  w.field("name", s.name)
      .field("kind", s.kind)
      .field("start_unix_ns", s.start_unix_ns)
      .field("duration_ns", s.duration_ns)
      .field("status", s.status);
  w.key("attributes").begin_object();
  for (const auto& [k, v] : s.attributes) w.field(k, v);
  w.end_object().end_object();
  return w.take();
}

Result<std::unique_ptr<SpanWriter>> SpanWriter::open(const std::string& path, std::chrono::milliseconds flush_interval,
                                                     std::size_t buffer_bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return invalid_argument("cannot open span file " + path + ": " + std::strerror(errno));
  return std::unique_ptr<SpanWriter>(new SpanWriter(fd, path, flush_interval, buffer_bytes));
}

SpanWriter::SpanWriter(int fd, std::string path, std::chrono::milliseconds interval, std::size_t buffer_bytes)
    : fd_(fd), path_(std::move(path)), interval_(interval), buffer_bytes_(buffer_bytes) {
  flusher_ = std::thread([this] {
    std::unique_lock lock(mu_);
    while (!stop_) {
      wake_.wait_for(lock, interval_, [this] { return stop_; });
      if (!buffer_.empty()) write_out(buffer_);
    }
  });
}

SpanWriter::~SpanWriter() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  flusher_.join();
  ::close(fd_);
}

void SpanWriter::write(const Span& s) {
  std::string line = span_json(s);
  line += '\n';
  std::lock_guard lock(mu_);
  buffer_ += line;
  ++spans_;
  ++buffered_;
  if (buffer_.size() >= buffer_bytes_) write_out(buffer_);
}

void SpanWriter::flush() {
  std::lock_guard lock(mu_);
  if (!buffer_.empty()) write_out(buffer_);
}

void SpanWriter::write_out(std::string& bytes) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (failed_ == 0) SLIP_LOG_WARN("cannot write spans to {}: {}", path_, std::strerror(errno));
      failed_ += buffered_;
      break;
    }
    done += static_cast<std::size_t>(n);
  }
  bytes.clear();
  buffered_ = 0;
}

std::uint64_t SpanWriter::spans() const {
  std::lock_guard lock(mu_);
  return spans_;
}

std::uint64_t SpanWriter::failed() const {
  std::lock_guard lock(mu_);
  return failed_;
}

}  // namespace slip::obs
