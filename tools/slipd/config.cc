#include "config.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <toml++/toml.h>

namespace slip::slipd {

namespace {

constexpr SettingSpec kSettings[] = {
    {"listen", SettingType::kString},
    {"threads", SettingType::kInteger},
    {"idle", SettingType::kString},
    {"spin_us", SettingType::kInteger},
    {"max_frame_size", SettingType::kInteger},
    {"name", SettingType::kString},
    {"heartbeat_ms", SettingType::kInteger},
    {"stream_credit", SettingType::kInteger},
    {"connection_credit", SettingType::kInteger},
    {"chunk_size", SettingType::kInteger},
    {"handshake_timeout_ms", SettingType::kInteger},
    {"max_streams", SettingType::kInteger},
    {"max_message_size", SettingType::kInteger},
    {"tls_cert", SettingType::kString},
    {"tls_key", SettingType::kString},
    {"tls_ca", SettingType::kString},
    {"tls_require_client_cert", SettingType::kBool},
    {"so_sndbuf", SettingType::kInteger},
    {"so_rcvbuf", SettingType::kInteger},
    {"max_pending_bytes", SettingType::kInteger},
    {"backlog_msgs", SettingType::kInteger},
    {"backlog_bytes", SettingType::kInteger},
    {"fixed_spin", SettingType::kBool},
    {"bulk_high_water", SettingType::kInteger},
    {"send_high_water", SettingType::kInteger},
    {"interactive_hold_us", SettingType::kInteger},
    {"notsent_lowat", SettingType::kInteger},
    {"nats_listen", SettingType::kString},
    {"nats_token", SettingType::kString},
    {"nats_user", SettingType::kString},
    {"nats_pass", SettingType::kString},
    {"nats_ping_ms", SettingType::kInteger},
    {"nats_max_control_line", SettingType::kInteger},
    {"http_listen", SettingType::kString},
    {"udp_listen", SettingType::kString},
    {"udp_key", SettingType::kString},
    {"udp_retry", SettingType::kString},
    {"udp_retry_threshold", SettingType::kInteger},
    {"udp_fec", SettingType::kString},
    {"udp_fec_max_repair", SettingType::kInteger},
    {"udp_fec_loss_reduction", SettingType::kInteger},
    {"udp_offload", SettingType::kString},
    {"udp_mtu_probe", SettingType::kString},
    {"udp_max_datagram", SettingType::kInteger},
    {"udp_mtu_reprobe_s", SettingType::kInteger},
    {"metrics", SettingType::kString},
    {"trace_file", SettingType::kString},
    {"max_payload", SettingType::kInteger},
    {"max_subscriptions", SettingType::kInteger},
    {"response_ttl_ms", SettingType::kInteger},
    {"max_connections", SettingType::kInteger},
    {"max_connections_per_ip", SettingType::kInteger},
    {"auth_threads", SettingType::kInteger},
    {"auth_queue", SettingType::kInteger},
    {"drain_ms", SettingType::kInteger},
    {"log_level", SettingType::kString},
    {"ready_file", SettingType::kString},
    {"data_dir", SettingType::kString},
};

std::string_view type_name(SettingType t) {
  switch (t) {
    case SettingType::kString: return "a string";
    case SettingType::kInteger: return "an integer";
    case SettingType::kBool: return "true or false";
  }
  return "?";
}

std::string_view node_type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::array: return "an array";
    case toml::node_type::table: return "a table";
    default: return "a date or time";
  }
}

class Parser {
 public:
  explicit Parser(std::string_view source) : source_(source) {}

  Status error(const toml::source_region& where, const std::string& what) const {
    return invalid_argument(source_ + ":" + std::to_string(where.begin.line) + ": " + what);
  }

  Status wrong_type(const toml::node& n, const std::string& key, std::string_view want) const {
    return error(n.source(), "'" + key + "' must be " + std::string(want) + ", not " + std::string(node_type_name(n)));
  }

  Status setting(const std::string& key, const toml::node& n, ConfigFile& out) const {
    const SettingSpec* spec = nullptr;
    for (const SettingSpec& s : kSettings) {
      if (s.key == key) spec = &s;
    }
    if (spec == nullptr) return error(n.source(), "unknown key '" + key + "'");
    ConfigSetting c{key, "", static_cast<int>(n.source().begin.line)};
    switch (spec->type) {
      case SettingType::kString:
        if (!n.is_string()) return wrong_type(n, key, type_name(spec->type));
        c.value = n.as_string()->get();
        break;
      case SettingType::kInteger:
        if (!n.is_integer()) return wrong_type(n, key, type_name(spec->type));
        if (n.as_integer()->get() < 0) return error(n.source(), "'" + key + "' must not be negative");
        c.value = std::to_string(n.as_integer()->get());
        break;
      case SettingType::kBool:
        if (!n.is_boolean()) return wrong_type(n, key, type_name(spec->type));
        c.value = n.as_boolean()->get() ? "true" : "false";
        break;
    }
    out.settings.push_back(std::move(c));
    return Status();
  }

  Status string_list(const toml::node& n, const std::string& key, std::vector<std::string>& out) const {
    const toml::array* a = n.as_array();
    if (a == nullptr) return wrong_type(n, key, "an array of subject patterns");
    for (const toml::node& e : *a) {
      if (!e.is_string()) return wrong_type(e, key + " entry", "a string");
      out.push_back(e.as_string()->get());
    }
    return Status();
  }

  Status rules(const toml::node& n, const std::string& key, broker::SubjectRules& out) const {
    const toml::table* t = n.as_table();
    if (t == nullptr) return wrong_type(n, key, "a table with 'allow' and 'deny'");
    for (auto&& [k, v] : *t) {
      const std::string name(k.str());
      if (name == "allow") {
        SLIP_TRY(string_list(v, key + ".allow", out.allow));
      } else if (name == "deny") {
        SLIP_TRY(string_list(v, key + ".deny", out.deny));
      } else {
        return error(v.source(), "unknown key '" + key + "." + name + "' (expected allow or deny)");
      }
    }
    return Status();
  }

  Status user(const toml::node& n, std::size_t index, ConfigFile& out) const {
    const std::string where = "users[" + std::to_string(index) + "]";
    const toml::table* t = n.as_table();
    if (t == nullptr) return wrong_type(n, where, "a table");
    broker::UserConfig u;
    for (auto&& [k, v] : *t) {
      const std::string name(k.str());
      const std::string key = where + "." + name;
      if (name == "name" || name == "token" || name == "password_hash") {
        if (!v.is_string()) return wrong_type(v, key, "a string");
        std::string s(v.as_string()->get());
        if (s.empty()) return error(v.source(), "'" + key + "' must not be empty");
        (name == "name" ? u.name : name == "token" ? u.token : u.password_hash) = std::move(s);
      } else if (name == "allow_responses") {
        if (!v.is_boolean()) return wrong_type(v, key, "true or false");
        u.permissions.allow_responses = v.as_boolean()->get();
      } else if (name == "publish") {
        SLIP_TRY(rules(v, key, u.permissions.publish));
      } else if (name == "subscribe") {
        SLIP_TRY(rules(v, key, u.permissions.subscribe));
      } else {
        return error(v.source(), "unknown key '" + key + "'");
      }
    }
    if (u.name.empty()) return error(n.source(), where + ": 'name' is required");
    if (u.token.empty() == u.password_hash.empty()) {
      return error(n.source(), where + " (\"" + u.name + "\"): needs exactly one of 'token' and 'password_hash'");
    }
    if (Status s = u.permissions.validate(); !s.is_ok()) {
      return error(n.source(), where + " (\"" + u.name + "\"): " + std::string(s.message()));
    }
    out.users.push_back(std::move(u));
    return Status();
  }

 private:
  std::string source_;
};

}  // namespace

std::span<const SettingSpec> setting_specs() { return kSettings; }

Result<ConfigFile> parse_config(std::string_view text, std::string_view source) {
  Parser p(source);
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    return p.error(e.source(), std::string(e.description()));
  }
  ConfigFile out;
  for (auto&& [k, v] : root) {
    const std::string key(k.str());
    if (key == "users") {
      const toml::array* users = v.as_array();
      if (users == nullptr) return p.wrong_type(v, key, "an array of tables ([[users]])");
      for (std::size_t i = 0; i < users->size(); ++i) SLIP_TRY(p.user(*users->get(i), i, out));
      continue;
    }
    SLIP_TRY(p.setting(key, v, out));
  }
  // The table iterates in key order; report settings in file order.
  std::stable_sort(out.settings.begin(), out.settings.end(),
                   [](const ConfigSetting& a, const ConfigSetting& b) { return a.line < b.line; });
  std::vector<std::string> names;
  for (const broker::UserConfig& u : out.users) {
    for (const std::string& n : names) {
      if (n == u.name) return invalid_argument(std::string(source) + ": user \"" + u.name + "\" appears twice");
    }
    names.push_back(u.name);
  }
  return out;
}

Result<ConfigFile> load_config(const std::string& path) {
  std::ifstream f(path);
  if (!f) return not_found("cannot read config file " + path);
  std::stringstream ss;
  ss << f.rdbuf();
  return parse_config(ss.str(), path);
}

}  // namespace slip::slipd
