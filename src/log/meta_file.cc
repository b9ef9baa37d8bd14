#include "log/meta_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

namespace slip::log {

namespace {
constexpr std::size_t kQuoted = 64;  // bytes of a bad value quoted in an error
// Milliseconds that still fit in nanoseconds as an int64.
constexpr std::uint64_t kMaxFieldMs = INT64_MAX / 1'000'000;
}  // namespace

Result<std::uint64_t> parse_u64_field(std::string_view key, std::string_view v) {
  std::uint64_t out = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (v.empty() || ec != std::errc() || p != v.data() + v.size()) {
    std::string m(key);
    m.append(": \"").append(v.substr(0, kQuoted)).append("\" is not a non-negative integer");
    return invalid_argument(m);
  }
  return out;
}

Result<std::int64_t> parse_ms_field(std::string_view key, std::string_view v) {
  SLIP_ASSIGN_OR_RETURN(std::uint64_t n, parse_u64_field(key, v));
  if (n > kMaxFieldMs) {
    std::string m(key);
    m.append(": ").append(v.substr(0, kQuoted)).append(" is too large");
    return invalid_argument(m);
  }
  return static_cast<std::int64_t>(n);
}

Status fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return failed_precondition("cannot open directory " + dir + ": " + std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return failed_precondition("cannot fsync directory " + dir + ": " + std::strerror(err));
  return Status();
}

Status write_file_atomic(const std::string& dir, std::string_view name, std::string_view bytes) {
  std::string path = dir;
  path.append("/").append(name);
  std::string tmp = path;
  tmp.append(".tmp");
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return failed_precondition("cannot create " + tmp + ": " + std::strerror(errno));
  const bool ok = ::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()) && ::fsync(fd) == 0;
  const int err = errno;
  ::close(fd);
  if (!ok) return failed_precondition("cannot write " + tmp + ": " + std::strerror(err));
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return failed_precondition("cannot rename " + tmp + ": " + std::strerror(errno));
  }
  return fsync_dir(dir);
}

}  // namespace slip::log
