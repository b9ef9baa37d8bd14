#include "transport/udp/keys.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "core/strings.h"

namespace slip::transport::udp {

namespace {

// Exactly 64 hex digits into 32 bytes (sodium_hex2bin runs in constant time per character).
bool hex32(std::string_view text, std::array<std::uint8_t, 32>& out) {
  if (text.size() != 64) return false;
  for (char c : text) {
    const bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    if (!hex) return false;
  }
  std::size_t len = 0;
  return sodium_hex2bin(out.data(), out.size(), text.data(), text.size(), nullptr, &len, nullptr) == 0 &&
         len == out.size();
}

Status io_error(const char* what, const std::string& path, int err) {
  const std::string msg = std::string(what) + " " + path + ": " + std::strerror(err);
  if (err == ENOENT) return not_found(msg);
  if (err == EACCES || err == EPERM) return permission_denied(msg);
  if (err == EEXIST) return Status(StatusCode::kAlreadyExists, msg);
  return internal_error(msg);
}

}  // namespace

std::string format_public_key(const PublicKey& key) {
  char hex[2 * kDhLen + 1];
  sodium_bin2hex(hex, sizeof(hex), key.data(), key.size());
  return std::string(hex, 2 * kDhLen);
}

Result<PublicKey> parse_public_key(std::string_view text) {
  PublicKey key;
  if (!hex32(trim(text, " \t\r\n"), key)) return invalid_argument("a public key is 64 hex digits");
  return key;
}

Result<KeyPair> parse_private_key_file(std::string_view text) {
  std::string_view line;
  int keys = 0;
  while (!text.empty()) {
    const std::size_t nl = text.find('\n');
    std::string_view l = trim(text.substr(0, nl));
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (l.empty() || l.front() == '#') continue;
    line = l;
    ++keys;
  }
  if (keys != 1) return invalid_argument("a key file holds exactly one line of 64 hex digits");
  PrivateKey priv;
  if (!hex32(line, priv)) return invalid_argument("the key line is not 64 hex digits");
  KeyPair kp = KeyPair::from_private(priv);
  sodium_memzero(priv.data(), priv.size());
  return kp;
}

Status save_private_key(const std::string& path, const KeyPair& key) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return io_error("cannot create key file", path, errno);
  // The umask can only remove bits; fchmod makes sure no one else was ever allowed in.
  if (::fchmod(fd, 0600) != 0) {
    const int err = errno;
    ::close(fd);
    ::unlink(path.c_str());
    return io_error("cannot set the mode of", path, err);
  }
  char text[2 * kDhLen + 2];
  sodium_bin2hex(text, sizeof(text) - 1, key.private_key.data(), key.private_key.size());
  text[2 * kDhLen] = '\n';
  std::size_t done = 0;
  const std::size_t total = 2 * kDhLen + 1;
  int err = 0;
  while (done < total) {
    const ssize_t n = ::write(fd, text + done, total - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      err = errno;
      break;
    }
    done += static_cast<std::size_t>(n);
  }
  sodium_memzero(text, sizeof(text));
  if (err == 0 && ::fsync(fd) != 0) err = errno;
  if (::close(fd) != 0 && err == 0) err = errno;
  if (err != 0) {
    ::unlink(path.c_str());
    return io_error("cannot write key file", path, err);
  }
  return Status();
}

Result<KeyPair> load_private_key(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return io_error("cannot open key file", path, errno);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return io_error("cannot stat key file", path, err);
  }
  if ((st.st_mode & 077) != 0) {
    ::close(fd);
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return permission_denied("key file " + path + " has mode " + mode +
                             ": group or others may access it; chmod 600 it (and consider the key leaked)");
  }
  if (!S_ISREG(st.st_mode) || st.st_size > 4096) {
    ::close(fd);
    return invalid_argument("key file " + path + " is not a small regular file");
  }
  std::string text(static_cast<std::size_t>(st.st_size), '\0');
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::read(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
  ::close(fd);
  text.resize(done);
  Result<KeyPair> kp = parse_private_key_file(text);
  sodium_memzero(text.data(), text.size());
  if (!kp.is_ok()) return kp.status().with_context("key file " + path);
  return kp;
}

}  // namespace slip::transport::udp
