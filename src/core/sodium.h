// libsodium's one-time initialisation, on first use by whichever part needs it first.
#pragma once

#include <sodium.h>

namespace slip {

// Whether libsodium is ready; initialises it on the first call (thread-safe).
inline bool sodium_ready() {
  static const bool ok = sodium_init() >= 0;
  return ok;
}

}  // namespace slip
