// SLIP_ASSERT is for our own bugs only; bad input is a Status, never an assert.
#pragma once

#include <cstdio>
#include <cstdlib>

#define SLIP_ASSERT(cond)                                                                   \
  do {                                                                                      \
    if (!(cond)) [[unlikely]] {                                                             \
      std::fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #cond);   \
      std::abort();                                                                         \
    }                                                                                       \
  } while (false)
