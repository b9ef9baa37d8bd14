#include "broker/subject.h"

#include <array>
#include <cstdint>
#include <string>

namespace slip::broker {

namespace {

// How much of an offending subject an error message quotes.
constexpr std::size_t kQuoteBytes = 64;

constexpr char kHexDigits[] = "0123456789abcdef";

// Space and the ASCII control characters.
constexpr bool is_forbidden_byte(unsigned char c) { return c <= 0x20 || c == 0x7F; }

// The byte as two hex digits after `prefix`: "0x0a", or "\x0a" with prefix "\\x".
void append_hex(std::string& out, unsigned char c, const char* prefix = "0x") {
  out += prefix;
  out += kHexDigits[c >> 4];
  out += kHexDigits[c & 0xF];
}

// 'text' with non-printable bytes and backslashes as \xNN, cut after kQuoteBytes bytes with "...".
void append_quoted(std::string& out, std::string_view text) {
  out += '\'';
  const std::size_t n = text.size() < kQuoteBytes ? text.size() : kQuoteBytes;
  for (std::size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c >= 0x7F || c == '\\') {
      append_hex(out, c, "\\x");
    } else {
      out += static_cast<char>(c);
    }
  }
  if (n < text.size()) out += "...";
  out += '\'';
}

const char* byte_name(unsigned char c) {
  switch (c) {
    case ' ': return "space";
    case '\t': return "tab";
    case '\n': return "line feed";
    case '\r': return "carriage return";
    case 0: return "NUL";
    default: return "control character";
  }
}

// "<what> '<quoted>': <problem>" as kInvalidArgument.
Status reject(std::string_view what, std::string_view text, std::string_view problem) {
  std::string m(what);
  m += ' ';
  append_quoted(m, text);
  m += ": ";
  m += problem;
  return invalid_argument(m);
}

std::string num(std::size_t v) { return std::to_string(v); }

// The common case, checked in one pass with no bookkeeping for error messages: a subject of
// non-empty tokens without control characters, spaces or wildcard characters, within limits.
// False sends it through the full check, which accepts wildcards where allowed and says what
// is wrong otherwise.
// What the one-pass check does with each byte: 0 part of a token, 1 ends a token ('.'),
// 2 leaves the subject to the full check (control characters, space, DEL, '*', '>').
constexpr std::array<std::uint8_t, 256> kByteClass = [] {
  std::array<std::uint8_t, 256> t{};
  for (int c = 0; c < 256; ++c) {
    if (is_forbidden_byte(static_cast<unsigned char>(c)) || c == '*' || c == '>') t[c] = 2;
  }
  t['.'] = 1;
  return t;
}();

bool is_plain_valid_subject(std::string_view s, const SubjectLimits& limits) {
  if (s.empty() || s.size() > limits.max_bytes) return false;
  std::size_t tokens = 1;
  std::size_t token_start = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const std::uint8_t k = kByteClass[static_cast<unsigned char>(s[i])];
    if (k == 0) continue;
    if (k == 2 || i == token_start) return false;
    ++tokens;
    token_start = i + 1;
  }
  return token_start < s.size() && tokens <= limits.max_tokens;
}

Status validate_subject(std::string_view s, const SubjectLimits& limits, bool publish) {
  if (is_plain_valid_subject(s, limits)) return Status::ok();
  if (s.empty()) return invalid_argument("subject is empty");
  if (s.size() > limits.max_bytes) {
    return reject("subject", s, num(s.size()) + " bytes, over the limit of " + num(limits.max_bytes));
  }
  std::size_t token = 1;        // position of the current token, from 1
  std::size_t token_start = 0;  // byte offset where it starts
  for (std::size_t i = 0; i <= s.size(); ++i) {
    if (i < s.size() && s[i] != '.') {
      const auto c = static_cast<unsigned char>(s[i]);
      if (is_forbidden_byte(c)) {
        std::string p = "invalid character ";
        append_hex(p, c);
        p += " (";
        p += byte_name(c);
        p += ") at offset " + num(i) + ", in the token at position " + num(token);
        return reject("subject", s, p);
      }
      continue;
    }
    // A token ends at s[i] ('.' or the end).
    const std::string_view t = s.substr(token_start, i - token_start);
    const bool last = i == s.size();
    if (t.empty()) {
      std::string p = "empty token at position " + num(token);
      if (token == 1) {
        p += " (leading '.')";
      } else if (last) {
        p += " (trailing '.')";
      }
      return reject("subject", s, p);
    }
    if (is_wildcard_token(t)) {
      if (publish) {
        return reject("subject", s,
                      "wildcard '" + std::string(t) + "' at position " + num(token) +
                          " is not allowed in a publish subject");
      }
      if (t == ">" && !last) {
        return reject("subject", s, "'>' at position " + num(token) + " is not the last token");
      }
    }
    if (last) break;
    ++token;
    token_start = i + 1;
    if (token > limits.max_tokens) {
      return reject("subject", s,
                    "more than " + num(limits.max_tokens) + " tokens (token " + num(token) + " starts at offset " +
                        num(token_start) + ")");
    }
  }
  return Status::ok();
}

}  // namespace

Status validate_publish_subject(std::string_view subject, const SubjectLimits& limits) {
  return validate_subject(subject, limits, /*publish=*/true);
}

Status validate_subscription_subject(std::string_view pattern, const SubjectLimits& limits) {
  return validate_subject(pattern, limits, /*publish=*/false);
}

Status validate_queue_group(std::string_view name, const SubjectLimits& limits) {
  if (name.empty()) return invalid_argument("queue group name is empty");
  if (name.size() > limits.max_queue_group_bytes) {
    return reject("queue group", name,
                  num(name.size()) + " bytes, over the limit of " + num(limits.max_queue_group_bytes));
  }
  for (std::size_t i = 0; i < name.size(); ++i) {
    const auto c = static_cast<unsigned char>(name[i]);
    if (is_forbidden_byte(c)) {
      std::string p = "invalid character ";
      append_hex(p, c);
      p += " (";
      p += byte_name(c);
      p += ") at offset " + num(i);
      return reject("queue group", name, p);
    }
  }
  return Status::ok();
}

bool is_literal_subject(std::string_view pattern) {
  std::size_t start = 0;
  for (;;) {
    const std::size_t dot = pattern.find('.', start);
    const std::size_t end = dot == std::string_view::npos ? pattern.size() : dot;
    if (is_wildcard_token(pattern.substr(start, end - start))) return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

bool subject_matches(std::string_view pattern, std::string_view subject) {
  std::size_t p = 0;  // start of the current pattern token
  std::size_t s = 0;  // start of the current subject token
  for (;;) {
    const std::size_t pdot = pattern.find('.', p);
    const std::size_t sdot = subject.find('.', s);
    const std::size_t pend = pdot == std::string_view::npos ? pattern.size() : pdot;
    const std::size_t send = sdot == std::string_view::npos ? subject.size() : sdot;
    const std::string_view pt = pattern.substr(p, pend - p);
    // A subject token exists here, so '>' has at least one token to take.
    if (pt == ">") return true;
    if (pt != "*" && pt != subject.substr(s, send - s)) return false;
    const bool plast = pdot == std::string_view::npos;
    const bool slast = sdot == std::string_view::npos;
    if (plast || slast) return plast && slast;
    p = pdot + 1;
    s = sdot + 1;
  }
}

}  // namespace slip::broker
