#include "log/stream.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "broker/subject.h"
#include "core/logging.h"
#include "core/varint.h"
#include "log/meta_file.h"

namespace slip::log {

namespace {

namespace fs = std::filesystem;

constexpr std::size_t kMaxSubjects = 64;
constexpr std::string_view kConfigFile = "stream.conf";
constexpr std::int64_t kNsPerMs = 1'000'000;

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while (true) {
    std::size_t pos = s.find(sep, start);
    out.push_back(s.substr(start, pos == std::string_view::npos ? std::string_view::npos : pos - start));
    if (pos == std::string_view::npos) break;
    start = pos + 1;
  }
  return out;
}

// Writes the configuration next to the log: a temporary file, fsync, rename, directory fsync,
// so a crash leaves either no stream or a complete one.
Status write_config(const std::string& dir, const StreamConfig& c) {
  std::string text;
  for (const auto& [k, v] : stream_config_fields(c)) text.append(k).append("=").append(v).append("\n");
  return write_file_atomic(dir, kConfigFile, text);
}

Result<StreamConfig> read_config(const std::string& dir) {
  const std::string path = dir + "/" + std::string(kConfigFile);
  std::ifstream in(path);
  if (!in) return not_found("no " + path);
  StreamConfig c;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const std::size_t eq = line.find('=');
    if (eq == std::string::npos) return corruption(path + ": line without '=': " + line.substr(0, 64));
    Status s = apply_stream_config_field(c, std::string_view(line).substr(0, eq), std::string_view(line).substr(eq + 1));
    if (!s.is_ok()) return corruption(path + ": " + std::string(s.message()));
  }
  Status v = validate_stream_config(c);
  if (!v.is_ok()) return corruption(path + ": " + std::string(v.message()));
  return c;
}

LogOptions log_options_for(const LogOptions& base, const StreamConfig& c) {
  LogOptions o = base;
  o.max_messages = c.max_msgs;
  o.max_bytes = c.max_bytes;
  o.max_age_ns = c.max_age_ms * kNsPerMs;
  o.discard = c.discard;
  o.fsync = c.fsync;
  if (c.fsync == FsyncPolicy::kInterval) o.fsync_interval_ns = c.fsync_interval_ms * kNsPerMs;
  o.dedup_window_ns = c.dedup_window_ms * kNsPerMs;
  return o;
}

}  // namespace

// ---- configuration -------------------------------------------------------------------------

Result<std::pair<FsyncPolicy, std::int64_t>> parse_fsync(std::string_view v) {
  if (v == "always") return std::make_pair(FsyncPolicy::kAlways, std::int64_t{0});
  if (v == "never") return std::make_pair(FsyncPolicy::kNever, std::int64_t{0});
  if (v.size() > 2 && v.substr(v.size() - 2) == "ms") {
    auto ms = parse_ms_field("fsync", v.substr(0, v.size() - 2));
    if (ms.is_ok() && *ms > 0) return std::make_pair(FsyncPolicy::kInterval, *ms);
  }
  std::string m = "fsync: \"";
  m.append(v).append("\" is not always, never or an interval such as 100ms");
  return invalid_argument(m);
}

std::string fsync_text(FsyncPolicy p, std::int64_t interval_ms) {
  switch (p) {
    case FsyncPolicy::kAlways: return "always";
    case FsyncPolicy::kNever: return "never";
    case FsyncPolicy::kInterval: break;
  }
  return std::to_string(interval_ms) + "ms";
}

std::vector<std::pair<std::string, std::string>> stream_config_fields(const StreamConfig& c) {
  std::string subjects;
  for (const auto& s : c.subjects) {
    if (!subjects.empty()) subjects += ',';
    subjects += s;
  }
  return {
      {"name", c.name},
      {"subjects", subjects},
      {"max_msgs", std::to_string(c.max_msgs)},
      {"max_bytes", std::to_string(c.max_bytes)},
      {"max_age_ms", std::to_string(c.max_age_ms)},
      {"discard", c.discard == DiscardPolicy::kOld ? "old" : "new"},
      {"fsync", fsync_text(c.fsync, c.fsync_interval_ms)},
      {"dedup_window_ms", std::to_string(c.dedup_window_ms)},
  };
}

Status apply_stream_config_field(StreamConfig& c, std::string_view key, std::string_view value) {
  if (key == "name") {
    c.name = std::string(value);
  } else if (key == "subjects") {
    c.subjects.clear();
    for (std::string_view s : split(value, ',')) c.subjects.emplace_back(s);
  } else if (key == "max_msgs") {
    SLIP_ASSIGN_OR_RETURN(c.max_msgs, parse_u64_field(key, value));
  } else if (key == "max_bytes") {
    SLIP_ASSIGN_OR_RETURN(c.max_bytes, parse_u64_field(key, value));
  } else if (key == "max_age_ms") {
    SLIP_ASSIGN_OR_RETURN(c.max_age_ms, parse_ms_field(key, value));
  } else if (key == "dedup_window_ms") {
    SLIP_ASSIGN_OR_RETURN(c.dedup_window_ms, parse_ms_field(key, value));
  } else if (key == "discard") {
    if (value == "old") {
      c.discard = DiscardPolicy::kOld;
    } else if (value == "new") {
      c.discard = DiscardPolicy::kNew;
    } else {
      return invalid_argument("discard: \"" + std::string(value) + "\" is not old or new");
    }
  } else if (key == "fsync") {
    SLIP_ASSIGN_OR_RETURN(auto f, parse_fsync(value));
    c.fsync = f.first;
    c.fsync_interval_ms = f.second;
  } else {
    return invalid_argument("unknown stream option \"" + std::string(key.substr(0, 64)) + "\"");
  }
  return Status();
}

Status validate_stream_config(const StreamConfig& c) {
  if (c.name.empty() || c.name.size() > kMaxNameBytes) {
    return invalid_argument("stream name must be 1 to " + std::to_string(kMaxNameBytes) + " bytes");
  }
  for (char ch : c.name) {
    const bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
                    ch == '-';
    if (!ok) return invalid_argument("stream name \"" + c.name + "\": only letters, digits, '_' and '-' are allowed");
  }
  if (c.subjects.empty()) return invalid_argument("stream \"" + c.name + "\" has no subjects");
  if (c.subjects.size() > kMaxSubjects) {
    return invalid_argument("stream \"" + c.name + "\" has more than " + std::to_string(kMaxSubjects) + " subjects");
  }
  for (std::size_t i = 0; i < c.subjects.size(); ++i) {
    SLIP_TRY(broker::validate_subscription_subject(c.subjects[i]));
    for (std::size_t j = 0; j < i; ++j) {
      if (patterns_overlap(c.subjects[i], c.subjects[j])) {
        return invalid_argument("subjects \"" + c.subjects[j] + "\" and \"" + c.subjects[i] + "\" overlap");
      }
    }
  }
  if (c.fsync == FsyncPolicy::kInterval && c.fsync_interval_ms <= 0) {
    return invalid_argument("fsync interval must be positive");
  }
  return Status();
}

bool patterns_overlap(std::string_view a, std::string_view b) {
  std::vector<std::string_view> ta = split(a, '.');
  std::vector<std::string_view> tb = split(b, '.');
  for (std::size_t i = 0; i < ta.size() && i < tb.size(); ++i) {
    // `>` needs one token or more, and both have one here.
    if (ta[i] == ">" || tb[i] == ">") return true;
    if (ta[i] == "*" || tb[i] == "*" || ta[i] == tb[i]) continue;
    return false;
  }
  return ta.size() == tb.size();
}

// ---- headers -------------------------------------------------------------------------------

std::string encode_headers(const wire::Metadata& headers) {
  std::string out;
  std::uint8_t tmp[kMaxVarint64Bytes];
  auto varint = [&](std::uint64_t v) {
    const std::uint8_t* end = encode_varint(tmp, v);
    out.append(reinterpret_cast<const char*>(tmp), static_cast<std::size_t>(end - tmp));
  };
  varint(headers.size());
  for (const auto& [k, v] : headers) {
    varint(k.size());
    out.append(k);
    varint(v.size());
    out.append(v);
  }
  return out;
}

Status decode_headers(std::string_view bytes, const wire::WireLimits& limits, wire::Metadata& out) {
  out.clear();
  const auto* p = reinterpret_cast<const std::uint8_t*>(bytes.data());
  std::size_t pos = 0;
  auto varint = [&](std::uint64_t& v) {
    VarintResult r = decode_varint(p + pos, bytes.size() - pos);
    if (r.error != VarintError::kOk) return false;
    v = r.value;
    pos += r.length;
    return true;
  };
  auto str = [&](std::string_view& s) {
    std::uint64_t n = 0;
    if (!varint(n) || n > bytes.size() - pos) return false;
    s = bytes.substr(pos, n);
    pos += n;
    return true;
  };
  std::uint64_t count = 0;
  if (!varint(count)) return corruption("stored headers: bad count");
  if (count > limits.max_metadata_entries) return corruption("stored headers: too many entries");
  std::size_t total = 0;
  for (std::uint64_t i = 0; i < count; ++i) {
    std::string_view k, v;
    if (!str(k) || !str(v)) return corruption("stored headers: truncated entry");
    total += k.size() + v.size();
    if (total > limits.max_metadata_bytes) return corruption("stored headers: over max_metadata_bytes");
    out.emplace_back(k, v);
  }
  if (pos != bytes.size()) return corruption("stored headers: trailing bytes");
  return Status();
}

// ---- Stream --------------------------------------------------------------------------------

Stream::Stream(StreamConfig config, std::string dir, std::unique_ptr<Log> log)
    : config_(std::move(config)), dir_(std::move(dir)), log_(std::move(log)) {
  // The log (and its writer thread) ends before the stream does, so `this` outlives the listener.
  log_->set_stored_listener([this] {
    if (listen_.load(std::memory_order_acquire) && listen_.exchange(false, std::memory_order_acq_rel)) appended();
  });
}

AppendRecord Stream::record(Slice subject, bool has_headers, const wire::Metadata& headers,
                            const Slice& payload) const {
  AppendRecord r;
  r.subject = std::move(subject);
  if (has_headers) {
    const std::string h = encode_headers(headers);
    r.headers = Slice::copy_of(ByteView(h));
    for (const auto& [k, v] : headers) {
      if (k == kMsgIdHeader && !v.empty()) {
        r.msg_id = Slice::copy_of(ByteView(v));
        break;
      }
    }
  }
  r.payload = payload;
  return r;
}

Status Stream::append(std::string_view subject, bool has_headers, const wire::Metadata& headers,
                      const Slice& payload, AppendCallback done) {
  return log_->append(record(Slice::copy_of(ByteView(subject)), has_headers, headers, payload), std::move(done));
}

Status Stream::append(const Slice& subject, bool has_headers, const wire::Metadata& headers, const Slice& payload,
                      AppendSink& sink, AppendTag tag) {
  return log_->append(record(subject, has_headers, headers, payload), sink, std::move(tag));
}

void Stream::set_append_listener(std::function<void()> listener) {
  std::lock_guard lk(listener_mu_);
  listener_ = std::move(listener);
}

void Stream::appended() {
  std::lock_guard lk(listener_mu_);
  if (listener_) listener_();
}

// ---- StreamManager -------------------------------------------------------------------------

Result<std::unique_ptr<StreamManager>> StreamManager::open(StreamManagerOptions options) {
  std::error_code ec;
  fs::create_directories(options.dir, ec);
  if (ec) return failed_precondition("cannot create stream directory " + options.dir + ": " + ec.message());
  std::unique_ptr<StreamManager> m(new StreamManager(std::move(options)));
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(m->options_.dir, ec)) {
    if (entry.is_directory()) names.push_back(entry.path().filename().string());
  }
  if (ec) return failed_precondition("cannot list " + m->options_.dir + ": " + ec.message());
  std::sort(names.begin(), names.end());
  for (const auto& name : names) {
    const std::string dir = m->options_.dir + "/" + name;
    auto config = read_config(dir);
    if (!config.is_ok()) {
      // A directory without a configuration is a stream whose creation did not finish (the
      // configuration is written last): nothing in it was ever acknowledged.
      if (config.status().code() == StatusCode::kNotFound) {
        SLIP_LOG_WARN("removing {}: a stream whose creation did not finish", dir);
        fs::remove_all(dir, ec);
        continue;
      }
      return config.status();
    }
    if (config->name != name) return corruption(dir + ": configuration names stream \"" + config->name + "\"");
    auto s = m->open_stream(*config);
    if (!s.is_ok()) return s.status().with_context("stream " + name);
    m->streams_.emplace(name, std::move(*s));
  }
  return m;
}

StreamManager::~StreamManager() { close(); }

Result<std::shared_ptr<Stream>> StreamManager::open_stream(const StreamConfig& config) {
  const std::string dir = options_.dir + "/" + config.name;
  SLIP_ASSIGN_OR_RETURN(std::unique_ptr<Log> log, Log::open(dir + "/log", log_options_for(options_.log, config)));
  return std::make_shared<Stream>(config, dir, std::move(log));
}

Result<std::shared_ptr<Stream>> StreamManager::add(StreamConfig config) {
  SLIP_TRY(validate_stream_config(config));
  std::lock_guard lk(mu_);
  if (auto it = streams_.find(config.name); it != streams_.end()) {
    if (it->second->config() == config) return it->second;
    return Status(StatusCode::kAlreadyExists,
                  "stream \"" + config.name + "\" exists with another configuration");
  }
  for (const auto& [name, s] : streams_) {
    for (const auto& a : s->config().subjects) {
      for (const auto& b : config.subjects) {
        if (patterns_overlap(a, b)) {
          return Status(StatusCode::kAlreadyExists, "subjects \"" + b + "\" overlap \"" + a + "\" of stream \"" +
                                                        name + "\"");
        }
      }
    }
  }
  if (streams_.size() >= options_.max_streams) {
    return overloaded("too many streams (max_streams " + std::to_string(options_.max_streams) + ")");
  }
  const std::string dir = options_.dir + "/" + config.name;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return failed_precondition("cannot create " + dir + ": " + ec.message());
  auto s = open_stream(config);
  if (!s.is_ok()) {
    fs::remove_all(dir, ec);
    return s.status();
  }
  if (Status w = write_config(dir, config); !w.is_ok()) {
    (void)(*s)->log().close();
    fs::remove_all(dir, ec);
    return w;
  }
  if (Status d = fsync_dir(options_.dir); !d.is_ok()) return d;
  streams_.emplace(config.name, *s);
  generation_.fetch_add(1, std::memory_order_release);
  SLIP_LOG_INFO("stream {} created", config.name);
  return *s;
}

Status StreamManager::remove(std::string_view name) {
  std::shared_ptr<Stream> s;
  {
    std::lock_guard lk(mu_);
    auto it = streams_.find(name);
    if (it == streams_.end()) return not_found("no stream \"" + std::string(name) + "\"");
    s = it->second;
    streams_.erase(it);
    generation_.fetch_add(1, std::memory_order_release);
  }
  (void)s->log().close();
  // The configuration goes first: a crash in the middle leaves a directory that the next start
  // removes instead of a stream with part of its messages.
  std::error_code ec;
  fs::remove(s->dir() + "/" + std::string(kConfigFile), ec);
  fs::remove_all(s->dir(), ec);
  if (ec) return failed_precondition("cannot remove " + s->dir() + ": " + ec.message());
  SLIP_LOG_INFO("stream {} deleted", std::string(name));
  return Status();
}

std::shared_ptr<Stream> StreamManager::find(std::string_view name) const {
  std::lock_guard lk(mu_);
  auto it = streams_.find(name);
  return it == streams_.end() ? nullptr : it->second;
}

std::shared_ptr<Stream> StreamManager::for_subject(std::string_view subject) const {
  std::lock_guard lk(mu_);
  for (const auto& [name, s] : streams_) {
    for (const auto& p : s->config().subjects) {
      if (broker::subject_matches(p, subject)) return s;
    }
  }
  return nullptr;
}

std::vector<std::shared_ptr<Stream>> StreamManager::list() const {
  std::lock_guard lk(mu_);
  std::vector<std::shared_ptr<Stream>> out;
  for (const auto& [name, s] : streams_) out.push_back(s);
  return out;
}

StreamInfo StreamManager::info(const Stream& s) const {
  StreamInfo i;
  i.config = s.config();
  i.stats = s.log().stats();
  i.capture_errors = s.capture_errors();
  i.consumers = s.consumer_count();
  return i;
}

void StreamManager::close() {
  std::lock_guard lk(mu_);
  for (auto& [name, s] : streams_) (void)s->log().close();
}

}  // namespace slip::log
