// Helpers for integration tests: child processes (the daemons under test),
// temporary directories, shell commands, free ports, and starting a real
// `needlefs volume` server.
//
// Thread-safety: none of these classes is thread-safe; use each object from
// one thread. Start child processes from the test's main thread (see
// ChildProcess::Start about PR_SET_PDEATHSIG).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "test_util.h"

namespace needlefs::integration {

/// A child process with stdout on a pipe (read by WaitForLine) and stderr
/// appended to a log file. The destructor SIGKILLs and reaps a child that is
/// still running, so a failing test never leaks a daemon.
class ChildProcess {
 public:
  /// `argv[0]` is the path of the executable (no PATH lookup). stderr goes to
  /// "<log_dir>/<basename of argv[0]>.<n>.log"; see log_path().
  ChildProcess(std::vector<std::string> argv, std::string log_dir);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  /// Forks and execs. The child gets PR_SET_PDEATHSIG(SIGKILL): it dies when
  /// the thread that called Start() exits. Returns false (with *error set
  /// when non-null) when the log file, pipe, fork or exec fails.
  /// REQUIRES: Start() was not called before.
  bool Start(std::string* error = nullptr);

  /// Reads stdout lines until one starts with `prefix` and returns it
  /// (without the newline). Earlier lines are discarded. Returns nullopt on
  /// timeout or when stdout reaches EOF first (the child exited).
  std::optional<std::string> WaitForLine(const std::string& prefix, int timeout_ms);

  /// Sends `sig`. Returns false when the child is not running (never started
  /// or already reaped) or kill(2) failed.
  bool Kill(int sig);

  /// Blocks until the child exits and returns its exit code, or 128 + signal
  /// number when a signal ended it; -1 when it was never started. Repeated
  /// calls return the same value.
  int Wait();

  /// Like Wait(), but gives up after `timeout_ms` (nullopt; the child keeps
  /// running).
  std::optional<int> WaitFor(int timeout_ms);

  /// True from a successful Start() until the child is reaped.
  bool running() const { return pid_ > 0 && !reaped_; }
  pid_t pid() const { return pid_; }
  const std::string& log_path() const { return log_path_; }
  /// The last `max_bytes` of the stderr log ("" when unreadable).
  std::string LogTail(size_t max_bytes = 4096) const;

 private:
  static int DecodeWaitStatus(int status);

  std::vector<std::string> argv_;
  std::string log_path_;
  pid_t pid_ = -1;
  bool reaped_ = false;
  int exit_status_ = -1;
  int stdout_fd_ = -1;  // read end of the child's stdout; -1 after EOF
  std::string buffer_;  // stdout bytes not yet returned as lines
};

/// Runs `shell_cmd` with /bin/sh (popen) and stores its stdout in *out (when
/// non-null). Returns the exit code, 128 + signal number when a signal ended
/// it, or -1 when the shell could not be started.
int RunCommand(const std::string& shell_cmd, std::string* out);

/// RunCommand with stderr joined to stdout (`(cmd) 2>&1`), so a failing
/// command's message lands in *out for the assertion.
int Sh(const std::string& cmd, std::string* out = nullptr);

/// Quotes `s` for /bin/sh (single quotes).
std::string ShellQuote(const std::string& s);

/// A TCP port that was free on 127.0.0.1 a moment ago, or 0 on failure.
/// Racy by nature: prefer "-port 0" and the port printed by the server.
uint16_t PickFreePort();

/// Path of the `needlefs` binary: $NEEDLEFS_BINARY when set, else the
/// NEEDLEFS_BINARY macro the build defines.
std::string NeedlefsBinary();

/// A running `needlefs` daemon and the ports of its ready line
/// ("... http=IP:PORT grpc=IP:PORT ..."; 0 for a port the line does not name).
struct DaemonProcess {
  std::unique_ptr<ChildProcess> process;
  uint16_t http_port = 0;
  uint16_t grpc_port = 0;
};
/// A running `needlefs volume`.
using VolumeServerProcess = DaemonProcess;

/// Starts `needlefs <args...>` with its stderr log in `log_dir` and waits
/// (up to `timeout_ms`) for a stdout line starting with `ready_prefix`.
/// Returns nullopt, with *error set when non-null (including the log tail),
/// when it does not come up; the process is then killed.
std::optional<DaemonProcess> StartDaemon(const std::vector<std::string>& args,
                                         const std::string& ready_prefix,
                                         const std::string& log_dir, std::string* error = nullptr,
                                         int timeout_ms = 10'000);

/// Starts `needlefs volume -dir <data_dir> -port 0 -grpcPort 0 -allocate 2
/// -durability group <extra_args...>` with its stderr log in `log_dir`, and
/// waits (up to `timeout_ms`) for the "needlefs volume ready" line. Returns
/// nullopt, with *error set when non-null (including the log tail), when the
/// server does not come up; the process is then killed.
std::optional<VolumeServerProcess> StartVolumeServer(
    const std::string& data_dir, const std::string& log_dir,
    const std::vector<std::string>& extra_args = {}, std::string* error = nullptr,
    int timeout_ms = 10'000);

}  // namespace needlefs::integration
