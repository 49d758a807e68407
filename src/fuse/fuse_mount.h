// The FUSE front end: the namespace (through MetaClient) and file data
// (through FileClient) served to the kernel with the libfuse3 low-level API
// on a multi-threaded loop. Inode numbers are the namespace's (the mounted
// subdirectory is FUSE's root, 1); errors are the namespace's errnos
// unchanged.
//
// Caching: entry and attribute timeouts as options; the kernel page cache
// with close-to-open consistency (kept across opens only while size and
// mtime are unchanged); meta's change stream invalidates the kernel's
// entries, attributes and pages at once when another client changes a file.
// flock(2) and POSIX record locks are left to the kernel, which makes them
// exact among the processes of one mount (not across mounts).
//
// The libfuse headers stay in fuse_mount.cc.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "client/file_client.h"
#include "common/status.h"

namespace needlefs {

struct FuseMountOptions {
  std::string meta;    ///< meta's gRPC "host:port"
  std::string master;  ///< the master's HTTP "host:port"
  std::string mountpoint;
  std::string subdir = "/";  ///< namespace path served as the mount's root
  bool read_only = false;
  /// mount -o sync: every change is durable on meta's disk when its system
  /// call returns, and close(2) returns after the data's commit is synced.
  /// Default (async), as a local file system: changes are visible at once
  /// and survive kill -9 of any one process; fsync(2) on a file or
  /// directory makes them survive a machine crash.
  bool sync = false;
  /// Answer lookups from whole directory listings (client/dir_cache.h);
  /// -o nodircache turns it off (every lookup asks meta).
  bool dir_cache = true;
  /// Let users other than the one who mounted use the mount (-o
  /// allow_other). Unset: on when mounted by root, so the mount serves every
  /// user with every permission rule enforced (as JuiceFS does); off for a
  /// user's own mount (fusermount3 allows it only with user_allow_other).
  std::optional<bool> allow_other;
  /// Let the kernel check mode bits too (-o default_permissions), on cached
  /// attributes: it enforces search permission on every directory of a
  /// path even when its dentries are cached (no LOOKUP reaches us), and the
  /// rules for files the kernel opens itself (FIFOs, devices). The layer
  /// checks every call anyway. Default: true.
  bool default_permissions = true;
  double entry_timeout_s = 1.0;
  double attr_timeout_s = 1.0;
  /// How long the kernel keeps a name that does not exist (a negative
  /// dentry) before asking again, seconds; 0: never kept. Another client
  /// creating the name drops it at once through meta's change stream, as
  /// it drops positive entries (rsync and cp look each name up two or
  /// three times before creating it). Unset: the entry timeout.
  std::optional<double> negative_timeout_s;
  int max_threads = 16;  ///< FUSE worker threads
  FileClientOptions file;
  /// Meta's change stream invalidates kernel caches (off only for tests of
  /// timeouts).
  bool invalidate_from_changes = true;
  /// Run() takes SIGINT/SIGTERM/SIGHUP (libfuse's handlers end the loop).
  /// false when the mount is embedded in a process that waits for signals
  /// itself and calls Stop().
  bool handle_signals = true;
  /// When set, the mount writes a table of the FUSE requests it served
  /// (count, mean and total handler time in us, per operation) to this file
  /// when it unmounts: the per-request profile bench/tree records.
  std::string op_stats_file;
};

class FuseMount {
 public:
  /// Connects to meta and the master, resolves `subdir`, and mounts at
  /// `mountpoint` (not yet serving: see Run). Errors: kUnavailable (meta
  /// unreachable), kNotFound / kFailedPrecondition (subdir missing or not a
  /// directory), kInternal (the kernel refused the mount; the message says
  /// why: no /dev/fuse, not a directory, not empty, ...).
  static StatusOr<std::unique_ptr<FuseMount>> Mount(const FuseMountOptions& options);
  /// Unmounts (when still mounted). The kernel flushed and released every
  /// file before the unmount reached us; what it left open (a killed loop)
  /// is flushed now.
  ~FuseMount();

  /// Serves requests until the file system is unmounted (umount, fusermount3
  /// -u) or Stop() is called; then unmounts. Returns OK on a clean end.
  Status Run();
  /// Makes Run() return soon: safe from any thread (a signal-waiting one).
  void Stop();

 private:
  class Impl;
  explicit FuseMount(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace needlefs
