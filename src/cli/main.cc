// needlefs: one binary, one subcommand per role (ARCHITECTURE.md).
#include <absl/synchronization/mutex.h>
#include <malloc.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "common/config.h"

int main(int argc, char** argv) {
  // Debian's Abseil is built with deadlock detection on, so every
  // absl::Mutex lock that gRPC takes also updated a global lock graph (3-5%
  // of meta's CPU under load, in GraphCycles). It only ever aborted a
  // process that would deadlock; ours do not rely on it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  // Write buffers and blobs are 1-4 MiB strings. Above glibc's mmap
  // threshold each one was a fresh mmap whose every page faulted in again
  // (14% of nfsd's CPU for a 1 MiB-write stream); from the heap they are
  // reused. The trim threshold keeps freed buffers for the next ones.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 128 << 20);
  CLI::App app{"NeedleFS: a distributed file and object store (NFSv3, FUSE, S3)"};
  app.require_subcommand(1);
  int exit_code = 0;
  needlefs::cli::AddServerCommand(app, &exit_code);
  needlefs::cli::AddMasterCommand(app, &exit_code);
  needlefs::cli::AddMountCommand(app, &exit_code);
  needlefs::cli::AddNfsdCommand(app, &exit_code);
  needlefs::cli::AddS3Command(app, &exit_code);
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
