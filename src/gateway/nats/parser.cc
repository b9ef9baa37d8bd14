#include "gateway/nats/parser.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "core/strings.h"

namespace slip::gateway::nats {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t'; }

// Splits a control line into at most kMax whitespace-separated fields.
struct Fields {
  static constexpr std::size_t kMax = 6;
  std::array<std::string_view, kMax> f;
  std::size_t n = 0;
  bool overflow = false;
};

Fields split(std::string_view s) {
  Fields out;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && is_space(s[i])) ++i;
    if (i == s.size()) break;
    const std::size_t start = i;
    while (i < s.size() && !is_space(s[i])) ++i;
    if (out.n == Fields::kMax) {
      out.overflow = true;
      break;
    }
    out.f[out.n++] = s.substr(start, i - start);
  }
  return out;
}

bool iequals(std::string_view a, std::string_view lower) {
  if (a.size() != lower.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char c = a[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != lower[i]) return false;
  }
  return true;
}

// A view `v` inside `from`, moved to the same place inside `to`.
std::string_view rebase(std::string_view v, std::string_view from, const std::string& to) {
  if (v.empty()) return {};
  return std::string_view(to.data() + (v.data() - from.data()), v.size());
}

}  // namespace

std::string_view parse_error_text(ParseError e) {
  switch (e) {
    case ParseError::kNone: return "";
    case ParseError::kUnknownOperation: return "Unknown Protocol Operation";
    case ParseError::kControlLine: return "Maximum Control Line Exceeded";
    case ParseError::kMaxPayload: return "Maximum Payload Violation";
    case ParseError::kParser: return "Parser Error";
  }
  return "Parser Error";
}

// PUB's common form, "PUB <subject> [reply] <size>" with single spaces, read in one pass;
// anything else (tabs, runs of spaces, control bytes, a wrong field count) goes the general way.
// Returns false when the line is not of that form.
bool Parser::fast_pub(std::string_view line) {
  const char* const begin = line.data() + 4;
  const char* const end = line.data() + line.size();
  const char* sp1 = nullptr;
  const char* sp2 = nullptr;
  for (const char* c = begin; c < end; ++c) {
    if (static_cast<unsigned char>(*c) > ' ') continue;
    if (*c != ' ' || sp2 != nullptr) return false;
    (sp1 == nullptr ? sp1 : sp2) = c;
  }
  // Every field non-empty: no leading, trailing or double space.
  if (sp1 == nullptr || sp1 == begin || sp1 + 1 == end) return false;
  if (sp2 != nullptr && (sp2 == sp1 + 1 || sp2 + 1 == end)) return false;
  const char* const size_at = (sp2 != nullptr ? sp2 : sp1) + 1;
  std::uint64_t total = 0;
  if (!parse_decimal(std::string_view(size_at, static_cast<std::size_t>(end - size_at)), total) ||
      total > limits_.max_payload) {
    return false;
  }
  pub_line_.assign(line);
  pub_subject_len_ = static_cast<std::uint32_t>(sp1 - begin);
  pub_reply_len_ = sp2 != nullptr ? static_cast<std::uint32_t>(sp2 - sp1 - 1) : 0;
  pub_total_ = total;
  same_pub(line);
  return true;
}

void Parser::same_pub(std::string_view line) {
  pending_.kind = OpKind::kPub;
  pending_.subject = line.substr(4, pub_subject_len_);
  pending_.reply = pub_reply_len_ != 0 ? line.substr(4 + pub_subject_len_ + 1, pub_reply_len_) : std::string_view();
  pending_.header_size = 0;
  need_ = pub_total_ + 2;
  state_ = State::kPayload;
}

ParseError Parser::on_line(std::string_view line, ParserSink& sink, bool& stop) {
  if (line.size() > 4 && line[0] == 'P' && line[1] == 'U' && line[2] == 'B' && line[3] == ' ') {
    if (line.size() == pub_line_.size() && std::memcmp(line.data(), pub_line_.data(), line.size()) == 0) {
      same_pub(line);
      return ParseError::kNone;
    }
    if (fast_pub(line)) return ParseError::kNone;
  }
  std::size_t op_end = 0;
  while (op_end < line.size() && !is_space(line[op_end])) ++op_end;
  const std::string_view name = line.substr(0, op_end);
  const std::string_view rest = line.substr(op_end);
  Op op;
  auto deliver = [&] {
    if (!sink.on_op(op)) stop = true;
    return ParseError::kNone;
  };

  if (iequals(name, "pub") || iequals(name, "hpub")) {
    const bool h = name.size() == 4;
    const Fields f = split(rest);
    const std::size_t nums = h ? 2 : 1;
    if (f.overflow || f.n < 1 + nums || f.n > 2 + nums) return ParseError::kParser;
    op.kind = h ? OpKind::kHpub : OpKind::kPub;
    op.subject = f.f[0];
    if (f.n == 2 + nums) op.reply = f.f[1];
    std::uint64_t total = 0, hdr = 0;
    if (!parse_decimal(f.f[f.n - 1], total)) return ParseError::kParser;
    if (h && (!parse_decimal(f.f[f.n - 2], hdr) || hdr > total)) return ParseError::kParser;
    if (total > limits_.max_payload) return ParseError::kMaxPayload;
    op.header_size = hdr;
    pending_ = op;
    need_ = total + 2;
    state_ = State::kPayload;
    return ParseError::kNone;
  }
  if (iequals(name, "sub")) {
    const Fields f = split(rest);
    if (f.overflow || f.n < 2 || f.n > 3) return ParseError::kParser;
    op.kind = OpKind::kSub;
    op.subject = f.f[0];
    if (f.n == 3) op.queue = f.f[1];
    op.sid = f.f[f.n - 1];
    return deliver();
  }
  if (iequals(name, "unsub")) {
    const Fields f = split(rest);
    if (f.overflow || f.n < 1 || f.n > 2) return ParseError::kParser;
    op.kind = OpKind::kUnsub;
    op.sid = f.f[0];
    if (f.n == 2 && !parse_decimal(f.f[1], op.max_msgs)) return ParseError::kParser;
    return deliver();
  }
  if (iequals(name, "ping") || iequals(name, "pong") || iequals(name, "+ok")) {
    if (!trim(rest).empty()) return ParseError::kParser;
    op.kind = iequals(name, "ping") ? OpKind::kPing : iequals(name, "pong") ? OpKind::kPong : OpKind::kOk;
    return deliver();
  }
  if (iequals(name, "connect") || iequals(name, "info") || iequals(name, "-err")) {
    op.kind = iequals(name, "connect") ? OpKind::kConnect : iequals(name, "info") ? OpKind::kInfo : OpKind::kErr;
    op.args = trim(rest);
    if (op.kind != OpKind::kErr && op.args.empty()) return ParseError::kParser;
    return deliver();
  }
  return ParseError::kUnknownOperation;
}

ParseError Parser::feed(const Slice& bytes, ParserSink& sink, std::size_t* consumed) {
  if (error_ != ParseError::kNone) return error_;
  auto fail = [this](ParseError e) {
    error_ = e;
    line_.clear();
    partial_ = Buffer();
    return e;
  };
  const std::uint8_t* p = bytes.data();
  const std::size_t n = bytes.size();
  // A line may carry a CR before its LF: one byte more than the limit until it is stripped.
  const std::size_t max_raw = limits_.max_control_line + 1;
  std::size_t local_pos = 0;
  std::size_t& pos = consumed != nullptr ? *consumed : local_pos;
  pos = 0;
  while (pos < n) {
    if (state_ == State::kLine) {
      const auto* nl = static_cast<const std::uint8_t*>(std::memchr(p + pos, '\n', n - pos));
      if (nl == nullptr) {
        if (line_.size() + (n - pos) > max_raw) return fail(ParseError::kControlLine);
        line_.append(reinterpret_cast<const char*>(p + pos), n - pos);
        pos = n;
        return ParseError::kNone;
      }
      const std::size_t end = static_cast<std::size_t>(nl - p);
      if (line_.size() + (end - pos) > max_raw) return fail(ParseError::kControlLine);
      std::string_view line;
      if (line_.empty()) {
        line = std::string_view(reinterpret_cast<const char*>(p + pos), end - pos);
      } else {
        line_.append(reinterpret_cast<const char*>(p + pos), end - pos);
        line = line_;
      }
      pos = end + 1;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.size() > limits_.max_control_line) return fail(ParseError::kControlLine);
      bool stop = false;
      if (ParseError e = on_line(line, sink, stop); e != ParseError::kNone) return fail(e);
      if (state_ == State::kPayload) {
        if (n - pos >= need_) {
          // The whole payload is here: hand it over in place.
          if (p[pos + need_ - 2] != '\r' || p[pos + need_ - 1] != '\n') return fail(ParseError::kParser);
          pending_.payload = bytes.sub(pos, need_ - 2);
          pos += need_;
          state_ = State::kLine;
          if (!sink.on_op(pending_)) stop = true;
          pending_.payload = Slice();
        } else {
          // Keep the line's fields until the rest of the payload arrives.
          if (line.data() != pending_line_.data()) pending_line_.assign(line);
          pending_.subject = rebase(pending_.subject, line, pending_line_);
          pending_.reply = rebase(pending_.reply, line, pending_line_);
          partial_ = Buffer::allocate(need_);
        }
      }
      line_.clear();
      if (stop) return ParseError::kNone;
    } else {
      const std::size_t take = std::min(n - pos, need_ - partial_.size());
      partial_.append(ByteView(p + pos, take));
      pos += take;
      if (partial_.size() == need_) {
        const std::uint8_t* d = partial_.data();
        if (d[need_ - 2] != '\r' || d[need_ - 1] != '\n') return fail(ParseError::kParser);
        pending_.payload = partial_.slice(0, need_ - 2);
        partial_ = Buffer();
        state_ = State::kLine;
        const bool go_on = sink.on_op(pending_);
        pending_.payload = Slice();
        if (!go_on) return ParseError::kNone;
      }
    }
  }
  return ParseError::kNone;
}

// ---- CONNECT -------------------------------------------------------------------------------

namespace {

// A small JSON reader for CONNECT's flat object: strings, numbers, booleans and null are read;
// nested objects and arrays are skipped (bounded depth).
class JsonReader {
 public:
  explicit JsonReader(std::string_view s) : s_(s) {}

  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\r' || s_[i_] == '\n')) ++i_;
  }
  bool eat(char c) {
    ws();
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  bool peek(char c) {
    ws();
    return i_ < s_.size() && s_[i_] == c;
  }
  bool at_end() {
    ws();
    return i_ == s_.size();
  }

  bool string(std::string& out) {
    out.clear();
    if (!eat('"')) return false;
    while (i_ < s_.size()) {
      const char c = s_[i_++];
      if (c == '"') return true;
      if (static_cast<unsigned char>(c) < 0x20) return false;
      if (c != '\\') {
        out.push_back(c);
        continue;
      }
      if (i_ >= s_.size()) return false;
      const char e = s_[i_++];
      switch (e) {
        case '"': case '\\': case '/': out.push_back(e); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'u': {
          if (i_ + 4 > s_.size()) return false;
          unsigned v = 0;
          for (int k = 0; k < 4; ++k) {
            const char h = s_[i_++];
            v <<= 4;
            if (h >= '0' && h <= '9') v |= static_cast<unsigned>(h - '0');
            else if (h >= 'a' && h <= 'f') v |= static_cast<unsigned>(h - 'a' + 10);
            else if (h >= 'A' && h <= 'F') v |= static_cast<unsigned>(h - 'A' + 10);
            else return false;
          }
          // UTF-8 for the BMP; surrogates are kept as their code units.
          if (v < 0x80) {
            out.push_back(static_cast<char>(v));
          } else if (v < 0x800) {
            out.push_back(static_cast<char>(0xC0 | (v >> 6)));
            out.push_back(static_cast<char>(0x80 | (v & 0x3F)));
          } else {
            out.push_back(static_cast<char>(0xE0 | (v >> 12)));
            out.push_back(static_cast<char>(0x80 | ((v >> 6) & 0x3F)));
            out.push_back(static_cast<char>(0x80 | (v & 0x3F)));
          }
          break;
        }
        default: return false;
      }
    }
    return false;
  }

  bool literal(std::string_view word) {
    ws();
    if (s_.substr(i_, word.size()) != word) return false;
    i_ += word.size();
    return true;
  }

  bool number(double& out) {
    ws();
    const std::size_t start = i_;
    if (i_ < s_.size() && s_[i_] == '-') ++i_;
    while (i_ < s_.size() && ((s_[i_] >= '0' && s_[i_] <= '9') || s_[i_] == '.' || s_[i_] == 'e' || s_[i_] == 'E' ||
                              s_[i_] == '+' || s_[i_] == '-')) {
      ++i_;
    }
    if (i_ == start) return false;
    out = 0;
    bool neg = false;
    std::size_t k = start;
    if (s_[k] == '-') {
      neg = true;
      ++k;
    }
    for (; k < i_ && s_[k] >= '0' && s_[k] <= '9'; ++k) out = out * 10 + (s_[k] - '0');
    if (neg) out = -out;
    return true;
  }

  // Skips any value; depth-bounded.
  bool skip(int depth = 0) {
    if (depth > 32) return false;
    std::string tmp;
    double d = 0;
    if (peek('"')) return string(tmp);
    if (eat('{')) {
      if (eat('}')) return true;
      do {
        if (!string(tmp) || !eat(':') || !skip(depth + 1)) return false;
      } while (eat(','));
      return eat('}');
    }
    if (eat('[')) {
      if (eat(']')) return true;
      do {
        if (!skip(depth + 1)) return false;
      } while (eat(','));
      return eat(']');
    }
    if (literal("true") || literal("false") || literal("null")) return true;
    return number(d);
  }

 private:
  std::string_view s_;
  std::size_t i_ = 0;
};

}  // namespace

Result<ConnectOptions> parse_connect(std::string_view json) {
  ConnectOptions o;
  JsonReader r(json);
  auto bad = [](std::string_view why) { return invalid_argument(std::string("CONNECT: ") + std::string(why)); };
  if (!r.eat('{')) return bad("not a JSON object");
  std::string key;
  if (!r.eat('}')) {
    do {
      if (!r.string(key)) return bad("expected a field name");
      if (!r.eat(':')) return bad("expected ':'");
      bool* flag = key == "verbose"         ? &o.verbose
                   : key == "pedantic"      ? &o.pedantic
                   : key == "echo"          ? &o.echo
                   : key == "headers"       ? &o.headers
                   : key == "no_responders" ? &o.no_responders
                   : key == "tls_required"  ? &o.tls_required
                                            : nullptr;
      std::string* text = key == "name"         ? &o.name
                          : key == "lang"       ? &o.lang
                          : key == "version"    ? &o.version
                          : key == "auth_token" ? &o.auth_token
                          : key == "user"       ? &o.user
                          : key == "pass"       ? &o.pass
                                                : nullptr;
      if (flag) {
        if (r.literal("true")) {
          *flag = true;
        } else if (r.literal("false")) {
          *flag = false;
        } else {
          return bad("field '" + key + "' must be true or false");
        }
      } else if (text) {
        if (!r.peek('"')) {
          if (!r.literal("null")) return bad("field '" + key + "' must be a string");
          text->clear();
        } else if (!r.string(*text)) {
          return bad("bad string in field '" + key + "'");
        }
      } else if (key == "protocol") {
        double d = 0;
        if (!r.number(d)) return bad("field 'protocol' must be a number");
        o.protocol = d < 0 ? -1 : d > 1000 ? 1000 : static_cast<int>(d);
      } else if (!r.skip()) {
        return bad("bad value of field '" + key + "'");
      }
    } while (r.eat(','));
    if (!r.eat('}')) return bad("expected '}'");
  }
  if (!r.at_end()) return bad("text after the object");
  return o;
}

bool parse_decimal(std::string_view s, std::uint64_t& out) {
  if (s.empty() || s.size() > 18) return false;
  std::uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  out = v;
  return true;
}

}  // namespace slip::gateway::nats
