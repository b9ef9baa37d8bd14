// Status and Result<T>: how every Slipstream call reports failure.
//
// An OK Status costs one null pointer. A failed Status carries a code that tells the caller
// what to do next, and a message for people. The numeric values of the codes are gRPC's
// status codes, and the same numbers travel in ERROR, GOAWAY and RPC trailer frames
// (docs/protocol.md), so a code keeps its meaning from one end of a call to the other.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace slip {

// Wire values: fixed forever (docs/protocol.md, "Error codes").
enum class StatusCode : std::uint8_t {
  kOk = 0,
  kCancelled = 1,           // the caller or the peer gave up
  kUnknown = 2,             // an error from elsewhere without a better code
  kInvalidArgument = 3,     // bad input: fix the request, do not retry
  kTimeout = 4,             // a deadline passed (gRPC DEADLINE_EXCEEDED)
  kNotFound = 5,            // no such subject, stream, method, ...
  kAlreadyExists = 6,
  kPermissionDenied = 7,    // authenticated, but not allowed
  kOverloaded = 8,          // a limit or queue is full: back off (gRPC RESOURCE_EXHAUSTED)
  kFailedPrecondition = 9,  // the system is not in a state to do this
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,      // not supported by this peer: fall back
  kInternal = 13,           // our bug
  kDisconnected = 14,       // the connection is gone: reconnect (gRPC UNAVAILABLE)
  kCorruption = 15,         // data failed a checksum or cannot be decoded (gRPC DATA_LOSS)
  kUnauthenticated = 16,    // no or wrong credentials
};

inline constexpr std::uint8_t kMaxStatusCode = 16;

// "OK", "INVALID_ARGUMENT", ...: gRPC's spelling, used in logs and the CLI.
std::string_view status_code_name(StatusCode code);

// Converts a wire value; values past kMaxStatusCode become kUnknown.
StatusCode status_code_from_wire(std::uint64_t value);

class [[nodiscard]] Status {
 public:
  Status() noexcept = default;
  Status(StatusCode code, std::string_view message);

  Status(const Status& other);
  Status& operator=(const Status& other);
  Status(Status&&) noexcept = default;
  Status& operator=(Status&&) noexcept = default;
  ~Status() = default;

  static Status ok() { return Status(); }

  bool is_ok() const { return rep_ == nullptr; }
  explicit operator bool() const { return is_ok(); }
  StatusCode code() const { return rep_ ? rep_->code : StatusCode::kOk; }
  std::string_view message() const { return rep_ ? std::string_view(rep_->message) : std::string_view(); }

  // Returns a copy whose message is "context: message". OK stays OK.
  Status with_context(std::string_view context) const;

  // "INVALID_ARGUMENT: frame length 99 exceeds limit 10".
  std::string to_string() const;

  bool operator==(const Status& other) const { return code() == other.code() && message() == other.message(); }

 private:
  struct Rep {
    StatusCode code;
    std::string message;
  };
  std::unique_ptr<Rep> rep_;
};

// Shorthands: `return invalid_argument("bad subject");`
Status invalid_argument(std::string_view message);
Status not_found(std::string_view message);
Status permission_denied(std::string_view message);
Status overloaded(std::string_view message);
Status failed_precondition(std::string_view message);
Status out_of_range(std::string_view message);
Status unimplemented(std::string_view message);
Status internal_error(std::string_view message);
Status disconnected(std::string_view message);
Status corruption(std::string_view message);
Status timed_out(std::string_view message);
Status cancelled(std::string_view message);
Status unauthenticated(std::string_view message);

// Holds either a T or a failed Status. Constructing a Result from an OK Status is our bug
// and becomes kInternal.
template <typename T>
class [[nodiscard]] Result {
  static_assert(!std::is_same_v<std::remove_cv_t<T>, Status>, "Result<Status> makes no sense");

 public:
  Result(const T& value) : v_(std::in_place_index<1>, value) {}  // NOLINT: implicit by design
  Result(T&& value) : v_(std::in_place_index<1>, std::move(value)) {}  // NOLINT
  Result(Status status) : v_(std::in_place_index<0>, std::move(status)) {  // NOLINT
    if (std::get<0>(v_).is_ok()) {
      v_.template emplace<0>(StatusCode::kInternal, "Result constructed from an OK Status");
    }
  }
  template <typename U>
    requires(std::is_constructible_v<T, U&&> && !std::is_same_v<std::remove_cvref_t<U>, T> &&
             !std::is_same_v<std::remove_cvref_t<U>, Status> &&
             !std::is_same_v<std::remove_cvref_t<U>, Result>)
  Result(U&& value) : v_(std::in_place_index<1>, std::forward<U>(value)) {}  // NOLINT

  bool is_ok() const { return v_.index() == 1; }
  explicit operator bool() const { return is_ok(); }

  // The error; OK when a value is held.
  Status status() const { return is_ok() ? Status() : std::get<0>(v_); }
  const Status& error() const& { return std::get<0>(v_); }
  Status&& error() && { return std::get<0>(std::move(v_)); }

  // Precondition: is_ok().
  T& value() & { return std::get<1>(v_); }
  const T& value() const& { return std::get<1>(v_); }
  T&& value() && { return std::get<1>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  template <typename U>
  T value_or(U&& fallback) const& {
    return is_ok() ? value() : static_cast<T>(std::forward<U>(fallback));
  }

 private:
  std::variant<Status, T> v_;
};

namespace detail {
inline Status to_status(const Status& s) { return s; }
inline Status to_status(Status&& s) { return std::move(s); }
template <typename T>
Status to_status(const Result<T>& r) { return r.status(); }
}  // namespace detail

}  // namespace slip

#define SLIP_CONCAT_INNER_(a, b) a##b
#define SLIP_CONCAT_(a, b) SLIP_CONCAT_INNER_(a, b)

// Returns the Status of `expr` (a Status or Result) from the enclosing function when it failed.
#define SLIP_TRY(expr)                                           \
  do {                                                           \
    auto&& slip_try_value_ = (expr);                             \
    if (!slip_try_value_.is_ok()) {                              \
      return ::slip::detail::to_status(slip_try_value_);         \
    }                                                            \
  } while (false)

// `SLIP_ASSIGN_OR_RETURN(auto x, make_x());`: binds the value or returns the error.
#define SLIP_ASSIGN_OR_RETURN(lhs, expr) \
  SLIP_ASSIGN_OR_RETURN_IMPL_(SLIP_CONCAT_(slip_result_, __LINE__), lhs, expr)
#define SLIP_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.is_ok()) return std::move(tmp).error();  \
  lhs = std::move(tmp).value()
