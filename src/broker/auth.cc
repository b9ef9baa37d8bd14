#include "broker/auth.h"

#include <sodium.h>

#include <array>
#include <unordered_map>
#include <unordered_set>

#include "broker/subject.h"
#include "core/sodium.h"

namespace slip::broker {

namespace {

using Digest = std::array<unsigned char, crypto_generichash_BYTES>;

// Splits at '.'; a pattern is at most a few dozen tokens, so a small vector is fine.
std::vector<std::string_view> tokens(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while (true) {
    std::size_t dot = s.find('.', start);
    if (dot == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, dot - start));
    start = dot + 1;
  }
}

bool any_matches(const std::vector<std::string>& patterns, std::string_view subject) {
  for (const std::string& p : patterns) {
    if (subject_matches(p, subject)) return true;
  }
  return false;
}

bool any_covers(const std::vector<std::string>& patterns, std::string_view pattern) {
  for (const std::string& p : patterns) {
    if (pattern_covers(p, pattern)) return true;
  }
  return false;
}

Digest digest_of(std::string_view a, std::string_view b = {}, const unsigned char* key = nullptr,
                 std::size_t key_len = 0) {
  Digest d{};
  crypto_generichash_state st;
  crypto_generichash_init(&st, key, key_len, d.size());
  const std::uint64_t alen = a.size();  // length-prefixed, so (a, b) pairs cannot collide
  crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(&alen), sizeof(alen));
  crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(a.data()), a.size());
  crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(b.data()), b.size());
  crypto_generichash_final(&st, d.data(), d.size());
  return d;
}

// A random key per process for the remembered-password digests.
const std::array<unsigned char, crypto_generichash_KEYBYTES>& cache_key() {
  static const auto key = [] {
    std::array<unsigned char, crypto_generichash_KEYBYTES> k{};
    sodium_ready();
    randombytes_buf(k.data(), k.size());
    return k;
  }();
  return key;
}

// Verifying against this when the user does not exist keeps the timing of "no such user" and
// "wrong password" alike.
const std::string& dummy_hash() {
  static const std::string h = [] {
    Result<std::string> r = hash_password("slipstream-dummy-password");
    return r.is_ok() ? *r : std::string();
  }();
  return h;
}

Status unauthorized(std::string_view user) {
  if (user.empty()) return unauthenticated("authentication failed: no valid credentials");
  return unauthenticated("authentication failed for user \"" + std::string(user) + "\"");
}

}  // namespace

// ---- Permissions ---------------------------------------------------------------------------

bool pattern_covers(std::string_view outer, std::string_view inner) {
  const std::vector<std::string_view> a = tokens(outer);
  const std::vector<std::string_view> b = tokens(inner);
  for (std::size_t i = 0;; ++i) {
    if (i == a.size()) return i == b.size();
    if (a[i] == ">") return i < b.size();  // `>` takes one or more tokens, whatever they are
    if (i == b.size()) return false;
    if (b[i] == ">") return false;  // only `>` covers `>`
    if (b[i] == "*") {
      if (a[i] != "*") return false;
      continue;
    }
    if (a[i] != "*" && a[i] != b[i]) return false;
  }
}

bool Permissions::may_publish(std::string_view subject) const {
  if (any_matches(publish.deny, subject)) return false;
  return publish.allow.empty() || any_matches(publish.allow, subject);
}

bool Permissions::may_subscribe(std::string_view pattern) const {
  if (any_covers(subscribe.deny, pattern)) return false;
  return subscribe.allow.empty() || any_covers(subscribe.allow, pattern);
}

bool Permissions::may_receive(std::string_view subject) const { return !any_matches(subscribe.deny, subject); }

Status Permissions::validate() const {
  auto check = [](const std::vector<std::string>& list, std::string_view what) -> Status {
    for (const std::string& p : list) {
      if (Status s = validate_subscription_subject(p); !s.is_ok()) {
        return invalid_argument(std::string(what) + ": " + std::string(s.message()));
      }
    }
    return Status();
  };
  SLIP_TRY(check(publish.allow, "publish.allow"));
  SLIP_TRY(check(publish.deny, "publish.deny"));
  SLIP_TRY(check(subscribe.allow, "subscribe.allow"));
  SLIP_TRY(check(subscribe.deny, "subscribe.deny"));
  return Status();
}

// ---- Passwords -----------------------------------------------------------------------------

Result<std::string> hash_password(std::string_view password) {
  if (!sodium_ready()) return internal_error("libsodium failed to initialise");
  char out[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str(out, password.data(), password.size(), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                        crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0) {
    return overloaded("password hashing ran out of memory");
  }
  return std::string(out);
}

// ---- Authenticator -------------------------------------------------------------------------

struct Authenticator::Table {
  struct User {
    std::string name;
    bool has_token = false;
    Digest token_digest{};
    std::string password_hash;
    std::shared_ptr<const Permissions> permissions;
  };
  std::vector<User> users;
  std::unordered_map<std::string, std::size_t> by_name;
  // Users whose password verified once: user -> keyed digest of (hash, password).
  mutable std::mutex verified_mu;
  mutable std::unordered_map<std::string, Digest> verified;  // guarded by verified_mu
};

Authenticator::Authenticator() : table_(std::make_shared<Table>()) { sodium_ready(); }

Authenticator::~Authenticator() = default;

std::shared_ptr<const Authenticator::Table> Authenticator::table() const {
  std::lock_guard<std::mutex> g(mu_);
  return table_;
}

Status Authenticator::reload(std::vector<UserConfig> users) {
  if (!sodium_ready()) return internal_error("libsodium failed to initialise");
  auto t = std::make_shared<Table>();
  for (std::size_t i = 0; i < users.size(); ++i) {
    UserConfig& u = users[i];
    const std::string where = "user " + std::to_string(i + 1) + (u.name.empty() ? "" : " \"" + u.name + "\"");
    if (u.name.empty()) return invalid_argument(where + ": no name");
    if (u.token.empty() == u.password_hash.empty()) {
      return invalid_argument(where + ": needs exactly one of token and password_hash");
    }
    if (!u.password_hash.empty()) {
      // crypto_pwhash_str_needs_rehash fails (-1) on a string it cannot parse.
      if (crypto_pwhash_str_needs_rehash(u.password_hash.c_str(), crypto_pwhash_OPSLIMIT_MIN,
                                         crypto_pwhash_MEMLIMIT_MIN) == -1) {
        return invalid_argument(where + ": password_hash is not a libsodium password hash (make one with slipd --hash-password)");
      }
    }
    if (Status s = u.permissions.validate(); !s.is_ok()) return invalid_argument(where + ": " + std::string(s.message()));
    if (!t->by_name.emplace(u.name, t->users.size()).second) return invalid_argument(where + ": name is used twice");
    Table::User row;
    row.name = u.name;
    row.has_token = !u.token.empty();
    if (row.has_token) row.token_digest = digest_of(u.token);
    row.password_hash = std::move(u.password_hash);
    row.permissions = std::make_shared<const Permissions>(std::move(u.permissions));
    t->users.push_back(std::move(row));
  }
  std::lock_guard<std::mutex> g(mu_);
  table_ = std::move(t);
  ++generation_;
  return Status();
}

bool Authenticator::required() const { return !table()->users.empty(); }

std::size_t Authenticator::user_count() const { return table()->users.size(); }

std::uint64_t Authenticator::generation() const {
  std::lock_guard<std::mutex> g(mu_);
  return generation_;
}

Result<Identity> Authenticator::authenticate(const Credentials& c) const {
  if (std::optional<Result<Identity>> quick = authenticate_quickly(c)) return std::move(*quick);
  return verify_password(c.user, c.password);
}

std::optional<Result<Identity>> Authenticator::authenticate_quickly(const Credentials& c) const {
  std::shared_ptr<const Table> t = table();
  if (t->users.empty()) return Identity{};
  if (!c.token.empty()) {
    // Every token user is compared, in constant time, so timing says nothing about which
    // (or whether one) matched.
    const Digest presented = digest_of(c.token);
    const Table::User* found = nullptr;
    for (const Table::User& u : t->users) {
      if (u.has_token && sodium_memcmp(u.token_digest.data(), presented.data(), presented.size()) == 0) found = &u;
    }
    if (found) return Identity{found->name, found->permissions};
    return unauthorized(c.user);
  }
  if (c.user.empty()) return unauthorized({});
  auto it = t->by_name.find(std::string(c.user));
  const Table::User* u = it == t->by_name.end() ? nullptr : &t->users[it->second];
  if (u == nullptr || u->password_hash.empty()) return std::nullopt;  // verified against the dummy hash
  const auto& key = cache_key();
  const Digest remembered = digest_of(u->password_hash, c.password, key.data(), key.size());
  std::lock_guard<std::mutex> g(t->verified_mu);
  auto v = t->verified.find(u->name);
  if (v != t->verified.end() && sodium_memcmp(v->second.data(), remembered.data(), remembered.size()) == 0) {
    return Identity{u->name, u->permissions};
  }
  return std::nullopt;
}

Result<Identity> Authenticator::verify_password(std::string_view user, std::string_view password) const {
  std::shared_ptr<const Table> t = table();
  if (t->users.empty()) return Identity{};
  if (user.empty()) return unauthorized({});
  auto it = t->by_name.find(std::string(user));
  const Table::User* u = it == t->by_name.end() ? nullptr : &t->users[it->second];
  if (u == nullptr || u->password_hash.empty()) {
    const std::string& dummy = dummy_hash();
    if (!dummy.empty()) {
      [[maybe_unused]] const int ignored = crypto_pwhash_str_verify(dummy.c_str(), password.data(), password.size());
    }
    return unauthorized(user);
  }
  if (crypto_pwhash_str_verify(u->password_hash.c_str(), password.data(), password.size()) != 0) {
    return unauthorized(user);
  }
  const auto& key = cache_key();
  const Digest remembered = digest_of(u->password_hash, password, key.data(), key.size());
  {
    std::lock_guard<std::mutex> g(t->verified_mu);
    t->verified[u->name] = remembered;
  }
  return Identity{u->name, u->permissions};
}

std::optional<Identity> Authenticator::lookup(std::string_view user) const {
  std::shared_ptr<const Table> t = table();
  if (t->users.empty()) return Identity{};
  auto it = t->by_name.find(std::string(user));
  if (it == t->by_name.end()) return std::nullopt;
  const Table::User& u = t->users[it->second];
  return Identity{u.name, u.permissions};
}

}  // namespace slip::broker
