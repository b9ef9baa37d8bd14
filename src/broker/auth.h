// Authentication and per-user permissions, shared by every protocol slipd speaks.
//
// Users come from the configuration: each has a name and either a bearer token or a password
// hash (libsodium crypto_pwhash_str, Argon2id; `slipd --hash-password` makes one). The
// configuration never holds a plain password. With no users configured, no credentials are
// required and everyone may do everything (the default, for loopback development); with at
// least one user, every connection must authenticate.
//
// A gateway authenticates a connection with Authenticator::authenticate(Credentials), whatever
// its protocol calls the fields (native HELLO: AUTH_TOKEN, AUTH_USER, AUTH_PASSWORD; NATS
// CONNECT: auth_token, user, pass), and attaches the Identity's permissions to the connection's
// BrokerClient (BrokerClient::set_identity). After a reload (SIGHUP), each gateway re-resolves
// its connections with Authenticator::lookup(name): a user that is gone is disconnected, the
// others get their new permissions.
//
// Permission rules (docs/protocol.md, "Permissions"):
//   - Publish and subscribe each have an allow list and a deny list of subject patterns.
//   - Deny wins. An empty allow list allows every subject.
//   - Publish to subject S is allowed when no deny pattern matches S and (allow is empty or an
//     allow pattern matches S).
//   - Subscribe to pattern P is allowed when no deny pattern covers P and (allow is empty or an
//     allow pattern covers P). "A covers P" means every subject P matches, A matches too: allow
//     "orders.>" permits SUB "orders.*" and "orders.eu.>", not SUB ">" or "orders".
//     A subscription that a deny pattern only partly overlaps (SUB "orders.>" with deny
//     "orders.secret") is allowed, and messages on denied subjects are not delivered to it.
//   - Responses (allow_responses, on by default): a user may publish once to the reply subject
//     of each message delivered to it, even if the publish rules would deny it, so responders
//     work without a publish permission on "_INBOX.>"; an unused permission expires after
//     BrokerOptions::response_ttl (responses.h). Requesters need subscribe permission for their
//     inbox ("_INBOX.>"), since replies arrive through a subscription.
//
// Thread safety: Authenticator is safe from any thread; reload() swaps the user table at once.
// Permissions and Identity are immutable once built and shared by pointer.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "slipstream/status.h"

namespace slip::broker {

// Allow and deny patterns for one direction (publish or subscribe).
struct SubjectRules {
  std::vector<std::string> allow;  // empty: everything not denied
  std::vector<std::string> deny;

  bool restricted() const { return !allow.empty() || !deny.empty(); }
};

struct Permissions {
  SubjectRules publish;
  SubjectRules subscribe;
  bool allow_responses = true;

  // True when `subject` (a valid publish subject) may be published to.
  bool may_publish(std::string_view subject) const;
  // True when `pattern` (a valid subscription pattern) may be subscribed to.
  bool may_subscribe(std::string_view pattern) const;
  // False when a message on `subject` must not reach a subscription of this user (a subscribe
  // deny pattern matches it).
  bool may_receive(std::string_view subject) const;
  // Every pattern is a valid subscription pattern; names the first bad one.
  Status validate() const;
};

// True when every subject `inner` matches is also matched by `outer`. Both must be valid
// subscription patterns (a literal subject is one).
bool pattern_covers(std::string_view outer, std::string_view inner);

// One configured user. Exactly one of token and password_hash is set.
struct UserConfig {
  std::string name;           // unique; for token users, the name used in logs and errors
  std::string token;          // bearer token (compared in constant time)
  std::string password_hash;  // crypto_pwhash_str output ("$argon2id$...")
  Permissions permissions;
};

// Who a connection authenticated as. `permissions` null: everything is allowed.
struct Identity {
  std::string user;  // empty when authentication is off
  std::shared_ptr<const Permissions> permissions;
};

// What a client presented. Views are valid for the call.
struct Credentials {
  std::string_view token;
  std::string_view user;
  std::string_view password;
};

// Makes a password hash for the configuration (Argon2id, libsodium's interactive limits).
Result<std::string> hash_password(std::string_view password);

class Authenticator {
 public:
  // No users: authentication off.
  Authenticator();
  ~Authenticator();

  // Checks the users (unique names, one credential each, hashes libsodium can read, valid
  // patterns) and makes them the current table. On error nothing changes.
  Status reload(std::vector<UserConfig> users);

  // True when at least one user is configured.
  bool required() const;
  std::size_t user_count() const;
  // Bumped by every successful reload.
  std::uint64_t generation() const;

  // The identity for these credentials. With authentication off, always the anonymous identity
  // (null permissions). Otherwise a token is tried first, then user + password. Failure is
  // kUnauthenticated with a message fit for the client and the log: it names the user, never
  // the password or token, and does not say whether the user exists. Password verification is
  // deliberately slow (Argon2id, tens of milliseconds); a successful one is remembered (as a
  // keyed hash, one per user) so that reconnecting clients do not pay it again. Event loops use
  // authenticate_quickly() and hand the rest to an AuthPool (auth_pool.h).
  Result<Identity> authenticate(const Credentials& c) const;

  // The cheap part of authenticate(): its answer when no password has to be verified
  // (authentication off, a token, no user name, a password remembered from an earlier success),
  // or nullopt when verify_password() has to decide. Fit for an event loop.
  std::optional<Result<Identity>> authenticate_quickly(const Credentials& c) const;
  // The slow part: user + password against the user's Argon2id hash (an unknown user costs the
  // same, against a dummy hash). Answers as authenticate(). Run it away from the event loops.
  Result<Identity> verify_password(std::string_view user, std::string_view password) const;

  // The current identity of a named user, or nullopt when the user is not configured (any
  // more). With authentication off, the anonymous identity.
  std::optional<Identity> lookup(std::string_view user) const;

 private:
  struct Table;
  std::shared_ptr<const Table> table() const;

  mutable std::mutex mu_;
  std::shared_ptr<const Table> table_;  // guarded by mu_
  std::uint64_t generation_ = 0;        // guarded by mu_
};

}  // namespace slip::broker
