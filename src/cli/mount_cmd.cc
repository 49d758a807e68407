// `needlefs mount`: flags and -o options -> FuseMountOptions; daemonizes
// (unless -f) and returns once the mount is usable, or with the reason it
// is not.
#include <fcntl.h>
#include <malloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <sstream>

#include "cli/commands.h"
#include "common/config.h"
#include "common/http.h"
#include "common/logging.h"
#include "fuse/fuse_mount.h"

namespace needlefs::cli {
namespace {

struct MountFlags {
  std::string mountpoint;
  std::string meta = "127.0.0.1:18888";
  std::string master;                // default: meta's host, port 9333
  std::vector<std::string> options;  // -o a,b=c
  bool foreground = false;
  std::string subdir = "/";
  double entry_timeout = 1.0;
  double attr_timeout = 1.0;
  std::optional<double> negative_timeout;
  uint64_t cache_mb = 256;
  std::string cache_dir;  // disk tier of the read cache ("" = none)
  uint64_t cache_dir_mb = 1024;
  uint64_t write_buffer_mb = 256;
  uint64_t chunk_size_mb = 4;
  std::string replication;
  std::string collection;
  int threads = 16;
  std::string log_file;
  std::string pid_file;
  std::string op_stats_file;
  LogOptions log;
};

/// Applies the comma-separated -o options (as mount(8) and fstab pass them).
/// Options mount(8) handles itself (_netdev, noauto, ...) are accepted and
/// ignored. Errors: kInvalidArgument for an unknown option.
Status ApplyMountOptions(MountFlags& f, FuseMountOptions& o) {
  for (const std::string& group : f.options) {
    std::stringstream ss(group);
    std::string opt;
    while (std::getline(ss, opt, ',')) {
      if (opt.empty()) continue;
      std::string key = opt, value;
      if (size_t eq = opt.find('='); eq != std::string::npos) {
        key = opt.substr(0, eq);
        value = opt.substr(eq + 1);
      }
      try {
        if (key == "ro") {
          o.read_only = true;
        } else if (key == "rw") {
          o.read_only = false;
        } else if (key == "sync") {
          o.sync = true;
        } else if (key == "async") {
          o.sync = false;
        } else if (key == "dircache") {
          o.dir_cache = true;
        } else if (key == "nodircache") {
          o.dir_cache = false;
        } else if (key == "allow_other") {
          o.allow_other = true;
        } else if (key == "noallow_other") {
          o.allow_other = false;
        } else if (key == "default_permissions") {
          o.default_permissions = true;
        } else if (key == "nodefault_permissions") {
          o.default_permissions = false;
        } else if (key == "subdir") {
          o.subdir = value;
        } else if (key == "master") {
          o.master = value;
        } else if (key == "entry_timeout") {
          o.entry_timeout_s = std::stod(value);
        } else if (key == "attr_timeout") {
          o.attr_timeout_s = std::stod(value);
        } else if (key == "inline_max") {
          o.file.max_inline_bytes = std::stoull(value);
        } else if (key == "negative_timeout") {
          o.negative_timeout_s = std::stod(value);
        } else if (key == "cache_mb") {
          o.file.cache_bytes = std::stoull(value) << 20;
        } else if (key == "cache_dir") {
          o.file.disk_cache_dir = value;
        } else if (key == "cache_dir_mb") {
          o.file.disk_cache_bytes = std::stoull(value) << 20;
        } else if (key == "write_buffer_mb") {
          o.file.max_write_buffer_bytes = std::stoull(value) << 20;
        } else if (key == "replication") {
          o.file.replication = value;
        } else if (key == "collection") {
          o.file.collection = value;
        } else if (key == "pidfile") {
          f.pid_file = value;
        } else if (key == "defaults" || key == "_netdev" || key == "auto" || key == "noauto" ||
                   key == "user" || key == "nouser" || key == "users" || key == "nofail" ||
                   key == "exec" || key == "noexec" || key == "suid" || key == "nosuid" ||
                   key == "dev" || key == "nodev" || key == "atime" || key == "noatime" ||
                   key == "relatime" || key == "x-systemd.automount" ||
                   key.rfind("x-systemd.", 0) == 0 || key.rfind("comment=", 0) == 0) {
          // mount(8) and systemd act on these; nothing for us to do.
        } else {
          return Status::InvalidArgument("unknown mount option: " + opt);
        }
      } catch (const std::exception&) {
        return Status::InvalidArgument("bad value in mount option: " + opt);
      }
    }
  }
  return Status::OK();
}

int RunMount(MountFlags f) {
  FuseMountOptions o;
  o.meta = f.meta;
  // The daemon runs in /: a relative mountpoint is the caller's ("mnt"
  // mounted /mnt before).
  o.mountpoint =
      f.mountpoint.empty() ? f.mountpoint : std::filesystem::absolute(f.mountpoint).string();
  o.subdir = f.subdir;
  o.entry_timeout_s = f.entry_timeout;
  o.attr_timeout_s = f.attr_timeout;
  if (f.negative_timeout) o.negative_timeout_s = f.negative_timeout;
  o.max_threads = f.threads;
  if (!f.op_stats_file.empty())
    o.op_stats_file = std::filesystem::absolute(f.op_stats_file).string();
  o.file.cache_bytes = f.cache_mb << 20;
  o.file.max_write_buffer_bytes = f.write_buffer_mb << 20;
  o.file.disk_cache_dir = f.cache_dir;
  o.file.disk_cache_bytes = f.cache_dir_mb << 20;
  o.file.chunk_size = f.chunk_size_mb << 20;
  o.file.replication = f.replication;
  o.file.collection = f.collection;
  o.master = f.master;
  if (Status s = ApplyMountOptions(f, o); !s.ok()) {
    std::fprintf(stderr, "needlefs mount: %s\n", s.ToString().c_str());
    return 2;
  }
  if (o.master.empty()) {
    std::string host;
    uint16_t port;
    if (!SplitHostPort(o.meta, &host, &port).ok()) {
      std::fprintf(stderr, "needlefs mount: bad -meta address %s\n", o.meta.c_str());
      return 2;
    }
    o.master = JoinHostPort(host, 9333);
  }
  if (!o.file.disk_cache_dir.empty()) {
    // Absolute (the daemon runs in /), and usable now rather than a
    // warning in a log later.
    std::error_code ec;
    std::filesystem::create_directories(o.file.disk_cache_dir, ec);
    o.file.disk_cache_dir = std::filesystem::absolute(o.file.disk_cache_dir, ec).string();
    if (ec || ::access(o.file.disk_cache_dir.c_str(), W_OK | X_OK) != 0 ||
        o.file.disk_cache_bytes == 0) {
      std::fprintf(stderr, "needlefs mount: cache_dir %s is not a writable directory (or size 0)\n",
                   o.file.disk_cache_dir.c_str());
      return 2;
    }
  }
  struct stat st;
  if (::stat(o.mountpoint.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    std::fprintf(stderr, "needlefs mount: %s is not a directory\n", o.mountpoint.c_str());
    return 2;
  }
  if (Status s = InitLogging(f.log); !s.ok()) {
    std::fprintf(stderr, "needlefs mount: %s\n", s.ToString().c_str());
    return 2;
  }

  // Daemonize before any thread exists; the parent waits for the child to
  // say the mount works (or why not) through a pipe.
  int ready_fd = -1;
  if (!f.foreground) {
    int p[2];
    if (pipe(p) != 0) {
      std::perror("needlefs mount: pipe");
      return 1;
    }
    pid_t pid = fork();
    if (pid < 0) {
      std::perror("needlefs mount: fork");
      return 1;
    }
    if (pid > 0) {
      close(p[1]);
      std::string msg;
      char buf[512];
      ssize_t n;
      while ((n = read(p[0], buf, sizeof(buf))) > 0) msg.append(buf, static_cast<size_t>(n));
      close(p[0]);
      if (msg == "ok") return 0;
      std::fprintf(stderr, "needlefs mount: %s\n",
                   msg.empty() ? "the mount process died before mounting" : msg.c_str());
      return 1;
    }
    close(p[0]);
    ready_fd = p[1];
    setsid();
    if (chdir("/") != 0) {
      // keep going: the mount does not use relative paths
    }
    int null = open("/dev/null", O_RDWR);
    int log =
        f.log_file.empty() ? null : open(f.log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (log < 0) log = null;
    dup2(null, 0);
    dup2(null, 1);
    dup2(log, 2);
  }
  auto report = [&](const std::string& msg) {
    if (ready_fd < 0) return;
    ssize_t ignored = write(ready_fd, msg.data(), msg.size());
    (void)ignored;
    close(ready_fd);
    ready_fd = -1;
  };

  // A long-lived daemon with many threads: glibc's default of up to 8
  // malloc arenas per core keeps freed memory in each thread's own arena,
  // and RSS doubled while 8 writers created small files (measured: +54 MiB
  // for 40,000 files, +24 MiB with 4 arenas).
  mallopt(M_ARENA_MAX, 4);
  auto mount = FuseMount::Mount(o);
  if (!mount.ok()) {
    spdlog::error("mount.exit error=\"{}\"", mount.status().ToString());
    if (f.foreground)
      std::fprintf(stderr, "needlefs mount: %s\n", mount.status().ToString().c_str());
    report(mount.status().ToString());
    return 1;
  }
  if (f.foreground) {
    std::printf("needlefs mount ready mountpoint=%s meta=%s master=%s\n", o.mountpoint.c_str(),
                o.meta.c_str(), o.master.c_str());
    std::fflush(stdout);
  }
  if (!f.pid_file.empty()) {
    FILE* pf = std::fopen(f.pid_file.c_str(), "w");
    if (pf) {
      std::fprintf(pf, "%d\n", static_cast<int>(getpid()));
      std::fclose(pf);
    }
  }
  report("ok");
  Status s = (*mount)->Run();
  mount->reset();
  if (!f.pid_file.empty()) ::unlink(f.pid_file.c_str());
  if (!s.ok()) {
    spdlog::error("mount.exit error=\"{}\"", s.ToString());
    return 1;
  }
  return 0;
}

}  // namespace

void AddMountCommand(CLI::App& app, int* exit_code) {
  auto f = std::make_shared<MountFlags>();
  CLI::App* cmd = app.add_subcommand("mount", "Mount NeedleFS with FUSE");
  cmd->add_option("mountpoint", f->mountpoint, "Directory to mount on")->required();
  cmd->add_option("--meta", f->meta, "Meta server host:port (gRPC)")->capture_default_str();
  cmd->add_option("--master", f->master, "Master host:port (HTTP; default: meta's host, 9333)");
  cmd->add_option(
      "-o", f->options,
      "Mount options: ro, sync, nodircache, allow_other (default when run by root), "
      "noallow_other, default_permissions (default), nodefault_permissions, "
      "subdir=/x, master=h:p, "
      "entry_timeout=s, attr_timeout=s, negative_timeout=s, inline_max=bytes, cache_mb=N, "
      "cache_dir=PATH, cache_dir_mb=N, "
      "replication=xyz, pidfile=PATH");
  cmd->add_flag("-f,--foreground", f->foreground, "Stay in the foreground");
  cmd->add_option("--subdir", f->subdir, "Namespace directory to mount as the root")
      ->capture_default_str();
  cmd->add_option("--entryTimeout", f->entry_timeout, "Kernel entry cache, seconds")
      ->capture_default_str();
  cmd->add_option("--negativeTimeout", f->negative_timeout,
                  "Kernel cache of names that do not exist, seconds (0 = off; default: the entry "
                  "timeout)");
  cmd->add_option("--attrTimeout", f->attr_timeout, "Kernel attribute cache, seconds")
      ->capture_default_str();
  cmd->add_option("--cacheMB", f->cache_mb, "Read cache of chunk data, MiB")->capture_default_str();
  cmd->add_option("--cacheDir", f->cache_dir,
                  "Directory for a read cache on local disk, kept across mounts (-o cache_dir=)");
  cmd->add_option("--cacheDirMB", f->cache_dir_mb, "Size cap of --cacheDir, MiB (-o cache_dir_mb=)")
      ->capture_default_str();
  cmd->add_option("--writeBufferMB", f->write_buffer_mb, "Most unflushed write data, MiB")
      ->capture_default_str();
  cmd->add_option("--chunkSizeMB", f->chunk_size_mb, "Chunk (needle) size of file data, MiB")
      ->capture_default_str();
  cmd->add_option("--replication", f->replication, "Replica placement of new data (xyz)");
  cmd->add_option("--collection", f->collection, "Collection of new data");
  cmd->add_option("--threads", f->threads, "FUSE worker threads")->capture_default_str();
  cmd->add_option("--logFile", f->log_file, "Log file of the daemon (default: none)");
  cmd->add_option("--pidFile", f->pid_file, "Write the mount process's pid here (-o pidfile=)");
  cmd->add_option("--opStats", f->op_stats_file,
                  "At unmount, write the FUSE requests served (count, mean and total time "
                  "per operation) to this file");
  cmd->add_option("--log.level", f->log.level, "trace|debug|info|warn|error")
      ->capture_default_str();
  cmd->callback([f, exit_code] { *exit_code = RunMount(*f); });
}

}  // namespace needlefs::cli
