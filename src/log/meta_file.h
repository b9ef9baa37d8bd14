// What streams and consumers keep next to their logs: small key=value files (a stream's config,
// a consumer's config and state), written so that a crash leaves the old file or the new one,
// and the parsers of their fields.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "slipstream/status.h"

namespace slip::log {

// Stream and consumer names: 1 to this many bytes.
inline constexpr std::size_t kMaxNameBytes = 64;

// A field's value as a non-negative decimal integer. The error names the key and quotes (the
// start of) the value.
Result<std::uint64_t> parse_u64_field(std::string_view key, std::string_view v);
// Milliseconds, no more than still fit in nanoseconds as an int64.
Result<std::int64_t> parse_ms_field(std::string_view key, std::string_view v);

// fsync() of a directory, so that a rename or a new file in it survives a crash.
Status fsync_dir(const std::string& dir);
// dir/name replaced by `bytes`: a temporary file, fsync, rename over it, directory fsync.
Status write_file_atomic(const std::string& dir, std::string_view name, std::string_view bytes);

}  // namespace slip::log
