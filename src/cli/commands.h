// The `needlefs` subcommands. Each Add* registers one subcommand on the app;
// the callback runs it and stores the process exit code in *exit_code.
// src/cli only maps flags to options structs and calls the modules.
#pragma once

namespace CLI {
class App;
}

namespace needlefs::cli {

void AddVolumeCommand(CLI::App& app, int* exit_code);
void AddBenchCommand(CLI::App& app, int* exit_code);
void AddUploadCommand(CLI::App& app, int* exit_code);
void AddAdminCommand(CLI::App& app, int* exit_code);
void AddMetaCommand(CLI::App& app, int* exit_code);
void AddMasterCommand(CLI::App& app, int* exit_code);
void AddMountCommand(CLI::App& app, int* exit_code);
void AddNfsdCommand(CLI::App& app, int* exit_code);
void AddS3Command(CLI::App& app, int* exit_code);
/// `admin s3.user.*` and `admin s3.bucket.*` under `admin`.
void AddS3AdminCommands(CLI::App* admin, int* exit_code);
void AddServerCommand(CLI::App& app, int* exit_code);
/// `bench meta`, a subcommand of `bench`.
void AddBenchMetaCommand(CLI::App& bench, int* exit_code);
void AddVersionCommand(CLI::App& app, int* exit_code);

/// Blocks until SIGINT or SIGTERM arrives; returns the signal number.
/// REQUIRES: BlockTerminationSignals() was called before any thread started.
int WaitForTerminationSignal();
/// Blocks SIGINT/SIGTERM in the calling thread (and threads it creates).
void BlockTerminationSignals();

}  // namespace needlefs::cli
