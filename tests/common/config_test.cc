#include "common/config.h"

#include <gtest/gtest.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>

namespace needlefs {
namespace {

TEST(ConfigTest, ParsesFlatAndNestedYaml) {
  auto e = ParseYamlConfig("dir: /srv/v\nport: 8081\nlog:\n  level: debug\nids: [1, 2]\n");
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  ASSERT_EQ(e->size(), 4u);
  EXPECT_EQ((*e)[0].key, "dir");
  EXPECT_EQ((*e)[0].values[0], "/srv/v");
  EXPECT_EQ((*e)[2].key, "log.level");
  EXPECT_EQ((*e)[3].values.size(), 2u);
}

TEST(ConfigTest, BadYamlIsInvalidArgument) {
  auto e = ParseYamlConfig("dir: [unclosed\n");
  EXPECT_EQ(e.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseYamlConfig("- a\n- b\n").status().code(), StatusCode::kInvalidArgument);
}

TEST(ConfigTest, FlagsOverrideYamlFile) {
  std::string path = ::testing::TempDir() + "/needlefs_config_test.yaml";
  {
    std::ofstream f(path);
    f << "dir: /from/file\nport: 9000\n";
  }
  CLI::App app;
  std::string dir;
  int port = 0;
  app.add_option("--dir", dir);
  app.add_option("--port", port);
  AddYamlConfigOption(&app);
  std::vector<std::string> args = {"-config", path, "-port", "7000"};
  NormalizeSingleDashFlags(&args);
  std::reverse(args.begin(), args.end());
  app.parse(args);
  EXPECT_EQ(dir, "/from/file");
  EXPECT_EQ(port, 7000);
  std::remove(path.c_str());
}

TEST(ConfigTest, NormalizeSingleDashFlags) {
  std::vector<std::string> a = {"-dir", "x", "-f", "--port", "-5", "-n"};
  NormalizeSingleDashFlags(&a);
  EXPECT_EQ(a, (std::vector<std::string>{"--dir", "x", "-f", "--port", "-5", "-n"}));
}

}  // namespace
}  // namespace needlefs
