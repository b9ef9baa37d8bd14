// A server's long-term X25519 key on disk, and public keys as text for clients to pin.
//
// Key file: one line, the 32-byte private key as 64 lowercase hex digits, then "\n"; lines
// starting with '#' and blank lines are ignored on load. The file is created with mode 0600
// and never overwritten; loading refuses a file that its group or others can read or write
// (like ssh does for identity files), because a leaked server key lets anyone impersonate the
// server to every client that pinned it.
//
// Public key text: 64 lowercase hex digits. Clients pin it (`--server-key HEX`).
#pragma once

#include <string>
#include <string_view>

#include "slipstream/status.h"
#include "transport/udp/noise.h"

namespace slip::transport::udp {

// "0a1b..." (64 characters).
std::string format_public_key(const PublicKey& key);
// Accepts exactly 64 hex digits (either case), surrounding whitespace ignored.
Result<PublicKey> parse_public_key(std::string_view text);

// Writes `key`'s private half to a new file at `path` (mode 0600). kAlreadyExists when the
// file exists, kPermissionDenied or kInternal for other I/O failures.
Status save_private_key(const std::string& path, const KeyPair& key);
// Reads a key file written by save_private_key. kNotFound, kPermissionDenied (also when the
// mode lets group or others in), kInvalidArgument for a malformed file.
Result<KeyPair> load_private_key(const std::string& path);
// Parses the text of a key file (what load_private_key does after reading it).
Result<KeyPair> parse_private_key_file(std::string_view text);

}  // namespace slip::transport::udp
