// A Status that must be an error: its code, and a fragment its message must contain.
#pragma once

#include <gtest/gtest.h>

#include <string_view>

#include "slipstream/status.h"

namespace slip::test {

inline void expect_error(const Status& s, StatusCode code, std::string_view fragment) {
  EXPECT_EQ(s.code(), code) << s.to_string();
  EXPECT_NE(s.message().find(fragment), std::string_view::npos) << "message: " << s.message();
}

}  // namespace slip::test
