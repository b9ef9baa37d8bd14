#include "slipstream/status.h"

#include <array>

namespace slip {

namespace {
constexpr std::array<std::string_view, kMaxStatusCode + 1> kNames = {
    "OK",        "CANCELLED",          "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
    "OUT_OF_RANGE",   "UNIMPLEMENTED",     "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
};
}  // namespace

std::string_view status_code_name(StatusCode code) {
  auto i = static_cast<std::size_t>(code);
  return i < kNames.size() ? kNames[i] : std::string_view("UNKNOWN");
}

StatusCode status_code_from_wire(std::uint64_t value) {
  return value <= kMaxStatusCode ? static_cast<StatusCode>(value) : StatusCode::kUnknown;
}

Status::Status(StatusCode code, std::string_view message) {
  if (code != StatusCode::kOk) rep_ = std::make_unique<Rep>(Rep{code, std::string(message)});
}

Status::Status(const Status& other) : rep_(other.rep_ ? std::make_unique<Rep>(*other.rep_) : nullptr) {}

Status& Status::operator=(const Status& other) {
  if (this != &other) rep_ = other.rep_ ? std::make_unique<Rep>(*other.rep_) : nullptr;
  return *this;
}

Status Status::with_context(std::string_view context) const {
  if (is_ok()) return Status();
  std::string msg(context);
  msg += ": ";
  msg += rep_->message;
  return Status(rep_->code, msg);
}

std::string Status::to_string() const {
  if (is_ok()) return "OK";
  std::string s(status_code_name(rep_->code));
  if (!rep_->message.empty()) {
    s += ": ";
    s += rep_->message;
  }
  return s;
}

Status invalid_argument(std::string_view m) { return Status(StatusCode::kInvalidArgument, m); }
Status not_found(std::string_view m) { return Status(StatusCode::kNotFound, m); }
Status permission_denied(std::string_view m) { return Status(StatusCode::kPermissionDenied, m); }
Status overloaded(std::string_view m) { return Status(StatusCode::kOverloaded, m); }
Status failed_precondition(std::string_view m) { return Status(StatusCode::kFailedPrecondition, m); }
Status out_of_range(std::string_view m) { return Status(StatusCode::kOutOfRange, m); }
Status unimplemented(std::string_view m) { return Status(StatusCode::kUnimplemented, m); }
Status internal_error(std::string_view m) { return Status(StatusCode::kInternal, m); }
Status disconnected(std::string_view m) { return Status(StatusCode::kDisconnected, m); }
Status corruption(std::string_view m) { return Status(StatusCode::kCorruption, m); }
Status timed_out(std::string_view m) { return Status(StatusCode::kTimeout, m); }
Status cancelled(std::string_view m) { return Status(StatusCode::kCancelled, m); }
Status unauthenticated(std::string_view m) { return Status(StatusCode::kUnauthenticated, m); }

}  // namespace slip
