// File I/O for the log, with a seam for failure injection.
//
// Every operation that changes the disk (create, write, fsync, truncate, remove, rename) first
// asks an optional IoHook. A hook that returns an error makes the operation fail with that
// Status without touching the file (a write may first put `*write_bytes` bytes, to simulate a
// short write). Tests use it to simulate ENOSPC or EIO; production leaves it empty. Reads are
// not hooked: damaged data is simulated by damaging the files themselves.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "slipstream/buffer.h"
#include "slipstream/status.h"

namespace slip::log {

enum class IoOp : std::uint8_t {
  kCreate,    // creating a segment or index file
  kWrite,     // appending a batch to a segment
  kSync,      // fsync of a segment
  kTruncate,  // cutting a torn tail or a failed write
  kRemove,    // deleting a segment or index (retention)
  kWriteIndex,  // writing an index file (temporary file + rename)
  kSyncDir,   // fsync of the log directory
};

std::string_view io_op_name(IoOp op);

// Called before an operation on `path`. For kWrite, `write_bytes` holds the length to write; a
// hook that fails may lower it to have that many bytes written before the failure.
// `write_bytes` is null for other operations. Runs on the thread doing the I/O.
using IoHook = std::function<Status(IoOp op, std::string_view path, std::size_t* write_bytes)>;

// The status for a failed system call: ENOSPC and EDQUOT become kOverloaded (free space and
// retry), everything else kUnknown; the message names the operation, the path and the error.
Status errno_status(int err, std::string_view what, std::string_view path);

// An open file descriptor, closed on destruction.
class File {
 public:
  File() = default;
  File(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  File(File&& o) noexcept : fd_(o.fd_), path_(std::move(o.path_)) { o.fd_ = -1; }
  File& operator=(File&& o) noexcept;
  File(const File&) = delete;
  File& operator=(const File&) = delete;
  ~File();

  int fd() const { return fd_; }
  const std::string& path() const { return path_; }
  bool is_open() const { return fd_ >= 0; }

  // Reads up to n bytes at `offset`; fewer only at the end of the file.
  Result<std::size_t> read_at(std::uint64_t offset, std::uint8_t* out, std::size_t n) const;
  Result<std::uint64_t> size() const;

 private:
  int fd_ = -1;
  std::string path_;
};

// The hooked operations. One per Log; `hook` may be empty.
class Io {
 public:
  explicit Io(IoHook hook = {}) : hook_(std::move(hook)) {}

  // Opens for reading and writing, creating when `create` (then the directory needs a sync).
  Result<File> open(const std::string& path, bool create) const;
  Status write_at(const File& f, std::uint64_t offset, ByteView bytes) const;
  Status sync(const File& f) const;
  Status truncate(const File& f, std::uint64_t size) const;
  Status remove(const std::string& path) const;
  Status sync_dir(const std::string& dir) const;
  // Writes `bytes` to `path` atomically: a temporary file, fsync, rename, directory fsync
  // (without `sync`: the rename alone, still atomic, not durable).
  Status write_file_atomic(const std::string& dir, const std::string& path, ByteView bytes, bool sync) const;

 private:
  Status check(IoOp op, std::string_view path, std::size_t* write_bytes = nullptr) const;

  IoHook hook_;
};

// Reads a whole small file (an index). kNotFound when it does not exist.
Result<std::vector<std::uint8_t>> read_small_file(const std::string& path, std::size_t max_bytes);

}  // namespace slip::log
