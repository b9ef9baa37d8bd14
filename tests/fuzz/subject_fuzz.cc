// libFuzzer target: subject validation, subject_matches and Sublist.
//
// Input layout:
//   byte 0   bits 0-1 cache: 0 = default, 1 = 4 entries and 8 handles, 2 = off, 3 = 1 entry;
//            bit 2 small limits (16 bytes, 4 tokens, 8-byte queue group names)
//   rest     records separated by '\n'. A record is an op byte, a selector byte and text:
//              op % 4: 0 insert, 1 remove, 2 match, 3 validate only
//              selector bits 0-2: the handle (0-7); bits 3-4: the queue group: 0 or 1 none,
//              2 "q1", 3 the text after the first '|' (arbitrary bytes)
//              text: the pattern or subject (up to the first '|')
//
// Checks, beyond "no crash, no sanitizer report":
//   - both validators and the queue group validator agree with a plain oracle written from the
//     rules (split at '.', check each token), under the default and the small limits; every
//     rejection is kInvalidArgument with a message; a valid publish subject is a valid
//     pattern, and a valid pattern without wildcards is a valid publish subject;
//   - subject_matches agrees with a recursive oracle over split tokens, for every inserted
//     pattern and every subject (valid or not);
//   - Sublist::insert succeeds exactly for valid, new subscriptions (kAlreadyExists for
//     duplicates), remove finds exactly what was inserted, size() follows, and match() returns
//     exactly what a brute-force scan of the live subscriptions finds, through cache hits,
//     evictions and invalidations.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "broker/subject.h"
#include "broker/sublist.h"

namespace {

using namespace slip;
using namespace slip::broker;

[[noreturn]] void fail(const char* what, std::string_view detail = {}) {
  std::fprintf(stderr, "subject_fuzz: %s '%.*s'\n", what, static_cast<int>(detail.size()), detail.data());
  std::abort();
}

std::vector<std::string_view> split(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  for (;;) {
    const std::size_t dot = s.find('.', start);
    if (dot == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, dot - start));
    start = dot + 1;
  }
}

bool bad_byte(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u <= 0x20 || u == 0x7F;
}

bool oracle_valid(std::string_view s, bool publish, const SubjectLimits& limits) {
  if (s.empty() || s.size() > limits.max_bytes) return false;
  const auto tokens = split(s);
  if (tokens.size() > limits.max_tokens) return false;
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    const std::string_view t = tokens[i];
    if (t.empty() || std::any_of(t.begin(), t.end(), bad_byte)) return false;
    if (publish && (t == "*" || t == ">")) return false;
    if (t == ">" && i + 1 != tokens.size()) return false;
  }
  return true;
}

bool oracle_queue_valid(std::string_view q, const SubjectLimits& limits) {
  return !q.empty() && q.size() <= limits.max_queue_group_bytes && std::none_of(q.begin(), q.end(), bad_byte);
}

bool oracle_match(const std::vector<std::string_view>& p, std::size_t i, const std::vector<std::string_view>& s,
                  std::size_t j) {
  if (i == p.size()) return j == s.size();
  if (p[i] == ">") return j < s.size();
  if (j == s.size()) return false;
  if (p[i] != "*" && p[i] != s[j]) return false;
  return oracle_match(p, i + 1, s, j + 1);
}

void check_validation(std::string_view text, const SubjectLimits& limits) {
  const Status pub = validate_publish_subject(text, limits);
  const Status sub = validate_subscription_subject(text, limits);
  if (pub.is_ok() != oracle_valid(text, true, limits)) fail("publish validation disagrees with the oracle", text);
  if (sub.is_ok() != oracle_valid(text, false, limits)) fail("pattern validation disagrees with the oracle", text);
  for (const Status* s : {&pub, &sub}) {
    if (!s->is_ok() && (s->code() != StatusCode::kInvalidArgument || s->message().empty())) {
      fail("rejection is not INVALID_ARGUMENT with a message", text);
    }
  }
  if (pub.is_ok() && !sub.is_ok()) fail("valid publish subject is not a valid pattern", text);
  if (sub.is_ok() && is_literal_subject(text) && !pub.is_ok()) fail("literal pattern is not publishable", text);
  if (pub.is_ok()) {
    if (!subject_matches(text, text)) fail("subject does not match itself", text);
    if (!subject_matches(">", text)) fail("'>' does not match", text);
  }
  const Status q = validate_queue_group(text, limits);
  if (q.is_ok() != oracle_queue_valid(text, limits)) fail("queue group validation disagrees with the oracle", text);
  if (!q.is_ok() && q.code() != StatusCode::kInvalidArgument) fail("queue group rejection code", text);
}

struct Sub {
  std::string pattern;
  std::string queue;
  SubscriptionHandle handle;
  bool operator==(const Sub&) const = default;
};

struct Flat {
  std::vector<SubscriptionHandle> plain;
  std::map<std::string, std::vector<SubscriptionHandle>> groups;
  bool operator==(const Flat&) const = default;
};

Flat flatten(const SublistResult& r) {
  Flat f;
  f.plain.assign(r.plain().begin(), r.plain().end());
  std::sort(f.plain.begin(), f.plain.end());
  std::size_t members = 0;
  for (const QueueGroupMatch& g : r.queue_groups()) {
    if (g.members.empty()) fail("empty queue group in a result", g.name);
    auto [it, fresh] = f.groups.try_emplace(std::string(g.name));
    if (!fresh) fail("queue group listed twice", g.name);
    it->second.assign(g.members.begin(), g.members.end());
    std::sort(it->second.begin(), it->second.end());
    members += g.members.size();
  }
  if (r.handle_count() != f.plain.size() + members) fail("handle_count is wrong");
  return f;
}

Flat brute_force(const std::vector<Sub>& subs, std::string_view subject) {
  Flat f;
  const auto st = split(subject);
  for (const Sub& s : subs) {
    const bool m = subject_matches(s.pattern, subject);
    if (m != oracle_match(split(s.pattern), 0, st, 0)) fail("subject_matches disagrees with the oracle", s.pattern);
    if (!m) continue;
    (s.queue.empty() ? f.plain : f.groups[s.queue]).push_back(s.handle);
  }
  std::sort(f.plain.begin(), f.plain.end());
  for (auto& [name, m] : f.groups) std::sort(m.begin(), m.end());
  return f;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t flags = data[0];
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);

  SublistOptions options;
  switch (flags & 3) {
    case 1:
      options.cache_max_entries = 4;
      options.cache_max_handles = 8;
      break;
    case 2:
      options.cache_max_entries = 0;
      break;
    case 3:
      options.cache_max_entries = 1;
      break;
    default:
      break;
  }
  SubjectLimits small;
  small.max_bytes = 16;
  small.max_tokens = 4;
  small.max_queue_group_bytes = 8;
  if (flags & 4) options.limits = small;

  Sublist sublist(options);
  std::vector<Sub> live;

  std::size_t start = 0;
  while (start <= input.size()) {
    std::size_t end = input.find('\n', start);
    if (end == std::string_view::npos) end = input.size();
    const std::string_view record = input.substr(start, end - start);
    start = end + 1;
    if (record.size() < 2) continue;

    const auto op = static_cast<std::uint8_t>(record[0]) % 4;
    const auto sel = static_cast<std::uint8_t>(record[1]);
    std::string_view text = record.substr(2);
    std::string_view after_bar;
    if (const std::size_t bar = text.find('|'); bar != std::string_view::npos) {
      after_bar = text.substr(bar + 1);
      text = text.substr(0, bar);
    }
    const SubscriptionHandle handle = sel & 7;
    std::string_view queue;
    switch ((sel >> 3) & 3) {
      case 2: queue = "q1"; break;
      case 3: queue = after_bar; break;
      default: break;
    }

    check_validation(text, SubjectLimits{});
    check_validation(text, small);
    check_validation(after_bar, SubjectLimits{});

    if (op == 0) {
      const Sub s{std::string(text), std::string(queue), handle};
      const bool valid = oracle_valid(text, false, options.limits) &&
                         (queue.empty() || oracle_queue_valid(queue, options.limits));
      const bool dup = std::find(live.begin(), live.end(), s) != live.end();
      const Status st = sublist.insert(text, queue, handle);
      if (st.is_ok() != (valid && !dup)) fail("insert result is wrong", text);
      if (!valid && st.code() != StatusCode::kInvalidArgument) fail("invalid insert code", text);
      if (valid && dup && st.code() != StatusCode::kAlreadyExists) fail("duplicate insert code", text);
      if (st.is_ok()) live.push_back(s);
    } else if (op == 1) {
      const Sub s{std::string(text), std::string(queue), handle};
      auto it = std::find(live.begin(), live.end(), s);
      if (sublist.remove(text, queue, handle) != (it != live.end())) fail("remove result is wrong", text);
      if (it != live.end()) live.erase(it);
    } else if (op == 2) {
      if (!(flatten(sublist.match(text)) == brute_force(live, text))) fail("match differs from brute force", text);
    }
    if (sublist.size() != live.size()) fail("size() is wrong");
    const SublistStats stats = sublist.stats();
    if (stats.cache_entries > options.cache_max_entries || stats.cache_handles > options.cache_max_handles) {
      fail("cache over its bounds");
    }
    if (stats.cache_hits + stats.cache_misses != stats.matches) fail("hits + misses != matches");
  }

  // Every live subscription is found by its own pattern used as a subject.
  for (const Sub& s : live) {
    if (!(flatten(sublist.match(s.pattern)) == brute_force(live, s.pattern))) fail("final match differs", s.pattern);
  }
  return 0;
}
