#include "log/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace slip::log {

std::string_view io_op_name(IoOp op) {
  switch (op) {
    case IoOp::kCreate: return "create";
    case IoOp::kWrite: return "write";
    case IoOp::kSync: return "fsync";
    case IoOp::kTruncate: return "truncate";
    case IoOp::kRemove: return "remove";
    case IoOp::kWriteIndex: return "write index";
    case IoOp::kSyncDir: return "fsync directory";
  }
  return "?";
}

Status errno_status(int err, std::string_view what, std::string_view path) {
  const StatusCode code = (err == ENOSPC || err == EDQUOT) ? StatusCode::kOverloaded : StatusCode::kUnknown;
  return Status(code, fmt::format("{} {}: {}", what, path, std::strerror(err)));
}

File& File::operator=(File&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.fd_;
    path_ = std::move(o.path_);
    o.fd_ = -1;
  }
  return *this;
}

File::~File() {
  if (fd_ >= 0) ::close(fd_);
}

Result<std::size_t> File::read_at(std::uint64_t offset, std::uint8_t* out, std::size_t n) const {
  std::size_t done = 0;
  while (done < n) {
    const ssize_t r = ::pread(fd_, out + done, n - done, static_cast<off_t>(offset + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      return errno_status(errno, "read", path_);
    }
    if (r == 0) break;
    done += static_cast<std::size_t>(r);
  }
  return done;
}

Result<std::uint64_t> File::size() const {
  struct stat st {};
  if (::fstat(fd_, &st) != 0) return errno_status(errno, "stat", path_);
  return static_cast<std::uint64_t>(st.st_size);
}

Status Io::check(IoOp op, std::string_view path, std::size_t* write_bytes) const {
  if (!hook_) return Status::ok();
  return hook_(op, path, write_bytes);
}

Result<File> Io::open(const std::string& path, bool create) const {
  if (create) SLIP_TRY(check(IoOp::kCreate, path));
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0644);
  if (fd < 0) return errno_status(errno, "open", path);
  return File(fd, path);
}

Status Io::write_at(const File& f, std::uint64_t offset, ByteView bytes) const {
  std::size_t allowed = bytes.size();
  Status hooked = check(IoOp::kWrite, f.path(), &allowed);
  const std::size_t n = hooked.is_ok() ? bytes.size() : std::min(allowed, bytes.size());
  std::size_t done = 0;
  while (done < n) {
    const ssize_t r = ::pwrite(f.fd(), bytes.data() + done, n - done, static_cast<off_t>(offset + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      return errno_status(errno, "write", f.path());
    }
    done += static_cast<std::size_t>(r);
  }
  return hooked;
}

Status Io::sync(const File& f) const {
  SLIP_TRY(check(IoOp::kSync, f.path()));
  if (::fdatasync(f.fd()) != 0) return errno_status(errno, "fsync", f.path());
  return Status::ok();
}

Status Io::truncate(const File& f, std::uint64_t size) const {
  SLIP_TRY(check(IoOp::kTruncate, f.path()));
  if (::ftruncate(f.fd(), static_cast<off_t>(size)) != 0) return errno_status(errno, "truncate", f.path());
  return Status::ok();
}

Status Io::remove(const std::string& path) const {
  SLIP_TRY(check(IoOp::kRemove, path));
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return errno_status(errno, "remove", path);
  return Status::ok();
}

Status Io::sync_dir(const std::string& dir) const {
  SLIP_TRY(check(IoOp::kSyncDir, dir));
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno_status(errno, "open directory", dir);
  const int r = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (r != 0) return errno_status(err, "fsync directory", dir);
  return Status::ok();
}

Status Io::write_file_atomic(const std::string& dir, const std::string& path, ByteView bytes, bool sync) const {
  SLIP_TRY(check(IoOp::kWriteIndex, path));
  std::string tmp = path;
  tmp.append(".tmp");
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return errno_status(errno, "create", tmp);
  File f(fd, tmp);
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t r = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (r < 0) {
      if (errno == EINTR) continue;
      return errno_status(errno, "write", tmp);
    }
    done += static_cast<std::size_t>(r);
  }
  if (sync && ::fdatasync(fd) != 0) return errno_status(errno, "fsync", tmp);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return errno_status(errno, "rename", tmp);
  return sync ? sync_dir(dir) : Status::ok();
}

Result<std::vector<std::uint8_t>> read_small_file(const std::string& path, std::size_t max_bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return not_found(path);
    return errno_status(errno, "open", path);
  }
  File f(fd, path);
  SLIP_ASSIGN_OR_RETURN(const std::uint64_t size, f.size());
  if (size > max_bytes) return corruption(fmt::format("{}: {} bytes, more than {}", path, size, max_bytes));
  std::vector<std::uint8_t> out(static_cast<std::size_t>(size));
  SLIP_ASSIGN_OR_RETURN(const std::size_t n, f.read_at(0, out.data(), out.size()));
  out.resize(n);
  return out;
}

}  // namespace slip::log
