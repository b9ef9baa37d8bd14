#include "transport/tls/tls.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/socket_base.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <climits>
#include <cstring>
#include <vector>

#include "core/logging.h"
#include "transport/tcp/sockets.h"

namespace slip::transport {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

using detail::apply_socket_options;
using detail::endpoint_string;

// iovecs per sendmsg: a batch is at most kMaxCipherBatch over a few 64 KiB blocks.
constexpr std::size_t kMaxRecordIov = 64;
// Largest TLS plaintext record (RFC 8446 section 5.1). Small slices are gathered up to this
// size so that the frames queued in one loop turn share records instead of one record each.
constexpr std::size_t kRecordPlaintext = 16 * 1024;
// Ciphertext produced before it is written: bounds the memory a flush uses.
constexpr std::size_t kMaxCipherBatch = 256 * 1024;
// Socket reads per readiness event before the other connections of the loop get a turn.
constexpr int kReadsPerTurn = 4;

// Empties OpenSSL's (thread-local) error queue into "reason: reason", oldest first, leaving
// out the generic "system lib"/"PEM lib" entries that only say where an error passed.
std::string take_openssl_errors() {
  std::string out;
  while (const unsigned long e = ERR_get_error()) {
    std::string piece;
    if (ERR_SYSTEM_ERROR(e)) {
      piece = std::strerror(static_cast<int>(ERR_GET_REASON(e)));
    } else if (const char* r = ERR_reason_error_string(e)) {
      piece = r;
    } else {
      piece = "error " + std::to_string(e);
    }
    if (piece.ends_with(" lib") || out.find(piece) != std::string::npos) continue;
    if (!out.empty()) out += ": ";
    out += piece;
  }
  return out.empty() ? std::string("unknown TLS error") : out;
}

// True for the alerts a peer sends when it refuses our certificate (or our lack of one).
bool is_certificate_alert(int reason) {
  switch (reason - SSL_AD_REASON_OFFSET) {
    case SSL_AD_BAD_CERTIFICATE:
    case SSL_AD_UNSUPPORTED_CERTIFICATE:
    case SSL_AD_CERTIFICATE_REVOKED:
    case SSL_AD_CERTIFICATE_EXPIRED:
    case SSL_AD_CERTIFICATE_UNKNOWN:
    case SSL_AD_UNKNOWN_CA:
    case SSL_AD_ACCESS_DENIED:
    case SSL_AD_CERTIFICATE_REQUIRED:
      return true;
    default:
      return false;
  }
}

enum class Role { kServer, kClient };

using SslCtxPtr = std::shared_ptr<SSL_CTX>;

// Builds the shared SSL_CTX for one listener or one connect: TLS 1.3 only, no session
// tickets or cache (nothing to resume), certificates and trust from `o`.
Result<SslCtxPtr> make_context(Role role, const TlsOptions& o) {
  ERR_clear_error();
  SSL_CTX* raw = SSL_CTX_new(role == Role::kServer ? TLS_server_method() : TLS_client_method());
  if (raw == nullptr) return internal_error("SSL_CTX_new: " + take_openssl_errors());
  SslCtxPtr ctx(raw, SSL_CTX_free);
  if (SSL_CTX_set_min_proto_version(raw, TLS1_3_VERSION) != 1 ||
      SSL_CTX_set_max_proto_version(raw, TLS1_3_VERSION) != 1) {
    return internal_error("cannot restrict TLS to version 1.3: " + take_openssl_errors());
  }
  SSL_CTX_set_options(raw, SSL_OP_NO_TICKET);
  SSL_CTX_set_num_tickets(raw, 0);
  SSL_CTX_set_session_cache_mode(raw, SSL_SESS_CACHE_OFF);

  if (role == Role::kServer && (o.cert_file.empty() || o.key_file.empty())) {
    return invalid_argument("a TLS server needs cert_file and key_file");
  }
  if (o.cert_file.empty() != o.key_file.empty()) {
    return invalid_argument("TLS cert_file and key_file must be given together");
  }
  if (!o.cert_file.empty()) {
    if (SSL_CTX_use_certificate_chain_file(raw, o.cert_file.c_str()) != 1) {
      return invalid_argument("cannot load TLS certificate '" + o.cert_file + "': " + take_openssl_errors());
    }
    if (SSL_CTX_use_PrivateKey_file(raw, o.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
      return invalid_argument("cannot load TLS private key '" + o.key_file + "': " + take_openssl_errors());
    }
    if (SSL_CTX_check_private_key(raw) != 1) {
      return invalid_argument("TLS private key '" + o.key_file + "' does not match certificate '" + o.cert_file +
                              "': " + take_openssl_errors());
    }
  }
  if (!o.ca_file.empty() && SSL_CTX_load_verify_locations(raw, o.ca_file.c_str(), nullptr) != 1) {
    return invalid_argument("cannot load TLS CA file '" + o.ca_file + "': " + take_openssl_errors());
  }

  if (role == Role::kServer) {
    if (o.require_client_cert && o.ca_file.empty()) {
      return invalid_argument("TLS require_client_cert needs ca_file to verify client certificates against");
    }
    if (!o.ca_file.empty()) {
      // Tells clients which CAs we accept; the context takes ownership of the list.
      if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(o.ca_file.c_str())) {
        SSL_CTX_set_client_CA_list(raw, names);
      }
      SSL_CTX_set_verify(raw, SSL_VERIFY_PEER | (o.require_client_cert ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
                         nullptr);
    } else {
      SSL_CTX_set_verify(raw, SSL_VERIFY_NONE, nullptr);
    }
  } else if (o.verify_peer) {
    if (o.ca_file.empty() && SSL_CTX_set_default_verify_paths(raw) != 1) {
      return invalid_argument("cannot load the system CA store: " + take_openssl_errors());
    }
    SSL_CTX_set_verify(raw, SSL_VERIFY_PEER, nullptr);
  } else {
    SSL_CTX_set_verify(raw, SSL_VERIFY_NONE, nullptr);
  }
  ERR_clear_error();
  return ctx;
}

BIO_METHOD* connection_bio_method();

// One TLS connection. OpenSSL reads and writes ciphertext through a BIO that is only memory:
// reads come from `cin_`, which we fill from the socket; writes append to pooled blocks that
// we hand to sendmsg() ourselves, so a loop turn's records leave in one system call.
//
// Life: kHandshake (not yet visible to anyone but the listener or the connect call) ->
// kOpen -> kClosing (close(): flushing, then close_notify) -> kClosed.
class TlsConnection final : public Connection, public std::enable_shared_from_this<TlsConnection> {
 public:
  using HandshakeDone = std::function<void(std::shared_ptr<TlsConnection>, Status)>;

  // Takes ownership of `ssl`, whose BIO is not set yet.
  TlsConnection(io::EventLoop& loop, tcp::socket socket, const TcpOptions& options, SSL* ssl)
      : loop_(loop), socket_(std::move(socket)), options_(options), ssl_(ssl), timer_(loop.context()) {
    boost::system::error_code ec;
    auto ep = socket_.remote_endpoint(ec);
    peer_ = ec ? std::string("?") : endpoint_string(ep);
  }
  ~TlsConnection() override { SSL_free(ssl_); }

  static Result<std::shared_ptr<TlsConnection>> create(io::EventLoop& loop, tcp::socket socket,
                                                       const TcpOptions& options, SSL_CTX* ctx, Role role,
                                                       const TlsOptions& tls) {
    ERR_clear_error();
    SSL* ssl = SSL_new(ctx);
    if (ssl == nullptr) return internal_error("SSL_new: " + take_openssl_errors());
    auto c = std::make_shared<TlsConnection>(loop, std::move(socket), options, ssl);
    BIO* bio = BIO_new(connection_bio_method());
    if (bio == nullptr) return internal_error("BIO_new: " + take_openssl_errors());
    BIO_set_data(bio, c.get());
    SSL_set_bio(ssl, bio, bio);  // one reference, owned by `ssl`
    if (role == Role::kServer) {
      SSL_set_accept_state(ssl);
      return c;
    }
    SSL_set_connect_state(ssl);
    if (!tls.server_name.empty()) {
      boost::system::error_code ec;
      asio::ip::make_address(tls.server_name, ec);
      if (!ec) {
        // An IP address: checked against the certificate's IP SANs; SNI carries only names.
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), tls.server_name.c_str()) != 1) {
          return invalid_argument("bad TLS server_name '" + tls.server_name + "': " + take_openssl_errors());
        }
      } else {
        SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (SSL_set_tlsext_host_name(ssl, tls.server_name.c_str()) != 1 ||
            SSL_set1_host(ssl, tls.server_name.c_str()) != 1) {
          return invalid_argument("bad TLS server_name '" + tls.server_name + "': " + take_openssl_errors());
        }
      }
    }
    return c;
  }

  // Runs the handshake, bounded by `timeout`. `done` runs once, on the loop: with OK when the
  // connection is established (it is then kOpen and waits for start()), else with the reason,
  // the socket already closed.
  void start_handshake(std::chrono::milliseconds timeout, HandshakeDone done) {
    done_ = std::move(done);
    timer_.expires_after(timeout);
    timer_.async_wait([self = shared_from_this(), timeout](const boost::system::error_code& ec) {
      if (ec || self->state_ != State::kHandshake) return;
      self->fail_handshake(timed_out("TLS handshake with " + self->peer_ + " timed out after " +
                                     std::to_string(timeout.count()) + " ms"));
    });
    pump();
  }

  const std::string& peer_subject() const { return peer_subject_; }

  // --- Connection ---

  void start(ConnectionHandler* handler) override {
    handler_ = handler;
    post_pump();  // plaintext may already wait inside OpenSSL; never deliver from inside start()
  }

  void send(Chain bytes) override {
    if (state_ != State::kOpen || bytes.empty()) return;
    out_.append(std::move(bytes));
    drain_pending_ = true;
    schedule_flush();
  }

  // Plaintext not yet encrypted plus ciphertext not yet handed to the kernel.
  std::size_t queued_bytes() const override { return out_.size() + cipher_pending(); }

  void pause_reading() override { paused_ = true; }

  void resume_reading() override {
    if (!paused_) return;
    paused_ = false;
    if (state_ != State::kClosed && handler_ != nullptr) post_pump();
  }

  void close() override {
    if (state_ != State::kOpen) return;
    state_ = State::kClosing;
    // Nothing scheduled or waiting means nothing queued: send close_notify now.
    if (!flush_scheduled_ && !write_waiting_) flush();
    if (state_ != State::kClosing) return;
    // A peer that does not read must not hold the connection forever (as in TCP).
    timer_.expires_after(options_.close_linger);
    timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (ec || self->state_ != State::kClosing) return;
      self->finish(timed_out("close: the peer did not take the last " + std::to_string(self->queued_bytes()) +
                             " bytes within the linger time"));
    });
  }

  void abort(Status reason) override {
    if (state_ == State::kClosed) return;
    out_.clear();
    finish(std::move(reason));
  }

  io::EventLoop& loop() override { return loop_; }
  std::string peer_address() const override { return peer_; }
  bool secure() const override { return true; }

  // --- the BIO's side ---

  // Copies up to `len` bytes of received ciphertext to `out`; 0 when none is buffered.
  std::size_t take_cipher(char* out, std::size_t len) {
    const std::size_t n = std::min(len, cin_.size() - cin_pos_);
    if (n > 0) std::memcpy(out, cin_.data() + cin_pos_, n);
    cin_pos_ += n;
    return n;
  }
  std::size_t cipher_buffered() const { return cin_.size() - cin_pos_; }

  // Appends ciphertext from OpenSSL to the output blocks.
  void put_cipher(const char* data, std::size_t len) {
    while (len > 0) {
      if (!cblock_ || cblock_.tailroom() == 0) {
        seal_cipher();
        cblock_ = loop_.read_pool().get();
        sealed_ = 0;
      }
      const std::size_t n = std::min(len, cblock_.tailroom());
      std::memcpy(cblock_.tail(), data, n);
      cblock_.commit(n);
      data += n;
      len -= n;
    }
  }

 private:
  enum class State { kHandshake, kOpen, kClosing, kClosed };
  enum class ReadResult { kData, kWouldBlock, kEof, kError };
  enum class WriteResult { kDone, kWouldBlock, kError };

  // --- reading ---

  void post_pump() {
    if (pump_posted_) return;
    pump_posted_ = true;
    loop_.post([self = shared_from_this()] {
      self->pump_posted_ = false;
      self->pump();
    });
  }

  // Feeds OpenSSL whatever the socket has, advancing the handshake or delivering plaintext,
  // until the socket is empty (then waits for it), reading pauses, or the connection ends.
  void pump() {
    for (int reads = 0;;) {
      if (state_ == State::kHandshake) {
        if (!handshake_step()) return;
      } else {
        if (state_ == State::kClosed || handler_ == nullptr || paused_) return;
        if (!decrypt()) return;
      }
      // OpenSSL has consumed everything buffered and wants more.
      if (peer_eof_) {
        on_peer_eof();
        return;
      }
      if (reads == kReadsPerTurn) {
        post_pump();
        return;
      }
      switch (read_cipher()) {
        case ReadResult::kData:
          ++reads;
          break;
        case ReadResult::kWouldBlock:
          wait_readable();
          return;
        case ReadResult::kEof:
          peer_eof_ = true;
          break;
        case ReadResult::kError:
          fail(disconnected("read: " + read_error_.message()));
          return;
      }
    }
  }

  // One non-blocking read of ciphertext into `cin_`. Precondition: OpenSSL consumed the rest.
  ReadResult read_cipher() {
    if (cin_ && cin_pos_ == cin_.size()) {
      cin_.reset();  // never sliced, so always unique
      cin_pos_ = 0;
    }
    if (!cin_ || cin_.tailroom() == 0) {
      Buffer fresh = loop_.read_pool().get();
      if (cin_) fresh.append(ByteView(cin_.data() + cin_pos_, cin_.size() - cin_pos_));
      cin_ = std::move(fresh);
      cin_pos_ = 0;
    }
    boost::system::error_code ec;
    std::size_t n = 0;
    do {
      n = socket_.read_some(asio::buffer(cin_.tail(), cin_.tailroom()), ec);
    } while (ec == asio::error::interrupted);
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
      release_idle_cipher_in();
      return ReadResult::kWouldBlock;
    }
    if (ec == asio::error::eof) return ReadResult::kEof;
    if (ec) {
      read_error_ = ec;
      return ReadResult::kError;
    }
    cin_.commit(n);
    return ReadResult::kData;
  }

  // An idle connection holds no input block.
  void release_idle_cipher_in() {
    if (cin_ && cin_pos_ == cin_.size()) {
      cin_ = Buffer();
      cin_pos_ = 0;
    }
  }

  void wait_readable() {
    if (read_waiting_) return;
    read_waiting_ = true;
    socket_.async_wait(tcp::socket::wait_read, [self = shared_from_this()](const boost::system::error_code& ec) {
      self->read_waiting_ = false;
      if (self->state_ == State::kClosed) return;
      if (ec) {
        self->fail(disconnected("read: " + ec.message()));
        return;
      }
      self->pump();
    });
  }

  // Decrypts all OpenSSL can and delivers it. True when OpenSSL needs more ciphertext; false
  // when the connection closed or reading paused.
  bool decrypt() {
    for (;;) {
      if (state_ == State::kClosed || paused_) return false;
      if (read_buf_ && read_buf_.unique() && undelivered_ == 0) read_buf_.reset();  // no Slice left
      if (!read_buf_ || read_buf_.tailroom() < std::max<std::size_t>(options_.min_read, 1)) {
        deliver();
        if (state_ == State::kClosed || paused_) return false;
        read_buf_ = loop_.read_pool().get();
      }
      ERR_clear_error();
      std::size_t n = 0;
      const int r = SSL_read_ex(ssl_, read_buf_.tail(), read_buf_.tailroom(), &n);
      if (r == 1) {
        read_buf_.commit(n);
        undelivered_ += n;
        continue;
      }
      const int err = SSL_get_error(ssl_, r);
      deliver();  // what came before the event
      if (state_ == State::kClosed) return false;
      if (err == SSL_ERROR_WANT_READ) {
        // Reading can make OpenSSL answer (an alert or a key update): send that too.
        if (cipher_pending() > 0) schedule_flush();
        return !paused_;
      }
      if (err == SSL_ERROR_ZERO_RETURN) {
        finish(disconnected("read: connection closed by peer"));
        return false;
      }
      const unsigned long first = ERR_peek_error();
      const std::string reason = take_openssl_errors();
      const std::string what = "read: TLS error from " + peer_ + ": " + reason;
      finish(is_certificate_alert(ERR_GET_REASON(first)) ? unauthenticated(what) : disconnected(what));
      return false;
    }
  }

  void deliver() {
    if (undelivered_ == 0) return;
    Slice s = read_buf_.slice(read_buf_.size() - undelivered_, undelivered_);
    undelivered_ = 0;
    handler_->on_bytes(std::move(s));
  }

  void on_peer_eof() {
    if (state_ == State::kHandshake) {
      fail_handshake(disconnected("TLS handshake with " + peer_ + " failed: connection closed by peer"));
    } else {
      finish(disconnected("read: connection closed by peer without TLS close_notify"));
    }
  }

  // --- handshake ---

  // One SSL_do_handshake() over the buffered ciphertext. True when it needs more input.
  bool handshake_step() {
    ERR_clear_error();
    const int r = SSL_do_handshake(ssl_);
    if (r == 1) {
      handshake_succeeded();
      return false;
    }
    const int err = SSL_get_error(ssl_, r);
    if (err == SSL_ERROR_WANT_READ) {
      switch (write_cipher()) {
        case WriteResult::kDone:
          return true;
        case WriteResult::kWouldBlock:
          wait_writable();
          return true;
        case WriteResult::kError:
          fail_handshake(disconnected("TLS handshake with " + peer_ + " failed: write: " +
                                      std::strerror(write_errno_)));
          return false;
      }
    }
    std::string reason = take_openssl_errors();
    const long verify = SSL_get_verify_result(ssl_);
    if ((SSL_get_verify_mode(ssl_) & SSL_VERIFY_PEER) != 0 && verify != X509_V_OK &&
        reason.find(X509_verify_cert_error_string(verify)) == std::string::npos) {
      reason += std::string(": ") + X509_verify_cert_error_string(verify);
    }
    fail_handshake(unauthenticated("TLS handshake with " + peer_ + " failed: " + reason));
    return false;
  }

  void handshake_succeeded() {
    timer_.cancel();
    state_ = State::kOpen;
    if (X509* cert = SSL_get1_peer_certificate(ssl_)) {
      peer_subject_ = name_string(X509_get_subject_name(cert));
      X509_free(cert);
    }
    // The client's last flight is still to go.
    switch (write_cipher()) {
      case WriteResult::kDone:
        break;
      case WriteResult::kWouldBlock:
        wait_writable();
        break;
      case WriteResult::kError:
        state_ = State::kHandshake;
        fail_handshake(
            disconnected("TLS handshake with " + peer_ + " failed: write: " + std::strerror(write_errno_)));
        return;
    }
    auto done = std::move(done_);
    done_ = nullptr;
    done(shared_from_this(), Status());
  }

  void fail_handshake(Status why) {
    if (state_ != State::kHandshake) return;
    state_ = State::kClosed;
    timer_.cancel();
    (void)write_cipher();  // best effort: OpenSSL's alert tells the peer why
    boost::system::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
    release_buffers();
    auto done = std::move(done_);
    done_ = nullptr;
    done(shared_from_this(), std::move(why));
  }

  static std::string name_string(X509_NAME* name) {
    BIO* mem = BIO_new(BIO_s_mem());
    if (mem == nullptr) return {};
    std::string out;
    if (X509_NAME_print_ex(mem, name, 0, XN_FLAG_RFC2253) >= 0) {
      char* data = nullptr;
      const long len = BIO_get_mem_data(mem, &data);
      if (len > 0 && data != nullptr) out.assign(data, static_cast<std::size_t>(len));
    }
    BIO_free(mem);
    return out;
  }

  // --- writing ---

  void schedule_flush() {
    if (flush_scheduled_ || write_waiting_) return;
    flush_scheduled_ = true;
    // Runs after the handlers already queued in this loop turn, so their sends coalesce.
    loop_.post([self = shared_from_this()] {
      self->flush_scheduled_ = false;
      self->flush();
    });
  }

  void flush() {
    for (;;) {
      if (state_ == State::kClosed) return;
      if (state_ != State::kHandshake) encrypt();
      if (state_ == State::kClosed) return;
      if (state_ == State::kClosing && out_.empty() && !shutdown_sent_) {
        shutdown_sent_ = true;
        ERR_clear_error();
        SSL_shutdown(ssl_);  // queues close_notify; the peer's is not waited for
        ERR_clear_error();
      }
      switch (write_cipher()) {
        case WriteResult::kDone:
          break;
        case WriteResult::kWouldBlock:
          wait_writable();
          return;
        case WriteResult::kError:
          fail(disconnected(std::string("write: ") + std::strerror(write_errno_)));
          return;
      }
      if (state_ == State::kHandshake || out_.empty()) break;
    }
    if (state_ == State::kClosing) {
      finish(Status());
      return;
    }
    if (state_ == State::kOpen && drain_pending_) {
      drain_pending_ = false;
      if (handler_ != nullptr) handler_->on_send_drained();
    }
  }

  // Encrypts queued plaintext until it is gone or a batch of ciphertext is waiting. Small
  // slices are copied together into full records; large ones are encrypted where they lie.
  void encrypt() {
    std::uint8_t staging[kRecordPlaintext];
    while (!out_.empty() && cipher_pending() < kMaxCipherBatch) {
      const Slice& first = out_.slice(0);
      const std::uint8_t* p = staging;
      std::size_t n = 0;
      if (first.size() >= kRecordPlaintext) {
        p = first.data();
        n = std::min(first.size() / kRecordPlaintext * kRecordPlaintext, kMaxCipherBatch);
      } else {
        n = out_.copy_to(staging, kRecordPlaintext);
      }
      ERR_clear_error();
      std::size_t written = 0;
      if (SSL_write_ex(ssl_, p, n, &written) != 1) {
        finish(disconnected("write: TLS error: " + take_openssl_errors()));
        return;
      }
      out_.consume(written);
    }
  }

  std::size_t cipher_pending() const { return cout_.size() + (cblock_ ? cblock_.size() - sealed_ : 0); }

  // Moves the ciphertext written into `cblock_` since the last seal onto `cout_`.
  void seal_cipher() {
    if (cblock_ && cblock_.size() > sealed_) {
      cout_.append(cblock_.slice(sealed_, cblock_.size() - sealed_));
      sealed_ = cblock_.size();
    }
  }

  // Hands pending ciphertext to the kernel without blocking. On kError, write_errno_ says why.
  WriteResult write_cipher() {
    seal_cipher();
    const int fd = socket_.native_handle();
    while (!cout_.empty()) {
      struct iovec iov[kMaxRecordIov];
      struct msghdr msg {};
      msg.msg_iov = iov;
      msg.msg_iovlen = cout_.to_iovecs(iov, kMaxRecordIov);
      const ssize_t w = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
      if (w < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return WriteResult::kWouldBlock;
        write_errno_ = errno;
        return WriteResult::kError;
      }
      cout_.consume(static_cast<std::size_t>(w));
    }
    // Everything left: an idle connection holds no output block.
    cblock_ = Buffer();
    sealed_ = 0;
    return WriteResult::kDone;
  }

  void wait_writable() {
    write_waiting_ = true;
    socket_.async_wait(tcp::socket::wait_write, [self = shared_from_this()](const boost::system::error_code& ec) {
      self->write_waiting_ = false;
      if (self->state_ == State::kClosed) return;
      if (ec) {
        self->fail(disconnected("write: " + ec.message()));
        return;
      }
      self->flush();
    });
  }

  // --- ending ---

  void fail(Status reason) {
    if (state_ == State::kHandshake) {
      fail_handshake(
          Status(reason.code(), "TLS handshake with " + peer_ + " failed: " + std::string(reason.message())));
    } else {
      finish(std::move(reason));
    }
  }

  void finish(Status reason) {
    if (state_ == State::kClosed) return;
    const bool graceful = state_ == State::kClosing && reason.is_ok();
    state_ = State::kClosed;
    timer_.cancel();
    boost::system::error_code ec;
    if (graceful) socket_.shutdown(tcp::socket::shutdown_send, ec);
    socket_.close(ec);
    out_.clear();
    release_buffers();
    // Delivered on a later turn: never from inside a call the handler made.
    loop_.post([self = shared_from_this(), reason = std::move(reason)]() mutable {
      if (self->handler_ != nullptr) self->handler_->on_closed(std::move(reason));
    });
  }

  // Returns the pooled blocks on the loop thread, where the pool takes them back.
  void release_buffers() {
    cout_.clear();
    cblock_ = Buffer();
    sealed_ = 0;
    cin_ = Buffer();
    cin_pos_ = 0;
    read_buf_ = Buffer();
    undelivered_ = 0;
  }

  io::EventLoop& loop_;
  tcp::socket socket_;
  TcpOptions options_;
  SSL* ssl_;  // owned
  asio::steady_timer timer_;  // bounds the handshake, then close()'s linger
  HandshakeDone done_;
  ConnectionHandler* handler_ = nullptr;
  std::string peer_;
  std::string peer_subject_;

  Buffer cin_;               // received ciphertext; OpenSSL has consumed [0, cin_pos_)
  std::size_t cin_pos_ = 0;
  Buffer read_buf_;          // decrypted bytes; the last undelivered_ of them not yet handed out
  std::size_t undelivered_ = 0;
  Chain out_;                // plaintext queued by send()
  Buffer cblock_;            // ciphertext from OpenSSL; [sealed_, size()) not yet on cout_
  std::size_t sealed_ = 0;
  Chain cout_;               // ciphertext waiting for the socket

  State state_ = State::kHandshake;
  bool paused_ = false;
  bool pump_posted_ = false;
  bool read_waiting_ = false;
  bool peer_eof_ = false;
  bool flush_scheduled_ = false;
  bool write_waiting_ = false;
  bool drain_pending_ = false;
  bool shutdown_sent_ = false;
  boost::system::error_code read_error_;
  int write_errno_ = 0;
};

// --- the BIO that connects OpenSSL to a TlsConnection's buffers ---

TlsConnection* bio_connection(BIO* b) { return static_cast<TlsConnection*>(BIO_get_data(b)); }

int bio_write(BIO* b, const char* data, int len) {
  BIO_clear_retry_flags(b);
  if (len <= 0) return 0;
  bio_connection(b)->put_cipher(data, static_cast<std::size_t>(len));
  return len;
}

int bio_read(BIO* b, char* out, int len) {
  BIO_clear_retry_flags(b);
  if (len <= 0) return 0;
  const std::size_t n = bio_connection(b)->take_cipher(out, static_cast<std::size_t>(len));
  if (n == 0) {
    BIO_set_retry_read(b);  // the connection reads the socket and calls OpenSSL again
    return -1;
  }
  return static_cast<int>(n);
}

long bio_ctrl(BIO* b, int cmd, long, void*) {
  switch (cmd) {
    case BIO_CTRL_FLUSH:
      return 1;
    case BIO_CTRL_PENDING:
      return static_cast<long>(std::min<std::size_t>(bio_connection(b)->cipher_buffered(), LONG_MAX));
    default:
      return 0;
  }
}

int bio_create(BIO* b) {
  BIO_set_init(b, 1);
  return 1;
}

BIO_METHOD* connection_bio_method() {
  static BIO_METHOD* const method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "slipstream connection");
    if (m != nullptr) {
      BIO_meth_set_write(m, bio_write);
      BIO_meth_set_read(m, bio_read);
      BIO_meth_set_ctrl(m, bio_ctrl);
      BIO_meth_set_create(m, bio_create);
    }
    return m;
  }();
  return method;
}

// What the server side of every handshake on one listener shares. Handshake callbacks hold a
// reference, so one that completes after the Listener is gone finds the listener stopped.
struct TlsServerSide {
  TcpOptions tcp;
  TlsOptions tls;
  SslCtxPtr ctx;
  AcceptHandler on_accept;
  std::weak_ptr<detail::SocketAcceptors> acceptors;
  std::string local;

  bool stopped() const {
    auto a = acceptors.lock();
    return !a || a->stopped();
  }

  // The connection reaches on_accept only once its handshake is done.
  static void handshake(const std::shared_ptr<TlsServerSide>& side, io::EventLoop& loop, tcp::socket s) {
    auto conn = TlsConnection::create(loop, std::move(s), side->tcp, side->ctx.get(), Role::kServer, side->tls);
    if (!conn.is_ok()) {
      SLIP_LOG_WARN("TLS on {}: {}", side->local, conn.status().to_string());
      return;
    }
    (*conn)->start_handshake(side->tls.handshake_timeout, [side](std::shared_ptr<TlsConnection> c, Status st) {
      if (!st.is_ok()) {
        SLIP_LOG_INFO("TLS on {}: refused: {}", side->local, st.message());
        return;
      }
      if (side->stopped()) {
        c->abort(cancelled("listener stopped"));
        return;
      }
      side->on_accept(std::move(c));
    });
  }
};

}  // namespace

Result<std::unique_ptr<Listener>> tls_listen(io::LoopGroup& loops, const HostPort& address, const TcpOptions& tcp,
                                             const TlsOptions& tls, AcceptHandler on_accept) {
  SLIP_ASSIGN_OR_RETURN(SslCtxPtr ctx, make_context(Role::kServer, tls));
  auto side = std::make_shared<TlsServerSide>(TlsServerSide{tcp, tls, std::move(ctx), std::move(on_accept), {}, {}});
  auto acceptors = std::make_shared<detail::SocketAcceptors>(
      loops, tcp, [side](io::EventLoop& loop, tcp::socket s) { TlsServerSide::handshake(side, loop, std::move(s)); });
  Status st = acceptors->open(address);
  if (!st.is_ok()) {
    acceptors->stop();
    return st;
  }
  side->acceptors = acceptors;
  side->local = acceptors->local_address();
  return std::unique_ptr<Listener>(std::make_unique<detail::AcceptorsListener>(std::move(acceptors)));
}

void tls_connect(io::EventLoop& loop, const HostPort& address, const TcpOptions& tcp_options,
                 const TlsOptions& tls, ConnectHandler done) {
  // TODO(perf): one SSL_CTX per call re-reads the CA file; a client that connects often
  // would want a reusable context.
  auto ctx = make_context(Role::kClient, tls);
  if (!ctx.is_ok()) {
    loop.post([done = std::move(done), s = ctx.status()]() mutable { done(std::move(s)); });
    return;
  }
  detail::dial(loop, address, tcp_options,
               [&loop, tcp_options, tls, ctx = std::move(*ctx), done = std::move(done)](
                   Result<std::shared_ptr<tcp::socket>> socket) mutable {
                 if (!socket.is_ok()) {
                   done(socket.status());
                   return;
                 }
                 auto conn =
                     TlsConnection::create(loop, std::move(**socket), tcp_options, ctx.get(), Role::kClient, tls);
                 if (!conn.is_ok()) {
                   done(conn.status());
                   return;
                 }
                 (*conn)->start_handshake(tls.handshake_timeout,
                                          [done = std::move(done)](std::shared_ptr<TlsConnection> c, Status s) {
                                            if (!s.is_ok()) {
                                              done(std::move(s));
                                              return;
                                            }
                                            done(ConnectionPtr(std::move(c)));
                                          });
               });
}

std::string tls_peer_subject(const Connection& connection) {
  const auto* tls = dynamic_cast<const TlsConnection*>(&connection);
  return tls != nullptr ? tls->peer_subject() : std::string();
}

}  // namespace slip::transport
