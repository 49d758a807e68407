// `needlefs master`: flags -> MasterOptions.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "cluster/master_server.h"
#include "common/config.h"
#include "common/logging.h"

namespace needlefs::cli {
namespace {

struct MasterFlags {
  MasterOptions options;
  uint64_t volume_size_limit_mb = 30 * 1024;
  int grpc_port = -1;
  LogOptions log;
};

int RunMaster(MasterFlags f) {
  BlockTerminationSignals();
  if (Status s = InitLogging(f.log); !s.ok()) {
    std::fprintf(stderr, "needlefs master: %s\n", s.ToString().c_str());
    return 2;
  }
  f.options.volume_size_limit_bytes = f.volume_size_limit_mb << 20;
  f.options.grpc_port =
      f.grpc_port >= 0 ? static_cast<uint16_t>(f.grpc_port) : GrpcPortFor(f.options.port);
  auto server = MasterServer::Start(f.options);
  if (!server.ok()) {
    std::fprintf(stderr, "needlefs master: %s\n", server.status().ToString().c_str());
    return 1;
  }
  std::printf("needlefs master ready http=%s:%u grpc=%s:%u dir=%s\n", f.options.ip.c_str(),
              (*server)->http_port(), f.options.ip.c_str(), (*server)->grpc_port(),
              f.options.dir.c_str());
  std::fflush(stdout);
  int sig = WaitForTerminationSignal();
  spdlog::info("master.stop signal={}", sig);
  (*server)->Stop();
  return 0;
}

}  // namespace

void AddMasterCommand(CLI::App& app, int* exit_code) {
  auto* cmd =
      app.add_subcommand("master", "Run the master: topology, file-id assignment, placement");
  auto f = std::make_shared<MasterFlags>();
  f->options.dir = "./needlefs-data/master";
  cmd->add_option("--mdir", f->options.dir, "Directory of the master's durable state")
      ->capture_default_str();
  cmd->add_option("--ip", f->options.ip, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", f->options.port, "HTTP port (0 = any free port)")
      ->capture_default_str();
  cmd->add_option("--grpcPort", f->grpc_port, "gRPC port (default: port + 10000)");
  cmd->add_option("--defaultReplication", f->options.default_replication,
                  "Replica placement xyz for assigns that name none")
      ->capture_default_str();
  cmd->add_option("--volumeSizeLimitMB", f->volume_size_limit_mb, "Volumes are full at this size")
      ->capture_default_str();
  cmd->add_option("--deadNodeTimeoutMs", f->options.dead_node_timeout_ms,
                  "A volume server silent this long is dead")
      ->capture_default_str();
  cmd->add_option("--replicationGraceMs", f->options.replication_grace_ms,
                  "Copy the missing replicas of a volume under-replicated this long (-1 = only "
                  "on `admin volume.fix.replication`)")
      ->capture_default_str();
  cmd->add_option("--log.level", f->log.level, "trace|debug|info|warn|error")
      ->capture_default_str();
  cmd->add_option("--log.format", f->log.format, "text|json")->capture_default_str();
  AddYamlConfigOption(cmd);
  cmd->callback([f, exit_code] { *exit_code = RunMaster(*f); });
}

}  // namespace needlefs::cli
