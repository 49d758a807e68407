// `needlefs nfsd`: flags -> NfsServerOptions; serves NFSv3 and MOUNT over the
// cluster until SIGINT/SIGTERM.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "common/config.h"
#include "common/logging.h"
#include "nfsd/nfs_server.h"

namespace needlefs::cli {
namespace {

struct NfsdFlags {
  nfsd::NfsServerOptions options;
  uint64_t cache_mb = 256;
  int http_port = -2;  // -2: port + 10000 (0 when port is 0)
  LogOptions log;
};

int RunNfsd(NfsdFlags f) {
  BlockTerminationSignals();
  if (Status s = InitLogging(f.log); !s.ok()) {
    std::fprintf(stderr, "needlefs nfsd: %s\n", s.ToString().c_str());
    return 2;
  }
  f.options.file.cache_bytes = f.cache_mb << 20;
  f.options.http_port =
      f.http_port != -2 ? f.http_port : (f.options.port == 0 ? 0 : f.options.port + 10000);
  auto server = nfsd::NfsServer::Start(f.options);
  if (!server.ok()) {
    spdlog::error("nfsd.exit error=\"{}\"", server.status().ToString());
    std::fprintf(stderr, "needlefs nfsd: %s\n", server.status().ToString().c_str());
    return 1;
  }
  const char* ip = f.options.address.c_str();
  std::printf("needlefs nfsd ready nfs=%s:%u mount=%s:%u portmap=%s:%u http=%s:%u\n", ip,
              (*server)->port(), ip, (*server)->mount_port(), ip, (*server)->portmap_port(), ip,
              (*server)->http_port());
  if (((*server)->portmap_port() == 111 || (*server)->rpcbind_registered()) &&
      (*server)->port() == 2049) {
    std::printf("  mount -t nfs -o vers=3,nolock HOST:/ /mnt\n");
  } else {
    std::printf("  mount -t nfs -o vers=3,proto=tcp,nolock,port=%u,mountport=%u HOST:/ /mnt\n",
                (*server)->port(), (*server)->mount_port());
  }
  std::fflush(stdout);
  int sig = WaitForTerminationSignal();
  spdlog::info("nfsd.stop signal={}", sig);
  server->reset();
  return 0;
}

}  // namespace

void AddNfsdCommand(CLI::App& app, int* exit_code) {
  auto* cmd = app.add_subcommand("nfsd", "Serve the namespace over NFSv3 (with MOUNT v3)");
  auto f = std::make_shared<NfsdFlags>();
  f->options.meta = "127.0.0.1:18888";
  f->options.master = "127.0.0.1:9333";
  cmd->add_option("--meta", f->options.meta, "Meta server host:port (gRPC)")->capture_default_str();
  cmd->add_option("--master", f->options.master, "Master host:port (HTTP)")->capture_default_str();
  cmd->add_option("--ip", f->options.address, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", f->options.port, "NFS port (0 = any free port)")->capture_default_str();
  cmd->add_option("--mountPort", f->options.mount_port, "MOUNT port (0 = any free port)")
      ->capture_default_str();
  cmd->add_option("--exports", f->options.exports_file,
                  "Exports YAML (default: / read-write to loopback clients, no_root_squash)");
  cmd->add_option("--threads", f->options.threads, "RPC handler threads")->capture_default_str();
  cmd->add_option("--portmap", f->options.portmap,
                  "Answer the portmapper (PMAP v2) itself, for clients without port options")
      ->capture_default_str();
  cmd->add_option("--portmapPort", f->options.portmap_port, "Port of the built-in portmapper")
      ->capture_default_str();
  cmd->add_option("--rpcbind", f->options.register_rpcbind,
                  "Register NFS and MOUNT with the machine's rpcbind when one runs")
      ->capture_default_str();
  cmd->add_option("--httpPort", f->http_port,
                  "HTTP port of /metrics and /status (default: NFS port + 10000, free when the "
                  "NFS port is 0; -1 = none)");
  cmd->add_option("--cacheMB", f->cache_mb, "Read cache, MiB")->capture_default_str();
  cmd->add_option("--log.level", f->log.level, "trace|debug|info|warn|error")
      ->capture_default_str();
  cmd->add_option("--log.format", f->log.format, "text|json")->capture_default_str();
  AddYamlConfigOption(cmd);
  cmd->callback([f, exit_code] { *exit_code = RunNfsd(*f); });
}

}  // namespace needlefs::cli
