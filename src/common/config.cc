#include "common/config.h"

#include <yaml-cpp/yaml.h>

#include <CLI/CLI.hpp>
#include <cctype>
#include <sstream>

namespace needlefs {
namespace {

void Flatten(const YAML::Node& node, const std::string& prefix, std::vector<ConfigEntry>* out) {
  if (node.IsMap()) {
    for (const auto& kv : node) {
      std::string key = kv.first.as<std::string>();
      Flatten(kv.second, prefix.empty() ? key : prefix + "." + key, out);
    }
  } else if (node.IsSequence()) {
    ConfigEntry e{prefix, {}};
    for (const auto& item : node) e.values.push_back(item.as<std::string>());
    out->push_back(std::move(e));
  } else if (node.IsScalar()) {
    out->push_back({prefix, {node.as<std::string>()}});
  } else if (node.IsNull() && !prefix.empty()) {
    out->push_back({prefix, {}});
  }
}

/// CLI11 config formatter reading YAML. Throws CLI::ParseError (caught by
/// CLI11's parse, which our main turns into an exit code) on bad YAML.
class YamlConfig : public CLI::Config {
 public:
  std::string to_config(const CLI::App*, bool, bool, std::string) const override { return ""; }
  std::vector<CLI::ConfigItem> from_config(std::istream& input) const override {
    std::stringstream ss;
    ss << input.rdbuf();
    auto entries = ParseYamlConfig(ss.str());
    if (!entries.ok()) throw CLI::ConversionError(std::string(entries.status().message()));
    std::vector<CLI::ConfigItem> items;
    for (auto& e : *entries) {
      CLI::ConfigItem item;
      item.name = e.key;
      item.inputs = e.values;
      if (item.inputs.empty()) item.inputs.push_back("true");
      items.push_back(std::move(item));
    }
    return items;
  }
};

}  // namespace

StatusOr<std::vector<ConfigEntry>> ParseYamlConfig(const std::string& text) {
  try {
    YAML::Node root = YAML::Load(text);
    std::vector<ConfigEntry> out;
    if (root.IsNull()) return out;
    if (!root.IsMap()) return Status::InvalidArgument("config: top level must be a YAML map");
    Flatten(root, "", &out);
    return out;
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument(std::string("config: ") + e.what());
  }
}

void AddYamlConfigOption(CLI::App* app) {
  app->set_config("--config", "", "YAML configuration file (flags override it)", false);
  app->config_formatter(std::make_shared<YamlConfig>());
}

void NormalizeSingleDashFlags(std::vector<std::string>* args) {
  for (auto& a : *args) {
    if (a.size() > 2 && a[0] == '-' && a[1] != '-' &&
        std::isalpha(static_cast<unsigned char>(a[1]))) {
      a.insert(a.begin(), '-');
    }
  }
}

}  // namespace needlefs
