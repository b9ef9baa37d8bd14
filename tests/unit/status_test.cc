#include "slipstream/status.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

namespace slip {
namespace {

TEST(StatusTest, DefaultIsOkAndCarriesNoMessage) {
  Status s;
  EXPECT_TRUE(s.is_ok());
  EXPECT_TRUE(static_cast<bool>(s));
  EXPECT_EQ(s.code(), StatusCode::kOk);
  EXPECT_TRUE(s.message().empty());
  EXPECT_EQ(s.to_string(), "OK");
  EXPECT_TRUE(Status::ok().is_ok());
}

TEST(StatusTest, OkCostsOnePointer) { EXPECT_EQ(sizeof(Status), sizeof(void*)); }

TEST(StatusTest, ConstructingWithOkCodeDropsTheMessage) {
  Status s(StatusCode::kOk, "ignored");
  EXPECT_TRUE(s.is_ok());
  EXPECT_TRUE(s.message().empty());
}

TEST(StatusTest, FailureKeepsCodeAndMessage) {
  Status s(StatusCode::kOverloaded, "queue full");
  EXPECT_FALSE(s.is_ok());
  EXPECT_FALSE(static_cast<bool>(s));
  EXPECT_EQ(s.code(), StatusCode::kOverloaded);
  EXPECT_EQ(s.message(), "queue full");
  EXPECT_EQ(s.to_string(), "RESOURCE_EXHAUSTED: queue full");
}

TEST(StatusTest, ToStringOmitsEmptyMessage) {
  EXPECT_EQ(Status(StatusCode::kNotFound, "").to_string(), "NOT_FOUND");
}

TEST(StatusTest, CodeValuesMatchGrpcWireNumbers) {
  EXPECT_EQ(static_cast<int>(StatusCode::kOk), 0);
  EXPECT_EQ(static_cast<int>(StatusCode::kCancelled), 1);
  EXPECT_EQ(static_cast<int>(StatusCode::kUnknown), 2);
  EXPECT_EQ(static_cast<int>(StatusCode::kInvalidArgument), 3);
  EXPECT_EQ(static_cast<int>(StatusCode::kTimeout), 4);
  EXPECT_EQ(static_cast<int>(StatusCode::kNotFound), 5);
  EXPECT_EQ(static_cast<int>(StatusCode::kAlreadyExists), 6);
  EXPECT_EQ(static_cast<int>(StatusCode::kPermissionDenied), 7);
  EXPECT_EQ(static_cast<int>(StatusCode::kOverloaded), 8);
  EXPECT_EQ(static_cast<int>(StatusCode::kFailedPrecondition), 9);
  EXPECT_EQ(static_cast<int>(StatusCode::kAborted), 10);
  EXPECT_EQ(static_cast<int>(StatusCode::kOutOfRange), 11);
  EXPECT_EQ(static_cast<int>(StatusCode::kUnimplemented), 12);
  EXPECT_EQ(static_cast<int>(StatusCode::kInternal), 13);
  EXPECT_EQ(static_cast<int>(StatusCode::kDisconnected), 14);
  EXPECT_EQ(static_cast<int>(StatusCode::kCorruption), 15);
  EXPECT_EQ(static_cast<int>(StatusCode::kUnauthenticated), 16);
  EXPECT_EQ(kMaxStatusCode, 16);
}

TEST(StatusTest, CodeNamesUseGrpcSpelling) {
  const std::vector<std::pair<StatusCode, std::string_view>> names = {
      {StatusCode::kOk, "OK"},
      {StatusCode::kCancelled, "CANCELLED"},
      {StatusCode::kUnknown, "UNKNOWN"},
      {StatusCode::kInvalidArgument, "INVALID_ARGUMENT"},
      {StatusCode::kTimeout, "DEADLINE_EXCEEDED"},
      {StatusCode::kNotFound, "NOT_FOUND"},
      {StatusCode::kAlreadyExists, "ALREADY_EXISTS"},
      {StatusCode::kPermissionDenied, "PERMISSION_DENIED"},
      {StatusCode::kOverloaded, "RESOURCE_EXHAUSTED"},
      {StatusCode::kFailedPrecondition, "FAILED_PRECONDITION"},
      {StatusCode::kAborted, "ABORTED"},
      {StatusCode::kOutOfRange, "OUT_OF_RANGE"},
      {StatusCode::kUnimplemented, "UNIMPLEMENTED"},
      {StatusCode::kInternal, "INTERNAL"},
      {StatusCode::kDisconnected, "UNAVAILABLE"},
      {StatusCode::kCorruption, "DATA_LOSS"},
      {StatusCode::kUnauthenticated, "UNAUTHENTICATED"},
  };
  for (const auto& [code, name] : names) EXPECT_EQ(status_code_name(code), name) << static_cast<int>(code);
  EXPECT_EQ(status_code_name(static_cast<StatusCode>(200)), "UNKNOWN");
}

TEST(StatusTest, WireValuesPastTheLastCodeBecomeUnknown) {
  for (std::uint64_t v = 0; v <= kMaxStatusCode; ++v) {
    EXPECT_EQ(static_cast<std::uint64_t>(status_code_from_wire(v)), v);
  }
  EXPECT_EQ(status_code_from_wire(17), StatusCode::kUnknown);
  EXPECT_EQ(status_code_from_wire(256), StatusCode::kUnknown);
  EXPECT_EQ(status_code_from_wire(~0ull), StatusCode::kUnknown);
}

TEST(StatusTest, ShorthandsProduceTheirCodes) {
  EXPECT_EQ(invalid_argument("m").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(not_found("m").code(), StatusCode::kNotFound);
  EXPECT_EQ(permission_denied("m").code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(overloaded("m").code(), StatusCode::kOverloaded);
  EXPECT_EQ(failed_precondition("m").code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(out_of_range("m").code(), StatusCode::kOutOfRange);
  EXPECT_EQ(unimplemented("m").code(), StatusCode::kUnimplemented);
  EXPECT_EQ(internal_error("m").code(), StatusCode::kInternal);
  EXPECT_EQ(disconnected("m").code(), StatusCode::kDisconnected);
  EXPECT_EQ(corruption("m").code(), StatusCode::kCorruption);
  EXPECT_EQ(timed_out("m").code(), StatusCode::kTimeout);
  EXPECT_EQ(cancelled("m").code(), StatusCode::kCancelled);
  EXPECT_EQ(unauthenticated("m").code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(not_found("no such subject").message(), "no such subject");
}

TEST(StatusTest, WithContextPrefixesMessageAndKeepsCode) {
  Status s = corruption("crc mismatch");
  Status c = s.with_context("segment 7");
  EXPECT_EQ(c.code(), StatusCode::kCorruption);
  EXPECT_EQ(c.message(), "segment 7: crc mismatch");
  EXPECT_EQ(s.message(), "crc mismatch");  // the original is untouched
  EXPECT_EQ(c.with_context("log").message(), "log: segment 7: crc mismatch");
}

TEST(StatusTest, WithContextLeavesOkAlone) {
  Status c = Status().with_context("anything");
  EXPECT_TRUE(c.is_ok());
  EXPECT_TRUE(c.message().empty());
}

TEST(StatusTest, CopiesAreDeepAndCompareEqual) {
  Status a = timed_out("late");
  Status b = a;
  EXPECT_EQ(a, b);
  EXPECT_NE(a.message().data(), b.message().data());
  Status c;
  c = a;
  EXPECT_EQ(c, a);
  c = Status();
  EXPECT_TRUE(c.is_ok());
  EXPECT_FALSE(c == a);
  EXPECT_FALSE(timed_out("late") == timed_out("early"));
  EXPECT_FALSE(timed_out("late") == cancelled("late"));
}

TEST(StatusTest, SelfAssignmentKeepsTheValue) {
  Status a = cancelled("bye");
  Status& alias = a;
  a = alias;
  EXPECT_EQ(a.code(), StatusCode::kCancelled);
  EXPECT_EQ(a.message(), "bye");
}

TEST(StatusTest, MoveLeavesSourceOk) {
  Status a = disconnected("peer closed");
  Status b = std::move(a);
  EXPECT_EQ(b.code(), StatusCode::kDisconnected);
  EXPECT_TRUE(a.is_ok());  // NOLINT(bugprone-use-after-move): documented by unique_ptr
}

TEST(ResultTest, HoldsAValue) {
  Result<int> r = 42;
  ASSERT_TRUE(r.is_ok());
  EXPECT_TRUE(static_cast<bool>(r));
  EXPECT_EQ(*r, 42);
  EXPECT_EQ(r.value(), 42);
  EXPECT_TRUE(r.status().is_ok());
  EXPECT_EQ(r.value_or(7), 42);
}

TEST(ResultTest, HoldsAnError) {
  Result<int> r = not_found("nope");
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(r.error().message(), "nope");
  EXPECT_EQ(r.value_or(7), 7);
}

TEST(ResultTest, OkStatusBecomesInternalError) {
  Result<int> r = Status();
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInternal);
  EXPECT_NE(r.status().message().find("OK Status"), std::string_view::npos);
}

TEST(ResultTest, ConvertsFromConstructibleTypes) {
  Result<std::string> r = "text";
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(*r, "text");
  EXPECT_EQ(r->size(), 4u);
}

TEST(ResultTest, BoolResultDoesNotConfuseStatusWithValue) {
  // Status has an explicit operator bool; a failed Status must stay an error.
  Status err = cancelled("stop");
  Result<bool> r = err;
  EXPECT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCancelled);
  Result<bool> f = false;
  ASSERT_TRUE(f.is_ok());
  EXPECT_FALSE(*f);
}

TEST(ResultTest, MovesOutMoveOnlyValues) {
  Result<std::unique_ptr<int>> r = std::make_unique<int>(5);
  ASSERT_TRUE(r.is_ok());
  std::unique_ptr<int> p = std::move(r).value();
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(*p, 5);
}

TEST(ResultTest, MovesOutTheError) {
  Result<int> r = overloaded("full");
  Status s = std::move(r).error();
  EXPECT_EQ(s.code(), StatusCode::kOverloaded);
  EXPECT_EQ(s.message(), "full");
}

// Helpers for the propagation macros. `calls` counts how far each function got.
Status fails_with(StatusCode code) { return Status(code, "inner"); }
Result<int> half(int v) {
  if (v % 2 != 0) return invalid_argument("odd");
  return v / 2;
}

Status try_status(StatusCode code, int& reached) {
  SLIP_TRY(fails_with(code));
  reached = 1;
  return Status();
}

Status try_result(int v, int& reached) {
  SLIP_TRY(half(v));
  reached = 1;
  return Status();
}

Result<int> quarter(int v, int& reached) {
  SLIP_ASSIGN_OR_RETURN(int h, half(v));
  reached = 1;
  SLIP_ASSIGN_OR_RETURN(int q, half(h));
  reached = 2;
  return q;
}

Result<std::unique_ptr<int>> make_owned(bool ok) {
  if (!ok) return permission_denied("no");
  return std::make_unique<int>(9);
}

Result<int> unwrap_owned(bool ok) {
  SLIP_ASSIGN_OR_RETURN(std::unique_ptr<int> p, make_owned(ok));
  return *p + 1;
}

TEST(StatusMacrosTest, TryReturnsAFailedStatus) {
  int reached = 0;
  Status s = try_status(StatusCode::kAborted, reached);
  EXPECT_EQ(s.code(), StatusCode::kAborted);
  EXPECT_EQ(s.message(), "inner");
  EXPECT_EQ(reached, 0);
}

TEST(StatusMacrosTest, TryContinuesOnOk) {
  int reached = 0;
  EXPECT_TRUE(try_status(StatusCode::kOk, reached).is_ok());
  EXPECT_EQ(reached, 1);
}

TEST(StatusMacrosTest, TryAcceptsAResult) {
  int reached = 0;
  Status s = try_result(3, reached);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(reached, 0);
  EXPECT_TRUE(try_result(4, reached).is_ok());
  EXPECT_EQ(reached, 1);
}

TEST(StatusMacrosTest, AssignOrReturnBindsValues) {
  int reached = 0;
  Result<int> r = quarter(12, reached);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(*r, 3);
  EXPECT_EQ(reached, 2);
}

TEST(StatusMacrosTest, AssignOrReturnStopsAtTheFirstError) {
  int reached = 0;
  Result<int> r = quarter(5, reached);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(reached, 0);
  reached = 0;
  r = quarter(6, reached);  // 6 / 2 = 3 is odd
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(reached, 1);
}

TEST(StatusMacrosTest, AssignOrReturnMovesMoveOnlyValues) {
  Result<int> ok = unwrap_owned(true);
  ASSERT_TRUE(ok.is_ok());
  EXPECT_EQ(*ok, 10);
  EXPECT_EQ(unwrap_owned(false).status().code(), StatusCode::kPermissionDenied);
}

}  // namespace
}  // namespace slip
