// needlefs: one binary, one subcommand per role (ARCHITECTURE.md).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "common/config.h"

int main(int argc, char** argv) {
  CLI::App app{"NeedleFS: a distributed file and object store (NFSv3, FUSE, S3)"};
  app.require_subcommand(1);
  int exit_code = 0;
  needlefs::cli::AddServerCommand(app, &exit_code);
  needlefs::cli::AddMasterCommand(app, &exit_code);
  needlefs::cli::AddMountCommand(app, &exit_code);
  needlefs::cli::AddVolumeCommand(app, &exit_code);
  needlefs::cli::AddMetaCommand(app, &exit_code);
  needlefs::cli::AddBenchCommand(app, &exit_code);
  needlefs::cli::AddUploadCommand(app, &exit_code);
  needlefs::cli::AddAdminCommand(app, &exit_code);
  needlefs::cli::AddVersionCommand(app, &exit_code);

  std::vector<std::string> args(argv + 1, argv + argc);
  needlefs::NormalizeSingleDashFlags(&args);
  std::reverse(args.begin(), args.end());  // CLI11 parses a reversed vector
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return exit_code;
}
