#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli/commands.h"

namespace needlefs::cli {

void AddVersionCommand(CLI::App& app, int* exit_code) {
  auto* cmd = app.add_subcommand("version", "Print the NeedleFS version");
  cmd->callback([exit_code] {
    std::printf("needlefs %s (C++%ld, %s)\n", NEEDLEFS_VERSION, __cplusplus / 100 % 100,
#ifdef NDEBUG
                "release"
#else
                "debug"
#endif
    );
    *exit_code = 0;
  });
}

}  // namespace needlefs::cli
