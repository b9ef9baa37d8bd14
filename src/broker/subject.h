// Subjects: the names messages are published to, and the patterns subscriptions match.
//
// The rules are NATS's, so that NATS clients behave the same against slipd:
//
//   - A subject is one or more tokens separated by '.': `orders.eu.created`. Matching is
//     byte-for-byte, so case-sensitive.
//   - A token is non-empty and holds no '.', no space and no ASCII control character
//     (0x00-0x1F, 0x7F; so no tab, CR or LF). NATS itself rejects only whitespace (and NUL when
//     it checks runes); we also reject the other control characters, which only ever turn up in
//     subjects as garbage and are a hazard in a line-based protocol and in logs. Bytes
//     0x80-0xFF pass unchecked: UTF-8 subjects work, and are not validated as UTF-8.
//   - In a subscription pattern, a token that is exactly `*` matches any one token and a token
//     that is exactly `>` matches one or more trailing tokens, so `>` must be the last token.
//     Wildcards are whole tokens only: `a*b`, `**` and `>x` are ordinary literal tokens.
//   - A publish subject holds no wildcard token.
//   - Limits (SubjectLimits): at most 1024 bytes and at most 64 tokens by default. 64 tokens is
//     far more than any real subject uses, and bounds the depth of the subscription trie (and so
//     the recursion of a match) independently of the byte limit.
//
// Every rejection is kInvalidArgument with a message naming the problem and where it is:
// "subject 'a..b': empty token at position 2". Token positions count from 1; byte offsets
// count from 0. Messages quote at most the first 64 bytes of the subject, with non-printable
// bytes escaped as \xNN.
//
// All functions here are pure and thread-safe.
#pragma once

#include <cstddef>
#include <string_view>

#include "slipstream/status.h"

namespace slip::broker {

inline constexpr std::size_t kDefaultMaxSubjectBytes = 1024;
inline constexpr std::size_t kDefaultMaxSubjectTokens = 64;
inline constexpr std::size_t kDefaultMaxQueueGroupBytes = 256;

struct SubjectLimits {
  std::size_t max_bytes = kDefaultMaxSubjectBytes;    // whole subject or pattern, in bytes
  std::size_t max_tokens = kDefaultMaxSubjectTokens;  // tokens in a subject or pattern
  std::size_t max_queue_group_bytes = kDefaultMaxQueueGroupBytes;
};

// OK when `subject` may be published to: valid tokens, no wildcard, within the limits.
Status validate_publish_subject(std::string_view subject, const SubjectLimits& limits = {});

// OK when `pattern` may be subscribed to: valid tokens, `*` anywhere, `>` only as the last
// token, within the limits. Every valid publish subject is a valid pattern.
Status validate_subscription_subject(std::string_view pattern, const SubjectLimits& limits = {});

// OK when `name` may name a queue group: non-empty, no space or control character, at most
// limits.max_queue_group_bytes. A queue group name is opaque, not a subject: '.', '*' and '>'
// are ordinary characters in it. (An absent queue group is the empty string at the call sites
// that take an optional one; this function rejects it.)
Status validate_queue_group(std::string_view name, const SubjectLimits& limits = {});

// True when the token is `*` or `>`.
constexpr bool is_wildcard_token(std::string_view token) { return token == "*" || token == ">"; }

// True when no token of `pattern` is a wildcard. Checks tokens only, not validity.
bool is_literal_subject(std::string_view pattern);

// True when `pattern` matches `subject`. Both are split at every '.' (so "" is one empty token
// and "a." is "a" then ""); a `*` token matches any one token and a `>` token matches all the
// tokens left, provided at least one is left; other tokens match byte-equal tokens.
// Defined for any `subject` and for any `pattern` that validate_subscription_subject accepts
// (any limits); for other patterns the answer is unspecified but the call is safe.
// Allocation-free. Sublist::match agrees with it for every subscribed pattern and any subject.
bool subject_matches(std::string_view pattern, std::string_view subject);

}  // namespace slip::broker
