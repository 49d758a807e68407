// Configuration from flags plus an optional YAML file. Each role's CLI11
// subcommand gets a `-config FILE` option; the file is a flat YAML map whose
// keys are the role's flag names (without dashes), e.g.
//
//   dir: /srv/needlefs/vol
//   port: 8080
//   durability: group
//
// Flags given on the command line win over the file. Lists are YAML
// sequences; nested maps become "parent.child" keys.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"

namespace CLI {
class App;
}

namespace needlefs {

/// Adds `-config,--config` (a YAML file) to `app`.
void AddYamlConfigOption(CLI::App* app);

/// Parses YAML text into (key, values) pairs as the config option uses them.
/// Errors: kInvalidArgument with the YAML error's line and column.
struct ConfigEntry {
  std::string key;
  std::vector<std::string> values;
};
StatusOr<std::vector<ConfigEntry>> ParseYamlConfig(const std::string& text);

/// Rewrites SeaweedFS-style single-dash long flags ("-dir") into CLI11's
/// double-dash form ("--dir") in place. Single letters ("-f"), negative
/// numbers and "--" arguments are left alone.
void NormalizeSingleDashFlags(std::vector<std::string>* args);

}  // namespace needlefs
