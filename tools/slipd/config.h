// slipd's configuration file: TOML (toml++), one top-level key per command-line flag
// (`--max-frame-size` is `max_frame_size`), plus `[[users]]` entries. Flags given on the
// command line override the file. docs/slipd.example.toml lists every key.
//
//   listen = "0.0.0.0:7420"
//   max_connections_per_ip = 64
//
//   [[users]]
//   name = "bob"
//   password_hash = "$argon2id$..."      # slipd --hash-password
//   publish = { allow = ["orders.>"] }
//   subscribe = { allow = ["orders.>", "_INBOX.>"], deny = ["orders.secret"] }
//
// Unknown keys and values of the wrong type are errors naming the key and its line.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "broker/auth.h"
#include "slipstream/status.h"

namespace slip::slipd {

enum class SettingType { kString, kInteger, kBool };

// A top-level key slipd knows, and the type its value must have.
struct SettingSpec {
  std::string_view key;
  SettingType type;
};

// Every top-level setting key (besides `users`).
std::span<const SettingSpec> setting_specs();

// One setting from the file, with its value as command-line text ("8", "true", "0.0.0.0:7420").
struct ConfigSetting {
  std::string key;
  std::string value;
  int line = 0;
};

struct ConfigFile {
  std::vector<ConfigSetting> settings;  // in file order
  std::vector<broker::UserConfig> users;
};

// Parses a configuration. `source` names it in errors: "slipd.toml:7: unknown key 'treads'".
Result<ConfigFile> parse_config(std::string_view text, std::string_view source);
// Reads and parses a file.
Result<ConfigFile> load_config(const std::string& path);

}  // namespace slip::slipd
