// The key=value arguments of stream and consumer requests (STREAM_REQUEST fields), and their
// responses. Arguments come as wire::Metadata (views into the frame) or as owned strings once a
// request has been handed to another loop; the lookups work on both.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "log/meta_file.h"
#include "session/session.h"
#include "slipstream/status.h"

namespace slip::log {

using ResponseFields = std::vector<std::pair<std::string, std::string>>;

// The value of `key`, or nullptr.
template <typename Args>
const typename Args::value_type::second_type* find_arg(const Args& args, std::string_view key) {
  for (const auto& kv : args) {
    if (kv.first == key) return &kv.second;
  }
  return nullptr;
}

// The value of `key` as a non-negative integer, or `dflt` when it is absent.
template <typename Args>
Result<std::uint64_t> u64_arg(const Args& args, std::string_view key, std::uint64_t dflt) {
  const auto* v = find_arg(args, key);
  if (v == nullptr) return dflt;
  return parse_u64_field(key, *v);
}

// Only the listed keys may appear: a typo is an error, not an ignored option.
template <typename Args>
Status only_keys(const Args& args, std::initializer_list<std::string_view> keys) {
  for (const auto& kv : args) {
    bool known = false;
    for (std::string_view key : keys) known = known || kv.first == key;
    if (!known) {
      std::string m("unknown argument \"");
      m.append(std::string_view(kv.first).substr(0, kMaxNameBytes)).append("\"");
      return invalid_argument(m);
    }
  }
  return Status();
}

// A STREAM_RESPONSE to request `request_id` on `s` (its loop).
void send_stream_response(session::Session& s, std::uint64_t request_id, const Status& st,
                          const ResponseFields& fields = {});

}  // namespace slip::log
